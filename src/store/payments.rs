//! Payments and forwarding: `send_payment`, `claim_funds`,
//! `fail_htlc_backwards`, and the cross-peer queues behind
//! `process_pending_forwards`.

use super::section::fail_back;
use super::{ChannelStore, Container, Section};
use crate::channel::HtlcSource;
use crate::error::StoreError;
use crate::forward::{Addressed, HtlcForward, HtlcResolution, NextHop, Resolution, Work};
use crate::message::Message;
use crate::onion::{build_onion, FailureCode};
use crate::persist::{codec, frame, Key};
use crate::route::Route;
use crate::types::{NodeId, PaymentHash, PaymentPreimage};

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
        let config = &self.config;
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
                    config,
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
    fn usable_scid(
        &self,
        hop: &crate::route::RouteHop,
    ) -> Result<crate::types::ChannelId, StoreError> {
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
    /// under its own peer's lock, one peer at a time; an HTLC whose channel
    /// closed meanwhile becomes an on-chain claim
    /// (`Event::OnChainResolutionRequired`).
    ///
    /// **Locking behaviour:** one claimables shard, then each paying peer's lock once.
    pub fn claim_funds(&self, payment_preimage: PaymentPreimage) -> Result<(), StoreError> {
        let hash = payment_preimage.payment_hash();
        self.resolve_claimable(hash, Resolution::Fulfill(payment_preimage), None)
    }

    /// Fails every HTLC paying `payment_hash` back to its sender.
    ///
    /// **Locking behaviour:** as [`ChannelStore::claim_funds`].
    pub fn fail_htlc_backwards(&self, payment_hash: &PaymentHash) -> Result<(), StoreError> {
        let reason = FailureCode::IncorrectOrUnknownPaymentDetails.to_reason();
        self.resolve_claimable(*payment_hash, Resolution::Fail(reason), None)
    }

    /// Resolves every HTLC of a payment to us, each under its own peer's
    /// lock; `event` is recorded with the first.
    pub(crate) fn resolve_claimable(
        &self,
        hash: PaymentHash,
        resolution: Resolution,
        mut event: Option<crate::event::Event>,
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
                event.take(),
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
            for item in &mut batch {
                self.route(item);
            }
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
                self.apply_work(node, group, None);
            }
        }
        done
    }

    /// Addresses a forward to the peer of its outgoing channel, looked up in
    /// the indexes (hints, re-checked under that peer's lock). A forward to
    /// no known channel becomes its own fail-back, applied at the incoming
    /// channel under the same work item id (so it is consumed atomically
    /// with the failure it causes).
    fn route(&self, item: &mut Addressed) {
        let Work::Forward(f) = &mut item.work else {
            return;
        };
        let channel = match f.next {
            NextHop::Scid(scid) => self.container.scid_get(&scid),
            NextHop::Channel(id) => Some(id),
        };
        match channel.and_then(|id| self.container.index_get(&id).map(|n| (id, n))) {
            Some((id, node)) => {
                f.next = NextHop::Channel(id);
                item.node_id = node;
            }
            None => {
                self.uncount_queued_forward(&f.prev.node_id);
                item.node_id = f.prev.node_id;
                item.work = fail_back(&f.prev, FailureCode::UnknownNextPeer);
            }
        }
    }

    /// Applies work items addressed to `node` under its lock. Each persisted
    /// item is deleted in the same batch as the change it made; `event`, if
    /// any, is recorded in that batch too.
    pub(crate) fn apply_work(
        &self,
        node: NodeId,
        items: Vec<Addressed>,
        event: Option<crate::event::Event>,
    ) {
        for item in &items {
            if let Work::Forward(f) = &item.work {
                self.uncount_queued_forward(&f.prev.node_id);
            }
        }
        let result = self.with_section(&node, |s| {
            if let Some(event) = event {
                s.event(event);
            }
            for item in &items {
                s.out.consumed.push(item.id);
                match &item.work {
                    Work::Forward(f) => {
                        if let Err(code) = add_forward(s, f) {
                            s.work(f.prev.node_id, fail_back(&f.prev, code));
                        }
                    }
                    Work::Resolve(r) => s.resolve(r),
                }
            }
            Ok(())
        });
        // The peer is gone entirely (it left with nothing kept): forwards
        // fail back; a resolution has no HTLC left to settle.
        if let Err(StoreError::PeerNotConnected { .. }) = result {
            let mut batch = Vec::new();
            let mut work = Vec::new();
            for item in items {
                if item.id != 0 {
                    batch.push((Key::Work(item.id), None));
                }
                if let Work::Forward(f) = item.work {
                    let back = self.seq.new_work(
                        f.prev.node_id,
                        fail_back(&f.prev, FailureCode::UnknownNextPeer),
                    );
                    batch.push((Key::Work(back.id), Some(frame(&codec::encode_work(&back)))));
                    work.push(back);
                }
            }
            if self.persist(&batch).is_ok() {
                for item in work {
                    self.container.push_work(item);
                }
            }
        }
    }

    fn uncount_queued_forward(&self, peer: &NodeId) {
        if let Some(mut n) = self.queued_forwards.get_mut(peer) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Offers a forwarded HTLC on its outgoing channel (already routed).
fn add_forward(s: &mut Section<'_>, f: &HtlcForward) -> Result<(), FailureCode> {
    if !s.ps.connected {
        return Err(FailureCode::TemporaryChannelFailure);
    }
    let NextHop::Channel(next) = f.next else {
        return Err(FailureCode::UnknownNextPeer);
    };
    let channel = s
        .channel(&next, true)
        .map_err(|_| FailureCode::UnknownNextPeer)?;
    // A connected peer's paused channel takes it; it goes out after reestablish.
    if !channel.accepts_htlcs() {
        return Err(FailureCode::ChannelDisabled);
    }
    let config = s.ctx.config;
    let result = s.on_channel(&next, true, |c, e| {
        let add = c.send_htlc(
            config,
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
