//! [`Section`]: one critical section under one peer's lock.
//!
//! Handlers change channels through a section; the section queues their
//! messages in the peer's outbox at once (so messages keep their order),
//! turns resolved HTLCs into events or work for the peer they came from,
//! polls every touched channel once at the end (so one `commitment_signed`
//! covers every update of the batch), and returns an [`Outcome`]: the writes
//! that must be durable before the lock is released, and the work that must
//! happen after (indexes, queues, events).

use std::sync::atomic::{AtomicU64, Ordering};

use super::peer::PeerState;
use super::SnapshotCell;
use crate::channel::{
    Channel, Effects, HtlcSource, IncomingHtlc, OutboundResolved, Outcome as HtlcOutcome, Phase,
};
use crate::error::StoreError;
use crate::event::Event;
use crate::forward::{Addressed, HtlcResolution, Resolution, Work};
use crate::message::Message;
use crate::onion::FailureCode;
use crate::persist::{codec, frame, Key};
use crate::types::{ChannelId, NodeId, ShortChannelId};

/// Index and snapshot changes to make once the peer lock is released.
#[derive(Debug)]
pub(crate) enum IndexOp {
    /// A channel was created under its temporary id.
    Created { id: ChannelId, cell: SnapshotCell },
    /// A channel got its permanent id (already claimed in the index).
    Funded {
        temporary_id: ChannelId,
        id: ChannelId,
        cell: SnapshotCell,
    },
    /// A channel got its short channel id.
    Confirmed { scid: ShortChannelId, id: ChannelId },
    /// A channel closed and left the peer's state.
    Closed {
        id: ChannelId,
        scid: Option<ShortChannelId>,
        funded: bool,
    },
}

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

/// What a section asks the store to do after the lock is released.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) events: Vec<(u64, Event)>,
    pub(crate) incoming: Vec<(ChannelId, IncomingHtlc)>,
    pub(crate) index: Vec<IndexOp>,
    /// Work for other peers (resolutions, fail-backs).
    pub(crate) work: Vec<Addressed>,
    /// Persisted work items this section consumed.
    pub(crate) consumed: Vec<u64>,
    /// Resolutions whose incoming channel is gone: they must be settled on chain.
    pub(crate) unresolvable: Vec<HtlcResolution>,
    /// The outbox went from empty to not: the container must be told.
    pub(crate) newly_listed: bool,
    /// Writes to make durable before the lock is released.
    pub(crate) writes: Vec<(Key, Option<Vec<u8>>)>,
}

/// One peer's state, borrowed for one critical section.
pub(crate) struct Section<'a> {
    pub(crate) ps: &'a mut PeerState,
    pub(crate) out: Outcome,
    seq: &'a Sequences,
    /// Whether a persister wants this section's writes.
    durable: bool,
    /// Outbox length when the section began (to withdraw its messages if
    /// they cannot be made durable).
    outbox_start: usize,
    /// Channels to poll at the end: (current id, is it in the funded map).
    touched: Vec<(ChannelId, bool)>,
}

impl<'a> Section<'a> {
    pub(crate) fn new(ps: &'a mut PeerState, seq: &'a Sequences, durable: bool) -> Self {
        let outbox_start = ps.outbox.len();
        Section {
            ps,
            out: Outcome::default(),
            seq,
            durable,
            outbox_start,
            touched: Vec::new(),
        }
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
    /// state when `channel_reestablish` arrives.
    pub(crate) fn take(&mut self, id: ChannelId, funded: bool, effects: Effects) {
        let paused = self.channel(&id, funded).is_ok_and(|c| c.paused);
        for msg in effects.msgs {
            if !paused {
                self.send(msg);
            }
        }
        for event in effects.events {
            self.event(event);
        }
        self.out
            .incoming
            .extend(effects.incoming.into_iter().map(|h| (id, h)));
        for resolved in effects.resolved {
            self.pass_back(id, resolved);
        }
        if !self.touched.contains(&(id, funded)) {
            self.touched.push((id, funded));
        }
    }

    /// An HTLC we offered ended: report it, or send its resolution to the
    /// channel it came from. Done here, under the lock, so the resolution is
    /// durable in the same batch as the state that produced it.
    fn pass_back(&mut self, channel_id: ChannelId, resolved: OutboundResolved) {
        let hash = resolved.payment_hash;
        let (prev, resolution) = match (resolved.source, resolved.outcome) {
            (HtlcSource::Local { fee_msat }, HtlcOutcome::Fulfilled(preimage)) => {
                return self.event(Event::PaymentSent {
                    payment_hash: hash,
                    payment_preimage: preimage,
                    fee_paid_msat: fee_msat,
                })
            }
            (HtlcSource::Local { .. }, HtlcOutcome::Failed(reason)) => {
                return self.event(Event::PaymentFailed {
                    payment_hash: hash,
                    failure: FailureCode::from_reason(&reason),
                })
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
            (HtlcSource::Forwarded(prev), HtlcOutcome::Failed(reason)) => {
                (prev, Resolution::Fail(reason))
            }
        };
        let work = Work::Resolve(HtlcResolution {
            channel_id: prev.channel_id,
            htlc_id: prev.htlc_id,
            resolution,
        });
        let item = self.seq.new_work(prev.node_id, work);
        self.out.work.push(item);
    }

    /// Records an event.
    pub(crate) fn event(&mut self, event: Event) {
        let event = self.seq.new_event(event);
        self.out.events.push(event);
    }

    /// Work for another peer (or this one, later).
    pub(crate) fn work(&mut self, node_id: NodeId, work: Work) {
        let item = self.seq.new_work(node_id, work);
        self.out.work.push(item);
    }

    /// Queues a message for this peer.
    pub(crate) fn send(&mut self, msg: Message) {
        self.out.newly_listed |= self.ps.send(msg);
    }

    /// Takes back the messages this section queued (they depended on writes
    /// that failed).
    pub(crate) fn withdraw_messages(ps: &mut PeerState, from: usize) {
        ps.outbox.truncate(from);
        if ps.outbox.is_empty() {
            ps.listed = false;
        }
    }

    pub(crate) fn outbox_start(&self) -> usize {
        self.outbox_start
    }

    /// Polls every touched channel once (sign pending changes, move a close
    /// along, publish its snapshot), drops closed ones, and returns the
    /// outcome with the writes that must be made durable.
    pub(crate) fn finish(mut self) -> Outcome {
        for (id, funded) in std::mem::take(&mut self.touched) {
            let map = if funded {
                &mut self.ps.channels
            } else {
                &mut self.ps.unfunded
            };
            let Some(channel) = map.get_mut(&id) else {
                continue;
            };
            let mut effects = Effects::default();
            match channel.send_commitment() {
                Ok(Some(cs)) => effects.msgs.push(Message::CommitmentSigned(cs)),
                Ok(None) => {}
                Err(e) => debug_assert!(false, "a funded channel can always sign: {e}"),
            }
            channel.progress_close(&mut effects);
            channel.publish();
            let closed = channel.phase == Phase::Closed;
            let scid = channel.short_channel_id;
            if self.durable && funded {
                let value = (!closed).then(|| frame(&codec::encode_channel(channel)));
                self.out.writes.push((Key::Channel(id), value));
            }
            for msg in effects.msgs {
                self.out.newly_listed |= self.ps.send(msg);
            }
            for event in effects.events {
                self.event(event);
            }
            if closed {
                let map = if funded {
                    &mut self.ps.channels
                } else {
                    &mut self.ps.unfunded
                };
                map.remove(&id);
                self.out.index.push(IndexOp::Closed { id, scid, funded });
            }
        }
        if self.durable {
            let out = &mut self.out;
            out.writes.extend(
                out.work
                    .iter()
                    .map(|w| (Key::Work(w.id), Some(frame(&codec::encode_work(w))))),
            );
            out.writes.extend(
                out.consumed
                    .iter()
                    .filter(|id| **id != 0)
                    .map(|id| (Key::Work(*id), None)),
            );
            out.writes.extend(
                out.events
                    .iter()
                    .map(|(seq, e)| (Key::Event(*seq), Some(frame(&codec::encode_event(e))))),
            );
        }
        self.out
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
        let channel = self
            .ps
            .unfunded
            .remove(&temporary_id)
            .expect("the caller found it unfunded");
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
