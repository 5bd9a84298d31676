//! Payments we send: one invoice is never paid twice
//! (`StoreError::DuplicatePayment`), and a route the peer would refuse is
//! refused before anything changes. From an adversarial review of the send
//! path, which found both defects these tests show.

mod common;

use std::sync::{Arc, Barrier};

use chanstore::{
    ChannelStore, Event, MemoryPersister, PaymentHash, RecipientOnionFields, Route, RouteHop,
    ShortChannelId, StoreConfig, StoreError,
};
use common::*;

fn sent(evs: &[Event]) -> usize {
    (evs.iter())
        .filter(|e| matches!(e, Event::PaymentSent { .. }))
        .count()
}

fn balance_msat(n: &ChannelStore) -> u64 {
    n.list_channels().iter().map(|d| d.balance_msat).sum()
}

fn duplicate(r: Result<(), StoreError>, hash: PaymentHash) -> bool {
    r == Err(StoreError::DuplicatePayment { payment_hash: hash })
}

/// The recipient claims the first HTLC; the user, who lost the first
/// call's result, sends the same hash again before the fulfill arrives.
/// The recipient's set for the hash went with its claim, so a second HTLC
/// made a new one, announced and claimed again: 20,000,000 msat paid
/// twice for one invoice. Now the second send is refused.
#[test]
fn a_retry_while_the_first_is_being_claimed_is_refused() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
    let (hash, secret) = b.create_inbound_payment(Some(20_000_000), 3600).unwrap();
    let route = route_to(&b, scid);
    let fields = RecipientOnionFields::secret_only(secret);
    let before = balance_msat(&a);
    a.send_payment(&route, hash, 20_000_000, fields.clone())
        .unwrap();
    // While it is in flight, too.
    assert!(duplicate(
        a.send_payment(&route, hash, 20_000_000, fields.clone()),
        hash
    ));
    deliver_all(&[&a, &b]);
    let Some(Event::PaymentReceived {
        payment_preimage: Some(p),
        ..
    }) = events(&b).pop()
    else {
        panic!("B is paid")
    };
    b.claim_funds(p).unwrap();
    let retry = a.send_payment(&route, hash, 20_000_000, fields);
    assert!(duplicate(retry, hash));
    deliver_all(&[&a, &b]);
    assert!(events(&b).is_empty(), "nothing more reached B");
    assert_eq!(sent(&events(&a)), 1);
    assert_eq!(before - balance_msat(&a), 20_000_000);
}

/// The guard sees our HTLCs for a hash wherever they went: a retry over
/// another first hop, after a restart, and while the first HTLC waits on
/// chain in a closed channel's record. After `PaymentFailed` the hash may
/// be sent again, and the parts of a multi-part payment go out.
#[test]
fn a_hash_still_paying_is_refused_on_any_first_hop_and_after_a_restart() {
    let disk = Arc::new(MemoryPersister::new());
    let durable = |disk: &Arc<MemoryPersister>| node_on(1, StoreConfig::default(), disk.clone());
    let (mut a, b, c) = (durable(&disk), node(2), node(3));
    connect_all(&[&a, &b, &c]);
    let (ab, scid_ab) = open_channel(&a, &b, 1_000_000, 0);
    let (_, scid_ac) = open_channel(&a, &c, 1_000_000, 0);
    let (_, scid_cb) = open_channel(&c, &b, 1_000_000, 0);
    let (hash, secret) = b.create_inbound_payment(Some(5_000_000), 3600).unwrap();
    let fields = RecipientOnionFields::secret_only(secret);
    let via_c = route_through(&c, scid_ac, &b, scid_cb, 5_000_000);
    a.send_payment(&route_to(&b, scid_ab), hash, 5_000_000, fields.clone())
        .unwrap();
    deliver_all(&[&a, &b, &c]);
    assert!(duplicate(
        a.send_payment(&via_c, hash, 5_000_000, fields.clone()),
        hash
    ));

    for n in [&b, &c] {
        n.peer_disconnected(&a.node_id());
    }
    drop(a);
    a = durable(&disk);
    connect_all(&[&a, &b, &c]);
    deliver_all(&[&a, &b, &c]);
    assert!(duplicate(
        a.send_payment(&via_c, hash, 5_000_000, fields.clone()),
        hash
    ));

    a.force_close_channel(&ab).unwrap();
    deliver_all(&[&a, &b, &c]);
    assert!(!a.closed_channel(&ab).unwrap().htlcs.is_empty(), "on chain");
    for _ in 0..3 {
        a.timer_tick_occurred();
    }
    assert!(duplicate(
        a.send_payment(&via_c, hash, 5_000_000, fields.clone()),
        hash
    ));

    // A failed payment may be retried, and parts go out.
    let (other, secret) = b.create_inbound_payment(Some(6_000_000), 3600).unwrap();
    let fields = RecipientOnionFields::secret_only(secret);
    let via_c = route_through(&c, scid_ac, &b, scid_cb, 3_000_000);
    a.send_payment(&via_c, other, 3_000_000, fields.clone())
        .unwrap();
    deliver_all(&[&a, &b, &c]); // below the invoice's amount: B fails it
    assert!(has(&events(&a), |e| matches!(
        e,
        Event::PaymentFailed { .. }
    )));
    for _ in 0..2 {
        a.send_payment_part(&via_c, other, 3_000_000, 6_000_000, fields.clone())
            .unwrap();
    }
    deliver_all(&[&a, &b, &c]);
    assert!(has(&events(&b), |e| matches!(
        e,
        Event::PaymentReceived {
            amount_msat: 6_000_000,
            ..
        }
    )));
}

fn has(evs: &[Event], f: impl Fn(&Event) -> bool) -> bool {
    evs.iter().any(f)
}

/// Two threads send one hash at once: one HTLC goes out, the other send is
/// refused.
#[test]
fn two_sends_of_one_hash_at_once_offer_one_htlc() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    for round in 0..20u16 {
        let hash = preimage(0x71, round).payment_hash();
        let route = route_to(&b, scid);
        let barrier = Barrier::new(2);
        let results: Vec<_> = std::thread::scope(|s| {
            let sends: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        a.pay_invoice(&route, hash, 1_000_000)
                    })
                })
                .collect();
            sends.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let ok = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "round {round}: {results:?}");
        assert!(results.iter().any(|r| duplicate(r.clone(), hash)));
    }
    deliver_all(&[&a, &b]);
    assert_eq!(a.channel_details(&id).unwrap().pending_htlcs, 20);
}

/// Each bad route: a precise error, nothing changed, nothing queued.
#[test]
fn bad_routes_change_nothing() {
    let (a, b, c) = (node(1), node(2), node(3));
    connect_all(&[&a, &b, &c]);
    let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
    let (_, scid_bc) = open_channel(&b, &c, 1_000_000, 0);
    let hash = preimage(0x72, 1).payment_hash();
    let hop = |n: &ChannelStore, scid, fee_msat, cltv_expiry_delta| RouteHop {
        node_id: n.node_id(),
        short_channel_id: scid,
        fee_msat,
        cltv_expiry_delta,
    };
    let two = |fee, cltv| Route {
        hops: vec![hop(&b, scid, fee, cltv), hop(&c, scid_bc, 0, 0)],
    };
    let cases: Vec<(&str, Route, u64)> = vec![
        ("no hops", Route { hops: vec![] }, 10_000),
        (
            "30 hops",
            Route {
                hops: (0..30).map(|_| hop(&b, scid, 0, 0)).collect(),
            },
            10_000,
        ),
        ("fee overflow", two(u64::MAX, 40), 10_000),
        ("cltv overflow", two(1, u32::MAX), 10_000),
        (
            "cltv at the locktime threshold",
            two(1, 500_000_000),
            10_000,
        ),
        (
            "final cltv at the locktime threshold",
            Route {
                hops: vec![hop(&b, scid, 0, 499_999_999)],
            },
            10_000,
        ),
        ("amount 0", route_to(&b, scid), 0),
        ("above capacity", route_to(&b, scid), 2_000_000_000),
        ("u64::MAX amount", route_to(&b, scid), u64::MAX),
        ("fee above the balance", two(u64::MAX - 5, 40), 5),
        ("first hop not ours", route_to(&c, scid_bc), 10_000),
        ("first hop the wrong node", route_to(&c, scid), 10_000),
        (
            "unknown scid",
            route_to(&b, ShortChannelId::new(7, 7, 7).unwrap()),
            10_000,
        ),
    ];
    for (name, route, amount) in cases {
        let fields = match route.hops.last() {
            Some(_) => invoice(&route, hash),
            None => RecipientOnionFields::default(),
        };
        let (frozen, _) = freeze(&[&a, &b]);
        let r = a.send_payment(&route, hash, amount, fields);
        assert!(r.is_err(), "{name}: accepted");
        assert_unchanged(&[&a, &b], &frozen);
        assert!(take_msgs(&a).is_empty(), "{name}: a message queued");
    }
}

/// A first hop expiring at 500,000,000 or later is a timestamp to the
/// peer: it refused our add (BOLT 2) on every retransmission and then our
/// `commitment_signed`, and the channel carried nothing again while it
/// still said it was usable. The route is refused now, and the channel
/// carries the next payment.
#[test]
fn a_first_hop_expiry_past_the_locktime_threshold_is_refused() {
    let (a, b, c) = (node(1), node(2), node(3));
    connect_all(&[&a, &b, &c]);
    let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
    let (_, scid_bc) = open_channel(&b, &c, 1_000_000, 0);
    let hash = preimage(0x73, 0).payment_hash();
    let route = Route {
        hops: vec![
            RouteHop {
                node_id: b.node_id(),
                short_channel_id: scid,
                fee_msat: 1_000,
                cltv_expiry_delta: 500_000_000,
            },
            RouteHop {
                node_id: c.node_id(),
                short_channel_id: scid_bc,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            },
        ],
    };
    let r = a.pay_invoice(&route, hash, 10_000);
    assert!(matches!(r, Err(StoreError::InvalidRoute { .. })), "{r:?}");
    assert!(deliver_auditing(&a, &b).is_empty());
    let good = preimage(0x73, 1);
    a.pay_invoice(&route_to(&b, scid), good.payment_hash(), 50_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    assert!(has(&events(&b), |e| matches!(
        e,
        Event::PaymentReceived { .. }
    )));
}
