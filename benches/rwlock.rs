//! `rwlock`: LDK's fair read-write lock against std's (and parking_lot's),
//! under a writer-heavy load (review club question 5, `docs/REVIEW_CLUB.md`).
//!
//! The load is `RwLockPeers`' (and LDK's `per_peer_state`'s) shape: reader
//! threads take the read lock around a short critical section (a lookup in
//! a map of 1,000 peers, then about a microsecond of work, what a message
//! handler's peer lookup holds it for) back to back; one writer thread takes
//! the write lock to add and remove a peer, with a pause between writes
//! short enough that a writer is waiting most of the time.
//!
//! Criterion times the writer: one iteration is one `write()` call, from
//! the call until the guard is held, plus its tiny critical section. After
//! each row the bench prints the readers' throughput over the same interval
//! and the writer's p99 and maximum wait, which is where fairness shows:
//! a lock that lets new readers in while a writer waits keeps reader
//! throughput and makes the writer wait; a fair one bounds the writer's
//! wait and costs the readers.
//!
//! Run: `cargo bench --features baselines --bench rwlock`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chanstore::baseline::FairRwLock;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hdrhistogram::Histogram;

/// Peers in the map.
const PEERS: u64 = 1_000;
/// Reader thread counts (the writer is one more thread).
const READERS: [usize; 3] = [1, 2, 4];
/// Pause between two writes: a writer is waiting most of the time.
const WRITER_PAUSE: Duration = Duration::from_micros(20);

/// The three locks behind one interface.
trait Lock: Send + Sync + 'static {
    const NAME: &'static str;
    fn new(map: HashMap<u64, u64>) -> Self;
    fn read<R>(&self, f: impl FnOnce(&HashMap<u64, u64>) -> R) -> R;
    fn write<R>(&self, f: impl FnOnce(&mut HashMap<u64, u64>) -> R) -> R;
}

struct Std(RwLock<HashMap<u64, u64>>);
struct Fair(FairRwLock<HashMap<u64, u64>>);
struct ParkingLot(parking_lot::RwLock<HashMap<u64, u64>>);

impl Lock for Std {
    const NAME: &'static str = "std";
    fn new(map: HashMap<u64, u64>) -> Self {
        Std(RwLock::new(map))
    }
    fn read<R>(&self, f: impl FnOnce(&HashMap<u64, u64>) -> R) -> R {
        f(&self.0.read().expect("never poisoned"))
    }
    fn write<R>(&self, f: impl FnOnce(&mut HashMap<u64, u64>) -> R) -> R {
        f(&mut self.0.write().expect("never poisoned"))
    }
}

impl Lock for Fair {
    const NAME: &'static str = "fair";
    fn new(map: HashMap<u64, u64>) -> Self {
        Fair(FairRwLock::new(map))
    }
    fn read<R>(&self, f: impl FnOnce(&HashMap<u64, u64>) -> R) -> R {
        f(&self.0.read())
    }
    fn write<R>(&self, f: impl FnOnce(&mut HashMap<u64, u64>) -> R) -> R {
        f(&mut self.0.write())
    }
}

impl Lock for ParkingLot {
    const NAME: &'static str = "parking_lot";
    fn new(map: HashMap<u64, u64>) -> Self {
        ParkingLot(parking_lot::RwLock::new(map))
    }
    fn read<R>(&self, f: impl FnOnce(&HashMap<u64, u64>) -> R) -> R {
        f(&self.0.read())
    }
    fn write<R>(&self, f: impl FnOnce(&mut HashMap<u64, u64>) -> R) -> R {
        f(&mut self.0.write())
    }
}

/// About a microsecond of work that the optimizer cannot remove.
fn work(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

fn spin_for(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

fn bench_lock<L: Lock>(c: &mut Criterion) {
    let mut g = c.benchmark_group("rwlock");
    g.sample_size(20);
    for readers in READERS {
        let lock = Arc::new(L::new((0..PEERS).map(|k| (k, k)).collect()));
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let handles: Vec<_> = (0..readers)
            .map(|r| {
                let (lock, stop, reads) = (lock.clone(), stop.clone(), reads.clone());
                std::thread::spawn(move || {
                    let mut key = r as u64;
                    // Relaxed: a stop flag and a counter read after join.
                    while !stop.load(Ordering::Relaxed) {
                        key = (key + 7) % PEERS;
                        let v = lock.read(|m| work(m.get(&key).copied().unwrap_or(0)));
                        black_box(v);
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let mut waits = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("histogram");
        let (mut measured, mut reads_in) = (Duration::ZERO, 0u64);
        g.bench_with_input(BenchmarkId::new(L::NAME, readers), &readers, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let started = Instant::now();
                let reads_before = reads.load(Ordering::Relaxed);
                for i in 0..iters {
                    spin_for(WRITER_PAUSE);
                    let t = Instant::now();
                    lock.write(|m| {
                        // A peer connects, another one leaves.
                        m.insert(PEERS + i % 2, i);
                        m.remove(&(PEERS + (i + 1) % 2));
                    });
                    let waited = t.elapsed();
                    total += waited;
                    let _ = waits.record(waited.as_nanos().max(1) as u64);
                }
                measured += started.elapsed();
                reads_in += reads.load(Ordering::Relaxed) - reads_before;
                total
            })
        });
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().expect("reader");
        }
        if !measured.is_zero() {
            eprintln!(
                "  rwlock/{}/{readers}: readers {:.2} M reads/s; writer wait p50 {:.1} us, p99 {:.1} us, max {:.1} us",
                L::NAME,
                reads_in as f64 / measured.as_secs_f64() / 1e6,
                waits.value_at_quantile(0.5) as f64 / 1e3,
                waits.value_at_quantile(0.99) as f64 / 1e3,
                waits.max() as f64 / 1e3,
            );
        }
    }
    g.finish();
}

fn rwlock(c: &mut Criterion) {
    bench_lock::<Std>(c);
    bench_lock::<Fair>(c);
    bench_lock::<ParkingLot>(c);
}

criterion_group!(benches, rwlock);
criterion_main!(benches);
