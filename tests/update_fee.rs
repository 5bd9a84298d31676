//! `update_fee` (BOLT 2): only the funder sends it, within the configured
//! bounds and what it can pay, and it applies through the commitment round
//! trip on both sides.

mod common;

use chanstore::message::UpdateFee;
use chanstore::{Message, PaymentPreimage, StoreError};
use common::*;

#[test]
fn funder_fee_update_applies_on_both_sides() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 100_000_000);
    let before = a.channel_details(&id).unwrap();
    assert_eq!(before.feerate_per_kw, 253);
    a.update_fee(&id, 2_000).unwrap();
    // Not committed yet on either side: the feerate is the old one.
    assert_eq!(a.channel_details(&id).unwrap().feerate_per_kw, 253);
    // A second one before the first is committed is refused.
    assert!(matches!(
        a.update_fee(&id, 3_000),
        Err(StoreError::WrongState { .. })
    ));
    deliver_all(&[&a, &b]);
    for n in [&a, &b] {
        assert_eq!(n.channel_details(&id).unwrap().feerate_per_kw, 2_000);
        n.check_value_conserved().unwrap();
    }
    // The funder can spend less now (it pays the bigger fee), the fundee the same.
    let after = a.channel_details(&id).unwrap();
    let fee_delta_msat = (2_000 - 253) * 724 / 1000 * 1000;
    assert!(after.outbound_capacity_msat + fee_delta_msat - 1000 <= before.outbound_capacity_msat);
    assert_eq!(
        after.balance_msat, before.balance_msat,
        "fees come out of the funder's output, not its balance"
    );
    // Payments still work: both sides sign and check commitments at the new feerate.
    let p = PaymentPreimage([5; 32]);
    a.send_payment(
        &route_to(&b, scid),
        p.payment_hash(),
        10_000_000,
        invoice(&route_to(&b, scid), p.payment_hash()),
    )
    .unwrap();
    deliver_all(&[&a, &b]);
    b.claim_funds(p).unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(b.channel_details(&id).unwrap().balance_msat, 110_000_000);
}

#[test]
fn fee_updates_outside_the_rules_are_refused() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 100_000_000);
    // Only the funder may.
    assert!(matches!(
        b.update_fee(&id, 1_000),
        Err(StoreError::WrongState {
            action: "update_fee",
            ..
        })
    ));
    // Within StoreConfig::min/max_feerate_per_kw.
    assert!(matches!(
        a.update_fee(&id, 100),
        Err(StoreError::UnacceptableParameter {
            parameter: "feerate_per_kw",
            value: 100,
            limit: 253,
            ..
        })
    ));
    assert!(matches!(
        a.update_fee(&id, 100_001),
        Err(StoreError::UnacceptableParameter {
            parameter: "feerate_per_kw",
            limit: 100_000,
            ..
        })
    ));
    // And affordable: a funder that pushed almost everything cannot pay a big fee.
    let (c, d) = (node(3), node(4));
    connect_all(&[&c, &d]);
    let (poor, _) = open_channel(&c, &d, 100_000, 95_000_000);
    assert!(matches!(
        c.update_fee(&poor, 50_000),
        Err(StoreError::ReserveViolated { .. })
    ));
    // The fundee's update_fee reaching the funder is refused and changes nothing.
    let before = a.debug_state();
    let forged = Message::UpdateFee(UpdateFee {
        channel_id: id,
        feerate_per_kw: 1_000,
    });
    assert!(matches!(
        a.handle_message(&b.node_id(), forged),
        Err(StoreError::WrongState { .. })
    ));
    assert_eq!(a.debug_state(), before);
}
