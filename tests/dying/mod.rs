//! The crash-points suite's storage: a persister that dies at a chosen
//! batch ([`Dying`]), over any backend ([`Backend`]), and what each backend's
//! disk looks like after the crash ([`Cut`]).
//!
//! The store writes one `write_batch` per group commit (one journal flush),
//! so "batch `n`" is the `n`-th group: for the SQL backends the `n`-th
//! committed transaction. A crash at batch `k + 1` leaves the first `k`
//! and then, as the [`Cut`] says, nothing of batch `k + 1`, part of it (a
//! write that never commits) or all of it (committed, but the store died
//! before it heard so). The dead persister is dropped (its connection or
//! file lock goes with the process) and the storage is reopened as the
//! crash left it: for SQLite, from a copy of the database and its WAL taken
//! at the instant of the crash, so no clean close (which checkpoints) hides
//! a torn transaction.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chanstore::persist::Key;
use chanstore::{FileOptions, FilePersister, MemoryPersister, Persister, StoreError};
use parking_lot::Mutex;

type Batch = [(Key, Option<Vec<u8>>)];

/// How the storage is left by a crash during batch `k + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Batch `k + 1` is never written.
    Clean,
    /// Batch `k + 1` is written part way and never commits. File: the log
    /// record is cut in half. SQLite: the WAL frames of its transaction are
    /// cut in half (no commit frame). Postgres: the session is terminated
    /// in the middle of the transaction's upsert.
    Torn,
    /// Batch `k + 1` is written whole, then zeros follow (the file log, or
    /// SQLite's WAL).
    Zeros,
    /// Batch `k + 1` is written whole, then garbage follows (the file log,
    /// or SQLite's WAL).
    Garbage,
    /// Batch `k + 1`'s transaction fails part way (a trigger aborts the
    /// insert of a row put in the middle of it) and is rolled back.
    RolledBack,
    /// Batch `k + 1` commits, and the store dies before it hears so.
    Unacked,
}

/// The row a `RolledBack` or Postgres `Torn` cut puts in the middle of the
/// dying batch; the storage's trigger fails the transaction on it. No
/// store ever writes this key.
pub const POISON: Key = Key::Work(u64::MAX);

fn poisoned(batch: &Batch) -> Vec<(Key, Option<Vec<u8>>)> {
    let mut rows = batch.to_vec();
    rows.insert(rows.len() / 2, (POISON, Some(b"the crash".to_vec())));
    rows
}

fn poison_hex() -> String {
    POISON
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One kind of storage: a fresh one per run, and the cuts it can suffer.
pub trait Backend {
    /// Names the backend in messages.
    fn name(&self) -> &'static str;
    /// The cuts a crash can make in this backend, `Clean` first.
    fn cuts(&self) -> &'static [Cut];
    /// New, empty storage for one run.
    fn storage(&self) -> Box<dyn Storage>;
}

/// One run's storage.
pub trait Storage: Send + Sync + Debug {
    /// Opens it for the first time.
    fn open(&self) -> Arc<dyn Persister>;
    /// The process dies now: `dying` is the batch being written and how
    /// the crash cuts it (`None`: no write was under way). Leaves the
    /// storage as the crash would, then drops `p` (the last reference).
    fn crash(&self, p: Arc<dyn Persister>, dying: Option<(&Batch, Cut)>);
    /// Opens what the crash left (the dead persister is gone).
    fn reopen(&self) -> Arc<dyn Persister>;
}

/// Counts the batches written through it; batch number `die_at` (counted
/// from 0) is the crash, cut as `cut` says: the storage is left as the
/// crash leaves it and every later batch fails.
#[derive(Debug)]
pub struct Dying {
    /// Declared first: dropped (its connection closed) before the storage.
    inner: Mutex<Option<Arc<dyn Persister>>>,
    storage: Box<dyn Storage>,
    written: Mutex<usize>,
    die_at: Option<usize>,
    cut: Cut,
    died: Mutex<bool>,
    /// What the storage holds: every batch written, applied in order.
    model: Mutex<BTreeMap<Key, Vec<u8>>>,
    /// What it must hold once reopened, fixed at the crash.
    left: Mutex<Option<BTreeMap<Key, Vec<u8>>>>,
}

fn apply(model: &mut BTreeMap<Key, Vec<u8>>, batch: &Batch) {
    for (k, v) in batch {
        match v {
            Some(v) => model.insert(*k, v.clone()),
            None => model.remove(k),
        };
    }
}

impl Dying {
    /// A new storage of `backend`, opened, to die at batch `die_at`.
    pub fn new(backend: &dyn Backend, die_at: Option<usize>, cut: Cut) -> Dying {
        let storage = backend.storage();
        Dying {
            inner: Mutex::new(Some(storage.open())),
            storage,
            written: Mutex::new(0),
            die_at,
            cut,
            died: Mutex::new(false),
            model: Mutex::default(),
            left: Mutex::default(),
        }
    }

    /// Batches written (or attempted) so far.
    pub fn written(&self) -> usize {
        *self.written.lock()
    }

    /// Whether the scheduled crash happened.
    pub fn died(&self) -> bool {
        *self.died.lock()
    }

    fn die(&self, dying: Option<(&Batch, Cut)>) {
        let Some(p) = self.inner.lock().take() else {
            return;
        };
        let mut left = self.model.lock().clone();
        if let Some((batch, Cut::Zeros | Cut::Garbage | Cut::Unacked)) = dying {
            apply(&mut left, batch);
        }
        *self.left.lock() = Some(left);
        self.storage.crash(p, dying);
    }

    /// The process dies now (if it has not yet), and the storage is
    /// reopened as it was left: holding exactly the batches the crash kept
    /// (every one before it, and the dying one if it committed).
    pub fn restart(&self) -> Arc<dyn Persister> {
        self.die(None);
        let p = self.storage.reopen();
        let left = self.left.lock().take().expect("restarted once");
        let got = p.load().expect("the storage loads after the crash");
        if got != left {
            let lost: Vec<_> = left.keys().filter(|k| got.get(k) != left.get(k)).collect();
            let extra: Vec<_> = got.keys().filter(|k| !left.contains_key(k)).collect();
            panic!(
                "after a crash at batch {:?} ({:?}) the storage differs from the batches \
                 it kept: lost or changed {lost:?}, extra {extra:?}",
                self.die_at, self.cut
            );
        }
        p
    }
}

impl Persister for Dying {
    fn write_batch(&self, batch: &Batch) -> io::Result<()> {
        let mut n = self.written.lock();
        let at = *n;
        *n += 1;
        if self.die_at == Some(at) {
            *self.died.lock() = true;
            self.die(Some((batch, self.cut)));
        }
        let Some(p) = self.inner.lock().clone() else {
            return Err(io::Error::other("crashed"));
        };
        p.write_batch(batch)?;
        apply(&mut self.model.lock(), batch);
        Ok(())
    }

    fn load(&self) -> Result<BTreeMap<Key, Vec<u8>>, StoreError> {
        let p = self.inner.lock().clone();
        p.expect("load from a dead persister").load()
    }
}

/// Writes the dying batch as `Clean` (not at all) or `Unacked` (whole)
/// say; any other cut is the backend's.
fn clean_or_unacked(p: &dyn Persister, batch: &Batch, cut: Cut) {
    match cut {
        Cut::Clean => {}
        Cut::Unacked => p.write_batch(batch).expect("the dying batch commits"),
        other => panic!("{other:?} is not a cut of this backend"),
    }
}

/// A directory of its own for each run, under one per backend and process.
#[derive(Debug)]
struct Dirs {
    root: PathBuf,
    next: AtomicUsize,
}

impl Dirs {
    fn new(name: &str) -> Dirs {
        let root = std::env::temp_dir().join(format!(
            "chanstore-crash-points-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Dirs {
            root,
            next: AtomicUsize::new(0),
        }
    }

    fn fresh(&self) -> PathBuf {
        let dir = self
            .root
            .join(self.next.fetch_add(1, Ordering::Relaxed).to_string());
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Removes one run's directory when the run ends.
#[derive(Debug)]
struct RunDir(PathBuf);

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- memory ----

/// `MemoryPersister`: what it held at the crash is what a new one starts with.
pub struct Memory;

#[derive(Debug, Default)]
struct MemoryStorage {
    left: Mutex<BTreeMap<Key, Vec<u8>>>,
}

impl Backend for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn cuts(&self) -> &'static [Cut] {
        &[Cut::Clean, Cut::Unacked]
    }
    fn storage(&self) -> Box<dyn Storage> {
        Box::<MemoryStorage>::default()
    }
}

impl Storage for MemoryStorage {
    fn open(&self) -> Arc<dyn Persister> {
        Arc::new(MemoryPersister::new())
    }
    fn crash(&self, p: Arc<dyn Persister>, dying: Option<(&Batch, Cut)>) {
        if let Some((batch, cut)) = dying {
            clean_or_unacked(&*p, batch, cut);
        }
        *self.left.lock() = p.load().unwrap();
    }
    fn reopen(&self) -> Arc<dyn Persister> {
        let fresh = MemoryPersister::new();
        let all: Vec<_> = self
            .left
            .lock()
            .iter()
            .map(|(k, v)| (*k, Some(v.clone())))
            .collect();
        fresh.write_batch(&all).unwrap();
        Arc::new(fresh)
    }
}

// ---- file ----

/// `FilePersister` (no fsync: the process dies, not the machine), with the
/// log cut or padded at the crash.
pub struct File(Dirs);

impl File {
    /// Runs in a temporary directory of this process.
    pub fn new() -> File {
        File(Dirs::new("file"))
    }
}

#[derive(Debug)]
struct FileStorage(RunDir);

impl Backend for File {
    fn name(&self) -> &'static str {
        "file"
    }
    fn cuts(&self) -> &'static [Cut] {
        &[Cut::Clean, Cut::Torn, Cut::Zeros, Cut::Garbage]
    }
    fn storage(&self) -> Box<dyn Storage> {
        Box::new(FileStorage(RunDir(self.0.fresh())))
    }
}

/// Cuts (`Torn`) or pads (`Zeros`, `Garbage`) a file's tail, where `before`
/// is its length before the dying batch was written.
fn cut_tail(path: &Path, before: u64, cut: Cut) {
    let after = std::fs::metadata(path).unwrap().len();
    assert!(
        after > before,
        "{}: the dying batch wrote nothing",
        path.display()
    );
    if cut == Cut::Torn {
        let file = OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(before + (after - before) / 2).unwrap();
    }
    let mut append = OpenOptions::new().append(true).open(path).unwrap();
    match cut {
        Cut::Zeros => append.write_all(&[0; 700]).unwrap(),
        Cut::Garbage => append.write_all(b"CSGR\x00\x00garbage!!!").unwrap(),
        _ => {}
    }
}

impl Storage for FileStorage {
    fn open(&self) -> Arc<dyn Persister> {
        let options = FileOptions {
            sync: false,
            compact_min_bytes: u64::MAX,
            ..FileOptions::default()
        };
        Arc::new(FilePersister::open(&self.0 .0, options).unwrap())
    }
    fn crash(&self, p: Arc<dyn Persister>, dying: Option<(&Batch, Cut)>) {
        let Some((batch, cut)) = dying else { return };
        if cut == Cut::Clean {
            return;
        }
        let log = self.0 .0.join("chanstore.log");
        let before = std::fs::metadata(&log).unwrap().len();
        p.write_batch(batch).unwrap();
        cut_tail(&log, before, cut);
    }
    fn reopen(&self) -> Arc<dyn Persister> {
        let options = FileOptions {
            sync: false,
            ..FileOptions::default()
        };
        // The dead store's last handle on the log may be dropped by one of
        // its threads a moment after `crash` (a process that dies drops
        // its lock at once): wait for the directory lock, not for time
        // (`open` itself tries a taken lock again for a second).
        for _ in 0..5 {
            match FilePersister::open(&self.0 .0, options.clone()) {
                Err(chanstore::StoreError::Persist(m))
                    if m.contains("locked by another writer") => {}
                opened => return Arc::new(opened.expect("the log recovers")),
            }
        }
        panic!("the dead store never released the log's lock")
    }
}

// ---- SQLite ----

/// `SqlitePersister` (`synchronous=OFF`: the process dies, not the
/// machine). Each run's database is a copy of a template with the schema
/// and the poison trigger (`RolledBack`). At the crash the database and its
/// WAL are copied as they are on disk, and the copy's WAL is cut or padded.
#[cfg(feature = "sqlite")]
pub struct Sqlite {
    dirs: Dirs,
    template: PathBuf,
}

#[cfg(feature = "sqlite")]
impl Sqlite {
    /// Makes the template database.
    pub fn new() -> Sqlite {
        let dirs = Dirs::new("sqlite");
        let template = dirs.fresh().join("store.db");
        drop(open_sqlite(&template));
        rusqlite::Connection::open(&template)
            .unwrap()
            .execute_batch(&format!(
                "CREATE TRIGGER poison BEFORE INSERT ON kv WHEN NEW.key = X'{}' \
                 BEGIN SELECT RAISE(ABORT, 'the crash'); END;",
                poison_hex()
            ))
            .unwrap();
        Sqlite { dirs, template }
    }
}

#[cfg(feature = "sqlite")]
fn open_sqlite(path: &Path) -> chanstore::SqlitePersister {
    let options = chanstore::SqliteOptions {
        sync: false,
        ..Default::default()
    };
    chanstore::SqlitePersister::open(path, options).expect("the database opens")
}

#[cfg(feature = "sqlite")]
#[derive(Debug)]
struct SqliteStorage(RunDir);

#[cfg(feature = "sqlite")]
impl SqliteStorage {
    fn db(&self) -> PathBuf {
        self.0 .0.join("store.db")
    }
    fn wal(dir: &Path) -> PathBuf {
        dir.join("store.db-wal")
    }
    fn crashed(&self) -> PathBuf {
        self.0 .0.join("crashed")
    }
}

#[cfg(feature = "sqlite")]
impl Backend for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn cuts(&self) -> &'static [Cut] {
        &[
            Cut::Clean,
            Cut::Torn,
            Cut::Zeros,
            Cut::Garbage,
            Cut::RolledBack,
        ]
    }
    fn storage(&self) -> Box<dyn Storage> {
        let s = SqliteStorage(RunDir(self.dirs.fresh()));
        std::fs::copy(&self.template, s.db()).unwrap();
        Box::new(s)
    }
}

/// SQLite checkpoints (moves the WAL into the database) once the WAL has
/// this many frames; below it, the WAL holds every transaction since open.
#[cfg(feature = "sqlite")]
const AUTOCHECKPOINT_FRAMES: u64 = 1000;

#[cfg(feature = "sqlite")]
impl Storage for SqliteStorage {
    fn open(&self) -> Arc<dyn Persister> {
        Arc::new(open_sqlite(&self.db()))
    }
    fn crash(&self, p: Arc<dyn Persister>, dying: Option<(&Batch, Cut)>) {
        let dir = self.0 .0.clone();
        let wal = Self::wal(&dir);
        let before = std::fs::metadata(&wal).unwrap().len();
        let cut = match dying {
            None | Some((_, Cut::Clean)) => None,
            Some((batch, Cut::RolledBack)) => {
                let err = p.write_batch(&poisoned(batch)).unwrap_err();
                assert!(err.to_string().contains("the crash"), "{err}");
                None
            }
            Some((batch, cut)) => {
                p.write_batch(batch).unwrap();
                Some(cut)
            }
        };
        // The disk as the crash leaves it, before a close could checkpoint.
        let crashed = self.crashed();
        std::fs::create_dir_all(&crashed).unwrap();
        std::fs::copy(self.db(), crashed.join("store.db")).unwrap();
        std::fs::copy(&wal, Self::wal(&crashed)).unwrap();
        drop(p);
        if let Some(cut) = cut {
            let wal = Self::wal(&crashed);
            let bytes = std::fs::read(&wal).unwrap();
            let page = u64::from(u32::from_be_bytes(bytes[8..12].try_into().unwrap()));
            let frames = (bytes.len() as u64 - 32) / (24 + page);
            assert!(
                frames < AUTOCHECKPOINT_FRAMES && before >= 32,
                "the WAL was checkpointed during the run ({frames} frames): \
                 the cut would not be the dying transaction's"
            );
            cut_tail(&wal, before, cut);
        }
    }
    fn reopen(&self) -> Arc<dyn Persister> {
        Arc::new(open_sqlite(&self.crashed().join("store.db")))
    }
}

// ---- PostgreSQL ----

/// `PostgresPersister` on one cluster (started by the test). Each run has
/// a database to itself: made from a template that has the schema and the
/// poison trigger (which terminates its own session: a `Torn` cut is a
/// transaction in flight when the connection dies), and, once the run is
/// over, emptied and handed to a later run (creating a database costs
/// about 200 ms here, emptying one a few).
#[cfg(feature = "postgres")]
pub struct Postgres {
    base: String,
    admin: Mutex<postgres::Client>,
    /// Databases no run holds, each with a connection to it.
    free: Arc<Mutex<Vec<Db>>>,
    created: AtomicUsize,
}

/// One database of the pool, and a connection to it for emptying it.
#[cfg(feature = "postgres")]
struct Db {
    name: String,
    client: postgres::Client,
}

#[cfg(feature = "postgres")]
impl Postgres {
    /// Makes the template database `crash_points` on the server at `base`
    /// (a connection string without `dbname`).
    pub fn new(base: &str) -> Postgres {
        let pg = Postgres {
            base: base.to_string(),
            admin: Mutex::new(pg_connect(base, "postgres")),
            free: Arc::default(),
            created: AtomicUsize::new(0),
        };
        pg.admin
            .lock()
            .batch_execute("CREATE DATABASE crash_points")
            .unwrap();
        drop(open_postgres(&format!("{base} dbname=crash_points")));
        pg_connect(base, "crash_points")
            .batch_execute(&format!(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.key = '\\x{}'::bytea THEN PERFORM pg_terminate_backend(pg_backend_pid()); \
                 PERFORM pg_sleep(5); END IF; RETURN NEW; END $$; \
                 CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON kv \
                 FOR EACH ROW EXECUTE FUNCTION poison();",
                poison_hex()
            ))
            .unwrap();
        pg
    }

    /// How many databases the runs needed (one each at a time).
    pub fn databases(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }
}

#[cfg(feature = "postgres")]
fn pg_connect(base: &str, db: &str) -> postgres::Client {
    postgres::Client::connect(&format!("{base} dbname={db}"), postgres::NoTls)
        .expect("a connection to the test cluster")
}

#[cfg(feature = "postgres")]
fn open_postgres(conninfo: &str) -> chanstore::PostgresPersister {
    let options = chanstore::PostgresOptions {
        takeover: chanstore::Takeover::Wait(std::time::Duration::from_secs(10)),
        ..Default::default()
    };
    chanstore::PostgresPersister::open(conninfo, options).expect("the database opens")
}

#[cfg(feature = "postgres")]
struct PostgresStorage {
    conninfo: String,
    db: Mutex<Option<Db>>,
    free: Arc<Mutex<Vec<Db>>>,
}

#[cfg(feature = "postgres")]
impl Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PostgresStorage")
            .field(&self.conninfo)
            .finish()
    }
}

#[cfg(feature = "postgres")]
impl Backend for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn cuts(&self) -> &'static [Cut] {
        &[Cut::Clean, Cut::Torn, Cut::Unacked]
    }
    fn storage(&self) -> Box<dyn Storage> {
        let reused = self.free.lock().pop();
        let mut db = reused.unwrap_or_else(|| {
            let name = format!("run{}", self.created.fetch_add(1, Ordering::Relaxed));
            self.admin
                .lock()
                .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE crash_points"))
                .unwrap();
            let client = pg_connect(&self.base, &name);
            Db { name, client }
        });
        // What an earlier run left (the lease's epoch stays: it only grows).
        db.client.batch_execute("TRUNCATE kv").unwrap();
        Box::new(PostgresStorage {
            conninfo: format!("{} dbname={}", self.base, db.name),
            db: Mutex::new(Some(db)),
            free: self.free.clone(),
        })
    }
}

#[cfg(feature = "postgres")]
impl Storage for PostgresStorage {
    fn open(&self) -> Arc<dyn Persister> {
        Arc::new(open_postgres(&self.conninfo))
    }
    fn crash(&self, p: Arc<dyn Persister>, dying: Option<(&Batch, Cut)>) {
        match dying {
            None => {}
            Some((batch, Cut::Torn)) => {
                let err = p.write_batch(&poisoned(batch)).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted, "{err}");
            }
            Some((batch, cut)) => clean_or_unacked(&*p, batch, cut),
        }
    }
    fn reopen(&self) -> Arc<dyn Persister> {
        self.open()
    }
}

#[cfg(feature = "postgres")]
impl Drop for PostgresStorage {
    fn drop(&mut self) {
        if let Some(db) = self.db.lock().take() {
            self.free.lock().push(db);
        }
    }
}
