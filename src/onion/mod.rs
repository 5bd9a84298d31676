//! Per-hop routing payloads carried in `update_add_htlc`'s onion, and the
//! failure codes sent back in `update_fail_htlc`.
//!
//! **Simplified against BOLT 4:** the payloads are not Sphinx-encrypted. The
//! 1366-byte onion keeps its BOLT 4 size and version byte, but the hop
//! payloads sit in plain text, one fixed 20-byte record per hop (next short
//! channel id, amount to forward, outgoing cltv), and each hop shifts its own
//! record out. Failure reasons are likewise a plain 2-byte BOLT 4 failure
//! code. Every routing rule (fees, cltv deltas, amounts, unknown next
//! channel) is enforced exactly as with real onions; only privacy is missing.
//!
//! # The BOLT 4 Sphinx layer
//!
//! The submodules build and read real BOLT 4 onions, on their own (nothing
//! else in the crate uses them yet; the plaintext API above stays until the
//! store is switched over):
//!
//! - [`keys`]: the per-hop keys (`rho`, `mu`, `um`, `pad`, `ammag`) derived
//!   from a shared secret ("Key Generation"), and the ChaCha20 stream they
//!   key ("Pseudo Random Byte Stream").
//! - [`packet`]: building an onion for a route ("Packet Construction",
//!   "Shared Secret", "Blinding Ephemeral Onion Keys", "Filler Generation")
//!   and peeling one layer of it ("Onion Decryption").
//! - [`payload`]: the TLV hop payload each layer carries ("`payload`
//!   format"), and the `invalid_onion_payload` failure for one that is not
//!   valid.
//! - [`failure`]: failure onions ("Returning Errors"): built by the failing
//!   node, re-obfuscated by each hop back, attributed by the origin.
//!
//! A sender calls [`packet::construct_onion`] with the encoded
//! [`payload::HopPayload`] of each hop and keeps the shared secrets it
//! returns; each hop calls [`packet::peel_onion`], decodes its payload with
//! [`payload::HopPayload::decode`] and keeps the shared secret it gets, so
//! that a failure ([`failure::build_failure`] at the failing hop,
//! [`failure::wrap_failure`] at each hop back) can be read by the sender with
//! [`failure::decode_failure`].

pub mod failure;
pub mod keys;
pub mod packet;
pub mod payload;
mod tlv;

use crate::message::{OnionPacket, ONION_PACKET_LEN};
use crate::types::ShortChannelId;

/// First byte of the packet (BOLT 4 version 0).
const VERSION: u8 = 0;
/// Where the hop payloads start: after the version byte and the 33-byte
/// ephemeral key (zero here).
const PAYLOADS_START: usize = 1 + 33;
/// Size of the hop payload area (BOLT 4).
const PAYLOADS_LEN: usize = 1300;
/// One plaintext hop record: scid (8), amount (8), cltv (4).
const HOP_LEN: usize = 20;
/// Most hops a plaintext onion can carry.
pub const MAX_HOPS: usize = PAYLOADS_LEN / HOP_LEN;

/// What one hop must do with an HTLC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HopPayload {
    /// The channel to forward on, or `None` when this hop is the recipient.
    pub short_channel_id: Option<ShortChannelId>,
    /// Amount to forward (or, for the recipient, the amount it must receive).
    pub amt_to_forward: u64,
    /// `cltv_expiry` of the outgoing HTLC (or, for the recipient, the expiry
    /// the incoming HTLC must have).
    pub outgoing_cltv_value: u32,
}

/// Why an onion could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OnionError {
    /// Version byte other than 0.
    #[error("unknown onion version {0}")]
    Version(u8),
    /// More hops than fit.
    #[error("route of {0} hops exceeds the onion's {MAX_HOPS}")]
    TooManyHops(usize),
}

/// Packs `hops` (first hop first) into an onion.
pub fn build_onion(hops: &[HopPayload]) -> Result<OnionPacket, OnionError> {
    if hops.len() > MAX_HOPS {
        return Err(OnionError::TooManyHops(hops.len()));
    }
    let mut packet = OnionPacket::default();
    packet.0[0] = VERSION;
    for (i, hop) in hops.iter().enumerate() {
        let at = PAYLOADS_START + i * HOP_LEN;
        let record = &mut packet.0[at..at + HOP_LEN];
        record[..8].copy_from_slice(
            &hop.short_channel_id
                .map_or(0, ShortChannelId::to_u64)
                .to_be_bytes(),
        );
        record[8..16].copy_from_slice(&hop.amt_to_forward.to_be_bytes());
        record[16..].copy_from_slice(&hop.outgoing_cltv_value.to_be_bytes());
    }
    Ok(packet)
}

/// Reads this hop's payload and returns it with the onion for the next hop.
pub fn peel_onion(packet: &OnionPacket) -> Result<(HopPayload, OnionPacket), OnionError> {
    let bytes = &packet.0;
    if bytes[0] != VERSION {
        return Err(OnionError::Version(bytes[0]));
    }
    let record = &bytes[PAYLOADS_START..PAYLOADS_START + HOP_LEN];
    let scid = u64::from_be_bytes(record[..8].try_into().expect("8 bytes"));
    let payload = HopPayload {
        short_channel_id: (scid != 0).then(|| ShortChannelId::from_u64(scid)),
        amt_to_forward: u64::from_be_bytes(record[8..16].try_into().expect("8 bytes")),
        outgoing_cltv_value: u32::from_be_bytes(record[16..].try_into().expect("4 bytes")),
    };
    let mut next = OnionPacket::default();
    next.0[0] = VERSION;
    let area_end = PAYLOADS_START + PAYLOADS_LEN;
    next.0[PAYLOADS_START..area_end - HOP_LEN]
        .copy_from_slice(&bytes[PAYLOADS_START + HOP_LEN..area_end]);
    debug_assert_eq!(next.0.len(), ONION_PACKET_LEN);
    Ok((payload, next))
}

/// BOLT 4 failure codes this store produces or understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureCode {
    /// The onion's version byte is unknown (BADONION|PERM|4).
    InvalidOnionVersion,
    /// The channel closed before the HTLC could be settled on it (PERM|8).
    PermanentChannelFailure,
    /// No channel with the next short channel id (PERM|10).
    UnknownNextPeer,
    /// The outgoing channel cannot take the HTLC now (UPDATE|7).
    TemporaryChannelFailure,
    /// Amount below the outgoing channel's minimum (UPDATE|11).
    AmountBelowMinimum,
    /// The fee left for us is below our forwarding fee (UPDATE|12).
    FeeInsufficient,
    /// The cltv delta left for us is below ours (UPDATE|13).
    IncorrectCltvExpiry,
    /// The HTLC expires too soon to forward (UPDATE|14).
    ExpiryTooSoon,
    /// The recipient does not know the payment, or refused it (PERM|15).
    IncorrectOrUnknownPaymentDetails,
    /// The final cltv does not match the onion (18).
    FinalIncorrectCltvExpiry,
    /// The final amount does not match the onion (19).
    FinalIncorrectHtlcAmount,
    /// The outgoing channel is closing or closed (UPDATE|20).
    ChannelDisabled,
    /// The HTLC expires too far in the future (21).
    ExpiryTooFar,
    /// A code this crate does not name.
    Other(u16),
}

const BADONION: u16 = 0x8000;
const PERM: u16 = 0x4000;
const UPDATE: u16 = 0x1000;

impl FailureCode {
    /// The BOLT 4 numeric code.
    pub fn code(self) -> u16 {
        match self {
            FailureCode::InvalidOnionVersion => BADONION | PERM | 4,
            FailureCode::PermanentChannelFailure => PERM | 8,
            FailureCode::UnknownNextPeer => PERM | 10,
            FailureCode::TemporaryChannelFailure => UPDATE | 7,
            FailureCode::AmountBelowMinimum => UPDATE | 11,
            FailureCode::FeeInsufficient => UPDATE | 12,
            FailureCode::IncorrectCltvExpiry => UPDATE | 13,
            FailureCode::ExpiryTooSoon => UPDATE | 14,
            FailureCode::IncorrectOrUnknownPaymentDetails => PERM | 15,
            FailureCode::FinalIncorrectCltvExpiry => 18,
            FailureCode::FinalIncorrectHtlcAmount => 19,
            FailureCode::ChannelDisabled => UPDATE | 20,
            FailureCode::ExpiryTooFar => 21,
            FailureCode::Other(code) => code,
        }
    }

    /// The failure for a numeric code.
    pub fn from_code(code: u16) -> Self {
        [
            FailureCode::InvalidOnionVersion,
            FailureCode::PermanentChannelFailure,
            FailureCode::UnknownNextPeer,
            FailureCode::TemporaryChannelFailure,
            FailureCode::AmountBelowMinimum,
            FailureCode::FeeInsufficient,
            FailureCode::IncorrectCltvExpiry,
            FailureCode::ExpiryTooSoon,
            FailureCode::IncorrectOrUnknownPaymentDetails,
            FailureCode::FinalIncorrectCltvExpiry,
            FailureCode::FinalIncorrectHtlcAmount,
            FailureCode::ChannelDisabled,
            FailureCode::ExpiryTooFar,
        ]
        .into_iter()
        .find(|f| f.code() == code)
        .unwrap_or(FailureCode::Other(code))
    }

    /// The `update_fail_htlc` reason bytes (plaintext: the 2-byte code).
    pub fn to_reason(self) -> Vec<u8> {
        self.code().to_be_bytes().to_vec()
    }

    /// Reads a reason written by [`FailureCode::to_reason`]; anything else is
    /// reported as `Other(0)`.
    pub fn from_reason(reason: &[u8]) -> Self {
        match reason {
            [hi, lo, ..] => FailureCode::from_code(u16::from_be_bytes([*hi, *lo])),
            _ => FailureCode::Other(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_hops_peel_in_order() {
        let scid = |n| Some(ShortChannelId::new(n, 1, 0).unwrap());
        let hops = [
            HopPayload {
                short_channel_id: scid(10),
                amt_to_forward: 3_000,
                outgoing_cltv_value: 300,
            },
            HopPayload {
                short_channel_id: scid(11),
                amt_to_forward: 2_000,
                outgoing_cltv_value: 200,
            },
            HopPayload {
                short_channel_id: None,
                amt_to_forward: 1_000,
                outgoing_cltv_value: 100,
            },
        ];
        let mut onion = build_onion(&hops).unwrap();
        for hop in hops {
            let (payload, next) = peel_onion(&onion).unwrap();
            assert_eq!(payload, hop);
            onion = next;
        }
        // Past the last hop the onion is empty: a final-looking zero payload.
        assert_eq!(peel_onion(&onion).unwrap().0.amt_to_forward, 0);
    }

    #[test]
    fn bad_version_and_too_many_hops_are_errors() {
        let mut onion = OnionPacket::default();
        onion.0[0] = 1;
        assert_eq!(peel_onion(&onion), Err(OnionError::Version(1)));
        let hop = HopPayload {
            short_channel_id: None,
            amt_to_forward: 1,
            outgoing_cltv_value: 1,
        };
        assert!(build_onion(&vec![hop; MAX_HOPS]).is_ok());
        assert_eq!(
            build_onion(&vec![hop; MAX_HOPS + 1]),
            Err(OnionError::TooManyHops(MAX_HOPS + 1))
        );
    }

    #[test]
    fn failure_codes_round_trip() {
        for code in [
            0x400a,
            0x1007,
            0x100c,
            0x400f,
            18,
            0x1014,
            0x8004 | 0x4000,
            77,
        ] {
            assert_eq!(FailureCode::from_code(code).code(), code);
            assert_eq!(
                FailureCode::from_reason(&FailureCode::from_code(code).to_reason()).code(),
                code
            );
        }
        assert_eq!(FailureCode::from_reason(&[1]), FailureCode::Other(0));
    }
}
