//! What the benches share: thread counts, and the forwarding benchmark
//! (plain, or with a `list_channels` reader) over the hub harness in
//! `net.rs`.
#![allow(dead_code)]

pub mod backends;
pub mod net;

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use chanstore::baseline::{GlobalLock, RwLockPeers};
use chanstore::{Container, FileOptions, FilePersister, Persister, Sharded};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};

/// 1, 2, 4, 8 threads, and 16 on machines that have 16 cores.
pub fn thread_counts() -> Vec<usize> {
    let mut counts = vec![1, 2, 4, 8];
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 16 {
        counts.push(16);
    }
    counts
}

/// An environment variable as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The forwarding benchmark on the three designs: `group` is
/// `"forwarding"` or `"reads_under_load"` (with one extra thread calling
/// `hub.list_channels()` in a loop). See `benches/forwarding.rs` for what is
/// measured and how.
pub fn forwarding(c: &mut Criterion, group: &str, reader: bool) {
    let peers = env_usize("CHANSTORE_BENCH_PEERS", 64);
    let in_flight = env_usize("CHANSTORE_BENCH_IN_FLIGHT", 64);
    // Microseconds the reader sleeps between calls (0: a tight loop).
    let pause = Duration::from_micros(env_usize("CHANSTORE_BENCH_READER_PAUSE_US", 0) as u64);
    let reader = reader.then_some(pause);
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(1));
    forwarding_design::<Sharded>(&mut g, peers, in_flight, reader);
    forwarding_design::<GlobalLock>(&mut g, peers, in_flight, reader);
    forwarding_design::<RwLockPeers>(&mut g, peers, in_flight, reader);
    g.finish();
}

/// Durable forwarding: the `forwarding` load with the hub writing through a
/// `FilePersister` with fsync on, once with group commit and once with one
/// write and fsync per batch, for each design (DESIGN.md cost model, point 4).
pub fn durable(c: &mut Criterion, group: &str) {
    let peers = env_usize("CHANSTORE_BENCH_PEERS", 64);
    let in_flight = env_usize("CHANSTORE_BENCH_IN_FLIGHT", 64);
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(1));
    for group_commit in [true, false] {
        durable_design::<Sharded>(&mut g, peers, in_flight, group_commit);
        durable_design::<GlobalLock>(&mut g, peers, in_flight, group_commit);
        durable_design::<RwLockPeers>(&mut g, peers, in_flight, group_commit);
    }
    g.finish();
}

fn durable_design<C: Container>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    peers: usize,
    in_flight: usize,
    group_commit: bool,
) {
    let mode = if group_commit {
        "group_commit"
    } else {
        "fsync_each"
    };
    let dir = std::env::temp_dir().join(format!(
        "chanstore-durable-{}-{mode}-{}",
        C::NAME,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let options = FileOptions {
        sync: true,
        group_commit,
        ..FileOptions::default()
    };
    let persister: Arc<dyn Persister> =
        Arc::new(FilePersister::open(&dir, options).expect("log directory"));
    let config = net::NetConfig {
        peers,
        hub_persister: Some(persister),
        ..Default::default()
    };
    let label = format!("{}/{mode}", C::NAME);
    run_design::<C>(g, &label, &config, in_flight, None);
    let _ = std::fs::remove_dir_all(&dir);
}

fn forwarding_design<C: Container>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    peers: usize,
    in_flight: usize,
    reader: Option<Duration>,
) {
    let config = net::NetConfig {
        peers,
        ..Default::default()
    };
    run_design::<C>(g, C::NAME, &config, in_flight, reader);
}

/// Builds the hub and its peers, then measures every thread count.
fn run_design<C: Container>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    label: &str,
    config: &net::NetConfig,
    in_flight: usize,
    reader: Option<Duration>,
) {
    eprintln!("{label}: opening {} channels to the hub...", config.peers);
    let net = Arc::new(net::Net::<C>::build(config, &|_| {}));
    for threads in thread_counts() {
        let pool = net::Pool::new(net.clone(), threads, reader);
        let spec = net::RunSpec {
            in_flight,
            ..Default::default()
        };
        // Wall-clock figures, hub and counterparties together, for the log.
        let (payments, wall, reads) = (Cell::new(0u64), Cell::new(Duration::ZERO), Cell::new(0u64));
        g.bench_with_input(BenchmarkId::new(label, threads), &threads, |b, _| {
            b.iter_custom(|iters| {
                let spec = net::RunSpec {
                    payments: Some(iters),
                    ..spec.clone()
                };
                let result = pool.run(&spec, |_| false);
                assert_eq!(
                    result.succeeded(),
                    iters,
                    "{}: every payment succeeds",
                    C::NAME
                );
                assert_eq!(
                    result.forwarded,
                    iters,
                    "{}: one forward per payment",
                    C::NAME
                );
                payments.set(payments.get() + iters);
                wall.set(wall.get() + result.wall);
                reads.set(reads.get() + result.reads);
                result.hub_time()
            })
        });
        let secs = wall.get().as_secs_f64().max(1e-9);
        eprintln!(
            "  {label}/{threads}: wall clock (hub + counterparties) {:.0} payments/s{}",
            payments.get() as f64 / secs,
            if reader.is_some() {
                format!(", reader {:.0} list_channels/s", reads.get() as f64 / secs)
            } else {
                String::new()
            }
        );
    }
    let hub = &net.hub;
    hub.check_value_conserved().expect("value conserved");
    hub.check_indexes().expect("indexes agree");
    assert_eq!(hub.pending_forwards(), 0);
}
