//! BOLT 3 appendix E: key derivation, all four vectors.

use bitcoin::secp256k1::SecretKey;
use chanstore::keys::{
    derive_private_key, derive_public_key, derive_revocation_private_key,
    derive_revocation_public_key, derive_revocation_public_key_from_base_secret,
    derive_revocation_public_key_from_commitment_secret,
    derive_revocation_public_key_from_commitment_secret_with_table,
    derive_revocation_public_key_with_table, per_commitment_point, RevocationBasepointTable,
};

use super::{bytes32, pubkey};

const BASE_SECRET: &str = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const PER_COMMITMENT_SECRET: &str =
    "0x1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
const BASE_POINT: &str = "0x036d6caac248af96f6afa7f904f550253a0f3ef3f5aa2fe6838a95b216691468e2";
const PER_COMMITMENT_POINT: &str =
    "0x025f7117a78150fe2ef97db7cfc83bd57b2e2c0d0dd25eaf467a4a1c2a45ce1486";

fn secret_key(hex: &str) -> SecretKey {
    SecretKey::from_slice(&bytes32(hex)).unwrap()
}

/// The shared inputs: the points are those of the secrets.
#[test]
fn appendix_e_points_match_secrets() {
    let base_point = bitcoin::secp256k1::PublicKey::from_secret_key(
        &bitcoin::secp256k1::Secp256k1::signing_only(),
        &secret_key(BASE_SECRET),
    );
    assert_eq!(base_point, pubkey(BASE_POINT), "base_point");
    assert_eq!(
        per_commitment_point(&bytes32(PER_COMMITMENT_SECRET)).unwrap(),
        pubkey(PER_COMMITMENT_POINT),
        "per_commitment_point"
    );
}

#[test]
fn derivation_of_pubkey_from_basepoint_and_per_commitment_point() {
    assert_eq!(
        derive_public_key(&pubkey(BASE_POINT), &pubkey(PER_COMMITMENT_POINT)),
        pubkey("0x0235f2dbfaa89b57ec7b055afe29849ef7ddfeb1cefdb9ebdc43f5494984db29e5"),
        "derivation of pubkey from basepoint and per_commitment_point"
    );
}

#[test]
fn derivation_of_private_key_from_basepoint_secret_and_per_commitment_secret() {
    assert_eq!(
        derive_private_key(&secret_key(BASE_SECRET), &pubkey(PER_COMMITMENT_POINT)),
        secret_key("0xcbced912d3b21bf196a766651e436aff192362621ce317704ea2f75d87e7be0f"),
        "derivation of private key from basepoint secret and per_commitment_secret"
    );
}

#[test]
fn derivation_of_revocation_pubkey_from_basepoint_and_per_commitment_point() {
    assert_eq!(
        derive_revocation_public_key(&pubkey(BASE_POINT), &pubkey(PER_COMMITMENT_POINT)),
        pubkey("0x02916e326636d19c33f13e8c0c3a03dd157f332f3e99c317c141dd865eb01f8ff0"),
        "derivation of revocation pubkey from basepoint and per_commitment_point"
    );
}

/// The same vector from the side that knows one of the two secrets: the
/// countersignatory (revocation base secret) or the broadcaster
/// (per-commitment secret), each with a generator multiplication in place
/// of one variable-base one.
#[test]
fn derivation_of_revocation_pubkey_knowing_either_secret() {
    let expected = pubkey("0x02916e326636d19c33f13e8c0c3a03dd157f332f3e99c317c141dd865eb01f8ff0");
    assert_eq!(
        derive_revocation_public_key_from_base_secret(
            &secret_key(BASE_SECRET),
            &pubkey(BASE_POINT),
            &pubkey(PER_COMMITMENT_POINT)
        ),
        expected,
        "revocation pubkey from basepoint secret and per_commitment_point"
    );
    assert_eq!(
        derive_revocation_public_key_from_commitment_secret(
            &pubkey(BASE_POINT),
            &secret_key(PER_COMMITMENT_SECRET),
            &pubkey(PER_COMMITMENT_POINT)
        ),
        expected,
        "revocation pubkey from basepoint and per_commitment_secret"
    );
}

/// The same vector with a table of the basepoint (what a busy channel
/// keeps): without any secret, and with the per-commitment secret.
#[test]
fn derivation_of_revocation_pubkey_with_a_basepoint_table() {
    let expected = pubkey("0x02916e326636d19c33f13e8c0c3a03dd157f332f3e99c317c141dd865eb01f8ff0");
    let table = RevocationBasepointTable::new(&pubkey(BASE_POINT));
    assert_eq!(
        derive_revocation_public_key_with_table(&table, &pubkey(PER_COMMITMENT_POINT)),
        expected,
        "revocation pubkey from a basepoint table and per_commitment_point"
    );
    assert_eq!(
        derive_revocation_public_key_from_commitment_secret_with_table(
            &table,
            &secret_key(PER_COMMITMENT_SECRET),
            &pubkey(PER_COMMITMENT_POINT)
        ),
        expected,
        "revocation pubkey from a basepoint table and per_commitment_secret"
    );
}

#[test]
fn derivation_of_revocation_secret_from_basepoint_secret_and_per_commitment_secret() {
    assert_eq!(
        derive_revocation_private_key(&secret_key(BASE_SECRET), &secret_key(PER_COMMITMENT_SECRET)),
        secret_key("0xd09ffff62ddb2297ab000cc85bcb4283fdeb6aa052affbc9dddcf33b61078110"),
        "derivation of revocation secret from basepoint_secret and per_commitment_secret"
    );
}
