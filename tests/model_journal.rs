//! Model check of the journal (`shuttle`): sections append numbered batches
//! under their peer's lock, some of them lazy; whoever takes messages or
//! events commits; messages leave only once their batch is durable.
//!
//! # Why a model
//!
//! `src/store/journal.rs` is built from `parking_lot::Mutex` and a std
//! `AtomicU64`, which shuttle cannot instrument, so this file rebuilds its
//! protocol out of shuttle's primitives, function by function (as
//! `tests/model_handoff.rs` does for the cross-peer hand-off), and lets
//! shuttle explore the interleavings: PCT plus random schedules.
//!
//! | model | crate |
//! |---|---|
//! | `Journal::append` | `Journal::append` (`journal.rs`): the next number, `needed` raised unless lazy; a section with nothing to write gets the last number |
//! | `Journal::commit_upto` | `ChannelStore::commit_upto`: return if `target` is durable; else under the commit lock take *every* pending batch, write them as one group, publish `durable`, release the events |
//! | `Store::section` | `ChannelStore::with_section`: under the peer lock, append, then tag the section's messages with the number (`PeerState::seal`) |
//! | `Store::take_messages` | `get_and_clear_pending_msg_events`: `commit_needed`, then drain every outbox up to `releasable()` (read once), in order |
//! | `Store::take_events` | `take_events`: `commit_needed`, then the released events |
//! | `Disk` | the persister: the numbers of the batches written, in write order |
//!
//! # What is checked
//!
//! * The disk holds a prefix: batches 1..=n, each once, in order, whatever
//!   interleaving (a crash keeps a prefix, so a state the network could be
//!   in).
//! * A message leaves only when its batch, and so every batch before it, is
//!   on disk; an event is handed out only when its batch is.
//! * Nothing is stuck: once the threads are done, one more message poll
//!   sends every message, and every batch up to the last one something
//!   waits for is on disk. Lazy batches after it may stay in memory (that is
//!   what lazy means), and a `flush` writes them.
//!
//! Shown to find bugs (by hand, not committed): publishing `durable`
//! before the group is on disk, or draining outboxes up to the last
//! appended number instead of `durable`, each fail "a message left before
//! its batch was durable".

use std::collections::VecDeque;

use shuttle::sync::atomic::{AtomicU64, Ordering};
use shuttle::sync::{Arc, Mutex};
use shuttle::thread;

/// Schedules explored per scenario by each strategy (`MODEL_ITERATIONS`
/// overrides).
fn iterations() -> usize {
    std::env::var("MODEL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}
const PCT_DEPTH: usize = 3;

/// What is appended and not yet durable (`journal.rs` `Pending`).
#[derive(Default)]
struct Pending {
    next: u64,
    needed: u64,
    batches: Vec<u64>,
    events: Vec<u64>,
}

/// The persister: batch numbers in the order they were written.
#[derive(Default)]
struct Disk(Mutex<Vec<u64>>);

impl Disk {
    /// Whether batches 1..=n are all on disk.
    fn has_prefix(&self, n: u64) -> bool {
        self.0.lock().unwrap().len() as u64 >= n
    }
}

#[derive(Default)]
struct Journal {
    pending: Mutex<Pending>,
    durable: AtomicU64,
    commit: Mutex<()>,
}

impl Journal {
    /// `writes`: the section has something to write; `events`: it releases
    /// an event (never lazy then).
    fn append(&self, writes: bool, events: bool, lazy: bool) -> u64 {
        let mut p = self.pending.lock().unwrap();
        if p.next == 0 {
            p.next = 1;
        }
        let lazy = lazy && !events;
        if !writes && !events {
            let last = p.next - 1;
            if !lazy {
                p.needed = p.needed.max(last);
            }
            return last;
        }
        let seq = p.next;
        p.next += 1;
        p.batches.push(seq);
        if events {
            p.events.push(seq);
        }
        if !lazy {
            p.needed = seq;
        }
        seq
    }

    fn commit_upto(&self, target: u64, disk: &Disk, released: &Mutex<Vec<u64>>) {
        // Acquire, as in the crate: what a committer published is seen.
        if self.durable.load(Ordering::Acquire) >= target {
            return;
        }
        let _committing = self.commit.lock().unwrap();
        if self.durable.load(Ordering::Acquire) >= target {
            return;
        }
        let (upto, batches, events) = {
            let mut p = self.pending.lock().unwrap();
            let upto = p.next.saturating_sub(1);
            (
                upto,
                std::mem::take(&mut p.batches),
                std::mem::take(&mut p.events),
            )
        };
        {
            let mut written = disk.0.lock().unwrap();
            for seq in batches {
                assert_eq!(
                    seq,
                    written.len() as u64 + 1,
                    "a gap or a repeat on disk: {written:?} then {seq}"
                );
                written.push(seq);
            }
        }
        self.durable.store(upto, Ordering::Release);
        released.lock().unwrap().extend(events);
    }

    fn needed(&self) -> u64 {
        self.pending.lock().unwrap().needed
    }

    fn last_appended(&self) -> u64 {
        self.pending.lock().unwrap().next.saturating_sub(1)
    }
}

/// Two peers, each an outbox of (batch number, message) behind its lock.
struct Store {
    peers: Vec<Mutex<VecDeque<(u64, &'static str)>>>,
    journal: Journal,
    disk: Disk,
    /// Events released by commits, by batch number.
    released: Mutex<Vec<u64>>,
    /// What left: (peer, batch number, message).
    sent: Mutex<Vec<(usize, u64, &'static str)>>,
}

impl Store {
    fn new() -> Self {
        Store {
            peers: (0..2).map(|_| Mutex::new(VecDeque::new())).collect(),
            journal: Journal::default(),
            disk: Disk::default(),
            released: Mutex::new(Vec::new()),
            sent: Mutex::new(Vec::new()),
        }
    }

    /// A section on `peer`: appended under its lock, its message (if any)
    /// tagged with the number it waits for before the lock goes.
    fn section(&self, peer: usize, writes: bool, events: bool, msg: Option<&'static str>) {
        let mut outbox = self.peers[peer].lock().unwrap();
        // `Outcome::may_wait`: only a section that sends nothing may be lazy.
        let lazy = msg.is_none();
        let seq = self.journal.append(writes, events, lazy);
        if let Some(m) = msg {
            outbox.push_back((seq, m));
        }
    }

    fn commit_needed(&self) {
        self.journal
            .commit_upto(self.journal.needed(), &self.disk, &self.released);
    }

    fn flush(&self) {
        self.journal
            .commit_upto(self.journal.last_appended(), &self.disk, &self.released);
    }

    /// `get_and_clear_pending_msg_events`.
    fn take_messages(&self) {
        self.commit_needed();
        let releasable = self.journal.durable.load(Ordering::Acquire);
        for (peer, outbox) in self.peers.iter().enumerate() {
            let mut outbox = outbox.lock().unwrap();
            while outbox.front().is_some_and(|(seq, _)| *seq <= releasable) {
                let (seq, m) = outbox.pop_front().unwrap();
                assert!(
                    self.disk.has_prefix(seq),
                    "a message left before its batch was durable: {m} of batch {seq}"
                );
                self.sent.lock().unwrap().push((peer, seq, m));
            }
        }
    }

    /// `take_events`.
    fn take_events(&self) -> Vec<u64> {
        self.commit_needed();
        let events = std::mem::take(&mut *self.released.lock().unwrap());
        for seq in &events {
            assert!(
                self.disk.has_prefix(*seq),
                "an event was handed out before its batch was durable (batch {seq})"
            );
        }
        events
    }

    /// After every thread: one more poll leaves nothing behind but lazy
    /// batches, and a flush writes those too.
    fn check_quiescent(&self, messages: usize) {
        self.take_messages();
        for outbox in &self.peers {
            assert!(outbox.lock().unwrap().is_empty(), "a message is stuck");
        }
        assert_eq!(self.sent.lock().unwrap().len(), messages);
        let needed = self.journal.needed();
        assert!(
            self.disk.has_prefix(needed),
            "a needed batch is not durable"
        );
        self.flush();
        let last = self.journal.last_appended();
        assert!(self.disk.has_prefix(last), "flush left a batch behind");
        assert_eq!(self.disk.0.lock().unwrap().len() as u64, last);
    }
}

fn check(scenario: fn()) {
    shuttle::check_pct(scenario, iterations(), PCT_DEPTH);
    shuttle::check_random(scenario, iterations());
}

/// Peer 0's sections send messages (one with nothing to write of its own);
/// peer 1's revocation is lazy and another of its sections releases an
/// event; a poller takes messages and events while they run.
fn lazy_and_eager_sections_with_a_poller() {
    let store = Arc::new(Store::new());
    let a = {
        let s = store.clone();
        thread::spawn(move || {
            s.section(0, true, false, Some("commitment_signed"));
            // Nothing to write, but its message may depend on any batch
            // appended so far (a lazy one of peer 1 included).
            s.section(0, false, false, Some("update_add_htlc"));
        })
    };
    let b = {
        let s = store.clone();
        thread::spawn(move || {
            // A received revoke_and_ack that answers nothing: lazy.
            s.section(1, true, false, None);
            // One that makes an HTLC irrevocable: its event, no message.
            s.section(1, true, true, None);
        })
    };
    let poller = {
        let s = store.clone();
        thread::spawn(move || {
            s.take_messages();
            let events = s.take_events();
            s.take_messages();
            events
        })
    };
    a.join().unwrap();
    b.join().unwrap();
    let mut events = poller.join().unwrap();
    events.extend(store.take_events());
    assert_eq!(events.len(), 1, "the event was handed out once: {events:?}");
    store.check_quiescent(2);
}

/// Two pollers commit at once while both peers append: one commit at a
/// time, every group a contiguous run, no message early.
fn two_pollers() {
    let store = Arc::new(Store::new());
    let writers: Vec<_> = (0..2)
        .map(|peer| {
            let s = store.clone();
            thread::spawn(move || {
                s.section(peer, true, false, None);
                s.section(peer, true, false, Some("revoke_and_ack"));
            })
        })
        .collect();
    let pollers: Vec<_> = (0..2)
        .map(|_| {
            let s = store.clone();
            thread::spawn(move || s.take_messages())
        })
        .collect();
    for t in writers.into_iter().chain(pollers) {
        t.join().unwrap();
    }
    store.check_quiescent(2);
}

#[test]
fn a_lazy_batch_is_durable_before_anything_after_it_leaves() {
    check(lazy_and_eager_sections_with_a_poller);
}

#[test]
fn concurrent_commits_write_a_prefix() {
    check(two_pollers);
}
