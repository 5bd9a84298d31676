//! BOLT 7 `channel_update` on one channel: the one we send the peer (our
//! policy for forwarding towards it), and the checks on the one it sends us
//! (its policy for forwarding towards us), kept as the channel's
//! `counterparty_policy`.
//!
//! The channel is unannounced, so the update goes to the peer only
//! (`dont_forward`), names the real short channel id (we send no alias in
//! `channel_ready`, and BOLT 7 allows only the real id or an alias the
//! sender received from its peer), and is sent when `channel_ready` has
//! gone both ways and again after every `channel_reestablish`.

use bitcoin::secp256k1::{PublicKey, SecretKey};

use super::Channel;
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::event::ForwardingPolicy;
use crate::message::gossip::{
    is_node_1, ChannelUpdate, CHANNEL_FLAG_DIRECTION, CHANNEL_FLAG_DISABLE,
    MESSAGE_FLAG_DONT_FORWARD,
};

impl Channel {
    /// Our `channel_update` for this channel, signed with the node key, or
    /// `None` before the channel has a short channel id. `disabled` sets the
    /// `disable` bit (a channel that no longer forwards).
    ///
    /// Fees and CLTV delta are `config`'s. `htlc_minimum_msat` is the larger
    /// of what the peer accepts (BOLT 7: "the minimum HTLC value that the
    /// channel peer will accept") and our own `htlc_minimum_msat`;
    /// `htlc_maximum_msat` is the capacity capped by the peer's
    /// `max_htlc_value_in_flight_msat` (BOLT 7's two upper bounds).
    pub(crate) fn our_channel_update(
        &self,
        config: &StoreConfig,
        our_node_id: &PublicKey,
        node_secret: &SecretKey,
        timestamp: u32,
        disabled: bool,
    ) -> Option<ChannelUpdate> {
        let scid = self.short_channel_id?;
        let mut u = ChannelUpdate::unsigned(
            bitcoin::constants::ChainHash::using_genesis_block(config.network),
            scid,
        );
        // BOLT 7: greater than 0.
        u.timestamp = timestamp.max(1);
        u.message_flags |= MESSAGE_FLAG_DONT_FORWARD;
        if !is_node_1(our_node_id, &self.counterparty) {
            u.channel_flags |= CHANNEL_FLAG_DIRECTION;
        }
        if disabled {
            u.channel_flags |= CHANNEL_FLAG_DISABLE;
        }
        u.cltv_expiry_delta = config.cltv_expiry_delta;
        u.htlc_minimum_msat = self.theirs.htlc_minimum_msat.max(config.htlc_minimum_msat);
        u.fee_base_msat = config.forwarding_fee_base_msat;
        u.fee_proportional_millionths = config.forwarding_fee_proportional_millionths;
        u.htlc_maximum_msat = self
            .capacity_msat()
            .min(self.theirs.max_htlc_value_in_flight_msat);
        u.sign(node_secret);
        Some(u)
    }

    /// The peer's `channel_update` for this channel (the caller found the
    /// channel by the update's short channel id and checked the chain):
    /// checks that it is for the peer's direction and signed by the peer,
    /// then keeps its policy. An update no newer than the one kept is
    /// ignored (BOLT 7 "SHOULD ignore"); `Ok(false)` says nothing changed.
    pub(crate) fn handle_channel_update(
        &mut self,
        msg: &ChannelUpdate,
        our_node_id: &PublicKey,
    ) -> Result<bool, StoreError> {
        // The peer is node_2 exactly when we are node_1.
        if msg.is_from_node_2() != is_node_1(our_node_id, &self.counterparty) {
            return Err(StoreError::ChannelUpdateWrongDirection {
                channel_id: self.channel_id,
                scid: msg.short_channel_id,
            });
        }
        if self.verify_signatures && !msg.verify(&self.counterparty) {
            return Err(StoreError::InvalidSignature {
                channel_id: self.channel_id,
                what: "channel_update",
            });
        }
        if self
            .counterparty_policy
            .is_some_and(|p| msg.timestamp <= p.timestamp)
        {
            return Ok(false);
        }
        let policy = ForwardingPolicy {
            fee_base_msat: msg.fee_base_msat,
            fee_proportional_millionths: msg.fee_proportional_millionths,
            cltv_expiry_delta: msg.cltv_expiry_delta,
            htlc_minimum_msat: msg.htlc_minimum_msat,
            htlc_maximum_msat: msg.htlc_maximum_msat,
            enabled: msg.is_enabled(),
            timestamp: msg.timestamp,
        };
        // Only newer: the policy it states is the one kept. Ignored like a
        // stale one (LDK keeps no timestamp at all and persists nothing
        // for it), so that a peer re-signing its policy with growing
        // timestamps cannot make us write the channel's header, and commit
        // a batch, once per message.
        let same = |p: &ForwardingPolicy| {
            ForwardingPolicy {
                timestamp: policy.timestamp,
                ..*p
            } == policy
        };
        if self.counterparty_policy.as_ref().is_some_and(same) {
            // Still the last received (BOLT 7): an older one after it is
            // ignored. Kept in memory only: nothing to write.
            self.counterparty_policy = Some(policy);
            return Ok(false);
        }
        self.counterparty_policy = Some(policy);
        Ok(true)
    }
}
