//! BOLT 9 feature bits: what `init` and `channel_type` carry, and the
//! check that decides whether we can talk to a peer at all.
//!
//! Features come in pairs: bit `2k` means the sender *requires* feature `k`,
//! bit `2k+1` that it merely *supports* it ("it's OK to be odd"). A peer that
//! requires a feature we do not know cannot be served; one that lacks a
//! feature we require cannot serve us.
//!
//! On the wire a feature field is a big-endian bit string: bit 0 is the
//! lowest bit of the *last* byte. [`Features`] keeps the bytes exactly as
//! they arrived (leading zero bytes included), so a decoded message encodes
//! back to the same bytes.

use std::fmt;

/// `option_data_loss_protect` (bits 0/1): `channel_reestablish` carries the
/// last secret received and the current point.
pub const DATA_LOSS_PROTECT: u32 = 0;
/// `option_upfront_shutdown_script` (bits 4/5), known but not offered.
pub const UPFRONT_SHUTDOWN_SCRIPT: u32 = 4;
/// `var_onion_optin` (bits 8/9): TLV hop payloads in onions.
pub const VAR_ONION_OPTIN: u32 = 8;
/// `option_static_remotekey` (bits 12/13): the `to_remote` output pays the
/// peer's payment basepoint directly; the only commitment format we build.
pub const STATIC_REMOTEKEY: u32 = 12;
/// `payment_secret` (bits 14/15): final hop payloads carry `payment_data`.
pub const PAYMENT_SECRET: u32 = 14;
/// `basic_mpp` (bits 16/17): a recipient accepts multi-part payments.
pub const BASIC_MPP: u32 = 16;
/// `option_shutdown_anysegwit` (bits 26/27): any segwit v1+ script may be a
/// closing destination.
pub const SHUTDOWN_ANYSEGWIT: u32 = 26;
/// `option_channel_type` (bits 44/45): `open_channel` and `accept_channel`
/// name the channel's type explicitly.
pub const CHANNEL_TYPE: u32 = 44;

/// The feature pairs this crate implements (their even bits), and whether
/// it requires each of a peer.
const OURS: [(u32, bool); 7] = [
    (DATA_LOSS_PROTECT, false),
    (VAR_ONION_OPTIN, true),
    (STATIC_REMOTEKEY, true),
    (PAYMENT_SECRET, true),
    (BASIC_MPP, false),
    (SHUTDOWN_ANYSEGWIT, false),
    (CHANNEL_TYPE, false),
];

/// Feature pairs we understand when a peer requires them: the ones we
/// implement and the ones that change nothing for a peer that does not use
/// them (`option_upfront_shutdown_script`: we never send a script, so the
/// peer's requirement is met by the empty one BOLT 2 allows).
fn understood(pair: u32) -> bool {
    OURS.iter().any(|&(p, _)| p == pair) || pair == UPFRONT_SHUTDOWN_SCRIPT
}

/// A feature bit field (BOLT 9), as carried by `init` and `channel_type`.
///
/// # Examples
///
/// ```
/// use chanstore::features::{Features, STATIC_REMOTEKEY};
///
/// let f = Features::from_bits(&[STATIC_REMOTEKEY]);
/// assert_eq!(f.as_wire(), &[0x10, 0x00]);
/// assert!(f.supports(STATIC_REMOTEKEY));
/// assert!(f.requires(STATIC_REMOTEKEY));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Features {
    /// The bytes as on the wire (big-endian: bit 0 is in the last byte).
    wire: Vec<u8>,
}

impl Features {
    /// No feature set.
    pub fn empty() -> Self {
        Features::default()
    }

    /// A field with exactly these bits set, in the shortest encoding.
    pub fn from_bits(bits: &[u32]) -> Self {
        let mut f = Features::empty();
        for &bit in bits {
            f.set(bit);
        }
        f
    }

    /// The field exactly as these wire bytes encode it.
    pub fn from_wire(bytes: &[u8]) -> Self {
        Features {
            wire: bytes.to_vec(),
        }
    }

    /// The wire bytes (as decoded, or the shortest encoding when built).
    pub fn as_wire(&self) -> &[u8] {
        &self.wire
    }

    /// Whether `bit` is set.
    pub fn is_set(&self, bit: u32) -> bool {
        let byte = (bit / 8) as usize;
        byte < self.wire.len() && self.wire[self.wire.len() - 1 - byte] & (1 << (bit % 8)) != 0
    }

    /// Sets `bit`, growing the field (at its front) when needed.
    pub fn set(&mut self, bit: u32) {
        let byte = (bit / 8) as usize;
        if byte >= self.wire.len() {
            let grow = byte + 1 - self.wire.len();
            self.wire.splice(0..0, std::iter::repeat_n(0, grow));
        }
        let len = self.wire.len();
        self.wire[len - 1 - byte] |= 1 << (bit % 8);
    }

    /// Whether either bit of the pair whose even bit is `pair` is set.
    pub fn supports(&self, pair: u32) -> bool {
        self.is_set(pair & !1) || self.is_set(pair | 1)
    }

    /// Whether the even (required) bit of `pair` is set.
    pub fn requires(&self, pair: u32) -> bool {
        self.is_set(pair & !1)
    }

    /// Every set bit, lowest first.
    pub fn bits(&self) -> impl Iterator<Item = u32> + '_ {
        let len = self.wire.len();
        (0..len * 8)
            .filter_map(|b| u32::try_from(b).ok())
            .filter(move |&b| self.is_set(b))
    }

    /// The union of two fields (BOLT 1: a reader ORs `init`'s
    /// `globalfeatures` into `features`).
    pub fn union(&self, other: &Features) -> Features {
        let mut out = self.clone();
        for bit in other.bits() {
            out.set(bit);
        }
        out
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.wire.iter().all(|&b| b == 0)
    }

    /// The `init` features this crate sends: what it implements, with the
    /// bits it depends on marked required.
    pub fn ours() -> Features {
        let mut f = Features::empty();
        for (pair, required) in OURS {
            f.set(if required { pair } else { pair | 1 });
        }
        f
    }

    /// The one `channel_type` this crate opens and accepts:
    /// `option_static_remotekey` and nothing else.
    pub fn static_remotekey_channel() -> Features {
        Features::from_bits(&[STATIC_REMOTEKEY])
    }

    /// Why a peer announcing `self` in its `init` cannot be served, if it
    /// cannot: it requires a feature we do not know (BOLT 1: "MUST fail the
    /// connection"), or lacks one we require.
    pub fn incompatibility(&self) -> Option<String> {
        if let Some(bit) = self.bits().find(|&b| b % 2 == 0 && !understood(b)) {
            return Some(format!("peer requires unknown feature bit {bit}"));
        }
        OURS.iter()
            .find(|&&(pair, required)| required && !self.supports(pair))
            .map(|&(pair, _)| format!("peer lacks required feature bit {pair}/{}", pair + 1))
    }
}

impl fmt::Debug for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.bits()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_order_is_big_endian_with_bit_zero_last() {
        let f = Features::from_bits(&[0, 9, 17]);
        assert_eq!(f.as_wire(), &[0x02, 0x02, 0x01]);
        assert_eq!(f.bits().collect::<Vec<_>>(), vec![0, 9, 17]);
        // Leading zero bytes are kept, so the field encodes back the same.
        let padded = Features::from_wire(&[0, 0, 0x01]);
        assert!(padded.is_set(0) && !padded.is_set(8));
        assert_eq!(padded.as_wire(), &[0, 0, 1]);
    }

    #[test]
    fn ours_requires_what_we_depend_on() {
        let f = Features::ours();
        for pair in [VAR_ONION_OPTIN, STATIC_REMOTEKEY, PAYMENT_SECRET] {
            assert!(f.requires(pair), "bit {pair}");
        }
        for bit in [1, 17, 27, 45] {
            assert!(f.is_set(bit), "bit {bit}");
        }
        assert_eq!(f.incompatibility(), None, "we can talk to ourselves");
    }

    #[test]
    fn unknown_even_bit_or_missing_required_is_incompatible() {
        let mut f = Features::ours();
        f.set(103); // unknown odd: fine
        assert_eq!(f.incompatibility(), None);
        f.set(102); // unknown even: not fine
        assert_eq!(
            f.incompatibility().as_deref(),
            Some("peer requires unknown feature bit 102")
        );
        let lacks = Features::from_bits(&[1, 8, 14]);
        assert_eq!(
            lacks.incompatibility().as_deref(),
            Some("peer lacks required feature bit 12/13")
        );
        // Required-by-them upfront shutdown is understood.
        let mut up = Features::ours();
        up.set(UPFRONT_SHUTDOWN_SCRIPT);
        assert_eq!(up.incompatibility(), None);
    }

    #[test]
    fn union_ors_bits() {
        let a = Features::from_wire(&[0x01]);
        let b = Features::from_wire(&[0x02, 0x00]);
        assert_eq!(a.union(&b).bits().collect::<Vec<_>>(), vec![0, 9]);
    }
}
