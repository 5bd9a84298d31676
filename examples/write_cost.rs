//! What the hub of a line A - B - C writes to its persister: batches (each
//! one an fsync with the file persister) and bytes of values, per HTLC it
//! forwards, with other HTLCs in flight, and under 483 `update_add_htlc` a
//! peer never signs.
//!
//! B is durable (a counting wrapper around `MemoryPersister`); A and C are
//! in memory. Run with `cargo run --release --example write_cost`.
//!
//! Only public APIs present since version 0.1 are used, so the same file
//! measures older trees; `config()` is the one place that may differ.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::SecretKey;
use bitcoin::{OutPoint, Txid};
use chanstore::persist::Key;
use chanstore::{
    ChannelId, ChannelStore, Event, MemoryPersister, Message, PaymentPreimage, Persister, Route,
    RouteHop, ShortChannelId, StoreConfig, StoreError,
};

const HEIGHT: u32 = 800_000;

/// The configuration of all three nodes. Dust HTLCs are not capped, so the
/// dust-sized background HTLCs are accepted.
fn config() -> StoreConfig {
    StoreConfig {
        max_dust_htlc_exposure_msat: u64::MAX,
        ..StoreConfig::default()
    }
}

/// Counts batches and bytes of values (by kind of key) and keeps the data
/// in a `MemoryPersister`.
#[derive(Debug, Default)]
struct Counting {
    inner: MemoryPersister,
    totals: Mutex<Totals>,
}

#[derive(Debug, Default, Clone)]
struct Totals {
    batches: usize,
    /// Bytes of values written, by kind of key (`Channel`, `Htlc`, ...).
    bytes: BTreeMap<String, usize>,
    /// Values written, by kind of key.
    values: BTreeMap<String, usize>,
}

impl Totals {
    fn bytes(&self) -> usize {
        self.bytes.values().sum()
    }

    fn since(&self, before: &Totals) -> Totals {
        let minus = |now: &BTreeMap<String, usize>, then: &BTreeMap<String, usize>| {
            let mut d = now.clone();
            for (k, v) in then {
                *d.get_mut(k).unwrap() -= v;
            }
            d.retain(|_, v| *v > 0);
            d
        };
        Totals {
            batches: self.batches - before.batches,
            bytes: minus(&self.bytes, &before.bytes),
            values: minus(&self.values, &before.values),
        }
    }

    fn kinds(&self) -> String {
        self.bytes
            .iter()
            .map(|(k, v)| format!("{k} {v}/{}", self.values.get(k).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The kind of a key: its variant's name.
fn kind(key: &Key) -> String {
    let debug = format!("{key:?}");
    debug.split('(').next().unwrap_or("").to_string()
}

impl Persister for Counting {
    fn write_batch(&self, batch: &[(Key, Option<Vec<u8>>)]) -> std::io::Result<()> {
        {
            let mut t = self.totals.lock().unwrap();
            t.batches += 1;
            for (key, value) in batch {
                if let Some(v) = value {
                    *t.bytes.entry(kind(key)).or_default() += v.len();
                    *t.values.entry(kind(key)).or_default() += 1;
                }
            }
        }
        self.inner.write_batch(batch)
    }

    fn load(&self) -> Result<BTreeMap<Key, Vec<u8>>, StoreError> {
        self.inner.load()
    }
}

impl Counting {
    fn totals(&self) -> Totals {
        self.totals.lock().unwrap().clone()
    }
}

// ---- nodes and a courier (as in tests/common) ----

fn secret(seed: u8) -> SecretKey {
    SecretKey::from_slice(&[seed; 32]).unwrap()
}

fn node(seed: u8) -> ChannelStore {
    ChannelStore::new(config(), secret(seed), HEIGHT).unwrap()
}

fn connect_all(nodes: &[&ChannelStore]) {
    for a in nodes {
        for b in nodes {
            if a.node_id() != b.node_id() {
                a.peer_connected(b.node_id());
            }
        }
    }
}

/// Delivers messages and processes forwards until every store is quiet.
fn deliver_all(nodes: &[&ChannelStore]) {
    loop {
        let mut progress = false;
        for from in nodes {
            for (to, msg) in from.get_and_clear_pending_msg_events() {
                let dest = nodes.iter().find(|n| n.node_id() == to).unwrap();
                let name = msg.name();
                dest.handle_message(&from.node_id(), msg)
                    .unwrap_or_else(|e| panic!("refused {name}: {e}"));
                progress = true;
            }
            if from.process_pending_forwards() > 0 {
                progress = true;
            }
        }
        if !progress {
            return;
        }
    }
}

fn events(node: &ChannelStore) -> Vec<Event> {
    node.get_and_clear_pending_events()
}

fn open_channel(
    a: &ChannelStore,
    b: &ChannelStore,
    funding_sat: u64,
    push_msat: u64,
    block: u32,
) -> (ChannelId, ShortChannelId) {
    deliver_all(&[a, b]); // the inits, if the peers just connected
    let temp = a
        .create_channel(b.node_id(), funding_sat, push_msat)
        .unwrap();
    deliver_all(&[a, b]);
    events(a);
    let mut txid = [0u8; 32];
    txid[..4].copy_from_slice(&block.to_be_bytes());
    let outpoint = OutPoint::new(Txid::from_byte_array(txid), 0);
    let id = a
        .funding_transaction_generated(&temp, &b.node_id(), outpoint)
        .unwrap();
    deliver_all(&[a, b]);
    let scid = ShortChannelId::new(block, 1, 0).unwrap();
    a.funding_confirmed(&id, scid).unwrap();
    b.funding_confirmed(&id, scid).unwrap();
    deliver_all(&[a, b]);
    for n in [a, b] {
        assert!(events(n)
            .iter()
            .any(|e| matches!(e, Event::ChannelReady { .. })));
    }
    (id, scid)
}

fn preimage(tag: u8, n: u16) -> PaymentPreimage {
    let mut bytes = [tag; 32];
    bytes[..2].copy_from_slice(&n.to_be_bytes());
    PaymentPreimage(bytes)
}

/// An `update_add_htlc` built by hand (a one-hop onion paying `to`), as a
/// peer that skips its own checks would send it.
fn craft_add(
    to: bitcoin::secp256k1::PublicKey,
    channel_id: ChannelId,
    id: u64,
    amount_msat: u64,
    n: u16,
) -> Message {
    use chanstore::onion::packet::{construct_onion, OnionHop};
    use chanstore::onion::payload::HopPayload;
    let cltv_expiry = HEIGHT + 100;
    let payment_hash = preimage(7, n).payment_hash();
    let payload = HopPayload::Receive {
        amt_to_forward: amount_msat,
        outgoing_cltv_value: cltv_expiry,
        payment_data: None,
        payment_metadata: None,
    };
    let hop = OnionHop {
        node_id: to,
        payload: payload.encode(),
    };
    let session_key = SecretKey::from_slice(&[0x41; 32]).unwrap();
    let (onion, _) = construct_onion(&session_key, &[hop], &payment_hash.0).unwrap();
    Message::UpdateAddHtlc(chanstore::message::UpdateAddHtlc {
        channel_id,
        id,
        amount_msat,
        payment_hash,
        cltv_expiry,
        onion_routing_packet: onion,
    })
}

/// What C's invoice for `hash` tells the sender.
fn invoice(c: &ChannelStore, hash: chanstore::PaymentHash) -> chanstore::RecipientOnionFields {
    let secret = c.create_inbound_payment_for_hash(hash, None, 3600).unwrap();
    chanstore::RecipientOnionFields::secret_only(secret)
}

/// A - B - C, B durable. B funds B-C; A funds A-B and pushes B 300k sat.
struct Net {
    a: ChannelStore,
    b: ChannelStore,
    c: ChannelStore,
    pb: Arc<Counting>,
    ab: ChannelId,
    scid_ab: ShortChannelId,
    scid_bc: ShortChannelId,
}

impl Net {
    fn new() -> Net {
        let pb = Arc::new(Counting::default());
        let a = node(1);
        let b = ChannelStore::with_persister(
            config(),
            secret(2),
            HEIGHT,
            pb.clone() as Arc<dyn Persister>,
        )
        .unwrap();
        let c = node(3);
        connect_all(&[&a, &b, &c]);
        let (ab, scid_ab) = open_channel(&a, &b, 1_000_000, 300_000_000, 1);
        let (_, scid_bc) = open_channel(&b, &c, 1_000_000, 0, 2);
        Net {
            a,
            b,
            c,
            pb,
            ab,
            scid_ab,
            scid_bc,
        }
    }

    fn nodes(&self) -> [&ChannelStore; 3] {
        [&self.a, &self.b, &self.c]
    }

    fn route(&self, amount_msat: u64) -> Route {
        Route {
            hops: vec![
                RouteHop {
                    node_id: self.b.node_id(),
                    short_channel_id: self.scid_ab,
                    fee_msat: self.b.config().forwarding_fee_msat(amount_msat),
                    cltv_expiry_delta: self.b.config().cltv_expiry_delta.into(),
                },
                RouteHop {
                    node_id: self.c.node_id(),
                    short_channel_id: self.scid_bc,
                    fee_msat: 0,
                    cltv_expiry_delta: 0,
                },
            ],
        }
    }

    /// Pending HTLCs in B's channel with A.
    fn pending_ab(&self) -> usize {
        self.b.channel_details(&self.ab).unwrap().pending_htlcs
    }
}

/// What B writes to forward one 5,000,000 msat HTLC from A to C and settle
/// it, with `background` HTLCs of `background_msat` (A to C, unclaimed) in
/// flight in both of B's channels. Returns (add phase, settle phase).
fn forward_one(background: u16, background_msat: u64) -> (Totals, Totals) {
    let net = Net::new();
    for i in 0..background {
        net.a
            .send_payment(
                &net.route(background_msat),
                preimage(8, i).payment_hash(),
                background_msat,
                invoice(&net.c, preimage(8, i).payment_hash()),
            )
            .unwrap();
    }
    deliver_all(&net.nodes());
    assert_eq!(net.pending_ab(), usize::from(background));
    for n in net.nodes() {
        events(n);
    }
    let start = net.pb.totals();
    let p = preimage(0xc, 999);
    let amount = 5_000_000;
    net.a
        .send_payment(
            &net.route(amount),
            p.payment_hash(),
            amount,
            invoice(&net.c, p.payment_hash()),
        )
        .unwrap();
    deliver_all(&net.nodes());
    assert!(events(&net.c).contains(&Event::PaymentReceived {
        payment_hash: p.payment_hash(),
        amount_msat: amount,
        payment_preimage: None,
    }));
    let added = net.pb.totals();
    net.c.claim_funds(p).unwrap();
    deliver_all(&net.nodes());
    assert!(events(&net.a)
        .iter()
        .any(|e| matches!(e, Event::PaymentSent { .. })));
    assert_eq!(net.pending_ab(), usize::from(background));
    let end = net.pb.totals();
    (added.since(&start), end.since(&added))
}

/// 483 adds from A that A never signs, then a disconnection and
/// reconnection (with the `channel_reestablish` exchange), three times.
/// Returns what B wrote, and how many adds it refused.
fn unsigned_adds() -> (Totals, usize) {
    let net = Net::new();
    for n in net.nodes() {
        events(n);
    }
    let start = net.pb.totals();
    let mut refused = 0;
    for _round in 0..3 {
        for id in 0..483u64 {
            let add = craft_add(net.b.node_id(), net.ab, id, 1_000, id as u16);
            if net.b.handle_message(&net.a.node_id(), add).is_err() {
                refused += 1;
            }
        }
        net.a.peer_disconnected(&net.b.node_id());
        net.b.peer_disconnected(&net.a.node_id());
        connect_all(&[&net.a, &net.b]);
        deliver_all(&[&net.a, &net.b]);
    }
    assert_eq!(net.pending_ab(), 0);
    (net.pb.totals().since(&start), refused)
}

fn main() {
    println!("B = hub of A - B - C (B durable, A and C in memory); 1 batch = 1 fsync");
    println!();
    println!("Forward one 5,000,000 msat HTLC A -> C and settle it (C claims):");
    println!(
        "{:<28} {:>8} {:>10} {:>10} {:>10}  bytes/values written by key kind",
        "HTLCs in flight per channel", "batches", "bytes", "add", "settle"
    );
    for (background, msat) in [
        (0u16, 400_000u64),
        (20, 400_000),
        (100, 400_000),
        (400, 400_000),
        (100, 2_000_000),
    ] {
        let (add, settle) = forward_one(background, msat);
        let mut total = add.clone();
        total.batches += settle.batches;
        for (k, v) in &settle.bytes {
            *total.bytes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &settle.values {
            *total.values.entry(k.clone()).or_default() += v;
        }
        let label = if background == 0 {
            "0".to_string()
        } else {
            format!("{background} x {msat} msat")
        };
        println!(
            "{:<28} {:>8} {:>10} {:>10} {:>10}  {}",
            label,
            total.batches,
            total.bytes(),
            add.bytes(),
            settle.bytes(),
            total.kinds()
        );
    }
    println!();
    println!("483 unsigned update_add_htlc from A, then disconnect + reconnect, 3 times:");
    let (t, refused) = unsigned_adds();
    println!(
        "batches {}  bytes {}  ({})  adds refused {}",
        t.batches,
        t.bytes(),
        if t.bytes.is_empty() {
            "nothing".to_string()
        } else {
            t.kinds()
        },
        refused
    );
}
