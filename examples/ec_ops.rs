//! A - B - C in one process, then `--payments N` payments from A to C
//! through B, each claimed (or, with `--pair`, LDK's `bench_sends` load:
//! payments alternately A to B and B to A over one channel, dust-sized, so
//! a send pair is two payments): the load to count libsecp256k1 calls on
//! (`docs/BENCHMARKS.md`, "What a payment costs in EC operations"). Run it
//! with N and with N + 10 under `perf stat` with uprobes on the library's
//! functions; the difference over 10 is one payment's.
//!
//! ```text
//! cargo build --release --example ec_ops
//! perf probe -x target/release/examples/ec_ops rustsecp256k1_v0_10_0_ecdh
//! perf stat -e 'probe_ec_ops:*' target/release/examples/ec_ops --payments 10
//! ```

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::SecretKey;
use bitcoin::{OutPoint, Txid};
use chanstore::{
    ChannelStore, Event, PaymentPreimage, RecipientOnionFields, Route, RouteHop, ShortChannelId,
    StoreConfig,
};

const HEIGHT: u32 = 800_000;

fn deliver(nodes: &[&ChannelStore]) {
    loop {
        let mut quiet = true;
        for from in nodes {
            for (to, msg) in from.get_and_clear_pending_msg_events() {
                let dest = nodes.iter().find(|n| n.node_id() == to).expect("known");
                dest.handle_message(&from.node_id(), msg).expect("accepted");
                quiet = false;
            }
            quiet &= from.process_pending_forwards() == 0;
        }
        if quiet {
            return;
        }
    }
}

fn open(a: &ChannelStore, b: &ChannelStore, n: u8) -> ShortChannelId {
    // Half pushed, so payments can go either way.
    let temp = a
        .create_channel(b.node_id(), 1_000_000, 500_000_000)
        .unwrap();
    deliver(&[a, b]);
    let outpoint = OutPoint::new(Txid::from_byte_array([n; 32]), 0);
    let id = a
        .funding_transaction_generated(&temp, &b.node_id(), outpoint)
        .unwrap();
    deliver(&[a, b]);
    let scid = ShortChannelId::new(HEIGHT - 10, u32::from(n), 0).unwrap();
    a.funding_confirmed(&id, scid).unwrap();
    b.funding_confirmed(&id, scid).unwrap();
    deliver(&[a, b]);
    scid
}

fn main() {
    let payments: u16 = std::env::args()
        .skip_while(|a| a != "--payments")
        .nth(1)
        .map_or(10, |n| n.parse().expect("--payments N"));
    let node = |n: u8| {
        ChannelStore::new(
            StoreConfig::default(),
            SecretKey::from_slice(&[n; 32]).unwrap(),
            HEIGHT,
        )
        .unwrap()
    };
    let (a, b, c) = (node(1), node(2), node(3));
    for (x, y) in [(&a, &b), (&b, &c)] {
        x.peer_connected(y.node_id());
        y.peer_connected(x.node_id());
    }
    let (ab, bc) = (open(&a, &b, 1), open(&b, &c, 2));
    let fee = b.config().forwarding_fee_msat(1_000_000);
    let route = Route {
        hops: vec![
            RouteHop {
                node_id: b.node_id(),
                short_channel_id: ab,
                fee_msat: fee,
                cltv_expiry_delta: u32::from(b.config().cltv_expiry_delta),
            },
            RouteHop {
                node_id: c.node_id(),
                short_channel_id: bc,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            },
        ],
    };
    let nodes = [&a, &b, &c];
    if std::env::args().any(|a| a == "--pair") {
        // A <-> B over A-B: 10,000 msat, below the dust limit.
        for i in 0..payments {
            let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let mut bytes = [9u8; 32];
            bytes[..2].copy_from_slice(&i.to_be_bytes());
            let preimage = PaymentPreimage(bytes);
            let hash = preimage.payment_hash();
            let secret = to
                .create_inbound_payment_for_hash(hash, None, 3600)
                .unwrap();
            let route = Route {
                hops: vec![RouteHop {
                    node_id: to.node_id(),
                    short_channel_id: ab,
                    fee_msat: 0,
                    cltv_expiry_delta: 0,
                }],
            };
            from.send_payment(
                &route,
                hash,
                10_000,
                RecipientOnionFields::secret_only(secret),
            )
            .unwrap();
            deliver(&nodes);
            to.claim_funds(preimage).unwrap();
            deliver(&nodes);
            assert!(from
                .get_and_clear_pending_events()
                .iter()
                .any(|e| matches!(e, Event::PaymentSent { .. })));
        }
        println!("{payments} payments A <-> B");
        return;
    }
    for i in 0..payments {
        let mut bytes = [7u8; 32];
        bytes[..2].copy_from_slice(&i.to_be_bytes());
        let preimage = PaymentPreimage(bytes);
        let hash = preimage.payment_hash();
        let secret = c.create_inbound_payment_for_hash(hash, None, 3600).unwrap();
        a.send_payment(
            &route,
            hash,
            1_000_000,
            RecipientOnionFields::secret_only(secret),
        )
        .unwrap();
        deliver(&nodes);
        c.claim_funds(preimage).unwrap();
        deliver(&nodes);
        let sent = a
            .get_and_clear_pending_events()
            .iter()
            .any(|e| matches!(e, Event::PaymentSent { .. }));
        assert!(sent, "payment {i} was not sent");
    }
    println!("{payments} payments A -> B -> C");
}
