//! What BOLT 3's per-HTLC signatures cost: building and signing a commitment
//! transaction with `n` untrimmed HTLCs (one commitment signature plus one
//! HTLC-success/timeout signature per HTLC), and verifying it, for n = 0, 1,
//! 2, 10. This is the crypto a `commitment_signed` costs its sender and its
//! receiver; `docs/BENCHMARKS.md` relates it to the forwarding benchmark.

use std::hint::black_box;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::Message;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{OutPoint, Txid};
use chanstore::keys::{derive_private_key, derive_public_key};
use chanstore::transactions::{
    build_commitment_transaction, build_htlc_transaction, commitment_sighash, funding_redeemscript,
    htlc_sighash, sign, verify, ChannelPublicKeys, CommitmentParams, HtlcOutputInCommitment,
    TxCreationKeys,
};
use chanstore::PaymentHash;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn key(n: u8) -> SecretKey {
    SecretKey::from_slice(&[n; 32]).unwrap()
}

fn pubkeys(base: u8) -> ChannelPublicKeys {
    let secp = Secp256k1::new();
    let pk = |n| PublicKey::from_secret_key(&secp, &key(n));
    ChannelPublicKeys {
        funding_pubkey: pk(base),
        revocation_basepoint: pk(base + 1),
        payment_basepoint: pk(base + 2),
        delayed_payment_basepoint: pk(base + 3),
        htlc_basepoint: pk(base + 4),
    }
}

struct Setup {
    ours: ChannelPublicKeys,
    theirs: ChannelPublicKeys,
    keys: TxCreationKeys,
    htlcs: Vec<HtlcOutputInCommitment>,
}

fn setup(n: usize) -> Setup {
    let (ours, theirs) = (pubkeys(1), pubkeys(11));
    let point = PublicKey::from_secret_key(&Secp256k1::new(), &key(42));
    let keys = TxCreationKeys::derive(&point, &theirs, &ours);
    let htlcs = (0..n)
        .map(|i| HtlcOutputInCommitment {
            offered: i % 2 == 0,
            amount_msat: 5_000_000 + i as u64 * 1000,
            cltv_expiry: 800_100 + i as u32,
            payment_hash: PaymentHash([i as u8; 32]),
        })
        .collect();
    Setup {
        ours,
        theirs,
        keys,
        htlcs,
    }
}

/// The peer's commitment transaction, as both sides build it.
fn build(s: &Setup) -> chanstore::transactions::CommitmentTransaction {
    let params = CommitmentParams {
        funding_outpoint: OutPoint::new(Txid::from_byte_array([7; 32]), 0),
        commitment_number: 42,
        obscure_factor: 0x2bb0_3852_1914,
        to_broadcaster_value_msat: 4_000_000_000,
        to_countersignatory_value_msat: 5_000_000_000,
        broadcaster_is_funder: false,
        feerate_per_kw: 253,
        dust_limit_sat: 354,
        to_self_delay: 144,
        keys: &s.keys,
        countersignatory_payment_key: s.ours.payment_basepoint,
        broadcaster_funding_pubkey: s.theirs.funding_pubkey,
        countersignatory_funding_pubkey: s.ours.funding_pubkey,
        anchors: false,
        htlcs: &s.htlcs,
    };
    build_commitment_transaction(&params)
}

/// The commitment's sighash and each untrimmed HTLC's (HTLC, its tx sighash).
fn digests(s: &Setup) -> (Message, Vec<Message>) {
    let tx = build(s);
    let script = funding_redeemscript(&s.ours.funding_pubkey, &s.theirs.funding_pubkey);
    let txid = tx.tx.compute_txid();
    let htlcs = s
        .htlcs
        .iter()
        .zip(&tx.htlc_output_index)
        .filter_map(|(h, vout)| vout.map(|v| (h, v)))
        .map(|(h, vout)| {
            let htlc_tx = build_htlc_transaction(&txid, vout, h, 253, 144, &s.keys, false);
            htlc_sighash(&htlc_tx, h, &s.keys, false)
        })
        .collect();
    (commitment_sighash(&tx.tx, &script, 10_000_000), htlcs)
}

/// What our `commitment_signed` costs us: build, then sign the commitment
/// and each HTLC transaction.
fn sign_commitment(s: &Setup) -> (Signature, Vec<Signature>) {
    let (commitment, htlcs) = digests(s);
    let htlc_key = derive_private_key(&key(5), &s.keys.per_commitment_point);
    (
        sign(&commitment, &key(1)),
        htlcs.iter().map(|m| sign(m, &htlc_key)).collect(),
    )
}

/// What the peer's `commitment_signed` costs us: build, then verify all.
fn verify_commitment(
    s: &Setup,
    sig: &Signature,
    htlc_sigs: &[Signature],
    funding: &PublicKey,
    htlc_pk: &PublicKey,
) -> bool {
    let (commitment, htlcs) = digests(s);
    verify(&commitment, sig, funding)
        && htlcs
            .iter()
            .zip(htlc_sigs)
            .all(|(m, sig)| verify(m, sig, htlc_pk))
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("commitment_signed");
    let secp = Secp256k1::new();
    for n in [0usize, 1, 2, 10] {
        let s = setup(n);
        group.bench_with_input(BenchmarkId::new("sign", n), &s, |b, s| {
            b.iter(|| black_box(sign_commitment(s)))
        });
        let (sig, htlc_sigs) = sign_commitment(&s);
        let funding = PublicKey::from_secret_key(&secp, &key(1));
        let htlc_pk = derive_public_key(
            &PublicKey::from_secret_key(&secp, &key(5)),
            &s.keys.per_commitment_point,
        );
        assert!(
            verify_commitment(&s, &sig, &htlc_sigs, &funding, &htlc_pk),
            "the bench must verify real signatures"
        );
        group.bench_with_input(BenchmarkId::new("verify", n), &s, |b, s| {
            b.iter(|| black_box(verify_commitment(s, &sig, &htlc_sigs, &funding, &htlc_pk)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
