//! The public keys of a channel side ([`ChannelPublicKeys`]) and the keys of
//! one commitment transaction derived from them ([`TxCreationKeys`]).

use bitcoin::secp256k1::PublicKey;

use crate::keys::{derive_public_key, derive_revocation_public_key};

/// One side's public basepoints and funding key, as exchanged in
/// `open_channel` / `accept_channel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelPublicKeys {
    /// Key in the 2-of-2 funding output (and the side's anchor output).
    pub funding_pubkey: PublicKey,
    /// Basepoint the *other* side's revocation keys are derived from.
    pub revocation_basepoint: PublicKey,
    /// Basepoint of the side's `to_remote` key (used as is, with
    /// `option_static_remotekey`).
    pub payment_basepoint: PublicKey,
    /// Basepoint of the side's delayed `to_local` key.
    pub delayed_payment_basepoint: PublicKey,
    /// Basepoint of the side's HTLC keys.
    pub htlc_basepoint: PublicKey,
}

/// The keys of one commitment transaction, from the point of view of its
/// broadcaster (the side that holds it and may publish it; "local" in
/// BOLT 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxCreationKeys {
    /// The broadcaster's per-commitment point for this commitment.
    pub per_commitment_point: PublicKey,
    /// `revocationpubkey`: from the countersignatory's revocation basepoint,
    /// spendable by the countersignatory once this commitment is revoked.
    pub revocation_key: PublicKey,
    /// `local_htlcpubkey`.
    pub broadcaster_htlc_key: PublicKey,
    /// `remote_htlcpubkey`.
    pub countersignatory_htlc_key: PublicKey,
    /// `local_delayedpubkey`.
    pub broadcaster_delayed_payment_key: PublicKey,
}

impl TxCreationKeys {
    /// Derives the keys of the broadcaster's commitment with
    /// `per_commitment_point` (BOLT 3 "Key Derivation").
    ///
    /// Panics only with probability about 2^-128 (see [`crate::keys`]).
    pub fn derive(
        per_commitment_point: &PublicKey,
        broadcaster: &ChannelPublicKeys,
        countersignatory: &ChannelPublicKeys,
    ) -> Self {
        let revocation_key = derive_revocation_public_key(
            &countersignatory.revocation_basepoint,
            per_commitment_point,
        );
        Self::derive_with_revocation_key(
            per_commitment_point,
            revocation_key,
            broadcaster,
            countersignatory,
            true,
        )
    }

    /// The keys of a commitment that has no HTLC output (every HTLC trimmed,
    /// or none): the revocation and delayed keys are derived, and the two
    /// HTLC keys, which only HTLC outputs use, are not. They hold the two
    /// HTLC *basepoints* instead, which no script of such a commitment
    /// reads; never pass these keys to a commitment with an untrimmed HTLC.
    pub fn derive_without_htlc_keys(
        per_commitment_point: &PublicKey,
        broadcaster: &ChannelPublicKeys,
        countersignatory: &ChannelPublicKeys,
    ) -> Self {
        let revocation_key = derive_revocation_public_key(
            &countersignatory.revocation_basepoint,
            per_commitment_point,
        );
        Self::derive_with_revocation_key(
            per_commitment_point,
            revocation_key,
            broadcaster,
            countersignatory,
            false,
        )
    }

    /// [`Self::derive`] (`htlc_keys`) or [`Self::derive_without_htlc_keys`]
    /// (not `htlc_keys`) for a caller that has the `revocation_key` of
    /// `per_commitment_point` already: a side that knows one of its two
    /// secrets computes it more cheaply
    /// ([`crate::keys::derive_revocation_public_key_from_base_secret`],
    /// [`crate::keys::derive_revocation_public_key_from_commitment_secret`]).
    ///
    /// Panics only with probability about 2^-128 (see [`crate::keys`]).
    pub fn derive_with_revocation_key(
        per_commitment_point: &PublicKey,
        revocation_key: PublicKey,
        broadcaster: &ChannelPublicKeys,
        countersignatory: &ChannelPublicKeys,
        htlc_keys: bool,
    ) -> Self {
        let htlc_key = |basepoint: &PublicKey| {
            if htlc_keys {
                derive_public_key(basepoint, per_commitment_point)
            } else {
                *basepoint
            }
        };
        TxCreationKeys {
            per_commitment_point: *per_commitment_point,
            revocation_key,
            broadcaster_htlc_key: htlc_key(&broadcaster.htlc_basepoint),
            countersignatory_htlc_key: htlc_key(&countersignatory.htlc_basepoint),
            broadcaster_delayed_payment_key: derive_public_key(
                &broadcaster.delayed_payment_basepoint,
                per_commitment_point,
            ),
        }
    }
}
