//! Closing: `shutdown`, the peer's `error`, and force close. The closing fee
//! negotiation that follows both `shutdown`s is in `negotiate.rs`.

use bitcoin::Script;

use super::htlc::HtlcState;
use super::{Channel, Effects, Phase};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::event::{ClosureReason, Event};
use crate::message::{ErrorMessage, Message, Shutdown};

/// Output scripts BOLT 2 allows in `shutdown`: a segwit v1+ program only
/// when both sides offered `option_shutdown_anysegwit` (`anysegwit`).
fn is_standard_shutdown_script(script: &Script, anysegwit: bool) -> bool {
    script.is_p2pkh()
        || script.is_p2sh()
        || script.is_p2wpkh()
        || script.is_p2wsh()
        || (anysegwit
            && script.is_witness_program()
            && script.witness_version().is_some_and(|v| v.to_num() >= 1))
}

impl Channel {
    /// The user asks to close: `shutdown` goes out as soon as no update of
    /// ours waits to be signed (BOLT 2 forbids it before). A channel whose
    /// first commitments are signed but that is not ready yet closes the
    /// same way (BOLT 2 allows `shutdown` once `funding_signed` is sent or
    /// received; LDK does it, and negotiates without `channel_ready`).
    pub(crate) fn close(&mut self) -> Result<Effects, StoreError> {
        match self.phase {
            Phase::AwaitingReady | Phase::Normal | Phase::ShuttingDown
                if !self.shutdown_requested =>
            {
                self.shutdown_requested = true;
                Ok(Effects::default())
            }
            // Nothing is at stake before both first commitments are signed.
            Phase::OpenSent
            | Phase::AcceptSent
            | Phase::AwaitingFundingTx
            | Phase::FundingCreatedSent => Ok(self.force_close()),
            _ => Err(self.wrong_state("close_channel")),
        }
    }

    /// The peer's `shutdown`, from `funding_signed` on (a channel not ready
    /// yet, too: see [`Channel::close`]). BOLT 2 makes it send `shutdown`
    /// again after a reconnection: the same script again is accepted (and
    /// changes nothing), a different one is refused. `anysegwit`: the peer
    /// offered `option_shutdown_anysegwit` (we always do).
    pub(crate) fn handle_shutdown(
        &mut self,
        msg: &Shutdown,
        anysegwit: bool,
    ) -> Result<(), StoreError> {
        if !matches!(
            self.phase,
            Phase::AwaitingReady | Phase::Normal | Phase::ShuttingDown | Phase::Negotiating
        ) {
            return Err(self.wrong_state("shutdown"));
        }
        if let Some(known) = &self.remote_shutdown_script {
            if *known == msg.scriptpubkey {
                // Retransmitted: the adds it came after may follow again
                // (a disconnection may have cut them off the last time).
                self.shutdown_while_resuming |= self.resuming && self.just_reestablished;
                return Ok(());
            }
            return Err(StoreError::InvalidShutdownScript {
                channel_id: self.channel_id,
            });
        }
        if self.phase == Phase::Negotiating {
            return Err(self.wrong_state("shutdown"));
        }
        if !is_standard_shutdown_script(&msg.scriptpubkey, anysegwit) {
            return Err(StoreError::InvalidShutdownScript {
                channel_id: self.channel_id,
            });
        }
        // BOLT 2: the sender must not have updates of its own that our
        // commitment does not cover yet (adds, removals, a fee update).
        let unsigned_by_peer = self
            .htlcs
            .iter()
            .any(|h| matches!(h.state, HtlcState::RcvdAddHtlc | HtlcState::RcvdRemoveHtlc))
            || self.fee_unsigned_by_peer();
        if unsigned_by_peer {
            return Err(self.wrong_state("shutdown"));
        }
        self.remote_shutdown_script = Some(msg.scriptpubkey.clone());
        self.shutdown_while_resuming = self.resuming && self.just_reestablished;
        self.shutdown_requested = true;
        self.phase = Phase::ShuttingDown;
        Ok(())
    }

    /// Sends our `shutdown` once allowed, and starts fee negotiation (funder)
    /// once both sides shut down and nothing is in flight.
    pub(crate) fn progress_close(&mut self, config: &StoreConfig, effects: &mut Effects) {
        if self.paused {
            return;
        }
        if self.shutdown_requested
            && self.local_shutdown_script.is_none()
            && !self.has_changes_to_sign()
        {
            let script = self.signer.shutdown_script();
            self.local_shutdown_script = Some(script.clone());
            self.shutdown_sent_at = Some(self.remote_commitment_number);
            self.phase = Phase::ShuttingDown;
            effects.msgs.push(Message::Shutdown(Shutdown {
                channel_id: self.channel_id,
                scriptpubkey: script,
            }));
        }
        let both_shut =
            self.local_shutdown_script.is_some() && self.remote_shutdown_script.is_some();
        if self.phase == Phase::ShuttingDown
            && both_shut
            && !self.has_pending_updates()
            && !self.awaiting_revoke
            && !self.negotiation_held()
        {
            self.phase = Phase::Negotiating;
            self.closing = Default::default();
            if self.is_outbound {
                self.open_negotiation(config, effects);
            }
        }
    }

    /// Whether the close waits for the closing fee negotiation alone: both
    /// `shutdown`s sent and nothing in flight (negotiating, or about to, or
    /// paused by a disconnection that restarts it).
    pub(crate) fn waits_for_closing_fee(&self) -> bool {
        matches!(self.phase, Phase::ShuttingDown | Phase::Negotiating)
            && self.local_shutdown_script.is_some()
            && self.remote_shutdown_script.is_some()
            && !self.has_pending_updates()
    }

    /// A timer tick. A close that has waited for its fee negotiation alone
    /// for `StoreConfig::closing_negotiation_timeout_ticks` ticks fails the
    /// channel: BOLT 2 makes a node fail the channel when no satisfying fee
    /// comes after a reasonable time, and a peer that answers with fees we
    /// refuse, or not at all, or that stays away, would otherwise hold the
    /// funds forever (LDK: `timer_check_closing_negotiation_progress`, two
    /// ticks). The count starts once both sides shut down and nothing is in
    /// flight, so HTLCs draining after `shutdown` never count; it goes on
    /// across disconnections, which restart the negotiation itself.
    pub(crate) fn closing_timer_tick(&mut self, config: &StoreConfig, effects: &mut Effects) {
        if !self.waits_for_closing_fee() {
            return;
        }
        if self.negotiation_held() {
            // The peer's retransmissions are long over: negotiate now. The
            // tick still counts: a peer that reconnects every tick would
            // otherwise hold the close forever.
            self.end_resume_window();
        }
        self.closing_ticks += 1;
        if self.closing_ticks >= config.closing_negotiation_timeout_ticks {
            self.fail_with_error(
                "closing fee negotiation did not finish in time",
                ClosureReason::ClosingNegotiationTimedOut,
                effects,
            );
        }
    }

    /// The peer's `error` for this channel: the channel is failed (our
    /// latest commitment is to be broadcast).
    pub(crate) fn handle_error(&mut self, msg: &ErrorMessage) -> Effects {
        let message: String = String::from_utf8_lossy(&msg.data)
            .chars()
            .filter(|c| !c.is_control())
            .take(256)
            .collect();
        Effects {
            events: self
                .closed_with(ClosureReason::CounterpartyError { message })
                .into_iter()
                .collect(),
            ..Effects::default()
        }
    }

    /// Closes the channel unilaterally: `error` to the peer, our latest
    /// commitment to be broadcast (see `closed.rs`). Unfunded channels are
    /// just forgotten.
    pub(crate) fn force_close(&mut self) -> Effects {
        let mut effects = Effects::default();
        self.fail_with_error(
            "channel closed by its owner",
            ClosureReason::LocallyForceClosed,
            &mut effects,
        );
        effects
    }

    /// Fails the channel for `reason`, telling the peer with an `error`.
    pub(crate) fn fail_with_error(
        &mut self,
        message: &str,
        reason: ClosureReason,
        effects: &mut Effects,
    ) {
        if self.phase == Phase::Closed {
            return;
        }
        effects.msgs.push(Message::Error(ErrorMessage {
            channel_id: self.channel_id,
            data: message.as_bytes().to_vec(),
        }));
        effects.events.extend(self.closed_with(reason));
    }

    /// Marks the channel closed; the `ChannelClosed` event, once.
    pub(crate) fn closed_with(&mut self, reason: ClosureReason) -> Option<Event> {
        if self.phase == Phase::Closed {
            return None;
        }
        self.closure = Some((reason.clone(), self.phase));
        self.phase = Phase::Closed;
        Some(Event::ChannelClosed {
            channel_id: self.channel_id,
            counterparty_node_id: self.counterparty,
            reason,
        })
    }
}
