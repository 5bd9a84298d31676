//! Field encodings shared by the records: keys, points, scripts, the
//! pieces of HTLCs and forwards, closure reasons, transactions.

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{OutPoint, ScriptBuf, Transaction, Txid};

use crate::channel::htlc::{HtlcSource, PrevHop, Removal, SessionKeys};
use crate::channel::SideParams;
use crate::error::DecodeError;
use crate::event::ClosureReason;
use crate::message::{OnionPacket, ONION_PACKET_LEN};
use crate::onion::{Failure, FailureCode};
use crate::persist::tlv::{put_bytes, Cursor};
use crate::types::{ChannelId, NodeId, PaymentHash, PaymentPreimage};

pub(super) fn put_pubkey(out: &mut Vec<u8>, pk: &PublicKey) {
    out.extend_from_slice(&pk.serialize());
}

pub(super) fn get_pubkey(
    c: &mut Cursor<'_>,
    field: &'static str,
) -> Result<PublicKey, DecodeError> {
    PublicKey::from_slice(c.take(33)?).map_err(|_| DecodeError::InvalidPublicKey { field })
}

pub(super) fn put_opt_pubkey(out: &mut Vec<u8>, pk: &Option<PublicKey>) {
    match pk {
        Some(pk) => {
            out.push(1);
            put_pubkey(out, pk);
        }
        None => out.push(0),
    }
}

pub(super) fn get_opt_pubkey(
    c: &mut Cursor<'_>,
    field: &'static str,
) -> Result<Option<PublicKey>, DecodeError> {
    Ok(if c.bool()? {
        Some(get_pubkey(c, field)?)
    } else {
        None
    })
}

pub(super) fn put_signature(out: &mut Vec<u8>, sig: &Signature) {
    out.extend_from_slice(&sig.serialize_compact());
}

pub(super) fn get_signature(
    c: &mut Cursor<'_>,
    field: &'static str,
) -> Result<Signature, DecodeError> {
    Signature::from_compact(c.take(64)?).map_err(|_| DecodeError::InvalidSignature { field })
}

pub(super) fn put_onion(out: &mut Vec<u8>, onion: &OnionPacket) {
    out.extend_from_slice(&onion.0[..]);
}

pub(super) fn get_onion(c: &mut Cursor<'_>) -> Result<OnionPacket, DecodeError> {
    Ok(OnionPacket(Box::new(c.array::<ONION_PACKET_LEN>()?)))
}

/// A node id: the 33 bytes of its compressed key (what `put_pubkey` writes).
pub(super) fn get_node(c: &mut Cursor<'_>, field: &'static str) -> Result<NodeId, DecodeError> {
    Ok(NodeId::from(&get_pubkey(c, field)?))
}

pub(super) fn put_prev_hop(out: &mut Vec<u8>, p: &PrevHop) {
    out.extend_from_slice(&p.node_id.0);
    out.extend_from_slice(&p.channel_id.0);
    out.extend_from_slice(&p.htlc_id.to_be_bytes());
    out.extend_from_slice(&p.amount_msat.to_be_bytes());
}

pub(super) fn get_prev_hop(c: &mut Cursor<'_>) -> Result<PrevHop, DecodeError> {
    Ok(PrevHop {
        node_id: get_node(c, "prev_hop.node_id")?,
        channel_id: ChannelId(c.array()?),
        htlc_id: c.u64()?,
        amount_msat: c.u64()?,
    })
}

/// Source kinds: 0 is version 0.1's local payment (fee only); 2 today's
/// (fee, then the onion's session key and route); 1 a forward.
pub(super) fn put_source(out: &mut Vec<u8>, source: &HtlcSource) {
    match source {
        HtlcSource::Local {
            fee_msat,
            onion_keys: None,
        } => {
            out.push(0);
            out.extend_from_slice(&fee_msat.to_be_bytes());
        }
        HtlcSource::Local {
            fee_msat,
            onion_keys: Some(keys),
        } => {
            out.push(2);
            out.extend_from_slice(&fee_msat.to_be_bytes());
            out.extend_from_slice(&keys.session_key.secret_bytes());
            out.extend_from_slice(&(keys.path.len() as u16).to_be_bytes());
            for node in &keys.path {
                put_pubkey(out, node);
            }
        }
        HtlcSource::Forwarded(prev) => {
            out.push(1);
            put_prev_hop(out, prev);
        }
    }
}

pub(super) fn get_source(c: &mut Cursor<'_>) -> Result<HtlcSource, DecodeError> {
    match c.u8()? {
        0 => Ok(HtlcSource::Local {
            fee_msat: c.u64()?,
            onion_keys: None,
        }),
        1 => Ok(HtlcSource::Forwarded(get_prev_hop(c)?)),
        2 => {
            let fee_msat = c.u64()?;
            let session_key = SecretKey::from_slice(&c.array::<32>()?).map_err(|_| {
                DecodeError::InvalidValue {
                    field: "htlc.source.session_key",
                }
            })?;
            let hops = c.u16()?;
            let path = (0..hops)
                .map(|_| get_pubkey(c, "htlc.source.path"))
                .collect::<Result<_, _>>()?;
            Ok(HtlcSource::Local {
                fee_msat,
                onion_keys: Some(SessionKeys { session_key, path }),
            })
        }
        _ => Err(DecodeError::InvalidValue {
            field: "htlc.source",
        }),
    }
}

pub(super) fn put_side(out: &mut Vec<u8>, s: &SideParams) {
    for v in [
        s.dust_limit_sat,
        s.max_htlc_value_in_flight_msat,
        s.channel_reserve_sat,
        s.htlc_minimum_msat,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&s.to_self_delay.to_be_bytes());
    out.extend_from_slice(&s.max_accepted_htlcs.to_be_bytes());
}

pub(super) fn get_side(mut c: Cursor<'_>) -> Result<SideParams, DecodeError> {
    let side = SideParams {
        dust_limit_sat: c.u64()?,
        max_htlc_value_in_flight_msat: c.u64()?,
        channel_reserve_sat: c.u64()?,
        htlc_minimum_msat: c.u64()?,
        to_self_delay: c.u16()?,
        max_accepted_htlcs: c.u16()?,
    };
    c.end()?;
    Ok(side)
}

pub(super) fn put_script(out: &mut Vec<u8>, s: &Option<ScriptBuf>) {
    match s {
        Some(s) => {
            out.push(1);
            put_bytes(out, s.as_bytes());
        }
        None => out.push(0),
    }
}

pub(super) fn get_script(c: &mut Cursor<'_>) -> Result<Option<ScriptBuf>, DecodeError> {
    Ok(if c.bool()? {
        Some(ScriptBuf::from_bytes(c.bytes()?.to_vec()))
    } else {
        None
    })
}

pub(super) fn put_removal(out: &mut Vec<u8>, r: &Removal) {
    match r {
        Removal::Fulfill(p) => {
            out.push(0);
            out.extend_from_slice(&p.0);
        }
        Removal::Fail(reason) => {
            out.push(1);
            put_bytes(out, reason);
        }
        Removal::Malformed {
            code,
            sha256_of_onion,
        } => {
            out.push(2);
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(sha256_of_onion);
        }
    }
}

pub(super) fn get_removal(c: &mut Cursor<'_>) -> Result<Removal, DecodeError> {
    match c.u8()? {
        0 => Ok(Removal::Fulfill(PaymentPreimage(c.array()?))),
        1 => Ok(Removal::Fail(c.bytes()?.to_vec())),
        2 => Ok(Removal::Malformed {
            code: c.u16()?,
            sha256_of_onion: c.array()?,
        }),
        _ => Err(DecodeError::InvalidValue {
            field: "htlc.removal",
        }),
    }
}

/// A failure on its way back (kinds: 0 one decided here, with its code and
/// data; 1 a failure onion from downstream; 2 a downstream
/// `update_fail_malformed_htlc`).
pub(super) fn put_failure(out: &mut Vec<u8>, f: &Failure) {
    match f {
        Failure::Local { code, data } => {
            out.push(0);
            out.extend_from_slice(&code.code().to_be_bytes());
            put_bytes(out, data);
        }
        Failure::Onion(bytes) => {
            out.push(1);
            put_bytes(out, bytes);
        }
        Failure::Malformed {
            code,
            sha256_of_onion,
        } => {
            out.push(2);
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(sha256_of_onion);
        }
    }
}

pub(super) fn get_failure(c: &mut Cursor<'_>) -> Result<Failure, DecodeError> {
    match c.u8()? {
        0 => Ok(Failure::Local {
            code: FailureCode::from_code(c.u16()?),
            data: c.bytes()?.to_vec(),
        }),
        1 => Ok(Failure::Onion(c.bytes()?.to_vec())),
        2 => Ok(Failure::Malformed {
            code: c.u16()?,
            sha256_of_onion: c.array()?,
        }),
        _ => Err(DecodeError::InvalidValue { field: "failure" }),
    }
}

pub(super) fn put_opt_preimage(out: &mut Vec<u8>, p: &Option<PaymentPreimage>) {
    match p {
        Some(p) => {
            out.push(1);
            out.extend_from_slice(&p.0);
        }
        None => out.push(0),
    }
}

pub(super) fn get_opt_preimage(c: &mut Cursor<'_>) -> Result<Option<PaymentPreimage>, DecodeError> {
    Ok(if c.bool()? {
        Some(PaymentPreimage(c.array()?))
    } else {
        None
    })
}

pub(super) fn get_hash(c: &mut Cursor<'_>) -> Result<PaymentHash, DecodeError> {
    Ok(PaymentHash(c.array()?))
}

pub(super) fn put_transaction(out: &mut Vec<u8>, tx: &Transaction) {
    put_bytes(out, &serialize(tx));
}

pub(super) fn get_transaction(
    c: &mut Cursor<'_>,
    field: &'static str,
) -> Result<Transaction, DecodeError> {
    deserialize(c.bytes()?).map_err(|_| DecodeError::InvalidValue { field })
}

pub(super) fn put_text(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

pub(super) fn get_text(c: &mut Cursor<'_>) -> Result<String, DecodeError> {
    String::from_utf8(c.bytes()?.to_vec()).map_err(|_| DecodeError::InvalidValue {
        field: "event.text",
    })
}

pub(super) fn put_reason(out: &mut Vec<u8>, reason: &ClosureReason) {
    match reason {
        ClosureReason::Cooperative { closing_tx_fee_sat } => {
            out.push(0);
            out.extend_from_slice(&closing_tx_fee_sat.to_be_bytes());
        }
        ClosureReason::LocallyForceClosed => out.push(1),
        ClosureReason::CounterpartyError { message } => {
            out.push(2);
            put_text(out, message);
        }
        ClosureReason::ReestablishFailed { reason } => {
            out.push(3);
            put_text(out, reason);
        }
        ClosureReason::LostData => out.push(4),
        ClosureReason::FundingNotSigned => out.push(5),
        ClosureReason::DisconnectedWhileUnfunded => out.push(6),
        ClosureReason::FundingTimedOut => out.push(7),
        ClosureReason::UnfundedTimedOut => out.push(14),
        ClosureReason::HtlcTimedOut {
            payment_hash,
            cltv_expiry,
        } => {
            out.push(8);
            out.extend_from_slice(&payment_hash.0);
            out.extend_from_slice(&cltv_expiry.to_be_bytes());
        }
        ClosureReason::HtlcClaimDeadline {
            payment_hash,
            cltv_expiry,
        } => {
            out.push(9);
            out.extend_from_slice(&payment_hash.0);
            out.extend_from_slice(&cltv_expiry.to_be_bytes());
        }
        ClosureReason::ClosingNegotiationFailed { their_fee_sat } => {
            out.push(10);
            out.extend_from_slice(&their_fee_sat.to_be_bytes());
        }
        ClosureReason::FunderCannotPayFee { feerate_per_kw } => {
            out.push(11);
            out.extend_from_slice(&feerate_per_kw.to_be_bytes());
        }
        ClosureReason::ClosingNegotiationTimedOut => out.push(12),
        ClosureReason::UnacceptableFeeUpdate { feerate_per_kw } => {
            out.push(13);
            out.extend_from_slice(&feerate_per_kw.to_be_bytes());
        }
        ClosureReason::RevokedHtlcsPastBound => out.push(15),
    }
}

pub(super) fn get_reason(c: &mut Cursor<'_>) -> Result<ClosureReason, DecodeError> {
    Ok(match c.u8()? {
        0 => ClosureReason::Cooperative {
            closing_tx_fee_sat: c.u64()?,
        },
        1 => ClosureReason::LocallyForceClosed,
        2 => ClosureReason::CounterpartyError {
            message: get_text(c)?,
        },
        3 => ClosureReason::ReestablishFailed {
            reason: get_text(c)?,
        },
        4 => ClosureReason::LostData,
        5 => ClosureReason::FundingNotSigned,
        6 => ClosureReason::DisconnectedWhileUnfunded,
        7 => ClosureReason::FundingTimedOut,
        14 => ClosureReason::UnfundedTimedOut,
        8 => ClosureReason::HtlcTimedOut {
            payment_hash: get_hash(c)?,
            cltv_expiry: c.u32()?,
        },
        9 => ClosureReason::HtlcClaimDeadline {
            payment_hash: get_hash(c)?,
            cltv_expiry: c.u32()?,
        },
        10 => ClosureReason::ClosingNegotiationFailed {
            their_fee_sat: c.u64()?,
        },
        11 => ClosureReason::FunderCannotPayFee {
            feerate_per_kw: c.u32()?,
        },
        12 => ClosureReason::ClosingNegotiationTimedOut,
        13 => ClosureReason::UnacceptableFeeUpdate {
            feerate_per_kw: c.u32()?,
        },
        15 => ClosureReason::RevokedHtlcsPastBound,
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "closure_reason",
            })
        }
    })
}

pub(super) fn put_outpoint(out: &mut Vec<u8>, o: &OutPoint) {
    out.extend_from_slice(&o.txid.to_byte_array());
    out.extend_from_slice(&o.vout.to_be_bytes());
}

pub(super) fn get_outpoint(c: &mut Cursor<'_>) -> Result<OutPoint, DecodeError> {
    Ok(OutPoint::new(Txid::from_byte_array(c.array()?), c.u32()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PaymentHash;

    /// Every closure reason reads back as written; an unknown tag is an error.
    #[test]
    fn closure_reasons_read_back() {
        let reasons = [
            ClosureReason::Cooperative {
                closing_tx_fee_sat: 7,
            },
            ClosureReason::LocallyForceClosed,
            ClosureReason::CounterpartyError {
                message: "bye".into(),
            },
            ClosureReason::ReestablishFailed {
                reason: "numbers".into(),
            },
            ClosureReason::LostData,
            ClosureReason::FundingNotSigned,
            ClosureReason::DisconnectedWhileUnfunded,
            ClosureReason::FundingTimedOut,
            ClosureReason::UnfundedTimedOut,
            ClosureReason::HtlcTimedOut {
                payment_hash: PaymentHash([1; 32]),
                cltv_expiry: 9,
            },
            ClosureReason::HtlcClaimDeadline {
                payment_hash: PaymentHash([2; 32]),
                cltv_expiry: 10,
            },
            ClosureReason::ClosingNegotiationFailed { their_fee_sat: 11 },
            ClosureReason::FunderCannotPayFee {
                feerate_per_kw: 5_000,
            },
            ClosureReason::ClosingNegotiationTimedOut,
            ClosureReason::UnacceptableFeeUpdate { feerate_per_kw: 99 },
            ClosureReason::RevokedHtlcsPastBound,
        ];
        for reason in reasons {
            let mut out = Vec::new();
            put_reason(&mut out, &reason);
            let mut c = Cursor::new(&out, "reason");
            assert_eq!(get_reason(&mut c), Ok(reason));
            assert!(c.is_empty());
        }
        let mut c = Cursor::new(&[16], "reason");
        assert!(get_reason(&mut c).is_err());
    }
}
