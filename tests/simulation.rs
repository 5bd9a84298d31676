//! Issue 11: a seeded simulation of a small network. A hub and three
//! edges, every store durable; at each step a random thing happens, among
//! what BOLT allows a network to do: a payment between two edges through
//! the hub, one message delivered on one connection (each connection keeps
//! its order; connections interleave freely), forwards processed, a
//! connection dropped and made again (what was in flight on it is lost), a
//! node crashed at a batch boundary and restarted from what it wrote, a
//! channel closed cooperatively or by force, blocks passing, receivers
//! claiming or failing what they received.
//!
//! Then the network settles: everyone reconnects, messages run to quiet,
//! closed channels are settled as the chain would (`common/chain.rs`). The
//! checks: every payment that started ended exactly once at its sender;
//! its receiver claimed it if and only if the sender has `PaymentSent`;
//! the hub never paid an edge what it was not paid for; value is conserved
//! and nothing is left in flight or unsettled.
//!
//! A fixed set of seeds runs in CI; `CHANSTORE_SIM_SEEDS=N` runs N more
//! (from `CHANSTORE_SIM_FIRST`, default 1000). A failing seed prints the
//! one line that replays it.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use bitcoin::secp256k1::{PublicKey, SecretKey};
use chanstore::{
    ChannelId, ChannelStore, Event, HtlcDirection, MemoryPersister, Message, PaymentHash,
    PaymentPreimage, Persister, Route, RouteHop, ShortChannelId, StoreConfig, StoreError,
};
use common::chain::Chain;
use common::*;

const EDGES: usize = 3;
const STEPS: usize = 400;

/// xorshift64*: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn secret(i: usize) -> SecretKey {
    SecretKey::from_slice(&[i as u8 + 40; 32]).unwrap()
}

struct Node {
    store: ChannelStore,
    disk: Arc<MemoryPersister>,
    /// Crashed: waiting to be restarted.
    down: bool,
}

impl Node {
    fn open(i: usize, disk: Arc<MemoryPersister>, height: u32) -> ChannelStore {
        ChannelStore::with_persister(
            StoreConfig::default(),
            secret(i),
            height,
            disk as Arc<dyn Persister>,
        )
        .unwrap()
    }
}

struct Payment {
    from: usize,
    to: usize,
    preimage: PaymentPreimage,
    /// The receiver claims it (else it fails it).
    claim: bool,
}

struct Sim {
    rng: Rng,
    nodes: Vec<Node>,
    /// Messages sent and not yet delivered, per directed connection.
    wires: BTreeMap<(usize, usize), VecDeque<Message>>,
    /// Connections currently up (edge index; the hub is node 0).
    up: BTreeSet<usize>,
    channels: Vec<(ChannelId, ShortChannelId)>,
    payments: Vec<Payment>,
    /// Payments whose send_payment succeeded.
    started: BTreeSet<usize>,
    /// Payments the receiver claimed.
    claimed: BTreeSet<usize>,
    /// Steps taken.
    steps: usize,
    /// How failed payments failed.
    failures: BTreeMap<String, usize>,
    height: u32,
    chain: Chain,
    log: Vec<String>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut nodes: Vec<Node> = (0..=EDGES)
            .map(|i| {
                let disk = Arc::new(MemoryPersister::new());
                Node {
                    store: Node::open(i, disk.clone(), HEIGHT),
                    disk,
                    down: false,
                }
            })
            .collect();
        let mut channels = Vec::new();
        {
            let stores: Vec<&ChannelStore> = nodes.iter().map(|n| &n.store).collect();
            connect_all(&stores);
            for e in 1..=EDGES {
                channels.push(open_channel(stores[e], stores[0], 2_000_000, 1_000_000_000));
            }
        }
        for n in &mut nodes {
            n.store.get_and_clear_pending_events();
        }
        Sim {
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            nodes,
            wires: BTreeMap::new(),
            up: (1..=EDGES).collect(),
            channels,
            payments: Vec::new(),
            started: BTreeSet::new(),
            claimed: BTreeSet::new(),
            steps: 0,
            failures: BTreeMap::new(),
            height: HEIGHT,
            chain: Chain::default(),
            log: Vec::new(),
        }
    }

    fn id(&self, i: usize) -> PublicKey {
        self.nodes[i].store.node_id()
    }

    fn index(&self, pk: &PublicKey) -> usize {
        self.nodes
            .iter()
            .position(|n| n.store.node_id() == *pk)
            .unwrap()
    }

    /// The edge index of a connection between `a` and `b` (one is the hub).
    fn edge(a: usize, b: usize) -> usize {
        a.max(b)
    }

    /// Moves each node's outbox onto its wires (lost if the wire is down).
    fn collect(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].down {
                continue;
            }
            for (to, m) in self.nodes[i].store.get_and_clear_pending_msg_events() {
                let j = self.index(&to);
                if self.up.contains(&Self::edge(i, j)) && !self.nodes[j].down {
                    self.wires.entry((i, j)).or_default().push_back(m);
                }
            }
        }
    }

    /// Delivers the first message of the wire `(from, to)`.
    fn deliver(&mut self, from: usize, to: usize) {
        let Some(m) = self.wires.get_mut(&(from, to)).and_then(|w| w.pop_front()) else {
            return;
        };
        let name = m.name();
        let wire = Message::decode(&m.encode()).unwrap();
        let sender = self.id(from);
        match self.nodes[to].store.handle_message(&sender, wire) {
            Ok(()) => {}
            // Crossed the receiver's close: its `error` is on the way (a
            // `channel_update` names the closed channel by short channel id).
            Err(StoreError::UnknownChannel { .. } | StoreError::UnknownShortChannelId { .. }) => {}
            Err(e) => panic!("node {to} refused {name} from {from}: {e}"),
        }
    }

    fn disconnect(&mut self, edge: usize) {
        if !self.up.remove(&edge) {
            return;
        }
        self.wires.remove(&(0, edge));
        self.wires.remove(&(edge, 0));
        let (h, e) = (self.id(0), self.id(edge));
        if !self.nodes[0].down {
            self.nodes[0].store.peer_disconnected(&e);
        }
        if !self.nodes[edge].down {
            self.nodes[edge].store.peer_disconnected(&h);
        }
    }

    fn connect(&mut self, edge: usize) {
        if self.nodes[0].down || self.nodes[edge].down || !self.up.insert(edge) {
            return;
        }
        let (h, e) = (self.id(0), self.id(edge));
        self.nodes[0].store.peer_connected(e);
        self.nodes[edge].store.peer_connected(h);
    }

    fn crash(&mut self, i: usize) {
        for edge in 1..=EDGES {
            if i == 0 || i == edge {
                self.disconnect(edge);
            }
        }
        self.nodes[i].down = true;
    }

    fn restart(&mut self, i: usize) {
        let disk = self.nodes[i].disk.clone();
        self.nodes[i].store = Node::open(i, disk, self.height);
        self.nodes[i].down = false;
        for edge in 1..=EDGES {
            if i == 0 || i == edge {
                self.connect(edge);
            }
        }
    }

    fn pay(&mut self, from: usize, to: usize) {
        let n = self.payments.len();
        let amount = 1_000_000 + self.rng.below(20) * 100_000;
        let mut bytes = [0x5a; 32];
        bytes[..8].copy_from_slice(&(n as u64).to_be_bytes());
        let preimage = PaymentPreimage(bytes);
        let claim = self.rng.below(5) != 0;
        self.payments.push(Payment {
            from,
            to,
            preimage,
            claim,
        });
        let fee = StoreConfig::default().forwarding_fee_msat(amount);
        let route = Route {
            hops: vec![
                RouteHop {
                    node_id: self.id(0),
                    short_channel_id: self.channels[from - 1].1,
                    fee_msat: fee,
                    cltv_expiry_delta: StoreConfig::default().cltv_expiry_delta.into(),
                },
                RouteHop {
                    node_id: self.id(to),
                    short_channel_id: self.channels[to - 1].1,
                    fee_msat: 0,
                    cltv_expiry_delta: 0,
                },
            ],
        };
        let store = &self.nodes[from].store;
        if !self.nodes[from].down
            && store
                .pay_invoice(&route, preimage.payment_hash(), amount)
                .is_ok()
        {
            self.started.insert(n);
        }
    }

    /// Receivers claim or fail what they can.
    fn receivers_act(&mut self) {
        for (n, p) in self.payments.iter().enumerate() {
            let node = &self.nodes[p.to];
            if node.down || self.claimed.contains(&n) {
                continue;
            }
            if p.claim {
                if node.store.claim_funds(p.preimage).is_ok() {
                    self.claimed.insert(n);
                }
            } else {
                let _ = node.store.fail_htlc_backwards(&p.preimage.payment_hash());
            }
        }
    }

    fn step(&mut self) {
        self.collect();
        let roll = self.rng.below(200);
        // Closes only in the last quarter: before, payments should flow.
        self.steps += 1;
        let late = self.steps > STEPS * 3 / 4;
        let action = match roll {
            0..=19 => {
                let from = 1 + self.rng.below(EDGES as u64) as usize;
                let to = 1 + (from + self.rng.below(EDGES as u64 - 1) as usize) % EDGES;
                self.pay(from, to);
                format!("pay {from}->{to}")
            }
            20..=139 => {
                // One message on one wire, in order.
                let wires: Vec<(usize, usize)> = self
                    .wires
                    .iter()
                    .filter(|(_, q)| !q.is_empty())
                    .map(|(k, _)| *k)
                    .collect();
                if wires.is_empty() {
                    return;
                }
                let (from, to) = wires[self.rng.below(wires.len() as u64) as usize];
                self.deliver(from, to);
                format!("deliver {from}->{to}")
            }
            140..=159 => {
                let i = self.rng.below(self.nodes.len() as u64) as usize;
                if !self.nodes[i].down {
                    self.nodes[i].store.process_pending_forwards();
                }
                format!("forwards {i}")
            }
            160..=169 => {
                self.receivers_act();
                "receivers".into()
            }
            170..=175 => {
                let edge = 1 + self.rng.below(EDGES as u64) as usize;
                if self.up.contains(&edge) {
                    self.disconnect(edge);
                } else {
                    self.connect(edge);
                }
                format!("toggle {edge}")
            }
            176..=179 => {
                let i = self.rng.below(self.nodes.len() as u64) as usize;
                if self.nodes[i].down {
                    self.restart(i);
                    format!("restart {i}")
                } else {
                    self.crash(i);
                    format!("crash {i}")
                }
            }
            180..=186 if late => {
                let c = self.rng.below(EDGES as u64) as usize;
                let by_hub = self.rng.below(2) == 0;
                let i = if by_hub { 0 } else { c + 1 };
                let force = self.rng.below(3) == 0;
                let id = self.channels[c].0;
                if !self.nodes[i].down {
                    let store = &self.nodes[i].store;
                    let _ = if force {
                        store.force_close_channel(&id)
                    } else {
                        store.close_channel(&id)
                    };
                }
                format!("{} {c} by {i}", if force { "force_close" } else { "close" })
            }
            187..=187 => {
                self.height += 1 + self.rng.below(2) as u32;
                for n in &self.nodes {
                    if !n.down {
                        n.store.best_block_updated(self.height);
                    }
                }
                format!("height {}", self.height)
            }
            _ => {
                for i in 0..self.nodes.len() {
                    if !self.nodes[i].down {
                        self.nodes[i].store.process_pending_forwards();
                    }
                }
                "forwards all".into()
            }
        };
        self.log.push(action);
    }

    /// Everyone up and connected; messages and forwards to quiet; the chain
    /// settles what closed.
    fn settle(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].down {
                self.restart(i);
            }
        }
        for edge in 1..=EDGES {
            self.connect(edge);
        }
        for round in 0..30 {
            for _ in 0..500 {
                self.collect();
                let mut moved = false;
                let wires: Vec<(usize, usize)> = self.wires.keys().copied().collect();
                for (from, to) in wires {
                    while self.wires.get(&(from, to)).is_some_and(|q| !q.is_empty()) {
                        self.deliver(from, to);
                        moved = true;
                    }
                }
                for n in &self.nodes {
                    moved |= n.store.process_pending_forwards() > 0;
                }
                self.receivers_act();
                self.collect();
                if !moved && self.wires.values().all(VecDeque::is_empty) {
                    break;
                }
            }
            let stores: Vec<Option<&ChannelStore>> =
                self.nodes.iter().map(|n| Some(&n.store)).collect();
            let final_round = round >= 5;
            if !self.chain.settle(&stores, final_round) && final_round {
                return;
            }
        }
        panic!("the network never settled");
    }

    fn check(&mut self) {
        let events: Vec<Vec<Event>> = self
            .nodes
            .iter()
            .map(|n| n.store.get_and_clear_pending_events())
            .collect();
        let by_hash: HashMap<PaymentHash, usize> = self
            .payments
            .iter()
            .enumerate()
            .map(|(n, p)| (p.preimage.payment_hash(), n))
            .collect();
        let mut sent = BTreeSet::new();
        let mut ended: BTreeMap<usize, usize> = BTreeMap::new();
        for (i, evs) in events.iter().enumerate() {
            for e in evs {
                let (hash, ok) = match e {
                    Event::PaymentSent { payment_hash, .. } => (payment_hash, true),
                    Event::PaymentFailed {
                        payment_hash,
                        failure,
                        ..
                    } => {
                        *self.failures.entry(format!("{failure:?}")).or_default() += 1;
                        (payment_hash, false)
                    }
                    _ => continue,
                };
                let n = by_hash[hash];
                assert_eq!(self.payments[n].from, i, "payment {n} ended at its sender");
                *ended.entry(n).or_default() += 1;
                if ok {
                    sent.insert(n);
                }
            }
        }
        for n in &self.started {
            assert_eq!(
                ended.get(n),
                Some(&1),
                "payment {n} ended {:?} times",
                ended.get(n)
            );
        }
        for (n, p) in self.payments.iter().enumerate() {
            if !self.started.contains(&n) {
                assert!(
                    !ended.contains_key(&n),
                    "payment {n} never started but ended"
                );
                continue;
            }
            assert_eq!(
                sent.contains(&n),
                self.claimed.contains(&n),
                "payment {n}: sent and claimed disagree"
            );
            // The hub is paid upstream whenever it paid downstream.
            let hash = p.preimage.payment_hash();
            let up = self.channels[p.from - 1].0;
            let upstream = self
                .chain
                .outcome(0, &up, HtlcDirection::Received, &hash)
                .unwrap_or(sent.contains(&n));
            assert!(
                !self.claimed.contains(&n) || upstream,
                "payment {n}: the hub paid {} but was not paid by {}",
                p.to,
                p.from
            );
        }
        for n in &self.nodes {
            for d in n.store.list_channels() {
                assert_eq!(d.pending_htlcs, 0, "an HTLC was left: {d:?}");
            }
            assert!(
                n.store.closed_channels().is_empty(),
                "a closed channel was left"
            );
            n.store.check_value_conserved().unwrap();
            n.store.check_indexes().unwrap();
            n.store.check_commitments_fully_paid().unwrap();
        }
    }
}

fn run(seed: u64) {
    let mut sim = Sim::new(seed);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..STEPS {
            sim.step();
        }
        sim.settle();
        sim.check();
    }));
    let count = |prefix: &str| sim.log.iter().filter(|l| l.starts_with(prefix)).count();
    eprintln!(
        "seed {seed}: {} payments started, {} claimed, failures {:?}; {} deliveries, {} crashes, {} closes, {} on-chain reports",
        sim.started.len(),
        sim.claimed.len(),
        sim.failures,
        count("deliver"),
        count("crash"),
        count("close") + count("force_close"),
        sim.chain.reports.len()
    );
    if let Err(e) = result {
        let tail: Vec<&String> = sim.log.iter().rev().take(12).collect();
        eprintln!(
            "simulation failed; replay with: CHANSTORE_SIM_FIRST={seed} CHANSTORE_SIM_SEEDS=1 cargo test --test simulation -- --nocapture\nlast steps (newest first): {tail:?}"
        );
        std::panic::resume_unwind(e);
    }
}

#[test]
fn fixed_seeds() {
    for seed in 1..=8 {
        run(seed);
    }
}

/// `CHANSTORE_SIM_SEEDS=N` seeds from `CHANSTORE_SIM_FIRST` (default 1000).
#[test]
fn more_seeds_from_the_environment() {
    let n: u64 = std::env::var("CHANSTORE_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let first: u64 = std::env::var("CHANSTORE_SIM_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    for seed in first..first + n {
        run(seed);
    }
}
