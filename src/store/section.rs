//! [`Section`]: one critical section under one peer's lock.
//!
//! Handlers change channels through a section; the section queues their
//! messages in the peer's outbox at once (so messages keep their order),
//! decides what becomes of HTLCs that became irrevocably committed, turns
//! resolved HTLCs into events or work for the peer they came from, polls
//! every touched channel once at the end (so one `commitment_signed` covers
//! every update of the batch), turns channels that closed into their
//! closed-channel records, and returns an [`Outcome`].
//!
//! **The rule that makes a crash lose nothing** (issue 11): every durable
//! consequence of a section — the channel records it changed, the forwards
//! and fail-backs it decided, the work items it consumed, its events, the
//! closed-channel records — is in the one batch [`Section::finish`]
//! returns, which the store appends to its journal before the peer lock is
//! released; no message or event of the section leaves before that batch
//! is durable (`journal.rs`). A batch that releases nothing may be lazy
//! (committed with the next one something waits for) where losing it is
//! harmless: [`Outcome::may_wait`] says which. Nothing is decided after the lock from state
//! that could be gone; restart is a pure function of what is on disk.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;

use super::container::IndexOp;
use super::peer::PeerState;
use super::ClaimableSet;
use crate::channel::SessionKeys;
use crate::channel::{
    Channel, ClosedChannel, Effects, HtlcSource, OutboundResolved, Outcome as HtlcOutcome, Phase,
};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::event::Event;
use crate::forward::{Addressed, HtlcResolution, Resolution, Work};
use crate::message::Message;
use crate::onion::{Failure, FailureCode};
use crate::persist::Key;
use crate::types::{ChannelId, NodeId, PaymentHash};

/// Counters that give work items and events their persister keys.
#[derive(Debug, Default)]
pub(crate) struct Sequences {
    /// Next work item id (ids start at 1; 0 marks an item never persisted).
    /// Relaxed: only uniqueness matters, no memory is published through it.
    pub(crate) work: AtomicU64,
    /// Next event sequence number. Relaxed, likewise.
    pub(crate) event: AtomicU64,
}

impl Sequences {
    pub(crate) fn new_work(&self, node_id: NodeId, work: Work) -> Addressed {
        Addressed {
            id: self.work.fetch_add(1, Ordering::Relaxed) + 1,
            node_id,
            work,
        }
    }

    pub(crate) fn new_event(&self, event: Event) -> (u64, Event) {
        (self.event.fetch_add(1, Ordering::Relaxed) + 1, event)
    }
}

/// What a section may read and update besides its peer's state: the
/// store's configuration and clock, and the store-wide maps and counters
/// that are leaf locks (or lock-free), never a container method.
pub(crate) struct Context<'a> {
    pub(crate) config: &'a StoreConfig,
    /// The best block height when the section began.
    pub(crate) height: u32,
    pub(crate) seq: &'a Sequences,
    pub(crate) claimables: &'a DashMap<PaymentHash, ClaimableSet>,
    /// Hashes of ours a part of which was fulfilled (`ChannelStore::claimed`).
    pub(crate) claimed: &'a DashMap<PaymentHash, ()>,
    /// Our node id (a failure we decide for our own payment names us).
    pub(crate) node_id: bitcoin::secp256k1::PublicKey,
    /// Our node key, which signs our `channel_update`s.
    pub(crate) node_secret: &'a bitcoin::secp256k1::SecretKey,
    /// Our last `channel_update` per short channel id (`ChannelStore::our_updates`).
    pub(crate) our_updates:
        &'a DashMap<crate::types::ShortChannelId, crate::message::ChannelUpdate>,
    /// Checks the payment secrets of payments to us.
    pub(crate) inbound_key: &'a crate::inbound_payment::ExpandedKey,
    pub(crate) queued_forwards: &'a DashMap<NodeId, usize>,
    /// Channels peers opened to us that are not funded yet, store-wide.
    pub(crate) inbound_unfunded: &'a AtomicUsize,
    /// The store's budget of revocation basepoint tables (`channel/tables.rs`).
    pub(crate) revocation_tables: &'a std::sync::Arc<crate::channel::tables::TableBudget>,
    /// Whether a persister wants the section's writes.
    pub(crate) durable: bool,
}

/// What a section asks the store to do.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Events, in order; queued for the user under the lock once durable.
    pub(crate) events: Vec<(u64, Event)>,
    /// Index and snapshot changes, applied under the lock.
    pub(crate) index: Vec<IndexOp>,
    /// Work for other peers (resolutions, forwards), queued after the lock.
    pub(crate) work: Vec<Addressed>,
    /// Persisted work items this section consumed.
    pub(crate) consumed: Vec<u64>,
    /// The outbox went from empty to not: the container must be told.
    pub(crate) newly_listed: bool,
    /// Writes to append to the journal before the lock is released.
    pub(crate) writes: Vec<(Key, Option<Vec<u8>>)>,
    /// The peer's state may now be idle (a closed-channel record went away).
    pub(crate) maybe_idle: bool,
    /// The section handled a `revoke_and_ack` from the peer: its batch may
    /// be lazy if it releases nothing ([`Outcome::may_wait`]).
    pub(crate) received_revocation: bool,
    /// Parts of payments to us this section added to their sets (hash,
    /// channel, HTLC id): its batch's append announces the payments they
    /// leave complete with every part appended (`claimables.rs`).
    pub(crate) parts_added: Vec<(PaymentHash, ChannelId, u64)>,
}

impl Outcome {
    /// Whether this section's batch may wait for the next commit instead of
    /// having one of its own (a *lazy* batch, `journal.rs`). `sent`: the
    /// section queued messages.
    ///
    /// Only a received `revoke_and_ack` that releases nothing qualifies: no
    /// message (nothing answers it), no event, no index change (no channel
    /// closed), no consumed work item, no closed-channel record and no
    /// channel record deleted. Losing such a batch in a crash is safe:
    ///
    /// * The peer has revoked, and forgets nothing: on reconnection our
    ///   `channel_reestablish` still carries the old `next_revocation_number`
    ///   (we are still "awaiting revoke"), and BOLT 2 makes the peer
    ///   retransmit that `revoke_and_ack` (`handle_channel_reestablish`
    ///   does, as LDK does). Until then we hold, durably, the state we were
    ///   in after sending our `commitment_signed`: both of the peer's last
    ///   two commitments are ones we signed, and we can act on either if it
    ///   is broadcast, exactly as if the `revoke_and_ack` were still on the
    ///   wire.
    /// * Our own commitment does not change on a received revocation, so
    ///   nothing we could broadcast is stale, and nothing we sent depended
    ///   on this state (it releases no message).
    /// * What the state decided (an HTLC forwarded, or failed back
    ///   upstream, from the peer's revocation) is work applied in a later
    ///   section, whose batch is numbered later: its messages wait for that
    ///   batch, and a commit writes every batch before it too. If the lazy
    ///   batch is lost, so is everything derived from it, and the
    ///   retransmitted `revoke_and_ack` decides it again.
    ///
    /// A revocation that makes a payment to us irrevocable (its
    /// `PaymentReceived`) or ends one of ours (`PaymentFailed`) has an event
    /// and is committed before the event is handed out; one that lets us
    /// sign again (queued updates, a `closing_signed`) has messages.
    /// Received `update_*` messages write nothing (BOLT 2 forgets them on
    /// disconnection, `durable.rs`) except `update_fulfill_htlc`, whose
    /// preimage always comes with an event; timers and user calls are not
    /// lazy.
    pub(crate) fn may_wait(&self, sent: bool) -> bool {
        self.received_revocation
            && !sent
            && self.events.is_empty()
            && self.index.is_empty()
            && self.consumed.is_empty()
            && !self.writes.iter().any(|(key, value)| {
                matches!(key, Key::Closed(_)) || (matches!(key, Key::Channel(_)) && value.is_none())
            })
    }
}

/// One peer's state, borrowed for one critical section.
pub(crate) struct Section<'a> {
    pub(crate) ps: &'a mut PeerState,
    pub(crate) out: Outcome,
    pub(crate) ctx: Context<'a>,
    /// Outbox length when the section began: the messages from there on
    /// are this section's, and wait for its journal batch.
    outbox_start: usize,
    /// Channels to poll at the end: (current id, is it in the funded map).
    touched: Vec<(ChannelId, bool)>,
    /// Closed-channel records this section changed (written at the end).
    closed_touched: Vec<ChannelId>,
}

impl<'a> Section<'a> {
    pub(crate) fn new(ps: &'a mut PeerState, ctx: Context<'a>) -> Self {
        let outbox_start = ps.outbox.len();
        Section {
            ps,
            out: Outcome::default(),
            ctx,
            outbox_start,
            touched: Vec::new(),
            closed_touched: Vec::new(),
        }
    }

    /// The peer's id as the maps key it.
    pub(crate) fn node(&self) -> NodeId {
        NodeId::from(&self.ps.node)
    }

    /// A channel of this peer: funded ones by permanent id, unfunded by temporary id.
    pub(crate) fn channel(
        &mut self,
        id: &ChannelId,
        funded: bool,
    ) -> Result<&mut Channel, StoreError> {
        let map = if funded {
            &mut self.ps.channels
        } else {
            &mut self.ps.unfunded
        };
        map.get_mut(id)
            .map(|c| &mut **c)
            .ok_or(StoreError::UnknownChannel { channel_id: *id })
    }

    /// A closed-channel record of this peer, marked changed (it is written
    /// at the end of the section, or deleted once done).
    pub(crate) fn closed_mut(&mut self, id: &ChannelId) -> Option<&mut ClosedChannel> {
        let record = self.ps.closed.get_mut(id)?;
        if !self.closed_touched.contains(id) {
            self.closed_touched.push(*id);
        }
        Some(&mut **record)
    }

    /// Runs a handler on a channel and takes its effects. A handler that
    /// fails has changed nothing, and nothing is recorded.
    pub(crate) fn on_channel<T>(
        &mut self,
        id: &ChannelId,
        funded: bool,
        f: impl FnOnce(&mut Channel, &mut Effects) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut effects = Effects::default();
        let value = f(self.channel(id, funded)?, &mut effects)?;
        self.take(*id, funded, effects);
        Ok(value)
    }

    /// Queues a channel's effects and marks it for polling. Nothing is sent
    /// for a paused channel: what it owes the peer is re-derived from its
    /// state when `channel_reestablish` arrives. HTLCs that became
    /// irrevocably committed are decided here, in this section.
    pub(crate) fn take(&mut self, id: ChannelId, funded: bool, effects: Effects) {
        let paused = self.channel(&id, funded).is_ok_and(|c| c.paused);
        for msg in effects.msgs {
            if !paused {
                self.send(msg);
            }
        }
        if effects.send_channel_update && !paused {
            self.send_channel_update(id);
        }
        for event in effects.events {
            self.event(event);
        }
        for resolved in effects.resolved {
            self.pass_back(id, resolved);
        }
        if !self.touched.contains(&(id, funded)) {
            self.touched.push((id, funded));
        }
        for htlc in effects.incoming {
            self.decide_incoming(id, htlc);
        }
    }

    /// An HTLC we offered ended: report it, or send its resolution to the
    /// channel it came from. Done here, under the lock, so the resolution is
    /// durable in the same batch as the state that produced it.
    pub(crate) fn pass_back(&mut self, channel_id: ChannelId, resolved: OutboundResolved) {
        let hash = resolved.payment_hash;
        let (prev, resolution) = match (resolved.source, resolved.outcome) {
            (HtlcSource::Local { fee_msat, .. }, HtlcOutcome::Fulfilled(preimage)) => {
                // Leaf lock, released at once.
                self.ctx.claimed.insert(hash, ());
                return self.event(Event::PaymentSent {
                    payment_hash: hash,
                    payment_preimage: preimage,
                    fee_paid_msat: fee_msat,
                });
            }
            (HtlcSource::Local { onion_keys, .. }, HtlcOutcome::Failed(failure)) => {
                let (failing_node, failure, failure_data) =
                    attribute_failure(self.ctx.node_id, onion_keys.as_ref(), failure);
                return self.event(Event::PaymentFailed {
                    payment_hash: hash,
                    failure,
                    failing_node,
                    failure_data,
                });
            }
            (HtlcSource::Forwarded(prev), HtlcOutcome::Fulfilled(preimage)) => {
                self.event(Event::HtlcForwarded {
                    prev_channel_id: prev.channel_id,
                    next_channel_id: channel_id,
                    // Forwards are only made with incoming >= outgoing + fee; saturate
                    // anyway so a restored record can never make this panic.
                    fee_earned_msat: prev.amount_msat.saturating_sub(resolved.amount_msat),
                });
                (prev, Resolution::Fulfill(preimage))
            }
            (HtlcSource::Forwarded(prev), HtlcOutcome::Failed(failure)) => {
                (prev, Resolution::Fail(failure))
            }
        };
        let work = Work::Resolve(HtlcResolution {
            channel_id: prev.channel_id,
            htlc_id: prev.htlc_id,
            resolution,
        });
        self.work(prev.node_id, work);
    }

    /// Records an event.
    pub(crate) fn event(&mut self, event: Event) {
        let event = self.ctx.seq.new_event(event);
        self.out.events.push(event);
    }

    /// Work for another peer (or this one, later).
    pub(crate) fn work(&mut self, node_id: NodeId, work: Work) {
        let item = self.ctx.seq.new_work(node_id, work);
        self.out.work.push(item);
    }

    /// Ends every channel's window of retransmissions from this peer
    /// (`Channel::negotiation_held`): a close it held back goes on
    /// when the channel is polled.
    pub(crate) fn end_resume_windows(&mut self) -> Result<(), StoreError> {
        let open: Vec<ChannelId> = (self.ps.channels.iter())
            .filter(|(_, c)| c.negotiation_held())
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            self.on_channel(&id, true, |c, _| {
                c.end_resume_window();
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Queues a message for this peer.
    pub(crate) fn send(&mut self, msg: Message) {
        self.out.newly_listed |= self.ps.send(msg);
    }

    pub(crate) fn outbox_start(&self) -> usize {
        self.outbox_start
    }

    /// Polls every touched channel once (sign pending changes, move a close
    /// along, publish its snapshot), turns closed ones into records, and
    /// returns the outcome with the writes that must be made durable.
    pub(crate) fn finish(mut self) -> Outcome {
        // Polling may close more channels (a failed negotiation) but never
        // touches new ones, so one pass over the list suffices.
        for (id, funded) in std::mem::take(&mut self.touched) {
            self.poll(id, funded);
        }
        for id in std::mem::take(&mut self.closed_touched) {
            self.write_closed(id);
        }
        if self.ctx.durable {
            let out = &mut self.out;
            out.writes.extend(out.work.iter().map(|w| {
                (
                    Key::Work(w.id),
                    Some(crate::persist::frame(&crate::persist::codec::encode_work(
                        w,
                    ))),
                )
            }));
            out.writes.extend(
                out.consumed
                    .iter()
                    .filter(|id| **id != 0)
                    .map(|id| (Key::Work(*id), None)),
            );
            out.writes.extend(out.events.iter().map(|(seq, e)| {
                (
                    Key::Event(*seq),
                    Some(crate::persist::frame(&crate::persist::codec::encode_event(
                        e,
                    ))),
                )
            }));
        }
        self.out
    }

    fn poll(&mut self, id: ChannelId, funded: bool) {
        let config = self.ctx.config;
        let durable = self.ctx.durable;
        let map = if funded {
            &mut self.ps.channels
        } else {
            &mut self.ps.unfunded
        };
        let Some(channel) = map.get_mut(&id) else {
            return;
        };
        let mut effects = Effects::default();
        if let Some(fee) = channel.release_held_fee(config) {
            effects.msgs.push(Message::UpdateFee(fee));
        }
        match channel.send_commitment() {
            Ok(Some(cs)) => effects.msgs.push(Message::CommitmentSigned(cs)),
            Ok(None) => {}
            Err(e) => debug_assert!(false, "a funded channel can always sign: {e}"),
        }
        channel.close_when_history_full(config.max_revoked_htlcs_per_channel, &mut effects);
        if channel.phase != Phase::Closed {
            channel.progress_close(config, &mut effects);
        }
        channel.publish();
        if channel.phase != Phase::Closed {
            if funded {
                channel.maybe_build_tables(self.ctx.revocation_tables);
            }
            if durable && funded {
                super::durable::channel_writes(channel, &mut self.out.writes);
            }
            for msg in effects.msgs {
                self.out.newly_listed |= self.ps.send(msg);
            }
            for event in effects.events {
                self.event(event);
            }
            return;
        }
        let channel = map.remove(&id).expect("found above");
        for msg in effects.msgs {
            self.out.newly_listed |= self.ps.send(msg);
        }
        for event in effects.events {
            self.event(event);
        }
        self.close(*channel, funded);
    }

    /// A channel closed: its record replaces it (if anything is at stake),
    /// the HTLCs that can never go on chain are failed back, and the user
    /// is told what to do on chain. All in this section's batch.
    fn close(&mut self, channel: Channel, funded: bool) {
        let id = channel.channel_id;
        let closing = channel.closing();
        // A channel the peer opened, its funding never confirmed, leaves
        // the cap, unless its record takes its place there.
        let record_keeps_slot =
            (closing.record.as_ref()).is_some_and(|r| r.unconfirmed_since.is_some());
        if channel.holds_unconfirmed_slot() && !record_keeps_slot {
            self.ctx.inbound_unfunded.fetch_sub(1, Ordering::Relaxed);
        }
        if self.ctx.durable && funded {
            super::durable::channel_deletes(&channel, &mut self.out.writes);
        }
        if let Some(scid) = channel.short_channel_id {
            // Leaf lock, released at once.
            self.ctx.our_updates.remove(&scid);
        }
        self.out.index.push(IndexOp::Closed {
            id,
            scid: channel.short_channel_id,
            funded,
            keep_index: closing.record.is_some(),
        });
        for resolved in closing.resolved {
            self.pass_back(id, resolved);
        }
        for event in closing.events {
            self.event(event);
        }
        if let Some(record) = closing.record {
            self.ps.closed.insert(id, Box::new(record));
            self.closed_touched.push(id);
        }
    }

    /// Writes a changed closed-channel record, or deletes it once done.
    fn write_closed(&mut self, id: ChannelId) {
        let Some(record) = self.ps.closed.get(&id) else {
            return;
        };
        if record.is_done() {
            self.forget_closed(id);
        } else if self.ctx.durable {
            let bytes = crate::persist::frame(&crate::persist::codec::encode_closed(record));
            self.out.writes.push((Key::Closed(id), Some(bytes)));
        }
    }

    /// Deletes a closed channel's record (done, or expired).
    pub(crate) fn forget_closed(&mut self, id: ChannelId) {
        let Some(record) = self.ps.closed.remove(&id) else {
            return;
        };
        if record.unconfirmed_since.is_some() {
            self.ctx.inbound_unfunded.fetch_sub(1, Ordering::Relaxed);
        }
        self.out.index.push(IndexOp::Forgotten { id });
        self.out.maybe_idle = true;
        if self.ctx.durable {
            self.out.writes.push((Key::Closed(id), None));
        }
    }

    /// Adds a channel just created under its temporary id, with the message
    /// that goes with it (`open_channel` or `accept_channel`).
    pub(crate) fn add_unfunded(&mut self, channel: Channel, msg: Message) {
        let id = channel.channel_id;
        self.out.index.push(IndexOp::Created {
            id,
            cell: channel.snapshot.clone(),
        });
        self.ps.unfunded.insert(id, Box::new(channel));
        self.send(msg);
    }

    /// Moves a channel that just got its permanent id `id` from the unfunded
    /// map (under `temporary_id`) to the funded one, queues `msg` (the
    /// funding message that goes with it), and records the re-keying for
    /// the indexes and snapshots. The caller has claimed `id` in the index.
    pub(crate) fn promote_funded(&mut self, temporary_id: ChannelId, id: ChannelId, msg: Message) {
        let mut channel = self
            .ps
            .unfunded
            .remove(&temporary_id)
            .expect("the caller found it unfunded");
        // An inbound channel keeps its place under the unfunded caps until
        // its funding confirms (`Channel::holds_unconfirmed_slot`).
        channel.funding_height = self.ctx.height;
        self.out.index.push(IndexOp::Funded {
            temporary_id,
            id,
            cell: channel.snapshot.clone(),
        });
        self.ps.channels.insert(id, channel);
        self.send(msg);
        self.touch(id, true);
    }

    /// Marks a channel for polling without other effects.
    pub(crate) fn touch(&mut self, id: ChannelId, funded: bool) {
        self.take(id, funded, Effects::default());
    }
}

/// The work that fails an incoming HTLC back with `code`.
pub(crate) fn fail_back(prev: &crate::channel::PrevHop, code: FailureCode) -> Work {
    fail_back_with(prev, Failure::local(code))
}

/// The work that fails an incoming HTLC back with `failure`.
pub(crate) fn fail_back_with(prev: &crate::channel::PrevHop, failure: Failure) -> Work {
    Work::Resolve(HtlcResolution {
        channel_id: prev.channel_id,
        htlc_id: prev.htlc_id,
        resolution: Resolution::Fail(failure),
    })
}

/// Who failed a payment of ours, with which code and data: read from the
/// failure onion with the route's shared secrets (recomputed from the
/// session key), or from the first hop's `update_fail_malformed_htlc`, or
/// decided here (`us`).
fn attribute_failure(
    us: bitcoin::secp256k1::PublicKey,
    keys: Option<&SessionKeys>,
    failure: Failure,
) -> (Option<bitcoin::secp256k1::PublicKey>, FailureCode, Vec<u8>) {
    use crate::onion::failure::{decode_failure, DecodedFailure};
    match (failure, keys) {
        (Failure::Local { code, data }, _) => (Some(us), code, data),
        (Failure::Malformed { code, .. }, keys) => (
            keys.and_then(|k| k.path.first().copied()),
            FailureCode::from_code(code),
            Vec::new(),
        ),
        (Failure::Onion(reason), Some(keys)) => {
            let secrets = crate::onion::packet::shared_secrets(&keys.session_key, &keys.path)
                .unwrap_or_default();
            match decode_failure(&secrets, &reason) {
                DecodedFailure::Hop { index, code, data } => (
                    keys.path.get(index).copied(),
                    FailureCode::from_code(code),
                    data,
                ),
                DecodedFailure::Malformed { index } => (
                    keys.path.get(index).copied(),
                    FailureCode::Unreadable,
                    Vec::new(),
                ),
                _ => (None, FailureCode::Unreadable, Vec::new()),
            }
        }
        // A payment stored by version 0.1: plaintext codes.
        (Failure::Onion(reason), None) => {
            let code = match reason[..] {
                [hi, lo, ..] => FailureCode::from_code(u16::from_be_bytes([hi, lo])),
                _ => FailureCode::Unreadable,
            };
            (None, code, Vec::new())
        }
    }
}
