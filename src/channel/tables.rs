//! Revocation basepoint tables for the channels that commit most, within a
//! store-wide budget ([`StoreConfig::max_revocation_tables`]).
//!
//! Every commitment a channel builds (ours when the peer's
//! `commitment_signed` arrives, the peer's when we sign) has a revocation
//! key `R * SHA256(R || P) + P * SHA256(P || R)`, where `R` is the
//! countersignatory's revocation basepoint, fixed for the channel's life.
//! With a [`RevocationBasepointTable`] of each side's `R`, the term in `R`
//! is a sum of table entries chosen by the (public) hash instead of a
//! variable-base multiplication (in our commitment) or a constant-time
//! generator multiplication (in the peer's): about 18 µs less for each of
//! ours and 10 µs for each of the peer's on the 2-core machine
//! (`examples/ec_costs`, `docs/BENCHMARKS.md`).
//!
//! A channel's two tables take 176 KB and about 7 ms to build, which pays
//! for itself after some 500 commitments. So a channel gets them only once
//! it has built [`COMMITMENTS_BEFORE_TABLES`] commitments since the store
//! was opened, and only while fewer than `max_revocation_tables` channels
//! of the store hold them. They live in memory only and are given back
//! (to the budget) when the channel is dropped: when it closes or the store
//! is dropped.
//!
//! [`StoreConfig::max_revocation_tables`]: crate::StoreConfig::max_revocation_tables

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::keys::RevocationBasepointTable;

/// Commitments a channel builds (both sides counted) before it asks for
/// tables: about half of what the tables' construction costs in saved work,
/// so a channel that got this busy is likely to repay them.
pub(crate) const COMMITMENTS_BEFORE_TABLES: u32 = 256;

/// How many channels of one store may hold tables at once.
#[derive(Debug)]
pub(crate) struct TableBudget {
    max: usize,
    in_use: AtomicUsize,
}

impl TableBudget {
    /// A budget of `max` channels (0: no tables at all).
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(TableBudget {
            max,
            in_use: AtomicUsize::new(0),
        })
    }

    /// Channels holding tables now.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    /// One place in the budget, if one is free. Relaxed: the count guards
    /// memory use only; no data is published through it.
    fn take(self: &Arc<Self>) -> Option<Lease> {
        self.in_use
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Lease(Arc::clone(self)))
    }
}

/// A place in the budget, given back on drop.
#[derive(Debug)]
struct Lease(Arc<TableBudget>);

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.in_use.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The tables of both revocation basepoints of one channel.
#[derive(Debug)]
pub(crate) struct RevocationTables {
    /// Of our revocation basepoint: the peer's commitments' revocation keys.
    pub(crate) ours: RevocationBasepointTable,
    /// Of the peer's: our commitments' revocation keys.
    pub(crate) theirs: RevocationBasepointTable,
    _lease: Lease,
}

/// A channel's tables, once it has earned them, and its count until then.
/// Memory only: never persisted, never compared.
#[derive(Debug, Default)]
pub(crate) struct TableSlot {
    commitments_built: u32,
    tables: Option<RevocationTables>,
}

impl TableSlot {
    /// The tables, if the channel has them.
    pub(crate) fn get(&self) -> Option<&RevocationTables> {
        self.tables.as_ref()
    }

    /// Counts one commitment built (saturating: only the threshold matters).
    pub(crate) fn count_commitment(&mut self) {
        self.commitments_built = self.commitments_built.saturating_add(1);
    }

    /// Builds the tables of `ours` and `theirs` (the two revocation
    /// basepoints) if the channel has built enough commitments and the
    /// budget has room. Returns whether it built them.
    pub(crate) fn maybe_build(
        &mut self,
        budget: &Arc<TableBudget>,
        ours: &bitcoin::secp256k1::PublicKey,
        theirs: &bitcoin::secp256k1::PublicKey,
    ) -> bool {
        if self.tables.is_some() || self.commitments_built < COMMITMENTS_BEFORE_TABLES {
            return false;
        }
        let Some(lease) = budget.take() else {
            return false;
        };
        self.tables = Some(RevocationTables {
            ours: RevocationBasepointTable::new(ours),
            theirs: RevocationBasepointTable::new(theirs),
            _lease: lease,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{PublicKey, SecretKey};

    fn point(b: u8) -> PublicKey {
        PublicKey::from_secret_key(
            &crate::secp::SECP,
            &SecretKey::from_slice(&[b; 32]).unwrap(),
        )
    }

    fn busy_slot() -> TableSlot {
        let mut slot = TableSlot::default();
        for _ in 0..COMMITMENTS_BEFORE_TABLES {
            slot.count_commitment();
        }
        slot
    }

    #[test]
    fn tables_come_after_the_threshold_within_the_budget_and_go_back_on_drop() {
        let budget = TableBudget::new(1);
        let (a, b) = (point(1), point(2));
        let mut early = TableSlot::default();
        for _ in 1..COMMITMENTS_BEFORE_TABLES {
            early.count_commitment();
        }
        assert!(!early.maybe_build(&budget, &a, &b), "one commitment short");
        let mut first = busy_slot();
        assert!(first.maybe_build(&budget, &a, &b));
        assert!(!first.maybe_build(&budget, &a, &b), "built once");
        let tables = first.get().unwrap();
        assert_eq!(
            (tables.ours.basepoint(), tables.theirs.basepoint()),
            (&a, &b)
        );
        assert_eq!(budget.in_use(), 1);
        let mut second = busy_slot();
        assert!(!second.maybe_build(&budget, &a, &b), "the budget is full");
        drop(first);
        assert_eq!(budget.in_use(), 0);
        assert!(second.maybe_build(&budget, &a, &b), "the place came back");
    }

    #[test]
    fn a_zero_budget_builds_nothing() {
        let budget = TableBudget::new(0);
        assert!(!busy_slot().maybe_build(&budget, &point(1), &point(2)));
        assert_eq!(budget.in_use(), 0);
    }
}
