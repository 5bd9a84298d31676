//! Hostile peers against a hub (issue 8). Regression tests for what the
//! adversarial tests found.

mod common;

use bitcoin::hashes::Hash;
use bitcoin::{OutPoint, Txid};
use chanstore::message::OpenChannel;
use chanstore::{ChannelId, Message, PaymentPreimage, StoreError};
use common::*;

// ---------------------------------------------------------------------------
// Regressions: value of an HTLC spent before the HTLC settled.
// ---------------------------------------------------------------------------

/// The hub's CLTV for hand-made adds: comfortably in the future.
const CLTV: u32 = HEIGHT + 40;

/// An honest node that was just paid (its fulfill sent, the HTLC not yet
/// settled) may not pay from that value yet. It used to: its strict view
/// credited the fulfill, so the new HTLC plus the old one exceeded its settled
/// balance and `send_payment` panicked computing the channel's snapshot
/// (`to_local_msat - in_flight`, in `Channel::details`).
#[test]
fn value_of_an_unsettled_fulfill_cannot_be_spent() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let paid = PaymentPreimage([5; 32]);
    a.send_payment(&route_to(&b, scid), paid.payment_hash(), 500_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    events(&b);
    b.claim_funds(paid).unwrap();
    let back = PaymentPreimage([6; 32]);
    let before = b.debug_state();
    assert_eq!(
        b.send_payment(&route_to(&a, scid), back.payment_hash(), 300_000_000),
        Err(StoreError::AmountExceedsBalance {
            channel_id: id,
            amount_msat: 300_000_000,
            available_msat: 0
        })
    );
    assert_eq!(b.debug_state(), before);
    // Once the fulfill has settled, the value is B's to spend.
    deliver_all(&[&a, &b]);
    b.send_payment(&route_to(&a, scid), back.payment_hash(), 300_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    a.claim_funds(back).unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(b.channel_details(&id).unwrap().balance_msat, 200_000_000);
    for n in [&a, &b] {
        n.check_value_conserved().unwrap();
    }
}

/// A hostile peer fulfills our HTLC and at once offers one paid from it,
/// before the fulfill is committed. We used to credit it with the fulfill
/// and take the add, then panic on the negative balance.
#[test]
fn a_peer_cannot_spend_a_fulfill_before_it_settles() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let paid = PaymentPreimage([5; 32]);
    a.send_payment(&route_to(&b, scid), paid.payment_hash(), 500_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    events(&b);
    b.claim_funds(paid).unwrap();
    // B's update_fulfill_htlc and commitment_signed reach A...
    for (_, msg) in take_msgs(&b) {
        deliver_one(&b, &a, msg);
    }
    // ...and B offers an HTLC paid from the fulfilled value.
    let add = craft_add(id, 0, 300_000_000, preimage(6, 0).payment_hash(), CLTV);
    let (frozen, _) = freeze(&[&a]);
    assert_eq!(
        a.handle_message(&b.node_id(), add),
        Err(StoreError::AmountExceedsBalance {
            channel_id: id,
            amount_msat: 300_000_000,
            available_msat: 0
        })
    );
    assert_unchanged(&[&a], &frozen);
}

/// A hostile peer whose HTLC we failed offers its value again before the
/// failure is committed: both HTLCs would be outputs of our commitment at
/// once, more than the peer has. We used to credit the failed HTLC back,
/// take the add and panic on the negative balance.
#[test]
fn a_peer_cannot_spend_a_failed_htlc_before_the_failure_settles() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 600_000_000);
    let failed = PaymentPreimage([7; 32]);
    b.send_payment(&route_to(&a, scid), failed.payment_hash(), 500_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    events(&a);
    a.fail_htlc_backwards(&failed.payment_hash()).unwrap();
    // A's update_fail_htlc and commitment_signed are still on their way.
    take_msgs(&a);
    let add = craft_add(id, 1, 500_000_000, preimage(7, 1).payment_hash(), CLTV);
    let (frozen, _) = freeze(&[&a]);
    assert_eq!(
        a.handle_message(&b.node_id(), add),
        Err(StoreError::AmountExceedsBalance {
            channel_id: id,
            amount_msat: 500_000_000,
            available_msat: 100_000_000
        })
    );
    assert_unchanged(&[&a], &frozen);
}

// ---------------------------------------------------------------------------
// Regressions: one id for two channels of one peer.
// ---------------------------------------------------------------------------

/// A peer's `open_channel` may not reuse the id of one of its funded
/// channels as a temporary id. It used to be accepted: both channels then
/// shared one snapshot cell, so readers showed the new unfunded channel in
/// place of the funded one, and lost the funded one when the other closed.
#[test]
fn open_channel_reusing_a_funded_channel_id_is_refused() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 0);
    a.create_channel(b.node_id(), 100_000, 0).unwrap();
    let Some((_, Message::OpenChannel(mut open))) = take_msgs(&a).pop() else {
        panic!("expected open_channel")
    };
    open.temporary_channel_id = id;
    let (frozen, _) = freeze(&[&b]);
    assert_eq!(
        b.handle_message(&a.node_id(), Message::OpenChannel(open)),
        Err(StoreError::DuplicateChannelId { channel_id: id })
    );
    assert_unchanged(&[&b], &frozen);
    assert_eq!(b.channel_details(&id).unwrap().state, "normal");
}

/// Nor may a `funding_created` give a channel the permanent id that is the
/// temporary id of another of the peer's unfunded channels (same collision,
/// the other way round).
#[test]
fn funding_created_onto_another_unfunded_channels_id_is_refused() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let temp = a.create_channel(b.node_id(), 100_000, 0).unwrap();
    deliver_all(&[&a, &b]);
    events(&a);
    let outpoint = OutPoint::new(Txid::from_byte_array([0x3c; 32]), 0);
    let permanent = ChannelId::from_funding_outpoint(&outpoint);
    // A second open_channel whose temporary id is that permanent id.
    a.create_channel(b.node_id(), 100_000, 0).unwrap();
    let Some((_, Message::OpenChannel(mut open))) = take_msgs(&a).pop() else {
        panic!("expected open_channel")
    };
    open.temporary_channel_id = permanent;
    b.handle_message(&a.node_id(), Message::OpenChannel(open))
        .unwrap();
    take_msgs(&b);
    a.funding_transaction_generated(&temp, &b.node_id(), outpoint)
        .unwrap();
    let Some((_, created)) = take_msgs(&a).pop() else {
        panic!("expected funding_created")
    };
    let (frozen, _) = freeze(&[&b]);
    assert_eq!(
        b.handle_message(&a.node_id(), created),
        Err(StoreError::DuplicateChannelId {
            channel_id: permanent
        })
    );
    assert_unchanged(&[&b], &frozen);
    assert_eq!(b.list_channels().len(), 2);
}

// ---------------------------------------------------------------------------
// Regressions: open_channel parameters.
// ---------------------------------------------------------------------------

/// BOLT 2: the receiver of `open_channel` must fail it if
/// `dust_limit_satoshis` exceeds `channel_reserve_satoshis`. Unchecked, a
/// huge dust limit became the reserve we require (ours is raised to their
/// dust limit) and overflowed `reserve * 1000`: a panic, from one message.
#[test]
fn open_channel_with_dust_limit_above_its_reserve_is_refused() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    a.create_channel(b.node_id(), 100_000, 0).unwrap();
    let Some((_, Message::OpenChannel(open))) = take_msgs(&a).pop() else {
        panic!("expected open_channel")
    };
    let id = open.temporary_channel_id;
    for dust in [1_000_000_000_000_000_000, 20_000] {
        let msg = Message::OpenChannel(OpenChannel {
            dust_limit_satoshis: dust,
            channel_reserve_satoshis: 1_000,
            ..open.clone()
        });
        let (frozen, _) = freeze(&[&b]);
        assert_eq!(
            b.handle_message(&a.node_id(), msg),
            Err(StoreError::UnacceptableParameter {
                channel_id: id,
                parameter: "dust_limit_satoshis",
                value: dust,
                limit: 1_000
            })
        );
        assert_unchanged(&[&b], &frozen);
    }
}
