//! Failures coming back to payments we sent, and parts on channels that
//! close: each part ends once, a hostile hub's failure never blames the node
//! behind it, and a part of a payment already claimed is refused. From an
//! adversarial review, which found the last defect (the first test).

mod common;

use bitcoin::hashes::Hash;
use chanstore::onion::failure::{build_failure, build_failure_padded, wrap_failure};
use chanstore::onion::packet::peel_onion;
use chanstore::{ChannelStore, Event, Message, StoreError};
use common::*;

fn count(evs: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    evs.iter().filter(|e| f(e)).count()
}

fn sent(evs: &[Event]) -> usize {
    count(evs, |e| matches!(e, Event::PaymentSent { .. }))
}

fn failed(evs: &[Event]) -> usize {
    count(evs, |e| matches!(e, Event::PaymentFailed { .. }))
}

/// MPP: part 1 (3M of 5M) waits on a channel that force-closed; part 2 (2M)
/// completes the payment and is fulfilled and settled (`PaymentSent`). The
/// recipient has claimed: `send_payment_part` must refuse another part of
/// the hash ("Refused with DuplicatePayment once a part of the payment was
/// fulfilled"), since the recipient can claim it with the preimage it
/// already revealed.
#[test]
fn a_part_after_the_payment_was_claimed_is_refused_while_another_waits_on_chain() {
    let (a, c) = (node(1), node(3));
    let p = preimage(0xf1, 1);
    let hash = p.payment_hash();
    let (scid1, ch2, fields) = part_on_chain(&a, &c, &p);
    a.send_payment_part(
        &route_to(&c, scid1),
        hash,
        2_000_000,
        5_000_000,
        fields.clone(),
    )
    .unwrap();
    deliver_all(&[&a, &c]);
    assert!(events(&c).iter().any(|e| matches!(
        e,
        Event::PaymentReceived {
            amount_msat: 5_000_000,
            ..
        }
    )));
    c.claim_funds(p).unwrap();
    deliver_all(&[&a, &c]);
    assert_eq!(sent(&events(&a)), 1, "the live part is paid");
    // The part on chain is still A's to settle: the payment is claimed.
    assert!(!a.closed_channel(&ch2).unwrap().htlcs.is_empty());
    let again = a.send_payment_part(&route_to(&c, scid1), hash, 5_000_000, 5_000_000, fields);
    if again.is_ok() {
        deliver_all(&[&a, &c]);
        let evs = events(&c);
        if let Some(Event::PaymentReceived { amount_msat, .. }) = evs
            .iter()
            .find(|e| matches!(e, Event::PaymentReceived { .. }))
        {
            c.claim_funds(p).unwrap();
            deliver_all(&[&a, &c]);
            panic!(
                "a claimed payment was paid again: C announced {amount_msat} more, A's sends: {:?}",
                events(&a)
            );
        }
        panic!("a part of a claimed payment went out: C saw {evs:?}");
    }
    assert_eq!(
        again,
        Err(StoreError::DuplicatePayment { payment_hash: hash })
    );
}

/// A (payer) - B (hub) - C (recipient). C fails; B (hostile) replaces the
/// `reason` it sends A with `reason(ss_b, original)`; `ss_b` is B's shared
/// secret with A (B can compute it). Returns A's events.
fn hostile_hub_reason(
    seed: u8,
    make: impl Fn(&[u8; 32], &[u8]) -> Vec<u8>,
) -> (Vec<Event>, ChannelStore, ChannelStore) {
    let (a, b, c) = (node(1), node(2), node(3));
    connect_all(&[&a, &b, &c]);
    let (_, ab) = open_channel(&a, &b, 1_000_000, 0);
    let (_, bc) = open_channel(&b, &c, 1_000_000, 0);
    let p = preimage(0xf2, u16::from(seed));
    let hash = p.payment_hash();
    let route = route_through(&b, ab, &c, bc, 1_000_000);
    a.pay_invoice(&route, hash, 1_000_000).unwrap();
    // B's shared secret: peel A's onion as B.
    let mut ss_b = None;
    for (_, m) in take_msgs(&a) {
        if let Message::UpdateAddHtlc(add) = &m {
            let peeled =
                peel_onion(&secret_of(&b.node_id()), &add.onion_routing_packet, &hash.0).unwrap();
            ss_b = Some(match peeled {
                chanstore::onion::packet::Peeled::Forward { shared_secret, .. }
                | chanstore::onion::packet::Peeled::Final { shared_secret, .. } => shared_secret,
            });
        }
        deliver_one(&a, &b, m);
    }
    let ss_b = ss_b.unwrap();
    deliver_all(&[&a, &b, &c]);
    let _ = events(&c);
    c.fail_htlc_backwards(&hash).unwrap();
    // Deliver, editing B's update_fail_htlc to A.
    for _ in 0..50 {
        let mut moved = false;
        for from in [&a, &b, &c] {
            for (to, mut m) in take_msgs(from) {
                if from.node_id() == b.node_id() && to == a.node_id() {
                    if let Message::UpdateFailHtlc(f) = &mut m {
                        // Undo B's layer to get C's packet, then craft.
                        let mut inner = f.reason.clone();
                        wrap_failure(&ss_b, &mut inner);
                        f.reason = make(&ss_b, &inner);
                    }
                }
                let dest = [&a, &b, &c]
                    .into_iter()
                    .find(|n| n.node_id() == to)
                    .unwrap();
                let wire = Message::decode(&m.encode()).expect("decodes");
                dest.handle_message(&from.node_id(), wire).unwrap();
                moved = true;
            }
            if from.process_pending_forwards() > 0 {
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let evs = events(&a);
    a.check_value_conserved().unwrap();
    (evs, a, b)
}

/// Hostile reasons from the hub: every one ends the payment exactly once,
/// never panics, and never names C (whose secret B does not have).
#[test]
fn hostile_reasons_from_the_hub_end_the_payment_once_and_never_blame_c() {
    type Maker = Box<dyn Fn(&[u8; 32], &[u8]) -> Vec<u8>>;
    let authentic = |ss: &[u8; 32], body: &[u8]| {
        // HMAC with B's um key over body, then B's ammag layer.
        use bitcoin::hashes::{hmac, sha256, HashEngine};
        let um = chanstore::onion::keys::derive_key(chanstore::onion::keys::KeyType::Um, ss);
        let mut eng = hmac::HmacEngine::<sha256::Hash>::new(&um);
        eng.input(body);
        let mut pkt = hmac::Hmac::<sha256::Hash>::from_engine(eng)
            .to_byte_array()
            .to_vec();
        pkt.extend_from_slice(body);
        wrap_failure(ss, &mut pkt);
        pkt
    };
    let cases: Vec<(&str, Maker)> = vec![
        ("empty", Box::new(|_, _| vec![])),
        ("one byte", Box::new(|_, _| vec![0x40])),
        ("32 zero bytes", Box::new(|_, _| vec![0; 32])),
        (
            "truncated",
            Box::new(|_, inner: &[u8]| inner[..100].to_vec()),
        ),
        ("max size garbage", Box::new(|_, _| vec![0xa5; 65_000])),
        (
            "unknown code from B",
            Box::new(|ss: &[u8; 32], _: &[u8]| build_failure(ss, 0x7777, &[1, 2, 3])),
        ),
        (
            "update code with bad channel_update",
            Box::new(|ss: &[u8; 32], _: &[u8]| build_failure(ss, 0x1007, &[0xff, 0xff, 1])),
        ),
        (
            "final-only PERM code from the middle",
            Box::new(|ss: &[u8; 32], _: &[u8]| build_failure(ss, 0x400f, &[])),
        ),
        (
            "length past the end",
            Box::new(move |ss: &[u8; 32], _: &[u8]| authentic(ss, &[0xff, 0xff, 0x40, 0x0f])),
        ),
        (
            "zero code",
            Box::new(|ss: &[u8; 32], _: &[u8]| build_failure(ss, 0, &[])),
        ),
        (
            "huge padded",
            Box::new(|ss: &[u8; 32], _: &[u8]| build_failure_padded(ss, 0x2002, &[], 65_000)),
        ),
    ];
    for (i, (name, make)) in cases.into_iter().enumerate() {
        let (evs, _a, b) = hostile_hub_reason(i as u8, make);
        assert_eq!(failed(&evs), 1, "{name}: {evs:?}");
        assert_eq!(sent(&evs), 0, "{name}");
        let Event::PaymentFailed { failing_node, .. } = &evs[0] else {
            panic!("{name}: {evs:?}")
        };
        assert!(
            failing_node.is_none() || *failing_node == Some(b.node_id()),
            "{name}: {evs:?}"
        );
    }
}

fn b_on(p: std::sync::Arc<dyn chanstore::Persister>) -> ChannelStore {
    node_on(2, chanstore::StoreConfig::default(), p)
}

/// A - B (hub, durable) - C. A force-closes A-B while the forward is at C;
/// B restarts; C then fails (or fulfills) the HTLC. The failure goes
/// nowhere live (A's HTLC times out on chain: one PaymentFailed when A
/// reports it); a fulfill becomes B's on-chain claim, once.
#[test]
fn a_downstream_resolution_after_the_upstream_closed_and_a_restart() {
    for fulfill in [false, true] {
        let disk = std::sync::Arc::new(chanstore::MemoryPersister::new());
        let (a, c) = (node(1), node(3));
        let b = b_on(disk.clone());
        connect_all(&[&a, &b, &c]);
        let (ab_id, ab) = open_channel(&a, &b, 1_000_000, 0);
        let (_, bc) = open_channel(&b, &c, 1_000_000, 0);
        let p = preimage(0xf4, u16::from(fulfill));
        let hash = p.payment_hash();
        let route = route_through(&b, ab, &c, bc, 1_000_000);
        a.pay_invoice(&route, hash, 1_000_000).unwrap();
        deliver_all(&[&a, &b, &c]);
        assert!(events(&c)
            .iter()
            .any(|e| matches!(e, Event::PaymentReceived { .. })));
        a.force_close_channel(&ab_id).unwrap();
        deliver_all(&[&a, &b, &c]);
        let _ = events(&a);
        let _ = events(&b);
        // B restarts.
        b.flush().unwrap();
        drop(b);
        let b = b_on(disk.clone());
        for n in [&a, &c] {
            n.peer_disconnected(&b.node_id());
        }
        connect_all(&[&a, &b, &c]);
        deliver_all(&[&a, &b, &c]);
        let _ = events(&b);
        if fulfill {
            c.claim_funds(p).unwrap();
        } else {
            c.fail_htlc_backwards(&hash).unwrap();
        }
        deliver_all(&[&a, &b, &c]);
        let evs_b = events(&b);
        let claims = count(&evs_b, |e| {
            matches!(e, Event::OnChainResolutionRequired { htlc }
                if htlc.payment_preimage == Some(p) && htlc.channel_id == ab_id)
        });
        assert_eq!(claims, usize::from(fulfill), "fulfill {fulfill}: {evs_b:?}");
        // The record is gone (nothing left in it) or names no HTLC waiting.
        if let Some(rec) = b.closed_channel(&ab_id) {
            let awaiting = rec
                .htlcs
                .iter()
                .filter(|h| h.action == chanstore::onchain::OnChainAction::AwaitPreimage)
                .count();
            assert_eq!(awaiting, 0, "fulfill {fulfill}: {rec:?}");
        } else {
            assert!(!fulfill, "B must keep its claim");
        }
        // A: its HTLC is on chain, nothing yet; then one event.
        let evs_a = events(&a);
        assert_eq!(sent(&evs_a) + failed(&evs_a), 0, "{evs_a:?}");
        let outcome = if fulfill {
            chanstore::onchain::OnChainOutcome::Fulfilled(p)
        } else {
            chanstore::onchain::OnChainOutcome::Failed
        };
        a.htlc_resolved_on_chain(
            &ab_id,
            chanstore::onchain::HtlcDirection::Offered,
            0,
            outcome,
        )
        .unwrap();
        let evs_a = events(&a);
        assert_eq!(
            (sent(&evs_a), failed(&evs_a)),
            (usize::from(fulfill), usize::from(!fulfill))
        );
        assert!(a
            .htlc_resolved_on_chain(
                &ab_id,
                chanstore::onchain::HtlcDirection::Offered,
                0,
                outcome
            )
            .is_err());
        for n in [&a, &b, &c] {
            n.check_value_conserved().unwrap();
        }
    }
}
