//! Durable state: restart from a persister mid-payment, re-forwarding of
//! HTLCs whose forward was lost, whole-store write/read.

mod common;

use std::sync::Arc;

use bitcoin::secp256k1::SecretKey;
use chanstore::persist::decode_channel_details;
use chanstore::{
    ChannelStore, Event, MemoryPersister, PaymentPreimage, Persister, Route, RouteHop, StoreConfig,
};
use common::*;

fn durable(seed: u8, persister: &Arc<MemoryPersister>) -> ChannelStore {
    ChannelStore::with_persister(
        StoreConfig::default(),
        SecretKey::from_slice(&[seed; 32]).unwrap(),
        HEIGHT,
        persister.clone() as Arc<dyn Persister>,
    )
    .unwrap()
}

fn reconnect(nodes: &[&ChannelStore]) {
    for a in nodes {
        for b in nodes {
            if a.node_id() != b.node_id() {
                a.peer_disconnected(&b.node_id());
            }
        }
    }
    connect_all(nodes);
}

fn route(hops: &[(&ChannelStore, chanstore::ShortChannelId, u64)]) -> Route {
    Route {
        hops: hops
            .iter()
            .map(|(n, scid, fee)| RouteHop {
                node_id: n.node_id(),
                short_channel_id: *scid,
                fee_msat: *fee,
                cltv_expiry_delta: if *fee > 0 { 72 } else { 0 },
            })
            .collect(),
    }
}

#[test]
fn restart_mid_payment_completes_once() {
    let (pa, pb) = (
        Arc::new(MemoryPersister::new()),
        Arc::new(MemoryPersister::new()),
    );
    let (a, b) = (durable(1, &pa), durable(2, &pb));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let preimage = PaymentPreimage([3; 32]);
    a.pay_invoice(&route(&[(&b, scid, 0)]), preimage.payment_hash(), 5_000_000)
        .unwrap();
    // Deliver the add and the first commitment_signed only; then both crash.
    for (_, m) in a.get_and_clear_pending_msg_events() {
        b.handle_message(&a.node_id(), m).unwrap();
    }
    drop((a, b));
    let (a, b) = (durable(1, &pa), durable(2, &pb));
    connect_all(&[&a, &b]);
    deliver_all(&[&a, &b]);
    assert!(events(&b).contains(&Event::PaymentReceived {
        payment_hash: preimage.payment_hash(),
        amount_msat: 5_000_000,
        payment_preimage: None,
    }));
    b.claim_funds(preimage).unwrap();
    deliver_all(&[&a, &b]);
    let sent = events(&a)
        .iter()
        .filter(|e| matches!(e, Event::PaymentSent { .. }))
        .count();
    assert_eq!(sent, 1);
    assert_eq!(a.channel_details(&id).unwrap().balance_msat, 995_000_000);
    assert_eq!(b.channel_details(&id).unwrap().balance_msat, 5_000_000);
}

/// Three nodes A-B-C; B is the one that crashes.
fn three() -> (
    Arc<MemoryPersister>,
    ChannelStore,
    ChannelStore,
    ChannelStore,
    chanstore::ShortChannelId,
    chanstore::ShortChannelId,
) {
    let pb = Arc::new(MemoryPersister::new());
    let (a, b, c) = (node(1), durable(2, &pb), node(3));
    connect_all(&[&a, &b, &c]);
    let (_, ab) = open_channel(&a, &b, 1_000_000, 0);
    let (_, bc) = open_channel(&b, &c, 1_000_000, 0);
    (pb, a, b, c, ab, bc)
}

/// Delivers everything but never lets `hub` process its forward queue.
fn deliver_without_forwarding(nodes: &[&ChannelStore]) {
    loop {
        let mut moved = false;
        for from in nodes {
            for (to, m) in from.get_and_clear_pending_msg_events() {
                let dest = nodes.iter().find(|n| n.node_id() == to).unwrap();
                dest.handle_message(&from.node_id(), m).unwrap();
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

/// A forward decided (and written in the same batch as the HTLC it
/// forwards) but not yet applied survives a restart and is applied once.
/// There is no "lost decision" case left to test: a crash can only cut
/// between batches (`tests/crash_points.rs` cuts at every one).
#[test]
fn forward_queued_at_a_crash_is_applied_once() {
    {
        let (pb, a, b, c, ab, bc) = three();
        let amount = 2_000_000;
        let fee = b.config().forwarding_fee_msat(amount);
        let preimage = PaymentPreimage([5; 32]);
        a.send_payment(
            &route(&[(&b, ab, fee), (&c, bc, 0)]),
            preimage.payment_hash(),
            amount,
            invoice(
                &route(&[(&b, ab, fee), (&c, bc, 0)]),
                preimage.payment_hash(),
            ),
        )
        .unwrap();
        deliver_without_forwarding(&[&a, &b, &c]);
        assert_eq!(
            b.pending_forwards(),
            1,
            "the HTLC is committed at B and its forward queued"
        );
        drop(b);
        let b = durable(2, &pb);
        reconnect(&[&a, &b, &c]);
        deliver_all(&[&a, &b, &c]);
        assert!(
            events(&c)
                .iter()
                .any(|e| matches!(e, Event::PaymentReceived { .. })),
            "the forward was applied after the restart"
        );
        c.claim_funds(preimage).unwrap();
        deliver_all(&[&a, &b, &c]);
        let sent = events(&a)
            .iter()
            .filter(|e| matches!(e, Event::PaymentSent { .. }))
            .count();
        assert_eq!(sent, 1);
        for n in [&a, &b, &c] {
            n.check_value_conserved().unwrap();
            assert!(n.list_channels().iter().all(|d| d.pending_htlcs == 0));
        }
    }
}

/// A fulfill from downstream, queued for upstream in the same batch as the
/// preimage's arrival, is passed upstream once after a restart.
#[test]
fn fulfill_not_yet_passed_upstream_is_passed_after_restart() {
    {
        let (pb, a, b, c, ab, bc) = three();
        let amount = 2_000_000;
        let fee = b.config().forwarding_fee_msat(amount);
        let preimage = PaymentPreimage([6; 32]);
        a.send_payment(
            &route(&[(&b, ab, fee), (&c, bc, 0)]),
            preimage.payment_hash(),
            amount,
            invoice(
                &route(&[(&b, ab, fee), (&c, bc, 0)]),
                preimage.payment_hash(),
            ),
        )
        .unwrap();
        deliver_all(&[&a, &b, &c]);
        c.claim_funds(preimage).unwrap();
        // C's fulfill reaches B; B queues it for A but crashes before applying it.
        for (_, m) in c.get_and_clear_pending_msg_events() {
            b.handle_message(&c.node_id(), m).unwrap();
        }
        assert_eq!(b.pending_forwards(), 1);
        drop(b);
        let b = durable(2, &pb);
        reconnect(&[&a, &b, &c]);
        deliver_all(&[&a, &b, &c]);
        let sent = events(&a)
            .iter()
            .filter(|e| matches!(e, Event::PaymentSent { .. }))
            .count();
        assert_eq!(sent, 1);
        for n in [&a, &b, &c] {
            n.check_value_conserved().unwrap();
            assert!(n.list_channels().iter().all(|d| d.pending_htlcs == 0));
        }
    }
}

#[test]
fn write_read_round_trip_is_stable() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 300_000_000);
    for i in 0..3u8 {
        a.send_payment(
            &route(&[(&b, scid, 0)]),
            PaymentPreimage([i; 32]).payment_hash(),
            1_000_000,
            invoice(
                &route(&[(&b, scid, 0)]),
                PaymentPreimage([i; 32]).payment_hash(),
            ),
        )
        .unwrap();
    }
    deliver_all(&[&a, &b]);
    let mut first = Vec::new();
    b.write(&mut first).unwrap();
    let restored = ChannelStore::read(
        &mut &first[..],
        StoreConfig::default(),
        SecretKey::from_slice(&[2; 32]).unwrap(),
    )
    .unwrap();
    let details = restored.channel_details(&id).unwrap();
    assert_eq!(details.pending_htlcs, 3);
    assert_eq!(details.balance_msat, 300_000_000);
    let mut second = Vec::new();
    restored.write(&mut second).unwrap();
    let again = ChannelStore::read(
        &mut &second[..],
        StoreConfig::default(),
        SecretKey::from_slice(&[2; 32]).unwrap(),
    )
    .unwrap();
    let mut third = Vec::new();
    again.write(&mut third).unwrap();
    assert_eq!(second, third, "read then write must be a fixed point");
    // The wrong node secret is refused, not silently accepted.
    assert!(ChannelStore::read(
        &mut &first[..],
        StoreConfig::default(),
        SecretKey::from_slice(&[9; 32]).unwrap()
    )
    .is_err());
    // One channel record decodes on its own.
    let record = b.encode_channel(&id).unwrap();
    let d = decode_channel_details(&record, &SecretKey::from_slice(&[2; 32]).unwrap()).unwrap();
    assert_eq!(d.pending_htlcs, 3);
}

/// A persister whose next write panics (a bug in the user's backend, or
/// an `expect` on an I/O error).
#[derive(Debug, Default)]
struct PanicOnce {
    inner: MemoryPersister,
    armed: std::sync::atomic::AtomicBool,
}

impl Persister for PanicOnce {
    fn write_batch(
        &self,
        batch: &[(chanstore::persist::Key, Option<Vec<u8>>)],
    ) -> std::io::Result<()> {
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            panic!("persister bug");
        }
        self.inner.write_batch(batch)
    }
    fn load(
        &self,
    ) -> Result<std::collections::BTreeMap<chanstore::persist::Key, Vec<u8>>, chanstore::StoreError>
    {
        self.inner.load()
    }
}

/// A persister's write that panics (after the section, in the flush of a
/// `send_payment`) took the batches out of the journal and lost them; the
/// store ran on, the next flush marked them durable unwritten, and the
/// `update_add_htlc` left while the disk held no HTLC (found by a review).
/// It now fails the store, as a failed write does: nothing more leaves,
/// and every later call is refused until it is reopened.
#[test]
fn a_persister_that_panics_fails_the_store() {
    let disk = Arc::new(PanicOnce::default());
    let open = |disk: &Arc<PanicOnce>| node_on(1, StoreConfig::default(), disk.clone());
    let (a, b) = (open(&disk), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let route = route_to(&b, scid);
    let hash = PaymentPreimage([5; 32]).payment_hash();
    disk.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        a.pay_invoice(&route, hash, 1_000_000)
    }));
    assert!(sent.is_err(), "the persister's panic reaches the caller");
    assert!(a.is_failed());
    assert!(matches!(a.flush(), Err(chanstore::StoreError::Persist(_))));
    assert!(
        take_msgs(&a).is_empty(),
        "nothing leaves that is not on disk"
    );
    drop(a);
    let reopened = open(&disk);
    assert_eq!(reopened.channel_details(&id).unwrap().pending_htlcs, 0);
}
