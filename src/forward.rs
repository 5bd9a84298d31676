//! Cross-peer work: HTLC forwards and their resolutions, carried between
//! peers' shards on lock-free queues so no thread ever holds two peer locks.
//!
//! A thread that handles peer A's message and finds an HTLC to forward to
//! peer B does not lock B: it pushes an [`HtlcForward`] on the queue of B's
//! shard and returns. Whoever calls `process_pending_forwards` pops it, locks
//! B alone, and adds the HTLC there. Fulfills and fails travel back to A the
//! same way, as [`HtlcResolution`]s.
//!
//! **Concurrent drainers.** The queues are `crossbeam::queue::SegQueue`s,
//! one per shard. `SegQueue::pop` hands each item to exactly one caller, so
//! any number of threads may drain at once without a claim flag and without
//! ever applying an item twice. Each drainer starts at a different shard
//! (round robin), so concurrent drainers mostly work on different shards.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};

use bitcoin::secp256k1::PublicKey;
use crossbeam::queue::SegQueue;
use crossbeam::utils::CachePadded;

use crate::channel::PrevHop;
use crate::message::OnionPacket;
use crate::types::{ChannelId, PaymentHash, PaymentPreimage};

/// An HTLC to add to an outgoing channel, on behalf of an incoming one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HtlcForward {
    /// Where it came from, and where its resolution must go.
    pub(crate) prev: PrevHop,
    /// The outgoing channel (as the index said when it was queued; re-checked).
    pub(crate) next_channel_id: ChannelId,
    /// Amount to offer on the outgoing channel.
    pub(crate) amount_msat: u64,
    /// Expiry of the outgoing HTLC.
    pub(crate) cltv_expiry: u32,
    pub(crate) payment_hash: PaymentHash,
    /// The onion for the next hop.
    pub(crate) onion: OnionPacket,
}

/// How an incoming HTLC must be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// Claim it with this preimage.
    Fulfill(PaymentPreimage),
    /// Fail it with this reason.
    Fail(Vec<u8>),
}

/// The resolution of an HTLC, travelling back to the channel it came in on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HtlcResolution {
    /// The incoming channel.
    pub(crate) channel_id: ChannelId,
    /// The HTLC's id there.
    pub(crate) htlc_id: u64,
    pub(crate) resolution: Resolution,
}

/// One item of cross-peer work, addressed to a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    /// Add an HTLC to one of the peer's channels.
    Forward(HtlcForward),
    /// Resolve an HTLC the peer offered us.
    Resolve(HtlcResolution),
}

/// A work item with the peer whose lock applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Addressed {
    /// Its key in the persister (0: never persisted, applied at once).
    pub(crate) id: u64,
    pub(crate) node_id: PublicKey,
    pub(crate) work: Work,
}

/// Per-shard queues of [`Addressed`] work.
pub(crate) struct ShardedQueues {
    shards: Box<[CachePadded<SegQueue<Addressed>>]>,
    hasher: std::collections::hash_map::RandomState,
    /// Round-robin start for drainers. Relaxed: it only spreads drainers
    /// over shards; no other memory is published through it.
    next_start: CachePadded<AtomicUsize>,
}

impl ShardedQueues {
    /// `shards` queues (at least one).
    pub(crate) fn new(shards: usize) -> Self {
        ShardedQueues {
            shards: (0..shards.max(1))
                .map(|_| CachePadded::new(SegQueue::new()))
                .collect(),
            hasher: Default::default(),
            next_start: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    fn shard_of(&self, node: &PublicKey) -> usize {
        (self.hasher.hash_one(node) as usize) % self.shards.len()
    }

    /// Queues `item` on its peer's shard.
    pub(crate) fn push(&self, item: Addressed) {
        self.shards[self.shard_of(&item.node_id)].push(item);
    }

    /// Pops up to `max` items, visiting shards from a rotating start.
    pub(crate) fn pop_batch(&self, out: &mut Vec<Addressed>, max: usize) {
        let n = self.shards.len();
        let start = self.next_start.fetch_add(1, Ordering::Relaxed);
        for k in 0..n {
            let shard = &self.shards[(start + k) % n];
            while out.len() < max {
                match shard.pop() {
                    Some(item) => out.push(item),
                    None => break,
                }
            }
        }
    }

    /// Items queued right now (a snapshot; other threads may change it).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|q| q.len()).sum()
    }
}
