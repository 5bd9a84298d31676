//! The duplicate-payment guard (`src/store/paying.rs`) under races: a part
//! in flight while a whole send of its hash starts, a timer tick's prune
//! while a peer's section is slow, and sends, ticks, forwards and blocks
//! on several threads with a deadlock watchdog. From a review of the
//! guard's first version, which the first two tests failed.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chanstore::{
    persist::Key, ChannelStore, MemoryPersister, PaymentHash, Persister, RecipientOnionFields,
    StoreConfig, StoreError,
};
use common::*;

/// A persister whose writes can be held at a gate: the test knows when a
/// write is waiting there, and opens it.
#[derive(Debug, Default)]
struct Gate {
    inner: MemoryPersister,
    closed: AtomicBool,
    waiting: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }
    fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.cv.notify_all();
    }
    fn wait_for_writer(&self) {
        let mut w = self.waiting.lock().unwrap();
        while !*w {
            w = self.cv.wait(w).unwrap();
        }
    }
}

impl Persister for Gate {
    fn write_batch(&self, batch: &[(Key, Option<Vec<u8>>)]) -> std::io::Result<()> {
        let mut w = self.waiting.lock().unwrap();
        while self.closed.load(Ordering::SeqCst) {
            *w = true;
            self.cv.notify_all();
            w = self.cv.wait(w).unwrap();
        }
        drop(w);
        self.inner.write_batch(batch)
    }
    fn load(&self) -> Result<BTreeMap<Key, Vec<u8>>, StoreError> {
        self.inner.load()
    }
}

fn duplicate(r: &Result<(), StoreError>, hash: PaymentHash) -> bool {
    *r == Err(StoreError::DuplicatePayment { payment_hash: hash })
}

/// A part of the payment is in the channel (its send is making its batch
/// durable, so it has not yet noted its peer in `paying_peers`) when the
/// user sends the same hash whole: the whole send finds no HTLC of ours
/// for the hash and goes out too. Two HTLCs of 20,000,000 msat for one
/// 20,000,000 msat invoice: the recipient may claim both.
#[test]
fn a_whole_send_while_a_part_of_the_hash_is_being_added_is_refused() {
    let gate = Arc::new(Gate::default());
    let secret = bitcoin::secp256k1::SecretKey::from_slice(&[1; 32]).unwrap();
    let a = ChannelStore::with_persister(
        StoreConfig::default(),
        secret,
        HEIGHT,
        gate.clone() as Arc<dyn Persister>,
    )
    .unwrap();
    let b = node(2);
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let (hash, pay_secret) = b.create_inbound_payment(Some(20_000_000), 3600).unwrap();
    let fields = RecipientOnionFields::secret_only(pay_secret);
    let route = route_to(&b, scid);
    gate.close();
    let (part, whole) = std::thread::scope(|s| {
        let part =
            s.spawn(|| a.send_payment_part(&route, hash, 20_000_000, 20_000_000, fields.clone()));
        gate.wait_for_writer(); // the part's HTLC is in the channel
        let whole = s.spawn(|| a.send_payment(&route, hash, 20_000_000, fields.clone()));
        std::thread::sleep(Duration::from_millis(300));
        gate.open();
        (part.join().unwrap(), whole.join().unwrap())
    });
    assert_eq!(part, Ok(()));
    let pending = a.channel_details(&id).unwrap().pending_htlcs;
    assert!(
        duplicate(&whole, hash),
        "the whole send went out while the part was in flight: {whole:?}, \
         {pending} HTLCs of ours for one hash"
    );
    assert_eq!(pending, 1);
}

/// DESIGN.md rule 2: no DashMap shard guard while a peer lock is taken.
/// `prune_paying` (on every timer tick) holds a `paying_peers` entry while
/// it locks that entry's peers: while one peer's section runs (a slow
/// signing, here stalled for 1.5 s), the tick waits on that peer holding
/// the shard, and every `send_payment` of a hash in that shard, to any
/// other peer, waits with it.
#[cfg(feature = "test-hooks")]
#[test]
fn a_send_to_another_peer_does_not_wait_for_a_stalled_peer_through_the_prune() {
    use chanstore::test_hooks;
    use std::sync::mpsc;
    use std::time::Instant;
    let (a, b, c) = (node(1), node(2), node(3));
    connect_all(&[&a, &b, &c]);
    let (_, scid_ab) = open_channel(&a, &b, 10_000_000, 0);
    let (_, scid_ac) = open_channel(&a, &c, 10_000_000, 0);
    // Payments in flight to B: an entry naming B in every shard.
    for n in 0..32u16 {
        let hash = preimage(0x90, n).payment_hash();
        a.pay_invoice(&route_to(&b, scid_ab), hash, 10_000).unwrap();
    }
    let (stalled_tx, stalled_rx) = mpsc::channel();
    let release = Arc::new(AtomicBool::new(false));
    let done_while_stalled = std::thread::scope(|s| {
        let (a, b, c) = (&a, &b, &c);
        let hook_release = release.clone();
        let stall = s.spawn(move || {
            let mut stalled = Some(stalled_tx);
            test_hooks::set_before_append(Some(Box::new(move || {
                let Some(tx) = stalled.take() else { return };
                tx.send(()).unwrap();
                // Until the test releases it (a watchdog's cap, not a timing).
                let cap = Instant::now() + Duration::from_secs(60);
                while !hook_release.load(Ordering::SeqCst) && Instant::now() < cap {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })));
            // A section on B's lock, stalled under it.
            let _ = a.pay_invoice(
                &route_to(b, scid_ab),
                preimage(0x91, 0).payment_hash(),
                10_000,
            );
            test_hooks::set_before_append(None);
        });
        stalled_rx.recv().unwrap();
        let tick = s.spawn(|| a.timer_tick_occurred());
        std::thread::sleep(Duration::from_millis(100)); // the prune reaches B
        let (done_tx, done_rx) = mpsc::channel();
        let sends = s.spawn(move || {
            for n in 0..32u16 {
                let hash = preimage(0x92, n).payment_hash();
                a.pay_invoice(&route_to(c, scid_ac), hash, 10_000).unwrap();
            }
            done_tx.send(()).unwrap();
        });
        // B stays stalled until the sends to C are done, or a watchdog
        // gives up on them.
        let done = done_rx.recv_timeout(Duration::from_secs(30)).is_ok();
        release.store(true, Ordering::SeqCst);
        sends.join().unwrap();
        stall.join().unwrap();
        tick.join().unwrap();
        done
    });
    assert!(
        done_while_stalled,
        "sends to C waited for B's lock, through the prune's shard guard"
    );
}

/// Sends (whole, parts, the same hashes again), timer ticks (the prune),
/// forwards and blocks on four threads, with messages delivered between:
/// nothing deadlocks (a watchdog gives it 60 s).
#[test]
fn sends_ticks_forwards_and_blocks_at_once_do_not_deadlock() {
    let (a, b, c) = (node(1), node(2), node(3));
    connect_all(&[&a, &b, &c]);
    let (_, scid_ab) = open_channel(&a, &b, 10_000_000, 0);
    let (_, scid_bc) = open_channel(&b, &c, 10_000_000, 0);
    let (_, scid_ac) = open_channel(&a, &c, 10_000_000, 0);
    let done = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            eprintln!("deadlock: the stress did not finish in 60 s");
            std::process::exit(101);
        }
    });
    std::thread::scope(|s| {
        let (a, b, c, done) = (&a, &b, &c, &done);
        let via_b = route_through(b, scid_ab, c, scid_bc, 10_000);
        for t in 0..2u8 {
            let via_b = via_b.clone();
            s.spawn(move || {
                for n in 0..150u16 {
                    let hash = preimage(0xa0, n % 40).payment_hash();
                    let _ = match (n + u16::from(t)) % 3 {
                        0 => a.pay_invoice(&route_to(c, scid_ac), hash, 10_000),
                        1 => a.pay_invoice(&via_b, hash, 10_000),
                        _ => a.send_payment_part(
                            &route_to(c, scid_ac),
                            hash,
                            10_000,
                            20_000,
                            invoice(&route_to(c, scid_ac), hash),
                        ),
                    };
                }
            });
        }
        s.spawn(move || {
            while !done.load(Ordering::SeqCst) {
                a.timer_tick_occurred();
                b.process_pending_forwards();
                a.process_pending_forwards();
            }
        });
        s.spawn(move || {
            let mut h = HEIGHT;
            while !done.load(Ordering::SeqCst) {
                h += 1;
                for n in [a, b, c] {
                    n.best_block_updated(h.min(HEIGHT + 5));
                }
                deliver_all(&[a, b, c]);
            }
        });
        std::thread::sleep(Duration::from_secs(5));
        done.store(true, Ordering::SeqCst);
    });
    tx.send(()).unwrap();
    watchdog.join().unwrap();
}
