//! What the BOLT 4 onion layer costs (`chanstore::onion::{packet, failure}`):
//! building a 3-hop and a 20-hop onion, peeling one layer (forward and
//! final), and a failure from hop 3 of 3 built, wrapped back by hops 2 and
//! 1, and decoded by the sender. The `ec` group times the elliptic-curve
//! operations those steps are made of (see `src/onion/packet.rs` for how
//! many each step does).
//!
//! Run: `cargo bench --bench onion`.

use std::hint::black_box;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{ecdh::SharedSecret, PublicKey, Scalar, Secp256k1, SecretKey};
use chanstore::onion::failure::{build_failure, decode_failure, wrap_failure};
use chanstore::onion::packet::{construct_onion, peel_onion, OnionHop, Peeled};
use chanstore::onion::payload::{HopPayload, PaymentData};
use chanstore::types::{PaymentSecret, ShortChannelId};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

fn key(n: usize) -> SecretKey {
    SecretKey::from_slice(&[n as u8 + 1; 32]).unwrap()
}

/// A route of `n` hops with realistic payloads: forwards, then a final
/// payload with `payment_data`.
fn route(n: usize) -> (Vec<SecretKey>, Vec<OnionHop>) {
    let secp = Secp256k1::new();
    let keys: Vec<SecretKey> = (0..n).map(key).collect();
    let hops = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let amt = 1_000_000 + 1_000 * (n - i) as u64;
            let cltv = 800_000 + 40 * (n - i) as u32;
            let payload = if i + 1 < n {
                HopPayload::Forward {
                    short_channel_id: ShortChannelId::new(800_000 + i as u32, 1_234, 1).unwrap(),
                    amt_to_forward: amt,
                    outgoing_cltv_value: cltv,
                }
            } else {
                HopPayload::Receive {
                    amt_to_forward: amt,
                    outgoing_cltv_value: cltv,
                    payment_data: Some(PaymentData {
                        payment_secret: PaymentSecret([0x55; 32]),
                        total_msat: amt,
                    }),
                    payment_metadata: None,
                }
            };
            OnionHop {
                node_id: PublicKey::from_secret_key(&secp, k),
                payload: payload.encode(),
            }
        })
        .collect();
    (keys, hops)
}

const AD: [u8; 32] = [0x42; 32];

fn session() -> SecretKey {
    SecretKey::from_slice(&[0x77; 32]).unwrap()
}

fn bench_construct(c: &mut Criterion) {
    let mut g = c.benchmark_group("onion/construct");
    for n in [3, 20] {
        let (_, hops) = route(n);
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{n}_hops")),
            &hops,
            |b, hops| b.iter(|| construct_onion(&session(), black_box(hops), &AD).unwrap()),
        );
    }
    g.finish();
}

fn bench_peel(c: &mut Criterion) {
    let mut g = c.benchmark_group("onion/peel");
    let (keys, hops) = route(3);
    let (packet, _) = construct_onion(&session(), &hops, &AD).unwrap();
    g.bench_function("forward", |b| {
        b.iter(
            || match peel_onion(&keys[0], black_box(&packet), &AD).unwrap() {
                Peeled::Forward { next, .. } => next,
                Peeled::Final { .. } => unreachable!(),
            },
        )
    });
    let (keys, hops) = route(1);
    let (last, _) = construct_onion(&session(), &hops, &AD).unwrap();
    g.bench_function("final", |b| {
        b.iter(|| peel_onion(&keys[0], black_box(&last), &AD).unwrap())
    });
    g.bench_function("final_and_decode_payload", |b| {
        b.iter(
            || match peel_onion(&keys[0], black_box(&last), &AD).unwrap() {
                Peeled::Final { payload, .. } => HopPayload::decode(&payload, true).unwrap(),
                Peeled::Forward { .. } => unreachable!(),
            },
        )
    });
    g.finish();
}

fn bench_failure(c: &mut Criterion) {
    let mut g = c.benchmark_group("onion/failure");
    let (_, hops) = route(3);
    let (_, secrets) = construct_onion(&session(), &hops, &AD).unwrap();
    // incorrect_or_unknown_payment_details: htlc_msat, height.
    let data = [0, 0, 0, 0, 0, 0x0f, 0x42, 0x40, 0, 0x0c, 0x35, 0];
    g.bench_function("hop_3_of_3_build_wrap_decode", |b| {
        b.iter(|| {
            let mut reply = build_failure(&secrets[2], 0x400f, black_box(&data));
            wrap_failure(&secrets[1], &mut reply);
            wrap_failure(&secrets[0], &mut reply);
            decode_failure(&secrets, &reply)
        })
    });
    let mut reply = build_failure(&secrets[2], 0x400f, &data);
    wrap_failure(&secrets[1], &mut reply);
    wrap_failure(&secrets[0], &mut reply);
    g.bench_function("hop_3_of_3_decode", |b| {
        b.iter(|| decode_failure(&secrets, black_box(&reply)))
    });
    g.finish();
}

fn bench_ec(c: &mut Criterion) {
    let mut g = c.benchmark_group("onion/ec");
    let secp = Secp256k1::new();
    let (sk, other) = (key(1), key(2));
    let pk = PublicKey::from_secret_key(&secp, &other);
    let bytes = pk.serialize();
    let tweak = Scalar::from_be_bytes(sha256::Hash::hash(b"blinding").to_byte_array()).unwrap();
    g.bench_function("ecdh", |b| {
        b.iter(|| SharedSecret::new(black_box(&pk), &sk))
    });
    g.bench_function("pubkey_create", |b| {
        b.iter(|| PublicKey::from_secret_key(&secp, black_box(&sk)))
    });
    g.bench_function("pubkey_tweak_mul", |b| {
        b.iter(|| black_box(pk).mul_tweak(&secp, &tweak).unwrap())
    });
    g.bench_function("seckey_tweak_mul", |b| {
        b.iter(|| black_box(sk).mul_tweak(&tweak).unwrap())
    });
    g.bench_function("pubkey_parse", |b| {
        b.iter(|| PublicKey::from_slice(black_box(&bytes)).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(3));
    targets = bench_construct, bench_peel, bench_failure, bench_ec
}
criterion_main!(benches);
