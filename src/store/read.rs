//! Readers: `list_channels`, `channel_details`, `counterparty_of`. They are
//! served from per-channel snapshots and indexes, so they never wait for a
//! peer lock that HTLC traffic holds (DESIGN.md rule 6), except
//! `counterparty_of`'s short re-check of the primary map.

use bitcoin::secp256k1::PublicKey;

use super::{ChannelStore, Container};
use crate::error::StoreError;
use crate::event::ChannelDetails;
use crate::types::{ChannelId, NodeId};

impl<C: Container> ChannelStore<C> {
    /// A snapshot of every channel, funded or not. Each channel's snapshot
    /// is consistent in itself; different channels may be seen at slightly
    /// different moments.
    ///
    /// **Locking behaviour:** no peer lock; brief shard read locks (sharded design).
    pub fn list_channels(&self) -> Vec<ChannelDetails> {
        self.container.list_channels()
    }

    /// A snapshot of one funded channel.
    ///
    /// **Locking behaviour:** no peer lock; brief shard read locks (sharded design).
    pub fn channel_details(&self, channel_id: &ChannelId) -> Option<ChannelDetails> {
        let peer = self.container.index_get(channel_id)?;
        self.container.channel_details(&peer, channel_id)
    }

    /// The peer of a funded channel. The index is only a hint: the answer is
    /// checked against the peer's own state, so a channel that just closed
    /// is never reported.
    ///
    /// **Locking behaviour:** an index lookup, then that peer's lock briefly.
    pub fn counterparty_of(&self, channel_id: &ChannelId) -> Option<PublicKey> {
        let peer = self.container.index_get(channel_id)?;
        self.container
            .with_peer(&peer, |ps| {
                ps.channels.contains_key(channel_id).then_some(ps.node)
            })
            .flatten()
    }

    /// The peer the index names for a channel, unchecked: for callers that
    /// re-check under that peer's lock anyway.
    pub(crate) fn owner_hint(&self, channel_id: &ChannelId) -> Result<NodeId, StoreError> {
        self.container
            .index_get(channel_id)
            .ok_or(StoreError::UnknownChannel {
                channel_id: *channel_id,
            })
    }

    /// Items waiting in the forward queues.
    pub fn pending_forwards(&self) -> usize {
        self.container.queued_work()
    }

    /// Checks that the indexes agree exactly with the primary map: every
    /// funded channel and every kept closed channel is indexed under its
    /// peer, every live channel under its short channel id, and every index
    /// entry names one of them. For tests and audits: call it when no other
    /// thread changes the store.
    pub fn check_indexes(&self) -> Result<(), String> {
        let mut funded = std::collections::HashMap::new();
        let mut scids = std::collections::HashMap::new();
        for peer in self.container.peers() {
            self.container.with_peer(&peer, |ps| {
                for (id, c) in &ps.channels {
                    funded.insert(*id, peer);
                    if let Some(scid) = c.short_channel_id {
                        scids.insert(scid, *id);
                    }
                }
                for id in ps.closed.keys() {
                    funded.insert(*id, peer);
                }
            });
        }
        let index: std::collections::HashMap<_, _> =
            self.container.index_entries().into_iter().collect();
        if index != funded {
            return Err(format!(
                "channel index has {} entries, primary map {} funded channels",
                index.len(),
                funded.len()
            ));
        }
        let scid_index: std::collections::HashMap<_, _> =
            self.container.scid_entries().into_iter().collect();
        if scid_index != scids {
            return Err(format!(
                "scid index has {} entries, primary map {}",
                scid_index.len(),
                scids.len()
            ));
        }
        Ok(())
    }

    /// Checks value conservation on every channel: both settled balances
    /// always add up to the capacity. For tests and audits.
    pub fn check_value_conserved(&self) -> Result<(), String> {
        for peer in self.container.peers() {
            let bad = self.container.with_peer(&peer, |ps| {
                ps.channels
                    .values()
                    .chain(ps.unfunded.values())
                    .find(|c| !c.value_is_conserved())
                    .map(|c| c.channel_id)
            });
            if let Some(Some(id)) = bad {
                return Err(format!("channel {id} does not conserve value"));
            }
        }
        Ok(())
    }
}

/// How much of each structure a store holds: what a peer could try to
/// grow. For tests of the bounds in `StoreConfig`; not a stable API.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceCounts {
    /// Peer states kept.
    pub peers: usize,
    /// Live channels, funded or not.
    pub channels: usize,
    /// Closed-channel records kept.
    pub closed_channels: usize,
    /// Messages waiting in outboxes.
    pub queued_messages: usize,
    /// Peers listed as having messages.
    pub ready_outboxes: usize,
    /// Cross-peer work items queued.
    pub queued_work: usize,
    /// Payments to us waiting for the user.
    pub claimable_payments: usize,
    /// Events waiting for the user.
    pub pending_events: usize,
    /// Channels holding revocation basepoint tables
    /// (`StoreConfig::max_revocation_tables`).
    pub revocation_tables: usize,
}

impl<C: Container> ChannelStore<C> {
    /// Counts what the store holds (see [`ResourceCounts`]).
    #[doc(hidden)]
    pub fn resource_counts(&self) -> ResourceCounts {
        let mut counts = ResourceCounts {
            queued_work: self.container.queued_work(),
            ready_outboxes: self.container.ready_outboxes(),
            claimable_payments: self.claimables.len(),
            pending_events: self.events.len(),
            revocation_tables: self.revocation_tables.in_use(),
            ..ResourceCounts::default()
        };
        for peer in self.container.peers() {
            self.container.with_peer(&peer, |ps| {
                counts.peers += 1;
                counts.channels += ps.channel_count();
                counts.closed_channels += ps.closed.len();
                counts.queued_messages += ps.outbox.len();
            });
        }
        counts
    }

    /// Checks that the funder of every channel can pay the whole fee of both
    /// its current commitments. For tests and audits.
    pub fn check_commitments_fully_paid(&self) -> Result<(), String> {
        for peer in self.container.peers() {
            let bad = self.container.with_peer(&peer, |ps| {
                ps.channels
                    .values()
                    .find(|c| !c.commitments_fully_paid())
                    .map(|c| c.channel_id)
            });
            if let Some(Some(id)) = bad {
                return Err(format!(
                    "channel {id}: a commitment's funder cannot pay its fee"
                ));
            }
        }
        Ok(())
    }

    /// A deterministic dump of every peer's full channel state (channels
    /// sorted by id), for tests that must prove a refused message changed
    /// nothing. Not a stable format.
    #[doc(hidden)]
    pub fn debug_state(&self) -> String {
        let mut peers = self.container.peers();
        peers.sort();
        let mut out = String::new();
        for peer in peers {
            self.container.with_peer(&peer, |ps| {
                let mut ids: Vec<_> = ps
                    .channels
                    .keys()
                    .chain(ps.unfunded.keys())
                    .copied()
                    .collect();
                ids.sort();
                out.push_str(&format!(
                    "peer {} connected={} outbox={}\n",
                    ps.node,
                    ps.connected,
                    ps.outbox.len()
                ));
                for id in ids {
                    let c = ps
                        .channels
                        .get(&id)
                        .or_else(|| ps.unfunded.get(&id))
                        .expect("listed");
                    out.push_str(&format!("{c:?}\n"));
                }
            });
        }
        out
    }
}
