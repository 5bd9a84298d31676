//! Fuzz target for the BOLT 4 onion layer (`chanstore::onion::{packet,
//! payload, failure}`).
//!
//! Arbitrary bytes must be refused or accepted without panicking, as an
//! onion packet to peel, as a failure packet to decode, and as a hop
//! payload (which, when it decodes, must decode the same from its own
//! encoding). Arbitrary bytes almost never pass an HMAC, so the target also
//! builds authentic onions and failures from the input and checks that they
//! come back as they went in.
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run onion`.
#![no_main]

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use chanstore::message::{OnionPacket, ONION_PACKET_LEN};
use chanstore::onion::failure::{build_failure, decode_failure, wrap_failure, DecodedFailure};
use chanstore::onion::packet::{construct_onion, peel_onion, OnionHop, Peeled};
use chanstore::onion::payload::HopPayload;
use libfuzzer_sys::fuzz_target;

const AD: [u8; 32] = [0x42; 32];

fn node_key(i: usize) -> SecretKey {
    SecretKey::from_slice(&[i as u8 + 1; 32]).expect("valid key")
}

/// Builds a route of 1..=5 hops whose payloads are pieces of `data`, peels
/// it hop by hop, and sends a failure back from one hop.
fn authentic(data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(head % 5) + 1;
    let piece = (rest.len() / n).max(2);
    let secp = Secp256k1::signing_only();
    let hops: Vec<OnionHop> = (0..n)
        .map(|i| OnionHop {
            node_id: PublicKey::from_secret_key(&secp, &node_key(i)),
            payload: rest.iter().copied().skip(i * piece).take(piece).collect(),
        })
        .collect();
    let session = SecretKey::from_slice(&[0x77; 32]).expect("valid key");
    let Ok((mut packet, secrets)) = construct_onion(&session, &hops, &AD) else {
        return; // too short or too large: refused, fine
    };
    let mut kept = Vec::new();
    for (i, hop) in hops.iter().enumerate() {
        match peel_onion(&node_key(i), &packet, &AD).expect("authentic onion peels") {
            Peeled::Forward {
                payload,
                next,
                shared_secret,
            } => {
                assert!(i + 1 < n, "last hop forwards");
                assert_eq!(payload, hop.payload);
                kept.push(shared_secret);
                packet = next;
            }
            Peeled::Final {
                payload,
                shared_secret,
            } => {
                assert_eq!(i + 1, n, "hop {i} of {n} is final");
                assert_eq!(payload, hop.payload);
                kept.push(shared_secret);
            }
        }
    }
    assert_eq!(kept, secrets);
    let k = usize::from(head / 5) % n;
    let code = u16::from_be_bytes([head, rest.first().copied().unwrap_or(0)]);
    let mut reply = build_failure(&kept[k], code, rest);
    for ss in kept[..k].iter().rev() {
        wrap_failure(ss, &mut reply);
    }
    let expected_data = &rest[..rest.len().min(65533)];
    assert_eq!(
        decode_failure(&secrets, &reply),
        DecodedFailure::Hop {
            index: k,
            code,
            data: expected_data.to_vec()
        }
    );
}

fuzz_target!(|data: &[u8]| {
    // The input as a packet (zero-filled to 1366 bytes).
    let mut packet = OnionPacket::default();
    let n = data.len().min(ONION_PACKET_LEN);
    packet.0[..n].copy_from_slice(&data[..n]);
    let _ = peel_onion(&node_key(0), &packet, &AD);

    // The input as a failure packet, for routes of 0..=20 hops.
    let hops = data.first().map_or(0, |b| usize::from(b % 21));
    let secrets: Vec<[u8; 32]> = (0..hops).map(|i| [i as u8; 32]).collect();
    match decode_failure(&secrets, data) {
        DecodedFailure::Hop { index, .. } | DecodedFailure::Malformed { index } => {
            assert!(index < hops)
        }
        _ => {}
    }

    // The input as a hop payload, of either kind.
    for is_final in [false, true] {
        if let Ok(p) = HopPayload::decode(data, is_final) {
            assert_eq!(HopPayload::decode(&p.encode(), is_final), Ok(p));
        }
    }

    authentic(data);
});
