//! A payment to us in two parts from two peers, whose revocations are
//! handled on two threads at once: one part's section is stalled between
//! adding its part and appending its batch while the other's completes the
//! set. Neither the payment's `PaymentReceived` nor a claim may become
//! durable before the stalled part's batch: a crash would leave the user
//! told of a payment it cannot claim, or the preimage out with one part no
//! longer ours.
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

/// What the race needs: A pays 3,000,000 and B 2,000,000 msat of one
/// 5,000,000 msat payment to C (recording its batches), everything
/// delivered but the two revocations that make the parts irrevocable at C.
struct Race {
    a: ChannelStore,
    b: ChannelStore,
    c: ChannelStore,
    rec: Arc<Recording>,
    p: chanstore::PaymentPreimage,
}

/// The race's set-up, with A's and B's held revocations.
fn race(tag: u16) -> (Race, Message, Message) {
    let a = node(1);
    let b = node(2);
    let rec = Recording::new();
    let c = on(3, rec.clone());
    connect_all(&[&a, &b, &c]);
    let (_, scid_a) = open_channel(&a, &c, 1_000_000, 0);
    let (_, scid_b) = open_channel(&b, &c, 1_000_000, 0);
    let p = preimage(9, tag);
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
    let c_id = c.node_id();
    let mut held = deliver_holding(&[&a, &b, &c], |to, msg| {
        *to == c_id && matches!(msg, Message::RevokeAndAck(_))
    });
    assert_eq!(held.len(), 2, "one revocation from each payer");
    let (_, _, from_b) = held.pop().unwrap();
    let (_, _, from_a) = held.pop().unwrap();
    let _ = (events(&a), events(&b), events(&c));
    c.flush().unwrap();
    (Race { a, b, c, rec, p }, from_a, from_b)
}

/// Runs `f` on a second thread with A's revocation handled on the first
/// and its section stalled before its append, until `release` says so (or
/// 2 s pass: `release` may never hold if what it waits for waits for A).
fn with_a_stalled(
    r: &Race,
    from_a: Message,
    release: impl Fn() -> bool + Send + 'static,
    f: impl FnOnce(),
) {
    let (stalled_tx, stalled_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let (a, c) = (&r.a, &r.c);
        let x = s.spawn(move || {
            let mut stalled = Some(stalled_tx);
            test_hooks::set_before_append(Some(Box::new(move || {
                let Some(tx) = stalled.take() else { return };
                tx.send(()).unwrap();
                let until = Instant::now() + Duration::from_secs(2);
                while !release() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })));
            deliver_one(a, c, from_a);
            test_hooks::set_before_append(None);
        });
        stalled_rx.recv().unwrap();
        f();
        x.join().unwrap();
    });
}

fn is_received(e: &Event) -> bool {
    matches!(
        e,
        Event::PaymentReceived {
            amount_msat: 5_000_000,
            ..
        }
    )
}

/// C restarts from `disk`; both payers reconnect, forwards and timers run,
/// the user claims (again): each payer must be paid, none failed.
fn restart_and_settle(r: Race, disk: Arc<chanstore::MemoryPersister>) {
    let Race { a, b, c, p, .. } = r;
    let c_id = c.node_id();
    drop(c);
    let c = on(3, disk);
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

/// B's revocation completes the set while A's section (which added A's
/// part) is stalled before its append: C must not announce the payment
/// yet. Once A's batch is appended the announcement comes; a crash right
/// after it was handed out still leaves the payment claimable. (Before the
/// fix, B's batch carried `PaymentReceived`: handed out, then a crash, and
/// the restarted C could not claim the payment it announced.)
#[test]
fn a_payment_is_announced_only_with_every_part_it_counts() {
    let (r, from_a, from_b) = race(8);
    let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = released.clone();
    with_a_stalled(
        &r,
        from_a,
        move || flag.load(std::sync::atomic::Ordering::SeqCst),
        || {
            deliver_one(&r.b, &r.c, from_b);
            let evs = events(&r.c);
            assert!(
                !evs.iter().any(is_received),
                "announced while A's part is not in the journal: {evs:?}"
            );
            released.store(true, std::sync::atomic::Ordering::SeqCst);
        },
    );
    let evs = events(&r.c);
    assert!(
        evs.iter().any(is_received),
        "announced once A's part is: {evs:?}"
    );
    // C crashes right after handing the event out.
    let disk = r.rec.prefix(r.rec.len());
    restart_and_settle(r, disk);
}

/// The user claims (holding the preimage, it need not wait for the event)
/// while A's section is stalled; C then crashes right after the claim's
/// first write. Restarted from there, C must still be paid both parts: the
/// claim may not be durable before a part it fulfills. (Before the fix,
/// the claim's work items were written without A's batch; after the
/// restart A's part came back into a new, incomplete set and timed out: A's
/// 3,000,000 msat went back to A, the preimage having already gone to B.)
#[test]
fn a_claim_is_never_durable_before_a_part_it_fulfills() {
    let (r, from_a, from_b) = race(7);
    let from = r.rec.len();
    let rec = r.rec.clone();
    with_a_stalled(
        &r,
        from_a,
        move || claim_written(&rec, from).is_some(),
        || {
            deliver_one(&r.b, &r.c, from_b);
            r.c.claim_funds(r.p).unwrap();
        },
    );
    let k = claim_written(&r.rec, from).expect("the claim wrote its parts") + 1;
    let disk = r.rec.prefix(k);
    restart_and_settle(r, disk);
}

/// B's part arrives; then A's section, which completes the set, panics
/// between adding its part and appending its batch (a bug, simulated by the
/// hook): the set is complete but will never be announced. The store must
/// stop (as after a failed write), and a claim must return an error rather
/// than wait forever for the announcement. (Before the fix, `claim_funds`
/// spun.)
#[test]
fn a_claim_after_a_section_panicked_returns_an_error_not_a_hang() {
    let (r, from_a, from_b) = race(6);
    let (a, c) = (&r.a, &r.c);
    deliver_one(&r.b, c, from_b);
    assert!(!events(c).iter().any(is_received), "B's part alone");
    std::thread::scope(|s| {
        s.spawn(move || {
            test_hooks::set_before_append(Some(Box::new(|| panic!("a bug in a section"))));
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                deliver_one(a, c, from_a);
            }));
            test_hooks::set_before_append(None);
            assert!(panicked.is_err(), "the hook panicked");
        });
    });
    assert!(c.is_failed(), "a section that panicked stops the store");
    // Any other work is refused now.
    assert!(matches!(
        c.update_fee(&r.c.list_channels()[0].channel_id, 300),
        Err(StoreError::Persist(_))
    ));
    // The claim, on a thread of its own watched by a deadlock watchdog
    // (leaked, so that a claim that never returns fails the test instead
    // of hanging it).
    let r: &'static Race = Box::leak(Box::new(r));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(r.c.claim_funds(r.p)).unwrap());
    let claimed = rx.recv_timeout(Duration::from_secs(30));
    assert!(
        matches!(claimed, Ok(Err(StoreError::Persist(_)))),
        "claim_funds returned the store's failure: {claimed:?}"
    );
}
