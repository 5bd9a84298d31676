//! A live channel's records: the header (everything but its HTLCs), and the
//! peer's signatures on our latest commitment.
//!
//! Two forms share one layout. In a persister the header carries, in
//! record 36, how many `Key::Htlc` records belong to it (and a version 0.1
//! reader, which does not know 36, refuses it instead of loading a channel
//! without its HTLCs). In whole-channel form (`ChannelStore::write`,
//! `ChannelStore::encode_channel`) the HTLCs are inline in record 32, as in
//! version 0.1, and the signatures in record 39. Both write the channel's
//! *durable view* (its state after a disconnection; see `store/durable.rs`).

use std::sync::Arc;

use arc_swap::ArcSwap;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::SecretKey;
use bitcoin::{OutPoint, Txid};

use super::ended::{get_revoked_htlcs, put_revoked_htlcs};
use super::fields::{
    get_opt_pubkey, get_outpoint, get_pubkey, get_script, get_side, get_signature, put_opt_pubkey,
    put_outpoint, put_pubkey, put_script, put_side, put_signature,
};
use super::htlc::{decode_htlc, encode_htlc, OnionPlace};
use crate::channel::htlc::HtlcState;
use crate::channel::signer::ChannelSigner;
use crate::channel::{Channel, FeeUpdate, HolderSignatures, Phase};
use crate::error::DecodeError;
use crate::event::{ChannelDetails, ForwardingPolicy};
use crate::keys::CounterpartyCommitmentSecrets;
use crate::persist::tlv::{put_bytes, Cursor, TlvReader, TlvWriter};
use crate::transactions::ChannelPublicKeys;
use crate::types::{ChannelId, ShortChannelId};

mod channel_type {
    pub const CHANNEL_ID: u64 = 0;
    pub const TEMPORARY_ID: u64 = 2;
    pub const COUNTERPARTY: u64 = 4;
    pub const FLAGS: u64 = 6;
    pub const PHASE: u64 = 8;
    pub const FUNDING: u64 = 10;
    pub const SHORT_CHANNEL_ID: u64 = 11;
    pub const KEYS_ID: u64 = 12;
    pub const THEIR_KEYS: u64 = 14;
    pub const OUR_PARAMS: u64 = 16;
    pub const THEIR_PARAMS: u64 = 18;
    pub const FEES: u64 = 20;
    pub const COMMITMENT_NUMBERS: u64 = 22;
    pub const THEIR_POINTS: u64 = 24;
    pub const THEIR_SECRETS: u64 = 26;
    pub const BALANCES: u64 = 28;
    pub const NEXT_HTLC_IDS: u64 = 30;
    pub const HTLCS: u64 = 32;
    pub const PENDING_FEE: u64 = 33;
    pub const SHUTDOWN: u64 = 34;
    /// Version 0.1 kept the closing fee it proposed; read and ignored.
    pub const CLOSING_FEE: u64 = 35;
    pub const HTLC_RECORDS: u64 = 36;
    pub const FUNDING_HEIGHT: u64 = 37;
    pub const SIGNATURES: u64 = 39;
    pub const SHUTDOWN_SENT_AT: u64 = 41;
    /// Pending fee updates after the first (33), oldest first. Even: a
    /// reader that knows only 33 must not load the channel without them.
    pub const MORE_PENDING_FEES: u64 = 42;
    /// The peer's forwarding policy (its `channel_update`): optional, an
    /// older reader loses only what the next update brings back.
    pub const COUNTERPARTY_POLICY: u64 = 43;
    /// The `minimum_depth` the peer asked for in `accept_channel`.
    pub const THEIR_MINIMUM_DEPTH: u64 = 45;
    /// Our `update_fee` held for the peer's `revoke_and_ack` (`held_fee`):
    /// optional, an older reader loses only a fee update never sent.
    pub const HELD_FEE: u64 = 47;
    /// Our output in each closing transaction we signed
    /// (`signed_closings`): optional, an older reader loses only their
    /// listing in the record if the channel later fails.
    pub const SIGNED_CLOSINGS: u64 = 49;
    /// The HTLCs kept for the peer's revoked commitments, whole-channel
    /// form only (a persister keeps each as a `Key::EndedHtlc`). Even: a
    /// reader that does not know it must refuse the channel, not lose
    /// them; written only when there are some.
    pub const ENDED_HTLCS: u64 = 50;
    pub const ALL: [u64; 31] = [
        CHANNEL_ID,
        TEMPORARY_ID,
        COUNTERPARTY,
        FLAGS,
        PHASE,
        FUNDING,
        SHORT_CHANNEL_ID,
        KEYS_ID,
        THEIR_KEYS,
        OUR_PARAMS,
        THEIR_PARAMS,
        FEES,
        COMMITMENT_NUMBERS,
        THEIR_POINTS,
        THEIR_SECRETS,
        BALANCES,
        NEXT_HTLC_IDS,
        HTLCS,
        PENDING_FEE,
        SHUTDOWN,
        CLOSING_FEE,
        HTLC_RECORDS,
        FUNDING_HEIGHT,
        SIGNATURES,
        SHUTDOWN_SENT_AT,
        MORE_PENDING_FEES,
        COUNTERPARTY_POLICY,
        THEIR_MINIMUM_DEPTH,
        HELD_FEE,
        SIGNED_CLOSINGS,
        ENDED_HTLCS,
    ];
}

/// Bits of the channel's FLAGS record (never renumber).
const FLAG_OUTBOUND: u16 = 1 << 0;
const FLAG_FUNDING_CONFIRMED: u16 = 1 << 1;
const FLAG_SENT_READY: u16 = 1 << 2;
const FLAG_RECEIVED_READY: u16 = 1 << 3;
const FLAG_AWAITING_REVOKE: u16 = 1 << 4;
const FLAG_CS_AFTER_RAA: u16 = 1 << 5;
/// Written by version 0.1; ignored (every channel is paused on load).
const FLAG_PAUSED: u16 = 1 << 6;
const FLAG_SHUTDOWN_REQUESTED: u16 = 1 << 7;
const FLAG_VERIFY_SIGNATURES: u16 = 1 << 8;
const KNOWN_FLAGS: u16 = (1 << 9) - 1;

/// The records common to both forms, for the channel's durable view.
fn header_writer(c: &Channel) -> TlvWriter {
    use channel_type::*;
    let flags = [
        (c.is_outbound, FLAG_OUTBOUND),
        (c.funding_confirmed, FLAG_FUNDING_CONFIRMED),
        (c.sent_ready, FLAG_SENT_READY),
        (c.received_ready, FLAG_RECEIVED_READY),
        (c.awaiting_revoke, FLAG_AWAITING_REVOKE),
        (c.cs_after_raa, FLAG_CS_AFTER_RAA),
        (c.shutdown_requested, FLAG_SHUTDOWN_REQUESTED),
        (c.verify_signatures, FLAG_VERIFY_SIGNATURES),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0u16, |acc, (_, bit)| acc | bit);
    // A negotiation restarts on reconnection: it is not durable.
    let phase = match c.phase {
        Phase::Negotiating => Phase::ShuttingDown,
        phase => phase,
    };
    // The peer's adds that no commitment_signed covered are forgotten on
    // disconnection, and their ids with them.
    let next_received_id = c
        .htlcs
        .iter()
        .filter(|h| h.state == HtlcState::RcvdAddHtlc)
        .map(|h| h.id)
        .min()
        .unwrap_or(c.next_received_id);
    let mut w = TlvWriter::new();
    w.record(CHANNEL_ID, &c.channel_id.0)
        .record(TEMPORARY_ID, &c.temporary_channel_id.0)
        .record(COUNTERPARTY, &c.counterparty.serialize())
        .record(FLAGS, &flags.to_be_bytes())
        .record(
            PHASE,
            &[Phase::ALL.iter().position(|p| *p == phase).expect("listed") as u8],
        )
        .with(FUNDING, |out| {
            out.extend_from_slice(&c.funding_sat.to_be_bytes());
            match c.funding_outpoint {
                Some(o) => {
                    out.push(1);
                    out.extend_from_slice(&o.txid.to_byte_array());
                    out.extend_from_slice(&o.vout.to_be_bytes());
                }
                None => out.push(0),
            }
        });
    if let Some(scid) = c.short_channel_id {
        w.record(SHORT_CHANNEL_ID, &scid.to_u64().to_be_bytes());
    }
    w.record(KEYS_ID, &c.signer.keys_id);
    w.with(THEIR_KEYS, |out| {
        if let Some(k) = &c.their_keys {
            for pk in [
                k.funding_pubkey,
                k.revocation_basepoint,
                k.payment_basepoint,
                k.delayed_payment_basepoint,
                k.htlc_basepoint,
            ] {
                put_pubkey(out, &pk);
            }
        }
    })
    .with(OUR_PARAMS, |out| put_side(out, &c.ours))
    .with(THEIR_PARAMS, |out| put_side(out, &c.theirs))
    .with(FEES, |out| {
        out.extend_from_slice(&c.minimum_depth.to_be_bytes());
        out.extend_from_slice(&c.feerate_per_kw.to_be_bytes());
    })
    .with(COMMITMENT_NUMBERS, |out| {
        out.extend_from_slice(&c.local_commitment_number.to_be_bytes());
        out.extend_from_slice(&c.remote_commitment_number.to_be_bytes());
    })
    .with(THEIR_POINTS, |out| {
        put_opt_pubkey(out, &c.their_prev_point);
        put_opt_pubkey(out, &c.their_current_point);
        put_opt_pubkey(out, &c.their_next_point);
    })
    .with(THEIR_SECRETS, |out| put_secrets(out, &c.their_secrets))
    .with(BALANCES, |out| {
        out.extend_from_slice(&c.to_local_msat.to_be_bytes());
        out.extend_from_slice(&c.to_remote_msat.to_be_bytes());
    })
    .with(NEXT_HTLC_IDS, |out| {
        out.extend_from_slice(&c.next_offered_id.to_be_bytes());
        out.extend_from_slice(&next_received_id.to_be_bytes());
    });
    w
}

/// Bit 0 of the policy's flags byte: the peer's `disable` bit was clear.
const POLICY_ENABLED: u8 = 1 << 0;

fn put_policy(out: &mut Vec<u8>, p: &ForwardingPolicy) {
    out.extend_from_slice(&p.fee_base_msat.to_be_bytes());
    out.extend_from_slice(&p.fee_proportional_millionths.to_be_bytes());
    out.extend_from_slice(&p.cltv_expiry_delta.to_be_bytes());
    out.extend_from_slice(&p.htlc_minimum_msat.to_be_bytes());
    out.extend_from_slice(&p.htlc_maximum_msat.to_be_bytes());
    out.push(if p.enabled { POLICY_ENABLED } else { 0 });
    out.extend_from_slice(&p.timestamp.to_be_bytes());
}

fn get_policy(c: &mut Cursor<'_>) -> Result<ForwardingPolicy, DecodeError> {
    let fee_base_msat = c.u32()?;
    let fee_proportional_millionths = c.u32()?;
    let cltv_expiry_delta = c.u16()?;
    let htlc_minimum_msat = c.u64()?;
    let htlc_maximum_msat = c.u64()?;
    let flags = c.u8()?;
    if flags & !POLICY_ENABLED != 0 {
        return Err(DecodeError::InvalidValue {
            field: "counterparty_policy.flags",
        });
    }
    let timestamp = c.u32()?;
    c.end()?;
    Ok(ForwardingPolicy {
        fee_base_msat,
        fee_proportional_millionths,
        cltv_expiry_delta,
        htlc_minimum_msat,
        htlc_maximum_msat,
        enabled: flags & POLICY_ENABLED != 0,
        timestamp,
    })
}

/// The fee updates a disconnection keeps (BOLT 2 forgets the peer's that
/// no `commitment_signed` covered).
fn durable_fees(c: &Channel) -> impl Iterator<Item = &FeeUpdate> {
    c.pending_fees
        .iter()
        .filter(|f| f.state != HtlcState::RcvdAddHtlc)
}

fn put_fee(out: &mut Vec<u8>, fee: &FeeUpdate) {
    out.extend_from_slice(&fee.feerate_per_kw.to_be_bytes());
    out.push(fee.state.to_u8());
}

fn put_pending_fee_and_shutdown(w: &mut TlvWriter, c: &Channel) {
    use channel_type::*;
    if let Some(fee) = durable_fees(c).next() {
        w.with(PENDING_FEE, |out| put_fee(out, fee));
    }
    w.with(SHUTDOWN, |out| {
        put_script(out, &c.local_shutdown_script);
        put_script(out, &c.remote_shutdown_script);
    });
}

/// The header record as a persister stores it: `htlc_records` is the number
/// of `Key::Htlc` records that belong to it.
pub(crate) fn encode_channel_header(c: &Channel, htlc_records: u32) -> Vec<u8> {
    use channel_type::*;
    let mut w = header_writer(c);
    put_pending_fee_and_shutdown(&mut w, c);
    w.record(HTLC_RECORDS, &htlc_records.to_be_bytes())
        .record(FUNDING_HEIGHT, &c.funding_height.to_be_bytes());
    put_last_records(&mut w, c);
    w.finish()
}

/// The whole channel as one record (HTLCs, their onions and the holder
/// signatures inline).
pub(crate) fn encode_channel(c: &Channel) -> Vec<u8> {
    use channel_type::*;
    let mut w = header_writer(c);
    w.with(HTLCS, |out| {
        let durable: Vec<_> = c
            .htlcs
            .iter()
            .filter(|h| h.durable_state().is_some())
            .collect();
        out.extend_from_slice(&(durable.len() as u32).to_be_bytes());
        for h in durable {
            put_bytes(out, &encode_htlc(h, false));
        }
    });
    put_pending_fee_and_shutdown(&mut w, c);
    w.record(FUNDING_HEIGHT, &c.funding_height.to_be_bytes());
    if let Some(sigs) = &c.holder_sigs {
        w.with(SIGNATURES, |out| put_signatures(out, sigs));
    }
    put_last_records(&mut w, c);
    if !c.ended_htlcs.is_empty() {
        w.with(ENDED_HTLCS, |out| put_revoked_htlcs(out, &c.ended_htlcs));
    }
    w.finish()
}

/// The last records of both forms, in type order: 41, 42, 43, 45.
fn put_last_records(w: &mut TlvWriter, c: &Channel) {
    use channel_type::*;
    if let Some(at) = c.shutdown_sent_at {
        w.record(SHUTDOWN_SENT_AT, &at.to_be_bytes());
    }
    if durable_fees(c).nth(1).is_some() {
        w.with(MORE_PENDING_FEES, |out| {
            durable_fees(c).skip(1).for_each(|f| put_fee(out, f))
        });
    }
    if let Some(p) = &c.counterparty_policy {
        w.with(COUNTERPARTY_POLICY, |out| put_policy(out, p));
    }
    if let Some(depth) = c.their_minimum_depth {
        w.record(THEIR_MINIMUM_DEPTH, &depth.to_be_bytes());
    }
    if let Some(feerate) = c.held_fee {
        w.record(HELD_FEE, &feerate.to_be_bytes());
    }
    if !c.signed_closings.is_empty() {
        w.with(SIGNED_CLOSINGS, |out| {
            for (outpoint, value_sat) in &c.signed_closings {
                put_outpoint(out, outpoint);
                out.extend_from_slice(&value_sat.to_be_bytes());
            }
        });
    }
}

fn get_signed_closings(v: &[u8]) -> Result<Vec<(OutPoint, u64)>, DecodeError> {
    let field = "channel.signed_closings";
    let mut c = Cursor::new(v, field);
    let mut signed = Vec::new();
    while !c.is_empty() {
        if signed.len() == crate::channel::MAX_SIGNED_CLOSINGS {
            return Err(DecodeError::InvalidValue { field });
        }
        signed.push((get_outpoint(&mut c)?, c.u64()?));
    }
    Ok(signed)
}

fn put_signatures(out: &mut Vec<u8>, sigs: &HolderSignatures) {
    put_signature(out, &sigs.commitment);
    out.extend_from_slice(&(sigs.htlcs.len() as u32).to_be_bytes());
    for s in &sigs.htlcs {
        put_signature(out, s);
    }
}

fn get_signatures(c: &mut Cursor<'_>) -> Result<HolderSignatures, DecodeError> {
    let commitment = get_signature(c, "signatures.commitment")?;
    let n = c.count(64)?;
    let mut htlcs = Vec::with_capacity(n);
    for _ in 0..n {
        htlcs.push(get_signature(c, "signatures.htlc")?);
    }
    c.end()?;
    Ok(HolderSignatures { commitment, htlcs })
}

/// The `Key::Signatures` record.
pub(crate) fn encode_signatures(sigs: &HolderSignatures) -> Vec<u8> {
    TlvWriter::new()
        .with(0, |out| put_signatures(out, sigs))
        .finish()
}

/// Decodes a `Key::Signatures` record.
pub(crate) fn decode_signatures(bytes: &[u8]) -> Result<HolderSignatures, DecodeError> {
    let r = TlvReader::parse(bytes, &[0], "signatures")?;
    get_signatures(&mut r.cursor(0, "signatures")?)
}

/// A value that is exactly one field: trailing bytes are corruption, not
/// something to skip.
fn whole<'a, T>(
    value: &'a [u8],
    field: &'static str,
    read: impl FnOnce(&mut Cursor<'a>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut c = Cursor::new(value, field);
    let v = read(&mut c)?;
    c.end()?;
    Ok(v)
}

/// A decoded channel record, before its separate records are attached.
pub(crate) struct DecodedChannel {
    pub(crate) channel: Channel,
    /// In a persister's form, the number of HTLC records that belong to it.
    pub(crate) htlc_records: Option<u32>,
}

/// Decodes a channel record of either form; its keys are derived again from
/// `node_secret`. A whole-channel record is checked for consistency here;
/// a header is checked by [`finish_channel`] once its records are attached.
pub(crate) fn decode_channel_record(
    bytes: &[u8],
    node_secret: &SecretKey,
) -> Result<DecodedChannel, DecodeError> {
    use channel_type::*;
    // Find the id first so that every error can name the channel.
    let context =
        match TlvReader::peek(bytes, CHANNEL_ID).and_then(|v| <[u8; 32]>::try_from(v).ok()) {
            Some(id) => format!("channel {}", ChannelId(id)),
            None => "channel".to_string(),
        };
    let r = TlvReader::parse(bytes, &ALL, context.clone())?;
    let channel_id = ChannelId(r.cursor(CHANNEL_ID, "channel.channel_id")?.array()?);
    let flags = r.cursor(FLAGS, "channel.flags")?.u16()?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::InvalidValue {
            field: "channel.flags",
        });
    }
    let flag = |bit: u16| flags & bit != 0 && bit != FLAG_PAUSED;
    let phase_n = r.cursor(PHASE, "channel.phase")?.u8()?;
    let phase = *Phase::ALL
        .get(phase_n as usize)
        .filter(|p| **p != Phase::Closed)
        .ok_or(DecodeError::InvalidValue {
            field: "channel.phase",
        })?;
    let mut f = r.cursor(FUNDING, "channel.funding")?;
    let funding_sat = f.u64()?;
    if funding_sat > 21_000_000 * 100_000_000 {
        return Err(DecodeError::InvalidValue {
            field: "channel.funding_sat",
        });
    }
    let funding_outpoint = if f.bool()? {
        Some(OutPoint::new(Txid::from_byte_array(f.array()?), f.u32()?))
    } else {
        None
    };
    f.end()?;
    let their_keys = {
        let v = r.required(THEIR_KEYS)?;
        if v.is_empty() {
            None
        } else {
            let mut c = Cursor::new(v, "channel.their_keys");
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
            Some(keys)
        }
    };
    let mut fees = r.cursor(FEES, "channel.fees")?;
    let (minimum_depth, feerate_per_kw) = (fees.u32()?, fees.u32()?);
    let mut numbers = r.cursor(COMMITMENT_NUMBERS, "channel.commitment_numbers")?;
    let (local_commitment_number, remote_commitment_number) = (numbers.u64()?, numbers.u64()?);
    let mut points = r.cursor(THEIR_POINTS, "channel.their_points")?;
    let their_prev_point = get_opt_pubkey(&mut points, "their_prev_point")?;
    let their_current_point = get_opt_pubkey(&mut points, "their_current_point")?;
    let their_next_point = get_opt_pubkey(&mut points, "their_next_point")?;
    points.end()?;
    let their_secrets = decode_secrets(&mut r.cursor(THEIR_SECRETS, "channel.their_secrets")?)?;
    let mut b = r.cursor(BALANCES, "channel.balances")?;
    let (to_local_msat, to_remote_msat) = (b.u64()?, b.u64()?);
    let mut ids = r.cursor(NEXT_HTLC_IDS, "channel.next_htlc_ids")?;
    let (next_offered_id, next_received_id) = (ids.u64()?, ids.u64()?);
    // Exactly one of the two forms: HTLCs inline, or a count of records.
    let htlc_records = r
        .optional(HTLC_RECORDS)
        .map(|v| whole(v, "channel.htlc_records", Cursor::u32))
        .transpose()?;
    let mut htlcs = Vec::new();
    match (r.optional(HTLCS), htlc_records) {
        (Some(v), None) => {
            let mut hs = Cursor::new(v, "channel.htlcs");
            let count = hs.count(4)?;
            for _ in 0..count {
                let (h, place) = decode_htlc(hs.bytes()?, &context)?;
                if place == OnionPlace::Separate {
                    return Err(DecodeError::InvalidValue {
                        field: "htlc.onion",
                    });
                }
                htlcs.push(h);
            }
            hs.end()?;
        }
        (None, Some(_)) => {}
        (Some(_), Some(_)) => {
            return Err(DecodeError::InvalidValue {
                field: "channel.htlcs",
            })
        }
        (None, None) => {
            return Err(DecodeError::MissingRecord {
                record_type: HTLCS,
                context,
            })
        }
    }
    let mut pending_fees = Vec::new();
    for (ty, field) in [
        (PENDING_FEE, "channel.pending_fee"),
        (MORE_PENDING_FEES, "channel.more_pending_fees"),
    ] {
        let Some(v) = r.optional(ty) else { continue };
        let mut c = Cursor::new(v, field);
        while !c.is_empty() && pending_fees.len() <= crate::channel::MAX_PENDING_FEES {
            let feerate_per_kw = c.u32()?;
            let state = HtlcState::from_u8(c.u8()?).ok_or(DecodeError::InvalidValue {
                field: "pending_fee.state",
            })?;
            pending_fees.push(FeeUpdate {
                feerate_per_kw,
                state,
            });
            if ty == PENDING_FEE {
                break;
            }
        }
        c.end()?;
    }
    if r.optional(MORE_PENDING_FEES).is_some() && r.optional(PENDING_FEE).is_none() {
        return Err(DecodeError::InvalidValue {
            field: "channel.more_pending_fees",
        });
    }
    let optional_u32 = |ty, field| {
        r.optional(ty)
            .map(|v| {
                let mut c = Cursor::new(v, field);
                let value = c.u32()?;
                c.end()?;
                Ok::<_, DecodeError>(value)
            })
            .transpose()
    };
    let their_minimum_depth = optional_u32(THEIR_MINIMUM_DEPTH, "channel.their_minimum_depth")?;
    let held_fee = optional_u32(HELD_FEE, "channel.held_fee")?;
    let signed_closings = r
        .optional(SIGNED_CLOSINGS)
        .map(get_signed_closings)
        .transpose()?
        .unwrap_or_default();
    let ended_htlcs = r
        .optional(ENDED_HTLCS)
        .map(|v| get_revoked_htlcs(&mut Cursor::new(v, "channel.ended_htlcs")))
        .transpose()?
        .unwrap_or_default();
    let mut sd = r.cursor(SHUTDOWN, "channel.shutdown")?;
    let (local_shutdown_script, remote_shutdown_script) =
        (get_script(&mut sd)?, get_script(&mut sd)?);
    sd.end()?;
    let funding_height = r
        .optional(FUNDING_HEIGHT)
        .map(|v| whole(v, "channel.funding_height", Cursor::u32))
        .transpose()?
        .unwrap_or(0);
    let shutdown_sent_at = r
        .optional(SHUTDOWN_SENT_AT)
        .map(|v| whole(v, "channel.shutdown_sent_at", Cursor::u64))
        .transpose()?;
    let holder_sigs = r
        .optional(SIGNATURES)
        .map(|v| get_signatures(&mut Cursor::new(v, "channel.signatures")))
        .transpose()?;
    let counterparty_policy = r
        .optional(COUNTERPARTY_POLICY)
        .map(|v| get_policy(&mut Cursor::new(v, "channel.counterparty_policy")))
        .transpose()?;
    let counterparty = get_pubkey(
        &mut r.cursor(COUNTERPARTY, "channel.counterparty")?,
        "channel.counterparty",
    )?;
    let channel = Channel {
        channel_id,
        temporary_channel_id: ChannelId(
            r.cursor(TEMPORARY_ID, "channel.temporary_channel_id")?
                .array()?,
        ),
        counterparty,
        is_outbound: flag(FLAG_OUTBOUND),
        phase,
        funding_sat,
        funding_outpoint,
        short_channel_id: r
            .optional(SHORT_CHANNEL_ID)
            .map(|v| {
                Cursor::new(v, "channel.short_channel_id")
                    .u64()
                    .map(ShortChannelId::from_u64)
            })
            .transpose()?,
        signer: ChannelSigner::derive(node_secret, r.cursor(KEYS_ID, "channel.keys_id")?.array()?),
        their_keys,
        ours: get_side(r.cursor(OUR_PARAMS, "channel.our_params")?)?,
        theirs: get_side(r.cursor(THEIR_PARAMS, "channel.their_params")?)?,
        minimum_depth,
        feerate_per_kw,
        pending_fees,
        their_minimum_depth,
        local_commitment_number,
        remote_commitment_number,
        their_prev_point,
        their_current_point,
        their_next_point,
        their_secrets,
        awaiting_revoke: flag(FLAG_AWAITING_REVOKE),
        cs_after_raa: flag(FLAG_CS_AFTER_RAA),
        paused: false,
        to_local_msat,
        to_remote_msat,
        htlcs,
        next_offered_id,
        next_received_id,
        funding_confirmed: flag(FLAG_FUNDING_CONFIRMED),
        sent_ready: flag(FLAG_SENT_READY),
        received_ready: flag(FLAG_RECEIVED_READY),
        local_shutdown_script,
        remote_shutdown_script,
        shutdown_requested: flag(FLAG_SHUTDOWN_REQUESTED),
        shutdown_sent_at,
        closing: Default::default(),
        closing_ticks: 0,
        held_fee,
        signed_closings,
        ended_htlcs,
        unfunded_ticks: 0,
        resuming: false,
        just_reestablished: false,
        shutdown_while_resuming: false,
        closing_tx: None,
        holder_sigs,
        funding_height,
        closure: None,
        disk: Default::default(),
        tables: Default::default(),
        verify_signatures: flag(FLAG_VERIFY_SIGNATURES),
        counterparty_policy,
        snapshot: Arc::new(ArcSwap::from_pointee(ChannelDetails::placeholder(
            channel_id,
            counterparty,
        ))),
    };
    if htlc_records.is_none() {
        finish_channel(&channel)?;
    }
    Ok(DecodedChannel {
        channel,
        htlc_records,
    })
}

/// Checks a decoded channel, with everything attached, so corrupt bytes
/// never become a channel.
pub(crate) fn finish_channel(channel: &Channel) -> Result<(), DecodeError> {
    channel
        .check_consistency()
        .map_err(|field| DecodeError::InvalidValue { field })?;
    channel.publish();
    Ok(())
}

/// Decodes a whole-channel record (the form `ChannelStore::encode_channel`
/// writes) into a checked channel.
pub(crate) fn decode_channel(
    bytes: &[u8],
    node_secret: &SecretKey,
) -> Result<Channel, DecodeError> {
    let decoded = decode_channel_record(bytes, node_secret)?;
    if decoded.htlc_records.is_some() {
        return Err(DecodeError::InvalidValue {
            field: "channel.htlcs (a header without its HTLC records)",
        });
    }
    Ok(decoded.channel)
}

fn decode_secrets(s: &mut Cursor<'_>) -> Result<CounterpartyCommitmentSecrets, DecodeError> {
    let n = s.count(40)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        entries.push((s.u64()?, s.array::<32>()?));
    }
    s.end()?;
    CounterpartyCommitmentSecrets::from_entries(entries).map_err(|_| DecodeError::InvalidValue {
        field: "channel.their_secrets",
    })
}

/// The peer's revealed secrets (for closed-channel records).
pub(crate) fn put_secrets(out: &mut Vec<u8>, secrets: &CounterpartyCommitmentSecrets) {
    let entries: Vec<_> = secrets.entries().collect();
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (index, secret) in entries {
        out.extend_from_slice(&index.to_be_bytes());
        out.extend_from_slice(&secret);
    }
}

/// Reads what [`put_secrets`] wrote.
pub(crate) fn get_secrets(
    c: &mut Cursor<'_>,
) -> Result<CounterpartyCommitmentSecrets, DecodeError> {
    decode_secrets(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records 36, 37 and 41 are one number each: a byte after it is
    /// corruption (it was once skipped silently).
    #[test]
    fn a_one_field_record_with_trailing_bytes_is_refused() {
        assert_eq!(whole(&[0, 0, 1, 2], "f", Cursor::u32), Ok(258));
        assert!(whole(&[0, 0, 1, 2, 0], "f", Cursor::u32).is_err());
        assert!(whole(&[0, 0, 1], "f", Cursor::u32).is_err());
        assert_eq!(whole(&7u64.to_be_bytes(), "f", Cursor::u64), Ok(7));
        assert!(whole(&[0; 9], "f", Cursor::u64).is_err());
    }

    /// Record 49 is whole entries of 44 bytes, at most
    /// `MAX_SIGNED_CLOSINGS` of them.
    #[test]
    fn signed_closings_are_whole_and_bounded() {
        let entry = |i: u8| {
            let mut e = vec![i; 32];
            e.extend_from_slice(&1u32.to_be_bytes());
            e.extend_from_slice(&5_000u64.to_be_bytes());
            e
        };
        let max = crate::channel::MAX_SIGNED_CLOSINGS;
        let full: Vec<u8> = (0..max as u8).flat_map(entry).collect();
        let read = get_signed_closings(&full).unwrap();
        assert_eq!(read.len(), max);
        assert_eq!(read[3].0.vout, 1);
        assert_eq!(read[3].1, 5_000);
        assert!(get_signed_closings(&full[..full.len() - 1]).is_err());
        let over: Vec<u8> = (0..=max as u8).flat_map(entry).collect();
        assert_eq!(
            get_signed_closings(&over),
            Err(DecodeError::InvalidValue {
                field: "channel.signed_closings"
            })
        );
    }
}
