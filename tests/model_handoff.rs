//! Model check of the cross-peer hand-off (`shuttle`): forwards and
//! resolutions travel between peers on queues, a thread never holds two
//! peer locks, and one peer's index and snapshot changes apply in the order
//! of its sections.
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
//! | `Store::with_section`               | `ChannelStore::with_section` + `Sharded::with_peer_indexed` (`src/store/mod.rs`): run a closure under one peer lock; still under it, apply its index and snapshot changes and queue its events; release; then queue its work for other peers |
//! | `Store::queues` (2 shards) + `push` / `pop_batch` / `queued_work` | `ShardedQueues::{push, pop_batch, len}` (`src/forward.rs`): one `SegQueue` per shard, drained from a rotating start. A `Mutex<VecDeque>` has the property the store relies on, `pop` hands each item to exactly one caller |
//! | `Store::process_pending_forwards`   | `ChannelStore::process_pending_forwards` (`src/store/payments.rs`): budget = items queued at entry, batches of `BATCH`, forwards routed through the index, grouped by peer, one `apply_work` per group |
//! | `Store::route`                      | `ChannelStore::route` (`payments.rs`): a forward's next channel looked up in the index (no peer lock held); unknown, it becomes its own fail-back |
//! | `Store::apply_work`                 | `apply_work` + `add_forward` + `Section::resolve` (`payments.rs`, `incoming.rs`): a forward whose channel is gone fails back; a resolution for a closed channel goes to its record, with its event, in the same section |
//! | `Store::commit_incoming`            | `Section::decide_incoming` (`incoming.rs`): the section that makes the HTLC irrevocable queues its forward by the channel its onion names, with no index lookup |
//! | `Store::downstream_fulfill`         | `Channel::handle_update_fulfill_htlc` (reported once: `fulfill_reported`) then `Section::pass_back`: `HtlcForwarded` and a fulfill queued for the incoming peer |
//! | `Store::force_close`                | `ChannelStore::force_close_channel` + `Section::close` (`section.rs`): the channel becomes a closed record, its id stays in the index |
//! | `Store::open_unfunded` / `Store::disconnect` | `open_channel` handling and `peer_disconnected` (`handle.rs`, `mod.rs`): a snapshot registered, and released when the unfunded channel is forgotten |
//! | `Store::index`, `Store::snapshots`  | `Sharded::index`/`scids`/`snapshots`: hints read outside peer locks, changed only under the owning peer's lock |
//!
//! The lock rule itself is checked: every lock goes through `lock_peer`
//! (which asserts the thread holds no lock at all) or `lock_leaf` (which
//! asserts it holds no other leaf lock: a leaf may be taken under a peer
//! lock, never the other way round), and shuttle reports any schedule in
//! which every thread is blocked (a deadlock).
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
//! * Persistence: each section's batch is appended to the journal under
//!   its lock, before anything it queued is visible, and becomes durable in
//!   that order; `tests/model_journal.rs` models the journal itself.
//!
//! # Scenarios
//!
//! (a) a forward queued by one thread while two others drain: applied
//!     exactly once, never lost; (b) a fulfill for A's incoming HTLC racing a
//!     force close of A's channel: the preimage reaches A's HTLC exactly
//!     once, in the live channel or in its closed record (then with the
//!     event that says to claim it on chain); (c) forwards crossing between
//!     two peers whose threads each hold their own peer's lock: no deadlock,
//!     both applied once; (d) a forward racing a close of its outgoing
//!     channel: forwarded into it or failed back, exactly one of them;
//!     (e) issue 11, point 10: a peer's `open_channel` racing its
//!     disconnection leaves no ghost snapshot: the snapshots always name
//!     exactly the peer's channels.
//!
//! Shown to find bugs (by hand, not committed): a drainer that reads an
//! item without removing it and removes it later fails (a) with a double
//! add; applying a forward directly under the incoming peer's lock (two
//! peer locks) deadlocks in (c); applying a section's index changes after
//! its lock is released (as version 0.1 did) fails (e) with a ghost.

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

#[derive(Debug)]
struct PeerModel {
    connected: bool,
    channels: BTreeMap<ChanId, ChannelModel>,
    /// Force-closed channels: their records, which still take resolutions.
    closed: BTreeMap<ChanId, ChannelModel>,
}

impl Default for PeerModel {
    fn default() -> Self {
        PeerModel {
            connected: true,
            channels: BTreeMap::new(),
            closed: BTreeMap::new(),
        }
    }
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
    /// A preimage reached the closed record of `chan`: claim on chain.
    OnChainResolutionRequired {
        chan: ChanId,
        htlc: u64,
    },
    ChannelClosed(ChanId),
}

/// An index or snapshot change a section made (`IndexOp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IndexOp {
    /// A channel's snapshot was registered.
    Created(PeerId, ChanId),
    /// A channel's snapshot was released.
    Forgotten(PeerId, ChanId),
}

/// What a section produces: index changes and events (applied under its
/// lock) and work for other peers (queued after).
#[derive(Default)]
struct Outcome {
    index: Vec<IndexOp>,
    events: Vec<Event>,
    work: Vec<Addressed>,
}

shuttle::thread_local! {
    /// Locks this thread holds now: (a peer lock, a leaf lock).
    static HELD: Cell<(bool, bool)> = const { Cell::new((false, false)) };
}

/// A guard that keeps `HELD` up to date.
struct Held<'a, T> {
    guard: MutexGuard<'a, T>,
    peer: bool,
}

/// A peer lock: taken with no lock held (the store's rule).
fn lock_peer<T>(m: &Mutex<T>) -> Held<'_, T> {
    HELD.with(|h| {
        assert_eq!(
            h.get(),
            (false, false),
            "a peer lock taken while holding a lock"
        );
        h.set((true, false))
    });
    Held {
        guard: m.lock().unwrap(),
        peer: true,
    }
}

/// A leaf lock: may be taken under a peer lock, never under another leaf.
fn lock_leaf<T>(m: &Mutex<T>) -> Held<'_, T> {
    HELD.with(|h| {
        let (peer, leaf) = h.get();
        assert!(!leaf, "a leaf lock taken while holding another");
        h.set((peer, true))
    });
    Held {
        guard: m.lock().unwrap(),
        peer: false,
    }
}

impl<T> Drop for Held<'_, T> {
    fn drop(&mut self) {
        HELD.with(|h| {
            let (peer, leaf) = h.get();
            h.set(if self.peer {
                (false, leaf)
            } else {
                (peer, false)
            })
        });
    }
}

impl<T> std::ops::Deref for Held<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for Held<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

struct Store {
    peers: Vec<Mutex<PeerModel>>,
    /// Channel → peer, read outside peer locks. Closed channels keep their
    /// entry (their record stays with the peer).
    index: Mutex<BTreeMap<ChanId, PeerId>>,
    /// Snapshots registered, by (peer, channel).
    snapshots: Mutex<std::collections::BTreeSet<(PeerId, ChanId)>>,
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
            snapshots: Mutex::new(channels.iter().map(|&(c, p)| (p, c)).collect()),
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
            let mut state = lock_peer(&self.peers[peer]);
            let result = f(&mut state, &mut out);
            // Still under the peer lock: index changes and events, in the
            // order of this peer's sections.
            for op in out.index.drain(..) {
                let mut snapshots = lock_leaf(&self.snapshots);
                match op {
                    IndexOp::Created(p, c) => snapshots.insert((p, c)),
                    IndexOp::Forgotten(p, c) => snapshots.remove(&(p, c)),
                };
            }
            for event in out.events.drain(..) {
                lock_leaf(&self.events).push(event);
            }
            result
        };
        for item in out.work {
            self.push(item);
        }
        result
    }

    fn push(&self, item: Addressed) {
        lock_leaf(&self.queues[item.peer % SHARDS]).push_back(item);
    }

    fn pop_batch(&self, out: &mut Vec<Addressed>, max: usize) {
        // The crate uses Relaxed (the counter only spreads drainers over
        // shards); shuttle treats every ordering as SeqCst anyway.
        let start = self.next_start.fetch_add(1, Ordering::SeqCst);
        for k in 0..SHARDS {
            let shard = &self.queues[(start + k) % SHARDS];
            while out.len() < max {
                match lock_leaf(shard).pop_front() {
                    Some(item) => out.push(item),
                    None => break,
                }
            }
        }
    }

    fn queued_work(&self) -> usize {
        self.queues.iter().map(|q| lock_leaf(q).len()).sum()
    }

    /// The peer's `revoke_and_ack` made its HTLCs `htlcs` on `chan`
    /// irrevocable; their onions say: forward over `next_chan`. The forwards
    /// are queued in the same section, unrouted (addressed to the incoming
    /// peer until the drainer looks the channel up).
    fn commit_incoming(&self, peer: PeerId, chan: ChanId, htlcs: &[u64], next_chan: ChanId) {
        self.with_section(peer, |ps, out| {
            let c = ps.channels.get_mut(&chan).expect("incoming channel open");
            for &htlc in htlcs {
                c.incoming.insert(htlc, InState::Committed);
                out.work.push(Addressed {
                    peer,
                    work: Work::Forward {
                        prev: PrevHop { peer, chan, htlc },
                        next_chan,
                    },
                });
            }
        })
    }

    /// Addresses a forward to its next channel's peer (index lookup, no peer
    /// lock held); a forward to no known channel fails back.
    fn route(&self, item: Addressed) -> Addressed {
        let Work::Forward { prev, next_chan } = item.work else {
            return item;
        };
        let next_peer = lock_leaf(&self.index).get(&next_chan).copied();
        match next_peer {
            Some(peer) => Addressed {
                peer,
                work: item.work,
            },
            None => fail_back(prev),
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
                // `pass_back`, in this section.
                out.events.push(Event::HtlcForwarded(h.prev));
                out.work.push(Addressed {
                    peer: h.prev.peer,
                    work: Work::Resolve {
                        chan: h.prev.chan,
                        htlc: h.prev.htlc,
                        fulfill: true,
                    },
                });
            }
        })
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
            let mut routed: Vec<Addressed> = batch.drain(..).map(|i| self.route(i)).collect();
            routed.sort_by_key(|a| a.peer);
            let mut items = routed.into_iter().peekable();
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
                        let new = if fulfill {
                            InState::Fulfilled
                        } else {
                            InState::Failed
                        };
                        if let Some(s) = ps
                            .channels
                            .get_mut(&chan)
                            .and_then(|c| c.incoming.get_mut(&htlc))
                            .filter(|s| **s == InState::Committed)
                        {
                            *s = new;
                        } else if let Some(s) = ps
                            .closed
                            .get_mut(&chan)
                            .and_then(|c| c.incoming.get_mut(&htlc))
                            .filter(|s| **s == InState::Committed)
                        {
                            // The closed record takes it, with its event,
                            // in this section.
                            *s = new;
                            if fulfill {
                                out.events
                                    .push(Event::OnChainResolutionRequired { chan, htlc });
                            }
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
                out.index.push(IndexOp::Forgotten(peer, chan));
                out.events.push(Event::ChannelClosed(chan));
            }
        })
    }

    /// The peer opens an unfunded channel (if it is connected).
    fn open_unfunded(&self, peer: PeerId, chan: ChanId) {
        self.with_section(peer, |ps, out| {
            if ps.connected {
                ps.channels.insert(chan, ChannelModel::default());
                out.index.push(IndexOp::Created(peer, chan));
            }
        })
    }

    /// The peer disconnects: its unfunded channels are forgotten.
    fn disconnect(&self, peer: PeerId) {
        self.with_section(peer, |ps, out| {
            ps.connected = false;
            for chan in std::mem::take(&mut ps.channels).into_keys() {
                out.index.push(IndexOp::Forgotten(peer, chan));
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
        let ps = lock_peer(&self.peers[peer]);
        ps.channels
            .get(&chan)
            .or_else(|| ps.closed.get(&chan))
            .cloned()
            .expect("the channel existed")
    }

    fn events(&self) -> Vec<Event> {
        lock_leaf(&self.events).clone()
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
/// drainer runs and A's channel is force-closed: the preimage reaches A's
/// HTLC exactly once, in the live channel or in the closed record (and then
/// with the event that says to claim it on chain).
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
    let fulfilled = store.channel(A, CA).incoming[&0] == InState::Fulfilled;
    assert!(fulfilled, "the preimage never reached A's HTLC");
    // A's sections are ordered by A's lock, and so are their events: the
    // claim-on-chain event exists exactly when the fulfill met the record.
    let events = store.events();
    let close = events.iter().position(|e| *e == Event::ChannelClosed(CA));
    let on_chain: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| **e == Event::OnChainResolutionRequired { chan: CA, htlc: 0 })
        .map(|(i, _)| i)
        .collect();
    assert!(on_chain.len() <= 1, "reported twice");
    if let Some(&i) = on_chain.first() {
        assert!(close.is_some_and(|c| c < i), "reported before the close");
    }
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

const C: PeerId = 2;

/// (e) Issue 11, point 10: C's `open_channel` races C's disconnection.
/// Whatever the interleaving, the snapshots end naming exactly C's
/// channels: none (the disconnection forgets what an open made before it,
/// and a disconnected peer opens nothing).
fn open_vs_disconnect() {
    let store = Arc::new(Store::new(3, &[]));
    let threads = vec![
        {
            let s = store.clone();
            thread::spawn(move || s.open_unfunded(C, 30))
        },
        {
            let s = store.clone();
            thread::spawn(move || s.disconnect(C))
        },
    ];
    for t in threads {
        t.join().unwrap();
    }
    let channels: Vec<ChanId> = lock_peer(&store.peers[C])
        .channels
        .keys()
        .copied()
        .collect();
    let snapshots: Vec<ChanId> = lock_leaf(&store.snapshots)
        .iter()
        .filter(|(p, _)| *p == C)
        .map(|(_, c)| *c)
        .collect();
    assert_eq!(snapshots, channels, "a ghost snapshot");
}

#[test]
fn e_open_racing_disconnect_leaves_no_ghost() {
    check(open_vs_disconnect);
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
