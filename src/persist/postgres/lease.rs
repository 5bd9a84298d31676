//! The fenced single writer: a session-level advisory lock held by the
//! writing connection, and an `epoch` row bumped by every writer that takes
//! the database over.
//!
//! Opening tries `pg_try_advisory_lock`. If another session holds it, the
//! [`Takeover`] option decides: refuse, wait for that session to end (its
//! process died or closed the store; the server then releases the lock), or
//! end that session with `pg_terminate_backend` and take the lock. Once the
//! lock is held, the `lease` row's epoch is bumped; every later transaction
//! of this writer re-reads it `FOR UPDATE` and aborts if it changed. The
//! advisory lock keeps two live writers apart; the epoch fences a writer
//! that lost its session (or was taken over) from ever writing again, even
//! if its connection were somehow restored.

use std::thread;
use std::time::{Duration, Instant};

use postgres::Client;

use crate::error::StoreError;

/// The advisory lock key of the lease ("chanstor" in ASCII). Advisory locks
/// are per database, so one cluster can hold many nodes' databases.
pub(super) const LOCK_KEY: i64 = 0x6368_616e_7374_6f72;

/// What `open` does when another session holds the lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takeover {
    /// Fail at once with an error that names the holder (the default).
    Refuse,
    /// Wait up to this long for the holder's session to end (a standby
    /// process waiting for the active one to die), then take the lease.
    Wait(Duration),
    /// Take the lease now: end the holder's session and bump the epoch, so
    /// its next batch fails. For an operator who knows the old writer is
    /// gone or must be stopped.
    Force,
}

fn pg(what: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Persist(format!("{what}: {}", super::message(&e)))
}

/// Takes the lease on `client`'s database and returns the new epoch.
pub(super) fn acquire(
    client: &mut Client,
    takeover: Takeover,
    holder: &str,
    what: &str,
) -> Result<i64, StoreError> {
    let started = Instant::now();
    loop {
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
            .and_then(|r| r.try_get(0))
            .map_err(pg(what))?;
        if got {
            break;
        }
        match takeover {
            Takeover::Refuse => return Err(held(client, what, "")),
            Takeover::Wait(limit) if started.elapsed() >= limit => {
                return Err(held(
                    client,
                    what,
                    &format!(" (waited {} ms)", limit.as_millis()),
                ))
            }
            Takeover::Wait(_) => thread::sleep(Duration::from_millis(50)),
            Takeover::Force if started.elapsed() >= Duration::from_secs(30) => {
                return Err(held(client, what, " (its session did not end)"))
            }
            Takeover::Force => {
                terminate_holder(client).map_err(pg(what))?;
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let mut tx = client.transaction().map_err(pg(what))?;
    let epoch: i64 = tx
        .query_one(
            "UPDATE lease SET epoch = epoch + 1, holder = $1, acquired_at = now() \
             WHERE id = 1 RETURNING epoch",
            &[&holder],
        )
        .and_then(|r| r.try_get(0))
        .map_err(pg(what))?;
    tx.commit().map_err(pg(what))?;
    Ok(epoch)
}

/// Ends every other session that holds the lease's advisory lock.
fn terminate_holder(client: &mut Client) -> Result<(), postgres::Error> {
    // A bigint advisory key shows in pg_locks as classid (high half),
    // objid (low half), objsubid 1.
    let (hi, lo) = ((LOCK_KEY >> 32) as u32, LOCK_KEY as u32);
    client.execute(
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_locks \
             WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND classid::bigint = {hi} AND objid::bigint = {lo} AND objsubid = 1"
        ),
        &[],
    )?;
    Ok(())
}

/// The refusal: who holds the lease, at which epoch, since when.
fn held(client: &mut Client, what: &str, detail: &str) -> StoreError {
    let holder = client
        .query_one(
            "SELECT epoch, holder, acquired_at::text FROM lease WHERE id = 1",
            &[],
        )
        .and_then(|r| {
            let epoch: i64 = r.try_get(0)?;
            // The holder takes the advisory lock first and records itself
            // just after: a refusal in between sees the row of the previous
            // holder, or none yet.
            Ok(if epoch == 0 {
                "the holder has not recorded itself yet".to_string()
            } else {
                format!(
                    "last recorded: epoch {epoch}, holder '{}', since {}",
                    r.try_get::<_, String>(1)?,
                    r.try_get::<_, String>(2)?
                )
            })
        })
        .unwrap_or_else(|e| format!("holder unknown: {}", super::message(&e)));
    StoreError::Persist(format!(
        "{what}: the lease is held by another writer ({holder}){detail}; \
         only one store may write a node's database"
    ))
}
