//! What a closed channel leaves to the chain, and what the user must do about
//! it: the transaction to broadcast, the outputs that pay us
//! ([`SpendableOutput`]), and the HTLCs that were still open
//! ([`OnChainHtlc`]).
//!
//! chanstore does not watch the chain. When a channel closes it keeps, in
//! its persister, a *closed-channel record* with everything a wallet needs
//! (see [`ClosedChannelDetails`]), and reports it in events
//! (`Event::ChannelClosed`, `Event::BroadcastTransaction`,
//! `Event::SpendableOutputs`, `Event::OnChainResolutionRequired`). The
//! record stays, across any number of restarts, until the user has swept
//! the outputs (`ChannelStore::spendable_outputs_swept`) and reported how
//! every HTLC in it ended on chain (`ChannelStore::htlc_resolved_on_chain`).
//! An incoming HTLC whose outgoing HTLC went on chain stays pending upstream
//! until that report arrives.

use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{OutPoint, ScriptBuf, Transaction};

use crate::event::ClosureReason;
use crate::keys::CounterpartyCommitmentSecrets;
use crate::transactions::ChannelPublicKeys;
use crate::types::{ChannelId, PaymentHash, PaymentPreimage};

/// Which side of a channel offered an HTLC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HtlcDirection {
    /// We offered it (an outgoing HTLC: our payment or a forward).
    Offered,
    /// The peer offered it to us (an incoming HTLC).
    Received,
}

/// How an HTLC of a closed channel ended on chain, as the user reports it to
/// `ChannelStore::htlc_resolved_on_chain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnChainOutcome {
    /// It was claimed with this preimage (by the peer, for an HTLC we
    /// offered; by us, for one we received).
    Fulfilled(PaymentPreimage),
    /// Its offerer got the value back: it timed out, or it was not in the
    /// commitment transaction that confirmed.
    Failed,
}

/// What the user has to do on chain about one HTLC of a closed channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnChainAction {
    /// We offered it: take it back with an HTLC-timeout once `cltv_expiry`
    /// is reached, or watch the peer claim it, then report the outcome.
    TimeOut,
    /// We received it and know its preimage: claim it before `cltv_expiry`
    /// (the peer can take it back after), then report the outcome.
    Claim,
    /// We received it and do not know its preimage yet: it waits for its
    /// outgoing HTLC to resolve (or for `claim_funds` when it pays us). If
    /// the preimage arrives, an `OnChainResolutionRequired` with
    /// [`OnChainAction::Claim`] follows.
    AwaitPreimage,
}

/// An HTLC that was in a channel when it closed and has not been resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnChainHtlc {
    /// The closed channel.
    pub channel_id: ChannelId,
    /// The HTLC's id (unique per direction).
    pub htlc_id: u64,
    /// Who offered it.
    pub direction: HtlcDirection,
    /// The hash that locks it.
    pub payment_hash: PaymentHash,
    /// Its value.
    pub amount_msat: u64,
    /// The height from which its offerer may take it back.
    pub cltv_expiry: u32,
    /// Its preimage, if known.
    pub payment_preimage: Option<PaymentPreimage>,
    /// Its output index in our commitment transaction, when that is what we
    /// broadcast and the HTLC is not trimmed there.
    pub commitment_output: Option<u32>,
    /// The peer's signature of the second-stage transaction (HTLC-timeout
    /// for an HTLC we offered, HTLC-success for one we received) spending
    /// that output, with `SIGHASH_ALL`.
    pub counterparty_htlc_signature: Option<Signature>,
    /// What to do.
    pub action: OnChainAction,
}

/// How a [`SpendableOutput`] is spent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpendableOutputKind {
    /// A P2WPKH output to our payment basepoint key (our output of a
    /// cooperative closing transaction, or our `to_remote` output in the
    /// peer's commitment with `option_static_remotekey`). Spend it at once
    /// with the key from `ChannelStore::spendable_output_key`.
    StaticPayment,
    /// The `to_local` output of our commitment transaction: spend it with
    /// the delayed payment key from `ChannelStore::spendable_output_key`
    /// once `to_self_delay` blocks have passed (input `nSequence` =
    /// `to_self_delay`), with the witness `<signature> 0 <witness_script>`.
    DelayedPayment {
        /// The output's witness script (BOLT 3 `to_local`).
        witness_script: ScriptBuf,
        /// The relative delay, in blocks.
        to_self_delay: u16,
        /// Our per-commitment point of that commitment (the key is derived from it).
        per_commitment_point: PublicKey,
    },
}

/// An output of a closed channel's transaction that pays us, with what a
/// wallet needs to spend it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendableOutput {
    /// The channel it comes from.
    pub channel_id: ChannelId,
    /// The output, when it is known which transaction confirms. `None` for
    /// our output in the peer's commitment: whichever of its commitments the
    /// peer broadcasts, our output pays `script_pubkey`.
    pub outpoint: Option<OutPoint>,
    /// Its value (for an output with an unknown outpoint, our balance in
    /// the peer's latest commitment).
    pub value_sat: u64,
    /// The script it pays.
    pub script_pubkey: ScriptBuf,
    /// How to spend it.
    pub kind: SpendableOutputKind,
    /// The channel's key derivation input: `ChannelStore::spendable_output_key`
    /// turns it (with the node secret) into the spending key.
    pub keys_id: [u8; 32],
}

/// Everything a closed channel keeps until the user is done with it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClosedChannelDetails {
    /// The channel.
    pub channel_id: ChannelId,
    /// The peer.
    pub counterparty_node_id: PublicKey,
    /// The funding output the closing spends.
    pub funding_outpoint: OutPoint,
    /// The channel's capacity.
    pub channel_value_sat: u64,
    /// Why it closed.
    pub reason: ClosureReason,
    /// What to broadcast: the signed closing transaction, or our latest
    /// commitment transaction, signed. `None` when nothing must be
    /// broadcast: the channel never got its first commitment signed, or the
    /// peer proved we lost data (broadcasting our commitment would be
    /// punished; wait for the peer's and sweep [`SpendableOutputKind::StaticPayment`]).
    pub transaction: Option<Transaction>,
    /// The outputs that pay us, including the alternatives: only one
    /// transaction spends the funding output, so of our output in
    /// `transaction` (the closing transaction, or our commitment) and our
    /// output in the peer's commitment (`outpoint: None`), only one will
    /// exist. A cooperative record lists both too: the peer may broadcast
    /// its latest commitment instead of the closing transaction (LDK does
    /// when the negotiation did not finish in two timer ticks on its side).
    /// Every record also lists our output in each other closing
    /// transaction we signed in a `closing_signed` (the peer holds our
    /// signature on each and may broadcast any of them, even after a
    /// reconnection started the negotiation over or the channel failed
    /// otherwise): kind [`SpendableOutputKind::StaticPayment`], paying our
    /// shutdown script. Empty once they are reported swept
    /// (`ChannelStore::spendable_outputs_swept`).
    pub outputs: Vec<SpendableOutput>,
    /// HTLCs still to be resolved on chain.
    pub htlcs: Vec<OnChainHtlc>,
    /// Whether the user reported the outputs swept; true from the start
    /// when there was nothing to sweep and `revoked_htlcs` is empty.
    pub outputs_swept: bool,
    /// The channel's key derivation input: with the node secret it gives
    /// our basepoints and keys (`ChannelStore::closed_channel_holder_keys`,
    /// `closed_channel_htlc_key`, `closed_channel_revocation_key`).
    pub keys_id: [u8; 32],
    /// The peer's basepoints (`None` if it never sent them).
    pub counterparty_keys: Option<ChannelPublicKeys>,
    /// The peer's commitments that may confirm without having been revoked,
    /// newest first: its latest and, while its revocation was awaited, the
    /// one before. If the peer broadcasts one, its keys are
    /// `TxCreationKeys::derive(per_commitment_point, counterparty_keys,
    /// holder keys)`: they give its HTLC output scripts
    /// (`offered_htlc_script`, `received_htlc_script`, from the peer's side)
    /// and, with `closed_channel_htlc_key`, our key for claiming or timing
    /// out each. Empty in a record written by a version that did not keep
    /// them.
    pub counterparty_commitments: Vec<CounterpartyCommitment>,
    /// The per-commitment secrets the peer revealed: a commitment of the
    /// peer's with number `n` below those in `counterparty_commitments` is
    /// revoked, and `get_secret(INITIAL_COMMITMENT_INDEX - n)` with
    /// `closed_channel_revocation_key` gives the key that takes every one
    /// of its outputs.
    pub counterparty_secrets: CounterpartyCommitmentSecrets,
    /// The `to_self_delay` of our own `to_local` (what the peer asked for);
    /// `None` in a record written before it was kept.
    pub holder_to_self_delay: Option<u16>,
    /// The `to_self_delay` of the peer's `to_local` (what we asked for):
    /// the window in which a revoked commitment can be punished; `None` in
    /// a record written before it was kept.
    pub counterparty_to_self_delay: Option<u16>,
    /// Our commitment in `transaction`, when that is what we broadcast: its
    /// keys are `TxCreationKeys::derive(per_commitment_point, holder keys,
    /// counterparty_keys)`, which give each HTLC output's script; with
    /// `feerate_per_kw` and `holder_to_self_delay`, `build_htlc_transaction`
    /// gives the second-stage transaction that
    /// [`OnChainHtlc::counterparty_htlc_signature`] signs. `None` when we
    /// broadcast no commitment, and in a record written before it was kept.
    pub holder_commitment: Option<HolderCommitment>,
    /// The HTLCs a revoked commitment of the peer's may hold outputs for
    /// that `htlcs` does not list: every HTLC above the peer's dust limit
    /// that ended off chain (fulfilled or failed) while the channel was
    /// open, and those still open at the close with nothing left to settle
    /// on chain. An HTLC output's script names its payment hash (and, in
    /// an HTLC we offered, its expiry), which the chain shows only once the
    /// output is spent: without these, the revocation key of a revoked
    /// commitment the peer broadcasts would take its `to_local` but none of
    /// its HTLC outputs. From the peer's side, with the keys of that
    /// commitment (`TxCreationKeys::derive` of the point its secret in
    /// `counterparty_secrets` gives), one we offered is a
    /// `received_htlc_script`, one it offered an `offered_htlc_script`;
    /// match their P2WSH against the outputs. Sorted by direction
    /// (offered first), then id. Empty in a record written before they
    /// were kept. A record that holds some stays, even with no output to
    /// sweep, until `spendable_outputs_swept` says the close is settled on
    /// chain; an HTLC failed back after the close moves here from `htlcs`.
    pub revoked_htlcs: Vec<RevokedHtlc>,
}

/// An HTLC that may have an output in a revoked commitment of the peer's
/// (see [`ClosedChannelDetails::revoked_htlcs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevokedHtlc {
    /// Who offered it.
    pub direction: HtlcDirection,
    /// Its id (unique per direction).
    pub htlc_id: u64,
    /// The hash that locked it.
    pub payment_hash: PaymentHash,
    /// Its value.
    pub amount_msat: u64,
    /// The height from which its offerer could take it back.
    pub cltv_expiry: u32,
}

/// Our commitment transaction that a closed channel's record broadcasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HolderCommitment {
    /// Its commitment number.
    pub commitment_number: u64,
    /// Our per-commitment point for it.
    pub per_commitment_point: PublicKey,
    /// Its feerate, which the second-stage HTLC transactions pay too.
    pub feerate_per_kw: u32,
}

/// One commitment of the peer's that may still confirm unrevoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterpartyCommitment {
    /// Its commitment number (0 for the first).
    pub commitment_number: u64,
    /// The peer's per-commitment point for it.
    pub per_commitment_point: PublicKey,
}
