//! `reads_under_load`: the `forwarding` benchmark (see
//! `benches/forwarding.rs` for the set-up and how the hub's work is
//! isolated) with one more thread calling `hub.list_channels()` in a loop
//! for the whole run. Reported: forwarding throughput, as HTLCs per second
//! of hub time. The reader's rate is printed to stderr.
//! `CHANSTORE_BENCH_READER_PAUSE_US=N` makes the reader sleep N µs between
//! calls (default 0: a tight loop; see docs/BENCHMARKS.md for why a paced
//! reader gives a fairer picture on a machine with few cores).
//!
//! What it shows: the sharded design serves readers from per-channel
//! snapshots and takes no peer lock; `GlobalLock` builds every channel's
//! details under its one lock, stopping all HTLC traffic meanwhile;
//! `RwLockPeers` locks each peer in turn, waiting behind whatever message
//! that peer is handling (and delaying it).
//!
//! Run: `cargo bench --features baselines --bench reads_under_load`.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn reads_under_load(c: &mut Criterion) {
    common::forwarding(c, "reads_under_load", true);
}

criterion_group!(benches, reads_under_load);
criterion_main!(benches);
