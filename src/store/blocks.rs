//! Blocks passing: [`ChannelStore::best_block_updated`] enforces every
//! deadline a height brings (issue 11, point 14; the channel-level ones are
//! described in `channel/deadline.rs`), and fails back payments to us that
//! the user neither claimed nor failed before they expire.

use std::sync::atomic::Ordering;

use super::gossip::failure_with_update;
use super::incoming::expires_too_soon;
use super::section::Section;
use super::{ChannelStore, Container};
use crate::channel::htlc::HtlcKind;
use crate::channel::{Effects, OutboundResolved, Outcome};
use crate::error::StoreError;
use crate::event::Event;
use crate::forward::Resolution;
use crate::onion::{Failure, FailureCode};
use crate::types::ChannelId;
use crate::types::PaymentHash;

impl<C: Container> ChannelStore<C> {
    /// A new block: the best height is `height`. Channels whose funding is
    /// now deep enough send `channel_ready`. Channels that a deadline
    /// now requires to go on chain are closed (each with its
    /// `ChannelClosed` and what to broadcast), fundee channels whose
    /// funding never confirmed are forgotten, forwards queued into a paused
    /// channel that are now too close to their expiry are failed back (with
    /// those queued after them), and payments to us within
    /// `StoreConfig::htlc_fail_back_buffer_blocks` of expiring are failed
    /// back (`Event::PaymentClaimExpired`). Queued resolutions (fulfills and
    /// failures going back upstream) are applied first, so a preimage still
    /// in the queue counts for its HTLC's claim deadline; queued forwards
    /// wait for [`ChannelStore::process_pending_forwards`].
    ///
    /// **Locking behaviour:** takes each peer's lock in turn, one at a
    /// time, then the claimables' shards; each expiring payment's peers
    /// one at a time.
    pub fn best_block_updated(&self, height: u32) {
        self.best_height.store(height, Ordering::Relaxed);
        self.enforce_deadlines();
        // A failed commit stops the store; the next call reports it.
        let _ = self.flush();
    }

    /// Closes every channel a deadline requires to close at the best height,
    /// and fails back expiring payments to us.
    pub(crate) fn enforce_deadlines(&self) {
        // A preimage a downstream channel gave us (off chain, or reported
        // from the chain) waits in the work queue until it is applied to
        // the upstream channel: until then that HTLC's claim deadline
        // cannot see it, and a user who calls `process_pending_forwards`
        // less often than blocks come would let the upstream peer time
        // out an HTLC we have paid downstream. So queued resolutions are
        // applied first (forwards stay queued: when they go is the user's
        // call).
        self.apply_queued_resolutions();
        let height = self.best_height();
        let config = &self.config;
        for peer in self.container.peers() {
            let _ = self.with_section(&peer, |s| {
                let paused: Vec<ChannelId> = (s.ps.channels.iter())
                    .filter(|(_, c)| c.paused)
                    .map(|(id, _)| *id)
                    .collect();
                for id in paused {
                    take_back_unsent_adds(s, id)?;
                }
                let due: Vec<(ChannelId, crate::event::ClosureReason)> =
                    s.ps.channels
                        .iter()
                        .filter_map(|(id, c)| c.passed_deadline(height, config).map(|r| (*id, r)))
                        .collect();
                let deep: Vec<ChannelId> =
                    s.ps.channels
                        .iter()
                        .filter(|(_, c)| {
                            c.awaits_depth() && c.funding_depth(height) >= c.minimum_depth.max(1)
                        })
                        .map(|(id, _)| *id)
                        .collect();
                for id in deep {
                    s.on_channel(&id, true, |c, e| {
                        *e = c.send_ready_if_deep(height);
                        Ok(())
                    })?;
                }
                // A record of a channel the peer opened whose funding we
                // never saw confirmed goes with the funding timeout (BOLT
                // 2), as the live channel would.
                let expired: Vec<ChannelId> = (s.ps.closed.iter())
                    .filter(|(_, r)| {
                        r.unconfirmed_since.is_some_and(|since| {
                            height >= since.saturating_add(config.funding_timeout_blocks)
                        })
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for id in expired {
                    s.forget_closed(id);
                }
                for (id, reason) in due {
                    s.on_channel(&id, true, |c, e| {
                        let message = match reason {
                            crate::event::ClosureReason::FundingTimedOut => {
                                "funding did not confirm in time"
                            }
                            _ => "an htlc deadline passed",
                        };
                        c.fail_with_error(message, reason, e);
                        Ok(())
                    })?;
                }
                Ok(())
            });
        }
        let limit = height.saturating_add(config.htlc_fail_back_buffer_blocks);
        let expiring: Vec<PaymentHash> = self
            .claimables
            .iter()
            .filter(|e| e.value().parts.iter().any(|c| c.cltv_expiry <= limit))
            .map(|e| *e.key())
            .collect();
        for hash in expiring {
            let failure = Failure::local(FailureCode::IncorrectOrUnknownPaymentDetails);
            // A payment the user was told of is reported when it goes; the
            // event is written with the first fail-back it causes.
            let Some((_, set)) = self.claimables.remove(&hash) else {
                continue;
            };
            let event = set.announced.then(|| Event::PaymentClaimExpired {
                payment_hash: hash,
                amount_msat: set.amount_msat(),
            });
            self.resolve_set(set, Resolution::Fail(failure), event);
        }
    }
}

/// Fails back the adds a paused channel takes back because one is too close
/// to its expiry to offer (`Channel::take_back_unsent_adds`): that one with
/// `expiry_too_soon`, those after it with `temporary_channel_failure`, each
/// with our `channel_update` for the channel, as `add_forward` would have.
fn take_back_unsent_adds(s: &mut Section<'_>, id: ChannelId) -> Result<(), StoreError> {
    let (config, height) = (s.ctx.config, s.ctx.height);
    let too_close = |expiry| expires_too_soon(config, expiry, height);
    let taken = s.channel(&id, true)?.take_back_unsent_adds(too_close);
    if taken.is_empty() {
        return Ok(());
    }
    let scid = s.ps.channels.get(&id).and_then(|c| c.short_channel_id);
    let update = s.our_update_bytes(scid);
    let mut effects = Effects::default();
    for h in taken {
        let HtlcKind::Offered { source, .. } = h.kind else {
            continue;
        };
        let code = if too_close(h.cltv_expiry) {
            FailureCode::ExpiryTooSoon
        } else {
            FailureCode::TemporaryChannelFailure
        };
        let failure = failure_with_update(code, h.amount_msat, h.cltv_expiry, update.clone());
        effects.resolved.push(OutboundResolved {
            source,
            payment_hash: h.payment_hash,
            amount_msat: h.amount_msat,
            outcome: Outcome::Failed(failure),
        });
    }
    s.take(id, true, effects);
    Ok(())
}
