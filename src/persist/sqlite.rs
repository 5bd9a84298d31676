//! [`SqlitePersister`]: an embedded SQLite database (feature `sqlite`).
//!
//! **Schema** (version [`SQL_SCHEMA_VERSION`](super::SQL_SCHEMA_VERSION)):
//! `kv(key BLOB PRIMARY KEY, value BLOB NOT NULL)` with keys in
//! [`Key::to_bytes`] form, `meta(name, value)` with a `schema_version` row,
//! and `lease(id, epoch)`, whose epoch is bumped by every open and checked
//! by every transaction.
//!
//! **Durability:** WAL mode with `synchronous=FULL`: a commit returns once
//! the WAL is on disk. Concurrent `write_batch` calls share one transaction
//! and one commit ([`GroupCommit`]).
//!
//! **Single writer:** the connection runs in `locking_mode=EXCLUSIVE` and
//! holds the database file's lock from `open` until it is dropped, so a
//! second persister (in this process or another) cannot open the file: it
//! fails with a clear error, or waits up to [`SqliteOptions::lock_wait`].

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use super::group::GroupCommit;
use super::sql::{self, Rows, SCHEMA_VERSION};
use super::{Key, Persister};
use crate::error::StoreError;

/// How a [`SqlitePersister`] opens and writes its database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `synchronous=FULL` (on) or `OFF`. Off only for tests that kill the
    /// process, not the machine, and benchmarks that measure all but the disk.
    pub sync: bool,
    /// How long `open` waits for another writer to close the database
    /// before it fails. Zero: fail at once.
    pub lock_wait: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            sync: true,
            lock_wait: Duration::ZERO,
        }
    }
}

/// A [`Persister`] over one SQLite database file, with group commit and an
/// exclusive lock on the file for as long as it is open.
pub struct SqlitePersister {
    path: PathBuf,
    /// The lease epoch this writer took at `open`.
    epoch: i64,
    /// Only the group's leader (and `load`) touch the connection.
    conn: Mutex<Connection>,
    group: GroupCommit<Rows>,
}

impl std::fmt::Debug for SqlitePersister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePersister")
            .field("path", &self.path)
            .field("epoch", &self.epoch)
            .finish()
    }
}

const SCHEMA: &str = "
    CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE lease (id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL);
    INSERT INTO lease (id, epoch) VALUES (1, 0);
";

impl SqlitePersister {
    /// Opens (or creates) the database at `path` and takes its lock.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let what = format!("sqlite database {}", path.display());
        let fail = |e: rusqlite::Error| {
            if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) {
                StoreError::Persist(format!(
                    "{what} is locked by another writer (only one store may have it open)"
                ))
            } else {
                StoreError::Persist(format!("{what}: {e}"))
            }
        };
        let mut conn = Connection::open(&path).map_err(fail)?;
        conn.busy_timeout(options.lock_wait).map_err(fail)?;
        // Exclusive before the first access: the lock is taken by the first
        // write below and held until the connection closes.
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(fail)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Persist(format!(
                "{what}: cannot use WAL mode (journal mode is {mode})"
            )));
        }
        let sync = if options.sync { "FULL" } else { "OFF" };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(fail)?;
        let epoch = Self::prepare(&mut conn, &what).map_err(|e| match e {
            Prepare::Sql(e) => fail(e),
            Prepare::Store(e) => e,
        })?;
        Ok(SqlitePersister {
            path,
            epoch,
            conn: Mutex::new(conn),
            group: GroupCommit::default(),
        })
    }

    /// Creates or checks the schema and bumps the lease epoch, in one
    /// transaction; returns the new epoch.
    fn prepare(conn: &mut Connection, what: &str) -> Result<i64, Prepare> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        )?;
        let found: Option<i64> = tx
            .query_row(
                "SELECT value FROM meta WHERE name = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match found {
            None => {
                tx.execute_batch(SCHEMA)?;
                tx.execute(
                    "INSERT INTO meta (name, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION],
                )?;
            }
            Some(v) => sql::check_schema_version(v, what).map_err(Prepare::Store)?,
        }
        let epoch: i64 = tx.query_row(
            "UPDATE lease SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch",
            [],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(epoch)
    }

    /// The lease epoch this writer holds.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// One group: every batch in one transaction, checked against the lease.
    fn commit(&self, batches: &[Rows]) -> io::Result<()> {
        let mut conn = self.conn.lock();
        let what = || format!("sqlite database {}", self.path.display());
        let sql_err = |e: rusqlite::Error| io::Error::other(format!("{}: {e}", what()));
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let epoch: i64 = tx
            .query_row("SELECT epoch FROM lease WHERE id = 1", [], |r| r.get(0))
            .map_err(sql_err)?;
        if epoch != self.epoch {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{}: lease lost (epoch is now {epoch}, this writer holds {})",
                    what(),
                    self.epoch
                ),
            ));
        }
        {
            let mut put = tx
                .prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")
                .map_err(sql_err)?;
            let mut delete = tx
                .prepare_cached("DELETE FROM kv WHERE key = ?1")
                .map_err(sql_err)?;
            for (key, value) in batches.iter().flatten() {
                match value {
                    Some(v) => put.execute(rusqlite::params![key, v]),
                    None => delete.execute([key]),
                }
                .map_err(sql_err)?;
            }
        }
        tx.commit().map_err(sql_err)
    }
}

/// Why `prepare` failed: SQLite, or a refusal of ours.
enum Prepare {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Prepare {
    fn from(e: rusqlite::Error) -> Self {
        Prepare::Sql(e)
    }
}

impl Persister for SqlitePersister {
    fn write_batch(&self, batch: &[(Key, Option<Vec<u8>>)]) -> io::Result<()> {
        let ticket = self.group.submit(sql::rows(batch))?;
        self.group.wait(ticket, |batches| self.commit(batches))
    }

    fn load(&self) -> Result<BTreeMap<Key, Vec<u8>>, StoreError> {
        let what = format!("sqlite database {}", self.path.display());
        let fail = |e: rusqlite::Error| StoreError::Persist(format!("{what}: {e}"));
        let conn = self.conn.lock();
        let mut stmt = conn.prepare("SELECT key, value FROM kv").map_err(fail)?;
        let mut rows = stmt.query([]).map_err(fail)?;
        let mut map = BTreeMap::new();
        while let Some(row) = rows.next().map_err(fail)? {
            let key: Vec<u8> = row.get(0).map_err(fail)?;
            let value: Vec<u8> = row.get(1).map_err(fail)?;
            map.insert(sql::decode_key(&key, &what)?, value);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("chanstore-sqlite-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("store.db")
    }

    fn raw(path: &Path) -> Connection {
        Connection::open(path).unwrap()
    }

    #[test]
    fn a_second_writer_is_refused_until_the_first_closes() {
        let path = tmp("lock");
        let first = SqlitePersister::open(&path, SqliteOptions::default()).unwrap();
        first.write_batch(&[(Key::Work(1), Some(vec![1]))]).unwrap();
        let err = SqlitePersister::open(&path, SqliteOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains("locked by another writer"),
            "{err}"
        );
        assert_eq!(first.epoch(), 1);
        drop(first);
        let second = SqlitePersister::open(&path, SqliteOptions::default()).unwrap();
        assert_eq!(second.epoch(), 2);
        assert_eq!(second.load().unwrap()[&Key::Work(1)], vec![1]);
    }

    #[test]
    fn a_waiting_writer_opens_once_the_first_closes() {
        let path = tmp("wait");
        let first = SqlitePersister::open(&path, SqliteOptions::default()).unwrap();
        let waiting = SqliteOptions {
            lock_wait: Duration::from_secs(20),
            ..SqliteOptions::default()
        };
        let p = path.clone();
        let second = std::thread::spawn(move || SqlitePersister::open(&p, waiting));
        std::thread::sleep(Duration::from_millis(300));
        drop(first);
        let second = second.join().unwrap().unwrap();
        assert_eq!(second.epoch(), 2);
    }

    #[test]
    fn a_newer_schema_is_refused_naming_both_versions() {
        let path = tmp("version");
        drop(SqlitePersister::open(&path, SqliteOptions::default()).unwrap());
        raw(&path)
            .execute(
                "UPDATE meta SET value = 7 WHERE name = 'schema_version'",
                [],
            )
            .unwrap();
        let err = SqlitePersister::open(&path, SqliteOptions::default()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("schema version 7 is newer"), "{text}");
        assert!(
            text.contains(&format!("version {SCHEMA_VERSION}")),
            "{text}"
        );
    }

    #[test]
    fn a_corrupt_key_is_an_error() {
        let path = tmp("corrupt");
        drop(SqlitePersister::open(&path, SqliteOptions::default()).unwrap());
        raw(&path)
            .execute("INSERT INTO kv VALUES (X'0701', X'00')", [])
            .unwrap();
        let p = SqlitePersister::open(&path, SqliteOptions::default()).unwrap();
        let err = p.load().unwrap_err();
        assert!(err.to_string().contains("corrupt key 0701"), "{err}");
    }

    #[test]
    fn a_failed_commit_applies_nothing_and_stops_the_writer() {
        let path = tmp("fail");
        let p = SqlitePersister::open(&path, SqliteOptions::default()).unwrap();
        p.write_batch(&[(Key::Work(1), Some(vec![1]))]).unwrap();
        drop(p);
        let poison = Key::Work(99).to_bytes();
        raw(&path)
            .execute_batch(&format!(
                "CREATE TRIGGER poison BEFORE INSERT ON kv WHEN NEW.key = X'{}' \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
                poison
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ))
            .unwrap();
        let p = SqlitePersister::open(&path, SqliteOptions::default()).unwrap();
        let err = p
            .write_batch(&[
                (Key::Work(1), None),
                (Key::Work(2), Some(vec![2])),
                (Key::Work(99), Some(vec![9])),
                (Key::Work(3), Some(vec![3])),
            ])
            .unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");
        assert!(p.write_batch(&[(Key::Work(4), Some(vec![4]))]).is_err());
        drop(p);
        let p = SqlitePersister::open(&path, SqliteOptions::default()).unwrap();
        let map = p.load().unwrap();
        assert_eq!(map.len(), 1, "{map:?}");
        assert_eq!(map[&Key::Work(1)], vec![1]);
    }
}
