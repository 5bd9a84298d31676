//! [`FairRwLock`]: a `std::sync::RwLock` whose new readers queue behind a
//! waiting writer, as LDK's `FairRwLock` does (review club question 5).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A reader-writer lock that does not let a steady stream of readers starve
/// a writer.
///
/// `std::sync::RwLock` leaves the policy to the platform: some
/// implementations let a new reader in while a writer waits, so readers that
/// overlap each other can keep a writer out forever. Here a writer announces
/// itself in `waiting_writers` before it blocks, and a reader that sees a
/// waiting writer first takes (and at once drops) the write lock, which
/// queues it behind that writer. (Linux's futex `RwLock` already prefers
/// writers; this makes the behaviour the same everywhere, as LDK does.)
///
/// Poisoning is ignored, as with `parking_lot`: the baselines never panic
/// under a write lock, and a test that does should not cascade.
///
/// **Locking behaviour:** as `RwLock`; in addition a reader may briefly hold
/// the write lock, so a thread must never call `read` while it already holds
/// a read guard of the same lock (it would wait for itself behind a writer).
pub struct FairRwLock<T> {
    lock: RwLock<T>,
    /// Writers blocked in `write`. Only a hint for readers: it never guards
    /// memory, the `RwLock` does.
    waiting_writers: AtomicUsize,
}

impl<T> FairRwLock<T> {
    /// A lock holding `value`.
    pub fn new(value: T) -> Self {
        FairRwLock {
            lock: RwLock::new(value),
            waiting_writers: AtomicUsize::new(0),
        }
    }

    /// Exclusive access.
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        // Relaxed: the counter publishes no memory (the RwLock's own
        // acquire/release does). A reader that misses this increment for a
        // moment just takes the read lock directly once more, as with a
        // plain RwLock; the writer is still in the lock's queue.
        self.waiting_writers.fetch_add(1, Ordering::Relaxed);
        let guard = self.lock.write().unwrap_or_else(PoisonError::into_inner);
        // Relaxed: as above. Readers that still see the old count after we
        // got in queue on the write lock once more for nothing; harmless.
        self.waiting_writers.fetch_sub(1, Ordering::Relaxed);
        guard
    }

    /// Shared access; waits behind any writer already waiting.
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        // Relaxed: deciding to queue is a scheduling choice, not a
        // synchronization: whichever value we read, the read lock below is
        // what orders us with writers.
        if self.waiting_writers.load(Ordering::Relaxed) != 0 {
            // Queue behind the waiting writer(s), then let go at once.
            drop(self.lock.write().unwrap_or_else(PoisonError::into_inner));
        }
        self.lock.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writers waiting right now (a snapshot).
    #[cfg(test)]
    fn waiting_writers(&self) -> usize {
        // Relaxed: tests read it as a progress hint, ordered by joins.
        self.waiting_writers.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::thread;

    /// Spins (yielding) until `cond`, at most `limit` times; says whether it held.
    fn wait_for(limit: usize, cond: impl Fn() -> bool) -> bool {
        for _ in 0..limit {
            if cond() {
                return true;
            }
            thread::yield_now();
        }
        cond()
    }

    const SPINS: usize = if cfg!(miri) { 10_000 } else { 10_000_000 };

    #[test]
    fn a_new_reader_queues_behind_a_waiting_writer() {
        let lock = Arc::new(FairRwLock::new(0u32));
        let held = lock.read();
        let writer = {
            let lock = lock.clone();
            thread::spawn(move || *lock.write() = 1)
        };
        // The writer cannot get in while we read; wait until it announced itself.
        assert!(wait_for(SPINS, || lock.waiting_writers() == 1));
        let entered = Arc::new(AtomicBool::new(false));
        let reader = {
            let (lock, entered) = (lock.clone(), entered.clone());
            thread::spawn(move || {
                let _guard = lock.read();
                // SeqCst: polled by the main thread below; only visibility matters.
                entered.store(true, Ordering::SeqCst);
            })
        };
        // The reader saw the waiting writer (it was spawned after we did), so it
        // is queued on the write lock behind our read guard: it cannot be in,
        // however long we let it run.
        for _ in 0..1_000 {
            thread::yield_now();
            assert!(
                !entered.load(Ordering::SeqCst),
                "reader overtook a waiting writer"
            );
        }
        drop(held);
        writer.join().unwrap();
        reader.join().unwrap();
        assert!(entered.load(Ordering::SeqCst));
        assert_eq!(*lock.read(), 1);
        assert_eq!(lock.waiting_writers(), 0);
    }

    #[test]
    fn a_writer_is_not_starved_by_a_stream_of_readers() {
        const READERS: usize = 3;
        // Rounds a reader may still run once the writer waits; a fair lock
        // needs about one.
        const AFTER_WRITER: usize = if cfg!(miri) { 1_000 } else { 100_000 };
        let lock = Arc::new(FairRwLock::new(false));
        let writer_started = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (lock, started) = (lock.clone(), writer_started.clone());
                thread::spawn(move || {
                    let mut after = 0;
                    for _ in 0..SPINS {
                        let guard = lock.read();
                        if *guard {
                            return true;
                        }
                        // Hold the read lock across a yield, so readers overlap
                        // and the lock is never free of readers on its own.
                        thread::yield_now();
                        drop(guard);
                        // SeqCst: a flag read in a loop; ordering is not needed
                        // for correctness, only eventual visibility.
                        if started.load(Ordering::SeqCst) {
                            after += 1;
                            if after > AFTER_WRITER {
                                return false;
                            }
                        }
                    }
                    false
                })
            })
            .collect();
        let writer = {
            let (lock, started) = (lock.clone(), writer_started.clone());
            thread::spawn(move || {
                started.store(true, Ordering::SeqCst);
                *lock.write() = true;
            })
        };
        writer.join().unwrap();
        for r in readers {
            assert!(
                r.join().unwrap(),
                "a reader never saw the write: writer starved"
            );
        }
        assert_eq!(lock.waiting_writers(), 0);
    }
}
