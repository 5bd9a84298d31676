//! A payment to us in two parts from two peers, whose revocations are
//! handled on two threads at once: the part whose section completes the set
//! announces it, the user claims, and the other part's section has not yet
//! appended its batch. The claim's durable write must not overtake it, or a
//! crash leaves the preimage out with one part no longer ours.
//!
//! Needs the hidden `test-hooks` feature (`cargo test --all-features`): it
//! stalls the first part's section, on its own thread, between its work and
//! its journal append, which is where the race lives.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::PublicKey;
use chanstore::persist::Key;
use chanstore::{test_hooks, StoreError};
use chanstore::{ChannelStore, Event, Message, Persister, RecipientOnionFields, StoreConfig};
use common::recording::Recording;
use common::*;

fn on(seed: u8, p: Arc<dyn Persister>) -> ChannelStore {
    ChannelStore::with_persister(
        StoreConfig::default(),
        secret_of(&node(seed).node_id()),
        HEIGHT,
        p,
    )
    .unwrap()
}

/// [`deliver_all`], but the messages `hold` picks are kept back and returned
/// (sender, recipient, message), in the order they were sent.
fn deliver_holding<'a>(
    nodes: &[&'a ChannelStore],
    hold: impl Fn(&PublicKey, &Message) -> bool,
) -> Vec<(&'a ChannelStore, &'a ChannelStore, Message)> {
    let mut held = Vec::new();
    loop {
        let mut progress = false;
        for from in nodes {
            for (to, msg) in take_msgs(from) {
                let dest = *nodes.iter().find(|n| n.node_id() == to).unwrap();
                if hold(&to, &msg) {
                    held.push((*from, dest, msg));
                } else {
                    deliver_one(from, dest, msg);
                }
                progress = true;
            }
            progress |= from.process_pending_forwards() > 0;
        }
        if !progress {
            return held;
        }
    }
}

/// Whether a batch written after the first `from` holds a work item (the
/// claim of a payment in several parts writes one per part first).
fn claim_written(rec: &Recording, from: usize) -> Option<usize> {
    let batches = rec.batches();
    (from..batches.len())
        .find(|&i| (batches[i].iter()).any(|(k, v)| matches!(k, Key::Work(_)) && v.is_some()))
}

fn paid_once(node: &ChannelStore, who: &str) {
    let evs = events(node);
    let sent = (evs.iter())
        .filter(|e| matches!(e, Event::PaymentSent { .. }))
        .count();
    let failed = (evs.iter())
        .filter(|e| matches!(e, Event::PaymentFailed { .. }))
        .count();
    assert_eq!((sent, failed), (1, 0), "{who}'s part: {evs:?}");
}

/// A pays 3,000,000 and B 2,000,000 msat of one 5,000,000 msat payment to
/// C. B's revocation completes the set while A's section (which added A's
/// part) is stalled before its append; C announces the payment and the user
/// claims at once. C then crashes right after the claim's first write.
/// Restarted from that state, C must still be paid both parts: the claim
/// may not be durable before the part it fulfills. (Before the fix, the
/// claim's work items were written without A's batch; after the restart A's
/// part came back into a new, incomplete set and timed out: A's 3,000,000
/// msat went back to A, the preimage having already gone to B.)
#[test]
fn a_claim_is_never_durable_before_a_part_it_fulfills() {
    let a = node(1);
    let b = node(2);
    let rec = Recording::new();
    let c = on(3, rec.clone());
    connect_all(&[&a, &b, &c]);
    let (_, scid_a) = open_channel(&a, &c, 1_000_000, 0);
    let (_, scid_b) = open_channel(&b, &c, 1_000_000, 0);
    let p = preimage(9, 7);
    let hash = p.payment_hash();
    let fields = RecipientOnionFields::secret_only(secret_for(&c.node_id(), hash));
    (a.send_payment_part(
        &route_to(&c, scid_a),
        hash,
        3_000_000,
        5_000_000,
        fields.clone(),
    ))
    .unwrap();
    (b.send_payment_part(&route_to(&c, scid_b), hash, 2_000_000, 5_000_000, fields)).unwrap();
    // Everything but the revocations that make the parts irrevocable at C.
    let c_id = c.node_id();
    let mut held = deliver_holding(&[&a, &b, &c], |to, msg| {
        *to == c_id && matches!(msg, Message::RevokeAndAck(_))
    });
    assert_eq!(held.len(), 2, "one revocation from each payer");
    let (_, _, from_b) = held.pop().unwrap();
    let (_, _, from_a) = held.pop().unwrap();
    let _ = (events(&a), events(&b), events(&c));
    c.flush().unwrap();
    let from = rec.len();

    let (stalled_tx, stalled_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let (a, c, rec) = (&a, &c, rec.clone());
        let x = s.spawn(move || {
            let mut stalled = Some(stalled_tx);
            test_hooks::set_before_append(Some(Box::new(move || {
                let Some(tx) = stalled.take() else { return };
                tx.send(()).unwrap();
                // Hold A's section until the claim is written, or 2 s
                // (it never is, if the claim waits for this section).
                let until = Instant::now() + Duration::from_secs(2);
                while claim_written(&rec, from).is_none() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })));
            deliver_one(a, c, from_a);
            test_hooks::set_before_append(None);
        });
        stalled_rx.recv().unwrap();
        deliver_one(&b, c, from_b);
        let evs = events(c);
        assert!(
            (evs.iter()).any(|e| matches!(
                e,
                Event::PaymentReceived {
                    amount_msat: 5_000_000,
                    ..
                }
            )),
            "B's part completes the set while A's section is stalled: {evs:?}"
        );
        c.claim_funds(p).unwrap();
        x.join().unwrap();
    });

    // C crashes just after the claim's first write; nothing C sent after
    // it reached A or B.
    let k = claim_written(&rec, from).expect("the claim wrote its parts") + 1;
    drop(c);
    let c = on(3, rec.prefix(k));
    for payer in [&a, &b] {
        payer.peer_disconnected(&c_id);
        connect_all(&[payer, &c]);
    }
    c.process_pending_forwards();
    deliver_all(&[&a, &b, &c]);
    match c.claim_funds(p) {
        Ok(()) | Err(StoreError::UnknownPayment { .. }) => {}
        Err(e) => panic!("claim again: {e}"),
    }
    deliver_all(&[&a, &b, &c]);
    for _ in 0..c.config().mpp_timeout_ticks {
        c.timer_tick_occurred();
    }
    c.process_pending_forwards();
    deliver_all(&[&a, &b, &c]);
    paid_once(&a, "A");
    paid_once(&b, "B");
}
