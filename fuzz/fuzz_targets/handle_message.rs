//! Fuzz target: hostile peers against a hub, from raw bytes.
//!
//! The input is read as a sequence of actions (`tests/adversarial/decode.rs`:
//! honest payments and deliveries, Mallory's reordered real traffic, forged,
//! replayed, mutated and random messages from Mallory, Eve or an unknown
//! peer) and played against a small network restored from a snapshot
//! (`tests/adversarial/world.rs`: the stores are built once, written once,
//! and read back for every input, which exercises persistence and
//! `channel_reestablish` too). Every invariant of the proptest
//! `tests/adversarial.rs` is asserted, so a violation is a crash: no panic,
//! a refused message changes nothing, no message changes another peer's
//! state, value conserved, indexes and readers equal to the primary map, and
//! at the end every honest payment ended exactly once and every honest
//! channel still carries a payment.
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run handle_message`.
#![no_main]

#[path = "../../tests/adversarial/actions.rs"]
mod actions;
#[path = "../../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../../tests/adversarial/decode.rs"]
mod decode;
#[path = "../../tests/adversarial/world.rs"]
mod world;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut w = world::World::new();
    for action in &decode::decode_actions(data) {
        actions::apply(&mut w, action);
    }
    w.finish();
});
