//! `PostgresPersister`'s fenced single writer: two persisters racing for
//! one database, refusal, waiting, a forced takeover that makes the old
//! writer's next batch fail, a lost epoch, a lost connection, a newer
//! schema, a corrupt key.
#![cfg(feature = "postgres")]

mod pg;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use chanstore::persist::Key;
use chanstore::{Persister, PostgresOptions, PostgresPersister, Takeover};

fn open(
    conninfo: &str,
    takeover: Takeover,
    holder: &str,
) -> Result<PostgresPersister, chanstore::StoreError> {
    PostgresPersister::open(
        conninfo,
        PostgresOptions {
            takeover,
            holder: holder.to_string(),
        },
    )
}

/// One cluster for every scenario (each on its own database): starting a
/// server costs seconds on two cores.
#[test]
fn lease() {
    let Some(pg) = pg::Cluster::start("lease", &[]) else {
        return;
    };
    only_one_of_racing_writers_gets_the_lease(&pg);
    a_waiting_writer_gets_the_lease_when_the_holder_closes(&pg);
    a_forced_takeover_fails_the_old_writers_next_batch(&pg);
    a_writer_whose_epoch_moved_is_fenced_off(&pg);
    a_lost_connection_is_an_io_error_and_stops_the_writer(&pg);
    a_newer_schema_and_a_corrupt_key_are_refused_clearly(&pg);
}

fn put(n: u64) -> Vec<(Key, Option<Vec<u8>>)> {
    vec![(Key::Work(n), Some(n.to_be_bytes().to_vec()))]
}

fn only_one_of_racing_writers_gets_the_lease(pg: &pg::Cluster) {
    pg.create_db("race");
    let conninfo = pg.conninfo("race");
    let barrier = Arc::new(Barrier::new(6));
    let racers: Vec<_> = (0..6)
        .map(|i| {
            let (conninfo, barrier) = (conninfo.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                open(&conninfo, Takeover::Refuse, &format!("racer {i}"))
            })
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            let text = e.to_string();
            assert!(
                text.contains("the lease is held by another writer"),
                "{text}"
            );
            // The winner records itself just after taking the lock, so a
            // loser may come in between.
            assert!(
                text.contains("holder 'racer ") || text.contains("not recorded itself yet"),
                "{text}"
            );
        }
    }
    winners[0].write_batch(&put(1)).unwrap();
}

fn a_waiting_writer_gets_the_lease_when_the_holder_closes(pg: &pg::Cluster) {
    pg.create_db("wait");
    let conninfo = pg.conninfo("wait");
    let first = open(&conninfo, Takeover::Refuse, "first").unwrap();
    first.write_batch(&put(1)).unwrap();
    let err = open(
        &conninfo,
        Takeover::Wait(Duration::from_millis(300)),
        "second",
    )
    .unwrap_err();
    assert!(err.to_string().contains("waited 300 ms"), "{err}");
    let waiter = {
        let conninfo = conninfo.clone();
        std::thread::spawn(move || {
            open(&conninfo, Takeover::Wait(Duration::from_secs(20)), "second")
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    drop(first);
    let second = waiter.join().unwrap().unwrap();
    assert_eq!(second.epoch(), 2);
    assert_eq!(second.load().unwrap()[&Key::Work(1)], 1u64.to_be_bytes());
    second.write_batch(&put(2)).unwrap();
}

fn a_forced_takeover_fails_the_old_writers_next_batch(pg: &pg::Cluster) {
    pg.create_db("force");
    let conninfo = pg.conninfo("force");
    let old = open(&conninfo, Takeover::Refuse, "old").unwrap();
    old.write_batch(&put(1)).unwrap();
    let new = open(&conninfo, Takeover::Force, "new").unwrap();
    assert!(new.epoch() > old.epoch());
    let err = old.write_batch(&put(2)).unwrap_err();
    eprintln!("old writer after takeover: {err}");
    // Refused for good: every later batch fails too.
    assert!(old.write_batch(&put(3)).is_err());
    new.write_batch(&put(4)).unwrap();
    let map = new.load().unwrap();
    assert!(map.contains_key(&Key::Work(1)) && map.contains_key(&Key::Work(4)));
    assert!(!map.contains_key(&Key::Work(2)) && !map.contains_key(&Key::Work(3)));
}

fn a_writer_whose_epoch_moved_is_fenced_off(pg: &pg::Cluster) {
    pg.create_db("epoch");
    let conninfo = pg.conninfo("epoch");
    let writer = open(&conninfo, Takeover::Refuse, "writer").unwrap();
    writer.write_batch(&put(1)).unwrap();
    // Another store took over without ending this one's session (e.g. it
    // was partitioned away and its lock looked free): only the epoch tells.
    let mut admin = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    admin
        .batch_execute("UPDATE lease SET epoch = epoch + 1")
        .unwrap();
    let err = writer.write_batch(&put(2)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("lease lost"), "{err}");
    assert!(writer.write_batch(&put(3)).is_err());
    let rows = admin.query("SELECT key FROM kv", &[]).unwrap();
    assert_eq!(rows.len(), 1);
}

fn a_lost_connection_is_an_io_error_and_stops_the_writer(pg: &pg::Cluster) {
    pg.create_db("conn");
    let conninfo = pg.conninfo("conn");
    let writer = open(&conninfo, Takeover::Refuse, "writer").unwrap();
    writer.write_batch(&put(1)).unwrap();
    let mut admin = pg.admin();
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = 'conn' AND pid <> pg_backend_pid()",
        )
        .unwrap();
    let started = Instant::now();
    let err = writer.write_batch(&put(2)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted, "{err}");
    assert!(writer.write_batch(&put(3)).is_err());
    drop(writer);
    let again = open(&conninfo, Takeover::Wait(Duration::from_secs(10)), "again").unwrap();
    assert_eq!(again.load().unwrap().len(), 1);
}

fn a_newer_schema_and_a_corrupt_key_are_refused_clearly(pg: &pg::Cluster) {
    pg.create_db("schema");
    let conninfo = pg.conninfo("schema");
    drop(open(&conninfo, Takeover::Refuse, "w").unwrap());
    let mut admin = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    admin
        .batch_execute("INSERT INTO kv VALUES ('\\x0701'::bytea, '\\x00'::bytea)")
        .unwrap();
    let p = open(&conninfo, Takeover::Wait(Duration::from_secs(10)), "w").unwrap();
    let err = p.load().unwrap_err();
    assert!(err.to_string().contains("corrupt key 0701"), "{err}");
    drop(p);
    admin
        .batch_execute("UPDATE meta SET value = 9 WHERE name = 'schema_version'")
        .unwrap();
    let err = open(&conninfo, Takeover::Wait(Duration::from_secs(10)), "w").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("schema version 9 is newer"), "{text}");
    assert!(
        text.contains(&format!(
            "version {}",
            chanstore::persist::SQL_SCHEMA_VERSION
        )),
        "{text}"
    );
}
