//! What a hostile peer can grow: the HTLCs kept for its revoked
//! commitments when it ignores our `shutdown`, and the pongs a burst of
//! pings queues. From an adversarial review, which found both (each test
//! failed before its fix).

mod common;

use std::sync::Arc;

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use chanstore::message::Ping;
use chanstore::persist::Key;
use chanstore::{ChannelStore, MemoryPersister, Message, Persister, StoreConfig};
use common::*;

fn stranger(b: u8) -> PublicKey {
    PublicKey::from_secret_key(&Secp256k1::new(), &SecretKey::from_slice(&[b; 32]).unwrap())
}

fn durable(seed: u8, persister: &Arc<MemoryPersister>, config: StoreConfig) -> ChannelStore {
    let secret = SecretKey::from_slice(&[seed; 32]).unwrap();
    ChannelStore::with_persister(
        config,
        secret,
        HEIGHT,
        persister.clone() as Arc<dyn Persister>,
    )
    .unwrap()
}

fn ended_records(persister: &MemoryPersister) -> usize {
    let all = persister.load().unwrap().into_keys();
    all.filter(|k| matches!(k, Key::EndedHtlc(..))).count()
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
/// Now, past the bound plus both sides' `max_accepted_htlcs`, the channel
/// is failed (`RevokedHtlcsPastBound`).
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
    let in_flight = 20;
    let pa = Arc::new(MemoryPersister::new());
    let peer_config = StoreConfig {
        max_accepted_htlcs: 10,
        ..StoreConfig::default()
    };
    let (a, b) = (durable(1, &pa, config), node_with(2, peer_config));
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
    assert_eq!(ended_records(&pa), max);
    // A is at its bound: it sent shutdown, which B dropped.
    let mut rounds = 0u16;
    let extra = 40;
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
        most = most.max(ended_records(&pa));
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
        kept <= max + in_flight,
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
