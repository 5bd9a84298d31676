//! One HTLC's record: 0 id, 2 amount, 4 payment hash, 6 cltv expiry,
//! 8 state, 10 direction with its details, *11 removal*.
//!
//! The direction record (10) carries, for an HTLC we offered, its source
//! and flags; for one the peer offered, what its onion told us. Its onion
//! (the one we sent, or the one to forward) is inline in whole-channel
//! records and in its own `Key::Onion` record in a persister; a flag says
//! which. Records of version 0.1 (inbound kinds 0 to 3: plaintext onions,
//! no shared secret) still decode; today's kinds are 4 to 7.

use crate::channel::htlc::{Htlc, HtlcKind, HtlcState, Inbound};
use crate::error::DecodeError;
use crate::onion::payload::{HopPayload, PaymentData};
use crate::onion::FailureCode;
use crate::persist::tlv::{Cursor, TlvReader, TlvWriter};
use crate::types::{PaymentHash, PaymentSecret, ShortChannelId};

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

/// Inbound kinds: 0 to 3 are version 0.1's (bad onion; plaintext payload
/// with its next onion inline; failure code; plaintext payload), 4 to 7
/// today's (forward, payment to us, failure with its data, malformed
/// onion), each with the shared secret where there is one.
const INBOUND_V0_BAD_ONION: u8 = 0;
const INBOUND_V0_PAYLOAD: u8 = 1;
const INBOUND_V0_FAIL: u8 = 2;
const INBOUND_V0_PLAIN_PAYLOAD: u8 = 3;
const INBOUND_FORWARD: u8 = 4;
const INBOUND_RECEIVE: u8 = 5;
const INBOUND_FAIL: u8 = 6;
const INBOUND_MALFORMED: u8 = 7;

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

fn put_secret(out: &mut Vec<u8>, ss: &Option<[u8; 32]>) {
    match ss {
        Some(ss) => {
            out.push(1);
            out.extend_from_slice(ss);
        }
        None => out.push(0),
    }
}

fn get_secret(c: &mut Cursor<'_>) -> Result<Option<[u8; 32]>, DecodeError> {
    Ok(if c.bool()? { Some(c.array()?) } else { None })
}

fn put_inbound(out: &mut Vec<u8>, inbound: &Inbound) {
    match inbound {
        Inbound::Payload {
            payload:
                HopPayload::Forward {
                    short_channel_id,
                    amt_to_forward,
                    outgoing_cltv_value,
                },
            shared_secret,
        } => {
            out.push(INBOUND_FORWARD);
            put_secret(out, shared_secret);
            out.extend_from_slice(&short_channel_id.to_u64().to_be_bytes());
            out.extend_from_slice(&amt_to_forward.to_be_bytes());
            out.extend_from_slice(&outgoing_cltv_value.to_be_bytes());
        }
        Inbound::Payload {
            payload:
                HopPayload::Receive {
                    amt_to_forward,
                    outgoing_cltv_value,
                    payment_data,
                    ..
                },
            shared_secret,
        } => {
            out.push(INBOUND_RECEIVE);
            put_secret(out, shared_secret);
            out.extend_from_slice(&amt_to_forward.to_be_bytes());
            out.extend_from_slice(&outgoing_cltv_value.to_be_bytes());
            match payment_data {
                Some(d) => {
                    out.push(1);
                    out.extend_from_slice(&d.payment_secret.0);
                    out.extend_from_slice(&d.total_msat.to_be_bytes());
                }
                None => out.push(0),
            }
        }
        Inbound::Fail {
            code,
            data,
            shared_secret,
        } => {
            out.push(INBOUND_FAIL);
            put_secret(out, shared_secret);
            out.extend_from_slice(&code.code().to_be_bytes());
            crate::persist::tlv::put_bytes(out, data);
        }
        Inbound::Malformed {
            code,
            sha256_of_onion,
        } => {
            out.push(INBOUND_MALFORMED);
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(sha256_of_onion);
        }
    }
}

/// A version 0.1 plaintext payload: scid (0 for us), amount, cltv.
fn get_plain_payload(c: &mut Cursor<'_>) -> Result<HopPayload, DecodeError> {
    let scid = c.u64()?;
    let (amt_to_forward, outgoing_cltv_value) = (c.u64()?, c.u32()?);
    Ok(if scid == 0 {
        HopPayload::Receive {
            amt_to_forward,
            outgoing_cltv_value,
            payment_data: None,
            payment_metadata: None,
        }
    } else {
        HopPayload::Forward {
            short_channel_id: ShortChannelId::from_u64(scid),
            amt_to_forward,
            outgoing_cltv_value,
        }
    })
}

/// Reads an inbound record of `kind`; a 0.1 kind-1 record's inline onion
/// comes back with it.
fn get_inbound(
    c: &mut Cursor<'_>,
    kind: u8,
) -> Result<(Inbound, Option<crate::message::OnionPacket>), DecodeError> {
    let legacy = |payload| Inbound::Payload {
        payload,
        shared_secret: None,
    };
    Ok(match kind {
        INBOUND_V0_BAD_ONION => (
            Inbound::Fail {
                code: FailureCode::InvalidOnionVersion,
                data: Vec::new(),
                shared_secret: None,
            },
            None,
        ),
        INBOUND_V0_PAYLOAD => {
            let payload = get_plain_payload(c)?;
            let next = get_onion(c)?;
            // Only a forward needs the onion it carried.
            let onion = matches!(payload, HopPayload::Forward { .. }).then_some(next);
            (legacy(payload), onion)
        }
        INBOUND_V0_FAIL => (
            Inbound::Fail {
                code: FailureCode::from_code(c.u16()?),
                data: Vec::new(),
                shared_secret: None,
            },
            None,
        ),
        INBOUND_V0_PLAIN_PAYLOAD => (legacy(get_plain_payload(c)?), None),
        INBOUND_FORWARD => {
            let shared_secret = get_secret(c)?;
            let payload = HopPayload::Forward {
                short_channel_id: ShortChannelId::from_u64(c.u64()?),
                amt_to_forward: c.u64()?,
                outgoing_cltv_value: c.u32()?,
            };
            (
                Inbound::Payload {
                    payload,
                    shared_secret,
                },
                None,
            )
        }
        INBOUND_RECEIVE => {
            let shared_secret = get_secret(c)?;
            let (amt_to_forward, outgoing_cltv_value) = (c.u64()?, c.u32()?);
            let payment_data = if c.bool()? {
                Some(PaymentData {
                    payment_secret: PaymentSecret(c.array()?),
                    total_msat: c.u64()?,
                })
            } else {
                None
            };
            let payload = HopPayload::Receive {
                amt_to_forward,
                outgoing_cltv_value,
                payment_data,
                payment_metadata: None,
            };
            (
                Inbound::Payload {
                    payload,
                    shared_secret,
                },
                None,
            )
        }
        INBOUND_FAIL => {
            let shared_secret = get_secret(c)?;
            let code = FailureCode::from_code(c.u16()?);
            let data = c.bytes()?.to_vec();
            (
                Inbound::Fail {
                    code,
                    data,
                    shared_secret,
                },
                None,
            )
        }
        INBOUND_MALFORMED => (
            Inbound::Malformed {
                code: c.u16()?,
                sha256_of_onion: c.array()?,
            },
            None,
        ),
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "htlc.inbound",
            })
        }
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
                put_inbound(out, inbound);
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
        1 => {
            let kind = k.u8()?;
            let (inbound, inline) = get_inbound(&mut k, kind)?;
            let (onion, place) = if kind == INBOUND_V0_PAYLOAD {
                (inline, OnionPlace::Here)
            } else if kind == INBOUND_V0_BAD_ONION {
                (None, OnionPlace::Here)
            } else {
                get_onion_flag(&mut k)?
            };
            (HtlcKind::Received(inbound), onion, place)
        }
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
