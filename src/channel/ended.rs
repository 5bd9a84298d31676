//! HTLCs that ended off chain but sat in commitments of the peer's that are
//! now revoked ([`Channel::ended_htlcs`]).
//!
//! A revoked commitment the peer broadcasts is ours to take whole with its
//! revocation key, but each HTLC output's script names that HTLC's payment
//! hash (and, in one we offered, its expiry), and the chain shows a script
//! only once the output is spent. So the channel keeps, until it closes,
//! what each HTLC above the peer's dust limit needs for its script once it
//! has ended (an HTLC below it is trimmed from every commitment of the
//! peer's), and the closed record hands them to the user
//! ([`ClosedChannelDetails::revoked_htlcs`]). Core Lightning keeps the
//! same, as HTLC stubs.
//!
//! A peer can grow this list by adding HTLCs above its dust limit and
//! failing them; at `StoreConfig::max_revoked_htlcs_per_channel` the
//! channel closes cooperatively, and after its `shutdown` no new HTLC can
//! be added (BOLT 2). A peer that ignores our `shutdown` and goes on
//! adding has its channel failed once the list is past the bound by more
//! than an honest peer can end after it
//! ([`Channel::close_when_history_full`]).
//!
//! [`ClosedChannelDetails::revoked_htlcs`]: crate::ClosedChannelDetails::revoked_htlcs

use super::htlc::Htlc;
use super::{Channel, Effects, Phase};
use crate::event::ClosureReason;
use crate::onchain::{HtlcDirection, RevokedHtlc};

impl Channel {
    /// Keeps what `h`, which just ended, needs for its script in the
    /// peer's revoked commitments: nothing if it was trimmed from all of
    /// them.
    pub(crate) fn keep_ended(&mut self, h: &Htlc) {
        if let Some(kept) = self.revoked_htlc(h) {
            self.ended_htlcs.push(kept);
        }
    }

    /// `h` as a [`RevokedHtlc`], unless it is below the peer's dust limit
    /// (trimmed from every commitment of the peer's, at any feerate).
    fn revoked_htlc(&self, h: &Htlc) -> Option<RevokedHtlc> {
        (h.amount_msat / 1000 >= self.theirs.dust_limit_sat).then(|| RevokedHtlc {
            direction: if h.offered() {
                HtlcDirection::Offered
            } else {
                HtlcDirection::Received
            },
            htlc_id: h.id,
            payment_hash: h.payment_hash,
            amount_msat: h.amount_msat,
            cltv_expiry: h.cltv_expiry,
        })
    }

    /// At `max` kept HTLCs, asks for a cooperative close (as
    /// [`Channel::close`] does): the list must not grow without bound.
    /// A peer that ignores our `shutdown` may go on adding HTLCs, each
    /// failed back and kept: past `max` plus what an honest peer can still
    /// end after it, the channel is failed
    /// ([`ClosureReason::RevokedHtlcsPastBound`]). That slack is three
    /// times both sides' `max_accepted_htlcs`: the HTLCs that ended in the
    /// section that crossed `max`, those live when our `shutdown` goes
    /// out, and those the peer added before it read it (BOLT 2 lets
    /// messages cross), each at most that many.
    pub(crate) fn close_when_history_full(&mut self, max: usize, effects: &mut Effects) {
        let open = matches!(
            self.phase,
            Phase::AwaitingReady | Phase::Normal | Phase::ShuttingDown
        );
        let in_flight =
            usize::from(self.ours.max_accepted_htlcs) + usize::from(self.theirs.max_accepted_htlcs);
        if open && self.ended_htlcs.len() > max.saturating_add(3 * in_flight) {
            log::warn!(
                "channel {}: {} ended HTLCs kept, the peer adds past our shutdown, failing it",
                self.channel_id,
                self.ended_htlcs.len()
            );
            self.fail_with_error(
                "too many HTLCs added after our shutdown",
                ClosureReason::RevokedHtlcsPastBound,
                effects,
            );
            return;
        }
        if open && !self.shutdown_requested && self.ended_htlcs.len() >= max {
            log::warn!(
                "channel {}: {} ended HTLCs kept for the peer's revoked commitments \
                 (max_revoked_htlcs_per_channel), closing it",
                self.channel_id,
                self.ended_htlcs.len()
            );
            self.shutdown_requested = true;
        }
    }

    /// For the closed record: the kept HTLCs, and the live ones above the
    /// peer's dust limit that `listed` (the record's HTLCs to settle on
    /// chain) leaves out, sorted.
    pub(crate) fn revoked_htlcs(&self, listed: &[(HtlcDirection, u64)]) -> Vec<RevokedHtlc> {
        let mut all: Vec<RevokedHtlc> = self.ended_htlcs.clone();
        all.extend(
            self.htlcs
                .iter()
                .filter_map(|h| self.revoked_htlc(h))
                .filter(|r| !listed.contains(&(r.direction, r.htlc_id))),
        );
        all.sort_unstable();
        all
    }
}
