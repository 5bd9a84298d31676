//! Shims: harness-side stand-ins for chanstore behaviour that is missing
//! today, each one named after its finding in `FINDINGS.md`.
//!
//! A scenario runs twice: as it is (`Shims::NONE`, the real test, ignored
//! until chanstore is fixed) and with the shims on, which shows that
//! nothing but the listed deviations stands in the way. Every shim is
//! idempotent: once chanstore does the thing itself, the shim sees it
//! and leaves the bytes alone (and `applied` stays at zero for it).

use std::cell::Cell;

use super::wire::type_of;

/// Which shims are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shims {
    /// F1: chanstore has no BOLT 1 `init`: the harness calls both sides'
    /// `peer_connected` directly, with the features chanstore implements,
    /// instead of exchanging `init` bytes.
    pub fake_init: bool,
    /// F2: chanstore's `open_channel`/`accept_channel` carry no
    /// `channel_type` TLV: the harness appends `channel_type` =
    /// `option_static_remotekey` (TLV 1, `0x1000`) and, as BOLT 2 requires
    /// of a message with TLVs, an empty `upfront_shutdown_script` (TLV 0).
    pub channel_type: bool,
    /// F3 (fixed): chanstore could not decode `channel_update` (258,
    /// even), so the harness dropped LDK's instead of failing the
    /// connection as BOLT 1 requires for an unknown even type. It drops
    /// only what chanstore cannot decode, which is nothing now:
    /// `applied(3)` stays 0 (asserted in `tests/ldk_interop.rs`).
    pub drop_channel_update: bool,
}

impl Shims {
    /// The scenario as it is: every message as the implementations write it.
    pub const NONE: Shims = Shims {
        fake_init: false,
        channel_type: false,
        drop_channel_update: false,
    };
    /// Every known deviation papered over.
    pub const ALL: Shims = Shims {
        // F1 fixed: chanstore sends and takes `init` itself.
        fake_init: false,
        channel_type: true,
        drop_channel_update: true,
    };
}

thread_local! {
    /// How often each shim changed something (index: the F number).
    pub static APPLIED: [Cell<u32>; 8] = Default::default();
}

fn count(finding: usize) {
    APPLIED.with(|a| a[finding].set(a[finding].get() + 1));
}

/// BOLT 1 `BigSize`.
fn read_bigsize(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let (len, v) = match first {
        0xfd => (
            3,
            u64::from(u16::from_be_bytes(bytes.get(1..3)?.try_into().ok()?)),
        ),
        0xfe => (
            5,
            u64::from(u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?)),
        ),
        0xff => (9, u64::from_be_bytes(bytes.get(1..9)?.try_into().ok()?)),
        b => (1, u64::from(b)),
    };
    Some((v, len))
}

fn write_bigsize(v: u64, out: &mut Vec<u8>) {
    match v {
        0..=0xfc => out.push(v as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        }
        0x10000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// A TLV stream, parsed (BOLT 1). `None` if it is not one.
pub fn parse_tlvs(mut bytes: &[u8]) -> Option<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (t, n) = read_bigsize(bytes)?;
        bytes = &bytes[n..];
        let (len, n) = read_bigsize(bytes)?;
        bytes = &bytes[n..];
        let len = usize::try_from(len).ok()?;
        out.push((t, bytes.get(..len)?.to_vec()));
        bytes = &bytes[len..];
    }
    Some(out)
}

pub fn write_tlvs(tlvs: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (t, v) in tlvs {
        write_bigsize(*t, &mut out);
        write_bigsize(v.len() as u64, &mut out);
        out.extend_from_slice(v);
    }
    out
}

/// Length of the fixed part (type included) of the messages whose TLV
/// streams the shims touch (BOLT 2).
fn fixed_len(type_id: u16) -> Option<usize> {
    match type_id {
        32 => Some(2 + 319),
        33 => Some(2 + 270),
        _ => None,
    }
}

/// `channel_type` = `option_static_remotekey` (feature bit 12), the only
/// type chanstore implements.
pub const STATIC_REMOTEKEY_TYPE: [u8; 2] = [0x10, 0x00];

/// What the shims make of a message chanstore sends to LDK.
pub fn from_chanstore(shims: Shims, bytes: Vec<u8>) -> Vec<u8> {
    let t = type_of(&bytes);
    if shims.channel_type {
        if let Some(fixed) = fixed_len(t) {
            if bytes.len() >= fixed {
                let (head, tail) = bytes.split_at(fixed);
                if let Some(mut tlvs) = parse_tlvs(tail) {
                    if !tlvs.iter().any(|(ty, _)| *ty == 1) {
                        tlvs.push((1, STATIC_REMOTEKEY_TYPE.to_vec()));
                        // bolt02 "if it includes open_channel_tlvs: MUST
                        // include upfront_shutdown_script" (zero-length: none).
                        if !tlvs.iter().any(|(ty, _)| *ty == 0) {
                            tlvs.push((0, Vec::new()));
                        }
                        tlvs.sort_by_key(|(ty, _)| *ty);
                        count(2);
                        let mut out = head.to_vec();
                        out.extend(write_tlvs(&tlvs));
                        return out;
                    }
                }
            }
        }
    }
    bytes
}

/// What the shims make of a message LDK sends to chanstore: `None` drops it.
pub fn from_ldk(shims: Shims, bytes: Vec<u8>) -> Option<Vec<u8>> {
    if shims.drop_channel_update && type_of(&bytes) == 258 {
        // Idempotent: once chanstore decodes 258 itself the shim is moot,
        // but dropping stays harmless (it only carries forwarding policy).
        if chanstore::Message::decode(&bytes).is_err() {
            count(3);
            return None;
        }
    }
    Some(bytes)
}

/// How often shim `finding` changed a message in this thread.
pub fn applied(finding: usize) -> u32 {
    APPLIED.with(|a| a[finding].get())
}
