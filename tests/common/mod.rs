//! Test helpers: nodes, and a courier that moves messages between stores
//! (through the wire format) until nothing is left to deliver.
#![allow(dead_code)]

pub mod chain;
pub mod recording;
pub mod schedule;

use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{OutPoint, Txid};
use chanstore::inbound_payment::{self, ExpandedKey};
use chanstore::onion::packet::{construct_onion, OnionHop};
use chanstore::onion::payload::{HopPayload, PaymentData};
use chanstore::{
    ChannelId, ChannelStore, Container, Event, Message, PaymentHash, PaymentSecret, Persister,
    RecipientOnionFields, Route, ShortChannelId, StoreConfig, StoreError,
};

pub const HEIGHT: u32 = 800_000;

/// A store with a node secret made from `seed`.
pub fn node(seed: u8) -> ChannelStore {
    node_with(seed, StoreConfig::default())
}

pub fn node_with(seed: u8, config: StoreConfig) -> ChannelStore {
    ChannelStore::new(config, SecretKey::from_slice(&[seed; 32]).unwrap(), HEIGHT).unwrap()
}

/// A store with a node secret made from `seed` that persists to
/// `persister`, loading what it holds (a restart, when it holds anything).
pub fn node_on(seed: u8, config: StoreConfig, persister: Arc<dyn Persister>) -> ChannelStore {
    let secret = SecretKey::from_slice(&[seed; 32]).unwrap();
    ChannelStore::with_persister(config, secret, HEIGHT, persister).unwrap()
}

/// The `Key::EndedHtlc` records `persister` holds (HTLCs kept for the
/// peer's revoked commitments).
pub fn ended_records(persister: &dyn Persister) -> Vec<chanstore::persist::Key> {
    let all = persister.load().unwrap().into_keys();
    all.filter(|k| matches!(k, chanstore::persist::Key::EndedHtlc(..)))
        .collect()
}

/// `a` opens a channel of 1,000,000 sat to `b`, pushing `push_msat`,
/// funded by output `vout` of a made-up transaction `[txid_byte; 32]`:
/// both first commitments signed, the funding not confirmed. Events are
/// taken.
pub fn open_unconfirmed(
    a: &ChannelStore,
    b: &ChannelStore,
    push_msat: u64,
    txid_byte: u8,
    vout: u32,
) -> ChannelId {
    let temp = a.create_channel(b.node_id(), 1_000_000, push_msat).unwrap();
    deliver_all(&[a, b]);
    let outpoint = OutPoint::new(Txid::from_byte_array([txid_byte; 32]), vout);
    let id = a
        .funding_transaction_generated(&temp, &b.node_id(), outpoint)
        .unwrap();
    deliver_all(&[a, b]);
    let _ = (events(a), events(b));
    id
}

/// Connects every pair of the given stores ([`connect`]).
pub fn connect_all(nodes: &[&ChannelStore]) {
    for (i, a) in nodes.iter().enumerate() {
        for b in &nodes[i + 1..] {
            connect(a, b);
        }
    }
}

/// Connects `a` and `b` as a transport would: both see the connection and
/// their `init`s cross (as bytes). What the inits trigger (each paused
/// channel's `channel_reestablish`) is left queued for the test.
pub fn connect(a: &ChannelStore, b: &ChannelStore) {
    a.peer_connected(b.node_id());
    b.peer_connected(a.node_id());
    let inits = [
        (a, b, a.get_and_clear_pending_msg_events_for(&[b.node_id()])),
        (b, a, b.get_and_clear_pending_msg_events_for(&[a.node_id()])),
    ];
    for (from, to, msgs) in inits {
        for (_, msg) in msgs {
            assert!(
                matches!(msg, Message::Init(_)),
                "{} before init",
                msg.name()
            );
            let wire = Message::decode(&msg.encode()).expect("init decodes");
            to.handle_message(&from.node_id(), wire)
                .expect("init accepted");
        }
    }
}

/// A peer played by the test (no store behind it) connects to `store`:
/// the store's `init` is dropped and the peer's (ours, on the store's
/// chain) delivered.
pub fn greet(store: &ChannelStore, peer: PublicKey) {
    store.peer_connected(peer);
    let _ = store.get_and_clear_pending_msg_events_for(&[peer]);
    let chain = bitcoin::constants::ChainHash::using_genesis_block(store.config().network);
    store
        .handle_message(&peer, Message::Init(chanstore::message::Init::ours(chain)))
        .expect("init accepted");
}

/// Delivers messages (encoded and decoded, as on the wire) and processes
/// forwards until every store is quiet. Panics if a message is refused.
/// Returns the number of messages delivered.
pub fn deliver_all(nodes: &[&ChannelStore]) -> usize {
    let mut delivered = 0;
    loop {
        let mut progress = false;
        for from in nodes {
            for (to, msg) in from.get_and_clear_pending_msg_events() {
                let dest = nodes
                    .iter()
                    .find(|n| n.node_id() == to)
                    .expect("message for a known node");
                let wire = Message::decode(&msg.encode()).expect("our own messages decode");
                assert_eq!(wire, msg);
                dest.handle_message(&from.node_id(), wire)
                    .unwrap_or_else(|e| panic!("{} refused {}: {e}", short(&to), msg.name()));
                delivered += 1;
                progress = true;
            }
            if from.process_pending_forwards() > 0 {
                progress = true;
            }
        }
        if !progress {
            return delivered;
        }
    }
}

pub fn short(pk: &PublicKey) -> String {
    pk.to_string()[..8].to_string()
}

/// Events of a store, drained.
pub fn events(node: &ChannelStore) -> Vec<Event> {
    node.get_and_clear_pending_events()
}

static NEXT_BLOCK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Opens, funds and confirms a channel from `a` to `b`; returns its id and scid.
pub fn open_channel(
    a: &ChannelStore,
    b: &ChannelStore,
    funding_sat: u64,
    push_msat: u64,
) -> (ChannelId, ShortChannelId) {
    let temp = a
        .create_channel(b.node_id(), funding_sat, push_msat)
        .expect("create_channel");
    deliver_all(&[a, b]);
    let ready = events(a);
    assert!(
        ready.iter().any(|e| matches!(e, Event::FundingGenerationReady { temporary_channel_id, .. } if *temporary_channel_id == temp)),
        "{ready:?}"
    );
    let block = NEXT_BLOCK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut txid = [0u8; 32];
    txid[..4].copy_from_slice(&block.to_be_bytes());
    txid[4..12].copy_from_slice(&a.node_id().serialize()[1..9]);
    let outpoint = OutPoint::new(Txid::from_byte_array(txid), 0);
    let id = a
        .funding_transaction_generated(&temp, &b.node_id(), outpoint)
        .expect("funding");
    deliver_all(&[a, b]);
    let scid = ShortChannelId::new(block, 1, 0).unwrap();
    a.funding_confirmed(&id, scid).expect("confirm a");
    b.funding_confirmed(&id, scid).expect("confirm b");
    deliver_all(&[a, b]);
    for n in [a, b] {
        let evs = events(n);
        assert!(
            evs.iter()
                .any(|e| matches!(e, Event::ChannelReady { channel_id, .. } if *channel_id == id)),
            "{evs:?}"
        );
    }
    (id, scid)
}

/// Opens a channel from `a` to `b`, funds it with output 0 of the txid
/// `[txid_byte; 32]` in block `HEIGHT` (at index `1 + txid_byte`), and reports it confirmed to both at
/// once (depth 1), with no check of the events: for tests that take the
/// channel from there (a deeper `minimum_depth`, a fee check at depth 1).
pub fn fund_and_confirm(
    a: &ChannelStore,
    b: &ChannelStore,
    funding_sat: u64,
    push_msat: u64,
    txid_byte: u8,
) -> (ChannelId, ShortChannelId) {
    let temp = a
        .create_channel(b.node_id(), funding_sat, push_msat)
        .unwrap();
    deliver_all(&[a, b]);
    let outpoint = OutPoint::new(Txid::from_byte_array([txid_byte; 32]), 0);
    let id = a
        .funding_transaction_generated(&temp, &b.node_id(), outpoint)
        .unwrap();
    deliver_all(&[a, b]);
    // One transaction per txid byte: each channel its own scid.
    let scid = ShortChannelId::new(HEIGHT, 1 + u32::from(txid_byte), 0).unwrap();
    a.funding_confirmed(&id, scid).unwrap();
    b.funding_confirmed(&id, scid).unwrap();
    (id, scid)
}

/// A one-hop route to `dest` over our channel `scid`.
pub fn route_to(dest: &ChannelStore, scid: ShortChannelId) -> chanstore::Route {
    chanstore::Route {
        hops: vec![chanstore::RouteHop {
            node_id: dest.node_id(),
            short_channel_id: scid,
            fee_msat: 0,
            cltv_expiry_delta: 0,
        }],
    }
}

/// A two-hop route: over our channel `scid_in` to `hub`, paying it exactly
/// its fee for `amount_msat` and its CLTV delta, then over the hub's
/// channel `scid_out` to `dest`.
pub fn route_through(
    hub: &ChannelStore,
    scid_in: ShortChannelId,
    dest: &ChannelStore,
    scid_out: ShortChannelId,
    amount_msat: u64,
) -> chanstore::Route {
    chanstore::Route {
        hops: vec![
            chanstore::RouteHop {
                node_id: hub.node_id(),
                short_channel_id: scid_in,
                fee_msat: hub.config().forwarding_fee_msat(amount_msat),
                cltv_expiry_delta: u32::from(hub.config().cltv_expiry_delta),
            },
            chanstore::RouteHop {
                node_id: dest.node_id(),
                short_channel_id: scid_out,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            },
        ],
    }
}

/// A preimage that names a test payment: `tag` and `n` make it unique.
pub fn preimage(tag: u8, n: u16) -> chanstore::PaymentPreimage {
    let mut bytes = [tag; 32];
    bytes[..2].copy_from_slice(&n.to_be_bytes());
    chanstore::PaymentPreimage(bytes)
}

/// `PaymentFailed` for `hash`, failed by `by` with `code` and `data`.
pub fn failed_by(
    by: &ChannelStore,
    hash: PaymentHash,
    code: chanstore::FailureCode,
    data: Vec<u8>,
) -> Event {
    Event::PaymentFailed {
        payment_hash: hash,
        failure: code,
        failing_node: Some(by.node_id()),
        failure_data: data,
    }
}

/// `PaymentFailed` for a payment of `amount_msat` its recipient `by` did
/// not know or refused (`incorrect_or_unknown_payment_details`, whose data
/// is the amount and the recipient's best height).
pub fn unknown_to(by: &ChannelStore, hash: PaymentHash, amount_msat: u64) -> Event {
    let mut data = amount_msat.to_be_bytes().to_vec();
    data.extend_from_slice(&by.best_height().to_be_bytes());
    failed_by(
        by,
        hash,
        chanstore::FailureCode::IncorrectOrUnknownPaymentDetails,
        data,
    )
}

/// The `channel_update` a BOLT 4 UPDATE failure's data carries after its
/// first `skip` bytes (`htlc_msat`: 8, `cltv_expiry`: 4, `disabled_flags`:
/// 2, else 0): `u16 len`, then the update with its type (258), signed by
/// `by` and naming `scid`. Panics unless it is exactly that.
pub fn update_in_failure(
    data: &[u8],
    skip: usize,
    by: &ChannelStore,
    scid: ShortChannelId,
) -> chanstore::message::ChannelUpdate {
    let len = usize::from(u16::from_be_bytes([data[skip], data[skip + 1]]));
    let bytes = &data[skip + 2..];
    assert_eq!(bytes.len(), len, "len frames the rest: {data:?}");
    assert_eq!(&bytes[..2], &[0x01, 0x02], "type 258 first");
    let Ok(Message::ChannelUpdate(u)) = Message::decode(bytes) else {
        panic!("not a channel_update: {bytes:?}");
    };
    assert!(u.verify(&by.node_id()), "signed by the failing node");
    assert_eq!(u.short_channel_id, scid);
    let c = by.config();
    assert_eq!(
        (
            u.fee_base_msat,
            u.fee_proportional_millionths,
            u.cltv_expiry_delta
        ),
        (
            c.forwarding_fee_base_msat,
            c.forwarding_fee_proportional_millionths,
            c.cltv_expiry_delta
        )
    );
    u
}

/// The node secret of a test node (`node(seed)` uses `[seed; 32]`), found
/// from its id.
pub fn secret_of(node_id: &PublicKey) -> SecretKey {
    static KEYS: std::sync::OnceLock<Vec<(PublicKey, SecretKey)>> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let secp = bitcoin::secp256k1::Secp256k1::signing_only();
        // [0xff; 32] is no scalar: above the group order.
        (1..=255u8)
            .filter_map(|seed| SecretKey::from_slice(&[seed; 32]).ok())
            .map(|sk| (PublicKey::from_secret_key(&secp, &sk), sk))
            .collect()
    });
    keys.iter()
        .find(|(pk, _)| pk == node_id)
        .map(|(_, sk)| *sk)
        .expect("a test node made by node(seed)")
}

/// The payment secret `node`'s invoice for `hash` carries (stateless: its
/// key makes it, for any amount, for a day).
pub fn secret_for(node: &PublicKey, hash: PaymentHash) -> PaymentSecret {
    let key = ExpandedKey::new(&secret_of(node));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    inbound_payment::create_from_hash(&key, hash, None, 86_400, now).unwrap()
}

/// What the recipient of `route` (its last hop) put in its invoice for
/// `hash`: the payment secret, which it checks.
pub fn invoice(route: &Route, hash: PaymentHash) -> RecipientOnionFields {
    let recipient = route.hops.last().expect("a route has hops").node_id;
    RecipientOnionFields::secret_only(secret_for(&recipient, hash))
}

/// `a` and `c` with two channels, and a part of 3,000,000 msat of a
/// 5,000,000 msat payment locked to `p`, sent on the second, which `c` then
/// force-closes: the part is on chain. Returns the first channel's short
/// id, the closed channel and the invoice's fields; events are taken.
pub fn part_on_chain(
    a: &ChannelStore,
    c: &ChannelStore,
    p: &chanstore::PaymentPreimage,
) -> (ShortChannelId, ChannelId, RecipientOnionFields) {
    connect_all(&[a, c]);
    let (_, scid1) = open_channel(a, c, 1_000_000, 0);
    let (ch2, scid2) = open_channel(a, c, 1_000_000, 0);
    let hash = p.payment_hash();
    let fields = RecipientOnionFields::secret_only(secret_for(&c.node_id(), hash));
    a.send_payment_part(
        &route_to(c, scid2),
        hash,
        3_000_000,
        5_000_000,
        fields.clone(),
    )
    .unwrap();
    deliver_all(&[a, c]);
    c.force_close_channel(&ch2).unwrap();
    deliver_all(&[a, c]);
    events(a);
    events(c);
    (scid1, ch2, fields)
}

/// `send_payment` with the invoice of `route`'s recipient for `hash`: what
/// nearly every test sends.
pub trait PayInvoice {
    /// Pays `amount_msat` along `route` to the invoice for `hash`.
    fn pay_invoice(
        &self,
        route: &Route,
        hash: PaymentHash,
        amount_msat: u64,
    ) -> Result<(), StoreError>;
}

impl<C: Container> PayInvoice for ChannelStore<C> {
    fn pay_invoice(
        &self,
        route: &Route,
        hash: PaymentHash,
        amount_msat: u64,
    ) -> Result<(), StoreError> {
        self.send_payment(route, hash, amount_msat, invoice(route, hash))
    }
}

/// An `update_add_htlc` built by hand, as a peer that skips its own checks
/// would send it: a one-hop onion paying `to`, with its invoice's secret.
pub fn craft_add(
    to: &ChannelStore,
    channel_id: ChannelId,
    id: u64,
    amount_msat: u64,
    payment_hash: PaymentHash,
    cltv_expiry: u32,
) -> Message {
    let payload = HopPayload::Receive {
        amt_to_forward: amount_msat,
        outgoing_cltv_value: cltv_expiry,
        payment_data: Some(PaymentData {
            payment_secret: secret_for(&to.node_id(), payment_hash),
            total_msat: amount_msat,
        }),
        payment_metadata: None,
    };
    let onion = onion_for(&[(to.node_id(), payload)], payment_hash);
    Message::UpdateAddHtlc(chanstore::message::UpdateAddHtlc {
        channel_id,
        id,
        amount_msat,
        payment_hash,
        cltv_expiry,
        onion_routing_packet: onion,
    })
}

/// A BOLT 4 onion for `hops` (node, payload), with a fixed session key.
pub fn onion_for(
    hops: &[(PublicKey, HopPayload)],
    payment_hash: PaymentHash,
) -> chanstore::message::OnionPacket {
    let hops: Vec<OnionHop> = hops
        .iter()
        .map(|(node_id, payload)| OnionHop {
            node_id: *node_id,
            payload: payload.encode(),
        })
        .collect();
    let session_key = SecretKey::from_slice(&[0x41; 32]).unwrap();
    construct_onion(&session_key, &hops, &payment_hash.0)
        .expect("the route fits")
        .0
}

/// Everything observable about some stores, taken before a message that must
/// be refused, to prove afterwards that the refusal changed nothing.
pub struct Frozen {
    states: Vec<String>,
    details: Vec<Vec<chanstore::ChannelDetails>>,
}

/// Freezes `nodes`. Pending events are drained first (and returned), so that
/// [`assert_unchanged`] can also check that no event was produced.
pub fn freeze(nodes: &[&ChannelStore]) -> (Frozen, Vec<Event>) {
    let drained = nodes.iter().flat_map(|n| events(n)).collect();
    let frozen = Frozen {
        states: nodes.iter().map(|n| n.debug_state()).collect(),
        details: nodes.iter().map(|n| sorted_details(n)).collect(),
    };
    (frozen, drained)
}

fn sorted_details(node: &ChannelStore) -> Vec<chanstore::ChannelDetails> {
    let mut d = node.list_channels();
    d.sort_by_key(|d| d.channel_id);
    d
}

/// Asserts that `nodes` (the same, in the same order, as frozen) are exactly
/// as they were: full channel state, snapshots, no new event.
pub fn assert_unchanged(nodes: &[&ChannelStore], frozen: &Frozen) {
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(
            n.debug_state(),
            frozen.states[i],
            "state of {} changed",
            short(&n.node_id())
        );
        assert_eq!(sorted_details(n), frozen.details[i]);
        assert_eq!(events(n), vec![], "{} produced events", short(&n.node_id()));
        n.check_value_conserved().unwrap();
        n.check_indexes().unwrap();
    }
}

/// `store` written with `write` and read back as the node of `seed` (see
/// [`node`]); writing the copy gives the same bytes (read then write is a
/// fixed point).
pub fn reread(store: &ChannelStore, seed: u8) -> ChannelStore {
    let mut bytes = Vec::new();
    store.write(&mut bytes).unwrap();
    let node_secret = SecretKey::from_slice(&[seed; 32]).unwrap();
    let copy = ChannelStore::read(&mut &bytes[..], StoreConfig::default(), node_secret).unwrap();
    let mut again = Vec::new();
    copy.write(&mut again).unwrap();
    assert_eq!(bytes, again, "read then write is a fixed point");
    copy
}

/// Both ends of `id` settled at `feerate_per_kw`: usable, value conserved,
/// every commitment's fee paid.
pub fn assert_settled_at(nodes: &[&ChannelStore], id: &ChannelId, feerate_per_kw: u32) {
    for n in nodes {
        let d = n.channel_details(id).unwrap();
        assert_eq!(d.feerate_per_kw, feerate_per_kw, "{d:?}");
        assert!(d.is_usable, "{d:?}");
        n.check_value_conserved().unwrap();
        n.check_commitments_fully_paid().unwrap();
    }
}

/// Takes the messages `from` has queued (all of them, in order).
pub fn take_msgs(from: &ChannelStore) -> Vec<(PublicKey, Message)> {
    from.get_and_clear_pending_msg_events()
}

/// Delivers one message through the wire format; panics if refused.
pub fn deliver_one(from: &ChannelStore, to: &ChannelStore, msg: Message) {
    let name = msg.name();
    let wire = Message::decode(&msg.encode()).expect("our own messages decode");
    to.handle_message(&from.node_id(), wire)
        .unwrap_or_else(|e| panic!("{} refused {name}: {e}", short(&to.node_id())));
}

/// Frames TLV records as the store does (`docs/FORMAT.md`): version byte,
/// records, then the checksum record (type 65534, sha256(...)[..4]). For
/// tests that build or alter stored records by hand.
pub fn frame_records(version: u8, records: &[u8]) -> Vec<u8> {
    use bitcoin::hashes::{sha256, Hash};
    let mut out = vec![version];
    out.extend_from_slice(records);
    let sum = sha256::Hash::hash(&out).to_byte_array();
    out.extend_from_slice(&[0xfd, 0xff, 0xfe, 4]);
    out.extend_from_slice(&sum[..4]);
    out
}

/// Delivers every message between `a` and `b` until both are quiet,
/// tolerating refusals (returned, with the refused message's name), and
/// audits both after each round: every commitment fully paid, no value
/// created or lost. For races where a channel may fail but must never sign
/// or take what its funder cannot pay.
#[allow(dead_code)]
pub fn deliver_auditing(a: &ChannelStore, b: &ChannelStore) -> Vec<(&'static str, StoreError)> {
    let mut refusals = Vec::new();
    for _ in 0..100 {
        let mut moved = false;
        for (from, to) in [(a, b), (b, a)] {
            for (_, m) in from.get_and_clear_pending_msg_events() {
                let name = m.name();
                if let Err(e) = to.handle_message(&from.node_id(), m) {
                    refusals.push((name, e));
                }
                moved = true;
            }
        }
        for n in [a, b] {
            n.check_commitments_fully_paid().unwrap();
            n.check_value_conserved().unwrap();
        }
        if !moved {
            break;
        }
    }
    refusals
}
