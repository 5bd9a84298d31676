//! Group commit: the queue, the leader and the wake-up, for any backend.
//!
//! A writer [`submit`](GroupCommit::submit)s its batch and gets a
//! [`Ticket`]; then it [`wait`](GroupCommit::wait)s for that ticket. A
//! waiter that finds no commit running becomes the leader: it takes
//! everything queued so far (its own batch and every one queued since the
//! last commit), hands it to the backend's commit function (one transaction,
//! one commit), and wakes everyone it covered. Writers that arrive during a
//! commit queue up for the next leader, so no batch waits for an unrelated
//! slow one for longer than one commit, and N concurrent writers cost one
//! commit, not N.
//!
//! Tickets are handed out in order and a leader covers a prefix of them, so
//! batches become durable in the order they were submitted:
//! [`durable`](GroupCommit::durable) is the ticket up to which everything is
//! durable. The split between `submit` and `wait` is the seam for an
//! asynchronous caller ("append, then release messages once durable"): it
//! can submit under a lock, release the lock, and wait (or poll `durable`)
//! later.
//!
//! If a commit fails, every batch it covered gets the error, and so does
//! every later one: the backend's state is unknown (memory may be ahead of
//! it), so the owner must be reopened.

use std::io;

use parking_lot::{Condvar, Mutex};

/// A batch's place in the commit order (see [`GroupCommit::durable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// Why every write now fails: the first error, kept to repeat it.
#[derive(Clone, Debug)]
struct Failure {
    kind: io::ErrorKind,
    message: String,
}

impl Failure {
    fn error(&self, context: &str) -> io::Error {
        io::Error::new(self.kind, format!("{context}: {}", self.message))
    }
}

struct State<T> {
    /// Batches queued for the next leader, in ticket order.
    queue: Vec<T>,
    /// The last ticket handed out.
    issued: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    leader_active: bool,
    failed: Option<Failure>,
}

/// The group-commit core shared by the SQL backends: a queue of batches of
/// type `T` and a leader that commits them together.
pub(crate) struct GroupCommit<T> {
    state: Mutex<State<T>>,
    /// Signalled when a leader finishes (or fails).
    done: Condvar,
}

impl<T> Default for GroupCommit<T> {
    fn default() -> Self {
        GroupCommit {
            state: Mutex::new(State {
                queue: Vec::new(),
                issued: 0,
                durable: 0,
                leader_active: false,
                failed: None,
            }),
            done: Condvar::new(),
        }
    }
}

/// Resets the leader flag if the commit function panics, so followers are
/// woken with an error instead of waiting forever.
struct LeaderGuard<'a, T> {
    group: &'a GroupCommit<T>,
    armed: bool,
}

impl<T> Drop for LeaderGuard<'_, T> {
    fn drop(&mut self) {
        if self.armed {
            let mut s = self.group.state.lock();
            s.leader_active = false;
            s.failed.get_or_insert(Failure {
                kind: io::ErrorKind::Other,
                message: "a commit panicked".into(),
            });
            self.group.done.notify_all();
        }
    }
}

impl<T> GroupCommit<T> {
    /// Queues `batch` for the next commit and returns its ticket. Fails at
    /// once if an earlier commit failed.
    pub(crate) fn submit(&self, batch: T) -> io::Result<Ticket> {
        let mut s = self.state.lock();
        if let Some(f) = &s.failed {
            return Err(f.error("refused: an earlier commit failed"));
        }
        s.queue.push(batch);
        s.issued += 1;
        Ok(Ticket(s.issued))
    }

    /// Every ticket up to this one is durable (`Ticket(0)`: none yet), or
    /// the error that stopped all writes. Unused until the store releases
    /// messages asynchronously, once their batch is durable.
    #[allow(dead_code)]
    pub(crate) fn durable(&self) -> io::Result<Ticket> {
        let s = self.state.lock();
        match &s.failed {
            Some(f) => Err(f.error("an earlier commit failed")),
            None => Ok(Ticket(s.durable)),
        }
    }

    /// Blocks until `ticket` is durable, leading commits as needed: a
    /// leader calls `commit` once with every batch queued so far, without
    /// holding the queue's lock (others keep queueing meanwhile). `commit`
    /// must make all of them durable atomically, or none.
    pub(crate) fn wait(
        &self,
        ticket: Ticket,
        mut commit: impl FnMut(&[T]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut s = self.state.lock();
        loop {
            if s.durable >= ticket.0 {
                return Ok(());
            }
            if let Some(f) = &s.failed {
                return Err(f.error("the commit covering this batch failed"));
            }
            if s.leader_active {
                self.done.wait(&mut s);
                continue;
            }
            s.leader_active = true;
            let batches = std::mem::take(&mut s.queue);
            let upto = s.issued;
            drop(s);
            let mut guard = LeaderGuard {
                group: self,
                armed: true,
            };
            let result = commit(&batches);
            guard.armed = false;
            s = self.state.lock();
            s.leader_active = false;
            match result {
                Ok(()) => s.durable = upto,
                Err(e) => {
                    let message = e.to_string();
                    s.failed.get_or_insert(Failure {
                        kind: e.kind(),
                        message,
                    });
                }
            }
            self.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn concurrent_writers_share_commits_in_order() {
        let group = Arc::new(GroupCommit::<u64>::default());
        let committed = Arc::new(Mutex::new(Vec::new()));
        let commits = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let (group, committed, commits) =
                    (group.clone(), committed.clone(), commits.clone());
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let ticket = group.submit(t * 1000 + i).unwrap();
                        group
                            .wait(ticket, |batches| {
                                commits.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_micros(200));
                                committed.lock().extend_from_slice(batches);
                                Ok(())
                            })
                            .unwrap();
                        // Durable when wait returns.
                        assert!(committed.lock().contains(&(t * 1000 + i)));
                        assert!(group.durable().unwrap() >= ticket);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let all = committed.lock();
        assert_eq!(all.len(), 400);
        // Each thread's batches were committed in the order it submitted them.
        for t in 0..8u64 {
            let mine: Vec<_> = all.iter().filter(|b| *b / 1000 == t).copied().collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]));
        }
        assert!(
            commits.load(Ordering::Relaxed) < 400,
            "no commit was shared"
        );
    }

    #[test]
    fn a_failed_commit_fails_its_group_and_every_later_write() {
        let group = GroupCommit::<u8>::default();
        let a = group.submit(1).unwrap();
        let b = group.submit(2).unwrap();
        let err = group
            .wait(a, |batches| {
                assert_eq!(batches, &[1, 2]);
                Err(io::Error::new(io::ErrorKind::BrokenPipe, "connection lost"))
            })
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(err.to_string().contains("connection lost"));
        // b was in the failed group: it fails without another commit.
        let err = group.wait(b, |_| panic!("no second commit")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(group.submit(3).is_err());
        assert!(group.durable().is_err());
    }

    #[test]
    fn a_panicking_leader_wakes_its_followers_with_an_error() {
        let group = Arc::new(GroupCommit::<u8>::default());
        let ticket = group.submit(1).unwrap();
        let g = group.clone();
        let leader = std::thread::spawn(move || {
            let _ = g.wait(ticket, |_| panic!("backend bug"));
        });
        assert!(leader.join().is_err());
        assert!(group.wait(ticket, |_| Ok(())).is_err());
    }
}
