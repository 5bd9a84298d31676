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

use crossbeam::queue::SegQueue;
use crossbeam::utils::CachePadded;

use crate::channel::PrevHop;
use crate::message::OnionPacket;
use crate::types::{ChannelId, NodeId, PaymentHash, PaymentPreimage, ShortChannelId};

/// Where a forward goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NextHop {
    /// The channel the onion names. It is looked up (index, then the peer's
    /// state) when the forward is applied, so deciding a forward needs no
    /// index and happens under the incoming peer's lock, in the same batch
    /// as the HTLC it forwards.
    Scid(ShortChannelId),
    /// A channel already looked up (forwards written by version 0.1).
    Channel(ChannelId),
}

/// An HTLC to add to an outgoing channel, on behalf of an incoming one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HtlcForward {
    /// Where it came from, and where its resolution must go.
    pub(crate) prev: PrevHop,
    /// The outgoing channel.
    pub(crate) next: NextHop,
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
    /// Fail it: the failure onion is built (or wrapped) with its shared
    /// secret when the incoming channel sends it.
    Fail(crate::onion::Failure),
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
    /// The peer whose lock applies it. A forward not yet routed (its
    /// [`NextHop`] still a short channel id) names the peer it came from,
    /// which only spreads the queues' load: the drainer routes it first.
    pub(crate) node_id: NodeId,
    pub(crate) work: Work,
}

/// Most queue shards.
const MAX_SHARDS: usize = 64;

/// Per-shard queues of [`Addressed`] work.
///
/// A drainer visits the shards from a start that rotates per thread; an
/// empty shard costs it two plain loads (`is_empty`) of lines that only
/// change when items arrive. (A shared bitmask of non-empty shards was tried: it made the
/// single-threaded drain cheaper but every push a read-modify-write of one
/// cache line, and throughput stopped growing past 2 threads on 16 cores.)
pub(crate) struct ShardedQueues {
    shards: Box<[CachePadded<SegQueue<Addressed>>]>,
    hasher: ahash::RandomState,
}

thread_local! {
    /// Where this thread's next drain starts, so concurrent drainers start
    /// on different shards without sharing a counter.
    static NEXT_START: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl ShardedQueues {
    /// `shards` queues (at least one, at most 64).
    pub(crate) fn new(shards: usize) -> Self {
        ShardedQueues {
            shards: (0..shards.clamp(1, MAX_SHARDS))
                .map(|_| CachePadded::new(SegQueue::new()))
                .collect(),
            hasher: ahash::RandomState::new(),
        }
    }

    fn shard_of(&self, node: &NodeId) -> usize {
        (self.hasher.hash_one(node) as usize) % self.shards.len()
    }

    /// Queues `item` on its peer's shard.
    pub(crate) fn push(&self, item: Addressed) {
        self.shards[self.shard_of(&item.node_id)].push(item);
    }

    /// Pops up to `max` items, visiting shards from a start that rotates
    /// per thread.
    pub(crate) fn pop_batch(&self, out: &mut Vec<Addressed>, max: usize) {
        let n = self.shards.len();
        let start = NEXT_START.with(|c| {
            let v = c.get();
            c.set(v.wrapping_add(1));
            v
        });
        for k in 0..n {
            let queue = &self.shards[(start + k) % n];
            // `SegQueue::pop` on an empty queue issues a SeqCst fence before
            // it reads the tail; `is_empty` is two plain loads. An item
            // pushed meanwhile is found by the next drain.
            if queue.is_empty() {
                continue;
            }
            while out.len() < max {
                match queue.pop() {
                    Some(item) => out.push(item),
                    None => break,
                }
            }
            if out.len() >= max {
                return;
            }
        }
    }

    /// Items queued right now (a snapshot; other threads may change it).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|q| q.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secp::SECP;
    use bitcoin::secp256k1::SecretKey;

    fn item(n: u8) -> Addressed {
        let node = NodeId::from(&bitcoin::secp256k1::PublicKey::from_secret_key(
            &SECP,
            &SecretKey::from_slice(&[n; 32]).unwrap(),
        ));
        let work = Work::Resolve(HtlcResolution {
            channel_id: ChannelId([n; 32]),
            htlc_id: 0,
            resolution: Resolution::Fail(crate::onion::Failure::Onion(vec![])),
        });
        Addressed {
            id: u64::from(n),
            node_id: node,
            work,
        }
    }

    #[test]
    fn every_item_comes_out_once() {
        for shards in [1, 3, 64, 100] {
            let q = ShardedQueues::new(shards);
            for n in 1..=50 {
                q.push(item(n));
            }
            assert_eq!(q.len(), 50);
            let mut out = Vec::new();
            while out.len() < 50 {
                let before = out.len();
                q.pop_batch(&mut out, before + 7);
                assert!(out.len() > before, "items left but none popped");
            }
            q.pop_batch(&mut out, 100);
            let mut ids: Vec<u64> = out.iter().map(|a| a.id).collect();
            ids.sort();
            assert_eq!(ids, (1..=50).collect::<Vec<_>>());
            assert_eq!(q.len(), 0);
        }
    }

    #[test]
    fn concurrent_pushers_and_drainers_lose_nothing() {
        let q = std::sync::Arc::new(ShardedQueues::new(8));
        let popped = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        std::thread::scope(|s| {
            for t in 0..2u8 {
                let q = q.clone();
                s.spawn(move || {
                    for n in 0..100u8 {
                        let mut it = item(1 + (n % 200));
                        it.id = u64::from(t) * 1000 + u64::from(n);
                        q.push(it);
                    }
                });
            }
            for _ in 0..2 {
                let (q, popped) = (q.clone(), popped.clone());
                s.spawn(move || {
                    let mut out = Vec::new();
                    for _ in 0..10_000 {
                        q.pop_batch(&mut out, 16);
                    }
                    popped.lock().unwrap().extend(out.into_iter().map(|a| a.id));
                });
            }
        });
        let mut rest = Vec::new();
        q.pop_batch(&mut rest, usize::MAX);
        let mut all = popped.lock().unwrap().clone();
        all.extend(rest.into_iter().map(|a| a.id));
        all.sort();
        let expected: Vec<u64> = (0..2u64)
            .flat_map(|t| (0..100).map(move |n| t * 1000 + n))
            .collect();
        assert_eq!(all, expected);
    }
}
