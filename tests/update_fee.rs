//! `update_fee` (BOLT 2): only the funder sends it, within the configured
//! bounds and what it can pay, and it applies through the commitment round
//! trip on both sides.

mod common;

use chanstore::message::{CommitmentSigned, RevokeAndAck, UpdateFee};
use chanstore::{ChannelId, ChannelStore, Message, PaymentPreimage, ShortChannelId, StoreError};
use common::*;

#[test]
fn funder_fee_update_applies_on_both_sides() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 100_000_000);
    let before = a.channel_details(&id).unwrap();
    assert_eq!(before.feerate_per_kw, 253);
    a.update_fee(&id, 1_000).unwrap();
    // Not committed yet on either side: the feerate is the old one.
    assert_eq!(a.channel_details(&id).unwrap().feerate_per_kw, 253);
    // A second one before any commitment_signed carried the first replaces
    // it (BOLT 2: the latest wins); the peer gets both and keeps the last.
    a.update_fee(&id, 2_000).unwrap();
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
    pay_10k_sat(&a, &b, scid, &id, 5);
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

/// The messages `from` has for its peer, by name.
fn names(msgs: &[(bitcoin::secp256k1::PublicKey, Message)]) -> Vec<&'static str> {
    msgs.iter().map(|(_, m)| m.name()).collect()
}

/// F6 and F7 of the LDK interop harness: the funder's second `update_fee`
/// while the first still waits for its `revoke_and_ack`, as LDK sends it
/// (its holding cell frees the second on the first's revocation). The
/// funder's `update_fee` call is accepted, the fundee takes the message,
/// both commitments carry the right feerate at every step, and both end at
/// the second feerate.
#[test]
fn second_fee_update_while_the_first_awaits_its_revocation() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 100_000_000);
    a.update_fee(&id, 1_000).unwrap();
    let sent = take_msgs(&a);
    assert_eq!(names(&sent), ["update_fee", "commitment_signed"]);
    for (_, m) in sent {
        b.handle_message(&a.node_id(), m).unwrap();
    }
    // B revokes and signs A's next commitment at 1000 sat/kw.
    let answer = take_msgs(&b);
    assert_eq!(names(&answer), ["revoke_and_ack", "commitment_signed"]);
    let mut answer = answer.into_iter().map(|(_, m)| m);
    let (raa, cs) = (answer.next().unwrap(), answer.next().unwrap());
    assert!(matches!(raa, Message::RevokeAndAck(RevokeAndAck { .. })));
    assert!(matches!(
        cs,
        Message::CommitmentSigned(CommitmentSigned { .. })
    ));
    a.handle_message(&b.node_id(), raa).unwrap();
    // A's first update is irrevocable on B's side but B still waits for
    // A's revoke_and_ack: A proposes again (F7), B takes it (F6).
    a.update_fee(&id, 2_000).unwrap();
    let second = take_msgs(&a);
    assert_eq!(names(&second), ["update_fee", "commitment_signed"]);
    for (_, m) in second {
        b.handle_message(&a.node_id(), m).unwrap();
    }
    // The commitment_signed B sent for the first update arrives only now.
    a.handle_message(&b.node_id(), cs).unwrap();
    deliver_all(&[&a, &b]);
    for n in [&a, &b] {
        let d = n.channel_details(&id).unwrap();
        assert_eq!(d.feerate_per_kw, 2_000, "{d:?}");
        n.check_value_conserved().unwrap();
        n.check_commitments_fully_paid().unwrap();
    }
    // Both sides sign and check commitments at the new feerate.
    pay_10k_sat(&a, &b, scid, &id, 6);
}

/// A restart and reconnection in the middle of two overlapping fee updates:
/// the funder's two updates in flight are stored (the second in its own
/// record) and read back, each side retransmits what the other lost, and
/// both end at the second feerate.
#[test]
fn overlapping_fee_updates_survive_a_restart_and_reconnection() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 100_000_000);
    a.update_fee(&id, 1_000).unwrap();
    for (_, m) in take_msgs(&a) {
        b.handle_message(&a.node_id(), m).unwrap();
    }
    let mut answer = take_msgs(&b).into_iter().map(|(_, m)| m);
    a.handle_message(&b.node_id(), answer.next().unwrap())
        .unwrap();
    a.update_fee(&id, 2_000).unwrap();
    // B's commitment_signed and A's second update are lost, and A restarts
    // from what it wrote: both of its updates in flight.
    drop(answer);
    drop(take_msgs(&a));
    let a = reread(&a, 1);
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    connect_all(&[&a, &b]);
    deliver_all(&[&a, &b]);
    assert_settled_at(&[&a, &b], &id, 2_000);
}

/// `a` pays `b` 10,000 sat over the channel `id` (`b` had 100,000 sat) and
/// `b` claims it: both sides sign and check commitments at the feerate now.
fn pay_10k_sat(a: &ChannelStore, b: &ChannelStore, scid: ShortChannelId, id: &ChannelId, n: u8) {
    let p = PaymentPreimage([n; 32]);
    a.pay_invoice(&route_to(b, scid), p.payment_hash(), 10_000_000)
        .unwrap();
    deliver_all(&[a, b]);
    b.claim_funds(p).unwrap();
    deliver_all(&[a, b]);
    assert_eq!(b.channel_details(id).unwrap().balance_msat, 110_000_000);
}

/// As funder, an `update_fee` asked for while we await the peer's
/// `revoke_and_ack` is held (LDK keeps one pending fee update: a second
/// sent before the first is revoked confuses it) and goes out when the
/// revocation comes, also across a restart: the held fee is durable.
#[test]
fn an_update_fee_awaiting_the_revocation_is_held_then_sent_even_after_a_restart() {
    let disk = std::sync::Arc::new(chanstore::MemoryPersister::new());
    let on = |p: std::sync::Arc<chanstore::MemoryPersister>| {
        ChannelStore::with_persister(
            chanstore::StoreConfig::default(),
            secret_of(&node(1).node_id()),
            HEIGHT,
            p,
        )
        .unwrap()
    };
    let (a, b) = (on(disk.clone()), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 100_000_000);
    let p = PaymentPreimage([7; 32]);
    let route = route_to(&b, scid);
    (a.pay_invoice(&route, p.payment_hash(), 5_000_000)).unwrap();
    // A's add and commitment_signed reach B; B's answer does not reach A.
    for (_, m) in take_msgs(&a) {
        deliver_one(&a, &b, m);
    }
    let _ = take_msgs(&b);
    a.update_fee(&id, 1_000).unwrap();
    let sent = take_msgs(&a);
    assert!(
        !sent.iter().any(|(_, m)| matches!(m, Message::UpdateFee(_))),
        "held while A awaits B's revoke_and_ack: {sent:?}"
    );
    a.flush().unwrap();
    drop(a);
    let a = on(disk);
    b.peer_disconnected(&a.node_id());
    connect_all(&[&a, &b]);
    deliver_all(&[&a, &b]);
    for n in [&a, &b] {
        assert_eq!(n.channel_details(&id).unwrap().feerate_per_kw, 1_000);
        n.check_value_conserved().unwrap();
        n.check_commitments_fully_paid().unwrap();
    }
}
