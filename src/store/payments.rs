//! Payments and forwarding: `send_payment`, `claim_funds`,
//! `fail_htlc_backwards`, and the cross-peer queues behind
//! `process_pending_forwards`.

use bitcoin::secp256k1::SecretKey;

use super::claimables::ClaimableSet;
use super::gossip::failure_with_update;
use super::section::{fail_back, fail_back_with};
use super::{ChannelStore, Container, Section};
use crate::channel::{HtlcSource, SessionKeys};
use crate::error::StoreError;
use crate::forward::{Addressed, HtlcForward, HtlcResolution, NextHop, Resolution, Work};
use crate::inbound_payment;
use crate::message::{Message, OnionPacket};
use crate::onion::packet::{construct_onion, OnionHop};
use crate::onion::{Failure, FailureCode};
use crate::persist::{codec, frame, Key};
use crate::route::{RecipientOnionFields, Route, RouteHop, RoutePlan};
use crate::types::{ChannelId, NodeId, PaymentHash, PaymentPreimage, PaymentSecret};

/// Most queued items one `process_pending_forwards` pass takes at once.
const BATCH: usize = 512;

impl<C: Container> ChannelStore<C> {
    /// Sends `amount_msat` to the last hop of `route`, locked to
    /// `payment_hash`, with what the recipient's invoice asked for in
    /// `recipient` (its payment secret). The HTLC is offered on our channel
    /// `route.hops[0]` with a BOLT 4 onion built for the route with a fresh
    /// session key; `PaymentSent` or `PaymentFailed` reports how it ended.
    ///
    /// Refused with [`StoreError::DuplicatePayment`] while an HTLC of ours
    /// for `payment_hash` is left (in flight, fulfilled but not yet
    /// settled, or on chain in a closed channel's record), or while another
    /// `send_payment` of it runs: the recipient could claim a second HTLC,
    /// and the invoice would be paid twice. A retry after `PaymentFailed`
    /// is sent. Once the payment has settled nothing of it is left to
    /// check: read the pending events before you retry, and do not retry
    /// after `PaymentSent`.
    ///
    /// **Locking behaviour:** index lookups, the lock of each peer an
    /// earlier HTLC of ours for this hash went to (usually none) once, then
    /// the first hop's peer lock once. The onion is built before the lock
    /// (one ECDH and one blinding per hop).
    pub fn send_payment(
        &self,
        route: &Route,
        payment_hash: PaymentHash,
        amount_msat: u64,
        recipient: RecipientOnionFields,
    ) -> Result<(), StoreError> {
        self.send(
            route,
            payment_hash,
            amount_msat,
            amount_msat,
            recipient,
            true,
        )
    }

    /// Sends one part, of `amount_msat`, of a multi-part payment of
    /// `total_msat` (BOLT 4 `basic_mpp`): the recipient waits for parts
    /// with the same hash and secret until they add up to `total_msat`.
    /// Splitting the payment and choosing each part's route is the
    /// caller's; each part ends with its own `PaymentSent` or
    /// `PaymentFailed`. Refused with [`StoreError::DuplicatePayment`] once
    /// a part of the payment was fulfilled (the recipient has claimed).
    ///
    /// **Locking behaviour:** as [`ChannelStore::send_payment`].
    pub fn send_payment_part(
        &self,
        route: &Route,
        payment_hash: PaymentHash,
        amount_msat: u64,
        total_msat: u64,
        recipient: RecipientOnionFields,
    ) -> Result<(), StoreError> {
        self.send(
            route,
            payment_hash,
            amount_msat,
            total_msat,
            recipient,
            false,
        )
    }

    fn send(
        &self,
        route: &Route,
        payment_hash: PaymentHash,
        amount_msat: u64,
        total_msat: u64,
        recipient: RecipientOnionFields,
        whole: bool,
    ) -> Result<(), StoreError> {
        if total_msat < amount_msat {
            return Err(StoreError::InvalidRoute {
                reason: "a part is larger than its payment's total",
            });
        }
        let plan = route.plan(
            amount_msat,
            self.best_height(),
            // The recipient's (an invoice's `c`, on the last hop), if more.
            (route.hops.last())
                .map_or(0, |h| h.cltv_expiry_delta)
                .max(self.config.min_final_cltv_expiry_delta.into()),
            &recipient,
            total_msat,
        )?;
        let first = &route.hops[0];
        let channel_id = self.usable_scid(first)?;
        // `payloads[i]` is for `hops[i].node_id`, the node at the far end of
        // hop i, so the onion carries all of them: hop 0's node is the first
        // to peel it. Our own part (amount and expiry on our channel) is
        // `first_amount_msat`/`first_cltv_expiry`, not a payload.
        let hops: Vec<OnionHop> = route
            .hops
            .iter()
            .zip(&plan.payloads)
            .map(|(hop, payload)| OnionHop {
                node_id: hop.node_id,
                payload: payload.encode(),
            })
            .collect();
        let session_key = SecretKey::new(&mut bitcoin::secp256k1::rand::thread_rng());
        let (onion, _) = construct_onion(&session_key, &hops, &payment_hash.0).map_err(|_| {
            StoreError::InvalidRoute {
                reason: "the route's payloads do not fit in the onion",
            }
        })?;
        let onion_keys = SessionKeys {
            session_key,
            path: hops.iter().map(|h| h.node_id).collect(),
        };
        let peer = NodeId::from(&first.node_id);
        self.send_once(payment_hash, whole, peer, || {
            self.add_ours(first, channel_id, payment_hash, plan, onion, onion_keys)
        })
    }

    /// Offers our payment's HTLC on its first hop.
    fn add_ours(
        &self,
        first: &RouteHop,
        channel_id: ChannelId,
        payment_hash: PaymentHash,
        plan: RoutePlan,
        onion: OnionPacket,
        onion_keys: SessionKeys,
    ) -> Result<(), StoreError> {
        let config = &self.config;
        self.with_user_section(&NodeId::from(&first.node_id), |s| {
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
                        onion_keys: Some(onion_keys),
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

    /// A payment hash and secret for an invoice, with a preimage we derive
    /// (see [`crate::inbound_payment`]: nothing is stored per invoice). A
    /// payment to it must carry the secret, total at least
    /// `min_amount_msat` and arrive within `expiry_secs`; its
    /// `PaymentReceived` then carries the preimage to claim it with.
    pub fn create_inbound_payment(
        &self,
        min_amount_msat: Option<u64>,
        expiry_secs: u32,
    ) -> Result<(PaymentHash, PaymentSecret), StoreError> {
        let mut random = [0u8; 16];
        bitcoin::secp256k1::rand::RngCore::fill_bytes(
            &mut bitcoin::secp256k1::rand::thread_rng(),
            &mut random,
        );
        inbound_payment::create(
            &self.inbound_key,
            min_amount_msat,
            expiry_secs,
            unix_now(),
            random,
        )
        .map_err(StoreError::InboundPayment)
    }

    /// A payment secret for an invoice whose preimage the caller holds (and
    /// gives to `claim_funds` after `PaymentReceived`).
    pub fn create_inbound_payment_for_hash(
        &self,
        payment_hash: PaymentHash,
        min_amount_msat: Option<u64>,
        expiry_secs: u32,
    ) -> Result<PaymentSecret, StoreError> {
        inbound_payment::create_from_hash(
            &self.inbound_key,
            payment_hash,
            min_amount_msat,
            expiry_secs,
            unix_now(),
        )
        .map_err(StoreError::InboundPayment)
    }

    /// Claims every part of the payment to `payment_preimage`'s hash that
    /// `PaymentReceived` announced. Each is fulfilled under its own peer's
    /// lock, one peer at a time; an HTLC whose channel closed meanwhile
    /// becomes an on-chain claim (`Event::OnChainResolutionRequired`). A
    /// payment whose parts have not all arrived cannot be claimed. The parts
    /// of a payment in several are written as one claim before any is
    /// fulfilled: after a crash inside this call, the parts not yet
    /// fulfilled are fulfilled by `process_pending_forwards` once the store
    /// is read back (and a second `claim_funds` finds nothing to claim).
    ///
    /// A part that another thread's section has just added is claimed once
    /// that section's batch is in the journal (the claim waits, holding no
    /// lock, for the rest of that section), so the claim is never durable
    /// without the parts it fulfills.
    ///
    /// **Locking behaviour:** one claimables shard, then each paying peer's lock once.
    pub fn claim_funds(&self, payment_preimage: PaymentPreimage) -> Result<(), StoreError> {
        let set = self.take_claimable(payment_preimage.payment_hash())?;
        self.resolve_set(set, Resolution::Fulfill(payment_preimage), None);
        self.flush()
    }

    /// Fails every HTLC paying `payment_hash` back to its sender, with
    /// `incorrect_or_unknown_payment_details`.
    ///
    /// **Locking behaviour:** as [`ChannelStore::claim_funds`].
    pub fn fail_htlc_backwards(&self, payment_hash: &PaymentHash) -> Result<(), StoreError> {
        let failure = Failure::local(FailureCode::IncorrectOrUnknownPaymentDetails);
        self.resolve_parts(*payment_hash, |_| true, Resolution::Fail(failure))?;
        self.flush()
    }

    /// Resolves every part of a payment to us, each under its own peer's
    /// lock; `event` is recorded with the first. An
    /// `incorrect_or_unknown_payment_details` gets, per part, the data
    /// BOLT 4 asks for: the part's amount and our best height.
    ///
    /// A claim of several parts is one decision, but each part is
    /// fulfilled in its own section (its own peer's lock) and batch, and
    /// another thread's commit may make the first durable alone: a crash
    /// then would leave the preimage out and the rest of the payment
    /// unclaimed, to time out. So the parts of such a claim are first
    /// written together as work items, each consumed in the section that
    /// fulfills it; after a crash the ones left are restored to the queue
    /// and fulfilled by `process_pending_forwards`.
    pub(crate) fn resolve_set(
        &self,
        set: ClaimableSet,
        resolution: Resolution,
        mut event: Option<crate::event::Event>,
    ) {
        let height = self.best_height();
        let durable_claim = matches!(resolution, Resolution::Fulfill(_)) && set.parts.len() > 1;
        let mut items: Vec<Addressed> = set
            .parts
            .into_iter()
            .map(|h| {
                let resolution = match &resolution {
                    Resolution::Fail(Failure::Local {
                        code: code @ FailureCode::IncorrectOrUnknownPaymentDetails,
                        ..
                    }) => Resolution::Fail(Failure::Local {
                        code: *code,
                        data: unknown_payment_data(h.amount_msat, height),
                    }),
                    other => other.clone(),
                };
                let work = Work::Resolve(HtlcResolution {
                    channel_id: h.channel_id,
                    htlc_id: h.htlc_id,
                    resolution,
                });
                if durable_claim {
                    self.seq.new_work(h.node_id, work)
                } else {
                    // Applied at once: the channel change itself is what
                    // is persisted (id 0).
                    Addressed {
                        id: 0,
                        node_id: h.node_id,
                        work,
                    }
                }
            })
            .collect();
        if durable_claim {
            let batch = items
                .iter()
                .map(|item| (Key::Work(item.id), Some(frame(&codec::encode_work(item)))))
                .collect();
            if self.persist_now(batch).is_err() {
                // The store has failed: nothing it applies now is durable.
                for item in &mut items {
                    item.id = 0;
                }
            }
        }
        for item in items {
            self.apply_work(item.node_id, vec![item], event.take());
        }
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
            .forwards_pass(|| self.apply_queued(true))
            .unwrap_or(0)
    }

    /// Applies the queued resolutions only (fulfills and failures going
    /// back upstream), and leaves the forwards queued for
    /// [`ChannelStore::process_pending_forwards`]: when they leave is the
    /// user's call, but a preimage must reach its channel before that
    /// HTLC's claim deadline is judged.
    pub(crate) fn apply_queued_resolutions(&self) {
        self.container.forwards_pass(|| self.apply_queued(false));
    }

    /// One pass over the queues: what was queued at entry, in batches.
    /// Without `forwards`, forwards popped are put back at the end of the
    /// pass (so it pops none twice) and not counted.
    fn apply_queued(&self, forwards: bool) -> usize {
        let budget = self.container.queued_work();
        let mut popped = 0;
        let mut done = 0;
        let mut batch = Vec::with_capacity(BATCH);
        let mut held = PutBack(&self.container, Vec::new());
        while popped < budget {
            batch.clear();
            self.container
                .pop_work(&mut batch, BATCH.min(budget - popped));
            if batch.is_empty() {
                break;
            }
            popped += batch.len();
            if !forwards {
                let (keep, skip): (Vec<_>, Vec<_>) = batch
                    .drain(..)
                    .partition(|item| matches!(item.work, Work::Resolve(_)));
                held.1.extend(skip);
                batch = keep;
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
                        if let Err(failure) = add_forward(s, f) {
                            s.work(f.prev.node_id, fail_back_with(&f.prev, failure));
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
            if self.persist_now(batch).is_ok() {
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

/// Work popped and held aside, queued again when dropped: at the end of
/// the pass, or if applying the rest panics, so nothing held is lost.
struct PutBack<'a, C: Container>(&'a C, Vec<Addressed>);

impl<C: Container> Drop for PutBack<'_, C> {
    fn drop(&mut self) {
        for item in self.1.drain(..) {
            self.0.push_work(item);
        }
    }
}

/// Offers a forwarded HTLC on its outgoing channel (already routed), or
/// says why not: BOLT 4 UPDATE failures carry the incoming HTLC's amount
/// and our `channel_update` for the channel.
fn add_forward(s: &mut Section<'_>, f: &HtlcForward) -> Result<(), Failure> {
    let scid = match f.next {
        NextHop::Channel(next) => s.ps.channels.get(&next).and_then(|c| c.short_channel_id),
        NextHop::Scid(scid) => Some(scid),
    };
    let fail = |s: &Section<'_>, code| {
        failure_with_update(
            code,
            f.prev.amount_msat,
            f.cltv_expiry,
            s.our_update_bytes(scid),
        )
    };
    if !s.ps.connected {
        return Err(fail(s, FailureCode::TemporaryChannelFailure));
    }
    let NextHop::Channel(next) = f.next else {
        return Err(Failure::local(FailureCode::UnknownNextPeer));
    };
    let channel = s
        .channel(&next, true)
        .map_err(|_| Failure::local(FailureCode::UnknownNextPeer))?;
    // A connected peer's paused channel takes it; it goes out after reestablish.
    if !channel.accepts_htlcs() {
        let update = s.disabled_update_bytes(next);
        return Err(failure_with_update(
            FailureCode::ChannelDisabled,
            f.prev.amount_msat,
            f.cltv_expiry,
            update,
        ));
    }
    let config = s.ctx.config;
    if super::incoming::expires_too_soon(config, f.cltv_expiry, s.ctx.height) {
        return Err(fail(s, FailureCode::ExpiryTooSoon));
    }
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
        StoreError::HtlcBelowMinimum { .. } => fail(s, FailureCode::AmountBelowMinimum),
        _ => fail(s, FailureCode::TemporaryChannelFailure),
    })
}

/// Seconds since the Unix epoch, as invoices count them.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The data of `incorrect_or_unknown_payment_details` (BOLT 4): the HTLC's
/// amount and our best height.
pub(crate) fn unknown_payment_data(amount_msat: u64, height: u32) -> Vec<u8> {
    let mut data = amount_msat.to_be_bytes().to_vec();
    data.extend_from_slice(&height.to_be_bytes());
    data
}
