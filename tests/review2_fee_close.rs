//! Review of the fee-close merge (3f67926): `update_fee` and the closing
//! negotiation under hostile or racing peers.

mod common;

use chanstore::PaymentPreimage;
use common::*;

/// BOLT 2 "Updating Fees" races with the fundee's adds: the fundee may send
/// `update_add_htlc` before it sees our `update_fee`, and that add is valid
/// at the feerate it knows. A funder that raised the feerate to exactly what
/// it can pay with the HTLCs of now must then refuse the add and the channel
/// breaks. LDK keeps room for `CONCURRENT_INBOUND_HTLC_FEE_BUFFER` (2) more
/// HTLCs when it sends `update_fee` (lightning 0.2.7 `channel.rs:5048-5086`).
/// Either the update is refused up front, or the race completes.
#[test]
fn our_update_fee_leaves_room_for_a_concurrent_inbound_htlc() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    // A (funder) keeps 20,000 sat; the reserve B requires is 1,000 sat.
    let (id, scid) = open_channel(&a, &b, 100_000, 80_000_000);
    // 25,000 sat/kw: 18,100 sat of fee with no HTLC (affordable), 22,400
    // with one (not).
    let raised = a.update_fee(&id, 25_000);
    // B pays A 30,000 sat (above the dust threshold at either feerate),
    // before A's update_fee reaches it.
    let p = PaymentPreimage([9; 32]);
    b.send_payment(
        &route_to(&a, scid),
        p.payment_hash(),
        30_000_000,
        invoice(&route_to(&a, scid), p.payment_hash()),
    )
    .unwrap();
    if raised.is_err() {
        assert!(
            matches!(raised, Err(chanstore::StoreError::ReserveViolated { .. })),
            "{raised:?}"
        );
    }
    // Every message of the race is taken (deliver_all panics on a refusal).
    deliver_all(&[&a, &b]);
    for n in [&a, &b] {
        assert_eq!(n.channel_details(&id).unwrap().state, "normal");
        n.check_value_conserved().unwrap();
    }
}
