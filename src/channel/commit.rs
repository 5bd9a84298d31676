//! The commitment round trip: `commitment_signed` and `revoke_and_ack`,
//! sent and received, and the commitment transactions they sign.
//!
//! A commitment is always built for the states the HTLCs *will* have once
//! the message is applied (`build_commitment` takes the transition as a
//! function), so a signature is checked before any state moves, and a bad one
//! changes nothing.

use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::PublicKey;

use super::htlc::{HtlcKind, HtlcState, Presence, Removal, Step};
use super::{Channel, Effects, IncomingHtlc, OutboundResolved, Outcome, Phase};
use crate::error::StoreError;
use crate::keys::{
    derive_private_key_from, derive_revocation_public_key_from_base_secret,
    derive_revocation_public_key_from_commitment_secret,
    derive_revocation_public_key_from_commitment_secret_with_table,
    derive_revocation_public_key_with_table, revealed_secret_point, INITIAL_COMMITMENT_INDEX,
};
use crate::message::{CommitmentSigned, RevokeAndAck};
use crate::onion::Failure;
use crate::transactions::{
    build_commitment_transaction, build_htlc_transaction, commitment_sighash, funding_redeemscript,
    htlc_sighash, is_trimmed, obscure_factor, sign, verify, CommitmentParams,
    CommitmentTransaction, HtlcOutputInCommitment, TxCreationKeys,
};

/// The transition "nothing happens": the commitment as it stands.
pub(crate) fn unchanged(state: HtlcState) -> Step {
    Step::Now(state)
}

/// A commitment transaction with what is needed to sign or check it.
pub(crate) struct BuiltCommitment {
    pub(crate) tx: CommitmentTransaction,
    pub(crate) keys: TxCreationKeys,
    /// Untrimmed HTLC outputs in output order, with their output index.
    pub(crate) htlc_outputs: Vec<(HtlcOutputInCommitment, u32)>,
    /// For each untrimmed HTLC, in the same order: its index in the
    /// channel's `htlcs`.
    pub(crate) htlc_sources: Vec<usize>,
    pub(crate) feerate_per_kw: u32,
    /// CSV delay on the broadcaster's outputs.
    pub(crate) to_self_delay: u16,
    /// The funder's balance in this commitment before it pays the fee.
    pub(crate) funder_msat: u64,
}

impl BuiltCommitment {
    /// The sighash of each untrimmed HTLC's second-stage transaction
    /// (HTLC-success or HTLC-timeout), in output order: what the
    /// countersignatory signs and the broadcaster checks.
    fn htlc_sighashes(&self) -> impl Iterator<Item = bitcoin::secp256k1::Message> + '_ {
        let txid = self.tx.tx.compute_txid();
        self.htlc_outputs.iter().map(move |(htlc, vout)| {
            let htlc_tx = build_htlc_transaction(
                &txid,
                *vout,
                htlc,
                self.feerate_per_kw,
                self.to_self_delay,
                &self.keys,
                false,
            );
            htlc_sighash(&htlc_tx, htlc, &self.keys, false)
        })
    }
}

impl Channel {
    /// Builds commitment `number` of our side (`local`) or the peer's, with
    /// every HTLC (and the pending fee) moved by `step` first.
    ///
    /// `point` must be that commitment's per-commitment point: ours for
    /// `number` when `local` (`ChannelSigner::point`/`commitment_point`),
    /// else the peer's. Our own revocation key is derived from the secret
    /// of `number`, not from `point` (a generator multiplication instead of
    /// a variable-base one), so a mismatched `point` would build a wrong
    /// key; only a debug assertion checks it, since checking costs the EC
    /// operation the derivation saves.
    pub(crate) fn build_commitment(
        &self,
        local: bool,
        number: u64,
        point: &PublicKey,
        step: fn(HtlcState) -> Step,
    ) -> Result<BuiltCommitment, StoreError> {
        let their_keys = self.their_keys("commitment")?;
        let outpoint = self
            .funding_outpoint
            .ok_or_else(|| self.wrong_state("commitment"))?;
        let presence = |state: HtlcState| match step(state) {
            Step::Now(s) if local => s.in_local(),
            Step::Now(s) => s.in_remote(),
            Step::Ended => Presence::Removed,
        };
        // Summed in i128: a peer's HTLC may be paid for by one of ours it
        // fulfilled (see `spendable_balances`), which can come later in
        // `htlcs` than the debit it covers.
        let (mut ours, mut theirs) = (
            i128::from(self.to_local_msat),
            i128::from(self.to_remote_msat),
        );
        let mut htlcs = Vec::with_capacity(self.htlcs.len());
        let mut sources = Vec::with_capacity(self.htlcs.len());
        for (index, h) in self.htlcs.iter().enumerate() {
            let offered_by_us = h.offered();
            let (offerer, receiver) = if offered_by_us {
                (&mut ours, &mut theirs)
            } else {
                (&mut theirs, &mut ours)
            };
            match presence(h.state) {
                Presence::NotYet => {}
                Presence::Present => {
                    *offerer -= i128::from(h.amount_msat);
                    sources.push(index);
                    htlcs.push(HtlcOutputInCommitment {
                        offered: offered_by_us == local,
                        amount_msat: h.amount_msat,
                        cltv_expiry: h.cltv_expiry,
                        payment_hash: h.payment_hash,
                    });
                }
                Presence::Removed => {
                    if matches!(h.removal, Some(Removal::Fulfill(_))) {
                        *offerer -= i128::from(h.amount_msat);
                        *receiver += i128::from(h.amount_msat);
                    }
                }
            }
        }
        let (Ok(ours), Ok(theirs)) = (u64::try_from(ours), u64::try_from(theirs)) else {
            return Err(self.wrong_state("commitment"));
        };
        let feerate_per_kw = self.feerate_where(presence);
        let our_keys = &self.signer.pubkeys;
        let (broadcaster, countersignatory) = if local {
            (our_keys, their_keys)
        } else {
            (their_keys, our_keys)
        };
        // The HTLC keys serve HTLC outputs only: a commitment whose HTLCs
        // are all trimmed (or that has none) does without them, which saves
        // two of its three key derivations.
        let dust_limit_for_trim = if local {
            self.ours.dust_limit_sat
        } else {
            self.theirs.dust_limit_sat
        };
        let any_htlc_output = htlcs
            .iter()
            .any(|h| !is_trimmed(h, feerate_per_kw, dust_limit_for_trim, false));
        // With the channel's basepoint tables (`tables.rs`) the term of
        // the countersignatory's revocation basepoint is a table sum.
        // Without them, we know one secret of each revocation key: our
        // per-commitment secret in our commitment, our revocation base
        // secret in the peer's. Either turns one of its two variable-base
        // multiplications into a generator multiplication.
        let revocation_key = match (local, self.tables.get()) {
            (true, Some(tables)) => derive_revocation_public_key_from_commitment_secret_with_table(
                &tables.theirs,
                &self.signer.commitment_secret_key(number),
                point,
            ),
            (false, Some(tables)) => derive_revocation_public_key_with_table(&tables.ours, point),
            (true, None) => derive_revocation_public_key_from_commitment_secret(
                &their_keys.revocation_basepoint,
                &self.signer.commitment_secret_key(number),
                point,
            ),
            (false, None) => derive_revocation_public_key_from_base_secret(
                &self.signer.revocation_base_key,
                &our_keys.revocation_basepoint,
                point,
            ),
        };
        let keys = TxCreationKeys::derive_with_revocation_key(
            point,
            revocation_key,
            broadcaster,
            countersignatory,
            any_htlc_output,
        );
        let (funder, fundee) = if self.is_outbound {
            (our_keys, their_keys)
        } else {
            (their_keys, our_keys)
        };
        // The broadcaster's to_local waits the delay its counterparty asked for.
        let (dust_limit_sat, to_self_delay) = if local {
            (self.ours.dust_limit_sat, self.theirs.to_self_delay)
        } else {
            (self.theirs.dust_limit_sat, self.ours.to_self_delay)
        };
        let params = CommitmentParams {
            funding_outpoint: outpoint,
            commitment_number: number,
            obscure_factor: obscure_factor(&funder.payment_basepoint, &fundee.payment_basepoint),
            to_broadcaster_value_msat: if local { ours } else { theirs },
            to_countersignatory_value_msat: if local { theirs } else { ours },
            broadcaster_is_funder: local == self.is_outbound,
            feerate_per_kw,
            dust_limit_sat,
            to_self_delay,
            keys: &keys,
            countersignatory_payment_key: countersignatory.payment_basepoint,
            broadcaster_funding_pubkey: broadcaster.funding_pubkey,
            countersignatory_funding_pubkey: countersignatory.funding_pubkey,
            anchors: false,
            htlcs: &htlcs,
        };
        let tx = build_commitment_transaction(&params);
        debug_assert_eq!(
            tx.htlc_output_index.iter().any(Option::is_some),
            any_htlc_output,
            "the HTLC keys were derived exactly when HTLC outputs need them"
        );
        let mut outputs: Vec<(HtlcOutputInCommitment, u32, usize)> = htlcs
            .iter()
            .zip(&tx.htlc_output_index)
            .zip(&sources)
            .filter_map(|((h, vout), source)| vout.map(|v| (*h, v, *source)))
            .collect();
        outputs.sort_by_key(|(_, vout, _)| *vout);
        let htlc_sources = outputs.iter().map(|(_, _, source)| *source).collect();
        let htlc_outputs = outputs.into_iter().map(|(h, vout, _)| (h, vout)).collect();
        Ok(BuiltCommitment {
            tx,
            keys,
            htlc_outputs,
            htlc_sources,
            feerate_per_kw,
            to_self_delay,
            funder_msat: if self.is_outbound { ours } else { theirs },
        })
    }

    fn funding_script(&self) -> Result<bitcoin::ScriptBuf, StoreError> {
        let theirs = self.their_keys("commitment")?;
        Ok(funding_redeemscript(
            &self.signer.pubkeys.funding_pubkey,
            &theirs.funding_pubkey,
        ))
    }

    /// Our signatures on the peer's commitment: the commitment itself and
    /// one per untrimmed HTLC, in output order.
    pub(crate) fn sign_remote(
        &self,
        built: &BuiltCommitment,
    ) -> Result<(Signature, Vec<Signature>), StoreError> {
        let sighash = commitment_sighash(&built.tx.tx, &self.funding_script()?, self.funding_sat);
        let signature = sign(&sighash, &self.signer.funding_key);
        if built.htlc_outputs.is_empty() {
            return Ok((signature, Vec::new()));
        }
        let htlc_key = derive_private_key_from(
            &self.signer.htlc_base_key,
            &self.signer.pubkeys.htlc_basepoint,
            &built.keys.per_commitment_point,
        );
        let htlc_signatures = built
            .htlc_sighashes()
            .map(|m| sign(&m, &htlc_key))
            .collect();
        Ok((signature, htlc_signatures))
    }

    /// Checks the peer's signatures on our commitment.
    pub(crate) fn verify_local(
        &self,
        built: &BuiltCommitment,
        signature: &Signature,
        htlc_signatures: &[Signature],
    ) -> Result<(), StoreError> {
        let channel_id = self.channel_id;
        if htlc_signatures.len() != built.htlc_outputs.len() {
            return Err(StoreError::HtlcSignatureCount {
                channel_id,
                expected: built.htlc_outputs.len(),
                got: htlc_signatures.len(),
            });
        }
        if !self.verify_signatures {
            return Ok(());
        }
        let their_funding = self.their_keys("commitment_signed")?.funding_pubkey;
        let sighash = commitment_sighash(&built.tx.tx, &self.funding_script()?, self.funding_sat);
        if !verify(&sighash, signature, &their_funding) {
            return Err(StoreError::InvalidSignature {
                channel_id,
                what: "commitment",
            });
        }
        for (sighash, sig) in built.htlc_sighashes().zip(htlc_signatures) {
            if !verify(&sighash, sig, &built.keys.countersignatory_htlc_key) {
                return Err(StoreError::InvalidSignature {
                    channel_id,
                    what: "htlc",
                });
            }
        }
        Ok(())
    }

    /// Keeps the peer's signatures on our latest commitment (written to disk
    /// with the section that took them).
    pub(crate) fn set_holder_signatures(&mut self, commitment: Signature, htlcs: Vec<Signature>) {
        self.holder_sigs = Some(super::HolderSignatures { commitment, htlcs });
        self.disk.sigs_dirty = true;
    }

    /// Whether the funder can pay the whole fee of both current
    /// commitments (for audits: a commitment whose funder cannot is
    /// underfunded, and never signed; issue 11, point 15).
    pub(crate) fn commitments_fully_paid(&self) -> bool {
        if !self.phase.is_funded() || self.their_current_point.is_none() {
            return true;
        }
        let local = self.build_commitment(
            true,
            self.local_commitment_number,
            &self.signer.commitment_point(self.local_commitment_number),
            unchanged,
        );
        let remote = self.build_commitment(
            false,
            self.remote_commitment_number,
            &self.their_current_point.expect("checked above"),
            unchanged,
        );
        [local, remote]
            .into_iter()
            .all(|b| b.is_ok_and(|b| b.funder_msat / 1000 >= b.tx.fee_sat))
    }

    /// Whether our next `commitment_signed` would carry any change.
    pub(crate) fn has_changes_to_sign(&self) -> bool {
        self.htlcs.iter().any(|h| h.state.awaits_our_commit()) || self.fee_awaits_our_commit()
    }

    /// Signs the peer's next commitment if there is anything to sign and we
    /// are not waiting for its revocation of the previous one.
    pub(crate) fn send_commitment(&mut self) -> Result<Option<CommitmentSigned>, StoreError> {
        if !matches!(self.phase, Phase::Normal | Phase::ShuttingDown)
            || self.paused
            || self.awaiting_revoke
            || !self.has_changes_to_sign()
        {
            return Ok(None);
        }
        let Some(point) = self.their_next_point else {
            return Ok(None);
        };
        let built = self.build_commitment(
            false,
            self.remote_commitment_number + 1,
            &point,
            HtlcState::on_send_commit,
        )?;
        let (signature, htlc_signatures) = self.sign_remote(&built)?;
        self.tables.count_commitment();
        self.apply(HtlcState::on_send_commit, &mut Effects::default());
        self.their_prev_point = self.their_current_point;
        self.their_current_point = Some(point);
        self.their_next_point = None;
        self.remote_commitment_number += 1;
        self.awaiting_revoke = true;
        self.cs_after_raa = true;
        Ok(Some(CommitmentSigned {
            channel_id: self.channel_id,
            signature,
            htlc_signatures,
        }))
    }

    /// The peer signed our next commitment: check it, take it, and revoke
    /// the previous one.
    pub(crate) fn handle_commitment_signed(
        &mut self,
        msg: &CommitmentSigned,
        effects: &mut Effects,
    ) -> Result<RevokeAndAck, StoreError> {
        if !self.received_ready || !matches!(self.phase, Phase::Normal | Phase::ShuttingDown) {
            return Err(self.wrong_state("commitment_signed"));
        }
        let number = self.local_commitment_number + 1;
        // Announced in our last revoke_and_ack: computed then, not again.
        let point = self.signer.point(number);
        let built = self.build_commitment(true, number, &point, HtlcState::on_recv_commit)?;
        self.verify_local(&built, &msg.signature, &msg.htlc_signatures)?;
        // A funder peer's update_fee that raced our adds (each side checked
        // only what it knew) can leave this commitment unable to pay its
        // fee: never take it (the channel is failed with the one before).
        if !self.is_outbound && built.funder_msat < 1000 * built.tx.fee_sat {
            return Err(StoreError::FunderCannotPayFee {
                channel_id: self.channel_id,
                feerate_per_kw: built.feerate_per_kw,
                funder_msat: built.funder_msat,
                fee_msat: 1000 * built.tx.fee_sat,
            });
        }
        // Counted once verified: a peer cannot earn tables with bad ones.
        self.tables.count_commitment();
        self.set_holder_signatures(msg.signature, msg.htlc_signatures.clone());
        self.apply(HtlcState::on_recv_commit, effects);
        self.local_commitment_number = number;
        let revoke = RevokeAndAck {
            channel_id: self.channel_id,
            per_commitment_secret: self.signer.commitment_secret(number - 1),
            next_per_commitment_point: self.signer.point(number + 1),
        };
        self.apply(HtlcState::on_send_revoke, effects);
        self.cs_after_raa = false;
        // What the peer retransmits ends with its commitment_signed.
        self.end_resume_window();
        Ok(revoke)
    }

    /// The peer revoked its previous commitment.
    pub(crate) fn handle_revoke_and_ack(
        &mut self,
        msg: &RevokeAndAck,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        let channel_id = self.channel_id;
        let (true, Some(prev_point)) = (self.awaiting_revoke, self.their_prev_point) else {
            return Err(self.wrong_state("revoke_and_ack"));
        };
        let bad_secret = StoreError::InvalidRevocationSecret { channel_id };
        // Any 32 bytes may arrive: an invalid scalar is an error, not a panic.
        if revealed_secret_point(&msg.per_commitment_secret).ok() != Some(prev_point) {
            return Err(bad_secret);
        }
        let mut secrets = self.their_secrets.clone();
        let revoked = self.remote_commitment_number - 1;
        secrets
            .insert_secret(
                INITIAL_COMMITMENT_INDEX - revoked,
                msg.per_commitment_secret,
            )
            .map_err(|_| bad_secret)?;
        self.their_secrets = secrets;
        self.their_prev_point = None;
        self.their_next_point = Some(msg.next_per_commitment_point);
        self.awaiting_revoke = false;
        self.apply(HtlcState::on_recv_revoke, effects);
        Ok(())
    }

    /// Moves every HTLC and the pending fee by `step`, settling HTLCs that
    /// end and reporting those that became irrevocable or were resolved.
    fn apply(&mut self, step: fn(HtlcState) -> Step, effects: &mut Effects) {
        let mut i = 0;
        while i < self.htlcs.len() {
            let h = &mut self.htlcs[i];
            match step(h.state) {
                Step::Now(next) => {
                    if next != h.state {
                        h.state = next;
                        match next {
                            HtlcState::RcvdAddAckRevocation => {
                                let HtlcKind::Received(inbound) = &h.kind else {
                                    unreachable!("received state")
                                };
                                effects.incoming.push(IncomingHtlc {
                                    htlc_id: h.id,
                                    amount_msat: h.amount_msat,
                                    payment_hash: h.payment_hash,
                                    cltv_expiry: h.cltv_expiry,
                                    inbound: inbound.clone(),
                                    // The forward takes it, in the same batch.
                                    onion: h.onion.take(),
                                });
                            }
                            // Irrevocably committed: no resend can be needed any more.
                            HtlcState::SentAddAckRevocation => h.onion = None,
                            _ => {}
                        }
                    }
                    i += 1;
                }
                Step::Ended => {
                    let h = self.htlcs.remove(i);
                    self.keep_ended(&h);
                    let fulfilled = h.is_fulfilled();
                    if fulfilled {
                        if h.offered() {
                            self.to_local_msat -= h.amount_msat;
                            self.to_remote_msat += h.amount_msat;
                        } else {
                            self.to_remote_msat -= h.amount_msat;
                            self.to_local_msat += h.amount_msat;
                        }
                    }
                    // A failure of ours is final only now; a fulfill was reported
                    // on arrival. A fail after the peer revealed the preimage
                    // (across a reconnection) is not reported: the payment is
                    // proven, and its value simply stays with us.
                    let failure = match h.removal {
                        Some(Removal::Fail(reason)) => Some(Failure::Onion(reason)),
                        Some(Removal::Malformed {
                            code,
                            sha256_of_onion,
                        }) => Some(Failure::Malformed {
                            code,
                            sha256_of_onion,
                        }),
                        _ => None,
                    };
                    if let (
                        HtlcKind::Offered {
                            source,
                            fulfill_reported: false,
                        },
                        Some(failure),
                    ) = (h.kind, failure)
                    {
                        effects.resolved.push(OutboundResolved {
                            source,
                            payment_hash: h.payment_hash,
                            amount_msat: h.amount_msat,
                            outcome: Outcome::Failed(failure),
                        });
                    }
                }
            }
        }
        self.step_fees(step);
    }
}
