//! `update_fee` and the closing
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
    b.pay_invoice(&route_to(&a, scid), p.payment_hash(), 30_000_000)
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

/// BOLT 3: a closing transaction whose outputs are both trimmed has no
/// output at all, which no node relays (`bad-txns-vout-empty`): signing it
/// "closes" the channel cooperatively with a transaction that can never
/// confirm, and neither side broadcasts its commitment. Such a closing fee
/// must be refused (the negotiation fails, the channel is failed with our
/// commitment), never agreed.
#[test]
fn a_closing_transaction_with_no_output_is_never_agreed() {
    let tiny = |min_closing_feerate_per_kw| chanstore::StoreConfig {
        min_funding_sat: 500,
        max_channel_reserve_proportional_millionths: 500_000,
        min_closing_feerate_per_kw,
        ..chanstore::StoreConfig::default()
    };
    let (a, b) = (node_with(1, tiny(253)), node_with(2, tiny(600)));
    connect_all(&[&a, &b]);
    // A keeps 700 sat, B 300 (below both dust limits, 354 sat). B's floor,
    // 404 sat (674 weight at 600 sat/kw), leaves A 296 sat: dust too.
    let (id, _) = open_channel(&a, &b, 1_000, 300_000);
    a.close_channel(&id).unwrap();
    let mut refused = None;
    for _ in 0..10 {
        for (from, to) in [(&a, &b), (&b, &a)] {
            for (_, m) in from.get_and_clear_pending_msg_events() {
                if let Err(e) = to.handle_message(&from.node_id(), m) {
                    refused.get_or_insert(e);
                }
            }
        }
    }
    for n in [&a, &b] {
        for e in events(n) {
            match e {
                chanstore::Event::BroadcastTransaction { transaction, .. } => assert!(
                    !transaction.output.is_empty(),
                    "broadcasts a closing tx with no output ({refused:?}): {transaction:?}"
                ),
                chanstore::Event::ChannelClosed { reason, .. } => assert!(
                    !matches!(reason, chanstore::ClosureReason::Cooperative { .. }),
                    "{reason:?}"
                ),
                _ => {}
            }
        }
        assert_eq!(n.channel_details(&id).map(|c| c.state), None);
    }
}

/// A funder sending `update_fee` after `update_fee` with no
/// `commitment_signed` (while its first waits on both sides) piles nothing
/// up on the fundee: each replaces the last not yet signed, a restart reads
/// the pending updates back, and the round trip ends at the last feerate.
#[test]
fn many_update_fee_without_commitment_signed_stay_bounded() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 100_000_000);
    a.update_fee(&id, 1_000).unwrap();
    for (_, m) in take_msgs(&a) {
        b.handle_message(&a.node_id(), m).unwrap();
    }
    // B's revoke_and_ack and commitment_signed are held back.
    let held = take_msgs(&b);
    let before = b.encode_channel(&id).unwrap().len();
    for rate in 2_000..2_050u32 {
        a.update_fee(&id, rate).unwrap();
        for (_, m) in take_msgs(&a) {
            b.handle_message(&a.node_id(), m).unwrap();
        }
    }
    // One more pending update than before at most: a few bytes, not fifty.
    assert!(b.encode_channel(&id).unwrap().len() <= before + 16);
    let b = reread(&b, 2);
    // The held messages are lost; reconnection retransmits what is needed.
    drop(held);
    a.peer_disconnected(&b.node_id());
    connect_all(&[&a, &b]);
    deliver_all(&[&a, &b]);
    for n in [&a, &b] {
        assert_eq!(n.channel_details(&id).unwrap().feerate_per_kw, 2_049);
        n.check_value_conserved().unwrap();
    }
}

/// BOLT 2 lets the funder's `update_fee` race the fundee's adds, each
/// valid at the feerate its sender knew. A (funder, dust limit 546) raises
/// the feerate to 5,000 sat/kw, keeping exactly its reserve, the fee and
/// room for two racing HTLCs; meanwhile B (fundee, dust limit 354) adds
/// twenty 4,000-sat HTLCs: dust in A's commitment at 5,000 sat/kw, outputs
/// in B's, whose fee (20,820 sat) A's 15,400 sat cannot pay. No commitment
/// that pays less than its fee may be signed or taken: the channel is
/// failed instead (as LDK fails it), with commitments that can.
#[test]
fn an_update_fee_racing_adds_never_leaves_a_commitment_unpaid() {
    let config = |dust_limit_sat| chanstore::StoreConfig {
        dust_limit_sat,
        max_dust_htlc_exposure_msat: 100_000_000,
        ..chanstore::StoreConfig::default()
    };
    let (a, b) = (node_with(1, config(546)), node_with(2, config(354)));
    connect_all(&[&a, &b]);
    // A keeps 15,400 sat: reserve 10,000 + fee(5000, 2 racing) = 15,340.
    let (id, scid) = open_channel(&a, &b, 1_000_000, 984_600_000);
    a.update_fee(&id, 5_000).unwrap();
    for i in 0..20u16 {
        let hash = PaymentPreimage([i as u8 + 1; 32]).payment_hash();
        b.pay_invoice(&route_to(&a, scid), hash, 4_000_000).unwrap();
    }
    let refusals = deliver_auditing(&a, &b);
    assert!(
        refusals.iter().any(|(_, e)| matches!(
            e,
            chanstore::StoreError::FunderCannotPayFee {
                feerate_per_kw: 5_000,
                ..
            }
        )),
        "{refusals:?}"
    );
    // A failed the channel; B took its error. Each broadcasts its latest
    // commitment, which the checks above found fully paid at every step.
    let reason = |n: &chanstore::ChannelStore| n.closed_channel(&id).map(|c| c.reason);
    assert_eq!(
        reason(&a),
        Some(chanstore::ClosureReason::FunderCannotPayFee {
            feerate_per_kw: 5_000
        })
    );
    assert!(matches!(
        reason(&b),
        Some(chanstore::ClosureReason::CounterpartyError { .. })
    ));
    for n in [&a, &b] {
        assert!(n.closed_channel(&id).unwrap().transaction.is_some());
    }
}

/// The fundee's adds race the funder's `update_fee`: each is valid at the
/// feerate its sender knew, but at the new feerate the adds are dust and
/// would pass the fundee's dust cap. The fundee judges the update by the
/// HTLCs the funder knows (as LDK's `validate_update_fee`, which leaves out
/// the adds the funder cannot have seen yet), so it is taken and the
/// channel goes on. Two defects this caught: refused alone, the update came
/// back with the `commitment_signed` counting it after every reconnection,
/// the channel wedged (before cc87b82); counting the racing adds, the
/// refusal failed the channel between honest nodes (before 5d19560).
#[test]
fn an_update_fee_that_makes_racing_adds_dust_neither_wedges_nor_closes_the_channel() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 400_000_000);
    a.update_fee(&id, 5_000).unwrap();
    // Two 3,000-sat payments B -> A: untrimmed at 253 sat/kw, dust at 5,000.
    for n in 0..2 {
        let p = preimage(8, n);
        let route = route_to(&a, scid);
        (b.pay_invoice(&route, p.payment_hash(), 3_000_000)).unwrap();
    }
    let refused = deliver_auditing(&a, &b);
    let open = [&a, &b].map(|n| n.channel_details(&id).is_some());
    assert!(
        refused.is_empty() && open == [true, true],
        "refused {refused:?}, open on {open:?}: an honest race wedged or closed the channel"
    );
}
