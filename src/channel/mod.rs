//! One channel's BOLT 2 state machine, both sides.
//!
//! A [`Channel`] is owned by its peer's state in the store and is only ever
//! touched under that peer's lock. Every handler validates the whole message
//! before it changes anything, so a refused message leaves the channel exactly
//! as it was. Handlers return what must happen outside the channel (messages
//! to send, events, HTLCs to forward or resolve) instead of doing it, which
//! keeps the channel free of locks and I/O.
//!
//! Files: `open.rs` (open → accept → funding → channel_ready), `update.rs`
//! (add/fulfill/fail), `fee.rs` (update_fee), `stats.rs` (the balance,
//! fee and dust checks), `commit.rs` (commitment_signed / revoke_and_ack),
//! `close.rs` (shutdown, error), `negotiate.rs` (closing_signed), `htlc.rs`
//! (an HTLC's life), `signer.rs` (our keys), `gossip.rs` (BOLT 7
//! `channel_update`, ours and the peer's).

mod close;
pub(crate) mod closed;
mod commit;
mod deadline;
mod ended;
mod fee;
mod gossip;
pub(crate) mod htlc;
mod negotiate;
mod open;
mod reestablish;
pub(crate) mod signer;
mod stats;
pub(crate) mod tables;
mod update;

use std::sync::Arc;

use arc_swap::ArcSwap;
use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{OutPoint, ScriptBuf, Transaction};

use crate::error::StoreError;
use crate::event::{ChannelDetails, ClosureReason, Event, ForwardingPolicy};
use crate::keys::CounterpartyCommitmentSecrets;
use crate::message::Message;
use crate::transactions::ChannelPublicKeys;
use crate::types::{ChannelId, PaymentHash, PaymentPreimage, ShortChannelId};

pub(crate) use closed::ClosedChannel;
pub(crate) use fee::MAX_PENDING_FEES;
use htlc::HtlcState;
pub(crate) use htlc::{Htlc, HtlcSource, Inbound, PrevHop, SessionKeys};
pub(crate) use negotiate::MAX_SIGNED_CLOSINGS;

/// Where a channel is in its life. Each phase is named by, and documented
/// with, the BOLT 2 message that leads into it; `tests` pins the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// We sent `open_channel`; waiting for `accept_channel`.
    OpenSent,
    /// We received `open_channel` and sent `accept_channel`; waiting for `funding_created`.
    AcceptSent,
    /// We received `accept_channel`; waiting for the user's funding outpoint.
    AwaitingFundingTx,
    /// We sent `funding_created`; waiting for `funding_signed`.
    FundingCreatedSent,
    /// `funding_signed` sent or received: both first commitments are signed.
    /// Waiting for confirmation and `channel_ready` in both directions.
    AwaitingReady,
    /// `channel_ready` in both directions: HTLCs flow.
    Normal,
    /// `shutdown` sent or received: no new HTLCs; pending ones settle.
    ShuttingDown,
    /// Both `shutdown`s done and no HTLC left: `closing_signed` exchange.
    Negotiating,
    /// `closing_signed` agreed, `error` received, or force-closed.
    Closed,
}

impl Phase {
    /// Every phase, in stored-number order (never reorder).
    pub(crate) const ALL: [Phase; 9] = [
        Phase::OpenSent,
        Phase::AcceptSent,
        Phase::AwaitingFundingTx,
        Phase::FundingCreatedSent,
        Phase::AwaitingReady,
        Phase::Normal,
        Phase::ShuttingDown,
        Phase::Negotiating,
        Phase::Closed,
    ];

    /// Lower-case name for errors and details.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::OpenSent => "open_sent",
            Phase::AcceptSent => "accept_sent",
            Phase::AwaitingFundingTx => "awaiting_funding_tx",
            Phase::FundingCreatedSent => "funding_created_sent",
            Phase::AwaitingReady => "awaiting_channel_ready",
            Phase::Normal => "normal",
            Phase::ShuttingDown => "shutting_down",
            Phase::Negotiating => "negotiating_close",
            Phase::Closed => "closed",
        }
    }

    /// Whether both first commitments are signed (the channel has a funding
    /// outpoint and a permanent id).
    pub(crate) fn is_funded(self) -> bool {
        matches!(
            self,
            Phase::AwaitingReady | Phase::Normal | Phase::ShuttingDown | Phase::Negotiating
        )
    }
}

/// The limits one side imposes on the other (sent in open/accept_channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct SideParams {
    /// Outputs below this are trimmed from the imposer's commitment.
    pub(crate) dust_limit_sat: u64,
    /// Most value the other side may have in flight towards the imposer.
    pub(crate) max_htlc_value_in_flight_msat: u64,
    /// What the other side must keep.
    pub(crate) channel_reserve_sat: u64,
    /// Smallest HTLC the imposer accepts.
    pub(crate) htlc_minimum_msat: u64,
    /// Delay on the other side's `to_local`.
    pub(crate) to_self_delay: u16,
    /// Most HTLCs the other side may offer at once.
    pub(crate) max_accepted_htlcs: u16,
}

/// A pending `update_fee`, moving through the same round trips as an add
/// offered by the funder (see `fee.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FeeUpdate {
    pub(crate) feerate_per_kw: u32,
    pub(crate) state: HtlcState,
}

/// An HTLC offered to us that just became irrevocably committed: the store
/// must forward it, offer it to the user, or fail it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IncomingHtlc {
    pub(crate) htlc_id: u64,
    pub(crate) amount_msat: u64,
    pub(crate) payment_hash: PaymentHash,
    pub(crate) cltv_expiry: u32,
    pub(crate) inbound: Inbound,
    /// The onion for the next hop, if it is a forward.
    pub(crate) onion: Option<crate::message::OnionPacket>,
}

/// How an HTLC we offered ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The peer revealed the preimage (reported as soon as it arrives).
    Fulfilled(PaymentPreimage),
    /// The peer failed it (or it timed out on chain) and the removal is
    /// irrevocably committed.
    Failed(crate::onion::Failure),
}

/// An HTLC we offered was resolved: pass it upstream or report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OutboundResolved {
    pub(crate) source: HtlcSource,
    pub(crate) payment_hash: PaymentHash,
    pub(crate) amount_msat: u64,
    pub(crate) outcome: Outcome,
}

/// The peer's signatures on our latest commitment: what makes it (and its
/// HTLC transactions) broadcastable if we must close unilaterally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HolderSignatures {
    /// On the commitment transaction.
    pub(crate) commitment: Signature,
    /// On each untrimmed HTLC's second-stage transaction, in output order.
    pub(crate) htlcs: Vec<Signature>,
}

/// Where the closing fee negotiation (BOLT 2 legacy `closing_signed`) stands.
/// Forgotten on disconnection: negotiation restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClosingNegotiation {
    /// The fee we proposed last.
    pub(crate) our_fee_sat: Option<u64>,
    /// The fee the peer proposed last, with its signature.
    pub(crate) their_offer: Option<(u64, Signature)>,
}

/// What of a channel is on disk, to write only what changed (issue 11, point
/// 7: the bytes a section writes are those of the records it changed, never
/// the whole channel). Not part of the channel's state: its `Debug` prints
/// nothing and it is ignored by `PartialEq`-style comparisons in tests.
#[derive(Clone, Default)]
pub(crate) struct DiskState {
    /// Digest of the header record last written.
    pub(crate) header: Option<[u8; 16]>,
    /// Each HTLC record on disk: (offered, id) → (fingerprint, onion record on disk).
    pub(crate) htlcs: std::collections::HashMap<(bool, u64), (u32, bool)>,
    /// The holder signatures changed and must be written.
    pub(crate) sigs_dirty: bool,
    /// A signatures record is on disk.
    pub(crate) sigs_on_disk: bool,
    /// How many of `Channel::ended_htlcs` (the first ones) are on disk.
    pub(crate) ended_on_disk: usize,
}

impl core::fmt::Debug for DiskState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DiskState")
    }
}

/// What a channel handler asks the store to do.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Messages for the peer, in order.
    pub(crate) msgs: Vec<Message>,
    /// Events for the user.
    pub(crate) events: Vec<Event>,
    /// HTLCs offered to us that are now irrevocably committed.
    pub(crate) incoming: Vec<IncomingHtlc>,
    /// HTLCs we offered that were resolved.
    pub(crate) resolved: Vec<OutboundResolved>,
    /// Send the peer our `channel_update`, after `msgs` (the channel just
    /// became usable, or was reestablished).
    pub(crate) send_channel_update: bool,
}

/// One channel with one peer.
#[derive(Debug)]
pub(crate) struct Channel {
    /// Current id: the temporary id until funded, then the permanent one.
    pub(crate) channel_id: ChannelId,
    /// The id chosen by the opener.
    pub(crate) temporary_channel_id: ChannelId,
    /// The peer.
    pub(crate) counterparty: PublicKey,
    /// We opened it (and pay the commitment fee).
    pub(crate) is_outbound: bool,
    pub(crate) phase: Phase,
    pub(crate) funding_sat: u64,
    pub(crate) funding_outpoint: Option<OutPoint>,
    pub(crate) short_channel_id: Option<ShortChannelId>,
    pub(crate) signer: signer::ChannelSigner,
    pub(crate) their_keys: Option<ChannelPublicKeys>,
    /// Limits we impose on the peer.
    pub(crate) ours: SideParams,
    /// Limits the peer imposes on us.
    pub(crate) theirs: SideParams,
    /// Confirmations the funding needs before we send `channel_ready`: ours
    /// (`StoreConfig::minimum_depth`, sent in `accept_channel` as fundee),
    /// or as funder the larger of ours and the peer's.
    pub(crate) minimum_depth: u32,
    /// The `minimum_depth` the peer asked for in `accept_channel` (we opened).
    pub(crate) their_minimum_depth: Option<u32>,
    /// The committed feerate.
    pub(crate) feerate_per_kw: u32,
    /// `update_fee`s in flight, oldest first, at most one per state (`fee.rs`).
    pub(crate) pending_fees: Vec<FeeUpdate>,
    /// Number of our latest commitment (signed by the peer).
    pub(crate) local_commitment_number: u64,
    /// Number of the peer's latest commitment (signed by us).
    pub(crate) remote_commitment_number: u64,
    /// Point of remote commitment `remote_commitment_number - 1` while we
    /// await its revocation.
    pub(crate) their_prev_point: Option<PublicKey>,
    /// Point of remote commitment `remote_commitment_number`.
    pub(crate) their_current_point: Option<PublicKey>,
    /// Point of remote commitment `remote_commitment_number + 1`.
    pub(crate) their_next_point: Option<PublicKey>,
    /// Per-commitment secrets the peer revealed (bounded: 49 entries).
    pub(crate) their_secrets: CounterpartyCommitmentSecrets,
    /// We sent `commitment_signed` and wait for `revoke_and_ack`.
    pub(crate) awaiting_revoke: bool,
    /// Our last `commitment_signed` went out after our last
    /// `revoke_and_ack` (retransmission must keep that order).
    pub(crate) cs_after_raa: bool,
    /// Disconnected: nothing is sent or accepted for the channel until the
    /// peer's `channel_reestablish`.
    pub(crate) paused: bool,
    /// Our balance with every ended HTLC settled in; live HTLCs not taken out.
    pub(crate) to_local_msat: u64,
    /// The peer's balance, likewise.
    pub(crate) to_remote_msat: u64,
    /// Live HTLCs in both directions, in the order they were added.
    pub(crate) htlcs: Vec<Htlc>,
    pub(crate) next_offered_id: u64,
    pub(crate) next_received_id: u64,
    pub(crate) funding_confirmed: bool,
    pub(crate) sent_ready: bool,
    pub(crate) received_ready: bool,
    pub(crate) local_shutdown_script: Option<ScriptBuf>,
    pub(crate) remote_shutdown_script: Option<ScriptBuf>,
    /// We want to shut down (asked by the user, or answering the peer's
    /// `shutdown`); our `shutdown` goes out once nothing of ours is unsigned.
    pub(crate) shutdown_requested: bool,
    /// The peer's commitment number when we sent our `shutdown` (to send
    /// it again in the same place relative to our `commitment_signed`).
    pub(crate) shutdown_sent_at: Option<u64>,
    /// The closing fee negotiation, once started.
    pub(crate) closing: ClosingNegotiation,
    /// Timer ticks the close has waited for its fee negotiation alone
    /// (`Channel::closing_timer_tick`). In memory: a restart starts over.
    pub(crate) closing_ticks: u32,
    /// Our `update_fee` asked for while we await the peer's
    /// `revoke_and_ack`: sent once it arrives (`fee.rs`).
    pub(crate) held_fee: Option<u32>,
    /// Our output (outpoint, value) in each closing transaction we signed
    /// and sent in a `closing_signed`, oldest first, at most
    /// [`MAX_SIGNED_CLOSINGS`]: the peer may complete and broadcast any of
    /// them, even after the negotiation started over or the channel failed
    /// otherwise, so the closed record lists them all (`closed.rs`).
    pub(crate) signed_closings: Vec<(OutPoint, u64)>,
    /// Each HTLC above the peer's dust limit that ended while the channel
    /// was open, in the order they ended: a revoked commitment of the
    /// peer's may hold its output, whose script needs it (`ended.rs`).
    pub(crate) ended_htlcs: Vec<crate::onchain::RevokedHtlc>,
    /// Timer ticks the channel has spent unfunded (in memory: unfunded
    /// channels are never written).
    pub(crate) unfunded_ticks: u32,
    /// The peer may still be retransmitting what it sent before the last
    /// disconnection (from its `channel_reestablish` until its next
    /// `commitment_signed`, `closing_signed`, `ping` or a timer tick; see
    /// `Channel::handle_update_add_htlc`). In memory only.
    pub(crate) resuming: bool,
    /// The peer's `channel_reestablish` was the last message it sent for
    /// this channel: a `shutdown` now may be a retransmitted one.
    pub(crate) just_reestablished: bool,
    /// The peer's `shutdown` first reached us as the first message after
    /// its `channel_reestablish`: the adds it sent before it may follow it
    /// (LDK resends `shutdown` first).
    pub(crate) shutdown_while_resuming: bool,
    /// The signed closing transaction, once both sides agreed on its fee.
    pub(crate) closing_tx: Option<Transaction>,
    /// The peer's signatures on our latest commitment.
    pub(crate) holder_sigs: Option<HolderSignatures>,
    /// Height at which the channel got its funding outpoint (the fundee
    /// forgets a channel whose funding never confirms, BOLT 2).
    pub(crate) funding_height: u32,
    /// Why the channel closed, and the phase it closed from, once it did
    /// (`phase` is then `Closed`).
    pub(crate) closure: Option<(ClosureReason, Phase)>,
    /// What of the channel is on disk.
    pub(crate) disk: DiskState,
    /// Whether to check the peer's signatures (`StoreConfig::verify_signatures`).
    pub(crate) verify_signatures: bool,
    /// The peer's forwarding policy, from its latest valid `channel_update`.
    pub(crate) counterparty_policy: Option<ForwardingPolicy>,
    /// Read by `list_channels` without the peer lock.
    pub(crate) snapshot: Arc<ArcSwap<ChannelDetails>>,
    /// Revocation basepoint tables, once the channel is busy (`tables.rs`).
    /// Memory only.
    pub(crate) tables: tables::TableSlot,
}

impl Channel {
    /// Gives the channel its revocation basepoint tables if it has earned
    /// them and `budget` has room (`tables.rs`); a funded channel only.
    pub(crate) fn maybe_build_tables(&mut self, budget: &Arc<tables::TableBudget>) {
        if let Some(theirs) = self.their_keys {
            self.tables.maybe_build(
                budget,
                &self.signer.pubkeys.revocation_basepoint,
                &theirs.revocation_basepoint,
            );
        }
    }

    /// Error for an action that the current phase does not allow.
    pub(crate) fn wrong_state(&self, action: &'static str) -> StoreError {
        StoreError::WrongState {
            channel_id: self.channel_id,
            action,
            state: self.phase.name(),
        }
    }

    /// The peer's keys; present from accept/open onwards.
    pub(crate) fn their_keys(
        &self,
        action: &'static str,
    ) -> Result<&ChannelPublicKeys, StoreError> {
        self.their_keys
            .as_ref()
            .ok_or_else(|| self.wrong_state(action))
    }

    /// `channel_ready` went both ways and no shutdown started.
    pub(crate) fn is_usable(&self) -> bool {
        self.phase == Phase::Normal && !self.paused
    }

    /// Whether a new HTLC may be offered. A paused channel (waiting for
    /// `channel_reestablish`) may take one: it is sent with the other
    /// unsigned updates when the reestablish arrives.
    pub(crate) fn accepts_htlcs(&self) -> bool {
        self.phase == Phase::Normal && !self.shutdown_requested
    }

    /// Channel capacity in millisatoshi.
    pub(crate) fn capacity_msat(&self) -> u64 {
        self.funding_sat * 1000
    }

    /// Whether any HTLC or fee update is still in flight.
    pub(crate) fn has_pending_updates(&self) -> bool {
        !self.htlcs.is_empty() || !self.pending_fees.is_empty()
    }

    /// Value conservation: settled balances always add up to the capacity
    /// (live HTLCs are still counted in their offerer's balance).
    pub(crate) fn value_is_conserved(&self) -> bool {
        self.to_local_msat.checked_add(self.to_remote_msat) == Some(self.capacity_msat())
    }

    /// Checks what must hold in any state this crate can produce; used on
    /// decoded channels so corrupt bytes never become a channel. Returns the
    /// field that is wrong.
    pub(crate) fn check_consistency(&self) -> Result<(), &'static str> {
        if !self.value_is_conserved() {
            return Err("channel.balances");
        }
        // What each side offered is within what it has. The peer's may be
        // paid for by ours it fulfilled (see `HtlcTotals`). Not by its own
        // we failed: its add paid from one is committed only by a
        // `commitment_signed` that also ends the failed HTLC.
        let t = self.htlc_totals();
        if t.ours_msat > self.to_local_msat
            || t.theirs_msat > self.to_remote_msat.saturating_add(t.fulfilled_by_peer_msat)
        {
            return Err("channel.htlcs");
        }
        let mut seen = std::collections::HashSet::new();
        for h in &self.htlcs {
            let next = if h.offered() {
                self.next_offered_id
            } else {
                self.next_received_id
            };
            if h.id >= next || !seen.insert((h.offered(), h.id)) || h.amount_msat == 0 {
                return Err("channel.htlcs");
            }
        }
        if self.htlcs.len() > 2 * usize::from(crate::config::MAX_ACCEPTED_HTLCS_LIMIT) {
            return Err("channel.htlcs");
        }
        // An ended HTLC was offered before the next id, and is live no more.
        for e in &self.ended_htlcs {
            let offered = e.direction == crate::onchain::HtlcDirection::Offered;
            let next = if offered {
                self.next_offered_id
            } else {
                self.next_received_id
            };
            if e.htlc_id >= next || seen.contains(&(offered, e.htlc_id)) {
                return Err("channel.ended_htlcs");
            }
        }
        if self.phase.is_funded() {
            let Some(outpoint) = self.funding_outpoint else {
                return Err("channel.funding");
            };
            if ChannelId::from_funding_outpoint(&outpoint) != self.channel_id {
                return Err("channel.channel_id");
            }
            if self.their_keys.is_none() || self.their_current_point.is_none() {
                return Err("channel.their_keys");
            }
        }
        if !self.fees_are_consistent() {
            return Err("channel.pending_fee");
        }
        if self.awaiting_revoke && self.their_prev_point.is_none() {
            return Err("channel.their_points");
        }
        if self.remote_commitment_number < u64::from(self.awaiting_revoke) {
            return Err("channel.commitment_numbers");
        }
        Ok(())
    }

    /// A snapshot for readers.
    pub(crate) fn details(&self) -> ChannelDetails {
        let t = self.htlc_totals();
        let (_, inbound_capacity_msat) = self.spendable_from(&t);
        ChannelDetails {
            channel_id: self.channel_id,
            counterparty_node_id: self.counterparty,
            funding_outpoint: self.funding_outpoint,
            short_channel_id: self.short_channel_id,
            channel_value_sat: self.funding_sat,
            balance_msat: self.to_local_msat.saturating_sub(t.ours_msat),
            outbound_capacity_msat: self.available_to_send_msat(),
            inbound_capacity_msat,
            // What is the peer's already is in its balance.
            in_flight_msat: (t.ours_msat.saturating_add(t.theirs_msat))
                .saturating_sub(t.fulfilled_by_peer_msat.saturating_add(t.failed_back_msat)),
            pending_htlcs: self.htlcs.len(),
            is_outbound: self.is_outbound,
            feerate_per_kw: self.feerate_per_kw,
            confirmations_required: self.minimum_depth.max(1),
            counterparty_minimum_depth: self.their_minimum_depth,
            is_usable: self.is_usable(),
            state: self.phase.name(),
            counterparty_forwarding_policy: self.counterparty_policy,
        }
    }

    /// Publishes a fresh snapshot for readers (call after every change).
    pub(crate) fn publish(&self) {
        self.snapshot.store(Arc::new(self.details()));
    }

    /// Finds a live HTLC by direction and id.
    pub(crate) fn htlc_index(&self, offered: bool, id: u64) -> Option<usize> {
        self.htlcs
            .iter()
            .position(|h| h.offered() == offered && h.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_bolt2_message_order() {
        // open_channel -> accept_channel -> funding_created -> funding_signed
        // -> channel_ready -> shutdown -> closing_signed.
        let funder = [
            Phase::OpenSent,
            Phase::AwaitingFundingTx,
            Phase::FundingCreatedSent,
            Phase::AwaitingReady,
            Phase::Normal,
            Phase::ShuttingDown,
            Phase::Negotiating,
            Phase::Closed,
        ];
        let fundee = [Phase::AcceptSent, Phase::AwaitingReady, Phase::Normal];
        let funded: Vec<bool> = funder.iter().map(|p| p.is_funded()).collect();
        assert_eq!(funded, [false, false, false, true, true, true, true, false]);
        assert!(!fundee[0].is_funded() && fundee[1].is_funded());
        let names: std::collections::HashSet<_> =
            funder.iter().chain(&fundee).map(|p| p.name()).collect();
        assert_eq!(names.len(), 9);
    }
}
