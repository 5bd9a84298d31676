//! Crash test: a hub and its peers run payments in a child process with
//! the file persister; the parent kills it (SIGKILL) at random moments, at
//! least 20 times, restarting it from its directories each time. After the
//! last restart every payment that started must have ended exactly once
//! (fulfilled or failed, never both, never lost), no HTLC may be left, value
//! is conserved on every channel, and every balance matches the journal.
//!
//! The child is this test binary, run again with `CHANSTORE_CRASH_DIR` set
//! (test `crash_child`). Its journal (`journal.log`, one line per fact,
//! flushed before the fact is acted on) is what the parent checks against:
//! `intent <idx> <sender> <receiver> <amount> <fee>` is written before
//! `send_payment`; `sent <idx>` / `failed <idx>` when the sender's event is
//! handled (events are handled at least once, so the same outcome may
//! appear twice, but never two different ones). The child runs without
//! fsync: SIGKILL leaves the kernel's page cache intact, so the test is
//! about ordering and atomicity, not the disk (the durable benchmark runs
//! with fsync on).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::SecretKey;
use bitcoin::{OutPoint, Txid};
use chanstore::{
    ChannelStore, Event, FileOptions, FilePersister, PaymentPreimage, Persister, Route, RouteHop,
    ShortChannelId, StoreConfig,
};

const EDGES: usize = 4;
const FUNDING_SAT: u64 = 2_000_000;
const PUSH_MSAT: u64 = 1_000_000_000;
const HEIGHT: u32 = 800_000;
const KILLS: usize = 24;

fn secret(i: usize) -> SecretKey {
    SecretKey::from_slice(&[i as u8 + 1; 32]).unwrap()
}

fn preimage(idx: u64) -> PaymentPreimage {
    let mut engine = sha256::Hash::engine();
    bitcoin::hashes::HashEngine::input(&mut engine, b"crash test payment");
    bitcoin::hashes::HashEngine::input(&mut engine, &idx.to_be_bytes());
    PaymentPreimage(sha256::Hash::from_engine(engine).to_byte_array())
}

fn scid(edge: usize) -> ShortChannelId {
    ShortChannelId::new(100 + edge as u32, 1, 0).unwrap()
}

/// Node 0 is the hub; nodes 1..=EDGES are edges with one channel each to it.
struct Net {
    nodes: Vec<ChannelStore>,
}

impl Net {
    fn open(dir: &Path) -> Net {
        let options = FileOptions {
            sync: false,
            ..FileOptions::default()
        };
        let nodes = (0..=EDGES)
            .map(|i| {
                let p = FilePersister::open(dir.join(format!("node{i}")), options.clone()).unwrap();
                ChannelStore::with_persister(
                    StoreConfig::default(),
                    secret(i),
                    HEIGHT,
                    Arc::new(p) as Arc<dyn Persister>,
                )
                .unwrap()
            })
            .collect();
        let net = Net { nodes };
        for e in 1..=EDGES {
            net.nodes[0].peer_connected(net.nodes[e].node_id());
            net.nodes[e].peer_connected(net.nodes[0].node_id());
        }
        net
    }

    fn index_of(&self, pk: &bitcoin::secp256k1::PublicKey) -> usize {
        self.nodes.iter().position(|n| n.node_id() == *pk).unwrap()
    }

    /// Delivers every pending message once and processes forwards; returns
    /// whether anything moved.
    fn pump(&self) -> bool {
        let mut moved = false;
        for (i, n) in self.nodes.iter().enumerate() {
            for (to, msg) in n.get_and_clear_pending_msg_events() {
                let j = self.index_of(&to);
                self.nodes[j]
                    .handle_message(&self.nodes[i].node_id(), msg)
                    .unwrap();
                moved = true;
            }
            moved |= n.process_pending_forwards() > 0;
        }
        moved
    }
}

fn journal_append(dir: &Path, line: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("journal.log"))
        .unwrap();
    f.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// First run: open the channels (not killed).
fn setup(dir: &Path) {
    let net = Net::open(dir);
    for e in 1..=EDGES {
        let (hub, edge) = (&net.nodes[0], &net.nodes[e]);
        let temp = edge
            .create_channel(hub.node_id(), FUNDING_SAT, PUSH_MSAT)
            .unwrap();
        while net.pump() {}
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
        while net.pump() {}
        edge.funding_confirmed(&id, scid(e)).unwrap();
        hub.funding_confirmed(&id, scid(e)).unwrap();
        while net.pump() {}
    }
    for n in &net.nodes {
        n.get_and_clear_pending_events();
    }
    journal_append(dir, "setup");
}

struct Intent {
    sender: usize,
    receiver: usize,
    amount: u64,
    fee: u64,
}

fn read_journal(dir: &Path) -> (Vec<String>, HashMap<u64, Intent>) {
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

/// Handles events: receivers claim, senders' outcomes go to the journal.
fn handle_events(net: &Net, dir: &Path, by_hash: &HashMap<chanstore::PaymentHash, u64>) {
    for (i, n) in net.nodes.iter().enumerate() {
        n.process_pending_events(|e| match e {
            Event::PaymentReceived { payment_hash, .. } => {
                if let Some(idx) = by_hash.get(&payment_hash) {
                    let _ = net.nodes[i].claim_funds(preimage(*idx));
                }
            }
            Event::PaymentSent { payment_hash, .. } => {
                journal_append(dir, &format!("sent {}", by_hash[&payment_hash]))
            }
            Event::PaymentFailed { payment_hash, .. } => {
                journal_append(dir, &format!("failed {}", by_hash[&payment_hash]))
            }
            _ => {}
        })
        .unwrap();
    }
}

/// One life of the child: open, reconnect, pay until killed (or, in the
/// final run, settle everything and check).
fn child(dir: &Path, finish: bool) {
    let net = Net::open(dir);
    let (_, intents) = read_journal(dir);
    let mut by_hash: HashMap<chanstore::PaymentHash, u64> = intents
        .keys()
        .map(|idx| (preimage(*idx).payment_hash(), *idx))
        .collect();
    let mut next = intents.keys().max().map_or(0, |m| m + 1);
    let fee_of = |amount| StoreConfig::default().forwarding_fee_msat(amount);
    if !finish {
        loop {
            let sender = 1 + (next as usize % EDGES);
            let receiver = 1 + ((next as usize / EDGES + sender) % EDGES);
            if receiver != sender {
                let amount = 1_000_000 + (next % 7) * 100_000;
                let fee = fee_of(amount);
                journal_append(
                    dir,
                    &format!("intent {next} {sender} {receiver} {amount} {fee}"),
                );
                let p = preimage(next);
                by_hash.insert(p.payment_hash(), next);
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
            next += 1;
            for _ in 0..3 {
                net.pump();
            }
            handle_events(&net, dir, &by_hash);
        }
    }
    // Final run: settle everything, then report.
    let started = Instant::now();
    loop {
        let moved = net.pump();
        handle_events(&net, dir, &by_hash);
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

/// The child's entry point (a no-op unless run by `crash_test`).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("CHANSTORE_CRASH_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    match std::env::var("CHANSTORE_CRASH_MODE").as_deref() {
        Ok("setup") => setup(&dir),
        Ok("finish") => child(&dir, true),
        _ => child(&dir, false),
    }
}

fn spawn(dir: &Path, mode: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("CHANSTORE_CRASH_DIR", dir)
        .env("CHANSTORE_CRASH_MODE", mode)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

#[test]
fn crash_test() {
    let dir = std::env::temp_dir().join(format!("chanstore-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(
        spawn(&dir, "setup").wait().unwrap().success(),
        "setup failed"
    );
    // A cheap deterministic sequence of kill delays (20..=420 ms).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..KILLS {
        let mut child = spawn(&dir, "run");
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(20 + x % 400));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child ended before it was killed: {status}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert!(
        spawn(&dir, "finish").wait().unwrap().success(),
        "final run failed its checks"
    );

    let (lines, intents) = read_journal(&dir);
    let mut outcome: HashMap<u64, &str> = HashMap::new();
    let mut refused = std::collections::HashSet::new();
    let mut started = std::collections::HashSet::new();
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
    // Every payment ended exactly once, or never started. A payment whose
    // intent was written but whose send_payment never returned (killed
    // in between) may have started or not: if it started, it has an outcome.
    let ended = outcome.len();
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
    // Balances: each edge's channel moved by exactly its fulfilled payments.
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
    eprintln!(
        "crash test: {KILLS} kills, {} payments intended, {} started, {ended} ended ({} fulfilled), {} refused at once",
        intents.len(),
        started.len(),
        outcome.values().filter(|o| **o == "sent").count(),
        refused.len()
    );
    assert!(
        outcome.values().filter(|o| **o == "sent").count() > KILLS,
        "too few payments completed to mean anything"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
