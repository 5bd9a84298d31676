//! Stateless payment secrets: the `payment_secret` of an invoice (BOLT 11)
//! that the recipient checks when the payment arrives (BOLT 4), with nothing
//! stored per invoice.
//!
//! # Where the fields go
//!
//! The recipient puts a [`PaymentHash`] and a [`PaymentSecret`] in the invoice
//! (BOLT 11 fields `p` and `s`). The payer copies the secret, with the total
//! it is paying, into the final hop's onion payload: BOLT 4's `payment_data`
//! TLV, `payment_secret` and `total_msat`. When the HTLC reaches us, [`verify`]
//! takes the HTLC's `payment_hash`, and `payment_data`'s `payment_secret` and
//! `total_msat`.
//!
//! BOLT 4, "Requirements" for the final node: a `payment_secret` that does not
//! match the one expected for the `payment_hash` (unknown, wrong or forged), a
//! `total_msat` below the invoice's amount and (as the recipient's local
//! policy, BOLT 11 `x`) an expired invoice all fail the HTLC with
//! `incorrect_or_unknown_payment_details`
//! ([`FailureCode::IncorrectOrUnknownPaymentDetails`](crate::FailureCode::IncorrectOrUnknownPaymentDetails)):
//! every [`InboundPaymentError`] that [`verify`] returns maps to that one
//! code, so that a prober learns nothing about which check failed.
//!
//! # Why stateless
//!
//! Instead of remembering each invoice, the recipient *encodes* what it would
//! remember (the minimum amount and the expiry time) into the secret itself,
//! and authenticates it with a key derived from the node secret
//! ([`ExpandedKey`]). Nothing is persisted per invoice, so there is nothing to
//! lose: any number of invoices costs no memory and no disk, and a crash
//! between handing out an invoice and being paid cannot forget it. The price
//! is that an invoice cannot be cancelled on its own before it expires (only
//! by rotating the node secret, which cancels them all).
//!
//! # Layout of the secret
//!
//! ```text
//! payment_secret = nonce (16 bytes) || metadata (16 bytes)
//! metadata       = min_amount_msat (u64, big-endian) || expiry_time (u64, big-endian, unix seconds)
//! ```
//!
//! The top bit of the `min_amount_msat` field is a flag (amounts must be below
//! 2^63 msat): `0` when we derived the preimage ([`create`]), `1` when the
//! user gave us the hash and holds the preimage ([`create_from_hash`]).
//!
//! - Derived preimage: `nonce` is 16 random bytes from the caller;
//!   `preimage = HMAC-SHA256(preimage_key, nonce || metadata)` and
//!   `payment_hash = SHA256(preimage)`. [`verify`] recomputes the preimage
//!   from the secret and checks that it hashes to the HTLC's `payment_hash`,
//!   so it can also hand the preimage back to claim the HTLC.
//! - User hash: `nonce = HMAC-SHA256(metadata_key, metadata || payment_hash)`,
//!   its first 16 bytes. [`verify`] recomputes and compares the nonce.
//!
//! In both cases a changed byte anywhere in the secret (or the hash, or the
//! flag) fails verification, unless one knows the [`ExpandedKey`]. The
//! comparisons are constant-time.
//!
//! The functions are pure (the time and the randomness are parameters), so a
//! caller, and the tests, control the clock.

use core::fmt;

use bitcoin::hashes::{sha256, Hash, HashEngine, Hmac, HmacEngine};
use bitcoin::secp256k1::SecretKey;

use crate::types::{PaymentHash, PaymentPreimage, PaymentSecret};

/// Domain separator of [`ExpandedKey`]'s metadata key.
const METADATA_KEY_LABEL: &[u8] = b"chanstore inbound payment: metadata key";
/// Domain separator of [`ExpandedKey`]'s preimage key.
const PREIMAGE_KEY_LABEL: &[u8] = b"chanstore inbound payment: preimage key";

/// The top bit of the amount field: set when the user gave the payment hash.
const USER_HASH_FLAG: u64 = 1 << 63;

/// Length of the nonce, the first half of the secret.
const NONCE_LEN: usize = 16;

/// The keys that authenticate stateless payment secrets, derived from the
/// node secret.
///
/// Two 32-byte HMAC-SHA256 keys, each `SHA256(label || node secret)` with its
/// own label: one for the nonce of user-hash payments, one for the preimage of
/// derived payments. Its `Debug` output shows no key material.
#[derive(Clone)]
pub struct ExpandedKey {
    /// Keys the nonce of a user-hash payment.
    metadata_key: [u8; 32],
    /// Keys the preimage of a derived payment.
    preimage_key: [u8; 32],
}

impl ExpandedKey {
    /// The keys for the node whose secret is `node_secret`.
    pub fn new(node_secret: &SecretKey) -> Self {
        let derive = |label: &[u8]| {
            let mut engine = sha256::Hash::engine();
            engine.input(label);
            engine.input(&node_secret.secret_bytes());
            sha256::Hash::from_engine(engine).to_byte_array()
        };
        ExpandedKey {
            metadata_key: derive(METADATA_KEY_LABEL),
            preimage_key: derive(PREIMAGE_KEY_LABEL),
        }
    }
}

impl fmt::Debug for ExpandedKey {
    // Key material stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExpandedKey(..)")
    }
}

/// Why a payment secret cannot be created or does not verify.
///
/// Every variant [`verify`] returns should fail the HTLC with
/// `incorrect_or_unknown_payment_details` (BOLT 4); the variants are for the
/// recipient's own logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundPaymentError {
    /// The minimum amount does not fit the secret: it must be below 2^63 msat.
    #[error("minimum amount {amount_msat} msat is too large (must be below 2^63)")]
    AmountTooLarge {
        /// The amount asked for.
        amount_msat: u64,
    },
    /// `now_secs + expiry_secs` does not fit a `u64`.
    #[error("expiry time overflows")]
    ExpiryOverflow,
    /// The secret does not verify for the payment hash: a wrong or forged
    /// secret, a wrong hash, a secret made with another key, or a flipped
    /// flag.
    #[error("payment secret does not match the payment hash")]
    WrongSecret,
    /// The payer's `total_msat` is below the invoice's minimum amount.
    #[error("total {total_msat} msat is below the invoice's {min_amount_msat} msat")]
    AmountBelowMinimum {
        /// The `total_msat` of the payment.
        total_msat: u64,
        /// The minimum amount the secret encodes.
        min_amount_msat: u64,
    },
    /// The invoice expired.
    #[error("invoice expired at {expiry_time}, now is {now}")]
    Expired {
        /// When the invoice expired (unix seconds).
        expiry_time: u64,
        /// The time of the check (unix seconds).
        now: u64,
    },
    /// [`get_payment_preimage`] on a payment whose hash the user gave: we do
    /// not know its preimage.
    #[error("the payment hash was given by the user: no derived preimage")]
    NotDerived,
}

/// The metadata half of a secret: amount field (with the flag) and expiry.
fn encode_metadata(
    min_amount_msat: Option<u64>,
    user_hash: bool,
    expiry_secs: u32,
    now_secs: u64,
) -> Result<[u8; 16], InboundPaymentError> {
    let amount = min_amount_msat.unwrap_or(0);
    if amount & USER_HASH_FLAG != 0 {
        return Err(InboundPaymentError::AmountTooLarge {
            amount_msat: amount,
        });
    }
    let expiry_time = now_secs
        .checked_add(u64::from(expiry_secs))
        .ok_or(InboundPaymentError::ExpiryOverflow)?;
    let field = if user_hash {
        amount | USER_HASH_FLAG
    } else {
        amount
    };
    let mut metadata = [0u8; 16];
    metadata[..8].copy_from_slice(&field.to_be_bytes());
    metadata[8..].copy_from_slice(&expiry_time.to_be_bytes());
    Ok(metadata)
}

/// The decoded metadata half of a secret.
struct Metadata {
    /// Whether the user gave the payment hash.
    user_hash: bool,
    /// The minimum amount, without the flag.
    min_amount_msat: u64,
    /// When the invoice expires (unix seconds).
    expiry_time: u64,
}

/// Splits a secret into its nonce and metadata halves, and decodes the latter.
fn split(secret: &PaymentSecret) -> ([u8; NONCE_LEN], [u8; 16], Metadata) {
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&secret.0[..NONCE_LEN]);
    let mut metadata = [0u8; 16];
    metadata.copy_from_slice(&secret.0[NONCE_LEN..]);
    let mut field = [0u8; 8];
    field.copy_from_slice(&metadata[..8]);
    let field = u64::from_be_bytes(field);
    let mut expiry = [0u8; 8];
    expiry.copy_from_slice(&metadata[8..]);
    let decoded = Metadata {
        user_hash: field & USER_HASH_FLAG != 0,
        min_amount_msat: field & !USER_HASH_FLAG,
        expiry_time: u64::from_be_bytes(expiry),
    };
    (nonce, metadata, decoded)
}

/// HMAC-SHA256 keyed by `key` over the concatenation of `parts`.
fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut engine = HmacEngine::<sha256::Hash>::new(key);
    for part in parts {
        engine.input(part);
    }
    Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()
}

/// The preimage of a derived payment: `HMAC(preimage_key, nonce || metadata)`.
fn derive_preimage(
    key: &ExpandedKey,
    nonce: &[u8; NONCE_LEN],
    metadata: &[u8; 16],
) -> PaymentPreimage {
    PaymentPreimage(hmac(&key.preimage_key, &[nonce, metadata]))
}

/// The nonce of a user-hash payment: the first 16 bytes of
/// `HMAC(metadata_key, metadata || payment_hash)`.
fn user_nonce(key: &ExpandedKey, metadata: &[u8; 16], hash: &PaymentHash) -> [u8; NONCE_LEN] {
    let mac = hmac(&key.metadata_key, &[metadata, &hash.0]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&mac[..NONCE_LEN]);
    nonce
}

/// Whether `a == b`, in time that depends only on their lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// Joins a nonce and a metadata half into a secret.
fn join(nonce: &[u8; NONCE_LEN], metadata: &[u8; 16]) -> PaymentSecret {
    let mut secret = [0u8; 32];
    secret[..NONCE_LEN].copy_from_slice(nonce);
    secret[NONCE_LEN..].copy_from_slice(metadata);
    PaymentSecret(secret)
}

/// A new payment whose preimage we derive: its hash and secret for the
/// invoice.
///
/// `min_amount_msat` (`None`: any amount) must be below 2^63; the invoice
/// expires `expiry_secs` after `now_secs` (unix seconds). `random` must be
/// fresh random bytes for each payment: two payments with the same amount,
/// expiry and `random` share their hash. [`verify`] or
/// [`get_payment_preimage`] recover the preimage from the secret.
pub fn create(
    key: &ExpandedKey,
    min_amount_msat: Option<u64>,
    expiry_secs: u32,
    now_secs: u64,
    random: [u8; 16],
) -> Result<(PaymentHash, PaymentSecret), InboundPaymentError> {
    let metadata = encode_metadata(min_amount_msat, false, expiry_secs, now_secs)?;
    let preimage = derive_preimage(key, &random, &metadata);
    Ok((preimage.payment_hash(), join(&random, &metadata)))
}

/// The secret for a payment whose hash the user gave (and whose preimage the
/// user holds).
///
/// `min_amount_msat` (`None`: any amount) must be below 2^63; the invoice
/// expires `expiry_secs` after `now_secs` (unix seconds). Deterministic: the
/// same hash, amount and expiry give the same secret.
pub fn create_from_hash(
    key: &ExpandedKey,
    payment_hash: PaymentHash,
    min_amount_msat: Option<u64>,
    expiry_secs: u32,
    now_secs: u64,
) -> Result<PaymentSecret, InboundPaymentError> {
    let metadata = encode_metadata(min_amount_msat, true, expiry_secs, now_secs)?;
    let nonce = user_nonce(key, &metadata, &payment_hash);
    Ok(join(&nonce, &metadata))
}

/// Checks an incoming payment (BOLT 4 final node): that `payment_secret` was
/// made by `key` for `payment_hash`, that `total_msat` reaches the invoice's
/// minimum amount and that the invoice has not expired at `now_secs` (it is
/// valid up to and including its expiry time).
///
/// Returns the preimage that claims the HTLC for a payment from [`create`],
/// `None` for one from [`create_from_hash`] (the user holds the preimage).
/// The secret is authenticated first: an amount or expiry error means the
/// secret itself is genuine.
pub fn verify(
    key: &ExpandedKey,
    payment_hash: &PaymentHash,
    payment_secret: &PaymentSecret,
    total_msat: u64,
    now_secs: u64,
) -> Result<Option<PaymentPreimage>, InboundPaymentError> {
    let (nonce, metadata, decoded) = split(payment_secret);
    let preimage = if decoded.user_hash {
        if !ct_eq(&user_nonce(key, &metadata, payment_hash), &nonce) {
            return Err(InboundPaymentError::WrongSecret);
        }
        None
    } else {
        let preimage = derive_preimage(key, &nonce, &metadata);
        if !ct_eq(&preimage.payment_hash().0, &payment_hash.0) {
            return Err(InboundPaymentError::WrongSecret);
        }
        Some(preimage)
    };
    if total_msat < decoded.min_amount_msat {
        return Err(InboundPaymentError::AmountBelowMinimum {
            total_msat,
            min_amount_msat: decoded.min_amount_msat,
        });
    }
    if now_secs > decoded.expiry_time {
        return Err(InboundPaymentError::Expired {
            expiry_time: decoded.expiry_time,
            now: now_secs,
        });
    }
    Ok(preimage)
}

/// The preimage of a payment from [`create`], from its hash and secret.
///
/// Checks only that the secret is genuine for the hash, not the amount or the
/// expiry (to claim an HTLC that [`verify`] already accepted).
/// [`InboundPaymentError::NotDerived`] for a genuine secret from
/// [`create_from_hash`], [`InboundPaymentError::WrongSecret`] for a secret
/// that does not verify.
pub fn get_payment_preimage(
    key: &ExpandedKey,
    payment_hash: &PaymentHash,
    payment_secret: &PaymentSecret,
) -> Result<PaymentPreimage, InboundPaymentError> {
    let (nonce, metadata, decoded) = split(payment_secret);
    if decoded.user_hash {
        return if ct_eq(&user_nonce(key, &metadata, payment_hash), &nonce) {
            Err(InboundPaymentError::NotDerived)
        } else {
            Err(InboundPaymentError::WrongSecret)
        };
    }
    let preimage = derive_preimage(key, &nonce, &metadata);
    if ct_eq(&preimage.payment_hash().0, &payment_hash.0) {
        Ok(preimage)
    } else {
        Err(InboundPaymentError::WrongSecret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const EXPIRY: u32 = 3600;

    fn key(byte: u8) -> ExpandedKey {
        ExpandedKey::new(&SecretKey::from_slice(&[byte; 32]).unwrap())
    }

    #[test]
    fn derived_payment_verifies_and_yields_its_preimage() {
        let k = key(1);
        let (hash, secret) = create(&k, Some(5_000), EXPIRY, NOW, [9; 16]).unwrap();
        let preimage = verify(&k, &hash, &secret, 5_000, NOW)
            .unwrap()
            .expect("derived payments give their preimage");
        assert_eq!(preimage.payment_hash(), hash);
        assert_eq!(get_payment_preimage(&k, &hash, &secret).unwrap(), preimage);
        // The layout: nonce, then amount and expiry big-endian.
        assert_eq!(&secret.0[..16], &[9; 16]);
        assert_eq!(&secret.0[16..24], &5_000u64.to_be_bytes());
        assert_eq!(&secret.0[24..], &(NOW + 3600).to_be_bytes());
    }

    #[test]
    fn user_hash_payment_verifies_without_preimage() {
        let k = key(1);
        let hash = PaymentPreimage([42; 32]).payment_hash();
        let secret = create_from_hash(&k, hash, Some(1_000), EXPIRY, NOW).unwrap();
        assert_eq!(verify(&k, &hash, &secret, 1_000, NOW), Ok(None));
        assert_eq!(secret.0[16] & 0x80, 0x80, "flag set");
        assert_eq!(
            get_payment_preimage(&k, &hash, &secret),
            Err(InboundPaymentError::NotDerived)
        );
        assert_eq!(
            create_from_hash(&k, hash, Some(1_000), EXPIRY, NOW),
            Ok(secret),
            "deterministic"
        );
    }

    #[test]
    fn every_flipped_secret_byte_is_rejected() {
        let k = key(1);
        let (hash, secret) = create(&k, Some(1), EXPIRY, NOW, [3; 16]).unwrap();
        let user_hash = PaymentPreimage([4; 32]).payment_hash();
        let user_secret = create_from_hash(&k, user_hash, Some(1), EXPIRY, NOW).unwrap();
        for (hash, secret) in [(hash, secret), (user_hash, user_secret)] {
            for i in 0..32 {
                let mut bad = secret;
                bad.0[i] ^= 0x01;
                // A large total and an early time: only the secret can fail.
                assert_eq!(
                    verify(&k, &hash, &bad, u64::MAX, 0),
                    Err(InboundPaymentError::WrongSecret),
                    "byte {i}"
                );
                assert_eq!(
                    get_payment_preimage(&k, &hash, &bad),
                    Err(InboundPaymentError::WrongSecret),
                    "byte {i}"
                );
            }
        }
    }

    #[test]
    fn wrong_hash_is_rejected() {
        let k = key(1);
        let (hash, secret) = create(&k, None, EXPIRY, NOW, [3; 16]).unwrap();
        let mut other = hash;
        other.0[31] ^= 1;
        assert_eq!(
            verify(&k, &other, &secret, 1, NOW),
            Err(InboundPaymentError::WrongSecret)
        );
        assert_eq!(
            get_payment_preimage(&k, &other, &secret),
            Err(InboundPaymentError::WrongSecret)
        );
        let user_hash = PaymentPreimage([4; 32]).payment_hash();
        let user_secret = create_from_hash(&k, user_hash, None, EXPIRY, NOW).unwrap();
        assert_eq!(
            verify(&k, &hash, &user_secret, 1, NOW),
            Err(InboundPaymentError::WrongSecret)
        );
        assert_eq!(
            get_payment_preimage(&k, &hash, &user_secret),
            Err(InboundPaymentError::WrongSecret)
        );
    }

    #[test]
    fn another_nodes_secret_is_rejected() {
        let (ours, theirs) = (key(1), key(2));
        let (hash, secret) = create(&theirs, None, EXPIRY, NOW, [3; 16]).unwrap();
        assert_eq!(
            verify(&ours, &hash, &secret, 1, NOW),
            Err(InboundPaymentError::WrongSecret)
        );
        let user_hash = PaymentPreimage([4; 32]).payment_hash();
        let secret = create_from_hash(&theirs, user_hash, None, EXPIRY, NOW).unwrap();
        assert_eq!(
            verify(&ours, &user_hash, &secret, 1, NOW),
            Err(InboundPaymentError::WrongSecret)
        );
        assert_eq!(verify(&theirs, &user_hash, &secret, 1, NOW), Ok(None));
    }

    #[test]
    fn flipped_flag_is_rejected() {
        let k = key(1);
        let (hash, secret) = create(&k, Some(7), EXPIRY, NOW, [3; 16]).unwrap();
        let mut flagged = secret;
        flagged.0[16] ^= 0x80;
        assert_eq!(
            verify(&k, &hash, &flagged, 7, NOW),
            Err(InboundPaymentError::WrongSecret)
        );
        assert_eq!(
            get_payment_preimage(&k, &hash, &flagged),
            Err(InboundPaymentError::WrongSecret)
        );
        let user_hash = PaymentPreimage([4; 32]).payment_hash();
        let user_secret = create_from_hash(&k, user_hash, Some(7), EXPIRY, NOW).unwrap();
        let mut unflagged = user_secret;
        unflagged.0[16] ^= 0x80;
        assert_eq!(
            verify(&k, &user_hash, &unflagged, 7, NOW),
            Err(InboundPaymentError::WrongSecret)
        );
    }

    #[test]
    fn amount_is_checked_against_the_minimum() {
        let k = key(1);
        let (hash, secret) = create(&k, Some(10_000), EXPIRY, NOW, [3; 16]).unwrap();
        assert_eq!(
            verify(&k, &hash, &secret, 9_999, NOW),
            Err(InboundPaymentError::AmountBelowMinimum {
                total_msat: 9_999,
                min_amount_msat: 10_000
            })
        );
        assert!(verify(&k, &hash, &secret, 10_000, NOW).unwrap().is_some());
        assert!(verify(&k, &hash, &secret, 10_001, NOW).unwrap().is_some());

        let user_hash = PaymentPreimage([4; 32]).payment_hash();
        let user_secret = create_from_hash(&k, user_hash, Some(10_000), EXPIRY, NOW).unwrap();
        assert_eq!(
            verify(&k, &user_hash, &user_secret, 9_999, NOW),
            Err(InboundPaymentError::AmountBelowMinimum {
                total_msat: 9_999,
                min_amount_msat: 10_000
            })
        );
        assert_eq!(verify(&k, &user_hash, &user_secret, 10_000, NOW), Ok(None));

        let (any_hash, any_secret) = create(&k, None, EXPIRY, NOW, [5; 16]).unwrap();
        for total in [0, 1, u64::MAX] {
            assert!(verify(&k, &any_hash, &any_secret, total, NOW)
                .unwrap()
                .is_some());
        }

        let max = (1u64 << 63) - 1;
        let (max_hash, max_secret) = create(&k, Some(max), EXPIRY, NOW, [6; 16]).unwrap();
        assert!(verify(&k, &max_hash, &max_secret, max, NOW)
            .unwrap()
            .is_some());
        for too_large in [1u64 << 63, u64::MAX] {
            let err = InboundPaymentError::AmountTooLarge {
                amount_msat: too_large,
            };
            assert_eq!(create(&k, Some(too_large), EXPIRY, NOW, [3; 16]), Err(err));
            assert_eq!(
                create_from_hash(&k, user_hash, Some(too_large), EXPIRY, NOW),
                Err(err)
            );
        }
    }

    #[test]
    fn expiry_is_inclusive_and_overflow_is_an_error() {
        let k = key(1);
        let (hash, secret) = create(&k, None, EXPIRY, NOW, [3; 16]).unwrap();
        let expiry_time = NOW + u64::from(EXPIRY);
        assert!(verify(&k, &hash, &secret, 1, expiry_time)
            .unwrap()
            .is_some());
        assert_eq!(
            verify(&k, &hash, &secret, 1, expiry_time + 1),
            Err(InboundPaymentError::Expired {
                expiry_time,
                now: expiry_time + 1
            })
        );
        // get_payment_preimage ignores the expiry.
        assert!(get_payment_preimage(&k, &hash, &secret).is_ok());

        let user_hash = PaymentPreimage([4; 32]).payment_hash();
        let user_secret = create_from_hash(&k, user_hash, None, EXPIRY, NOW).unwrap();
        assert_eq!(
            verify(&k, &user_hash, &user_secret, 1, expiry_time),
            Ok(None)
        );
        assert_eq!(
            verify(&k, &user_hash, &user_secret, 1, expiry_time + 1),
            Err(InboundPaymentError::Expired {
                expiry_time,
                now: expiry_time + 1
            })
        );

        assert!(create(&k, None, 1, u64::MAX - 1, [3; 16]).is_ok());
        assert_eq!(
            create(&k, None, 2, u64::MAX - 1, [3; 16]),
            Err(InboundPaymentError::ExpiryOverflow)
        );
        assert_eq!(
            create_from_hash(&k, user_hash, None, u32::MAX, u64::MAX),
            Err(InboundPaymentError::ExpiryOverflow)
        );
    }

    #[test]
    fn different_nonces_give_different_hashes() {
        let k = key(1);
        let (hash_a, secret_a) = create(&k, Some(1), EXPIRY, NOW, [1; 16]).unwrap();
        let (hash_b, secret_b) = create(&k, Some(1), EXPIRY, NOW, [2; 16]).unwrap();
        assert_ne!(hash_a, hash_b);
        assert_ne!(secret_a, secret_b);
        // Each secret verifies only with its own hash.
        assert_eq!(
            verify(&k, &hash_a, &secret_b, 1, NOW),
            Err(InboundPaymentError::WrongSecret)
        );
        assert!(verify(&k, &hash_b, &secret_b, 1, NOW).unwrap().is_some());
    }

    #[test]
    fn debug_hides_key_material() {
        let k = key(1);
        let debug = format!("{k:?}");
        assert_eq!(debug, "ExpandedKey(..)");
        let hex =
            |bytes: &[u8; 32]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        for secret in [&k.metadata_key, &k.preimage_key, &[1u8; 32]] {
            assert!(!debug.contains(&hex(secret)));
            assert!(!debug.contains(&format!("{secret:?}")));
        }
    }

    #[test]
    fn keys_are_domain_separated() {
        let k = key(1);
        assert_ne!(k.metadata_key, k.preimage_key);
        assert_ne!(k.metadata_key, key(2).metadata_key);
        let mut engine = sha256::Hash::engine();
        engine.input(b"chanstore inbound payment: preimage key");
        engine.input(&[1u8; 32]);
        assert_eq!(
            k.preimage_key,
            sha256::Hash::from_engine(engine).to_byte_array()
        );
    }

    #[test]
    fn ct_eq_compares_whole_slices() {
        assert!(ct_eq(&[1, 2, 3], &[1, 2, 3]));
        assert!(!ct_eq(&[1, 2, 3], &[1, 2, 4]));
        assert!(!ct_eq(&[0, 2, 3], &[1, 2, 3]));
        assert!(!ct_eq(&[1, 2], &[1, 2, 3]));
        assert!(ct_eq(&[], &[]));
    }
}
