//! Updates: `update_add_htlc`, `update_fulfill_htlc`, `update_fail_htlc`,
//! `update_fee`, sent or received, and the BOLT 2 checks on each.
//!
//! # Why an honest sender is never refused
//!
//! Sender and receiver check an add against different views: each knows its
//! own updates, and the other side's only once they arrive. So the sender
//! checks a *strict* view and the receiver a *lenient* one, and the strict
//! view is never more generous than the lenient one:
//!
//! * both count an HTLC against its offerer's balance until it has ended on
//!   their own side, and neither credits a balance with an HTLC that has not
//!   ended (fulfilled or failed, it is still an output of a commitment).
//!   The receiver of an HTLC ends it no later than its offerer: on sending
//!   the last `revoke_and_ack`, which the offerer ends it on receiving. And
//!   value the sender gained when an HTLC ended on its side has reached the
//!   receiver's balance before the sender's next add arrives: the sender
//!   ended it on sending a `revoke_and_ack`, which comes before that add.
//!   The same holds for the count and the value in flight: the receiver
//!   counts every HTLC of the sender's still in its commitment, being
//!   removed or not (BOLT 2 limits those), a subset of the sender's;
//! * the receiver prices the fee for the sender's HTLCs only, the sender for
//!   every HTLC in the channel;
//! * the sender prices the fee at the higher of the committed and the pending
//!   feerate, the receiver at its committed feerate.
//!
//! Every amount the receiver counts against the sender, the sender counts
//! too, so whatever the sender's check lets through passes the receiver's.
//! And since no side spends value it does not hold yet, each side's live
//! HTLCs never exceed its settled balance: every commitment and snapshot
//! balance stays non-negative (`Channel::check_consistency` relies on it).

use super::htlc::{Htlc, HtlcKind, HtlcSource, HtlcState, Inbound, Removal};
use super::{Channel, FeeUpdate, OutboundResolved, Outcome, Phase};
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::message::{OnionPacket, UpdateAddHtlc, UpdateFailHtlc, UpdateFee, UpdateFulfillHtlc};
use crate::onion::peel_onion;
use crate::transactions::commitment_fee_sat;
use crate::types::{PaymentHash, PaymentPreimage};

/// Block heights stop here; above it `cltv_expiry` would be a timestamp.
const LOCKTIME_THRESHOLD: u32 = 500_000_000;

/// What one side can spend, seen from one side of the channel.
struct View {
    /// The sender's balance after its in-flight HTLCs, before the new one.
    sender_msat: u64,
    /// HTLCs the sender has offered and the receiver still counts.
    sender_htlcs: u64,
    /// Their value.
    sender_in_flight_msat: u64,
    /// The non-sender's balance (it may be the funder).
    other_msat: u64,
    /// HTLCs the commitment fee is priced for, besides the new one.
    fee_htlcs: usize,
    /// Feerate the fee is priced at.
    feerate_per_kw: u32,
}

impl Channel {
    /// The strict view of our own add (we are the sender).
    fn strict_view(&self) -> View {
        let mut ours = self.to_local_msat;
        let mut theirs = self.to_remote_msat;
        let (mut count, mut in_flight) = (0, 0);
        for h in &self.htlcs {
            if h.offered() {
                ours -= h.amount_msat;
                count += 1;
                in_flight += h.amount_msat;
            } else {
                theirs -= h.amount_msat;
            }
        }
        let pending = self.pending_fee.map_or(0, |f| f.feerate_per_kw);
        View {
            sender_msat: ours,
            sender_htlcs: count,
            sender_in_flight_msat: in_flight,
            other_msat: theirs,
            fee_htlcs: self.htlcs.len(),
            feerate_per_kw: self.feerate_per_kw.max(pending),
        }
    }

    /// The lenient view of the peer's add (the peer is the sender).
    fn lenient_view(&self) -> View {
        let mut theirs = self.to_remote_msat;
        let mut ours = self.to_local_msat;
        let (mut count, mut in_flight) = (0, 0);
        for h in &self.htlcs {
            if h.offered() {
                ours -= h.amount_msat;
            } else {
                // Still in our commitment, whatever its removal: it counts
                // towards the peer's limits, and its value is the peer's to
                // spend only once it has ended.
                theirs -= h.amount_msat;
                count += 1;
                in_flight += h.amount_msat;
            }
        }
        View {
            sender_msat: theirs,
            sender_htlcs: count,
            sender_in_flight_msat: in_flight,
            other_msat: ours,
            fee_htlcs: count as usize,
            feerate_per_kw: self.feerate_per_kw,
        }
    }

    /// BOLT 2 checks of an add of `amount_msat` by us (`by_us`) or the peer.
    fn check_add(&self, amount_msat: u64, by_us: bool) -> Result<(), StoreError> {
        let channel_id = self.channel_id;
        // The receiver's limits apply: theirs when we send, ours when they do.
        let (limits, reserve_sat, view) = if by_us {
            (
                &self.theirs,
                self.theirs.channel_reserve_sat,
                self.strict_view(),
            )
        } else {
            (
                &self.ours,
                self.ours.channel_reserve_sat,
                self.lenient_view(),
            )
        };
        // BOLT 2: never 0 msat, whatever minimum was announced.
        let minimum_msat = limits.htlc_minimum_msat.max(1);
        if amount_msat < minimum_msat {
            return Err(StoreError::HtlcBelowMinimum {
                channel_id,
                amount_msat,
                minimum_msat,
            });
        }
        let count = view.sender_htlcs + 1;
        if count > u64::from(limits.max_accepted_htlcs) {
            return Err(StoreError::TooManyHtlcs {
                channel_id,
                count: count as u16,
                max: limits.max_accepted_htlcs,
            });
        }
        let in_flight_msat = view.sender_in_flight_msat.saturating_add(amount_msat);
        if in_flight_msat > limits.max_htlc_value_in_flight_msat {
            return Err(StoreError::InFlightExceeded {
                channel_id,
                in_flight_msat,
                max_msat: limits.max_htlc_value_in_flight_msat,
            });
        }
        if amount_msat > view.sender_msat {
            return Err(StoreError::AmountExceedsBalance {
                channel_id,
                amount_msat,
                available_msat: view.sender_msat,
            });
        }
        let fee_msat = commitment_fee_sat(view.feerate_per_kw, view.fee_htlcs + 1, false) * 1000;
        let sender_is_funder = by_us == self.is_outbound;
        let left = (view.sender_msat - amount_msat) as i64;
        let needed = reserve_sat * 1000 + if sender_is_funder { fee_msat } else { 0 };
        if left < needed as i64 {
            return Err(StoreError::ReserveViolated {
                channel_id,
                balance_msat: left,
                reserve_msat: needed,
            });
        }
        // A fundee's add makes the funder pay a bigger fee: the funder must
        // still afford it above its reserve (checked by the sending fundee).
        if by_us && !sender_is_funder {
            let funder_reserve = self.ours.channel_reserve_sat * 1000;
            let funder_left = view.other_msat as i64 - fee_msat as i64;
            if funder_left < funder_reserve as i64 {
                return Err(StoreError::ReserveViolated {
                    channel_id,
                    balance_msat: funder_left,
                    reserve_msat: funder_reserve,
                });
            }
        }
        Ok(())
    }

    /// What we could send in one more HTLC right now.
    pub(crate) fn available_to_send_msat(&self) -> u64 {
        if !self.is_usable() {
            return 0;
        }
        let view = self.strict_view();
        let fee_msat = if self.is_outbound {
            commitment_fee_sat(view.feerate_per_kw, view.fee_htlcs + 1, false) * 1000
        } else {
            0
        };
        view.sender_msat
            .saturating_sub(self.theirs.channel_reserve_sat * 1000 + fee_msat)
    }

    /// Offers an HTLC to the peer.
    pub(crate) fn send_htlc(
        &mut self,
        amount_msat: u64,
        payment_hash: PaymentHash,
        cltv_expiry: u32,
        onion: OnionPacket,
        source: HtlcSource,
    ) -> Result<UpdateAddHtlc, StoreError> {
        if !self.accepts_htlcs() {
            return Err(self.wrong_state("update_add_htlc"));
        }
        self.check_add(amount_msat, true)?;
        let msg = UpdateAddHtlc {
            channel_id: self.channel_id,
            id: self.next_offered_id,
            amount_msat,
            payment_hash,
            cltv_expiry,
            onion_routing_packet: onion.clone(),
        };
        self.htlcs.push(Htlc {
            id: self.next_offered_id,
            amount_msat,
            payment_hash,
            cltv_expiry,
            state: HtlcState::SentAddHtlc,
            removal: None,
            kind: HtlcKind::Offered {
                source,
                onion: Some(onion),
                fulfill_reported: false,
            },
        });
        self.next_offered_id += 1;
        Ok(msg)
    }

    /// The peer offers an HTLC.
    pub(crate) fn handle_update_add_htlc(
        &mut self,
        msg: &UpdateAddHtlc,
        best_height: u32,
    ) -> Result<(), StoreError> {
        // After the peer's shutdown it may add nothing (BOLT 2).
        if self.phase != Phase::Normal
            && !(self.phase == Phase::ShuttingDown && self.remote_shutdown_script.is_none())
        {
            return Err(self.wrong_state("update_add_htlc"));
        }
        if msg.id != self.next_received_id {
            return Err(StoreError::HtlcIdOutOfOrder {
                channel_id: self.channel_id,
                expected: self.next_received_id,
                got: msg.id,
            });
        }
        if msg.cltv_expiry <= best_height || msg.cltv_expiry >= LOCKTIME_THRESHOLD {
            return Err(StoreError::HtlcExpired {
                channel_id: self.channel_id,
                cltv_expiry: msg.cltv_expiry,
                best_height,
            });
        }
        self.check_add(msg.amount_msat, false)?;
        // A bad onion is not a protocol error: the HTLC is failed back once committed.
        let inbound = match peel_onion(&msg.onion_routing_packet) {
            Ok((payload, next_onion)) => Inbound::Payload {
                payload,
                next_onion,
            },
            Err(_) => Inbound::BadOnion,
        };
        self.htlcs.push(Htlc {
            id: msg.id,
            amount_msat: msg.amount_msat,
            payment_hash: msg.payment_hash,
            cltv_expiry: msg.cltv_expiry,
            state: HtlcState::RcvdAddHtlc,
            removal: None,
            kind: HtlcKind::Received(inbound),
        });
        self.next_received_id += 1;
        Ok(())
    }

    /// Index of an HTLC the peer offered that we may remove now.
    fn removable_received(&self, htlc_id: u64) -> Result<usize, StoreError> {
        self.htlc_index(false, htlc_id)
            .filter(|&i| self.htlcs[i].state.is_removable() && self.htlcs[i].removal.is_none())
            .ok_or(StoreError::UnknownHtlc {
                channel_id: self.channel_id,
                htlc_id,
            })
    }

    /// Index of an HTLC we offered that the peer may remove now.
    fn removable_offered(&self, htlc_id: u64) -> Result<usize, StoreError> {
        self.htlc_index(true, htlc_id)
            .filter(|&i| self.htlcs[i].state.is_removable() && self.htlcs[i].removal.is_none())
            .ok_or(StoreError::UnknownHtlc {
                channel_id: self.channel_id,
                htlc_id,
            })
    }

    fn can_remove(&self, action: &'static str) -> Result<(), StoreError> {
        match self.phase {
            Phase::Normal | Phase::ShuttingDown => Ok(()),
            _ => Err(self.wrong_state(action)),
        }
    }

    /// We claim an HTLC the peer offered.
    pub(crate) fn fulfill_htlc(
        &mut self,
        htlc_id: u64,
        preimage: PaymentPreimage,
    ) -> Result<UpdateFulfillHtlc, StoreError> {
        self.can_remove("update_fulfill_htlc")?;
        let i = self.removable_received(htlc_id)?;
        if !preimage.matches(&self.htlcs[i].payment_hash) {
            return Err(StoreError::WrongPreimage {
                channel_id: self.channel_id,
                htlc_id,
            });
        }
        let h = &mut self.htlcs[i];
        h.removal = Some(Removal::Fulfill(preimage));
        h.state = HtlcState::SentRemoveHtlc;
        Ok(UpdateFulfillHtlc {
            channel_id: self.channel_id,
            id: htlc_id,
            payment_preimage: preimage,
        })
    }

    /// We fail an HTLC the peer offered.
    pub(crate) fn fail_htlc(
        &mut self,
        htlc_id: u64,
        reason: Vec<u8>,
    ) -> Result<UpdateFailHtlc, StoreError> {
        self.can_remove("update_fail_htlc")?;
        let i = self.removable_received(htlc_id)?;
        let h = &mut self.htlcs[i];
        h.removal = Some(Removal::Fail(reason.clone()));
        h.state = HtlcState::SentRemoveHtlc;
        Ok(UpdateFailHtlc {
            channel_id: self.channel_id,
            id: htlc_id,
            reason,
        })
    }

    /// The peer claims an HTLC we offered. The preimage is passed on at once
    /// (it is proof enough), exactly once; the removal still goes through
    /// the round trip.
    pub(crate) fn handle_update_fulfill_htlc(
        &mut self,
        msg: &UpdateFulfillHtlc,
    ) -> Result<Option<OutboundResolved>, StoreError> {
        self.can_remove("update_fulfill_htlc")?;
        let i = self.removable_offered(msg.id)?;
        if !msg.payment_preimage.matches(&self.htlcs[i].payment_hash) {
            return Err(StoreError::WrongPreimage {
                channel_id: self.channel_id,
                htlc_id: msg.id,
            });
        }
        let h = &mut self.htlcs[i];
        h.removal = Some(Removal::Fulfill(msg.payment_preimage));
        h.state = HtlcState::RcvdRemoveHtlc;
        let HtlcKind::Offered {
            source,
            fulfill_reported,
            ..
        } = &mut h.kind
        else {
            unreachable!("removable_offered found an offered htlc")
        };
        if std::mem::replace(fulfill_reported, true) {
            return Ok(None);
        }
        Ok(Some(OutboundResolved {
            source: source.clone(),
            payment_hash: h.payment_hash,
            amount_msat: h.amount_msat,
            outcome: Outcome::Fulfilled(msg.payment_preimage),
        }))
    }

    /// The peer fails an HTLC we offered; it is passed on once irrevocably removed.
    pub(crate) fn handle_update_fail_htlc(
        &mut self,
        msg: &UpdateFailHtlc,
    ) -> Result<(), StoreError> {
        self.can_remove("update_fail_htlc")?;
        let i = self.removable_offered(msg.id)?;
        let h = &mut self.htlcs[i];
        h.removal = Some(Removal::Fail(msg.reason.clone()));
        h.state = HtlcState::RcvdRemoveHtlc;
        Ok(())
    }

    /// The funder proposes a new feerate.
    pub(crate) fn send_update_fee(
        &mut self,
        config: &StoreConfig,
        feerate_per_kw: u32,
    ) -> Result<UpdateFee, StoreError> {
        if !self.is_outbound || !self.is_usable() || self.pending_fee.is_some() {
            return Err(self.wrong_state("update_fee"));
        }
        self.check_feerate(config, feerate_per_kw)?;
        self.check_fee_affordable(feerate_per_kw, self.strict_view().sender_msat)?;
        self.pending_fee = Some(FeeUpdate {
            feerate_per_kw,
            state: HtlcState::SentAddHtlc,
        });
        Ok(UpdateFee {
            channel_id: self.channel_id,
            feerate_per_kw,
        })
    }

    /// The funder's `update_fee`. Only the funder may send it; a second one
    /// before the first is committed replaces it.
    pub(crate) fn handle_update_fee(
        &mut self,
        config: &StoreConfig,
        msg: &UpdateFee,
    ) -> Result<(), StoreError> {
        let replaceable = match self.pending_fee {
            None => true,
            Some(f) => f.state == HtlcState::RcvdAddHtlc,
        };
        if self.is_outbound
            || !matches!(self.phase, Phase::Normal | Phase::ShuttingDown)
            || !replaceable
        {
            return Err(self.wrong_state("update_fee"));
        }
        self.check_feerate(config, msg.feerate_per_kw)?;
        self.check_fee_affordable(msg.feerate_per_kw, self.lenient_view().sender_msat)?;
        self.pending_fee = Some(FeeUpdate {
            feerate_per_kw: msg.feerate_per_kw,
            state: HtlcState::RcvdAddHtlc,
        });
        Ok(())
    }

    fn check_feerate(&self, config: &StoreConfig, feerate: u32) -> Result<(), StoreError> {
        let (min, max) = (config.min_feerate_per_kw, config.max_feerate_per_kw);
        if feerate < min || feerate > max {
            let limit = if feerate < min { min } else { max };
            return Err(StoreError::UnacceptableParameter {
                channel_id: self.channel_id,
                parameter: "feerate_per_kw",
                value: feerate.into(),
                limit: limit.into(),
            });
        }
        Ok(())
    }

    /// The funder, with `funder_msat` after its HTLCs, must pay the fee at
    /// `feerate` for every live HTLC and keep its reserve.
    fn check_fee_affordable(&self, feerate: u32, funder_msat: u64) -> Result<(), StoreError> {
        let fee_msat = commitment_fee_sat(feerate, self.htlcs.len(), false) * 1000;
        let reserve_msat = if self.is_outbound {
            self.theirs.channel_reserve_sat
        } else {
            self.ours.channel_reserve_sat
        } * 1000;
        let left = funder_msat as i64 - fee_msat as i64;
        if left < reserve_msat as i64 {
            return Err(StoreError::ReserveViolated {
                channel_id: self.channel_id,
                balance_msat: left,
                reserve_msat,
            });
        }
        Ok(())
    }
}

impl Channel {
    /// BOLT 2, on disconnection: forget the updates the peer sent that no
    /// `commitment_signed` of its covered yet (it forgets them too). A
    /// preimage it revealed stays known: we may already have used it.
    pub(crate) fn drop_uncommitted_remote_updates(&mut self) {
        let mut lowest_dropped = None;
        self.htlcs.retain(|h| {
            let keep = h.state != HtlcState::RcvdAddHtlc;
            if !keep {
                lowest_dropped = Some(lowest_dropped.map_or(h.id, |l: u64| l.min(h.id)));
            }
            keep
        });
        if let Some(id) = lowest_dropped {
            self.next_received_id = id;
        }
        for h in &mut self.htlcs {
            if h.state == HtlcState::RcvdRemoveHtlc {
                h.state = HtlcState::SentAddAckRevocation;
                h.removal = None;
            }
        }
        if self
            .pending_fee
            .is_some_and(|f| f.state == HtlcState::RcvdAddHtlc)
        {
            self.pending_fee = None;
        }
    }
}
