//! `forwarding`: forwarded HTLCs per second through a hub, end to end, at
//! 1, 2, 4, 8 (16) threads, for the three designs.
//!
//! **Set-up.** A hub of the design under test with 64 peers
//! (`CHANSTORE_BENCH_PEERS`), one channel each (16M sat, half pushed to the
//! hub), opened through the real BOLT 2 flow. The hub verifies every
//! signature (`verify_signatures` on) and signs for real. Each peer is its
//! own `ChannelStore` (default design).
//!
//! **Load.** Each payment goes from a random peer through the hub to
//! another random peer (1,000 to 5,000 sat, above dust, so each HTLC has
//! its own signatures); the receiver claims it with `claim_funds`. For the
//! hub that is an HTLC added and settled on two channels: two commitment
//! round trips per channel. 64 payments are in flight at once in total
//! (`CHANSTORE_BENCH_IN_FLIGHT`), split between the workers, so the offered
//! load does not grow with the thread count. One iteration = one payment
//! forwarded and fulfilled; throughput is `Throughput::Elements(1)`.
//!
//! **How the hub's work is isolated (DESIGN.md cost model, point 3).** The
//! counterparties do as much crypto as the hub, so timing the whole run
//! would measure them too. Instead:
//!
//! - Each of T worker threads owns a disjoint set of peers (peer i belongs
//!   to worker i mod T). It alone runs those peers' stores, starts their
//!   payments, delivers their messages to the hub and the hub's messages to
//!   them (`get_and_clear_pending_msg_events_for(its peers)`, so per-peer
//!   order holds), and claims for them.
//! - Every call a worker makes into the hub (`handle_message`,
//!   `process_pending_forwards`, `get_and_clear_pending_msg_events_for`) is
//!   timed with `Instant` and summed per worker; the counterparties' calls
//!   in between are not. Waiting for a hub lock counts: it is the design's
//!   cost.
//! - The time given to criterion (`iter_custom`) is the largest per-worker
//!   sum. Worker threads are spawned once per benchmark and reused; a run
//!   starts on a channel message, so spawning is outside the measurement.
//! - A run ends when every payment ended at its sender and no message is
//!   left anywhere (the trailing revocations are hub work and are counted).
//!
//! Caveat: hub calls of different workers overlap only while they are all
//! in the hub; with counterparty work between them, contention is somewhat
//! lower than a hub fed by a network at full speed would see. The relative
//! order of designs is what this measures. The wall-clock rate (hub and
//! counterparties together) is printed to stderr for reference.
//!
//! Run: `cargo bench --features baselines --bench forwarding`.

mod common;

use criterion::{criterion_group, criterion_main, Criterion};

fn forwarding(c: &mut Criterion) {
    common::forwarding(c, "forwarding", false);
}

criterion_group!(benches, forwarding);
criterion_main!(benches);
