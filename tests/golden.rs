//! Golden files: `tests/data/v1/` was written once by
//! `regenerate_golden_files` (run with `--ignored` only when a new format
//! version is released, into a new directory) and is read forever after.
//! Also: an unknown odd record is skipped, an unknown even one refused.

mod common;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::SecretKey;
use chanstore::persist::decode_channel_details;
use chanstore::{
    ChannelStore, DecodeError, Event, PaymentPreimage, Route, RouteHop, StoreConfig, StoreError,
};
use common::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/v1");

fn hub_secret() -> SecretKey {
    SecretKey::from_slice(&[2; 32]).unwrap()
}

/// The fixed scenario: hub B with channels to A (A opened, 600k sat pushed
/// 100k sat... see asserts) and to C; HTLCs in flight both ways, one forward
/// queued, events pending.
#[test]
#[ignore = "writes tests/data/v1; run only to create a new format version's files"]
fn regenerate_golden_files() {
    let (a, b, c) = (node(1), node(2), node(3));
    connect_all(&[&a, &b, &c]);
    let (ab, scid_ab) = open_channel(&a, &b, 600_000, 100_000_000);
    let (_bc, scid_bc) = open_channel(&b, &c, 400_000, 0);
    let hop = |n: &ChannelStore, scid, fee| RouteHop {
        node_id: n.node_id(),
        short_channel_id: scid,
        fee_msat: fee,
        cltv_expiry_delta: 72,
    };
    // A pays B directly (claimable at B), B pays A, and A pays C through B.
    a.send_payment(
        &Route {
            hops: vec![hop(&b, scid_ab, 0)],
        },
        PaymentPreimage([0x11; 32]).payment_hash(),
        7_000_000,
        invoice(
            &Route {
                hops: vec![hop(&b, scid_ab, 0)],
            },
            PaymentPreimage([0x11; 32]).payment_hash(),
        ),
    )
    .unwrap();
    b.send_payment(
        &Route {
            hops: vec![hop(&a, scid_ab, 0)],
        },
        PaymentPreimage([0x22; 32]).payment_hash(),
        3_000_000,
        invoice(
            &Route {
                hops: vec![hop(&a, scid_ab, 0)],
            },
            PaymentPreimage([0x22; 32]).payment_hash(),
        ),
    )
    .unwrap();
    let fee = b.config().forwarding_fee_msat(5_000_000);
    a.send_payment(
        &Route {
            hops: vec![hop(&b, scid_ab, fee), hop(&c, scid_bc, 0)],
        },
        PaymentPreimage([0x33; 32]).payment_hash(),
        5_000_000,
        invoice(
            &Route {
                hops: vec![hop(&b, scid_ab, fee), hop(&c, scid_bc, 0)],
            },
            PaymentPreimage([0x33; 32]).payment_hash(),
        ),
    )
    .unwrap();
    // Deliver, but never let B forward: the forward stays queued.
    loop {
        let mut moved = false;
        for from in [&a, &b, &c] {
            for (to, m) in from.get_and_clear_pending_msg_events() {
                let dest = [&a, &b, &c]
                    .into_iter()
                    .find(|n| n.node_id() == to)
                    .unwrap();
                dest.handle_message(&from.node_id(), m).unwrap();
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    assert_eq!(b.pending_forwards(), 1);
    std::fs::create_dir_all(DIR).unwrap();
    let mut store = Vec::new();
    b.write(&mut store).unwrap();
    std::fs::write(format!("{DIR}/store.bin"), store).unwrap();
    std::fs::write(format!("{DIR}/channel.bin"), b.encode_channel(&ab).unwrap()).unwrap();
}

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap_or_else(|e| panic!("{DIR}/{name}: {e}"))
}

#[test]
fn v1_store_reads_back_the_scenario() {
    let store = ChannelStore::read(
        &mut &golden("store.bin")[..],
        StoreConfig::default(),
        hub_secret(),
    )
    .unwrap();
    let mut channels = store.list_channels();
    channels.sort_by_key(|c| c.channel_value_sat);
    assert_eq!(channels.len(), 2);
    let (bc, ab) = (&channels[0], &channels[1]);
    let fee = StoreConfig::default().forwarding_fee_msat(5_000_000);
    // A-B: 600k sat opened by A with 100k sat pushed to B; B offered 3M msat to A;
    // A offered 7M (to B) and 5M + fee (to forward to C).
    assert_eq!(ab.channel_value_sat, 600_000);
    assert!(!ab.is_outbound);
    assert_eq!(ab.pending_htlcs, 3);
    assert_eq!(ab.balance_msat, 100_000_000 - 3_000_000);
    assert_eq!(ab.in_flight_msat, 7_000_000 + 5_000_000 + fee + 3_000_000);
    assert_eq!(ab.short_channel_id.unwrap().to_string(), "1x1x0");
    // B-C: opened by B, nothing in flight yet (the forward is queued).
    assert_eq!(bc.channel_value_sat, 400_000);
    assert!(bc.is_outbound);
    assert_eq!((bc.pending_htlcs, bc.balance_msat), (0, 400_000_000));
    assert_eq!(bc.short_channel_id.unwrap().to_string(), "2x1x0");
    assert_eq!(store.pending_forwards(), 1);
    let events = store.get_and_clear_pending_events();
    assert!(events.contains(&Event::PaymentReceived {
        payment_hash: PaymentPreimage([0x11; 32]).payment_hash(),
        amount_msat: 7_000_000,
        payment_preimage: None,
    }));
    store.check_value_conserved().unwrap();
    store.check_indexes().unwrap();
}

#[test]
fn v1_channel_record_decodes() {
    let d = decode_channel_details(&golden("channel.bin"), &hub_secret()).unwrap();
    assert_eq!((d.channel_value_sat, d.pending_htlcs), (600_000, 3));
}

/// Splits a framed record into (version, records) after checking the checksum.
fn unframe(bytes: &[u8]) -> (u8, Vec<u8>) {
    let (body, trailer) = bytes.split_at(bytes.len() - 8);
    assert_eq!(trailer[..4], [0xfd, 0xff, 0xfe, 4]);
    assert_eq!(sha256::Hash::hash(body).to_byte_array()[..4], trailer[4..]);
    (body[0], body[1..].to_vec())
}

#[test]
fn unknown_odd_record_is_skipped_unknown_even_refused() {
    let (version, records) = unframe(&golden("channel.bin"));
    let channel_id = decode_channel_details(&golden("channel.bin"), &hub_secret())
        .unwrap()
        .channel_id;
    // Types in a channel record stop at 41; 61 and 60 are new, one byte each.
    let with = |ty: u8| {
        let mut r = records.clone();
        r.extend_from_slice(&[ty, 3, b'n', b'e', b'w']);
        frame_records(version, &r)
    };
    let odd = decode_channel_details(&with(61), &hub_secret()).unwrap();
    assert_eq!(odd.pending_htlcs, 3);
    assert_eq!(
        decode_channel_details(&with(60), &hub_secret()),
        Err(DecodeError::UnknownRequiredRecord {
            record_type: 60,
            context: format!("channel {channel_id}")
        })
    );
    // A future format version is refused as such.
    assert_eq!(
        decode_channel_details(&frame_records(2, &records), &hub_secret()),
        Err(DecodeError::UnsupportedVersion(2))
    );
    // And through the store: an unknown even record in the store snapshot.
    let (version, mut store_records) = unframe(&golden("store.bin"));
    store_records.extend_from_slice(&[12, 1, 0]);
    let refused = ChannelStore::read(
        &mut &frame_records(version, &store_records)[..],
        StoreConfig::default(),
        hub_secret(),
    );
    assert!(matches!(
        refused.err(),
        Some(StoreError::Decode(DecodeError::UnknownRequiredRecord {
            record_type: 12,
            ..
        }))
    ));
}

/// A persister as 0.1 left it: one channel, stored whole under
/// `Key::Channel`.
fn v01_persister() -> (
    std::sync::Arc<chanstore::MemoryPersister>,
    chanstore::ChannelId,
) {
    use chanstore::{persist::Key, Persister};
    let record = golden("channel.bin");
    let id = decode_channel_details(&record, &hub_secret())
        .unwrap()
        .channel_id;
    let p = std::sync::Arc::new(chanstore::MemoryPersister::new());
    p.write_batch(&[(Key::Channel(id), Some(record))]).unwrap();
    (p, id)
}

/// A 0.1 channel that closes before anything rewrote it (forced by the
/// user, or by a deadline that passed while the node was down, so on
/// open) leaves no live record behind: the store opens again, with the
/// channel closed.
#[test]
fn a_v01_channel_closed_before_its_first_write_stays_closed_after_restart() {
    // Early enough that nothing is due, then 5,000 blocks late.
    for (height, force) in [(800_000 - 500, true), (800_000 + 5_000, false)] {
        let (p, id) = v01_persister();
        let open = || {
            ChannelStore::with_persister(StoreConfig::default(), hub_secret(), height, p.clone())
        };
        let b = open().unwrap();
        if force {
            assert_eq!(b.list_channels().len(), 1);
            b.force_close_channel(&id).unwrap();
        }
        b.flush().unwrap();
        assert!(b.list_channels().is_empty(), "force={force}");
        assert_eq!(b.closed_channels().len(), 1, "force={force}");
        drop(b);
        let again = open().unwrap_or_else(|e| panic!("force={force}: reopening fails: {e}"));
        assert!(again.list_channels().is_empty(), "force={force}");
        assert_eq!(again.closed_channels().len(), 1, "force={force}");
    }
}
