//! What a hostile peer can grow: the HTLCs kept for its revoked
//! commitments when it ignores our `shutdown` (and what an honest peer
//! may still end after it, which must not fail the channel), and the
//! pongs a burst of pings queues. From adversarial reviews, which found
//! all three (each test failed before its fix).

mod common;

use std::collections::VecDeque;
use std::sync::Arc;

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use chanstore::message::Ping;
use chanstore::{ChannelStore, ClosureReason, Event, MemoryPersister, Message, StoreConfig};
use common::*;

fn stranger(b: u8) -> PublicKey {
    PublicKey::from_secret_key(&Secp256k1::new(), &SecretKey::from_slice(&[b; 32]).unwrap())
}

/// `deliver_all`, but every message for which `drop` is true is lost (a
/// hostile peer that ignores it). Panics on any refusal.
fn deliver_dropping(
    nodes: &[&ChannelStore],
    drop: impl Fn(&ChannelStore, &Message) -> bool,
) -> usize {
    let mut dropped = 0;
    loop {
        let mut progress = false;
        for from in nodes {
            for (to, msg) in from.get_and_clear_pending_msg_events() {
                if drop(from, &msg) {
                    dropped += 1;
                    continue;
                }
                let dest = nodes.iter().find(|n| n.node_id() == to).unwrap();
                let wire = Message::decode(&msg.encode()).unwrap();
                dest.handle_message(&from.node_id(), wire)
                    .unwrap_or_else(|e| panic!("refused {}: {e}", msg.name()));
                progress = true;
            }
            if from.process_pending_forwards() > 0 {
                progress = true;
            }
        }
        if !progress {
            return dropped;
        }
    }
}

/// A peer that never answers our `shutdown` (it drops it) keeps adding
/// HTLCs above its dust limit; we fail each back once committed
/// (`permanent_channel_failure`), and each one that ends is kept for the
/// peer's revoked commitments: the list passes
/// `max_revoked_htlcs_per_channel` by one record per HTLC the peer adds,
/// with no end (no timer closes a channel whose peer ignores `shutdown`).
/// Now, once past the bound by more than an honest peer can still end
/// (three times both sides' `max_accepted_htlcs`), the channel is failed
/// (`RevokedHtlcsPastBound`).
#[test]
fn a_peer_that_ignores_our_shutdown_cannot_grow_the_revoked_list_for_good() {
    let max = 3;
    // Small HTLC limits both ways, so the most that can be in flight at
    // our shutdown (10 + 10) is reached in a few rounds.
    let config = StoreConfig {
        max_revoked_htlcs_per_channel: max,
        max_accepted_htlcs: 10,
        ..StoreConfig::default()
    };
    let slack = 3 * 20; // what an honest peer may still end: 3 x (10 + 10)
    let pa = Arc::new(MemoryPersister::new());
    let peer_config = StoreConfig {
        max_accepted_htlcs: 10,
        ..StoreConfig::default()
    };
    let (a, b) = (node_on(1, config, pa.clone()), node_with(2, peer_config));
    connect_all(&[&a, &b]);
    // B funds: it has the balance to pay A.
    let (id, scid) = open_channel(&b, &a, 1_000_000, 0);
    let hostile = |from: &ChannelStore, m: &Message| {
        from.node_id() == a.node_id() && matches!(m, Message::Shutdown(_))
    };
    // Up to the bound: B pays A, A fails each back.
    for n in 0..max as u16 {
        let p = preimage(0x71, n);
        b.pay_invoice(&route_to(&a, scid), p.payment_hash(), 5_000_000)
            .unwrap();
        deliver_dropping(&[&a, &b], hostile);
        a.fail_htlc_backwards(&p.payment_hash()).unwrap();
        deliver_dropping(&[&a, &b], hostile);
        events(&a);
        events(&b);
    }
    assert_eq!(ended_records(&*pa).len(), max);
    // A is at its bound: it sent shutdown, which B dropped.
    let mut rounds = 0u16;
    let extra = 100;
    let (mut closed, mut most) = (Vec::new(), 0);
    while rounds < extra {
        let p = preimage(0x72, rounds);
        if b.pay_invoice(&route_to(&a, scid), p.payment_hash(), 5_000_000)
            .is_err()
        {
            break;
        }
        deliver_dropping(&[&a, &b], hostile);
        for _ in 0..3 {
            a.timer_tick_occurred();
            b.timer_tick_occurred();
        }
        deliver_dropping(&[&a, &b], hostile);
        closed.extend(events(&a).into_iter().filter_map(|e| match e {
            chanstore::Event::ChannelClosed { reason, .. } => Some(reason),
            _ => None,
        }));
        events(&b);
        most = most.max(ended_records(&*pa).len());
        rounds += 1;
        if a.channel_details(&id).is_none() {
            break;
        }
    }
    let kept = most;
    // The doc's promise: past the bound, at most the HTLCs that could be
    // live at the shutdown (both sides' max_accepted_htlcs) end; a peer
    // that goes on adding loses the channel.
    assert!(
        kept <= max + slack + 1,
        "{rounds} adds after our shutdown, {kept} records kept (bound {max})"
    );
    assert!(
        a.channel_details(&id).is_none(),
        "{rounds} adds after our shutdown, {kept} records kept (bound {max}), channel still open"
    );
    assert_eq!(
        closed,
        vec![chanstore::ClosureReason::RevokedHtlcsPastBound]
    );
}

/// A `ping` asking for 65531 bytes costs the peer 6 bytes and us a
/// 65533-byte `pong` in its outbox until the user drains it: a burst of
/// pings between two drains makes us hold N × 64 KiB.
#[test]
fn a_ping_burst_queues_one_pong_at_most() {
    let hub = node(1);
    let peer = stranger(0x55);
    greet(&hub, peer);
    let ping = Message::Ping(Ping {
        num_pong_bytes: 65531,
        ignored: vec![],
    });
    let n = 200;
    let sent: usize = n * ping.encode().len();
    for _ in 0..n {
        hub.handle_message(&peer, ping.clone()).unwrap();
    }
    let queued = hub.resource_counts().queued_messages;
    let out = hub.get_and_clear_pending_msg_events();
    let held: usize = out.iter().map(|(_, m)| m.encode().len()).sum();
    assert!(!out.is_empty(), "a ping is answered");
    assert!(
        queued <= 1,
        "{queued} pongs, {held} bytes held for {sent} bytes sent"
    );
    // After a drain, the next ping is answered again.
    hub.handle_message(&peer, ping).unwrap();
    assert_eq!(hub.get_and_clear_pending_msg_events().len(), 1);
}

fn closures(evs: &[Event]) -> Vec<ClosureReason> {
    evs.iter()
        .filter_map(|e| match e {
            Event::ChannelClosed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Two honest stores (both settle every HTLC, both deliver every message,
/// in order); `max_accepted_htlcs` 1 on both sides, bound 3. A reaches its
/// bound by failing an HTLC of B's while B (which has not yet read A's
/// `shutdown`) adds another in the freed slot, and one HTLC of A's is still
/// live: the two HTLCs live after the shutdown end honestly (B fails A's,
/// A fails B's), exactly `max + both max_accepted_htlcs` records.
#[test]
fn an_honest_peer_settling_after_our_shutdown_does_not_fail_the_channel() {
    let max = 3;
    let config = StoreConfig {
        max_revoked_htlcs_per_channel: max,
        max_accepted_htlcs: 1,
        ..StoreConfig::default()
    };
    let peer_config = StoreConfig {
        max_accepted_htlcs: 1,
        ..StoreConfig::default()
    };
    let pa = Arc::new(MemoryPersister::new());
    let (a, b) = (node_on(1, config, pa.clone()), node_with(2, peer_config));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&b, &a, 1_000_000, 400_000_000);
    let mut all_a = Vec::new();
    // Warm up: max - 1 records.
    for n in 0..(max - 1) as u16 {
        let p = preimage(0x71, n);
        b.pay_invoice(&route_to(&a, scid), p.payment_hash(), 5_000_000)
            .unwrap();
        deliver_all(&[&a, &b]);
        a.fail_htlc_backwards(&p.payment_hash()).unwrap();
        deliver_all(&[&a, &b]);
        all_a.extend(events(&a));
        events(&b);
    }
    assert_eq!(ended_records(&*pa).len(), max - 1);
    // One HTLC live each way.
    let o1 = preimage(0x81, 1);
    a.pay_invoice(&route_to(&b, scid), o1.payment_hash(), 5_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    let i1 = preimage(0x82, 1);
    b.pay_invoice(&route_to(&a, scid), i1.payment_hash(), 5_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    all_a.extend(events(&a));
    events(&b);
    assert_eq!(a.channel_details(&id).unwrap().pending_htlcs, 2);
    // A fails i1 (its record is the max-th); B adds i2 as soon as it can,
    // before it reads A's shutdown (an honest race).
    a.fail_htlc_backwards(&i1.payment_hash()).unwrap();
    let i2 = preimage(0x82, 2);
    let (mut ab, mut ba): (VecDeque<Message>, VecDeque<Message>) = Default::default();
    let mut i2_sent = false;
    let mut log = Vec::new();
    loop {
        for (_, m) in a.get_and_clear_pending_msg_events() {
            ab.push_back(m);
        }
        for (_, m) in b.get_and_clear_pending_msg_events() {
            ba.push_back(m);
        }
        a.process_pending_forwards();
        b.process_pending_forwards();
        if !i2_sent {
            i2_sent = b
                .pay_invoice(&route_to(&a, scid), i2.payment_hash(), 5_000_000)
                .is_ok();
            if i2_sent {
                log.push("b adds i2".to_string());
                continue;
            }
        }
        let shutdown_blocked = !i2_sent && matches!(ab.front(), Some(Message::Shutdown(_)));
        if let Some(m) = ba.pop_front() {
            log.push(format!("b->a {}", m.name()));
            deliver_one(&b, &a, m);
        } else if let Some(m) = ab.pop_front() {
            if shutdown_blocked {
                log.push("shutdown delivered before i2 could be added".into());
            }
            log.push(format!("a->b {}", m.name()));
            deliver_one(&a, &b, m);
        } else {
            break;
        }
    }
    all_a.extend(events(&a));
    events(&b);
    assert!(i2_sent, "{log:?}");
    // Both settle what is live, honestly.
    let _ = a.fail_htlc_backwards(&i2.payment_hash());
    let _ = b.fail_htlc_backwards(&o1.payment_hash());
    deliver_all(&[&a, &b]);
    for _ in 0..3 {
        a.timer_tick_occurred();
        b.timer_tick_occurred();
        deliver_all(&[&a, &b]);
    }
    all_a.extend(events(&a));
    events(&b);
    let kept = ended_records(&*pa).len();
    assert_eq!(
        closures(&all_a)
            .iter()
            .filter(|r| **r == ClosureReason::RevokedHtlcsPastBound)
            .count(),
        0,
        "an honest peer's channel was failed with {kept} records (bound {max}, in flight 2): {:?}",
        closures(&all_a)
    );
    assert!(a.channel_details(&id).is_none(), "closed");
    let c = closures(&all_a);
    assert!(
        matches!(c.as_slice(), [ClosureReason::Cooperative { .. }]),
        "{c:?}"
    );
}

/// Variant: A accepts 1, B accepts 2; two HTLCs of A's and one of B's
/// live; A fails B's while B fails one of A's, and both add again as soon
/// as they may (A before its close is asked for, B before it reads A's
/// shutdown). Everything is settled honestly.
#[test]
fn an_honest_race_on_both_sides_does_not_fail_the_channel() {
    let max = 3;
    let config = StoreConfig {
        max_revoked_htlcs_per_channel: max,
        max_accepted_htlcs: 1,
        ..StoreConfig::default()
    };
    let peer_config = StoreConfig {
        max_accepted_htlcs: 2,
        ..StoreConfig::default()
    };
    let pa = Arc::new(MemoryPersister::new());
    let (a, b) = (node_on(1, config, pa.clone()), node_with(2, peer_config));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&b, &a, 1_000_000, 400_000_000);
    let mut all_a = Vec::new();
    for n in 0..(max - 1) as u16 {
        let p = preimage(0x71, n);
        b.pay_invoice(&route_to(&a, scid), p.payment_hash(), 5_000_000)
            .unwrap();
        deliver_all(&[&a, &b]);
        a.fail_htlc_backwards(&p.payment_hash()).unwrap();
        deliver_all(&[&a, &b]);
        all_a.extend(events(&a));
        events(&b);
    }
    let o: Vec<_> = (1..=3).map(|n| preimage(0x81, n)).collect();
    for p in &o[..2] {
        a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 5_000_000)
            .unwrap();
        deliver_all(&[&a, &b]);
    }
    let i1 = preimage(0x82, 1);
    b.pay_invoice(&route_to(&a, scid), i1.payment_hash(), 5_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    all_a.extend(events(&a));
    events(&b);
    assert_eq!(a.channel_details(&id).unwrap().pending_htlcs, 3);
    a.fail_htlc_backwards(&i1.payment_hash()).unwrap();
    b.fail_htlc_backwards(&o[0].payment_hash()).unwrap();
    let i2 = preimage(0x82, 2);
    let (mut ab, mut ba): (VecDeque<Message>, VecDeque<Message>) = Default::default();
    let (mut i2_sent, mut o3_sent) = (false, false);
    let mut log = Vec::new();
    loop {
        for (_, m) in a.get_and_clear_pending_msg_events() {
            ab.push_back(m);
        }
        for (_, m) in b.get_and_clear_pending_msg_events() {
            ba.push_back(m);
        }
        if !i2_sent
            && b.pay_invoice(&route_to(&a, scid), i2.payment_hash(), 5_000_000)
                .is_ok()
        {
            i2_sent = true;
            log.push("b adds i2".to_string());
            continue;
        }
        if !o3_sent
            && a.pay_invoice(&route_to(&b, scid), o[2].payment_hash(), 5_000_000)
                .is_ok()
        {
            o3_sent = true;
            log.push("a adds o3".to_string());
            continue;
        }
        if let Some(m) = ab.pop_front() {
            log.push(format!("a->b {}", m.name()));
            deliver_one(&a, &b, m);
        } else if let Some(m) = ba.pop_front() {
            log.push(format!("b->a {}", m.name()));
            deliver_one(&b, &a, m);
        } else {
            break;
        }
        log.push(format!("[{}]", ended_records(&*pa).len()));
    }
    all_a.extend(events(&a));
    events(&b);
    let _ = a.fail_htlc_backwards(&i2.payment_hash());
    for p in &o {
        let _ = b.fail_htlc_backwards(&p.payment_hash());
    }
    deliver_all(&[&a, &b]);
    for _ in 0..3 {
        a.timer_tick_occurred();
        b.timer_tick_occurred();
        deliver_all(&[&a, &b]);
    }
    all_a.extend(events(&a));
    let c = closures(&all_a);
    assert!(
        matches!(c.as_slice(), [ClosureReason::Cooperative { .. }]),
        "{c:?}"
    );
}
