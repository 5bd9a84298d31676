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
//! Payments to us that the user neither claims nor fails are failed back
//! before they expire by the store (`store/blocks.rs`), not here.

use super::htlc::Removal;
use super::{Channel, Phase};
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
            && self.phase == Phase::AwaitingReady
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
}
