//! What becomes of an HTLC offered to us once it is irrevocably committed,
//! and of a resolution that reaches an HTLC offered to us. Both run inside
//! the section that causes them, so their consequences are in its batch.
//!
//! **Deciding an incoming HTLC** ([`Section::decide_incoming`]) needs no
//! index: a payment to us is checked against its onion payload and our
//! final-hop rules and joins its payment's set (announced with
//! `PaymentReceived` in the batch of the payment's last part); a
//! forward is checked against our fee and CLTV rules and queued by the
//! short channel id its onion names, looked up only when it is applied; any
//! other case fails the HTLC back at once, in this section. So an HTLC is
//! never left undecided on disk, and restart re-decides nothing
//! (issue 11, point 4).

use super::claimables::{add_part, Added, Claimable, PartOf};
use super::gossip::failure_with_update;
use super::payments::{unix_now, unknown_payment_data};
use super::section::{fail_back_with, Section};
use crate::channel::{Inbound, IncomingHtlc, PrevHop};
use crate::config::StoreConfig;
use crate::forward::{HtlcForward, HtlcResolution, NextHop, Resolution, Work};
use crate::inbound_payment;
use crate::message::Message;
use crate::onion::payload::HopPayload;
use crate::onion::{Failure, FailureCode};
use crate::types::{ChannelId, NodeId};

/// Where an irrevocably committed incoming HTLC goes.
// A short-lived return value, moved once: boxing the big variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Routed {
    /// It pays us: a part of this payment.
    Claimable(PartOf),
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
            Ok(Routed::Claimable(of)) => {
                let part = Claimable {
                    node_id: node,
                    channel_id,
                    htlc_id: htlc.htlc_id,
                    amount_msat: htlc.amount_msat,
                    cltv_expiry: htlc.cltv_expiry,
                };
                match add_part(self.ctx.claimables, htlc.payment_hash, part, of) {
                    // Announced when this section's batch is appended, if
                    // it completes the payment (`claimables.rs`).
                    Added::Joined => {
                        let id = (htlc.payment_hash, channel_id, htlc.htlc_id);
                        self.out.parts_added.push(id);
                    }
                    Added::Known => {}
                    Added::Refused => {
                        let data = unknown_payment_data(htlc.amount_msat, self.ctx.height);
                        self.fail_here(
                            &prev,
                            Failure::Local {
                                code: FailureCode::IncorrectOrUnknownPaymentDetails,
                                data,
                            },
                        )
                    }
                }
            }
            Ok(Routed::Forward(forward)) => {
                if count_queued_forward(self, node) {
                    // Sharded by the incoming peer until it is routed.
                    self.work(node, Work::Forward(forward));
                } else {
                    let NextHop::Scid(scid) = forward.next else {
                        unreachable!("routed by scid until applied")
                    };
                    let failure = failure_with_update(
                        FailureCode::TemporaryChannelFailure,
                        htlc.amount_msat,
                        htlc.cltv_expiry,
                        self.our_update_bytes(Some(scid)),
                    );
                    self.fail_here(&prev, failure);
                }
            }
            Err(failure) => self.fail_here(&prev, failure),
        }
    }

    /// Fails an HTLC of this peer's channel back now.
    fn fail_here(&mut self, prev: &PrevHop, failure: Failure) {
        let Work::Resolve(r) = fail_back_with(prev, failure) else {
            unreachable!("fail_back makes a resolution")
        };
        self.resolve(&r);
    }

    /// Where an irrevocably committed HTLC goes, by BOLT 4's rules for the
    /// final node and for forwarding; the failure to return if nowhere.
    fn route_incoming(&self, prev: PrevHop, htlc: &IncomingHtlc) -> Result<Routed, Failure> {
        let config = self.ctx.config;
        let height = self.ctx.height;
        let local = |code| Err(Failure::local(code));
        let payload = match &htlc.inbound {
            Inbound::Fail { code, data, .. } => {
                return Err(Failure::Local {
                    code: *code,
                    data: data.clone(),
                })
            }
            // Failed with update_fail_malformed_htlc whatever we pass.
            Inbound::Malformed { .. } => return local(FailureCode::InvalidOnionHmac),
            Inbound::Payload { payload, .. } => payload,
        };
        // BOLT 2: a node SHOULD fail to route an HTLC added after its
        // `shutdown`. As LDK, every HTLC decided after ours is failed
        // (`permanent_channel_failure`), paying us or not: a peer that
        // keeps adding cannot hold our close off.
        let shut = (self.ps.channels.get(&prev.channel_id))
            .is_some_and(|c| c.local_shutdown_script.is_some());
        if shut {
            return local(FailureCode::PermanentChannelFailure);
        }
        if htlc.cltv_expiry > height.saturating_add(config.max_cltv_expiry_delta) {
            return local(FailureCode::ExpiryTooFar);
        }
        let (scid, amt_to_forward, outgoing_cltv_value) = match payload {
            HopPayload::Receive {
                amt_to_forward,
                outgoing_cltv_value,
                payment_data,
                ..
            } => {
                return self.check_payment_to_us(
                    htlc,
                    *amt_to_forward,
                    *outgoing_cltv_value,
                    payment_data.as_ref(),
                )
            }
            HopPayload::Forward {
                short_channel_id,
                amt_to_forward,
                outgoing_cltv_value,
            } => (*short_channel_id, *amt_to_forward, *outgoing_cltv_value),
        };
        // BOLT 4 UPDATE failures: the HTLC's amount or expiry, then our
        // channel_update for the channel the onion names.
        let update = |code| {
            Err(failure_with_update(
                code,
                htlc.amount_msat,
                htlc.cltv_expiry,
                self.our_update_bytes(Some(scid)),
            ))
        };
        let fee = config.forwarding_fee_msat(amt_to_forward);
        if htlc.amount_msat < amt_to_forward || htlc.amount_msat - amt_to_forward < fee {
            return update(FailureCode::FeeInsufficient);
        }
        let delta = u32::from(config.cltv_expiry_delta);
        if htlc.cltv_expiry < outgoing_cltv_value.saturating_add(delta) {
            return update(FailureCode::IncorrectCltvExpiry);
        }
        if expires_too_soon(config, outgoing_cltv_value, height) {
            return update(FailureCode::ExpiryTooSoon);
        }
        let Some(onion) = htlc.onion.clone() else {
            return local(FailureCode::InvalidOnionPayload);
        };
        Ok(Routed::Forward(HtlcForward {
            prev,
            next: NextHop::Scid(scid),
            amount_msat: amt_to_forward,
            cltv_expiry: outgoing_cltv_value,
            payment_hash: htlc.payment_hash,
            onion,
        }))
    }

    /// BOLT 4's checks of a payment to us: amount and expiry against the
    /// onion and our final CLTV delta, then its secret, total and expiry
    /// against the invoice (stateless: [`crate::inbound_payment`]). An HTLC
    /// stored by version 0.1 has no `payment_data` and no shared secret:
    /// it is taken as it was then, as a whole payment.
    fn check_payment_to_us(
        &self,
        htlc: &IncomingHtlc,
        amt_to_forward: u64,
        outgoing_cltv_value: u32,
        payment_data: Option<&crate::onion::payload::PaymentData>,
    ) -> Result<Routed, Failure> {
        let config = self.ctx.config;
        let height = self.ctx.height;
        if htlc.amount_msat < amt_to_forward {
            return Err(Failure::Local {
                code: FailureCode::FinalIncorrectHtlcAmount,
                data: htlc.amount_msat.to_be_bytes().to_vec(),
            });
        }
        if htlc.cltv_expiry < outgoing_cltv_value {
            return Err(Failure::Local {
                code: FailureCode::FinalIncorrectCltvExpiry,
                data: htlc.cltv_expiry.to_be_bytes().to_vec(),
            });
        }
        let unknown = || Failure::Local {
            code: FailureCode::IncorrectOrUnknownPaymentDetails,
            data: unknown_payment_data(htlc.amount_msat, height),
        };
        // A few blocks of slack (`htlc_timeout_grace_blocks`): the sender
        // counted from its own height, which a block found since, or a
        // sender a block behind, makes ours exceed (LDK's receiver leaves
        // slack too). Never so little that it would be failed back at once.
        let least_delta = u32::from(config.min_final_cltv_expiry_delta)
            .saturating_sub(config.htlc_timeout_grace_blocks)
            .max(config.htlc_fail_back_buffer_blocks + 1);
        if htlc.cltv_expiry < height.saturating_add(least_delta) {
            return Err(unknown());
        }
        let legacy = htlc.inbound.shared_secret().is_none();
        let Some(data) = payment_data else {
            if legacy {
                return Ok(Routed::Claimable(PartOf {
                    payment_secret: None,
                    total_msat: htlc.amount_msat,
                    preimage: None,
                }));
            }
            return Err(unknown());
        };
        if amt_to_forward > data.total_msat {
            return Err(unknown());
        }
        let preimage = inbound_payment::verify(
            self.ctx.inbound_key,
            &htlc.payment_hash,
            &data.payment_secret,
            data.total_msat,
            unix_now(),
        )
        .map_err(|_| unknown())?;
        Ok(Routed::Claimable(PartOf {
            payment_secret: Some(data.payment_secret),
            total_msat: data.total_msat,
            preimage,
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
                    Resolution::Fail(failure) => c.fail_htlc(r.htlc_id, failure)?,
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

/// Whether an HTLC we would offer, expiring at `cltv_expiry`, is too close
/// to its expiry at `height` to go out (BOLT 4 `expiry_too_soon`): within
/// `htlc_timeout_grace_blocks`, the blocks the next hop gets before we
/// close on it (LDK's `LATENCY_GRACE_PERIOD_BLOCKS`, also 3). Checked when
/// the incoming HTLC is decided and again when its forward is applied,
/// which may be many blocks later (a restart, a slow queue).
pub(crate) fn expires_too_soon(config: &StoreConfig, cltv_expiry: u32, height: u32) -> bool {
    cltv_expiry <= height.saturating_add(config.htlc_timeout_grace_blocks)
}
