//! Revocation basepoint tables (`StoreConfig::max_revocation_tables`): a
//! busy channel gets them, within the store's budget, and every key it
//! derives with them is the one its peer derives without: each signature
//! either side makes is checked by the other, so one wrong revocation key
//! fails the payment with `InvalidSignature`.

mod common;

use chanstore::{ChannelId, ChannelStore, Event, ShortChannelId, StoreConfig};
use common::*;

/// Payments each way per channel: 4 commitments per node per payment, so
/// 128 payments take each node well past the 256 commitments that earn
/// tables, with the rest made with them.
const PAYMENTS: u16 = 128;

fn config(max_revocation_tables: usize) -> StoreConfig {
    StoreConfig {
        max_revocation_tables,
        ..StoreConfig::default()
    }
}

/// `n` payments from `from` to `to`, one at a time, each claimed and
/// settled; amounts alternate below and above dust, so half the commitments
/// carry an HTLC output and its signature.
fn pay(from: &ChannelStore, to: &ChannelStore, scid: ShortChannelId, tag: u8, n: u16) {
    for i in 0..n {
        let p = preimage(tag, i);
        let amount = if i % 2 == 0 { 10_000 } else { 5_000_000 };
        let route = route_to(to, scid);
        from.pay_invoice(&route, p.payment_hash(), amount).unwrap();
        deliver_all(&[from, to]);
        let received = events(to);
        assert!(
            received.contains(&Event::PaymentReceived {
                payment_hash: p.payment_hash(),
                amount_msat: amount,
                payment_preimage: None,
            }),
            "payment {i}: {received:?}"
        );
        to.claim_funds(p).unwrap();
        deliver_all(&[from, to]);
        let sent = events(from);
        assert!(
            sent.iter().any(|e| matches!(e, Event::PaymentSent { payment_hash, .. } if *payment_hash == p.payment_hash())),
            "payment {i}: {sent:?}"
        );
    }
}

fn tables(node: &ChannelStore) -> usize {
    node.resource_counts().revocation_tables
}

fn usable(node: &ChannelStore, id: &ChannelId) -> bool {
    node.channel_details(id).is_some_and(|d| d.is_usable)
}

#[test]
fn busy_channels_get_tables_within_the_budget_and_every_key_still_matches() {
    // a: room for one channel's tables; b: none; c: the default.
    let (a, b, c) = (
        node_with(1, config(1)),
        node_with(2, config(0)),
        node_with(3, config(64)),
    );
    connect_all(&[&a, &b, &c]);
    let (ab, scid_ab) = open_channel(&a, &b, 10_000_000, 5_000_000_000);
    let (ac, scid_ac) = open_channel(&a, &c, 10_000_000, 5_000_000_000);
    assert_eq!([tables(&a), tables(&b), tables(&c)], [0, 0, 0]);

    pay(&a, &b, scid_ab, 0xab, PAYMENTS / 2);
    pay(&b, &a, scid_ab, 0xba, PAYMENTS / 2);
    assert_eq!(tables(&a), 1, "a's channel with b earned tables");
    assert_eq!(tables(&b), 0, "b has no budget");
    // a's budget is spent: its channel with c gets none, c's end does.
    pay(&a, &c, scid_ac, 0xac, PAYMENTS / 2);
    pay(&c, &a, scid_ac, 0xca, PAYMENTS / 2);
    assert_eq!([tables(&a), tables(&c)], [1, 1]);
    // Made with tables on one side and without on the other, every
    // signature was accepted: the channels are still up and balanced.
    for (n, id) in [(&a, &ab), (&b, &ab), (&a, &ac), (&c, &ac)] {
        assert!(usable(n, id), "{id} went down");
        assert_eq!(n.channel_details(id).unwrap().pending_htlcs, 0);
    }
    // Both directions paid the same amounts: balances are back where they began.
    assert_eq!(a.channel_details(&ab).unwrap().balance_msat, 5_000_000_000);
    assert_eq!(c.channel_details(&ac).unwrap().balance_msat, 5_000_000_000);

    // Closing the channel that holds a's tables gives its place back, and
    // the other, busy, channel takes it at its next commitment.
    a.force_close_channel(&ab).unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(tables(&a), 0, "the closed channel's tables went with it");
    pay(&a, &c, scid_ac, 0xad, 1);
    assert_eq!(tables(&a), 1, "a's channel with c took the free place");
    assert!(usable(&a, &ac) && usable(&c, &ac));
}

#[test]
fn a_quiet_channel_gets_no_tables() {
    let (a, b) = (node_with(1, config(64)), node_with(2, config(64)));
    connect_all(&[&a, &b]);
    let (_, scid) = open_channel(&a, &b, 10_000_000, 5_000_000_000);
    // 63 payments: 252 commitments built by each node, four short.
    pay(&a, &b, scid, 0xab, 63);
    assert_eq!([tables(&a), tables(&b)], [0, 0]);
    pay(&a, &b, scid, 0xac, 1);
    assert_eq!([tables(&a), tables(&b)], [1, 1]);
}
