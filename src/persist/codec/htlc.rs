//! One HTLC's record: 0 id, 2 amount, 4 payment hash, 6 cltv expiry,
//! 8 state, 10 direction with its details, *11 removal*.
//!
//! The direction record (10) carries, for an HTLC we offered, its source
//! and flags; for one the peer offered, what its onion told us. Its onion
//! (the one we sent, or the one to forward) is inline in whole-channel
//! records and in its own `Key::Onion` record in a persister; a flag says
//! which. Version 0.1 records (inline onions, plaintext payload kinds 0 and
//! 1) still decode.

use crate::channel::htlc::{Htlc, HtlcKind, HtlcState, Inbound};
use crate::error::DecodeError;
use crate::onion::{FailureCode, HopPayload};
use crate::persist::tlv::{Cursor, TlvReader, TlvWriter};
use crate::types::{PaymentHash, ShortChannelId};

use super::fields::{get_onion, get_removal, get_source, put_onion, put_removal, put_source};

mod htlc_type {
    pub const ID: u64 = 0;
    pub const AMOUNT: u64 = 2;
    pub const HASH: u64 = 4;
    pub const CLTV: u64 = 6;
    pub const STATE: u64 = 8;
    pub const KIND: u64 = 10;
    pub const REMOVAL: u64 = 11;
    pub const ALL: [u64; 7] = [ID, AMOUNT, HASH, CLTV, STATE, KIND, REMOVAL];
}

/// Onion flags in the direction record.
const ONION_NONE: u8 = 0;
const ONION_INLINE: u8 = 1;
const ONION_SEPARATE: u8 = 2;

/// Inbound kinds: 0 and 1 are version 0.1's (bad onion; plaintext payload
/// with its next onion inline), 2 and 3 today's.
const INBOUND_V0_BAD_ONION: u8 = 0;
const INBOUND_V0_PAYLOAD: u8 = 1;
const INBOUND_FAIL: u8 = 2;
const INBOUND_PAYLOAD: u8 = 3;

/// Where a decoded HTLC's onion is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnionPlace {
    /// It has none (or it was inline and is in the HTLC now).
    Here,
    /// In its own record, to be attached by the loader.
    Separate,
}

fn put_onion_flag(out: &mut Vec<u8>, h: &Htlc, separate: bool) {
    match (&h.onion, separate) {
        (None, _) => out.push(ONION_NONE),
        (Some(_), true) => out.push(ONION_SEPARATE),
        (Some(onion), false) => {
            out.push(ONION_INLINE);
            put_onion(out, onion);
        }
    }
}

fn put_payload(out: &mut Vec<u8>, p: &HopPayload) {
    out.extend_from_slice(&p.short_channel_id.map_or(0, |s| s.to_u64()).to_be_bytes());
    out.extend_from_slice(&p.amt_to_forward.to_be_bytes());
    out.extend_from_slice(&p.outgoing_cltv_value.to_be_bytes());
}

fn get_payload(c: &mut Cursor<'_>) -> Result<HopPayload, DecodeError> {
    let scid = c.u64()?;
    Ok(HopPayload {
        short_channel_id: (scid != 0).then(|| ShortChannelId::from_u64(scid)),
        amt_to_forward: c.u64()?,
        outgoing_cltv_value: c.u32()?,
    })
}

/// Encodes an HTLC's durable view (see `Htlc::durable_state`), its onion
/// in its own record when `separate_onion`. An add the peer never signed
/// has no durable view: it must not be passed here.
pub(crate) fn encode_htlc(h: &Htlc, separate_onion: bool) -> Vec<u8> {
    use htlc_type::*;
    let (state, removal) = h
        .durable_state()
        .expect("only HTLCs with a durable state are written");
    let mut w = TlvWriter::new();
    w.record(ID, &h.id.to_be_bytes())
        .record(AMOUNT, &h.amount_msat.to_be_bytes())
        .record(HASH, &h.payment_hash.0)
        .record(CLTV, &h.cltv_expiry.to_be_bytes())
        .record(STATE, &[state.to_u8()])
        .with(KIND, |out| match &h.kind {
            HtlcKind::Offered {
                source,
                fulfill_reported,
            } => {
                out.push(0);
                put_source(out, source);
                out.push(u8::from(*fulfill_reported));
                put_onion_flag(out, h, separate_onion);
            }
            HtlcKind::Received(inbound) => {
                out.push(1);
                match inbound {
                    Inbound::Fail(code) => {
                        out.push(INBOUND_FAIL);
                        out.extend_from_slice(&code.code().to_be_bytes());
                    }
                    Inbound::Payload(payload) => {
                        out.push(INBOUND_PAYLOAD);
                        put_payload(out, payload);
                    }
                }
                put_onion_flag(out, h, separate_onion);
            }
        });
    if let Some(removal) = removal {
        w.with(REMOVAL, |out| put_removal(out, removal));
    }
    w.finish()
}

fn get_onion_flag(
    c: &mut Cursor<'_>,
) -> Result<(Option<crate::message::OnionPacket>, OnionPlace), DecodeError> {
    Ok(match c.u8()? {
        ONION_NONE => (None, OnionPlace::Here),
        ONION_INLINE => (Some(get_onion(c)?), OnionPlace::Here),
        ONION_SEPARATE => (None, OnionPlace::Separate),
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "htlc.onion",
            })
        }
    })
}

/// Decodes an HTLC record; `context` names its channel in errors.
pub(crate) fn decode_htlc(bytes: &[u8], context: &str) -> Result<(Htlc, OnionPlace), DecodeError> {
    use htlc_type::*;
    let r = TlvReader::parse(bytes, &ALL, format!("htlc of {context}"))?;
    let state = HtlcState::from_u8(r.cursor(STATE, "htlc.state")?.u8()?).ok_or(
        DecodeError::InvalidValue {
            field: "htlc.state",
        },
    )?;
    let mut k = r.cursor(KIND, "htlc.kind")?;
    let (kind, onion, place) = match k.u8()? {
        0 => {
            let source = get_source(&mut k)?;
            let fulfill_reported = k.bool()?;
            let (onion, place) = get_onion_flag(&mut k)?;
            (
                HtlcKind::Offered {
                    source,
                    fulfill_reported,
                },
                onion,
                place,
            )
        }
        1 => match k.u8()? {
            INBOUND_V0_BAD_ONION => (
                HtlcKind::Received(Inbound::Fail(FailureCode::InvalidOnionVersion)),
                None,
                OnionPlace::Here,
            ),
            INBOUND_V0_PAYLOAD => {
                let payload = get_payload(&mut k)?;
                let next = get_onion(&mut k)?;
                // Only a forward needs the onion it carried.
                let onion = payload.short_channel_id.map(|_| next);
                (
                    HtlcKind::Received(Inbound::Payload(payload)),
                    onion,
                    OnionPlace::Here,
                )
            }
            INBOUND_FAIL => {
                let code = FailureCode::from_code(k.u16()?);
                let (onion, place) = get_onion_flag(&mut k)?;
                (HtlcKind::Received(Inbound::Fail(code)), onion, place)
            }
            INBOUND_PAYLOAD => {
                let payload = get_payload(&mut k)?;
                let (onion, place) = get_onion_flag(&mut k)?;
                (HtlcKind::Received(Inbound::Payload(payload)), onion, place)
            }
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "htlc.inbound",
                })
            }
        },
        _ => return Err(DecodeError::InvalidValue { field: "htlc.kind" }),
    };
    k.end()?;
    if state.offered_by_us() != matches!(kind, HtlcKind::Offered { .. }) {
        return Err(DecodeError::InvalidValue {
            field: "htlc.state",
        });
    }
    let removal = r
        .optional(REMOVAL)
        .map(|v| get_removal(&mut Cursor::new(v, "htlc.removal")))
        .transpose()?;
    let htlc = Htlc {
        id: r.cursor(ID, "htlc.id")?.u64()?,
        amount_msat: r.cursor(AMOUNT, "htlc.amount_msat")?.u64()?,
        payment_hash: PaymentHash(r.cursor(HASH, "htlc.payment_hash")?.array()?),
        cltv_expiry: r.cursor(CLTV, "htlc.cltv_expiry")?.u32()?,
        state,
        removal,
        kind,
        onion,
    };
    Ok((htlc, place))
}
