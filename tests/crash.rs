//! Crash test: a hub and its peers run payments and close channels in a
//! child process, durably (fsync on), and die by SIGKILL 24 times, each
//! time restarted from their stored state. Most kills come at a scheduled
//! write (the child kills itself once its nodes have written N batches);
//! one in four comes from the parent, after a scheduled delay, landing
//! anywhere. After the last restart the network settles, the chain
//! resolves what closed, and `crash_net::check` holds the end against the
//! journal: every payment ended exactly once, on chain as off it; every
//! open channel's balances exact; every requested close done.
//!
//! A failure prints the seed, the kill schedule, the first broken
//! invariant and the run's directory (kept). Replay it with
//! `CHANSTORE_CRASH_SEED=<seed>`: the same payments, closes and kill
//! points (the order in which a node drains its peers' queues is not
//! fixed, so a replay may take a different path).
//!
//! Once per backend: the file log (`crash_test`), SQLite
//! (`crash_test_sqlite`, feature `sqlite`) and PostgreSQL
//! (`crash_test_postgres`, feature `postgres`: one database per node on a
//! cluster of its own). The child is this test binary, run again with
//! `CHANSTORE_CRASH_DIR` set (test `crash_child`).

mod crash_net;
#[cfg(feature = "postgres")]
mod pg;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use crash_net::{check, child_panic, spawn, spawn_with, tmpdir, Backend};

const KILLS: usize = 24;

/// The child's entry point (a no-op unless run by a crash test).
#[test]
fn crash_child() {
    crash_net::child_main();
}

/// When one run of the child dies.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// It kills itself once its nodes have written this many batches.
    AfterBatches(u64),
    /// Its parent kills it after this many milliseconds.
    AfterMillis(u64),
}

impl std::fmt::Display for Kill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kill::AfterBatches(n) => write!(f, "b{n}"),
            Kill::AfterMillis(ms) => write!(f, "t{ms}ms"),
        }
    }
}

/// The kill schedule of `seed` (xorshift64).
fn schedule(seed: u64) -> Vec<Kill> {
    let mut x = seed | 1;
    (0..KILLS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(4) {
                Kill::AfterMillis(20 + (x >> 8) % 400)
            } else {
                Kill::AfterBatches(1 + (x >> 8) % 400)
            }
        })
        .collect()
}

fn seed() -> u64 {
    match std::env::var("CHANSTORE_CRASH_SEED") {
        Ok(s) => {
            let s = s.trim_start_matches("0x");
            u64::from_str_radix(s, 16).expect("CHANSTORE_CRASH_SEED is hex")
        }
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

fn crash_run(name: &str, test: &str, backend: Backend) {
    let seed = seed();
    let kills = schedule(seed);
    let dir = tmpdir(&format!("crash-{name}"));
    let plan: Vec<String> = kills.iter().map(Kill::to_string).collect();
    eprintln!(
        "crash test ({name}): seed {seed:#x}, kills {}, in {}",
        plan.join(" "),
        dir.display()
    );
    let fail = |what: String| -> ! {
        let panic = child_panic(&dir);
        panic!(
            "crash test ({name}) failed: {what}\n{panic}\nseed {seed:#x}, kill schedule: {}\n\
             the run's directory is kept: {}\n\
             replay: CHANSTORE_CRASH_SEED={seed:#x} cargo test --all-features --test crash {test} -- --exact --nocapture",
            plan.join(" "),
            dir.display()
        )
    };
    if !spawn(&dir, "setup", &backend).wait().unwrap().success() {
        fail("setup failed".into());
    }
    for (run, kill) in kills.iter().enumerate() {
        match *kill {
            Kill::AfterMillis(ms) => {
                let mut child = spawn(&dir, "run", &backend);
                std::thread::sleep(Duration::from_millis(ms));
                if let Some(status) = child.try_wait().unwrap() {
                    fail(format!(
                        "run {run} ({kill}) ended before it was killed: {status}"
                    ));
                }
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
            }
            Kill::AfterBatches(n) => {
                let env = [("CHANSTORE_CRASH_KILL_AFTER", n.to_string())];
                let mut child = spawn_with(&dir, "run", &backend, &env);
                let started = Instant::now();
                let status = loop {
                    if let Some(status) = child.try_wait().unwrap() {
                        break status;
                    }
                    if started.elapsed() > Duration::from_secs(120) {
                        child.kill().unwrap();
                        child.wait().unwrap();
                        fail(format!(
                            "run {run} ({kill}) never wrote its {n} batches: the network stalled"
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                };
                if status.signal() != Some(libc::SIGKILL) {
                    fail(format!("run {run} ({kill}) ended by itself: {status}"));
                }
            }
        }
    }
    if !spawn(&dir, "finish", &backend).wait().unwrap().success() {
        fail("the final run failed its checks".into());
    }
    let s = check(&dir).unwrap_or_else(|broken| fail(broken));
    eprintln!(
        "crash test ({name}): {KILLS} kills, {} payments intended, {} started, {} ended \
         ({} fulfilled), {} closes, {} HTLC outcomes on chain",
        s.intended, s.started, s.ended, s.fulfilled, s.closes, s.on_chain
    );
    if s.fulfilled <= KILLS {
        fail(format!(
            "only {} payments were fulfilled: too few to mean anything",
            s.fulfilled
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn crash_test() {
    crash_run("file", "crash_test", Backend::File);
}

#[cfg(feature = "sqlite")]
#[test]
fn crash_test_sqlite() {
    crash_run("sqlite", "crash_test_sqlite", Backend::Sqlite);
}

#[cfg(feature = "postgres")]
#[test]
fn crash_test_postgres() {
    // The server's own fsync is off: only its client is ever killed here.
    let Some(cluster) = pg::Cluster::start("crash", &["fsync = off"]) else {
        return;
    };
    for i in 0..=crash_net::EDGES {
        cluster.create_db(&format!("node{i}"));
    }
    crash_run(
        "postgres",
        "crash_test_postgres",
        Backend::Postgres(cluster.base_conninfo()),
    );
}
