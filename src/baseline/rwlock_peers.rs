//! [`RwLockPeers`]: LDK's `ChannelManager` after #1507 (as of 2026): a fair
//! read-write lock around the map of per-peer mutexes, and one mutex over
//! the pending forwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use bitcoin::secp256k1::PublicKey;

use crate::types::NodeId;
use parking_lot::Mutex;

use super::fair_rwlock::FairRwLock;
use crate::event::ChannelDetails;
use crate::forward::Addressed;
use crate::message::Message;
use crate::store::{apply_index_ops, Container, IndexOp, PeerState, Sealed, SnapshotCell};
use crate::types::{ChannelId, ShortChannelId};

/// LDK after #1507: `per_peer_state: FairRwLock<HashMap<NodeId,
/// Mutex<PeerState>>>`, `id_to_peer: Mutex<HashMap<..>>`,
/// `short_to_chan_info: FairRwLock<HashMap<..>>`, and `forward_htlcs`, one
/// `Mutex` that `process_pending_htlc_forwards` empties by swapping the
/// vector out, one caller at a time.
///
/// **Locking behaviour.** `with_peer` holds the map's read lock and that
/// peer's mutex while its closure runs (as LDK holds `per_peer_state.read()`
/// across a message's handling), so peers run in parallel but adding a peer
/// (the write lock) waits for every handler in flight, and, the lock being
/// fair, new handlers wait behind it. The index, scid map and forward queue
/// are leaf locks. `process_pending_forwards` lets one caller in at a time
/// (an `AtomicBool` tried with `compare_exchange`; the others return 0 at
/// once), so applying forwards (and signing the commitments they cause) is
/// serialized. Readers take the read lock and each peer's mutex in turn;
/// this design has no snapshots (registering one is a no-op).
pub struct RwLockPeers {
    /// The primary map. Write-locked only to add a peer.
    per_peer_state: FairRwLock<HashMap<NodeId, Mutex<PeerState>>>,
    /// Permanent channel id → peer. A hint, like the sharded index.
    id_to_peer: Mutex<HashMap<ChannelId, NodeId>>,
    /// Short channel id → channel id. A hint.
    short_to_chan_info: FairRwLock<HashMap<ShortChannelId, ChannelId>>,
    /// Cross-peer work, in arrival order.
    forward_htlcs: Mutex<Vec<Addressed>>,
    /// Held by the one `process_pending_forwards` caller allowed in.
    processing_forwards: AtomicBool,
}

impl Sealed for RwLockPeers {}

/// Clears `processing_forwards` when the pass ends, even by a panic.
struct PassGuard<'a>(&'a AtomicBool);

impl Drop for PassGuard<'_> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire of the next caller's
        // compare_exchange, so one pass happens-before the next (the passes
        // are serialized, as LDK's are).
        self.0.store(false, Ordering::Release);
    }
}

#[allow(private_interfaces, private_bounds)] // sealed trait, see `Container`
impl Container for RwLockPeers {
    const NAME: &'static str = "rwlock_peers";

    fn new() -> Self {
        RwLockPeers {
            per_peer_state: FairRwLock::new(HashMap::new()),
            id_to_peer: Mutex::new(HashMap::new()),
            short_to_chan_info: FairRwLock::new(HashMap::new()),
            forward_htlcs: Mutex::new(Vec::new()),
            processing_forwards: AtomicBool::new(false),
        }
    }

    fn insert_peer(&self, node: PublicKey) {
        if self
            .per_peer_state
            .read()
            .contains_key(&NodeId::from(&node))
        {
            return;
        }
        // A new peer: the only use of the write lock with forgetting one. The
        // read guard above is gone (FairRwLock's rule: never `read` or
        // `write` while reading).
        self.per_peer_state
            .write()
            .entry(NodeId::from(&node))
            .or_insert_with(|| Mutex::new(PeerState::new(node)));
    }

    fn with_peer<R>(&self, node: &NodeId, f: impl FnOnce(&mut PeerState) -> R) -> Option<R> {
        let peers = self.per_peer_state.read();
        let mut state = peers.get(node)?.lock();
        Some(f(&mut state))
    }

    fn with_peer_indexed<R>(
        &self,
        node: &NodeId,
        f: impl FnOnce(&mut PeerState) -> (R, Vec<IndexOp>),
    ) -> Option<R> {
        let peers = self.per_peer_state.read();
        let mut state = peers.get(node)?.lock();
        let (result, ops) = f(&mut state);
        // Under the peer's mutex, as LDK updates `short_to_chan_info`: the
        // index locks are leaves.
        apply_index_ops(self, node, ops);
        Some(result)
    }

    fn forget_peer_if_idle(&self, node: &NodeId) {
        let mut peers = self.per_peer_state.write();
        if peers.get_mut(node).is_some_and(|p| p.get_mut().is_idle()) {
            peers.remove(node);
        }
    }

    fn peers(&self) -> Vec<NodeId> {
        self.per_peer_state.read().keys().copied().collect()
    }

    fn index_get(&self, id: &ChannelId) -> Option<NodeId> {
        self.id_to_peer.lock().get(id).copied()
    }

    fn index_claim(&self, id: ChannelId, node: NodeId) -> Result<(), NodeId> {
        super::index_map::claim(&mut self.id_to_peer.lock(), id, node)
    }

    fn index_release(&self, id: &ChannelId, node: &NodeId) {
        super::index_map::release(&mut self.id_to_peer.lock(), id, node);
    }

    fn index_entries(&self) -> Vec<(ChannelId, NodeId)> {
        super::index_map::entries(&self.id_to_peer.lock())
    }

    fn scid_get(&self, scid: &ShortChannelId) -> Option<ChannelId> {
        self.short_to_chan_info.read().get(scid).copied()
    }

    fn scid_insert(&self, scid: ShortChannelId, id: ChannelId) {
        self.short_to_chan_info.write().insert(scid, id);
    }

    fn scid_release(&self, scid: &ShortChannelId, id: &ChannelId) {
        super::index_map::release(&mut self.short_to_chan_info.write(), scid, id);
    }

    fn scid_entries(&self) -> Vec<(ShortChannelId, ChannelId)> {
        super::index_map::entries(&self.short_to_chan_info.read())
    }

    fn push_work(&self, item: Addressed) {
        self.forward_htlcs.lock().push(item);
    }

    fn pop_work(&self, out: &mut Vec<Addressed>, max: usize) {
        let mut queued = self.forward_htlcs.lock();
        if out.is_empty() && queued.len() <= max {
            // LDK's move: swap the whole vector out under the brief lock
            // (the queue keeps `out`'s empty buffer for the next pushes).
            std::mem::swap(out, &mut *queued);
        } else {
            // More than one batch is queued: take the oldest `max`.
            let n = max.saturating_sub(out.len()).min(queued.len());
            out.extend(queued.drain(..n));
        }
    }

    fn queued_work(&self) -> usize {
        self.forward_htlcs.lock().len()
    }

    fn forwards_pass<R>(&self, pass: impl FnOnce() -> R) -> Option<R> {
        // Acquire on success: pairs with the previous holder's Release in
        // `PassGuard::drop`. Relaxed on failure: a caller turned away reads
        // nothing the holder wrote, it just returns.
        if self
            .processing_forwards
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        let _guard = PassGuard(&self.processing_forwards);
        Some(pass())
    }

    fn note_outbox(&self, _node: &NodeId) {}

    fn ready_outboxes(&self) -> usize {
        // Not kept: drains visit every peer.
        0
    }

    fn drain_outboxes(&self, durable: u64) -> Vec<(PublicKey, Message)> {
        // LDK's get_and_clear_pending_msg_events: every peer, one at a time.
        let peers = self.per_peer_state.read();
        let mut out = Vec::new();
        for peer in peers.values() {
            let mut state = peer.lock();
            if !state.outbox.is_empty() {
                let pk = state.node;
                out.extend(state.take_outbox(durable).0.into_iter().map(|m| (pk, m)));
            }
        }
        out
    }

    fn drain_outboxes_of(&self, nodes: &[PublicKey], durable: u64) -> Vec<(PublicKey, Message)> {
        let peers = self.per_peer_state.read();
        let mut out = Vec::new();
        for node in nodes {
            if let Some(peer) = peers.get(&NodeId::from(node)) {
                let (msgs, _) = peer.lock().take_outbox(durable);
                out.extend(msgs.into_iter().map(|m| (*node, m)));
            }
        }
        out
    }

    fn snapshot_register(&self, _node: NodeId, _id: ChannelId, _cell: SnapshotCell) {}

    fn snapshot_release(&self, _node: &NodeId, _id: &ChannelId) {}

    fn channel_details(&self, node: &NodeId, id: &ChannelId) -> Option<ChannelDetails> {
        let peers = self.per_peer_state.read();
        let state = peers.get(node)?.lock();
        state.channels.get(id).map(|c| c.details())
    }

    fn list_channels(&self) -> Vec<ChannelDetails> {
        let peers = self.per_peer_state.read();
        let mut out = Vec::new();
        for peer in peers.values() {
            let state = peer.lock();
            out.extend(
                state
                    .channels
                    .values()
                    .chain(state.unfunded.values())
                    .map(|c| c.details()),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_forwards_pass_at_a_time() {
        let c = RwLockPeers::new();
        let outer = c.forwards_pass(|| {
            // A second caller while the first is in is turned away.
            assert_eq!(c.forwards_pass(|| 1), None);
            2
        });
        assert_eq!(outer, Some(2));
        // And let in again once the first is done.
        assert_eq!(c.forwards_pass(|| 3), Some(3));
    }

    #[test]
    fn a_panicking_pass_releases_the_gate() {
        let c = RwLockPeers::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.forwards_pass(|| panic!("boom"))
        }));
        assert!(r.is_err());
        assert_eq!(c.forwards_pass(|| 4), Some(4));
    }
}
