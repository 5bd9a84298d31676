//! The SQL persisters (SQLite, PostgreSQL) under failures the conformance
//! suite does not inject: the `Persister` contract (a batch is atomic and
//! durable when `write_batch` returns, a synchronous standby included; a
//! failure poisons; a corrupt row is a clear error). From an adversarial
//! review, which found the defect `pg_acknowledged_write_survives_failover`
//! shows.
#![cfg(any(feature = "sqlite", feature = "postgres"))]

#[cfg(feature = "postgres")]
mod pg;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use chanstore::persist::Key;
use chanstore::Persister;

type Batch = Vec<(Key, Option<Vec<u8>>)>;

fn put(n: u64) -> Batch {
    vec![(Key::Work(n), Some(n.to_be_bytes().to_vec()))]
}

fn sh(cmd: &str) {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `batches` from many threads at once; returns each batch with its
/// result.
fn concurrent(p: Arc<dyn Persister>, per_thread: Vec<Vec<Batch>>) -> Vec<(Batch, bool)> {
    let barrier = Arc::new(Barrier::new(per_thread.len()));
    let threads: Vec<_> = per_thread
        .into_iter()
        .map(|batches| {
            let (p, barrier) = (p.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                batches
                    .into_iter()
                    .map(|b| {
                        let ok = p.write_batch(&b).is_ok();
                        (b, ok)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

/// Every acknowledged batch is there whole; every failed one is there
/// whole or not at all (the batches write disjoint keys).
fn check_all_or_nothing(name: &str, results: &[(Batch, bool)], map: &BTreeMap<Key, Vec<u8>>) {
    let (mut acked, mut failed, mut failed_present) = (0, 0, 0);
    for (batch, ok) in results {
        let present = batch
            .iter()
            .filter(|(k, v)| map.get(k) == v.as_ref())
            .count();
        if *ok {
            acked += 1;
            assert_eq!(
                present,
                batch.len(),
                "{name}: an acknowledged batch is missing"
            );
        } else {
            failed += 1;
            assert!(
                present == 0 || present == batch.len(),
                "{name}: a failed batch is half there ({present} of {})",
                batch.len()
            );
            if present > 0 {
                failed_present += 1;
            }
        }
    }
    eprintln!("{name}: {acked} acknowledged, {failed} failed ({failed_present} of them present)");
    assert!(failed > 0, "{name}: nothing failed: no proof");
}

fn thread_batches(poison: Key) -> Vec<Vec<Batch>> {
    (0..6u64)
        .map(|t| {
            (0..30u64)
                .map(|i| {
                    let mut b: Batch = (0..5u64)
                        .map(|j| (Key::Event(t << 32 | i << 8 | j), Some(vec![t as u8; 100])))
                        .collect();
                    if t == 3 && i == 15 {
                        b.insert(2, (poison, Some(vec![1])));
                    }
                    b
                })
                .collect()
        })
        .collect()
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use chanstore::{SqliteOptions, SqlitePersister};

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sql-contract-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("store.db")
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A group commit that fails fails every batch in it, and leaves none
    /// of them half applied, and every acknowledged one is durable.
    #[test]
    fn sqlite_shared_commit_failure() {
        let path = tmp("group");
        drop(SqlitePersister::open(&path, SqliteOptions::default()).unwrap());
        let poison = Key::Work(99);
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "CREATE TRIGGER poison BEFORE INSERT ON kv WHEN NEW.key = X'{}' \
                 BEGIN SELECT RAISE(ABORT, 'injected'); END;",
                hex(&poison.to_bytes())
            ))
            .unwrap();
        let p: Arc<dyn Persister> =
            Arc::new(SqlitePersister::open(&path, SqliteOptions::default()).unwrap());
        let results = concurrent(p.clone(), thread_batches(poison));
        assert!(p.write_batch(&put(1)).is_err(), "poisoned");
        drop(p);
        let p = SqlitePersister::open(&path, SqliteOptions::default()).unwrap();
        check_all_or_nothing("sqlite", &results, &p.load().unwrap());
    }

    /// Corrupt rows: a value stored as TEXT or INTEGER, a key of a future
    /// tag, a key cut short: each a clear error from `load`, no panic.
    #[test]
    fn sqlite_corrupt_rows() {
        let cases = [
            (
                "text value",
                format!(
                    "INSERT INTO kv VALUES (X'{}', 'abc')",
                    hex(&Key::Work(1).to_bytes())
                ),
            ),
            (
                "int value",
                format!(
                    "INSERT INTO kv VALUES (X'{}', 7)",
                    hex(&Key::Work(1).to_bytes())
                ),
            ),
            (
                "text key",
                "INSERT INTO kv VALUES ('abc', X'00')".to_string(),
            ),
            (
                "future tag",
                "INSERT INTO kv VALUES (X'080000000000000001', X'00')".to_string(),
            ),
            (
                "short key",
                "INSERT INTO kv VALUES (X'01000000', X'00')".to_string(),
            ),
            (
                "empty key",
                "INSERT INTO kv VALUES (X'', X'00')".to_string(),
            ),
        ];
        for (i, (what, sql)) in cases.iter().enumerate() {
            let path = tmp(&format!("corrupt{i}"));
            drop(SqlitePersister::open(&path, SqliteOptions::default()).unwrap());
            rusqlite::Connection::open(&path)
                .unwrap()
                .execute_batch(sql)
                .unwrap();
            let p = SqlitePersister::open(&path, SqliteOptions::default()).unwrap();
            let err = p.load().expect_err(what);
            eprintln!("{what}: {err}");
        }
    }

    /// A database whose schema_version row is missing while its tables
    /// exist (or whose lease row was deleted) is refused, not recreated or
    /// written without a lease.
    #[test]
    fn sqlite_broken_meta() {
        let path = tmp("nolease");
        let p = SqlitePersister::open(&path, SqliteOptions::default()).unwrap();
        p.write_batch(&put(1)).unwrap();
        drop(p);
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("DELETE FROM lease")
            .unwrap();
        let r = SqlitePersister::open(&path, SqliteOptions::default());
        eprintln!(
            "no lease row: {:?}",
            r.as_ref().map(|p| p.epoch()).map_err(|e| e.to_string())
        );
        assert!(r.is_err(), "opened without a lease row");
    }
}

#[cfg(feature = "postgres")]
mod postgres_tests {
    use super::*;
    use chanstore::{PostgresOptions, PostgresPersister, Takeover};

    fn open(conninfo: &str, takeover: Takeover) -> PostgresPersister {
        PostgresPersister::open(
            conninfo,
            PostgresOptions {
                takeover,
                holder: "sql-contract".into(),
            },
        )
        .unwrap()
    }

    fn client(conninfo: &str) -> postgres::Client {
        postgres::Client::connect(conninfo, postgres::NoTls).unwrap()
    }

    /// PostgreSQL with a synchronous standby that stops acknowledging (its
    /// walsender SIGSTOPped), then the primary dies and the standby is
    /// promoted. No write acknowledged meanwhile may be lost, whatever the
    /// session inherits (a database default of `statement_timeout`, of
    /// `synchronous_commit = local`) or an operator does (`pg_cancel_backend`
    /// on the "stuck" COMMIT, which PostgreSQL answers with success and a
    /// WARNING). Before the fix: `local` acknowledged in 1 ms and `cancel`
    /// in 1 s, both lost by the failover.
    #[test]
    fn pg_acknowledged_write_survives_failover() {
        let Some(primary) = pg::Cluster::start("sql-contract-failover", &[]) else {
            return;
        };
        let dbs = ["plain", "timeout", "local", "cancel"];
        for db in dbs {
            primary.create_db(db);
        }
        {
            let mut admin = primary.admin();
            admin
                .batch_execute(
                    "ALTER DATABASE timeout SET statement_timeout = '500ms'; \
                     ALTER DATABASE local SET synchronous_commit = local",
                )
                .unwrap();
        }
        let standby = primary.standby("sql-contract-standby");
        primary.wait_for_sync_standby();
        let writers: Vec<Arc<PostgresPersister>> = dbs
            .iter()
            .map(|db| Arc::new(open(&primary.conninfo(db), Takeover::Refuse)))
            .collect();
        for w in &writers {
            w.write_batch(&put(1)).unwrap();
        }
        // Wait until the standby has flushed everything so far.
        let mut admin = primary.admin();
        let started = Instant::now();
        loop {
            let caught_up: bool = admin
                .query_one(
                    "SELECT coalesce(bool_and(flush_lsn >= pg_current_wal_lsn()), false) \
                     FROM pg_stat_replication",
                    &[],
                )
                .unwrap()
                .get(0);
            if caught_up {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(50));
        }
        // The standby stops acknowledging: its walsender is stopped.
        let walsender: i32 = admin
            .query_one("SELECT pid FROM pg_stat_replication", &[])
            .unwrap()
            .get(0);
        sh(&format!("kill -STOP {walsender}"));
        let handles: Vec<_> = writers
            .iter()
            .map(|w| {
                let w = w.clone();
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let r = w.write_batch(&put(2));
                    (r.map_err(|e| e.to_string()), started.elapsed())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1000));
        {
            let mut c = client(&primary.conninfo("timeout"));
            let t: String = c.query_one("SHOW statement_timeout", &[]).unwrap().get(0);
            eprintln!("statement_timeout in db timeout: {t}");
        }
        // An operator cancels the "stuck" query of the writer of db cancel.
        let cancelled: i64 = admin
            .query_one(
                "SELECT count(*) FROM (SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
                 WHERE datname = 'cancel' AND pid <> pg_backend_pid() \
                 AND wait_event = 'SyncRep') c",
                &[],
            )
            .unwrap()
            .get(0);
        eprintln!("cancelled {cancelled} backends waiting for SyncRep");
        std::thread::sleep(Duration::from_millis(1000));
        // The primary dies, before the standby got batch 2.
        primary.kill_postmaster();
        sh(&format!("kill -KILL {walsender}"));
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        drop(writers);
        drop(admin);
        standby.promote();
        let mut lost = Vec::new();
        for (db, (result, took)) in dbs.iter().zip(&results) {
            let p = open(
                &standby.conninfo(db),
                Takeover::Wait(Duration::from_secs(20)),
            );
            let map = p.load().unwrap();
            let has = |n: u64| map.contains_key(&Key::Work(n));
            eprintln!(
                "{db}: write_batch(2) -> {result:?} after {took:?}; on the promoted standby: \
                 Work(1) {}, Work(2) {}",
                has(1),
                has(2)
            );
            assert!(has(1));
            if result.is_ok() && !has(2) {
                lost.push(*db);
            }
        }
        assert!(
            lost.is_empty(),
            "acknowledged writes lost by the failover in databases {lost:?}"
        );
    }

    /// One cluster for the quicker PostgreSQL attacks.
    #[test]
    fn pg_attacks() {
        let Some(pg) = pg::Cluster::start("sql-contract-attacks", &[]) else {
            return;
        };
        shared_commit_failure(&pg);
        takeover_mid_batch(&pg);
        statement_timeout_mid_batch(&pg);
        corrupt_rows(&pg);
    }

    fn shared_commit_failure(pg: &pg::Cluster) {
        pg.create_db("grp");
        let conninfo = pg.conninfo("grp");
        drop(open(&conninfo, Takeover::Refuse));
        let poison = Key::Work(99);
        let hex: String = poison
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        client(&conninfo)
            .batch_execute(&format!(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.key = '\\x{hex}'::bytea THEN RAISE EXCEPTION 'injected'; END IF; \
                 RETURN NEW; END $$; \
                 CREATE TRIGGER poison BEFORE INSERT OR UPDATE ON kv FOR EACH ROW \
                 EXECUTE FUNCTION poison();"
            ))
            .unwrap();
        let p: Arc<dyn Persister> =
            Arc::new(open(&conninfo, Takeover::Wait(Duration::from_secs(10))));
        let results = concurrent(p.clone(), thread_batches(poison));
        assert!(p.write_batch(&put(1)).is_err(), "poisoned");
        drop(p);
        let p = open(&conninfo, Takeover::Wait(Duration::from_secs(10)));
        check_all_or_nothing("postgres", &results, &p.load().unwrap());
    }

    /// A forced takeover while the old owner is inside a slow batch: the
    /// old batch must not land, nor land after the new owner's.
    fn takeover_mid_batch(pg: &pg::Cluster) {
        pg.create_db("tko");
        let conninfo = pg.conninfo("tko");
        let old = Arc::new(open(&conninfo, Takeover::Refuse));
        old.write_batch(&put(1)).unwrap();
        let slow = Key::Work(50).to_bytes();
        let hex: String = slow.iter().map(|b| format!("{b:02x}")).collect();
        client(&conninfo)
            .batch_execute(&format!(
                "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.key = '\\x{hex}'::bytea THEN PERFORM pg_sleep(2); END IF; \
                 RETURN NEW; END $$; \
                 CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON kv FOR EACH ROW \
                 EXECUTE FUNCTION slow();"
            ))
            .unwrap();
        let o = old.clone();
        let late = std::thread::spawn(move || {
            o.write_batch(&[
                (Key::Work(1), None),
                (Key::Work(50), Some(vec![5])),
                (Key::Work(51), Some(vec![5])),
            ])
        });
        std::thread::sleep(Duration::from_millis(500));
        let new = open(&conninfo, Takeover::Force);
        new.write_batch(&[(Key::Work(60), Some(vec![6]))]).unwrap();
        let late = late.join().unwrap();
        eprintln!("old owner's batch during takeover: {late:?}");
        std::thread::sleep(Duration::from_millis(2500));
        let map = new.load().unwrap();
        let keys: Vec<_> = map.keys().collect();
        eprintln!("after takeover: {keys:?}");
        if late.is_err() {
            assert!(map.contains_key(&Key::Work(1)) && !map.contains_key(&Key::Work(50)));
        }
        assert!(old.write_batch(&put(70)).is_err());
        assert!(!new.load().unwrap().contains_key(&Key::Work(70)));
        client(&conninfo)
            .batch_execute("DROP TRIGGER slow ON kv")
            .unwrap();
    }

    /// A statement timeout in the middle of a batch: nothing of it lands
    /// and the writer is poisoned.
    fn statement_timeout_mid_batch(pg: &pg::Cluster) {
        pg.create_db("sto");
        let conninfo = pg.conninfo("sto");
        let w = open(&conninfo, Takeover::Refuse);
        w.write_batch(&put(1)).unwrap();
        drop(w);
        let slow = Key::Work(50).to_bytes();
        let hex: String = slow.iter().map(|b| format!("{b:02x}")).collect();
        let mut c = client(&conninfo);
        c.batch_execute(&format!(
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF NEW.key = '\\x{hex}'::bytea THEN PERFORM pg_sleep(2); END IF; \
             RETURN NEW; END $$; \
             CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON kv FOR EACH ROW \
             EXECUTE FUNCTION slow(); \
             ALTER DATABASE sto SET statement_timeout = '300ms'"
        ))
        .unwrap();
        let w = open(&conninfo, Takeover::Wait(Duration::from_secs(10)));
        let r = w.write_batch(&[
            (Key::Work(1), None),
            (Key::Work(49), Some(vec![5])),
            (Key::Work(50), Some(vec![5])),
        ]);
        eprintln!("batch under statement timeout: {r:?}");
        let map = client(&conninfo)
            .query("SELECT key FROM kv", &[])
            .unwrap()
            .len();
        if r.is_err() {
            assert_eq!(map, 1, "a failed batch left rows");
            assert!(w.write_batch(&put(2)).is_err());
        }
    }

    fn corrupt_rows(pg: &pg::Cluster) {
        pg.create_db("bad");
        let conninfo = pg.conninfo("bad");
        drop(open(&conninfo, Takeover::Refuse));
        let mut c = client(&conninfo);
        for (what, key) in [
            ("future tag", "\\x080000000000000001"),
            ("empty key", "\\x"),
            ("short key", "\\x0100"),
        ] {
            c.batch_execute("DELETE FROM kv").unwrap();
            c.execute("INSERT INTO kv VALUES ($1::text::bytea, '\\x00')", &[&key])
                .unwrap();
            let p = open(&conninfo, Takeover::Wait(Duration::from_secs(10)));
            let err = p.load().expect_err(what);
            eprintln!("{what}: {err}");
        }
    }
}
