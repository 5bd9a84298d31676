//! Whole-store serialization (`ChannelStore::write` / `read`) and restart
//! from a persister (`ChannelStore::open` / `with_persister`).
//!
//! **Restart is a pure function of what is on disk** (issue 11). Every
//! section wrote all its durable consequences in one batch, so nothing is
//! re-decided on restart:
//!
//! * live channels come back paused (peers start disconnected), each with
//!   its HTLCs, the onions they still need, and the peer's signatures on our
//!   latest commitment;
//! * closed-channel records come back with their outputs and the HTLCs to
//!   settle on chain; an incoming HTLC whose outgoing HTLC went on chain
//!   stays pending until the user reports the outcome, across any number
//!   of restarts;
//! * queued work items (forwards, resolutions) are queued again, each to be
//!   applied once: an item is deleted in the batch of the change it makes;
//! * payments to us that were offered to the user (`PaymentReceived` was
//!   written with them) are claimable again, parts on closed channels
//!   included; the parts of a claim that was written but not finished
//!   are left to its queued work, which fulfills them;
//! * pending events are pending again.
//!
//! The only thing restart does on its own is what BOLT 2 says a
//! disconnection does: a channel whose `funding_signed` never came is
//! forgotten (and the user told). Deadlines are then checked at the height
//! the store opens with.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, SecretKey};

use super::claimables::{PartOf, RestoredParts};
use super::{ChannelStore, Claimable, Container, Sharded};
use crate::channel::closed::HtlcRoute;
use crate::channel::htlc::{HtlcKind, HtlcState, Inbound};
use crate::channel::{Channel, ClosedChannel, Phase};
use crate::config::StoreConfig;
use crate::error::{DecodeError, StoreError};
use crate::event::{ClosureReason, Event};
use crate::forward::{Addressed, Work};
use crate::inbound_payment;
use crate::message::{OnionPacket, ONION_PACKET_LEN};
use crate::onchain::OnChainAction;
use crate::onion::payload::{HopPayload, PaymentData};
use crate::persist::codec::{
    decode_channel, decode_channel_record, decode_closed, decode_ended_htlc, decode_event,
    decode_htlc, decode_signatures, decode_work, encode_channel, encode_closed, encode_event,
    encode_work, finish_channel, OnionPlace,
};
use crate::persist::tlv::{put_bytes, TlvReader, TlvWriter};
use crate::persist::{frame, unframe, FileOptions, FilePersister, Key, Persister};
use crate::types::{ChannelId, NodeId, PaymentHash};

/// What a store is rebuilt from.
#[derive(Default)]
pub(crate) struct Loaded {
    pub(crate) channels: Vec<Channel>,
    pub(crate) closed: Vec<ClosedChannel>,
    pub(crate) work: Vec<Addressed>,
    pub(crate) events: Vec<(u64, Event)>,
}

mod store_type {
    pub const NODE_ID: u64 = 0;
    pub const BEST_HEIGHT: u64 = 2;
    pub const CHANNELS: u64 = 4;
    pub const WORK: u64 = 6;
    pub const EVENTS: u64 = 8;
    pub const CLOSED: u64 = 10;
    pub const ALL: [u64; 6] = [NODE_ID, BEST_HEIGHT, CHANNELS, WORK, EVENTS, CLOSED];
}

/// A channel's separate records, gathered while reading a persister.
#[derive(Default)]
struct Parts {
    header: Option<Vec<u8>>,
    htlcs: Vec<((bool, u64), Vec<u8>)>,
    onions: HashMap<(bool, u64), Vec<u8>>,
    signatures: Option<Vec<u8>>,
    ended: Vec<((bool, u64), Vec<u8>)>,
}

impl Loaded {
    /// Decodes a persister's contents.
    pub(crate) fn from_map(
        map: BTreeMap<Key, Vec<u8>>,
        node_secret: &SecretKey,
    ) -> Result<Self, DecodeError> {
        let mut loaded = Loaded::default();
        let mut parts: BTreeMap<ChannelId, Parts> = BTreeMap::new();
        for (key, value) in map {
            match key {
                Key::Channel(id) => parts.entry(id).or_default().header = Some(value),
                Key::Htlc(id, offered, n) => parts
                    .entry(id)
                    .or_default()
                    .htlcs
                    .push(((offered, n), value)),
                Key::Onion(id, offered, n) => {
                    parts
                        .entry(id)
                        .or_default()
                        .onions
                        .insert((offered, n), value);
                }
                Key::Signatures(id) => parts.entry(id).or_default().signatures = Some(value),
                Key::EndedHtlc(id, offered, n) => parts
                    .entry(id)
                    .or_default()
                    .ended
                    .push(((offered, n), value)),
                Key::Closed(id) => loaded.closed.push(decode_closed(unframe(
                    &value,
                    &format!("closed channel {id}"),
                )?)?),
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
        for (id, parts) in parts {
            loaded.channels.push(assemble(id, parts, node_secret)?);
        }
        Ok(loaded)
    }
}

/// Builds one channel from its records, checking that none is missing or
/// left over.
fn assemble(id: ChannelId, parts: Parts, node_secret: &SecretKey) -> Result<Channel, DecodeError> {
    let context = format!("channel {id}");
    let header = parts.header.ok_or_else(|| DecodeError::MissingRecord {
        record_type: 0,
        context: format!("{context} (its htlc or onion records have no header)"),
    })?;
    let records = unframe(&header, &context)?;
    let decoded = decode_channel_record(records, node_secret)?;
    let mut channel = decoded.channel;
    if channel.channel_id != id {
        return Err(DecodeError::InvalidValue {
            field: "channel.channel_id (not its key)",
        });
    }
    let Some(expected) = decoded.htlc_records else {
        // A version 0.1 record: the whole channel, nothing separate.
        if !parts.htlcs.is_empty() || !parts.onions.is_empty() || !parts.ended.is_empty() {
            return Err(DecodeError::InvalidValue {
                field: "channel.htlcs (inline and separate)",
            });
        }
        // It is on disk under Key::Channel: a close must delete it, and the
        // first write replaces it by a header (whose digest differs).
        channel.disk.header = Some(super::durable::record_digest(records));
        channel.disk.sigs_dirty = channel.holder_sigs.is_some();
        return Ok(channel);
    };
    if parts.htlcs.len() != expected as usize {
        return Err(DecodeError::InvalidValue {
            field: "channel.htlc_records (count does not match)",
        });
    }
    let mut onions = parts.onions;
    for ((offered, n), value) in parts.htlcs {
        let (mut htlc, place) = decode_htlc(unframe(&value, &context)?, &context)?;
        if (htlc.offered(), htlc.id) != (offered, n) {
            return Err(DecodeError::InvalidValue {
                field: "htlc.id (not its key)",
            });
        }
        let separate = place == OnionPlace::Separate;
        if separate {
            let bytes = onions
                .remove(&(offered, n))
                .ok_or_else(|| DecodeError::MissingRecord {
                    record_type: 10,
                    context: format!("onion of htlc {n} of {context}"),
                })?;
            let onion: [u8; ONION_PACKET_LEN] =
                bytes.try_into().map_err(|_| DecodeError::InvalidValue {
                    field: "htlc.onion",
                })?;
            htlc.onion = Some(OnionPacket(Box::new(onion)));
        }
        let fingerprint = htlc
            .durable_fingerprint()
            .ok_or(DecodeError::InvalidValue {
                field: "htlc.state",
            })?;
        channel
            .disk
            .htlcs
            .insert((offered, n), (fingerprint, separate));
        channel.htlcs.push(htlc);
    }
    if !onions.is_empty() {
        return Err(DecodeError::InvalidValue {
            field: "htlc.onion (an onion record without its htlc)",
        });
    }
    if let Some(bytes) = parts.signatures {
        channel.holder_sigs = Some(decode_signatures(unframe(&bytes, &context)?)?);
        channel.disk.sigs_on_disk = true;
    }
    if !channel.ended_htlcs.is_empty() {
        return Err(DecodeError::InvalidValue {
            field: "channel.ended_htlcs (in a header)",
        });
    }
    for ((offered, n), value) in parts.ended {
        let ended = decode_ended_htlc(unframe(&value, &context)?, offered, n)?;
        channel.ended_htlcs.push(ended);
    }
    channel.disk.ended_on_disk = channel.ended_htlcs.len();
    channel.disk.header = Some(
        sha256::Hash::hash(records).to_byte_array()[..16]
            .try_into()
            .expect("16 bytes"),
    );
    finish_channel(&channel)?;
    Ok(channel)
}

impl ChannelStore<Sharded> {
    /// Opens the store kept in directory `dir` (created if missing), with a
    /// [`FilePersister`] using default options: every channel, closed
    /// channel, queued forward and pending event is loaded back, and the
    /// store keeps writing there. Peers start disconnected; call
    /// `peer_connected` for each.
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
        if let Some(v) = r.optional(store_type::CLOSED) {
            let mut c = crate::persist::tlv::Cursor::new(v, "store.closed");
            for _ in 0..c.count(4)? {
                loaded
                    .closed
                    .push(decode_closed(unframe(c.bytes()?, "closed channel")?)?);
            }
            c.end()?;
        }
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
    /// funded channel, every closed channel still kept, every queued
    /// cross-peer work item, every pending event. Each channel is written
    /// consistently; for a consistent view of the whole store, call it while
    /// no other thread changes it.
    ///
    /// **Locking behaviour:** takes each peer's lock in turn, one at a time.
    pub fn write(&self, writer: &mut impl Write) -> std::io::Result<()> {
        let mut channels = Vec::new();
        let mut closed = Vec::new();
        for peer in self.container.peers() {
            self.container.with_peer(&peer, |ps| {
                channels.extend(ps.channels.values().map(|c| frame(&encode_channel(c))));
                closed.extend(ps.closed.values().map(|c| frame(&encode_closed(c))));
            });
        }
        channels.sort();
        closed.sort();
        // The queues can only be read by popping: take the items and put them back.
        let mut work = Vec::new();
        self.container.pop_work(&mut work, usize::MAX);
        for item in &work {
            self.container.push_work(item.clone());
        }
        work.sort_by_key(|w| w.id);
        let events = self.pending_events_snapshot();
        let list = |out: &mut Vec<u8>, items: &[Vec<u8>]| {
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for c in items {
                put_bytes(out, c);
            }
        };
        let mut w = TlvWriter::new();
        w.record(store_type::NODE_ID, &self.node_id().serialize())
            .record(store_type::BEST_HEIGHT, &self.best_height().to_be_bytes())
            .with(store_type::CHANNELS, |out| list(out, &channels))
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
        // Only when there are any, so a store without closed channels stays
        // readable by version 0.1 (an older reader must refuse, not skip,
        // records that hold funds: the type is even).
        if !closed.is_empty() {
            w.with(store_type::CLOSED, |out| list(out, &closed));
        }
        writer.write_all(&frame(&w.finish()))
    }

    /// One funded channel as a self-contained record (versioned TLV with a
    /// checksum; its HTLCs inline).
    ///
    /// **Locking behaviour:** the channel's peer lock, briefly.
    pub fn encode_channel(&self, channel_id: &ChannelId) -> Option<Vec<u8>> {
        let peer = self.container.index_get(channel_id)?;
        self.container
            .with_peer(&peer, |ps| {
                ps.channels
                    .get(channel_id)
                    .map(|c| frame(&encode_channel(c)))
            })
            .flatten()
    }

    /// Rebuilds peers, indexes, queues, claimable payments and events from
    /// loaded state (see the module doc).
    pub(crate) fn restore(&self, loaded: Loaded) -> Result<(), StoreError> {
        let max_work = loaded.work.iter().map(|w| w.id).max().unwrap_or(0);
        let max_event = loaded.events.iter().map(|(s, _)| *s).max().unwrap_or(0);
        self.seq.work.fetch_max(max_work, Ordering::Relaxed);
        self.seq.event.fetch_max(max_event, Ordering::Relaxed);
        // HTLCs a durable claim still has to fulfill (`resolve_set`): they
        // are in no set, so nothing can fail them before their work runs.
        let resolving: HashSet<(ChannelId, u64)> = loaded
            .work
            .iter()
            .filter_map(|item| match &item.work {
                Work::Resolve(r) => Some((r.channel_id, r.htlc_id)),
                Work::Forward(_) => None,
            })
            .collect();
        let mut forgotten = Vec::new();
        let mut payments: HashMap<PaymentHash, RestoredParts> = HashMap::new();
        for mut channel in loaded.channels {
            if channel.phase == Phase::FundingCreatedSent {
                // BOLT 2: the funder forgets a channel whose funding_signed
                // never came; every peer is disconnected after a restart.
                forgotten.push(channel);
                continue;
            }
            channel.pause();
            let (pk, id) = (channel.counterparty, channel.channel_id);
            let node = NodeId::from(&pk);
            self.claim_id(id, node, &pk)?;
            if let Some(scid) = channel.short_channel_id {
                self.container.scid_insert(scid, id);
            }
            self.container
                .snapshot_register(node, id, channel.snapshot.clone());
            self.restore_claimables(&channel, &resolving, &mut payments);
            if channel.holds_unconfirmed_slot() {
                self.inbound_unfunded.fetch_add(1, Ordering::Relaxed);
            }
            self.container.insert_peer(pk);
            self.container.with_peer(&node, |ps| {
                channel.publish();
                ps.channels.insert(id, Box::new(channel));
            });
        }
        for record in loaded.closed {
            let (pk, id) = (record.counterparty, record.channel_id);
            if record.unconfirmed_since.is_some() {
                self.inbound_unfunded.fetch_add(1, Ordering::Relaxed);
            }
            let node = NodeId::from(&pk);
            self.claim_id(id, node, &pk)?;
            for h in &record.htlcs {
                if h.route == (HtlcRoute::Received { pays_us: true })
                    && h.info.action == OnChainAction::AwaitPreimage
                    && !resolving.contains(&(id, h.info.htlc_id))
                {
                    let part = Claimable {
                        node_id: node,
                        channel_id: id,
                        htlc_id: h.info.htlc_id,
                        amount_msat: h.info.amount_msat,
                        cltv_expiry: h.info.cltv_expiry,
                    };
                    let of = h
                        .payment_data
                        .map(|d| self.part_of(&h.info.payment_hash, d));
                    payments
                        .entry(h.info.payment_hash)
                        .or_default()
                        .add(part, of);
                }
            }
            self.container.insert_peer(pk);
            self.container.with_peer(&node, |ps| {
                ps.closed.insert(id, Box::new(record));
            });
        }
        for (hash, parts) in payments {
            self.claimables.insert(hash, parts.into_set());
        }
        for item in loaded.work {
            if let Work::Forward(f) = &item.work {
                // Restored forwards count against their peer's limit
                // (they may exceed it; new ones wait until they drain).
                *self.queued_forwards.entry(f.prev.node_id).or_insert(0) += 1;
            }
            self.container.push_work(item);
        }
        for event in loaded.events {
            self.push_loaded_event(event);
        }
        self.forget_unsigned(forgotten)?;
        self.rebuild_paying();
        self.enforce_deadlines();
        Ok(())
    }

    /// Channels whose `funding_signed` never came: their records go, and the
    /// user is told not to broadcast their funding transaction.
    fn forget_unsigned(&self, channels: Vec<Channel>) -> Result<(), StoreError> {
        let mut batch = Vec::new();
        let mut events = Vec::new();
        for c in channels {
            super::durable::channel_deletes(&c, &mut batch);
            batch.push((Key::Channel(c.channel_id), None));
            let event = self.seq.new_event(Event::ChannelClosed {
                channel_id: c.channel_id,
                counterparty_node_id: c.counterparty,
                reason: ClosureReason::FundingNotSigned,
            });
            batch.push((Key::Event(event.0), Some(frame(&encode_event(&event.1)))));
            events.push(event);
        }
        self.persist_now(batch)?;
        for event in events {
            self.push_loaded_event(event);
        }
        Ok(())
    }

    /// What a part's `payment_data` says of its payment.
    fn part_of(&self, hash: &PaymentHash, d: PaymentData) -> PartOf {
        PartOf {
            payment_secret: Some(d.payment_secret),
            total_msat: d.total_msat,
            preimage: inbound_payment::get_payment_preimage(
                &self.inbound_key,
                hash,
                &d.payment_secret,
            )
            .ok(),
        }
    }

    /// Payments to us in a live channel that are neither claimed nor
    /// failed: their parts are gathered into `payments`, to be sets again
    /// (`RestoredParts::into_set`).
    fn restore_claimables(
        &self,
        channel: &Channel,
        resolving: &HashSet<(ChannelId, u64)>,
        payments: &mut HashMap<PaymentHash, RestoredParts>,
    ) {
        let node = NodeId::from(&channel.counterparty);
        for h in &channel.htlcs {
            let HtlcKind::Received(Inbound::Payload {
                payload: HopPayload::Receive { payment_data, .. },
                ..
            }) = &h.kind
            else {
                continue;
            };
            if h.state != HtlcState::RcvdAddAckRevocation
                || h.removal.is_some()
                || resolving.contains(&(channel.channel_id, h.id))
            {
                continue;
            }
            let of = match payment_data {
                Some(d) => self.part_of(&h.payment_hash, *d),
                // Version 0.1: no secret, a payment in one part.
                None => PartOf {
                    payment_secret: None,
                    total_msat: h.amount_msat,
                    preimage: None,
                },
            };
            let part = Claimable {
                node_id: node,
                channel_id: channel.channel_id,
                htlc_id: h.id,
                amount_msat: h.amount_msat,
                cltv_expiry: h.cltv_expiry,
            };
            payments
                .entry(h.payment_hash)
                .or_default()
                .add(part, Some(of));
        }
    }
}
