//! Errors: [`StoreError`] for everything the store rejects, [`DecodeError`] for
//! bytes that are not a valid message or record.
//!
//! Every rejection reason has its own variant so that callers (and tests) can
//! tell exactly why a peer's message was refused. A refused message never
//! changes any state.

use bitcoin::secp256k1::PublicKey;

use crate::types::{ChannelId, PaymentHash, ShortChannelId};

/// Why the store refused a message or a call.
///
/// Messages name the channel and the limit that was hit. A refused message
/// leaves every channel exactly as it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store's configuration is inconsistent.
    #[error("invalid config: {field} {reason}")]
    InvalidConfig {
        /// The offending field of `StoreConfig`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Funding below the smallest channel we accept.
    #[error(
        "channel {channel_id}: funding of {funding_sat} sat is below the minimum of {min_sat} sat"
    )]
    FundingTooSmall {
        /// The channel (temporary id while unfunded).
        channel_id: ChannelId,
        /// Proposed funding.
        funding_sat: u64,
        /// `StoreConfig::min_funding_sat`.
        min_sat: u64,
    },
    /// Funding above the largest channel we accept.
    #[error(
        "channel {channel_id}: funding of {funding_sat} sat is above the maximum of {max_sat} sat"
    )]
    FundingTooLarge {
        /// The channel (temporary id while unfunded).
        channel_id: ChannelId,
        /// Proposed funding.
        funding_sat: u64,
        /// `StoreConfig::max_funding_sat`.
        max_sat: u64,
    },
    /// `push_msat` larger than the whole channel.
    #[error(
        "channel {channel_id}: push of {push_msat} msat exceeds the funding of {funding_msat} msat"
    )]
    PushExceedsFunding {
        /// The channel (temporary id while unfunded).
        channel_id: ChannelId,
        /// Proposed push.
        push_msat: u64,
        /// Funding in millisatoshi.
        funding_msat: u64,
    },
    /// A channel parameter proposed by the peer is outside what BOLT 2 or our
    /// config allows (dust limit, reserve, delay, htlc limits, feerate).
    #[error("channel {channel_id}: {parameter} of {value} is unacceptable (limit {limit})")]
    UnacceptableParameter {
        /// The channel (temporary id while unfunded).
        channel_id: ChannelId,
        /// The field of open_channel/accept_channel/update_fee.
        parameter: &'static str,
        /// The value proposed.
        value: u64,
        /// The bound it crossed.
        limit: u64,
    },
    /// The update would leave a side below its channel reserve (or unable to
    /// pay the commitment fee while keeping it).
    #[error("channel {channel_id}: balance of {balance_msat} msat would fall below the reserve of {reserve_msat} msat")]
    ReserveViolated {
        /// The channel.
        channel_id: ChannelId,
        /// The balance the side would be left with (fee already deducted).
        balance_msat: i64,
        /// The reserve (plus fee where the side pays it) it must keep.
        reserve_msat: u64,
    },
    /// A commitment would leave its funder unable to pay its fee: a feerate
    /// update raced HTLCs the fundee added (each valid at the feerate its
    /// sender knew). The channel is failed: closed with our latest
    /// commitment, which can pay
    /// ([`ClosureReason::FunderCannotPayFee`](crate::ClosureReason)).
    #[error("channel {channel_id}: at {feerate_per_kw} sat/kw the funder's {funder_msat} msat cannot pay the commitment's fee of {fee_msat} msat; the channel is failed")]
    FunderCannotPayFee {
        /// The channel.
        channel_id: ChannelId,
        /// The commitment's feerate.
        feerate_per_kw: u32,
        /// What the funder has in that commitment.
        funder_msat: u64,
        /// The fee it would have to pay.
        fee_msat: u64,
    },
    /// An HTLC below the receiver's `htlc_minimum_msat`.
    #[error("channel {channel_id}: htlc of {amount_msat} msat is below the minimum of {minimum_msat} msat")]
    HtlcBelowMinimum {
        /// The channel.
        channel_id: ChannelId,
        /// HTLC amount.
        amount_msat: u64,
        /// The receiver's minimum.
        minimum_msat: u64,
    },
    /// The HTLC would push the value in flight towards the receiver over its limit.
    #[error("channel {channel_id}: {in_flight_msat} msat in flight would exceed the maximum of {max_msat} msat")]
    InFlightExceeded {
        /// The channel.
        channel_id: ChannelId,
        /// In flight including the new HTLC.
        in_flight_msat: u64,
        /// The receiver's `max_htlc_value_in_flight_msat`.
        max_msat: u64,
    },
    /// The HTLC would exceed the receiver's `max_accepted_htlcs`.
    #[error("channel {channel_id}: {count} htlcs would exceed the maximum of {max}")]
    TooManyHtlcs {
        /// The channel.
        channel_id: ChannelId,
        /// HTLCs offered to the receiver, including the new one.
        count: u16,
        /// The receiver's `max_accepted_htlcs`.
        max: u16,
    },
    /// The sender cannot pay this HTLC from its balance.
    #[error("channel {channel_id}: htlc of {amount_msat} msat exceeds the sender's available {available_msat} msat")]
    AmountExceedsBalance {
        /// The channel.
        channel_id: ChannelId,
        /// HTLC amount.
        amount_msat: u64,
        /// What the sender could still offer.
        available_msat: u64,
    },
    /// The HTLC's `cltv_expiry` is not a block height (500,000,000 or
    /// more: a timestamp). One already past is taken and failed back once
    /// committed.
    #[error("channel {channel_id}: htlc cltv_expiry {cltv_expiry} is not a block height (best height {best_height})")]
    HtlcExpired {
        /// The channel.
        channel_id: ChannelId,
        /// The HTLC's absolute expiry.
        cltv_expiry: u32,
        /// Our best block height.
        best_height: u32,
    },
    /// An `update_add_htlc` whose id is not the next one expected.
    #[error("channel {channel_id}: htlc id {got} out of order (expected {expected})")]
    HtlcIdOutOfOrder {
        /// The channel.
        channel_id: ChannelId,
        /// The id the sender must use next.
        expected: u64,
        /// The id it used.
        got: u64,
    },
    /// A fulfill or fail names an HTLC that does not exist or cannot be removed yet.
    #[error("channel {channel_id}: no removable htlc with id {htlc_id}")]
    UnknownHtlc {
        /// The channel.
        channel_id: ChannelId,
        /// The id named by the message.
        htlc_id: u64,
    },
    /// A fulfill whose preimage does not hash to the HTLC's payment hash.
    #[error("channel {channel_id}: preimage does not match the payment hash of htlc {htlc_id}")]
    WrongPreimage {
        /// The channel.
        channel_id: ChannelId,
        /// The HTLC.
        htlc_id: u64,
    },
    /// An `update_fail_malformed_htlc` whose failure code lacks the
    /// BADONION bit (BOLT 2 requires it).
    #[error("channel {channel_id}: update_fail_malformed_htlc with failure code {failure_code:#06x}, which is not a BADONION code")]
    MalformedWithoutBadOnion {
        /// The channel.
        channel_id: ChannelId,
        /// The code it carried.
        failure_code: u16,
    },
    /// A signature from the peer does not verify.
    #[error("channel {channel_id}: invalid {what} signature")]
    InvalidSignature {
        /// The channel.
        channel_id: ChannelId,
        /// Which signature: "commitment", "htlc", "closing", "channel_update".
        what: &'static str,
    },
    /// `commitment_signed` carries the wrong number of HTLC signatures.
    #[error("channel {channel_id}: expected {expected} htlc signatures, got {got}")]
    HtlcSignatureCount {
        /// The channel.
        channel_id: ChannelId,
        /// Untrimmed HTLCs in the commitment.
        expected: usize,
        /// Signatures received.
        got: usize,
    },
    /// A revealed per-commitment secret does not match the point we were given,
    /// or is inconsistent with the secrets revealed before it.
    #[error("channel {channel_id}: invalid revocation secret")]
    InvalidRevocationSecret {
        /// The channel (all zero when checked outside any channel).
        channel_id: ChannelId,
    },
    /// The message names a channel that this peer does not have with us.
    #[error("channel {channel_id}: unknown channel")]
    UnknownChannel {
        /// The channel named.
        channel_id: ChannelId,
    },
    /// The message names a channel we have with a different peer.
    #[error("channel {channel_id}: belongs to another peer, not to {sender}")]
    WrongPeer {
        /// The channel named.
        channel_id: ChannelId,
        /// Who sent the message.
        sender: PublicKey,
    },
    /// `open_channel` for a chain we are not on.
    #[error("channel {channel_id}: open_channel is for another chain")]
    WrongChain {
        /// The temporary channel id.
        channel_id: ChannelId,
    },
    /// A `channel_update` for a chain we are not on.
    #[error("channel_update for {scid} is for another chain")]
    ChannelUpdateWrongChain {
        /// The short channel id it names.
        scid: ShortChannelId,
    },
    /// A peer's `channel_update` whose `direction` bit names our side of
    /// the channel, not the peer's.
    #[error(
        "channel {channel_id}: channel_update for {scid} is for our direction, not the peer's"
    )]
    ChannelUpdateWrongDirection {
        /// The channel.
        channel_id: ChannelId,
        /// The short channel id it names.
        scid: ShortChannelId,
    },
    /// A `shutdown` whose script is not one BOLT 2 allows.
    #[error("channel {channel_id}: shutdown scriptpubkey is not a standard output script")]
    InvalidShutdownScript {
        /// The channel.
        channel_id: ChannelId,
    },
    /// A `closing_signed` fee outside the range it must lie in: the sender's
    /// own `fee_range`, or, when we are the funder, the overlap of both
    /// ranges (or, once we proposed as fundee, the fee we proposed).
    #[error(
        "channel {channel_id}: closing fee of {fee_sat} sat is outside {min_sat}..={max_sat} sat"
    )]
    ClosingFeeOutOfRange {
        /// The channel.
        channel_id: ChannelId,
        /// The fee proposed.
        fee_sat: u64,
        /// The lowest fee allowed.
        min_sat: u64,
        /// The highest fee allowed.
        max_sat: u64,
    },
    /// The peer's closing `fee_range` and ours have no fee in common.
    #[error("channel {channel_id}: closing fee range {their_min_sat}..={their_max_sat} sat does not meet ours, {our_min_sat}..={our_max_sat} sat")]
    ClosingFeeRangesDisjoint {
        /// The channel.
        channel_id: ChannelId,
        /// Our lowest fee.
        our_min_sat: u64,
        /// Our highest fee.
        our_max_sat: u64,
        /// The peer's lowest fee.
        their_min_sat: u64,
        /// The peer's highest fee.
        their_max_sat: u64,
    },
    /// The message or call is not allowed in the channel's current state.
    #[error("channel {channel_id}: {action} is not allowed while {state}")]
    WrongState {
        /// The channel.
        channel_id: ChannelId,
        /// What was attempted (a message name or API call).
        action: &'static str,
        /// The state it was attempted in.
        state: &'static str,
    },
    /// A message for a channel that waits for `channel_reestablish` after a
    /// reconnection.
    #[error("channel {channel_id}: waiting for channel_reestablish, {action} refused")]
    AwaitingReestablish {
        /// The channel.
        channel_id: ChannelId,
        /// The message refused.
        action: &'static str,
    },
    /// A temporary channel id that this peer already uses.
    #[error("channel {channel_id}: temporary id already in use by this peer")]
    DuplicateChannelId {
        /// The id.
        channel_id: ChannelId,
    },
    /// An `open_channel` or `accept_channel` names a `channel_type` other
    /// than `option_static_remotekey`, the one commitment format this crate
    /// builds (or an `accept_channel`'s differs from our `open_channel`'s).
    #[error("channel {channel_id}: unsupported channel_type {bits:?}")]
    UnsupportedChannelType {
        /// The channel (its temporary id).
        channel_id: ChannelId,
        /// The feature bits the peer's `channel_type` sets.
        bits: Vec<u32>,
    },
    /// The peer sent a message before its `init` (BOLT 1: `init` comes
    /// first on every connection).
    #[error("peer {node_id} sent {message} before init")]
    InitRequired {
        /// The peer.
        node_id: PublicKey,
        /// The message it sent.
        message: &'static str,
    },
    /// The peer's `init` rules out talking to it: it requires a feature we
    /// do not know, lacks one we require, or names only other chains. The
    /// connection should be closed.
    #[error("peer {node_id} is incompatible: {reason}")]
    IncompatiblePeer {
        /// The peer.
        node_id: PublicKey,
        /// What does not match.
        reason: String,
    },
    /// The peer is not connected (or was never seen).
    #[error("peer {node_id} is not connected")]
    PeerNotConnected {
        /// The peer.
        node_id: PublicKey,
    },
    /// The peer is connected but its `init` has not arrived yet: nothing
    /// but our own `init` may go to it (BOLT 1), and a channel's type
    /// depends on the features it announces there.
    #[error("peer {node_id} has not sent its init yet")]
    PeerInitPending {
        /// The peer.
        node_id: PublicKey,
    },
    /// A per-peer resource limit was reached.
    #[error("peer {node_id}: {resource} limit of {limit} reached")]
    PeerLimit {
        /// The peer.
        node_id: PublicKey,
        /// Which resource: "channels", "pending forwards".
        resource: &'static str,
        /// The configured limit.
        limit: u64,
    },
    /// A store-wide resource limit was reached.
    #[error("store-wide {resource} limit of {limit} reached")]
    GlobalLimit {
        /// Which resource: "inbound unfunded channels".
        resource: &'static str,
        /// The configured limit.
        limit: u64,
    },
    /// The update would take the value of trimmed HTLCs in one of the
    /// channel's commitments over our `max_dust_htlc_exposure_msat`.
    #[error("channel {channel_id}: dust exposure of {exposure_msat} msat would exceed the maximum of {max_msat} msat")]
    DustExposureExceeded {
        /// The channel.
        channel_id: ChannelId,
        /// The exposure the update would cause.
        exposure_msat: u64,
        /// `StoreConfig::max_dust_htlc_exposure_msat`.
        max_msat: u64,
    },
    /// `send_payment` for a hash that an HTLC of ours already pays, in
    /// flight or fulfilled (the recipient could claim a second one), or a
    /// part of a multi-part payment whose recipient already claimed it.
    #[error("payment {payment_hash} is already in flight or paid")]
    DuplicatePayment {
        /// The payment.
        payment_hash: PaymentHash,
    },
    /// A route that cannot be used.
    #[error("invalid route: {reason}")]
    InvalidRoute {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No usable channel has this short channel id (for a peer's
    /// `channel_update`: none of that peer's channels has it).
    #[error("no usable channel with short channel id {scid}")]
    UnknownShortChannelId {
        /// The short channel id.
        scid: ShortChannelId,
    },
    /// `funding_confirmed` named a short channel id that cannot be the
    /// channel's: its output index is not the funding output's, or another
    /// channel has it already.
    #[error("short channel id {scid} cannot be channel {channel_id}'s: {reason}")]
    ShortChannelIdMismatch {
        /// The channel being confirmed.
        channel_id: ChannelId,
        /// The short channel id given.
        scid: ShortChannelId,
        /// Why it cannot be the channel's.
        reason: &'static str,
    },
    /// No claimable or pending HTLC has this payment hash.
    #[error("no pending payment with hash {payment_hash}")]
    UnknownPayment {
        /// The hash.
        payment_hash: PaymentHash,
    },
    /// An invoice's payment hash and secret could not be made (an amount
    /// or expiry out of range).
    #[error("inbound payment: {0}")]
    InboundPayment(crate::inbound_payment::InboundPaymentError),
    /// Bytes that did not decode.
    #[error("decode: {0}")]
    Decode(#[from] DecodeError),
    /// The persister failed; the update was not applied.
    #[error("persist: {0}")]
    Persist(String),
}

/// Why bytes are not a valid message or stored record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the field it was reading.
    #[error("input ends early while reading {field}")]
    ShortRead {
        /// The field being read.
        field: &'static str,
    },
    /// A message type this crate does not know (BOLT 1: odd types may be
    /// ignored, even types must not be).
    #[error("unknown message type {0}")]
    UnknownMessageType(u16),
    /// 33 bytes that are not a valid compressed public key.
    #[error("invalid public key in {field}")]
    InvalidPublicKey {
        /// The field.
        field: &'static str,
    },
    /// 64 bytes that are not a valid compact ECDSA signature.
    #[error("invalid signature in {field}")]
    InvalidSignature {
        /// The field.
        field: &'static str,
    },
    /// A field whose value is out of its range.
    #[error("invalid value in {field}")]
    InvalidValue {
        /// The field.
        field: &'static str,
    },
    /// A message's TLV extension is not a valid BOLT 1 stream (a record cut
    /// short, a non-minimal `bigsize`, types not strictly increasing).
    #[error("malformed TLV stream in {message}")]
    InvalidTlvStream {
        /// The message.
        message: &'static str,
    },
    /// A message's TLV extension holds an even (required) type this crate
    /// does not know (BOLT 1: the message must be refused).
    #[error("unknown even TLV type {tlv_type} in {message}")]
    UnknownEvenTlv {
        /// The message.
        message: &'static str,
        /// The record's type.
        tlv_type: u64,
    },
    /// A stored-state format version this crate cannot read.
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// A required (even) TLV record this crate does not know.
    #[error("unknown required record type {record_type} in {context}")]
    UnknownRequiredRecord {
        /// The record's type.
        record_type: u64,
        /// Where it was found (e.g. "channel 00ab..", "store").
        context: String,
    },
    /// A required record is missing.
    #[error("missing required record {record_type} in {context}")]
    MissingRecord {
        /// The record's type.
        record_type: u64,
        /// Where it was expected.
        context: String,
    },
    /// TLV records out of ascending type order, or repeated.
    #[error("records out of order at type {record_type} in {context}")]
    RecordOrder {
        /// The record type found out of place.
        record_type: u64,
        /// Where.
        context: String,
    },
    /// A checksum did not match.
    #[error("checksum mismatch in {context}")]
    Checksum {
        /// Where.
        context: String,
    },
    /// Bytes left over after a record that must consume all its input.
    #[error("trailing bytes in {field}")]
    TrailingBytes {
        /// The field.
        field: &'static str,
    },
}
