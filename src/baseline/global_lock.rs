//! [`GlobalLock`]: one mutex over everything, as LDK's `ChannelManager` was
//! before #1507 (`channel_state: Mutex<ChannelHolder>`).

use std::collections::{HashMap, VecDeque};

use bitcoin::secp256k1::PublicKey;

use crate::types::NodeId;
use parking_lot::Mutex;

use crate::event::ChannelDetails;
use crate::forward::Addressed;
use crate::message::Message;
use crate::store::{Container, IndexOp, PeerState, Sealed, SnapshotCell};
use crate::types::{ChannelId, ShortChannelId};

/// The design before LDK #1507: every peer, index and queue behind one
/// `Mutex`.
///
/// **Locking behaviour.** Every method takes the one lock, and `with_peer`
/// holds it while its closure runs: the signing and signature checks of one
/// peer's message stop every other peer's. Readers (`list_channels`,
/// `channel_details`) take it too and build details from the channels; this
/// design has no snapshots (registering one is a no-op).
pub struct GlobalLock {
    inner: Mutex<Inner>,
}

/// Everything, under the one lock.
#[derive(Default)]
struct Inner {
    peers: HashMap<NodeId, PeerState>,
    /// Permanent channel id → peer (LDK's `id_to_peer`).
    index: HashMap<ChannelId, NodeId>,
    /// Short channel id → channel id (LDK's `short_to_id`).
    scids: HashMap<ShortChannelId, ChannelId>,
    /// Cross-peer work (LDK's `forward_htlcs`), drained front first.
    work: VecDeque<Addressed>,
    /// Peers with queued messages. LDK kept one `pending_msg_events` vector
    /// in the `ChannelHolder`; a set of listed peers drains in the same
    /// time (the messages there are, not the peers there are), and holds a
    /// peer once whatever the mix of drains and reconnections.
    outbox_ready: std::collections::HashSet<NodeId>,
}

impl Sealed for GlobalLock {}

impl Inner {
    /// Applies one index change (the snapshot ones are no-ops: this design
    /// has no snapshots), under the one lock.
    fn apply(&mut self, node: &NodeId, op: IndexOp) {
        match op {
            IndexOp::Created { .. } | IndexOp::Funded { .. } => {}
            IndexOp::Confirmed { scid, id } => {
                self.scids.insert(scid, id);
            }
            IndexOp::Closed {
                id,
                scid,
                funded,
                keep_index,
            } => {
                if funded && !keep_index {
                    super::index_map::release(&mut self.index, &id, node);
                }
                if let Some(scid) = scid {
                    super::index_map::release(&mut self.scids, &scid, &id);
                }
            }
            IndexOp::Forgotten { id } => super::index_map::release(&mut self.index, &id, node),
        }
    }
}

#[allow(private_interfaces, private_bounds)] // sealed trait, see `Container`
impl Container for GlobalLock {
    const NAME: &'static str = "global_lock";

    fn new() -> Self {
        GlobalLock {
            inner: Mutex::new(Inner::default()),
        }
    }

    fn insert_peer(&self, node: PublicKey) {
        self.inner
            .lock()
            .peers
            .entry(NodeId::from(&node))
            .or_insert_with(|| PeerState::new(node));
    }

    fn with_peer<R>(&self, node: &NodeId, f: impl FnOnce(&mut PeerState) -> R) -> Option<R> {
        // The global lock stays held while `f` runs: that is the design.
        let mut inner = self.inner.lock();
        inner.peers.get_mut(node).map(f)
    }

    fn with_peer_indexed<R>(
        &self,
        node: &NodeId,
        f: impl FnOnce(&mut PeerState) -> (R, Vec<IndexOp>),
    ) -> Option<R> {
        let mut inner = self.inner.lock();
        let (result, ops) = f(inner.peers.get_mut(node)?);
        for op in ops {
            inner.apply(node, op);
        }
        Some(result)
    }

    fn forget_peer_if_idle(&self, node: &NodeId) {
        let mut inner = self.inner.lock();
        if inner.peers.get(node).is_some_and(PeerState::is_idle) {
            inner.peers.remove(node);
            inner.outbox_ready.remove(node);
        }
    }

    fn peers(&self) -> Vec<NodeId> {
        self.inner.lock().peers.keys().copied().collect()
    }

    fn index_get(&self, id: &ChannelId) -> Option<NodeId> {
        self.inner.lock().index.get(id).copied()
    }

    fn index_claim(&self, id: ChannelId, node: NodeId) -> Result<(), NodeId> {
        super::index_map::claim(&mut self.inner.lock().index, id, node)
    }

    fn index_release(&self, id: &ChannelId, node: &NodeId) {
        super::index_map::release(&mut self.inner.lock().index, id, node);
    }

    fn index_entries(&self) -> Vec<(ChannelId, NodeId)> {
        super::index_map::entries(&self.inner.lock().index)
    }

    fn scid_get(&self, scid: &ShortChannelId) -> Option<ChannelId> {
        self.inner.lock().scids.get(scid).copied()
    }

    fn scid_insert(&self, scid: ShortChannelId, id: ChannelId) {
        self.inner.lock().scids.insert(scid, id);
    }

    fn scid_release(&self, scid: &ShortChannelId, id: &ChannelId) {
        super::index_map::release(&mut self.inner.lock().scids, scid, id);
    }

    fn scid_entries(&self) -> Vec<(ShortChannelId, ChannelId)> {
        super::index_map::entries(&self.inner.lock().scids)
    }

    fn push_work(&self, item: Addressed) {
        self.inner.lock().work.push_back(item);
    }

    fn pop_work(&self, out: &mut Vec<Addressed>, max: usize) {
        let mut inner = self.inner.lock();
        let n = max.saturating_sub(out.len()).min(inner.work.len());
        out.extend(inner.work.drain(..n));
    }

    fn queued_work(&self) -> usize {
        self.inner.lock().work.len()
    }

    fn note_outbox(&self, node: &NodeId) {
        self.inner.lock().outbox_ready.insert(*node);
    }

    fn ready_outboxes(&self) -> usize {
        self.inner.lock().outbox_ready.len()
    }

    fn drain_outboxes(&self, durable: u64) -> Vec<(PublicKey, Message)> {
        let mut inner = self.inner.lock();
        let Inner {
            peers,
            outbox_ready,
            ..
        } = &mut *inner;
        let mut out = Vec::new();
        let mut waiting = Vec::new();
        for node in outbox_ready.drain() {
            if let Some(ps) = peers.get_mut(&node) {
                let pk = ps.node;
                let (msgs, left) = ps.take_outbox(durable);
                out.extend(msgs.into_iter().map(|m| (pk, m)));
                if left {
                    waiting.push(node);
                }
            }
        }
        outbox_ready.extend(waiting);
        out
    }

    fn drain_outboxes_of(&self, nodes: &[PublicKey], durable: u64) -> Vec<(PublicKey, Message)> {
        // One lock for the whole set, as one drain of LDK's single vector.
        let mut inner = self.inner.lock();
        let mut out = Vec::new();
        for node in nodes {
            let node_id = NodeId::from(node);
            inner.outbox_ready.remove(&node_id);
            if let Some(ps) = inner.peers.get_mut(&node_id) {
                let (msgs, left) = ps.take_outbox(durable);
                out.extend(msgs.into_iter().map(|m| (*node, m)));
                if left {
                    inner.outbox_ready.insert(node_id);
                }
            }
        }
        out
    }

    fn snapshot_register(&self, _node: NodeId, _id: ChannelId, _cell: SnapshotCell) {}

    fn snapshot_release(&self, _node: &NodeId, _id: &ChannelId) {}

    fn channel_details(&self, node: &NodeId, id: &ChannelId) -> Option<ChannelDetails> {
        let inner = self.inner.lock();
        inner.peers.get(node)?.channels.get(id).map(|c| c.details())
    }

    fn list_channels(&self) -> Vec<ChannelDetails> {
        let inner = self.inner.lock();
        inner
            .peers
            .values()
            .flat_map(|ps| ps.channels.values().chain(ps.unfunded.values()))
            .map(|c| c.details())
            .collect()
    }
}
