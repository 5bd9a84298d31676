//! The designs `chanstore`'s default one replaces, for benchmarks only
//! (feature `baselines`; no default code path uses them).
//!
//! [`ChannelStore<C>`](crate::ChannelStore) runs the same channel logic on
//! any [`Container`](crate::Container); only how peers, indexes and queues
//! are held and locked differs, so a benchmark that swaps `C` measures the
//! concurrency design and nothing else:
//!
//! | design | models | peers | indexes | forward queue | readers |
//! |---|---|---|---|---|---|
//! | [`Sharded`](crate::Sharded) (default) | `DESIGN.md` | `DashMap` of `Arc<Mutex<PeerState>>` | `DashMap`s | per-shard lock-free queues, any number of drainers | per-channel snapshots, no peer lock |
//! | [`GlobalLock`] | LDK before #1507 (`Mutex<ChannelHolder>`) | one `Mutex` over everything, held while a message is handled | same mutex | same mutex, `VecDeque` | same mutex, details built from the channels |
//! | [`RwLockPeers`] | LDK after #1507 (2026) | `FairRwLock<HashMap<PublicKey, Mutex<PeerState>>>` | `Mutex<HashMap>` (`id_to_peer`), `FairRwLock<HashMap>` (`short_to_chan_info`) | one `Mutex<Vec>` swapped out; one drainer at a time (`AtomicBool`) | read lock, then each peer's mutex in turn |
//!
//! What each one costs, in short:
//!
//! - **`GlobalLock`**: the signing and signature checks of every message
//!   run under the one lock, so the node uses one core however many threads
//!   call it; a `list_channels` stops all HTLC traffic while it builds
//!   details.
//! - **`RwLockPeers`**: peers run in parallel under the read lock, but
//!   adding a peer takes the write lock and waits for every handler in
//!   flight (new handlers queue behind it: the lock is fair, see
//!   `FairRwLock`); every forward and resolution passes through one mutex;
//!   and `process_pending_forwards` admits one caller at a time, so applying
//!   forwards (and signing the commitments they trigger) is serialized, as
//!   LDK's `process_pending_htlc_forwards` is. A reader locks each peer in
//!   turn, waiting for whatever message that peer is handling.
//!
//! Every design keeps the store's locking contract (see the `store` module
//! docs): a closure run by `with_peer` never calls back into the container;
//! the baselines' outer locks (the global mutex, the map's read lock) play
//! the role of the peer lock. The baseline `Mutex`es are `parking_lot`'s, as
//! in the default design, so the comparison is of structure, not of mutex
//! implementations; the fair read-write lock wraps `std::sync::RwLock`, as
//! LDK's does.

mod fair_rwlock;
mod global_lock;
mod rwlock_peers;

pub use fair_rwlock::FairRwLock;
pub use global_lock::GlobalLock;
pub use rwlock_peers::RwLockPeers;

/// Map helpers both baselines use for their plain `HashMap` indexes.
mod index_map {
    use std::collections::hash_map::{Entry, HashMap};
    use std::hash::Hash;

    /// Inserts `value` under `key` unless taken; returns the holder if so.
    pub(super) fn claim<K: Eq + Hash, V: Copy>(
        map: &mut HashMap<K, V>,
        key: K,
        value: V,
    ) -> Result<(), V> {
        match map.entry(key) {
            Entry::Occupied(e) => Err(*e.get()),
            Entry::Vacant(v) => {
                v.insert(value);
                Ok(())
            }
        }
    }

    /// Removes `key` only while it still maps to `value`.
    pub(super) fn release<K: Eq + Hash, V: PartialEq>(map: &mut HashMap<K, V>, key: &K, value: &V) {
        if map.get(key) == Some(value) {
            map.remove(key);
        }
    }

    /// Every entry, copied out.
    pub(super) fn entries<K: Copy, V: Copy>(map: &HashMap<K, V>) -> Vec<(K, V)> {
        map.iter().map(|(k, v)| (*k, *v)).collect()
    }
}
