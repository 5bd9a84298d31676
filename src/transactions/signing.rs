//! Signing and verification helpers, so callers never touch the secp256k1
//! context, and the witness of a funding spend.

use bitcoin::secp256k1::{ecdsa::Signature, Message, PublicKey, SecretKey};
use bitcoin::Witness;

use super::scripts::funding_redeemscript;
use crate::secp::SECP;

/// Signs `msg` with `key`: deterministic ECDSA (RFC 6979), low-S, as
/// `Secp256k1::sign_ecdsa` does. The same inputs always give the same
/// signature, which is what the BOLT 3 test vectors rely on.
pub fn sign(msg: &Message, key: &SecretKey) -> Signature {
    SECP.sign_ecdsa(msg, key)
}

/// Whether `sig` is a valid signature of `msg` by `pubkey`. High-S
/// signatures are rejected (they are not standard in Bitcoin).
pub fn verify(msg: &Message, sig: &Signature, pubkey: &PublicKey) -> bool {
    SECP.verify_ecdsa(msg, sig, pubkey).is_ok()
}

/// The witness of a transaction input spending the funding output (a
/// commitment or closing transaction):
/// `0 <signature_for_pubkey1> <signature_for_pubkey2> <funding_redeemscript>`,
/// each signature with `SIGHASH_ALL`, ordered like the keys in
/// [`funding_redeemscript`].
pub fn funding_spend_witness(
    sig_a: &Signature,
    pubkey_a: &PublicKey,
    sig_b: &Signature,
    pubkey_b: &PublicKey,
) -> Witness {
    let (first, second) = if pubkey_a.serialize() <= pubkey_b.serialize() {
        (sig_a, sig_b)
    } else {
        (sig_b, sig_a)
    };
    let mut witness = Witness::new();
    witness.push(Vec::new());
    witness.push_ecdsa_signature(&bitcoin::ecdsa::Signature::sighash_all(*first));
    witness.push_ecdsa_signature(&bitcoin::ecdsa::Signature::sighash_all(*second));
    witness.push(funding_redeemscript(pubkey_a, pubkey_b).as_bytes());
    witness
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_is_deterministic_and_verifies() {
        let key = SecretKey::from_slice(&[3; 32]).unwrap();
        let pubkey = PublicKey::from_secret_key(&SECP, &key);
        let msg = Message::from_digest([5; 32]);
        let sig = sign(&msg, &key);
        assert_eq!(sig, sign(&msg, &key));
        assert!(verify(&msg, &sig, &pubkey));
        assert!(!verify(&Message::from_digest([6; 32]), &sig, &pubkey));
    }
}
