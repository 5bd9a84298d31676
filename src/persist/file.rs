//! [`FilePersister`]: the embedded default. An append-only log of
//! checksummed records in one directory, with group commit.
//!
//! **Layout** (version 3): the file starts with the 32-byte header
//! `\0\0\0\0CSLOG\0\0\3 | key: [u8; 16] | sha256(magic || key)[..4]`; then one
//! *group* per flush (one `write` and one `fsync`): `magic "CSGR" | seq:
//! u64 | len: u32 | sha256(key || seq || payload)[..4] | payload`, whose
//! payload is `count: u32` then that many batches, each `count: u32`, then
//! per write a key (`Key::encode_into`), a presence byte and (if present) a
//! `u32`-length-prefixed value. Groups are numbered from 1 in file order;
//! group 1 is the snapshot written by the rewrite that made the file (with
//! no batch for an empty store), so flushes start at group 2. A batch is
//! inside one group, so it is applied whole or not at all. (Older layouts
//! are still read, and rewritten in this one on open: version 2, the same
//! without the key, whose header is `CSLOG\0\0\2` alone and whose first
//! group may be a flush; and a version 0.1 log, without any header, a run
//! of `len | checksum | batch` records.)
//!
//! **The key** is drawn at random when the persister opens, and only this
//! file holds it. Values are stored as given, and some of them are chosen
//! by peers (an onion is kept byte for byte): without the key in the
//! checksum, a peer could send bytes shaped like a valid group with a high
//! sequence number, and a crash that tore the group holding them would make
//! the recovery below see "acknowledged data after damage" and refuse to
//! open, leaving a node that cannot restart to watch its channels. With
//! the key, forging a group means guessing a 32-bit checksum keyed by 128
//! secret bits.
//!
//! **Group commit:** a writer appends its batch to a shared buffer and
//! waits. If no flush is running it becomes the leader: it takes the whole
//! buffer (its own batch and every one queued since), writes it as one
//! group and calls `fsync` once, then wakes everyone it covered. Writers
//! that arrive during the `fsync` queue up for the next leader. So N peers
//! updating at once cost one `fsync`, not N. With `group_commit: false`
//! each batch is its own group with its own `fsync` (for comparison).
//!
//! **Crash recovery** (issue 11, point 11): on open the log is read group by
//! group. The header and group 1 were synced before the rename that made
//! them the log, so no crash can tear them: a fault there is an error (read
//! as a torn tail, it would drop every value). A later group that is cut
//! short, fails its checksum or does not carry the next sequence number is
//! where the last flush was interrupted *if no
//! valid later group follows it*: a flush starts only after the one before
//! it was durable, so nothing after the interrupted one was ever
//! acknowledged. That tail (a torn write, zeros the file system allocated,
//! garbage) is dropped, and the log says so (`log::warn!`, and
//! [`FilePersister::recovered_tail`]). A damaged group followed by a valid
//! later one is damage to acknowledged data: `open` refuses the directory.
//! The live values are then written to a fresh log (temp file, `fsync`,
//! rename, `fsync` of the directory), which also happens at run time when
//! the log grows past `compact_min_bytes` and four times the live data.
//!
//! **Single writer** (`file/lock.rs`): `open` takes an exclusive lock on
//! `LOCK` in the directory before reading the log and holds it until the
//! persister is dropped, so a second persister on the same directory, in
//! this process or another, fails to open instead of writing a log the
//! first one then overwrites. A crashed process holds no lock.
//!
//! **Preallocation** (with `sync` on): the file is extended with written
//! zeros ahead of the groups (16 KiB at first, then as much again as the
//! log holds, at most 1 MiB at a time; one `fdatasync` per extension), and
//! each group overwrites the zeros where the last one ended. An `fdatasync`
//! after an append that grows the file must also commit the file's new size
//! and blocks (on ext4, a journal commit); one after an overwrite of
//! blocks already written has only the data to flush. On the 2-core
//! machine that is 0.19 to 0.23 ms against 0.35 to 0.45 ms per 1.4 KB
//! group (`docs/BENCHMARKS.md`), the same trick as PostgreSQL's zero-filled
//! WAL segments. A log therefore ends in zeros after its last group; on open
//! a tail of nothing but zeros is that free space, not a torn write (no
//! warning, no [`FilePersister::recovered_tail`]), and it is dropped by the
//! rewrite like any tail. The zeros are an optimisation only: when they
//! cannot be written (a full disk, a quota, an I/O error), they are given
//! back, the group is appended as before, and only a failure to write or
//! sync the group itself fails the batch; the log then appends without
//! preallocating until it is next rewritten. (The zeros lie past every
//! acknowledged byte, so losing them loses nothing.)

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bitcoin::hashes::{sha256, Hash};
use parking_lot::{Condvar, Mutex};

use super::{Key, Persister};
use crate::error::{DecodeError, StoreError};
use crate::persist::tlv::Cursor;
use lock::DirLock;

mod lock;

const LOG_NAME: &str = "chanstore.log";
const TMP_NAME: &str = "chanstore.log.tmp";
/// First bytes of a log in the current layout (version 3), which the
/// log's key follows. The four zero bytes are for older releases: their
/// readers take a file without their own header for a 0.1 log, and read
/// these as a record of length 0 whose checksum fails with more data after
/// it, which they refuse as damage instead of misreading the log.
const MAGIC: [u8; 12] = *b"\0\0\0\0CSLOG\0\0\x03";
/// First bytes of a log in layout 2: no key, checksums unkeyed.
const MAGIC_V2: [u8; 8] = *b"CSLOG\0\0\x02";
/// The magic, the key and `sha256(magic || key)[..4]`.
const HEADER_LEN: usize = MAGIC.len() + KEY_LEN + 4;
const KEY_LEN: usize = 16;
/// The random key of one log file, mixed into every group's checksum
/// (module docs: why a peer must not be able to forge a group).
type LogKey = [u8; KEY_LEN];
/// First bytes of every group.
const GROUP_MAGIC: [u8; 4] = *b"CSGR";
/// The first extension of a log by preallocated zeros.
const PREALLOCATE_MIN: u64 = 16 << 10;
/// The largest extension at a time: the flush that extends writes and
/// syncs this much more, so it bounds that flush's extra latency.
const PREALLOCATE_MAX: u64 = 1 << 20;
/// magic, seq, len, checksum.
const GROUP_HEADER_LEN: usize = 4 + 8 + 4 + 4;

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
    /// Batches queued for the next leader, and how many.
    pending: Vec<u8>,
    pending_batches: u32,
    /// Sequence number of the next group written.
    next_group: u64,
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
    /// The key of the log file: drawn on open, kept across compactions.
    key: LogKey,
    /// The torn tail dropped on open, if any: (offset, bytes).
    recovered: Option<(u64, u64)>,
    shared: Mutex<Shared>,
    flushed: Condvar,
    /// Only the leader (or a non-group writer) touches the file.
    file: Mutex<LogFile>,
    /// No other persister writes this directory while this one lives
    /// (`file/lock.rs`).
    _lock: DirLock,
}

/// The open log, where its next group goes, and how far it is preallocated
/// (module docs).
struct LogFile {
    file: File,
    /// End of the last group written: where the next one starts.
    end: u64,
    /// Length of the file: `end` plus the zeros written ahead.
    allocated: u64,
    /// Cleared when an extension fails: plain appends from then on.
    preallocating: bool,
    /// Tests: the file length past which preallocation fails as a full
    /// disk would.
    #[cfg(test)]
    space_limit: Option<u64>,
}

impl LogFile {
    fn new(file: File) -> io::Result<LogFile> {
        let end = file.metadata()?.len();
        Ok(LogFile {
            file,
            end,
            allocated: end,
            preallocating: true,
            #[cfg(test)]
            space_limit: None,
        })
    }

    /// Writes `group` where the last one ended; with `sync`, into zeros
    /// written (and made durable) ahead of it, then `fdatasync`.
    fn append(&mut self, group: &[u8], sync: bool) -> io::Result<()> {
        let end = self.end + group.len() as u64;
        if sync && self.preallocating && end > self.allocated {
            self.preallocate(end);
        }
        // On a full disk the zeros are skipped and this write extends the
        // file: it fails only if the group itself does not fit.
        self.file.seek(SeekFrom::Start(self.end))?;
        self.file.write_all(group)?;
        if sync {
            self.file.sync_data()?;
        }
        self.end = end;
        self.allocated = self.allocated.max(end);
        Ok(())
    }

    /// Extends the file with written zeros to at least `needed` bytes. If
    /// that fails, it gives the partial zeros back and stops preallocating
    /// (module docs): the zeros only make later syncs cheaper.
    fn preallocate(&mut self, needed: u64) {
        let step = self.end.clamp(PREALLOCATE_MIN, PREALLOCATE_MAX);
        let target = needed.max(self.allocated + step);
        if let Err(e) = self.write_zeros(target) {
            log::warn!(
                "chanstore.log: no room for {} bytes of preallocated zeros ({e}); \
                 appending without them until the log is rewritten",
                target - self.allocated
            );
            // Nothing past `allocated` holds data: give it back, as far as
            // the file system lets us (what stays is zeros, or part of
            // them, which read as the clean end).
            let _ = self.file.set_len(self.allocated);
            self.preallocating = false;
        }
    }

    /// Writes zeros from `allocated` to `target` and syncs them.
    fn write_zeros(&mut self, target: u64) -> io::Result<()> {
        #[cfg(test)]
        if self.space_limit.is_some_and(|limit| target > limit) {
            return Err(io::Error::other("no space left on the test's disk"));
        }
        self.file.seek(SeekFrom::Start(self.allocated))?;
        let zeros = [0u8; 64 << 10];
        let mut left = target - self.allocated;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            self.file.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        self.file.sync_data()?;
        self.allocated = target;
        Ok(())
    }
}

impl std::fmt::Debug for FilePersister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilePersister")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .finish()
    }
}

/// One batch: `count: u32`, then each write.
fn encode_batch<'a>(batch: impl ExactSizeIterator<Item = (&'a Key, Option<&'a [u8]>)>) -> Vec<u8> {
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
    payload
}

/// `sha256(key || seq || payload)[..4]`; layout 2's unkeyed checksum is
/// the same with an empty `key`.
fn group_checksum(key: &[u8], seq: u64, payload: &[u8]) -> [u8; 4] {
    let mut engine = sha256::Hash::engine();
    bitcoin::hashes::HashEngine::input(&mut engine, key);
    bitcoin::hashes::HashEngine::input(&mut engine, &seq.to_be_bytes());
    bitcoin::hashes::HashEngine::input(&mut engine, payload);
    sha256::Hash::from_engine(engine).to_byte_array()[..4]
        .try_into()
        .expect("4 bytes")
}

/// Frames `batches` (`count` of them, concatenated) as group `seq` of the
/// log with `key`.
fn encode_group(key: &LogKey, seq: u64, count: u32, batches: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(4 + batches.len());
    payload.extend_from_slice(&count.to_be_bytes());
    payload.extend_from_slice(batches);
    let mut group = Vec::with_capacity(GROUP_HEADER_LEN + payload.len());
    group.extend_from_slice(&GROUP_MAGIC);
    group.extend_from_slice(&seq.to_be_bytes());
    group.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    group.extend_from_slice(&group_checksum(key, seq, &payload));
    group.extend_from_slice(&payload);
    group
}

/// Applies one batch to `map`.
fn apply_batch(c: &mut Cursor<'_>, map: &mut BTreeMap<Key, Vec<u8>>) -> Result<(), DecodeError> {
    let n = c.count(10)?;
    for _ in 0..n {
        let key = Key::decode_from(c)?;
        if c.bool()? {
            map.insert(key, c.bytes()?.to_vec());
        } else {
            map.remove(&key);
        }
    }
    Ok(())
}

/// The group at the start of `bytes`, if it is whole, valid under `key`
/// and numbered `seq`: its payload and its length.
fn parse_group<'a>(bytes: &'a [u8], key: &[u8], seq: u64) -> Option<(&'a [u8], usize)> {
    let head = bytes.get(..GROUP_HEADER_LEN)?;
    if head[..4] != GROUP_MAGIC || u64::from_be_bytes(head[4..12].try_into().ok()?) != seq {
        return None;
    }
    let len = u32::from_be_bytes(head[12..16].try_into().ok()?) as usize;
    let payload = bytes.get(GROUP_HEADER_LEN..GROUP_HEADER_LEN.checked_add(len)?)?;
    (group_checksum(key, seq, payload) == head[16..20]).then_some((payload, GROUP_HEADER_LEN + len))
}

/// Whether a valid group (under `key`) numbered `seq` or higher starts
/// anywhere in `bytes`.
fn later_group_exists(bytes: &[u8], key: &[u8], seq: u64) -> bool {
    (0..bytes.len().saturating_sub(GROUP_HEADER_LEN - 1)).any(|at| {
        let rest = &bytes[at..];
        if rest[..4] != GROUP_MAGIC {
            return false;
        }
        let found = u64::from_be_bytes(rest[4..12].try_into().expect("8 bytes"));
        found >= seq && parse_group(rest, key, found).is_some()
    })
}

/// What reading a log found.
struct LogContents {
    map: BTreeMap<Key, Vec<u8>>,
    /// The dropped tail: (offset, bytes).
    torn: Option<(u64, u64)>,
}

/// Reads a log into its latest values (see the module doc for what is
/// dropped and what is refused).
fn read_log(bytes: &[u8]) -> Result<LogContents, DecodeError> {
    let mut map = BTreeMap::new();
    let (key, mut at, mut seq) = if bytes.starts_with(&MAGIC) {
        let key = header_key(bytes)?;
        // Group 1 is the snapshot the last rewrite made durable before it
        // renamed the file into place: it cannot be torn, so any fault in
        // it is damage, never a tail to drop.
        let (payload, len) =
            parse_group(&bytes[HEADER_LEN..], key, 1).ok_or_else(|| DecodeError::Checksum {
                context: format!("log group 1 at offset {HEADER_LEN} (the rewrite's snapshot)"),
            })?;
        apply_group(payload, &mut map)?;
        (key, HEADER_LEN + len, 2)
    } else if bytes.starts_with(&MAGIC_V2) {
        (&[][..], MAGIC_V2.len(), 1)
    } else {
        return read_legacy_log(bytes);
    };
    while at < bytes.len() {
        let Some((payload, len)) = parse_group(&bytes[at..], key, seq) else {
            if bytes[at..].iter().all(|b| *b == 0) {
                // Preallocated space (module docs): the clean end.
                return Ok(LogContents { map, torn: None });
            }
            if later_group_exists(&bytes[at + 1..], key, seq) {
                return Err(DecodeError::Checksum {
                    context: format!(
                        "log group {seq} at offset {at} (damaged, and acknowledged data follows)"
                    ),
                });
            }
            let torn = (at as u64, (bytes.len() - at) as u64);
            return Ok(LogContents {
                map,
                torn: Some(torn),
            });
        };
        apply_group(payload, &mut map)?;
        at += len;
        seq += 1;
    }
    Ok(LogContents { map, torn: None })
}

/// The key of a log in the current layout, once its header checksum holds.
fn header_key(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let header = bytes.get(..HEADER_LEN).ok_or(DecodeError::ShortRead {
        field: "log header",
    })?;
    let (key, checksum) = header[MAGIC.len()..].split_at(KEY_LEN);
    if header_checksum(key) != checksum {
        return Err(DecodeError::Checksum {
            context: "log header".into(),
        });
    }
    Ok(key)
}

/// `sha256(MAGIC || key)[..4]`.
fn header_checksum(key: &[u8]) -> [u8; 4] {
    sha256::Hash::hash(&[&MAGIC[..], key].concat()).to_byte_array()[..4]
        .try_into()
        .expect("4 bytes")
}

/// Applies every batch of one group's payload to `map`.
fn apply_group(payload: &[u8], map: &mut BTreeMap<Key, Vec<u8>>) -> Result<(), DecodeError> {
    let mut c = Cursor::new(payload, "log group");
    for _ in 0..c.count(4)? {
        apply_batch(&mut c, map)?;
    }
    c.end()
}

/// Reads a version 0.1 log: `len | sha256(payload)[..4] | batch` records.
/// A record cut short, or whose checksum fails, at the very end is the torn
/// last write; one followed by more records is corruption.
fn read_legacy_log(bytes: &[u8]) -> Result<LogContents, DecodeError> {
    let mut map = BTreeMap::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let torn = Some((at as u64, rest.len() as u64));
        if rest.len() < 8 || rest.iter().all(|b| *b == 0) {
            return Ok(LogContents { map, torn });
        }
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let Some(payload) = rest.get(8..8 + len) else {
            return Ok(LogContents { map, torn });
        };
        let next = at + 8 + len;
        if sha256::Hash::hash(payload).to_byte_array()[..4] != rest[4..8] {
            // The last record, or zeros the file system left after it.
            if next >= bytes.len() || rest.iter().all(|b| *b == 0) {
                return Ok(LogContents { map, torn });
            }
            return Err(DecodeError::Checksum {
                context: format!("log record at offset {at}"),
            });
        }
        let mut c = Cursor::new(payload, "log record");
        apply_batch(&mut c, &mut map)?;
        c.end()?;
        at = next;
    }
    Ok(LogContents { map, torn: None })
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl FilePersister {
    /// Opens (or creates) the log in `dir`, recovering from a torn tail and
    /// compacting it. Takes the directory's lock first and holds it until
    /// the persister is dropped: while another persister (in this process
    /// or another) has `dir` open, this fails with [`StoreError::Persist`]
    /// ("locked by another writer") and touches nothing.
    pub fn open(dir: impl AsRef<Path>, options: FileOptions) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let io_err = |e: io::Error| StoreError::Persist(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(&dir).map_err(io_err)?;
        // Before anything is read: another writer may be appending.
        let lock = DirLock::acquire(&dir)?;
        let path = dir.join(LOG_NAME);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io_err)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        let contents = read_log(&bytes)?;
        if let Some((offset, len)) = contents.torn {
            log::warn!(
                "{}: dropped {len} bytes at offset {offset}: the unfinished last write of the log \
                 (never acknowledged)",
                path.display()
            );
        }
        let map = contents.map;
        let mut key = [0; KEY_LEN];
        bitcoin::secp256k1::rand::RngCore::fill_bytes(
            &mut bitcoin::secp256k1::rand::thread_rng(),
            &mut key,
        );
        let file = Self::rewrite(&dir, &key, &map).map_err(io_err)?;
        let live: HashMap<Key, usize> = map.iter().map(|(k, v)| (*k, v.len())).collect();
        let live_bytes = live.values().map(|v| *v as u64).sum();
        let log_len = file.end;
        Ok(FilePersister {
            dir,
            options,
            key,
            recovered: contents.torn,
            shared: Mutex::new(Shared {
                pending: Vec::new(),
                pending_batches: 0,
                // Group 1 is the snapshot the rewrite just wrote.
                next_group: 2,
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
            _lock: lock,
        })
    }

    /// The unfinished write dropped from the end of the log when it was
    /// opened, if any: its offset and length in bytes.
    pub fn recovered_tail(&self) -> Option<(u64, u64)> {
        self.recovered
    }

    /// Writes `map` as a fresh log with `key`, atomically replacing the old
    /// one, and returns it opened for appending.
    fn rewrite(dir: &Path, key: &LogKey, map: &BTreeMap<Key, Vec<u8>>) -> io::Result<LogFile> {
        let tmp = dir.join(TMP_NAME);
        {
            let mut f = File::create(&tmp)?;
            // Header and snapshot in one write; group 1 even when `map` is
            // empty (no batch), so that group 1 is always the snapshot.
            let mut log = MAGIC.to_vec();
            log.extend_from_slice(key);
            log.extend_from_slice(&header_checksum(key));
            log.extend(if map.is_empty() {
                encode_group(key, 1, 0, &[])
            } else {
                let batch = encode_batch(map.iter().map(|(k, v)| (k, Some(&v[..]))));
                encode_group(key, 1, 1, &batch)
            });
            f.write_all(&log)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(LOG_NAME))?;
        sync_dir(dir)?;
        LogFile::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(dir.join(LOG_NAME))?,
        )
    }

    /// Compacts the log: reads it back (only the leader writes, and it holds
    /// the file lock) and rewrites its live values.
    fn compact(&self, file: &mut LogFile) -> io::Result<u64> {
        let mut bytes = Vec::new();
        File::open(self.dir.join(LOG_NAME))?.read_to_end(&mut bytes)?;
        let contents = read_log(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        *file = Self::rewrite(&self.dir, &self.key, &contents.map)?;
        Ok(file.end)
    }

    /// Writes `group` and makes it durable; compacts after if asked.
    /// Returns the new log length when it compacted.
    fn flush(&self, file: &mut LogFile, group: &[u8], compact: bool) -> io::Result<Option<u64>> {
        file.append(group, self.options.sync)?;
        if compact {
            return self.compact(file).map(Some);
        }
        Ok(None)
    }

    /// Checks the log is still writable and counts `batch` in the live data.
    fn account(s: &mut Shared, batch: &[(Key, Option<Vec<u8>>)]) -> io::Result<()> {
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
        Ok(())
    }

    /// Without group commit: one group per batch, with its own `fsync`.
    ///
    /// Lock order: the file lock, then the shared lock (the leader of a
    /// group commit takes the file lock with the shared lock released).
    fn write_alone(&self, batch: &[(Key, Option<Vec<u8>>)], encoded: &[u8]) -> io::Result<()> {
        let mut file = self.file.lock();
        let mut s = self.shared.lock();
        Self::account(&mut s, batch)?;
        let seq = s.next_group;
        s.next_group += 1;
        let group = encode_group(&self.key, seq, 1, encoded);
        let compact = self.should_compact(&s, group.len());
        s.log_len += group.len() as u64;
        drop(s);
        let result = self.flush(&mut file, &group, compact);
        let mut s = self.shared.lock();
        match result {
            Ok(compacted) => {
                if let Some(len) = compacted {
                    s.log_len = len;
                    s.next_group = 2;
                }
                Ok(())
            }
            Err(e) => {
                s.failed = Some(e.kind());
                Err(e)
            }
        }
    }

    fn should_compact(&self, s: &Shared, adding: usize) -> bool {
        let len = s.log_len + adding as u64;
        len >= self.options.compact_min_bytes && len >= 4 * s.live_bytes.max(1)
    }
}

impl Persister for FilePersister {
    fn write_batch(&self, batch: &[(Key, Option<Vec<u8>>)]) -> io::Result<()> {
        let encoded = encode_batch(batch.iter().map(|(k, v)| (k, v.as_deref())));
        if !self.options.group_commit {
            return self.write_alone(batch, &encoded);
        }
        let mut s = self.shared.lock();
        Self::account(&mut s, batch)?;
        s.pending.extend_from_slice(&encoded);
        s.pending_batches += 1;
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
            // Lead: flush everything queued so far as one group with one
            // fsync. The shared lock is released meanwhile so others can queue.
            s.leader_active = true;
            let buf = std::mem::take(&mut s.pending);
            let count = std::mem::take(&mut s.pending_batches);
            let seq = s.next_group;
            s.next_group += 1;
            let upto = s.next_ticket;
            let group = encode_group(&self.key, seq, count, &buf);
            let compact = self.should_compact(&s, group.len());
            drop(s);
            let result = self.flush(&mut self.file.lock(), &group, compact);
            s = self.shared.lock();
            s.leader_active = false;
            match result {
                Ok(compacted) => {
                    s.durable_ticket = upto;
                    match compacted {
                        Some(len) => {
                            s.log_len = len;
                            s.next_group = 2;
                        }
                        None => s.log_len += group.len() as u64,
                    }
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
        Ok(read_log(&bytes)?.map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn tmpdir(name: &str) -> PathBuf {
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

    fn batch(n: u64) -> Vec<u8> {
        encode_batch([(&Key::Work(n), Some(&[n as u8][..]))].into_iter())
    }

    const KEY: LogKey = [0x5c; KEY_LEN];

    /// A log of three groups under [`KEY`]; the last holds two batches.
    fn three_groups() -> (Vec<u8>, usize, usize) {
        let mut log = MAGIC.to_vec();
        log.extend_from_slice(&KEY);
        log.extend_from_slice(&header_checksum(&KEY));
        log.extend(encode_group(&KEY, 1, 1, &batch(1)));
        log.extend(encode_group(&KEY, 2, 1, &batch(2)));
        let second_end = log.len();
        let two: Vec<u8> = batch(3).into_iter().chain(batch(4)).collect();
        log.extend(encode_group(&KEY, 3, 2, &two));
        (
            log,
            second_end,
            HEADER_LEN + encode_group(&KEY, 1, 1, &batch(1)).len(),
        )
    }

    /// The key in a log file's header.
    pub(super) fn key_of(log: &[u8]) -> LogKey {
        log[MAGIC.len()..MAGIC.len() + KEY_LEN].try_into().unwrap()
    }

    #[test]
    fn every_cut_of_the_last_group_drops_exactly_that_group() {
        let (log, second_end, _) = three_groups();
        for cut in second_end..log.len() {
            let contents = read_log(&log[..cut]).unwrap();
            assert_eq!(contents.map.len(), 2, "cut {cut}");
            let torn = (cut > second_end).then(|| (second_end as u64, (cut - second_end) as u64));
            assert_eq!(contents.torn, torn, "cut {cut}");
        }
        let whole = read_log(&log).unwrap();
        assert_eq!((whole.map.len(), whole.torn), (4, None));
    }

    #[test]
    fn zeros_and_garbage_after_the_last_write_are_dropped() {
        let (log, _, _) = three_groups();
        for tail in [vec![0u8; 4096], vec![0xa5; 37], b"CSGR".repeat(9), {
            let mut t = vec![0u8; 600];
            t[599] = 1;
            t
        }] {
            let mut bad = log.clone();
            bad.extend_from_slice(&tail);
            let contents = read_log(&bad).unwrap();
            assert_eq!(contents.map.len(), 4);
            // Zeros alone are preallocated space, not a torn write.
            let torn = tail.iter().any(|b| *b != 0);
            let expected = torn.then_some((log.len() as u64, tail.len() as u64));
            assert_eq!(contents.torn, expected);
        }
    }

    #[test]
    fn a_garbled_last_group_is_dropped_whole() {
        let (log, second_end, _) = three_groups();
        // Any byte of the last group (two batches, one write) changed: the
        // whole group goes, the two before it stay.
        for at in second_end..log.len() {
            let mut bad = log.clone();
            bad[at] ^= 0x40;
            let contents = read_log(&bad).unwrap();
            assert_eq!(contents.map.len(), 2, "byte {at}");
            assert_eq!(contents.torn.map(|t| t.0), Some(second_end as u64));
        }
        // Overwritten with zeros, as a file system may leave it.
        let mut zeroed = log.clone();
        zeroed[second_end..].fill(0);
        assert_eq!(read_log(&zeroed).unwrap().map.len(), 2);
    }

    #[test]
    fn damage_before_an_acknowledged_group_is_an_error() {
        let (log, _, first_end) = three_groups();
        for at in HEADER_LEN..first_end {
            let mut bad = log.clone();
            bad[at] ^= 1;
            assert!(
                matches!(read_log(&bad), Err(DecodeError::Checksum { .. })),
                "byte {at} of the first group"
            );
        }
    }

    #[test]
    fn version_one_logs_are_still_read() {
        let record = |n: u64| {
            let payload = batch(n);
            let mut r = (payload.len() as u32).to_be_bytes().to_vec();
            r.extend_from_slice(&sha256::Hash::hash(&payload).to_byte_array()[..4]);
            r.extend(payload);
            r
        };
        let (a, b) = (record(1), record(2));
        let log: Vec<u8> = a.iter().chain(&b).copied().collect();
        assert_eq!(read_log(&log).unwrap().map.len(), 2);
        for cut in a.len() + 1..log.len() {
            let contents = read_log(&log[..cut]).unwrap();
            assert_eq!(contents.map.len(), 1, "cut {cut}");
        }
        let mut bad = log.clone();
        bad[10] ^= 1;
        assert!(matches!(read_log(&bad), Err(DecodeError::Checksum { .. })));
        let mut zeros = log.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert_eq!(read_log(&zeros).unwrap().map.len(), 2);
    }

    #[test]
    fn open_drops_a_torn_tail_and_says_so() {
        let dir = tmpdir("torn");
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        p.write_batch(&[(Key::Work(1), Some(vec![1]))]).unwrap();
        drop(p);
        let path = dir.join(LOG_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let good = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
        bytes.truncate(good);
        bytes.extend_from_slice(&[0xa5; 512]);
        std::fs::write(&path, &bytes).unwrap();
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        assert_eq!(p.recovered_tail(), Some((good as u64, 512)));
        assert_eq!(p.load().unwrap().len(), 1);
        // The rewrite on open left a clean log.
        drop(p);
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        assert_eq!(p.recovered_tail(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A group of `seq` with an empty payload, checksummed as a peer who
    /// knows the layout but not the log's key could make it (the unkeyed
    /// checksum of layout 2): the way an onion or any other peer-chosen
    /// value stored as is can carry one.
    fn forged_group(seq: u64) -> Vec<u8> {
        let mut g = GROUP_MAGIC.to_vec();
        g.extend_from_slice(&seq.to_be_bytes());
        g.extend_from_slice(&0u32.to_be_bytes());
        g.extend_from_slice(&group_checksum(&[], seq, &[]));
        g
    }

    /// A crash that tears the group holding a peer's value shaped like a
    /// later group must drop that torn group, not make the log look damaged
    /// before acknowledged data: a node that refuses to restart cannot
    /// watch its channels.
    #[test]
    fn a_forged_group_inside_a_torn_group_does_not_block_open() {
        let dir = tmpdir("forged");
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        p.write_batch(&[(Key::Work(1), Some(vec![1; 40]))]).unwrap();
        let torn_at = p.file.lock().end;
        let mut planted = vec![0xa5; 100];
        for seq in [2, 3, 1 << 40, u64::MAX] {
            planted.extend(forged_group(seq));
        }
        planted.extend_from_slice(&[0xa5; 100]);
        p.write_batch(&[(Key::Work(2), Some(planted))]).unwrap();
        let end = p.file.lock().end;
        drop(p);
        // The crash: the last sectors of the group never reached the disk.
        let path = dir.join(LOG_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[end as usize - 3..end as usize].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let p = FilePersister::open(&dir, FileOptions::default())
            .expect("a torn last group is dropped, whatever its payload holds");
        let map = p.load().unwrap();
        assert_eq!(map.keys().collect::<Vec<_>>(), [&Key::Work(1)]);
        assert_eq!(p.recovered_tail().map(|t| t.0), Some(torn_at));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The header and group 1 are written whole and synced before the
    /// rename that makes them the log, so no crash can tear them: damage
    /// there, or a log cut inside them, is an error. Read as a torn tail it
    /// would silently drop every channel.
    #[test]
    fn damage_to_the_header_or_the_snapshot_is_an_error_not_a_torn_tail() {
        let dir = tmpdir("snapshot");
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        p.write_batch(&[(Key::Work(1), Some(vec![1; 40]))]).unwrap();
        drop(p);
        // Reopened: the log is now the header and a snapshot of Work(1).
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        let snapshot_end = p.file.lock().end as usize;
        drop(p);
        let log = std::fs::read(dir.join(LOG_NAME)).unwrap();
        assert_eq!(read_log(&log).unwrap().map.len(), 1);
        for at in MAGIC.len()..snapshot_end {
            let mut bad = log.clone();
            bad[at] ^= 0x10;
            assert!(
                matches!(read_log(&bad), Err(DecodeError::Checksum { .. })),
                "byte {at}"
            );
        }
        for cut in MAGIC.len()..snapshot_end {
            assert!(read_log(&log[..cut]).is_err(), "cut {cut}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An empty store's log still has its snapshot group (with no batch),
    /// so the first flush after open is group 2 and may be torn like any.
    #[test]
    fn an_empty_logs_first_flush_is_group_two_and_may_be_torn() {
        let dir = tmpdir("empty");
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        let first = p.file.lock().end;
        assert_eq!(
            read_log(&std::fs::read(dir.join(LOG_NAME)).unwrap())
                .unwrap()
                .map
                .len(),
            0
        );
        p.write_batch(&[(Key::Work(1), Some(vec![1; 40]))]).unwrap();
        let end = p.file.lock().end as usize;
        drop(p);
        let mut log = std::fs::read(dir.join(LOG_NAME)).unwrap();
        assert_eq!(read_log(&log).unwrap().map.len(), 1);
        log[end - 1] ^= 1;
        let contents = read_log(&log).unwrap();
        assert_eq!(contents.map.len(), 0);
        assert_eq!(contents.torn.map(|t| t.0), Some(first));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Readers before layout 3 take any file without their `CSLOG\0\0\2`
    /// header for a 0.1 log (`read_legacy_log`, unchanged since): a layout
    /// 3 log must make that reader fail, never look like an empty or torn
    /// store it would then rewrite.
    #[test]
    fn an_older_reader_refuses_a_version_3_log() {
        let dir = tmpdir("downgrade");
        for values in [0, 1, 5] {
            let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
            for i in 0..values {
                p.write_batch(&[(Key::Work(i), Some(vec![7; 30]))]).unwrap();
            }
            drop(p);
            let log = std::fs::read(dir.join(LOG_NAME)).unwrap();
            assert!(log.starts_with(&MAGIC));
            assert!(
                matches!(read_legacy_log(&log), Err(DecodeError::Checksum { .. })),
                "{values} values"
            );
        }
        let (log, _, _) = three_groups();
        assert!(read_legacy_log(&log).is_err());
        let _ = std::fs::remove_dir_all(&dir);
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
        let len = p.shared.lock().log_len;
        assert!(len < 200 * 50, "log was never compacted: {len} bytes");
        let map = p.load().unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(map[&Key::Work(199 % 3)], vec![199u8; 50]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A log written with `sync` on, its logical end and the file's length.
    fn preallocated_log(name: &str, batches: u64) -> (PathBuf, u64, u64) {
        let dir = tmpdir(name);
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        for i in 0..batches {
            p.write_batch(&[(Key::Work(i), Some(vec![i as u8; 100]))])
                .unwrap();
        }
        let end = p.file.lock().end;
        drop(p);
        let len = std::fs::metadata(dir.join(LOG_NAME)).unwrap().len();
        (dir, end, len)
    }

    #[test]
    fn groups_overwrite_preallocated_zeros_and_reopen_clean() {
        // 400 groups of about 130 bytes: past the first 16 KiB extension,
        // so the log was extended more than once.
        let (dir, end, len) = preallocated_log("prealloc", 400);
        assert!(end > PREALLOCATE_MIN, "{end}");
        assert!(len > end, "no zeros ahead of the groups: {len} <= {end}");
        let bytes = std::fs::read(dir.join(LOG_NAME)).unwrap();
        assert!(bytes[end as usize..].iter().all(|b| *b == 0));
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        assert_eq!(p.recovered_tail(), None);
        let map = p.load().unwrap();
        assert_eq!(map.len(), 400);
        assert_eq!(map[&Key::Work(399)], vec![399u64 as u8; 100]);
        // Written again after the reopen, read again: nothing lost between.
        p.write_batch(&[(Key::Work(1000), Some(vec![7]))]).unwrap();
        drop(p);
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        assert_eq!(p.load().unwrap().len(), 401);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_group_in_preallocated_space_is_dropped_and_reported() {
        let (dir, end, len) = preallocated_log("prealloc-torn", 20);
        assert!(len > end + 200);
        let path = dir.join(LOG_NAME);
        let key = key_of(&std::fs::read(&path).unwrap());
        let group = encode_group(&key, 21, 1, &batch(21));
        for (from, to) in [(0, group.len() / 2), (group.len() / 2, group.len() - 1)] {
            // Half a group (its start, or only its end) over the zeros,
            // zeros after it: the interrupted flush of group 21.
            let mut bytes = std::fs::read(&path).unwrap();
            let at = end as usize + from;
            bytes[at..end as usize + to].copy_from_slice(&group[from..to]);
            let copy = tmpdir(&format!("prealloc-torn-{from}"));
            std::fs::create_dir_all(&copy).unwrap();
            std::fs::write(copy.join(LOG_NAME), &bytes).unwrap();
            let p = FilePersister::open(&copy, FileOptions::default()).unwrap();
            assert_eq!(p.load().unwrap().len(), 20, "from {from}");
            assert_eq!(
                p.recovered_tail(),
                Some((end, bytes.len() as u64 - end)),
                "from {from}"
            );
            let _ = std::fs::remove_dir_all(&copy);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_valid_group_after_zeros_is_refused() {
        // Zeros between two groups are not free space: the second group was
        // acknowledged after data that is now gone.
        let (dir, end, _) = preallocated_log("prealloc-gap", 5);
        let path = dir.join(LOG_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let later = encode_group(&key_of(&bytes), 7, 1, &batch(7));
        let at = end as usize + 300;
        bytes[at..at + later.len()].copy_from_slice(&later);
        assert!(matches!(
            read_log(&bytes),
            Err(DecodeError::Checksum { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The preallocated log (module docs): crash states, the accounting of
/// `end`, `allocated` and `log_len`, and a disk with no room for the zeros.
#[cfg(test)]
mod preallocation_tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        super::tests::tmpdir(&format!("prealloc-{name}"))
    }

    fn value(i: u64) -> Vec<u8> {
        // Values that end in zeros, so a group's last bytes match the
        // preallocated zeros after it.
        let mut v = vec![(i as u8) | 1; 40];
        v.extend_from_slice(&[0; 24]);
        v
    }

    /// Every crash state of the last group's flush into preallocated zeros
    /// (any prefix of the group written, or any suffix, or only the part from
    /// one sector on, with zeros elsewhere), and every crash state of a
    /// preallocation (the zero tail cut anywhere), reopens with every
    /// acknowledged batch and nothing of a partial one.
    #[test]
    fn every_crash_state_of_a_preallocated_log_reopens_with_the_acknowledged_batches() {
        let dir = tmpdir("states");
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        let n = 30u64;
        for i in 0..n {
            p.write_batch(&[(Key::Work(i), Some(value(i)))]).unwrap();
        }
        let (before_last, seq) = (p.file.lock().end, p.shared.lock().next_group);
        let last = encode_group(
            &p.key,
            seq,
            1,
            &encode_batch([(&Key::Work(n), Some(&value(n)[..]))].into_iter()),
        );
        p.write_batch(&[(Key::Work(n), Some(value(n)))]).unwrap();
        let (end, allocated) = {
            let f = p.file.lock();
            (f.end, f.allocated)
        };
        assert_eq!(end, before_last + last.len() as u64);
        assert_eq!(
            p.shared.lock().log_len,
            end,
            "log_len is the logical length"
        );
        // load() on the live, preallocated log.
        assert_eq!(p.load().unwrap().len(), n as usize + 1);
        drop(p);
        let full = std::fs::read(dir.join(LOG_NAME)).unwrap();
        assert_eq!(full.len() as u64, allocated);
        assert_eq!(&full[before_last as usize..end as usize], &last[..]);
        let (b, e) = (before_last as usize, end as usize);
        let mut states = Vec::new();
        for cut in 0..last.len() {
            // A prefix of the group.
            let mut s = full.clone();
            s[b + cut..e].fill(0);
            states.push((s, cut == last.len(), format!("prefix {cut}")));
            // Only the bytes from `cut` on.
            let mut s = full.clone();
            s[b..b + cut.max(1)].fill(0);
            states.push((s, false, format!("suffix from {cut}")));
        }
        for cut in (e..full.len()).step_by(97) {
            states.push((
                full[..cut].to_vec(),
                true,
                format!("zero tail cut at {cut}"),
            ));
        }
        for (bytes, whole, what) in states {
            let contents = read_log(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
            let expect =
                n as usize + usize::from(whole || contents.map.contains_key(&Key::Work(n)));
            assert_eq!(contents.map.len(), expect, "{what}");
            for i in 0..n {
                assert_eq!(contents.map[&Key::Work(i)], value(i), "{what}");
            }
            if let Some(v) = contents.map.get(&Key::Work(n)) {
                assert_eq!(v, &value(n), "{what}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `end`, `allocated` and `log_len` across compactions, with and without
    /// `sync` and group commit; `load()` between writes and after reopen.
    #[test]
    fn accounting_holds_across_compaction_sync_and_write_alone() {
        for (sync, group_commit) in [(true, true), (true, false), (false, true), (false, false)] {
            let dir = tmpdir(&format!("acct-{sync}-{group_commit}"));
            let options = FileOptions {
                sync,
                group_commit,
                compact_min_bytes: 4_000,
            };
            let p = FilePersister::open(&dir, options.clone()).unwrap();
            let mut model = BTreeMap::new();
            for i in 0..300u64 {
                let key = Key::Work(i % 7);
                if i % 11 == 0 {
                    p.write_batch(&[(key, None)]).unwrap();
                    model.remove(&key);
                } else {
                    p.write_batch(&[(key, Some(value(i)))]).unwrap();
                    model.insert(key, value(i));
                }
                let (end, allocated) = {
                    let f = p.file.lock();
                    (f.end, f.allocated)
                };
                let file_len = std::fs::metadata(dir.join(LOG_NAME)).unwrap().len();
                assert_eq!(p.shared.lock().log_len, end, "{sync} {group_commit} at {i}");
                assert_eq!(file_len, allocated, "{sync} {group_commit} at {i}");
                assert!(allocated >= end);
                if !sync {
                    assert_eq!(allocated, end, "no preallocation without sync");
                }
                if i % 37 == 0 {
                    assert_eq!(p.load().unwrap(), model, "{sync} {group_commit} at {i}");
                }
            }
            assert_eq!(p.load().unwrap(), model);
            drop(p);
            let p = FilePersister::open(&dir, options).unwrap();
            assert_eq!(p.recovered_tail(), None);
            assert_eq!(p.load().unwrap(), model);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// With room for the groups but not for the zeros ahead of them, every
    /// batch is still written (appended, as without preallocation), and the
    /// persister is not poisoned.
    #[test]
    fn a_disk_with_no_room_for_the_zeros_still_takes_every_batch() {
        let dir = tmpdir("full");
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        p.write_batch(&[(Key::Work(0), Some(value(0)))]).unwrap();
        let allocated = p.file.lock().allocated;
        // From now on no extension fits.
        p.file.lock().space_limit = Some(allocated);
        for i in 1..400u64 {
            p.write_batch(&[(Key::Work(i), Some(value(i)))])
                .unwrap_or_else(|e| panic!("batch {i}: {e}"));
        }
        let (end, allocated_after) = {
            let f = p.file.lock();
            (f.end, f.allocated)
        };
        assert!(end > allocated, "the groups went past the last extension");
        assert_eq!(allocated_after, end, "no zeros were added");
        assert!(!p.file.lock().preallocating, "it stopped trying");
        let len = std::fs::metadata(dir.join(LOG_NAME)).unwrap().len();
        assert_eq!(len, end, "the file ends with the last group");
        drop(p);
        let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
        assert_eq!(p.recovered_tail(), None);
        let map = p.load().unwrap();
        assert_eq!(map.len(), 400);
        assert_eq!(map[&Key::Work(399)], value(399));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
