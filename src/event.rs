//! What the store tells its user: [`Event`]s, and [`ChannelDetails`]
//! snapshots for `list_channels`.

use bitcoin::secp256k1::PublicKey;
use bitcoin::{OutPoint, ScriptBuf, Transaction};

use crate::onchain::{OnChainHtlc, SpendableOutput};
use crate::onion::FailureCode;
use crate::types::{ChannelId, PaymentHash, PaymentPreimage, ShortChannelId};

/// Something the user of the store must know or act on. Drain them with
/// `ChannelStore::get_and_clear_pending_events`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A channel we opened was accepted: build a funding transaction paying
    /// `channel_value_sat` to `output_script`, then call
    /// `ChannelStore::funding_transaction_generated` with its outpoint.
    FundingGenerationReady {
        /// The channel's temporary id.
        temporary_channel_id: ChannelId,
        /// The peer.
        counterparty_node_id: PublicKey,
        /// Value the funding output must have.
        channel_value_sat: u64,
        /// The 2-of-2 P2WSH script the funding output must pay to.
        output_script: ScriptBuf,
    },
    /// Both first commitments of a channel are signed: as the funder,
    /// broadcast the funding transaction now (never before: without the
    /// peer's signature on our first commitment, funds sent to the funding
    /// output could not be recovered).
    ChannelPending {
        /// The channel's permanent id.
        channel_id: ChannelId,
        /// The peer.
        counterparty_node_id: PublicKey,
        /// The funding output.
        funding_outpoint: OutPoint,
    },
    /// `channel_ready` went both ways: the channel can carry HTLCs.
    ChannelReady {
        /// The channel.
        channel_id: ChannelId,
        /// The peer.
        counterparty_node_id: PublicKey,
    },
    /// A payment to us arrived whole: its HTLCs (one, or the parts of a
    /// multi-part payment) are irrevocably committed, carry the invoice's
    /// payment secret and add up to its total. Call `claim_funds` with the
    /// preimage, or `fail_htlc_backwards`.
    PaymentReceived {
        /// The payment.
        payment_hash: PaymentHash,
        /// Amount received (all HTLCs of the payment).
        amount_msat: u64,
        /// The preimage, for an invoice made by `create_inbound_payment`
        /// (we derive it); `None` when the caller holds it
        /// (`create_inbound_payment_for_hash`).
        payment_preimage: Option<PaymentPreimage>,
    },
    /// A payment we sent was claimed by its recipient.
    PaymentSent {
        /// The payment.
        payment_hash: PaymentHash,
        /// Proof of payment.
        payment_preimage: PaymentPreimage,
        /// Routing fees paid.
        fee_paid_msat: u64,
    },
    /// A payment we sent failed; its value is back in our balance.
    PaymentFailed {
        /// The payment.
        payment_hash: PaymentHash,
        /// Why: the BOLT 4 code the failing node returned, read from its
        /// failure onion (or [`FailureCode::Unreadable`] when the reply
        /// decodes at no hop of the route).
        failure: FailureCode,
        /// The node that failed it: a hop of the route (the first one, for
        /// an `update_fail_malformed_htlc`), or ourselves when our own
        /// channel failed it (it closed before the HTLC was committed, or
        /// timed out on chain). `None` when the reply decodes at no hop.
        failing_node: Option<PublicKey>,
        /// The code's data (e.g. a `channel_update`, or the amount and
        /// height of `incorrect_or_unknown_payment_details`); empty if none.
        failure_data: Vec<u8>,
    },
    /// We forwarded an HTLC and it was fulfilled: we earned a fee.
    HtlcForwarded {
        /// The incoming channel.
        prev_channel_id: ChannelId,
        /// The outgoing channel.
        next_channel_id: ChannelId,
        /// Incoming amount minus outgoing amount.
        fee_earned_msat: u64,
    },
    /// An HTLC of a closed channel must be settled on chain: claim it with
    /// its preimage, or time it out, as `htlc.action` says, then report how
    /// it ended with `ChannelStore::htlc_resolved_on_chain`. Until then the
    /// HTLC it was forwarded from (if any) stays pending. The same HTLC is
    /// reported again, with [`OnChainAction::Claim`](crate::onchain::OnChainAction),
    /// if its preimage arrives later. `ChannelStore::closed_channels` lists
    /// what is pending at any time, across restarts.
    OnChainResolutionRequired {
        /// The HTLC, with everything needed to claim or time it out.
        htlc: OnChainHtlc,
    },
    /// Broadcast this transaction: a channel's signed closing transaction,
    /// or our latest commitment after a unilateral close.
    BroadcastTransaction {
        /// The channel it closes.
        channel_id: ChannelId,
        /// The transaction, fully signed.
        transaction: Transaction,
    },
    /// Outputs of a closed channel pay us: sweep them into the wallet (see
    /// [`SpendableOutput`]), then call `ChannelStore::spendable_outputs_swept`.
    /// They stay listed in `ChannelStore::closed_channels` until then.
    SpendableOutputs {
        /// The closed channel.
        channel_id: ChannelId,
        /// Its outputs that pay us.
        outputs: Vec<SpendableOutput>,
    },
    /// A payment to us was neither claimed nor failed before its HTLCs came
    /// within `StoreConfig::htlc_fail_back_buffer_blocks` of expiring: they
    /// were failed back (claiming later would race the sender's timeout).
    PaymentClaimExpired {
        /// The payment.
        payment_hash: PaymentHash,
        /// What its HTLCs carried.
        amount_msat: u64,
    },
    /// A peer sent a BOLT 1 `warning`: something it disliked, short of
    /// failing a channel (nothing was closed). At most one per connection
    /// is reported, so a peer cannot make the store write for free.
    PeerWarning {
        /// The peer.
        counterparty_node_id: PublicKey,
        /// The channel it named (all zero: the connection as a whole).
        channel_id: ChannelId,
        /// Its text, printable ASCII only (other bytes as `?`), at most
        /// [`PEER_WARNING_MAX_LEN`] characters.
        message: String,
    },
    /// A channel closed.
    ChannelClosed {
        /// The channel.
        channel_id: ChannelId,
        /// The peer.
        counterparty_node_id: PublicKey,
        /// Why.
        reason: ClosureReason,
    },
}

/// The longest `PeerWarning::message` kept; the rest is cut.
pub const PEER_WARNING_MAX_LEN: usize = 256;

/// A peer's free-form bytes as safe text: printable ASCII kept, anything
/// else `?`, at most [`PEER_WARNING_MAX_LEN`] characters.
pub(crate) fn printable(data: &[u8]) -> String {
    data.iter()
        .take(PEER_WARNING_MAX_LEN)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Why a channel closed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClosureReason {
    /// `closing_signed` agreed on both sides; `closing_tx_fee_sat` was paid by the funder.
    Cooperative {
        /// Fee of the closing transaction.
        closing_tx_fee_sat: u64,
    },
    /// We force-closed it (`force_close_channel`).
    LocallyForceClosed,
    /// The peer's `channel_reestablish` could not be reconciled with our
    /// state; `reason` says how (including "we lost data").
    ReestablishFailed {
        /// What did not match.
        reason: String,
    },
    /// The peer sent `error` for it.
    CounterpartyError {
        /// The printable part of the peer's message.
        message: String,
    },
    /// The peer proved, in `channel_reestablish`, that it has a newer state
    /// than ours: we lost data. Our commitment is revoked and must not be
    /// broadcast; the peer's commitment pays our output
    /// ([`SpendableOutputKind::StaticPayment`](crate::onchain::SpendableOutputKind)).
    LostData,
    /// The peer disconnected before it signed our first commitment
    /// (`funding_signed`): the channel is forgotten. Do not broadcast its
    /// funding transaction.
    FundingNotSigned,
    /// The peer disconnected before the channel had a funding outpoint: it
    /// is forgotten (BOLT 2).
    DisconnectedWhileUnfunded,
    /// As fundee, the funding never confirmed within
    /// `StoreConfig::funding_timeout_blocks`: the channel is forgotten (BOLT 2).
    FundingTimedOut,
    /// The channel stayed unfunded (no `funding_created` yet) for
    /// `StoreConfig::unfunded_channel_age_limit_ticks` timer ticks: it is
    /// forgotten. Reported for channels we opened only.
    UnfundedTimedOut,
    /// An HTLC we offered reached its expiry (plus
    /// `StoreConfig::htlc_timeout_grace_blocks`) and the peer did not
    /// remove it: the channel is closed so it can be timed out on chain.
    HtlcTimedOut {
        /// The HTLC's payment hash.
        payment_hash: PaymentHash,
        /// Its expiry.
        cltv_expiry: u32,
    },
    /// We know the preimage of an HTLC the peer offered, and the peer did
    /// not settle it before `StoreConfig::htlc_claim_buffer_blocks` of its
    /// expiry: the channel is closed so it can be claimed on chain in time.
    HtlcClaimDeadline {
        /// The HTLC's payment hash.
        payment_hash: PaymentHash,
        /// Its expiry.
        cltv_expiry: u32,
    },
    /// The closing fee negotiation could not converge on a fee we accept.
    ClosingNegotiationFailed {
        /// The last fee the peer proposed.
        their_fee_sat: u64,
    },
    /// Both sides shut down with nothing left in flight, and the closing fee
    /// negotiation did not finish within
    /// `StoreConfig::closing_negotiation_timeout_ticks` timer ticks (the
    /// peer answered with fees we refuse, or not at all, or stayed away):
    /// the channel is failed with our latest commitment (BOLT 2: fail the
    /// channel if no satisfying fee comes after a reasonable time).
    ClosingNegotiationTimedOut,
    /// The peer's `update_fee` could not be taken: its feerate is outside
    /// `StoreConfig::min_feerate_per_kw`..`max_feerate_per_kw`, would take
    /// our dust exposure past `max_dust_htlc_exposure_msat`, or is one its
    /// funder cannot pay. The channel is failed with our latest commitment,
    /// as LDK fails it (BOLT 2 allows that or a disconnection, but the peer
    /// would resend the same update, and the `commitment_signed` that
    /// counts it, after every reconnection).
    UnacceptableFeeUpdate {
        /// The feerate the peer proposed.
        feerate_per_kw: u32,
    },
    /// A commitment would have left its funder unable to pay its fee
    /// ([`StoreError::FunderCannotPayFee`](crate::StoreError)): a feerate
    /// update raced HTLCs the fundee added (BOLT 2 allows both). The
    /// channel is closed with our latest commitment, which can, as LDK
    /// closes it; one that pays less than its fee is never signed nor
    /// taken.
    FunderCannotPayFee {
        /// The feerate of the commitment that could not be paid.
        feerate_per_kw: u32,
    },
    /// The channel kept `StoreConfig::max_revoked_htlcs_per_channel` HTLCs
    /// for the peer's revoked commitments and asked for a cooperative
    /// close, and the peer went on adding HTLCs (failed back, each one kept
    /// too) past what could have been in flight when our `shutdown` went
    /// out (both sides' `max_accepted_htlcs`): it ignores our `shutdown`,
    /// so the channel is failed with our latest commitment.
    RevokedHtlcsPastBound,
}

/// A read-only snapshot of one channel, as `list_channels` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelDetails {
    /// The channel's id (temporary until funded).
    pub channel_id: ChannelId,
    /// The peer.
    pub counterparty_node_id: PublicKey,
    /// The funding outpoint, once known.
    pub funding_outpoint: Option<OutPoint>,
    /// The short channel id, once confirmed.
    pub short_channel_id: Option<ShortChannelId>,
    /// Channel capacity.
    pub channel_value_sat: u64,
    /// Our balance: what we would get if every HTLC in flight failed, less
    /// nothing for fees (fees come out of the funder's output on chain).
    pub balance_msat: u64,
    /// What we could send in one more HTLC now: our balance after HTLCs in
    /// flight, the reserve the peer requires and (if we pay it) the fee,
    /// within the peer's in-flight cap (`max_htlc_value_in_flight_msat`);
    /// 0 while the peer holds as many of our HTLCs as it accepts.
    pub outbound_capacity_msat: u64,
    /// The peer's balance minus HTLCs it offered that are still in flight,
    /// plus what is its own already though the HTLC is still being removed
    /// from the commitments: ours it fulfilled (from its fulfill on) and
    /// its own we failed (once it acked the removal).
    pub inbound_capacity_msat: u64,
    /// Value of HTLCs in flight in either direction, less what is the
    /// peer's already (counted in `inbound_capacity_msat`): `balance_msat`,
    /// `inbound_capacity_msat` and this add up to the channel's value.
    pub in_flight_msat: u64,
    /// Number of HTLCs in flight in either direction.
    pub pending_htlcs: usize,
    /// Whether we opened (and pay the commitment fee).
    pub is_outbound: bool,
    /// The committed feerate of the commitment transactions, in sat per
    /// 1000 weight (an `update_fee` counts once its round trip completed).
    pub feerate_per_kw: u32,
    /// Confirmations the funding transaction needs before we send
    /// `channel_ready`: `StoreConfig::minimum_depth`, or, for a channel we
    /// opened, the peer's `minimum_depth` if it asked for more (BOLT 2).
    pub confirmations_required: u32,
    /// The `minimum_depth` the peer asked for in `accept_channel`, for a
    /// channel we opened (`None` otherwise, or before it answered).
    pub counterparty_minimum_depth: Option<u32>,
    /// `channel_ready` went both ways and the channel is not closing.
    pub is_usable: bool,
    /// The channel's state, as a short lower-case name.
    pub state: &'static str,
    /// What the peer charges to forward over the channel towards us, from
    /// its latest valid `channel_update`; `None` until one arrives.
    pub counterparty_forwarding_policy: Option<ForwardingPolicy>,
}

/// A node's policy for forwarding over one channel, as its BOLT 7
/// `channel_update` states it (signature checked against its node id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardingPolicy {
    /// Fixed part of its forwarding fee.
    pub fee_base_msat: u32,
    /// Proportional part, in millionths of the amount forwarded.
    pub fee_proportional_millionths: u32,
    /// Blocks it subtracts from an incoming HTLC's expiry.
    pub cltv_expiry_delta: u16,
    /// Smallest HTLC it forwards over the channel.
    pub htlc_minimum_msat: u64,
    /// Largest HTLC it forwards over the channel.
    pub htlc_maximum_msat: u64,
    /// The `disable` bit is clear.
    pub enabled: bool,
    /// The update's `timestamp` (an older or equal one is ignored, BOLT 7).
    pub timestamp: u32,
}

impl ChannelDetails {
    /// The snapshot of a channel that was just created, before it is filled in.
    pub(crate) fn placeholder(channel_id: ChannelId, counterparty_node_id: PublicKey) -> Self {
        ChannelDetails {
            channel_id,
            counterparty_node_id,
            funding_outpoint: None,
            short_channel_id: None,
            channel_value_sat: 0,
            balance_msat: 0,
            outbound_capacity_msat: 0,
            inbound_capacity_msat: 0,
            in_flight_msat: 0,
            pending_htlcs: 0,
            is_outbound: false,
            feerate_per_kw: 0,
            confirmations_required: 0,
            counterparty_minimum_depth: None,
            is_usable: false,
            state: "new",
            counterparty_forwarding_policy: None,
        }
    }
}
