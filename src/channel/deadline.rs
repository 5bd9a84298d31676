//! Deadlines that passing blocks enforce on a live channel (issue 11,
//! point 14). Each one that passes closes the channel, so that what is at
//! stake can be settled on chain in time:
//!
//! * **HTLC timeout**: an HTLC we offered whose `cltv_expiry` plus
//!   `StoreConfig::htlc_timeout_grace_blocks` is reached while the peer has
//!   not removed it. Its value is ours to take back on chain (LDK:
//!   `LATENCY_GRACE_PERIOD_BLOCKS`); the HTLC it was forwarded from is
//!   failed back only once that outcome is reported.
//! * **Fulfillment deadline**: an HTLC the peer offered, whose preimage we
//!   revealed, that the peer has not let us remove by `cltv_expiry` minus
//!   `StoreConfig::htlc_claim_buffer_blocks`: past its expiry the peer could
//!   take it back on chain while keeping the preimage we gave it (LDK:
//!   `CLTV_CLAIM_BUFFER`), so a hub would pay downstream and lose upstream.
//! * **Funding timeout**: as fundee, a channel whose funding the user never
//!   reported confirmed within `StoreConfig::funding_timeout_blocks` of its
//!   `funding_created` is forgotten (BOLT 2).
//!
//! A paused channel's adds that no `commitment_signed` covers are in no
//! commitment, so their expiry closes nothing: once one is too close to
//! offer, they are taken back and failed back instead
//! (`Channel::take_back_unsent_adds`).
//!
//! Payments to us that the user neither claims nor fails are failed back
//! before they expire by the store (`store/blocks.rs`), not here.

use super::htlc::{Htlc, HtlcState, Removal};
use super::Channel;
use crate::config::StoreConfig;
use crate::event::ClosureReason;

impl Channel {
    /// The first deadline that `height` has passed, as the reason to close.
    pub(crate) fn passed_deadline(
        &self,
        height: u32,
        config: &StoreConfig,
    ) -> Option<ClosureReason> {
        if !self.phase.is_funded() {
            return None;
        }
        if !self.is_outbound
            && !self.funding_confirmed
            && height
                >= self
                    .funding_height
                    .saturating_add(config.funding_timeout_blocks)
        {
            return Some(ClosureReason::FundingTimedOut);
        }
        for h in &self.htlcs {
            let fulfilled = matches!(h.removal, Some(Removal::Fulfill(_)));
            if h.offered() {
                if !fulfilled
                    && height
                        >= h.cltv_expiry
                            .saturating_add(config.htlc_timeout_grace_blocks)
                {
                    return Some(ClosureReason::HtlcTimedOut {
                        payment_hash: h.payment_hash,
                        cltv_expiry: h.cltv_expiry,
                    });
                }
            } else if fulfilled
                && height.saturating_add(config.htlc_claim_buffer_blocks) >= h.cltv_expiry
            {
                return Some(ClosureReason::HtlcClaimDeadline {
                    payment_hash: h.payment_hash,
                    cltv_expiry: h.cltv_expiry,
                });
            }
        }
        None
    }

    /// Takes back, from a paused channel, our adds that no `commitment_signed`
    /// of ours covers, from the first one `too_close(cltv_expiry)` judges too
    /// close to its expiry to offer: left in, it would go out on
    /// reconnection already refusable, and if the peer stays away the HTLC
    /// timeout would close the channel for an HTLC that is in no
    /// commitment. The peer forgot these adds on disconnection (BOLT 2), so
    /// none can go on chain and each can be failed back at once, as LDK
    /// fails back its holding cell. The adds after the first go too, expiring
    /// or not: HTLC ids must stay consecutive (BOLT 2), so only a tail can be
    /// taken back, and `next_offered_id` steps back over it.
    pub(crate) fn take_back_unsent_adds(&mut self, too_close: impl Fn(u32) -> bool) -> Vec<Htlc> {
        let unsent = |h: &Htlc| h.offered() && h.state == HtlcState::SentAddHtlc;
        if !self.paused {
            return Vec::new();
        }
        let Some(first) = (self.htlcs.iter())
            .filter(|h| unsent(h) && too_close(h.cltv_expiry))
            .map(|h| h.id)
            .min()
        else {
            return Vec::new();
        };
        // Every add from `first` on is unsent: a `commitment_signed` covers
        // every add made before it.
        if (self.htlcs.iter()).any(|h| h.offered() && h.id >= first && !unsent(h)) {
            debug_assert!(false, "a signed add after an unsigned one");
            return Vec::new();
        }
        let (taken, kept) = std::mem::take(&mut self.htlcs)
            .into_iter()
            .partition(|h| h.offered() && h.id >= first);
        self.htlcs = kept;
        self.next_offered_id = first;
        taken
    }
}
