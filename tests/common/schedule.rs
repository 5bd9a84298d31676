//! Helpers for the random schedules (`tests/reconnect_schedules.rs`,
//! `tests/mpp_schedules.rs`): a seeded generator, and node `i` of a
//! schedule, on a persister or not.

use std::sync::Arc;

use chanstore::{ChannelStore, MemoryPersister, StoreConfig};

/// Xorshift64: the same seed plays the same schedule.
pub struct Rng(pub u64);

impl Rng {
    /// A generator for `seed` (any value; never the all-zero state).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform enough in `0..n` for a schedule.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Node `i` of a schedule (its secret is `[i + 1; 32]`), at `height`, on
/// `disk` if any.
pub fn store(
    cfg: &StoreConfig,
    i: usize,
    disk: Option<Arc<MemoryPersister>>,
    height: u32,
) -> ChannelStore {
    let secret = bitcoin::secp256k1::SecretKey::from_slice(&[i as u8 + 1; 32]).unwrap();
    match disk {
        Some(disk) => ChannelStore::with_persister(cfg.clone(), secret, height, disk).unwrap(),
        None => ChannelStore::new(cfg.clone(), secret, height).unwrap(),
    }
}
