//! BOLT 7 `channel_update` in the store: sending ours, taking the peer's,
//! and the BOLT 4 UPDATE failures that carry ours.
//!
//! **Ours** is built and signed with the node key under the channel's peer
//! lock, sent after the channel's other messages, and remembered per short
//! channel id in `ChannelStore::our_updates` (a leaf lock) so that a
//! section of another peer can put it in a failure for an HTLC it would
//! have forwarded over that channel.
//!
//! **The peer's** is refused with a precise error, changing nothing, when
//! it is for another chain ([`StoreError::ChannelUpdateWrongChain`]), names
//! no channel of this peer by its short channel id
//! ([`StoreError::UnknownShortChannelId`], or `WrongPeer` when another
//! peer's), is for our direction
//! ([`StoreError::ChannelUpdateWrongDirection`]) or is not signed by the
//! peer's node key ([`StoreError::InvalidSignature`]). One no newer than
//! the one kept is ignored, and so is one for a channel of this peer that
//! closed (BOLT 7: its output is spent); otherwise its policy replaces the
//! channel's (one fixed-size record per channel, durable with the
//! channel's header).

use super::payments::unix_now;
use super::section::Section;
use crate::error::StoreError;
use crate::message::{ChannelUpdate, Message};
use crate::onion::{Failure, FailureCode};
use crate::types::{ChannelId, ShortChannelId};

impl Section<'_> {
    /// Sends our `channel_update` for a funded channel of this peer (if it
    /// has a short channel id) and remembers it for failures.
    pub(crate) fn send_channel_update(&mut self, id: ChannelId) {
        if let Some(update) = self.new_update(id, false) {
            self.send(Message::ChannelUpdate(update));
        }
    }

    /// Our `channel_update` for channel `id`, newer than the last one we
    /// made for it (BOLT 7: timestamps only grow), remembered in its place.
    fn new_update(&mut self, id: ChannelId, disabled: bool) -> Option<ChannelUpdate> {
        let ctx = &self.ctx;
        let channel = self.ps.channels.get(&id)?;
        let scid = channel.short_channel_id?;
        let last = ctx.our_updates.get(&scid).map(|u| u.timestamp);
        let now = u32::try_from(unix_now()).unwrap_or(u32::MAX);
        let timestamp = last.map_or(now, |t| now.max(t.saturating_add(1)));
        let update = channel.our_channel_update(
            ctx.config,
            &ctx.node_id,
            ctx.node_secret,
            timestamp,
            disabled,
        )?;
        // Leaf lock, released at once.
        ctx.our_updates.insert(scid, update.clone());
        Some(update)
    }

    /// For a `channel_disabled` failure on channel `id` (closing): our
    /// update with the `disable` bit, made once, as failure data.
    pub(crate) fn disabled_update_bytes(&mut self, id: ChannelId) -> Option<Vec<u8>> {
        let scid = self.ps.channels.get(&id)?.short_channel_id;
        let cached = self.our_update_bytes(scid);
        let already = scid
            .and_then(|scid| self.ctx.our_updates.get(&scid).map(|u| !u.is_enabled()))
            .unwrap_or(false);
        if already {
            return cached;
        }
        let update = self.new_update(id, true)?;
        Some(Message::ChannelUpdate(update).encode())
    }

    /// The peer's `channel_update` (see the module documentation).
    pub(crate) fn handle_channel_update(&mut self, msg: &ChannelUpdate) -> Result<(), StoreError> {
        let chain = bitcoin::constants::ChainHash::using_genesis_block(self.ctx.config.network);
        let scid = msg.short_channel_id;
        if msg.chain_hash != chain {
            return Err(StoreError::ChannelUpdateWrongChain { scid });
        }
        // At most `max_channels_per_peer` channels: no index needed, and
        // the peer's own map is the truth.
        let Some(id) = self
            .ps
            .channels
            .iter()
            .find(|(_, c)| c.short_channel_id == Some(scid))
            .map(|(id, _)| *id)
        else {
            // BOLT 7: for a channel whose output is spent (it crossed our
            // close), ignore it.
            if self
                .ps
                .closed
                .values()
                .any(|c| c.short_channel_id == Some(scid))
            {
                return Ok(());
            }
            return Err(StoreError::UnknownShortChannelId { scid });
        };
        let our_node_id = self.ctx.node_id;
        let channel = self.channel(&id, true)?;
        let changed = channel.handle_channel_update(msg, &our_node_id)?;
        // The peer sends it after its retransmissions
        // (`Channel::takes_retransmitted_adds`).
        channel.just_reestablished = false;
        if changed {
            // Published and written with the channel.
            self.touch(id, true);
        }
        Ok(())
    }

    /// Our last `channel_update` for `scid`, as BOLT 4 failure data carries
    /// it: type 258 first, as BOLT 4 asked when the field was mandatory
    /// ("it will always start with `0x0102`").
    pub(crate) fn our_update_bytes(&self, scid: Option<ShortChannelId>) -> Option<Vec<u8>> {
        let update = self.ctx.our_updates.get(&scid?)?.clone();
        Some(Message::ChannelUpdate(update).encode())
    }
}

/// A failure decided here for an HTLC of `htlc_msat` expiring at
/// `cltv_expiry`, with the data BOLT 4 defines for `code`: for the UPDATE
/// codes the HTLC's amount, expiry or `disabled_flags` as the code needs,
/// then `u16 len` and `update` (a `channel_update` with its type, or
/// nothing: `len` 0, which BOLT 4 now allows and LDK 0.2.7 sends).
pub(crate) fn failure_with_update(
    code: FailureCode,
    htlc_msat: u64,
    cltv_expiry: u32,
    update: Option<Vec<u8>>,
) -> Failure {
    let mut data = Vec::new();
    match code {
        FailureCode::AmountBelowMinimum | FailureCode::FeeInsufficient => {
            data.extend_from_slice(&htlc_msat.to_be_bytes());
        }
        FailureCode::IncorrectCltvExpiry => data.extend_from_slice(&cltv_expiry.to_be_bytes()),
        // No `disabled_flags` are defined: always two zero bytes.
        FailureCode::ChannelDisabled => data.extend_from_slice(&0u16.to_be_bytes()),
        FailureCode::TemporaryChannelFailure | FailureCode::ExpiryTooSoon => {}
        _ => return Failure::local(code),
    }
    let update = update.unwrap_or_default();
    // A channel_update is 138 bytes and more only by what a peer cannot
    // add to ours; cut rather than mis-frame.
    let len = update.len().min(usize::from(u16::MAX));
    data.extend_from_slice(&(len as u16).to_be_bytes());
    data.extend_from_slice(&update[..len]);
    Failure::Local { code, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_failures_carry_bolt4_data() {
        let update = vec![0x01, 0x02, 7];
        let data = |f: Failure| match f {
            Failure::Local { data, .. } => data,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            data(failure_with_update(
                FailureCode::FeeInsufficient,
                5,
                9,
                Some(update.clone())
            )),
            [&5u64.to_be_bytes()[..], &[0, 3, 1, 2, 7]].concat()
        );
        assert_eq!(
            data(failure_with_update(
                FailureCode::AmountBelowMinimum,
                5,
                9,
                None
            )),
            [&5u64.to_be_bytes()[..], &[0, 0]].concat()
        );
        assert_eq!(
            data(failure_with_update(
                FailureCode::IncorrectCltvExpiry,
                5,
                9,
                None
            )),
            [&9u32.to_be_bytes()[..], &[0, 0]].concat()
        );
        assert_eq!(
            data(failure_with_update(
                FailureCode::ChannelDisabled,
                5,
                9,
                Some(update.clone())
            )),
            vec![0, 0, 0, 3, 1, 2, 7]
        );
        for code in [
            FailureCode::TemporaryChannelFailure,
            FailureCode::ExpiryTooSoon,
        ] {
            assert_eq!(data(failure_with_update(code, 5, 9, None)), vec![0, 0]);
        }
        assert_eq!(
            failure_with_update(FailureCode::UnknownNextPeer, 5, 9, Some(update)),
            Failure::local(FailureCode::UnknownNextPeer)
        );
    }
}
