//! A queued cross-peer work item (`Key::Work`): 0 the peer it is addressed
//! to, 2 the forward or resolution. Forwards kind 0 (by channel id) are
//! version 0.1's; today's name the short channel id (kind 2). A failing
//! resolution of kind 1 is 0.1's plaintext reason; today's (kind 2) is the
//! failure to build or wrap at the incoming channel.

use super::fields::{
    get_failure, get_node, get_onion, get_prev_hop, put_failure, put_onion, put_prev_hop,
};
use crate::error::DecodeError;
use crate::forward::{Addressed, HtlcForward, HtlcResolution, NextHop, Resolution, Work};
use crate::onion::Failure;
use crate::persist::tlv::{Cursor, TlvReader, TlvWriter};
use crate::types::{ChannelId, PaymentHash, PaymentPreimage, ShortChannelId};

mod work_type {
    pub const NODE: u64 = 0;
    pub const ITEM: u64 = 2;
    pub const ALL: [u64; 2] = [NODE, ITEM];
}

const FORWARD_BY_CHANNEL: u8 = 0;
const RESOLVE: u8 = 1;
const FORWARD_BY_SCID: u8 = 2;

/// Encodes a queued cross-peer work item.
pub(crate) fn encode_work(a: &Addressed) -> Vec<u8> {
    TlvWriter::new()
        .record(work_type::NODE, &a.node_id.0)
        .with(work_type::ITEM, |out| match &a.work {
            Work::Forward(f) => {
                match f.next {
                    NextHop::Channel(id) => {
                        out.push(FORWARD_BY_CHANNEL);
                        put_prev_hop(out, &f.prev);
                        out.extend_from_slice(&id.0);
                    }
                    NextHop::Scid(scid) => {
                        out.push(FORWARD_BY_SCID);
                        put_prev_hop(out, &f.prev);
                        out.extend_from_slice(&scid.to_u64().to_be_bytes());
                    }
                }
                out.extend_from_slice(&f.amount_msat.to_be_bytes());
                out.extend_from_slice(&f.cltv_expiry.to_be_bytes());
                out.extend_from_slice(&f.payment_hash.0);
                put_onion(out, &f.onion);
            }
            Work::Resolve(r) => {
                out.push(RESOLVE);
                out.extend_from_slice(&r.channel_id.0);
                out.extend_from_slice(&r.htlc_id.to_be_bytes());
                match &r.resolution {
                    Resolution::Fulfill(p) => {
                        out.push(0);
                        out.extend_from_slice(&p.0);
                    }
                    Resolution::Fail(failure) => {
                        out.push(2);
                        put_failure(out, failure);
                    }
                }
            }
        })
        .finish()
}

fn get_forward(c: &mut Cursor<'_>, kind: u8) -> Result<HtlcForward, DecodeError> {
    let prev = get_prev_hop(c)?;
    let next = if kind == FORWARD_BY_CHANNEL {
        NextHop::Channel(ChannelId(c.array()?))
    } else {
        NextHop::Scid(ShortChannelId::from_u64(c.u64()?))
    };
    Ok(HtlcForward {
        prev,
        next,
        amount_msat: c.u64()?,
        cltv_expiry: c.u32()?,
        payment_hash: PaymentHash(c.array()?),
        onion: get_onion(c)?,
    })
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
        kind @ (FORWARD_BY_CHANNEL | FORWARD_BY_SCID) => Work::Forward(get_forward(&mut c, kind)?),
        RESOLVE => Work::Resolve(HtlcResolution {
            channel_id: ChannelId(c.array()?),
            htlc_id: c.u64()?,
            resolution: match c.u8()? {
                0 => Resolution::Fulfill(PaymentPreimage(c.array()?)),
                // Version 0.1: the plaintext reason, sent as it is.
                1 => Resolution::Fail(Failure::Onion(c.bytes()?.to_vec())),
                2 => Resolution::Fail(get_failure(&mut c)?),
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
