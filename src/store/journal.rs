//! The journal: where a section's writes wait, in order, for the persister,
//! so that no thread holds a peer lock, or waits at all, while the disk
//! works.
//!
//! **The rule** (with the one of `section.rs`): every durable consequence
//! of a section is *appended* here as one batch, with the next sequence
//! number, before the section's peer lock is released; batches become
//! durable in sequence order (a commit writes every batch appended so far,
//! as one atomic `write_batch`); and nothing a section produced (its
//! messages, its events) leaves the store before its batch is durable.
//! Messages carry their section's number in the peer's outbox and are
//! handed out only once it is durable; events wait here and are released by
//! the commit that makes them durable.
//!
//! Whatever another section derives from this one (a forward it queued, a
//! resolution it passed back) is applied later, in a section that appends
//! later, so it becomes durable no earlier: a crash keeps a prefix of the
//! batches, and a prefix is always a state the network could be in.
//!
//! **Lazy batches.** A batch that releases nothing (no message, no event)
//! and whose loss in a crash is provably harmless is appended *lazily*: it
//! gets its number like any other, but no commit is run for it. It becomes
//! durable with the next commit that something does wait for (a commit
//! writes every batch appended so far, so in sequence order: whatever later
//! depends on it is durable no earlier than it), or with an explicit
//! [`ChannelStore::flush`]. Which batches qualify, and
//! why losing them is safe, is [`Outcome::may_wait`](super::section::Outcome::may_wait)'s
//! and [`ChannelStore::process_pending_events`]'s to say. The laziness lives
//! here, in the journal, and not in the backends: a lazy batch is simply not
//! handed to the persister yet, so every backend (file, SQLite, PostgreSQL,
//! memory) gets it with the same atomic `write_batch` of its next group and
//! none of them needs a second, unsynced write path (an unsynced write is
//! lost in a crash just as a batch still in memory is).
//!
//! **Who waits.** Nobody in a section. A commit is run by whoever needs
//! durability: taking messages or events (`get_and_clear_pending_msg_events`,
//! `get_and_clear_pending_events`, `process_pending_events`) or
//! [`ChannelStore::flush`]. One commit runs at a time; the batches appended
//! while it runs share the next one (group commit across every peer and
//! thread). LDK's asynchronous `ChannelMonitor` updates, which hold a
//! channel's messages until its update completes, are the same idea.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{ChannelStore, Container};
use crate::error::StoreError;
use crate::event::Event;
use crate::persist::{codec, frame, Key};
use crate::types::{ChannelId, PaymentHash};

/// One section's writes.
type Batch = Vec<(Key, Option<Vec<u8>>)>;

/// What is appended and not yet durable.
#[derive(Default)]
struct Pending {
    /// The number the next appended batch gets (the first is 1).
    next: u64,
    /// The last number something waits for: a message or an event leaves
    /// once it is durable, or the batch was not lazy. Lazy batches after it
    /// wait for the next commit.
    needed: u64,
    batches: Vec<Batch>,
    /// Events waiting for their batch, with its number.
    events: Vec<(u64, (u64, Event))>,
}

/// Batches appended under peer locks, committed in order.
#[derive(Default)]
pub(crate) struct Journal {
    pending: Mutex<Pending>,
    /// Every batch numbered up to this is durable. Release: a reader that
    /// sees it also sees the outbox tags it covers (they were written under
    /// peer locks before the batch was appended).
    durable: AtomicU64,
    /// Held by the one thread committing.
    commit: Mutex<()>,
}

impl Journal {
    /// Appends a section's writes and events: returns the number its
    /// messages wait for. A section with nothing to write waits for the
    /// last batch appended (its messages may depend on any of them).
    /// `lazy`: nothing leaves with this batch and losing it is harmless
    /// (see the module doc), so no commit needs to run for it; a batch with
    /// events is never lazy. Called under the section's peer lock; the
    /// journal's lock is a leaf but for the claimables shards
    /// [`Journal::append_with`] may take inside it.
    pub(crate) fn append(&self, writes: Batch, events: Vec<(u64, Event)>, lazy: bool) -> u64 {
        self.append_with(writes, events, lazy, |_, _| {})
    }

    /// [`Journal::append`], with `more` adding to the batch under the
    /// journal's lock, so that no batch is appended between what it saw and
    /// the batch it adds to (the payments a section's parts complete,
    /// `claimables.rs`). `more` takes only leaf locks.
    pub(crate) fn append_with(
        &self,
        mut writes: Batch,
        mut events: Vec<(u64, Event)>,
        lazy: bool,
        more: impl FnOnce(&mut Batch, &mut Vec<(u64, Event)>),
    ) -> u64 {
        let mut p = self.pending.lock();
        more(&mut writes, &mut events);
        if p.next == 0 {
            p.next = 1;
        }
        let lazy = lazy && events.is_empty();
        if writes.is_empty() && events.is_empty() {
            let last = p.next - 1;
            if !lazy {
                p.needed = p.needed.max(last);
            }
            return last;
        }
        let seq = p.next;
        p.next += 1;
        p.batches.push(writes);
        p.events.extend(events.into_iter().map(|e| (seq, e)));
        if !lazy {
            p.needed = seq;
        }
        seq
    }

    /// The number of the last batch something waits for (0: none).
    fn last_needed(&self) -> u64 {
        self.pending.lock().needed
    }

    /// The number of the last batch appended (0: none).
    fn last_appended(&self) -> u64 {
        self.pending.lock().next.saturating_sub(1)
    }

    /// Every batch up to this number is durable.
    pub(crate) fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }
}

impl<C: Container> ChannelStore<C> {
    /// Makes everything done so far durable: commits every batch appended
    /// before the call (and any appended meanwhile), lazy ones included,
    /// then releases the events they carry. Without a persister there is
    /// nothing to do. Messages and events are handed out only after their
    /// batch is durable, so taking them commits (up to the last batch they
    /// wait for); call this yourself to bound how much a crash could undo
    /// (call it before a clean shutdown: a dropped store writes nothing, so
    /// that a store replaced in place, `store = ChannelStore::open(..)?`,
    /// cannot write its stale batches over the state its successor loaded;
    /// without the call the peers are asked again for the revocations the
    /// lazy batches held, and the events `process_pending_events` handed
    /// out last are delivered again).
    ///
    /// **Locking behaviour:** no peer lock. One commit runs at a time:
    /// a caller that finds one running waits for it, then commits what is
    /// left, if anything.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.commit_upto(self.journal.last_appended())
    }

    /// Commits what messages and events wait for: every batch up to the
    /// last that is not lazy (and, in the same group, every lazy one
    /// appended so far). Lazy batches after it stay in memory.
    pub(crate) fn commit_needed(&self) -> Result<(), StoreError> {
        self.commit_upto(self.journal.last_needed())
    }

    /// Commits every batch appended so far, if batch `target` is not
    /// durable yet.
    fn commit_upto(&self, target: u64) -> Result<(), StoreError> {
        let Some(persister) = &self.persister else {
            return Ok(());
        };
        let journal = &self.journal;
        if journal.durable() >= target {
            return Ok(());
        }
        let _committing = journal.commit.lock();
        if journal.durable() >= target {
            return Ok(());
        }
        self.check_not_failed()?;
        let (upto, batches, events) = {
            let mut p = journal.pending.lock();
            let upto = p.next.saturating_sub(1);
            (
                upto,
                std::mem::take(&mut p.batches),
                std::mem::take(&mut p.events),
            )
        };
        let group: Batch = batches.into_iter().flatten().collect();
        // The batches are taken out of `pending`: a persister that panics
        // loses them, and the next commit would mark them durable unwritten.
        // Refuse all work from then on, as for a failed write.
        let _fail_on_panic = super::FailOnPanic(&self.failed);
        if !group.is_empty() {
            if let Err(e) = persister.write_batch(&group) {
                // Memory is ahead of the disk now: refuse all work. What
                // depended on these batches never leaves.
                self.failed.store(true, Ordering::Relaxed);
                return Err(StoreError::Persist(e.to_string()));
            }
        }
        journal.durable.store(upto, Ordering::Release);
        for (_, event) in events {
            self.events.push(event);
        }
        Ok(())
    }

    /// Appends a batch that no section made (a restore's clean-up, a
    /// forward to a peer that is gone) and commits it: on return it is
    /// durable.
    pub(crate) fn persist_now(&self, batch: Batch) -> Result<(), StoreError> {
        self.check_not_failed()?;
        if self.persister.is_none() {
            return Ok(());
        }
        self.journal.append(batch, Vec::new(), false);
        self.flush()
    }

    /// Appends a batch that no section made and that nothing waits for
    /// (`process_pending_events`' deletions): durable with the next commit.
    pub(crate) fn persist_lazily(&self, batch: Batch) -> Result<(), StoreError> {
        self.check_not_failed()?;
        if self.persister.is_some() {
            self.journal.append(batch, Vec::new(), true);
        }
        Ok(())
    }

    /// Queues a section's durable consequences (see the module doc);
    /// returns the number its messages wait for. Without a persister its
    /// events go out at once. `lazy`: see [`Journal::append`]. `parts`:
    /// the parts of payments to us the section added; a payment whose last
    /// part this batch carries is announced in it (`PaymentReceived`, see
    /// `claimables.rs`), under the journal's lock.
    pub(crate) fn append_section(
        &self,
        mut writes: Batch,
        mut events: Vec<(u64, Event)>,
        lazy: bool,
        parts: &[(PaymentHash, ChannelId, u64)],
    ) -> u64 {
        let durable = self.persister.is_some();
        let announce = |writes: &mut Batch, events: &mut Vec<(u64, Event)>| {
            for event in super::claimables::parts_appended(&self.claimables, parts) {
                let (seq, event) = self.seq.new_event(event);
                if durable {
                    let bytes = frame(&codec::encode_event(&event));
                    writes.push((Key::Event(seq), Some(bytes)));
                }
                events.push((seq, event));
            }
        };
        if !durable {
            announce(&mut writes, &mut events);
            for event in events {
                self.events.push(event);
            }
            return 0;
        }
        self.journal.append_with(writes, events, lazy, announce)
    }

    /// The number up to which messages may leave (everything, without a
    /// persister).
    pub(crate) fn releasable(&self) -> u64 {
        if self.persister.is_none() {
            u64::MAX
        } else {
            self.journal.durable()
        }
    }
}
