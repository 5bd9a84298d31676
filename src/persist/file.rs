//! [`FilePersister`]: the embedded default. An append-only log of
//! checksummed batch records in one directory, with group commit.
//!
//! **Record:** `len: u32 | sha256(payload)[..4] | payload`, where the payload
//! is one batch: `count: u32`, then per write a key, a presence byte and (if
//! present) a `u32`-length-prefixed value. A batch is one record, so it is
//! applied whole or not at all.
//!
//! **Group commit:** a writer appends its record to a shared buffer and waits.
//! If no flush is running it becomes the leader: it takes the whole buffer
//! (its own record and every one queued since), writes it and calls `fsync`
//! once, then wakes everyone it covered. Writers that arrive during the
//! `fsync` queue up for the next leader. So N peers updating at once cost one
//! `fsync`, not N. With `group_commit: false` each batch gets its own write
//! and `fsync` (for comparison).
//!
//! **Crash recovery:** on open the log is read to its end. A record cut short
//! at the tail (a write the crash interrupted) is dropped; a record with a
//! bad checksum followed by more records is corruption and is an error.
//! The live values are then written to a fresh log (temp file, `fsync`,
//! rename, `fsync` of the directory), which also happens at run time when
//! the log grows past `compact_min_bytes` and four times the live data.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bitcoin::hashes::{sha256, Hash};
use parking_lot::{Condvar, Mutex};

use super::{Key, Persister};
use crate::error::{DecodeError, StoreError};
use crate::persist::tlv::Cursor;

const LOG_NAME: &str = "chanstore.log";
const TMP_NAME: &str = "chanstore.log.tmp";

/// How a [`FilePersister`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileOptions {
    /// `fsync` before a write returns. Off only for tests and benchmarks
    /// that measure everything but the disk.
    pub sync: bool,
    /// Let concurrent writers share one `fsync`.
    pub group_commit: bool,
    /// Compact once the log is at least this large (and 4x the live data).
    pub compact_min_bytes: u64,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            sync: true,
            group_commit: true,
            compact_min_bytes: 64 << 20,
        }
    }
}

/// State shared by writers, under one short lock.
struct Shared {
    /// Records queued for the next leader.
    pending: Vec<u8>,
    /// Tickets: each batch gets the next one; a leader makes everything up
    /// to the ticket it took durable.
    next_ticket: u64,
    durable_ticket: u64,
    leader_active: bool,
    /// Once a write failed, every later one fails too (the log's tail is
    /// unknown): the store must be reopened.
    failed: Option<io::ErrorKind>,
    /// Size of each live value, to know when compaction pays.
    live: HashMap<Key, usize>,
    live_bytes: u64,
    log_len: u64,
}

/// An append-only, group-committed log in a directory.
pub struct FilePersister {
    dir: PathBuf,
    options: FileOptions,
    shared: Mutex<Shared>,
    flushed: Condvar,
    /// Only the leader (or a non-group writer) touches the file.
    file: Mutex<File>,
}

impl std::fmt::Debug for FilePersister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilePersister")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .finish()
    }
}

/// One batch as a log record.
fn encode_record<'a>(batch: impl ExactSizeIterator<Item = (&'a Key, Option<&'a [u8]>)>) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&(batch.len() as u32).to_be_bytes());
    for (key, value) in batch {
        key.encode_into(&mut payload);
        match value {
            Some(v) => {
                payload.push(1);
                payload.extend_from_slice(&(v.len() as u32).to_be_bytes());
                payload.extend_from_slice(v);
            }
            None => payload.push(0),
        }
    }
    let mut record = Vec::with_capacity(payload.len() + 8);
    record.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    record.extend_from_slice(&sha256::Hash::hash(&payload).to_byte_array()[..4]);
    record.extend_from_slice(&payload);
    record
}

/// Reads a log into its latest values. Returns the map and the length of
/// the valid prefix (a torn tail after it is to be dropped).
fn read_log(bytes: &[u8]) -> Result<(BTreeMap<Key, Vec<u8>>, usize), DecodeError> {
    let mut map = BTreeMap::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < 8 {
            break; // torn header
        }
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let Some(payload) = rest.get(8..8 + len) else {
            break;
        }; // torn payload
        let next = at + 8 + len;
        if sha256::Hash::hash(payload).to_byte_array()[..4] != rest[4..8] {
            if next >= bytes.len() {
                break; // a torn last record whose length happened to fit
            }
            return Err(DecodeError::Checksum {
                context: format!("log record at offset {at}"),
            });
        }
        let mut c = Cursor::new(payload, "log record");
        let n = c.count(10)?;
        for _ in 0..n {
            let key = Key::decode_from(&mut c)?;
            if c.bool()? {
                map.insert(key, c.bytes()?.to_vec());
            } else {
                map.remove(&key);
            }
        }
        c.end()?;
        at = next;
    }
    Ok((map, at))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl FilePersister {
    /// Opens (or creates) the log in `dir`, recovering from a torn tail and
    /// compacting it.
    pub fn open(dir: impl AsRef<Path>, options: FileOptions) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let io_err = |e: io::Error| StoreError::Persist(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(io_err)?;
        let path = dir.join(LOG_NAME);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io_err)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let (map, _valid) = read_log(&bytes)?;
        let file = Self::rewrite(&dir, &map).map_err(io_err)?;
        let live: HashMap<Key, usize> = map.iter().map(|(k, v)| (*k, v.len())).collect();
        let live_bytes = live.values().map(|v| *v as u64).sum();
        let log_len = file.metadata().map_err(io_err)?.len();
        Ok(FilePersister {
            dir,
            options,
            shared: Mutex::new(Shared {
                pending: Vec::new(),
                next_ticket: 0,
                durable_ticket: 0,
                leader_active: false,
                failed: None,
                live,
                live_bytes,
                log_len,
            }),
            flushed: Condvar::new(),
            file: Mutex::new(file),
        })
    }

    /// Writes `map` as a fresh log, atomically replacing the old one, and
    /// returns it opened for appending.
    fn rewrite(dir: &Path, map: &BTreeMap<Key, Vec<u8>>) -> io::Result<File> {
        let tmp = dir.join(TMP_NAME);
        {
            let mut f = File::create(&tmp)?;
            if !map.is_empty() {
                f.write_all(&encode_record(map.iter().map(|(k, v)| (k, Some(&v[..])))))?;
            }
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(LOG_NAME))?;
        sync_dir(dir)?;
        OpenOptions::new().append(true).open(dir.join(LOG_NAME))
    }

    /// Compacts the log: reads it back (only the leader writes, and it holds
    /// the file lock) and rewrites its live values.
    fn compact(&self, file: &mut File) -> io::Result<u64> {
        let mut bytes = Vec::new();
        File::open(self.dir.join(LOG_NAME))?.read_to_end(&mut bytes)?;
        let (map, _) = read_log(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        *file = Self::rewrite(&self.dir, &map)?;
        file.metadata().map(|m| m.len())
    }

    fn flush(&self, file: &mut File, buf: &[u8], compact: bool) -> io::Result<Option<u64>> {
        file.write_all(buf)?;
        if self.options.sync {
            file.sync_data()?;
        }
        if compact {
            return self.compact(file).map(Some);
        }
        Ok(None)
    }

    fn should_compact(&self, s: &Shared, adding: usize) -> bool {
        let len = s.log_len + adding as u64;
        len >= self.options.compact_min_bytes && len >= 4 * s.live_bytes.max(1)
    }
}

impl Persister for FilePersister {
    fn write_batch(&self, batch: &[(Key, Option<Vec<u8>>)]) -> io::Result<()> {
        let record = encode_record(batch.iter().map(|(k, v)| (k, v.as_deref())));
        let mut s = self.shared.lock();
        if let Some(kind) = s.failed {
            return Err(io::Error::new(kind, "an earlier write to the log failed"));
        }
        for (key, value) in batch {
            let old = match value {
                Some(v) => s.live.insert(*key, v.len()),
                None => s.live.remove(key),
            };
            s.live_bytes = s.live_bytes - old.unwrap_or(0) as u64
                + value.as_ref().map_or(0, |v| v.len()) as u64;
        }
        if !self.options.group_commit {
            let compact = self.should_compact(&s, record.len());
            s.log_len += record.len() as u64;
            drop(s);
            let result = self.flush(&mut self.file.lock(), &record, compact);
            let mut s = self.shared.lock();
            return match result {
                Ok(compacted) => {
                    if let Some(len) = compacted {
                        s.log_len = len;
                    }
                    Ok(())
                }
                Err(e) => {
                    s.failed = Some(e.kind());
                    Err(e)
                }
            };
        }
        s.pending.extend_from_slice(&record);
        s.next_ticket += 1;
        let ticket = s.next_ticket;
        loop {
            if s.durable_ticket >= ticket {
                return Ok(());
            }
            if let Some(kind) = s.failed {
                return Err(io::Error::new(
                    kind,
                    "the log write covering this batch failed",
                ));
            }
            if s.leader_active {
                self.flushed.wait(&mut s);
                continue;
            }
            // Lead: flush everything queued so far with one fsync. The
            // shared lock is released meanwhile so others can queue.
            s.leader_active = true;
            let buf = std::mem::take(&mut s.pending);
            let upto = s.next_ticket;
            let compact = self.should_compact(&s, buf.len());
            drop(s);
            let result = self.flush(&mut self.file.lock(), &buf, compact);
            s = self.shared.lock();
            s.leader_active = false;
            match result {
                Ok(compacted) => {
                    s.durable_ticket = upto;
                    s.log_len = compacted.unwrap_or(s.log_len + buf.len() as u64);
                }
                Err(e) => s.failed = Some(e.kind()),
            }
            self.flushed.notify_all();
        }
    }

    fn load(&self) -> Result<BTreeMap<Key, Vec<u8>>, StoreError> {
        let _file = self.file.lock();
        let mut bytes = Vec::new();
        File::open(self.dir.join(LOG_NAME))
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| StoreError::Persist(format!("{}: {e}", self.dir.display())))?;
        Ok(read_log(&bytes)?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("chanstore-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn batches_survive_reopen_and_deletes_apply() {
        let dir = tmpdir("reopen");
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        p.write_batch(&[(Key::Work(1), Some(vec![1])), (Key::Work(2), Some(vec![2]))])
            .unwrap();
        p.write_batch(&[(Key::Work(1), None), (Key::Event(7), Some(vec![7; 100]))])
            .unwrap();
        drop(p);
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        let map = p.load().unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map[&Key::Work(2)], vec![2]);
        assert_eq!(map[&Key::Event(7)], vec![7; 100]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn torn_tail_is_dropped_but_middle_corruption_is_an_error() {
        let a = encode_record([(&Key::Work(1), Some(&[1u8][..]))].into_iter());
        let b = encode_record([(&Key::Work(2), Some(&[2u8][..]))].into_iter());
        let log: Vec<u8> = a.iter().chain(&b).copied().collect();
        // Every cut inside the second record keeps exactly the first.
        for cut in a.len()..log.len() {
            let (map, valid) = read_log(&log[..cut]).unwrap();
            assert_eq!((map.len(), valid), (1, a.len()), "cut {cut}");
        }
        let mut bad = log.clone();
        bad[10] ^= 1; // inside the first record's payload
        assert!(matches!(read_log(&bad), Err(DecodeError::Checksum { .. })));
    }

    #[test]
    fn concurrent_writers_all_become_durable() {
        let dir = tmpdir("group");
        let p = std::sync::Arc::new(FilePersister::open(&dir, FileOptions::default()).unwrap());
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for i in 0..50u64 {
                        p.write_batch(&[(Key::Work(t * 1000 + i), Some(vec![t as u8; 10]))])
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(p.load().unwrap().len(), 400);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn compaction_keeps_live_values() {
        let dir = tmpdir("compact");
        let options = FileOptions {
            compact_min_bytes: 1_000,
            ..FileOptions::default()
        };
        let p = FilePersister::open(&dir, options.clone()).unwrap();
        for i in 0..200u64 {
            p.write_batch(&[(Key::Work(i % 3), Some(vec![i as u8; 50]))])
                .unwrap();
        }
        let len = std::fs::metadata(dir.join(LOG_NAME)).unwrap().len();
        assert!(len < 200 * 50, "log was never compacted: {len} bytes");
        let map = p.load().unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(map[&Key::Work(199 % 3)], vec![199u8; 50]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
