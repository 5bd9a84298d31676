//! Lazy batches (`src/store/journal.rs`) at a forwarding hub. A pays C through
//! the durable hub H. A's `revoke_and_ack` makes the incoming HTLC
//! irrevocable at H: that section queues the forward (a work item in its
//! batch) and sends nothing, so its batch is lazy. The forward then goes out
//! to C, taken with `get_and_clear_pending_msg_events_for(&[C])`, and H
//! crashes (a dropped store writes nothing, so it loses exactly what was
//! not committed). H must not have sent C an HTLC it does not remember: the
//! commit before the message left must have written the lazy batch too. A
//! crash right after the revocation, before the forward, loses the lazy
//! batch and A sends the revocation again. Either way the payment ends.

mod common;

use std::sync::Arc;

use bitcoin::secp256k1::SecretKey;
use chanstore::persist::MemoryPersister;
use chanstore::{
    ChannelStore, Event, Message, PaymentPreimage, Persister, Route, RouteHop, StoreConfig,
};
use common::*;

fn hub_config() -> StoreConfig {
    StoreConfig {
        forwarding_fee_base_msat: 0,
        forwarding_fee_proportional_millionths: 0,
        ..StoreConfig::default()
    }
}

fn hub(disk: &Arc<dyn Persister>) -> ChannelStore {
    let secret = SecretKey::from_slice(&[2; 32]).unwrap();
    ChannelStore::with_persister(hub_config(), secret, HEIGHT, disk.clone()).unwrap()
}

/// Hands every message `from` has for `to` over, one section each.
fn hand_over(from: &ChannelStore, to: &ChannelStore) -> Vec<Message> {
    let msgs: Vec<_> = from
        .get_and_clear_pending_msg_events_for(&[to.node_id()])
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    for m in &msgs {
        deliver_one(from, to, m.clone());
    }
    msgs
}

fn run(forward_before_crash: bool) {
    let disk: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let (a, c) = (node(1), node(3));
    let h = hub(&disk);
    connect_all(&[&a, &h, &c]);
    let (ah, scid_ah) = open_channel(&a, &h, 1_000_000, 0);
    let (hc, scid_hc) = open_channel(&h, &c, 1_000_000, 0);
    let route = Route {
        hops: vec![
            RouteHop {
                node_id: h.node_id(),
                short_channel_id: scid_ah,
                fee_msat: 0,
                cltv_expiry_delta: u32::from(h.config().cltv_expiry_delta),
            },
            RouteHop {
                node_id: c.node_id(),
                short_channel_id: scid_hc,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            },
        ],
    };
    let p = PaymentPreimage([0x4b; 32]);
    a.pay_invoice(&route, p.payment_hash(), 10_000_000).unwrap();
    hand_over(&a, &h); // update_add_htlc, commitment_signed
    hand_over(&h, &a); // revoke_and_ack, commitment_signed
    let raa = hand_over(&a, &h); // A's revoke_and_ack: the lazy batch at H
    assert!(matches!(raa[..], [Message::RevokeAndAck(_)]), "{raa:?}");
    if forward_before_crash {
        assert_eq!(h.process_pending_forwards(), 1);
        let sent = hand_over(&h, &c);
        assert!(
            sent.iter().any(|m| matches!(m, Message::UpdateAddHtlc(_))),
            "{sent:?}"
        );
        // C holds the HTLC now (and answers; lost with H).
        drop(take_msgs(&c));
    }
    // H crashes: what was not committed is gone.
    drop(h);
    let h = hub(&disk);
    if forward_before_crash {
        assert_eq!(
            h.channel_details(&hc).unwrap().pending_htlcs,
            1,
            "H sent C an HTLC it forgot in the crash"
        );
    } else {
        // The crash did lose the lazy batch: no forward came back with H.
        assert_eq!(h.process_pending_forwards(), 0);
        assert_eq!(h.channel_details(&hc).unwrap().pending_htlcs, 0);
    }
    for peer in [&a, &c] {
        peer.peer_disconnected(&h.node_id());
    }
    connect(&a, &h);
    connect(&h, &c);
    deliver_all(&[&a, &h, &c]);
    assert!(
        events(&c)
            .iter()
            .any(|e| matches!(e, Event::PaymentReceived { .. })),
        "C was paid"
    );
    c.claim_funds(p).unwrap();
    deliver_all(&[&a, &h, &c]);
    assert!(events(&a)
        .iter()
        .any(|e| matches!(e, Event::PaymentSent { .. })));
    assert_eq!(h.channel_details(&ah).unwrap().balance_msat, 10_000_000);
    assert_eq!(c.channel_details(&hc).unwrap().balance_msat, 10_000_000);
    for n in [&a, &h, &c] {
        n.check_value_conserved().unwrap();
        n.check_indexes().unwrap();
    }
}

#[test]
fn hub_crash_after_the_lazy_revocation_loses_it_and_a_resends() {
    run(false);
}

#[test]
fn hub_crash_after_the_forward_left_keeps_the_lazy_revocation() {
    run(true);
}
