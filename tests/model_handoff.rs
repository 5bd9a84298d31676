//! Model check of the cross-peer hand-off (`shuttle`): forwards and
//! resolutions travel between peers on queues, and no thread ever holds two
//! locks.
//!
//! # Why a model
//!
//! The store is built from `DashMap`, `parking_lot::Mutex` and crossbeam's
//! `SegQueue`, which a model checker cannot instrument. So this file rebuilds
//! the hand-off *protocol* out of shuttle's own primitives, function by
//! function, and lets shuttle explore thread interleavings of it: PCT
//! scheduling (which finds bugs of depth `d` with a known probability per
//! run) plus uniformly random schedules, each bounded by an iteration count.
//!
//! # What is modelled, and where it lives in the crate
//!
//! | model                               | crate                                                                  |
//! |-------------------------------------|------------------------------------------------------------------------|
//! | `Store::peers: Vec<Mutex<PeerModel>>` | `Sharded::peers` (`src/store/sharded.rs`): one lock per `PeerState`  |
//! | `Store::with_section`               | `ChannelStore::with_section` + `Sharded::with_peer` (`src/store/mod.rs`): run a closure under one peer lock, collect an `Outcome`, release, then `carry_out` |
//! | `Store::carry_out`                  | `ChannelStore::carry_out` (`src/store/mod.rs`): index releases, events, `decide_incoming`, `pass_back`, queued work, `OnChainResolutionRequired` — all after the lock is gone |
//! | `Store::queues` (2 shards) + `push` / `pop_batch` / `queued_work` | `ShardedQueues::{push, pop_batch, len}` (`src/forward.rs`): one `SegQueue` per shard, drained from a rotating start. A `Mutex<VecDeque>` has the property the store relies on, `pop` hands each item to exactly one caller |
//! | `Store::process_pending_forwards`   | `ChannelStore::process_pending_forwards` (`src/store/payments.rs`): budget = items queued at entry, batches of `BATCH`, grouped by peer, one `apply_work` per group |
//! | `Store::apply_work`                 | `apply_work` + `add_forward` (`payments.rs`): a forward whose channel is gone fails back; a resolution whose channel or HTLC is gone becomes an on-chain resolution |
//! | `Store::commit_incoming`            | `Channel::handle_revoke_and_ack` making an offered HTLC irrevocable, then `decide_incoming`/`route_incoming` (`payments.rs`): index lookup, then queue a forward (or a fail-back if the next channel is unknown) |
//! | `Store::downstream_fulfill`         | `Channel::handle_update_fulfill_htlc` (reported once: `fulfill_reported`) then `pass_back` (`payments.rs`): `HtlcForwarded` and a fulfill queued for the incoming peer |
//! | `Store::force_close`                | `ChannelStore::force_close_channel` + `Section::finish` dropping the closed channel (`src/store/section.rs`), index release in `carry_out` |
//! | `Store::index`                      | `Sharded::index`/`scids`: a hint read outside peer locks, released after the close's lock is gone |
//!
//! The lock rule itself is checked: every lock goes through `lock_peer` or
//! a leaf helper that asserts the thread holds no other lock (the store's
//! contract, `src/store/mod.rs`), and shuttle reports any schedule in which
//! every thread is blocked (a deadlock).
//!
//! # What is not modelled
//!
//! * `SegQueue`'s and `DashMap`'s internals: crossbeam and dashmap check
//!   those themselves (crossbeam with its own loom tests). Only their
//!   contract is used: `pop` returns each pushed item to exactly one caller.
//! * The BOLT 2 commitment dance, signatures, messages and outboxes: an HTLC
//!   enters the model at the moment the crate hands it to the queues
//!   (irrevocably committed on the incoming channel, or fulfilled
//!   downstream), and the model checks the hand-off from there.
//! * Peers that vanish from the map (`apply_work`'s peer-gone branch): the
//!   store has no API that removes a peer.
//! * Cooperative close: it keeps the channel until every HTLC has settled,
//!   so it cannot race a resolution out of existence the way a force close can.
//!
//! # Scenarios
//!
//! (a) a forward queued by one thread while two others drain: applied
//!     exactly once, never lost; (b) a fulfill for A's incoming HTLC racing a
//!     force close of A's channel: exactly one of "applied before the close"
//!     and "reported for on-chain resolution"; (c) forwards crossing between
//!     two peers whose threads each hold their own peer's lock: no deadlock,
//!     both applied once; (d) a forward racing a close of its outgoing
//!     channel: forwarded into it or failed back, exactly one of them.
//!
//! Shown to find bugs (by hand, not committed): a drainer that reads an
//! item without removing it and removes it later fails (a) with a double
//! add; applying a forward directly under the incoming peer's lock (two
//! locks) deadlocks in (c).

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};

use shuttle::sync::atomic::{AtomicUsize, Ordering};
use shuttle::sync::{Arc, Mutex, MutexGuard};
use shuttle::thread;

type PeerId = usize;
type ChanId = u32;

/// Schedules explored per scenario by each strategy (`MODEL_ITERATIONS`
/// overrides, for longer runs by hand).
fn iterations() -> usize {
    std::env::var("MODEL_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}
/// PCT depth: bugs that need up to `PCT_DEPTH - 1` badly placed preemptions
/// are found with probability at least 1/(n * k^(d-1)) per run.
const PCT_DEPTH: usize = 3;
/// Items one drain pass takes at once (the crate's `BATCH` is 512; small
/// here so a pass may take several batches, and a batch may hold two items
/// for one peer).
const BATCH: usize = 2;
/// Shards of the forward queue.
const SHARDS: usize = 2;

/// An HTLC the peer offered us, once irrevocably committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InState {
    Committed,
    Fulfilled,
    Failed,
}

/// Where an outgoing HTLC came from, and where its resolution goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PrevHop {
    peer: PeerId,
    chan: ChanId,
    htlc: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Outgoing {
    prev: PrevHop,
    fulfilled: bool,
    /// `HtlcKind::Offered::fulfill_reported`: pass a fulfill on only once.
    reported: bool,
}

#[derive(Clone, Debug, Default)]
struct ChannelModel {
    incoming: BTreeMap<u64, InState>,
    outgoing: Vec<Outgoing>,
}

#[derive(Debug, Default)]
struct PeerModel {
    channels: BTreeMap<ChanId, ChannelModel>,
    /// Force-closed channels as they were at the close (the crate drops
    /// them; the model keeps them to check what the chain would settle).
    closed: BTreeMap<ChanId, ChannelModel>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    Forward {
        prev: PrevHop,
        next_chan: ChanId,
    },
    Resolve {
        chan: ChanId,
        htlc: u64,
        fulfill: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Addressed {
    peer: PeerId,
    work: Work,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    HtlcForwarded(PrevHop),
    OnChainResolutionRequired {
        chan: ChanId,
        htlc: u64,
        fulfill: bool,
    },
    ChannelClosed(ChanId),
}

/// What a section asks for once its lock is released.
#[derive(Default)]
struct Outcome {
    incoming: Vec<(PrevHop, ChanId)>,
    resolved: Vec<(PrevHop, bool)>,
    work: Vec<Addressed>,
    unresolvable: Vec<(ChanId, u64, bool)>,
    events: Vec<Event>,
    closed: Vec<ChanId>,
}

shuttle::thread_local! {
    /// Locks this thread holds now.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// A guard that counts itself in `HELD`, after checking the thread held
/// nothing else: the store's rule, "a thread holding a lock takes no other".
struct Held<'a, T>(MutexGuard<'a, T>);

fn lock<T>(m: &Mutex<T>) -> Held<'_, T> {
    HELD.with(|h| {
        assert_eq!(h.get(), 0, "a thread holding a lock takes another");
        h.set(1)
    });
    Held(m.lock().unwrap())
}

impl<T> Drop for Held<'_, T> {
    fn drop(&mut self) {
        HELD.with(|h| h.set(0));
    }
}

impl<T> std::ops::Deref for Held<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Held<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

struct Store {
    peers: Vec<Mutex<PeerModel>>,
    /// Channel → peer, read outside peer locks.
    index: Mutex<BTreeMap<ChanId, PeerId>>,
    queues: Vec<Mutex<VecDeque<Addressed>>>,
    next_start: AtomicUsize,
    events: Mutex<Vec<Event>>,
}

impl Store {
    /// Peers `0..n`, and channels given as (channel, peer).
    fn new(n: usize, channels: &[(ChanId, PeerId)]) -> Store {
        let mut peers: Vec<PeerModel> = (0..n).map(|_| PeerModel::default()).collect();
        for &(chan, peer) in channels {
            peers[peer].channels.insert(chan, ChannelModel::default());
        }
        Store {
            peers: peers.into_iter().map(Mutex::new).collect(),
            index: Mutex::new(channels.iter().copied().collect()),
            queues: (0..SHARDS).map(|_| Mutex::new(VecDeque::new())).collect(),
            next_start: AtomicUsize::new(0),
            events: Mutex::new(Vec::new()),
        }
    }

    fn with_section<T>(
        &self,
        peer: PeerId,
        f: impl FnOnce(&mut PeerModel, &mut Outcome) -> T,
    ) -> T {
        let mut out = Outcome::default();
        let result = {
            let mut state = lock(&self.peers[peer]);
            f(&mut state, &mut out)
        };
        self.carry_out(out);
        result
    }

    fn carry_out(&self, out: Outcome) {
        for chan in out.closed {
            lock(&self.index).remove(&chan);
        }
        for event in out.events {
            lock(&self.events).push(event);
        }
        for (prev, next_chan) in out.incoming {
            self.decide_incoming(prev, next_chan);
        }
        for (prev, fulfill) in out.resolved {
            self.pass_back(prev, fulfill);
        }
        for item in out.work {
            self.push(item);
        }
        for (chan, htlc, fulfill) in out.unresolvable {
            lock(&self.events).push(Event::OnChainResolutionRequired {
                chan,
                htlc,
                fulfill,
            });
        }
    }

    fn push(&self, item: Addressed) {
        lock(&self.queues[item.peer % SHARDS]).push_back(item);
    }

    fn pop_batch(&self, out: &mut Vec<Addressed>, max: usize) {
        // The crate uses Relaxed (the counter only spreads drainers over
        // shards); shuttle treats every ordering as SeqCst anyway.
        let start = self.next_start.fetch_add(1, Ordering::SeqCst);
        for k in 0..SHARDS {
            let shard = &self.queues[(start + k) % SHARDS];
            while out.len() < max {
                match lock(shard).pop_front() {
                    Some(item) => out.push(item),
                    None => break,
                }
            }
        }
    }

    fn queued_work(&self) -> usize {
        self.queues.iter().map(|q| lock(q).len()).sum()
    }

    /// The peer's `revoke_and_ack` made its HTLC `htlc` on `chan`
    /// irrevocable; its onion says: forward over `next_chan`.
    fn commit_incoming(&self, peer: PeerId, chan: ChanId, htlcs: &[u64], next_chan: ChanId) {
        self.with_section(peer, |ps, out| {
            let c = ps.channels.get_mut(&chan).expect("incoming channel open");
            for &htlc in htlcs {
                c.incoming.insert(htlc, InState::Committed);
                out.incoming.push((PrevHop { peer, chan, htlc }, next_chan));
            }
        })
    }

    fn decide_incoming(&self, prev: PrevHop, next_chan: ChanId) {
        let next_peer = lock(&self.index).get(&next_chan).copied();
        match next_peer {
            Some(peer) => self.push(Addressed {
                peer,
                work: Work::Forward { prev, next_chan },
            }),
            None => self.push(fail_back(prev)),
        }
    }

    /// The downstream peer fulfilled outgoing HTLC number `i` on `chan`.
    fn downstream_fulfill(&self, peer: PeerId, chan: ChanId, i: usize) {
        self.with_section(peer, |ps, out| {
            let Some(c) = ps.channels.get_mut(&chan) else {
                return;
            };
            let h = &mut c.outgoing[i];
            h.fulfilled = true;
            if !std::mem::replace(&mut h.reported, true) {
                out.resolved.push((h.prev, true));
            }
        })
    }

    fn pass_back(&self, prev: PrevHop, fulfill: bool) {
        if fulfill {
            lock(&self.events).push(Event::HtlcForwarded(prev));
        }
        self.push(Addressed {
            peer: prev.peer,
            work: Work::Resolve {
                chan: prev.chan,
                htlc: prev.htlc,
                fulfill,
            },
        });
    }

    fn process_pending_forwards(&self) -> usize {
        let budget = self.queued_work();
        let mut done = 0;
        let mut batch = Vec::new();
        while done < budget {
            batch.clear();
            self.pop_batch(&mut batch, BATCH.min(budget - done));
            if batch.is_empty() {
                break;
            }
            done += batch.len();
            batch.sort_by_key(|a| a.peer);
            let mut items = batch.drain(..).peekable();
            while let Some(first) = items.next() {
                let mut group = vec![first.work];
                while let Some(next) = items.next_if(|i| i.peer == first.peer) {
                    group.push(next.work);
                }
                self.apply_work(first.peer, group);
            }
        }
        done
    }

    fn apply_work(&self, peer: PeerId, items: Vec<Work>) {
        self.with_section(peer, |ps, out| {
            for item in items {
                match item {
                    Work::Forward { prev, next_chan } => match ps.channels.get_mut(&next_chan) {
                        Some(c) => c.outgoing.push(Outgoing {
                            prev,
                            fulfilled: false,
                            reported: false,
                        }),
                        None => out.work.push(fail_back(prev)),
                    },
                    Work::Resolve {
                        chan,
                        htlc,
                        fulfill,
                    } => {
                        let live = ps
                            .channels
                            .get_mut(&chan)
                            .and_then(|c| c.incoming.get_mut(&htlc))
                            .filter(|s| **s == InState::Committed);
                        match live {
                            Some(s) => {
                                *s = if fulfill {
                                    InState::Fulfilled
                                } else {
                                    InState::Failed
                                }
                            }
                            None => out.unresolvable.push((chan, htlc, fulfill)),
                        }
                    }
                }
            }
        })
    }

    fn force_close(&self, peer: PeerId, chan: ChanId) {
        self.with_section(peer, |ps, out| {
            if let Some(c) = ps.channels.remove(&chan) {
                ps.closed.insert(chan, c);
                out.closed.push(chan);
                out.events.push(Event::ChannelClosed(chan));
            }
        })
    }

    /// A later `process_pending_forwards` call: what one call leaves (items
    /// queued while it ran) the next one takes.
    fn drain(&self) {
        while self.process_pending_forwards() > 0 {}
        assert_eq!(self.queued_work(), 0, "work left in the queues");
    }

    /// The channel, open or force-closed.
    fn channel(&self, peer: PeerId, chan: ChanId) -> ChannelModel {
        let ps = lock(&self.peers[peer]);
        ps.channels
            .get(&chan)
            .or_else(|| ps.closed.get(&chan))
            .cloned()
            .expect("the channel existed")
    }

    fn events(&self) -> Vec<Event> {
        lock(&self.events).clone()
    }
}

fn fail_back(prev: PrevHop) -> Addressed {
    Addressed {
        peer: prev.peer,
        work: Work::Resolve {
            chan: prev.chan,
            htlc: prev.htlc,
            fulfill: false,
        },
    }
}

/// Runs `scenario` under PCT and under random scheduling.
fn check(scenario: fn()) {
    shuttle::check_pct(scenario, iterations(), PCT_DEPTH);
    shuttle::check_random(scenario, iterations());
}

const A: PeerId = 0;
const B: PeerId = 1;
/// A's channel (HTLCs come in on it) and B's (they go out on it).
const CA: ChanId = 10;
const CB: ChanId = 20;

/// (a) Peer A's revoke_and_ack commits two HTLCs to forward to B while two
/// threads drain: each is added on B's channel exactly once.
fn forward_vs_two_drainers() {
    let store = Arc::new(Store::new(2, &[(CA, A), (CB, B)]));
    let handler = {
        let s = store.clone();
        thread::spawn(move || s.commit_incoming(A, CA, &[0, 1], CB))
    };
    let drainers: Vec<_> = (0..2)
        .map(|_| {
            let s = store.clone();
            thread::spawn(move || {
                s.process_pending_forwards();
            })
        })
        .collect();
    handler.join().unwrap();
    for d in drainers {
        d.join().unwrap();
    }
    store.drain();
    let out = store.channel(B, CB).outgoing;
    for htlc in [0, 1] {
        let prev = PrevHop {
            peer: A,
            chan: CA,
            htlc,
        };
        let n = out.iter().filter(|o| o.prev == prev).count();
        assert_eq!(n, 1, "forward of htlc {htlc} applied {n} times");
    }
    assert_eq!(out.len(), 2);
}

/// (b) B fulfills the HTLC A forwarded (the fulfill is queued for A) while a
/// drainer runs and A's channel is force-closed: exactly one of "fulfilled
/// off-chain before the close" and "left for on-chain resolution".
fn fulfill_vs_force_close() {
    let store = Arc::new(Store::new(2, &[(CA, A), (CB, B)]));
    // The forward already happened.
    store.commit_incoming(A, CA, &[0], CB);
    store.drain();
    let threads = vec![
        {
            let s = store.clone();
            thread::spawn(move || s.downstream_fulfill(B, CB, 0))
        },
        {
            let s = store.clone();
            thread::spawn(move || {
                s.process_pending_forwards();
            })
        },
        {
            let s = store.clone();
            thread::spawn(move || s.force_close(A, CA))
        },
    ];
    for t in threads {
        t.join().unwrap();
    }
    store.drain();
    let applied = store.channel(A, CA).incoming[&0] == InState::Fulfilled;
    let events = store.events();
    let on_chain = events
        .iter()
        .filter(|e| {
            **e == Event::OnChainResolutionRequired {
                chan: CA,
                htlc: 0,
                fulfill: true,
            }
        })
        .count();
    assert_eq!(
        usize::from(applied) + on_chain,
        1,
        "fulfill applied: {applied}, on-chain reports: {on_chain}"
    );
    let forwarded = events
        .iter()
        .filter(|e| matches!(e, Event::HtlcForwarded(_)))
        .count();
    assert_eq!(forwarded, 1);
}

/// (c) A's and B's messages are handled at once, each committing an HTLC to
/// forward to the other, and each thread then drains: no deadlock, each
/// forward added once on the other side.
fn crossing_forwards() {
    let store = Arc::new(Store::new(2, &[(CA, A), (CB, B)]));
    let threads: Vec<_> = [(A, CA, CB), (B, CB, CA)]
        .into_iter()
        .map(|(peer, from, to)| {
            let s = store.clone();
            thread::spawn(move || {
                s.commit_incoming(peer, from, &[0], to);
                s.process_pending_forwards();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    store.drain();
    for (peer, chan, from_peer, from_chan) in [(B, CB, A, CA), (A, CA, B, CB)] {
        let out = store.channel(peer, chan).outgoing;
        let prev = PrevHop {
            peer: from_peer,
            chan: from_chan,
            htlc: 0,
        };
        assert_eq!(out.iter().filter(|o| o.prev == prev).count(), 1);
        assert_eq!(out.len(), 1);
    }
}

/// (d) A forward to B's channel races its force close: the HTLC is either
/// added to the channel before it closed (and settles on chain) or failed
/// back to A, never both, never neither.
fn forward_vs_close_of_next_channel() {
    let store = Arc::new(Store::new(2, &[(CA, A), (CB, B)]));
    let threads = vec![
        {
            let s = store.clone();
            thread::spawn(move || s.commit_incoming(A, CA, &[0], CB))
        },
        {
            let s = store.clone();
            thread::spawn(move || {
                s.process_pending_forwards();
            })
        },
        {
            let s = store.clone();
            thread::spawn(move || s.force_close(B, CB))
        },
    ];
    for t in threads {
        t.join().unwrap();
    }
    store.drain();
    let added = store.channel(B, CB).outgoing.len();
    let failed_back = store.channel(A, CA).incoming[&0] == InState::Failed;
    assert!(added <= 1, "forward added {added} times");
    assert_eq!(
        added + usize::from(failed_back),
        1,
        "added: {added}, failed back: {failed_back}"
    );
    assert!(!store
        .events()
        .iter()
        .any(|e| matches!(e, Event::OnChainResolutionRequired { .. })));
}

#[test]
fn a_forward_is_applied_exactly_once() {
    check(forward_vs_two_drainers);
}

#[test]
fn b_fulfill_racing_force_close_resolves_once() {
    check(fulfill_vs_force_close);
}

#[test]
fn c_crossing_forwards_never_deadlock() {
    check(crossing_forwards);
}

#[test]
fn d_forward_racing_close_of_next_channel() {
    check(forward_vs_close_of_next_channel);
}
