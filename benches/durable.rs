//! `durable`: the `forwarding` load (see `benches/forwarding.rs` for the
//! set-up and how the hub's work is isolated) with the hub persisting every
//! change through a `FilePersister` with fsync on: once with group commit
//! (concurrent writers share one fsync) and once with one write and fsync
//! per batch, for the three designs at 1, 2, 4, 8 (16) threads. Under
//! `GlobalLock` every write happens under the one lock, so writes cannot
//! share an fsync; per-peer locks let them (DESIGN.md cost model, point 4).
//!
//! Then `durable_backends` (`benches/common/backends.rs`): the sharded
//! design on every backend (file, SQLite, Postgres on loopback, Postgres
//! with a synchronous standby) at 1, 2 and 4 threads, with p99 latency.
//!
//! Run: `cargo bench --features baselines --bench durable` (file only), or
//! `cargo bench --all-features --bench durable -- durable_backends` (every
//! backend; the Postgres rows need the server binaries).

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn durable(c: &mut Criterion) {
    common::durable(c, "durable");
}

fn durable_backends(c: &mut Criterion) {
    common::backends::durable_backends(c, "durable_backends");
}

criterion_group!(benches, durable, durable_backends);
criterion_main!(benches);
