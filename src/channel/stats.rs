//! What BOLT 2's checks on an update are about: the commitment the update
//! will appear in. For each side's next commitment: which HTLCs it carries
//! (both directions), which of them are trimmed at its feerate and dust
//! limit, the fee the funder pays for it, and its *dust exposure* (the value
//! of its trimmed HTLCs, lost to miners in a unilateral close).
//!
//! # Strict and lenient views
//!
//! Sender and receiver check an add against different knowledge: each knows
//! its own updates, and the other side's only once they arrive. So the
//! sender checks a *strict* view and the receiver a *lenient* one, and the
//! strict view is never more generous than the lenient one, which is why an
//! honest sender is never refused:
//!
//! * **HTLCs carried.** The strict view counts every live HTLC of the
//!   channel, both directions, whatever its state or removal. The lenient
//!   view counts the sender's HTLCs still in the receiver's commitment and
//!   the receiver's own HTLCs the sender has provably seen (it revoked a
//!   commitment after receiving them), a subset of the strict one.
//! * **Trimming and price.** A commitment is always priced at the feerate it
//!   trims at: an HTLC trimmed from a commitment is no output of it, and
//!   costs it nothing. The strict view takes the worst of every feerate the
//!   commitment may have (the committed one, or a pending update's: a
//!   higher feerate trims more HTLCs, so the fee is not monotonic in the
//!   feerate); the lenient view the feerate the sender knows the commitment
//!   will have (the one it last proposed, if it is the funder).
//! * **Whose commitment pays.** The sender of an add must afford, as funder,
//!   the fee of *its own* next commitment, trimmed at its own dust limit:
//!   that is where LDK prices its adds as sender and checks its peer's as
//!   receiver (lightning 0.2.7 `channel.rs:4722-4806`,
//!   `validate_update_add_htlc`, and `5664-5690`,
//!   `get_available_balances_for_scope`), and where BOLT 2's sender check
//!   ("SHOULD NOT offer ... cannot afford") sits. Our own HTLCs between the
//!   two dust limits are outputs of our commitment and dust in the peer's:
//!   priced in ours, a valid add of a funder peer would be refused. The
//!   strict view prices both commitments. A funder peer's add must still
//!   leave it the fee of *our* next commitment (its reserve may go to it),
//!   or our commitment could not confirm.
//! * **Balances.** Both count a live HTLC against its offerer until it has
//!   ended on their own side, and credit nothing before, with two
//!   exceptions, both the peer's, as LDK spends them before our side ends
//!   the HTLC (see `HtlcTotals`): our HTLCs it fulfilled, from its fulfill
//!   on (to LDK's `update_fee` at once, but to its view of our adds only
//!   after our `revoke_and_ack`), and its HTLCs we failed, once it acked
//!   the removal (such an HTLC is also in neither next commitment). Our
//!   own removals are not credited to us: the peer's next
//!   `commitment_signed` may have crossed them. The receiver of an HTLC
//!   ends it no later than its offerer (see `commit.rs`).
//! * **Fee spike buffer.** The funder, when it sends, keeps enough to pay
//!   the fee at twice the feerate with one more HTLC (BOLT 2's recommended
//!   "fee spike buffer"), so that an add of the other side racing with its
//!   own does not leave it unable to pay (LDK closes a channel whose funder
//!   cannot).
//!
//! The receiver also checks, when it is the funder, that it can still pay
//! the fee of its next commitment with *every* HTLC it may carry (its own
//! unannounced adds included): a commitment whose funder cannot pay its fee
//! is never signed (issue 11, point 15).

use super::htlc::{Htlc, HtlcState};
use super::Channel;
use crate::error::StoreError;
use crate::transactions::{commitment_fee_sat, htlc_success_fee_sat, htlc_timeout_fee_sat};

/// How many times the current feerate the funder's fee spike buffer covers.
const FEE_SPIKE_MULTIPLE: u32 = 2;

/// What a funder keeps for the fee of a commitment with `htlcs` HTLC
/// outputs: its fee, or its fee spike buffer (the fee at twice the
/// feerate with one HTLC more), whichever is larger. LDK checks it so as
/// receiver (lightning 0.2.7 channel.rs:5128-5219).
fn fee_with_spike_buffer_sat(feerate_per_kw: u32, htlcs: usize) -> u64 {
    commitment_fee_sat(feerate_per_kw, htlcs, false).max(commitment_fee_sat(
        feerate_per_kw.saturating_mul(FEE_SPIKE_MULTIPLE),
        htlcs + 1,
        false,
    ))
}

/// HTLC outputs of the peer's that may race our own `update_fee` (sent
/// before it saw ours, valid at the feerate it knew): room for them is kept
/// when we raise the feerate, as LDK does (lightning 0.2.7
/// `CONCURRENT_INBOUND_HTLC_FEE_BUFFER`, `channel.rs:5048-5086`).
const CONCURRENT_INBOUND_HTLCS: usize = 2;

/// Whether an HTLC of `amount_msat` gets no output in a commitment with
/// this feerate and the broadcaster's dust limit (BOLT 3 "Trimmed Outputs").
/// `offered_by_broadcaster` picks the second-stage fee: HTLC-timeout for an
/// HTLC the broadcaster offered, HTLC-success for one it received.
pub(crate) fn is_dust(
    amount_msat: u64,
    offered_by_broadcaster: bool,
    feerate_per_kw: u32,
    dust_limit_sat: u64,
) -> bool {
    amount_msat < dust_bound_msat(offered_by_broadcaster, feerate_per_kw, dust_limit_sat)
}

/// The smallest HTLC that is not dust (see [`is_dust`]), in msat.
fn dust_bound_msat(offered_by_broadcaster: bool, feerate_per_kw: u32, dust_limit_sat: u64) -> u64 {
    let second_stage = if offered_by_broadcaster {
        htlc_timeout_fee_sat(feerate_per_kw, false)
    } else {
        htlc_success_fee_sat(feerate_per_kw, false)
    };
    dust_limit_sat
        .saturating_add(second_stage)
        .saturating_mul(1000)
}

/// One side's next commitment, as a view sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Projection {
    /// HTLC outputs it has (not trimmed).
    pub(crate) untrimmed: usize,
    /// Value of the HTLCs trimmed from it.
    pub(crate) dust_msat: u64,
}

/// What a channel's live HTLCs take from, or already give to, each side,
/// from one walk over them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HtlcTotals {
    /// Our live HTLCs: how many, and their value.
    pub(crate) ours: usize,
    pub(crate) ours_msat: u64,
    /// The peer's live HTLCs: how many, and their value.
    pub(crate) theirs: usize,
    pub(crate) theirs_msat: u64,
    /// Ours the peer fulfilled: the peer's from its fulfill on, though
    /// `to_remote_msat` takes them only when they end. Their removal is in
    /// every commitment to come (it reached us before any update of the
    /// peer's we check from then on), and the preimage makes the value the
    /// peer's whatever happens. LDK spends it that early: in its
    /// `update_fee` from its fulfill on (lightning 0.2.7
    /// `get_next_commitment_projection`), in its adds from our
    /// `revoke_and_ack` on (its `value_to_self_msat`).
    pub(crate) fulfilled_by_peer_msat: u64,
    /// Of those, the ones LDK does not count as its own yet: we have not
    /// sent the `revoke_and_ack` for the commitment without them.
    pub(crate) fulfilled_unrevoked_msat: u64,
    /// The peer's we failed whose removal it acked (see
    /// [`Channel::peer_removal_acked`]): the peer's again in both next
    /// commitments.
    pub(crate) failed_back_msat: u64,
}

/// Which HTLCs a view counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Counted {
    /// Every live HTLC (the strict view, and our own safety checks).
    All,
    /// What the peer provably knows will be in our commitment (the lenient view).
    KnownToPeer,
}

impl Channel {
    fn counts(h: &Htlc, counted: Counted) -> bool {
        use HtlcState::*;
        match counted {
            Counted::All => true,
            Counted::KnownToPeer => match h.state {
                // The peer's HTLCs, until they leave our commitment.
                RcvdAddHtlc | RcvdAddCommit | SentAddRevocation | SentAddAckCommit
                | RcvdAddAckRevocation | SentRemoveHtlc | SentRemoveCommit
                | RcvdRemoveRevocation => true,
                // Ours, once the peer revoked a commitment after seeing them
                // (and until they leave our commitment).
                RcvdAddRevocation | RcvdAddAckCommit | SentAddAckRevocation | RcvdRemoveHtlc => {
                    true
                }
                SentAddHtlc | SentAddCommit | RcvdRemoveCommit | SentRemoveRevocation
                | SentRemoveAckCommit | RcvdRemoveAckCommit => false,
            },
        }
    }

    /// A peer's HTLC we removed whose removal the peer has acked (it revoked
    /// the commitment that had it): gone from both next commitments, since
    /// any `commitment_signed` the peer sends from then on has the removal.
    /// LDK counts it so from its receipt of our `commitment_signed` on
    /// (`AwaitingRemoteRevokeToRemove`), a failed one's value back with it.
    pub(crate) fn peer_removal_acked(h: &Htlc) -> bool {
        !h.offered()
            && matches!(
                h.state,
                HtlcState::RcvdRemoveRevocation | HtlcState::RcvdRemoveAckCommit
            )
    }

    /// The sums of [`HtlcTotals`], in one walk (saturating: a corrupt record
    /// is refused by `check_consistency`, not by an overflow).
    pub(crate) fn htlc_totals(&self) -> HtlcTotals {
        let mut t = HtlcTotals::default();
        for h in &self.htlcs {
            let amount = h.amount_msat;
            if h.offered() {
                t.ours += 1;
                t.ours_msat = t.ours_msat.saturating_add(amount);
                if h.is_fulfilled() {
                    t.fulfilled_by_peer_msat = t.fulfilled_by_peer_msat.saturating_add(amount);
                    if !matches!(
                        h.state,
                        HtlcState::SentRemoveRevocation | HtlcState::SentRemoveAckCommit
                    ) {
                        t.fulfilled_unrevoked_msat =
                            t.fulfilled_unrevoked_msat.saturating_add(amount);
                    }
                }
            } else {
                t.theirs += 1;
                t.theirs_msat = t.theirs_msat.saturating_add(amount);
                if Self::peer_removal_acked(h) && !h.is_fulfilled() {
                    t.failed_back_msat = t.failed_back_msat.saturating_add(amount);
                }
            }
        }
        t
    }

    /// The next commitment of our side (`local`) or the peer's, carrying the
    /// HTLCs `counted` picks plus `candidate` (offered by us?, amount),
    /// trimmed at `trim_feerate`.
    pub(crate) fn project(
        &self,
        local: bool,
        trim_feerate: u32,
        counted: Counted,
        candidate: Option<(bool, u64)>,
    ) -> Projection {
        let dust_limit = if local {
            self.ours.dust_limit_sat
        } else {
            self.theirs.dust_limit_sat
        };
        let mut p = Projection {
            untrimmed: 0,
            dust_msat: 0,
        };
        let htlcs = self
            .htlcs
            .iter()
            .filter(|h| Self::counts(h, counted) && !Self::peer_removal_acked(h))
            .map(|h| (h.offered(), h.amount_msat));
        for (offered_by_us, amount) in htlcs.chain(candidate) {
            // In our commitment we are the broadcaster; in theirs, they are.
            if is_dust(amount, offered_by_us == local, trim_feerate, dust_limit) {
                p.dust_msat = p.dust_msat.saturating_add(amount);
            } else {
                p.untrimmed += 1;
            }
        }
        p
    }

    /// Both commitments (`true`: ours) with each feerate they may have.
    fn commitment_feerates(&self) -> impl Iterator<Item = (bool, u32)> + '_ {
        [true, false]
            .into_iter()
            .flat_map(move |local| self.possible_feerates().map(move |f| (local, f)))
    }

    /// Our balance and the peer's, each less the live HTLCs it offered (the
    /// value no side may spend until they end), the peer's plus what is
    /// its own already: our HTLCs it fulfilled and its HTLCs we failed
    /// whose removal it acked (see [`HtlcTotals`]).
    pub(crate) fn spendable_balances(&self) -> (u64, u64) {
        self.spendable_from(&self.htlc_totals())
    }

    /// [`Channel::spendable_balances`] from totals already walked.
    pub(crate) fn spendable_from(&self, t: &HtlcTotals) -> (u64, u64) {
        let ours = self.to_local_msat.saturating_sub(t.ours_msat);
        let theirs = self
            .to_remote_msat
            .saturating_add(t.fulfilled_by_peer_msat)
            .saturating_add(t.failed_back_msat)
            .saturating_sub(t.theirs_msat);
        (ours, theirs)
    }

    /// The reserve the funder must keep, in msat: what the fundee requires.
    fn funder_reserve_msat(&self) -> u64 {
        1000 * if self.is_outbound {
            self.theirs.channel_reserve_sat
        } else {
            self.ours.channel_reserve_sat
        }
    }

    fn reserve_violated(&self, left_msat: i128, needed_msat: u64) -> StoreError {
        StoreError::ReserveViolated {
            channel_id: self.channel_id,
            balance_msat: left_msat.clamp(i64::MIN.into(), i64::MAX.into()) as i64,
            reserve_msat: needed_msat,
        }
    }

    fn check_dust(&self, exposure_msat: u64, max_msat: u64) -> Result<(), StoreError> {
        if exposure_msat > max_msat {
            return Err(StoreError::DustExposureExceeded {
                channel_id: self.channel_id,
                exposure_msat,
                max_msat,
            });
        }
        Ok(())
    }

    /// BOLT 2 checks of an add of `amount_msat` that we offer (strict view):
    /// limits, our balance and reserve, the funder's fee (with the fee spike
    /// buffer) on both commitments, and our dust exposure.
    pub(crate) fn check_our_add(
        &self,
        amount_msat: u64,
        max_dust_msat: u64,
    ) -> Result<(), StoreError> {
        let channel_id = self.channel_id;
        let limits = &self.theirs;
        self.check_amount_limits(amount_msat, limits.htlc_minimum_msat)?;
        let totals = self.htlc_totals();
        self.check_count_and_in_flight(
            totals.ours as u64 + 1,
            totals.ours_msat.saturating_add(amount_msat),
            limits.max_accepted_htlcs,
            limits.max_htlc_value_in_flight_msat,
        )?;
        let (our_msat, their_msat) = self.spendable_from(&totals);
        // The peer prices our add with what it knows of its balance: LDK
        // counts our HTLCs it fulfilled as its own only once it has our
        // `revoke_and_ack` for the commitment without them (it drops its
        // `LocalRemoved` HTLCs there), and that comes after this add.
        let their_msat = their_msat.saturating_sub(totals.fulfilled_unrevoked_msat);
        if amount_msat > our_msat {
            return Err(StoreError::AmountExceedsBalance {
                channel_id,
                amount_msat,
                available_msat: our_msat,
            });
        }
        for (local, feerate) in self.commitment_feerates() {
            let p = self.project(local, feerate, Counted::All, Some((true, amount_msat)));
            self.check_dust(p.dust_msat, max_dust_msat)?;
            // HTLCs trimmed at the commitment's feerate, as LDK trims them.
            let fee = 1000 * fee_with_spike_buffer_sat(feerate, p.untrimmed);
            let (funder_left, needed) = if self.is_outbound {
                (
                    i128::from(our_msat) - i128::from(amount_msat),
                    self.funder_reserve_msat() + fee,
                )
            } else {
                // The funder is the peer: it must still afford the fee (BOLT 2
                // "SHOULD NOT offer"), with the same buffer for safety.
                (i128::from(their_msat), self.funder_reserve_msat() + fee)
            };
            if funder_left < i128::from(needed) {
                return Err(self.reserve_violated(funder_left, needed));
            }
        }
        // The fundee keeps its own reserve (no fee).
        if !self.is_outbound {
            let left = i128::from(our_msat) - i128::from(amount_msat);
            let needed = self.theirs.channel_reserve_sat * 1000;
            if left < i128::from(needed) {
                return Err(self.reserve_violated(left, needed));
            }
        }
        Ok(())
    }

    /// BOLT 2 checks of the peer's add (lenient view, our commitment, where
    /// the add appears first). `Ok(false)`: the add is valid but is to be
    /// failed once it is committed (BOLT 2): it would take our dust exposure
    /// over our limit, which the peer cannot know, or, as funder, leave the
    /// peer's commitment unable to pay its fee at the feerate the peer
    /// priced it at (see below).
    pub(crate) fn check_their_add(
        &self,
        amount_msat: u64,
        max_dust_msat: u64,
    ) -> Result<bool, StoreError> {
        let channel_id = self.channel_id;
        let limits = &self.ours;
        self.check_amount_limits(amount_msat, limits.htlc_minimum_msat)?;
        // Still in our commitment, whatever its removal: it counts towards
        // the peer's limits.
        let totals = self.htlc_totals();
        self.check_count_and_in_flight(
            totals.theirs as u64 + 1,
            totals.theirs_msat.saturating_add(amount_msat),
            limits.max_accepted_htlcs,
            limits.max_htlc_value_in_flight_msat,
        )?;
        let (our_msat, their_msat) = self.spendable_from(&totals);
        if amount_msat > their_msat {
            return Err(StoreError::AmountExceedsBalance {
                channel_id,
                amount_msat,
                available_msat: their_msat,
            });
        }
        // A funder peer pays the fee of its own commitment (see "Whose
        // commitment pays" above), at the feerate it last proposed.
        let feerate = self.feerate_known_to_peer();
        let known = self.project(
            false,
            feerate,
            Counted::KnownToPeer,
            Some((false, amount_msat)),
        );
        let fee = 1000 * commitment_fee_sat(feerate, known.untrimmed, false);
        // The sender keeps the reserve we require, and pays the fee if it is the funder.
        let left = i128::from(their_msat) - i128::from(amount_msat);
        let needed = self.ours.channel_reserve_sat * 1000 + if self.is_outbound { 0 } else { fee };
        if left < i128::from(needed) {
            return Err(self.reserve_violated(left, needed));
        }
        if !self.is_outbound {
            // It must also pay the fee of *our* next commitment, the one we
            // would broadcast: HTLCs between the two dust limits are outputs
            // there and dust in its own, and a peer may announce a dust
            // limit up to our reserve, so without this its adds could leave
            // our commitment below any relay feerate (our funds locked: no
            // anchor, `to_local` delayed). Its reserve may go to that fee:
            // an add LDK prices as valid is refused only past hundreds of
            // such HTLCs.
            let ours = self.project(
                true,
                feerate,
                Counted::KnownToPeer,
                Some((false, amount_msat)),
            );
            let our_fee = 1000 * commitment_fee_sat(feerate, ours.untrimmed, false);
            if left < i128::from(our_fee) {
                return Err(self.reserve_violated(left, our_fee));
            }
        }
        let mut peer_commitment_payable = true;
        if self.is_outbound {
            // We pay the fee of whatever our next commitment carries, our own
            // adds the peer has not seen yet included: never sign one we
            // cannot pay for.
            // Each feerate it may have, priced as it trims.
            for feerate in self.possible_feerates() {
                let all = self.project(true, feerate, Counted::All, Some((false, amount_msat)));
                let fee = 1000 * commitment_fee_sat(feerate, all.untrimmed, false);
                let needed = self.funder_reserve_msat() + fee;
                if i128::from(our_msat) < i128::from(needed) {
                    return Err(self.reserve_violated(our_msat.into(), needed));
                }
                // And of the peer's, which we sign: HTLCs trimmed in ours
                // can be outputs there (its dust limit may be lower, and an
                // offered HTLC trims at the timeout fee, below the success
                // fee that trims it in ours). Its reserve may go to the
                // fee, as on the other side above.
                let peer_side =
                    self.project(false, feerate, Counted::All, Some((false, amount_msat)));
                let fee_msat = 1000 * commitment_fee_sat(feerate, peer_side.untrimmed, false);
                if our_msat >= fee_msat {
                    continue;
                }
                if feerate == self.feerate_per_kw {
                    // At the feerate the peer priced it at: an LDK fundee
                    // checks only our commitment when it sends, so this is
                    // an honest add. It is failed back once committed (as
                    // LDK fails back what its fee spike buffer cannot
                    // take), not the channel.
                    peer_commitment_payable = false;
                    continue;
                }
                // At a feerate we proposed and the peer may not have seen:
                // its add raced our update_fee, and the commitment with
                // both would pay less than its fee. The channel is failed
                // instead, as LDK fails it.
                return Err(StoreError::FunderCannotPayFee {
                    channel_id,
                    feerate_per_kw: feerate,
                    funder_msat: our_msat,
                    fee_msat,
                });
            }
        }
        let within_dust_limit = self.commitment_feerates().all(|(local, feerate)| {
            self.project(local, feerate, Counted::All, Some((false, amount_msat)))
                .dust_msat
                <= max_dust_msat
        });
        Ok(within_dust_limit && peer_commitment_payable)
    }

    fn check_amount_limits(&self, amount_msat: u64, minimum_msat: u64) -> Result<(), StoreError> {
        // BOLT 2: never 0 msat, whatever minimum was announced.
        let minimum_msat = minimum_msat.max(1);
        if amount_msat < minimum_msat {
            return Err(StoreError::HtlcBelowMinimum {
                channel_id: self.channel_id,
                amount_msat,
                minimum_msat,
            });
        }
        Ok(())
    }

    fn check_count_and_in_flight(
        &self,
        count: u64,
        in_flight_msat: u64,
        max_count: u16,
        max_in_flight_msat: u64,
    ) -> Result<(), StoreError> {
        if count > u64::from(max_count) {
            return Err(StoreError::TooManyHtlcs {
                channel_id: self.channel_id,
                count: count.min(u64::from(u16::MAX)) as u16,
                max: max_count,
            });
        }
        if in_flight_msat > max_in_flight_msat {
            return Err(StoreError::InFlightExceeded {
                channel_id: self.channel_id,
                in_flight_msat,
                max_msat: max_in_flight_msat,
            });
        }
        Ok(())
    }

    /// A new feerate proposed by the funder (`by_us` or the peer): the
    /// funder must afford it on the commitments it applies to, and the dust
    /// it trims must stay within our limit.
    pub(crate) fn check_new_feerate(
        &self,
        feerate: u32,
        by_us: bool,
        max_dust_msat: u64,
    ) -> Result<(), StoreError> {
        let (our_msat, their_msat) = self.spendable_balances();
        let funder_msat = if by_us { our_msat } else { their_msat };
        let counted = if by_us {
            Counted::All
        } else {
            Counted::KnownToPeer
        };
        let sides: &[bool] = if by_us { &[true, false] } else { &[true] };
        for &local in sides {
            // A commitment with this update has its feerate, and trims at it.
            let p = self.project(local, feerate, counted, None);
            // Ours keeps room for the peer's adds racing it.
            let racing = if by_us { CONCURRENT_INBOUND_HTLCS } else { 0 };
            let needed = self.funder_reserve_msat()
                + 1000 * commitment_fee_sat(feerate, p.untrimmed + racing, false);
            if i128::from(funder_msat) < i128::from(needed) {
                return Err(self.reserve_violated(funder_msat.into(), needed));
            }
        }
        for local in [true, false] {
            self.check_dust(
                self.project(local, feerate, counted, None).dust_msat,
                max_dust_msat,
            )?;
        }
        Ok(())
    }

    /// What we could send in one more HTLC right now (an estimate for
    /// `ChannelDetails`; `check_our_add` decides): what our balance allows,
    /// within the peer's `max_htlc_value_in_flight_msat` and nothing once
    /// it holds `max_accepted_htlcs` of ours.
    pub(crate) fn available_to_send_msat(&self) -> u64 {
        if !self.is_usable() {
            return 0;
        }
        let totals = self.htlc_totals();
        let limits = &self.theirs;
        if totals.ours >= usize::from(limits.max_accepted_htlcs) {
            return 0;
        }
        let in_flight_left = limits
            .max_htlc_value_in_flight_msat
            .saturating_sub(totals.ours_msat);
        self.balance_allows_msat(&totals).min(in_flight_left)
    }

    /// `cap`, or less where the peer, funder, could not pay for the HTLC's
    /// output in a commitment with its fee spike buffer (as `check_our_add`
    /// prices it): then only an HTLC trimmed there goes, and none if even
    /// that leaves the fee unpaid.
    fn funder_allows_msat(&self, their_msat: u64, mut cap: u64) -> u64 {
        for (local, feerate) in self.commitment_feerates() {
            let untrimmed = self.project(local, feerate, Counted::All, None).untrimmed;
            let needed = |htlcs: usize| {
                self.funder_reserve_msat() + 1000 * fee_with_spike_buffer_sat(feerate, htlcs)
            };
            if their_msat >= needed(untrimmed + 1) {
                continue;
            }
            if their_msat < needed(untrimmed) {
                return 0;
            }
            let dust_limit = if local {
                self.ours.dust_limit_sat
            } else {
                self.theirs.dust_limit_sat
            };
            cap = cap.min(dust_bound_msat(local, feerate, dust_limit).saturating_sub(1));
        }
        cap
    }

    /// The largest HTLC our balance allows: what is ours after our HTLCs in
    /// flight, less the reserve the peer requires and, if we fund, the fee
    /// with it and the fee spike buffer.
    fn balance_allows_msat(&self, totals: &HtlcTotals) -> u64 {
        let (our_msat, their_msat) = self.spendable_from(totals);
        let reserve = self.theirs.channel_reserve_sat * 1000;
        if !self.is_outbound {
            // As `check_our_add` counts the peer's balance.
            let their_msat = their_msat.saturating_sub(totals.fulfilled_unrevoked_msat);
            return self.funder_allows_msat(their_msat, our_msat.saturating_sub(reserve));
        }
        let fee = self
            .commitment_feerates()
            .map(|(local, feerate)| {
                let untrimmed = self.project(local, feerate, Counted::All, None).untrimmed;
                fee_with_spike_buffer_sat(feerate, untrimmed + 1)
            })
            .max()
            .unwrap_or(0);
        our_msat.saturating_sub(reserve + 1000 * fee)
    }
}
