//! Whole-store serialization (`ChannelStore::write` / `read`) and restart
//! from a persister (`ChannelStore::open` / `with_persister`).
//!
//! **Restart rule (stated in the README):** an HTLC that was irrevocably
//! committed on an incoming channel but never reached its outgoing channel
//! is **forwarded again**: the forward decision is made anew from the
//! persisted HTLC (its onion payload is stored with it), so it is forwarded
//! if the outgoing channel can still take it and failed back otherwise. A
//! fulfill that arrived from downstream but was not yet passed upstream is
//! passed upstream. Nothing is applied twice: a forward is re-made only if
//! no outgoing HTLC and no queued item already stands for it, and a queued
//! resolution only applies to an HTLC that has not been removed yet.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bitcoin::secp256k1::{PublicKey, SecretKey};

use super::{ChannelStore, Container, Decided, Sharded};
use crate::channel::htlc::{HtlcKind, HtlcSource, HtlcState, Inbound, PrevHop, Removal};
use crate::channel::{Channel, IncomingHtlc};
use crate::config::StoreConfig;
use crate::error::{DecodeError, StoreError};
use crate::event::Event;
use crate::forward::{Addressed, HtlcResolution, Resolution, Work};
use crate::persist::codec::{
    decode_channel, decode_event, decode_work, encode_channel, encode_event, encode_work,
};
use crate::persist::tlv::{put_bytes, TlvReader, TlvWriter};
use crate::persist::{frame, unframe, FileOptions, FilePersister, Key, Persister};
use crate::types::NodeId;

/// What a store is rebuilt from.
#[derive(Default)]
pub(crate) struct Loaded {
    pub(crate) channels: Vec<Channel>,
    pub(crate) work: Vec<Addressed>,
    pub(crate) events: Vec<(u64, Event)>,
}

mod store_type {
    pub const NODE_ID: u64 = 0;
    pub const BEST_HEIGHT: u64 = 2;
    pub const CHANNELS: u64 = 4;
    pub const WORK: u64 = 6;
    pub const EVENTS: u64 = 8;
    pub const ALL: [u64; 5] = [NODE_ID, BEST_HEIGHT, CHANNELS, WORK, EVENTS];
}

impl Loaded {
    /// Decodes a persister's contents.
    pub(crate) fn from_map(
        map: BTreeMap<Key, Vec<u8>>,
        node_secret: &SecretKey,
    ) -> Result<Self, DecodeError> {
        let mut loaded = Loaded::default();
        for (key, value) in map {
            match key {
                Key::Channel(id) => {
                    let records = unframe(&value, &format!("channel {id}"))?;
                    loaded.channels.push(decode_channel(records, node_secret)?);
                }
                Key::Work(n) => {
                    let mut item = decode_work(unframe(&value, &format!("work item {n}"))?)?;
                    item.id = n;
                    loaded.work.push(item);
                }
                Key::Event(n) => loaded
                    .events
                    .push((n, decode_event(unframe(&value, &format!("event {n}"))?)?)),
            }
        }
        Ok(loaded)
    }
}

impl ChannelStore<Sharded> {
    /// Opens the store kept in directory `dir` (created if missing), with a
    /// [`FilePersister`] using default options: every channel, queued
    /// forward and pending event is loaded back, and the store keeps writing
    /// there. Peers start disconnected; call `peer_connected` for each.
    pub fn open(
        dir: impl AsRef<std::path::Path>,
        config: StoreConfig,
        node_secret: SecretKey,
        best_height: u32,
    ) -> Result<Self, StoreError> {
        let persister = FilePersister::open(dir, FileOptions::default())?;
        Self::with_persister(config, node_secret, best_height, Arc::new(persister))
    }

    /// A store that writes its durable state to `persister`, starting from
    /// whatever the persister already holds.
    pub fn with_persister(
        config: StoreConfig,
        node_secret: SecretKey,
        best_height: u32,
        persister: Arc<dyn Persister>,
    ) -> Result<Self, StoreError> {
        Self::with_container_and_persister(config, node_secret, best_height, persister)
    }

    /// Reads a store written by [`ChannelStore::write`]. The result keeps
    /// nothing durable (add a persister by writing it into one: see `open`).
    pub fn read(
        reader: &mut impl Read,
        config: StoreConfig,
        node_secret: SecretKey,
    ) -> Result<Self, StoreError> {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::Persist(e.to_string()))?;
        let records = unframe(&bytes, "store")?;
        let r = TlvReader::parse(records, &store_type::ALL, "store")?;
        let store = ChannelStore::new(
            config,
            node_secret,
            r.cursor(store_type::BEST_HEIGHT, "best_height")?.u32()?,
        )?;
        let node_id = PublicKey::from_slice(r.required(store_type::NODE_ID)?).map_err(|_| {
            DecodeError::InvalidPublicKey {
                field: "store.node_id",
            }
        })?;
        if node_id != store.node_id() {
            return Err(DecodeError::InvalidValue {
                field: "store.node_id (written by another node)",
            }
            .into());
        }
        let mut loaded = Loaded::default();
        let mut c = r.cursor(store_type::CHANNELS, "store.channels")?;
        for _ in 0..c.count(4)? {
            loaded.channels.push(decode_channel(
                unframe(c.bytes()?, "channel")?,
                &store.node_secret,
            )?);
        }
        c.end()?;
        let mut c = r.cursor(store_type::WORK, "store.work")?;
        for _ in 0..c.count(12)? {
            let id = c.u64()?;
            let mut item = decode_work(unframe(c.bytes()?, "work item")?)?;
            item.id = id;
            loaded.work.push(item);
        }
        c.end()?;
        let mut c = r.cursor(store_type::EVENTS, "store.events")?;
        for _ in 0..c.count(12)? {
            let seq = c.u64()?;
            loaded
                .events
                .push((seq, decode_event(unframe(c.bytes()?, "event")?)?));
        }
        c.end()?;
        store.restore(loaded)?;
        Ok(store)
    }
}

impl<C: Container> ChannelStore<C> {
    /// A store of design `C` that persists to `persister`, loading what it holds.
    pub fn with_container_and_persister(
        config: StoreConfig,
        node_secret: SecretKey,
        best_height: u32,
        persister: Arc<dyn Persister>,
    ) -> Result<Self, StoreError> {
        let map = persister.load()?;
        let loaded = Loaded::from_map(map, &node_secret)?;
        let mut store = Self::with_container(config, node_secret, best_height)?;
        store.persister = Some(persister);
        store.restore(loaded)?;
        Ok(store)
    }

    /// Writes the whole store (versioned TLV, see `docs/FORMAT.md`): every
    /// funded channel, every queued cross-peer work item, every pending
    /// event. Each channel is written consistently; for a consistent view of
    /// the whole store, call it while no other thread changes it.
    ///
    /// **Locking behaviour:** takes each peer's lock in turn, one at a time.
    pub fn write(&self, writer: &mut impl Write) -> std::io::Result<()> {
        let mut channels = Vec::new();
        for peer in self.container.peers() {
            self.container.with_peer(&peer, |ps| {
                let mut ids: Vec<_> = ps.channels.keys().copied().collect();
                ids.sort();
                channels.extend(
                    ids.iter()
                        .map(|id| frame(&encode_channel(&ps.channels[id]))),
                );
            });
        }
        channels.sort();
        // The queues can only be read by popping: take the items and put them back.
        let mut work = Vec::new();
        self.container.pop_work(&mut work, usize::MAX);
        for item in &work {
            self.container.push_work(item.clone());
        }
        work.sort_by_key(|w| w.id);
        let events = self.pending_events_snapshot();
        let mut w = TlvWriter::new();
        w.record(store_type::NODE_ID, &self.node_id().serialize())
            .record(store_type::BEST_HEIGHT, &self.best_height().to_be_bytes())
            .with(store_type::CHANNELS, |out| {
                out.extend_from_slice(&(channels.len() as u32).to_be_bytes());
                for c in &channels {
                    put_bytes(out, c);
                }
            })
            .with(store_type::WORK, |out| {
                out.extend_from_slice(&(work.len() as u32).to_be_bytes());
                for item in &work {
                    out.extend_from_slice(&item.id.to_be_bytes());
                    put_bytes(out, &frame(&encode_work(item)));
                }
            })
            .with(store_type::EVENTS, |out| {
                out.extend_from_slice(&(events.len() as u32).to_be_bytes());
                for (seq, e) in &events {
                    out.extend_from_slice(&seq.to_be_bytes());
                    put_bytes(out, &frame(&encode_event(e)));
                }
            });
        writer.write_all(&frame(&w.finish()))
    }

    /// One funded channel as a self-contained record (versioned TLV with a
    /// checksum), as the persister stores it.
    ///
    /// **Locking behaviour:** the channel's peer lock, briefly.
    pub fn encode_channel(&self, channel_id: &crate::types::ChannelId) -> Option<Vec<u8>> {
        let peer = self.container.index_get(channel_id)?;
        self.container
            .with_peer(&peer, |ps| {
                ps.channels
                    .get(channel_id)
                    .map(|c| frame(&encode_channel(c)))
            })
            .flatten()
    }

    /// Rebuilds peers, indexes, queues and events from loaded state, then
    /// re-derives what a crash may have lost (see the module doc).
    pub(crate) fn restore(&self, loaded: Loaded) -> Result<(), StoreError> {
        let max_work = loaded.work.iter().map(|w| w.id).max().unwrap_or(0);
        let max_event = loaded.events.iter().map(|(s, _)| *s).max().unwrap_or(0);
        self.seq.work.fetch_max(max_work, Ordering::Relaxed);
        self.seq.event.fetch_max(max_event, Ordering::Relaxed);
        for mut channel in loaded.channels {
            // Every peer is disconnected after a restart.
            channel.pause();
            let (pk, id) = (channel.counterparty, channel.channel_id);
            let node = NodeId::from(&pk);
            self.claim_id(id, node, &pk)?;
            if let Some(scid) = channel.short_channel_id {
                self.container.scid_insert(scid, id);
            }
            self.container
                .snapshot_register(node, id, channel.snapshot.clone());
            self.container.connect(pk);
            self.container.with_peer(&node, |ps| {
                ps.connected = false;
                channel.publish();
                ps.channels.insert(id, Box::new(channel));
            });
        }
        // What stands for each incoming HTLC: an outgoing HTLC or a queued item.
        let mut handled: HashSet<(NodeId, crate::types::ChannelId, u64)> = HashSet::new();
        let mut upstream_fulfills = Vec::new();
        let mut incoming = Vec::new();
        let mut removed: HashSet<(crate::types::ChannelId, u64)> = HashSet::new();
        for peer in self.container.peers() {
            self.container.with_peer(&peer, |ps| {
                for channel in ps.channels.values() {
                    for h in &channel.htlcs {
                        match &h.kind {
                            HtlcKind::Offered {
                                source: HtlcSource::Forwarded(prev),
                                ..
                            } => {
                                handled.insert((prev.node_id, prev.channel_id, prev.htlc_id));
                                if let Some(Removal::Fulfill(p)) = &h.removal {
                                    upstream_fulfills.push((*prev, *p));
                                }
                            }
                            HtlcKind::Received(inbound)
                                if h.state == HtlcState::RcvdAddAckRevocation =>
                            {
                                if h.removal.is_some() {
                                    removed.insert((channel.channel_id, h.id));
                                } else {
                                    incoming.push((
                                        peer,
                                        channel.channel_id,
                                        IncomingHtlc {
                                            htlc_id: h.id,
                                            amount_msat: h.amount_msat,
                                            payment_hash: h.payment_hash,
                                            cltv_expiry: h.cltv_expiry,
                                            inbound: inbound.clone(),
                                        },
                                    ));
                                }
                            }
                            HtlcKind::Received(_) if h.removal.is_some() => {
                                removed.insert((channel.channel_id, h.id));
                            }
                            _ => {}
                        }
                    }
                }
            });
        }
        let mut stale = Vec::new();
        let mut queued_resolutions: HashMap<(crate::types::ChannelId, u64), ()> = HashMap::new();
        for item in loaded.work {
            let keep = match &item.work {
                Work::Forward(f) => {
                    handled.insert((f.prev.node_id, f.prev.channel_id, f.prev.htlc_id))
                }
                Work::Resolve(r) => {
                    let fresh = !removed.contains(&(r.channel_id, r.htlc_id));
                    if fresh {
                        handled.insert((item.node_id, r.channel_id, r.htlc_id));
                        queued_resolutions.insert((r.channel_id, r.htlc_id), ());
                    }
                    fresh
                }
            };
            if keep {
                if let Work::Forward(f) = &item.work {
                    // Restored forwards count against their peer's limit
                    // (they may exceed it; new ones wait until they drain).
                    *self.queued_forwards.entry(f.prev.node_id).or_insert(0) += 1;
                }
                self.container.push_work(item);
            } else {
                stale.push((Key::Work(item.id), None));
            }
        }
        self.persist(&stale)?;
        // Payments whose PaymentReceived is still pending (persisted).
        let announced: HashSet<crate::types::PaymentHash> = loaded
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::PaymentReceived { payment_hash, .. } => Some(*payment_hash),
                _ => None,
            })
            .collect();
        for event in loaded.events {
            self.push_loaded_event(event);
        }
        let mut decided = Decided::default();
        // A fulfill from downstream that never reached its upstream HTLC.
        for (prev, preimage) in upstream_fulfills {
            let key = (prev.channel_id, prev.htlc_id);
            if !removed.contains(&key) && !queued_resolutions.contains_key(&key) {
                let work = Work::Resolve(HtlcResolution {
                    channel_id: prev.channel_id,
                    htlc_id: prev.htlc_id,
                    resolution: Resolution::Fulfill(preimage),
                });
                decided.work.push(self.seq.new_work(prev.node_id, work));
                handled.insert((prev.node_id, prev.channel_id, prev.htlc_id));
            }
        }
        // Irrevocably committed incoming HTLCs nothing stands for: decide again.
        let mut unannounced: HashMap<crate::types::PaymentHash, u64> = HashMap::new();
        for (node, channel_id, htlc) in incoming {
            if handled.contains(&(node, channel_id, htlc.htlc_id)) {
                continue;
            }
            let is_final = matches!(&htlc.inbound, Inbound::Payload { payload, .. } if payload.short_channel_id.is_none());
            if is_final {
                // Claimable again. Its PaymentReceived is still pending
                // (persisted), or was taken by the user, or was lost: it is
                // decided outside the lock, in a later batch than the
                // commitment that made the HTLC irrevocable, so a crash in
                // between loses it. Unless one is pending, announce it
                // again (events are at least once): an unannounced payment
                // would never be claimed.
                let prev = PrevHop {
                    node_id: node,
                    channel_id,
                    htlc_id: htlc.htlc_id,
                    amount_msat: htlc.amount_msat,
                };
                let total = self.add_claimable(prev, &htlc);
                if !announced.contains(&htlc.payment_hash) {
                    unannounced.insert(htlc.payment_hash, total);
                }
            } else {
                self.decide_incoming(node, channel_id, htlc, &mut decided);
            }
        }
        for (payment_hash, amount_msat) in unannounced {
            decided
                .events
                .push(self.seq.new_event(Event::PaymentReceived {
                    payment_hash,
                    amount_msat,
                }));
        }
        self.release(decided);
        Ok(())
    }
}
