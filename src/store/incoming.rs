//! What becomes of an HTLC offered to us once it is irrevocably committed,
//! and of a resolution that reaches an HTLC offered to us. Both run inside
//! the section that causes them, so their consequences are in its batch.
//!
//! **Deciding an incoming HTLC** ([`Section::decide_incoming`]) needs no
//! index: a payment to us is checked against its onion payload and our
//! final-hop rules and becomes claimable (with its `PaymentReceived`); a
//! forward is checked against our fee and CLTV rules and queued by the
//! short channel id its onion names, looked up only when it is applied; any
//! other case fails the HTLC back at once, in this section. So an HTLC is
//! never left undecided on disk, and restart re-decides nothing
//! (issue 11, point 4).

use super::section::{fail_back, Section};
use super::Claimable;
use crate::channel::{Inbound, IncomingHtlc, PrevHop};
use crate::event::Event;
use crate::forward::{HtlcForward, HtlcResolution, NextHop, Resolution, Work};
use crate::message::Message;
use crate::onion::FailureCode;
use crate::types::{ChannelId, NodeId, PaymentHash};

/// Where an irrevocably committed incoming HTLC goes.
// A short-lived return value, moved once: boxing the big variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Routed {
    /// It pays us.
    Claimable,
    /// Forward it.
    Forward(HtlcForward),
}

impl Section<'_> {
    /// An HTLC offered to us on `channel_id` is irrevocably committed:
    /// claimable if it pays us, queued for its next hop if it is a valid
    /// forward, else failed back now.
    pub(crate) fn decide_incoming(&mut self, channel_id: ChannelId, htlc: IncomingHtlc) {
        let node = self.node();
        let prev = PrevHop {
            node_id: node,
            channel_id,
            htlc_id: htlc.htlc_id,
            amount_msat: htlc.amount_msat,
        };
        let routed = self.route_incoming(prev, &htlc);
        match routed {
            Ok(Routed::Claimable) => {
                let total = add_claimable(
                    self.ctx.claimables,
                    htlc.payment_hash,
                    Claimable {
                        node_id: node,
                        channel_id,
                        htlc_id: htlc.htlc_id,
                        amount_msat: htlc.amount_msat,
                        cltv_expiry: htlc.cltv_expiry,
                    },
                );
                self.event(Event::PaymentReceived {
                    payment_hash: htlc.payment_hash,
                    amount_msat: total,
                });
            }
            Ok(Routed::Forward(forward)) => {
                if count_queued_forward(self, node) {
                    // Sharded by the incoming peer until it is routed.
                    self.work(node, Work::Forward(forward));
                } else {
                    self.fail_here(&prev, FailureCode::TemporaryChannelFailure);
                }
            }
            Err(code) => self.fail_here(&prev, code),
        }
    }

    /// Fails an HTLC of this peer's channel back now.
    fn fail_here(&mut self, prev: &PrevHop, code: FailureCode) {
        let Work::Resolve(r) = fail_back(prev, code) else {
            unreachable!("fail_back makes a resolution")
        };
        self.resolve(&r);
    }

    fn route_incoming(&self, prev: PrevHop, htlc: &IncomingHtlc) -> Result<Routed, FailureCode> {
        let config = self.ctx.config;
        let height = self.ctx.height;
        let payload = match &htlc.inbound {
            Inbound::Fail(code) => return Err(*code),
            Inbound::Payload(payload) => payload,
        };
        if htlc.cltv_expiry > height.saturating_add(config.max_cltv_expiry_delta) {
            return Err(FailureCode::ExpiryTooFar);
        }
        let Some(scid) = payload.short_channel_id else {
            // The payment is for us.
            if htlc.amount_msat < payload.amt_to_forward {
                return Err(FailureCode::FinalIncorrectHtlcAmount);
            }
            if htlc.cltv_expiry < payload.outgoing_cltv_value {
                return Err(FailureCode::FinalIncorrectCltvExpiry);
            }
            if htlc.cltv_expiry < height.saturating_add(config.min_final_cltv_expiry_delta.into()) {
                return Err(FailureCode::IncorrectOrUnknownPaymentDetails);
            }
            return Ok(Routed::Claimable);
        };
        let fee = config.forwarding_fee_msat(payload.amt_to_forward);
        if htlc.amount_msat < payload.amt_to_forward
            || htlc.amount_msat - payload.amt_to_forward < fee
        {
            return Err(FailureCode::FeeInsufficient);
        }
        let delta = u32::from(config.cltv_expiry_delta);
        if htlc.cltv_expiry < payload.outgoing_cltv_value.saturating_add(delta) {
            return Err(FailureCode::IncorrectCltvExpiry);
        }
        if payload.outgoing_cltv_value <= height {
            return Err(FailureCode::ExpiryTooSoon);
        }
        let onion = htlc.onion.clone().ok_or(FailureCode::InvalidOnionVersion)?;
        Ok(Routed::Forward(HtlcForward {
            prev,
            next: NextHop::Scid(scid),
            amount_msat: payload.amt_to_forward,
            cltv_expiry: payload.outgoing_cltv_value,
            payment_hash: htlc.payment_hash,
            onion,
        }))
    }

    /// Applies a resolution to an HTLC the peer offered us: on a live
    /// channel, our `update_fulfill_htlc`/`update_fail_htlc`; on a closed
    /// one, its record (a preimage to claim on chain, with the event saying
    /// so, in this batch). A resolution for an HTLC that is gone (already
    /// settled, or resolved on chain) changes nothing.
    pub(crate) fn resolve(&mut self, r: &HtlcResolution) {
        if self.ps.channels.contains_key(&r.channel_id) {
            let _ = self.on_channel(&r.channel_id, true, |c, e| {
                e.msgs.push(match &r.resolution {
                    Resolution::Fulfill(p) => {
                        Message::UpdateFulfillHtlc(c.fulfill_htlc(r.htlc_id, *p)?)
                    }
                    Resolution::Fail(reason) => {
                        Message::UpdateFailHtlc(c.fail_htlc(r.htlc_id, reason.clone())?)
                    }
                });
                Ok(())
            });
            return;
        }
        let event = self
            .closed_mut(&r.channel_id)
            .and_then(|record| record.apply_resolution(r.htlc_id, &r.resolution))
            .flatten();
        if let Some(event) = event {
            self.event(event);
        }
    }
}

/// Records an HTLC paying us; returns the payment's total so far.
pub(crate) fn add_claimable(
    claimables: &dashmap::DashMap<PaymentHash, Vec<Claimable>>,
    hash: PaymentHash,
    claimable: Claimable,
) -> u64 {
    let mut entry = claimables.entry(hash).or_default();
    if !entry.contains(&claimable) {
        entry.push(claimable);
    }
    entry.iter().map(|c| c.amount_msat).sum()
}

/// Counts one more queued forward from `peer`; false (and nothing counted)
/// if it is at `max_pending_forwards_per_peer`.
fn count_queued_forward(s: &Section<'_>, peer: NodeId) -> bool {
    let mut n = s.ctx.queued_forwards.entry(peer).or_insert(0);
    if *n >= s.ctx.config.max_pending_forwards_per_peer {
        return false;
    }
    *n += 1;
    true
}
