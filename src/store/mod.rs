//! [`ChannelStore`]: every channel of a node, grouped by peer, driven from
//! any number of threads at once.
//!
//! # Locking
//!
//! There are two kinds of locks, taken in one order:
//!
//! 1. **Peer locks.** Each peer's [`PeerState`] has its own lock, taken by
//!    the container's `with_peer`. Everything that changes a channel, its
//!    signing and signature checks included, happens inside one such
//!    critical section, on that peer's channels only. A thread holds at
//!    most one peer lock at a time.
//! 2. **Leaf locks.** `DashMap` shard guards (primary map, indexes,
//!    snapshots, claimable payments, queued-forward counts, our last
//!    `channel_update` per channel) and the queues' internal state. They may be taken while a peer lock is held (a
//!    section updates the indexes and snapshots it changed, and the
//!    claimable payments, before its lock is released) and are released
//!    before anything else is taken; no leaf lock is ever held while a peer
//!    lock is taken. One nesting among leaves: the journal's lock takes
//!    claimable payments' shards inside it (a section's append announces
//!    the payments its parts complete, `claimables.rs`); nothing holding
//!    such a shard waits for the journal or another shard.
//!
//! The closure run under a peer lock never calls back into the container:
//! the index and snapshot changes it makes are returned to the container,
//! which applies them before it releases the lock (so a peer's changes
//! apply in the order of its sections). Work for another peer (an HTLC to
//! forward, a fulfill or fail to pass back) goes on that peer's shard
//! queue after the lock is released, and is applied later, under that
//! peer's lock alone, by whoever calls
//! [`ChannelStore::process_pending_forwards`].
//!
//! **Why this cannot deadlock.** A deadlock needs a cycle of threads each
//! holding one lock while waiting for another. A peer lock is only ever
//! waited for with no lock held; a leaf lock may be waited for while a
//! peer lock is held, but a leaf lock's holder never waits for anything
//! but a claimables shard (the journal's), whose holder waits for nothing.
//! So the wait-for graph only has edges from peer locks to leaf locks and
//! from the journal to those shards, and no cycle. The baseline designs follow the same contract (their outer
//! lock plays the role of the peer lock).
//!
//! # Persistence and forwarding order
//!
//! Every durable consequence of a section (channel records, decided
//! forwards and fail-backs, consumed work items, events, closed-channel
//! records) is one batch, appended to the journal before its peer lock is
//! released; batches become durable in the order they were appended, in
//! group commits that nobody holding a lock waits for, and the section's
//! messages and events leave only once its batch is durable (see
//! `section.rs` and `journal.rs`; a batch that releases nothing and is
//! harmless to lose, e.g. a received `revoke_and_ack` nothing answers, is
//! *lazy*: committed with the next group something waits for). An HTLC is decided (forwarded, offered to the user, or
//! failed) in the section that makes it irrevocably committed on the
//! incoming channel (the peer's `revoke_and_ack`); its fulfill is passed
//! upstream as soon as the preimage arrives; a failure only once
//! irrevocably removed downstream. Restart is a pure function of what is
//! on disk (`restore.rs`).

mod blocks;
mod claimables;
mod connection;
mod container;
mod durable;
mod gossip;
mod handle;
mod incoming;
mod journal;
mod onchain;
mod paying;
mod payments;
mod peer;
mod read;
mod restore;
pub(crate) mod section;
mod sharded;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::OutPoint;
use crossbeam::queue::SegQueue;
use dashmap::DashMap;

pub use container::Container;
#[cfg(feature = "baselines")]
pub(crate) use container::Sealed;
pub use peer::PeerState;
#[doc(hidden)]
pub use read::ResourceCounts;
pub use sharded::Sharded;

use crate::channel::signer::ChannelSigner;
use crate::channel::tables::TableBudget;
use crate::channel::Channel;
use crate::config::StoreConfig;
use crate::error::StoreError;
use crate::event::{ChannelDetails, Event};
use crate::inbound_payment::ExpandedKey;
use crate::message::Message;
use crate::persist::{Key, Persister};
use crate::secp::SECP;
use crate::types::{ChannelId, NodeId, PaymentHash, ShortChannelId};
pub(crate) use claimables::{Claimable, ClaimableSet};
#[cfg(feature = "baselines")]
pub(crate) use container::apply_index_ops;
pub(crate) use container::IndexOp;
use section::{Context, Outcome, Section, Sequences};

/// A channel's snapshot cell: written under the peer lock after each
/// change, read by `list_channels` without any peer lock.
pub(crate) type SnapshotCell = Arc<ArcSwap<ChannelDetails>>;

/// The channel store of a Lightning node.
///
/// `ChannelStore` is `Send + Sync` and every method takes `&self`: share it
/// in an `Arc` and call it from as many threads as you like. Messages from
/// different peers are handled in parallel; messages from one peer are
/// serialized by that peer's lock.
///
/// The type parameter picks the concurrency design; the default,
/// [`Sharded`], is the one to use. The others exist for benchmarks.
///
/// # Examples
///
/// ```
/// use bitcoin::secp256k1::SecretKey;
/// use chanstore::{ChannelStore, StoreConfig};
///
/// let store = ChannelStore::new(StoreConfig::default(), SecretKey::from_slice(&[1; 32]).unwrap(), 800_000).unwrap();
/// assert!(store.list_channels().is_empty());
/// ```
pub struct ChannelStore<C: Container = Sharded> {
    pub(crate) container: C,
    pub(crate) config: StoreConfig,
    pub(crate) node_secret: SecretKey,
    node_id: PublicKey,
    /// Best block height. Relaxed: it is a clock read for expiry checks, not
    /// a flag that publishes other memory.
    best_height: AtomicU32,
    /// Events for the user, from every thread, with their persister keys:
    /// only those whose batch is durable.
    events: SegQueue<(u64, Event)>,
    /// Sections' batches waiting for the persister, in order.
    journal: journal::Journal,
    /// HTLCs paying us, by payment hash.
    pub(crate) claimables: DashMap<PaymentHash, ClaimableSet>,
    /// Payment hashes being sent now, with how many sends of each (whole
    /// or part) run, from the duplicate check until the HTLC is noted in
    /// `paying_peers`: a whole send while another send of the hash runs is
    /// refused (`paying.rs`).
    pub(crate) sending: DashMap<PaymentHash, usize>,
    /// Per payment hash, the peers our own HTLCs for it were offered to,
    /// and how many times an HTLC was noted (`paying.rs`).
    pub(crate) paying_peers: DashMap<PaymentHash, (Vec<NodeId>, u64)>,
    /// Payment hashes of ours a part of which was fulfilled (`PaymentSent`),
    /// kept while `paying_peers` names the hash: a part fulfilled and
    /// settled leaves no HTLC saying so, while another part may still be
    /// pending (in flight, or on chain in a closed record), and a new part
    /// would be claimed with the preimage already revealed (`paying.rs`).
    /// A leaf lock: sections insert under a peer lock and release at once.
    /// Not durable.
    pub(crate) claimed: DashMap<PaymentHash, ()>,
    /// The `channel_update` we last sent for each of our channels, by short
    /// channel id: the one BOLT 4's UPDATE failures carry, read by sections
    /// of any peer (a leaf lock, taken under a peer lock and released at
    /// once). Not durable: refilled when channels are reestablished after a
    /// restart; a failure decided before that carries none (`len` 0).
    pub(crate) our_updates: DashMap<ShortChannelId, crate::message::ChannelUpdate>,
    /// Derives and checks our invoices' payment secrets.
    pub(crate) inbound_key: ExpandedKey,
    /// Per incoming peer: its HTLCs waiting in the forward queues
    /// (`StoreConfig::max_pending_forwards_per_peer`). A leaf lock: counted
    /// up in the section that queues a forward, down when it is applied.
    pub(crate) queued_forwards: DashMap<NodeId, usize>,
    /// Where durable state goes, if anywhere.
    pub(crate) persister: Option<Arc<dyn Persister>>,
    /// Keys for work items and events.
    pub(crate) seq: Sequences,
    /// Channels peers opened to us that are not funded yet, across all
    /// peers (`StoreConfig::max_inbound_unfunded_channels`). Relaxed: a
    /// counter checked and changed with one atomic operation, publishing
    /// nothing else.
    pub(crate) inbound_unfunded: AtomicUsize,
    /// Held by `funding_confirmed` from its scid check to its index insert.
    confirming: std::sync::Mutex<()>,
    /// Channels that may hold revocation basepoint tables
    /// (`StoreConfig::max_revocation_tables`, `channel/tables.rs`).
    pub(crate) revocation_tables: Arc<TableBudget>,
    /// Set once a write to the persister failed or a section panicked:
    /// memory may be ahead of disk, or half changed, so the store refuses
    /// all further work. Relaxed: it only needs to become visible
    /// eventually; the failing call itself returns the error (or panics).
    failed: AtomicBool,
}

/// Marks the store failed if a section panics: the panic may have left the
/// peer's state half changed, or a part of a payment to us counted but
/// never appended (a claim would wait for it forever). Like a failed write,
/// it makes the store refuse all further work until it is reopened.
struct FailOnPanic<'a>(&'a AtomicBool);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

impl ChannelStore<Sharded> {
    /// A store with the default (sharded) design.
    pub fn new(
        config: StoreConfig,
        node_secret: SecretKey,
        best_height: u32,
    ) -> Result<Self, StoreError> {
        Self::with_container(config, node_secret, best_height)
    }
}

impl<C: Container> ChannelStore<C> {
    /// A store with the design `C`.
    pub fn with_container(
        config: StoreConfig,
        node_secret: SecretKey,
        best_height: u32,
    ) -> Result<Self, StoreError> {
        config.validate()?;
        let revocation_tables = TableBudget::new(config.max_revocation_tables);
        Ok(ChannelStore {
            container: C::new(),
            node_id: PublicKey::from_secret_key(&SECP, &node_secret),
            config,
            node_secret,
            best_height: AtomicU32::new(best_height),
            events: SegQueue::new(),
            journal: journal::Journal::default(),
            claimables: DashMap::new(),
            sending: DashMap::new(),
            paying_peers: DashMap::new(),
            claimed: DashMap::new(),
            our_updates: DashMap::new(),
            inbound_key: ExpandedKey::new(&node_secret),
            queued_forwards: DashMap::new(),
            persister: None,
            seq: Sequences::default(),
            inbound_unfunded: AtomicUsize::new(0),
            confirming: std::sync::Mutex::new(()),
            revocation_tables,
            failed: AtomicBool::new(false),
        })
    }

    /// Whether a write to the persister failed, or a call panicked while
    /// it held a peer's lock. Memory may then be ahead of disk (or half
    /// changed), so the store refuses all further work: reopen it (a
    /// restart from what is on disk loses nothing that was acknowledged).
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn check_not_failed(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(StoreError::Persist(
                "an earlier write failed or a call panicked; reopen the store".into(),
            ));
        }
        Ok(())
    }

    /// Our node id.
    pub fn node_id(&self) -> PublicKey {
        self.node_id
    }

    /// The store's configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The best block height the store knows.
    pub fn best_height(&self) -> u32 {
        self.best_height.load(Ordering::Relaxed)
    }

    /// The design's name ("sharded", "global_lock", "rwlock_peers").
    pub fn design(&self) -> &'static str {
        C::NAME
    }

    /// What a section may use besides its peer's state.
    pub(crate) fn context(&self) -> Context<'_> {
        Context {
            config: &self.config,
            height: self.best_height(),
            seq: &self.seq,
            claimables: &self.claimables,
            claimed: &self.claimed,
            node_id: self.node_id,
            node_secret: &self.node_secret,
            our_updates: &self.our_updates,
            inbound_key: &self.inbound_key,
            queued_forwards: &self.queued_forwards,
            inbound_unfunded: &self.inbound_unfunded,
            revocation_tables: &self.revocation_tables,
            durable: self.persister.is_some(),
        }
    }

    /// Runs `f` in a critical section of `node`'s lock: its writes and
    /// events are appended to the journal and its index changes applied
    /// before the lock is released; its work is queued after. Its messages
    /// and events leave once its batch is durable. `Err(PeerNotConnected)`
    /// if the peer is unknown.
    pub(crate) fn with_section<T>(
        &self,
        node: &NodeId,
        f: impl FnOnce(&mut Section<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.check_not_failed()?;
        let _fail_on_panic = FailOnPanic(&self.failed);
        let (result, outcome) = self
            .container
            .with_peer_indexed(node, |ps| {
                let mut section = Section::new(ps, self.context());
                let result = f(&mut section);
                let start = section.outbox_start();
                let mut outcome = section.finish();
                let lazy = outcome.may_wait(ps.outbox.len() > start);
                // Appended before the lock is released, so a peer's batches
                // are numbered in the order of its sections; its messages
                // and events leave only once that number is durable
                // (`journal.rs`). Nobody waits for the disk here.
                let writes = std::mem::take(&mut outcome.writes);
                let events = std::mem::take(&mut outcome.events);
                #[cfg(feature = "test-hooks")]
                crate::test_hooks::before_append();
                let seq = self.append_section(writes, events, lazy, &outcome.parts_added);
                ps.seal(start, seq);
                let index = std::mem::take(&mut outcome.index);
                ((result, Some(outcome)), index)
            })
            .ok_or_else(|| StoreError::PeerNotConnected {
                node_id: node.public_key(),
            })?;
        if let Some(outcome) = outcome {
            self.after_section(node, outcome);
        }
        result
    }

    /// [`ChannelStore::with_section`] for a call the user makes: on `Ok`
    /// its batch is durable before the call returns (`flush`), so what the
    /// user was told happened cannot be undone by a crash. Peer messages
    /// and forwards do not wait: their effects simply leave later.
    pub(crate) fn with_user_section<T>(
        &self,
        node: &NodeId,
        f: impl FnOnce(&mut Section<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let value = self.with_section(node, f)?;
        self.flush()?;
        Ok(value)
    }

    /// What a section leaves for after its lock: telling the container the
    /// peer has messages, queueing work for other peers.
    fn after_section(&self, node: &NodeId, outcome: Outcome) {
        if outcome.newly_listed {
            self.container.note_outbox(node);
        }
        for item in outcome.work {
            self.container.push_work(item);
        }
        if outcome.maybe_idle {
            self.container.forget_peer_if_idle(node);
        }
    }

    /// A peer connected (or reconnected): the store queues its `init`
    /// (BOLT 1: the first message on every connection) and takes nothing
    /// else from the peer before the peer's `init`. Once that arrives (and
    /// is compatible), every channel with the peer that was paused by a
    /// disconnection sends `channel_reestablish` and waits for the peer's.
    ///
    /// **Locking behaviour:** takes that peer's lock once (twice if it races
    /// the removal of the peer's idle state).
    pub fn peer_connected(&self, peer: PublicKey) {
        let node = NodeId::from(&peer);
        let chain = bitcoin::constants::ChainHash::using_genesis_block(self.config.network);
        loop {
            self.container.insert_peer(peer);
            let result = self.with_section(&node, |s| {
                s.ps.connected = true;
                s.ps.their_features = None;
                s.ps.warned = false;
                s.send(Message::Init(crate::message::Init::ours(chain)));
                Ok(())
            });
            // The state was dropped between the two calls: make it again.
            if !matches!(result, Err(StoreError::PeerNotConnected { .. })) {
                return;
            }
        }
    }

    /// A peer disconnected. As BOLT 2 requires, the updates it sent that no
    /// `commitment_signed` covered yet are forgotten, and so are its
    /// channels that have no funding outpoint yet or whose first commitment
    /// it never signed; its other channels pause, and every other peer is
    /// untouched. A peer left with nothing costs nothing after.
    ///
    /// **Locking behaviour:** takes that peer's lock once.
    pub fn peer_disconnected(&self, peer: &PublicKey) {
        let node = NodeId::from(peer);
        let _ = self.with_section(&node, |s| {
            s.ps.connected = false;
            s.ps.their_features = None;
            let ids: Vec<ChannelId> = s.ps.channels.keys().copied().collect();
            for id in ids {
                s.on_channel(&id, true, |c, e| {
                    if c.phase == crate::channel::Phase::FundingCreatedSent {
                        // BOLT 2: the funder forgets a channel whose
                        // funding_signed it never got.
                        e.events
                            .extend(c.closed_with(crate::event::ClosureReason::FundingNotSigned));
                    } else {
                        c.pause();
                    }
                    Ok(())
                })?;
            }
            let unfunded: Vec<ChannelId> = s.ps.unfunded.keys().copied().collect();
            for id in unfunded {
                s.on_channel(&id, false, |c, e| {
                    let event =
                        c.closed_with(crate::event::ClosureReason::DisconnectedWhileUnfunded);
                    // The user opened it and must know; a peer's opens cost
                    // no durable event (issue 11, point 8).
                    if c.is_outbound {
                        e.events.extend(event);
                    }
                    Ok(())
                })?;
            }
            s.ps.outbox.clear();
            s.ps.pong_queued = false;
            Ok(())
        });
        self.container.forget_peer_if_idle(&node);
    }

    /// Opens a channel of `funding_sat` to a connected peer, pushing
    /// `push_msat` to it. Returns the temporary channel id; `open_channel`
    /// is queued for the peer. The peer's `init` must have arrived
    /// ([`StoreError::PeerInitPending`] before): BOLT 1 lets nothing but
    /// our `init` go out until then.
    ///
    /// **Locking behaviour:** takes that peer's lock once (key derivation
    /// happens before).
    pub fn create_channel(
        &self,
        peer: PublicKey,
        funding_sat: u64,
        push_msat: u64,
    ) -> Result<ChannelId, StoreError> {
        let signer = ChannelSigner::derive(&self.node_secret, ChannelSigner::random_keys_id());
        let (channel, open) =
            Channel::new_outbound(&self.config, peer, funding_sat, push_msat, signer)?;
        self.with_user_section(&NodeId::from(&peer), |s| {
            if !s.ps.connected {
                return Err(StoreError::PeerNotConnected { node_id: peer });
            }
            if s.ps.their_features.is_none() {
                return Err(StoreError::PeerInitPending { node_id: peer });
            }
            self.check_channel_limit(s)?;
            let id = channel.channel_id;
            s.add_unfunded(channel, Message::OpenChannel(open));
            Ok(id)
        })
    }

    pub(crate) fn check_channel_limit(&self, s: &Section<'_>) -> Result<(), StoreError> {
        if s.ps.channel_count() >= self.config.max_channels_per_peer {
            return Err(StoreError::PeerLimit {
                node_id: s.ps.node,
                resource: "channels",
                limit: self.config.max_channels_per_peer as u64,
            });
        }
        Ok(())
    }

    /// The funding transaction of a channel we opened is built: sign the
    /// peer's first commitment. Returns the channel's permanent id.
    ///
    /// **Locking behaviour:** claims the id in the index, then takes the
    /// peer's lock once.
    pub fn funding_transaction_generated(
        &self,
        temporary_channel_id: &ChannelId,
        peer: &PublicKey,
        outpoint: OutPoint,
    ) -> Result<ChannelId, StoreError> {
        let id = ChannelId::from_funding_outpoint(&outpoint);
        let node = NodeId::from(peer);
        self.claim_id(id, node, peer)?;
        let result = self.with_user_section(&node, |s| {
            let temp = *temporary_channel_id;
            let created = s
                .channel(&temp, false)?
                .funding_transaction_generated(outpoint)?;
            s.promote_funded(temp, id, Message::FundingCreated(created));
            Ok(id)
        });
        if result.is_err() {
            self.container.index_release(&id, &node);
        }
        result
    }

    /// Claims a permanent id in the index for `peer`, refusing one that a
    /// channel (of any peer) already has.
    pub(crate) fn claim_id(
        &self,
        id: ChannelId,
        node: NodeId,
        peer: &PublicKey,
    ) -> Result<(), StoreError> {
        self.container.index_claim(id, node).map_err(|owner| {
            if owner == node {
                StoreError::DuplicateChannelId { channel_id: id }
            } else {
                StoreError::WrongPeer {
                    channel_id: id,
                    sender: *peer,
                }
            }
        })
    }

    /// The funding transaction confirmed in block `scid.block_height()`
    /// (short channel id `scid`): `channel_ready` is queued for the peer as
    /// soon as the funding is [`confirmations_required`](crate::ChannelDetails::confirmations_required)
    /// deep at the best height, now or at a later
    /// [`ChannelStore::best_block_updated`] (BOLT 2: the funder waits for
    /// the fundee's `minimum_depth`).
    ///
    /// A `scid` whose output index is not the funding output's, or that
    /// another channel has, is refused with
    /// [`StoreError::ShortChannelIdMismatch`]: forwards are routed by it.
    ///
    /// A channel the peer opened that closed before its funding was
    /// reported confirmed keeps a record that the funding timeout would
    /// forget (`funding_timeout_blocks` after `funding_created`); reported
    /// confirmed here, the record stays until you are done with it, as any
    /// other. Report the confirmations of a block before
    /// `best_block_updated` for it (as LDK asks): a height past the funding
    /// timeout first forgets a channel whose funding confirmed in time.
    ///
    /// **Locking behaviour:** a store-wide confirmation lock (taken before
    /// the peer lock, never under one: two confirmations with one `scid`
    /// cannot both pass), then the channel's peer lock once.
    pub fn funding_confirmed(
        &self,
        channel_id: &ChannelId,
        scid: ShortChannelId,
    ) -> Result<(), StoreError> {
        let peer = self.owner_hint(channel_id)?;
        let mismatch = |reason| StoreError::ShortChannelIdMismatch {
            channel_id: *channel_id,
            scid,
            reason,
        };
        // Checked before the section, as the index is read everywhere; the
        // check and the section's index insert are one step for every
        // confirmation (no other path inserts a scid), so two racing with
        // one scid cannot both pass. A leaf of no other lock: taken before
        // the peer lock, never under one.
        let confirming = self.confirming.lock().unwrap_or_else(|p| p.into_inner());
        if self
            .container
            .scid_get(&scid)
            .is_some_and(|other| other != *channel_id)
        {
            return Err(mismatch("another channel has it"));
        }
        self.with_section(&peer, |s| {
            // A channel the peer opened that closed before its funding was
            // reported confirmed: its record holds what is ours on chain,
            // and must no longer go with the funding timeout.
            if !s.ps.channels.contains_key(channel_id) {
                let vout = (s.ps.closed.get(channel_id))
                    .filter(|r| r.unconfirmed_since.is_some())
                    .map(|r| r.funding_outpoint.vout);
                if let Some(vout) = vout {
                    if vout != u32::from(scid.output_index()) {
                        return Err(mismatch("its output index is not the funding output's"));
                    }
                    let record = s.closed_mut(channel_id).expect("found above");
                    record.unconfirmed_since = None;
                    record.short_channel_id = Some(scid);
                    self.inbound_unfunded.fetch_sub(1, Ordering::Relaxed);
                    return Ok(());
                }
            }
            let freed = s.on_channel(channel_id, true, |c, e| {
                if c.funding_outpoint.map(|o| o.vout) != Some(u32::from(scid.output_index())) {
                    return Err(mismatch("its output index is not the funding output's"));
                }
                let held = c.holds_unconfirmed_slot();
                *e = c.funding_confirmed(scid, self.best_height())?;
                Ok(held)
            })?;
            if freed {
                // Funded for real: it leaves the unfunded caps.
                self.inbound_unfunded.fetch_sub(1, Ordering::Relaxed);
            }
            s.out.index.push(IndexOp::Confirmed {
                scid,
                id: *channel_id,
            });
            Ok(())
        })?;
        drop(confirming);
        self.flush()
    }

    /// Starts a cooperative close: `shutdown` is queued for the peer once
    /// none of our updates waits to be signed, and `closing_signed` follows
    /// once every HTLC has settled.
    ///
    /// **Locking behaviour:** takes the channel's peer lock once.
    pub fn close_channel(&self, channel_id: &ChannelId) -> Result<(), StoreError> {
        let peer = self.owner_hint(channel_id)?;
        self.with_user_section(&peer, |s| {
            s.on_channel(channel_id, true, |c, e| {
                *e = c.close()?;
                Ok(())
            })
        })
    }

    /// Closes a channel unilaterally: `error` goes to the peer, and the
    /// channel's record (our signed latest commitment to broadcast, the
    /// outputs that pay us, the HTLCs to settle on chain) is kept until the
    /// user is done with it (see [`ChannelStore::closed_channels`]).
    ///
    /// **Locking behaviour:** takes the channel's peer lock once.
    pub fn force_close_channel(&self, channel_id: &ChannelId) -> Result<(), StoreError> {
        let peer = self.owner_hint(channel_id)?;
        self.with_user_section(&peer, |s| {
            s.on_channel(channel_id, true, |c, e| {
                *e = c.force_close();
                Ok(())
            })
        })
    }

    /// As the funder of a channel, proposes a new commitment feerate
    /// (`update_fee`); it applies once the commitment round trip completes.
    /// While the previous round trip still awaits the peer's
    /// `revoke_and_ack`, the update is held and goes out when it arrives
    /// (checked again then, and dropped if the channel can no longer take
    /// it), as LDK holds its own: LDK keeps one pending fee update and
    /// loses track of the first of two sent that close together.
    ///
    /// **Locking behaviour:** takes the channel's peer lock once.
    pub fn update_fee(
        &self,
        channel_id: &ChannelId,
        feerate_per_kw: u32,
    ) -> Result<(), StoreError> {
        let peer = self.owner_hint(channel_id)?;
        let config = &self.config;
        self.with_user_section(&peer, |s| {
            s.on_channel(channel_id, true, |c, e| {
                if let Some(msg) = c.send_update_fee(config, feerate_per_kw)? {
                    e.msgs.push(Message::UpdateFee(msg));
                }
                Ok(())
            })
        })
    }

    /// Takes every message waiting to be sent, with the peer it is for.
    /// Messages for one peer come out in the order they must be sent.
    ///
    /// **Locking behaviour:** takes, one at a time, the lock of each peer
    /// that has messages.
    pub fn get_and_clear_pending_msg_events(&self) -> Vec<(PublicKey, Message)> {
        // A failed commit leaves what depended on it in the outboxes, unsent.
        // Lazy batches after the last one a message waits for stay behind.
        let _ = self.commit_needed();
        self.container.drain_outboxes(self.releasable())
    }

    /// Takes the messages waiting to be sent to `peers` only, with the peer
    /// each is for, in the order they must be sent to it.
    ///
    /// For a caller that gives each peer's connection to one thread: each
    /// thread drains its own peers, so no two threads ever hold messages for
    /// the same peer and per-peer order cannot be lost between them. Unknown
    /// peers are skipped. Mixing it with
    /// [`ChannelStore::get_and_clear_pending_msg_events`] is fine: each
    /// message is taken once, by one of them.
    ///
    /// **Locking behaviour:** takes each listed peer's lock once, one at a
    /// time (the `GlobalLock` baseline takes its one lock once).
    pub fn get_and_clear_pending_msg_events_for(
        &self,
        peers: &[PublicKey],
    ) -> Vec<(PublicKey, Message)> {
        let _ = self.commit_needed();
        self.container.drain_outboxes_of(peers, self.releasable())
    }

    /// Takes every pending event. With a persister, the events are deleted
    /// from it before they are returned (at most once: a crash right after
    /// this call loses them; see [`ChannelStore::process_pending_events`]).
    ///
    /// **Locking behaviour:** lock-free, plus one persister write.
    pub fn get_and_clear_pending_events(&self) -> Vec<Event> {
        let taken = self.take_events();
        if self.forget_events(&taken).is_err() {
            // Not deleted: they are still on disk and come back after a
            // restart, so handing them out now would deliver them twice.
            for e in taken {
                self.events.push(e);
            }
            return Vec::new();
        }
        taken.into_iter().map(|(_, e)| e).collect()
    }

    /// Hands every pending event to `handler`, and only then deletes them
    /// from the persister: after a crash, events whose handling may not have
    /// finished are delivered again (at least once). Make the handler
    /// idempotent.
    ///
    /// The deletion is written lazily: it is appended to the journal and
    /// becomes durable with the next commit (the next batch that releases a
    /// message or an event, or [`ChannelStore::flush`]), with no `fsync` of
    /// its own. A crash before then delivers the events again, which is what
    /// at-least-once allows. (Every event handed out was durable before it
    /// was: taking events commits the batches they came from first.)
    ///
    /// **Locking behaviour:** lock-free; the commit that makes the events
    /// durable, if one is needed, before the handler.
    pub fn process_pending_events(&self, mut handler: impl FnMut(Event)) -> Result<(), StoreError> {
        let taken = self.take_events();
        for (_, e) in &taken {
            handler(e.clone());
        }
        self.persist_lazily(Self::event_deletes(&taken))
    }

    /// Requeues an event loaded from the persister.
    pub(crate) fn push_loaded_event(&self, event: (u64, Event)) {
        self.events.push(event);
    }

    /// The pending events, left in place (for `write`).
    pub(crate) fn pending_events_snapshot(&self) -> Vec<(u64, Event)> {
        let taken = self.take_events();
        for e in &taken {
            self.events.push(e.clone());
        }
        taken
    }

    fn take_events(&self) -> Vec<(u64, Event)> {
        // Events wait in the journal until their batch is durable (a batch
        // with events is never lazy, so this commits every one of them).
        let _ = self.commit_needed();
        let mut out = Vec::with_capacity(self.events.len());
        while let Some(e) = self.events.pop() {
            out.push(e);
        }
        out
    }

    /// Deletes `events` from the persister before returning (at most once).
    fn forget_events(&self, events: &[(u64, Event)]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.persist_now(Self::event_deletes(events))
    }

    fn event_deletes(events: &[(u64, Event)]) -> Vec<(Key, Option<Vec<u8>>)> {
        events
            .iter()
            .map(|(seq, _)| (Key::Event(*seq), None))
            .collect()
    }
}
