//! `vs_ldk`: LDK 0.2.7's own payment benchmark (`bench_sends`: one channel
//! between two nodes, a payment A to B then B to A, each claimed and
//! settled with `commitment_signed`/`revoke_and_ack` both ways) next to the
//! same send pair on chanstore, in one binary, one run, one profile.
//!
//! - `vs_ldk/in_memory/ldk`: two LDK `ChannelManager`s, monitors through
//!   LDK's `TestPersister` (nothing written), as `bench_sends`.
//! - `vs_ldk/in_memory/chanstore`: two `ChannelStore`s, no persister.
//! - `vs_ldk/durable/ldk`: monitors through `lightning-persister`'s
//!   `FilesystemStore` (each write: temp file, fsync, rename, fsync of the
//!   directory), as LDK's `bench_filesystem_persisted_sends`. As there, the
//!   `ChannelManager` itself is not persisted (a node persists it in the
//!   background, off the payment's path). LDK's `ChannelMonitor` keeps an
//!   entry for every counterparty commitment, so it grows with every
//!   payment (about 290 bytes per send pair here) and this persister
//!   rewrites it whole on every update: the figure depends on how many
//!   pairs ran before (printed with the table).
//! - `vs_ldk/durable/ldk_updating`: the same `FilesystemStore` behind LDK's
//!   `MonitorUpdatingPersister` (each `ChannelMonitorUpdate` written alone,
//!   the whole monitor every 100 updates): what LDK recommends when
//!   monitors are large.
//! - `vs_ldk/durable/chanstore`: `FilePersister`, fsync on.
//!
//! Both sides build real Sphinx onions with a payment secret, sign and
//! verify every commitment, and hand messages across as structs (no wire
//! encoding on either side). One iteration is one send pair (two payments).
//! Setups: `benches/vs_ldk/ldk.rs` (copied from LDK's bench, with what
//! differs and why) and `benches/vs_ldk/chanstore.rs`.
//!
//! After criterion, a final pass times `CHANSTORE_VS_LDK_PAIRS` (30) send
//! pairs of each of the five, interleaved, `CHANSTORE_VS_LDK_ROUNDS` (5)
//! times, and prints the median per pair and the ratio LDK / chanstore.
//!
//! Run: `cargo bench --bench vs_ldk` (add `-- --warm-up-time 1
//! --measurement-time 5` for a shorter run). To count fsyncs, one side
//! alone and no criterion: `CHANSTORE_VS_LDK_ONLY=durable/ldk:100` (its
//! name, then send pairs) runs that side's set-up and 100 pairs; run it under
//! `strace -f -c -e trace=fsync,fdatasync` with 0 and 100 pairs and
//! divide the difference by 100 (docs/BENCHMARKS.md).

#[path = "vs_ldk/chanstore.rs"]
mod cs;
#[path = "vs_ldk/ldk.rs"]
mod ldk;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use lightning::chain::chainmonitor::Persist;
use lightning::sign::InMemorySigner;
use lightning::util::test_utils::TestPersister;
use lightning_persister::fs_store::FilesystemStore;

use cs::CsPair;
use ldk::{LdkPair, NodeParts, UpdatingPersister};

/// `durable/ldk_updating`: the whole monitor is written every this many
/// updates, each update alone in between.
const MAX_PENDING_UPDATES: u64 = 100;

/// Something that runs send pairs.
trait SendPair {
    fn send_pair(&mut self);
    /// Send pairs run so far (state, and LDK's monitors, grow with them).
    fn pairs_run(&self) -> u64;
}

impl<P: Persist<InMemorySigner>> SendPair for LdkPair<P> {
    fn send_pair(&mut self) {
        LdkPair::send_pair(self)
    }
    fn pairs_run(&self) -> u64 {
        LdkPair::pairs_run(self)
    }
}

impl SendPair for CsPair {
    fn send_pair(&mut self) {
        CsPair::send_pair(self)
    }
    fn pairs_run(&self) -> u64 {
        CsPair::pairs_run(self)
    }
}

/// The five pairs, by name (`in_memory/ldk`, ...), in table order.
struct Pairs {
    all: Vec<(&'static str, Box<dyn SendPair>)>,
}

impl Pairs {
    /// The pair named `only` (all for `""`), durable ones under `dir`.
    fn new(dir: &Path, only: &str) -> Self {
        let mut all: Vec<(&'static str, Box<dyn SendPair>)> = Vec::new();
        let wanted = |name: &str| only.is_empty() || name == only;
        if wanted("in_memory/ldk") {
            let pair = LdkPair::new(|_| TestPersister::new());
            all.push(("in_memory/ldk", Box::new(pair)));
        }
        if wanted("in_memory/chanstore") {
            all.push(("in_memory/chanstore", Box::new(CsPair::in_memory())));
        }
        let store = |kind: &str, node: &NodeParts| {
            FilesystemStore::new(dir.join(kind).join(["a", "b"][node.index]))
        };
        if wanted("durable/ldk") {
            let pair = LdkPair::new(|node| store("ldk", node));
            all.push(("durable/ldk", Box::new(pair)));
        }
        if wanted("durable/ldk_updating") {
            let pair = LdkPair::new(|node: &NodeParts| {
                UpdatingPersister::new(
                    Arc::new(store("ldk_updating", node)),
                    node.logger.clone(),
                    MAX_PENDING_UPDATES,
                    node.keys.clone(),
                    node.keys.clone(),
                    node.broadcaster.clone(),
                    node.fee_estimator.clone(),
                )
            });
            all.push(("durable/ldk_updating", Box::new(pair)));
        }
        if wanted("durable/chanstore") {
            all.push((
                "durable/chanstore",
                Box::new(CsPair::durable(&dir.join("chanstore"))),
            ));
        }
        Pairs { all }
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chanstore-vs-ldk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn criterion_groups(c: &mut Criterion, pairs: &mut Pairs) {
    for kind in ["in_memory", "durable"] {
        let mut g = c.benchmark_group(format!("vs_ldk/{kind}"));
        // A durable LDK pair takes tens of ms: linear sampling's 5,050
        // iterations would not fit a few seconds.
        g.sample_size(20).sampling_mode(SamplingMode::Flat);
        for (name, pair) in pairs.all.iter_mut() {
            if let Some(side) = name.strip_prefix(kind).and_then(|s| s.strip_prefix('/')) {
                g.bench_function(BenchmarkId::from_parameter(side), |b| {
                    b.iter(|| pair.send_pair())
                });
            }
        }
        g.finish();
    }
}

/// Times `per_round` pairs of each side, interleaved, `rounds` times;
/// returns the median time per pair of each, in `pairs` order.
fn final_pass(pairs: &mut Pairs, rounds: usize, per_round: usize) -> Vec<Duration> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); pairs.all.len()];
    for _ in 0..rounds {
        for (i, (_, pair)) in pairs.all.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..per_round {
                pair.send_pair();
            }
            times[i].push(start.elapsed() / per_round as u32);
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Total and largest file size under `dir`, recursively.
fn disk_usage(dir: &Path) -> (u64, u64) {
    let mut usage = (0, 0);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            let (total, largest) = disk_usage(&entry.path());
            usage = (usage.0 + total, usage.1.max(largest));
        } else {
            usage = (usage.0 + meta.len(), usage.1.max(meta.len()));
        }
    }
    usage
}

fn print_table(pairs: &Pairs, dir: &Path, medians: &[Duration], rounds: usize, per_round: usize) {
    let time_of = |name: &str| {
        pairs
            .all
            .iter()
            .position(|(n, _)| *n == name)
            .map(|i| medians[i])
    };
    println!();
    println!(
        "vs_ldk: per send pair (2 payments), median of {rounds} rounds of {per_round} pairs, interleaved"
    );
    println!(
        "| {:<40} | {:>10} | {:>10} | {:>7} |",
        "", "LDK 0.2.7", "chanstore", "ratio"
    );
    println!("|{:-<42}|{:->12}|{:->12}|{:->9}|", "", "", "", "");
    let rows = [
        ("in memory", "in_memory/ldk", "in_memory/chanstore"),
        (
            "durable (LDK: whole monitor per update)",
            "durable/ldk",
            "durable/chanstore",
        ),
        (
            "durable (LDK: MonitorUpdatingPersister)",
            "durable/ldk_updating",
            "durable/chanstore",
        ),
    ];
    for (label, ldk, cs) in rows {
        let (l, c) = (time_of(ldk), time_of(cs));
        let ratio = match (l, c) {
            (Some(l), Some(c)) => format!("{:.2}x", l.as_secs_f64() / c.as_secs_f64()),
            _ => "-".into(),
        };
        println!(
            "| {:<40} | {:>10} | {:>10} | {:>7} |",
            label,
            l.map_or("-".into(), ms),
            c.map_or("-".into(), ms),
            ratio
        );
    }
    println!("ratio: LDK's time / chanstore's. History behind each figure:");
    for (name, pair) in &pairs.all {
        let sub = name.strip_prefix("durable/").map(|s| s.replace('/', "_"));
        let disk = sub.map_or(String::new(), |sub| {
            let (total, largest) = disk_usage(&dir.join(sub));
            format!(", {total} bytes on disk, largest file {largest} bytes")
        });
        println!("  {name}: {} send pairs run{disk}", pair.pairs_run());
    }
}

fn main() {
    let dir = scratch_dir();
    if let Ok(spec) = std::env::var("CHANSTORE_VS_LDK_ONLY") {
        // One side alone, for strace: set-up, then `n` pairs.
        let (side, n) = spec.split_once(':').unwrap_or((&spec, "100"));
        let n: usize = n.parse().expect("CHANSTORE_VS_LDK_ONLY=side:pairs");
        let mut pairs = Pairs::new(&dir, side);
        assert_eq!(pairs.all.len(), 1, "{side}: not exactly one side");
        let start = Instant::now();
        for _ in 0..n {
            pairs.all[0].1.send_pair();
        }
        println!(
            "{}: {n} send pairs in {:?}",
            pairs.all[0].0,
            start.elapsed()
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let mut pairs = Pairs::new(&dir, "");
    let mut c = Criterion::default().configure_from_args();
    criterion_groups(&mut c, &mut pairs);
    c.final_summary();
    // `cargo test --benches` runs each benchmark once, without `--bench`:
    // no timing pass there.
    if std::env::args().any(|a| a == "--bench") {
        let rounds = env_usize("CHANSTORE_VS_LDK_ROUNDS", 5).max(1);
        let per_round = env_usize("CHANSTORE_VS_LDK_PAIRS", 30).max(1);
        let medians = final_pass(&mut pairs, rounds, per_round);
        print_table(&pairs, &dir, &medians, rounds, per_round);
    }
    drop(pairs);
    let _ = std::fs::remove_dir_all(&dir);
}
