//! Reconnection: `channel_reestablish` (BOLT 2, message retransmission).
//!
//! On disconnection a funded channel *pauses*: the peer's uncommitted
//! updates are forgotten (`drop_uncommitted_remote_updates`), nothing is sent
//! for the channel and the peer's messages for it are refused until its
//! `channel_reestablish` arrives. Then the two commitment counters tell each
//! side what the other missed, and it is retransmitted from the channel's
//! state (signatures are deterministic, so a retransmitted
//! `commitment_signed` is byte-for-byte the one that was lost):
//!
//! * our last `revoke_and_ack`, if the peer never got it;
//! * the updates our last `commitment_signed` covered and the
//!   `commitment_signed` itself, if the peer never got it, in the same
//!   relative order to the `revoke_and_ack` as first sent;
//! * then our updates that no `commitment_signed` covered yet.
//!
//! Numbers that prove the peer is ahead of us (we lost data: its
//! `your_last_per_commitment_secret` is our own secret for a commitment we
//! never revoked) or that it lies fail the channel with an `error`.

use super::htlc::{HtlcKind, HtlcState, Removal};
use super::{Channel, Effects, Phase};
use crate::error::StoreError;
use crate::event::ClosureReason;
use crate::keys::INITIAL_COMMITMENT_INDEX;
use crate::message::{
    ChannelReady, ChannelReestablish, CommitmentSigned, Message, RevokeAndAck, Shutdown,
    UpdateAddHtlc, UpdateFailHtlc, UpdateFailMalformedHtlc, UpdateFee, UpdateFulfillHtlc,
};

impl Channel {
    /// Pauses the channel on disconnection (funded channels only).
    pub(crate) fn pause(&mut self) {
        self.drop_uncommitted_remote_updates();
        self.end_resume_window();
        if self.phase.is_funded() {
            self.paused = true;
            // A closing negotiation starts over after reconnection.
            if self.phase == Phase::Negotiating {
                self.phase = Phase::ShuttingDown;
                self.closing = Default::default();
            }
        }
    }

    /// The peer's retransmissions are over (see [`Channel::resuming`]): a
    /// close its `shutdown` held back may go on.
    pub(crate) fn end_resume_window(&mut self) {
        self.resuming = false;
        self.just_reestablished = false;
        self.shutdown_while_resuming = false;
    }

    /// Whether the peer may still send the adds it sent before its
    /// `shutdown`. LDK retransmits, after `channel_reestablish`, its
    /// `shutdown` first and then the updates and `commitment_signed` it had
    /// sent before it (`internal_channel_reestablish` queues `SendShutdown`
    /// before the commitment update); BOLT 2 fixes no order. So a peer's
    /// `shutdown` that is the first message after its `channel_reestablish`
    /// (new, or one we had: an earlier reconnection may have cut off the
    /// adds that followed it) lets its adds in until the window ends (its
    /// next `commitment_signed` or `closing_signed`, a `ping`, a timer
    /// tick), and holds the fee negotiation back until then: the peer's
    /// HTLCs would otherwise find it under way and be refused, the channel
    /// wedged on every reconnection. Such adds are failed back once
    /// committed if our own `shutdown` went out (`route_incoming`), as LDK
    /// fails them.
    pub(crate) fn takes_retransmitted_adds(&self) -> bool {
        self.resuming && self.shutdown_while_resuming
    }

    /// Whether the fee negotiation waits for the peer's retransmissions:
    /// while it may still send adds after its `shutdown`
    /// ([`Channel::takes_retransmitted_adds`]), and, right after its
    /// `channel_reestablish`, until its first message says whether a
    /// retransmitted `shutdown` leads them.
    pub(crate) fn negotiation_held(&self) -> bool {
        self.resuming && (self.just_reestablished || self.shutdown_while_resuming)
    }

    /// The number of the next `revoke_and_ack` we expect: the one revoking
    /// the peer's current commitment, or the one before while we await it.
    fn next_revocation_number(&self) -> u64 {
        self.remote_commitment_number - u64::from(self.awaiting_revoke)
    }

    /// Our `channel_reestablish`, sent on reconnection.
    pub(crate) fn reestablish_message(&self) -> ChannelReestablish {
        let next_revocation_number = self.next_revocation_number();
        let your_last_per_commitment_secret = match next_revocation_number {
            0 => [0; 32],
            n => self
                .their_secrets
                .get_secret(INITIAL_COMMITMENT_INDEX - (n - 1))
                .unwrap_or([0; 32]),
        };
        ChannelReestablish {
            channel_id: self.channel_id,
            next_commitment_number: self.local_commitment_number + 1,
            next_revocation_number,
            your_last_per_commitment_secret,
            my_current_per_commitment_point: self
                .signer
                .commitment_point(self.local_commitment_number),
        }
    }

    /// The peer's `channel_reestablish`: retransmit what it missed, or fail
    /// the channel if its numbers cannot be reconciled with ours.
    pub(crate) fn handle_channel_reestablish(
        &mut self,
        msg: &ChannelReestablish,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        if !self.paused {
            return Err(self.wrong_state("channel_reestablish"));
        }
        let local = self.local_commitment_number;
        let remote = self.remote_commitment_number;
        // Their view of our revocations: the next one they expect is ours of
        // `local` (we revoked everything below it), or `local - 1` if our
        // last revoke_and_ack was lost.
        let their_rev = msg.next_revocation_number;
        if their_rev > local {
            let proves_we_are_behind = their_rev >= 1
                && their_rev - 1 <= crate::keys::INITIAL_COMMITMENT_INDEX
                && msg.your_last_per_commitment_secret
                    == self.signer.commitment_secret(their_rev - 1);
            if proves_we_are_behind {
                // BOLT 2: we must not broadcast our commitment (it is
                // revoked); the peer's will pay our output.
                self.paused = false;
                self.fail_with_error(
                    "peer proved it has a newer state: we lost data and must not broadcast",
                    ClosureReason::LostData,
                    effects,
                );
            } else {
                self.fail_channel("peer claims a revocation we never sent", effects);
            }
            return Ok(());
        }
        let expected_secret = if their_rev == 0 {
            [0; 32]
        } else {
            self.signer.commitment_secret(their_rev - 1)
        };
        if msg.your_last_per_commitment_secret != expected_secret {
            self.fail_channel("peer sent a wrong your_last_per_commitment_secret", effects);
            return Ok(());
        }
        let resend_raa = match local.checked_sub(1) {
            Some(last_revoked) if their_rev == last_revoked => true,
            _ if their_rev == local => false,
            _ => {
                self.fail_channel("peer's next_revocation_number is behind ours", effects);
                return Ok(());
            }
        };
        // Their view of our signatures: they expect our `remote + 1` next,
        // or still `remote` if our last commitment_signed was lost.
        let resend_cs = if msg.next_commitment_number == remote + 1 {
            false
        } else if msg.next_commitment_number == remote && self.awaiting_revoke && remote > 0 {
            true
        } else {
            self.fail_channel("peer's next_commitment_number does not match ours", effects);
            return Ok(());
        };

        self.paused = false;
        self.resuming = true;
        self.just_reestablished = true;
        if msg.next_commitment_number == 1 && local == 0 && self.sent_ready {
            effects.msgs.push(Message::ChannelReady(ChannelReady {
                channel_id: self.channel_id,
                second_per_commitment_point: self.signer.commitment_point(1),
            }));
        }
        let raa = resend_raa.then(|| RevokeAndAck {
            channel_id: self.channel_id,
            per_commitment_secret: self.signer.commitment_secret(local - 1),
            next_per_commitment_point: self.signer.commitment_point(local + 1),
        });
        let cs = if resend_cs {
            Some(self.last_commitment_signed()?)
        } else {
            None
        };
        // Our shutdown goes back where it was first sent: before the
        // updates no commitment_signed covered (we sent none before it:
        // BOLT 2 forbids a shutdown with unsigned updates), and before our
        // last commitment_signed too if that one came after it.
        let shutdown = self.local_shutdown_script.as_ref().map(|script| {
            Message::Shutdown(Shutdown {
                channel_id: self.channel_id,
                scriptpubkey: script.clone(),
            })
        });
        let shutdown_before_cs = resend_cs
            && self
                .shutdown_sent_at
                .is_some_and(|at| at < self.remote_commitment_number);
        if shutdown_before_cs {
            effects.msgs.extend(shutdown.clone());
        }
        match (raa, cs) {
            (Some(raa), Some(cs)) if self.cs_after_raa => {
                effects.msgs.push(Message::RevokeAndAck(raa));
                effects.msgs.extend(cs);
            }
            (Some(raa), Some(cs)) => {
                effects.msgs.extend(cs);
                effects.msgs.push(Message::RevokeAndAck(raa));
            }
            (Some(raa), None) => effects.msgs.push(Message::RevokeAndAck(raa)),
            (None, Some(cs)) => effects.msgs.extend(cs),
            (None, None) => {}
        }
        if !shutdown_before_cs {
            effects.msgs.extend(shutdown);
        }
        // Updates no commitment_signed covered: the peer forgot them.
        effects
            .msgs
            .extend(self.updates_in(&[HtlcState::SentAddHtlc, HtlcState::SentRemoveHtlc]));
        // Our policy again, on a channel that still forwards (as LDK does
        // after every reestablish, channelmanager.rs:11793-11803).
        effects.send_channel_update = self.phase == Phase::Normal && !self.shutdown_requested;
        Ok(())
    }

    /// Our last `commitment_signed` again, preceded by the updates it covered
    /// (the peer never got it, so it forgot them).
    fn last_commitment_signed(&self) -> Result<Vec<Message>, StoreError> {
        let point = self
            .their_current_point
            .ok_or_else(|| self.wrong_state("channel_reestablish"))?;
        let built = self.build_commitment(
            false,
            self.remote_commitment_number,
            &point,
            super::commit::unchanged,
        )?;
        let (signature, htlc_signatures) = self.sign_remote(&built)?;
        let mut msgs = self.updates_in(&[HtlcState::SentAddCommit, HtlcState::SentRemoveCommit]);
        msgs.push(Message::CommitmentSigned(CommitmentSigned {
            channel_id: self.channel_id,
            signature,
            htlc_signatures,
        }));
        Ok(msgs)
    }

    /// Our update messages for HTLCs (and the fee) in `states`: removals
    /// first (they only ever add to what we may spend), then the fee, then
    /// adds in id order.
    fn updates_in(&self, states: &[HtlcState]) -> Vec<Message> {
        let id = self.channel_id;
        let mut msgs = Vec::new();
        for h in self
            .htlcs
            .iter()
            .filter(|h| states.contains(&h.state) && !h.offered())
        {
            msgs.push(match &h.removal {
                Some(Removal::Fulfill(p)) => Message::UpdateFulfillHtlc(UpdateFulfillHtlc {
                    channel_id: id,
                    id: h.id,
                    payment_preimage: *p,
                }),
                Some(Removal::Fail(reason)) => Message::UpdateFailHtlc(UpdateFailHtlc {
                    channel_id: id,
                    id: h.id,
                    reason: reason.clone(),
                }),
                Some(Removal::Malformed {
                    code,
                    sha256_of_onion,
                }) => Message::UpdateFailMalformedHtlc(UpdateFailMalformedHtlc {
                    channel_id: id,
                    id: h.id,
                    sha256_of_onion: *sha256_of_onion,
                    failure_code: *code,
                }),
                None => continue,
            });
        }
        for fee in self
            .pending_fees
            .iter()
            .filter(|f| self.is_outbound && states.contains(&f.state))
        {
            msgs.push(Message::UpdateFee(UpdateFee {
                channel_id: id,
                feerate_per_kw: fee.feerate_per_kw,
            }));
        }
        let mut adds: Vec<_> = self
            .htlcs
            .iter()
            .filter(|h| states.contains(&h.state) && h.offered())
            .collect();
        adds.sort_by_key(|h| h.id);
        for h in adds {
            if let (HtlcKind::Offered { .. }, Some(onion)) = (&h.kind, &h.onion) {
                msgs.push(Message::UpdateAddHtlc(UpdateAddHtlc {
                    channel_id: id,
                    id: h.id,
                    amount_msat: h.amount_msat,
                    payment_hash: h.payment_hash,
                    cltv_expiry: h.cltv_expiry,
                    onion_routing_packet: onion.clone(),
                }));
            }
        }
        msgs
    }

    /// Fails the channel: `error` to the peer and `ChannelClosed`.
    fn fail_channel(&mut self, reason: &'static str, effects: &mut Effects) {
        // The peer is there (it sent channel_reestablish): tell it.
        self.paused = false;
        self.fail_with_error(
            reason,
            ClosureReason::ReestablishFailed {
                reason: reason.to_string(),
            },
            effects,
        );
    }
}
