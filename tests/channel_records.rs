//! The channel records 41, 42, 43
//! and 45 all at once in one channel. A funder whose fundee asked for depth
//! 6 (45), that holds the fundee's `channel_update` (43) and has two fee
//! updates in flight (33 and 42), restarts from its persister (the header
//! form) and from `write` (the whole-channel form): both read back exactly
//! what was stored, and after reconnection the channel ends at the second
//! feerate and still pays.

mod common;

use std::sync::Arc;

use bitcoin::secp256k1::SecretKey;
use chanstore::persist::MemoryPersister;
use chanstore::{
    ChannelDetails, ChannelId, ChannelStore, Event, Message, PaymentPreimage, Persister,
    ShortChannelId, StoreConfig,
};
use common::*;

fn secret(seed: u8) -> SecretKey {
    SecretKey::from_slice(&[seed; 32]).unwrap()
}

/// What records 41 to 45 carry, as the public API shows them.
fn recorded(d: &ChannelDetails) -> impl std::fmt::Debug + PartialEq {
    (
        d.counterparty_minimum_depth,
        d.confirmations_required,
        d.counterparty_forwarding_policy,
        d.feerate_per_kw,
        d.balance_msat,
        d.short_channel_id,
    )
}

/// A (durable, funder) opens to B (minimum_depth 6); the channel confirms
/// at depth 6, both are ready and have exchanged `channel_update`s.
fn open_deep(a: &ChannelStore, b: &ChannelStore) -> (ChannelId, ShortChannelId) {
    let (id, scid) = fund_and_confirm(a, b, 1_000_000, 100_000_000, 0x7e);
    for n in [a, b] {
        n.best_block_updated(HEIGHT + 5);
    }
    deliver_all(&[a, b]);
    for n in [a, b] {
        assert!(events(n)
            .iter()
            .any(|e| matches!(e, Event::ChannelReady { .. })));
    }
    (id, scid)
}

#[test]
fn pending_fees_policy_and_minimum_depth_survive_both_restarts() {
    let disk: Arc<dyn Persister> = Arc::new(MemoryPersister::new());
    let a = ChannelStore::with_persister(StoreConfig::default(), secret(1), HEIGHT, disk.clone())
        .unwrap();
    let b = node_with(
        2,
        StoreConfig {
            minimum_depth: 6,
            ..StoreConfig::default()
        },
    );
    connect_all(&[&a, &b]);
    let (id, scid) = open_deep(&a, &b);
    let d = a.channel_details(&id).unwrap();
    assert_eq!(d.counterparty_minimum_depth, Some(6));
    assert!(d.counterparty_forwarding_policy.is_some(), "{d:?}");

    // Two fee updates in flight: the first signed by A and revoked by B
    // (B's commitment_signed is lost), the second only sent.
    a.update_fee(&id, 1_000).unwrap();
    for (_, m) in take_msgs(&a) {
        b.handle_message(&a.node_id(), m).unwrap();
    }
    let answer = take_msgs(&b);
    let raa = answer
        .iter()
        .find_map(|(_, m)| matches!(m, Message::RevokeAndAck(_)).then(|| m.clone()))
        .expect("B revokes");
    a.handle_message(&b.node_id(), raa).unwrap();
    a.update_fee(&id, 2_000).unwrap();
    drop(take_msgs(&a));
    let before = a.channel_details(&id).unwrap();
    // A clean shutdown: the lazy batch of B's revoke_and_ack is written too.
    a.flush().unwrap();
    let mut whole = Vec::new();
    a.write(&mut whole).unwrap();
    drop(a);

    // The header form, from the persister.
    let a =
        ChannelStore::with_persister(StoreConfig::default(), secret(1), HEIGHT + 5, disk).unwrap();
    assert_eq!(
        recorded(&a.channel_details(&id).unwrap()),
        recorded(&before)
    );
    let mut again = Vec::new();
    a.write(&mut again).unwrap();
    assert_eq!(
        whole, again,
        "the persister's form reads back what write wrote"
    );

    // The whole-channel form, from write.
    let c = ChannelStore::read(&mut &whole[..], StoreConfig::default(), secret(1)).unwrap();
    assert_eq!(
        recorded(&c.channel_details(&id).unwrap()),
        recorded(&before)
    );
    drop(c);

    b.peer_disconnected(&a.node_id());
    connect_all(&[&a, &b]);
    deliver_all(&[&a, &b]);
    assert_settled_at(&[&a, &b], &id, 2_000);
    let d = a.channel_details(&id).unwrap();
    assert_eq!(d.counterparty_minimum_depth, Some(6));
    assert!(d.counterparty_forwarding_policy.is_some());
    // Both sign and check commitments at the new feerate.
    let p = PaymentPreimage([9; 32]);
    a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 10_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    b.claim_funds(p).unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(b.channel_details(&id).unwrap().balance_msat, 110_000_000);
}
