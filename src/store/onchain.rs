//! The user's side of closed channels: what they left to the chain
//! ([`ChannelStore::closed_channels`]), the keys that spend our outputs, and
//! the reports that settle them ([`ChannelStore::htlc_resolved_on_chain`],
//! [`ChannelStore::spendable_outputs_swept`]). See [`crate::onchain`].

use bitcoin::secp256k1::{PublicKey, SecretKey};

use super::claimables::remove_part;
use super::{ChannelStore, Container};
use crate::channel::closed::HtlcRoute;
use crate::channel::signer::ChannelSigner;
use crate::channel::{OutboundResolved, Outcome};
use crate::error::StoreError;
use crate::keys::{derive_private_key, derive_revocation_private_key};
use crate::onchain::{
    ClosedChannelDetails, HtlcDirection, OnChainOutcome, SpendableOutput, SpendableOutputKind,
};
use crate::onion::{Failure, FailureCode};
use crate::transactions::ChannelPublicKeys;
use crate::types::ChannelId;

impl<C: Container> ChannelStore<C> {
    /// Every closed channel that still has outputs to sweep or HTLCs to
    /// settle on chain. Durable: after any number of restarts, this is what
    /// the user still has to do. A record is handed out only once it is
    /// durable (the call commits what it read: a channel a message just
    /// closed may not be yet), so the transaction it names to broadcast is
    /// the one a restart names too. Nothing, if the store has failed (its
    /// persister refused a write; what is durable is read back on restart).
    ///
    /// **Locking behaviour:** takes each peer's lock in turn, one at a
    /// time, then commits (no lock held) if what it read is not durable.
    pub fn closed_channels(&self) -> Vec<ClosedChannelDetails> {
        let mut out = Vec::new();
        for peer in self.container.peers() {
            self.container.with_peer(&peer, |ps| {
                out.extend(ps.closed.values().map(|c| c.details()));
            });
        }
        out.sort_by_key(|c| c.channel_id);
        self.durable_or_nothing(out)
    }

    /// One closed channel's record, if it is still kept; durable, as
    /// [`ChannelStore::closed_channels`] hands them out.
    ///
    /// **Locking behaviour:** an index lookup, then that peer's lock
    /// briefly, then a commit as [`ChannelStore::closed_channels`].
    pub fn closed_channel(&self, channel_id: &ChannelId) -> Option<ClosedChannelDetails> {
        let peer = self.container.index_get(channel_id)?;
        let record = self
            .container
            .with_peer(&peer, |ps| ps.closed.get(channel_id).map(|c| c.details()))
            .flatten();
        self.durable_or_nothing(record.into_iter().collect()).pop()
    }

    /// Records read under their peers' locks, once durable: they were
    /// appended before those locks were released, so a commit now covers
    /// them.
    fn durable_or_nothing(&self, records: Vec<ClosedChannelDetails>) -> Vec<ClosedChannelDetails> {
        if records.is_empty() || self.flush().is_ok() {
            records
        } else {
            Vec::new()
        }
    }

    /// Reports how an HTLC of a closed channel ended on chain. For an HTLC
    /// we offered, a preimage settles its source as fulfilled (our
    /// `PaymentSent`, or the incoming HTLC it was forwarded from is
    /// fulfilled upstream, and the forward's fee is reported); a failure
    /// fails its source (`PaymentFailed`, or a fail upstream with
    /// `permanent_channel_failure`). For an HTLC we received, it is simply
    /// settled. The record goes once nothing is left in it.
    ///
    /// **Locking behaviour:** an index lookup, then that peer's lock once.
    pub fn htlc_resolved_on_chain(
        &self,
        channel_id: &ChannelId,
        direction: HtlcDirection,
        htlc_id: u64,
        outcome: OnChainOutcome,
    ) -> Result<(), StoreError> {
        let peer = self.owner_hint(channel_id)?;
        let unknown = StoreError::UnknownHtlc {
            channel_id: *channel_id,
            htlc_id,
        };
        self.with_user_section(&peer, |s| {
            let record = s.closed_mut(channel_id).ok_or(StoreError::UnknownChannel {
                channel_id: *channel_id,
            })?;
            let matches = record
                .htlcs
                .iter()
                .find(|h| h.info.direction == direction && h.info.htlc_id == htlc_id)
                .ok_or(unknown.clone())?;
            if let OnChainOutcome::Fulfilled(p) = outcome {
                if !p.matches(&matches.info.payment_hash) {
                    return Err(StoreError::WrongPreimage {
                        channel_id: *channel_id,
                        htlc_id,
                    });
                }
            }
            let htlc = record.take_resolved(direction, htlc_id).ok_or(unknown)?;
            match htlc.route {
                HtlcRoute::Offered(source) => s.pass_back(
                    *channel_id,
                    OutboundResolved {
                        source,
                        payment_hash: htlc.info.payment_hash,
                        amount_msat: htlc.info.amount_msat,
                        outcome: match outcome {
                            OnChainOutcome::Fulfilled(p) => Outcome::Fulfilled(p),
                            OnChainOutcome::Failed => Outcome::Failed(Failure::local(
                                FailureCode::PermanentChannelFailure,
                            )),
                        },
                    },
                ),
                HtlcRoute::Received { pays_us } => {
                    if pays_us {
                        let hash = htlc.info.payment_hash;
                        remove_part(s.ctx.claimables, &hash, channel_id, htlc_id);
                    }
                }
            }
            Ok(())
        })
    }

    /// Reports the outputs of a closed channel swept (or otherwise dealt
    /// with): they are no longer listed, and the record goes once its HTLCs
    /// are settled too.
    ///
    /// **Locking behaviour:** an index lookup, then that peer's lock once.
    pub fn spendable_outputs_swept(&self, channel_id: &ChannelId) -> Result<(), StoreError> {
        let peer = self.owner_hint(channel_id)?;
        self.with_user_section(&peer, |s| {
            let record = s.closed_mut(channel_id).ok_or(StoreError::UnknownChannel {
                channel_id: *channel_id,
            })?;
            record.outputs_swept = true;
            Ok(())
        })
    }

    /// The secret key that spends `output` (derived from the node secret
    /// and the output's `keys_id`; nothing secret is stored).
    pub fn spendable_output_key(&self, output: &SpendableOutput) -> SecretKey {
        match &output.kind {
            SpendableOutputKind::StaticPayment => {
                ChannelSigner::payment_secret(&self.node_secret, &output.keys_id)
            }
            SpendableOutputKind::DelayedPayment {
                per_commitment_point,
                ..
            } => derive_private_key(
                &ChannelSigner::delayed_payment_base_secret(&self.node_secret, &output.keys_id),
                per_commitment_point,
            ),
        }
    }

    /// Our basepoints in the closed channel `details` (derived from the
    /// node secret and its `keys_id`): the countersignatory's keys when the
    /// peer broadcast its commitment, the broadcaster's for ours
    /// (`TxCreationKeys::derive`).
    pub fn closed_channel_holder_keys(&self, details: &ClosedChannelDetails) -> ChannelPublicKeys {
        ChannelSigner::derive(&self.node_secret, details.keys_id).pubkeys
    }

    /// Our HTLC private key in the commitment (either side's) with
    /// `per_commitment_point`: it signs our claim of an HTLC output with
    /// the preimage, or its timeout (BOLT 3 `local_htlcpubkey` /
    /// `remote_htlcpubkey`, whichever is ours).
    pub fn closed_channel_htlc_key(
        &self,
        details: &ClosedChannelDetails,
        per_commitment_point: &PublicKey,
    ) -> SecretKey {
        let signer = ChannelSigner::derive(&self.node_secret, details.keys_id);
        derive_private_key(&signer.htlc_base_key, per_commitment_point)
    }

    /// The revocation private key of the peer's commitment whose
    /// per-commitment secret it revealed (`details.counterparty_secrets`):
    /// it spends every output of that revoked commitment, `to_local` and
    /// HTLCs alike, at once (BOLT 3 `revocationprivkey`). Fails with
    /// [`StoreError::InvalidRevocationSecret`] for 32 bytes that are not a
    /// secret key.
    pub fn closed_channel_revocation_key(
        &self,
        details: &ClosedChannelDetails,
        per_commitment_secret: &[u8; 32],
    ) -> Result<SecretKey, StoreError> {
        let secret = SecretKey::from_slice(per_commitment_secret).map_err(|_| {
            StoreError::InvalidRevocationSecret {
                channel_id: details.channel_id,
            }
        })?;
        let signer = ChannelSigner::derive(&self.node_secret, details.keys_id);
        Ok(derive_revocation_private_key(
            &signer.revocation_base_key,
            &secret,
        ))
    }
}
