//! The guard against paying one invoice twice
//! (`StoreError::DuplicatePayment`).
//!
//! A recipient may claim every HTLC that pays a hash it knows the preimage
//! of (BOLT 4 lets it), so a second `send_payment` of a hash whose first
//! HTLC is still ours to lose (in flight, fulfilled but not yet settled, or
//! on chain in a closed channel's record) pays twice: a retry by a user who
//! lost the first call's result, say. The truth is in the channels: the
//! store refuses when one of our own HTLCs for the hash is left. To look
//! at a few peers only, `ChannelStore::paying_peers` names, per hash, the peers
//! our HTLCs for it were offered to (noted after each add, rebuilt on
//! restore, pruned on timer ticks). A part fulfilled and settled leaves no
//! HTLC saying so while another part of the hash is still pending:
//! `ChannelStore::claimed` keeps such hashes, in memory, until no HTLC of
//! ours for them is left. Once the payment has settled nothing of it is
//! left to see: a send after `PaymentSent` is not refused (LDK, too,
//! forgets a `PaymentId` a few ticks after it resolved).
//!
//! **Locks.** No `paying_peers` or `sending` guard is held while a peer lock
//! is taken (pruning looks at a copy of an entry's peers); sections do not
//! touch them. `claimed` is a leaf: sections insert into it under a peer
//! lock and release it at once.

use super::{ChannelStore, Container, PeerState};
use crate::channel::closed::HtlcRoute;
use crate::channel::htlc::HtlcKind;
use crate::channel::HtlcSource;
use crate::error::StoreError;
use crate::types::{NodeId, PaymentHash};

/// Takes one running send of a hash off `sending` when dropped.
struct Uncount<'a>(&'a dashmap::DashMap<PaymentHash, usize>, PaymentHash);

impl Drop for Uncount<'_> {
    fn drop(&mut self) {
        if let Some(mut running) = self.0.get_mut(&self.1) {
            *running -= 1;
        }
        self.0.remove_if(&self.1, |_, running| *running == 0);
    }
}

/// What of our own payment of a hash a peer holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Paying {
    /// An HTLC of ours for it is left (in a channel or a closed record).
    pub(crate) pending: bool,
    /// One of them was fulfilled (the recipient has claimed).
    pub(crate) fulfilled: bool,
}

impl Paying {
    fn or(self, other: Paying) -> Paying {
        Paying {
            pending: self.pending || other.pending,
            fulfilled: self.fulfilled || other.fulfilled,
        }
    }
}

/// Every HTLC of our own payments that `ps` holds, in its channels and its
/// closed records: its hash, and whether it was fulfilled (a closed
/// record keeps no fulfilled HTLC of ours).
fn ours(ps: &PeerState) -> impl Iterator<Item = (PaymentHash, bool)> + '_ {
    let live = (ps.channels.values().flat_map(|c| c.htlcs.iter())).filter_map(|h| match &h.kind {
        HtlcKind::Offered {
            source: HtlcSource::Local { .. },
            fulfill_reported,
        } => Some((h.payment_hash, *fulfill_reported)),
        _ => None,
    });
    let closed = (ps.closed.values().flat_map(|c| c.htlcs.iter()))
        .filter(|h| matches!(h.route, HtlcRoute::Offered(HtlcSource::Local { .. })))
        .map(|h| (h.info.payment_hash, false));
    live.chain(closed)
}

/// What `ps` holds of our own payment of `hash`.
fn held(ps: &PeerState, hash: &PaymentHash) -> Paying {
    (ours(ps).filter(|(h, _)| h == hash)).fold(Paying::default(), |p, (_, fulfilled)| Paying {
        pending: true,
        fulfilled: p.fulfilled || fulfilled,
    })
}

impl<C: Container> ChannelStore<C> {
    /// What is left of our own payments of `hash`, at the peers `paying_peers`
    /// names.
    fn paying(&self, hash: &PaymentHash) -> Paying {
        // The entry's guard dies here, before any peer lock.
        let peers: Vec<NodeId> = self
            .paying_peers
            .get(hash)
            .map_or_else(Vec::new, |e| e.0.clone());
        peers
            .iter()
            .filter_map(|peer| self.container.with_peer(peer, |ps| held(ps, hash)))
            .fold(Paying::default(), Paying::or)
    }

    /// Runs `add`, which offers our HTLC for `hash` to `peer`, unless it
    /// would pay the hash twice: a whole payment (`whole`) while an HTLC of
    /// ours for it is left or another send of it runs, any send once a part
    /// was fulfilled.
    pub(crate) fn send_once(
        &self,
        hash: PaymentHash,
        whole: bool,
        peer: NodeId,
        add: impl FnOnce() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // A part not yet noted in `paying_peers` is counted here.
        {
            let mut running = self.sending.entry(hash).or_insert(0);
            if whole && *running > 0 {
                return Err(StoreError::DuplicatePayment { payment_hash: hash });
            }
            *running += 1;
        }
        // Uncounted on every way out, a panic in `add` included.
        let _running = Uncount(&self.sending, hash);
        let paying = self.paying(&hash);
        // A part fulfilled and already settled leaves no HTLC saying so.
        let claimed = paying.pending && self.claimed.contains_key(&hash);
        if paying.fulfilled || claimed || (whole && paying.pending) {
            Err(StoreError::DuplicatePayment { payment_hash: hash })
        } else {
            let added = add();
            if added.is_ok() {
                self.note_paying(hash, peer);
            }
            added
        }
    }

    /// Our HTLC for `hash` was just offered to `peer`.
    fn note_paying(&self, hash: PaymentHash, peer: NodeId) {
        let mut entry = self.paying_peers.entry(hash).or_default();
        let (peers, notes) = &mut *entry;
        // Counted even when `peer` is listed: a prune that looked at it
        // before this HTLC was added must not drop it (`prune_paying`).
        *notes += 1;
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }

    /// Forgets, for each hash, the peers that hold none of our HTLCs for it
    /// any more (on timer ticks: the map holds only payments in flight or
    /// just settled).
    pub(crate) fn prune_paying(&self) {
        let hashes: Vec<PaymentHash> = self.paying_peers.iter().map(|e| *e.key()).collect();
        for hash in hashes {
            // No shard guard while a peer lock is taken (DESIGN.md rule 2):
            // the peers are looked at from a copy, and the entry changed only
            // if nothing was noted for the hash meanwhile.
            let Some((peers, notes)) = self.paying_peers.get(&hash).map(|e| e.clone()) else {
                continue;
            };
            let gone: Vec<NodeId> = (peers.into_iter())
                .filter(|peer| {
                    !(self.container.with_peer(peer, |ps| held(ps, &hash).pending)).unwrap_or(false)
                })
                .collect();
            if gone.is_empty() {
                continue;
            }
            if let Some(mut entry) = self.paying_peers.get_mut(&hash) {
                let (peers, now) = &mut *entry;
                if *now == notes {
                    peers.retain(|peer| !gone.contains(peer));
                }
            }
            self.paying_peers
                .remove_if(&hash, |_, (peers, _)| peers.is_empty());
        }
        // A hash no peer holds an HTLC of ours for any more is settled.
        self.claimed
            .retain(|hash, _| self.paying_peers.contains_key(hash));
    }

    /// After a restart: every peer holding one of our HTLCs, by hash.
    pub(crate) fn rebuild_paying(&self) {
        for peer in self.container.peers() {
            let hashes = self.container.with_peer(&peer, |ps| {
                ours(ps).map(|(hash, _)| hash).collect::<Vec<_>>()
            });
            for hash in hashes.into_iter().flatten() {
                self.note_paying(hash, peer);
            }
        }
    }
}
