//! Disconnection at every step of a payment's life (BOLT 2 message
//! retransmission): messages in flight are lost, both sides reconnect and
//! exchange `channel_reestablish`, and the payment must still complete
//! exactly once with exact balances.

mod common;

use std::collections::VecDeque;

use chanstore::{ChannelStore, Event, Message, PaymentPreimage, Route, RouteHop, StoreError};
use common::*;

/// Messages in flight between two nodes, delivered one at a time.
struct Wire<'a> {
    nodes: [&'a ChannelStore; 2],
    in_flight: VecDeque<(usize, Message)>,
    log: Vec<String>,
}

impl<'a> Wire<'a> {
    fn new(a: &'a ChannelStore, b: &'a ChannelStore) -> Self {
        Wire {
            nodes: [a, b],
            in_flight: VecDeque::new(),
            log: Vec::new(),
        }
    }

    /// Collects what both nodes want to send.
    fn collect(&mut self) {
        for (i, n) in self.nodes.iter().enumerate() {
            for (_, msg) in n.get_and_clear_pending_msg_events() {
                self.in_flight.push_back((i, msg));
            }
        }
    }

    /// Delivers the oldest message; returns its name.
    fn step(&mut self) -> Option<String> {
        self.collect();
        let (from, msg) = self.in_flight.pop_front()?;
        let name = format!(
            "{}->{} {}",
            ["a", "b"][from],
            ["a", "b"][1 - from],
            msg.name()
        );
        let (src, dst) = (self.nodes[from], self.nodes[1 - from]);
        dst.handle_message(&src.node_id(), msg)
            .unwrap_or_else(|e| panic!("{name} refused: {e}\nlog: {:?}", self.log));
        self.log.push(name.clone());
        Some(name)
    }

    /// Loses everything in flight and reconnects both sides.
    fn reconnect(&mut self) {
        self.collect();
        self.in_flight.clear();
        let [a, b] = self.nodes;
        a.peer_disconnected(&b.node_id());
        b.peer_disconnected(&a.node_id());
        a.peer_connected(b.node_id());
        b.peer_connected(a.node_id());
        self.log.push("-- reconnect --".into());
    }
}

/// Pays `amount` from `payer` (0 = a, 1 = b), cutting the connection after
/// the `cut`-th delivered message.
fn pay_with_cut(payer: usize, cut: usize) {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 400_000_000);
    let nodes = [&a, &b];
    let (sender, receiver) = (nodes[payer], nodes[1 - payer]);
    let before = [
        a.channel_details(&id).unwrap().balance_msat,
        b.channel_details(&id).unwrap().balance_msat,
    ];
    let amount = 25_000_000;
    let preimage = PaymentPreimage([cut as u8 + 100 * payer as u8; 32]);
    let route = Route {
        hops: vec![RouteHop {
            node_id: receiver.node_id(),
            short_channel_id: scid,
            fee_msat: 0,
            cltv_expiry_delta: 0,
        }],
    };
    sender
        .pay_invoice(&route, preimage.payment_hash(), amount)
        .unwrap();

    let mut wire = Wire::new(&a, &b);
    let mut claimed = false;
    let mut sent_events = 0;
    let mut delivered = 0;
    let mut cut_done = false;
    loop {
        if !claimed && events_have_received(receiver, &preimage) {
            receiver.claim_funds(preimage).unwrap();
            claimed = true;
        }
        sent_events += sender
            .get_and_clear_pending_events()
            .iter()
            .filter(|e| matches!(e, Event::PaymentSent { .. }))
            .count();
        if !cut_done && delivered == cut {
            wire.reconnect();
            cut_done = true;
            continue;
        }
        match wire.step() {
            Some(_) => delivered += 1,
            None if cut_done => break,
            None => {
                // Fewer messages than the cut: cut at the end instead.
                wire.reconnect();
                cut_done = true;
            }
        }
    }
    if std::env::var("SHOW_LOG").is_ok() {
        eprintln!("cut {cut} payer {payer}: {:?}", wire.log);
    }
    assert!(
        claimed,
        "payment never arrived (cut {cut}, payer {payer}); log {:?}",
        wire.log
    );
    assert_eq!(
        sent_events, 1,
        "payment must end exactly once (cut {cut}, payer {payer}); log {:?}",
        wire.log
    );
    let sign = |i: usize| {
        if i == payer {
            -(amount as i64)
        } else {
            amount as i64
        }
    };
    for (i, n) in nodes.iter().enumerate() {
        let d = n.channel_details(&id).unwrap();
        assert_eq!(
            d.balance_msat as i64,
            before[i] as i64 + sign(i),
            "node {i}, cut {cut}; log {:?}",
            wire.log
        );
        assert_eq!(d.pending_htlcs, 0, "cut {cut}");
        assert!(d.is_usable);
    }
    a.check_value_conserved().unwrap();
    b.check_value_conserved().unwrap();
}

fn events_have_received(node: &ChannelStore, preimage: &PaymentPreimage) -> bool {
    node.get_and_clear_pending_events()
        .iter()
        .any(|e| matches!(e, Event::PaymentReceived { payment_hash, .. } if *payment_hash == preimage.payment_hash()))
}

/// One payment is ten messages: add, commitment_signed, revoke_and_ack,
/// commitment_signed, revoke_and_ack, then fulfill and the same four back.
/// Each cut point loses whatever was in flight at that moment.
#[test]
fn disconnect_at_every_step_either_payer() {
    let steps = [
        "before anything",
        "after update_add_htlc",
        "after the first commitment_signed",
        "after the first revoke_and_ack",
        "after the second commitment_signed",
        "after the second revoke_and_ack",
        "after update_fulfill_htlc",
        "after the third commitment_signed",
        "after the third revoke_and_ack",
        "after the fourth commitment_signed",
        "after the last revoke_and_ack",
    ];
    for payer in [0, 1] {
        for (cut, what) in steps.iter().enumerate() {
            eprintln!("payer {payer}: disconnect {what}");
            pay_with_cut(payer, cut);
        }
    }
}

#[test]
fn messages_between_disconnect_and_reestablish_are_refused() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    connect(&a, &b);
    // Before b's channel_reestablish reaches a, an update for the channel is refused.
    let route = Route {
        hops: vec![RouteHop {
            node_id: b.node_id(),
            short_channel_id: scid,
            fee_msat: 0,
            cltv_expiry_delta: 0,
        }],
    };
    assert!(matches!(
        a.pay_invoice(&route, PaymentPreimage([1; 32]).payment_hash(), 1_000),
        Err(StoreError::AwaitingReestablish {
            action: "update_add_htlc",
            ..
        })
    ));
    let fee = Message::UpdateFee(chanstore::message::UpdateFee {
        channel_id: id,
        feerate_per_kw: 300,
    });
    let before = b.debug_state();
    assert_eq!(
        b.handle_message(&a.node_id(), fee),
        Err(StoreError::AwaitingReestablish {
            channel_id: id,
            action: "update_fee"
        })
    );
    assert_eq!(b.debug_state(), before);
    deliver_all(&[&a, &b]);
    a.pay_invoice(&route, PaymentPreimage([1; 32]).payment_hash(), 1_000)
        .unwrap();
    deliver_all(&[&a, &b]);
}

#[test]
fn peer_claiming_a_newer_state_fails_the_channel() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 0);
    a.peer_disconnected(&b.node_id());
    greet(&a, b.node_id());
    let lie = Message::ChannelReestablish(chanstore::message::ChannelReestablish {
        channel_id: id,
        next_commitment_number: 5,
        next_revocation_number: 4,
        your_last_per_commitment_secret: [9; 32],
        my_current_per_commitment_point: a.node_id(),
    });
    a.handle_message(&b.node_id(), lie).unwrap();
    let sent = a.get_and_clear_pending_msg_events();
    assert!(
        sent.iter().any(|(_, m)| matches!(m, Message::Error(_))),
        "{sent:?}"
    );
    assert!(a
        .get_and_clear_pending_events()
        .iter()
        .any(|e| matches!(e, Event::ChannelClosed { .. })));
    assert!(a.channel_details(&id).is_none());
    a.check_indexes().unwrap();
}

/// A cooperative close completes on B (its record then settled and
/// forgotten) while A never hears B's last `closing_signed`. When A
/// reconnects, B no longer knows the channel: it must still answer A's
/// `channel_reestablish` with an `error` (BOLT 1), or A waits forever with
/// its funds in a channel nobody will sign for (found by `tests/crash.rs`).
#[test]
fn reestablish_for_a_forgotten_channel_is_answered_with_error() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 0);
    a.close_channel(&id).unwrap();
    for _ in 0..20 {
        for (_, m) in take_msgs(&a) {
            deliver_one(&a, &b, m);
        }
        if b.channel_details(&id).is_none() {
            break;
        }
        for (_, m) in take_msgs(&b) {
            deliver_one(&b, &a, m);
        }
    }
    assert!(b.channel_details(&id).is_none(), "B never closed");
    assert!(a.channel_details(&id).is_some(), "A closed too early");
    drop(take_msgs(&b)); // B's last closing_signed is lost.
    for closed in b.closed_channels() {
        b.spendable_outputs_swept(&closed.channel_id).unwrap();
    }
    assert!(b.closed_channel(&id).is_none(), "B forgot the channel");
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    connect_all(&[&a, &b]);
    for (_, m) in take_msgs(&a) {
        let _ = b.handle_message(&a.node_id(), m);
    }
    let answer = take_msgs(&b);
    assert!(
        answer
            .iter()
            .any(|(_, m)| matches!(m, Message::Error(e) if e.channel_id == id)),
        "{answer:?}"
    );
    for (_, m) in answer {
        let _ = a.handle_message(&b.node_id(), m);
    }
    assert!(a.channel_details(&id).is_none(), "A is still waiting");
    assert!(a.closed_channel(&id).is_some());
}

/// Reconnects `a` and `b` (what was in flight is lost), lets their
/// `channel_reestablish`es cross, and returns what each then sends (its
/// retransmissions), undelivered.
fn reestablish(a: &ChannelStore, b: &ChannelStore) -> (Vec<Message>, Vec<Message>) {
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    connect(a, b);
    let (ra, rb) = (take_msgs(a), take_msgs(b));
    for (_, m) in ra {
        assert!(matches!(m, Message::ChannelReestablish(_)), "{m:?}");
        deliver_one(a, b, m);
    }
    for (_, m) in rb {
        assert!(matches!(m, Message::ChannelReestablish(_)), "{m:?}");
        deliver_one(b, a, m);
    }
    let strip = |v: Vec<(_, Message)>| v.into_iter().map(|(_, m)| m).collect::<Vec<_>>();
    (strip(take_msgs(a)), strip(take_msgs(b)))
}

/// The wire bytes of `msgs`, for comparing a retransmission with what was
/// lost: without `channel_ready` (BOLT 2 resends it while no commitment has
/// been received) and `channel_update` (sent after every reestablish),
/// which come by their own rules.
fn wire(msgs: &[Message]) -> Vec<Vec<u8>> {
    msgs.iter()
        .filter(|m| !matches!(m, Message::ChannelReady(_) | Message::ChannelUpdate(_)))
        .map(Message::encode)
        .collect()
}

/// BOLT 2 retransmission (issue 13: "retransmissions stay byte-identical"):
/// what a node sends again after `channel_reestablish` is, byte for byte,
/// what it sent before and the peer never got: `update_add_htlc` with its
/// onion and `commitment_signed` with the same signatures, then
/// `revoke_and_ack` and `commitment_signed` the other way, then `shutdown`.
#[test]
fn retransmissions_are_byte_identical() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let hash = preimage(4, 0).payment_hash();
    a.pay_invoice(&route_to(&b, scid), hash, 2_000_000).unwrap();
    // A's update_add_htlc and commitment_signed are lost.
    let lost: Vec<Message> = take_msgs(&a).into_iter().map(|(_, m)| m).collect();
    assert!(
        matches!(
            &lost[..],
            [Message::UpdateAddHtlc(_), Message::CommitmentSigned(_)]
        ),
        "{lost:?}"
    );
    let (again, from_b) = reestablish(&a, &b);
    assert_eq!(wire(&again), wire(&lost), "A's retransmission");
    assert!(wire(&from_b).is_empty(), "{from_b:?}");
    for m in from_b {
        deliver_one(&b, &a, m);
    }
    // B takes them; its revoke_and_ack and commitment_signed are lost.
    for m in again {
        deliver_one(&a, &b, m);
    }
    let lost: Vec<Message> = take_msgs(&b).into_iter().map(|(_, m)| m).collect();
    assert!(
        matches!(
            &lost[..],
            [Message::RevokeAndAck(_), Message::CommitmentSigned(_)]
        ),
        "{lost:?}"
    );
    let (from_a, again) = reestablish(&a, &b);
    assert_eq!(wire(&again), wire(&lost), "B's retransmission");
    assert!(wire(&from_a).is_empty(), "{from_a:?}");
    for m in from_a {
        deliver_one(&a, &b, m);
    }
    for m in again {
        deliver_one(&b, &a, m);
    }
    deliver_all(&[&a, &b]);
    b.claim_funds(preimage(4, 0)).unwrap();
    deliver_all(&[&a, &b]);
    // A's shutdown is lost; after the reconnect it goes again, the same.
    a.close_channel(&id).unwrap();
    let lost: Vec<Message> = take_msgs(&a).into_iter().map(|(_, m)| m).collect();
    assert!(matches!(&lost[..], [Message::Shutdown(_)]), "{lost:?}");
    let (again, from_b) = reestablish(&a, &b);
    assert_eq!(wire(&again), wire(&lost), "A's shutdown again");
    // B's channel_update, sent on A's channel_reestablish, comes first.
    for m in from_b {
        deliver_one(&b, &a, m);
    }
    for m in again {
        deliver_one(&a, &b, m);
    }
    deliver_all(&[&a, &b]);
    for n in [&a, &b] {
        assert!(events(n).iter().any(|e| matches!(
            e,
            Event::ChannelClosed {
                reason: chanstore::ClosureReason::Cooperative { .. },
                ..
            }
        )));
    }
}

/// A peer's `shutdown` forbids its adds (BOLT 2), except those it
/// retransmits after it: LDK resends `shutdown` first after
/// `channel_reestablish`, then the adds it had sent before it. So an add
/// right after a `shutdown` that was the peer's first message after its
/// `channel_reestablish` is taken; one after the window closed (here by a
/// `ping`: the peer is past its retransmissions) or after a `shutdown`
/// that came later is refused, and changes nothing.
#[test]
fn adds_after_the_peers_shutdown_are_taken_only_as_its_retransmission() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 400_000_000);
    // One payment first: past the first commitment, channel_ready is not
    // retransmitted.
    let p = preimage(5, 2);
    let route = route_to(&b, scid);
    (a.pay_invoice(&route, p.payment_hash(), 1_000_000)).unwrap();
    deliver_all(&[&a, &b]);
    b.claim_funds(p).unwrap();
    deliver_all(&[&a, &b]);
    let hash = preimage(5, 1).payment_hash();
    let add = |n| craft_add(&a, id, n, 1_000_000, hash, HEIGHT + 100);
    let refused_as_shut = |r: Result<(), chanstore::StoreError>| {
        matches!(
            r,
            Err(chanstore::StoreError::WrongState {
                action: "update_add_htlc",
                ..
            })
        )
    };
    // B shuts down with no reconnection: its add after that is refused.
    b.close_channel(&id).unwrap();
    let shutdown = take_msgs(&b).pop().unwrap().1;
    assert!(matches!(shutdown, Message::Shutdown(_)));
    deliver_one(&b, &a, shutdown);
    let _ = take_msgs(&a);
    let (frozen, _) = freeze(&[&a]);
    assert!(refused_as_shut(a.handle_message(&b.node_id(), add(0))));
    assert_unchanged(&[&a], &frozen);
    // Reconnected, B's reestablish and then its shutdown again: what B
    // sent before that shutdown may follow it.
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    connect(&a, &b);
    for (_, m) in take_msgs(&a) {
        deliver_one(&a, &b, m);
    }
    let from_b = take_msgs(&b);
    let [(_, reestablish), (_, again)] = <[_; 2]>::try_from(from_b).unwrap();
    assert!(matches!(reestablish, Message::ChannelReestablish(_)));
    assert!(matches!(again, Message::Shutdown(_)));
    deliver_one(&b, &a, reestablish);
    let _ = take_msgs(&a);
    deliver_one(&b, &a, again);
    a.handle_message(&b.node_id(), add(0))
        .expect("an add retransmitted after the shutdown is taken");
    // A ping: B is past its retransmissions.
    let ping = Message::Ping(chanstore::message::Ping {
        num_pong_bytes: 0,
        ignored: Vec::new(),
    });
    a.handle_message(&b.node_id(), ping).unwrap();
    let (frozen, _) = freeze(&[&a]);
    assert!(refused_as_shut(a.handle_message(&b.node_id(), add(1))));
    assert_unchanged(&[&a], &frozen);
}
