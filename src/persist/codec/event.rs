//! A pending event (`Key::Event`): record 0, a kind byte then its fields.
//! Kind 6 is version 0.1's `OnChainResolutionRequired` (channel, HTLC id,
//! optional preimage); today's (kind 9) carries the whole HTLC. Kinds 2 and
//! 4 are 0.1's `PaymentReceived` and `PaymentFailed`; today's (13 and 14)
//! add the preimage, and the failing node with the failure's data.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{OutPoint, ScriptBuf, Txid};

use super::fields::{
    get_hash, get_opt_preimage, get_opt_pubkey, get_pubkey, get_reason, get_transaction,
    put_opt_preimage, put_opt_pubkey, put_pubkey, put_reason, put_transaction,
};
use crate::error::DecodeError;
use crate::event::Event;
use crate::onchain::{HtlcDirection, OnChainAction, OnChainHtlc};
use crate::onion::FailureCode;
use crate::persist::tlv::{put_bytes, Cursor, TlvReader, TlvWriter};
use crate::types::{ChannelId, PaymentHash, PaymentPreimage};

use super::closed::{get_closed_htlc_info, get_outputs, put_closed_htlc_info, put_outputs};

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
            payment_preimage,
        } => {
            out.push(13);
            out.extend_from_slice(&payment_hash.0);
            out.extend_from_slice(&amount_msat.to_be_bytes());
            put_opt_preimage(&mut out, payment_preimage);
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
            failing_node,
            failure_data,
        } => {
            out.push(14);
            out.extend_from_slice(&payment_hash.0);
            out.extend_from_slice(&failure.code().to_be_bytes());
            put_opt_pubkey(&mut out, failing_node);
            put_bytes(&mut out, failure_data);
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
        Event::ChannelClosed {
            channel_id,
            counterparty_node_id,
            reason,
        } => {
            out.push(7);
            out.extend_from_slice(&channel_id.0);
            pk(&mut out, counterparty_node_id);
            put_reason(&mut out, reason);
        }
        Event::ChannelPending {
            channel_id,
            counterparty_node_id,
            funding_outpoint,
        } => {
            out.push(8);
            out.extend_from_slice(&channel_id.0);
            pk(&mut out, counterparty_node_id);
            out.extend_from_slice(&funding_outpoint.txid.to_byte_array());
            out.extend_from_slice(&funding_outpoint.vout.to_be_bytes());
        }
        Event::OnChainResolutionRequired { htlc } => {
            out.push(9);
            out.extend_from_slice(&htlc.channel_id.0);
            put_closed_htlc_info(&mut out, htlc);
        }
        Event::BroadcastTransaction {
            channel_id,
            transaction,
        } => {
            out.push(10);
            out.extend_from_slice(&channel_id.0);
            put_transaction(&mut out, transaction);
        }
        Event::SpendableOutputs {
            channel_id,
            outputs,
        } => {
            out.push(11);
            out.extend_from_slice(&channel_id.0);
            put_outputs(&mut out, outputs);
        }
        Event::PaymentClaimExpired {
            payment_hash,
            amount_msat,
        } => {
            out.push(12);
            out.extend_from_slice(&payment_hash.0);
            out.extend_from_slice(&amount_msat.to_be_bytes());
        }
        Event::PeerWarning {
            counterparty_node_id,
            channel_id,
            message,
        } => {
            out.push(15);
            pk(&mut out, counterparty_node_id);
            out.extend_from_slice(&channel_id.0);
            put_bytes(&mut out, message.as_bytes());
        }
    }
    TlvWriter::new().record(0, &out).finish()
}

/// Decodes a pending event.
pub(crate) fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    let r = TlvReader::parse(bytes, &[0], "event")?;
    let mut c = r.cursor(0, "event")?;
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
            payment_preimage: None,
        },
        13 => Event::PaymentReceived {
            payment_hash: PaymentHash(c.array()?),
            amount_msat: c.u64()?,
            payment_preimage: get_opt_preimage(&mut c)?,
        },
        3 => Event::PaymentSent {
            payment_hash: PaymentHash(c.array()?),
            payment_preimage: PaymentPreimage(c.array()?),
            fee_paid_msat: c.u64()?,
        },
        4 => Event::PaymentFailed {
            payment_hash: PaymentHash(c.array()?),
            failure: FailureCode::from_code(c.u16()?),
            failing_node: None,
            failure_data: Vec::new(),
        },
        14 => Event::PaymentFailed {
            payment_hash: PaymentHash(c.array()?),
            failure: FailureCode::from_code(c.u16()?),
            failing_node: get_opt_pubkey(&mut c, "event.failing_node")?,
            failure_data: c.bytes()?.to_vec(),
        },
        5 => Event::HtlcForwarded {
            prev_channel_id: ChannelId(c.array()?),
            next_channel_id: ChannelId(c.array()?),
            fee_earned_msat: c.u64()?,
        },
        6 => legacy_on_chain_resolution(&mut c)?,
        7 => Event::ChannelClosed {
            channel_id: ChannelId(c.array()?),
            counterparty_node_id: get_pubkey(&mut c, "event.node")?,
            reason: get_reason(&mut c)?,
        },
        8 => Event::ChannelPending {
            channel_id: ChannelId(c.array()?),
            counterparty_node_id: get_pubkey(&mut c, "event.node")?,
            funding_outpoint: OutPoint::new(Txid::from_byte_array(c.array()?), c.u32()?),
        },
        9 => {
            let channel_id = ChannelId(c.array()?);
            Event::OnChainResolutionRequired {
                htlc: get_closed_htlc_info(&mut c, channel_id)?,
            }
        }
        10 => Event::BroadcastTransaction {
            channel_id: ChannelId(c.array()?),
            transaction: get_transaction(&mut c, "event.transaction")?,
        },
        11 => {
            let channel_id = ChannelId(c.array()?);
            Event::SpendableOutputs {
                channel_id,
                outputs: get_outputs(&mut c, channel_id)?,
            }
        }
        12 => Event::PaymentClaimExpired {
            payment_hash: get_hash(&mut c)?,
            amount_msat: c.u64()?,
        },
        15 => Event::PeerWarning {
            counterparty_node_id: get_pubkey(&mut c, "event.node")?,
            channel_id: ChannelId(c.array()?),
            message: String::from_utf8(c.bytes()?.to_vec()).map_err(|_| {
                DecodeError::InvalidValue {
                    field: "event.message",
                }
            })?,
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

/// Version 0.1's event for a resolution whose incoming channel had closed:
/// an HTLC we received, claimable on chain when the preimage is known.
fn legacy_on_chain_resolution(c: &mut Cursor<'_>) -> Result<Event, DecodeError> {
    let channel_id = ChannelId(c.array()?);
    let htlc_id = c.u64()?;
    let payment_preimage = get_opt_preimage(c)?;
    Ok(Event::OnChainResolutionRequired {
        htlc: OnChainHtlc {
            channel_id,
            htlc_id,
            direction: HtlcDirection::Received,
            payment_hash: payment_preimage.map_or(PaymentHash([0; 32]), |p| p.payment_hash()),
            amount_msat: 0,
            cltv_expiry: 0,
            payment_preimage,
            commitment_output: None,
            counterparty_htlc_signature: None,
            action: if payment_preimage.is_some() {
                OnChainAction::Claim
            } else {
                OnChainAction::AwaitPreimage
            },
        },
    })
}
