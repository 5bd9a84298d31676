//! Crash test: a hub and its peers run payments in a child process; the
//! parent kills it (SIGKILL) at random moments, 24 times, restarting it
//! from its stored state each time. After the last restart every payment
//! that started must have ended exactly once (fulfilled or failed, never
//! both, never lost), no HTLC may be left, value is conserved on every
//! channel, and every balance matches the journal (`tests/crash_net`).
//!
//! Once per backend: the file log (`crash_test`), SQLite
//! (`crash_test_sqlite`, feature `sqlite`) and PostgreSQL
//! (`crash_test_postgres`, feature `postgres`: one database per node on a
//! cluster of its own). The child is this test binary, run again with
//! `CHANSTORE_CRASH_DIR` set (test `crash_child`).

mod crash_net;
#[cfg(feature = "postgres")]
mod pg;

use std::time::Duration;

use crash_net::{check, spawn, tmpdir, Backend};

const KILLS: usize = 24;

/// The child's entry point (a no-op unless run by a crash test).
#[test]
fn crash_child() {
    crash_net::child_main();
}

fn crash_run(name: &str, backend: Backend) {
    let dir = tmpdir(&format!("crash-{name}"));
    assert!(
        spawn(&dir, "setup", &backend).wait().unwrap().success(),
        "setup failed"
    );
    // A cheap deterministic sequence of kill delays (20..=420 ms).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..KILLS {
        let mut child = spawn(&dir, "run", &backend);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(20 + x % 400));
        if let Some(status) = child.try_wait().unwrap() {
            panic!("child ended before it was killed: {status}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert!(
        spawn(&dir, "finish", &backend).wait().unwrap().success(),
        "final run failed its checks"
    );
    let (intended, started, ended, fulfilled) = check(&dir);
    eprintln!(
        "crash test ({name}): {KILLS} kills, {intended} payments intended, {started} started, \
         {ended} ended ({fulfilled} fulfilled)"
    );
    assert!(
        fulfilled > KILLS,
        "too few payments completed to mean anything"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn crash_test() {
    crash_run("file", Backend::File);
}

#[cfg(feature = "sqlite")]
#[test]
fn crash_test_sqlite() {
    crash_run("sqlite", Backend::Sqlite);
}

#[cfg(feature = "postgres")]
#[test]
fn crash_test_postgres() {
    // fsync off: the server is never killed here, only its client.
    let Some(cluster) = pg::Cluster::start("crash", &["fsync = off"]) else {
        return;
    };
    for i in 0..=crash_net::EDGES {
        cluster.create_db(&format!("node{i}"));
    }
    crash_run("postgres", Backend::Postgres(cluster.base_conninfo()));
}
