//! Three nodes A - B - C: payments forwarded by B, through the public API.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use bitcoin::hashes::Hash;
use chanstore::message::{RevokeAndAck, UpdateFulfillHtlc};
use chanstore::onion::packet::{peel_onion, BadOnion, Peeled};
use chanstore::onion::payload::HopPayload;
use chanstore::{
    ChannelId, ChannelStore, ClosureReason, Event, FailureCode, Message, PaymentPreimage, Route,
    RouteHop, ShortChannelId, StoreError,
};
use common::*;

/// Nodes A, B, C with channels A-B and B-C.
struct Line {
    a: ChannelStore,
    b: ChannelStore,
    c: ChannelStore,
    ab: ChannelId,
    scid_ab: ShortChannelId,
    bc: ChannelId,
    scid_bc: ShortChannelId,
}

/// A-B opened by A with `ab_sat`; B-C opened by B with `bc_sat`, pushing `bc_push_msat` to C.
fn line(ab_sat: u64, bc_sat: u64, bc_push_msat: u64) -> Line {
    let (a, b, c) = (node(1), node(2), node(3));
    connect_all(&[&a, &b, &c]);
    let (ab, scid_ab) = open_channel(&a, &b, ab_sat, 0);
    let (bc, scid_bc) = open_channel(&b, &c, bc_sat, bc_push_msat);
    Line {
        a,
        b,
        c,
        ab,
        scid_ab,
        bc,
        scid_bc,
    }
}

impl Line {
    fn nodes(&self) -> [&ChannelStore; 3] {
        [&self.a, &self.b, &self.c]
    }

    /// B's fee for forwarding `amount_msat`.
    fn fee(&self, amount_msat: u64) -> u64 {
        self.b.config().forwarding_fee_msat(amount_msat)
    }

    /// A -> B -> C, paying B exactly its fee and cltv delta.
    fn route(&self, amount_msat: u64) -> Route {
        route_through(&self.b, self.scid_ab, &self.c, self.scid_bc, amount_msat)
    }

    /// Balances of the four channel ends: (A on A-B, B on A-B, B on B-C, C on B-C).
    fn balances(&self) -> [u64; 4] {
        let bal = |n: &ChannelStore, id: &ChannelId| n.channel_details(id).unwrap().balance_msat;
        [
            bal(&self.a, &self.ab),
            bal(&self.b, &self.ab),
            bal(&self.b, &self.bc),
            bal(&self.c, &self.bc),
        ]
    }

    /// Nothing in flight anywhere, and every store consistent.
    fn assert_settled(&self) {
        for (n, id) in [
            (&self.a, &self.ab),
            (&self.b, &self.ab),
            (&self.b, &self.bc),
            (&self.c, &self.bc),
        ] {
            let d = n.channel_details(id).unwrap();
            assert_eq!((d.pending_htlcs, d.in_flight_msat), (0, 0), "{d:?}");
        }
        for n in self.nodes() {
            n.check_value_conserved().unwrap();
            n.check_indexes().unwrap();
        }
        assert_eq!(self.b.pending_forwards(), 0);
    }

    /// Sends `route` from A, delivers everything, and returns A's single
    /// `PaymentFailed` code; checks that B is named as the failing node (it
    /// decided), that C saw nothing and that all balances are back where
    /// they were.
    fn pay_expecting_failure(&self, route: &Route, amount_msat: u64) -> FailureCode {
        let before = self.balances();
        let p = preimage(0xf, 0);
        self.a
            .pay_invoice(route, p.payment_hash(), amount_msat)
            .unwrap();
        deliver_all(&self.nodes());
        let evs = events(&self.a);
        let [Event::PaymentFailed {
            payment_hash,
            failure,
            failing_node,
            ..
        }] = evs[..]
        else {
            panic!("{evs:?}")
        };
        assert_eq!(payment_hash, p.payment_hash());
        assert_eq!(failing_node, Some(self.b.node_id()));
        assert_eq!(events(&self.c), vec![]);
        assert!(!events(&self.b)
            .iter()
            .any(|e| matches!(e, Event::HtlcForwarded { .. })));
        assert_eq!(self.balances(), before);
        self.assert_settled();
        failure
    }
}

const START: [u64; 4] = [1_000_000_000, 0, 1_000_000_000, 0];

#[test]
fn payment_is_forwarded_and_fulfilled_with_exact_fees() {
    let l = line(1_000_000, 1_000_000, 0);
    assert_eq!(l.balances(), START);
    let amount = 10_000_000;
    let fee = l.fee(amount);
    assert_eq!(fee, 2_000);
    let p = preimage(1, 0);
    l.a.pay_invoice(&l.route(amount), p.payment_hash(), amount)
        .unwrap();
    deliver_all(&l.nodes());
    assert_eq!(
        events(&l.c),
        vec![Event::PaymentReceived {
            payment_hash: p.payment_hash(),
            amount_msat: amount,
            payment_preimage: None,
        }]
    );
    // Both HTLCs are in flight: A-B carries amount + fee, B-C the amount.
    assert_eq!(
        l.a.channel_details(&l.ab).unwrap().in_flight_msat,
        amount + fee
    );
    assert_eq!(l.c.channel_details(&l.bc).unwrap().in_flight_msat, amount);
    l.c.claim_funds(p).unwrap();
    deliver_all(&l.nodes());
    assert_eq!(
        events(&l.a),
        vec![Event::PaymentSent {
            payment_hash: p.payment_hash(),
            payment_preimage: p,
            fee_paid_msat: fee
        }]
    );
    assert_eq!(
        events(&l.b),
        vec![Event::HtlcForwarded {
            prev_channel_id: l.ab,
            next_channel_id: l.bc,
            fee_earned_msat: fee
        }]
    );
    assert_eq!(events(&l.c), vec![]);
    assert_eq!(
        l.balances(),
        [
            1_000_000_000 - amount - fee,
            amount + fee,
            1_000_000_000 - amount,
            amount
        ]
    );
    l.assert_settled();
}

#[test]
fn failure_at_recipient_travels_back_to_payer() {
    let l = line(1_000_000, 1_000_000, 0);
    let amount = 10_000_000;
    let p = preimage(2, 0);
    l.a.pay_invoice(&l.route(amount), p.payment_hash(), amount)
        .unwrap();
    deliver_all(&l.nodes());
    assert_eq!(events(&l.c).len(), 1);
    l.c.fail_htlc_backwards(&p.payment_hash()).unwrap();
    deliver_all(&l.nodes());
    // C built the failure, B wrapped it: A reads it and knows it was C.
    let mut data = amount.to_be_bytes().to_vec();
    data.extend_from_slice(&HEIGHT.to_be_bytes());
    assert_eq!(
        events(&l.a),
        vec![Event::PaymentFailed {
            payment_hash: p.payment_hash(),
            failure: FailureCode::IncorrectOrUnknownPaymentDetails,
            failing_node: Some(l.c.node_id()),
            failure_data: data,
        }]
    );
    assert_eq!(events(&l.b), vec![]);
    assert_eq!(l.balances(), START);
    l.assert_settled();
}

#[test]
fn forward_to_unknown_channel_fails_with_unknown_next_peer() {
    let l = line(1_000_000, 1_000_000, 0);
    let mut route = l.route(1_000_000);
    route.hops[1].short_channel_id = ShortChannelId::new(999_999, 9, 9).unwrap();
    assert_eq!(
        l.pay_expecting_failure(&route, 1_000_000),
        FailureCode::UnknownNextPeer
    );
}

#[test]
fn forward_with_insufficient_fee_fails() {
    let l = line(1_000_000, 1_000_000, 0);
    let mut route = l.route(1_000_000);
    route.hops[0].fee_msat -= 1;
    assert_eq!(
        l.pay_expecting_failure(&route, 1_000_000),
        FailureCode::FeeInsufficient
    );
}

#[test]
fn forward_with_too_small_cltv_delta_fails() {
    let l = line(1_000_000, 1_000_000, 0);
    let mut route = l.route(1_000_000);
    route.hops[0].cltv_expiry_delta -= 1;
    assert_eq!(
        l.pay_expecting_failure(&route, 1_000_000),
        FailureCode::IncorrectCltvExpiry
    );
}

#[test]
fn forward_above_outgoing_balance_fails_temporarily() {
    // B has 100_000 sat on B-C; A asks it to forward 200_000 sat.
    let l = line(1_000_000, 100_000, 0);
    let amount = 200_000_000;
    assert!(l.b.channel_details(&l.bc).unwrap().outbound_capacity_msat < amount);
    assert_eq!(
        l.pay_expecting_failure(&l.route(amount), amount),
        FailureCode::TemporaryChannelFailure
    );
    // A payment that fits still goes through.
    let small = 50_000_000;
    let p = preimage(3, 0);
    l.a.pay_invoice(&l.route(small), p.payment_hash(), small)
        .unwrap();
    deliver_all(&l.nodes());
    l.c.claim_funds(p).unwrap();
    deliver_all(&l.nodes());
    assert_eq!(l.balances()[3], small);
}

/// Delivers messages among `nodes` until quiet, without ever processing
/// the forward queues.
fn deliver_without_forwarding(nodes: &[&ChannelStore]) {
    loop {
        let mut progress = false;
        for from in nodes {
            for (to, msg) in from.get_and_clear_pending_msg_events() {
                let dest = nodes.iter().find(|n| n.node_id() == to).unwrap();
                deliver_one(from, dest, msg);
                progress = true;
            }
        }
        if !progress {
            return;
        }
    }
}

/// Sends A -> B -> C and stops with the HTLC irrevocably committed on A-B
/// and B's forward to C still queued.
fn queue_forward(l: &Line, p: &PaymentPreimage, amount: u64) {
    l.a.pay_invoice(&l.route(amount), p.payment_hash(), amount)
        .unwrap();
    deliver_without_forwarding(&l.nodes());
    assert_eq!(l.b.pending_forwards(), 1);
    assert_eq!(l.b.channel_details(&l.ab).unwrap().pending_htlcs, 1);
    assert_eq!(l.b.channel_details(&l.bc).unwrap().pending_htlcs, 0);
}

#[test]
fn forward_over_channel_closed_meanwhile_fails_back() {
    let l = line(1_000_000, 1_000_000, 0);
    let amount = 10_000_000;
    let p = preimage(4, 0);
    queue_forward(&l, &p, amount);
    l.b.force_close_channel(&l.bc).unwrap();
    assert!(events(&l.b).contains(&Event::ChannelClosed {
        channel_id: l.bc,
        counterparty_node_id: l.c.node_id(),
        reason: ClosureReason::LocallyForceClosed
    }));
    assert_eq!(l.b.channel_details(&l.bc), None);
    deliver_all(&l.nodes());
    // Failed back, not lost: A has its money back and nothing is in flight.
    assert_eq!(
        events(&l.a),
        vec![Event::PaymentFailed {
            payment_hash: p.payment_hash(),
            failure: FailureCode::UnknownNextPeer,
            failing_node: Some(l.b.node_id()),
            failure_data: vec![],
        }]
    );
    // B's force close told C (an `error`): C closes too, and never saw the HTLC.
    let c_events = events(&l.c);
    assert!(
        c_events.iter().any(|e| matches!(
            e,
            Event::ChannelClosed {
                reason: ClosureReason::CounterpartyError { .. },
                ..
            }
        )),
        "{c_events:?}"
    );
    assert!(!c_events
        .iter()
        .any(|e| matches!(e, Event::PaymentReceived { .. })));
    assert_eq!(events(&l.b), vec![]);
    for n in [&l.a, &l.b] {
        let d = n.channel_details(&l.ab).unwrap();
        assert_eq!((d.pending_htlcs, d.in_flight_msat), (0, 0));
        n.check_value_conserved().unwrap();
        n.check_indexes().unwrap();
    }
    assert_eq!(l.a.channel_details(&l.ab).unwrap().balance_msat, START[0]);
    assert_eq!(l.b.pending_forwards(), 0);
}

#[test]
fn forward_over_channel_shutting_down_meanwhile_fails_back() {
    let l = line(1_000_000, 1_000_000, 0);
    let amount = 10_000_000;
    let p = preimage(5, 0);
    queue_forward(&l, &p, amount);
    l.b.close_channel(&l.bc).unwrap();
    deliver_all(&l.nodes());
    // BOLT 4: disabled_flags (none defined), then B's update for B-C, with
    // its disable bit set.
    let update = failed_at_b(&l, p.payment_hash(), FailureCode::ChannelDisabled, &[0, 0]);
    assert!(!update.is_enabled());
    assert_eq!(l.a.channel_details(&l.ab).unwrap().balance_msat, START[0]);
    // B-C went on to close cooperatively; A-B is untouched.
    for (n, peer) in [(&l.b, &l.c), (&l.c, &l.b)] {
        assert!(events(n).iter().any(|e| matches!(e,
            Event::ChannelClosed { channel_id, counterparty_node_id, reason: ClosureReason::Cooperative { .. } }
                if *channel_id == l.bc && counterparty_node_id == &peer.node_id())));
        assert_eq!(n.channel_details(&l.bc), None);
        n.check_indexes().unwrap();
    }
    assert_eq!(l.b.channel_details(&l.ab).unwrap().pending_htlcs, 0);
    assert_eq!(l.b.pending_forwards(), 0);
}

#[test]
fn message_for_b_c_channel_from_a_is_refused_as_wrong_peer() {
    let l = line(1_000_000, 1_000_000, 0);
    // Put an HTLC in flight on B-C so that it has state worth protecting.
    let p = preimage(6, 0);
    l.a.pay_invoice(&l.route(1_000_000), p.payment_hash(), 1_000_000)
        .unwrap();
    deliver_all(&l.nodes());
    events(&l.c);
    let wrong_peer = StoreError::WrongPeer {
        channel_id: l.bc,
        sender: l.a.node_id(),
    };
    let msgs = [
        craft_add(
            &l.c,
            l.bc,
            1,
            1_000,
            preimage(6, 1).payment_hash(),
            HEIGHT + 40,
        ),
        Message::UpdateFulfillHtlc(UpdateFulfillHtlc {
            channel_id: l.bc,
            id: 0,
            payment_preimage: p,
        }),
        Message::RevokeAndAck(RevokeAndAck {
            channel_id: l.bc,
            per_commitment_secret: [1; 32],
            next_per_commitment_point: l.a.node_id(),
        }),
    ];
    for msg in msgs {
        let (frozen, _) = freeze(&l.nodes());
        assert_eq!(
            l.b.handle_message(&l.a.node_id(), msg),
            Err(wrong_peer.clone())
        );
        assert_unchanged(&l.nodes(), &frozen);
    }
    // The real fulfill, from C, still settles everything.
    l.c.claim_funds(p).unwrap();
    deliver_all(&l.nodes());
    assert!(matches!(events(&l.a)[..], [Event::PaymentSent { .. }]));
    l.assert_settled();
}

/// The block of `debug_state` that describes `peer`'s channels.
fn peer_section(state: &str, peer: &ChannelStore) -> String {
    let header = format!("peer {} ", peer.node_id());
    let mut lines = state.lines().skip_while(|l| !l.starts_with(&header));
    let first = lines.next().expect("peer present");
    std::iter::once(first)
        .chain(lines.take_while(|l| !l.starts_with("peer ")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn disconnect_drops_only_the_peers_uncommitted_updates() {
    // C has a balance on B-C so that it can offer B an HTLC.
    let l = line(1_000_000, 1_000_000, 400_000_000);
    let from_a = preimage(7, 0);
    let from_c = preimage(7, 1);
    // A offers B an HTLC; only its update_add arrives.
    l.a.pay_invoice(&route_to(&l.b, l.scid_ab), from_a.payment_hash(), 3_000_000)
        .unwrap();
    let a_msgs = take_msgs(&l.a);
    let [(_, a_add), (_, a_cs)] = &a_msgs[..] else {
        panic!("{a_msgs:?}")
    };
    deliver_one(&l.a, &l.b, a_add.clone());
    // C does the same.
    l.c.pay_invoice(&route_to(&l.b, l.scid_bc), from_c.payment_hash(), 5_000_000)
        .unwrap();
    let c_msgs = take_msgs(&l.c);
    deliver_one(&l.c, &l.b, c_msgs[0].1.clone());
    let bc_before = l.b.channel_details(&l.bc).unwrap();
    assert_eq!(bc_before.pending_htlcs, 1);
    assert_eq!(l.b.channel_details(&l.ab).unwrap().pending_htlcs, 1);
    let c_hash = format!("{:?}", from_c.payment_hash());
    assert!(l.b.debug_state().contains(&c_hash));
    let a_section = peer_section(&l.b.debug_state(), &l.a);
    let ab_before = l.b.channel_details(&l.ab);

    l.b.peer_disconnected(&l.c.node_id());

    // C's uncommitted add is gone; its channel is otherwise as it was.
    let bc_after = l.b.channel_details(&l.bc).unwrap();
    assert_eq!(bc_after.pending_htlcs, 0);
    assert_eq!(bc_after.in_flight_msat, 0);
    assert_eq!(bc_after.balance_msat, bc_before.balance_msat);
    assert_eq!(
        bc_after.inbound_capacity_msat,
        bc_before.inbound_capacity_msat + 5_000_000
    );
    assert!(!l
        .b
        .debug_state()
        .contains(&format!("{:?}", from_c.payment_hash())));
    // A's side of B is untouched, to the byte.
    assert_eq!(peer_section(&l.b.debug_state(), &l.a), a_section);
    assert_eq!(l.b.channel_details(&l.ab), ab_before);
    l.b.check_value_conserved().unwrap();
    l.b.check_indexes().unwrap();
    // C is disconnected: its messages are refused.
    assert_eq!(
        l.b.handle_message(&l.c.node_id(), c_msgs[1].1.clone()),
        Err(StoreError::PeerNotConnected {
            node_id: l.c.node_id()
        })
    );
    // A's payment carries on as if nothing happened.
    deliver_one(&l.a, &l.b, a_cs.clone());
    deliver_all(&[&l.a, &l.b]);
    assert_eq!(
        events(&l.b),
        vec![Event::PaymentReceived {
            payment_hash: from_a.payment_hash(),
            amount_msat: 3_000_000,
            payment_preimage: None,
        }]
    );
}

#[test]
fn lookups_racing_a_close_never_see_a_wrong_answer() {
    let l = line(1_000_000, 1_000_000, 0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut gone = false;
            let mut reads = 0u64;
            // At least one read, however fast the close is.
            while reads == 0 || !stop.load(Ordering::Acquire) {
                reads += 1;
                let peer = l.b.counterparty_of(&l.bc);
                let details = l.b.channel_details(&l.bc);
                if let Some(peer) = peer {
                    assert_eq!(peer, l.c.node_id());
                    assert!(!gone, "the closed channel came back");
                } else {
                    gone = true;
                }
                if let Some(d) = details {
                    assert_eq!(d.counterparty_node_id, l.c.node_id());
                    assert_eq!(d.channel_value_sat, 1_000_000);
                }
                for d in l.b.list_channels() {
                    assert!(d.channel_id == l.ab || d.channel_id == l.bc);
                }
                // The other channel is never affected.
                assert_eq!(l.b.counterparty_of(&l.ab), Some(l.a.node_id()));
            }
        });
        l.b.close_channel(&l.bc).unwrap();
        deliver_all(&l.nodes());
        stop.store(true, Ordering::Release);
        reader.join().unwrap();
    });
    for n in [&l.b, &l.c] {
        assert_eq!(n.counterparty_of(&l.bc), None);
        assert_eq!(n.channel_details(&l.bc), None);
        assert!(n.list_channels().iter().all(|d| d.channel_id != l.bc));
        n.check_indexes().unwrap();
    }
    l.a.check_indexes().unwrap();
    assert_eq!(l.b.counterparty_of(&l.ab), Some(l.a.node_id()));
    // Its short channel id is gone too: a forward over it fails back cleanly.
    let p = preimage(8, 0);
    l.a.pay_invoice(&l.route(1_000_000), p.payment_hash(), 1_000_000)
        .unwrap();
    deliver_all(&l.nodes());
    assert_eq!(
        events(&l.a),
        vec![Event::PaymentFailed {
            payment_hash: p.payment_hash(),
            failure: FailureCode::UnknownNextPeer,
            failing_node: Some(l.b.node_id()),
            failure_data: vec![],
        }]
    );
    assert_eq!(l.a.channel_details(&l.ab).unwrap().balance_msat, START[0]);
    assert_eq!(l.b.channel_details(&l.ab).unwrap().pending_htlcs, 0);
}

#[test]
fn forward_to_disconnected_peer_fails_temporarily() {
    let l = line(1_000_000, 1_000_000, 0);
    l.b.peer_disconnected(&l.c.node_id());
    let before = l.balances();
    let p = preimage(9, 0);
    l.a.pay_invoice(&l.route(1_000_000), p.payment_hash(), 1_000_000)
        .unwrap();
    deliver_all(&[&l.a, &l.b]);
    // BOLT 4: B's (enabled) update for B-C, nothing before it.
    let update = failed_at_b(
        &l,
        p.payment_hash(),
        FailureCode::TemporaryChannelFailure,
        &[],
    );
    assert!(update.is_enabled());
    assert_eq!(l.balances(), before);
    l.assert_settled();
}

#[test]
fn forwards_in_both_directions_at_once_while_a_b_closes() {
    // Both ends hold half of each channel, so payments flow either way.
    let (a, b, c) = (node(1), node(2), node(3));
    connect_all(&[&a, &b, &c]);
    let (ab, scid_ab) = open_channel(&a, &b, 1_000_000, 500_000_000);
    let (bc, scid_bc) = open_channel(&b, &c, 1_000_000, 500_000_000);
    let amount = 1_000_000;
    let fee = b.config().forwarding_fee_msat(amount);
    let via_b = |first: ShortChannelId, last: &ChannelStore, last_scid| Route {
        hops: vec![
            RouteHop {
                node_id: b.node_id(),
                short_channel_id: first,
                fee_msat: fee,
                cltv_expiry_delta: u32::from(b.config().cltv_expiry_delta),
            },
            RouteHop {
                node_id: last.node_id(),
                short_channel_id: last_scid,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            },
        ],
    };
    for i in 0..10 {
        a.pay_invoice(
            &via_b(scid_ab, &c, scid_bc),
            preimage(1, i).payment_hash(),
            amount,
        )
        .unwrap();
        c.pay_invoice(
            &via_b(scid_bc, &a, scid_ab),
            preimage(2, i).payment_hash(),
            amount,
        )
        .unwrap();
    }
    deliver_all(&[&a, &b, &c]);
    assert_eq!(events(&a).len(), 10);
    assert_eq!(events(&c).len(), 10);
    for i in 0..10 {
        c.claim_funds(preimage(1, i)).unwrap();
        a.claim_funds(preimage(2, i)).unwrap();
    }
    // A asks to close A-B with 20 HTLCs still on it: the close waits.
    a.close_channel(&ab).unwrap();
    deliver_all(&[&a, &b, &c]);
    for (payer, tag) in [(&a, 1), (&c, 2)] {
        let evs = events(payer);
        for i in 0..10 {
            let p = preimage(tag, i);
            assert!(evs.contains(&Event::PaymentSent {
                payment_hash: p.payment_hash(),
                payment_preimage: p,
                fee_paid_msat: fee
            }));
        }
    }
    let forwarded = events(&b);
    let fees: u64 = forwarded
        .iter()
        .filter_map(|e| match e {
            Event::HtlcForwarded {
                fee_earned_msat, ..
            } => Some(*fee_earned_msat),
            _ => None,
        })
        .sum();
    assert_eq!(fees, 20 * fee);
    assert!(forwarded.iter().any(|e| matches!(e,
        Event::ChannelClosed { channel_id, reason: ClosureReason::Cooperative { .. }, .. } if *channel_id == ab)));
    // A-B is closed; on B-C, B earned C's fees and paid out A's payments.
    assert_eq!(a.list_channels(), vec![]);
    assert_eq!(b.channel_details(&ab), None);
    assert_eq!(
        b.channel_details(&bc).unwrap().balance_msat,
        500_000_000 + 10 * fee
    );
    assert_eq!(
        c.channel_details(&bc).unwrap().balance_msat,
        500_000_000 - 10 * fee
    );
    for n in [&a, &b, &c] {
        n.check_value_conserved().unwrap();
        n.check_indexes().unwrap();
    }
}

/// Takes every message `from` wants to send, changes it with `edit`, and
/// delivers it to `to`.
fn deliver_edited(from: &ChannelStore, to: &ChannelStore, mut edit: impl FnMut(&mut Message)) {
    for (_, mut msg) in take_msgs(from) {
        edit(&mut msg);
        deliver_one(from, to, msg);
    }
}

#[test]
fn the_hub_learns_only_its_own_payload_and_the_next_hop() {
    let l = line(1_000_000, 1_000_000, 0);
    let amount = 4_000_000;
    let p = preimage(0x21, 0);
    let route = l.route(amount);
    l.a.pay_invoice(&route, p.payment_hash(), amount).unwrap();
    let msgs = take_msgs(&l.a);
    let Some((_, Message::UpdateAddHtlc(add))) = msgs.first() else {
        panic!("{msgs:?}")
    };
    let hash = p.payment_hash().0;
    // B's layer: where to, how much, which expiry. Nothing about C's.
    let peeled = peel_onion(&secret_of(&l.b.node_id()), &add.onion_routing_packet, &hash);
    let Ok(Peeled::Forward { payload, next, .. }) = peeled else {
        panic!("{peeled:?}")
    };
    let HopPayload::Forward {
        short_channel_id,
        amt_to_forward,
        outgoing_cltv_value,
    } = HopPayload::decode(&payload, false).unwrap()
    else {
        panic!("B's payload is a forward")
    };
    assert_eq!((short_channel_id, amt_to_forward), (l.scid_bc, amount));
    assert_eq!(
        outgoing_cltv_value + u32::from(l.b.config().cltv_expiry_delta),
        add.cltv_expiry
    );
    // What B passes on is sealed for C: B's key cannot open it, C's can.
    assert_eq!(
        peel_onion(&secret_of(&l.b.node_id()), &next, &hash),
        Err(BadOnion::Hmac)
    );
    let Ok(Peeled::Final { payload, .. }) = peel_onion(&secret_of(&l.c.node_id()), &next, &hash)
    else {
        panic!("C's layer is the last")
    };
    assert!(matches!(
        HopPayload::decode(&payload, true).unwrap(),
        HopPayload::Receive {
            payment_data: Some(_),
            ..
        }
    ));
    // And the payment goes through with the onion as sent.
    for (_, m) in msgs {
        deliver_one(&l.a, &l.b, m);
    }
    deliver_all(&l.nodes());
    assert_eq!(events(&l.c).len(), 1);
    l.c.claim_funds(p).unwrap();
    deliver_all(&l.nodes());
    assert!(matches!(events(&l.a)[..], [Event::PaymentSent { .. }]));
}

/// A's one event: `PaymentFailed` with `code` from B, whose data is
/// `prefix`, `u16 len` and B's `channel_update` for B-C (BOLT 4 UPDATE
/// failures). Returns the update.
fn failed_at_b(
    l: &Line,
    hash: chanstore::PaymentHash,
    code: FailureCode,
    prefix: &[u8],
) -> chanstore::message::ChannelUpdate {
    let evs = events(&l.a);
    let [Event::PaymentFailed {
        payment_hash,
        failure,
        failing_node,
        failure_data,
    }] = &evs[..]
    else {
        panic!("one PaymentFailed: {evs:?}");
    };
    assert_eq!(
        (*payment_hash, *failure, *failing_node),
        (hash, code, Some(l.b.node_id()))
    );
    assert_eq!(&failure_data[..prefix.len()], prefix);
    update_in_failure(failure_data, prefix.len(), &l.b, l.scid_bc)
}

/// A - B - C - D, each channel opened by the left node.
struct Line4 {
    nodes: [ChannelStore; 4],
    scids: [ShortChannelId; 3],
}

fn line4() -> Line4 {
    let nodes = [node(1), node(2), node(3), node(4)];
    let refs: Vec<&ChannelStore> = nodes.iter().collect();
    connect_all(&refs);
    let scids = [0, 1, 2].map(|i| open_channel(&nodes[i], &nodes[i + 1], 1_000_000, 0).1);
    Line4 { nodes, scids }
}

impl Line4 {
    fn all(&self) -> Vec<&ChannelStore> {
        self.nodes.iter().collect()
    }

    /// A to D, paying B and C their fees and deltas (less `short_fee_at_c`).
    fn route(&self, amount_msat: u64, short_fee_at_c: u64) -> Route {
        let config = self.nodes[1].config();
        let fee_c = config.forwarding_fee_msat(amount_msat) - short_fee_at_c;
        let fee_b = config.forwarding_fee_msat(amount_msat + fee_c);
        let delta = u32::from(config.cltv_expiry_delta);
        let hop = |n: usize, fee_msat, cltv_expiry_delta| RouteHop {
            node_id: self.nodes[n].node_id(),
            short_channel_id: self.scids[n - 1],
            fee_msat,
            cltv_expiry_delta,
        };
        Route {
            hops: vec![hop(1, fee_b, delta), hop(2, fee_c, delta), hop(3, 0, 0)],
        }
    }
}

#[test]
fn a_failure_three_hops_away_is_attributed_to_its_node() {
    let l = line4();
    let [a, _, c, d] = &l.nodes;
    // D, three hops away, refuses the payment.
    let p = preimage(0x22, 0);
    let route = l.route(2_000_000, 0);
    a.pay_invoice(&route, p.payment_hash(), 2_000_000).unwrap();
    deliver_all(&l.all());
    assert_eq!(events(d).len(), 1);
    d.fail_htlc_backwards(&p.payment_hash()).unwrap();
    deliver_all(&l.all());
    assert_eq!(events(a), vec![unknown_to(d, p.payment_hash(), 2_000_000)]);
    // C, two hops away, is paid a fee too small.
    let p = preimage(0x22, 1);
    let route = l.route(2_000_000, 1);
    a.pay_invoice(&route, p.payment_hash(), 2_000_000).unwrap();
    deliver_all(&l.all());
    let evs = events(a);
    let [Event::PaymentFailed {
        failure: FailureCode::FeeInsufficient,
        failing_node: Some(by),
        failure_data,
        ..
    }] = &evs[..]
    else {
        panic!("C's fee_insufficient: {evs:?}");
    };
    assert_eq!(*by, c.node_id());
    // BOLT 4: htlc_msat (what reached C), then C's update for C-D.
    let htlc_msat = 2_000_000 + route.hops[1].fee_msat;
    assert_eq!(failure_data[..8], htlc_msat.to_be_bytes());
    update_in_failure(failure_data, 8, c, l.scids[2]);
    for n in l.all() {
        n.check_value_conserved().unwrap();
    }
}

#[test]
fn an_onion_the_next_hop_cannot_read_is_failed_by_the_hop_before() {
    let l = line(1_000_000, 1_000_000, 0);
    let p = preimage(0x23, 0);
    queue_forward(&l, &p, 1_000_000);
    l.b.process_pending_forwards();
    // B's add to C arrives with a flipped byte: C cannot check the HMAC.
    let mut spoiled = None;
    deliver_edited(&l.b, &l.c, |m| {
        if let Message::UpdateAddHtlc(add) = m {
            add.onion_routing_packet.0[200] ^= 1;
            spoiled = Some(add.onion_routing_packet.clone());
        }
    });
    deliver_all(&l.nodes());
    // C says so with update_fail_malformed_htlc; B turns it into a failure
    // of its own, with the onion's hash (BOLT 4): A learns it at B.
    let sha = bitcoin::hashes::sha256::Hash::hash(&spoiled.unwrap().0[..]).to_byte_array();
    assert_eq!(
        events(&l.a),
        vec![failed_by(
            &l.b,
            p.payment_hash(),
            FailureCode::InvalidOnionHmac,
            sha.to_vec()
        )]
    );
    assert_eq!(events(&l.c), vec![]);
    l.assert_settled();
}

#[test]
fn a_failure_spoiled_on_the_way_back_is_unreadable_not_misattributed() {
    let l = line(1_000_000, 1_000_000, 0);
    let p = preimage(0x24, 0);
    let route = l.route(1_000_000);
    l.a.pay_invoice(&route, p.payment_hash(), 1_000_000)
        .unwrap();
    deliver_all(&l.nodes());
    l.c.fail_htlc_backwards(&p.payment_hash()).unwrap();
    // C's failure onion is changed before B wraps it.
    deliver_edited(&l.c, &l.b, |m| {
        if let Message::UpdateFailHtlc(fail) = m {
            fail.reason[40] ^= 0x80;
        }
    });
    deliver_all(&l.nodes());
    assert_eq!(
        events(&l.a),
        vec![Event::PaymentFailed {
            payment_hash: p.payment_hash(),
            failure: FailureCode::Unreadable,
            failing_node: None,
            failure_data: vec![],
        }]
    );
    l.assert_settled();
}
