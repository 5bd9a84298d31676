//! [`MemoryPersister`]: a [`Persister`] that keeps everything in memory.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use super::{Key, Persister};
use crate::error::StoreError;

/// A [`Persister`] that keeps everything in memory: for tests of restart
/// logic and for stores that need no durability.
#[derive(Debug, Default)]
pub struct MemoryPersister {
    map: Mutex<BTreeMap<Key, Vec<u8>>>,
}

impl MemoryPersister {
    /// An empty one.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Persister for MemoryPersister {
    fn write_batch(&self, batch: &[(Key, Option<Vec<u8>>)]) -> std::io::Result<()> {
        let mut map = self.map.lock();
        for (key, value) in batch {
            match value {
                Some(v) => map.insert(*key, v.clone()),
                None => map.remove(key),
            };
        }
        Ok(())
    }

    fn load(&self) -> Result<BTreeMap<Key, Vec<u8>>, StoreError> {
        Ok(self.map.lock().clone())
    }
}
