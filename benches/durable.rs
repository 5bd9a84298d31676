//! `durable`: the `forwarding` load (see `benches/forwarding.rs` for the
//! set-up and how the hub's work is isolated) with the hub persisting every
//! change through a `FilePersister` with fsync on: once with group commit
//! (concurrent writers share one fsync) and once with one write and fsync
//! per batch, for the three designs at 1, 2, 4, 8 (16) threads. Under
//! `GlobalLock` every write happens under the one lock, so writes cannot
//! share an fsync; per-peer locks let them (DESIGN.md cost model, point 4).
//!
//! Run: `cargo bench --features baselines --bench durable`.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn durable(c: &mut Criterion) {
    common::durable(c, "durable");
}

criterion_group!(benches, durable);
criterion_main!(benches);
