//! Payments to us: the HTLCs that pay one payment hash, gathered until
//! their sum reaches the `total_msat` their onions name (BOLT 4 basic
//! multi-part payments), then announced once with `PaymentReceived`.
//!
//! A set lives in memory only: it is rebuilt on restart from the HTLCs
//! themselves (each keeps its `payment_data`, in its channel or in its
//! closed channel's record), so nothing about it is written. Parts are
//! added under their own peer's lock; the set's `DashMap` entry is the one
//! lock taken inside it, for a few instructions. Parts that wait more than `StoreConfig::mpp_timeout_ticks`
//! calls of [`ChannelStore::timer_tick_occurred`] are failed back with
//! `mpp_timeout`.
//!
//! **Announced in the last part's batch.** A part joins its set inside its
//! section, before that section's batch is appended to the journal, and
//! another peer's section (on another thread) may complete the set
//! meanwhile. Each set lists the parts whose sections have not appended yet
//! ([`ClaimableSet::unappended`]); a section's append clears its own, under
//! the journal's lock, and the append that leaves a complete set with none
//! carries its `PaymentReceived` ([`parts_appended`]). A commit writes a
//! prefix of the batches, so the event is durable only with every part it
//! counts, and restart may take a set whose parts are all on disk as
//! announced. `claim_funds` takes only an announced set (it waits, holding
//! no lock, for one that is complete but not yet announced: the rest of one
//! section), so a claim, written before any part is fulfilled
//! (`resolve_set`), is durable only with the parts it fulfills. Without
//! this, the completing section announced the payment in its own batch: a
//! crash then could leave the event handed out and the late part's
//! commitment lost, the payment unclaimable; and a claim made at once was
//! durable without that part, which came back, restarted, as a new,
//! incomplete set and timed out while the preimage was out
//! (`tests/mpp_race.rs`).

use dashmap::DashMap;

use super::{ChannelStore, Container};
use crate::channel::Effects;
use crate::error::StoreError;
use crate::event::{ClosureReason, Event};
use crate::forward::Resolution;
use crate::onion::{Failure, FailureCode};
use crate::types::{ChannelId, NodeId, PaymentHash, PaymentPreimage, PaymentSecret};

/// One HTLC paying us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claimable {
    pub(crate) node_id: NodeId,
    pub(crate) channel_id: ChannelId,
    pub(crate) htlc_id: u64,
    pub(crate) amount_msat: u64,
    /// When its offerer may take it back: it is failed back
    /// `htlc_fail_back_buffer_blocks` before.
    pub(crate) cltv_expiry: u32,
}

/// The parts of one payment to us.
#[derive(Debug)]
pub(crate) struct ClaimableSet {
    pub(crate) parts: Vec<Claimable>,
    /// The secret every part must carry (`None` only for HTLCs stored by
    /// version 0.1, which had none).
    pub(crate) payment_secret: Option<PaymentSecret>,
    /// The total every part must name.
    pub(crate) total_msat: u64,
    /// The preimage, when we derived it (`create_inbound_payment`).
    pub(crate) preimage: Option<PaymentPreimage>,
    /// The parts reached `total_msat`: it takes no more.
    pub(crate) complete: bool,
    /// Complete, every part's batch appended, and `PaymentReceived`
    /// recorded (in the last of them): it may be claimed.
    pub(crate) announced: bool,
    /// Timer ticks it has waited incomplete.
    pub(crate) ticks: u32,
    /// Parts (channel, HTLC id) added by a section whose batch is not in the
    /// journal yet: a claim waits for them (see the module doc).
    pub(crate) unappended: Vec<(ChannelId, u64)>,
}

impl ClaimableSet {
    /// What its parts add up to.
    pub(crate) fn amount_msat(&self) -> u64 {
        self.parts.iter().map(|c| c.amount_msat).sum()
    }
}

/// What a part's onion said about the payment it belongs to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PartOf {
    pub(crate) payment_secret: Option<PaymentSecret>,
    pub(crate) total_msat: u64,
    pub(crate) preimage: Option<PaymentPreimage>,
}

/// What adding a part did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Added {
    /// It joined the set (which may now be complete): it is announced, if
    /// at all, when the section's batch is appended ([`parts_appended`]).
    Joined,
    /// This part was there already, or the set was complete before (a
    /// restored set): nothing to announce.
    Known,
    /// It does not belong with the parts there (another secret or total),
    /// or came after the set was complete: fail it back.
    Refused,
}

/// Adds `part` of the payment `hash` to its set.
pub(crate) fn add_part(
    claimables: &DashMap<PaymentHash, ClaimableSet>,
    hash: PaymentHash,
    part: Claimable,
    of: PartOf,
) -> Added {
    let mut set = claimables.entry(hash).or_insert_with(|| ClaimableSet {
        parts: Vec::new(),
        payment_secret: of.payment_secret,
        total_msat: of.total_msat,
        preimage: of.preimage,
        complete: false,
        announced: false,
        ticks: 0,
        unappended: Vec::new(),
    });
    if set.parts.contains(&part) {
        return Added::Known;
    }
    if set.payment_secret != of.payment_secret || set.total_msat != of.total_msat || set.complete {
        return Added::Refused;
    }
    set.unappended.push((part.channel_id, part.htlc_id));
    set.parts.push(part);
    set.complete = set.amount_msat() >= set.total_msat;
    Added::Joined
}

/// The parts of one payment to us found on restart, in live channels and
/// closed records, before they become a set again.
#[derive(Debug, Default)]
pub(crate) struct RestoredParts {
    parts: Vec<Claimable>,
    /// What the first part that kept its onion's `payment_data` said.
    of: Option<PartOf>,
}

impl RestoredParts {
    /// Adds a part; `of` is `None` for a part on chain whose record
    /// predates the records' `payment_data`.
    pub(crate) fn add(&mut self, part: Claimable, of: Option<PartOf>) {
        if !self.parts.contains(&part) {
            self.parts.push(part);
        }
        if self.of.is_none() {
            self.of = of;
        }
    }

    /// The set again. Every part joins it, whatever order the restart
    /// found them in: live, the set would have refused a part that came
    /// after it completed (an overpayment's extra part) or named another
    /// secret or total, but that part's failure was not durable, so the
    /// part is still pending and only its set can resolve it (claim, MPP
    /// timeout or deadline). A set whose parts reach its total was
    /// announced in the batch of its last part: it is claimable again,
    /// not announced again. Parts on chain from older records alone know
    /// no total: their set counts as announced (they were irrevocably
    /// committed; the user claims only after `PaymentReceived`).
    pub(crate) fn into_set(self) -> ClaimableSet {
        let amount_msat: u64 = self.parts.iter().map(|c| c.amount_msat).sum();
        let (payment_secret, total_msat, preimage, complete) = match self.of {
            Some(of) => (
                of.payment_secret,
                of.total_msat,
                of.preimage,
                amount_msat >= of.total_msat,
            ),
            None => (None, amount_msat, None, true),
        };
        ClaimableSet {
            parts: self.parts,
            payment_secret,
            total_msat,
            preimage,
            complete,
            announced: complete,
            ticks: 0,
            unappended: Vec::new(),
        }
    }
}

/// The section that added these parts (payment hash, channel, HTLC id) is
/// appending its batch: called under the journal's lock, it returns the
/// `PaymentReceived` of each set this leaves complete with every part
/// appended, for that batch (see the module doc).
pub(crate) fn parts_appended(
    claimables: &DashMap<PaymentHash, ClaimableSet>,
    parts: &[(PaymentHash, ChannelId, u64)],
) -> Vec<Event> {
    let mut announced = Vec::new();
    for (hash, channel_id, htlc_id) in parts {
        let Some(mut set) = claimables.get_mut(hash) else {
            continue;
        };
        set.unappended
            .retain(|(c, h)| !(c == channel_id && h == htlc_id));
        if set.complete && set.unappended.is_empty() && !set.announced {
            set.announced = true;
            announced.push(Event::PaymentReceived {
                payment_hash: *hash,
                amount_msat: set.amount_msat(),
                payment_preimage: set.preimage,
            });
        }
    }
    announced
}

/// Takes an HTLC out of its set (it was resolved on chain); the set goes
/// with its last part.
pub(crate) fn remove_part(
    claimables: &DashMap<PaymentHash, ClaimableSet>,
    hash: &PaymentHash,
    channel_id: &ChannelId,
    htlc_id: u64,
) {
    claimables.remove_if_mut(hash, |_, set| {
        set.parts
            .retain(|c| !(c.channel_id == *channel_id && c.htlc_id == htlc_id));
        set.parts.is_empty()
    });
}

impl<C: Container> ChannelStore<C> {
    /// Call about once a minute: the parts of multi-part payments to us
    /// that have waited `StoreConfig::mpp_timeout_ticks` ticks for the
    /// rest are failed back with `mpp_timeout` (BOLT 4), channels whose
    /// close has waited `StoreConfig::closing_negotiation_timeout_ticks`
    /// ticks for its fee negotiation alone are failed
    /// (`ClosureReason::ClosingNegotiationTimedOut`), and channels unfunded
    /// for `StoreConfig::unfunded_channel_age_limit_ticks` ticks are
    /// forgotten (`ClosureReason::UnfundedTimedOut`).
    ///
    /// **Locking behaviour:** the claimables' shards in turn, then each
    /// timed-out payment's peers one at a time, then, for each of our
    /// payments in flight, the peers its HTLCs went to, one at a time (no
    /// shard held: `paying.rs`), then each peer's lock in turn, one at a
    /// time.
    pub fn timer_tick_occurred(&self) {
        let limit = self.config.mpp_timeout_ticks;
        let mut timed_out = Vec::new();
        for mut set in self.claimables.iter_mut() {
            if !set.complete {
                set.ticks += 1;
                if set.ticks >= limit {
                    timed_out.push(*set.key());
                }
            }
        }
        for hash in timed_out {
            let _ = self.resolve_parts(
                hash,
                |set| !set.complete,
                Resolution::Fail(Failure::local(FailureCode::MppTimeout)),
            );
        }
        self.prune_paying();
        let config = &self.config;
        for peer in self.container.peers() {
            let _ = self.with_section(&peer, |s| {
                forget_aged_unfunded(s, config.unfunded_channel_age_limit_ticks)?;
                let closing: Vec<ChannelId> = (s.ps.channels.iter())
                    .filter(|(_, c)| c.waits_for_closing_fee())
                    .map(|(id, _)| *id)
                    .collect();
                for id in closing {
                    s.on_channel(&id, true, |c, e| {
                        c.closing_timer_tick(config, e);
                        Ok(())
                    })?;
                }
                Ok(())
            });
        }
        let _ = self.flush();
    }

    /// Takes the set of the payment `hash` out to be claimed once it is
    /// announced (see the module doc): a complete set not announced yet is
    /// waited for, yielding, holding no lock.
    pub(crate) fn take_claimable(
        &self,
        hash: PaymentHash,
    ) -> Result<ClaimableSet, crate::error::StoreError> {
        loop {
            // A section that panicked may never append its part.
            self.check_not_failed()?;
            let taken = (self.claimables).remove_if(&hash, |_, set| set.announced);
            if let Some((_, set)) = taken {
                return Ok(set);
            }
            // Complete but not announced when we looked: wait. Announced
            // since (its last part's append ran between the two looks):
            // take it on the next round. A complete set stays complete.
            let complete = (self.claimables.get(&hash)).is_some_and(|set| set.complete);
            if !complete {
                return Err(crate::error::StoreError::UnknownPayment { payment_hash: hash });
            }
            std::thread::yield_now();
        }
    }

    /// Resolves every part of the payment `hash` if its set passes
    /// `take`, each under its own peer's lock.
    pub(crate) fn resolve_parts(
        &self,
        hash: PaymentHash,
        take: impl FnOnce(&ClaimableSet) -> bool,
        resolution: Resolution,
    ) -> Result<(), crate::error::StoreError> {
        let (_, set) = self
            .claimables
            .remove_if(&hash, |_, set| take(set))
            .ok_or(crate::error::StoreError::UnknownPayment { payment_hash: hash })?;
        self.resolve_set(set, resolution, None);
        Ok(())
    }
}

/// One tick more for each unfunded channel of the peer; those at `limit`
/// are forgotten, with an `error` to the peer (as LDK does), and the user
/// told for the ones it opened (a peer's opens cost no durable event).
fn forget_aged_unfunded(s: &mut super::Section<'_>, limit: u32) -> Result<(), StoreError> {
    let aged: Vec<ChannelId> = (s.ps.unfunded.iter_mut())
        .filter_map(|(id, c)| {
            c.unfunded_ticks += 1;
            (c.unfunded_ticks >= limit).then_some(*id)
        })
        .collect();
    for id in aged {
        s.on_channel(&id, false, |c, e| {
            let mut failed = Effects::default();
            c.fail_with_error(
                "no funding within the unfunded channel age limit",
                ClosureReason::UnfundedTimedOut,
                &mut failed,
            );
            e.msgs.extend(failed.msgs);
            if c.is_outbound {
                e.events.extend(failed.events);
            }
            Ok(())
        })?;
    }
    Ok(())
}
