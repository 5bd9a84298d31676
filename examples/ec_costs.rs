//! What each libsecp256k1 call the store makes costs, in µs, on this
//! machine: the weights of the per-call counts in `docs/BENCHMARKS.md`
//! ("EC operations per forwarded HTLC at the hub"). Plain timing loops, no
//! criterion; each figure is the fastest of `--rounds` rounds (default 60)
//! of `--iters` calls (default 200), which is the least disturbed by
//! other work on a shared machine.
//!
//! ```text
//! cargo run --release --example ec_costs
//! ```

use std::hint::black_box;
use std::time::Instant;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::ecdh::SharedSecret;
use bitcoin::secp256k1::{Message, PublicKey, Scalar, Secp256k1, SecretKey};
use chanstore::keys::{
    derive_public_key, derive_revocation_public_key, derive_revocation_public_key_from_base_secret,
    derive_revocation_public_key_from_commitment_secret,
    derive_revocation_public_key_from_commitment_secret_with_table,
    derive_revocation_public_key_with_table, revealed_secret_point, RevocationBasepointTable,
};

fn arg(name: &str, default: u32) -> u32 {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map_or(default, |n| n.parse().expect("a number"))
}

/// The fastest of `rounds` rounds of `iters` calls of `f(i)`, in µs per call.
fn time<T>(rounds: u32, iters: u32, mut f: impl FnMut(u32) -> T) -> f64 {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for i in 0..iters {
                black_box(f(black_box(i)));
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(iters)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let (rounds, iters) = (arg("--rounds", 60), arg("--iters", 200));
    let secp = Secp256k1::new();
    let secrets: Vec<SecretKey> = (1..=64u8)
        .map(|n| SecretKey::from_slice(&sha256::Hash::hash(&[n]).to_byte_array()).unwrap())
        .collect();
    let points: Vec<PublicKey> = secrets
        .iter()
        .map(|s| PublicKey::from_secret_key(&secp, s))
        .collect();
    let serialized: Vec<[u8; 33]> = points.iter().map(PublicKey::serialize).collect();
    let scalar = Scalar::from_be_bytes(sha256::Hash::hash(b"tweak").to_byte_array()).unwrap();
    let msg = Message::from_digest(sha256::Hash::hash(b"sighash").to_byte_array());
    let sigs: Vec<_> = secrets.iter().map(|s| secp.sign_ecdsa(&msg, s)).collect();
    let at = |i: u32| (i % 64) as usize;
    let table = RevocationBasepointTable::new(&points[0]);
    let rows: Vec<(&str, f64)> = vec![
        (
            "ec_pubkey_create",
            time(rounds, iters, |i| {
                PublicKey::from_secret_key(&secp, &secrets[at(i)])
            }),
        ),
        (
            "ec_pubkey_tweak_mul",
            time(rounds, iters, |i| {
                points[at(i)].mul_tweak(&secp, &scalar).unwrap()
            }),
        ),
        (
            "ec_pubkey_tweak_add",
            time(rounds, iters, |i| {
                points[at(i)].add_exp_tweak(&secp, &scalar).unwrap()
            }),
        ),
        (
            "ec_pubkey_combine",
            time(rounds, iters, |i| {
                points[at(i)].combine(&points[at(i + 1)]).unwrap()
            }),
        ),
        (
            "ec_pubkey_serialize",
            time(rounds, iters * 20, |i| points[at(i)].serialize()),
        ),
        (
            "ec_pubkey_parse",
            time(rounds, iters * 5, |i| {
                PublicKey::from_slice(&serialized[at(i)]).unwrap()
            }),
        ),
        (
            "ec_seckey_tweak_add",
            time(rounds, iters * 20, |i| {
                secrets[at(i)].add_tweak(&scalar).unwrap()
            }),
        ),
        (
            "ec_seckey_tweak_mul",
            time(rounds, iters * 20, |i| {
                secrets[at(i)].mul_tweak(&scalar).unwrap()
            }),
        ),
        (
            "ecdh",
            time(rounds, iters, |i| {
                SharedSecret::new(&points[at(i)], &secrets[at(i + 1)])
            }),
        ),
        (
            "ecdsa_sign",
            time(rounds, iters, |i| secp.sign_ecdsa(&msg, &secrets[at(i)])),
        ),
        (
            "ecdsa_verify",
            time(rounds, iters, |i| {
                secp.verify_ecdsa(&msg, &sigs[at(i)], &points[at(i)])
                    .is_ok()
            }),
        ),
        (
            "sha256 of 66 bytes",
            time(rounds, iters * 20, |i| sha256::Hash::hash(&[i as u8; 66])),
        ),
        (
            "revocation key (2 tweak_mul + combine, 2 hashes)",
            time(rounds, iters, |i| {
                derive_revocation_public_key(&points[at(i)], &points[at(i + 1)])
            }),
        ),
        (
            "revocation key, base secret known (create + tweak_mul + combine)",
            time(rounds, iters, |i| {
                derive_revocation_public_key_from_base_secret(
                    &secrets[at(i)],
                    &points[at(i)],
                    &points[at(i + 1)],
                )
            }),
        ),
        (
            "revocation key, commitment secret known (same calls)",
            time(rounds, iters, |i| {
                derive_revocation_public_key_from_commitment_secret(
                    &points[at(i)],
                    &secrets[at(i + 1)],
                    &points[at(i + 1)],
                )
            }),
        ),
        (
            "revocation key, basepoint table (tweak_mul + table sum)",
            time(rounds, iters, |i| {
                derive_revocation_public_key_with_table(&table, &points[at(i + 1)])
            }),
        ),
        (
            "revocation key, table, commitment secret known (create + table sum)",
            time(rounds, iters, |i| {
                derive_revocation_public_key_from_commitment_secret_with_table(
                    &table,
                    &secrets[at(i + 1)],
                    &points[at(i + 1)],
                )
            }),
        ),
        (
            "a revocation basepoint's table, built",
            time(rounds.min(5), 5, |i| {
                RevocationBasepointTable::new(&points[at(i)])
            }),
        ),
        (
            "ec_pubkey_combine of 33 points (the generator table's sum)",
            time(rounds, iters, |i| {
                let terms: Vec<&PublicKey> = (0..33).map(|j| &points[at(i + j)]).collect();
                PublicKey::combine_keys(&terms).unwrap()
            }),
        ),
        (
            "revealed secret's point (generator table, combine of 32)",
            time(rounds, iters, |i| {
                revealed_secret_point(&secrets[at(i)].secret_bytes()).unwrap()
            }),
        ),
        (
            "key derivation (generator table: combine of 33, 1 hash)",
            time(rounds, iters, |i| {
                derive_public_key(&points[at(i)], &points[at(i + 1)])
            }),
        ),
    ];
    println!("{rounds} rounds of {iters} calls (cheap calls: more), fastest round:");
    for (name, us) in rows {
        println!("{name:<66} {us:>8.3} µs");
    }
}
