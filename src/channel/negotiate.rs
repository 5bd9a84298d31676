//! The closing fee negotiation (BOLT 2 "Legacy Closing Negotiation:
//! `closing_signed`") and the closing transactions it signs (BOLT 3 "Legacy
//! Closing Transaction").
//!
//! **Ranges.** Every `closing_signed` we send carries `fee_range`: from the
//! relay floor (`StoreConfig::min_closing_feerate_per_kw` on the
//! transaction's weight, never zero) up to, as funder, what the commitment
//! transaction pays now plus [`FORCE_CLOSE_AVOIDANCE_SAT`] (a fundee that
//! does not pay picks the top of the overlap, as LDK does:
//! `channel.rs:10750-10757`), and never more than `max_feerate_per_kw` on
//! the weight or than the funder has. With a peer that
//! sends `fee_range` too (LDK always does) the negotiation converges as BOLT
//! 2 says: the fundee answers the funder's first offer with a fee in the
//! overlap of the two ranges, and the funder accepts any fee in the overlap
//! by replying with the same fee. A peer's fee outside its own range, or
//! (we are the funder) outside the overlap, and ranges with no overlap, are
//! refused with a precise error and change nothing. Without `fee_range` the
//! legacy rule applies: a counter-offer strictly between the last two fees.
//! We never sign a fee below our floor.
//!
//! **Dust.** Each signer trims the outputs below *its own* dust limit
//! (BOLT 3), and may leave out its own output. So:
//!
//! * we sign the transaction trimmed at our dust limit, and leave out our own
//!   output when it is not above the peer's limit (the peer would trim it
//!   anyway; LDK trims at `<=` its limit, lightning 0.2.7 `channel.rs:7217`
//!   and `7229`, where BOLT 3 says "below");
//! * a peer's signature is taken if it is over the transaction trimmed at the
//!   peer's limit (with or without the peer's own output, at `<` or LDK's
//!   `<=`), or over the transaction *we* sign at that fee: a peer that agrees
//!   with our fee signs ours. LDK does exactly that: it checks our signature
//!   against its own transaction, then against it without our output
//!   (`channel.rs:10638-10665`, `skip_remote_output`), and accepting our fee
//!   it signs the transaction that matched (`10695-10731`, `propose_fee!`).
//! * To agree with a peer's fee we sign *its* transaction, but only if it
//!   keeps nothing our dust limit trims and pays us what ours pays us;
//!   otherwise the fundee answers with a neighbouring fee (signed over our
//!   transaction, which the peer then signs back), and the funder, whom BOLT
//!   2 makes reply with the same fee, signs the peer's transaction if each of
//!   its outputs is above the dust limit of its script (BOLT 3 "Dust
//!   Limits", which a receiver must check anyway), or fails the channel.
//!
//! LDK 0.2.7 never checks a signature against a transaction trimmed at the
//! *signer's* limit: when our limit is above LDK's and LDK's own output lies
//! between the two, our (BOLT-conforming) signature is refused by LDK and it
//! fails the channel. Nothing we may sign avoids that (BOLT 3: "MUST remove
//! any output below its own `dust_limit_satoshis`").

use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::{OutPoint, Script, Transaction};

use super::{Channel, Effects, Phase};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::event::ClosureReason;
use crate::message::{ClosingFeeRange, ClosingSigned, Message};
use crate::transactions::{
    build_closing_transaction, commitment_fee_sat, commitment_sighash, funding_redeemscript,
    funding_spend_witness, sign, verify,
};

/// Expected weight of a closing transaction paying `scripts` (both outputs
/// counted: an upper bound when one is trimmed): version, one input with an
/// empty script, the outputs, locktime, and the 2-of-2 witness with two
/// signatures of at most 72 bytes (a low-S DER signature is at most 71,
/// plus the sighash byte) and the 71-byte funding script. LDK counts the
/// same (lightning 0.2.7 `channel.rs:7157-7184`), so both floors agree.
pub(crate) fn closing_weight(scripts: &[&Script]) -> u64 {
    let outputs: u64 = scripts
        .iter()
        .map(|s| 8 + bitcoin::VarInt(s.len() as u64).size() as u64 + s.len() as u64)
        .sum();
    // version 4, input count 1, input 41, output count 1, locktime 4.
    let base = 4 + 1 + 41 + 1 + outputs + 4;
    // marker and flag, then: item count, empty item, two signatures, script.
    let witness = 2 + 1 + 1 + (1 + 72) * 2 + (1 + 71);
    4 * base + witness
}

/// What the funder pays on top of the commitment's own fee rather than fail
/// the channel over a closing fee: LDK's default
/// `force_close_avoidance_max_fee_satoshis` (lightning 0.2.7
/// `util/config.rs:667`), which it adds to its own range as funder
/// (`channel.rs:10235-10246`).
pub(crate) const FORCE_CLOSE_AVOIDANCE_SAT: u64 = 1000;

/// Most closing transactions whose output to us a channel remembers
/// ([`Channel::signed_closings`]). A negotiation with `fee_range` signs at
/// most two, and one that starts over after a reconnection usually signs
/// the same again; a legacy negotiation moves at least one satoshi a round,
/// so a peer could make us sign many: past this, the oldest are forgotten.
pub(crate) const MAX_SIGNED_CLOSINGS: usize = 16;

/// BOLT 3 "Dust Limits": the smallest output Bitcoin Core relays for a
/// script of this form.
fn script_dust_limit(script: &Script) -> u64 {
    if script.is_p2pkh() {
        546
    } else if script.is_p2sh() {
        540
    } else if script.is_p2wpkh() {
        294
    } else if script.is_p2wsh() {
        330
    } else {
        354
    }
}

/// Whether `tx` can relay as a closing transaction: it has an output, and
/// every output is at least the relay dust of its script (BOLT 3 "Dust
/// Limits"). One below it (a P2PKH output of 400 sat, above both dust
/// limits of 354) makes the whole transaction non-standard: it never
/// relays, and a channel closed with it would be stuck.
fn would_relay(tx: &Transaction) -> bool {
    !tx.output.is_empty()
        && tx
            .output
            .iter()
            .all(|o| o.value.to_sat() >= script_dust_limit(&o.script_pubkey))
}

impl Channel {
    /// The real weight of our closing transaction: both shutdown scripts.
    pub(super) fn closing_weight(&self) -> u64 {
        closing_weight(&[self.our_closing_script(), self.their_closing_script()])
    }

    fn our_closing_script(&self) -> &Script {
        self.local_shutdown_script
            .as_deref()
            .unwrap_or(Script::new())
    }

    fn their_closing_script(&self) -> &Script {
        self.remote_shutdown_script
            .as_deref()
            .unwrap_or(Script::new())
    }

    /// The funder's balance in whole satoshis: the most a closing fee can be.
    fn funder_sat(&self) -> u64 {
        if self.is_outbound {
            self.to_local_msat / 1000
        } else {
            self.to_remote_msat / 1000
        }
    }

    /// The closing fees we accept, sent as our `fee_range`: from the relay
    /// floor (never zero) up to, as funder, the commitment's fee (or our
    /// proposal, if more) plus [`FORCE_CLOSE_AVOIDANCE_SAT`], within the
    /// highest feerate we accept; never more than the funder has. `None` if
    /// the funder cannot pay the floor.
    pub(super) fn closing_fee_range(&self, config: &StoreConfig) -> Option<ClosingFeeRange> {
        let weight = self.closing_weight();
        let floor = (weight * u64::from(config.min_closing_feerate_per_kw) / 1000).max(1);
        let ceiling = if self.is_outbound {
            let commitment = commitment_fee_sat(self.feerate_per_kw, 0, false);
            let proposal = weight * u64::from(self.feerate_per_kw) / 1000;
            (commitment.max(proposal) + FORCE_CLOSE_AVOIDANCE_SAT)
                .min(weight * u64::from(config.max_feerate_per_kw) / 1000)
        } else {
            u64::MAX
        };
        let max = ceiling.min(self.funder_sat());
        (floor <= max).then_some(ClosingFeeRange {
            min_fee_satoshis: floor,
            max_fee_satoshis: max,
        })
    }

    /// The funder opens the negotiation at the channel's feerate (within our range).
    pub(super) fn open_negotiation(&mut self, config: &StoreConfig, effects: &mut Effects) {
        let Some(range) = self.closing_fee_range(config) else {
            return self.cannot_close(0, effects);
        };
        let fee = (self.closing_weight() * u64::from(self.feerate_per_kw) / 1000)
            .clamp(range.min_fee_satoshis, range.max_fee_satoshis);
        self.offer(fee, range, effects);
    }

    /// Proposes `fee_sat` over our transaction; one with no output left
    /// (both trimmed) or with an output below its script's relay dust never
    /// relays, so the negotiation fails instead (and our commitment goes
    /// out).
    fn offer(&mut self, fee_sat: u64, range: ClosingFeeRange, effects: &mut Effects) {
        let tx = self.our_closing_tx(fee_sat);
        if !would_relay(&tx) {
            return self.cannot_close(fee_sat, effects);
        }
        self.send_closing_signed(fee_sat, &tx, range, effects);
    }

    /// Balances after the fee, in whole satoshis: (ours, theirs).
    fn closing_values(&self, fee_sat: u64) -> (u64, u64) {
        let ours = self.to_local_msat / 1000;
        let theirs = self.to_remote_msat / 1000;
        if self.is_outbound {
            (ours.saturating_sub(fee_sat), theirs)
        } else {
            (ours, theirs.saturating_sub(fee_sat))
        }
    }

    /// The closing transaction paying `fee_sat` from the funder's output,
    /// keeping each output for which `keep(is_ours, value)`.
    fn build_closing(&self, fee_sat: u64, keep: impl Fn(bool, u64) -> bool) -> Transaction {
        let (ours, theirs) = self.closing_values(fee_sat);
        let ours = if keep(true, ours) { ours } else { 0 };
        let theirs = if keep(false, theirs) { theirs } else { 0 };
        let (our_script, their_script) = (self.our_closing_script(), self.their_closing_script());
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
            // Only the outputs set to 0 above go.
            1,
        )
    }

    /// The transaction we sign at `fee_sat`: trimmed at our dust limit, and
    /// without our own output if it is not above the peer's limit.
    fn our_closing_tx(&self, fee_sat: u64) -> Transaction {
        let (mine, theirs) = (self.ours.dust_limit_sat, self.theirs.dust_limit_sat);
        self.build_closing(fee_sat, |is_ours, v| v >= mine && !(is_ours && v <= theirs))
    }

    /// Every transaction the peer's signature at `fee_sat` may be over: its
    /// BOLT 3 variants (trimmed at its limit, with or without its own
    /// output; also at LDK's `<=`), and ours.
    fn peer_candidates(&self, fee_sat: u64) -> Vec<Transaction> {
        let limit = self.theirs.dust_limit_sat;
        let mut txs = vec![
            self.build_closing(fee_sat, |_, v| v >= limit),
            self.build_closing(fee_sat, |is_ours, v| is_ours && v >= limit),
            self.build_closing(fee_sat, |_, v| v > limit),
            self.build_closing(fee_sat, |is_ours, v| is_ours && v > limit),
            self.our_closing_tx(fee_sat),
        ];
        let mut unique: Vec<Transaction> = Vec::with_capacity(txs.len());
        for tx in txs.drain(..) {
            if !unique.contains(&tx) {
                unique.push(tx);
            }
        }
        unique
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

    /// The transaction the peer's signature is over, if it is one it may sign.
    fn peer_signed_closing(&self, fee_sat: u64, signature: &Signature) -> Option<Transaction> {
        let theirs = self.their_keys?.funding_pubkey;
        let script = self.closing_funding_script();
        self.peer_candidates(fee_sat).into_iter().find(|tx| {
            !self.verify_signatures
                || verify(
                    &commitment_sighash(tx, &script, self.funding_sat),
                    signature,
                    &theirs,
                )
        })
    }

    /// Whether `tx` (the peer's, at `fee_sat`) is one we sign as it is: it
    /// keeps no output our dust limit trims and pays us what ours would.
    fn signable_as_ours(&self, tx: &Transaction, fee_sat: u64) -> bool {
        let ours = self.our_closing_tx(fee_sat);
        *tx == ours
            || (tx
                .output
                .iter()
                .all(|o| o.value.to_sat() >= self.ours.dust_limit_sat)
                && self.pays_us(tx, fee_sat) == self.pays_us(&ours, fee_sat))
    }

    fn pays_us(&self, tx: &Transaction, fee_sat: u64) -> bool {
        let value = self.closing_values(fee_sat).0;
        tx.output.iter().any(|o| {
            o.script_pubkey.as_script() == self.our_closing_script() && o.value.to_sat() == value
        })
    }

    /// Whether every output of `tx` relays (BOLT 3 "Dust Limits") and it
    /// pays us what ours would.
    fn relays(&self, tx: &Transaction, fee_sat: u64) -> bool {
        would_relay(tx)
            && self.pays_us(tx, fee_sat) == self.pays_us(&self.our_closing_tx(fee_sat), fee_sat)
    }

    /// Keeps our output in `tx`, which we are about to sign for the peer
    /// (see [`Channel::signed_closings`]); the oldest goes once there are
    /// [`MAX_SIGNED_CLOSINGS`] (they all pay our closing script).
    fn remember_signed_closing(&mut self, tx: &Transaction) {
        let txid = tx.compute_txid();
        let script = self.our_closing_script();
        let Some((vout, out)) = tx
            .output
            .iter()
            .enumerate()
            .find(|(_, o)| o.script_pubkey.as_script() == script)
        else {
            return;
        };
        let entry = (OutPoint::new(txid, vout as u32), out.value.to_sat());
        if self.signed_closings.contains(&entry) {
            return;
        }
        if self.signed_closings.len() == MAX_SIGNED_CLOSINGS {
            self.signed_closings.remove(0);
        }
        self.signed_closings.push(entry);
    }

    fn send_closing_signed(
        &mut self,
        fee_sat: u64,
        tx: &Transaction,
        range: ClosingFeeRange,
        effects: &mut Effects,
    ) -> Signature {
        self.closing.our_fee_sat = Some(fee_sat);
        self.remember_signed_closing(tx);
        let signature = self.sign_closing(tx);
        effects.msgs.push(Message::ClosingSigned(ClosingSigned {
            channel_id: self.channel_id,
            fee_satoshis: fee_sat,
            signature,
            fee_range: Some(range),
        }));
        signature
    }

    /// The peer's `closing_signed`: agree, counter-propose, or refuse.
    pub(crate) fn handle_closing_signed(
        &mut self,
        config: &StoreConfig,
        msg: &ClosingSigned,
    ) -> Result<Effects, StoreError> {
        if self.negotiation_held() && self.waits_for_closing_fee() {
            return self.negotiate_after_resuming(config, msg);
        }
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
        if let Some(r) = msg.fee_range {
            if fee < r.min_fee_satoshis || fee > r.max_fee_satoshis {
                return Err(self.out_of_range(fee, r.min_fee_satoshis, r.max_fee_satoshis));
            }
        }
        let tx =
            self.peer_signed_closing(fee, &msg.signature)
                .ok_or(StoreError::InvalidSignature {
                    channel_id: self.channel_id,
                    what: "closing",
                })?;
        let mut effects = Effects::default();
        // The peer signed the fee we proposed last: done.
        if self.closing.our_fee_sat == Some(fee) {
            if self.signable_as_ours(&tx, fee) || self.relays(&tx, fee) {
                self.finish_closing(tx, &msg.signature, None, fee, &mut effects);
            } else {
                self.cannot_close(fee, &mut effects);
            }
            return Ok(effects);
        }
        let Some(ours) = self.closing_fee_range(config) else {
            self.cannot_close(fee, &mut effects);
            return Ok(effects);
        };
        match msg.fee_range {
            Some(theirs) => self.answer_range(fee, tx, msg, ours, theirs, &mut effects)?,
            None => self.answer_legacy(fee, tx, msg, ours, &mut effects),
        }
        Ok(effects)
    }

    /// A `closing_signed` while the negotiation waited for the peer's
    /// retransmissions (`Channel::negotiation_held`): the peer negotiates,
    /// so they are over. The negotiation begins and the message is handled
    /// in it; if it is refused, the channel is as it was.
    fn negotiate_after_resuming(
        &mut self,
        config: &StoreConfig,
        msg: &ClosingSigned,
    ) -> Result<Effects, StoreError> {
        let held = (
            self.resuming,
            self.just_reestablished,
            self.shutdown_while_resuming,
        );
        self.end_resume_window();
        let mut effects = Effects::default();
        self.progress_close(config, &mut effects);
        if self.phase == Phase::Closed {
            // Our own range is empty: the negotiation failed as it began,
            // as it would have at the next poll; the message is moot.
            return Ok(effects);
        }
        match self.handle_closing_signed(config, msg) {
            Ok(answer) => {
                effects.msgs.extend(answer.msgs);
                effects.events.extend(answer.events);
                effects.incoming.extend(answer.incoming);
                effects.resolved.extend(answer.resolved);
                effects.send_channel_update |= answer.send_channel_update;
                Ok(effects)
            }
            Err(e) => {
                self.phase = Phase::ShuttingDown;
                self.closing = Default::default();
                (
                    self.resuming,
                    self.just_reestablished,
                    self.shutdown_while_resuming,
                ) = held;
                Err(e)
            }
        }
    }

    fn out_of_range(&self, fee_sat: u64, min_sat: u64, max_sat: u64) -> StoreError {
        StoreError::ClosingFeeOutOfRange {
            channel_id: self.channel_id,
            fee_sat,
            min_sat,
            max_sat,
        }
    }

    /// BOLT 2 with `fee_range` on both sides.
    fn answer_range(
        &mut self,
        fee: u64,
        tx: Transaction,
        msg: &ClosingSigned,
        ours: ClosingFeeRange,
        theirs: ClosingFeeRange,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        let lo = ours.min_fee_satoshis.max(theirs.min_fee_satoshis);
        let hi = ours.max_fee_satoshis.min(theirs.max_fee_satoshis);
        if lo > hi {
            return Err(StoreError::ClosingFeeRangesDisjoint {
                channel_id: self.channel_id,
                our_min_sat: ours.min_fee_satoshis,
                our_max_sat: ours.max_fee_satoshis,
                their_min_sat: theirs.min_fee_satoshis,
                their_max_sat: theirs.max_fee_satoshis,
            });
        }
        if self.is_outbound {
            // The funder takes any fee in the overlap, replying with it.
            if fee < lo || fee > hi {
                return Err(self.out_of_range(fee, lo, hi));
            }
            if self.signable_as_ours(&tx, fee) || self.relays(&tx, fee) {
                self.finish_closing(tx, &msg.signature, Some(ours), fee, effects);
            } else {
                self.cannot_close(fee, effects);
            }
            return Ok(());
        }
        // The fundee: once it proposed, the funder must take its fee.
        if let Some(sent) = self.closing.our_fee_sat {
            return Err(self.out_of_range(fee, sent, sent));
        }
        let target = fee.clamp(lo, hi);
        if target == fee && self.signable_as_ours(&tx, fee) {
            self.finish_closing(tx, &msg.signature, Some(ours), fee, effects);
            return Ok(());
        }
        // Their transaction keeps an output our limit trims: a neighbouring
        // fee, over ours, which the funder then signs back.
        let counter = if target != fee {
            Some(target)
        } else if fee < hi {
            Some(fee + 1)
        } else if fee > lo {
            Some(fee - 1)
        } else {
            None
        };
        match counter {
            Some(counter) => self.offer(counter, ours, effects),
            None => self.cannot_close(fee, effects),
        }
        Ok(())
    }

    /// BOLT 2 without `fee_range`: agree, or counter-propose strictly
    /// between the peer's fee and the one we sent last.
    fn answer_legacy(
        &mut self,
        fee: u64,
        tx: Transaction,
        msg: &ClosingSigned,
        ours: ClosingFeeRange,
        effects: &mut Effects,
    ) {
        let (min, max) = (ours.min_fee_satoshis, ours.max_fee_satoshis);
        if fee >= min && fee <= max && self.signable_as_ours(&tx, fee) {
            self.finish_closing(tx, &msg.signature, Some(ours), fee, effects);
            return;
        }
        self.closing.their_offer = Some((fee, msg.signature));
        let target = fee.clamp(min, max);
        let counter = match self.closing.our_fee_sat {
            None => Some(target),
            Some(last) => {
                let (lo, hi) = (last.min(fee), last.max(fee));
                (target > lo && target < hi).then_some(target)
            }
        };
        match counter {
            Some(counter) if counter != fee => self.offer(counter, ours, effects),
            _ => self.cannot_close(fee, effects),
        }
    }

    fn cannot_close(&mut self, their_fee_sat: u64, effects: &mut Effects) {
        self.fail_with_error(
            "closing fee negotiation cannot converge",
            ClosureReason::ClosingNegotiationFailed { their_fee_sat },
            effects,
        );
    }

    /// Both sides signed `tx` at `fee`: the channel is closed cooperatively
    /// with it, unless it would not relay (no output, or one below its
    /// script's relay dust): then the negotiation fails and our commitment
    /// goes out, as the closed record keeps no commitment to fall back on.
    /// With `reply`, our `closing_signed` with the same fee goes back first,
    /// signed over the same transaction (the one the peer signed).
    fn finish_closing(
        &mut self,
        mut tx: Transaction,
        their_sig: &Signature,
        reply: Option<ClosingFeeRange>,
        fee: u64,
        effects: &mut Effects,
    ) {
        if !would_relay(&tx) {
            return self.cannot_close(fee, effects);
        }
        let our_sig = match reply {
            Some(range) => self.send_closing_signed(fee, &tx, range, effects),
            None => self.sign_closing(&tx),
        };
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_weight_counts_the_real_scripts() {
        let p2wpkh = bitcoin::ScriptBuf::from_bytes(vec![0; 22]);
        let p2wsh = bitcoin::ScriptBuf::from_bytes(vec![0; 34]);
        // Two P2WPKH outputs of 31 bytes each; LDK's weight for the same
        // transaction (channel.rs:7157-7184): 426 + 2 * 4 * (9 + 22) = 674.
        assert_eq!(closing_weight(&[&p2wpkh, &p2wpkh]), 4 * (51 + 62) + 222);
        assert_eq!(closing_weight(&[&p2wpkh, &p2wpkh]), 674);
        assert_eq!(
            closing_weight(&[&p2wpkh, &p2wsh]) - closing_weight(&[&p2wpkh, &p2wpkh]),
            4 * 12
        );
    }

    #[test]
    fn script_dust_limits_are_bolt3s() {
        let p2wpkh = bitcoin::ScriptBuf::from_bytes([&[0x00, 0x14][..], &[7; 20]].concat());
        let p2wsh = bitcoin::ScriptBuf::from_bytes([&[0x00, 0x20][..], &[7; 32]].concat());
        let p2tr = bitcoin::ScriptBuf::from_bytes([&[0x51, 0x20][..], &[7; 32]].concat());
        let p2pkh = bitcoin::ScriptBuf::from_bytes(
            [&[0x76, 0xa9, 0x14][..], &[7; 20], &[0x88, 0xac]].concat(),
        );
        let p2sh = bitcoin::ScriptBuf::from_bytes([&[0xa9, 0x14][..], &[7; 20], &[0x87]].concat());
        assert_eq!(script_dust_limit(&p2wpkh), 294);
        assert_eq!(script_dust_limit(&p2wsh), 330);
        assert_eq!(script_dust_limit(&p2tr), 354);
        assert_eq!(script_dust_limit(&p2pkh), 546);
        assert_eq!(script_dust_limit(&p2sh), 540);
    }
}
