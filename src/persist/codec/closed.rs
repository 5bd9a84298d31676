//! A closed channel's record (`Key::Closed`): 0 channel id, 2 counterparty,
//! 4 funding (outpoint, value), *5 short channel id*, 6 keys id, 8 closure
//! reason, *9 transaction to broadcast*, 10 outputs that pay us, 12 HTLCs
//! still to settle on chain, 14 flags, *15 the peer's basepoints*,
//! 16 the peer's revealed secrets, *17 the peer's unrevoked commitment
//! points*, *19 the two `to_self_delay`s*, *21 our broadcast commitment
//! (number, point, feerate)*.

use super::ended::{get_revoked_htlcs, put_revoked_htlcs};
use bitcoin::ScriptBuf;

use super::channel::{get_secrets, put_secrets};
use super::fields::{
    get_hash, get_opt_preimage, get_outpoint, get_pubkey, get_reason, get_signature, get_source,
    get_transaction, put_opt_preimage, put_outpoint, put_pubkey, put_reason, put_signature,
    put_source, put_transaction,
};
use crate::channel::closed::{ClosedHtlc, HtlcRoute};
use crate::channel::ClosedChannel;
use crate::error::DecodeError;
use crate::onchain::{
    CounterpartyCommitment, HolderCommitment, HtlcDirection, OnChainAction, OnChainHtlc,
    SpendableOutput, SpendableOutputKind,
};
use crate::onion::payload::PaymentData;
use crate::persist::tlv::{put_bytes, Cursor, TlvReader, TlvWriter};
use crate::transactions::ChannelPublicKeys;
use crate::types::{ChannelId, PaymentSecret, ShortChannelId};

mod closed_type {
    pub const CHANNEL_ID: u64 = 0;
    pub const COUNTERPARTY: u64 = 2;
    pub const FUNDING: u64 = 4;
    pub const SHORT_CHANNEL_ID: u64 = 5;
    pub const KEYS_ID: u64 = 6;
    pub const REASON: u64 = 8;
    pub const TRANSACTION: u64 = 9;
    pub const OUTPUTS: u64 = 10;
    pub const HTLCS: u64 = 12;
    pub const FLAGS: u64 = 14;
    pub const THEIR_KEYS: u64 = 15;
    pub const THEIR_SECRETS: u64 = 16;
    /// Odd: a reader that predates it may skip it (it adds what the chain
    /// layer needs; nothing else reads it).
    pub const THEIR_POINTS: u64 = 17;
    /// Odd, likewise.
    pub const TO_SELF_DELAYS: u64 = 19;
    /// Odd, likewise.
    pub const HOLDER_COMMITMENT: u64 = 21;
    /// Odd: the secret and total of each payment to us still awaiting its
    /// preimage (a restart rebuilds its set of parts from them). Without
    /// it (older records) such a part joins its set as it can.
    pub const PAYMENT_DATA: u64 = 23;
    /// Odd: the height of `funding_created` for a channel the peer opened
    /// whose funding we never saw confirmed. An older reader keeps such a
    /// record as any other.
    pub const UNCONFIRMED_SINCE: u64 = 25;
    /// Odd: the HTLCs a revoked commitment of the peer's may hold outputs
    /// for (`revoked_htlcs`). An older reader loses only their listing.
    pub const REVOKED_HTLCS: u64 = 27;
    pub const ALL: [u64; 18] = [
        CHANNEL_ID,
        COUNTERPARTY,
        FUNDING,
        SHORT_CHANNEL_ID,
        KEYS_ID,
        REASON,
        TRANSACTION,
        OUTPUTS,
        HTLCS,
        FLAGS,
        THEIR_KEYS,
        THEIR_SECRETS,
        THEIR_POINTS,
        TO_SELF_DELAYS,
        HOLDER_COMMITMENT,
        PAYMENT_DATA,
        UNCONFIRMED_SINCE,
        REVOKED_HTLCS,
    ];
}

const FLAG_OUTPUTS_SWEPT: u8 = 1;

fn put_output(out: &mut Vec<u8>, o: &SpendableOutput) {
    match &o.outpoint {
        Some(p) => {
            out.push(1);
            put_outpoint(out, p);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&o.value_sat.to_be_bytes());
    put_bytes(out, o.script_pubkey.as_bytes());
    match &o.kind {
        SpendableOutputKind::StaticPayment => out.push(0),
        SpendableOutputKind::DelayedPayment {
            witness_script,
            to_self_delay,
            per_commitment_point,
        } => {
            out.push(1);
            put_bytes(out, witness_script.as_bytes());
            out.extend_from_slice(&to_self_delay.to_be_bytes());
            put_pubkey(out, per_commitment_point);
        }
    }
}

fn get_output(
    c: &mut Cursor<'_>,
    channel_id: ChannelId,
    keys_id: [u8; 32],
) -> Result<SpendableOutput, DecodeError> {
    // (The keys id follows in `get_outputs`.)
    let outpoint = if c.bool()? {
        Some(get_outpoint(c)?)
    } else {
        None
    };
    let value_sat = c.u64()?;
    let script_pubkey = ScriptBuf::from_bytes(c.bytes()?.to_vec());
    let kind = match c.u8()? {
        0 => SpendableOutputKind::StaticPayment,
        1 => SpendableOutputKind::DelayedPayment {
            witness_script: ScriptBuf::from_bytes(c.bytes()?.to_vec()),
            to_self_delay: c.u16()?,
            per_commitment_point: get_pubkey(c, "output.per_commitment_point")?,
        },
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "output.kind",
            })
        }
    };
    Ok(SpendableOutput {
        channel_id,
        outpoint,
        value_sat,
        script_pubkey,
        kind,
        keys_id,
    })
}

/// An unresolved HTLC's public fields (also in `OnChainResolutionRequired`).
pub(super) fn put_closed_htlc_info(out: &mut Vec<u8>, i: &OnChainHtlc) {
    out.extend_from_slice(&i.htlc_id.to_be_bytes());
    out.push(match i.direction {
        HtlcDirection::Offered => 0,
        HtlcDirection::Received => 1,
    });
    out.extend_from_slice(&i.payment_hash.0);
    out.extend_from_slice(&i.amount_msat.to_be_bytes());
    out.extend_from_slice(&i.cltv_expiry.to_be_bytes());
    put_opt_preimage(out, &i.payment_preimage);
    match i.commitment_output {
        Some(vout) => {
            out.push(1);
            out.extend_from_slice(&vout.to_be_bytes());
        }
        None => out.push(0),
    }
    match &i.counterparty_htlc_signature {
        Some(sig) => {
            out.push(1);
            put_signature(out, sig);
        }
        None => out.push(0),
    }
    out.push(match i.action {
        OnChainAction::TimeOut => 0,
        OnChainAction::Claim => 1,
        OnChainAction::AwaitPreimage => 2,
    });
}

fn put_htlc(out: &mut Vec<u8>, h: &ClosedHtlc) {
    put_closed_htlc_info(out, &h.info);
    match &h.route {
        HtlcRoute::Offered(source) => {
            out.push(0);
            put_source(out, source);
        }
        HtlcRoute::Received { pays_us } => {
            out.push(1);
            out.push(u8::from(*pays_us));
        }
    }
}

/// A list of outputs (in a record or an event).
pub(super) fn put_outputs(out: &mut Vec<u8>, outputs: &[SpendableOutput]) {
    out.extend_from_slice(&(outputs.len() as u32).to_be_bytes());
    for o in outputs {
        put_output(out, o);
        out.extend_from_slice(&o.keys_id);
    }
}

/// Reads what [`put_outputs`] wrote.
pub(super) fn get_outputs(
    c: &mut Cursor<'_>,
    channel_id: ChannelId,
) -> Result<Vec<SpendableOutput>, DecodeError> {
    let mut outputs = Vec::new();
    for _ in 0..c.count(46)? {
        let mut o = get_output(c, channel_id, [0; 32])?;
        o.keys_id = c.array()?;
        outputs.push(o);
    }
    Ok(outputs)
}

/// Reads what [`put_closed_htlc_info`] wrote.
pub(super) fn get_closed_htlc_info(
    c: &mut Cursor<'_>,
    channel_id: ChannelId,
) -> Result<OnChainHtlc, DecodeError> {
    let htlc_id = c.u64()?;
    let direction = match c.u8()? {
        0 => HtlcDirection::Offered,
        1 => HtlcDirection::Received,
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "closed.htlc.direction",
            })
        }
    };
    let payment_hash = get_hash(c)?;
    let amount_msat = c.u64()?;
    let cltv_expiry = c.u32()?;
    let payment_preimage = get_opt_preimage(c)?;
    let commitment_output = if c.bool()? { Some(c.u32()?) } else { None };
    let counterparty_htlc_signature = if c.bool()? {
        Some(get_signature(c, "closed.htlc.signature")?)
    } else {
        None
    };
    let action = match c.u8()? {
        0 => OnChainAction::TimeOut,
        1 => OnChainAction::Claim,
        2 => OnChainAction::AwaitPreimage,
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "closed.htlc.action",
            })
        }
    };
    if payment_preimage.is_some_and(|p| !p.matches(&payment_hash)) {
        return Err(DecodeError::InvalidValue {
            field: "closed.htlc.payment_preimage",
        });
    }
    Ok(OnChainHtlc {
        channel_id,
        htlc_id,
        direction,
        payment_hash,
        amount_msat,
        cltv_expiry,
        payment_preimage,
        commitment_output,
        counterparty_htlc_signature,
        action,
    })
}

fn get_htlc(c: &mut Cursor<'_>, channel_id: ChannelId) -> Result<ClosedHtlc, DecodeError> {
    let info = get_closed_htlc_info(c, channel_id)?;
    let route = match (c.u8()?, info.direction) {
        (0, HtlcDirection::Offered) => HtlcRoute::Offered(get_source(c)?),
        (1, HtlcDirection::Received) => HtlcRoute::Received { pays_us: c.bool()? },
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "closed.htlc.route",
            })
        }
    };
    Ok(ClosedHtlc {
        info,
        route,
        payment_data: None,
    })
}

/// Encodes a closed channel's record.
pub(crate) fn encode_closed(r: &ClosedChannel) -> Vec<u8> {
    use closed_type::*;
    let mut w = TlvWriter::new();
    w.record(CHANNEL_ID, &r.channel_id.0)
        .record(COUNTERPARTY, &r.counterparty.serialize())
        .with(FUNDING, |out| {
            put_outpoint(out, &r.funding_outpoint);
            out.extend_from_slice(&r.funding_sat.to_be_bytes());
        });
    if let Some(scid) = r.short_channel_id {
        w.record(SHORT_CHANNEL_ID, &scid.to_u64().to_be_bytes());
    }
    w.record(KEYS_ID, &r.keys_id)
        .with(REASON, |out| put_reason(out, &r.reason));
    if let Some(tx) = &r.transaction {
        w.with(TRANSACTION, |out| put_transaction(out, tx));
    }
    w.with(OUTPUTS, |out| put_outputs(out, &r.outputs))
        .with(HTLCS, |out| {
            out.extend_from_slice(&(r.htlcs.len() as u32).to_be_bytes());
            for h in &r.htlcs {
                put_htlc(out, h);
            }
        })
        .record(
            FLAGS,
            &[if r.outputs_swept {
                FLAG_OUTPUTS_SWEPT
            } else {
                0
            }],
        );
    if let Some(k) = &r.their_keys {
        w.with(THEIR_KEYS, |out| {
            for pk in [
                k.funding_pubkey,
                k.revocation_basepoint,
                k.payment_basepoint,
                k.delayed_payment_basepoint,
                k.htlc_basepoint,
            ] {
                put_pubkey(out, &pk);
            }
        });
    }
    w.with(THEIR_SECRETS, |out| put_secrets(out, &r.their_secrets));
    if !r.their_points.is_empty() {
        w.with(THEIR_POINTS, |out| {
            out.push(r.their_points.len() as u8);
            for c in &r.their_points {
                out.extend_from_slice(&c.commitment_number.to_be_bytes());
                put_pubkey(out, &c.per_commitment_point);
            }
        });
    }
    if let Some((holder, counterparty)) = r.to_self_delays {
        w.with(TO_SELF_DELAYS, |out| {
            out.extend_from_slice(&holder.to_be_bytes());
            out.extend_from_slice(&counterparty.to_be_bytes());
        });
    }
    if let Some(h) = &r.holder_commitment {
        w.with(HOLDER_COMMITMENT, |out| {
            out.extend_from_slice(&h.commitment_number.to_be_bytes());
            put_pubkey(out, &h.per_commitment_point);
            out.extend_from_slice(&h.feerate_per_kw.to_be_bytes());
        });
    }
    let with_data: Vec<(u64, PaymentData)> = (r.htlcs.iter())
        .filter_map(|h| h.payment_data.map(|d| (h.info.htlc_id, d)))
        .collect();
    if !with_data.is_empty() {
        w.with(PAYMENT_DATA, |out| {
            out.extend_from_slice(&(with_data.len() as u32).to_be_bytes());
            for (htlc_id, d) in &with_data {
                out.extend_from_slice(&htlc_id.to_be_bytes());
                out.extend_from_slice(&d.payment_secret.0);
                out.extend_from_slice(&d.total_msat.to_be_bytes());
            }
        });
    }
    if let Some(height) = r.unconfirmed_since {
        w.record(UNCONFIRMED_SINCE, &height.to_be_bytes());
    }
    if !r.revoked_htlcs.is_empty() {
        w.with(REVOKED_HTLCS, |out| {
            put_revoked_htlcs(out, &r.revoked_htlcs)
        });
    }
    w.finish()
}

/// Reads the `PAYMENT_DATA` record into the record's HTLCs: each entry
/// names a payment to us the record holds, once.
fn get_payment_data(c: &mut Cursor<'_>, htlcs: &mut [ClosedHtlc]) -> Result<(), DecodeError> {
    const ENTRY_LEN: usize = 8 + 32 + 8;
    let bad = DecodeError::InvalidValue {
        field: "closed.payment_data",
    };
    for _ in 0..c.count(ENTRY_LEN)? {
        let htlc_id = c.u64()?;
        let data = PaymentData {
            payment_secret: PaymentSecret(c.array()?),
            total_msat: c.u64()?,
        };
        let h = htlcs
            .iter_mut()
            .find(|h| {
                h.info.htlc_id == htlc_id && h.route == (HtlcRoute::Received { pays_us: true })
            })
            .ok_or(bad.clone())?;
        if h.payment_data.replace(data).is_some() {
            return Err(bad);
        }
    }
    c.end()
}

/// The fewest bytes one HTLC of a closed record takes: a received HTLC with
/// no preimage, commitment output or signature (id 8, direction 1, hash
/// 32, amount 8, expiry 4, three absent options 1 each, action 1, route 1,
/// `pays_us` 1).
const MIN_HTLC_LEN: usize = 8 + 1 + 32 + 8 + 4 + 3 + 1 + 1 + 1;

/// Decodes a closed channel's record.
pub(crate) fn decode_closed(bytes: &[u8]) -> Result<ClosedChannel, DecodeError> {
    use closed_type::*;
    let r = TlvReader::parse(bytes, &ALL, "closed channel")?;
    let channel_id = ChannelId(r.cursor(CHANNEL_ID, "closed.channel_id")?.array()?);
    let counterparty = get_pubkey(
        &mut r.cursor(COUNTERPARTY, "closed.counterparty")?,
        "closed.counterparty",
    )?;
    let mut f = r.cursor(FUNDING, "closed.funding")?;
    let funding_outpoint = get_outpoint(&mut f)?;
    let funding_sat = f.u64()?;
    f.end()?;
    let keys_id: [u8; 32] = r.cursor(KEYS_ID, "closed.keys_id")?.array()?;
    let mut c = r.cursor(REASON, "closed.reason")?;
    let reason = get_reason(&mut c)?;
    c.end()?;
    let transaction = r
        .optional(TRANSACTION)
        .map(|v| {
            get_transaction(
                &mut Cursor::new(v, "closed.transaction"),
                "closed.transaction",
            )
        })
        .transpose()?;
    let mut c = r.cursor(OUTPUTS, "closed.outputs")?;
    let outputs = get_outputs(&mut c, channel_id)?;
    c.end()?;
    let mut c = r.cursor(HTLCS, "closed.htlcs")?;
    let mut htlcs = Vec::new();
    for _ in 0..c.count(MIN_HTLC_LEN)? {
        htlcs.push(get_htlc(&mut c, channel_id)?);
    }
    c.end()?;
    let mut c = r.cursor(FLAGS, "closed.flags")?;
    let flags = c.u8()?;
    c.end()?;
    if flags & !FLAG_OUTPUTS_SWEPT != 0 {
        return Err(DecodeError::InvalidValue {
            field: "closed.flags",
        });
    }
    let their_keys = r
        .optional(THEIR_KEYS)
        .map(|v| {
            let mut c = Cursor::new(v, "closed.their_keys");
            let keys = ChannelPublicKeys {
                funding_pubkey: get_pubkey(&mut c, "their_keys.funding_pubkey")?,
                revocation_basepoint: get_pubkey(&mut c, "their_keys.revocation_basepoint")?,
                payment_basepoint: get_pubkey(&mut c, "their_keys.payment_basepoint")?,
                delayed_payment_basepoint: get_pubkey(
                    &mut c,
                    "their_keys.delayed_payment_basepoint",
                )?,
                htlc_basepoint: get_pubkey(&mut c, "their_keys.htlc_basepoint")?,
            };
            c.end()?;
            Ok::<_, DecodeError>(keys)
        })
        .transpose()?;
    let mut c = r.cursor(THEIR_SECRETS, "closed.their_secrets")?;
    let their_secrets = get_secrets(&mut c)?;
    let their_points = match r.optional(THEIR_POINTS) {
        None => Vec::new(),
        Some(v) => {
            let mut c = Cursor::new(v, "closed.their_points");
            let n = c.u8()?;
            // At most two: the latest and the one before it.
            if n == 0 || n > 2 {
                return Err(DecodeError::InvalidValue {
                    field: "closed.their_points",
                });
            }
            let mut points = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                points.push(CounterpartyCommitment {
                    commitment_number: c.u64()?,
                    per_commitment_point: get_pubkey(&mut c, "closed.their_points")?,
                });
            }
            c.end()?;
            points
        }
    };
    let to_self_delays = r
        .optional(TO_SELF_DELAYS)
        .map(|v| {
            let mut c = Cursor::new(v, "closed.to_self_delays");
            let delays = (c.u16()?, c.u16()?);
            c.end()?;
            Ok::<_, DecodeError>(delays)
        })
        .transpose()?;
    if let Some(v) = r.optional(PAYMENT_DATA) {
        get_payment_data(&mut Cursor::new(v, "closed.payment_data"), &mut htlcs)?;
    }
    let holder_commitment = r
        .optional(HOLDER_COMMITMENT)
        .map(|v| {
            let mut c = Cursor::new(v, "closed.holder_commitment");
            let h = HolderCommitment {
                commitment_number: c.u64()?,
                per_commitment_point: get_pubkey(&mut c, "closed.holder_commitment")?,
                feerate_per_kw: c.u32()?,
            };
            c.end()?;
            Ok::<_, DecodeError>(h)
        })
        .transpose()?;
    Ok(ClosedChannel {
        channel_id,
        counterparty,
        funding_outpoint,
        funding_sat,
        short_channel_id: r
            .optional(SHORT_CHANNEL_ID)
            .map(|v| {
                Cursor::new(v, "closed.short_channel_id")
                    .u64()
                    .map(ShortChannelId::from_u64)
            })
            .transpose()?,
        keys_id,
        reason,
        transaction,
        outputs,
        htlcs,
        outputs_swept: flags & FLAG_OUTPUTS_SWEPT != 0,
        their_keys,
        their_secrets,
        their_points,
        to_self_delays,
        holder_commitment,
        unconfirmed_since: r
            .optional(UNCONFIRMED_SINCE)
            .map(|v| {
                let mut c = Cursor::new(v, "closed.unconfirmed_since");
                let height = c.u32()?;
                c.end()?;
                Ok::<_, DecodeError>(height)
            })
            .transpose()?,
        revoked_htlcs: r
            .optional(REVOKED_HTLCS)
            .map(|v| get_revoked_htlcs(&mut Cursor::new(v, "closed.revoked_htlcs")))
            .transpose()?
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ClosureReason;
    use crate::keys::CounterpartyCommitmentSecrets;
    use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
    use bitcoin::OutPoint;

    /// A force-closed record with `htlcs` and nothing else optional.
    fn record(
        channel_id: ChannelId,
        counterparty: PublicKey,
        htlcs: Vec<ClosedHtlc>,
    ) -> ClosedChannel {
        ClosedChannel {
            channel_id,
            counterparty,
            funding_outpoint: OutPoint::null(),
            funding_sat: 100_000,
            short_channel_id: None,
            keys_id: [4; 32],
            reason: ClosureReason::LocallyForceClosed,
            transaction: None,
            outputs: Vec::new(),
            htlcs,
            outputs_swept: false,
            their_keys: None,
            their_secrets: CounterpartyCommitmentSecrets::new(),
            their_points: Vec::new(),
            to_self_delays: None,
            holder_commitment: None,
            unconfirmed_since: None,
            revoked_htlcs: Vec::new(),
        }
    }

    /// The smallest HTLC a closed record can hold (found by the adversarial
    /// suite: a record with one such HTLC did not read back).
    #[test]
    fn a_bare_received_htlc_reads_back() {
        let id = ChannelId([3; 32]);
        let secret = SecretKey::from_slice(&[1; 32]).unwrap();
        let key = PublicKey::from_secret_key(&Secp256k1::new(), &secret);
        let htlc = ClosedHtlc {
            info: OnChainHtlc {
                channel_id: id,
                htlc_id: 7,
                direction: HtlcDirection::Received,
                payment_hash: crate::types::PaymentHash([9; 32]),
                amount_msat: 1000,
                cltv_expiry: 500,
                payment_preimage: None,
                commitment_output: None,
                counterparty_htlc_signature: None,
                action: OnChainAction::AwaitPreimage,
            },
            route: HtlcRoute::Received { pays_us: false },
            payment_data: None,
        };
        let record = record(id, key, vec![htlc]);
        let bytes = encode_closed(&record);
        assert_eq!(decode_closed(&bytes), Ok(record));
    }

    /// A payment to us keeps its secret and total (odd record 23), an
    /// unconfirmed inbound channel its funding height (odd record 25); a
    /// record without them (as older versions wrote it) reads as none; an
    /// entry naming an HTLC that is no payment to us, or named twice, is
    /// an error.
    #[test]
    fn payment_data_of_parts_on_chain_reads_back() {
        let id = ChannelId([6; 32]);
        let key = PublicKey::from_secret_key(
            &Secp256k1::new(),
            &SecretKey::from_slice(&[2; 32]).unwrap(),
        );
        let htlc = |htlc_id, pays_us| ClosedHtlc {
            info: OnChainHtlc {
                channel_id: id,
                htlc_id,
                direction: HtlcDirection::Received,
                payment_hash: crate::types::PaymentHash([9; 32]),
                amount_msat: 3_000_000,
                cltv_expiry: 500,
                payment_preimage: None,
                commitment_output: None,
                counterparty_htlc_signature: None,
                action: OnChainAction::AwaitPreimage,
            },
            route: HtlcRoute::Received { pays_us },
            payment_data: None,
        };
        let mut record = record(id, key, vec![htlc(1, true), htlc(2, false)]);
        let old = encode_closed(&record);
        record.htlcs[0].payment_data = Some(PaymentData {
            payment_secret: PaymentSecret([7; 32]),
            total_msat: 5_000_000,
        });
        record.unconfirmed_since = Some(800_123);
        let bytes = encode_closed(&record);
        assert_eq!(decode_closed(&bytes), Ok(record.clone()));
        let read = decode_closed(&old).unwrap();
        assert_eq!(
            (read.htlcs[0].payment_data, read.unconfirmed_since),
            (None, None)
        );
        let bad = DecodeError::InvalidValue {
            field: "closed.payment_data",
        };
        let mut forward = record.clone();
        forward.htlcs[0].route = HtlcRoute::Received { pays_us: false };
        let bytes = encode_closed(&forward);
        assert_eq!(decode_closed(&bytes), Err(bad.clone()));
        let mut twice = record.clone();
        twice.htlcs[1] = twice.htlcs[0].clone();
        let bytes = encode_closed(&twice);
        assert_eq!(decode_closed(&bytes), Err(bad));
    }

    /// The peer's unrevoked points and the two delays (odd records 17 and
    /// 19) read back; a record without them (as older versions wrote it)
    /// reads as none; a count of points other than 1 or 2 is an error.
    #[test]
    fn unrevoked_points_and_delays_read_back() {
        let key = |b| {
            PublicKey::from_secret_key(&Secp256k1::new(), &SecretKey::from_slice(&[b; 32]).unwrap())
        };
        let mut record = record(ChannelId([5; 32]), key(1), Vec::new());
        let old = encode_closed(&record);
        record.their_points = vec![
            CounterpartyCommitment {
                commitment_number: 8,
                per_commitment_point: key(2),
            },
            CounterpartyCommitment {
                commitment_number: 7,
                per_commitment_point: key(3),
            },
        ];
        record.to_self_delays = Some((144, 2016));
        record.holder_commitment = Some(HolderCommitment {
            commitment_number: 9,
            per_commitment_point: key(4),
            feerate_per_kw: 253,
        });
        let new = encode_closed(&record);
        assert_eq!(decode_closed(&new), Ok(record.clone()));
        let without = decode_closed(&old).unwrap();
        assert!(without.their_points.is_empty() && without.to_self_delays.is_none());
        assert!(without.holder_commitment.is_none());
        // A count of 3 (the TLV value starts with it).
        let mut w = TlvWriter::new();
        w.with(closed_type::THEIR_POINTS, |out| {
            out.push(3);
            for _ in 0..3 {
                out.extend_from_slice(&1u64.to_be_bytes());
                put_pubkey(out, &key(2));
            }
        });
        let extra = w.finish();
        let mut bad = old.clone();
        bad.extend_from_slice(&extra);
        assert!(decode_closed(&bad).is_err());
    }
}
