//! `get_and_clear_pending_msg_events_for`: draining the outboxes of some
//! peers only, as a node that gives each connection to one thread does.

mod common;

use bitcoin::secp256k1::PublicKey;
use chanstore::{ChannelStore, Message};
use common::*;

fn names(msgs: &[(PublicKey, Message)]) -> Vec<(PublicKey, &'static str)> {
    msgs.iter().map(|(p, m)| (*p, m.name())).collect()
}

#[test]
fn drains_only_the_peers_asked_for() {
    let (a, b, c) = (node(1), node(2), node(3));
    connect_all(&[&a, &b, &c]);
    a.create_channel(b.node_id(), 100_000, 0).unwrap();
    a.create_channel(c.node_id(), 100_000, 0).unwrap();
    a.create_channel(b.node_id(), 200_000, 0).unwrap();

    let for_b = a.get_and_clear_pending_msg_events_for(&[b.node_id()]);
    assert_eq!(
        names(&for_b),
        vec![(b.node_id(), "open_channel"), (b.node_id(), "open_channel")]
    );
    // The order is the order they were queued in.
    let funding: Vec<u64> = for_b
        .iter()
        .map(|(_, m)| match m {
            Message::OpenChannel(o) => o.funding_satoshis,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(funding, vec![100_000, 200_000]);
    // Taken once: a second call, or a full drain, does not see them again.
    assert!(a
        .get_and_clear_pending_msg_events_for(&[b.node_id()])
        .is_empty());
    assert_eq!(
        names(&a.get_and_clear_pending_msg_events()),
        vec![(c.node_id(), "open_channel")]
    );
    assert!(a.get_and_clear_pending_msg_events().is_empty());
}

#[test]
fn full_drain_still_sees_peers_drained_before() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    a.create_channel(b.node_id(), 100_000, 0).unwrap();
    assert_eq!(
        a.get_and_clear_pending_msg_events_for(&[b.node_id()]).len(),
        1
    );
    // New messages for a peer drained with `_for` reach a full drain too.
    a.create_channel(b.node_id(), 100_000, 0).unwrap();
    assert_eq!(
        names(&a.get_and_clear_pending_msg_events()),
        vec![(b.node_id(), "open_channel")]
    );
    a.create_channel(b.node_id(), 100_000, 0).unwrap();
    assert_eq!(
        names(&a.get_and_clear_pending_msg_events()),
        vec![(b.node_id(), "open_channel")]
    );
}

#[test]
fn unknown_peers_are_skipped() {
    let (a, b) = (node(1), node(2));
    assert!(a
        .get_and_clear_pending_msg_events_for(&[b.node_id()])
        .is_empty());
}

/// Delivers with `_for` only, each node draining its one peer, until quiet.
fn deliver_pairwise(x: &ChannelStore, y: &ChannelStore) {
    loop {
        let mut progress = false;
        for (from, to) in [(x, y), (y, x)] {
            for (peer, msg) in from.get_and_clear_pending_msg_events_for(&[to.node_id()]) {
                assert_eq!(peer, to.node_id());
                to.handle_message(&from.node_id(), msg).unwrap();
                progress = true;
            }
        }
        if !progress {
            return;
        }
    }
}

#[test]
fn a_channel_opens_and_pays_through_it() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let temp = a.create_channel(b.node_id(), 1_000_000, 0).unwrap();
    deliver_pairwise(&a, &b);
    let outpoint = bitcoin::OutPoint::new(bitcoin::hashes::Hash::from_byte_array([0x42; 32]), 0);
    let id = a
        .funding_transaction_generated(&temp, &b.node_id(), outpoint)
        .unwrap();
    deliver_pairwise(&a, &b);
    let scid = chanstore::ShortChannelId::new(1000, 1, 0).unwrap();
    a.funding_confirmed(&id, scid).unwrap();
    b.funding_confirmed(&id, scid).unwrap();
    deliver_pairwise(&a, &b);
    assert!(a.channel_details(&id).unwrap().is_usable);
    let preimage = chanstore::PaymentPreimage([5; 32]);
    let route = chanstore::Route {
        hops: vec![chanstore::RouteHop {
            node_id: b.node_id(),
            short_channel_id: scid,
            fee_msat: 0,
            cltv_expiry_delta: 0,
        }],
    };
    a.pay_invoice(&route, preimage.payment_hash(), 7_000)
        .unwrap();
    deliver_pairwise(&a, &b);
    b.claim_funds(preimage).unwrap();
    deliver_pairwise(&a, &b);
    assert_eq!(b.channel_details(&id).unwrap().balance_msat, 7_000);
    assert_eq!(a.channel_details(&id).unwrap().pending_htlcs, 0);
}
