//! A closed channel's record ([`ClosedChannel`]): what it leaves to the
//! chain, kept durably until the user is done with it (issue 11, point 2).
//!
//! [`Channel::closing`] turns a channel that just closed into its record:
//! the transaction to broadcast (the signed closing transaction, our signed
//! latest commitment, or nothing), the outputs that pay us, and every HTLC
//! that may still be settled on chain, with what claiming or timing it out
//! needs. HTLCs we offered that never reached a commitment the peer signed
//! cannot go on chain: they are failed back at once. The record then
//! answers, under the same peer lock, the resolutions that arrive for its
//! HTLCs ([`ClosedChannel::apply_resolution`]) and the user's reports of
//! on-chain outcomes ([`ClosedChannel::take_resolved`]), and is deleted once
//! its outputs are swept and its HTLCs resolved.

use bitcoin::secp256k1::PublicKey;
use bitcoin::{OutPoint, Transaction};

use super::htlc::{HtlcKind, HtlcSource, HtlcState, Inbound, Removal};
use super::{Channel, OutboundResolved, Outcome};
use crate::event::{ClosureReason, Event};
use crate::forward::Resolution;
use crate::keys::CounterpartyCommitmentSecrets;
use crate::onchain::{
    ClosedChannelDetails, CounterpartyCommitment, HolderCommitment, HtlcDirection, OnChainAction,
    OnChainHtlc, RevokedHtlc, SpendableOutput, SpendableOutputKind,
};
use crate::onion::payload::PaymentData;
use crate::onion::{Failure, FailureCode};
use crate::transactions::{
    commitment_sighash, funding_redeemscript, funding_spend_witness, sign, to_local_script,
    ChannelPublicKeys,
};
use crate::types::{ChannelId, ShortChannelId};

/// Where the outcome of a closed channel's HTLC must go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HtlcRoute {
    /// We offered it: its outcome settles its source (our payment, or the
    /// incoming HTLC it was forwarded from).
    Offered(HtlcSource),
    /// The peer offered it; `pays_us` when it is a payment to us.
    Received {
        /// It is claimable by the user (`claim_funds`).
        pays_us: bool,
    },
}

/// One HTLC of a closed channel, not yet resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClosedHtlc {
    /// What the user sees.
    pub(crate) info: OnChainHtlc,
    /// Where its outcome goes.
    pub(crate) route: HtlcRoute,
    /// For a payment to us, the secret and total its onion named: a
    /// restart rebuilds its payment's set of parts with them. `None` in
    /// records written before they were kept (odd TLV 23).
    pub(crate) payment_data: Option<PaymentData>,
}

/// A closed channel's durable record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClosedChannel {
    pub(crate) channel_id: ChannelId,
    pub(crate) counterparty: PublicKey,
    pub(crate) funding_outpoint: OutPoint,
    pub(crate) funding_sat: u64,
    pub(crate) short_channel_id: Option<ShortChannelId>,
    pub(crate) keys_id: [u8; 32],
    pub(crate) reason: ClosureReason,
    pub(crate) transaction: Option<Transaction>,
    pub(crate) outputs: Vec<SpendableOutput>,
    pub(crate) htlcs: Vec<ClosedHtlc>,
    pub(crate) outputs_swept: bool,
    /// The peer's basepoints and the secrets it revealed: what punishing a
    /// revoked commitment of the peer's needs.
    pub(crate) their_keys: Option<ChannelPublicKeys>,
    pub(crate) their_secrets: CounterpartyCommitmentSecrets,
    /// The peer's per-commitment points of its commitments that may still
    /// confirm unrevoked: its latest, and the one before while its
    /// revocation was awaited. Every HTLC output of those commitments (its
    /// script, our key for it) is derived from that point, which the chain
    /// does not show. Empty in records written before it was kept.
    pub(crate) their_points: Vec<CounterpartyCommitment>,
    /// The `to_self_delay` of our `to_local` (the peer's demand) and of the
    /// peer's (ours): in the two `to_local` scripts and the second-stage
    /// HTLC outputs. `None` in records written before they were kept.
    pub(crate) to_self_delays: Option<(u16, u16)>,
    /// Our commitment in `transaction`, when that is what we broadcast:
    /// what its HTLC outputs' scripts and second-stage transactions are
    /// built from. `None` in records written before it was kept.
    pub(crate) holder_commitment: Option<HolderCommitment>,
    /// A channel the peer opened whose funding we never saw confirmed: the
    /// height its `funding_created` came. Such a record counts against the
    /// caps on unfunded channels (the funding may never have existed: a
    /// peer could make records for free) and is forgotten
    /// `StoreConfig::funding_timeout_blocks` after it (BOLT 2).
    pub(crate) unconfirmed_since: Option<u32>,
    /// The HTLCs a revoked commitment of the peer's may hold outputs for
    /// that `htlcs` leaves out (`ClosedChannelDetails::revoked_htlcs`).
    pub(crate) revoked_htlcs: Vec<RevokedHtlc>,
}

/// What closing a channel produces besides the `ChannelClosed` event.
#[derive(Debug, Default)]
pub(crate) struct Closing {
    /// The record; `None` when nothing is at stake (no commitment was ever
    /// signed).
    pub(crate) record: Option<ClosedChannel>,
    /// HTLCs we offered that can never go on chain: failed back now.
    pub(crate) resolved: Vec<OutboundResolved>,
    /// `BroadcastTransaction`, `SpendableOutputs`, `OnChainResolutionRequired`.
    pub(crate) events: Vec<Event>,
    /// The record's HTLCs, while they are sorted.
    record_htlcs_out: Vec<ClosedHtlc>,
}

impl ClosedChannel {
    /// The user's view.
    pub(crate) fn details(&self) -> ClosedChannelDetails {
        ClosedChannelDetails {
            channel_id: self.channel_id,
            counterparty_node_id: self.counterparty,
            funding_outpoint: self.funding_outpoint,
            channel_value_sat: self.funding_sat,
            reason: self.reason.clone(),
            transaction: self.transaction.clone(),
            // Swept outputs are no longer listed
            // (`ChannelStore::spendable_outputs_swept`).
            outputs: if self.outputs_swept {
                Vec::new()
            } else {
                self.outputs.clone()
            },
            htlcs: self.htlcs.iter().map(|h| h.info.clone()).collect(),
            outputs_swept: self.outputs_swept,
            keys_id: self.keys_id,
            counterparty_keys: self.their_keys,
            counterparty_commitments: self.their_points.clone(),
            counterparty_secrets: self.their_secrets.clone(),
            holder_to_self_delay: self.to_self_delays.map(|d| d.0),
            counterparty_to_self_delay: self.to_self_delays.map(|d| d.1),
            holder_commitment: self.holder_commitment,
            revoked_htlcs: self.revoked_htlcs.clone(),
        }
    }

    /// Nothing is left to do: the record can be deleted.
    pub(crate) fn is_done(&self) -> bool {
        self.outputs_swept && self.htlcs.is_empty()
    }

    fn position(&self, direction: HtlcDirection, htlc_id: u64) -> Option<usize> {
        self.htlcs
            .iter()
            .position(|h| h.info.direction == direction && h.info.htlc_id == htlc_id)
    }

    /// A resolution for an HTLC the peer offered arrived (from downstream,
    /// or from `claim_funds`/`fail_htlc_backwards`) after the channel
    /// closed. A preimage makes it claimable on chain: the event saying so
    /// is returned, to be written in the same batch as the record (a crash
    /// can never lose the preimage). A failure leaves nothing to claim.
    /// Returns `None` for an HTLC the record does not (or no longer) hold.
    pub(crate) fn apply_resolution(
        &mut self,
        htlc_id: u64,
        resolution: &Resolution,
    ) -> Option<Option<Event>> {
        let i = self.position(HtlcDirection::Received, htlc_id)?;
        match resolution {
            Resolution::Fulfill(preimage) => {
                let h = &mut self.htlcs[i].info;
                if h.action == OnChainAction::Claim || !preimage.matches(&h.payment_hash) {
                    return Some(None);
                }
                h.payment_preimage = Some(*preimage);
                h.action = OnChainAction::Claim;
                Some(Some(Event::OnChainResolutionRequired { htlc: h.clone() }))
            }
            Resolution::Fail(_) => {
                if self.htlcs[i].info.action != OnChainAction::AwaitPreimage {
                    // We know its preimage: it is claimed on chain, not failed.
                    return Some(None);
                }
                // A revoked commitment of the peer's may still hold its
                // output: the record must go on naming it.
                let info = self.htlcs.remove(i).info;
                let kept = RevokedHtlc {
                    direction: info.direction,
                    htlc_id: info.htlc_id,
                    payment_hash: info.payment_hash,
                    amount_msat: info.amount_msat,
                    cltv_expiry: info.cltv_expiry,
                };
                if let Err(at) = self.revoked_htlcs.binary_search(&kept) {
                    self.revoked_htlcs.insert(at, kept);
                }
                Some(None)
            }
        }
    }

    /// Takes out an HTLC whose on-chain outcome the user reports.
    pub(crate) fn take_resolved(
        &mut self,
        direction: HtlcDirection,
        htlc_id: u64,
    ) -> Option<ClosedHtlc> {
        self.position(direction, htlc_id)
            .map(|i| self.htlcs.remove(i))
    }
}

impl Channel {
    /// Our latest commitment, signed by both sides, when the peer's
    /// signature on it is known.
    fn signed_local_commitment(&self) -> Option<(Transaction, super::commit::BuiltCommitment)> {
        let sigs = self.holder_sigs.as_ref()?;
        let theirs = self.their_keys?;
        let number = self.local_commitment_number;
        let built = self
            .build_commitment(
                true,
                number,
                &self.signer.commitment_point(number),
                super::commit::unchanged,
            )
            .ok()?;
        let mut tx = built.tx.tx.clone();
        let script =
            funding_redeemscript(&self.signer.pubkeys.funding_pubkey, &theirs.funding_pubkey);
        let ours = sign(
            &commitment_sighash(&tx, &script, self.funding_sat),
            &self.signer.funding_key,
        );
        tx.input[0].witness = funding_spend_witness(
            &ours,
            &self.signer.pubkeys.funding_pubkey,
            &sigs.commitment,
            &theirs.funding_pubkey,
        );
        Some((tx, built))
    }

    /// Our output in the peer's commitment (its latest), whichever it
    /// broadcasts: `option_static_remotekey` pays our payment basepoint.
    fn static_payment_output(&self) -> Option<SpendableOutput> {
        let value_sat = self
            .their_current_point
            .and_then(|point| {
                self.build_commitment(
                    false,
                    self.remote_commitment_number,
                    &point,
                    super::commit::unchanged,
                )
                .ok()
            })
            .map_or(self.to_local_msat / 1000, |b| b.tx.to_countersignatory_sat);
        (value_sat > 0).then(|| SpendableOutput {
            channel_id: self.channel_id,
            outpoint: None,
            value_sat,
            script_pubkey: self.signer.shutdown_script(),
            kind: SpendableOutputKind::StaticPayment,
            keys_id: self.signer.keys_id,
        })
    }

    /// Turns a channel that just closed (`closure` is set) into its record,
    /// the HTLCs to fail back now, and the events that tell the user what
    /// to do on chain.
    pub(crate) fn closing(&self) -> Closing {
        let Some((reason, from)) = self.closure.clone() else {
            return Closing::default();
        };
        let (Some(funding_outpoint), true) = (self.funding_outpoint, from.is_funded()) else {
            return Closing::default();
        };
        if reason == ClosureReason::FundingTimedOut {
            // BOLT 2: the fundee forgets a channel whose funding never
            // confirmed; it has no HTLC yet.
            return Closing::default();
        }
        let id = self.channel_id;
        let mut closing = Closing::default();
        let mut outputs = Vec::new();
        let mut holder_commitment = None;
        let transaction = match &reason {
            ClosureReason::Cooperative { .. } => {
                let tx = self.closing_tx.clone();
                if let (Some(tx), Some(script)) = (&tx, &self.local_shutdown_script) {
                    let txid = tx.compute_txid();
                    outputs.extend(
                        tx.output
                            .iter()
                            .enumerate()
                            .filter(|(_, o)| o.script_pubkey == *script)
                            .map(|(vout, o)| SpendableOutput {
                                channel_id: id,
                                outpoint: Some(OutPoint::new(txid, vout as u32)),
                                value_sat: o.value.to_sat(),
                                script_pubkey: o.script_pubkey.clone(),
                                kind: SpendableOutputKind::StaticPayment,
                                keys_id: self.signer.keys_id,
                            }),
                    );
                }
                // If the peer's latest commitment confirms instead: it may
                // give up the negotiation once we have signed (LDK does,
                // after two timer ticks without our `closing_signed`) and
                // broadcast it, and nothing else then pays us.
                outputs.extend(self.static_payment_output());
                tx
            }
            // Our commitment is revoked: broadcasting it would be punished.
            ClosureReason::LostData => {
                outputs.extend(self.static_payment_output());
                closing.record_htlcs(self, None);
                None
            }
            _ => {
                let signed = self.signed_local_commitment();
                if let Some((tx, built)) = &signed {
                    let keys = &built.keys;
                    let witness_script = to_local_script(
                        &keys.revocation_key,
                        built.to_self_delay,
                        &keys.broadcaster_delayed_payment_key,
                    );
                    let spk = witness_script.to_p2wsh();
                    let txid = tx.compute_txid();
                    for (vout, o) in tx.output.iter().enumerate() {
                        if o.script_pubkey == spk {
                            outputs.push(SpendableOutput {
                                channel_id: id,
                                outpoint: Some(OutPoint::new(txid, vout as u32)),
                                value_sat: o.value.to_sat(),
                                script_pubkey: spk.clone(),
                                kind: SpendableOutputKind::DelayedPayment {
                                    witness_script: witness_script.clone(),
                                    to_self_delay: built.to_self_delay,
                                    per_commitment_point: keys.per_commitment_point,
                                },
                                keys_id: self.signer.keys_id,
                            });
                        }
                    }
                }
                holder_commitment = signed.as_ref().map(|(_, built)| HolderCommitment {
                    commitment_number: self.local_commitment_number,
                    per_commitment_point: built.keys.per_commitment_point,
                    feerate_per_kw: built.feerate_per_kw,
                });
                // If the peer's commitment confirms instead.
                outputs.extend(self.static_payment_output());
                closing.record_htlcs(self, signed.as_ref().map(|(_, built)| built));
                let tx = signed.as_ref().map(|(tx, _)| tx.clone());
                tx
            }
        };
        // Any closing transaction we signed may confirm instead: the peer
        // holds our signature on each (its reply may have been lost, or it
        // gave up a negotiation we went on with).
        let script = self.local_shutdown_script.clone().unwrap_or_default();
        for &(outpoint, value_sat) in &self.signed_closings {
            if !outputs.iter().any(|o| o.outpoint == Some(outpoint)) {
                outputs.push(SpendableOutput {
                    channel_id: id,
                    outpoint: Some(outpoint),
                    value_sat,
                    script_pubkey: script.clone(),
                    kind: SpendableOutputKind::StaticPayment,
                    keys_id: self.signer.keys_id,
                });
            }
        }
        if let Some(tx) = &transaction {
            closing.events.push(Event::BroadcastTransaction {
                channel_id: id,
                transaction: tx.clone(),
            });
        }
        if !outputs.is_empty() {
            closing.events.push(Event::SpendableOutputs {
                channel_id: id,
                outputs: outputs.clone(),
            });
        }
        let htlcs = std::mem::take(&mut closing.record_htlcs_out);
        let listed: Vec<_> = htlcs
            .iter()
            .map(|h| (h.info.direction, h.info.htlc_id))
            .collect();
        let revoked_htlcs = self.revoked_htlcs(&listed);
        for h in &htlcs {
            if h.info.action != OnChainAction::AwaitPreimage {
                closing.events.push(Event::OnChainResolutionRequired {
                    htlc: h.info.clone(),
                });
            }
        }
        closing.record = Some(ClosedChannel {
            channel_id: id,
            counterparty: self.counterparty,
            funding_outpoint,
            funding_sat: self.funding_sat,
            short_channel_id: self.short_channel_id,
            keys_id: self.signer.keys_id,
            reason,
            transaction,
            // A revoked commitment of the peer's may confirm until the
            // user says the close is settled: keep what names its HTLCs.
            outputs_swept: outputs.is_empty() && revoked_htlcs.is_empty(),
            outputs,
            htlcs,
            their_keys: self.their_keys,
            their_secrets: self.their_secrets.clone(),
            their_points: self.unrevoked_points(),
            to_self_delays: Some((self.theirs.to_self_delay, self.ours.to_self_delay)),
            holder_commitment,
            unconfirmed_since: self.holds_unconfirmed_slot().then_some(self.funding_height),
            revoked_htlcs,
        });
        closing
    }
}

impl Channel {
    /// The peer's commitments that may confirm unrevoked, newest first.
    fn unrevoked_points(&self) -> Vec<CounterpartyCommitment> {
        let n = self.remote_commitment_number;
        let latest = self.their_current_point.map(|point| (n, point));
        let previous = self
            .their_prev_point
            .filter(|_| self.awaiting_revoke && n > 0)
            .map(|point| (n - 1, point));
        latest
            .into_iter()
            .chain(previous)
            .map(
                |(commitment_number, per_commitment_point)| CounterpartyCommitment {
                    commitment_number,
                    per_commitment_point,
                },
            )
            .collect()
    }
}

impl Closing {
    /// Sorts the channel's HTLCs into those to fail back now and those that
    /// may be settled on chain, with their outputs in `broadcast` (our
    /// commitment, when that is what we broadcast).
    fn record_htlcs(
        &mut self,
        channel: &Channel,
        broadcast: Option<&super::commit::BuiltCommitment>,
    ) {
        let output_of = |index: usize| {
            let built = broadcast?;
            let j = built.htlc_sources.iter().position(|s| *s == index)?;
            let sig = channel
                .holder_sigs
                .as_ref()
                .and_then(|s| s.htlcs.get(j).copied());
            Some((built.htlc_outputs[j].1, sig))
        };
        for (index, h) in channel.htlcs.iter().enumerate() {
            let (direction, action, preimage, route) = match &h.kind {
                HtlcKind::Offered {
                    source,
                    fulfill_reported,
                } => {
                    if h.state == HtlcState::SentAddHtlc {
                        // In no commitment the peer signed: it can never go
                        // on chain. Fail it back now (issue 11, point 6).
                        self.resolved.push(OutboundResolved {
                            source: source.clone(),
                            payment_hash: h.payment_hash,
                            amount_msat: h.amount_msat,
                            outcome: Outcome::Failed(Failure::local(
                                FailureCode::PermanentChannelFailure,
                            )),
                        });
                        continue;
                    }
                    if *fulfill_reported {
                        // The peer has the preimage and we passed it on.
                        continue;
                    }
                    (
                        HtlcDirection::Offered,
                        OnChainAction::TimeOut,
                        None,
                        HtlcRoute::Offered(source.clone()),
                    )
                }
                HtlcKind::Received(inbound) => {
                    let pays_us = inbound.pays_us();
                    let route = HtlcRoute::Received { pays_us };
                    match (&h.removal, h.state) {
                        (Some(Removal::Fulfill(p)), _) => (
                            HtlcDirection::Received,
                            OnChainAction::Claim,
                            Some(*p),
                            route,
                        ),
                        // Failed, or never irrevocably committed (so never
                        // forwarded nor offered to the user): nothing we
                        // can claim.
                        (Some(Removal::Fail(_) | Removal::Malformed { .. }), _) => continue,
                        (None, HtlcState::RcvdAddAckRevocation)
                            if matches!(inbound, Inbound::Payload { .. }) =>
                        {
                            (
                                HtlcDirection::Received,
                                OnChainAction::AwaitPreimage,
                                None,
                                route,
                            )
                        }
                        (None, _) => continue,
                    }
                }
            };
            let (commitment_output, counterparty_htlc_signature) =
                output_of(index).map_or((None, None), |(vout, sig)| (Some(vout), sig));
            let payment_data = match &h.kind {
                HtlcKind::Received(inbound) => inbound.payment_data(),
                HtlcKind::Offered { .. } => None,
            };
            self.record_htlcs_out.push(ClosedHtlc {
                info: OnChainHtlc {
                    channel_id: channel.channel_id,
                    htlc_id: h.id,
                    direction,
                    payment_hash: h.payment_hash,
                    amount_msat: h.amount_msat,
                    cltv_expiry: h.cltv_expiry,
                    payment_preimage: preimage,
                    commitment_output,
                    counterparty_htlc_signature,
                    action,
                },
                route,
                payment_data,
            });
        }
    }
}
