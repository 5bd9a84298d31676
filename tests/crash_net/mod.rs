//! The crash tests' network, journal and checks, shared by `tests/crash.rs`
//! (SIGKILLs of the whole process, on every backend) and
//! `tests/postgres_failover.rs` (the database's primary killed, or the hub
//! process killed with a standby process waiting for its lease).
//!
//! Node 0 is the hub; nodes 1..=EDGES are edges with [`CHANNELS_PER_EDGE`]
//! channels each to it. Payments go edge → hub → edge. Every
//! [`CLOSE_EVERY`] payments a channel closes, while HTLCs are in flight:
//! cooperatively, by the hub's force close, or by the edge's (the hub then
//! hears an `error`). What closes is settled by a stand-in for the chain
//! (`tests/common/chain.rs`), whose claims survive the kills in the journal.
//!
//! The journal (`journal.log`, one line per fact, written before the fact
//! is acted on) is what [`check`] compares the end with:
//! - `open <edge> <k> <channel_id> <scid>`: the channels, at setup;
//! - `intent <idx> <sender> <receiver> <amount> <fee> <scid_in> <scid_out>`
//!   before `send_payment`; `started`/`refused <idx>` after it;
//! - `claiming <idx>` before the receiver's `claim_funds`;
//! - `sent <idx>` / `failed <idx>` when the sender's event is handled
//!   (events are handled at least once, so the same outcome may appear
//!   twice, but never two different ones);
//! - `close <c> <edge> <k> <kind>` before close number `c` is asked for;
//! - `chain <node> <channel_id> <offered|received> <idx> <0|1>` before an
//!   on-chain outcome is reported to a store, and `claim <channel_id>
//!   <offerer> <htlc_id> <preimage>` before a claim is.
#![allow(dead_code)]

#[path = "../common/chain.rs"]
pub mod chain;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::hex::FromHex;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{OutPoint, Txid};
use chanstore::persist::Key;
use chanstore::{
    ChannelId, ChannelStore, Event, FileOptions, FilePersister, HtlcDirection, OnChainOutcome,
    PaymentHash, PaymentPreimage, Persister, Route, RouteHop, ShortChannelId, StoreConfig,
    StoreError,
};

use chain::Chain;

pub const EDGES: usize = 4;
/// Channels each edge opens to the hub; all but the last close in a run.
pub const CHANNELS_PER_EDGE: usize = 3;
/// A close is asked for before every `CLOSE_EVERY`th payment.
pub const CLOSE_EVERY: u64 = 12;
/// How many closes a run asks for: every channel but each edge's last.
pub const CLOSES: u64 = (EDGES * (CHANNELS_PER_EDGE - 1)) as u64;
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

    /// Node `i`'s persister, with every durability setting a user would
    /// run with (fsync on; WAL with `synchronous=FULL`). A Postgres node
    /// waits for the lease of a killed predecessor (its session ends when
    /// the server notices).
    pub fn persister(&self, dir: &Path, i: usize) -> Arc<dyn Persister> {
        match self {
            Backend::File => Arc::new(
                FilePersister::open(dir.join(format!("node{i}")), FileOptions::default()).unwrap(),
            ),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => Arc::new(
                chanstore::SqlitePersister::open(
                    dir.join(format!("node{i}.db")),
                    chanstore::SqliteOptions::default(),
                )
                .unwrap(),
            ),
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

/// A persister that SIGKILLs its own process once the process's nodes
/// have, together, written `left` batches: a kill at a point a schedule can
/// name, where a timer would land anywhere.
#[derive(Debug)]
pub struct KillAfter {
    inner: Arc<dyn Persister>,
    left: Arc<AtomicI64>,
}

impl Persister for KillAfter {
    fn write_batch(&self, batch: &[(Key, Option<Vec<u8>>)]) -> std::io::Result<()> {
        let result = self.inner.write_batch(batch);
        if self.left.fetch_sub(1, Ordering::SeqCst) == 1 {
            // SAFETY: kill(2) on our own pid; nothing is shared with Rust.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            loop {
                std::thread::park();
            }
        }
        result
    }

    fn load(&self) -> Result<BTreeMap<Key, Vec<u8>>, StoreError> {
        self.inner.load()
    }
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

/// Channel `k` of `edge`.
pub fn scid(edge: usize, k: usize) -> ShortChannelId {
    ShortChannelId::new(100 + edge as u32, 1 + k as u32, 0).unwrap()
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
    /// failed refuses everything). A message refused for what it says (a
    /// peer's protocol error, which closes its channel) is not a failure.
    pub fn pump(&self) -> Result<bool, StoreError> {
        let mut moved = false;
        for (i, n) in self.nodes.iter().enumerate() {
            for (to, msg) in n.get_and_clear_pending_msg_events() {
                let j = self.index_of(&to);
                match self.nodes[j].handle_message(&self.nodes[i].node_id(), msg) {
                    Err(e @ StoreError::Persist(_)) => return Err(e),
                    _ => moved = true,
                }
            }
            moved |= n.process_pending_forwards() > 0;
        }
        Ok(moved)
    }

    fn stores(&self) -> Vec<Option<&ChannelStore>> {
        self.nodes.iter().map(Some).collect()
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
    while net.pump().unwrap() {} // the inits
    for e in 1..=EDGES {
        for k in 0..CHANNELS_PER_EDGE {
            let (hub, edge) = (&net.nodes[0], &net.nodes[e]);
            let temp = edge
                .create_channel(hub.node_id(), FUNDING_SAT, PUSH_MSAT)
                .unwrap();
            while net.pump().unwrap() {}
            edge.get_and_clear_pending_events();
            let mut txid = [0u8; 32];
            (txid[0], txid[1]) = (e as u8, k as u8);
            let id = edge
                .funding_transaction_generated(
                    &temp,
                    &hub.node_id(),
                    OutPoint::new(Txid::from_byte_array(txid), 0),
                )
                .unwrap();
            while net.pump().unwrap() {}
            edge.funding_confirmed(&id, scid(e, k)).unwrap();
            hub.funding_confirmed(&id, scid(e, k)).unwrap();
            while net.pump().unwrap() {}
            journal_append(dir, &format!("open {e} {k} {id} {}", scid(e, k).to_u64()));
        }
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
    pub scid_in: u64,
    pub scid_out: u64,
}

/// The journal's lines and the payments it intended.
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
                    scid_in: n(6),
                    scid_out: n(7),
                },
            );
        }
    }
    (lines, intents)
}

/// Each edge's channels by `k`, from the journal's `open` lines.
fn read_channels(lines: &[String]) -> Vec<Vec<(ChannelId, ShortChannelId)>> {
    let mut channels = vec![Vec::new(); EDGES + 1];
    for l in lines {
        let f: Vec<&str> = l.split(' ').collect();
        if f[0] == "open" {
            let edge: usize = f[1].parse().unwrap();
            channels[edge].push((
                channel_id(f[3]),
                ShortChannelId::from_u64(f[4].parse().unwrap()),
            ));
        }
    }
    channels
}

fn channel_id(hex: &str) -> ChannelId {
    ChannelId(<[u8; 32]>::from_hex(hex).unwrap())
}

/// Which channel close number `c` closes, and how: (edge, k, kind), kind 0
/// a cooperative close asked by the edge, 1 the hub's force close, 2 the
/// edge's force close.
pub fn close_plan(c: u64) -> (usize, usize, u64) {
    (1 + (c as usize % EDGES), c as usize / EDGES, c % 3)
}

/// Sends payments, closes channels and moves messages, journaling every
/// fact, until a node refuses a call (its store failed).
pub struct Payer {
    by_hash: HashMap<PaymentHash, u64>,
    next: u64,
    channels: Vec<Vec<(ChannelId, ShortChannelId)>>,
    closes: Vec<u64>,
    resumed: bool,
    chain: Chain,
}

impl Payer {
    /// Picks up where the journal in `dir` ends.
    pub fn new(dir: &Path) -> Payer {
        let (lines, intents) = read_journal(dir);
        let by_hash = intents
            .keys()
            .map(|idx| (preimage(*idx).payment_hash(), *idx))
            .collect();
        let next = intents.keys().max().map_or(0, |m| m + 1);
        let mut chain = Chain::default();
        let mut closes = Vec::new();
        for l in &lines {
            let f: Vec<&str> = l.split(' ').collect();
            match f[0] {
                "claim" => chain.learn_claim(
                    channel_id(f[1]),
                    PublicKey::from_str(f[2]).unwrap(),
                    f[3].parse().unwrap(),
                    PaymentPreimage(<[u8; 32]>::from_hex(f[4]).unwrap()),
                ),
                "close" => closes.push(f[1].parse().unwrap()),
                _ => {}
            }
        }
        Payer {
            by_hash,
            next,
            channels: read_channels(&lines),
            closes,
            resumed: false,
            chain,
        }
    }

    /// Asks for close number `c` (again, after a restart: a close already
    /// under way or done is refused, and that is fine).
    fn close(&self, net: &Net, c: u64) {
        let (edge, k, kind) = close_plan(c);
        let id = self.channels[edge][k].0;
        let _ = match kind {
            0 => net.nodes[edge].close_channel(&id),
            1 => net.nodes[0].force_close_channel(&id),
            _ => net.nodes[edge].force_close_channel(&id),
        };
    }

    /// The channel `edge`'s payments use: its first the hub can use now,
    /// or else its first not asked to close.
    fn channel_of(&self, net: &Net, edge: usize) -> ShortChannelId {
        let usable: HashSet<ShortChannelId> = net.nodes[0]
            .list_channels()
            .into_iter()
            .filter(|d| d.is_usable)
            .filter_map(|d| d.short_channel_id)
            .collect();
        let closing: HashSet<usize> = self
            .closes
            .iter()
            .map(|c| close_plan(*c))
            .filter(|(e, _, _)| *e == edge)
            .map(|(_, k, _)| k)
            .collect();
        let channels = &self.channels[edge];
        channels
            .iter()
            .find(|(_, s)| usable.contains(s))
            .or_else(|| {
                (0..channels.len())
                    .find(|k| !closing.contains(k))
                    .map(|k| &channels[k])
            })
            .unwrap_or(&channels[channels.len() - 1])
            .1
    }

    /// Handles events: receivers claim, senders' outcomes go to the journal.
    pub fn handle_events(&self, net: &Net, dir: &Path) -> Result<(), StoreError> {
        for (i, n) in net.nodes.iter().enumerate() {
            n.process_pending_events(|e| match e {
                Event::PaymentReceived { payment_hash, .. } => {
                    if let Some(idx) = self.by_hash.get(&payment_hash) {
                        journal_append(dir, &format!("claiming {idx}"));
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

    /// Reports to the stores what the chain settled, journaling it first.
    fn settle_chain(
        &mut self,
        net: &Net,
        dir: &Path,
        final_round: bool,
    ) -> Result<bool, StoreError> {
        let by_hash = &self.by_hash;
        self.chain
            .settle_recorded(&net.stores(), final_round, &mut |i, closed, h, outcome| {
                let idx = by_hash[&h.payment_hash];
                let dir_name = match h.direction {
                    HtlcDirection::Offered => "offered",
                    HtlcDirection::Received => "received",
                };
                if let (HtlcDirection::Received, OnChainOutcome::Fulfilled(p)) =
                    (h.direction, outcome)
                {
                    journal_append(
                        dir,
                        &format!(
                            "claim {} {} {} {}",
                            closed.channel_id,
                            closed.counterparty_node_id,
                            h.htlc_id,
                            bitcoin::hex::DisplayHex::to_lower_hex_string(&p.0[..])
                        ),
                    );
                }
                let ok = matches!(outcome, OnChainOutcome::Fulfilled(_)) as u8;
                journal_append(
                    dir,
                    &format!("chain {i} {} {dir_name} {idx} {ok}", closed.channel_id),
                );
            })
    }

    /// One payment attempt (after a close, when one is due), then a few
    /// rounds of delivery, events and the chain.
    pub fn step(&mut self, net: &Net, dir: &Path) -> Result<(), StoreError> {
        if !self.resumed {
            for c in &self.closes {
                self.close(net, *c);
            }
            self.resumed = true;
        }
        let next = self.next;
        let c = next / CLOSE_EVERY;
        if next.is_multiple_of(CLOSE_EVERY)
            && (1..=CLOSES).contains(&c)
            && !self.closes.contains(&(c - 1))
        {
            let (edge, k, kind) = close_plan(c - 1);
            journal_append(dir, &format!("close {} {edge} {k} {kind}", c - 1));
            self.closes.push(c - 1);
            self.close(net, c - 1);
        }
        let sender = 1 + (next as usize % EDGES);
        let receiver = 1 + ((next as usize / EDGES + sender) % EDGES);
        if receiver != sender {
            let amount = 1_000_000 + (next % 7) * 100_000;
            let fee = StoreConfig::default().forwarding_fee_msat(amount);
            let (scid_in, scid_out) =
                (self.channel_of(net, sender), self.channel_of(net, receiver));
            journal_append(
                dir,
                &format!(
                    "intent {next} {sender} {receiver} {amount} {fee} {} {}",
                    scid_in.to_u64(),
                    scid_out.to_u64()
                ),
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
                hops: vec![hop(0, scid_in, fee), hop(receiver, scid_out, 0)],
            };
            // Refused at once (e.g. channel not yet reestablished): no HTLC exists.
            let secret = net.nodes[receiver]
                .create_inbound_payment_for_hash(p.payment_hash(), None, 86_400)
                .unwrap();
            let invoice = chanstore::RecipientOnionFields::secret_only(secret);
            match net.nodes[sender].send_payment(&route, p.payment_hash(), amount, invoice) {
                Ok(()) => journal_append(dir, &format!("started {next}")),
                Err(_) => journal_append(dir, &format!("refused {next}")),
            }
        }
        self.next += 1;
        // One round of delivery per payment: several are in flight at once,
        // so closes find HTLCs to take on chain.
        net.pump()?;
        self.handle_events(net, dir)?;
        self.settle_chain(net, dir, false)?;
        Ok(())
    }

    /// Settles everything (no new payments; the chain, at the end, times
    /// out what nobody can claim) and writes `report.txt`: each open
    /// channel's balance and pending HTLCs, after checking every node.
    pub fn settle_and_report(&mut self, net: &Net, dir: &Path) {
        let started = Instant::now();
        for round in 0.. {
            // A quiet network gets a timer tick, as a node's minute timer
            // would give it: a close held back after a reconnection (the
            // peer's shutdown came first, its adds might follow) goes on.
            let mut ticked = false;
            loop {
                let moved = net.pump().unwrap();
                self.handle_events(net, dir).unwrap();
                if !moved && net.nodes.iter().all(|n| n.pending_forwards() == 0) {
                    if ticked {
                        break;
                    }
                    net.nodes.iter().for_each(ChannelStore::timer_tick_occurred);
                    ticked = true;
                    continue;
                }
                ticked = false;
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "the network did not settle"
                );
            }
            let final_round = round >= 5;
            if !self.settle_chain(net, dir, final_round).unwrap() && final_round {
                break;
            }
            assert!(round < 40, "the chain never settled");
        }
        let mut report = String::new();
        for (i, n) in net.nodes.iter().enumerate() {
            n.check_value_conserved().unwrap();
            n.check_indexes().unwrap();
            n.check_commitments_fully_paid().unwrap();
            let left: Vec<_> = n
                .closed_channels()
                .into_iter()
                .map(|c| c.channel_id)
                .collect();
            assert!(
                left.is_empty(),
                "node {i}: closed channels left unresolved: {left:?}"
            );
            for d in n.list_channels() {
                report.push_str(&format!(
                    "channel {i} {} {} {} {}\n",
                    d.channel_id,
                    d.short_channel_id.map_or(0, |s| s.to_u64()),
                    d.balance_msat,
                    d.pending_htlcs
                ));
            }
        }
        std::fs::write(dir.join("report.txt"), report).unwrap();
    }
}

/// What a run did.
#[derive(Debug)]
pub struct Summary {
    pub intended: usize,
    pub started: usize,
    pub ended: usize,
    pub fulfilled: usize,
    pub closes: usize,
    pub on_chain: usize,
}

/// The checks, against the journal and `report.txt`; the first broken one
/// is the error:
/// - every payment that started ended exactly once (fulfilled or failed,
///   never both), and no refused payment has an outcome;
/// - a fulfilled payment's receiver claimed it;
/// - every HTLC of a payment that went on chain (at the sender, the hub
///   either way, the receiver) ended there as the payment did: nobody paid
///   on chain for a failed payment, nobody was left unpaid for a sent one;
/// - every channel asked to close closed, and no other did;
/// - on every open channel no HTLC is left and both sides' balances are
///   exactly what the fulfilled payments across it moved.
pub fn check(dir: &Path) -> Result<Summary, String> {
    let (lines, intents) = read_journal(dir);
    let channels = read_channels(&lines);
    let mut outcome: HashMap<u64, bool> = HashMap::new();
    let mut refused = HashSet::new();
    let mut started = HashSet::new();
    let mut claiming = HashSet::new();
    let mut closes = HashSet::new();
    let mut on_chain: HashMap<(usize, String, String, u64), bool> = HashMap::new();
    for l in &lines {
        let f: Vec<&str> = l.split(' ').collect();
        let idx = || f[1].parse::<u64>().unwrap();
        match f[0] {
            "sent" | "failed" => {
                let sent = f[0] == "sent";
                if outcome.insert(idx(), sent).is_some_and(|prev| prev != sent) {
                    return Err(format!("payment {} ended both sent and failed", idx()));
                }
            }
            "refused" => drop(refused.insert(idx())),
            "started" => drop(started.insert(idx())),
            "claiming" => drop(claiming.insert(idx())),
            "close" => drop(closes.insert(idx())),
            "chain" => {
                let key = (
                    f[1].parse().unwrap(),
                    f[2].to_string(),
                    f[3].to_string(),
                    f[4].parse().unwrap(),
                );
                let ok = f[5] == "1";
                if on_chain
                    .insert(key.clone(), ok)
                    .is_some_and(|prev| prev != ok)
                {
                    return Err(format!(
                        "{key:?} was reported both fulfilled and failed on chain"
                    ));
                }
            }
            _ => {}
        }
    }
    let chan_of = |scid: u64| -> String {
        channels
            .iter()
            .flatten()
            .find(|(_, s)| s.to_u64() == scid)
            .map(|(id, _)| id.to_string())
            .unwrap_or_default()
    };
    // A payment whose intent was written but whose send_payment never
    // returned (killed in between) may have started or not: if it started,
    // it has an outcome.
    for (idx, i) in &intents {
        if refused.contains(idx) && outcome.contains_key(idx) {
            return Err(format!("refused payment {idx} has an outcome"));
        }
        if started.contains(idx) && !outcome.contains_key(idx) {
            return Err(format!("payment {idx} started but never ended"));
        }
        let Some(&sent) = outcome.get(idx) else {
            continue;
        };
        if sent && !claiming.contains(idx) {
            return Err(format!(
                "payment {idx} was sent but its receiver never claimed it"
            ));
        }
        let (up, down) = (chan_of(i.scid_in), chan_of(i.scid_out));
        for (node, chan, direction, who) in [
            (i.sender, &up, "offered", "the sender"),
            (0, &up, "received", "the hub, upstream"),
            (0, &down, "offered", "the hub, downstream"),
            (i.receiver, &down, "received", "the receiver"),
        ] {
            let key = (node, chan.clone(), direction.to_string(), *idx);
            if let Some(&ok) = on_chain.get(&key) {
                if ok != sent {
                    return Err(format!(
                        "payment {idx} {} but {who}'s HTLC on channel {chan} was {} on chain",
                        if sent { "was sent" } else { "failed" },
                        if ok { "claimed" } else { "timed out" }
                    ));
                }
            }
        }
    }
    let report =
        std::fs::read_to_string(dir.join("report.txt")).map_err(|e| format!("report.txt: {e}"))?;
    let mut edge_balance: HashMap<u64, i128> = channels
        .iter()
        .flatten()
        .map(|(_, s)| (s.to_u64(), (FUNDING_SAT * 1000 - PUSH_MSAT) as i128))
        .collect();
    for (idx, i) in &intents {
        if outcome.get(idx) == Some(&true) {
            *edge_balance.get_mut(&i.scid_in).unwrap() -= (i.amount + i.fee) as i128;
            *edge_balance.get_mut(&i.scid_out).unwrap() += i.amount as i128;
        }
    }
    let mut open: HashMap<(usize, u64), i128> = HashMap::new();
    for line in report.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (node, scid, bal, pending): (usize, u64, i128, usize) = (
            f[1].parse().unwrap(),
            f[3].parse().unwrap(),
            f[4].parse().unwrap(),
            f[5].parse().unwrap(),
        );
        if pending != 0 {
            return Err(format!("an HTLC was left in flight: {line}"));
        }
        open.insert((node, scid), bal);
    }
    for (edge, list) in channels.iter().enumerate() {
        for (k, (id, scid)) in list.iter().enumerate() {
            let closing = closes.iter().any(|c| {
                let (e, kk, _) = close_plan(*c);
                (e, kk) == (edge, k)
            });
            let s = scid.to_u64();
            match (open.get(&(edge, s)), open.get(&(0, s)), closing) {
                (None, None, true) => {}
                (Some(_), _, true) | (_, Some(_), true) => {
                    return Err(format!("channel {id} was asked to close and is still open"))
                }
                (Some(&e), Some(&h), false) => {
                    let expected = edge_balance[&s];
                    if e != expected {
                        return Err(format!(
                            "channel {id}: edge {edge}'s balance is {e}, its fulfilled payments make it {expected}"
                        ));
                    }
                    if h != FUNDING_SAT as i128 * 1000 - expected {
                        return Err(format!(
                            "channel {id}: the hub's balance is {h}, its fulfilled payments make it {}",
                            FUNDING_SAT as i128 * 1000 - expected
                        ));
                    }
                }
                _ => {
                    return Err(format!(
                        "channel {id} closed, or is open on one side only, unasked"
                    ))
                }
            }
        }
    }
    Ok(Summary {
        intended: intents.len(),
        started: started.len(),
        ended: outcome.len(),
        fulfilled: outcome.values().filter(|o| **o).count(),
        closes: closes.len(),
        on_chain: on_chain.len(),
    })
}

/// The child's entry point, for a `crash_child` test in each binary that
/// spawns children (a no-op unless `CHANSTORE_CRASH_DIR` is set).
/// `CHANSTORE_CRASH_MODE`: `setup` opens the channels; `run` pays until
/// killed (by its parent, or by itself after `CHANSTORE_CRASH_KILL_AFTER`
/// batches); `finish` settles and reports; `standby` waits for the hub's
/// lease (held by a `run` child), then settles and reports. A panic's
/// message goes to `child-panic.txt` for the parent to show.
pub fn child_main() {
    let Ok(dir) = std::env::var("CHANSTORE_CRASH_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let hook_dir = dir.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let mode = std::env::var("CHANSTORE_CRASH_MODE").unwrap_or_default();
        let _ = std::fs::write(
            hook_dir.join("child-panic.txt"),
            format!("{mode} child: {info}"),
        );
        default_hook(info);
    }));
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
            let net = match std::env::var("CHANSTORE_CRASH_KILL_AFTER") {
                Ok(n) => {
                    let left = Arc::new(AtomicI64::new(n.parse().unwrap()));
                    Net::with(|i| {
                        Arc::new(KillAfter {
                            inner: backend.persister(&dir, i),
                            left: left.clone(),
                        })
                    })
                }
                Err(_) => Net::open(&dir, &backend),
            };
            journal_append(&dir, "running");
            let mut payer = Payer::new(&dir);
            loop {
                payer.step(&net, &dir).unwrap();
            }
        }
    }
}

/// Runs this test binary's `crash_child` in `mode`, on `backend`, with
/// `env` added.
pub fn spawn_with(
    dir: &Path,
    mode: &str,
    backend: &Backend,
    env: &[(&str, String)],
) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("CHANSTORE_CRASH_DIR", dir)
        .env("CHANSTORE_CRASH_MODE", mode)
        .envs(backend.env())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Runs this test binary's `crash_child` in `mode`, on `backend`.
pub fn spawn(dir: &Path, mode: &str, backend: &Backend) -> std::process::Child {
    spawn_with(dir, mode, backend, &[])
}

/// What a child left in `child-panic.txt`, if it panicked.
pub fn child_panic(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("child-panic.txt")).unwrap_or_default()
}

/// A fresh directory for one test's journal and files.
pub fn tmpdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chanstore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
