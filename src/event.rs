//! What the store tells its user: [`Event`]s, and [`ChannelDetails`]
//! snapshots for `list_channels`.

use bitcoin::secp256k1::PublicKey;
use bitcoin::{OutPoint, ScriptBuf};

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
    /// `channel_ready` went both ways: the channel can carry HTLCs.
    ChannelReady {
        /// The channel.
        channel_id: ChannelId,
        /// The peer.
        counterparty_node_id: PublicKey,
    },
    /// An HTLC paying us is irrevocably committed. Call `claim_funds` with
    /// the preimage, or `fail_htlc_backwards`.
    PaymentReceived {
        /// The payment.
        payment_hash: PaymentHash,
        /// Amount received (all HTLCs of the payment so far).
        amount_msat: u64,
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
        /// Why (as reported by the hop that failed it).
        failure: FailureCode,
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
    /// An HTLC could not be settled off-chain because its channel closed
    /// before the resolution arrived: it must be claimed (with the preimage)
    /// or left to time out on chain.
    OnChainResolutionRequired {
        /// The channel the HTLC was in.
        channel_id: ChannelId,
        /// Its id there.
        htlc_id: u64,
        /// The preimage to claim it with, if it was fulfilled downstream.
        payment_preimage: Option<PaymentPreimage>,
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
    /// flight, the reserve the peer requires and (if we pay it) the fee.
    pub outbound_capacity_msat: u64,
    /// The peer's balance minus HTLCs it offered that are still in flight.
    pub inbound_capacity_msat: u64,
    /// Value of HTLCs in flight in either direction.
    pub in_flight_msat: u64,
    /// Number of HTLCs in flight in either direction.
    pub pending_htlcs: usize,
    /// Whether we opened (and pay the commitment fee).
    pub is_outbound: bool,
    /// The committed feerate of the commitment transactions, in sat per
    /// 1000 weight (an `update_fee` counts once its round trip completed).
    pub feerate_per_kw: u32,
    /// `channel_ready` went both ways and the channel is not closing.
    pub is_usable: bool,
    /// The channel's state, as a short lower-case name.
    pub state: &'static str,
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
            is_usable: false,
            state: "new",
        }
    }
}
