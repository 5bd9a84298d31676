//! A hub and its peers, driven by worker threads: the harness behind the
//! `forwarding` and `reads_under_load` benches, `examples/simulate.rs` and
//! the concurrent test in `tests/baselines.rs` (they include this file with
//! `#[path]`, so it uses nothing but the crate's public API and its
//! dependencies).
//!
//! **Shape.** One hub store (the store under test, of any design `C`) and
//! `peers` counterparty stores (always the default design; they are not
//! measured), each with `channels_per_peer` channels to the hub, opened
//! through the real BOLT 2 flow with real signatures. A payment goes from
//! one peer through the hub to another: two hops, one forward at the hub.
//!
//! **Ownership.** Each worker thread owns a disjoint set of peers: it alone
//! delivers their messages (peer → hub with `hub.handle_message`, hub → peer
//! from `hub.get_and_clear_pending_msg_events_for(its peers)`), runs their
//! stores (their signing, their claims), and starts their payments. So the
//! messages of one peer are handled by one thread, in order, both ways.
//!
//! **Hub time.** Every call into the hub (`handle_message`,
//! `process_pending_forwards`, `get_and_clear_pending_msg_events_for`) is
//! timed by the worker that makes it and summed per worker
//! ([`WorkerStats::hub_time`]); the counterparties' work between those calls
//! is not. Lock waits inside the hub count: they are the hub's cost.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{OutPoint, Txid};
use chanstore::{
    ChannelId, ChannelStore, Container, Event, PaymentHash, PaymentPreimage, Persister, Route,
    RouteHop, ShortChannelId, StoreConfig,
};
use crossbeam::channel::{unbounded, Receiver, Sender};
use dashmap::DashMap;
use hdrhistogram::Histogram;

/// Block height of every store.
pub const HEIGHT: u32 = 800_000;

/// How to build a [`Net`].
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Counterparty nodes.
    pub peers: usize,
    /// Channels between each peer and the hub.
    pub channels_per_peer: usize,
    /// Capacity of each channel; the peer opens it and pushes half to the hub.
    pub funding_sat: u64,
    /// The hub's configuration (`verify_signatures` on by default).
    pub hub_config: StoreConfig,
    /// Whether the counterparties check the hub's signatures. They always
    /// sign for real; checking is their cost, not the hub's, so the benches
    /// turn it off to spend the machine's time on the hub.
    pub peers_verify: bool,
    /// Threads that open the channels.
    pub setup_threads: usize,
    /// Where the hub persists its state, if anywhere (the durable bench).
    pub hub_persister: Option<Arc<dyn Persister>>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            peers: 64,
            channels_per_peer: 1,
            funding_sat: 16_000_000,
            hub_config: StoreConfig::default(),
            peers_verify: false,
            setup_threads: thread::available_parallelism().map_or(2, |n| n.get()),
            hub_persister: None,
        }
    }
}

/// A peer's channels with the hub: `(channel id, short channel id)`.
pub type PeerChannels = Vec<(ChannelId, ShortChannelId)>;

/// A counterparty node and its channels with the hub.
pub struct Peer {
    pub id: PublicKey,
    pub store: ChannelStore,
    /// Its channels with the hub.
    pub channels: PeerChannels,
}

/// The hub and its peers.
pub struct Net<C: Container> {
    pub hub: ChannelStore<C>,
    pub peers: Vec<Peer>,
    /// Peer index by node id.
    pub index: HashMap<PublicKey, usize>,
    /// Preimages of payments in flight, for the receivers to claim.
    pub preimages: DashMap<PaymentHash, PaymentPreimage>,
    /// Source of unique payment preimages.
    next_payment: AtomicU64,
}

fn secret(label: &[u8], n: u64) -> SecretKey {
    let mut data = label.to_vec();
    data.extend_from_slice(&n.to_be_bytes());
    // A sha256 is a valid secret key with overwhelming probability.
    SecretKey::from_slice(&sha256::Hash::hash(&data).to_byte_array()).expect("valid key")
}

impl<C: Container> Net<C> {
    /// Builds the hub and its peers and opens every channel, from
    /// `config.setup_threads` threads (each owns a slice of the peers, as the
    /// workers do later). `on_ready` is called with the number of channels
    /// that just became usable.
    pub fn build(config: &NetConfig, on_ready: &(dyn Fn(usize) + Sync)) -> Self {
        let hub = match &config.hub_persister {
            None => ChannelStore::<C>::with_container(
                config.hub_config.clone(),
                secret(b"hub", 0),
                HEIGHT,
            ),
            Some(p) => ChannelStore::<C>::with_container_and_persister(
                config.hub_config.clone(),
                secret(b"hub", 0),
                HEIGHT,
                p.clone(),
            ),
        }
        .expect("hub config");
        let peer_config = StoreConfig {
            verify_signatures: config.peers_verify,
            ..StoreConfig::default()
        };
        let peers: Vec<Peer> = (0..config.peers)
            .map(|i| {
                let store =
                    ChannelStore::new(peer_config.clone(), secret(b"peer", i as u64), HEIGHT)
                        .expect("peer config");
                Peer {
                    id: store.node_id(),
                    store,
                    channels: Vec::new(),
                }
            })
            .collect();
        let index = peers.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        let mut net = Net {
            hub,
            peers,
            index,
            preimages: DashMap::new(),
            next_payment: AtomicU64::new(0),
        };
        let threads = config.setup_threads.clamp(1, config.peers.max(1));
        let channels: Vec<Vec<(usize, PeerChannels)>> = thread::scope(|s| {
            let net = &net;
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let owned: Vec<usize> = (t..config.peers).step_by(threads).collect();
                    s.spawn(move || {
                        owned
                            .chunks(16)
                            .flat_map(|chunk| {
                                let opened = net.open_channels(config, chunk);
                                on_ready(chunk.len() * config.channels_per_peer);
                                opened
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("setup thread"))
                .collect()
        });
        for (i, chans) in channels.into_iter().flatten() {
            net.peers[i].channels = chans;
        }
        net.hub.get_and_clear_pending_events();
        net
    }

    /// Opens `channels_per_peer` channels from each of `owned` to the hub.
    fn open_channels(&self, config: &NetConfig, owned: &[usize]) -> Vec<(usize, PeerChannels)> {
        let hub_id = self.hub.node_id();
        for &i in owned {
            let p = &self.peers[i];
            self.hub.peer_connected(p.id);
            p.store.peer_connected(hub_id);
        }
        self.settle(owned); // the inits
        for &i in owned {
            let p = &self.peers[i];
            for _ in 0..config.channels_per_peer {
                p.store
                    .create_channel(hub_id, config.funding_sat, config.funding_sat * 500)
                    .expect("create_channel");
            }
        }
        self.settle(owned);
        let mut opened = Vec::new();
        for &i in owned {
            let p = &self.peers[i];
            let mut chans = Vec::new();
            for event in p.store.get_and_clear_pending_events() {
                if let Event::FundingGenerationReady {
                    temporary_channel_id,
                    ..
                } = event
                {
                    let k = chans.len() as u32;
                    let mut txid = [0u8; 32];
                    txid[0] = b'n';
                    txid[1..5].copy_from_slice(&(i as u32).to_be_bytes());
                    txid[5..9].copy_from_slice(&k.to_be_bytes());
                    let outpoint = OutPoint::new(Txid::from_byte_array(txid), 0);
                    let id = p
                        .store
                        .funding_transaction_generated(&temporary_channel_id, &hub_id, outpoint)
                        .expect("funding");
                    let scid = ShortChannelId::new(1 + i as u32, k, 0).expect("scid");
                    chans.push((id, scid));
                }
            }
            assert_eq!(
                chans.len(),
                config.channels_per_peer,
                "every channel accepted"
            );
            opened.push((i, chans));
        }
        self.settle(owned);
        for (i, chans) in &opened {
            for (id, scid) in chans {
                self.peers[*i]
                    .store
                    .funding_confirmed(id, *scid)
                    .expect("confirm");
                self.hub.funding_confirmed(id, *scid).expect("confirm");
            }
        }
        self.settle(owned);
        for &i in owned {
            self.peers[i].store.get_and_clear_pending_events();
        }
        opened
    }

    /// Delivers messages (and the hub's forwards) between the hub and
    /// `owned` (one thread's peers) until none is left. Nothing is timed.
    fn settle(&self, owned: &[usize]) {
        let ids: Vec<PublicKey> = owned.iter().map(|&i| self.peers[i].id).collect();
        let hub_id = self.hub.node_id();
        loop {
            let mut progress = false;
            for &i in owned {
                let p = &self.peers[i];
                for (_, msg) in p.store.get_and_clear_pending_msg_events() {
                    self.hub.handle_message(&p.id, msg).expect("hub accepts");
                    progress = true;
                }
            }
            if self.hub.process_pending_forwards() > 0 {
                progress = true;
            }
            for (to, msg) in self.hub.get_and_clear_pending_msg_events_for(&ids) {
                self.peers[self.index[&to]]
                    .store
                    .handle_message(&hub_id, msg)
                    .expect("peer accepts");
                progress = true;
            }
            if !progress {
                return;
            }
        }
    }

    /// Every channel of every peer.
    pub fn channel_count(&self) -> usize {
        self.peers.iter().map(|p| p.channels.len()).sum()
    }

    /// A fresh preimage, registered for its receiver to claim.
    fn new_preimage(&self) -> PaymentPreimage {
        // Relaxed: a unique-id counter; no memory is published through it.
        let n = self.next_payment.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0x5a; 32];
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        let preimage = PaymentPreimage(bytes);
        self.preimages.insert(preimage.payment_hash(), preimage);
        preimage
    }

    /// The route from peer `from`'s channel `cf` through the hub to peer
    /// `to`'s channel `ct`.
    pub fn route(&self, from: usize, cf: usize, to: usize, ct: usize, amount_msat: u64) -> Route {
        let cfg = self.hub.config();
        Route {
            hops: vec![
                RouteHop {
                    node_id: self.hub.node_id(),
                    short_channel_id: self.peers[from].channels[cf].1,
                    fee_msat: cfg.forwarding_fee_msat(amount_msat),
                    cltv_expiry_delta: u32::from(cfg.cltv_expiry_delta),
                },
                RouteHop {
                    node_id: self.peers[to].id,
                    short_channel_id: self.peers[to].channels[ct].1,
                    fee_msat: 0,
                    cltv_expiry_delta: 0,
                },
            ],
        }
    }

    /// Delivers everything left from one thread (all peers), until quiet.
    /// For the end of a run, with the workers stopped.
    pub fn settle_all(&self) {
        let all: Vec<usize> = (0..self.peers.len()).collect();
        self.settle(&all);
    }
}

/// A small xorshift64* generator: the harness must not depend on `rand`'s
/// versions, and its choices need not be cryptographic.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is negligible here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn in_range(&mut self, r: &RangeInclusive<u64>) -> u64 {
        r.start() + self.next_u64() % (r.end() - r.start() + 1)
    }
}

/// What one run asks of the workers.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Payments to send in all (split evenly between workers); `None`: send
    /// until [`Pool::run`]'s `on_tick` says stop.
    pub payments: Option<u64>,
    /// Payments in flight at once, in all (split between workers), so the
    /// load offered to the hub does not grow with the thread count.
    pub in_flight: usize,
    /// Amount of each payment (the recipient's), in millisatoshi. Above the
    /// dust limit plus the HTLC transaction fee (about 521 sat at the
    /// default feerate), so every HTLC is in the commitment and has its own
    /// signatures, as real payments do.
    pub amount_msat: RangeInclusive<u64>,
    /// Record each payment's latency (send to `PaymentSent`).
    pub latencies: bool,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            payments: None,
            in_flight: 64,
            amount_msat: 1_000_000..=5_000_000,
            latencies: false,
        }
    }
}

/// What one worker did in one run.
#[derive(Debug)]
pub struct WorkerStats {
    pub worker: usize,
    /// Time spent inside hub calls.
    pub hub_time: Duration,
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// `PaymentSent`/`PaymentFailed` for a payment this worker never sent.
    pub unexpected_ends: u64,
    /// How many times each payment this worker sent ended (`PaymentSent` or
    /// `PaymentFailed` at its sender): must be exactly once each.
    pub ends: HashMap<PaymentHash, u32>,
    /// Send-to-`PaymentSent` latency in microseconds (if asked for), 1 µs to
    /// an hour, 3 significant digits.
    pub latency_us: Histogram<u64>,
}

impl WorkerStats {
    fn new(worker: usize) -> Self {
        WorkerStats {
            worker,
            hub_time: Duration::ZERO,
            sent: 0,
            succeeded: 0,
            failed: 0,
            unexpected_ends: 0,
            ends: HashMap::new(),
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram"),
        }
    }
}

/// State shared by the workers of one run. Counters are SeqCst: they are
/// read to decide when the run ends (see `Worker::run`), and their cost is
/// nothing next to a signature.
pub struct RunCtx {
    /// Set by the main thread: send no new payments.
    pub stop_sending: AtomicBool,
    /// Payments that ended (at their sender), all workers.
    pub completed: AtomicU64,
    /// Payments sent and not yet ended.
    in_flight: AtomicU64,
    /// Workers still sending new payments.
    senders: AtomicUsize,
    /// Whether any worker made progress in the current drain round.
    progress: AtomicBool,
    barrier: Barrier,
}

enum Cmd {
    Run(RunSpec),
    Stop,
}

/// Worker threads (and optionally one `list_channels` reader) over a
/// [`Net`], spawned once and reused for every run.
pub struct Pool<C: Container> {
    pub net: Arc<Net<C>>,
    threads: usize,
    cmds: Vec<Sender<Cmd>>,
    results: Receiver<WorkerStats>,
    handles: Vec<JoinHandle<()>>,
    ctx: Arc<RunCtx>,
    reader: Option<Reader>,
}

struct Reader {
    go: Sender<bool>,
    reads: Receiver<u64>,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// What one run did.
#[derive(Debug)]
pub struct RunResult {
    pub workers: Vec<WorkerStats>,
    /// `list_channels` calls by the reader thread, if there is one.
    pub reads: u64,
    /// Wall-clock time of the run, from the start signal to quiet.
    pub wall: Duration,
    /// `HtlcForwarded` events at the hub (one per forward fulfilled).
    pub forwarded: u64,
}

impl RunResult {
    /// The run's hub time: the largest per-worker sum of hub-call time.
    pub fn hub_time(&self) -> Duration {
        self.workers
            .iter()
            .map(|w| w.hub_time)
            .max()
            .unwrap_or_default()
    }

    pub fn succeeded(&self) -> u64 {
        self.workers.iter().map(|w| w.succeeded).sum()
    }

    pub fn failed(&self) -> u64 {
        self.workers.iter().map(|w| w.failed).sum()
    }

    pub fn sent(&self) -> u64 {
        self.workers.iter().map(|w| w.sent).sum()
    }

    pub fn unexpected_ends(&self) -> u64 {
        self.workers.iter().map(|w| w.unexpected_ends).sum()
    }

    /// Payments that did not end exactly once, as `(hash, times)`.
    pub fn not_ended_once(&self) -> Vec<(PaymentHash, u32)> {
        self.workers
            .iter()
            .flat_map(|w| w.ends.iter())
            .filter(|(_, n)| **n != 1)
            .map(|(h, n)| (*h, *n))
            .collect()
    }

    pub fn latency_us(&self) -> Histogram<u64> {
        let mut all = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram");
        for w in &self.workers {
            all.add(&w.latency_us).expect("same precision");
        }
        all
    }
}

impl<C: Container> Pool<C> {
    /// `threads` workers, peer `i` owned by worker `i % threads`; with
    /// `reader: Some(pause)`, one more thread calls `hub.list_channels()` in
    /// a loop during each run, sleeping `pause` between calls (zero: a tight
    /// loop).
    pub fn new(net: Arc<Net<C>>, threads: usize, reader: Option<Duration>) -> Self {
        let threads = threads.clamp(1, net.peers.len().max(1));
        let ctx = Arc::new(RunCtx {
            stop_sending: AtomicBool::new(false),
            completed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            senders: AtomicUsize::new(0),
            progress: AtomicBool::new(false),
            barrier: Barrier::new(threads),
        });
        let (result_tx, results) = unbounded();
        let mut cmds = Vec::new();
        let mut handles = Vec::new();
        for w in 0..threads {
            let (tx, rx) = unbounded::<Cmd>();
            cmds.push(tx);
            let owned: Vec<usize> = (w..net.peers.len()).step_by(threads).collect();
            let mut worker = Worker {
                owned_ids: owned.iter().map(|&i| net.peers[i].id).collect(),
                owned,
                net: net.clone(),
                ctx: ctx.clone(),
                index: w,
                threads,
                rng: Rng::new(0xC0FFEE + w as u64),
                sent_at: HashMap::new(),
            };
            let result_tx = result_tx.clone();
            handles.push(
                thread::Builder::new()
                    .name(format!("worker-{w}"))
                    .spawn(move || {
                        while let Ok(Cmd::Run(spec)) = rx.recv() {
                            let stats = worker.run(&spec);
                            if result_tx.send(stats).is_err() {
                                return;
                            }
                        }
                    })
                    .expect("spawn worker"),
            );
        }
        let reader = reader.map(|pause| {
            let (go, go_rx) = unbounded::<bool>();
            let (reads_tx, reads) = unbounded();
            let stop = Arc::new(AtomicBool::new(false));
            let (net, stop2) = (net.clone(), stop.clone());
            let handle = thread::Builder::new()
                .name("reader".into())
                .spawn(move || {
                    while let Ok(true) = go_rx.recv() {
                        let mut n = 0u64;
                        // SeqCst: a stop flag polled in a loop.
                        while !stop2.load(Ordering::SeqCst) {
                            std::hint::black_box(net.hub.list_channels());
                            n += 1;
                            if !pause.is_zero() {
                                thread::sleep(pause);
                            }
                        }
                        if reads_tx.send(n).is_err() {
                            return;
                        }
                    }
                })
                .expect("spawn reader");
            Reader {
                go,
                reads,
                stop,
                handle,
            }
        });
        Pool {
            net,
            threads,
            cmds,
            results,
            handles,
            ctx,
            reader,
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `spec` and waits until every payment ended and nothing is left
    /// to deliver. `on_tick` is called about every 50 ms with the run's
    /// shared state; returning `true` stops new payments (the only way a
    /// run with `payments: None` ends).
    pub fn run(&self, spec: &RunSpec, mut on_tick: impl FnMut(&RunCtx) -> bool) -> RunResult {
        let ctx = &self.ctx;
        // SeqCst throughout: run set-up, before any worker is woken.
        ctx.stop_sending.store(false, Ordering::SeqCst);
        ctx.completed.store(0, Ordering::SeqCst);
        ctx.in_flight.store(0, Ordering::SeqCst);
        ctx.senders.store(self.threads, Ordering::SeqCst);
        ctx.progress.store(false, Ordering::SeqCst);
        let start = Instant::now();
        if let Some(r) = &self.reader {
            r.stop.store(false, Ordering::SeqCst);
            r.go.send(true).expect("reader alive");
        }
        for tx in &self.cmds {
            tx.send(Cmd::Run(spec.clone())).expect("worker alive");
        }
        let mut workers = Vec::with_capacity(self.threads);
        while workers.len() < self.threads {
            match self.results.recv_timeout(Duration::from_millis(50)) {
                Ok(stats) => workers.push(stats),
                Err(crossbeam::channel::RecvTimeoutError::Timeout) => {
                    if on_tick(ctx) {
                        ctx.stop_sending.store(true, Ordering::SeqCst);
                    }
                }
                Err(e) => panic!("a worker died: {e}"),
            }
        }
        let wall = start.elapsed();
        let reads = match &self.reader {
            Some(r) => {
                r.stop.store(true, Ordering::SeqCst);
                r.reads.recv().expect("reader alive")
            }
            None => 0,
        };
        workers.sort_by_key(|w| w.worker);
        let forwarded = self
            .net
            .hub
            .get_and_clear_pending_events()
            .iter()
            .filter(|e| matches!(e, Event::HtlcForwarded { .. }))
            .count() as u64;
        RunResult {
            workers,
            reads,
            wall,
            forwarded,
        }
    }
}

impl<C: Container> Drop for Pool<C> {
    fn drop(&mut self) {
        for tx in &self.cmds {
            let _ = tx.send(Cmd::Stop);
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.go.send(false);
            let _ = r.handle.join();
        }
    }
}

struct Worker<C: Container> {
    net: Arc<Net<C>>,
    ctx: Arc<RunCtx>,
    index: usize,
    threads: usize,
    owned: Vec<usize>,
    owned_ids: Vec<PublicKey>,
    rng: Rng,
    sent_at: HashMap<PaymentHash, Instant>,
}

/// Times `f` into `acc`.
#[inline]
fn timed<R>(acc: &mut Duration, f: impl FnOnce() -> R) -> R {
    let t = Instant::now();
    let r = f();
    *acc += t.elapsed();
    r
}

impl<C: Container> Worker<C> {
    /// One run: send this worker's share of payments (keeping its share of
    /// the in-flight window full), deliver until every payment of every
    /// worker ended, then deliver in rounds until no worker has anything left.
    fn run(&mut self, spec: &RunSpec) -> WorkerStats {
        let mut stats = WorkerStats::new(self.index);
        let share = |total: u64| {
            let t = self.threads as u64;
            total / t + u64::from((self.index as u64) < total % t)
        };
        let quota = spec.payments.map(share);
        let window = (spec.in_flight / self.threads
            + usize::from(self.index < spec.in_flight % self.threads))
        .max(1) as u64;
        let ctx = self.ctx.clone();
        let mut sending = true;
        let mut mine_in_flight = 0u64;
        loop {
            if sending {
                let quota_left = quota.is_none_or(|q| stats.sent < q);
                // SeqCst: see `RunCtx`; pairs with the main thread's store.
                if !quota_left || ctx.stop_sending.load(Ordering::SeqCst) {
                    sending = false;
                    // SeqCst: our last `in_flight` increment comes before
                    // this, so whoever sees `senders == 0` and then
                    // `in_flight == 0` knows every payment has ended.
                    ctx.senders.fetch_sub(1, Ordering::SeqCst);
                } else {
                    while mine_in_flight < window && quota.is_none_or(|q| stats.sent < q) {
                        self.send_one(spec, &mut stats);
                        mine_in_flight += 1;
                    }
                }
            }
            let before = stats.succeeded + stats.failed;
            let progress = self.pump(&mut stats, spec.latencies);
            let ended = stats.succeeded + stats.failed - before;
            mine_in_flight -= ended;
            if ended > 0 {
                // SeqCst: see `RunCtx` and the exit test below.
                ctx.in_flight.fetch_sub(ended, Ordering::SeqCst);
                ctx.completed.fetch_add(ended, Ordering::SeqCst);
            }
            if !sending
                && ctx.senders.load(Ordering::SeqCst) == 0
                && ctx.in_flight.load(Ordering::SeqCst) == 0
            {
                break;
            }
            if !progress {
                thread::yield_now();
            }
        }
        // Every payment ended; the last revocations may still be on their
        // way. Deliver in rounds until a round where no worker moved anything.
        loop {
            // SeqCst (here and below): set before the barrier, read after it
            // by every worker; the barrier orders them, SeqCst keeps it plain.
            while self.pump(&mut stats, spec.latencies) {
                ctx.progress.store(true, Ordering::SeqCst);
            }
            ctx.barrier.wait();
            let any = ctx.progress.load(Ordering::SeqCst);
            ctx.barrier.wait();
            if self.index == 0 {
                ctx.progress.store(false, Ordering::SeqCst);
            }
            ctx.barrier.wait();
            if !any {
                break;
            }
        }
        stats
    }

    fn send_one(&mut self, spec: &RunSpec, stats: &mut WorkerStats) {
        let net = &*self.net;
        let from = self.owned[self.rng.below(self.owned.len())];
        let mut to = self.rng.below(net.peers.len() - 1);
        if to >= from {
            to += 1;
        }
        let cf = self.rng.below(net.peers[from].channels.len());
        let ct = self.rng.below(net.peers[to].channels.len());
        let amount = self.rng.in_range(&spec.amount_msat);
        let route = net.route(from, cf, to, ct, amount);
        let preimage = net.new_preimage();
        let hash = preimage.payment_hash();
        // SeqCst: counted before it can end (see `run`).
        self.ctx.in_flight.fetch_add(1, Ordering::SeqCst);
        if spec.latencies {
            self.sent_at.insert(hash, Instant::now());
        }
        stats.ends.insert(hash, 0);
        stats.sent += 1;
        // The recipient's invoice: its secret, made statelessly from its key.
        let secret = net.peers[to]
            .store
            .create_inbound_payment_for_hash(hash, None, 3600)
            .expect("an invoice");
        let invoice = chanstore::RecipientOnionFields::secret_only(secret);
        net.peers[from]
            .store
            .send_payment(&route, hash, amount, invoice)
            .unwrap_or_else(|e| panic!("peer {from} cannot send {amount} msat: {e}"));
    }

    /// Moves everything this worker can move once; says whether it moved anything.
    fn pump(&mut self, stats: &mut WorkerStats, latencies: bool) -> bool {
        let net = &*self.net;
        let hub = &net.hub;
        let hub_id = hub.node_id();
        let mut progress = false;
        // Peers → hub.
        for &i in &self.owned {
            let p = &net.peers[i];
            for (_, msg) in p.store.get_and_clear_pending_msg_events() {
                let name = msg.name();
                timed(&mut stats.hub_time, || hub.handle_message(&p.id, msg)).unwrap_or_else(|e| {
                    panic!("hub ({}) refused {name} from peer {i}: {e}", hub.design())
                });
                progress = true;
            }
        }
        // Forwards and resolutions between the hub's channels.
        if timed(&mut stats.hub_time, || hub.process_pending_forwards()) > 0 {
            progress = true;
        }
        // Hub → peers.
        let out = timed(&mut stats.hub_time, || {
            hub.get_and_clear_pending_msg_events_for(&self.owned_ids)
        });
        for (to, msg) in out {
            let i = net.index[&to];
            let name = msg.name();
            net.peers[i]
                .store
                .handle_message(&hub_id, msg)
                .unwrap_or_else(|e| panic!("peer {i} refused {name} from the hub: {e}"));
            progress = true;
        }
        // The peers' own events: receivers claim, senders learn the end.
        for &i in &self.owned {
            let p = &net.peers[i];
            for event in p.store.get_and_clear_pending_events() {
                match event {
                    Event::PaymentReceived { payment_hash, .. } => {
                        let (_, preimage) = net
                            .preimages
                            .remove(&payment_hash)
                            .expect("a payment we started");
                        p.store.claim_funds(preimage).expect("claim");
                        progress = true;
                    }
                    Event::PaymentSent { payment_hash, .. } => {
                        ended(net, &mut self.sent_at, payment_hash, true, stats, latencies)
                    }
                    Event::PaymentFailed { payment_hash, .. } => ended(
                        net,
                        &mut self.sent_at,
                        payment_hash,
                        false,
                        stats,
                        latencies,
                    ),
                    _ => {}
                }
            }
        }
        progress
    }
}

/// A payment this worker sent ended at its sender.
fn ended<C: Container>(
    net: &Net<C>,
    sent_at: &mut HashMap<PaymentHash, Instant>,
    hash: PaymentHash,
    ok: bool,
    stats: &mut WorkerStats,
    latencies: bool,
) {
    match stats.ends.get_mut(&hash) {
        Some(n) => *n += 1,
        None => stats.unexpected_ends += 1,
    }
    if ok {
        stats.succeeded += 1;
    } else {
        stats.failed += 1;
        // A failed payment is never claimed: forget its preimage.
        net.preimages.remove(&hash);
    }
    if latencies {
        if let Some(t) = sent_at.remove(&hash) {
            let us = t.elapsed().as_micros().max(1) as u64;
            stats.latency_us.saturating_record(us);
        }
    }
}
