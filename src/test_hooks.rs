//! Hidden hooks for tests (feature `test-hooks`): a test stalls a section,
//! on the thread that runs it, at a chosen point, so that a race between
//! two threads happens on purpose rather than once in a million runs. Not
//! part of the API; compiled into no build without the feature.

use std::cell::RefCell;

/// A hook for this thread's sections.
pub type Hook = Box<dyn FnMut()>;

thread_local! {
    static BEFORE_APPEND: RefCell<Option<Hook>> = const { RefCell::new(None) };
}

/// Runs `hook` in every section this thread runs from now on, after the
/// section's work (its messages handled, its channels polled, its writes
/// gathered) and before its batch is appended to the journal, under the
/// peer's lock; `None` clears it. The hook must not call the store.
pub fn set_before_append(hook: Option<Hook>) {
    BEFORE_APPEND.with(|h| *h.borrow_mut() = hook);
}

/// Called by `ChannelStore::with_section` at that point.
pub(crate) fn before_append() {
    BEFORE_APPEND.with(|h| {
        if let Some(hook) = h.borrow_mut().as_mut() {
            hook();
        }
    });
}
