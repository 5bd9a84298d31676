//! A persister that records every batch, so a test can rebuild a store from
//! any prefix of them: the state a crash after that batch leaves.

use std::collections::BTreeMap;
use std::sync::Arc;

use chanstore::persist::Key;
use chanstore::{MemoryPersister, Persister, StoreError};
use parking_lot::Mutex;

/// One batch as the store wrote it.
pub type Batch = Vec<(Key, Option<Vec<u8>>)>;

/// Records batches and keeps their result.
#[derive(Debug, Default)]
pub struct Recording {
    batches: Mutex<Vec<Batch>>,
    /// Refuse writes from this batch number on (a disk that died).
    fail_from: Mutex<Option<usize>>,
}

impl Recording {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Starts from what `other` holds (as one batch).
    pub fn from_prefix(other: &Recording, k: usize) -> Arc<Self> {
        let r = Self::new();
        let map = other.state_after(k);
        if !map.is_empty() {
            r.batches
                .lock()
                .push(map.into_iter().map(|(k, v)| (k, Some(v))).collect());
        }
        r
    }

    /// Number of batches written so far.
    pub fn len(&self) -> usize {
        self.batches.lock().len()
    }

    /// Bytes of values written so far (deletes count nothing).
    pub fn bytes(&self) -> usize {
        self.batches
            .lock()
            .iter()
            .flatten()
            .map(|(_, v)| v.as_ref().map_or(0, Vec::len))
            .sum()
    }

    /// A copy of the batches written so far.
    pub fn batches(&self) -> Vec<Batch> {
        self.batches.lock().clone()
    }

    /// What the first `k` batches leave on disk.
    pub fn state_after(&self, k: usize) -> BTreeMap<Key, Vec<u8>> {
        let mut map = BTreeMap::new();
        for batch in self.batches.lock().iter().take(k) {
            for (key, value) in batch {
                match value {
                    Some(v) => map.insert(*key, v.clone()),
                    None => map.remove(key),
                };
            }
        }
        map
    }

    /// A plain persister holding what the first `k` batches leave.
    pub fn prefix(&self, k: usize) -> Arc<MemoryPersister> {
        let p = Arc::new(MemoryPersister::new());
        let batch: Vec<_> = self
            .state_after(k)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        p.write_batch(&batch).unwrap();
        p
    }

    /// Makes every write from now on fail.
    pub fn fail_writes(&self) {
        *self.fail_from.lock() = Some(self.len());
    }
}

impl Persister for Recording {
    fn write_batch(&self, batch: &[(Key, Option<Vec<u8>>)]) -> std::io::Result<()> {
        if self.fail_from.lock().is_some() {
            return Err(std::io::Error::other("disk died"));
        }
        self.batches.lock().push(batch.to_vec());
        Ok(())
    }

    fn load(&self) -> Result<BTreeMap<Key, Vec<u8>>, StoreError> {
        Ok(self.state_after(usize::MAX))
    }
}
