//! [`Container`]: what differs between the store designs: how peers' states
//! are held and locked, how the channel indexes are kept, and how cross-peer
//! work is queued. The channel logic on top is the same for every design.

use bitcoin::secp256k1::PublicKey;

use super::peer::PeerState;
use crate::event::ChannelDetails;
use crate::forward::Addressed;
use crate::message::Message;
use crate::types::{ChannelId, NodeId, ShortChannelId};

mod sealed {
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// Index and snapshot changes a section made, applied by the container
/// before it releases the section's peer lock.
#[derive(Debug)]
pub(crate) enum IndexOp {
    /// A channel was created under its temporary id.
    Created {
        id: ChannelId,
        cell: super::SnapshotCell,
    },
    /// A channel got its permanent id (already claimed in the index).
    Funded {
        temporary_id: ChannelId,
        id: ChannelId,
        cell: super::SnapshotCell,
    },
    /// A channel got its short channel id.
    Confirmed { scid: ShortChannelId, id: ChannelId },
    /// A channel closed and left the live channels. `keep_index`: its
    /// closed-channel record stays with the peer, and so does its id in the
    /// index (lookups by channel id still find the peer).
    Closed {
        id: ChannelId,
        scid: Option<ShortChannelId>,
        funded: bool,
        keep_index: bool,
    },
    /// A closed channel's record was deleted.
    Forgotten { id: ChannelId },
}

/// Applies `ops` through the container's own index and snapshot methods
/// (for designs whose index locks are separate from their peer locks).
pub(crate) fn apply_index_ops<C: Container>(container: &C, node: &NodeId, ops: Vec<IndexOp>) {
    for op in ops {
        match op {
            IndexOp::Created { id, cell } => container.snapshot_register(*node, id, cell),
            IndexOp::Funded {
                temporary_id,
                id,
                cell,
            } => {
                container.snapshot_release(node, &temporary_id);
                container.snapshot_register(*node, id, cell);
            }
            IndexOp::Confirmed { scid, id } => container.scid_insert(scid, id),
            IndexOp::Closed {
                id,
                scid,
                funded,
                keep_index,
            } => {
                if funded && !keep_index {
                    container.index_release(&id, node);
                }
                if let Some(scid) = scid {
                    container.scid_release(&scid, &id);
                }
                container.snapshot_release(node, &id);
            }
            IndexOp::Forgotten { id } => container.index_release(&id, node),
        }
    }
}

/// How a [`crate::ChannelStore`] holds its peers, indexes and queues.
///
/// Implemented by [`crate::Sharded`] (the default) and, with the
/// `baselines` feature, by the designs it replaces. Sealed: the store's
/// correctness rests on the locking contract below.
///
/// **Locking contract.** `with_peer` runs its closure under that peer's
/// lock (and, for the baselines, under whatever outer lock the design has).
/// The store never calls another `Container` method from inside that
/// closure, so no design needs re-entrant locks and no thread ever holds two
/// peer locks. Every other method takes only short-lived locks of its own.
// Sealed, so its plumbing may name crate-private types: nobody outside the
// crate can implement or call these methods.
#[allow(private_interfaces, private_bounds)]
pub trait Container: Send + Sync + Sealed + 'static {
    /// Short name used in benchmarks and reports.
    const NAME: &'static str;

    /// An empty container.
    fn new() -> Self;

    /// Creates `node`'s state if it has none (disconnected, empty).
    fn insert_peer(&self, node: PublicKey);

    /// Runs `f` on `node`'s state under its lock; `None` if the peer is unknown.
    fn with_peer<R>(&self, node: &NodeId, f: impl FnOnce(&mut PeerState) -> R) -> Option<R>;

    /// Runs `f` on `node`'s state under its lock, then applies the index and
    /// snapshot changes it returns *before* the lock is released, so the
    /// changes of one peer's sections are applied in the order of the
    /// sections (issue 11, point 10). The index and snapshot maps are leaf
    /// locks: taken under a peer lock, never held while one is taken.
    fn with_peer_indexed<R>(
        &self,
        node: &NodeId,
        f: impl FnOnce(&mut PeerState) -> (R, Vec<IndexOp>),
    ) -> Option<R>;

    /// Drops `node`'s state if it is idle ([`PeerState::is_idle`], checked
    /// under its lock), so that a peer that leaves with nothing kept costs
    /// nothing after. A thread that races it and locks the dropped state
    /// sees it marked removed and treats the peer as unknown.
    fn forget_peer_if_idle(&self, node: &NodeId);

    /// Every known peer.
    fn peers(&self) -> Vec<NodeId>;

    /// The peer a permanent channel id belongs to (a hint: re-check it).
    fn index_get(&self, id: &ChannelId) -> Option<NodeId>;
    /// Claims `id` for `node`; returns the existing owner if taken.
    fn index_claim(&self, id: ChannelId, node: NodeId) -> Result<(), NodeId>;
    /// Drops `id` if it belongs to `node`.
    fn index_release(&self, id: &ChannelId, node: &NodeId);
    /// Every `(channel id, peer)` pair of the index.
    fn index_entries(&self) -> Vec<(ChannelId, NodeId)>;

    /// The channel a short channel id names (a hint: re-check it).
    fn scid_get(&self, scid: &ShortChannelId) -> Option<ChannelId>;
    /// Records `scid` for `id`.
    fn scid_insert(&self, scid: ShortChannelId, id: ChannelId);
    /// Drops `scid` if it names `id`.
    fn scid_release(&self, scid: &ShortChannelId, id: &ChannelId);
    /// Every `(scid, channel id)` pair.
    fn scid_entries(&self) -> Vec<(ShortChannelId, ChannelId)>;

    /// Queues cross-peer work.
    fn push_work(&self, item: Addressed);
    /// Takes up to `max` queued items.
    fn pop_work(&self, out: &mut Vec<Addressed>, max: usize);
    /// Items queued now.
    fn queued_work(&self) -> usize;

    /// Called (outside any lock) after `node`'s outbox went from empty to not.
    fn note_outbox(&self, node: &NodeId);
    /// How many peers are listed as having messages (for tests of bounds).
    fn ready_outboxes(&self) -> usize;
    /// Takes every peer's queued messages whose journal batch is durable
    /// (numbered up to `durable`); a peer with messages still waiting stays
    /// listed.
    fn drain_outboxes(&self, durable: u64) -> Vec<(PublicKey, Message)>;
    /// Takes the queued messages of `nodes` only, in order per peer, up to
    /// `durable` as [`Container::drain_outboxes`].
    ///
    /// The peers stay listed (`PeerState::listed` is left as it is), so the
    /// design is not told about them again: a design that keeps a list of
    /// peers with messages keeps at most one entry per peer, which a later
    /// `drain_outboxes` clears.
    fn drain_outboxes_of(&self, nodes: &[PublicKey], durable: u64) -> Vec<(PublicKey, Message)> {
        let mut out = Vec::new();
        for node in nodes {
            if let Some(msgs) = self.with_peer(&NodeId::from(node), |ps| {
                let listed = ps.listed;
                let (msgs, _) = ps.take_outbox(durable);
                ps.listed = listed;
                msgs
            }) {
                out.extend(msgs.into_iter().map(|m| (*node, m)));
            }
        }
        out
    }

    /// Runs one `process_pending_forwards` pass. A design may let one caller
    /// in at a time and turn the others away at once (`None`); by default
    /// every caller runs. Such a gate is only ever tried, never waited for,
    /// so it adds nothing to the locking contract.
    fn forwards_pass<R>(&self, pass: impl FnOnce() -> R) -> Option<R> {
        Some(pass())
    }

    /// Registers a channel's snapshot cell (`key` = peer and current id).
    fn snapshot_register(&self, node: NodeId, id: ChannelId, cell: super::SnapshotCell);
    /// Forgets a snapshot cell.
    fn snapshot_release(&self, node: &NodeId, id: &ChannelId);
    /// The snapshot of one funded channel.
    fn channel_details(&self, node: &NodeId, id: &ChannelId) -> Option<ChannelDetails>;
    /// Snapshots of every channel.
    fn list_channels(&self) -> Vec<ChannelDetails>;
}
