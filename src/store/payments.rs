//! Payments and forwarding: `send_payment`, `claim_funds`,
//! `fail_htlc_backwards`, and the cross-peer queues behind
//! `process_pending_forwards`.

use super::section::Outcome;
use super::{ChannelStore, Claimable, Container, Decided, Section};
use crate::channel::{HtlcSource, Inbound, IncomingHtlc, PrevHop};
use crate::error::StoreError;
use crate::event::Event;
use crate::forward::{Addressed, HtlcForward, HtlcResolution, Resolution, Work};
use crate::message::Message;
use crate::onion::{build_onion, FailureCode};
use crate::persist::{codec, frame, Key};
use crate::route::Route;
use crate::types::{ChannelId, NodeId, PaymentHash, PaymentPreimage};

/// Most queued items one `process_pending_forwards` pass takes at once.
const BATCH: usize = 512;

impl<C: Container> ChannelStore<C> {
    /// Sends `amount_msat` to the last hop of `route`, locked to
    /// `payment_hash`. The HTLC is offered on our channel `route.hops[0]`;
    /// `PaymentSent` or `PaymentFailed` reports how it ended.
    ///
    /// **Locking behaviour:** index lookups, then the first hop's peer lock once.
    pub fn send_payment(
        &self,
        route: &Route,
        payment_hash: PaymentHash,
        amount_msat: u64,
    ) -> Result<(), StoreError> {
        let plan = route.plan(
            amount_msat,
            self.best_height(),
            self.config.min_final_cltv_expiry_delta.into(),
        )?;
        let first = &route.hops[0];
        let channel_id = self.usable_scid(first)?;
        // `payloads[i]` is for `hops[i].node_id`, the node at the far end of
        // hop i, so the onion carries all of them: hop 0's node is the first
        // to peel it. Our own part (amount and expiry on our channel) is
        // `first_amount_msat`/`first_cltv_expiry`, not a payload.
        let onion = build_onion(&plan.payloads).map_err(|_| StoreError::InvalidRoute {
            reason: "too many hops",
        })?;
        self.with_section(&NodeId::from(&first.node_id), |s| {
            if !s.ps.connected {
                return Err(StoreError::PeerNotConnected {
                    node_id: first.node_id,
                });
            }
            s.on_channel(&channel_id, true, |c, e| {
                // Our own payments wait for channel_reestablish (the user may
                // retry); forwards may queue into a paused channel.
                if c.paused {
                    return Err(StoreError::AwaitingReestablish {
                        channel_id: c.channel_id,
                        action: "update_add_htlc",
                    });
                }
                let add = c.send_htlc(
                    plan.first_amount_msat,
                    payment_hash,
                    plan.first_cltv_expiry,
                    onion,
                    HtlcSource::Local {
                        fee_msat: plan.fee_msat,
                    },
                )?;
                e.msgs.push(Message::UpdateAddHtlc(add));
                Ok(())
            })
        })
    }

    /// The channel a route's first hop names, if it is ours with that node.
    fn usable_scid(&self, hop: &crate::route::RouteHop) -> Result<ChannelId, StoreError> {
        let unknown = StoreError::UnknownShortChannelId {
            scid: hop.short_channel_id,
        };
        let id = self
            .container
            .scid_get(&hop.short_channel_id)
            .ok_or(unknown.clone())?;
        match self.container.index_get(&id) {
            Some(peer) if peer == NodeId::from(&hop.node_id) => Ok(id),
            _ => Err(unknown),
        }
    }

    /// Claims every HTLC paying `payment_preimage`'s hash. Each is fulfilled
    /// under its own peer's lock, one peer at a time.
    ///
    /// **Locking behaviour:** one claimables shard, then each paying peer's lock once.
    pub fn claim_funds(&self, payment_preimage: PaymentPreimage) -> Result<(), StoreError> {
        let hash = payment_preimage.payment_hash();
        self.resolve_claimable(hash, Resolution::Fulfill(payment_preimage))
    }

    /// Fails every HTLC paying `payment_hash` back to its sender.
    ///
    /// **Locking behaviour:** as [`ChannelStore::claim_funds`].
    pub fn fail_htlc_backwards(&self, payment_hash: &PaymentHash) -> Result<(), StoreError> {
        let reason = FailureCode::IncorrectOrUnknownPaymentDetails.to_reason();
        self.resolve_claimable(*payment_hash, Resolution::Fail(reason))
    }

    fn resolve_claimable(
        &self,
        hash: PaymentHash,
        resolution: Resolution,
    ) -> Result<(), StoreError> {
        let (_, htlcs) = self
            .claimables
            .remove(&hash)
            .ok_or(StoreError::UnknownPayment { payment_hash: hash })?;
        for h in htlcs {
            let item = HtlcResolution {
                channel_id: h.channel_id,
                htlc_id: h.htlc_id,
                resolution: resolution.clone(),
            };
            // Applied at once: the channel change itself is what is persisted (id 0).
            self.apply_work(
                h.node_id,
                vec![Addressed {
                    id: 0,
                    node_id: h.node_id,
                    work: Work::Resolve(item),
                }],
            );
        }
        Ok(())
    }

    /// Applies queued forwards and resolutions, each under the lock of the
    /// peer it concerns, one peer at a time. Returns how many items it applied.
    ///
    /// Safe to call from many threads at once: each queued item is popped by
    /// exactly one caller (the queues are crossbeam `SegQueue`s, one per shard), so
    /// nothing is applied twice.
    /// Items queued while it runs may be left for the next call.
    ///
    /// **Locking behaviour:** takes peer locks one at a time; never two.
    /// (The `RwLockPeers` baseline, like LDK, lets one caller in at a time:
    /// the others return 0 at once.)
    pub fn process_pending_forwards(&self) -> usize {
        self.container
            .forwards_pass(|| self.apply_queued())
            .unwrap_or(0)
    }

    /// One pass over the queues: what was queued at entry, in batches.
    fn apply_queued(&self) -> usize {
        let budget = self.container.queued_work();
        let mut done = 0;
        let mut batch = Vec::with_capacity(BATCH);
        while done < budget {
            batch.clear();
            self.container
                .pop_work(&mut batch, BATCH.min(budget - done));
            if batch.is_empty() {
                break;
            }
            done += batch.len();
            // Group by peer so each peer is locked once per batch and its
            // channels sign one commitment for all their new HTLCs.
            batch.sort_by_key(|a| a.node_id);
            let mut items = batch.drain(..).peekable();
            while let Some(first) = items.next() {
                let node = first.node_id;
                let mut group = vec![first];
                while let Some(next) = items.next_if(|i| i.node_id == node) {
                    group.push(next);
                }
                self.apply_work(node, group);
            }
        }
        done
    }

    /// Applies work items addressed to `node` under its lock. Each persisted
    /// item is deleted in the same batch as the change it made.
    fn apply_work(&self, node: NodeId, items: Vec<Addressed>) {
        for item in &items {
            if let Work::Forward(f) = &item.work {
                self.uncount_queued_forward(&f.prev.node_id);
            }
        }
        let result = self.with_section(&node, |s| {
            for item in &items {
                s.out.consumed.push(item.id);
                match &item.work {
                    Work::Forward(f) => {
                        if let Err(code) = self.add_forward(s, f) {
                            s.work(f.prev.node_id, fail_back(&f.prev, code));
                        }
                    }
                    Work::Resolve(r) => {
                        let applied = s.on_channel(&r.channel_id, true, |c, e| {
                            match &r.resolution {
                                Resolution::Fulfill(p) => e.msgs.push(Message::UpdateFulfillHtlc(
                                    c.fulfill_htlc(r.htlc_id, *p)?,
                                )),
                                Resolution::Fail(reason) => e.msgs.push(Message::UpdateFailHtlc(
                                    c.fail_htlc(r.htlc_id, reason.clone())?,
                                )),
                            }
                            Ok(())
                        });
                        if applied.is_err() {
                            s.out.unresolvable.push(r.clone());
                        }
                    }
                }
            }
            Ok(())
        });
        // The peer is gone entirely: forwards fail back, resolutions go on chain.
        if let Err(StoreError::PeerNotConnected { .. }) = result {
            let mut outcome = Outcome::default();
            for item in items {
                outcome.consumed.push(item.id);
                match item.work {
                    Work::Forward(f) => {
                        let back = self.seq.new_work(
                            f.prev.node_id,
                            fail_back(&f.prev, FailureCode::UnknownNextPeer),
                        );
                        outcome.work.push(back);
                    }
                    Work::Resolve(r) => outcome.unresolvable.push(r),
                }
            }
            let mut batch: Vec<_> = outcome
                .consumed
                .iter()
                .filter(|id| **id != 0)
                .map(|id| (Key::Work(*id), None))
                .collect();
            batch.extend(
                outcome
                    .work
                    .iter()
                    .map(|w| (Key::Work(w.id), Some(frame(&codec::encode_work(w))))),
            );
            if self.persist(&batch).is_ok() {
                self.carry_out(node, outcome);
            }
        }
    }

    /// Offers a forwarded HTLC on its outgoing channel.
    fn add_forward(&self, s: &mut Section<'_>, f: &HtlcForward) -> Result<(), FailureCode> {
        if !s.ps.connected {
            return Err(FailureCode::TemporaryChannelFailure);
        }
        let channel = s
            .channel(&f.next_channel_id, true)
            .map_err(|_| FailureCode::UnknownNextPeer)?;
        // A connected peer's paused channel takes it; it goes out after reestablish.
        if !channel.accepts_htlcs() {
            return Err(FailureCode::ChannelDisabled);
        }
        let result = s.on_channel(&f.next_channel_id, true, |c, e| {
            let add = c.send_htlc(
                f.amount_msat,
                f.payment_hash,
                f.cltv_expiry,
                f.onion.clone(),
                HtlcSource::Forwarded(f.prev),
            )?;
            e.msgs.push(Message::UpdateAddHtlc(add));
            Ok(())
        });
        result.map_err(|e| match e {
            StoreError::HtlcBelowMinimum { .. } => FailureCode::AmountBelowMinimum,
            _ => FailureCode::TemporaryChannelFailure,
        })
    }

    /// An HTLC offered to us is irrevocably committed: claimable if it pays
    /// us, queued for its next peer if it is a valid forward, else failed.
    /// The resulting work and events go into `decided`, to be persisted
    /// before they are queued.
    pub(crate) fn decide_incoming(
        &self,
        node: NodeId,
        channel_id: ChannelId,
        htlc: IncomingHtlc,
        decided: &mut Decided,
    ) {
        let prev = PrevHop {
            node_id: node,
            channel_id,
            htlc_id: htlc.htlc_id,
            amount_msat: htlc.amount_msat,
        };
        match self.route_incoming(prev, &htlc) {
            Ok(Routed::Claimable(total)) => {
                decided
                    .events
                    .push(self.seq.new_event(Event::PaymentReceived {
                        payment_hash: htlc.payment_hash,
                        amount_msat: total,
                    }))
            }
            Ok(Routed::Forward(next_node, forward)) => {
                if self.count_queued_forward(node) {
                    decided.work.push(self.seq.new_work(next_node, forward))
                } else {
                    let back = fail_back(&prev, FailureCode::TemporaryChannelFailure);
                    decided.work.push(self.seq.new_work(node, back))
                }
            }
            Err(code) => decided
                .work
                .push(self.seq.new_work(node, fail_back(&prev, code))),
        }
    }

    fn route_incoming(&self, prev: PrevHop, htlc: &IncomingHtlc) -> Result<Routed, FailureCode> {
        let height = self.best_height();
        let (payload, next_onion) = match &htlc.inbound {
            Inbound::BadOnion => return Err(FailureCode::InvalidOnionVersion),
            Inbound::Payload {
                payload,
                next_onion,
            } => (payload, next_onion),
        };
        let Some(scid) = payload.short_channel_id else {
            // The payment is for us.
            if htlc.amount_msat < payload.amt_to_forward {
                return Err(FailureCode::FinalIncorrectHtlcAmount);
            }
            if htlc.cltv_expiry < payload.outgoing_cltv_value {
                return Err(FailureCode::FinalIncorrectCltvExpiry);
            }
            if htlc.cltv_expiry
                < height.saturating_add(self.config.min_final_cltv_expiry_delta.into())
            {
                return Err(FailureCode::IncorrectOrUnknownPaymentDetails);
            }
            return Ok(Routed::Claimable(self.add_claimable(prev, htlc)));
        };
        let fee = self.config.forwarding_fee_msat(payload.amt_to_forward);
        if htlc.amount_msat < payload.amt_to_forward
            || htlc.amount_msat - payload.amt_to_forward < fee
        {
            return Err(FailureCode::FeeInsufficient);
        }
        let delta = u32::from(self.config.cltv_expiry_delta);
        if htlc.cltv_expiry < payload.outgoing_cltv_value.saturating_add(delta) {
            return Err(FailureCode::IncorrectCltvExpiry);
        }
        if payload.outgoing_cltv_value <= height {
            return Err(FailureCode::ExpiryTooSoon);
        }
        let next_channel_id = self
            .container
            .scid_get(&scid)
            .ok_or(FailureCode::UnknownNextPeer)?;
        let next_node = self
            .container
            .index_get(&next_channel_id)
            .ok_or(FailureCode::UnknownNextPeer)?;
        Ok(Routed::Forward(
            next_node,
            Work::Forward(HtlcForward {
                prev,
                next_channel_id,
                amount_msat: payload.amt_to_forward,
                cltv_expiry: payload.outgoing_cltv_value,
                payment_hash: htlc.payment_hash,
                onion: next_onion.clone(),
            }),
        ))
    }

    /// Counts one more queued forward from `peer`; false (and nothing
    /// counted) if it is at `max_pending_forwards_per_peer`.
    pub(crate) fn count_queued_forward(&self, peer: NodeId) -> bool {
        let mut n = self.queued_forwards.entry(peer).or_insert(0);
        if *n >= self.config.max_pending_forwards_per_peer {
            return false;
        }
        *n += 1;
        true
    }

    fn uncount_queued_forward(&self, peer: &NodeId) {
        if let Some(mut n) = self.queued_forwards.get_mut(peer) {
            *n = n.saturating_sub(1);
        }
    }

    /// Records an HTLC paying us; returns the payment's total so far.
    pub(crate) fn add_claimable(&self, prev: PrevHop, htlc: &IncomingHtlc) -> u64 {
        let claimable = Claimable {
            node_id: prev.node_id,
            channel_id: prev.channel_id,
            htlc_id: htlc.htlc_id,
            amount_msat: htlc.amount_msat,
        };
        let mut entry = self.claimables.entry(htlc.payment_hash).or_default();
        if !entry.contains(&claimable) {
            entry.push(claimable);
        }
        entry.iter().map(|c| c.amount_msat).sum()
    }
}

/// Where an irrevocably committed incoming HTLC goes.
// A short-lived return value, moved once: boxing the big variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Routed {
    /// It pays us; the payment's total so far.
    Claimable(u64),
    /// Forward it to this peer.
    Forward(NodeId, Work),
}

/// The work that fails an incoming HTLC back with `code`.
pub(crate) fn fail_back(prev: &PrevHop, code: FailureCode) -> Work {
    Work::Resolve(HtlcResolution {
        channel_id: prev.channel_id,
        htlc_id: prev.htlc_id,
        resolution: Resolution::Fail(code.to_reason()),
    })
}
