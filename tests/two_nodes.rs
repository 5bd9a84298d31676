//! Two nodes, one channel: open, pay, fail, close, and the bulk of HTLCs in
//! both directions, all through the public API.

mod common;

use bitcoin::constants::ChainHash;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::Network;
use chanstore::message::OnionPacket;
use chanstore::message::{
    ClosingSigned, CommitmentSigned, FundingCreated, OpenChannel, RevokeAndAck, UpdateAddHtlc,
    UpdateFailHtlc, UpdateFulfillHtlc,
};
use chanstore::onion::failure::{decode_failure, DecodedFailure};
use chanstore::onion::packet::{construct_onion, peel_onion, BadOnion, OnionHop, Peeled};
use chanstore::onion::payload::{HopPayload, PaymentData};
use chanstore::transactions::commitment_fee_sat;
use chanstore::{
    ChannelId, ChannelStore, ClosureReason, Event, FailureCode, Message, PaymentPreimage,
    ShortChannelId, StoreConfig, StoreError,
};
use common::*;

#[test]
fn open_fund_ready() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let da = a.channel_details(&id).unwrap();
    let db = b.channel_details(&id).unwrap();
    assert!(da.is_usable && db.is_usable);
    assert_eq!(da.short_channel_id, Some(scid));
    assert_eq!(da.balance_msat, 1_000_000_000);
    assert_eq!(db.balance_msat, 0);
    assert_eq!(a.counterparty_of(&id), Some(b.node_id()));
    assert_eq!(b.counterparty_of(&id), Some(a.node_id()));
}

/// Forwards are routed by short channel id, so `funding_confirmed` refuses
/// one that cannot be the channel's: one whose output index is not the
/// funding output's, or one another channel has (it would take the other's
/// forwards, and its close would leave the other unroutable). Nothing
/// changes; the right scid is then accepted.
#[test]
fn funding_confirmed_refuses_an_scid_that_cannot_be_the_channels() {
    let (a, b, c) = (node(1), node(2), node(3));
    connect_all(&[&a, &b, &c]);
    let (ab, scid_ab) = open_channel(&a, &b, 1_000_000, 0);
    let temp = a.create_channel(c.node_id(), 1_000_000, 0).unwrap();
    deliver_all(&[&a, &c]);
    let outpoint = bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array([0xac; 32]), 1);
    let ac = a
        .funding_transaction_generated(&temp, &c.node_id(), outpoint)
        .unwrap();
    deliver_all(&[&a, &c]);
    let wrong_output = ShortChannelId::new(HEIGHT - 10, 7, 0).unwrap();
    for (scid, reason) in [
        (wrong_output, "its output index is not the funding output's"),
        (scid_ab, "another channel has it"),
    ] {
        let (frozen, _) = freeze(&[&a]);
        assert_eq!(
            a.funding_confirmed(&ac, scid),
            Err(StoreError::ShortChannelIdMismatch {
                channel_id: ac,
                scid,
                reason
            })
        );
        assert_unchanged(&[&a], &frozen);
    }
    assert_eq!(
        a.channel_details(&ab).unwrap().short_channel_id,
        Some(scid_ab)
    );
    let scid_ac = ShortChannelId::new(HEIGHT - 10, 7, 1).unwrap();
    a.funding_confirmed(&ac, scid_ac).unwrap();
    c.funding_confirmed(&ac, scid_ac).unwrap();
    deliver_all(&[&a, &c]);
    assert!(a.channel_details(&ac).unwrap().is_usable);
    a.check_indexes().unwrap();
}

#[test]
fn pay_and_claim_moves_exact_amount() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let preimage = PaymentPreimage([9; 32]);
    a.pay_invoice(&route_to(&b, scid), preimage.payment_hash(), 50_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    let received = events(&b);
    assert!(received.contains(&Event::PaymentReceived {
        payment_hash: preimage.payment_hash(),
        amount_msat: 50_000_000,
        payment_preimage: None,
    }));
    b.claim_funds(preimage).unwrap();
    deliver_all(&[&a, &b]);
    let sent = events(&a);
    assert!(sent.iter().any(|e| matches!(e, Event::PaymentSent { payment_hash, fee_paid_msat: 0, .. } if *payment_hash == preimage.payment_hash())));
    assert_eq!(a.channel_details(&id).unwrap().balance_msat, 950_000_000);
    assert_eq!(b.channel_details(&id).unwrap().balance_msat, 50_000_000);
    assert_eq!(a.channel_details(&id).unwrap().pending_htlcs, 0);
}

#[test]
fn reconnect_mid_payment_completes_once() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let preimage = PaymentPreimage([7; 32]);
    a.pay_invoice(&route_to(&b, scid), preimage.payment_hash(), 10_000_000)
        .unwrap();
    // update_add + commitment_signed are lost in flight.
    let lost = a.get_and_clear_pending_msg_events();
    assert_eq!(lost.len(), 2);
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    connect_all(&[&a, &b]);
    deliver_all(&[&a, &b]);
    assert!(events(&b).contains(&Event::PaymentReceived {
        payment_hash: preimage.payment_hash(),
        amount_msat: 10_000_000,
        payment_preimage: None,
    }));
    b.claim_funds(preimage).unwrap();
    deliver_all(&[&a, &b]);
    let sent: Vec<_> = events(&a)
        .into_iter()
        .filter(|e| matches!(e, Event::PaymentSent { .. }))
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(a.channel_details(&id).unwrap().balance_msat, 990_000_000);
    assert_eq!(b.channel_details(&id).unwrap().balance_msat, 10_000_000);
}

#[test]
fn fail_back_reports_payment_failed_and_restores_balances() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = preimage(1, 0);
    a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 50_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(
        events(&b),
        vec![Event::PaymentReceived {
            payment_hash: p.payment_hash(),
            amount_msat: 50_000_000,
            payment_preimage: None,
        }]
    );
    assert_eq!(a.channel_details(&id).unwrap().balance_msat, 950_000_000);
    b.fail_htlc_backwards(&p.payment_hash()).unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(
        events(&a),
        vec![unknown_to(&b, p.payment_hash(), 50_000_000)]
    );
    assert_eq!(events(&b), vec![]);
    for (n, balance) in [(&a, 1_000_000_000), (&b, 0)] {
        let d = n.channel_details(&id).unwrap();
        assert_eq!(d.balance_msat, balance);
        assert_eq!(d.pending_htlcs, 0);
        assert_eq!(d.in_flight_msat, 0);
        n.check_value_conserved().unwrap();
    }
    // The payment is gone: it can be neither claimed nor failed again.
    assert_eq!(
        b.claim_funds(p),
        Err(StoreError::UnknownPayment {
            payment_hash: p.payment_hash()
        })
    );
}

// ---------------------------------------------------------------------------
// 100 HTLCs in flight, both directions, value checked after every message.
// ---------------------------------------------------------------------------

/// Checks, from the public snapshots, that no value is created or lost in
/// channel `id` between `a` and `b`.
///
/// Each node's own view is exact at every moment: its balance, the peer's
/// balance and the HTLCs in flight add up to the capacity. Across the two
/// nodes only bounds hold while messages are in transit (an HTLC the receiver
/// has already settled may still be in flight at its offerer, who settles it
/// one `revoke_and_ack` later), and the exact sum once the wire is quiet.
fn assert_value_conserved(a: &ChannelStore, b: &ChannelStore, id: &ChannelId, quiet: bool) {
    a.check_value_conserved().unwrap();
    b.check_value_conserved().unwrap();
    let da = a.channel_details(id).unwrap();
    let db = b.channel_details(id).unwrap();
    assert_eq!(da.channel_value_sat, db.channel_value_sat);
    let cap = da.channel_value_sat * 1000;
    for d in [&da, &db] {
        assert_eq!(
            d.balance_msat + d.inbound_capacity_msat + d.in_flight_msat,
            cap,
            "{d:?}"
        );
    }
    // No value created: an HTLC counts in at most one settled balance.
    assert!(da.balance_msat + db.balance_msat <= cap, "{da:?} {db:?}");
    // None lost: an HTLC not settled on either side is in flight somewhere.
    assert!(
        da.balance_msat + db.balance_msat + da.in_flight_msat + db.in_flight_msat >= cap,
        "{da:?} {db:?}"
    );
    if quiet {
        assert_eq!(da.balance_msat + db.balance_msat + da.in_flight_msat, cap);
        assert_eq!(da.in_flight_msat, db.in_flight_msat);
        assert_eq!(da.pending_htlcs, db.pending_htlcs);
        assert_eq!(da.balance_msat, db.inbound_capacity_msat);
        assert_eq!(db.balance_msat, da.inbound_capacity_msat);
    }
}

/// Delivers messages between `a` and `b` one at a time, in an order mixed by
/// `seed` (each direction stays in order, as on a real connection), and
/// checks value conservation after every single message. Returns how many
/// messages it delivered.
fn deliver_checked(a: &ChannelStore, b: &ChannelStore, id: &ChannelId, seed: &mut u64) -> usize {
    let mut a_to_b = std::collections::VecDeque::new();
    let mut b_to_a = std::collections::VecDeque::new();
    let mut delivered = 0;
    loop {
        for (to, msg) in a.get_and_clear_pending_msg_events() {
            assert_eq!(to, b.node_id());
            a_to_b.push_back(msg);
        }
        for (to, msg) in b.get_and_clear_pending_msg_events() {
            assert_eq!(to, a.node_id());
            b_to_a.push_back(msg);
        }
        let forwarded = a.process_pending_forwards() + b.process_pending_forwards();
        if a_to_b.is_empty() && b_to_a.is_empty() {
            if forwarded == 0 {
                assert_value_conserved(a, b, id, true);
                return delivered;
            }
            continue;
        }
        // A small LCG: deterministic, but interleaves the two directions.
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let pick_a = b_to_a.is_empty() || (!a_to_b.is_empty() && (*seed >> 33).is_multiple_of(2));
        if pick_a {
            deliver_one(a, b, a_to_b.pop_front().unwrap());
        } else {
            deliver_one(b, a, b_to_a.pop_front().unwrap());
        }
        delivered += 1;
        assert_value_conserved(a, b, id, false);
    }
}

/// Amount of payment `i` of a side: every fifth one is below the dust limit
/// (trimmed from the commitments), the others are real HTLC outputs.
fn bulk_amount(i: u16) -> u64 {
    if i.is_multiple_of(5) {
        300_000
    } else {
        1_000_000 + u64::from(i) * 1_000
    }
}

#[test]
fn hundred_htlcs_in_flight_both_directions() {
    // Twenty dust HTLCs in flight at once: more than the default dust
    // exposure allows, which tests/fund_safety.rs covers.
    let config = StoreConfig {
        max_dust_htlc_exposure_msat: 50_000_000,
        ..StoreConfig::default()
    };
    let (a, b) = (node_with(1, config.clone()), node_with(2, config));
    connect_all(&[&a, &b]);
    let (id, scid_ab) = open_channel(&a, &b, 10_000_000, 5_000_000_000);
    let half = 5_000_000_000u64;
    assert_eq!(a.channel_details(&id).unwrap().balance_msat, half);
    assert_eq!(b.channel_details(&id).unwrap().balance_msat, half);
    let mut seed = 7;

    // 50 payments each way, all offered before a single message moves.
    for i in 0..50 {
        a.pay_invoice(
            &route_to(&b, scid_ab),
            preimage(0xa, i).payment_hash(),
            bulk_amount(i),
        )
        .unwrap();
        b.pay_invoice(
            &route_to(&a, scid_ab),
            preimage(0xb, i).payment_hash(),
            bulk_amount(i),
        )
        .unwrap();
    }
    let total: u64 = (0..50).map(bulk_amount).sum();
    // Each side knows only its own offers so far.
    for n in [&a, &b] {
        let d = n.channel_details(&id).unwrap();
        assert_eq!(d.pending_htlcs, 50);
        assert_eq!(d.in_flight_msat, total);
        assert_eq!(d.balance_msat, half - total);
    }
    assert_value_conserved(&a, &b, &id, false);
    let delivered = deliver_checked(&a, &b, &id, &mut seed);
    assert!(delivered >= 100, "only {delivered} messages");
    for (n, tag) in [(&a, 0xb), (&b, 0xa)] {
        let mut received = events(n);
        received.sort_by_key(|e| format!("{e:?}"));
        let mut expected: Vec<Event> = (0..50)
            .map(|i| Event::PaymentReceived {
                payment_hash: preimage(tag, i).payment_hash(),
                amount_msat: bulk_amount(i),
                payment_preimage: None,
            })
            .collect();
        expected.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(received, expected);
        assert_eq!(n.channel_details(&id).unwrap().pending_htlcs, 100);
    }

    // Each side claims 40 of the payments it received and fails 10.
    let failed = |i: u16| i % 5 == 3;
    for i in 0..50 {
        for (n, tag) in [(&b, 0xa), (&a, 0xb)] {
            let p = preimage(tag, i);
            if failed(i) {
                n.fail_htlc_backwards(&p.payment_hash()).unwrap();
            } else {
                n.claim_funds(p).unwrap();
            }
        }
    }
    deliver_checked(&a, &b, &id, &mut seed);

    for (n, tag, peer) in [(&a, 0xa, &b), (&b, 0xb, &a)] {
        let evs = events(n);
        assert_eq!(evs.len(), 50, "{evs:?}");
        for i in 0..50 {
            let p = preimage(tag, i);
            let expected = if failed(i) {
                unknown_to(peer, p.payment_hash(), bulk_amount(i))
            } else {
                Event::PaymentSent {
                    payment_hash: p.payment_hash(),
                    payment_preimage: p,
                    fee_paid_msat: 0,
                }
            };
            assert!(evs.contains(&expected), "missing {expected:?}");
        }
    }
    // Both sides paid each other the same amounts: balances are back where
    // they started, and nothing is left in flight.
    for n in [&a, &b] {
        let d = n.channel_details(&id).unwrap();
        assert_eq!(d.balance_msat, half);
        assert_eq!(d.pending_htlcs, 0);
        assert_eq!(d.in_flight_msat, 0);
    }

    // An asymmetric round: only A pays, B claims everything.
    for i in 50..60 {
        a.pay_invoice(
            &route_to(&b, scid_ab),
            preimage(0xa, i).payment_hash(),
            bulk_amount(i),
        )
        .unwrap();
    }
    deliver_checked(&a, &b, &id, &mut seed);
    events(&b);
    for i in 50..60 {
        b.claim_funds(preimage(0xa, i)).unwrap();
    }
    deliver_checked(&a, &b, &id, &mut seed);
    let paid: u64 = (50..60).map(bulk_amount).sum();
    assert_eq!(a.channel_details(&id).unwrap().balance_msat, half - paid);
    assert_eq!(b.channel_details(&id).unwrap().balance_msat, half + paid);
}

// ---------------------------------------------------------------------------
// Cooperative close.
// ---------------------------------------------------------------------------

/// The cooperative `ChannelClosed` event of `node` for `id`, and its fee.
fn closed_cooperatively(node: &ChannelStore, id: &ChannelId, peer: &ChannelStore) -> u64 {
    let evs = events(node);
    let fees: Vec<u64> = evs
        .iter()
        .filter_map(|e| match e {
            Event::ChannelClosed {
                channel_id,
                counterparty_node_id,
                reason: ClosureReason::Cooperative { closing_tx_fee_sat },
            } if channel_id == id && *counterparty_node_id == peer.node_id() => {
                Some(*closing_tx_fee_sat)
            }
            _ => None,
        })
        .collect();
    assert_eq!(fees.len(), 1, "{evs:?}");
    fees[0]
}

/// After a close: the channel is gone from every reader and index.
fn assert_gone(nodes: &[&ChannelStore], id: &ChannelId) {
    for n in nodes {
        assert_eq!(n.list_channels(), vec![]);
        assert_eq!(n.channel_details(id), None);
        assert_eq!(n.counterparty_of(id), None);
        n.check_indexes().unwrap();
        n.check_value_conserved().unwrap();
        assert_eq!(
            n.close_channel(id),
            Err(StoreError::UnknownChannel { channel_id: *id })
        );
    }
}

fn cooperative_close(initiator_is_funder: bool) {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 200_000_000);
    // Move some value first, so both sides have a balance that changed.
    let p = preimage(3, 0);
    a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 1_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    b.claim_funds(p).unwrap();
    deliver_all(&[&a, &b]);
    events(&a);
    events(&b);
    let initiator = if initiator_is_funder { &a } else { &b };
    initiator.close_channel(&id).unwrap();
    // A second request for the same close is refused, and changes nothing.
    assert!(matches!(
        initiator.close_channel(&id),
        Err(StoreError::WrongState { .. })
    ));
    deliver_all(&[&a, &b]);
    let fee_a = closed_cooperatively(&a, &id, &b);
    let fee_b = closed_cooperatively(&b, &id, &a);
    assert_eq!(fee_a, fee_b);
    assert!(fee_a > 0);
    assert_gone(&[&a, &b], &id);
}

#[test]
fn cooperative_close_initiated_by_funder() {
    cooperative_close(true);
}

#[test]
fn cooperative_close_initiated_by_fundee() {
    cooperative_close(false);
}

/// Close requested with a payment committed and not settled: shutdown
/// waits for the HTLC, which settles through the shutdown, and only then
/// does the channel close. (An HTLC committed only after a `shutdown` is
/// failed back instead: `fund_safety::htlcs_added_after_our_shutdown_are_failed_not_routed`.)
fn close_with_htlc_in_flight(claim: bool) {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = preimage(4, 0);
    a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 30_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    a.close_channel(&id).unwrap();
    deliver_all(&[&a, &b]);
    // Both sides shut down, but the HTLC holds the channel open.
    for n in [&a, &b] {
        let d = n.channel_details(&id).unwrap();
        assert_eq!(d.state, "shutting_down");
        assert!(!d.is_usable);
        assert_eq!(d.pending_htlcs, 1);
        assert!(!events(n)
            .iter()
            .any(|e| matches!(e, Event::ChannelClosed { .. })));
    }
    // No new HTLC may start on a closing channel, from either side.
    for (from, to) in [(&a, &b), (&b, &a)] {
        assert!(matches!(
            from.pay_invoice(&route_to(to, scid), preimage(4, 1).payment_hash(), 1_000),
            Err(StoreError::WrongState { .. })
        ));
    }
    if claim {
        b.claim_funds(p).unwrap();
    } else {
        b.fail_htlc_backwards(&p.payment_hash()).unwrap();
    }
    deliver_all(&[&a, &b]);
    let a_events = events(&a);
    let settled = if claim {
        Event::PaymentSent {
            payment_hash: p.payment_hash(),
            payment_preimage: p,
            fee_paid_msat: 0,
        }
    } else {
        unknown_to(&b, p.payment_hash(), 30_000_000)
    };
    assert!(a_events.contains(&settled), "{a_events:?}");
    let closed = |evs: &[Event]| {
        evs.iter()
            .filter(|e| {
                matches!(e, Event::ChannelClosed { channel_id, reason: ClosureReason::Cooperative { .. }, .. } if *channel_id == id)
            })
            .count()
    };
    assert_eq!(closed(&a_events), 1, "{a_events:?}");
    assert_eq!(closed(&events(&b)), 1);
    assert_gone(&[&a, &b], &id);
}

#[test]
fn close_waits_for_htlc_in_flight_then_closes_after_claim() {
    close_with_htlc_in_flight(true);
}

#[test]
fn close_waits_for_htlc_in_flight_then_closes_after_fail() {
    close_with_htlc_in_flight(false);
}

// ---------------------------------------------------------------------------
// Validation: every refusal names its exact reason and changes nothing.
// ---------------------------------------------------------------------------

/// Expiry used by hand-made adds: comfortably in the future.
const CLTV: u32 = HEIGHT + 40;

/// A funded channel `id` from `a` to `b`, plus an unrelated second channel
/// `other` between the same nodes, with an HTLC in flight on it so that it
/// has real state to lose. `b` runs with `config_b`.
struct Pair {
    a: ChannelStore,
    b: ChannelStore,
    id: ChannelId,
    scid: ShortChannelId,
    other: ChannelId,
}

fn pair(config_b: StoreConfig, funding_sat: u64, push_msat: u64) -> Pair {
    let a = node(1);
    let b = node_with(2, config_b);
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, funding_sat, push_msat);
    let (other, other_scid) = open_channel(&a, &b, 200_000, 50_000_000);
    a.pay_invoice(
        &route_to(&b, other_scid),
        preimage(0xee, 0).payment_hash(),
        2_000_000,
    )
    .unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(b.channel_details(&other).unwrap().pending_htlcs, 1);
    events(&a);
    events(&b);
    Pair {
        a,
        b,
        id,
        scid,
        other,
    }
}

impl Pair {
    fn nodes(&self) -> [&ChannelStore; 2] {
        [&self.a, &self.b]
    }

    /// Runs `refused`, which must fail with exactly `expected`, and checks
    /// that neither node (nor the other channel) changed.
    fn assert_refused(
        &self,
        expected: StoreError,
        refused: impl FnOnce() -> Result<(), StoreError>,
    ) {
        let other_before = [
            self.a.channel_details(&self.other),
            self.b.channel_details(&self.other),
        ];
        let (frozen, _) = freeze(&self.nodes());
        assert_eq!(refused(), Err(expected));
        assert_unchanged(&self.nodes(), &frozen);
        let other_after = [
            self.a.channel_details(&self.other),
            self.b.channel_details(&self.other),
        ];
        assert_eq!(other_before, other_after);
        assert_eq!(other_after[0].as_ref().unwrap().pending_htlcs, 1);
    }

    /// `to` must refuse `msg` from `from` with exactly `expected`, changing nothing.
    fn assert_msg_refused(
        &self,
        from: &ChannelStore,
        to: &ChannelStore,
        msg: Message,
        expected: StoreError,
    ) {
        self.assert_refused(expected, || to.handle_message(&from.node_id(), msg));
    }

    /// `from`'s own `send_payment` of `amount_msat` to `to` must be refused.
    fn assert_send_refused(
        &self,
        from: &ChannelStore,
        to: &ChannelStore,
        amount_msat: u64,
        expected: StoreError,
    ) {
        let hash = preimage(0x55, 0).payment_hash();
        self.assert_refused(expected, || {
            from.pay_invoice(&route_to(to, self.scid), hash, amount_msat)
        });
    }

    /// A hand-made add on the main channel.
    fn add(&self, id: u64, amount_msat: u64) -> Message {
        craft_add(
            &self.b,
            self.id,
            id,
            amount_msat,
            preimage(0x66, id as u16).payment_hash(),
            CLTV,
        )
    }
}

fn pk(n: u8) -> PublicKey {
    PublicKey::from_secret_key(&Secp256k1::new(), &SecretKey::from_slice(&[n; 32]).unwrap())
}

/// A valid signature, by a key that has nothing to do with the channel, on a
/// message that has nothing to do with it either.
fn foreign_signature() -> Signature {
    let secp = Secp256k1::new();
    let msg = bitcoin::secp256k1::Message::from_digest([0x42; 32]);
    secp.sign_ecdsa(&msg, &SecretKey::from_slice(&[0x43; 32]).unwrap())
}

const TEMP: ChannelId = ChannelId([0x77; 32]);

/// An `open_channel` built by hand, with sound parameters apart from the
/// funding and push under test.
fn open_msg(funding_satoshis: u64, push_msat: u64) -> Message {
    Message::OpenChannel(OpenChannel {
        chain_hash: ChainHash::using_genesis_block(Network::Regtest),
        temporary_channel_id: TEMP,
        funding_satoshis,
        push_msat,
        dust_limit_satoshis: 354,
        max_htlc_value_in_flight_msat: u64::MAX,
        channel_reserve_satoshis: (funding_satoshis / 100).max(354),
        htlc_minimum_msat: 1,
        feerate_per_kw: 253,
        to_self_delay: 144,
        max_accepted_htlcs: 483,
        funding_pubkey: pk(11),
        revocation_basepoint: pk(12),
        payment_basepoint: pk(13),
        delayed_payment_basepoint: pk(14),
        htlc_basepoint: pk(15),
        first_per_commitment_point: pk(16),
        channel_flags: 0,
        shutdown_scriptpubkey: None,
        channel_type: None,
    })
}

/// `b` must have answered a hand-made open with `accept_channel`.
fn assert_accepted(b: &ChannelStore, a: &ChannelStore) {
    let msgs = take_msgs(b);
    assert!(
        matches!(&msgs[..], [(to, Message::AcceptChannel(acc))] if *to == a.node_id() && acc.temporary_channel_id == TEMP),
        "{msgs:?}"
    );
}

fn funding_limits() -> StoreConfig {
    StoreConfig {
        min_funding_sat: 50_000,
        max_funding_sat: 2_000_000,
        ..StoreConfig::default()
    }
}

#[test]
fn refuses_funding_below_minimum() {
    let p = pair(funding_limits(), 1_000_000, 0);
    // Our own create_channel, against our (default) config.
    let (frozen, _) = freeze(&p.nodes());
    let err = p.a.create_channel(p.b.node_id(), 9_999, 0).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::FundingTooSmall {
                funding_sat: 9_999,
                min_sat: 10_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert_unchanged(&p.nodes(), &frozen);
    // A hand-made inbound open_channel, against the receiver's config.
    p.assert_msg_refused(
        &p.a,
        &p.b,
        open_msg(49_999, 0),
        StoreError::FundingTooSmall {
            channel_id: TEMP,
            funding_sat: 49_999,
            min_sat: 50_000,
        },
    );
    // A real open_channel that A's config allows and B's does not.
    let temp = p.a.create_channel(p.b.node_id(), 20_000, 0).unwrap();
    let msgs = take_msgs(&p.a);
    let [(_, open)] = &msgs[..] else {
        panic!("{msgs:?}")
    };
    p.assert_msg_refused(
        &p.a,
        &p.b,
        open.clone(),
        StoreError::FundingTooSmall {
            channel_id: temp,
            funding_sat: 20_000,
            min_sat: 50_000,
        },
    );
    // The smallest allowed funding passes.
    p.b.handle_message(&p.a.node_id(), open_msg(50_000, 0))
        .unwrap();
    assert_accepted(&p.b, &p.a);
}

#[test]
fn refuses_funding_above_maximum() {
    let p = pair(funding_limits(), 1_000_000, 0);
    let (frozen, _) = freeze(&p.nodes());
    let max = StoreConfig::default().max_funding_sat;
    let err = p.a.create_channel(p.b.node_id(), max + 1, 0).unwrap_err();
    assert!(
        matches!(err, StoreError::FundingTooLarge { funding_sat, max_sat, .. } if funding_sat == max + 1 && max_sat == max),
        "{err:?}"
    );
    assert_unchanged(&p.nodes(), &frozen);
    p.assert_msg_refused(
        &p.a,
        &p.b,
        open_msg(2_000_001, 0),
        StoreError::FundingTooLarge {
            channel_id: TEMP,
            funding_sat: 2_000_001,
            max_sat: 2_000_000,
        },
    );
    p.b.handle_message(&p.a.node_id(), open_msg(2_000_000, 0))
        .unwrap();
    assert_accepted(&p.b, &p.a);
}

#[test]
fn refuses_push_above_funding() {
    let p = pair(StoreConfig::default(), 1_000_000, 0);
    let (frozen, _) = freeze(&p.nodes());
    let err =
        p.a.create_channel(p.b.node_id(), 100_000, 100_000_001)
            .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::PushExceedsFunding {
                push_msat: 100_000_001,
                funding_msat: 100_000_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert_unchanged(&p.nodes(), &frozen);
    p.assert_msg_refused(
        &p.a,
        &p.b,
        open_msg(100_000, 100_000_001),
        StoreError::PushExceedsFunding {
            channel_id: TEMP,
            push_msat: 100_000_001,
            funding_msat: 100_000_000,
        },
    );
    p.b.handle_message(&p.a.node_id(), open_msg(100_000, 50_000_000))
        .unwrap();
    assert_accepted(&p.b, &p.a);
}

#[test]
fn refuses_htlc_that_breaks_the_reserve() {
    let p = pair(StoreConfig::default(), 1_000_000, 200_000_000);
    let (a, b) = (&p.a, &p.b);
    // A is the funder: it keeps B's reserve and pays the commitment fee for
    // one more HTLC. B is the fundee: it keeps A's reserve only.
    let reserve = 1_000_000 / 100 * 1000;
    let fee = commitment_fee_sat(253, 1, false) * 1000;
    // As sender, the funder also keeps BOLT 2's fee spike buffer: the fee at
    // twice the feerate with one more HTLC. The receiver checks the fee only.
    let spike = commitment_fee_sat(2 * 253, 2, false) * 1000;
    let a_max = 800_000_000 - reserve - spike;
    let a_max_received = 800_000_000 - reserve - fee;
    let b_max = 200_000_000 - reserve;
    assert_eq!(
        a.channel_details(&p.id).unwrap().outbound_capacity_msat,
        a_max
    );
    assert_eq!(
        b.channel_details(&p.id).unwrap().outbound_capacity_msat,
        b_max
    );
    let over = |needed: u64| StoreError::ReserveViolated {
        channel_id: p.id,
        balance_msat: (needed - 1) as i64,
        reserve_msat: needed,
    };
    // Sender side: each node's own send_payment.
    p.assert_send_refused(a, b, a_max + 1, over(reserve + spike));
    p.assert_send_refused(b, a, b_max + 1, over(reserve));
    // Receiver side: the same adds made by hand, bypassing the sender's check.
    p.assert_msg_refused(a, b, p.add(0, a_max_received + 1), over(reserve + fee));
    p.assert_msg_refused(b, a, p.add(0, b_max + 1), over(reserve));
    // Exactly the limit passes, on both sides.
    a.pay_invoice(&route_to(b, p.scid), preimage(9, 0).payment_hash(), a_max)
        .unwrap();
    b.pay_invoice(&route_to(a, p.scid), preimage(9, 1).payment_hash(), b_max)
        .unwrap();
    deliver_all(&p.nodes());
    assert_eq!(a.channel_details(&p.id).unwrap().pending_htlcs, 2);
}

#[test]
fn refuses_htlc_below_minimum() {
    let config = StoreConfig {
        htlc_minimum_msat: 5_000,
        ..StoreConfig::default()
    };
    let p = pair(config, 1_000_000, 0);
    let below = StoreError::HtlcBelowMinimum {
        channel_id: p.id,
        amount_msat: 4_999,
        minimum_msat: 5_000,
    };
    p.assert_send_refused(&p.a, &p.b, 4_999, below.clone());
    p.assert_msg_refused(&p.a, &p.b, p.add(0, 4_999), below);
    p.b.handle_message(&p.a.node_id(), p.add(0, 5_000)).unwrap();
}

#[test]
fn refuses_value_in_flight_above_maximum() {
    let config = StoreConfig {
        max_htlc_value_in_flight_msat: 100_000_000,
        ..StoreConfig::default()
    };
    let p = pair(config, 1_000_000, 0);
    p.a.pay_invoice(
        &route_to(&p.b, p.scid),
        preimage(9, 0).payment_hash(),
        60_000_000,
    )
    .unwrap();
    deliver_all(&p.nodes());
    // What A says it can send is what the cap leaves, not its balance.
    assert_eq!(
        p.a.channel_details(&p.id).unwrap().outbound_capacity_msat,
        40_000_000
    );
    let exceeded = StoreError::InFlightExceeded {
        channel_id: p.id,
        in_flight_msat: 100_000_001,
        max_msat: 100_000_000,
    };
    p.assert_send_refused(&p.a, &p.b, 40_000_001, exceeded.clone());
    p.assert_msg_refused(&p.a, &p.b, p.add(1, 40_000_001), exceeded);
    p.a.pay_invoice(
        &route_to(&p.b, p.scid),
        preimage(9, 1).payment_hash(),
        40_000_000,
    )
    .unwrap();
    deliver_all(&p.nodes());
    assert_eq!(
        p.b.channel_details(&p.id).unwrap().in_flight_msat,
        100_000_000
    );
}

#[test]
fn refuses_more_than_max_accepted_htlcs() {
    let config = StoreConfig {
        max_accepted_htlcs: 3,
        ..StoreConfig::default()
    };
    let p = pair(config, 1_000_000, 0);
    for i in 0..3 {
        p.a.pay_invoice(
            &route_to(&p.b, p.scid),
            preimage(9, i).payment_hash(),
            1_000_000,
        )
        .unwrap();
    }
    deliver_all(&p.nodes());
    assert_eq!(p.b.channel_details(&p.id).unwrap().pending_htlcs, 3);
    assert_eq!(
        p.a.channel_details(&p.id).unwrap().outbound_capacity_msat,
        0,
        "B holds all the HTLCs it accepts"
    );
    let too_many = StoreError::TooManyHtlcs {
        channel_id: p.id,
        count: 4,
        max: 3,
    };
    p.assert_send_refused(&p.a, &p.b, 1_000_000, too_many.clone());
    p.assert_msg_refused(&p.a, &p.b, p.add(3, 1_000_000), too_many);
    // Once one settles, there is room for exactly one more.
    p.b.claim_funds(preimage(9, 0)).unwrap();
    deliver_all(&p.nodes());
    p.a.pay_invoice(
        &route_to(&p.b, p.scid),
        preimage(9, 3).payment_hash(),
        1_000_000,
    )
    .unwrap();
    deliver_all(&p.nodes());
    assert_eq!(p.b.channel_details(&p.id).unwrap().pending_htlcs, 3);
}

#[test]
fn refuses_amount_above_sender_balance() {
    let p = pair(StoreConfig::default(), 1_000_000, 200_000_000);
    let exceeds = |amount_msat, available_msat| StoreError::AmountExceedsBalance {
        channel_id: p.id,
        amount_msat,
        available_msat,
    };
    p.assert_send_refused(&p.b, &p.a, 200_000_001, exceeds(200_000_001, 200_000_000));
    p.assert_send_refused(&p.a, &p.b, 800_000_001, exceeds(800_000_001, 800_000_000));
    p.assert_msg_refused(
        &p.b,
        &p.a,
        p.add(0, 200_000_001),
        exceeds(200_000_001, 200_000_000),
    );
    p.assert_msg_refused(
        &p.a,
        &p.b,
        p.add(0, 800_000_001),
        exceeds(800_000_001, 800_000_000),
    );
}

#[test]
fn an_htlc_already_expired_is_taken_and_failed_back() {
    let p = pair(StoreConfig::default(), 1_000_000, 0);
    let best = HEIGHT + 100;
    p.b.best_block_updated(best);
    // A (still at HEIGHT) offers an HTLC that expires at HEIGHT + the final
    // delta, long past for B, which has seen more blocks. Refusing the
    // message would leave the two out of step for good (A resends it on
    // every reconnection); B takes it and fails it back once committed.
    let pre = preimage(9, 0);
    p.a.pay_invoice(&route_to(&p.b, p.scid), pre.payment_hash(), 1_000_000)
        .unwrap();
    deliver_all(&p.nodes());
    let b_events = events(&p.b);
    assert!(
        !b_events
            .iter()
            .any(|e| matches!(e, Event::PaymentReceived { .. })),
        "{b_events:?}"
    );
    let a_events = events(&p.a);
    assert!(
        a_events.iter().any(|e| matches!(
            e,
            Event::PaymentFailed {
                failure: FailureCode::IncorrectOrUnknownPaymentDetails,
                ..
            }
        )),
        "{a_events:?}"
    );
    for n in p.nodes() {
        let d = n.channel_details(&p.id).unwrap();
        assert_eq!((d.state, d.pending_htlcs), ("normal", 0));
    }
    // A value of the timestamp range is not a height: refused.
    let add = craft_add(&p.b, p.id, 1, 1_000_000, pre.payment_hash(), 500_000_000);
    let (frozen, _) = freeze(&p.nodes());
    assert_eq!(
        p.b.handle_message(&p.a.node_id(), add),
        Err(StoreError::HtlcExpired {
            channel_id: p.id,
            cltv_expiry: 500_000_000,
            best_height: best,
        })
    );
    assert_unchanged(&p.nodes(), &frozen);
}

#[test]
fn refuses_htlc_ids_out_of_order() {
    let p = pair(StoreConfig::default(), 1_000_000, 0);
    let order = |expected, got| StoreError::HtlcIdOutOfOrder {
        channel_id: p.id,
        expected,
        got,
    };
    p.assert_msg_refused(&p.a, &p.b, p.add(1, 1_000_000), order(0, 1));
    p.b.handle_message(&p.a.node_id(), p.add(0, 1_000_000))
        .unwrap();
    // A replay of id 0, and a gap.
    p.assert_msg_refused(&p.a, &p.b, p.add(0, 1_000_000), order(1, 0));
    p.assert_msg_refused(&p.a, &p.b, p.add(5, 1_000_000), order(1, 5));
    p.b.handle_message(&p.a.node_id(), p.add(1, 1_000_000))
        .unwrap();
}

#[test]
fn refuses_unknown_htlc_on_fulfill_and_fail() {
    let p = pair(StoreConfig::default(), 1_000_000, 0);
    let pre = preimage(9, 0);
    p.a.pay_invoice(&route_to(&p.b, p.scid), pre.payment_hash(), 10_000_000)
        .unwrap();
    deliver_all(&p.nodes());
    let unknown = |htlc_id| StoreError::UnknownHtlc {
        channel_id: p.id,
        htlc_id,
    };
    let fulfill = |id, payment_preimage| {
        Message::UpdateFulfillHtlc(UpdateFulfillHtlc {
            channel_id: p.id,
            id,
            payment_preimage,
        })
    };
    let fail = |id| {
        Message::UpdateFailHtlc(UpdateFailHtlc {
            channel_id: p.id,
            id,
            reason: vec![0x10, 0x07],
        })
    };
    // B names an HTLC that A never offered.
    p.assert_msg_refused(&p.b, &p.a, fulfill(1, pre), unknown(1));
    p.assert_msg_refused(&p.b, &p.a, fail(1), unknown(1));
    // A names an HTLC of B's, and B has offered none.
    p.assert_msg_refused(&p.a, &p.b, fulfill(0, pre), unknown(0));
    p.assert_msg_refused(&p.a, &p.b, fail(0), unknown(0));
    // An HTLC that exists but is not irrevocably committed yet cannot be removed.
    let pre1 = preimage(9, 1);
    p.a.pay_invoice(&route_to(&p.b, p.scid), pre1.payment_hash(), 10_000_000)
        .unwrap();
    let msgs = take_msgs(&p.a);
    deliver_one(&p.a, &p.b, msgs[0].1.clone());
    p.assert_msg_refused(&p.b, &p.a, fulfill(1, pre1), unknown(1));
    p.assert_msg_refused(&p.b, &p.a, fail(1), unknown(1));
    // Through the API: claiming or failing a payment nobody made.
    let nobody = preimage(9, 9);
    let no_payment = StoreError::UnknownPayment {
        payment_hash: nobody.payment_hash(),
    };
    p.assert_refused(no_payment.clone(), || p.b.claim_funds(nobody));
    p.assert_refused(no_payment, || {
        p.b.fail_htlc_backwards(&nobody.payment_hash())
    });
}

#[test]
fn refuses_fulfill_with_wrong_preimage() {
    let p = pair(StoreConfig::default(), 1_000_000, 0);
    let pre = preimage(9, 0);
    p.a.pay_invoice(&route_to(&p.b, p.scid), pre.payment_hash(), 10_000_000)
        .unwrap();
    deliver_all(&p.nodes());
    let wrong = Message::UpdateFulfillHtlc(UpdateFulfillHtlc {
        channel_id: p.id,
        id: 0,
        payment_preimage: PaymentPreimage([0x13; 32]),
    });
    p.assert_msg_refused(
        &p.b,
        &p.a,
        wrong,
        StoreError::WrongPreimage {
            channel_id: p.id,
            htlc_id: 0,
        },
    );
    // The right one still settles it.
    p.b.claim_funds(pre).unwrap();
    deliver_all(&p.nodes());
    assert!(events(&p.a).contains(&Event::PaymentSent {
        payment_hash: pre.payment_hash(),
        payment_preimage: pre,
        fee_paid_msat: 0
    }));
}

#[test]
fn refuses_commitment_with_invalid_signature() {
    let p = pair(StoreConfig::default(), 1_000_000, 0);
    let pre = preimage(9, 0);
    p.a.pay_invoice(&route_to(&p.b, p.scid), pre.payment_hash(), 10_000_000)
        .unwrap();
    let msgs = take_msgs(&p.a);
    let [(_, add), (_, Message::CommitmentSigned(cs))] = &msgs[..] else {
        panic!("{msgs:?}")
    };
    assert_eq!(cs.htlc_signatures.len(), 1);
    deliver_one(&p.a, &p.b, add.clone());
    let invalid = |what| StoreError::InvalidSignature {
        channel_id: p.id,
        what,
    };
    let tampered = |f: &dyn Fn(&mut CommitmentSigned)| {
        let mut cs = cs.clone();
        f(&mut cs);
        Message::CommitmentSigned(cs)
    };
    p.assert_msg_refused(
        &p.a,
        &p.b,
        tampered(&|cs| cs.signature = foreign_signature()),
        invalid("commitment"),
    );
    p.assert_msg_refused(
        &p.a,
        &p.b,
        tampered(&|cs| cs.htlc_signatures[0] = foreign_signature()),
        invalid("htlc"),
    );
    // The HTLC signature in the commitment's place (right key, wrong tx).
    p.assert_msg_refused(
        &p.a,
        &p.b,
        tampered(&|cs| cs.signature = cs.htlc_signatures[0]),
        invalid("commitment"),
    );
    p.assert_msg_refused(
        &p.a,
        &p.b,
        tampered(&|cs| cs.htlc_signatures.clear()),
        StoreError::HtlcSignatureCount {
            channel_id: p.id,
            expected: 1,
            got: 0,
        },
    );
    // The genuine message is still accepted, and the payment completes.
    deliver_one(&p.a, &p.b, Message::CommitmentSigned(cs.clone()));
    deliver_all(&p.nodes());
    assert!(events(&p.b).contains(&Event::PaymentReceived {
        payment_hash: pre.payment_hash(),
        amount_msat: 10_000_000,
        payment_preimage: None,
    }));
}

#[test]
fn refuses_invalid_revocation_secret() {
    let p = pair(StoreConfig::default(), 1_000_000, 0);
    let pre = preimage(9, 0);
    p.a.pay_invoice(&route_to(&p.b, p.scid), pre.payment_hash(), 10_000_000)
        .unwrap();
    for (_, m) in take_msgs(&p.a) {
        deliver_one(&p.a, &p.b, m);
    }
    let msgs = take_msgs(&p.b);
    let [(_, Message::RevokeAndAck(raa)), (_, cs)] = &msgs[..] else {
        panic!("{msgs:?}")
    };
    let bad = StoreError::InvalidRevocationSecret { channel_id: p.id };
    let with_secret = |secret: [u8; 32]| {
        Message::RevokeAndAck(RevokeAndAck {
            per_commitment_secret: secret,
            ..raa.clone()
        })
    };
    let mut flipped = raa.per_commitment_secret;
    flipped[31] ^= 1;
    p.assert_msg_refused(&p.b, &p.a, with_secret(flipped), bad.clone());
    // Not even a valid scalar: refused, not a panic.
    p.assert_msg_refused(&p.b, &p.a, with_secret([0xff; 32]), bad.clone());
    p.assert_msg_refused(&p.b, &p.a, with_secret([0; 32]), bad);
    deliver_one(&p.b, &p.a, Message::RevokeAndAck(raa.clone()));
    deliver_one(&p.b, &p.a, cs.clone());
    deliver_all(&p.nodes());
    assert!(events(&p.b).contains(&Event::PaymentReceived {
        payment_hash: pre.payment_hash(),
        amount_msat: 10_000_000,
        payment_preimage: None,
    }));
}

#[test]
fn refuses_message_for_another_peers_channel() {
    let p = pair(StoreConfig::default(), 1_000_000, 0);
    let c = node(3);
    connect_all(&[&p.b, &c]);
    let (bc, _) = open_channel(&p.b, &c, 300_000, 0);
    let nodes = [&p.a, &p.b, &c];
    let wrong_peer = StoreError::WrongPeer {
        channel_id: p.id,
        sender: c.node_id(),
    };
    // A real commitment_signed of A's, replayed by C.
    p.a.pay_invoice(
        &route_to(&p.b, p.scid),
        preimage(9, 0).payment_hash(),
        1_000_000,
    )
    .unwrap();
    let msgs = take_msgs(&p.a);
    let from_a: Vec<Message> = msgs.into_iter().map(|(_, m)| m).collect();
    let outpoint =
        p.b.channel_details(&p.id)
            .unwrap()
            .funding_outpoint
            .unwrap();
    let from_c = [
        craft_add(
            &p.b,
            p.id,
            0,
            1_000_000,
            preimage(9, 1).payment_hash(),
            CLTV,
        ),
        from_a[1].clone(),
        Message::RevokeAndAck(RevokeAndAck {
            channel_id: p.id,
            per_commitment_secret: [1; 32],
            next_per_commitment_point: pk(9),
        }),
        Message::Error(chanstore::message::ErrorMessage {
            channel_id: p.id,
            data: b"close it".to_vec(),
        }),
        // C claims to fund a channel with A-B's funding outpoint.
        Message::FundingCreated(FundingCreated {
            temporary_channel_id: TEMP,
            funding_txid: outpoint.txid,
            funding_output_index: outpoint.vout as u16,
            signature: foreign_signature(),
        }),
    ];
    for msg in from_c {
        let name = msg.name();
        let (frozen, _) = freeze(&nodes);
        assert_eq!(
            p.b.handle_message(&c.node_id(), msg),
            Err(wrong_peer.clone()),
            "{name}"
        );
        assert_unchanged(&nodes, &frozen);
    }
    // A channel nobody has is unknown, not someone else's.
    let nobody = ChannelId([0x31; 32]);
    let (frozen, _) = freeze(&nodes);
    assert_eq!(
        p.b.handle_message(
            &c.node_id(),
            craft_add(&p.b, nobody, 0, 1_000, preimage(9, 2).payment_hash(), CLTV)
        ),
        Err(StoreError::UnknownChannel { channel_id: nobody })
    );
    assert_unchanged(&nodes, &frozen);
    // A's own messages still go through, and B-C is intact.
    for m in from_a {
        deliver_one(&p.a, &p.b, m);
    }
    deliver_all(&nodes);
    assert_eq!(p.b.channel_details(&p.id).unwrap().pending_htlcs, 1);
    assert_eq!(c.channel_details(&bc).unwrap().state, "normal");
}

#[test]
fn refuses_messages_in_the_wrong_state() {
    let p = pair(StoreConfig::default(), 1_000_000, 0);
    let wrong = |channel_id, action, state| StoreError::WrongState {
        channel_id,
        action,
        state,
    };
    // A revocation nobody asked for.
    p.assert_msg_refused(
        &p.b,
        &p.a,
        Message::RevokeAndAck(RevokeAndAck {
            channel_id: p.id,
            per_commitment_secret: [1; 32],
            next_per_commitment_point: pk(9),
        }),
        wrong(p.id, "revoke_and_ack", "normal"),
    );
    // Closing negotiation without a shutdown.
    p.assert_msg_refused(
        &p.a,
        &p.b,
        Message::ClosingSigned(ClosingSigned {
            channel_id: p.id,
            fee_satoshis: 170,
            signature: foreign_signature(),
            fee_range: None,
        }),
        wrong(p.id, "closing_signed", "normal"),
    );

    // An HTLC on a channel that is funded but not ready yet.
    let temp = p.a.create_channel(p.b.node_id(), 100_000, 0).unwrap();
    deliver_all(&p.nodes());
    events(&p.a);
    let outpoint = bitcoin::OutPoint::new(bitcoin::hashes::Hash::from_byte_array([0x99; 32]), 0);
    let early =
        p.a.funding_transaction_generated(&temp, &p.b.node_id(), outpoint)
            .unwrap();
    deliver_all(&p.nodes());
    assert_eq!(
        p.b.channel_details(&early).unwrap().state,
        "awaiting_channel_ready"
    );
    p.assert_msg_refused(
        &p.a,
        &p.b,
        craft_add(
            &p.b,
            early,
            0,
            1_000_000,
            preimage(9, 0).payment_hash(),
            CLTV,
        ),
        wrong(early, "update_add_htlc", "awaiting_channel_ready"),
    );

    // No new HTLC after shutdown (an HTLC in flight keeps the channel in
    // shutting_down rather than negotiating its close at once).
    p.a.pay_invoice(
        &route_to(&p.b, p.scid),
        preimage(9, 1).payment_hash(),
        1_000_000,
    )
    .unwrap();
    deliver_all(&p.nodes());
    p.a.close_channel(&p.id).unwrap();
    deliver_all(&p.nodes());
    for n in p.nodes() {
        assert_eq!(n.channel_details(&p.id).unwrap().state, "shutting_down");
    }
    let after_shutdown = wrong(p.id, "update_add_htlc", "shutting_down");
    p.assert_send_refused(&p.a, &p.b, 1_000, after_shutdown.clone());
    p.assert_msg_refused(&p.a, &p.b, p.add(1, 1_000), after_shutdown.clone());
    p.assert_msg_refused(&p.b, &p.a, p.add(0, 1_000), after_shutdown);
    // A second shutdown with another script is refused too (the same one
    // again is a retransmission: see tests/fund_safety.rs).
    p.assert_msg_refused(
        &p.a,
        &p.b,
        Message::Shutdown(chanstore::message::Shutdown {
            channel_id: p.id,
            scriptpubkey: bitcoin::ScriptBuf::new_p2wpkh(
                &<bitcoin::WPubkeyHash as bitcoin::hashes::Hash>::from_byte_array([1; 20]),
            ),
        }),
        StoreError::InvalidShutdownScript { channel_id: p.id },
    );
}

#[test]
fn payment_onion_carries_the_recipients_payload() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = preimage(5, 0);
    let fields = invoice(&route_to(&b, scid), p.payment_hash());
    a.send_payment(
        &route_to(&b, scid),
        p.payment_hash(),
        7_000_000,
        fields.clone(),
    )
    .unwrap();
    let msgs = take_msgs(&a);
    let Some((_, Message::UpdateAddHtlc(add))) = msgs.first() else {
        panic!("{msgs:?}")
    };
    // Only B's key peels it: a BOLT 4 onion, its last layer.
    let other = SecretKey::from_slice(&[9; 32]).unwrap();
    assert_eq!(
        peel_onion(&other, &add.onion_routing_packet, &p.payment_hash().0),
        Err(BadOnion::Hmac)
    );
    let peeled = peel_onion(
        &secret_of(&b.node_id()),
        &add.onion_routing_packet,
        &p.payment_hash().0,
    )
    .unwrap();
    let Peeled::Final { payload, .. } = peeled else {
        panic!("{peeled:?}")
    };
    assert_eq!(
        HopPayload::decode(&payload, true).unwrap(),
        HopPayload::Receive {
            amt_to_forward: 7_000_000,
            outgoing_cltv_value: add.cltv_expiry,
            payment_data: Some(PaymentData {
                payment_secret: fields.payment_secret.unwrap(),
                total_msat: 7_000_000
            }),
            payment_metadata: None,
        }
    );
}

/// A's real payment to B, with the onion (which no signature covers)
/// replaced in transit by `tamper(add, payload)`, which returns the new
/// onion and its shared secret with B. B must fail it back: this returns
/// the failure B sent (read with that secret, or from its
/// `update_fail_malformed_htlc`) and A's `PaymentFailed`.
fn recipient_fails_tampered_onion(
    tamper: impl Fn(&UpdateAddHtlc, HopPayload) -> (OnionPacket, [u8; 32]),
) -> (FailureCode, Vec<u8>, Event) {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = preimage(5, 1);
    a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 7_000_000)
        .unwrap();
    let mut secret = None;
    for (_, msg) in take_msgs(&a) {
        let msg = match msg {
            Message::UpdateAddHtlc(mut add) => {
                let key = secret_of(&b.node_id());
                let peeled = peel_onion(&key, &add.onion_routing_packet, &add.payment_hash.0);
                let Ok(Peeled::Final { payload, .. }) = peeled else {
                    panic!("{peeled:?}")
                };
                let payload = HopPayload::decode(&payload, true).unwrap();
                let (onion, ss) = tamper(&add, payload);
                add.onion_routing_packet = onion;
                secret = Some(ss);
                Message::UpdateAddHtlc(add)
            }
            other => other,
        };
        deliver_one(&a, &b, msg);
    }
    let mut failure = None;
    loop {
        let mut moved = false;
        for (_, msg) in take_msgs(&b) {
            match &msg {
                Message::UpdateFailHtlc(m) => {
                    failure = Some(decode_failure(&[secret.unwrap()], &m.reason));
                }
                Message::UpdateFailMalformedHtlc(m) => {
                    failure = Some(DecodedFailure::Hop {
                        index: 0,
                        code: m.failure_code,
                        data: vec![],
                    });
                }
                _ => {}
            }
            deliver_one(&b, &a, msg);
            moved = true;
        }
        for (_, msg) in take_msgs(&a) {
            deliver_one(&a, &b, msg);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert_eq!(events(&b), vec![]);
    let mut evs = events(&a);
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(a.channel_details(&id).unwrap().balance_msat, 1_000_000_000);
    assert_eq!(a.channel_details(&id).unwrap().pending_htlcs, 0);
    a.check_value_conserved().unwrap();
    b.check_value_conserved().unwrap();
    let Some(DecodedFailure::Hop { code, data, .. }) = failure else {
        panic!("B sent no readable failure: {failure:?}")
    };
    (FailureCode::from_code(code), data, evs.remove(0))
}

/// `payload` in a new onion for `b`, and its shared secret with `b`.
fn rewrap(add: &UpdateAddHtlc, payload: HopPayload, b: &PublicKey) -> (OnionPacket, [u8; 32]) {
    rewrap_bytes(add, payload.encode(), b)
}

fn rewrap_bytes(add: &UpdateAddHtlc, payload: Vec<u8>, b: &PublicKey) -> (OnionPacket, [u8; 32]) {
    let hop = OnionHop {
        node_id: *b,
        payload,
    };
    let key = SecretKey::from_slice(&[0x42; 32]).unwrap();
    let (onion, secrets) = construct_onion(&key, &[hop], &add.payment_hash.0).unwrap();
    (onion, secrets[0])
}

/// A's `PaymentFailed` for a failure it cannot read: the onion it sent was
/// replaced on the way, so the reply decodes at no hop of its route.
fn unreadable(event: &Event) -> bool {
    matches!(
        event,
        Event::PaymentFailed {
            failure: FailureCode::Unreadable,
            failing_node: None,
            ..
        }
    )
}

#[test]
fn recipient_checks_the_onion_payload() {
    let b = node(2).node_id();
    // Amount and expiry must match what the HTLC carries.
    let (code, data, at_a) = recipient_fails_tampered_onion(|add, mut payload| {
        if let HopPayload::Receive { amt_to_forward, .. } = &mut payload {
            *amt_to_forward += 1;
        }
        rewrap(add, payload, &b)
    });
    assert_eq!(code, FailureCode::FinalIncorrectHtlcAmount);
    assert_eq!(data, 7_000_000u64.to_be_bytes());
    assert!(unreadable(&at_a), "{at_a:?}");
    let (code, data, _) = recipient_fails_tampered_onion(|add, mut payload| {
        if let HopPayload::Receive {
            outgoing_cltv_value,
            ..
        } = &mut payload
        {
            *outgoing_cltv_value += 1;
        }
        rewrap(add, payload, &b)
    });
    assert_eq!(code, FailureCode::FinalIncorrectCltvExpiry);
    assert_eq!(data.len(), 4);
    // The invoice's secret: missing, or wrong.
    for secret in [None, Some([0x77; 32])] {
        let (code, data, _) = recipient_fails_tampered_onion(|add, mut payload| {
            if let HopPayload::Receive { payment_data, .. } = &mut payload {
                *payment_data = secret.map(|s| PaymentData {
                    payment_secret: chanstore::PaymentSecret(s),
                    total_msat: add.amount_msat,
                });
            }
            rewrap(add, payload, &b)
        });
        assert_eq!(code, FailureCode::IncorrectOrUnknownPaymentDetails);
        assert_eq!(data[..8], 7_000_000u64.to_be_bytes());
    }
    // A payload with an unknown even record: invalid_onion_payload, naming it.
    let (code, data, _) = recipient_fails_tampered_onion(|add, payload| {
        let mut bytes = payload.encode();
        bytes.extend_from_slice(&[100, 1, 0]);
        rewrap_bytes(add, bytes, &b)
    });
    assert_eq!(code, FailureCode::InvalidOnionPayload);
    assert_eq!(data[0], 100, "the record's type, then its offset");
}

#[test]
fn unreadable_onions_are_failed_as_malformed() {
    let b = node(2).node_id();
    // Version, HMAC, key: update_fail_malformed_htlc, which A attributes
    // to B (its first hop) with the code B sent.
    type Spoil = fn(&mut OnionPacket);
    let cases: [(Spoil, FailureCode); 3] = [
        (|p| p.0[0] = 1, FailureCode::InvalidOnionVersion),
        (|p| p.0[100] ^= 1, FailureCode::InvalidOnionHmac),
        (|p| p.0[1] = 0x05, FailureCode::InvalidOnionKey),
    ];
    for (spoil, expected) in cases {
        let (code, data, at_a) = recipient_fails_tampered_onion(|add, payload| {
            let (mut packet, ss) = rewrap(add, payload, &b);
            spoil(&mut packet);
            (packet, ss)
        });
        assert_eq!((code, data), (expected, vec![]));
        let Event::PaymentFailed {
            failure,
            failing_node,
            ..
        } = at_a
        else {
            panic!("{at_a:?}")
        };
        assert_eq!((failure, failing_node), (expected, Some(b)));
    }
}
