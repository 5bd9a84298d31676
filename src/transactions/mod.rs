//! BOLT 3 transactions: the funding output, commitment transactions,
//! HTLC-timeout / HTLC-success transactions and the closing transaction,
//! with their scripts, fees, signature hashes and witnesses.
//!
//! Everything is seen from the *broadcaster* of a commitment (BOLT 3's
//! "local" node): the side that holds the commitment and may publish it.
//! The *countersignatory* is the other side, whose signatures make it valid.
//! The channel uses `option_static_remotekey`; `option_anchors` is a flag on
//! each function that depends on it.
//!
//! All of it is checked against every test vector of BOLT 3 appendices B, C
//! and F in `tests/bolt3_vectors.rs`.
//!
//! # Examples
//!
//! Build the holder's commitment, and check the counterparty's signature
//! on it:
//!
//! ```
//! use bitcoin::hashes::Hash;
//! use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
//! use bitcoin::{OutPoint, Txid};
//! use chanstore::keys::{per_commitment_point, per_commitment_secret, INITIAL_COMMITMENT_INDEX};
//! use chanstore::transactions::*;
//!
//! let secp = Secp256k1::new();
//! let secret = |b: u8| SecretKey::from_slice(&[b; 32]).unwrap();
//! let side = |b: u8| ChannelPublicKeys {
//!     funding_pubkey: PublicKey::from_secret_key(&secp, &secret(b)),
//!     revocation_basepoint: PublicKey::from_secret_key(&secp, &secret(b + 1)),
//!     payment_basepoint: PublicKey::from_secret_key(&secp, &secret(b + 2)),
//!     delayed_payment_basepoint: PublicKey::from_secret_key(&secp, &secret(b + 3)),
//!     htlc_basepoint: PublicKey::from_secret_key(&secp, &secret(b + 4)),
//! };
//! let (holder, counterparty) = (side(1), side(11));
//!
//! // Commitment number 0 uses the first per-commitment secret.
//! let point = per_commitment_point(&per_commitment_secret(&[42; 32], INITIAL_COMMITMENT_INDEX))?;
//! let keys = TxCreationKeys::derive(&point, &holder, &counterparty);
//! let commitment = build_commitment_transaction(&CommitmentParams {
//!     funding_outpoint: OutPoint::new(Txid::all_zeros(), 0),
//!     commitment_number: 0,
//!     obscure_factor: obscure_factor(&holder.payment_basepoint, &counterparty.payment_basepoint),
//!     to_broadcaster_value_msat: 700_000_000,
//!     to_countersignatory_value_msat: 300_000_000,
//!     broadcaster_is_funder: true,
//!     feerate_per_kw: 253,
//!     dust_limit_sat: 546,
//!     to_self_delay: 144,
//!     keys: &keys,
//!     countersignatory_payment_key: counterparty.payment_basepoint,
//!     broadcaster_funding_pubkey: holder.funding_pubkey,
//!     countersignatory_funding_pubkey: counterparty.funding_pubkey,
//!     anchors: false,
//!     htlcs: &[],
//! });
//! assert_eq!(commitment.fee_sat, commitment_fee_sat(253, 0, false));
//! assert_eq!(commitment.to_broadcaster_sat, 700_000 - commitment.fee_sat);
//!
//! let redeemscript = funding_redeemscript(&holder.funding_pubkey, &counterparty.funding_pubkey);
//! let msg = commitment_sighash(&commitment.tx, &redeemscript, 1_000_000);
//! let their_sig = sign(&msg, &secret(11)); // what commitment_signed would carry
//! assert!(verify(&msg, &their_sig, &counterparty.funding_pubkey));
//! # Ok::<(), chanstore::StoreError>(())
//! ```

mod channel_keys;
mod closing;
mod commitment;
mod fees;
mod htlc;
mod scripts;
mod signing;

pub use channel_keys::{ChannelPublicKeys, TxCreationKeys};
pub use closing::build_closing_transaction;
pub use commitment::{
    build_commitment_transaction, commitment_sighash, obscure_factor, CommitmentParams,
    CommitmentTransaction, HtlcOutputInCommitment,
};
pub use fees::{
    commitment_fee_sat, htlc_success_fee_sat, htlc_timeout_fee_sat, is_trimmed,
    ANCHOR_OUTPUT_VALUE_SAT, COMMITMENT_BASE_WEIGHT, COMMITMENT_BASE_WEIGHT_ANCHORS,
    COMMITMENT_WEIGHT_PER_HTLC, HTLC_SUCCESS_WEIGHT, HTLC_TIMEOUT_WEIGHT,
};
pub use htlc::{
    build_htlc_transaction, htlc_broadcaster_sighash, htlc_countersignatory_sighash_type,
    htlc_sighash, htlc_tx_witness,
};
pub use scripts::{
    anchor_output_script, anchor_script, funding_output_script, funding_redeemscript,
    htlc_witness_script, offered_htlc_script, received_htlc_script, to_local_script,
    to_remote_delayed_script, to_remote_output_script,
};
pub use signing::{funding_spend_witness, sign, verify};
