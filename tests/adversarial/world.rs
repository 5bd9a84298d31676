//! The world the adversarial tests play in: a hub with real channels to
//! three honest peers (A, B, C) and two to Mallory, whose own store is real
//! but whose messages the adversary may reorder, replay, mutate or replace
//! with forgeries. Eve is connected to the hub with no channel; `unknown`
//! never connects.
//!
//! Every message to the hub that is not honest goes through
//! [`World::inject`], which checks the security invariants around it;
//! [`World::check`] checks the store invariants after every step and
//! [`World::finish`] checks that honest peers were not harmed.
//!
//! Shared by `tests/adversarial.rs` (proptest) and
//! `fuzz/fuzz_targets/handle_message.rs` (cargo-fuzz).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::OnceLock;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{OutPoint, Txid};

use crate::common::PayInvoice;
use chanstore::{
    ChannelId, ChannelStore, Event, Message, PaymentHash, PaymentPreimage, Route, RouteHop,
    ShortChannelId, StoreConfig, StoreError,
};

/// Best block height of every store.
pub const HEIGHT: u32 = 800_000;

/// Node indexes in [`World::nodes`].
pub const HUB: usize = 0;
pub const A: usize = 1;
pub const B: usize = 2;
pub const C: usize = 3;
pub const M: usize = 4;
/// Node secrets' seeds, by node index ([`secret`]).
pub const SEEDS: [u8; 5] = [10, 1, 2, 3, 4];

/// Channel indexes in [`Base::chans`]: the honest ones first.
pub const AH: usize = 0;
pub const HB: usize = 1;
pub const CH: usize = 2;
pub const MH: usize = 3;
pub const HM: usize = 4;
pub const HONEST_CHANS: [usize; 3] = [AH, HB, CH];

/// Most messages kept for replay.
const CAPTURE_LIMIT: usize = 256;

/// The hub's limits: small, so that the adversary reaches them.
pub fn hub_config() -> StoreConfig {
    StoreConfig {
        max_accepted_htlcs: 10,
        max_channels_per_peer: 4,
        max_pending_forwards_per_peer: 3,
        ..StoreConfig::default()
    }
}

fn config(node: usize) -> StoreConfig {
    match node {
        HUB => hub_config(),
        // Mallory announces the smallest minimum there is: the hub may be
        // asked to forward her anything.
        M => StoreConfig {
            htlc_minimum_msat: 0,
            ..StoreConfig::default()
        },
        _ => StoreConfig::default(),
    }
}

pub fn secret(seed: u8) -> SecretKey {
    SecretKey::from_slice(&[seed; 32]).expect("valid secret")
}

/// One channel of the base world.
#[derive(Clone, Copy, Debug)]
pub struct Chan {
    pub id: ChannelId,
    pub scid: ShortChannelId,
    pub outpoint: OutPoint,
    /// The node on the other side of the hub.
    pub peer: usize,
}

/// The world after setup, serialized: every test case starts from it.
pub struct Base {
    snapshots: Vec<Vec<u8>>,
    pub chans: Vec<Chan>,
    pub ids: Vec<PublicKey>,
    pub eve: PublicKey,
    pub unknown: PublicKey,
    /// Public keys that belong to nobody in the world.
    pub keys: Vec<PublicKey>,
    /// A valid signature by a key that has nothing to do with any channel.
    pub foreign_sig: Signature,
}

impl Base {
    /// Built once per process.
    pub fn get() -> &'static Base {
        static BASE: OnceLock<Base> = OnceLock::new();
        BASE.get_or_init(Base::build)
    }

    fn build() -> Base {
        let secp = Secp256k1::new();
        let pk = |seed: u8| PublicKey::from_secret_key(&secp, &secret(seed));
        let nodes: Vec<ChannelStore> = SEEDS
            .iter()
            .enumerate()
            .map(|(i, s)| ChannelStore::new(config(i), secret(*s), HEIGHT).expect("config"))
            .collect();
        let foreign_sig = secp.sign_ecdsa(
            &bitcoin::secp256k1::Message::from_digest([0x42; 32]),
            &secret(0x43),
        );
        let mut w = World {
            ids: nodes.iter().map(|n| n.node_id()).collect(),
            nodes,
            eve: pk(5),
            unknown: pk(6),
            chans: Vec::new(),
            keys: (11..19).map(pk).collect(),
            foreign_sig,
            wire: VecDeque::new(),
            m_out: VecDeque::new(),
            m_in: VecDeque::new(),
            captured: Vec::new(),
            captured_total: 0,
            preimages: HashMap::new(),
            hashes: Vec::new(),
            received: Vec::new(),
            started: HashMap::new(),
            to_mallory: HashMap::new(),
            outcomes: HashMap::new(),
            sent: HashSet::new(),
            m_ready: Vec::new(),
            m_new: None,
            hub_temp: None,
            unconfirmed: Vec::new(),
            next_block: 1,
            next_payment: 0,
        };
        w.connect();
        w.flush(); // the inits
        for (funder, fundee, funding_sat, push_msat, peer) in [
            (A, HUB, 1_000_000, 400_000_000, A),
            (HUB, B, 1_000_000, 400_000_000, B),
            // Sides that start empty spend only what they were paid.
            (C, HUB, 500_000, 0, C),
            (M, HUB, 1_000_000, 950_000_000, M),
            (HUB, M, 500_000, 0, M),
        ] {
            let chan = w.open(funder, fundee, funding_sat, push_msat, peer);
            w.chans.push(chan);
        }
        w.flush();
        w.drain_events();
        let snapshots = w
            .nodes
            .iter()
            .map(|n| {
                let mut bytes = Vec::new();
                n.write(&mut bytes).expect("write to a vec");
                bytes
            })
            .collect();
        Base {
            snapshots,
            chans: w.chans,
            ids: w.ids,
            eve: w.eve,
            unknown: w.unknown,
            keys: w.keys,
            foreign_sig: w.foreign_sig,
        }
    }
}

/// The stores, the messages in flight between them, and what the checks
/// need to remember.
pub struct World {
    pub nodes: Vec<ChannelStore>,
    pub ids: Vec<PublicKey>,
    pub eve: PublicKey,
    pub unknown: PublicKey,
    pub chans: Vec<Chan>,
    pub keys: Vec<PublicKey>,
    pub foreign_sig: Signature,
    /// Honest messages in flight (hub <-> A, B, C), in order.
    wire: VecDeque<(usize, usize, Message)>,
    /// Mallory's store -> hub, in flight (the adversary may reorder them).
    pub m_out: VecDeque<Message>,
    /// Hub -> Mallory's store, in flight.
    m_in: VecDeque<Message>,
    /// Messages seen on any connection, for replays.
    pub captured: Vec<Message>,
    captured_total: usize,
    preimages: HashMap<PaymentHash, PaymentPreimage>,
    /// Every payment hash used so far, for forgeries that reuse one.
    pub hashes: Vec<PaymentHash>,
    /// Payments received and not yet claimed or failed: (node, hash).
    received: Vec<(usize, PaymentHash)>,
    /// Honest payments started, by payer.
    started: HashMap<PaymentHash, usize>,
    /// Payments by an honest payer to Mallory, by payer.
    to_mallory: HashMap<PaymentHash, usize>,
    /// How many times each honest payment ended (sent or failed) at its payer.
    outcomes: HashMap<PaymentHash, usize>,
    /// Payments that ended with `PaymentSent` at their payer.
    sent: HashSet<PaymentHash>,
    /// Mallory's channels waiting for her funding transaction.
    m_ready: Vec<ChannelId>,
    /// The id of the last channel Mallory opened (temporary, then permanent).
    pub m_new: Option<ChannelId>,
    /// The temporary id of the last channel the hub opened to Mallory.
    pub hub_temp: Option<ChannelId>,
    /// Mallory's funded channels waiting for confirmation.
    unconfirmed: Vec<ChannelId>,
    next_block: u32,
    next_payment: u32,
}

impl World {
    /// A fresh world from the base snapshot: every store read back from its
    /// bytes, then every peer reconnected (`channel_reestablish`).
    pub fn new() -> World {
        let base = Base::get();
        let nodes: Vec<ChannelStore> = base
            .snapshots
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                ChannelStore::read(&mut &bytes[..], config(i), secret(SEEDS[i]))
                    .expect("the base snapshot reads back")
            })
            .collect();
        let mut w = World {
            nodes,
            ids: base.ids.clone(),
            eve: base.eve,
            unknown: base.unknown,
            chans: base.chans.clone(),
            keys: base.keys.clone(),
            foreign_sig: base.foreign_sig,
            wire: VecDeque::new(),
            m_out: VecDeque::new(),
            m_in: VecDeque::new(),
            captured: Vec::new(),
            captured_total: 0,
            preimages: HashMap::new(),
            hashes: Vec::new(),
            received: Vec::new(),
            started: HashMap::new(),
            to_mallory: HashMap::new(),
            outcomes: HashMap::new(),
            sent: HashSet::new(),
            m_ready: Vec::new(),
            m_new: None,
            hub_temp: None,
            unconfirmed: Vec::new(),
            next_block: 100,
            next_payment: 0,
        };
        w.connect();
        w.flush();
        w.check();
        w
    }

    fn connect(&self) {
        for peer in [A, B, C, M] {
            self.nodes[HUB].peer_connected(self.ids[peer]);
            self.nodes[peer].peer_connected(self.ids[HUB]);
        }
        self.eve_connects();
    }

    /// Eve (no store of her own) connects to the hub and sends her `init`,
    /// so that what she forges afterwards reaches the channel logic.
    fn eve_connects(&self) {
        let hub = &self.nodes[HUB];
        hub.peer_connected(self.eve);
        let chain = bitcoin::constants::ChainHash::using_genesis_block(hub.config().network);
        let init = Message::Init(chanstore::message::Init::ours(chain));
        hub.handle_message(&self.eve, init).expect("Eve's init");
    }

    pub fn hub(&self) -> &ChannelStore {
        &self.nodes[HUB]
    }

    /// Opens, funds and confirms a channel during setup.
    fn open(
        &mut self,
        funder: usize,
        fundee: usize,
        funding_sat: u64,
        push_msat: u64,
        peer: usize,
    ) -> Chan {
        let temp = self.nodes[funder]
            .create_channel(self.ids[fundee], funding_sat, push_msat)
            .expect("create_channel");
        self.flush();
        self.drain_events();
        let outpoint = self.fresh_outpoint(0xb0);
        let id = self.nodes[funder]
            .funding_transaction_generated(&temp, &self.ids[fundee], outpoint)
            .expect("funding");
        self.flush();
        let scid = self.next_scid();
        for n in [funder, fundee] {
            self.nodes[n].funding_confirmed(&id, scid).expect("confirm");
        }
        self.flush();
        Chan {
            id,
            scid,
            outpoint,
            peer,
        }
    }

    /// An outpoint no channel uses yet (`tag` keeps kinds apart).
    pub fn fresh_outpoint(&mut self, tag: u8) -> OutPoint {
        let block = self.next_block;
        self.next_block += 1;
        let mut txid = [tag; 32];
        txid[..4].copy_from_slice(&block.to_be_bytes());
        OutPoint::new(Txid::from_byte_array(txid), 0)
    }

    fn next_scid(&mut self) -> ShortChannelId {
        let block = self.next_block;
        self.next_block += 1;
        ShortChannelId::new(block, 1, 0).expect("small block height")
    }

    fn capture(&mut self, msg: &Message) {
        if self.captured.len() < CAPTURE_LIMIT {
            self.captured.push(msg.clone());
        } else {
            let at = self.captured_total % CAPTURE_LIMIT;
            self.captured[at] = msg.clone();
        }
        self.captured_total += 1;
    }

    /// Moves every store's outgoing messages onto the connections.
    pub fn collect(&mut self) {
        for i in 0..self.nodes.len() {
            for (to, msg) in self.nodes[i].get_and_clear_pending_msg_events() {
                let Some(j) = self.ids.iter().position(|k| *k == to) else {
                    // For Eve, who has no store: the adversary may replay it.
                    self.capture(&msg);
                    continue;
                };
                match (i, j) {
                    (M, HUB) => self.m_out.push_back(msg),
                    (HUB, M) => self.m_in.push_back(msg),
                    _ => self.wire.push_back((i, j, msg)),
                }
            }
        }
    }

    /// Takes every store's events: payments received wait for `settle`,
    /// outcomes are counted, funding requests are answered.
    pub fn drain_events(&mut self) {
        for i in 0..self.nodes.len() {
            for event in self.nodes[i].get_and_clear_pending_events() {
                match &event {
                    Event::PaymentReceived { payment_hash, .. } => {
                        self.received.push((i, *payment_hash))
                    }
                    Event::PaymentSent { payment_hash, .. }
                    | Event::PaymentFailed { payment_hash, .. } => {
                        if self.to_mallory.get(payment_hash) == Some(&i) {
                            let n = self.outcomes.entry(*payment_hash).or_default();
                            *n += 1;
                            assert_eq!(*n, 1, "payment {payment_hash} to Mallory ended twice");
                        }
                        if self.started.get(payment_hash) == Some(&i) {
                            *self.outcomes.entry(*payment_hash).or_default() += 1;
                            if matches!(event, Event::PaymentSent { .. }) {
                                self.sent.insert(*payment_hash);
                            }
                        }
                    }
                    Event::FundingGenerationReady {
                        temporary_channel_id,
                        counterparty_node_id,
                        ..
                    } => {
                        if i == M {
                            self.m_ready.push(*temporary_channel_id);
                        } else if i == HUB && self.hub_temp == Some(*temporary_channel_id) {
                            // The hub's operator funds what it opened.
                            let outpoint = self.fresh_outpoint(0xe0);
                            if let Ok(id) = self.nodes[HUB].funding_transaction_generated(
                                temporary_channel_id,
                                counterparty_node_id,
                                outpoint,
                            ) {
                                self.unconfirmed.push(id);
                            }
                        }
                    }
                    Event::ChannelClosed {
                        channel_id,
                        counterparty_node_id,
                        ..
                    } => {
                        // Ids are not unique across peers (temporary ids,
                        // Mallory's copies): match the two ends too.
                        let honest = HONEST_CHANS.iter().any(|k| {
                            let chan = &self.chans[*k];
                            let ends = [(HUB, chan.peer), (chan.peer, HUB)];
                            chan.id == *channel_id
                                && ends.iter().any(|(at, other)| {
                                    i == *at && *counterparty_node_id == self.ids[*other]
                                })
                        });
                        assert!(!honest, "node {i}: an honest channel closed: {event:?}");
                    }
                    Event::OnChainResolutionRequired { htlc } if i != M => {
                        assert!(
                            !self.is_honest_channel(&htlc.channel_id),
                            "node {i}: an honest HTLC went on chain: {event:?}"
                        );
                    }
                    _ => {}
                }
            }
        }
    }

    fn is_honest_channel(&self, id: &ChannelId) -> bool {
        HONEST_CHANS.iter().any(|k| self.chans[*k].id == *id)
    }

    /// Delivers up to `count` honest messages, oldest first. Honest peers
    /// and the hub must accept each other's messages.
    pub fn deliver(&mut self, count: usize) {
        for _ in 0..count {
            self.collect();
            let Some((i, j, msg)) = self.wire.pop_front() else {
                return;
            };
            let wire = Message::decode(&msg.encode()).expect("our own messages decode");
            assert_eq!(wire, msg);
            self.capture(&msg);
            if let Err(e) = self.nodes[j].handle_message(&self.ids[i], wire) {
                panic!("node {j} refused honest {} from node {i}: {e}", msg.name());
            }
        }
        self.collect();
    }

    /// Delivers what the hub sent Mallory (her refusals are her business),
    /// then up to `count` of Mallory's messages to the hub, each time taking
    /// the one `skip` places behind the oldest (reordering them).
    pub fn mallory_deliver(&mut self, count: usize, skip: usize) {
        self.collect();
        while let Some(msg) = self.m_in.pop_front() {
            self.capture(&msg);
            let _ = self.nodes[M].handle_message(&self.ids[HUB], msg);
        }
        self.collect();
        for _ in 0..count {
            if self.m_out.is_empty() {
                break;
            }
            let at = skip.min(self.m_out.len() - 1);
            let msg = self.m_out.remove(at).expect("in range");
            self.capture(&msg);
            self.inject(self.ids[M], msg);
        }
    }

    /// Runs every store's forward queue.
    pub fn forward(&mut self) {
        for n in &self.nodes {
            n.process_pending_forwards();
        }
        self.collect();
    }

    /// Claims (or fails) every payment received so far.
    pub fn settle(&mut self, claim: bool) {
        self.drain_events();
        for (i, hash) in std::mem::take(&mut self.received) {
            let Some(preimage) = self.preimages.get(&hash).copied() else {
                continue;
            };
            // A hash may have several HTLCs (a forgery reused it): one call
            // resolves them all, so later calls find nothing.
            let _ = if claim {
                self.nodes[i].claim_funds(preimage)
            } else {
                self.nodes[i].fail_htlc_backwards(&hash)
            };
        }
        self.collect();
    }

    /// A preimage nobody used before, remembered for settling.
    pub fn new_preimage(&mut self) -> PaymentPreimage {
        self.next_payment += 1;
        let mut bytes = [0x5a; 32];
        bytes[..4].copy_from_slice(&self.next_payment.to_be_bytes());
        let preimage = PaymentPreimage(bytes);
        self.preimages.insert(preimage.payment_hash(), preimage);
        self.hashes.push(preimage.payment_hash());
        preimage
    }

    /// A preimage used before (`n` picks which), for forgeries.
    pub fn known_preimage(&self, n: usize) -> Option<PaymentPreimage> {
        let hash = self.hashes.get(n % self.hashes.len().max(1))?;
        self.preimages.get(hash).copied()
    }

    /// A route hop to `node` over base channel `chan`.
    pub fn hop(&self, node: usize, chan: usize, fee_msat: u64, delta: u32) -> RouteHop {
        RouteHop {
            node_id: self.ids[node],
            short_channel_id: self.chans[chan].scid,
            fee_msat,
            cltv_expiry_delta: delta,
        }
    }

    /// A route from the hub's neighbour over `first` to the hub, and on over
    /// `second` to `dest` if given.
    pub fn route(&self, first: usize, onward: Option<(usize, usize)>, amount: u64) -> Route {
        match onward {
            None => Route {
                hops: vec![self.hop(HUB, first, 0, 0)],
            },
            Some((dest, second)) => {
                let fee = self.hub().config().forwarding_fee_msat(amount);
                Route {
                    hops: vec![self.hop(HUB, first, fee, 72), self.hop(dest, second, 0, 0)],
                }
            }
        }
    }

    /// `payer` sends a payment. An honest payer's payment to an honest
    /// payee (`track`) must end exactly once, one to Mallory at most once.
    /// A refused payment changes nothing.
    pub fn pay(&mut self, payer: usize, route: &Route, amount: u64, track: bool) {
        let preimage = self.new_preimage();
        let hash = preimage.payment_hash();
        let before = self.nodes[payer].debug_state();
        match self.nodes[payer].pay_invoice(route, hash, amount) {
            Ok(()) => {
                if track {
                    self.started.insert(hash, payer);
                } else if payer != M {
                    self.to_mallory.insert(hash, payer);
                }
            }
            Err(e) => assert_eq!(
                self.nodes[payer].debug_state(),
                before,
                "node {payer}: refused payment ({e}) changed state"
            ),
        }
        self.collect();
    }

    /// Cuts the connection between the hub and `peer` (messages in flight
    /// are lost) and reconnects it. Eve has no store: only the hub's side.
    pub fn reconnect(&mut self, peer: Option<usize>) {
        self.collect();
        let Some(peer) = peer else {
            self.nodes[HUB].peer_disconnected(&self.eve);
            self.eve_connects();
            return;
        };
        if peer == M {
            self.m_in.clear();
            self.m_out.clear();
        } else {
            self.wire.retain(|(i, j, _)| *i != peer && *j != peer);
        }
        self.nodes[HUB].peer_disconnected(&self.ids[peer]);
        self.nodes[peer].peer_disconnected(&self.ids[HUB]);
        self.nodes[HUB].peer_connected(self.ids[peer]);
        self.nodes[peer].peer_connected(self.ids[HUB]);
        self.collect();
    }

    /// Mallory opens a channel to the hub with her real store.
    pub fn mallory_open(&mut self, funding_sat: u64) {
        if let Ok(temp) = self.nodes[M].create_channel(self.ids[HUB], funding_sat, 0) {
            self.m_new = Some(temp);
        }
        self.collect();
    }

    /// Mallory funds her oldest channel waiting for it, at `outpoint`.
    pub fn mallory_fund(&mut self, outpoint: OutPoint) {
        self.drain_events();
        let Some(temp) = self.m_ready.pop() else {
            return;
        };
        if let Ok(id) = self.nodes[M].funding_transaction_generated(&temp, &self.ids[HUB], outpoint)
        {
            self.m_new = Some(id);
            self.unconfirmed.push(id);
        }
        self.collect();
    }

    /// The hub opens a channel to Mallory.
    pub fn hub_open(&mut self, funding_sat: u64) {
        if let Ok(temp) = self.nodes[HUB].create_channel(self.ids[M], funding_sat, 0) {
            self.hub_temp = Some(temp);
        }
        self.collect();
    }

    /// Mallory's funded channels confirm, at both ends.
    pub fn confirm(&mut self) {
        self.drain_events();
        for id in std::mem::take(&mut self.unconfirmed) {
            let scid = self.next_scid();
            for n in [HUB, M] {
                let _ = self.nodes[n].funding_confirmed(&id, scid);
            }
        }
        self.collect();
    }

    /// The hub's operator acts on one of Mallory's channels (never on an
    /// honest one).
    pub fn hub_acts(&mut self, id: ChannelId, act: impl FnOnce(&ChannelStore, &ChannelId)) {
        if self.is_honest_channel(&id) {
            return;
        }
        act(&self.nodes[HUB], &id);
        self.collect();
    }

    /// Hands the hub a message from `from` that nobody vouches for, and
    /// checks what a hostile message may and may not do:
    ///
    /// * no panic;
    /// * it never changes another peer's state (a channel, or an outbox);
    /// * if refused: the hub is byte-for-byte unchanged (outbox included),
    ///   no event, no queued forward;
    /// * from a peer that never connected: refused;
    /// * afterwards, every store invariant holds ([`World::check`]).
    pub fn inject(&mut self, from: PublicKey, msg: Message) {
        self.drain_events();
        let hub = &self.nodes[HUB];
        let before = hub.debug_state();
        let forwards = hub.pending_forwards();
        let name = msg.name();
        let result = hub.handle_message(&from, msg);
        let after = hub.debug_state();
        assert_eq!(
            others(&before, &from),
            others(&after, &from),
            "{name} from {from} changed another peer's state ({result:?})"
        );
        // A refused update_fee fails its channel (the peer would resend it
        // with the commitment_signed that counts it, forever), as LDK does:
        // that channel closes, nothing else changes.
        let failed_channel = match &result {
            Err(
                StoreError::UnacceptableParameter {
                    channel_id,
                    parameter: "feerate_per_kw",
                    ..
                }
                | StoreError::DustExposureExceeded { channel_id, .. }
                | StoreError::ReserveViolated { channel_id, .. }
                | StoreError::FunderCannotPayFee { channel_id, .. },
            ) if name == "update_fee" => Some(*channel_id),
            _ => None,
        };
        if let Err(e) = &result {
            if let Some(id) = failed_channel {
                // Its ChannelClosed is taken by the next drain_events.
                assert!(
                    hub.channel_details(&id).is_none(),
                    "refused {name} ({e}) fails its channel"
                );
            } else {
                assert_eq!(before, after, "refused {name} ({e}) changed the hub");
                let events = hub.get_and_clear_pending_events();
                assert!(events.is_empty(), "refused {name} ({e}): {events:?}");
                assert_eq!(hub.pending_forwards(), forwards, "refused {name} ({e})");
            }
        }
        // Usually `PeerNotConnected`; a `funding_created` claims its id in
        // the index first, so it may be `WrongPeer`/`DuplicateChannelId`.
        if from == self.unknown {
            assert!(result.is_err(), "{name} from an unknown peer was taken");
        }
        self.collect();
        self.check();
    }

    /// The invariants every store keeps after every step: value conserved in
    /// every channel, indexes equal to the primary map, and readers
    /// (`list_channels`) showing exactly the channels the primary map has.
    pub fn check(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            if let Err(e) = n.check_value_conserved() {
                panic!("node {i}: {e}");
            }
            if let Err(e) = n.check_indexes() {
                panic!("node {i}: {e}");
            }
            let channels = n
                .debug_state()
                .lines()
                .filter(|l| !l.starts_with("peer "))
                .count();
            let listed = n.list_channels();
            let distinct: HashSet<_> = listed
                .iter()
                .map(|d| (d.counterparty_node_id, d.channel_id))
                .collect();
            let shown: Vec<_> = listed.iter().map(|d| (d.channel_id, d.state)).collect();
            assert_eq!(
                (listed.len(), distinct.len()),
                (channels, channels),
                "node {i}: list_channels disagrees with the primary map: {shown:?}"
            );
        }
    }

    /// Delivers everything, runs forwards and claims every payment until
    /// nothing moves.
    pub fn flush(&mut self) {
        for round in 0.. {
            assert!(round < 500, "the stores never went quiet");
            self.collect();
            let mut moved = !self.wire.is_empty() || !self.m_in.is_empty();
            moved |= !self.m_out.is_empty();
            self.deliver(usize::MAX);
            self.mallory_deliver(usize::MAX, 0);
            for n in &self.nodes {
                moved |= n.process_pending_forwards() > 0;
            }
            self.drain_events();
            moved |= !self.received.is_empty();
            self.settle(true);
            self.collect();
            moved |= !self.wire.is_empty() || !self.m_in.is_empty() || !self.m_out.is_empty();
            if !moved {
                return;
            }
        }
    }

    /// After the adversary is done: every honest payment ended exactly
    /// once, no HTLC is stuck on an honest channel, each honest channel
    /// still carries a payment, and every store reads back its own write.
    pub fn finish(&mut self) {
        self.flush();
        self.check();
        for (hash, payer) in &self.started {
            assert_eq!(
                self.outcomes.get(hash),
                Some(&1),
                "honest payment {hash} of node {payer} must end exactly once"
            );
        }
        let mut last = Vec::new();
        for k in HONEST_CHANS {
            let chan = self.chans[k];
            let mut outbound = [0; 2];
            for (side, n) in [HUB, chan.peer].into_iter().enumerate() {
                let d = self.nodes[n]
                    .channel_details(&chan.id)
                    .unwrap_or_else(|| panic!("node {n}: honest channel {} is gone", chan.id));
                assert!(d.is_usable, "node {n}: {d:?}");
                // B's payments to Mallory may wait for her forever (until
                // they time out on chain, which is out of scope).
                let waiting = if k == HB {
                    let ended = |h: &PaymentHash| self.outcomes.contains_key(h);
                    self.to_mallory.keys().filter(|h| !ended(h)).count()
                } else {
                    0
                };
                assert!(d.pending_htlcs <= waiting, "node {n}: {d:?}");
                outbound[side] = d.outbound_capacity_msat;
            }
            let (payer, payee) = if outbound[0] >= outbound[1] {
                (HUB, chan.peer)
            } else {
                (chan.peer, HUB)
            };
            let preimage = self.new_preimage();
            let route = Route {
                hops: vec![self.hop(payee, k, 0, 0)],
            };
            self.nodes[payer]
                .pay_invoice(&route, preimage.payment_hash(), 1_000_000)
                .unwrap_or_else(|e| panic!("honest payment on {}: {e}", chan.id));
            self.started.insert(preimage.payment_hash(), payer);
            last.push(preimage.payment_hash());
        }
        self.flush();
        for hash in last {
            assert!(
                self.sent.contains(&hash),
                "honest payment {hash} did not complete"
            );
        }
        self.check();
        // Whatever happened, every store can be written and read back.
        for (i, n) in self.nodes.iter().enumerate() {
            let mut bytes = Vec::new();
            n.write(&mut bytes).expect("write to a vec");
            let back = ChannelStore::read(&mut &bytes[..], config(i), secret(SEEDS[i]))
                .unwrap_or_else(|e| panic!("node {i}: its own write does not read back: {e}"));
            // A channel whose funding_signed never came is forgotten on
            // restart, as on disconnection (BOLT 2).
            let funded = n.list_channels();
            let funded = funded
                .iter()
                .filter(|d| d.funding_outpoint.is_some() && d.state != "funding_created_sent");
            assert_eq!(back.list_channels().len(), funded.count(), "node {i}");
        }
    }
}

/// `debug_state` without the block of peer `node`.
fn others(state: &str, node: &PublicKey) -> String {
    let mine = format!("peer {node} ");
    let mut out = String::new();
    let mut skip = false;
    for line in state.lines() {
        if line.starts_with("peer ") {
            skip = line.starts_with(&mine);
        }
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
