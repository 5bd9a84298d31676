//! The directory lock of a [`FilePersister`](super::FilePersister): one
//! writer per log.
//!
//! Two persisters on one directory would each rewrite the log on open and
//! then append to their own copy: the first one's later groups would go to
//! a file the second had already renamed over, acknowledged and then lost
//! on the next restart (a revoked commitment we no longer know is revoked,
//! an HTLC we no longer know we owe). So `open` takes an exclusive advisory
//! lock (`flock(2)` on Unix, `LockFileEx` on Windows, through std's
//! [`File::try_lock`]) on a `LOCK` file in the directory before it reads
//! anything, and holds it until the persister is dropped. The lock belongs
//! to the open file, so a second persister in the same process is refused
//! too, and the kernel releases it when the process dies: a crash leaves
//! no stale lock behind. The file's contents mean nothing and it is never
//! deleted (deleting it would let a third opener lock a new file while the
//! second still holds the old one).
//!
//! A lock held by this process may outlive its persister for a moment: a
//! thread that forks a child process (`std::process::Command`) while the
//! lock file is open gives the child a copy of its descriptor, which the
//! child closes only when it execs. A store dropped and opened again at
//! that moment found its own lock taken (seen in CI, with tests starting
//! PostgreSQL beside it). So a lock that is taken is tried again for up to
//! [`LOCK_WAIT`] before `open` says another writer has it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::StoreError;

/// The name of the lock file in a persister's directory.
pub(super) const LOCK_NAME: &str = "LOCK";

/// How long a taken lock is tried again (see the module doc).
pub(super) const LOCK_WAIT: Duration = Duration::from_secs(1);

/// An exclusive lock on a log directory, held while this lives.
#[derive(Debug)]
pub(super) struct DirLock {
    /// Held open: closing it releases the lock.
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir`, or says that another writer holds it.
    pub(super) fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_NAME);
        let fail = |e: std::io::Error| StoreError::Persist(format!("{}: {e}", path.display()));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(fail)?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(DirLock { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StoreError::Persist(format!(
                        "file log {} is locked by another writer (only one store may have it open)",
                        dir.display()
                    )))
                }
                Err(TryLockError::Error(e)) => return Err(fail(e)),
            }
        }
    }
}
