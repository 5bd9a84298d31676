//! `update_fee` (BOLT 2 "Updating Fees"): the funder's proposals, sent or
//! received, each moving through the commitment round trips like an add the
//! funder offered.
//!
//! **Several at once.** BOLT 2 lets the funder send `update_fee` at any time,
//! and a commitment takes the feerate of the *latest* update it includes. So a
//! second update may arrive (or be sent) while the first is still in flight:
//! LDK sends the next one as soon as the previous one's revocation frees its
//! holding cell (lightning 0.2.7 `send_update_fee`), while the fundee may
//! still wait for the funder's last revocation. The channel keeps every
//! pending update, oldest first, each in its own state:
//!
//! * a new update replaces one in the same state (neither is in any
//!   commitment yet: only the latest counts);
//! * a commitment's feerate is that of the newest update present in it, or
//!   the committed one;
//! * once an update is irrevocably committed on both sides it becomes the
//!   committed feerate, and it and every older one are dropped.
//!
//! States move in lock step, so two updates can only ever share a state by
//! being in no commitment yet, which the first rule forbids: at most one
//! update per state, a handful in all.
//!
//! **Ours wait for the revocation, as LDK's do.** As funder we send no
//! `update_fee` while we await the peer's `revoke_and_ack`: the update is
//! held ([`Channel::held_fee`], durable) and sent, checked again, once it
//! arrives. LDK as fundee keeps a single pending fee update: one that came
//! with our `commitment_signed` (committed on its side, waiting for our
//! revocation) is overwritten by a second `update_fee` sent before the
//! revocation came back, and LDK then prices our next commitment at the old
//! feerate, refused by us on every reconnection (`tests/ldk_interop.rs`
//! `reest_ldk_second_update_fee_before_revocation`).

use super::htlc::{HtlcState, Presence, Step};
use super::{Channel, FeeUpdate, Phase};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::message::UpdateFee;

/// Most fee updates a channel can hold at once: one per state of a funder's
/// add that is not final (five), which `check_consistency` enforces on
/// decoded channels.
pub(crate) const MAX_PENDING_FEES: usize = 5;

impl Channel {
    /// The funder proposes a new feerate. An earlier proposal of ours that is
    /// still in flight is no obstacle (the latest wins, BOLT 2); one that no
    /// `commitment_signed` carried yet is replaced. While we await the
    /// peer's `revoke_and_ack` it is held instead (`None`; see the module
    /// doc), replacing one held before.
    pub(crate) fn send_update_fee(
        &mut self,
        config: &StoreConfig,
        feerate_per_kw: u32,
    ) -> Result<Option<UpdateFee>, StoreError> {
        if !self.is_outbound || !self.is_usable() {
            return Err(self.wrong_state("update_fee"));
        }
        self.check_feerate(config, feerate_per_kw)?;
        self.check_new_feerate(feerate_per_kw, true, config.max_dust_htlc_exposure_msat)?;
        if self.awaiting_revoke {
            self.held_fee = Some(feerate_per_kw);
            return Ok(None);
        }
        self.held_fee = None;
        self.add_fee_update(feerate_per_kw, HtlcState::SentAddHtlc);
        Ok(Some(UpdateFee {
            channel_id: self.channel_id,
            feerate_per_kw,
        }))
    }

    /// The held `update_fee`, once the revocation it waited for came: sent
    /// now if it is still one we may send (checked again: HTLCs added
    /// meanwhile may make it one the funder cannot pay, or the channel may
    /// be closing), else dropped, as LDK drops a fee its holding cell can no
    /// longer send.
    pub(crate) fn release_held_fee(&mut self, config: &StoreConfig) -> Option<UpdateFee> {
        if self.awaiting_revoke || self.paused {
            return None;
        }
        let feerate_per_kw = self.held_fee.take()?;
        self.send_update_fee(config, feerate_per_kw).ok().flatten()
    }

    /// The funder's `update_fee`. Only the funder may send it; one that
    /// arrives while earlier ones are still in flight is taken too (it
    /// replaces one not yet covered by a `commitment_signed`).
    pub(crate) fn handle_update_fee(
        &mut self,
        config: &StoreConfig,
        msg: &UpdateFee,
    ) -> Result<(), StoreError> {
        if self.is_outbound
            || !self.received_ready
            || !matches!(self.phase, Phase::Normal | Phase::ShuttingDown)
        {
            return Err(self.wrong_state("update_fee"));
        }
        self.check_feerate(config, msg.feerate_per_kw)?;
        self.check_new_feerate(
            msg.feerate_per_kw,
            false,
            config.max_dust_htlc_exposure_msat,
        )?;
        self.add_fee_update(msg.feerate_per_kw, HtlcState::RcvdAddHtlc);
        Ok(())
    }

    pub(super) fn check_feerate(
        &self,
        config: &StoreConfig,
        feerate: u32,
    ) -> Result<(), StoreError> {
        let (min, max) = (config.min_feerate_per_kw, config.max_feerate_per_kw);
        if feerate < min || feerate > max {
            let limit = if feerate < min { min } else { max };
            return Err(StoreError::UnacceptableParameter {
                channel_id: self.channel_id,
                parameter: "feerate_per_kw",
                value: feerate.into(),
                limit: limit.into(),
            });
        }
        Ok(())
    }

    /// Adds a fee update in `state` (the first of its direction), replacing
    /// one already in that state.
    fn add_fee_update(&mut self, feerate_per_kw: u32, state: HtlcState) {
        self.pending_fees.retain(|f| f.state != state);
        self.pending_fees.push(FeeUpdate {
            feerate_per_kw,
            state,
        });
    }

    /// The feerate of a commitment in which each update is as `presence`
    /// says: the newest update present, or the committed feerate.
    pub(crate) fn feerate_where(&self, presence: impl Fn(HtlcState) -> Presence) -> u32 {
        self.pending_fees
            .iter()
            .rev()
            .find(|f| presence(f.state) == Presence::Present)
            .map_or(self.feerate_per_kw, |f| f.feerate_per_kw)
    }

    /// Moves every pending fee update by `step`; the newest that became
    /// irrevocably committed on both sides becomes the channel's feerate,
    /// and it and every older update go.
    pub(crate) fn step_fees(&mut self, step: fn(HtlcState) -> Step) {
        for fee in &mut self.pending_fees {
            if let Step::Now(next) = step(fee.state) {
                fee.state = next;
            }
        }
        let done = self.pending_fees.iter().rposition(|f| {
            matches!(
                f.state,
                HtlcState::SentAddAckRevocation | HtlcState::RcvdAddAckRevocation
            )
        });
        if let Some(i) = done {
            self.feerate_per_kw = self.pending_fees[i].feerate_per_kw;
            self.pending_fees.drain(..=i);
        }
        // Two in one state are in the same commitments from now on: the
        // newer decides them (unreachable while every received
        // commitment_signed is answered at once, kept as a guard).
        let mut seen = Vec::with_capacity(self.pending_fees.len());
        let mut i = self.pending_fees.len();
        while i > 0 {
            i -= 1;
            let state = self.pending_fees[i].state;
            if seen.contains(&state) {
                self.pending_fees.remove(i);
            } else {
                seen.push(state);
            }
        }
    }

    /// Every feerate the next commitments may have: the committed one and
    /// each pending update's.
    pub(crate) fn possible_feerates(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.feerate_per_kw)
            .chain(self.pending_fees.iter().map(|f| f.feerate_per_kw))
    }

    /// The feerate the peer, as funder, last proposed: what it knows its
    /// next updates will be priced at (the committed one if it proposed
    /// none since). Our own proposals do not count (we are then the funder,
    /// and the peer pays no fee).
    pub(crate) fn feerate_known_to_peer(&self) -> u32 {
        if self.is_outbound {
            return self.feerate_per_kw;
        }
        self.pending_fees
            .last()
            .map_or(self.feerate_per_kw, |f| f.feerate_per_kw)
    }

    /// Whether a fee update waits for our next `commitment_signed`.
    pub(crate) fn fee_awaits_our_commit(&self) -> bool {
        self.pending_fees
            .iter()
            .any(|f| f.state.awaits_our_commit())
    }

    /// Whether the peer sent a fee update no `commitment_signed` of its
    /// covered yet.
    pub(crate) fn fee_unsigned_by_peer(&self) -> bool {
        self.pending_fees
            .iter()
            .any(|f| f.state == HtlcState::RcvdAddHtlc)
    }

    /// What `check_consistency` requires of the pending fee updates: at most
    /// one per state, each a state of an add offered by the funder.
    pub(crate) fn fees_are_consistent(&self) -> bool {
        let mut seen = Vec::new();
        self.pending_fees.len() <= MAX_PENDING_FEES
            && self.pending_fees.iter().all(|f| {
                let fresh = !seen.contains(&f.state);
                seen.push(f.state);
                let direction_ok = f.state.offered_by_us() == self.is_outbound;
                let is_add = matches!(
                    f.state,
                    HtlcState::SentAddHtlc
                        | HtlcState::SentAddCommit
                        | HtlcState::RcvdAddRevocation
                        | HtlcState::RcvdAddAckCommit
                        | HtlcState::RcvdAddHtlc
                        | HtlcState::RcvdAddCommit
                        | HtlcState::SentAddRevocation
                        | HtlcState::SentAddAckCommit
                );
                fresh && direction_ok && is_add
            })
    }
}
