//! The crash tests' network, journal and checks, shared by `tests/crash.rs`
//! (SIGKILLs of the whole process, on every backend) and
//! `tests/postgres_failover.rs` (the database's primary killed, or the hub
//! process killed with a standby process waiting for its lease).
//!
//! Node 0 is the hub; nodes 1..=EDGES are edges with one channel each to
//! it. The journal (`journal.log`, one line per fact, flushed before the
//! fact is acted on) is what [`check`] compares the final balances with:
//! `intent <idx> <sender> <receiver> <amount> <fee>` is written before
//! `send_payment`; `started`/`refused <idx>` after it; `sent <idx>` /
//! `failed <idx>` when the sender's event is handled (events are handled at
//! least once, so the same outcome may appear twice, but never two
//! different ones).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{OutPoint, Txid};
use chanstore::{
    ChannelStore, Event, FileOptions, FilePersister, PaymentHash, PaymentPreimage, Persister,
    Route, RouteHop, ShortChannelId, StoreConfig, StoreError,
};

pub const EDGES: usize = 4;
pub const FUNDING_SAT: u64 = 2_000_000;
pub const PUSH_MSAT: u64 = 1_000_000_000;
pub const HEIGHT: u32 = 800_000;

/// Where the nodes keep their state: `CHANSTORE_CRASH_BACKEND` (`file`,
/// `sqlite`, `postgres`) and, for postgres, `CHANSTORE_CRASH_PG` (a
/// connection string without `dbname`; node `i` uses database `node<i>`).
#[derive(Clone, Debug)]
pub enum Backend {
    File,
    Sqlite,
    Postgres(String),
}

impl Backend {
    pub fn from_env() -> Backend {
        match std::env::var("CHANSTORE_CRASH_BACKEND").as_deref() {
            Ok("sqlite") => Backend::Sqlite,
            Ok("postgres") => {
                Backend::Postgres(std::env::var("CHANSTORE_CRASH_PG").expect("CHANSTORE_CRASH_PG"))
            }
            _ => Backend::File,
        }
    }

    /// The environment that makes a child use this backend.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Backend::File => vec![("CHANSTORE_CRASH_BACKEND", "file".into())],
            Backend::Sqlite => vec![("CHANSTORE_CRASH_BACKEND", "sqlite".into())],
            Backend::Postgres(base) => vec![
                ("CHANSTORE_CRASH_BACKEND", "postgres".into()),
                ("CHANSTORE_CRASH_PG", base.clone()),
            ],
        }
    }

    /// Node `i`'s persister. No fsync: SIGKILL leaves the kernel's page
    /// cache intact, so these tests are about ordering and atomicity, not
    /// the disk. A Postgres node waits for the lease of a killed
    /// predecessor (its session ends when the server notices).
    pub fn persister(&self, dir: &Path, i: usize) -> Arc<dyn Persister> {
        match self {
            Backend::File => {
                let options = FileOptions {
                    sync: false,
                    ..FileOptions::default()
                };
                Arc::new(FilePersister::open(dir.join(format!("node{i}")), options).unwrap())
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => {
                let options = chanstore::SqliteOptions {
                    sync: false,
                    ..Default::default()
                };
                Arc::new(
                    chanstore::SqlitePersister::open(dir.join(format!("node{i}.db")), options)
                        .unwrap(),
                )
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(base) => Arc::new(open_postgres(
                &format!("{base} dbname=node{i}"),
                Duration::from_secs(30),
            )),
            #[allow(unreachable_patterns)]
            other => panic!("backend {other:?} is not compiled in"),
        }
    }
}

/// A Postgres persister that waits up to `wait` for the lease.
#[cfg(feature = "postgres")]
pub fn open_postgres(conninfo: &str, wait: Duration) -> chanstore::PostgresPersister {
    let options = chanstore::PostgresOptions {
        takeover: chanstore::Takeover::Wait(wait),
        ..Default::default()
    };
    chanstore::PostgresPersister::open(conninfo, options).unwrap()
}

pub fn secret(i: usize) -> SecretKey {
    SecretKey::from_slice(&[i as u8 + 1; 32]).unwrap()
}

pub fn preimage(idx: u64) -> PaymentPreimage {
    let mut engine = sha256::Hash::engine();
    bitcoin::hashes::HashEngine::input(&mut engine, b"crash test payment");
    bitcoin::hashes::HashEngine::input(&mut engine, &idx.to_be_bytes());
    PaymentPreimage(sha256::Hash::from_engine(engine).to_byte_array())
}

pub fn scid(edge: usize) -> ShortChannelId {
    ShortChannelId::new(100 + edge as u32, 1, 0).unwrap()
}

/// The hub and its edges.
pub struct Net {
    pub nodes: Vec<ChannelStore>,
}

/// Node `i` of the network, on `persister`.
pub fn node(i: usize, persister: Arc<dyn Persister>) -> ChannelStore {
    ChannelStore::with_persister(StoreConfig::default(), secret(i), HEIGHT, persister).unwrap()
}

impl Net {
    /// Opens every node on `backend` (the hub first: a waiting standby
    /// opens nothing else before it has the hub's lease) and connects them.
    pub fn open(dir: &Path, backend: &Backend) -> Net {
        Net::with(|i| backend.persister(dir, i))
    }

    /// Opens node `i` on `persister(i)` and connects the edges to the hub.
    pub fn with(persister: impl Fn(usize) -> Arc<dyn Persister>) -> Net {
        let nodes = (0..=EDGES).map(|i| node(i, persister(i))).collect();
        let net = Net { nodes };
        for e in 1..=EDGES {
            net.connect(e);
        }
        net
    }

    pub fn connect(&self, e: usize) {
        self.nodes[0].peer_connected(self.nodes[e].node_id());
        self.nodes[e].peer_connected(self.nodes[0].node_id());
    }

    /// Replaces the hub (its store failed) with `hub`, and reconnects it to
    /// every edge: the channels exchange `channel_reestablish`.
    pub fn replace_hub(&mut self, hub: ChannelStore) {
        self.nodes[0] = hub;
        for e in 1..=EDGES {
            let hub_id = self.nodes[0].node_id();
            self.nodes[e].peer_disconnected(&hub_id);
            self.connect(e);
        }
    }

    fn index_of(&self, pk: &PublicKey) -> usize {
        self.nodes.iter().position(|n| n.node_id() == *pk).unwrap()
    }

    /// Delivers every pending message once and processes forwards; returns
    /// whether anything moved, or the first refusal (a node whose store
    /// failed refuses everything).
    pub fn pump(&self) -> Result<bool, StoreError> {
        let mut moved = false;
        for (i, n) in self.nodes.iter().enumerate() {
            for (to, msg) in n.get_and_clear_pending_msg_events() {
                let j = self.index_of(&to);
                self.nodes[j].handle_message(&self.nodes[i].node_id(), msg)?;
                moved = true;
            }
            moved |= n.process_pending_forwards() > 0;
        }
        Ok(moved)
    }
}

pub fn journal_append(dir: &Path, line: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("journal.log"))
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// Opens the channels (not interrupted).
pub fn setup(net: &Net, dir: &Path) {
    for e in 1..=EDGES {
        let (hub, edge) = (&net.nodes[0], &net.nodes[e]);
        let temp = edge
            .create_channel(hub.node_id(), FUNDING_SAT, PUSH_MSAT)
            .unwrap();
        while net.pump().unwrap() {}
        edge.get_and_clear_pending_events();
        let mut txid = [0u8; 32];
        txid[0] = e as u8;
        let id = edge
            .funding_transaction_generated(
                &temp,
                &hub.node_id(),
                OutPoint::new(Txid::from_byte_array(txid), 0),
            )
            .unwrap();
        while net.pump().unwrap() {}
        edge.funding_confirmed(&id, scid(e)).unwrap();
        hub.funding_confirmed(&id, scid(e)).unwrap();
        while net.pump().unwrap() {}
    }
    for n in &net.nodes {
        n.get_and_clear_pending_events();
    }
    journal_append(dir, "setup");
}

pub struct Intent {
    pub sender: usize,
    pub receiver: usize,
    pub amount: u64,
    pub fee: u64,
}

pub fn read_journal(dir: &Path) -> (Vec<String>, HashMap<u64, Intent>) {
    let text = std::fs::read_to_string(dir.join("journal.log")).unwrap_or_default();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut intents = HashMap::new();
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        if f[0] == "intent" {
            let n = |i: usize| f[i].parse::<u64>().unwrap();
            intents.insert(
                n(1),
                Intent {
                    sender: n(2) as usize,
                    receiver: n(3) as usize,
                    amount: n(4),
                    fee: n(5),
                },
            );
        }
    }
    (lines, intents)
}

/// Sends payments and moves messages, journaling every fact, until `stop`
/// says so or a node refuses a call (its store failed).
pub struct Payer {
    by_hash: HashMap<PaymentHash, u64>,
    next: u64,
}

impl Payer {
    /// Picks up where the journal in `dir` ends.
    pub fn new(dir: &Path) -> Payer {
        let (_, intents) = read_journal(dir);
        let by_hash = intents
            .keys()
            .map(|idx| (preimage(*idx).payment_hash(), *idx))
            .collect();
        let next = intents.keys().max().map_or(0, |m| m + 1);
        Payer { by_hash, next }
    }

    /// Handles events: receivers claim, senders' outcomes go to the journal.
    pub fn handle_events(&self, net: &Net, dir: &Path) -> Result<(), StoreError> {
        for (i, n) in net.nodes.iter().enumerate() {
            n.process_pending_events(|e| match e {
                Event::PaymentReceived { payment_hash, .. } => {
                    if let Some(idx) = self.by_hash.get(&payment_hash) {
                        if let Err(e) = net.nodes[i].claim_funds(preimage(*idx)) {
                            journal_append(dir, &format!("claim-error {idx} {e}"));
                        }
                    }
                }
                Event::PaymentSent { payment_hash, .. } => {
                    journal_append(dir, &format!("sent {}", self.by_hash[&payment_hash]))
                }
                Event::PaymentFailed { payment_hash, .. } => {
                    journal_append(dir, &format!("failed {}", self.by_hash[&payment_hash]))
                }
                _ => {}
            })?;
        }
        Ok(())
    }

    /// One payment attempt, then a few rounds of delivery.
    pub fn step(&mut self, net: &Net, dir: &Path) -> Result<(), StoreError> {
        let next = self.next;
        let sender = 1 + (next as usize % EDGES);
        let receiver = 1 + ((next as usize / EDGES + sender) % EDGES);
        if receiver != sender {
            let amount = 1_000_000 + (next % 7) * 100_000;
            let fee = StoreConfig::default().forwarding_fee_msat(amount);
            journal_append(
                dir,
                &format!("intent {next} {sender} {receiver} {amount} {fee}"),
            );
            let p = preimage(next);
            self.by_hash.insert(p.payment_hash(), next);
            let hop = |n: usize, s, fee| RouteHop {
                node_id: net.nodes[n].node_id(),
                short_channel_id: s,
                fee_msat: fee,
                cltv_expiry_delta: 72,
            };
            let route = Route {
                hops: vec![hop(0, scid(sender), fee), hop(receiver, scid(receiver), 0)],
            };
            // Refused at once (e.g. channel not yet reestablished): no HTLC exists.
            match net.nodes[sender].send_payment(&route, p.payment_hash(), amount) {
                Ok(()) => journal_append(dir, &format!("started {next}")),
                Err(_) => journal_append(dir, &format!("refused {next}")),
            }
        }
        self.next += 1;
        for _ in 0..3 {
            net.pump()?;
        }
        self.handle_events(net, dir)
    }

    /// Settles everything (no new payments) and writes `report.txt`: each
    /// channel's balance and pending HTLCs, after checking every node.
    pub fn settle_and_report(&self, net: &Net, dir: &Path) {
        let started = Instant::now();
        loop {
            let moved = net.pump().unwrap();
            self.handle_events(net, dir).unwrap();
            if !moved && net.nodes.iter().all(|n| n.pending_forwards() == 0) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the network did not settle"
            );
        }
        let mut report = String::new();
        for (i, n) in net.nodes.iter().enumerate() {
            n.check_value_conserved().unwrap();
            n.check_indexes().unwrap();
            for d in n.list_channels() {
                report.push_str(&format!(
                    "channel {i} {} {} {}\n",
                    d.channel_id, d.balance_msat, d.pending_htlcs
                ));
            }
        }
        std::fs::write(dir.join("report.txt"), report).unwrap();
    }
}

/// The exactly-once checks, against the journal and `report.txt`: every
/// payment that started ended exactly once (fulfilled or failed, never
/// both), no refused payment has an outcome, no HTLC is left, each edge's
/// balance moved by exactly its fulfilled payments and the hub earned
/// exactly their fees. Returns (intended, started, ended, fulfilled).
pub fn check(dir: &Path) -> (usize, usize, usize, usize) {
    let (lines, intents) = read_journal(dir);
    let mut outcome: HashMap<u64, &str> = HashMap::new();
    let mut refused = HashSet::new();
    let mut started = HashSet::new();
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        match f[0] {
            "sent" | "failed" => {
                let idx: u64 = f[1].parse().unwrap();
                if let Some(prev) = outcome.insert(idx, f[0]) {
                    assert_eq!(prev, f[0], "payment {idx} ended both sent and failed");
                }
            }
            "refused" => {
                refused.insert(f[1].parse::<u64>().unwrap());
            }
            "started" => {
                started.insert(f[1].parse::<u64>().unwrap());
            }
            _ => {}
        }
    }
    // A payment whose intent was written but whose send_payment never
    // returned (killed in between) may have started or not: if it started,
    // it has an outcome.
    for idx in intents.keys() {
        assert!(
            !(refused.contains(idx) && outcome.contains_key(idx)),
            "refused payment {idx} has an outcome"
        );
        assert!(
            !started.contains(idx) || outcome.contains_key(idx),
            "payment {idx} started but never ended"
        );
    }
    let report = std::fs::read_to_string(dir.join("report.txt")).unwrap();
    let mut balance: HashMap<usize, i128> = (1..=EDGES).map(|e| (e, PUSH_MSAT as i128)).collect();
    let mut hub_fees: i128 = 0;
    for (idx, i) in &intents {
        if outcome.get(idx) == Some(&"sent") {
            *balance.get_mut(&i.sender).unwrap() -= (i.amount + i.fee) as i128;
            *balance.get_mut(&i.receiver).unwrap() += i.amount as i128;
            hub_fees += i.fee as i128;
        }
    }
    let mut hub_total: i128 = 0;
    for line in report.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (node, bal, pending): (usize, i128, usize) = (
            f[1].parse().unwrap(),
            f[3].parse().unwrap(),
            f[4].parse().unwrap(),
        );
        assert_eq!(pending, 0, "an HTLC was left in flight: {line}");
        if node == 0 {
            hub_total += bal;
        } else {
            assert_eq!(
                bal, balance[&node],
                "edge {node}'s balance does not match its journal"
            );
        }
    }
    let hub_start = EDGES as i128 * (FUNDING_SAT as i128 * 1000 - PUSH_MSAT as i128);
    assert_eq!(
        hub_total,
        hub_start + hub_fees,
        "the hub's balance does not match the fees it earned"
    );
    let fulfilled = outcome.values().filter(|o| **o == "sent").count();
    (intents.len(), started.len(), outcome.len(), fulfilled)
}

/// The child's entry point, for a `crash_child` test in each binary that
/// spawns children (a no-op unless `CHANSTORE_CRASH_DIR` is set).
/// `CHANSTORE_CRASH_MODE`: `setup` opens the channels; `run` pays until
/// killed; `finish` settles and reports; `standby` waits for the hub's
/// lease (held by a `run` child), then settles and reports.
pub fn child_main() {
    let Ok(dir) = std::env::var("CHANSTORE_CRASH_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let backend = Backend::from_env();
    match std::env::var("CHANSTORE_CRASH_MODE").as_deref() {
        Ok("setup") => setup(&Net::open(&dir, &backend), &dir),
        Ok("finish") => Payer::new(&dir).settle_and_report(&Net::open(&dir, &backend), &dir),
        Ok("standby") => {
            journal_append(&dir, "standby waiting");
            let net = Net::open(&dir, &backend);
            journal_append(&dir, "standby took the lease");
            Payer::new(&dir).settle_and_report(&net, &dir);
        }
        _ => {
            let net = Net::open(&dir, &backend);
            journal_append(&dir, "running");
            let mut payer = Payer::new(&dir);
            loop {
                payer.step(&net, &dir).unwrap();
            }
        }
    }
}

/// Runs this test binary's `crash_child` in `mode`, on `backend`.
pub fn spawn(dir: &Path, mode: &str, backend: &Backend) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("CHANSTORE_CRASH_DIR", dir)
        .env("CHANSTORE_CRASH_MODE", mode)
        .envs(backend.env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap()
}

/// A fresh directory for one test's journal and files.
pub fn tmpdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chanstore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
