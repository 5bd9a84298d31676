//! Every `Persister` under the same proofs: one generic suite
//! ([`conformance`]) run once per backend. A new backend costs a
//! [`Backend`] impl and one test function.
//!
//! The suite: batches with puts and deletes (a key written twice in one
//! batch keeps its last value), everything back after the persister is
//! dropped and reopened, concurrent writers from many threads all durable,
//! an interrupted batch leaves nothing half-applied (a write that fails part
//! way, or a log cut by a crash mid-write), large and empty values, many
//! keys of every kind.

#[cfg(feature = "postgres")]
mod pg;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chanstore::persist::Key;
use chanstore::{ChannelId, FileOptions, FilePersister, MemoryPersister, Persister};

type Batch = Vec<(Key, Option<Vec<u8>>)>;

/// A backend under test: one storage location, opened again and again.
trait Backend {
    /// Opens the storage (the same one every time; the last persister
    /// opened has been dropped).
    fn open(&self) -> Arc<dyn Persister>;
    /// Opens it so that writing `poison` fails part way through its batch
    /// (the SQL backends install a trigger). `None` where no write can fail
    /// part way.
    fn open_failing(&self, _poison: Key) -> Option<Arc<dyn Persister>> {
        None
    }
    /// Removes what `open_failing` installed (its persister is dropped).
    fn heal(&self) {}
    /// Cuts the storage as a crash in the middle of the last write would;
    /// `false` where that cannot happen.
    fn crash_tail(&self) -> bool {
        false
    }
}

fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "chanstore-conformance-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn value(tag: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (tag as usize * 31 + i) as u8).collect()
}

fn channel(n: u8) -> Key {
    Key::Channel(ChannelId([n; 32]))
}

/// Applies `batches` to a model of what the storage must hold.
fn apply(model: &mut BTreeMap<Key, Vec<u8>>, batch: &Batch) {
    for (k, v) in batch {
        match v {
            Some(v) => model.insert(*k, v.clone()),
            None => model.remove(k),
        };
    }
}

fn write(p: &dyn Persister, model: &mut BTreeMap<Key, Vec<u8>>, batch: Batch) {
    p.write_batch(&batch).unwrap();
    apply(model, &batch);
}

fn reopened(b: &dyn Backend, p: Arc<dyn Persister>) -> Arc<dyn Persister> {
    drop(p);
    b.open()
}

/// The whole suite against one backend.
fn conformance(name: &str, b: &dyn Backend) {
    let p = b.open();
    assert!(
        p.load().unwrap().is_empty(),
        "{name}: a new storage is empty"
    );
    let mut model = BTreeMap::new();

    // Batches, deletes, overwrites, a key twice in one batch.
    write(
        &*p,
        &mut model,
        vec![
            (Key::Work(1), Some(vec![1])),
            (Key::Work(2), Some(vec![2])),
            (channel(7), Some(value(7, 300))),
        ],
    );
    write(
        &*p,
        &mut model,
        vec![
            (Key::Work(1), None),
            (Key::Event(9), Some(vec![9; 40])),
            (Key::Work(2), Some(vec![22])),
        ],
    );
    write(
        &*p,
        &mut model,
        vec![
            (Key::Event(10), Some(vec![1])),
            (Key::Event(10), Some(vec![2])),
            (Key::Work(404), None),
        ],
    );
    write(&*p, &mut model, Vec::new());
    assert_eq!(p.load().unwrap(), model, "{name}: batches and deletes");
    let p = reopened(b, p);
    assert_eq!(p.load().unwrap(), model, "{name}: reload after drop");

    // Large and empty values.
    write(
        &*p,
        &mut model,
        vec![
            (channel(1), Some(value(1, 4 << 20))),
            (Key::Work(u64::MAX), Some(Vec::new())),
        ],
    );
    // Many keys of every kind: one big batch, then many small ones, then
    // half of them deleted.
    let many: Batch = (0..3000u64)
        .map(|i| match i % 3 {
            0 => (Key::Work(1000 + i), Some(value(i, 20))),
            1 => (Key::Event(1000 + i), Some(value(i, 50))),
            _ => (channel((i % 250) as u8 + 2), Some(value(i, 200))),
        })
        .collect();
    write(&*p, &mut model, many);
    for i in 0..100u64 {
        write(
            &*p,
            &mut model,
            vec![
                (Key::Event(10_000 + i), Some(value(i, 10))),
                (Key::Work(1000 + 3 * i), None),
            ],
        );
    }
    let p = reopened(b, p);
    assert_eq!(
        p.load().unwrap(),
        model,
        "{name}: large values and many keys"
    );

    // Concurrent writers: every batch of every thread is durable.
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..40u64 {
                    let batch = vec![
                        (Key::Work(1 << 40 | t << 20 | i), Some(value(t + i, 64))),
                        (Key::Event(1 << 40 | t << 20 | i), Some(vec![t as u8])),
                    ];
                    p.write_batch(&batch).unwrap();
                    mine.push(batch);
                }
                mine
            })
        })
        .collect();
    for t in threads {
        for batch in t.join().unwrap() {
            apply(&mut model, &batch);
        }
    }
    let p = reopened(b, p);
    assert_eq!(p.load().unwrap(), model, "{name}: concurrent writers");
    drop(p);

    // An interrupted batch: all of it or none of it, never a part.
    let poison = Key::Work(7_777);
    let batch: Batch = vec![
        (Key::Work(2), None),
        (Key::Work(7_776), Some(vec![1])),
        (poison, Some(vec![2])),
        (Key::Work(7_778), Some(vec![3])),
        (channel(7), Some(vec![4])),
    ];
    let mut interrupted = false;
    if let Some(failing) = b.open_failing(poison) {
        let err = failing.write_batch(&batch).unwrap_err();
        eprintln!(
            "{name}: the poisoned batch failed: {err} ({:?})",
            err.kind()
        );
        assert!(
            failing
                .write_batch(&[(Key::Work(1), Some(vec![1]))])
                .is_err(),
            "{name}: a failed persister refuses later batches"
        );
        drop(failing);
        b.heal();
        assert_eq!(
            b.open().load().unwrap(),
            model,
            "{name}: a failed batch left nothing"
        );
        interrupted = true;
    }
    let p = b.open();
    p.write_batch(&batch).unwrap();
    drop(p);
    if b.crash_tail() {
        assert_eq!(
            b.open().load().unwrap(),
            model,
            "{name}: a batch cut by a crash left nothing"
        );
        interrupted = true;
    } else {
        apply(&mut model, &batch);
        assert_eq!(
            b.open().load().unwrap(),
            model,
            "{name}: the batch once healed"
        );
    }
    if !interrupted {
        eprintln!("{name}: no way to interrupt a batch (nothing to prove)");
    }
}

struct Memory(Arc<MemoryPersister>);

impl Backend for Memory {
    fn open(&self) -> Arc<dyn Persister> {
        self.0.clone()
    }
}

struct File(PathBuf);

impl Backend for File {
    fn open(&self) -> Arc<dyn Persister> {
        Arc::new(FilePersister::open(&self.0, FileOptions::default()).unwrap())
    }
    fn crash_tail(&self) -> bool {
        // The log is preallocated with zeros after its last group: the
        // crash loses the last 3 bytes written (or more, if the group
        // ended in zeros), which read as zeros again, as they would on the
        // disk.
        let log = self.0.join("chanstore.log");
        let mut bytes = std::fs::read(&log).unwrap();
        let end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
        bytes[end - 3..].fill(0);
        std::fs::write(&log, &bytes).unwrap();
        true
    }
}

#[cfg(feature = "sqlite")]
struct Sqlite(PathBuf);

#[cfg(feature = "sqlite")]
impl Backend for Sqlite {
    fn open(&self) -> Arc<dyn Persister> {
        Arc::new(
            chanstore::SqlitePersister::open(&self.0, chanstore::SqliteOptions::default()).unwrap(),
        )
    }
    fn open_failing(&self, poison: Key) -> Option<Arc<dyn Persister>> {
        let hex: String = poison
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        rusqlite::Connection::open(&self.0)
            .unwrap()
            .execute_batch(&format!("CREATE TRIGGER poison BEFORE INSERT ON kv WHEN NEW.key = X'{hex}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"))
            .unwrap();
        Some(self.open())
    }
    fn heal(&self) {
        rusqlite::Connection::open(&self.0)
            .unwrap()
            .execute_batch("DROP TRIGGER poison")
            .unwrap();
    }
}

#[cfg(feature = "postgres")]
struct Postgres {
    conninfo: String,
    _cluster: pg::Cluster,
}

#[cfg(feature = "postgres")]
impl Backend for Postgres {
    fn open(&self) -> Arc<dyn Persister> {
        let options = chanstore::PostgresOptions {
            takeover: chanstore::Takeover::Wait(std::time::Duration::from_secs(10)),
            ..Default::default()
        };
        Arc::new(chanstore::PostgresPersister::open(&self.conninfo, options).unwrap())
    }
    /// The trigger ends its own session mid-statement: the batch is cut by
    /// a lost connection.
    fn open_failing(&self, poison: Key) -> Option<Arc<dyn Persister>> {
        let hex: String = poison
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut admin = postgres::Client::connect(&self.conninfo, postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.key = '\\x{hex}'::bytea THEN PERFORM pg_terminate_backend(pg_backend_pid()); \
                 PERFORM pg_sleep(5); END IF; RETURN NEW; END $$; \
                 CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON kv FOR EACH ROW EXECUTE FUNCTION poison();"
            ))
            .unwrap();
        Some(self.open())
    }
    fn heal(&self) {
        let mut admin = postgres::Client::connect(&self.conninfo, postgres::NoTls).unwrap();
        admin
            .batch_execute("DROP TRIGGER poison ON kv; DROP FUNCTION poison()")
            .unwrap();
    }
}

#[test]
fn memory() {
    conformance("memory", &Memory(Arc::new(MemoryPersister::new())));
}

#[test]
fn file() {
    conformance("file", &File(tmpdir("file")));
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite() {
    conformance("sqlite", &Sqlite(tmpdir("sqlite").join("store.db")));
}

#[cfg(feature = "postgres")]
#[test]
fn postgres() {
    let Some(cluster) = pg::Cluster::start("conformance", &[]) else {
        return;
    };
    cluster.create_db("conformance");
    let conninfo = cluster.conninfo("conformance");
    conformance(
        "postgres",
        &Postgres {
            conninfo,
            _cluster: cluster,
        },
    );
}

/// One writer per directory: while a `FilePersister` is open, a second one
/// on the same directory (here in the same process, which `flock` treats as
/// another writer too) is refused before it reads or rewrites anything, and
/// the first goes on writing a log that survives. Once the first is
/// dropped the directory opens again with every acknowledged write.
#[test]
fn file_refuses_a_second_writer() {
    let dir = tmpdir("second-writer");
    let mut model = BTreeMap::new();
    let first = FilePersister::open(&dir, FileOptions::default()).unwrap();
    write(&first, &mut model, vec![(channel(1), Some(value(1, 100)))]);
    let log = std::fs::read(dir.join("chanstore.log")).unwrap();

    let Err(err) = FilePersister::open(&dir, FileOptions::default()) else {
        panic!("a second writer opened a directory already open");
    };
    assert!(
        err.to_string().contains("locked by another writer"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.join("chanstore.log")).unwrap(),
        log,
        "the refused open rewrote the log"
    );

    write(&first, &mut model, vec![(channel(2), Some(value(2, 100)))]);
    drop(first);
    let again = FilePersister::open(&dir, FileOptions::default()).unwrap();
    assert_eq!(again.load().unwrap(), model);
}
