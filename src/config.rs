//! [`StoreConfig`]: the limits and policies of a store, with BOLT 2 defaults.

use bitcoin::Network;

use crate::error::StoreError;

/// The most HTLCs BOLT 2 allows one side to have offered at once.
pub const MAX_ACCEPTED_HTLCS_LIMIT: u16 = 483;

/// The highest dust limit we accept from a peer (LDK:
/// `MAX_CHAN_DUST_LIMIT_SATOSHIS`): 546 sat, the relay dust of the costliest
/// standard output (P2PKH, BOLT 3 "Dust Limits"). A peer's dust limit trims
/// *our* outputs too (our `to_remote` in its commitment; in a cooperative
/// close, any output of ours below it), so a larger one would let it burn
/// our balance: a peer with a dust limit of 100,000 sat sends to miners
/// every balance of ours below that when the channel closes.
pub(crate) const MAX_DUST_LIMIT_SAT: u64 = 546;

/// Limits and policies of a [`crate::ChannelStore`].
///
/// The `Default` values follow what current Lightning implementations use.
/// Limits that a peer must respect in the channels it opens with us
/// (`min_funding_sat`, `htlc_minimum_msat`, `max_accepted_htlcs`, ...) are
/// also the values we announce in `open_channel`/`accept_channel`.
///
/// # Examples
///
/// ```
/// use chanstore::StoreConfig;
///
/// let config = StoreConfig { max_accepted_htlcs: 30, ..StoreConfig::default() };
/// assert!(config.validate().is_ok());
/// let bad = StoreConfig { max_accepted_htlcs: 484, ..StoreConfig::default() };
/// assert!(bad.validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// The chain the channels live on (its genesis hash is `chain_hash`).
    pub network: Network,
    /// Smallest channel we open or accept, in satoshi.
    pub min_funding_sat: u64,
    /// Largest channel we open or accept, in satoshi (2^24 - 1 without `option_support_large_channel`).
    pub max_funding_sat: u64,
    /// Reserve we require the peer to keep, in millionths of the channel's value
    /// (never below `dust_limit_sat`).
    pub channel_reserve_proportional_millionths: u32,
    /// Largest reserve a peer may ask us to keep, in millionths of the channel.
    pub max_channel_reserve_proportional_millionths: u32,
    /// Our dust limit: outputs below it are left out of our commitment
    /// transactions. 354 to 546 sat: BOLT 2's floor, and the most a peer's
    /// may be (above it a peer could trim our balance away; ours is held to
    /// the same bound).
    pub dust_limit_sat: u64,
    /// Smallest HTLC we accept, in millisatoshi.
    pub htlc_minimum_msat: u64,
    /// Most value we allow in flight towards us at once, in millisatoshi.
    pub max_htlc_value_in_flight_msat: u64,
    /// Most HTLCs we allow the peer to have offered at once (at most 483).
    pub max_accepted_htlcs: u16,
    /// Fixed part of the fee we charge to forward an HTLC, in millisatoshi.
    pub forwarding_fee_base_msat: u32,
    /// Proportional part of the forwarding fee, in millionths of the amount forwarded.
    pub forwarding_fee_proportional_millionths: u32,
    /// Blocks we require between an incoming HTLC's expiry and the one we forward.
    pub cltv_expiry_delta: u16,
    /// Blocks we require between the best height and the expiry of an HTLC
    /// paid to us (and the least we give the recipient of our payments; a
    /// route's last hop can ask for more, as an invoice's `c` does). 42 by
    /// default: LDK requires more than 40; it must exceed
    /// `htlc_fail_back_buffer_blocks`. A payment to us may come in up to
    /// `htlc_timeout_grace_blocks` short of it (never within
    /// `htlc_fail_back_buffer_blocks`): its sender may not have seen the
    /// last blocks yet, or one was found while the HTLC travelled.
    pub min_final_cltv_expiry_delta: u16,
    /// Blocks the peer must wait to claim its own output after a unilateral close.
    pub to_self_delay: u16,
    /// Largest `to_self_delay` we accept from the peer.
    pub max_to_self_delay: u16,
    /// Commitment feerate we propose when we open a channel, in sat per 1000 weight.
    pub feerate_per_kw: u32,
    /// Smallest feerate we accept in `open_channel` or `update_fee`.
    pub min_feerate_per_kw: u32,
    /// Largest feerate we accept in `open_channel` or `update_fee`.
    pub max_feerate_per_kw: u32,
    /// Smallest feerate, in sat per 1000 weight, of a cooperative closing
    /// transaction we sign: below it the transaction would not relay, and
    /// the channel's state would be gone (the default, 253, is Bitcoin
    /// Core's minimum relay fee of 1 sat/vbyte).
    pub min_closing_feerate_per_kw: u32,
    /// Confirmations we ask for before the channel is used.
    pub minimum_depth: u32,
    /// Verify the peer's signatures on commitments and closing transactions.
    /// Turn off only in benchmarks that measure everything but crypto.
    pub verify_signatures: bool,
    /// Most channels (funded or not) one peer may have with us.
    pub max_channels_per_peer: usize,
    /// Most HTLCs from one peer that may wait in the forward queues at once.
    pub max_pending_forwards_per_peer: usize,
    /// Most channels one peer may have open with us before their funding
    /// confirms (LDK: `MAX_UNFUNDED_CHANS_PER_PEER`, 4): unfunded, funded
    /// by a `funding_created` (which may name a transaction that never
    /// existed) but not confirmed, or closed unconfirmed with a record
    /// kept (until `funding_timeout_blocks`).
    pub max_unfunded_channels_per_peer: usize,
    /// Most channels that peers opened to us whose funding has not
    /// confirmed, counted as `max_unfunded_channels_per_peer` counts them,
    /// across all peers (each costs a peer state and a channel, or a
    /// closed record, until funded or forgotten).
    pub max_inbound_unfunded_channels: usize,
    /// Most channels that hold revocation basepoint tables at once: 176 KB
    /// of memory each, bought once a channel has built 256 commitments since
    /// the store was opened, for about 14 µs less CPU per commitment it
    /// builds after that (`docs/BENCHMARKS.md`). A trade of memory for
    /// speed only: every key is the same with or without them. 0 turns
    /// them off.
    pub max_revocation_tables: usize,
    /// Most HTLCs a channel keeps, until it closes, for their outputs in
    /// the peer's revoked commitments (each HTLC above the peer's dust
    /// limit that ends while the channel is open: about 60 bytes of memory
    /// and one record on disk; the closed record lists them, see
    /// `ClosedChannelDetails::revoked_htlcs`). A peer grows the list by
    /// adding HTLCs and failing them; at this many the store closes the
    /// channel cooperatively, after which no HTLC can be added (BOLT 2).
    pub max_revoked_htlcs_per_channel: usize,
    /// Most value of trimmed (dust) HTLCs either commitment of a channel may
    /// carry: lost to miners in a unilateral close (BOLT 2
    /// `max_dust_htlc_exposure_msat`). An add over it is not sent (ours) or
    /// failed back once committed (the peer's); an `update_fee` over it is
    /// refused.
    pub max_dust_htlc_exposure_msat: u64,
    /// Farthest in the future, in blocks from the best height, that an
    /// incoming HTLC may expire; farther ones are failed with `expiry_too_far`
    /// (they would lock our liquidity; LDK: `CLTV_FAR_FAR_AWAY`, 2016).
    pub max_cltv_expiry_delta: u32,
    /// Blocks after an offered HTLC's expiry that we wait for the peer to
    /// remove it before closing the channel to time it out on chain (LDK:
    /// `LATENCY_GRACE_PERIOD_BLOCKS`, 3).
    pub htlc_timeout_grace_blocks: u32,
    /// Blocks before a received HTLC's expiry by which the peer must have
    /// settled it once we revealed its preimage; then the channel is closed
    /// to claim it on chain (LDK: `CLTV_CLAIM_BUFFER`, 18).
    pub htlc_claim_buffer_blocks: u32,
    /// Blocks before its expiry at which a payment to us that the user did
    /// not claim is failed back (LDK: `HTLC_FAIL_BACK_BUFFER`, 21).
    pub htlc_fail_back_buffer_blocks: u32,
    /// As fundee, blocks after `funding_created` after which a channel whose
    /// funding never confirmed is forgotten (BOLT 2: 2016), and so is the
    /// record of one that closed before its funding confirmed.
    pub funding_timeout_blocks: u32,
    /// Calls of `ChannelStore::timer_tick_occurred` (made about once a
    /// minute) that the parts of a multi-part payment to us may wait for
    /// the rest; then they are failed back with `mpp_timeout`. BOLT 4 says
    /// at least 60 seconds; 3 by default (LDK: `MPP_TIMEOUT_TICKS`).
    pub mpp_timeout_ticks: u32,
    /// Calls of `ChannelStore::timer_tick_occurred` a close may wait for
    /// its fee negotiation once both sides shut down with nothing in
    /// flight; then the channel is failed with our latest commitment
    /// (`ClosureReason::ClosingNegotiationTimedOut`). 2 by default, as LDK.
    pub closing_negotiation_timeout_ticks: u32,
    /// Calls of `ChannelStore::timer_tick_occurred` a channel may stay
    /// unfunded (opened, but no `funding_created` yet; as funder, no
    /// `accept_channel` or no funding transaction from the user): then it
    /// is forgotten, with an `error` to the peer
    /// (`ClosureReason::UnfundedTimedOut`). A connected peer would
    /// otherwise hold its places under `max_unfunded_channels_per_peer`
    /// and `max_inbound_unfunded_channels` for good. 60 by default (LDK:
    /// `UNFUNDED_CHANNEL_AGE_LIMIT_TICKS`).
    pub unfunded_channel_age_limit_ticks: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            network: Network::Regtest,
            min_funding_sat: 10_000,
            max_funding_sat: (1 << 24) - 1,
            channel_reserve_proportional_millionths: 10_000,
            max_channel_reserve_proportional_millionths: 200_000,
            dust_limit_sat: 354,
            htlc_minimum_msat: 1,
            max_htlc_value_in_flight_msat: u64::MAX,
            max_accepted_htlcs: MAX_ACCEPTED_HTLCS_LIMIT,
            forwarding_fee_base_msat: 1_000,
            forwarding_fee_proportional_millionths: 100,
            cltv_expiry_delta: 72,
            min_final_cltv_expiry_delta: 42,
            to_self_delay: 144,
            max_to_self_delay: 2016,
            feerate_per_kw: 253,
            min_feerate_per_kw: 253,
            max_feerate_per_kw: 100_000,
            min_closing_feerate_per_kw: 253,
            minimum_depth: 3,
            verify_signatures: true,
            max_channels_per_peer: 50,
            max_pending_forwards_per_peer: 2 * MAX_ACCEPTED_HTLCS_LIMIT as usize,
            max_unfunded_channels_per_peer: 4,
            max_inbound_unfunded_channels: 100,
            max_revocation_tables: 64,
            max_revoked_htlcs_per_channel: 250_000,
            max_dust_htlc_exposure_msat: 5_000_000,
            max_cltv_expiry_delta: 2016,
            htlc_timeout_grace_blocks: 3,
            htlc_claim_buffer_blocks: 18,
            htlc_fail_back_buffer_blocks: 21,
            funding_timeout_blocks: 2016,
            mpp_timeout_ticks: 3,
            closing_negotiation_timeout_ticks: 2,
            unfunded_channel_age_limit_ticks: 60,
        }
    }
}

impl StoreConfig {
    /// Checks that the limits are consistent with each other and with BOLT 2.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |field, reason| Err(StoreError::InvalidConfig { field, reason });
        if self.max_accepted_htlcs == 0 || self.max_accepted_htlcs > MAX_ACCEPTED_HTLCS_LIMIT {
            return bad("max_accepted_htlcs", "must be between 1 and 483");
        }
        if self.max_revoked_htlcs_per_channel == 0 {
            return bad("max_revoked_htlcs_per_channel", "must be at least 1");
        }
        if self.mpp_timeout_ticks == 0 {
            return bad("mpp_timeout_ticks", "must be at least 1");
        }
        if self.closing_negotiation_timeout_ticks == 0 {
            return bad("closing_negotiation_timeout_ticks", "must be at least 1");
        }
        if self.unfunded_channel_age_limit_ticks == 0 {
            return bad("unfunded_channel_age_limit_ticks", "must be at least 1");
        }
        if self.min_funding_sat > self.max_funding_sat {
            return bad("min_funding_sat", "is above max_funding_sat");
        }
        if self.max_funding_sat > bitcoin::Amount::MAX_MONEY.to_sat() {
            return bad("max_funding_sat", "is above 21,000,000 BTC");
        }
        if self.dust_limit_sat < 354 {
            return bad("dust_limit_sat", "is below 354 sat (BOLT 2)");
        }
        if self.dust_limit_sat > MAX_DUST_LIMIT_SAT {
            return bad(
                "dust_limit_sat",
                "is above 546 sat, which peers (LDK among them) refuse",
            );
        }
        if self.min_funding_sat <= self.dust_limit_sat {
            return bad("min_funding_sat", "must be above dust_limit_sat");
        }
        if self.channel_reserve_proportional_millionths >= 1_000_000 {
            return bad(
                "channel_reserve_proportional_millionths",
                "must be below 1_000_000",
            );
        }
        if self.min_feerate_per_kw < 253 || self.min_feerate_per_kw > self.max_feerate_per_kw {
            return bad(
                "min_feerate_per_kw",
                "must be at least 253 and at most max_feerate_per_kw",
            );
        }
        if self.feerate_per_kw < self.min_feerate_per_kw
            || self.feerate_per_kw > self.max_feerate_per_kw
        {
            return bad("feerate_per_kw", "must lie within min/max_feerate_per_kw");
        }
        if self.min_closing_feerate_per_kw < 253
            || self.min_closing_feerate_per_kw > self.max_feerate_per_kw
        {
            return bad(
                "min_closing_feerate_per_kw",
                "must be at least 253 and at most max_feerate_per_kw",
            );
        }
        if self.to_self_delay > self.max_to_self_delay {
            return bad("to_self_delay", "is above max_to_self_delay");
        }
        if self.max_channels_per_peer == 0 {
            return bad("max_channels_per_peer", "must be at least 1");
        }
        if self.max_pending_forwards_per_peer == 0 {
            return bad("max_pending_forwards_per_peer", "must be at least 1");
        }
        if self.max_unfunded_channels_per_peer == 0 || self.max_inbound_unfunded_channels == 0 {
            return bad(
                "max_unfunded_channels_per_peer",
                "and max_inbound_unfunded_channels must be at least 1",
            );
        }
        if self.htlc_claim_buffer_blocks >= self.htlc_fail_back_buffer_blocks {
            return bad(
                "htlc_fail_back_buffer_blocks",
                "must be above htlc_claim_buffer_blocks (a payment is failed back before it would have to be claimed on chain)",
            );
        }
        if u32::from(self.min_final_cltv_expiry_delta) <= self.htlc_fail_back_buffer_blocks {
            return bad(
                "min_final_cltv_expiry_delta",
                "must be above htlc_fail_back_buffer_blocks (or payments to us fail back on arrival)",
            );
        }
        if u32::from(self.cltv_expiry_delta)
            <= self.htlc_claim_buffer_blocks + self.htlc_timeout_grace_blocks
        {
            return bad(
                "cltv_expiry_delta",
                "must be above htlc_claim_buffer_blocks + htlc_timeout_grace_blocks (an outgoing HTLC must be timed out before the incoming one must be claimed)",
            );
        }
        if self.max_cltv_expiry_delta < u32::from(self.cltv_expiry_delta) {
            return bad("max_cltv_expiry_delta", "is below cltv_expiry_delta");
        }
        Ok(())
    }

    /// The reserve we require of the peer in a channel of `funding_sat`.
    pub fn channel_reserve_sat(&self, funding_sat: u64) -> u64 {
        let proportional = funding_sat
            .saturating_mul(u64::from(self.channel_reserve_proportional_millionths))
            / 1_000_000;
        proportional.max(self.dust_limit_sat)
    }

    /// The fee we charge to forward `amount_msat`.
    pub fn forwarding_fee_msat(&self, amount_msat: u64) -> u64 {
        let proportional = u128::from(amount_msat)
            * u128::from(self.forwarding_fee_proportional_millionths)
            / 1_000_000;
        u64::from(self.forwarding_fee_base_msat)
            .saturating_add(proportional.min(u128::from(u64::MAX)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        StoreConfig::default().validate().unwrap();
    }

    #[test]
    fn reserve_has_dust_floor() {
        let c = StoreConfig::default();
        assert_eq!(c.channel_reserve_sat(1_000_000), 10_000);
        assert_eq!(c.channel_reserve_sat(20_000), c.dust_limit_sat);
    }

    #[test]
    fn fee_is_base_plus_proportional() {
        let c = StoreConfig::default();
        assert_eq!(c.forwarding_fee_msat(10_000_000), 1_000 + 1_000);
        assert_eq!(c.forwarding_fee_msat(u64::MAX), u64::MAX / 10_000 + 1_000);
        let greedy = StoreConfig {
            forwarding_fee_base_msat: u32::MAX,
            forwarding_fee_proportional_millionths: u32::MAX,
            ..c
        };
        assert_eq!(greedy.forwarding_fee_msat(u64::MAX), u64::MAX);
    }
}
