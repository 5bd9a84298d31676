//! Closing: `shutdown`, the closing fee negotiation (BOLT 2 "Legacy Closing
//! Negotiation: `closing_signed`"), the peer's `error`, and force close.
//!
//! **Negotiation.** The funder proposes a fee for the closing transaction at
//! the channel's feerate, priced on the transaction's real weight (its
//! output scripts are known once both `shutdown`s are in). The receiver of
//! a proposal signs it only if it is within what it accepts: at least the
//! relay floor (`StoreConfig::min_closing_feerate_per_kw` on that weight; a closing
//! transaction below it would never confirm, and the channel's state would
//! be gone), and, for the funder, at most `max_feerate_per_kw` on that
//! weight. Otherwise it counter-proposes a fee strictly between the one it
//! received and the one it sent last, as BOLT 2 requires; if no such fee is
//! acceptable, the negotiation cannot converge and the channel is failed.
//! Each side signs the closing transaction trimmed at its own dust limit
//! (BOLT 3), and checks the peer's signature against the transaction the
//! peer signed.

use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::{Script, Transaction};

use super::htlc::HtlcState;
use super::{Channel, Effects, Phase};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::event::{ClosureReason, Event};
use crate::message::{ClosingSigned, ErrorMessage, Message, Shutdown};
use crate::transactions::{
    build_closing_transaction, commitment_sighash, funding_redeemscript, funding_spend_witness,
    sign, verify,
};

/// Output scripts BOLT 2 allows in `shutdown`.
fn is_standard_shutdown_script(script: &Script) -> bool {
    script.is_p2pkh()
        || script.is_p2sh()
        || script.is_p2wpkh()
        || script.is_p2wsh()
        || (script.is_witness_program()
            && script.witness_version().is_some_and(|v| v.to_num() >= 1))
}

/// Expected weight of a closing transaction paying `scripts` (both outputs
/// counted: an upper bound when one is trimmed): version, one input with an
/// empty script, the outputs, locktime, and the 2-of-2 witness with two
/// 73-byte signatures and the 71-byte funding script.
pub(crate) fn closing_weight(scripts: &[&Script]) -> u64 {
    let outputs: u64 = scripts
        .iter()
        .map(|s| 8 + bitcoin::VarInt(s.len() as u64).size() as u64 + s.len() as u64)
        .sum();
    // version 4, input count 1, input 41, output count 1, locktime 4.
    let base = 4 + 1 + 41 + 1 + outputs + 4;
    // marker and flag, then: item count, empty item, two signatures, script.
    let witness = 2 + 1 + 1 + (1 + 73) * 2 + (1 + 71);
    4 * base + witness
}

/// Which of the peer's two possible transactions a signature was over
/// (BOLT 3: a signer may leave out its own output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// Every output at or above the signer's dust limit.
    Full,
    /// The signer left out its own output.
    WithoutSigner,
}

impl Channel {
    /// The user asks to close: `shutdown` goes out as soon as no update of
    /// ours waits to be signed (BOLT 2 forbids it before).
    pub(crate) fn close(&mut self) -> Result<Effects, StoreError> {
        match self.phase {
            Phase::Normal | Phase::ShuttingDown if !self.shutdown_requested => {
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

    /// The peer's `shutdown`. BOLT 2 makes it send `shutdown` again after a
    /// reconnection: the same script again is accepted (and changes
    /// nothing), a different one is refused.
    pub(crate) fn handle_shutdown(&mut self, msg: &Shutdown) -> Result<(), StoreError> {
        if !matches!(
            self.phase,
            Phase::Normal | Phase::ShuttingDown | Phase::Negotiating
        ) {
            return Err(self.wrong_state("shutdown"));
        }
        if let Some(known) = &self.remote_shutdown_script {
            if *known == msg.scriptpubkey {
                return Ok(());
            }
            return Err(StoreError::InvalidShutdownScript {
                channel_id: self.channel_id,
            });
        }
        if self.phase == Phase::Negotiating {
            return Err(self.wrong_state("shutdown"));
        }
        if !is_standard_shutdown_script(&msg.scriptpubkey) {
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
        {
            self.phase = Phase::Negotiating;
            self.closing = Default::default();
            if self.is_outbound {
                let (min, max) = self.acceptable_closing_fees(config);
                let fee = (self.weight() * u64::from(self.feerate_per_kw) / 1000).clamp(min, max);
                self.propose_closing_fee(fee, effects);
            }
        }
    }

    fn weight(&self) -> u64 {
        let ours = self
            .local_shutdown_script
            .as_deref()
            .unwrap_or(Script::new());
        let theirs = self
            .remote_shutdown_script
            .as_deref()
            .unwrap_or(Script::new());
        closing_weight(&[ours, theirs])
    }

    /// The funder's balance in whole satoshis: the most a closing fee can be.
    fn funder_sat(&self) -> u64 {
        if self.is_outbound {
            self.to_local_msat / 1000
        } else {
            self.to_remote_msat / 1000
        }
    }

    /// The closing fees we accept: from the relay floor up to (as funder)
    /// the highest feerate we accept, never more than the funder has.
    fn acceptable_closing_fees(&self, config: &StoreConfig) -> (u64, u64) {
        let weight = self.weight();
        let floor = weight * u64::from(config.min_closing_feerate_per_kw) / 1000;
        let ceiling = if self.is_outbound {
            weight * u64::from(config.max_feerate_per_kw) / 1000
        } else {
            u64::MAX
        };
        let max = ceiling.min(self.funder_sat());
        (floor.min(max), max)
    }

    fn propose_closing_fee(&mut self, fee_sat: u64, effects: &mut Effects) {
        self.closing.our_fee_sat = Some(fee_sat);
        let tx = self.closing_tx(fee_sat, self.ours.dust_limit_sat, Variant::Full, true);
        effects.msgs.push(Message::ClosingSigned(ClosingSigned {
            channel_id: self.channel_id,
            fee_satoshis: fee_sat,
            signature: self.sign_closing(&tx),
        }));
    }

    /// The closing transaction paying `fee_sat` from the funder's output,
    /// trimmed at `dust_limit_sat`. `signer_is_us` says whose output
    /// [`Variant::WithoutSigner`] leaves out.
    fn closing_tx(
        &self,
        fee_sat: u64,
        dust_limit_sat: u64,
        variant: Variant,
        signer_is_us: bool,
    ) -> Transaction {
        let ours = self.to_local_msat / 1000;
        let theirs = self.to_remote_msat / 1000;
        let (mut ours, mut theirs) = if self.is_outbound {
            (ours.saturating_sub(fee_sat), theirs)
        } else {
            (ours, theirs.saturating_sub(fee_sat))
        };
        if variant == Variant::WithoutSigner {
            if signer_is_us {
                ours = 0;
            } else {
                theirs = 0;
            }
        }
        let our_script = self
            .local_shutdown_script
            .as_deref()
            .unwrap_or(Script::new());
        let their_script = self
            .remote_shutdown_script
            .as_deref()
            .unwrap_or(Script::new());
        let (funder, fundee) = if self.is_outbound {
            ((ours, our_script), (theirs, their_script))
        } else {
            ((theirs, their_script), (ours, our_script))
        };
        build_closing_transaction(
            self.funding_outpoint
                .expect("negotiating channels are funded"),
            funder.0,
            fundee.0,
            funder.1,
            fundee.1,
            // An output of 0 (left out) is below any limit, and never
            // produced even with a zero limit.
            dust_limit_sat.max(1),
        )
    }

    fn closing_funding_script(&self) -> bitcoin::ScriptBuf {
        let theirs = self
            .their_keys
            .expect("negotiating channels have the peer's keys");
        funding_redeemscript(&self.signer.pubkeys.funding_pubkey, &theirs.funding_pubkey)
    }

    fn sign_closing(&self, tx: &Transaction) -> Signature {
        let sighash = commitment_sighash(tx, &self.closing_funding_script(), self.funding_sat);
        sign(&sighash, &self.signer.funding_key)
    }

    /// The transaction the peer's signature is over, if it is valid for one
    /// of the two transactions BOLT 3 lets it sign at this fee.
    fn peer_signed_closing(&self, fee_sat: u64, signature: &Signature) -> Option<Transaction> {
        let theirs = self.their_keys?.funding_pubkey;
        [Variant::Full, Variant::WithoutSigner]
            .into_iter()
            .map(|v| self.closing_tx(fee_sat, self.theirs.dust_limit_sat, v, false))
            .find(|tx| {
                !self.verify_signatures
                    || verify(
                        &commitment_sighash(tx, &self.closing_funding_script(), self.funding_sat),
                        signature,
                        &theirs,
                    )
            })
    }

    /// The peer's `closing_signed`: agree, counter-propose, or refuse.
    pub(crate) fn handle_closing_signed(
        &mut self,
        config: &StoreConfig,
        msg: &ClosingSigned,
    ) -> Result<Effects, StoreError> {
        if self.phase != Phase::Negotiating {
            return Err(self.wrong_state("closing_signed"));
        }
        let fee = msg.fee_satoshis;
        if fee > self.funder_sat() {
            return Err(StoreError::UnacceptableParameter {
                channel_id: self.channel_id,
                parameter: "fee_satoshis",
                value: fee,
                limit: self.funder_sat(),
            });
        }
        let tx =
            self.peer_signed_closing(fee, &msg.signature)
                .ok_or(StoreError::InvalidSignature {
                    channel_id: self.channel_id,
                    what: "closing",
                })?;
        let mut effects = Effects::default();
        let (min, max) = self.acceptable_closing_fees(config);
        let agreed = self.closing.our_fee_sat == Some(fee);
        // What we would sign must leave out nothing our own dust limit keeps
        // and keep nothing it trims.
        let ours_too = self.closing_tx(fee, self.ours.dust_limit_sat, Variant::Full, true);
        let same_outputs = ours_too.output == tx.output
            || tx
                .output
                .iter()
                .all(|o| o.value.to_sat() >= self.ours.dust_limit_sat);
        if agreed || (fee >= min && fee <= max && same_outputs) {
            if !agreed {
                // Accept: answer with the same fee.
                self.propose_closing_fee(fee, &mut effects);
            }
            self.finish_closing(tx, &msg.signature, fee, &mut effects);
            return Ok(effects);
        }
        self.closing.their_offer = Some((fee, msg.signature));
        // Counter-propose: strictly between their fee and the one we sent
        // last (BOLT 2), as close to theirs as we accept.
        let target = fee.clamp(min, max);
        let counter = match self.closing.our_fee_sat {
            None => Some(target),
            Some(last) => {
                let (lo, hi) = (last.min(fee), last.max(fee));
                (target > lo && target < hi).then_some(target)
            }
        };
        match counter {
            Some(counter) if counter != fee => self.propose_closing_fee(counter, &mut effects),
            _ => self.fail_with_error(
                "closing fee negotiation cannot converge",
                ClosureReason::ClosingNegotiationFailed { their_fee_sat: fee },
                &mut effects,
            ),
        }
        Ok(effects)
    }

    /// Both sides signed `tx` (the peer's variant at `fee`): the channel is
    /// closed cooperatively with it.
    fn finish_closing(
        &mut self,
        mut tx: Transaction,
        their_sig: &Signature,
        fee: u64,
        effects: &mut Effects,
    ) {
        let our_sig = self.sign_closing(&tx);
        let theirs = self
            .their_keys
            .expect("negotiating channels have the peer's keys")
            .funding_pubkey;
        tx.input[0].witness = funding_spend_witness(
            &our_sig,
            &self.signer.pubkeys.funding_pubkey,
            their_sig,
            &theirs,
        );
        self.closing_tx = Some(tx);
        effects
            .events
            .extend(self.closed_with(ClosureReason::Cooperative {
                closing_tx_fee_sat: fee,
            }));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_weight_counts_the_real_scripts() {
        let p2wpkh = bitcoin::ScriptBuf::from_bytes(vec![0; 22]);
        let p2wsh = bitcoin::ScriptBuf::from_bytes(vec![0; 34]);
        // Two P2WPKH outputs of 31 bytes each.
        assert_eq!(closing_weight(&[&p2wpkh, &p2wpkh]), 4 * (51 + 62) + 224);
        assert_eq!(
            closing_weight(&[&p2wpkh, &p2wsh]) - closing_weight(&[&p2wpkh, &p2wpkh]),
            4 * 12
        );
    }
}
