//! [`Sharded`]: the default design. Peers in a `DashMap` of
//! `Arc<Mutex<PeerState>>`, indexes in `DashMap`s, cross-peer work on
//! per-shard lock-free queues, readers served from per-channel snapshots.

use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use crossbeam::queue::SegQueue;
use dashmap::DashMap;
use parking_lot::Mutex;

use super::container::{Container, Sealed};
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
/// only then locks the peer. Index and snapshot maps are never touched under
/// a peer lock (the store's contract), so shard guards are leaves and cannot
/// take part in a deadlock.
///
/// What is *not* kept in step: the indexes are updated just after the peer
/// lock is released, so for a moment an index may name a channel that has
/// just closed, or miss one that was just funded. Every use re-checks the
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
    /// Peers whose outbox became non-empty since it was last drained.
    outbox_ready: SegQueue<NodeId>,
    /// Per-channel snapshots for readers, keyed by peer and current id.
    snapshots: DashMap<(NodeId, ChannelId), SnapshotCell, Hasher>,
}

impl Sealed for Sharded {}

#[allow(private_interfaces)] // sealed trait, see `Container`
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
            outbox_ready: SegQueue::new(),
            snapshots: DashMap::with_capacity_and_hasher_and_shard_amount(0, Hasher::new(), shards),
        }
    }

    fn connect(&self, node: PublicKey) {
        let peer = self
            .peers
            .entry(NodeId::from(&node))
            .or_insert_with(|| Arc::new(Mutex::new(PeerState::new(node))))
            .value()
            .clone();
        peer.lock().connected = true;
    }

    fn with_peer<R>(&self, node: &NodeId, f: impl FnOnce(&mut PeerState) -> R) -> Option<R> {
        // The shard guard from `get` dies at the end of this statement, before
        // the peer lock is taken (DESIGN.md rule 2).
        let peer = self.peers.get(node)?.value().clone();
        let mut state = peer.lock();
        Some(f(&mut state))
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
        self.outbox_ready.push(*node);
    }

    fn drain_outboxes(&self) -> Vec<(PublicKey, Message)> {
        let mut out = Vec::new();
        // Bounded by the length at entry so a steady stream of producers
        // cannot keep one caller here forever.
        for _ in 0..self.outbox_ready.len() {
            let Some(node) = self.outbox_ready.pop() else {
                break;
            };
            if let Some((pk, msgs)) = self.with_peer(&node, |ps| (ps.node, ps.take_outbox())) {
                out.extend(msgs.into_iter().map(|m| (pk, m)));
            }
        }
        out
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
