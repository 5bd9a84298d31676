//! Closing: `shutdown`, `closing_signed`, the peer's `error`, and force close.
//!
//! Fee negotiation is the simplest BOLT 2 allows: the funder proposes a fee
//! for the closing transaction at the channel's feerate and the fundee
//! accepts any fee the funder can pay, answering with the same fee.

use bitcoin::Script;

use super::{Channel, Effects, Phase};
use crate::error::StoreError;
use crate::event::{ClosureReason, Event};
use crate::message::{ClosingSigned, ErrorMessage, Message, Shutdown};
use crate::transactions::{build_closing_transaction, commitment_sighash, sign, verify};

/// Weight of a closing transaction with two outputs, used to price its fee.
const CLOSING_TX_WEIGHT: u64 = 672;

/// Output scripts BOLT 2 allows in `shutdown`.
fn is_standard_shutdown_script(script: &Script) -> bool {
    script.is_p2pkh()
        || script.is_p2sh()
        || script.is_p2wpkh()
        || script.is_p2wsh()
        || (script.is_witness_program()
            && script.witness_version().is_some_and(|v| v.to_num() >= 1))
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

    /// The peer's `shutdown`.
    pub(crate) fn handle_shutdown(&mut self, msg: &Shutdown) -> Result<(), StoreError> {
        if !matches!(self.phase, Phase::Normal | Phase::ShuttingDown)
            || self.remote_shutdown_script.is_some()
        {
            return Err(self.wrong_state("shutdown"));
        }
        if !is_standard_shutdown_script(&msg.scriptpubkey) {
            return Err(StoreError::InvalidShutdownScript {
                channel_id: self.channel_id,
            });
        }
        // The peer must not leave its own updates unsigned when it shuts down.
        if self
            .htlcs
            .iter()
            .any(|h| matches!(h.state, super::htlc::HtlcState::RcvdAddHtlc))
        {
            return Err(self.wrong_state("shutdown"));
        }
        self.remote_shutdown_script = Some(msg.scriptpubkey.clone());
        self.shutdown_requested = true;
        self.phase = Phase::ShuttingDown;
        Ok(())
    }

    /// Sends our `shutdown` once allowed, and starts fee negotiation (funder)
    /// once both sides shut down and nothing is in flight.
    pub(crate) fn progress_close(&mut self, effects: &mut Effects) {
        if self.paused {
            return;
        }
        if self.shutdown_requested
            && self.local_shutdown_script.is_none()
            && !self.has_changes_to_sign()
        {
            let script = self.signer.shutdown_script();
            self.local_shutdown_script = Some(script.clone());
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
            if self.is_outbound {
                let fee = CLOSING_TX_WEIGHT * u64::from(self.feerate_per_kw) / 1000;
                let fee = fee.min(self.to_local_msat / 1000);
                self.closing_fee_sat = Some(fee);
                let signature = self.sign_closing(fee);
                effects.msgs.push(Message::ClosingSigned(ClosingSigned {
                    channel_id: self.channel_id,
                    fee_satoshis: fee,
                    signature,
                }));
            }
        }
    }

    /// The closing transaction paying `fee_sat` from the funder's side.
    fn closing_tx(&self, fee_sat: u64) -> bitcoin::Transaction {
        let (funder_msat, fundee_msat) = if self.is_outbound {
            (self.to_local_msat, self.to_remote_msat)
        } else {
            (self.to_remote_msat, self.to_local_msat)
        };
        let ours = self
            .local_shutdown_script
            .as_deref()
            .unwrap_or(Script::new());
        let theirs = self
            .remote_shutdown_script
            .as_deref()
            .unwrap_or(Script::new());
        let (funder_script, fundee_script) = if self.is_outbound {
            (ours, theirs)
        } else {
            (theirs, ours)
        };
        build_closing_transaction(
            self.funding_outpoint
                .expect("negotiating channels are funded"),
            funder_msat / 1000 - fee_sat,
            fundee_msat / 1000,
            funder_script,
            fundee_script,
            self.ours.dust_limit_sat.max(self.theirs.dust_limit_sat),
        )
    }

    fn closing_sighash(&self, fee_sat: u64) -> bitcoin::secp256k1::Message {
        let theirs = self
            .their_keys
            .expect("negotiating channels have the peer's keys");
        let script = crate::transactions::funding_redeemscript(
            &self.signer.pubkeys.funding_pubkey,
            &theirs.funding_pubkey,
        );
        commitment_sighash(&self.closing_tx(fee_sat), &script, self.funding_sat)
    }

    fn sign_closing(&self, fee_sat: u64) -> bitcoin::secp256k1::ecdsa::Signature {
        sign(&self.closing_sighash(fee_sat), &self.signer.funding_key)
    }

    /// The peer's `closing_signed`. The fundee accepts any fee the funder can
    /// pay and answers with the same fee; the funder expects its own fee back.
    pub(crate) fn handle_closing_signed(
        &mut self,
        msg: &ClosingSigned,
    ) -> Result<Effects, StoreError> {
        if self.phase != Phase::Negotiating {
            return Err(self.wrong_state("closing_signed"));
        }
        let funder_sat = if self.is_outbound {
            self.to_local_msat
        } else {
            self.to_remote_msat
        } / 1000;
        let acceptable = match self.closing_fee_sat {
            Some(ours) => msg.fee_satoshis == ours,
            None => !self.is_outbound && msg.fee_satoshis <= funder_sat,
        };
        if !acceptable {
            return Err(StoreError::UnacceptableParameter {
                channel_id: self.channel_id,
                parameter: "fee_satoshis",
                value: msg.fee_satoshis,
                limit: self.closing_fee_sat.unwrap_or(funder_sat),
            });
        }
        if self.verify_signatures {
            let theirs = self.their_keys("closing_signed")?.funding_pubkey;
            if !verify(
                &self.closing_sighash(msg.fee_satoshis),
                &msg.signature,
                &theirs,
            ) {
                return Err(StoreError::InvalidSignature {
                    channel_id: self.channel_id,
                    what: "closing",
                });
            }
        }
        let mut effects = Effects::default();
        if !self.is_outbound {
            effects.msgs.push(Message::ClosingSigned(ClosingSigned {
                channel_id: self.channel_id,
                fee_satoshis: msg.fee_satoshis,
                signature: self.sign_closing(msg.fee_satoshis),
            }));
        }
        self.phase = Phase::Closed;
        effects.events.push(Event::ChannelClosed {
            channel_id: self.channel_id,
            counterparty_node_id: self.counterparty,
            reason: ClosureReason::Cooperative {
                closing_tx_fee_sat: msg.fee_satoshis,
            },
        });
        Ok(effects)
    }

    /// The peer's `error` for this channel: the channel is failed.
    pub(crate) fn handle_error(&mut self, msg: &ErrorMessage) -> Effects {
        let message: String = String::from_utf8_lossy(&msg.data)
            .chars()
            .filter(|c| !c.is_control())
            .take(256)
            .collect();
        self.closed_with(ClosureReason::CounterpartyError { message })
    }

    /// Closes the channel unilaterally (the latest commitment would be
    /// broadcast; on-chain resolution is outside this crate).
    pub(crate) fn force_close(&mut self) -> Effects {
        self.closed_with(ClosureReason::LocallyForceClosed)
    }

    fn closed_with(&mut self, reason: ClosureReason) -> Effects {
        let mut effects = Effects::default();
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            effects.events.push(Event::ChannelClosed {
                channel_id: self.channel_id,
                counterparty_node_id: self.counterparty,
                reason,
            });
        }
        effects
    }
}
