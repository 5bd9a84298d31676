//! `store_ops`: the container alone, no channel logic and no crypto, at 1,
//! 2, 4, 8 (16) threads, for the three designs.
//!
//! One operation (`chanstore::bench_support::store_op`) is what a message
//! handler and a forward ask of the container: `with_peer` on one peer and
//! a small change to its state under that lock, then `push_work` of an item
//! addressed to another peer, then `pop_work` of up to 8 queued items (taken
//! and dropped, not applied). It measures the designs' locking and queueing,
//! which is all that differs between them.
//!
//! 10,000 connected peers. Two access patterns, as two groups:
//!
//! - `store_ops_uniform`: both peers of an operation drawn uniformly;
//! - `store_ops_zipf`: both drawn from a Zipf distribution (exponent 1.0:
//!   the hottest peer gets about 10% of operations, the top 10 about 30%),
//!   a few hot peers as on a routing node with a few big neighbours.
//!
//! Each thread replays its own pre-drawn sequence of peer pairs. Threads
//! are spawned once per benchmark and start each measured run together on a
//! barrier; the time of a run is from the earliest thread's start to the
//! latest one's end, measured by the threads themselves (`iter_custom`), so
//! spawning and waking are outside it. One iteration = one operation;
//! throughput is `Throughput::Elements(1)`.
//!
//! Run: `cargo bench --features baselines --bench store_ops`.

mod common;

use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use chanstore::baseline::{GlobalLock, RwLockPeers};
use chanstore::bench_support::{store_op, BenchNode, OpScratch};
use chanstore::{ChannelStore, Container, Sharded, StoreConfig};
use common::net::Rng;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam::channel::{unbounded, Receiver, Sender};

const PEERS: usize = 10_000;
/// Pre-drawn peer pairs per thread (replayed in a loop).
const SEQUENCE: usize = 1 << 14;

#[derive(Clone, Copy, Debug)]
enum Pattern {
    Uniform,
    Zipf,
}

/// Draws peer indices.
struct Sampler {
    /// Cumulative probabilities of ranks 0..PEERS (Zipf), or empty (uniform).
    cdf: Vec<f64>,
}

impl Sampler {
    fn new(pattern: Pattern) -> Self {
        let cdf = match pattern {
            Pattern::Uniform => Vec::new(),
            Pattern::Zipf => {
                let weights: Vec<f64> = (1..=PEERS).map(|k| 1.0 / k as f64).collect();
                let total: f64 = weights.iter().sum();
                weights
                    .iter()
                    .scan(0.0, |acc, w| {
                        *acc += w / total;
                        Some(*acc)
                    })
                    .collect()
            }
        };
        Sampler { cdf }
    }

    fn draw(&self, rng: &mut Rng) -> usize {
        if self.cdf.is_empty() {
            return rng.below(PEERS);
        }
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c < u).min(PEERS - 1)
    }

    /// A sequence of `(peer, other)` pairs with `peer != other`.
    fn sequence(&self, seed: u64) -> Vec<(u32, u32)> {
        let mut rng = Rng::new(seed);
        (0..SEQUENCE)
            .map(|_| {
                let a = self.draw(&mut rng);
                let mut b = self.draw(&mut rng);
                while b == a {
                    b = self.draw(&mut rng);
                }
                (a as u32, b as u32)
            })
            .collect()
    }
}

/// `threads` threads that run `store_op` on one store when told to.
struct OpsPool {
    go: Vec<Sender<Option<u64>>>,
    done: Receiver<(Instant, Instant)>,
    handles: Vec<JoinHandle<()>>,
    threads: usize,
}

impl OpsPool {
    fn new<C: Container>(
        store: Arc<ChannelStore<C>>,
        peers: Arc<Vec<BenchNode>>,
        sampler: &Sampler,
        threads: usize,
    ) -> Self {
        let barrier = Arc::new(Barrier::new(threads));
        let (done_tx, done) = unbounded();
        let mut go = Vec::new();
        let mut handles = Vec::new();
        for t in 0..threads {
            let (tx, rx) = unbounded::<Option<u64>>();
            go.push(tx);
            let seq = sampler.sequence(0x5EED + t as u64);
            let (store, peers, barrier, done_tx) = (
                store.clone(),
                peers.clone(),
                barrier.clone(),
                done_tx.clone(),
            );
            handles.push(thread::spawn(move || {
                let mut scratch = OpScratch::default();
                let mut at = 0;
                while let Ok(Some(ops)) = rx.recv() {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..ops {
                        let (a, b) = seq[at];
                        at = (at + 1) % seq.len();
                        store_op(&store, &peers[a as usize], &peers[b as usize], &mut scratch);
                    }
                    let _ = done_tx.send((start, Instant::now()));
                }
            }));
        }
        OpsPool {
            go,
            done,
            handles,
            threads,
        }
    }

    /// Runs `iters` operations split between the threads; returns the span
    /// from the first start to the last end.
    fn run(&self, iters: u64) -> Duration {
        let t = self.threads as u64;
        for (i, tx) in self.go.iter().enumerate() {
            let share = iters / t + u64::from((i as u64) < iters % t);
            tx.send(Some(share)).expect("worker alive");
        }
        let spans: Vec<(Instant, Instant)> = (0..self.threads)
            .map(|_| self.done.recv().expect("worker alive"))
            .collect();
        let start = spans.iter().map(|s| s.0).min().expect("threads");
        let end = spans.iter().map(|s| s.1).max().expect("threads");
        end - start
    }
}

impl Drop for OpsPool {
    fn drop(&mut self) {
        for tx in &self.go {
            let _ = tx.send(None);
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn design<C: Container>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    peers: &Arc<Vec<PublicKey>>,
    sampler: &Sampler,
) {
    let store = Arc::new(
        ChannelStore::<C>::with_container(
            StoreConfig::default(),
            SecretKey::from_slice(&[7; 32]).expect("key"),
            800_000,
        )
        .expect("config"),
    );
    for p in peers.iter() {
        store.peer_connected(*p);
    }
    let nodes: Arc<Vec<BenchNode>> = Arc::new(peers.iter().map(BenchNode::new).collect());
    for threads in common::thread_counts() {
        let pool = OpsPool::new(store.clone(), nodes.clone(), sampler, threads);
        g.bench_with_input(BenchmarkId::new(C::NAME, threads), &threads, |b, _| {
            b.iter_custom(|iters| pool.run(iters))
        });
    }
    assert!(
        store.pending_forwards() < 8 * 16,
        "the queue does not pile up"
    );
}

fn store_ops(c: &mut Criterion) {
    let secp = Secp256k1::new();
    let peers: Arc<Vec<PublicKey>> = Arc::new(
        (0..PEERS)
            .map(|i| {
                let mut b = [0u8; 32];
                b[0] = 1;
                b[24..].copy_from_slice(&(i as u64).to_be_bytes());
                PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&b).expect("key"))
            })
            .collect(),
    );
    for (name, pattern) in [
        ("store_ops_uniform", Pattern::Uniform),
        ("store_ops_zipf", Pattern::Zipf),
    ] {
        let sampler = Sampler::new(pattern);
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1)).sample_size(50);
        design::<Sharded>(&mut g, &peers, &sampler);
        design::<GlobalLock>(&mut g, &peers, &sampler);
        design::<RwLockPeers>(&mut g, &peers, &sampler);
        g.finish();
    }
}

criterion_group!(benches, store_ops);
criterion_main!(benches);
