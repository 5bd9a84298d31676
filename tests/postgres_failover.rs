//! Failover with `PostgresPersister`, under payment load through the public
//! `ChannelStore` API, with the crash test's exactly-once checks
//! (`tests/crash_net`): every payment that started ended exactly once, no
//! HTLC is left, balances and fees are exact.
//!
//! 1. `primary_killed_standby_promoted`: the hub writes to a primary with a
//!    synchronous standby (`synchronous_standby_names = '*'`, the standby
//!    made with `pg_basebackup -R`). The primary's postmaster is SIGKILLed
//!    mid-load; the hub's store fails and refuses all work; the standby is
//!    promoted; the hub is reopened against it and its peers reconnect.
//!    Whatever the hub acknowledged was on the standby.
//! 2. `hub_process_killed_standby_process_takes_the_lease`: the hub process
//!    (a child running payments) is SIGKILLed while a standby hub process
//!    waits for its lease; the standby takes it over (its open was blocked
//!    until then), settles the network and reports.
#![cfg(feature = "postgres")]

mod crash_net;
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chanstore::{MemoryPersister, Persister, StoreError};
use crash_net::{
    check, journal_append, node, open_postgres, read_journal, setup, spawn, tmpdir, Backend, Net,
    Payer, EDGES,
};

/// The child's entry point (a no-op unless run by test 2).
#[test]
fn crash_child() {
    crash_net::child_main();
}

#[test]
fn primary_killed_standby_promoted() {
    let Some(primary) = pg::Cluster::start("failover", &[]) else {
        return;
    };
    primary.create_db("hub");
    let standby = primary.standby("failover-standby");
    primary.wait_for_sync_standby();
    let dir = tmpdir("failover-primary");
    let hub_db = |c: &pg::Cluster| -> Arc<dyn Persister> {
        Arc::new(open_postgres(&c.conninfo("hub"), Duration::from_secs(10)))
    };
    // The edges keep their state in memory: only the hub's database dies.
    let edges: Vec<Arc<MemoryPersister>> = (0..EDGES).map(|_| Arc::default()).collect();
    let mut net = Net::with(|i| match i {
        0 => hub_db(&primary),
        e => edges[e - 1].clone(),
    });
    setup(&net, &dir);
    let mut payer = Payer::new(&dir);
    let started = Instant::now();
    let err = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(1500));
            primary.kill_postmaster();
        });
        loop {
            if let Err(e) = payer.step(&net, &dir) {
                break e;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the hub never noticed"
            );
        }
    });
    assert!(matches!(err, StoreError::Persist(_)), "{err}");
    eprintln!("hub after the primary died: {err}");
    let before = read_journal(&dir).1.len();
    standby.promote();
    net.replace_hub(node(0, hub_db(&standby)));
    for _ in 0..40 {
        payer.step(&net, &dir).unwrap();
    }
    payer.settle_and_report(&net, &dir);
    let s = check(&dir).unwrap();
    let (intended, started, ended, fulfilled) = (s.intended, s.started, s.ended, s.fulfilled);
    eprintln!(
        "failover (primary killed): {intended} payments intended ({before} before the kill), \
         {started} started, {ended} ended ({fulfilled} fulfilled)"
    );
    assert!(
        fulfilled > 20,
        "too few payments completed to mean anything"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn journal_has(dir: &std::path::Path, line: &str) -> Option<usize> {
    read_journal(dir).0.iter().position(|l| l == line)
}

/// Waits until `n` journal lines start with `prefix`.
fn wait_for_count(dir: &std::path::Path, prefix: &str, n: usize) {
    let started = Instant::now();
    while read_journal(dir)
        .0
        .iter()
        .filter(|l| l.starts_with(prefix))
        .count()
        < n
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "fewer than {n} '{prefix}' lines in the journal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for(dir: &std::path::Path, line: &str) {
    let started = Instant::now();
    while journal_has(dir, line).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no '{line}' in the journal"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn hub_process_killed_standby_process_takes_the_lease() {
    let Some(cluster) = pg::Cluster::start("failover-process", &["fsync = off"]) else {
        return;
    };
    for i in 0..=EDGES {
        cluster.create_db(&format!("node{i}"));
    }
    let backend = Backend::Postgres(cluster.base_conninfo());
    let dir = tmpdir("failover-process");
    assert!(
        spawn(&dir, "setup", &backend).wait().unwrap().success(),
        "setup failed"
    );
    let mut active = spawn(&dir, "run", &backend);
    wait_for(&dir, "running");
    let mut standby = spawn(&dir, "standby", &backend);
    wait_for(&dir, "standby waiting");
    // Kill once the active hub has done real work, however slow the machine
    // (a fixed sleep let a loaded CI machine kill it before 10 payments).
    wait_for_count(&dir, "sent ", 15);
    assert!(
        active.try_wait().unwrap().is_none(),
        "the active hub died by itself"
    );
    assert!(
        journal_has(&dir, "standby took the lease").is_none(),
        "the standby took the lease while the active hub held it"
    );
    journal_append(&dir, "killing the active hub");
    active.kill().unwrap(); // SIGKILL
    active.wait().unwrap();
    assert!(
        standby.wait().unwrap().success(),
        "the standby failed its checks"
    );
    let killed = journal_has(&dir, "killing the active hub").unwrap();
    let took = journal_has(&dir, "standby took the lease").unwrap();
    assert!(killed < took, "the standby took the lease before the kill");
    let s = check(&dir).unwrap();
    let (intended, started, ended, fulfilled) = (s.intended, s.started, s.ended, s.fulfilled);
    eprintln!(
        "failover (hub process killed): {intended} payments intended, {started} started, \
         {ended} ended ({fulfilled} fulfilled)"
    );
    assert!(
        fulfilled > 10,
        "too few payments completed to mean anything"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
