//! Concurrent stress test of the store's hot path, with end-of-run invariants
//! and a deadlock watchdog; plus lookups racing a channel close.
//!
//! # `hub_forwards_under_load`
//!
//! One hub store and [`PEERS`] peer stores, each peer with two channels to
//! the hub (one opened by the peer, one by the hub), all opened through the
//! real BOLT 2 flow with real signatures. [`WORKERS`] worker threads each own
//! a slice of the peers and drive them: they start payments from their peers
//! to *any* peer (so most forwards cross from one worker's peers, and one
//! forward-queue shard, to another's), deliver their peers' messages to the
//! hub, receive the hub's messages for their peers, claim or fail what their
//! peers receive, and all call `hub.process_pending_forwards()` at once.
//! Reader threads call `list_channels`, `channel_details` and
//! `counterparty_of` on the hub throughout.
//!
//! Delivery keeps BOLT 2's per-connection order: a peer's messages to the
//! hub are delivered by the one worker that owns the peer, in order; the
//! hub's outbox is drained by whichever worker gets the routing lock first,
//! which forwards each message to its peer owner's FIFO inbox *before*
//! releasing the lock, so no later drain can overtake it.
//!
//! After the run every store is drained until quiet, then the test checks:
//! each payment ended exactly once at its sender (and the way its receiver
//! decided), was received at most once, the hub's fees equal the senders'
//! fees, every channel conserves value (and both ends agree on it), every
//! node's balance moved by exactly what it paid and was paid, the hub's
//! indexes match its primary map, and nothing is left in any queue or outbox.
//!
//! A watchdog aborts the run if no message is delivered for
//! [`STALL_LIMIT`]: a deadlock or a lost work item fails CI with a dump
//! instead of hanging it.
//!
//! # `lookups_race_close`
//!
//! Readers call `counterparty_of`, `channel_details` and `send_payment` on
//! a channel while another thread closes it (force or cooperative): no
//! panic, every answer is the live channel or nothing, and nothing at all
//! once the close has returned.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::PublicKey;
use chanstore::{
    ChannelId, ChannelStore, Event, FailureCode, Message, PaymentHash, PaymentPreimage, Route,
    RouteHop, ShortChannelId, StoreError,
};
use common::*;
use crossbeam::channel::{Receiver, RecvTimeoutError, Sender};

/// Peers of the hub, two channels each.
const PEERS: usize = 64;
/// Threads that drive payments (each owns `PEERS / WORKERS` peers).
const WORKERS: usize = 4;
/// Threads that only read the hub.
const READERS: usize = 2;
/// Payments each worker keeps in flight at most.
const MAX_IN_FLIGHT_PER_WORKER: usize = 24;
/// No delivered message for this long fails the run.
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// Capacity of every channel, and what its opener pushes to the other side.
const FUNDING_SAT: u64 = 2_000_000;
const PUSH_MSAT: u64 = 1_000_000_000;

/// Payments in the run: sized for debug CI on two cores (about a minute)
/// and for a release run of similar length. `STRESS_PAYMENTS` overrides.
fn payment_count() -> usize {
    if let Some(n) = std::env::var("STRESS_PAYMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if cfg!(debug_assertions) {
        3_000
    } else {
        20_000
    }
}

/// A tiny deterministic generator (splitmix64): runs are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Peer {
    store: ChannelStore,
    /// The two channels with the hub: (id, scid).
    channels: [(ChannelId, ShortChannelId); 2],
}

struct Net {
    hub: ChannelStore,
    peers: Vec<Peer>,
    /// Peer index by node id.
    index: HashMap<PublicKey, usize>,
}

impl Net {
    fn build() -> Net {
        let hub = node(200);
        let mut peers = Vec::with_capacity(PEERS);
        for i in 0..PEERS {
            let store = node(i as u8 + 1);
            connect_all(&[&hub, &store]);
            let a = open_channel(&store, &hub, FUNDING_SAT, PUSH_MSAT);
            let b = open_channel(&hub, &store, FUNDING_SAT, PUSH_MSAT);
            peers.push(Peer {
                store,
                channels: [a, b],
            });
        }
        let index = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.store.node_id(), i))
            .collect();
        events(&hub);
        Net { hub, peers, index }
    }

    fn owner(&self, peer: usize) -> usize {
        peer % WORKERS
    }

    /// Sum of a peer's balances on its channels with the hub.
    fn peer_balance(&self, p: usize) -> u64 {
        let peer = &self.peers[p];
        peer.channels
            .iter()
            .map(|(id, _)| peer.store.channel_details(id).unwrap().balance_msat)
            .sum()
    }

    fn hub_balance(&self) -> u64 {
        self.hub
            .list_channels()
            .iter()
            .map(|d| d.balance_msat)
            .sum()
    }
}

/// One payment of the run and everything seen about it.
struct Payment {
    sender: usize,
    receiver: usize,
    amount_msat: u64,
    fee_msat: u64,
    preimage: PaymentPreimage,
    /// The receiver fails it on purpose.
    refuse: bool,
    /// Routed over a short channel id the hub does not know.
    bogus: bool,
    received: u32,
    claimed: bool,
    failed_back: bool,
    sent: u32,
    failed: Vec<FailureCode>,
    fee_paid_msat: u64,
}

/// State shared by every thread of the run.
///
/// Orderings: the flags and the counters the exit condition reads
/// (`started`, `ended`, `workers_done_starting`) are SeqCst; the others are
/// Relaxed, as statistics or a heartbeat that publish no other memory.
#[derive(Default)]
struct Run {
    /// Messages delivered, in either direction: the watchdog's heartbeat.
    progress: AtomicU64,
    /// Stop now (a thread panicked, or the watchdog fired).
    abort: AtomicBool,
    /// The workers are done; readers stop.
    finished: AtomicBool,
    /// The watchdog fired.
    stalled: AtomicBool,
    payments: Mutex<HashMap<PaymentHash, Payment>>,
    started: AtomicUsize,
    ended: AtomicUsize,
    refused_at_send: AtomicUsize,
    workers_done_starting: AtomicUsize,
    /// Held while draining the hub's outbox *and* handing the messages to
    /// the workers' inboxes, so drains never overtake each other.
    routing: Mutex<()>,
    /// From the hub's `HtlcForwarded` events.
    fees_earned_msat: AtomicU64,
    forwarded: AtomicU64,
    /// Hub events that must not happen in this run.
    unexpected_hub_events: Mutex<Vec<Event>>,
    /// `update_add_htlc`s into and out of the hub.
    htlcs_in: AtomicU64,
    htlcs_out: AtomicU64,
    /// `process_pending_forwards` calls on the hub that applied something.
    hub_drains: AtomicU64,
    /// Threads inside `hub.process_pending_forwards()` now, and the most seen
    /// at once (shows the drains really overlapped).
    hub_drainers: AtomicUsize,
    max_hub_drainers: AtomicUsize,
    reads: AtomicU64,
}

/// Sets `abort` if the thread unwinds, so the others stop instead of waiting
/// for a partner that is gone.
struct AbortOnPanic<'a>(&'a AtomicBool);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

fn deliver(to: &ChannelStore, from: &PublicKey, msg: Message, what: &str) {
    let name = msg.name();
    to.handle_message(from, msg)
        .unwrap_or_else(|e| panic!("{what} refused {name}: {e}"));
}

/// Drains the hub's outbox and events. Messages go to `sink` in order.
fn route_hub(net: &Net, run: &Run, mut sink: impl FnMut(usize, Message)) -> usize {
    let msgs = net.hub.get_and_clear_pending_msg_events();
    let n = msgs.len();
    for (to, msg) in msgs {
        if matches!(msg, Message::UpdateAddHtlc(_)) {
            run.htlcs_out.fetch_add(1, Ordering::Relaxed);
        }
        let p = *net.index.get(&to).expect("hub message for a known peer");
        sink(p, msg);
    }
    for event in net.hub.get_and_clear_pending_events() {
        match event {
            Event::HtlcForwarded {
                fee_earned_msat, ..
            } => {
                run.fees_earned_msat
                    .fetch_add(fee_earned_msat, Ordering::Relaxed);
                run.forwarded.fetch_add(1, Ordering::Relaxed);
            }
            other => run.unexpected_hub_events.lock().unwrap().push(other),
        }
    }
    n
}

/// A peer's events: receive (claim or refuse) and sender outcomes. Returns
/// how many of this peer's payments ended.
fn peer_events(net: &Net, run: &Run, p: usize) -> usize {
    let store = &net.peers[p].store;
    let mut ended = 0;
    for event in store.get_and_clear_pending_events() {
        match event {
            Event::PaymentReceived {
                payment_hash,
                amount_msat,
                ..
            } => {
                let (refuse, preimage) = {
                    let mut payments = run.payments.lock().unwrap();
                    let pay = payments
                        .get_mut(&payment_hash)
                        .expect("received a payment the test sent");
                    assert_eq!(pay.receiver, p, "payment received by the wrong peer");
                    assert_eq!(pay.amount_msat, amount_msat, "received amount");
                    pay.received += 1;
                    if pay.refuse {
                        pay.failed_back = true;
                    } else {
                        pay.claimed = true;
                    }
                    (pay.refuse, pay.preimage)
                };
                if refuse {
                    store.fail_htlc_backwards(&payment_hash).unwrap();
                } else {
                    store.claim_funds(preimage).unwrap();
                }
            }
            Event::PaymentSent {
                payment_hash,
                fee_paid_msat,
                payment_preimage,
            } => {
                let mut payments = run.payments.lock().unwrap();
                let pay = payments.get_mut(&payment_hash).expect("known payment");
                assert_eq!(pay.sender, p, "PaymentSent at the wrong peer");
                assert!(payment_preimage.matches(&payment_hash));
                if pay.sent == 0 && pay.failed.is_empty() {
                    ended += 1;
                }
                pay.sent += 1;
                pay.fee_paid_msat += fee_paid_msat;
            }
            Event::PaymentFailed {
                payment_hash,
                failure,
                ..
            } => {
                let mut payments = run.payments.lock().unwrap();
                let pay = payments.get_mut(&payment_hash).expect("known payment");
                assert_eq!(pay.sender, p, "PaymentFailed at the wrong peer");
                if pay.sent == 0 && pay.failed.is_empty() {
                    ended += 1;
                }
                pay.failed.push(failure);
            }
            other => panic!("peer {p}: unexpected event {other:?}"),
        }
    }
    if ended > 0 {
        run.ended.fetch_add(ended, Ordering::SeqCst);
    }
    ended
}

/// Processes a peer's own queue and delivers its messages to the hub.
fn peer_to_hub(net: &Net, run: &Run, p: usize) -> usize {
    let peer = &net.peers[p].store;
    peer.process_pending_forwards();
    let msgs = peer.get_and_clear_pending_msg_events();
    let n = msgs.len();
    for (to, msg) in msgs {
        assert_eq!(to, net.hub.node_id(), "peers only talk to the hub");
        if matches!(msg, Message::UpdateAddHtlc(_)) {
            run.htlcs_in.fetch_add(1, Ordering::Relaxed);
        }
        deliver(&net.hub, &peer.node_id(), msg, "hub");
        run.progress.fetch_add(1, Ordering::Relaxed);
    }
    n
}

/// Starts payment number `n` of worker `w` from one of its peers. Returns
/// whether it started (the sender may refuse it, e.g. no balance left).
fn start_payment(net: &Net, run: &Run, rng: &mut Rng, w: usize, n: usize) -> bool {
    let mine = PEERS / WORKERS;
    let sender = rng.below(mine) * WORKERS + w;
    let receiver = (sender + 1 + rng.below(PEERS - 1)) % PEERS;
    let amount_msat = [5_000, 50_000, 400_000, 3_000_000][rng.below(4)];
    let fee_msat = net.hub.config().forwarding_fee_msat(amount_msat);
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(w as u64).to_be_bytes());
    seed[8..16].copy_from_slice(&(n as u64).to_be_bytes());
    let preimage = PaymentPreimage(seed);
    let hash = preimage.payment_hash();
    let bogus = n % 23 == 7;
    let refuse = !bogus && n % 5 == 3;
    let out = net.peers[sender].channels[rng.below(2)].1;
    let last = if bogus {
        ShortChannelId::new(9_999_999, 1, 1).unwrap()
    } else {
        net.peers[receiver].channels[rng.below(2)].1
    };
    let route = Route {
        hops: vec![
            RouteHop {
                node_id: net.hub.node_id(),
                short_channel_id: out,
                fee_msat,
                cltv_expiry_delta: u32::from(net.hub.config().cltv_expiry_delta),
            },
            RouteHop {
                node_id: net.peers[receiver].store.node_id(),
                short_channel_id: last,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            },
        ],
    };
    run.payments.lock().unwrap().insert(
        hash,
        Payment {
            sender,
            receiver,
            amount_msat,
            fee_msat,
            preimage,
            refuse,
            bogus,
            received: 0,
            claimed: false,
            failed_back: false,
            sent: 0,
            failed: Vec::new(),
            fee_paid_msat: 0,
        },
    );
    match net.peers[sender]
        .store
        .pay_invoice(&route, hash, amount_msat)
    {
        Ok(()) => {
            run.started.fetch_add(1, Ordering::SeqCst);
            true
        }
        Err(
            StoreError::AmountExceedsBalance { .. }
            | StoreError::ReserveViolated { .. }
            | StoreError::TooManyHtlcs { .. },
        ) => {
            run.payments.lock().unwrap().remove(&hash);
            run.refused_at_send.fetch_add(1, Ordering::Relaxed);
            false
        }
        Err(e) => panic!("send_payment refused: {e}"),
    }
}

fn worker(
    net: &Net,
    run: &Run,
    w: usize,
    quota: usize,
    inboxes: &[Sender<(usize, Message)>],
    inbox: &Receiver<(usize, Message)>,
) {
    let _guard = AbortOnPanic(&run.abort);
    let mine: Vec<usize> = (0..PEERS).filter(|p| net.owner(*p) == w).collect();
    let mut rng = Rng(0x5eed ^ w as u64);
    let hub_id = net.hub.node_id();
    let (mut next, mut in_flight, mut done_starting) = (0, 0, false);
    let handle = |p: usize, msg: Message| {
        deliver(&net.peers[p].store, &hub_id, msg, "peer");
        run.progress.fetch_add(1, Ordering::Relaxed);
    };
    while !run.abort.load(Ordering::SeqCst) {
        let mut busy = 0;
        if let Ok(_routing) = run.routing.try_lock() {
            busy += route_hub(net, run, |p, msg| {
                inboxes[net.owner(p)].send((p, msg)).expect("inbox open");
            });
        }
        while let Ok((p, msg)) = inbox.try_recv() {
            handle(p, msg);
            busy += 1;
        }
        for &p in &mine {
            let ended = peer_events(net, run, p);
            in_flight -= ended.min(in_flight);
            busy += ended + peer_to_hub(net, run, p);
        }
        let inside = run.hub_drainers.fetch_add(1, Ordering::SeqCst) + 1;
        run.max_hub_drainers.fetch_max(inside, Ordering::SeqCst);
        let applied = net.hub.process_pending_forwards();
        run.hub_drainers.fetch_sub(1, Ordering::SeqCst);
        if applied > 0 {
            run.hub_drains.fetch_add(1, Ordering::Relaxed);
            busy += applied;
        }
        while next < quota && in_flight < MAX_IN_FLIGHT_PER_WORKER {
            if start_payment(net, run, &mut rng, w, next) {
                in_flight += 1;
                busy += 1;
            }
            next += 1;
        }
        if next == quota && !done_starting {
            done_starting = true;
            run.workers_done_starting.fetch_add(1, Ordering::SeqCst);
        }
        if run.workers_done_starting.load(Ordering::SeqCst) == WORKERS
            && run.ended.load(Ordering::SeqCst) == run.started.load(Ordering::SeqCst)
        {
            return;
        }
        if busy == 0 {
            // Nothing to do: wait a little for the hub to send something.
            match inbox.recv_timeout(Duration::from_millis(1)) {
                Ok((p, msg)) => handle(p, msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => unreachable!("the test holds a sender"),
            }
        }
    }
}

fn reader(net: &Net, run: &Run) {
    let _guard = AbortOnPanic(&run.abort);
    let mut rng = Rng(0xbeef);
    let ids: Vec<(ChannelId, PublicKey)> = net
        .peers
        .iter()
        .flat_map(|p| p.channels.iter().map(|(id, _)| (*id, p.store.node_id())))
        .collect();
    while !run.finished.load(Ordering::SeqCst) && !run.abort.load(Ordering::SeqCst) {
        let list = net.hub.list_channels();
        assert_eq!(
            list.len(),
            2 * PEERS,
            "no channel opens or closes in the run"
        );
        for d in &list {
            assert_eq!(
                d.balance_msat + d.inbound_capacity_msat + d.in_flight_msat,
                d.channel_value_sat * 1000,
                "snapshot of {} does not add up",
                d.channel_id
            );
        }
        let (id, peer) = ids[rng.below(ids.len())];
        assert_eq!(net.hub.counterparty_of(&id), Some(peer));
        let d = net.hub.channel_details(&id).expect("open channel");
        assert_eq!(d.counterparty_node_id, peer);
        run.reads.fetch_add(1, Ordering::Relaxed);
        thread::sleep(Duration::from_micros(500));
    }
}

/// Calls `on_stall` if `progress` does not move for `limit`; returns when
/// `stop` gets a message or is disconnected. Returns whether it fired.
fn watchdog(
    progress: &AtomicU64,
    stop: &Receiver<()>,
    limit: Duration,
    on_stall: impl FnOnce(Duration),
) -> bool {
    let tick = (limit / 10).min(Duration::from_millis(500));
    let mut last = progress.load(Ordering::Relaxed);
    let mut since = Instant::now();
    loop {
        match stop.recv_timeout(tick) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return false,
        }
        let now = progress.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= limit {
            on_stall(since.elapsed());
            return true;
        }
    }
}

/// What the watchdog prints: only things that take no peer lock, so it
/// cannot itself hang on a deadlocked store.
fn dump(net: &Net, run: &Run) {
    eprintln!(
        "started {} ended {} delivered {} hub queue {}",
        run.started.load(Ordering::SeqCst),
        run.ended.load(Ordering::SeqCst),
        run.progress.load(Ordering::SeqCst),
        net.hub.pending_forwards(),
    );
    for d in net.hub.list_channels() {
        if d.pending_htlcs > 0 {
            eprintln!(
                "hub channel {} with {}: {} htlcs in flight, state {}",
                d.channel_id,
                short(&d.counterparty_node_id),
                d.pending_htlcs,
                d.state
            );
        }
    }
    if let Ok(payments) = run.payments.try_lock() {
        for (hash, p) in payments.iter() {
            if p.sent == 0 && p.failed.is_empty() {
                eprintln!(
                    "unfinished {hash}: {} -> {} received={} claimed={} failed_back={}",
                    p.sender, p.receiver, p.received, p.claimed, p.failed_back
                );
            }
        }
    }
}

/// Delivers everything left, single-threaded, until nothing moves.
fn drain_until_quiet(net: &Net, run: &Run, inboxes: &[Receiver<(usize, Message)>]) {
    let hub_id = net.hub.node_id();
    // Messages the workers had not taken yet are older than anything still
    // in the hub's outbox: deliver them first.
    for inbox in inboxes {
        while let Ok((p, msg)) = inbox.try_recv() {
            deliver(&net.peers[p].store, &hub_id, msg, "peer");
        }
    }
    loop {
        let mut moved = route_hub(net, run, |p, msg| {
            deliver(&net.peers[p].store, &hub_id, msg, "peer")
        });
        for p in 0..PEERS {
            moved += peer_events(net, run, p) + peer_to_hub(net, run, p);
        }
        moved += net.hub.process_pending_forwards();
        if moved == 0 {
            return;
        }
    }
}

#[test]
fn hub_forwards_under_load() {
    let setup = Instant::now();
    let net = Net::build();
    let setup = setup.elapsed();
    let hub_start = net.hub_balance();
    let peer_start: Vec<u64> = (0..PEERS).map(|p| net.peer_balance(p)).collect();
    let total = payment_count();
    let run = Run::default();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..WORKERS)
        .map(|_| crossbeam::channel::unbounded())
        .unzip();
    let (stop_tx, stop_rx) = crossbeam::channel::bounded::<()>(1);
    let started = Instant::now();
    thread::scope(|s| {
        let (net, run, senders) = (&net, &run, &senders);
        let stop_rx = &stop_rx;
        s.spawn(move || {
            watchdog(&run.progress, stop_rx, STALL_LIMIT, |idle| {
                run.stalled.store(true, Ordering::SeqCst);
                run.abort.store(true, Ordering::SeqCst);
                eprintln!("WATCHDOG: no message delivered for {idle:?}: deadlock or lost work");
                // Dump from a helper thread: if the store is deadlocked the
                // dump may hang too, and the abort below must still happen.
                let (done_tx, done_rx) = crossbeam::channel::bounded::<()>(1);
                thread::scope(|d| {
                    d.spawn(move || {
                        dump(net, run);
                        let _ = done_tx.send(());
                    });
                    let _ = done_rx.recv_timeout(Duration::from_secs(5));
                    // The workers stop on `abort` unless they are stuck in
                    // the store; then nothing but an abort ends the test.
                    if stop_rx.recv_timeout(Duration::from_secs(10)).is_err() {
                        eprintln!("WATCHDOG: workers did not stop: aborting");
                        std::process::abort();
                    }
                });
            });
        });
        let workers: Vec<_> = receivers
            .iter()
            .enumerate()
            .map(|(w, inbox)| {
                let quota = total / WORKERS + usize::from(w < total % WORKERS);
                s.spawn(move || worker(net, run, w, quota, senders, inbox))
            })
            .collect();
        let readers: Vec<_> = (0..READERS).map(|_| s.spawn(|| reader(net, run))).collect();
        let mut panicked = false;
        for h in workers {
            panicked |= h.join().is_err();
        }
        run.finished.store(true, Ordering::SeqCst);
        for h in readers {
            panicked |= h.join().is_err();
        }
        let _ = stop_tx.send(());
        assert!(!panicked, "a worker or reader panicked (see above)");
    });
    let elapsed = started.elapsed();
    assert!(
        !run.stalled.load(Ordering::SeqCst),
        "watchdog: no progress for {STALL_LIMIT:?} (see the dump above)"
    );
    drain_until_quiet(&net, &run, &receivers);

    // Quiet: nothing queued anywhere.
    assert_eq!(net.hub.pending_forwards(), 0, "hub forward queue");
    assert!(net.hub.get_and_clear_pending_msg_events().is_empty());
    assert!(net.hub.get_and_clear_pending_events().is_empty());
    for (p, peer) in net.peers.iter().enumerate() {
        assert_eq!(peer.store.pending_forwards(), 0, "peer {p} queue");
        assert!(peer.store.get_and_clear_pending_msg_events().is_empty());
        assert!(peer.store.get_and_clear_pending_events().is_empty());
    }
    let unexpected = run.unexpected_hub_events.lock().unwrap();
    assert!(unexpected.is_empty(), "hub events: {unexpected:?}");

    // Every payment ended exactly once, the way its receiver decided.
    let payments = run.payments.into_inner().unwrap();
    assert_eq!(payments.len(), run.started.load(Ordering::SeqCst));
    let (mut fees_paid, mut sent, mut failed) = (0, 0, 0);
    let mut failures: HashMap<FailureCode, usize> = HashMap::new();
    let mut delta: Vec<i128> = vec![0; PEERS];
    for (hash, p) in &payments {
        assert_eq!(
            p.sent as usize + p.failed.len(),
            1,
            "{hash}: {} PaymentSent, {:?} PaymentFailed",
            p.sent,
            p.failed
        );
        assert!(p.received <= 1, "{hash} received {} times", p.received);
        if p.sent == 1 {
            assert!(
                p.claimed && !p.refuse && !p.bogus,
                "{hash} sent but not claimed"
            );
            assert_eq!(p.fee_paid_msat, p.fee_msat, "{hash}: fee paid");
            fees_paid += p.fee_paid_msat;
            sent += 1;
            delta[p.sender] -= i128::from(p.amount_msat + p.fee_msat);
            delta[p.receiver] += i128::from(p.amount_msat);
        } else {
            assert!(!p.claimed, "{hash} claimed but failed at the sender");
            if p.bogus {
                assert_eq!(p.failed, [FailureCode::UnknownNextPeer], "{hash}");
                assert_eq!(p.received, 0);
            }
            if p.failed_back {
                assert_eq!(p.failed, [FailureCode::IncorrectOrUnknownPaymentDetails]);
            }
            *failures.entry(p.failed[0]).or_default() += 1;
            failed += 1;
        }
    }
    assert_eq!(
        run.forwarded.load(Ordering::SeqCst),
        sent,
        "HtlcForwarded count"
    );
    assert_eq!(
        run.fees_earned_msat.load(Ordering::SeqCst),
        fees_paid,
        "hub fees earned vs fees paid by senders"
    );

    // Value: per channel, across both ends, and per node.
    net.hub.check_value_conserved().unwrap();
    net.hub.check_indexes().unwrap();
    for (p, peer) in net.peers.iter().enumerate() {
        peer.store.check_value_conserved().unwrap();
        peer.store.check_indexes().unwrap();
        for (id, _) in &peer.channels {
            let ours = peer.store.channel_details(id).unwrap();
            let hubs = net.hub.channel_details(id).unwrap();
            assert_eq!((ours.pending_htlcs, hubs.pending_htlcs), (0, 0), "{id}");
            assert_eq!(ours.in_flight_msat + hubs.in_flight_msat, 0);
            assert_eq!(
                ours.balance_msat + hubs.balance_msat,
                FUNDING_SAT * 1000,
                "peer {p} channel {id}: the two ends disagree"
            );
        }
        let moved = i128::from(net.peer_balance(p)) - i128::from(peer_start[p]);
        assert_eq!(moved, delta[p], "peer {p}: balance moved by");
    }
    assert_eq!(
        i128::from(net.hub_balance()) - i128::from(hub_start),
        i128::from(fees_paid),
        "hub balance moved by its fees"
    );
    assert!(sent > 0 && failed > 0, "both paths exercised");

    let (htlcs_in, htlcs_out) = (
        run.htlcs_in.load(Ordering::SeqCst),
        run.htlcs_out.load(Ordering::SeqCst),
    );
    eprintln!(
        "stress ({}): {} payments started ({} refused at send), {} sent, {} failed; \
         hub moved {} HTLCs ({} in, {} out), {} messages; {:.1?} (setup {:.1?}); \
         {} hub drains applied work, up to {} at once; {} reads; failures {:?}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        payments.len(),
        run.refused_at_send.load(Ordering::SeqCst),
        sent,
        failed,
        htlcs_in + htlcs_out,
        htlcs_in,
        htlcs_out,
        run.progress.load(Ordering::SeqCst),
        elapsed,
        setup,
        run.hub_drains.load(Ordering::SeqCst),
        run.max_hub_drainers.load(Ordering::SeqCst),
        run.reads.load(Ordering::SeqCst),
        failures,
    );
}

/// The watchdog fires on a stall, and not while progress is made.
#[test]
fn watchdog_fires_only_on_stall() {
    let progress = AtomicU64::new(0);
    let (stop_tx, stop_rx) = crossbeam::channel::bounded::<()>(1);
    let fired = AtomicBool::new(false);
    thread::scope(|s| {
        let h = s.spawn(|| {
            watchdog(&progress, &stop_rx, Duration::from_secs(1), |_| {
                fired.store(true, Ordering::SeqCst)
            })
        });
        // Steady progress for 2.5x the limit: no alarm (a beat every 10 ms
        // leaves a wide margin for a loaded machine).
        for _ in 0..250 {
            progress.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(10));
        }
        assert!(!fired.load(Ordering::SeqCst));
        // Then nothing: it fires, and returns.
        assert!(h.join().unwrap());
    });
    assert!(fired.load(Ordering::SeqCst));
    // And it stops when told, without firing.
    let (stop_tx2, stop_rx2) = crossbeam::channel::bounded::<()>(1);
    thread::scope(|s| {
        let h = s.spawn(|| watchdog(&progress, &stop_rx2, Duration::from_secs(60), |_| {}));
        stop_tx2.send(()).unwrap();
        assert!(!h.join().unwrap());
    });
    drop(stop_tx);
}

/// The stress run's path once, synchronously: peer 0 pays peer 1 through the
/// hub, and the payment arrives at peer 1, not at the hub. A broken forward
/// fails here in milliseconds instead of as a watchdog stall.
#[test]
fn one_forward_through_the_hub() {
    let (hub, a, b) = (node(200), node(1), node(2));
    connect_all(&[&hub, &a]);
    connect_all(&[&hub, &b]);
    let (_, into_hub) = open_channel(&a, &hub, FUNDING_SAT, PUSH_MSAT);
    let (_, out_of_hub) = open_channel(&hub, &b, FUNDING_SAT, PUSH_MSAT);
    let preimage = PaymentPreimage([3; 32]);
    let hash = preimage.payment_hash();
    let amount_msat = 50_000;
    let fee_msat = hub.config().forwarding_fee_msat(amount_msat);
    let route = Route {
        hops: vec![
            RouteHop {
                node_id: hub.node_id(),
                short_channel_id: into_hub,
                fee_msat,
                cltv_expiry_delta: u32::from(hub.config().cltv_expiry_delta),
            },
            RouteHop {
                node_id: b.node_id(),
                short_channel_id: out_of_hub,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            },
        ],
    };
    a.pay_invoice(&route, hash, amount_msat).unwrap();
    deliver_all(&[&a, &hub, &b]);
    assert_eq!(events(&hub), [], "the hub forwards, it is not paid");
    assert_eq!(
        events(&b),
        [Event::PaymentReceived {
            payment_hash: hash,
            amount_msat,
            payment_preimage: None,
        }]
    );
    b.claim_funds(preimage).unwrap();
    deliver_all(&[&a, &hub, &b]);
    assert!(matches!(
        events(&hub)[..],
        [Event::HtlcForwarded { fee_earned_msat, .. }] if fee_earned_msat == fee_msat
    ));
    assert!(events(&a).contains(&Event::PaymentSent {
        payment_hash: hash,
        payment_preimage: preimage,
        fee_paid_msat: fee_msat
    }));
}

/// Readers look a channel up, and try to pay over it, while another thread
/// closes it: by force (one call) or cooperatively (`shutdown` and
/// `closing_signed` exchanged with the peer while HTLCs the readers added
/// are failed back). Every answer is the live channel or nothing; once the
/// close has returned (the force close call, or both sides' `ChannelClosed`),
/// every answer is nothing.
#[test]
fn lookups_race_close() {
    const ROUNDS: u8 = 12;
    const READER_THREADS: usize = 3;
    /// Lookups each reader makes after it saw the close done.
    const AFTER_CLOSE: usize = 50;
    for round in 0..ROUNDS {
        let cooperative = round % 2 == 1;
        let (a, b) = (node(10 + 2 * round), node(11 + 2 * round));
        connect_all(&[&a, &b]);
        let (id, scid) = open_channel(&a, &b, 1_000_000, 400_000_000);
        let route = Route {
            hops: vec![RouteHop {
                node_id: b.node_id(),
                short_channel_id: scid,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            }],
        };
        let closed = AtomicBool::new(false);
        let lookups = AtomicUsize::new(0);
        let barrier = std::sync::Barrier::new(READER_THREADS + 1);
        thread::scope(|s| {
            for r in 0..READER_THREADS {
                let (a, b, route, closed, lookups, barrier) =
                    (&a, &b, &route, &closed, &lookups, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut after = 0;
                    for n in 0u32.. {
                        // Read the flag first: if the close had returned by
                        // then, every lookup below starts after it.
                        let was_closed = closed.load(Ordering::SeqCst);
                        if let Some(peer) = a.counterparty_of(&id) {
                            assert!(!was_closed, "round {round}: stale peer after close");
                            assert_eq!(peer, b.node_id());
                        }
                        if let Some(d) = a.channel_details(&id) {
                            assert!(!was_closed, "round {round}: details after close");
                            assert_eq!((d.channel_id, d.counterparty_node_id), (id, b.node_id()));
                        }
                        if cooperative {
                            if let Some(peer) = b.counterparty_of(&id) {
                                assert!(!was_closed, "round {round}: stale peer at b");
                                assert_eq!(peer, a.node_id());
                            }
                        }
                        let mut seed = [round; 32];
                        seed[..4].copy_from_slice(&n.to_be_bytes());
                        seed[4] = r as u8;
                        let hash = PaymentPreimage(seed).payment_hash();
                        match a.pay_invoice(route, hash, 10_000) {
                            Ok(()) => assert!(!was_closed, "round {round}: paid after close"),
                            Err(
                                StoreError::UnknownShortChannelId { .. }
                                | StoreError::UnknownChannel { .. },
                            ) => {}
                            Err(e) => {
                                assert!(!was_closed, "round {round}: {e} after close");
                                assert!(
                                    matches!(
                                        e,
                                        StoreError::WrongState { .. }
                                            | StoreError::TooManyHtlcs { .. }
                                    ),
                                    "round {round}: {e}"
                                );
                            }
                        }
                        lookups.fetch_add(1, Ordering::Relaxed);
                        if was_closed {
                            after += 1;
                            if after == AFTER_CLOSE {
                                break;
                            }
                        }
                    }
                });
            }
            barrier.wait();
            // Let the readers get going; vary the race point by round.
            while lookups.load(Ordering::Relaxed) < 5 * usize::from(round) {
                thread::yield_now();
            }
            if cooperative {
                a.close_channel(&id).unwrap();
                let (mut a_closed, mut b_closed) = (false, false);
                for _ in 0..1_000 {
                    deliver_all(&[&a, &b]);
                    for e in events(&b) {
                        match e {
                            Event::PaymentReceived { payment_hash, .. } => {
                                b.fail_htlc_backwards(&payment_hash).unwrap()
                            }
                            Event::ChannelClosed { channel_id, .. } => b_closed |= channel_id == id,
                            _ => {}
                        }
                    }
                    a_closed |= events(&a).iter().any(
                        |e| matches!(e, Event::ChannelClosed { channel_id, .. } if *channel_id == id),
                    );
                    if a_closed && b_closed {
                        break;
                    }
                }
                assert!(
                    a_closed && b_closed,
                    "round {round}: cooperative close did not finish"
                );
            } else {
                a.force_close_channel(&id).unwrap();
            }
            closed.store(true, Ordering::SeqCst);
        });
        assert!(a.list_channels().iter().all(|d| d.channel_id != id));
        assert_eq!(a.counterparty_of(&id), None);
        a.check_indexes().unwrap();
        b.check_indexes().unwrap();
        a.check_value_conserved().unwrap();
        b.check_value_conserved().unwrap();
        if cooperative {
            assert!(b.list_channels().iter().all(|d| d.channel_id != id));
        }
    }
}
