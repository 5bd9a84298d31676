//! Payments to us as BOLT 4 says they must arrive: with the invoice's
//! payment secret, within its amount and expiry, whole or in parts
//! (`basic_mpp`), through the public API.

mod common;

use std::sync::Arc;

use chanstore::inbound_payment::{self, ExpandedKey};
use chanstore::{
    ChannelStore, Event, FailureCode, MemoryPersister, Persister, RecipientOnionFields, Route,
    RouteHop, ShortChannelId, StoreConfig, StoreError,
};
use common::*;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The one `PaymentReceived` of `node`, if any (other events dropped).
fn received(node: &ChannelStore) -> Vec<Event> {
    events(node)
        .into_iter()
        .filter(|e| matches!(e, Event::PaymentReceived { .. }))
        .collect()
}

#[test]
fn invoice_with_a_derived_preimage_is_paid_and_claimed() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
    let (hash, secret) = b.create_inbound_payment(Some(20_000_000), 3600).unwrap();
    let route = route_to(&b, scid);
    a.send_payment(
        &route,
        hash,
        20_000_000,
        RecipientOnionFields::secret_only(secret),
    )
    .unwrap();
    deliver_all(&[&a, &b]);
    let evs = events(&b);
    let [Event::PaymentReceived {
        payment_hash,
        amount_msat: 20_000_000,
        payment_preimage: Some(preimage),
    }] = evs[..]
    else {
        panic!("{evs:?}")
    };
    assert_eq!(payment_hash, hash);
    assert_eq!(preimage.payment_hash(), hash, "B derived the preimage");
    b.claim_funds(preimage).unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(
        events(&a),
        vec![Event::PaymentSent {
            payment_hash: hash,
            payment_preimage: preimage,
            fee_paid_msat: 0
        }]
    );
    // Another invoice of the same amount gets another hash.
    let (other, _) = b.create_inbound_payment(Some(20_000_000), 3600).unwrap();
    assert_ne!(other, hash);
}

#[test]
fn invoices_refuse_less_than_their_amount_and_expired_secrets() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
    let route = route_to(&b, scid);
    // Below the invoice's amount.
    let (hash, secret) = b.create_inbound_payment(Some(10_000_000), 3600).unwrap();
    a.send_payment(
        &route,
        hash,
        9_999_999,
        RecipientOnionFields::secret_only(secret),
    )
    .unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(events(&a), vec![unknown_to(&b, hash, 9_999_999)]);
    // An invoice that expired an hour ago (made with B's key, back then).
    let p = preimage(3, 1);
    let key = ExpandedKey::new(&secret_of(&b.node_id()));
    let old =
        inbound_payment::create_from_hash(&key, p.payment_hash(), None, 60, now() - 3600).unwrap();
    a.send_payment(
        &route,
        p.payment_hash(),
        1_000_000,
        RecipientOnionFields::secret_only(old),
    )
    .unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(
        events(&a),
        vec![unknown_to(&b, p.payment_hash(), 1_000_000)]
    );
    // Another node's secret for the same hash.
    let c = node(3);
    let foreign = RecipientOnionFields::secret_only(secret_for(&c.node_id(), p.payment_hash()));
    a.send_payment(&route, p.payment_hash(), 1_000_000, foreign)
        .unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(
        events(&a),
        vec![unknown_to(&b, p.payment_hash(), 1_000_000)]
    );
    assert!(events(&b).is_empty(), "B announced none of them");
    // Out-of-range invoices are refused when made.
    assert!(matches!(
        b.create_inbound_payment(Some(1 << 63), 60),
        Err(StoreError::InboundPayment(_))
    ));
}

/// A with two ways to C: through B (A-B-C) and a channel of its own (A-C).
struct Diamond {
    a: ChannelStore,
    b: ChannelStore,
    c: ChannelStore,
    via_b: Route,
    direct: Route,
}

fn diamond(config: StoreConfig) -> Diamond {
    let (a, b, c) = (node(1), node(2), node_with(3, config));
    connect_all(&[&a, &b, &c]);
    let (_, scid_ab) = open_channel(&a, &b, 1_000_000, 0);
    let (_, scid_bc) = open_channel(&b, &c, 1_000_000, 0);
    let (_, scid_ac) = open_channel(&a, &c, 1_000_000, 0);
    let hop = |n: &ChannelStore, scid: ShortChannelId, fee_msat, delta| RouteHop {
        node_id: n.node_id(),
        short_channel_id: scid,
        fee_msat,
        cltv_expiry_delta: delta,
    };
    let fee = b.config().forwarding_fee_msat(3_000_000);
    let delta = u32::from(b.config().cltv_expiry_delta);
    let via_b = Route {
        hops: vec![hop(&b, scid_ab, fee, delta), hop(&c, scid_bc, 0, 0)],
    };
    let direct = route_to(&c, scid_ac);
    Diamond {
        a,
        b,
        c,
        via_b,
        direct,
    }
}

impl Diamond {
    fn nodes(&self) -> [&ChannelStore; 3] {
        [&self.a, &self.b, &self.c]
    }
}

#[test]
fn parts_of_a_payment_wait_for_each_other_across_peers() {
    let d = diamond(StoreConfig::default());
    let p = preimage(4, 0);
    let fields = RecipientOnionFields::secret_only(secret_for(&d.c.node_id(), p.payment_hash()));
    // 3_000_000 through B, then 2_000_000 directly, of 5_000_000.
    d.a.send_payment_part(
        &d.via_b,
        p.payment_hash(),
        3_000_000,
        5_000_000,
        fields.clone(),
    )
    .unwrap();
    deliver_all(&d.nodes());
    assert_eq!(received(&d.c), vec![], "one part is not the payment");
    assert!(matches!(
        d.c.claim_funds(p),
        Err(StoreError::UnknownPayment { .. })
    ));
    d.a.send_payment_part(
        &d.direct,
        p.payment_hash(),
        2_000_000,
        5_000_000,
        fields.clone(),
    )
    .unwrap();
    deliver_all(&d.nodes());
    assert_eq!(
        received(&d.c),
        vec![Event::PaymentReceived {
            payment_hash: p.payment_hash(),
            amount_msat: 5_000_000,
            payment_preimage: None
        }]
    );
    // A third part after the payment is complete is refused.
    d.a.send_payment_part(&d.direct, p.payment_hash(), 1_000, 5_000_000, fields)
        .unwrap();
    deliver_all(&d.nodes());
    assert_eq!(
        events(&d.a),
        vec![unknown_to(&d.c, p.payment_hash(), 1_000)]
    );
    d.c.claim_funds(p).unwrap();
    deliver_all(&d.nodes());
    let sent = events(&d.a)
        .into_iter()
        .filter(|e| matches!(e, Event::PaymentSent { payment_hash, .. } if *payment_hash == p.payment_hash()))
        .count();
    assert_eq!(sent, 2, "one PaymentSent per part");
    for n in d.nodes() {
        n.check_value_conserved().unwrap();
    }
}

#[test]
fn a_part_with_another_secret_or_total_is_refused() {
    let d = diamond(StoreConfig::default());
    let p = preimage(4, 1);
    let fields = RecipientOnionFields::secret_only(secret_for(&d.c.node_id(), p.payment_hash()));
    d.a.send_payment_part(
        &d.via_b,
        p.payment_hash(),
        3_000_000,
        5_000_000,
        fields.clone(),
    )
    .unwrap();
    deliver_all(&d.nodes());
    // Same secret, another total.
    d.a.send_payment_part(&d.direct, p.payment_hash(), 2_000_000, 6_000_000, fields)
        .unwrap();
    deliver_all(&d.nodes());
    assert_eq!(
        events(&d.a),
        vec![unknown_to(&d.c, p.payment_hash(), 2_000_000)]
    );
    assert_eq!(received(&d.c), vec![]);
    // A part naming a total below its own amount is refused by the sender.
    assert!(d
        .a
        .send_payment_part(
            &d.direct,
            p.payment_hash(),
            2_000_000,
            1_000_000,
            RecipientOnionFields::default()
        )
        .is_err());
}

#[test]
fn parts_that_never_complete_fail_back_with_mpp_timeout() {
    let config = StoreConfig {
        mpp_timeout_ticks: 2,
        ..StoreConfig::default()
    };
    let d = diamond(config);
    let p = preimage(4, 2);
    let fields = RecipientOnionFields::secret_only(secret_for(&d.c.node_id(), p.payment_hash()));
    d.a.send_payment_part(&d.via_b, p.payment_hash(), 3_000_000, 5_000_000, fields)
        .unwrap();
    deliver_all(&d.nodes());
    d.c.timer_tick_occurred();
    deliver_all(&d.nodes());
    assert_eq!(events(&d.a), vec![], "one tick is not enough");
    d.c.timer_tick_occurred();
    deliver_all(&d.nodes());
    // C decided it; B passed C's failure onion on, wrapped.
    assert_eq!(
        events(&d.a),
        vec![failed_by(
            &d.c,
            p.payment_hash(),
            FailureCode::MppTimeout,
            vec![]
        )]
    );
    assert_eq!(received(&d.c), vec![]);
    for n in d.nodes() {
        n.check_value_conserved().unwrap();
        for ch in n.list_channels() {
            assert_eq!(ch.pending_htlcs, 0, "{ch:?}");
        }
    }
}

#[test]
fn a_complete_payment_is_never_timed_out() {
    let d = diamond(StoreConfig {
        mpp_timeout_ticks: 1,
        ..StoreConfig::default()
    });
    let p = preimage(4, 3);
    d.a.pay_invoice(&d.direct, p.payment_hash(), 1_000_000)
        .unwrap();
    deliver_all(&d.nodes());
    assert_eq!(received(&d.c).len(), 1);
    for _ in 0..3 {
        d.c.timer_tick_occurred();
    }
    deliver_all(&d.nodes());
    assert_eq!(events(&d.a), vec![]);
    d.c.claim_funds(p).unwrap();
    deliver_all(&d.nodes());
    assert!(matches!(events(&d.a)[..], [Event::PaymentSent { .. }]));
}

#[test]
fn parts_are_gathered_again_after_a_restart() {
    let (a, p_c) = (node(1), Arc::new(MemoryPersister::new()));
    let open_c = || {
        ChannelStore::with_persister(
            StoreConfig::default(),
            secret_of(&node(3).node_id()),
            HEIGHT,
            p_c.clone() as Arc<dyn Persister>,
        )
        .unwrap()
    };
    let c = open_c();
    connect_all(&[&a, &c]);
    let (_, scid) = open_channel(&a, &c, 1_000_000, 0);
    let route = route_to(&c, scid);
    let p = preimage(4, 4);
    let fields = RecipientOnionFields::secret_only(secret_for(&c.node_id(), p.payment_hash()));
    a.send_payment_part(
        &route,
        p.payment_hash(),
        3_000_000,
        5_000_000,
        fields.clone(),
    )
    .unwrap();
    deliver_all(&[&a, &c]);
    assert_eq!(received(&c), vec![]);
    drop(c);
    let c = open_c();
    a.peer_disconnected(&c.node_id());
    connect_all(&[&a, &c]);
    deliver_all(&[&a, &c]);
    // The second part completes the set rebuilt from the first.
    a.send_payment_part(&route, p.payment_hash(), 2_000_000, 5_000_000, fields)
        .unwrap();
    deliver_all(&[&a, &c]);
    assert_eq!(
        received(&c),
        vec![Event::PaymentReceived {
            payment_hash: p.payment_hash(),
            amount_msat: 5_000_000,
            payment_preimage: None
        }]
    );
    // Once more: the complete payment is not announced again.
    drop(c);
    let c = open_c();
    a.peer_disconnected(&c.node_id());
    connect_all(&[&a, &c]);
    deliver_all(&[&a, &c]);
    assert_eq!(received(&c), vec![]);
    c.claim_funds(p).unwrap();
    deliver_all(&[&a, &c]);
    let sent = events(&a)
        .iter()
        .filter(|e| matches!(e, Event::PaymentSent { .. }))
        .count();
    assert_eq!(sent, 2);
}

/// Delivers everything between `a` and `b`; then `b`'s `PaymentReceived`s
/// and `a`'s `PaymentFailed`s.
fn received_and_failed(
    a: &ChannelStore,
    b: &ChannelStore,
) -> (Vec<chanstore::Event>, Vec<chanstore::Event>) {
    deliver_all(&[a, b]);
    let received = (events(b).into_iter())
        .filter(|e| matches!(e, chanstore::Event::PaymentReceived { .. }))
        .collect();
    let failed = (events(a).into_iter())
        .filter(|e| matches!(e, chanstore::Event::PaymentFailed { .. }))
        .collect();
    (received, failed)
}

/// The sender counts the final expiry from its own height. A recipient
/// that has seen more blocks (one found while the HTLC travelled) takes the
/// payment with up to `htlc_timeout_grace_blocks` of them, and refuses it
/// beyond.
#[test]
fn a_recipient_a_few_blocks_ahead_still_takes_the_payment() {
    let grace = StoreConfig::default().htlc_timeout_grace_blocks;
    for (ahead, taken) in [(1, true), (grace, true), (grace + 1, false)] {
        let (a, b) = (node(61), node(62));
        connect_all(&[&a, &b]);
        let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
        let (hash, secret) = b.create_inbound_payment(Some(20_000_000), 3600).unwrap();
        let fields = chanstore::RecipientOnionFields::secret_only(secret);
        a.send_payment(&route_to(&b, scid), hash, 20_000_000, fields)
            .unwrap();
        b.best_block_updated(HEIGHT + ahead);
        let (received, failed) = received_and_failed(&a, &b);
        assert_eq!(received.len(), usize::from(taken), "{ahead}: {received:?}");
        assert_eq!(failed.len(), usize::from(!taken), "{ahead}: {failed:?}");
    }
}

/// An invoice's `c` above our own `min_final_cltv_expiry_delta` (BOLT 11:
/// the payer must use it) is given as the route's last `cltv_expiry_delta`.
#[test]
fn the_last_hops_cltv_delta_is_the_recipients_min_final_cltv_delta() {
    let config = StoreConfig {
        min_final_cltv_expiry_delta: 80,
        ..StoreConfig::default()
    };
    let (a, b) = (node(63), node_with(64, config));
    connect_all(&[&a, &b]);
    let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
    let (hash, secret) = b.create_inbound_payment(Some(20_000_000), 3600).unwrap();
    let mut route = route_to(&b, scid);
    route.hops[0].cltv_expiry_delta = 80;
    let fields = chanstore::RecipientOnionFields::secret_only(secret);
    a.send_payment(&route, hash, 20_000_000, fields).unwrap();
    let (received, failed) = received_and_failed(&a, &b);
    assert_eq!((received.len(), failed.len()), (1, 0), "{failed:?}");
}
