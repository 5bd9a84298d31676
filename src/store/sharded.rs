//! [`Sharded`]: the default design. Peers in a `DashMap` of
//! `Arc<Mutex<PeerState>>`, indexes in `DashMap`s, cross-peer work on
//! per-shard lock-free queues, readers served from per-channel snapshots.

use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use dashmap::DashMap;
use parking_lot::Mutex;

use super::container::{apply_index_ops, Container, IndexOp, Sealed};
use super::peer::PeerState;
use super::SnapshotCell;
use crate::event::ChannelDetails;
use crate::forward::{Addressed, ShardedQueues};
use crate::message::Message;
use crate::types::{ChannelId, NodeId, ShortChannelId};

/// Keyed per process (so peers cannot aim their ids at one shard) and much
/// cheaper than SipHash on 32- and 33-byte keys.
type Hasher = ahash::RandomState;

/// The sharded design (see the crate docs and `DESIGN.md`).
///
/// **Locking behaviour.** A `DashMap` shard guard is only ever held for the
/// lookup itself: `with_peer` clones the peer's `Arc`, drops the guard, and
/// only then locks the peer. The lock order is *peer lock, then shard
/// guard*: `with_peer_indexed` updates the index and snapshot maps while it
/// holds the peer lock (so one peer's changes apply in the order of its
/// sections), and `forget_peer_if_idle` removes the peer's own entry while
/// holding its lock; no shard guard is ever held while a peer lock is
/// taken. Shard guards are leaves, so they cannot take part in a deadlock.
///
/// What is *not* kept in step: the channel index is claimed before a
/// funding section runs (and released if it fails), so for a moment it may
/// name a channel its peer does not have yet. Every use re-checks the
/// channel in its peer's state.
pub struct Sharded {
    /// The primary map: the truth about every peer and channel.
    peers: DashMap<NodeId, Arc<Mutex<PeerState>>, Hasher>,
    /// Permanent channel id → peer. A hint.
    index: DashMap<ChannelId, NodeId, Hasher>,
    /// Short channel id → channel id. A hint.
    scids: DashMap<ShortChannelId, ChannelId, Hasher>,
    /// Cross-peer work, one queue per shard.
    queues: ShardedQueues,
    /// Peers whose outbox became non-empty since it was last drained. A
    /// set: at most one entry per peer whatever the mix of drains and
    /// reconnections (`PeerState::listed` says the peer is, or is about to
    /// be, in it).
    outbox_ready: DashMap<NodeId, (), Hasher>,
    /// Per-channel snapshots for readers, keyed by peer and current id.
    snapshots: DashMap<(NodeId, ChannelId), SnapshotCell, Hasher>,
}

impl Sealed for Sharded {}

impl Sharded {
    /// Takes the outboxes of `nodes`. Each leaves the ready set before its
    /// lock is taken: a message queued after the drain took the outbox
    /// finds `listed` false and puts the peer back.
    /// Messages whose batch is not durable yet stay, and so does the peer
    /// in the ready set.
    fn drain_outboxes_of_nodes(&self, nodes: &[NodeId], durable: u64) -> Vec<(PublicKey, Message)> {
        let mut out = Vec::new();
        for node in nodes {
            self.outbox_ready.remove(node);
            let taken = self.with_peer(node, |ps| (ps.node, ps.take_outbox(durable)));
            if let Some((pk, (msgs, left))) = taken {
                out.extend(msgs.into_iter().map(|m| (pk, m)));
                if left {
                    self.outbox_ready.insert(*node, ());
                }
            }
        }
        out
    }
}

#[allow(private_interfaces, private_bounds)] // sealed trait, see `Container`
impl Container for Sharded {
    const NAME: &'static str = "sharded";

    fn new() -> Self {
        let shards =
            (std::thread::available_parallelism().map_or(4, |n| n.get()) * 4).next_power_of_two();
        Sharded {
            peers: DashMap::with_capacity_and_hasher_and_shard_amount(0, Hasher::new(), shards),
            index: DashMap::with_capacity_and_hasher_and_shard_amount(0, Hasher::new(), shards),
            scids: DashMap::with_capacity_and_hasher_and_shard_amount(0, Hasher::new(), shards),
            queues: ShardedQueues::new(shards),
            outbox_ready: DashMap::with_capacity_and_hasher_and_shard_amount(
                0,
                Hasher::new(),
                shards,
            ),
            snapshots: DashMap::with_capacity_and_hasher_and_shard_amount(0, Hasher::new(), shards),
        }
    }

    fn insert_peer(&self, node: PublicKey) {
        // The shard's write guard lives only for this statement; the new
        // state is not locked under it.
        self.peers
            .entry(NodeId::from(&node))
            .or_insert_with(|| Arc::new(Mutex::new(PeerState::new(node))));
    }

    fn with_peer<R>(&self, node: &NodeId, f: impl FnOnce(&mut PeerState) -> R) -> Option<R> {
        // The shard guard from `get` dies at the end of this statement, before
        // the peer lock is taken (DESIGN.md rule 2).
        let peer = self.peers.get(node)?.value().clone();
        let mut state = peer.lock();
        if state.removed {
            return None;
        }
        Some(f(&mut state))
    }

    fn with_peer_indexed<R>(
        &self,
        node: &NodeId,
        f: impl FnOnce(&mut PeerState) -> (R, Vec<IndexOp>),
    ) -> Option<R> {
        let peer = self.peers.get(node)?.value().clone();
        let mut state = peer.lock();
        if state.removed {
            return None;
        }
        let (result, ops) = f(&mut state);
        // Under the peer lock: leaf locks only (see the type's doc).
        apply_index_ops(self, node, ops);
        Some(result)
    }

    fn forget_peer_if_idle(&self, node: &NodeId) {
        let Some(peer) = self.peers.get(node).map(|e| e.value().clone()) else {
            return;
        };
        let mut state = peer.lock();
        if state.removed || !state.is_idle() {
            return;
        }
        state.removed = true;
        // Peer lock, then shard guard: the order of the type's doc.
        self.peers.remove_if(node, |_, p| Arc::ptr_eq(p, &peer));
        self.outbox_ready.remove(node);
    }

    fn peers(&self) -> Vec<NodeId> {
        self.peers.iter().map(|e| *e.key()).collect()
    }

    fn index_get(&self, id: &ChannelId) -> Option<NodeId> {
        self.index.get(id).map(|e| *e.value())
    }

    fn index_claim(&self, id: ChannelId, node: NodeId) -> Result<(), NodeId> {
        match self.index.entry(id) {
            dashmap::Entry::Occupied(e) => Err(*e.get()),
            dashmap::Entry::Vacant(v) => {
                v.insert(node);
                Ok(())
            }
        }
    }

    fn index_release(&self, id: &ChannelId, node: &NodeId) {
        self.index.remove_if(id, |_, owner| owner == node);
    }

    fn index_entries(&self) -> Vec<(ChannelId, NodeId)> {
        self.index.iter().map(|e| (*e.key(), *e.value())).collect()
    }

    fn scid_get(&self, scid: &ShortChannelId) -> Option<ChannelId> {
        self.scids.get(scid).map(|e| *e.value())
    }

    fn scid_insert(&self, scid: ShortChannelId, id: ChannelId) {
        self.scids.insert(scid, id);
    }

    fn scid_release(&self, scid: &ShortChannelId, id: &ChannelId) {
        self.scids.remove_if(scid, |_, named| named == id);
    }

    fn scid_entries(&self) -> Vec<(ShortChannelId, ChannelId)> {
        self.scids.iter().map(|e| (*e.key(), *e.value())).collect()
    }

    fn push_work(&self, item: Addressed) {
        self.queues.push(item);
    }

    fn pop_work(&self, out: &mut Vec<Addressed>, max: usize) {
        self.queues.pop_batch(out, max);
    }

    fn queued_work(&self) -> usize {
        self.queues.len()
    }

    fn note_outbox(&self, node: &NodeId) {
        self.outbox_ready.insert(*node, ());
    }

    fn ready_outboxes(&self) -> usize {
        self.outbox_ready.len()
    }

    fn drain_outboxes(&self, durable: u64) -> Vec<(PublicKey, Message)> {
        // Copy the keys out first: a shard's read guard must not be held
        // while the same shard is written below.
        let ready: Vec<NodeId> = self.outbox_ready.iter().map(|e| *e.key()).collect();
        self.drain_outboxes_of_nodes(&ready, durable)
    }

    fn drain_outboxes_of(&self, nodes: &[PublicKey], durable: u64) -> Vec<(PublicKey, Message)> {
        let nodes: Vec<NodeId> = nodes.iter().map(NodeId::from).collect();
        self.drain_outboxes_of_nodes(&nodes, durable)
    }

    fn snapshot_register(&self, node: NodeId, id: ChannelId, cell: SnapshotCell) {
        self.snapshots.insert((node, id), cell);
    }

    fn snapshot_release(&self, node: &NodeId, id: &ChannelId) {
        self.snapshots.remove(&(*node, *id));
    }

    fn channel_details(&self, node: &NodeId, id: &ChannelId) -> Option<ChannelDetails> {
        let cell = self.snapshots.get(&(*node, *id))?.value().clone();
        let details = ChannelDetails::clone(&cell.load());
        Some(details)
    }

    fn list_channels(&self) -> Vec<ChannelDetails> {
        // Clone the cells out first so no shard guard is held while copying.
        let cells: Vec<SnapshotCell> = self.snapshots.iter().map(|e| e.value().clone()).collect();
        cells
            .iter()
            .map(|c| ChannelDetails::clone(&c.load()))
            .collect()
    }
}
