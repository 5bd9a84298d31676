//! [`Section`]: one critical section under one peer's lock.
//!
//! Handlers change channels through a section; the section queues their
//! messages in the peer's outbox at once (so messages keep their order),
//! polls every touched channel once at the end (so one `commitment_signed`
//! covers every update of the batch), and returns an [`Outcome`]: the work
//! that must happen outside the lock (indexes, queues, events).

use bitcoin::secp256k1::PublicKey;

use super::peer::PeerState;
use super::SnapshotCell;
use crate::channel::{Channel, Effects, IncomingHtlc, OutboundResolved, Phase};
use crate::error::StoreError;
use crate::event::Event;
use crate::forward::{Addressed, HtlcResolution};
use crate::message::Message;
use crate::types::{ChannelId, ShortChannelId};

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

/// What a section asks the store to do after the lock is released.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) events: Vec<Event>,
    pub(crate) incoming: Vec<(ChannelId, IncomingHtlc)>,
    pub(crate) resolved: Vec<(ChannelId, OutboundResolved)>,
    pub(crate) index: Vec<IndexOp>,
    /// Work for other peers (fail-backs of forwards this peer refused).
    pub(crate) work: Vec<Addressed>,
    /// Resolutions whose incoming channel is gone: they must be settled on chain.
    pub(crate) unresolvable: Vec<HtlcResolution>,
    /// The outbox went from empty to not: the container must be told.
    pub(crate) newly_listed: bool,
}

/// One peer's state, borrowed for one critical section.
pub(crate) struct Section<'a> {
    pub(crate) ps: &'a mut PeerState,
    pub(crate) node: PublicKey,
    pub(crate) out: Outcome,
    /// Channels to poll at the end: (current id, is it in the funded map).
    touched: Vec<(ChannelId, bool)>,
}

impl<'a> Section<'a> {
    pub(crate) fn new(ps: &'a mut PeerState, node: PublicKey) -> Self {
        Section {
            ps,
            node,
            out: Outcome::default(),
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
        self.out.events.extend(effects.events);
        self.out
            .incoming
            .extend(effects.incoming.into_iter().map(|h| (id, h)));
        self.out
            .resolved
            .extend(effects.resolved.into_iter().map(|r| (id, r)));
        if !self.touched.contains(&(id, funded)) {
            self.touched.push((id, funded));
        }
    }

    /// Queues a message for this peer.
    pub(crate) fn send(&mut self, msg: Message) {
        self.out.newly_listed |= self.ps.send(msg);
    }

    /// Polls every touched channel once (sign pending changes, move a close
    /// along, publish its snapshot), drops closed ones, and returns the outcome.
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
            let really_funded = channel.phase.is_funded() || channel.funding_outpoint.is_some();
            for msg in effects.msgs {
                self.out.newly_listed |= self.ps.send(msg);
            }
            self.out.events.extend(effects.events);
            if closed {
                let map = if funded {
                    &mut self.ps.channels
                } else {
                    &mut self.ps.unfunded
                };
                map.remove(&id);
                self.out.index.push(IndexOp::Closed {
                    id,
                    scid,
                    funded: funded && really_funded,
                });
            }
        }
        self.out
    }

    /// Marks a channel for polling without other effects.
    pub(crate) fn touch(&mut self, id: ChannelId, funded: bool) {
        self.take(id, funded, Effects::default());
    }
}

impl Phase {
    /// Whether a closed channel in this phase was ever funded (for tests of
    /// index clean-up); kept here to avoid widening `Phase`'s API.
    #[allow(dead_code)]
    pub(crate) fn was_funded(self) -> bool {
        self.is_funded()
    }
}
