//! Encoding of the durable records: a channel (with its HTLCs), a queued
//! cross-peer work item, a pending event. Each is a TLV stream (see
//! `tlv.rs` and `docs/FORMAT.md`): even types required, odd optional.
//!
//! Decoding never panics and never guesses: a missing or malformed field is
//! a [`DecodeError`] naming the record and the field.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{OutPoint, ScriptBuf, Txid};

use super::tlv::{put_bytes, Cursor, TlvReader, TlvWriter};
use crate::channel::htlc::{Htlc, HtlcKind, HtlcSource, HtlcState, Inbound, PrevHop, Removal};
use crate::channel::signer::ChannelSigner;
use crate::channel::{Channel, FeeUpdate, Phase, SideParams};
use crate::error::DecodeError;
use crate::event::{ChannelDetails, ClosureReason, Event};
use crate::forward::{Addressed, HtlcForward, HtlcResolution, Resolution, Work};
use crate::keys::CounterpartyCommitmentSecrets;
use crate::message::{OnionPacket, ONION_PACKET_LEN};
use crate::onion::{FailureCode, HopPayload};
use crate::transactions::ChannelPublicKeys;
use crate::types::{ChannelId, NodeId, PaymentHash, PaymentPreimage, ShortChannelId};

// ---- small field helpers ----

fn put_pubkey(out: &mut Vec<u8>, pk: &PublicKey) {
    out.extend_from_slice(&pk.serialize());
}

fn get_pubkey(c: &mut Cursor<'_>, field: &'static str) -> Result<PublicKey, DecodeError> {
    PublicKey::from_slice(c.take(33)?).map_err(|_| DecodeError::InvalidPublicKey { field })
}

fn put_opt_pubkey(out: &mut Vec<u8>, pk: &Option<PublicKey>) {
    match pk {
        Some(pk) => {
            out.push(1);
            put_pubkey(out, pk);
        }
        None => out.push(0),
    }
}

fn get_opt_pubkey(
    c: &mut Cursor<'_>,
    field: &'static str,
) -> Result<Option<PublicKey>, DecodeError> {
    Ok(if c.bool()? {
        Some(get_pubkey(c, field)?)
    } else {
        None
    })
}

fn put_onion(out: &mut Vec<u8>, onion: &OnionPacket) {
    out.extend_from_slice(&onion.0[..]);
}

fn get_onion(c: &mut Cursor<'_>) -> Result<OnionPacket, DecodeError> {
    Ok(OnionPacket(Box::new(c.array::<ONION_PACKET_LEN>()?)))
}

/// A node id: the 33 bytes of its compressed key (what `put_pubkey` writes).
fn get_node(c: &mut Cursor<'_>, field: &'static str) -> Result<NodeId, DecodeError> {
    Ok(NodeId::from(&get_pubkey(c, field)?))
}

fn put_prev_hop(out: &mut Vec<u8>, p: &PrevHop) {
    out.extend_from_slice(&p.node_id.0);
    out.extend_from_slice(&p.channel_id.0);
    out.extend_from_slice(&p.htlc_id.to_be_bytes());
    out.extend_from_slice(&p.amount_msat.to_be_bytes());
}

fn get_prev_hop(c: &mut Cursor<'_>) -> Result<PrevHop, DecodeError> {
    Ok(PrevHop {
        node_id: get_node(c, "prev_hop.node_id")?,
        channel_id: ChannelId(c.array()?),
        htlc_id: c.u64()?,
        amount_msat: c.u64()?,
    })
}

fn put_side(out: &mut Vec<u8>, s: &SideParams) {
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

fn get_side(mut c: Cursor<'_>) -> Result<SideParams, DecodeError> {
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

fn put_script(out: &mut Vec<u8>, s: &Option<ScriptBuf>) {
    match s {
        Some(s) => {
            out.push(1);
            put_bytes(out, s.as_bytes());
        }
        None => out.push(0),
    }
}

fn get_script(c: &mut Cursor<'_>) -> Result<Option<ScriptBuf>, DecodeError> {
    Ok(if c.bool()? {
        Some(ScriptBuf::from_bytes(c.bytes()?.to_vec()))
    } else {
        None
    })
}

fn put_removal(out: &mut Vec<u8>, r: &Removal) {
    match r {
        Removal::Fulfill(p) => {
            out.push(0);
            out.extend_from_slice(&p.0);
        }
        Removal::Fail(reason) => {
            out.push(1);
            put_bytes(out, reason);
        }
    }
}

fn get_removal(c: &mut Cursor<'_>) -> Result<Removal, DecodeError> {
    match c.u8()? {
        0 => Ok(Removal::Fulfill(PaymentPreimage(c.array()?))),
        1 => Ok(Removal::Fail(c.bytes()?.to_vec())),
        _ => Err(DecodeError::InvalidValue {
            field: "htlc.removal",
        }),
    }
}

// ---- HTLC ----

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

fn encode_htlc(h: &Htlc) -> Vec<u8> {
    use htlc_type::*;
    let mut w = TlvWriter::new();
    w.record(ID, &h.id.to_be_bytes())
        .record(AMOUNT, &h.amount_msat.to_be_bytes())
        .record(HASH, &h.payment_hash.0)
        .record(CLTV, &h.cltv_expiry.to_be_bytes())
        .record(STATE, &[h.state.to_u8()])
        .with(KIND, |out| match &h.kind {
            HtlcKind::Offered {
                source,
                onion,
                fulfill_reported,
            } => {
                out.push(0);
                match source {
                    HtlcSource::Local { fee_msat } => {
                        out.push(0);
                        out.extend_from_slice(&fee_msat.to_be_bytes());
                    }
                    HtlcSource::Forwarded(prev) => {
                        out.push(1);
                        put_prev_hop(out, prev);
                    }
                }
                out.push(u8::from(*fulfill_reported));
                match onion {
                    Some(onion) => {
                        out.push(1);
                        put_onion(out, onion);
                    }
                    None => out.push(0),
                }
            }
            HtlcKind::Received(inbound) => {
                out.push(1);
                match inbound {
                    Inbound::BadOnion => out.push(0),
                    Inbound::Payload {
                        payload,
                        next_onion,
                    } => {
                        out.push(1);
                        out.extend_from_slice(
                            &payload
                                .short_channel_id
                                .map_or(0, |s| s.to_u64())
                                .to_be_bytes(),
                        );
                        out.extend_from_slice(&payload.amt_to_forward.to_be_bytes());
                        out.extend_from_slice(&payload.outgoing_cltv_value.to_be_bytes());
                        put_onion(out, next_onion);
                    }
                }
            }
        });
    if let Some(removal) = &h.removal {
        w.with(REMOVAL, |out| put_removal(out, removal));
    }
    w.finish()
}

fn decode_htlc(bytes: &[u8], context: &str) -> Result<Htlc, DecodeError> {
    use htlc_type::*;
    let r = TlvReader::parse(bytes, &ALL, format!("htlc of {context}"))?;
    let state = HtlcState::from_u8(r.cursor(STATE, "htlc.state")?.u8()?).ok_or(
        DecodeError::InvalidValue {
            field: "htlc.state",
        },
    )?;
    let mut k = r.cursor(KIND, "htlc.kind")?;
    let kind = match k.u8()? {
        0 => {
            let source = match k.u8()? {
                0 => HtlcSource::Local { fee_msat: k.u64()? },
                1 => HtlcSource::Forwarded(get_prev_hop(&mut k)?),
                _ => {
                    return Err(DecodeError::InvalidValue {
                        field: "htlc.source",
                    })
                }
            };
            let fulfill_reported = k.bool()?;
            let onion = if k.bool()? {
                Some(get_onion(&mut k)?)
            } else {
                None
            };
            HtlcKind::Offered {
                source,
                onion,
                fulfill_reported,
            }
        }
        1 => HtlcKind::Received(match k.u8()? {
            0 => Inbound::BadOnion,
            1 => {
                let scid = k.u64()?;
                let payload = HopPayload {
                    short_channel_id: (scid != 0).then(|| ShortChannelId::from_u64(scid)),
                    amt_to_forward: k.u64()?,
                    outgoing_cltv_value: k.u32()?,
                };
                Inbound::Payload {
                    payload,
                    next_onion: get_onion(&mut k)?,
                }
            }
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "htlc.inbound",
                })
            }
        }),
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
    Ok(Htlc {
        id: r.cursor(ID, "htlc.id")?.u64()?,
        amount_msat: r.cursor(AMOUNT, "htlc.amount_msat")?.u64()?,
        payment_hash: PaymentHash(r.cursor(HASH, "htlc.payment_hash")?.array()?),
        cltv_expiry: r.cursor(CLTV, "htlc.cltv_expiry")?.u32()?,
        state,
        removal,
        kind,
    })
}

// ---- Channel ----

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
    pub const CLOSING_FEE: u64 = 35;
    pub const ALL: [u64; 21] = [
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
    ];
}

/// Bits of the channel's FLAGS record (never renumber).
const FLAG_OUTBOUND: u16 = 1 << 0;
const FLAG_FUNDING_CONFIRMED: u16 = 1 << 1;
const FLAG_SENT_READY: u16 = 1 << 2;
const FLAG_RECEIVED_READY: u16 = 1 << 3;
const FLAG_AWAITING_REVOKE: u16 = 1 << 4;
const FLAG_CS_AFTER_RAA: u16 = 1 << 5;
const FLAG_PAUSED: u16 = 1 << 6;
const FLAG_SHUTDOWN_REQUESTED: u16 = 1 << 7;
const FLAG_VERIFY_SIGNATURES: u16 = 1 << 8;
const KNOWN_FLAGS: u16 = (1 << 9) - 1;

/// Encodes a channel as a TLV stream.
pub(crate) fn encode_channel(c: &Channel) -> Vec<u8> {
    use channel_type::*;
    let flags = [
        (c.is_outbound, FLAG_OUTBOUND),
        (c.funding_confirmed, FLAG_FUNDING_CONFIRMED),
        (c.sent_ready, FLAG_SENT_READY),
        (c.received_ready, FLAG_RECEIVED_READY),
        (c.awaiting_revoke, FLAG_AWAITING_REVOKE),
        (c.cs_after_raa, FLAG_CS_AFTER_RAA),
        (c.paused, FLAG_PAUSED),
        (c.shutdown_requested, FLAG_SHUTDOWN_REQUESTED),
        (c.verify_signatures, FLAG_VERIFY_SIGNATURES),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0u16, |acc, (_, bit)| acc | bit);
    let mut w = TlvWriter::new();
    w.record(CHANNEL_ID, &c.channel_id.0)
        .record(TEMPORARY_ID, &c.temporary_channel_id.0)
        .record(COUNTERPARTY, &c.counterparty.serialize())
        .record(FLAGS, &flags.to_be_bytes())
        .record(
            PHASE,
            &[Phase::ALL
                .iter()
                .position(|p| *p == c.phase)
                .expect("listed") as u8],
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
    .with(THEIR_SECRETS, |out| {
        let entries: Vec<_> = c.their_secrets.entries().collect();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for (index, secret) in entries {
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(&secret);
        }
    })
    .with(BALANCES, |out| {
        out.extend_from_slice(&c.to_local_msat.to_be_bytes());
        out.extend_from_slice(&c.to_remote_msat.to_be_bytes());
    })
    .with(NEXT_HTLC_IDS, |out| {
        out.extend_from_slice(&c.next_offered_id.to_be_bytes());
        out.extend_from_slice(&c.next_received_id.to_be_bytes());
    })
    .with(HTLCS, |out| {
        out.extend_from_slice(&(c.htlcs.len() as u32).to_be_bytes());
        for h in &c.htlcs {
            put_bytes(out, &encode_htlc(h));
        }
    });
    if let Some(fee) = c.pending_fee {
        w.with(PENDING_FEE, |out| {
            out.extend_from_slice(&fee.feerate_per_kw.to_be_bytes());
            out.push(fee.state.to_u8());
        });
    }
    w.with(SHUTDOWN, |out| {
        put_script(out, &c.local_shutdown_script);
        put_script(out, &c.remote_shutdown_script);
    });
    if let Some(fee) = c.closing_fee_sat {
        w.record(CLOSING_FEE, &fee.to_be_bytes());
    }
    w.finish()
}

/// Decodes a channel; its keys are derived again from `node_secret`.
pub(crate) fn decode_channel(
    bytes: &[u8],
    node_secret: &SecretKey,
) -> Result<Channel, DecodeError> {
    use channel_type::*;
    // Find the id first so that every error can name the channel.
    let context =
        match TlvReader::peek(bytes, CHANNEL_ID).and_then(|v| <[u8; 32]>::try_from(v).ok()) {
            Some(id) => format!("channel {}", ChannelId(id)),
            None => "channel".to_string(),
        };
    let r = TlvReader::parse(bytes, &ALL, context)?;
    let channel_id = ChannelId(r.cursor(CHANNEL_ID, "channel.channel_id")?.array()?);
    let flags = r.cursor(FLAGS, "channel.flags")?.u16()?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::InvalidValue {
            field: "channel.flags",
        });
    }
    let flag = |bit: u16| flags & bit != 0;
    let phase_n = r.cursor(PHASE, "channel.phase")?.u8()?;
    let phase = *Phase::ALL
        .get(phase_n as usize)
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
    let mut s = r.cursor(THEIR_SECRETS, "channel.their_secrets")?;
    let n = s.count(40)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        entries.push((s.u64()?, s.array::<32>()?));
    }
    s.end()?;
    let their_secrets = CounterpartyCommitmentSecrets::from_entries(entries).map_err(|_| {
        DecodeError::InvalidValue {
            field: "channel.their_secrets",
        }
    })?;
    let mut b = r.cursor(BALANCES, "channel.balances")?;
    let (to_local_msat, to_remote_msat) = (b.u64()?, b.u64()?);
    let mut ids = r.cursor(NEXT_HTLC_IDS, "channel.next_htlc_ids")?;
    let (next_offered_id, next_received_id) = (ids.u64()?, ids.u64()?);
    let mut hs = r.cursor(HTLCS, "channel.htlcs")?;
    let context = format!("channel {channel_id}");
    let count = hs.count(4)?;
    let mut htlcs = Vec::with_capacity(count);
    for _ in 0..count {
        htlcs.push(decode_htlc(hs.bytes()?, &context)?);
    }
    hs.end()?;
    let pending_fee = r
        .optional(PENDING_FEE)
        .map(|v| {
            let mut c = Cursor::new(v, "channel.pending_fee");
            let feerate_per_kw = c.u32()?;
            let state = HtlcState::from_u8(c.u8()?).ok_or(DecodeError::InvalidValue {
                field: "pending_fee.state",
            })?;
            c.end()?;
            Ok::<_, DecodeError>(FeeUpdate {
                feerate_per_kw,
                state,
            })
        })
        .transpose()?;
    let mut sd = r.cursor(SHUTDOWN, "channel.shutdown")?;
    let (local_shutdown_script, remote_shutdown_script) =
        (get_script(&mut sd)?, get_script(&mut sd)?);
    sd.end()?;
    let closing_fee_sat = r
        .optional(CLOSING_FEE)
        .map(|v| Cursor::new(v, "channel.closing_fee").u64())
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
        pending_fee,
        local_commitment_number,
        remote_commitment_number,
        their_prev_point,
        their_current_point,
        their_next_point,
        their_secrets,
        awaiting_revoke: flag(FLAG_AWAITING_REVOKE),
        cs_after_raa: flag(FLAG_CS_AFTER_RAA),
        paused: flag(FLAG_PAUSED),
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
        closing_fee_sat,
        verify_signatures: flag(FLAG_VERIFY_SIGNATURES),
        snapshot: Arc::new(ArcSwap::from_pointee(ChannelDetails::placeholder(
            channel_id,
            counterparty,
        ))),
    };
    channel
        .check_consistency()
        .map_err(|field| DecodeError::InvalidValue { field })?;
    channel.publish();
    Ok(channel)
}

// ---- work items ----

mod work_type {
    pub const NODE: u64 = 0;
    pub const ITEM: u64 = 2;
    pub const ALL: [u64; 2] = [NODE, ITEM];
}

/// Encodes a queued cross-peer work item.
pub(crate) fn encode_work(a: &Addressed) -> Vec<u8> {
    TlvWriter::new()
        .record(work_type::NODE, &a.node_id.0)
        .with(work_type::ITEM, |out| match &a.work {
            Work::Forward(f) => {
                out.push(0);
                put_prev_hop(out, &f.prev);
                out.extend_from_slice(&f.next_channel_id.0);
                out.extend_from_slice(&f.amount_msat.to_be_bytes());
                out.extend_from_slice(&f.cltv_expiry.to_be_bytes());
                out.extend_from_slice(&f.payment_hash.0);
                put_onion(out, &f.onion);
            }
            Work::Resolve(r) => {
                out.push(1);
                out.extend_from_slice(&r.channel_id.0);
                out.extend_from_slice(&r.htlc_id.to_be_bytes());
                match &r.resolution {
                    Resolution::Fulfill(p) => {
                        out.push(0);
                        out.extend_from_slice(&p.0);
                    }
                    Resolution::Fail(reason) => {
                        out.push(1);
                        put_bytes(out, reason);
                    }
                }
            }
        })
        .finish()
}

/// Decodes a queued cross-peer work item.
pub(crate) fn decode_work(bytes: &[u8]) -> Result<Addressed, DecodeError> {
    let r = TlvReader::parse(bytes, &work_type::ALL, "work item")?;
    let node_id = get_node(
        &mut r.cursor(work_type::NODE, "work.node_id")?,
        "work.node_id",
    )?;
    let mut c = r.cursor(work_type::ITEM, "work.item")?;
    let work = match c.u8()? {
        0 => Work::Forward(HtlcForward {
            prev: get_prev_hop(&mut c)?,
            next_channel_id: ChannelId(c.array()?),
            amount_msat: c.u64()?,
            cltv_expiry: c.u32()?,
            payment_hash: PaymentHash(c.array()?),
            onion: get_onion(&mut c)?,
        }),
        1 => Work::Resolve(HtlcResolution {
            channel_id: ChannelId(c.array()?),
            htlc_id: c.u64()?,
            resolution: match c.u8()? {
                0 => Resolution::Fulfill(PaymentPreimage(c.array()?)),
                1 => Resolution::Fail(c.bytes()?.to_vec()),
                _ => {
                    return Err(DecodeError::InvalidValue {
                        field: "work.resolution",
                    })
                }
            },
        }),
        _ => return Err(DecodeError::InvalidValue { field: "work.item" }),
    };
    c.end()?;
    // The id is the persister key, restored by the caller.
    Ok(Addressed {
        id: 0,
        node_id,
        work,
    })
}

// ---- events ----

/// Encodes a pending event.
pub(crate) fn encode_event(e: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    let pk = |out: &mut Vec<u8>, k: &PublicKey| put_pubkey(out, k);
    match e {
        Event::FundingGenerationReady {
            temporary_channel_id,
            counterparty_node_id,
            channel_value_sat,
            output_script,
        } => {
            out.push(0);
            out.extend_from_slice(&temporary_channel_id.0);
            pk(&mut out, counterparty_node_id);
            out.extend_from_slice(&channel_value_sat.to_be_bytes());
            put_bytes(&mut out, output_script.as_bytes());
        }
        Event::ChannelReady {
            channel_id,
            counterparty_node_id,
        } => {
            out.push(1);
            out.extend_from_slice(&channel_id.0);
            pk(&mut out, counterparty_node_id);
        }
        Event::PaymentReceived {
            payment_hash,
            amount_msat,
        } => {
            out.push(2);
            out.extend_from_slice(&payment_hash.0);
            out.extend_from_slice(&amount_msat.to_be_bytes());
        }
        Event::PaymentSent {
            payment_hash,
            payment_preimage,
            fee_paid_msat,
        } => {
            out.push(3);
            out.extend_from_slice(&payment_hash.0);
            out.extend_from_slice(&payment_preimage.0);
            out.extend_from_slice(&fee_paid_msat.to_be_bytes());
        }
        Event::PaymentFailed {
            payment_hash,
            failure,
        } => {
            out.push(4);
            out.extend_from_slice(&payment_hash.0);
            out.extend_from_slice(&failure.code().to_be_bytes());
        }
        Event::HtlcForwarded {
            prev_channel_id,
            next_channel_id,
            fee_earned_msat,
        } => {
            out.push(5);
            out.extend_from_slice(&prev_channel_id.0);
            out.extend_from_slice(&next_channel_id.0);
            out.extend_from_slice(&fee_earned_msat.to_be_bytes());
        }
        Event::OnChainResolutionRequired {
            channel_id,
            htlc_id,
            payment_preimage,
        } => {
            out.push(6);
            out.extend_from_slice(&channel_id.0);
            out.extend_from_slice(&htlc_id.to_be_bytes());
            match payment_preimage {
                Some(p) => {
                    out.push(1);
                    out.extend_from_slice(&p.0);
                }
                None => out.push(0),
            }
        }
        Event::ChannelClosed {
            channel_id,
            counterparty_node_id,
            reason,
        } => {
            out.push(7);
            out.extend_from_slice(&channel_id.0);
            pk(&mut out, counterparty_node_id);
            match reason {
                ClosureReason::Cooperative { closing_tx_fee_sat } => {
                    out.push(0);
                    out.extend_from_slice(&closing_tx_fee_sat.to_be_bytes());
                }
                ClosureReason::LocallyForceClosed => out.push(1),
                ClosureReason::CounterpartyError { message } => {
                    out.push(2);
                    put_bytes(&mut out, message.as_bytes());
                }
                ClosureReason::ReestablishFailed { reason } => {
                    out.push(3);
                    put_bytes(&mut out, reason.as_bytes());
                }
            }
        }
    }
    TlvWriter::new().record(0, &out).finish()
}

/// Decodes a pending event.
pub(crate) fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    let r = TlvReader::parse(bytes, &[0], "event")?;
    let mut c = r.cursor(0, "event")?;
    let text = |c: &mut Cursor<'_>| -> Result<String, DecodeError> {
        String::from_utf8(c.bytes()?.to_vec()).map_err(|_| DecodeError::InvalidValue {
            field: "event.text",
        })
    };
    let event = match c.u8()? {
        0 => Event::FundingGenerationReady {
            temporary_channel_id: ChannelId(c.array()?),
            counterparty_node_id: get_pubkey(&mut c, "event.node")?,
            channel_value_sat: c.u64()?,
            output_script: ScriptBuf::from_bytes(c.bytes()?.to_vec()),
        },
        1 => Event::ChannelReady {
            channel_id: ChannelId(c.array()?),
            counterparty_node_id: get_pubkey(&mut c, "event.node")?,
        },
        2 => Event::PaymentReceived {
            payment_hash: PaymentHash(c.array()?),
            amount_msat: c.u64()?,
        },
        3 => Event::PaymentSent {
            payment_hash: PaymentHash(c.array()?),
            payment_preimage: PaymentPreimage(c.array()?),
            fee_paid_msat: c.u64()?,
        },
        4 => Event::PaymentFailed {
            payment_hash: PaymentHash(c.array()?),
            failure: FailureCode::from_code(c.u16()?),
        },
        5 => Event::HtlcForwarded {
            prev_channel_id: ChannelId(c.array()?),
            next_channel_id: ChannelId(c.array()?),
            fee_earned_msat: c.u64()?,
        },
        6 => Event::OnChainResolutionRequired {
            channel_id: ChannelId(c.array()?),
            htlc_id: c.u64()?,
            payment_preimage: if c.bool()? {
                Some(PaymentPreimage(c.array()?))
            } else {
                None
            },
        },
        7 => Event::ChannelClosed {
            channel_id: ChannelId(c.array()?),
            counterparty_node_id: get_pubkey(&mut c, "event.node")?,
            reason: match c.u8()? {
                0 => ClosureReason::Cooperative {
                    closing_tx_fee_sat: c.u64()?,
                },
                1 => ClosureReason::LocallyForceClosed,
                2 => ClosureReason::CounterpartyError {
                    message: text(&mut c)?,
                },
                3 => ClosureReason::ReestablishFailed {
                    reason: text(&mut c)?,
                },
                _ => {
                    return Err(DecodeError::InvalidValue {
                        field: "event.closure_reason",
                    })
                }
            },
        },
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "event.kind",
            })
        }
    };
    c.end()?;
    Ok(event)
}
