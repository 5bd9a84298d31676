//! Hidden helpers for the benchmarks (feature `baselines`): the smallest
//! operation that exercises what differs between the designs, the
//! container's locking and queueing, with no channel logic and no crypto.
//! Not part of the API: it may change with any release.

use bitcoin::secp256k1::PublicKey;

use crate::forward::{Addressed, HtlcResolution, Resolution, Work};
use crate::message::{Message, UpdateFee};
use crate::store::{ChannelStore, Container};
use crate::types::{ChannelId, NodeId};

/// Most items one [`store_op`] takes off the queue.
pub const POP_MAX: usize = 8;

/// A peer's id prepared once (the store converts a `PublicKey` once per
/// call at its API; the benchmark measures the container alone).
#[derive(Clone, Copy, Debug)]
pub struct BenchNode(NodeId);

impl BenchNode {
    /// Prepares `node`.
    pub fn new(node: &PublicKey) -> Self {
        BenchNode(NodeId::from(node))
    }
}

/// Per-thread scratch space for [`store_op`], so the operation itself does
/// not allocate a batch vector.
#[derive(Default)]
pub struct OpScratch {
    batch: Vec<Addressed>,
    seq: u64,
}

/// One container operation, as a message handler and a forward do it:
///
/// 1. `with_peer(peer)`: under that peer's lock (and, for the baselines,
///    their outer lock), a small change to its state: a message is queued
///    in its outbox and taken back out. No other container call is made
///    inside (the locking contract).
/// 2. `push_work`: a dummy resolution addressed to `other` is queued, as a
///    forward to another peer is.
/// 3. `pop_work`: up to [`POP_MAX`] queued items are taken (by this thread,
///    whichever peers they are for) and dropped, not applied: applying them
///    is channel logic, which is not what this measures.
///
/// Returns how many items it popped. `false`-y results are fine: under
/// concurrency another thread may have taken them.
///
/// **Locking behaviour:** `peer`'s lock once, then the queue's locks (if
/// any) twice; never two at once.
pub fn store_op<C: Container>(
    store: &ChannelStore<C>,
    peer: &BenchNode,
    other: &BenchNode,
    scratch: &mut OpScratch,
) -> usize {
    let changed = store.container.with_peer(&peer.0, |ps| {
        ps.outbox.push((
            0,
            Message::UpdateFee(UpdateFee {
                channel_id: ChannelId([0; 32]),
                feerate_per_kw: 253,
            }),
        ));
        ps.outbox.pop().is_some()
    });
    debug_assert_eq!(changed, Some(true), "store_op on an unknown peer");
    scratch.seq = scratch.seq.wrapping_add(1);
    store.container.push_work(Addressed {
        id: 0, // never persisted
        node_id: other.0,
        work: Work::Resolve(HtlcResolution {
            channel_id: ChannelId([0; 32]),
            htlc_id: scratch.seq,
            resolution: Resolution::Fail(crate::onion::Failure::Onion(Vec::new())),
        }),
    });
    store.container.pop_work(&mut scratch.batch, POP_MAX);
    let popped = scratch.batch.len();
    scratch.batch.clear();
    popped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::{GlobalLock, RwLockPeers};
    use crate::config::StoreConfig;
    use crate::secp::SECP;
    use crate::Sharded;
    use bitcoin::secp256k1::SecretKey;

    fn check<C: Container>() {
        let store = ChannelStore::<C>::with_container(
            StoreConfig::default(),
            SecretKey::from_slice(&[1; 32]).unwrap(),
            1,
        )
        .unwrap();
        let key =
            |n: u8| PublicKey::from_secret_key(&SECP, &SecretKey::from_slice(&[n; 32]).unwrap());
        let (a, b) = (key(2), key(3));
        store.peer_connected(a);
        store.peer_connected(b);
        // The two `init`s the connections queued.
        assert_eq!(store.get_and_clear_pending_msg_events().len(), 2);
        let (a, b) = (BenchNode::new(&a), BenchNode::new(&b));
        let mut scratch = OpScratch::default();
        let mut popped = 0;
        for _ in 0..100 {
            popped += store_op(&store, &a, &b, &mut scratch);
            popped += store_op(&store, &b, &a, &mut scratch);
        }
        // Single-threaded, each op pops the item it pushed: nothing piles up,
        // and the peers' outboxes are left as they were.
        assert_eq!(popped, 200);
        assert_eq!(store.pending_forwards(), 0);
        assert!(store.get_and_clear_pending_msg_events().is_empty());
    }

    #[test]
    fn store_op_leaves_every_design_as_it_was() {
        check::<Sharded>();
        check::<GlobalLock>();
        check::<RwLockPeers>();
    }
}
