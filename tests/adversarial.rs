//! Hostile peers against a hub (issue 8): random sequences of forged,
//! replayed, reordered, mutated and random messages from a peer with real
//! channels (Mallory), a connected peer without any (Eve) and one that never
//! connected, mixed with honest payments through the hub.
//!
//! After every step: no panic; a refused message changed nothing (not even
//! the outbox) and no message changed another peer's state; value is
//! conserved; indexes and readers agree with the primary map. At the end:
//! every honest payment ended exactly once and every honest channel still
//! carries a payment. The world and the checks live in `adversarial/`,
//! shared with the fuzz target `fuzz/fuzz_targets/handle_message.rs`.
//!
//! At the bottom: regression tests for the bugs these tests found.

#[path = "adversarial/actions.rs"]
mod actions;
mod common;
#[path = "adversarial/decode.rs"]
mod decode;
#[path = "adversarial/world.rs"]
mod world;

use actions::{apply, Action, Forged, HonestRoute, OutpointPick, PayTo, Sender, Target, Who};
use bitcoin::hashes::Hash;
use bitcoin::{OutPoint, Txid};
use chanstore::message::{AcceptChannel, OpenChannel};
use chanstore::{
    ChannelId, ChannelStore, Event, Message, PaymentHash, PaymentPreimage, Route, RouteHop,
    StoreConfig, StoreError,
};
use common::*;
use proptest::prelude::*;
use world::World;

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        1 => Just(Target::AHub),
        1 => Just(Target::HubB),
        1 => Just(Target::CHub),
        3 => Just(Target::MHub),
        2 => Just(Target::HubM),
        2 => Just(Target::MNew),
        1 => Just(Target::HubTemp),
        2 => (1u8..=4).prop_map(Target::Temp),
        1 => Just(Target::Zero),
    ]
}

fn sender() -> impl Strategy<Value = Sender> {
    prop_oneof![
        4 => Just(Sender::Mallory),
        1 => Just(Sender::Eve),
        1 => Just(Sender::Unknown),
    ]
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0),
        1 => Just(1),
        6 => 1_000u64..60_000_000,
        1 => Just(700_000_000),
        1 => Just(1_000_000_000_000),
        1 => Just(u64::MAX),
    ]
}

fn htlc_id() -> impl Strategy<Value = u64> {
    prop_oneof![6 => 0u64..6, 1 => Just(u64::MAX)]
}

fn counter() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..4, 1 => Just(1 << 48), 1 => Just(u64::MAX)]
}

fn funding() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(100_000u64),
        Just(5_000),
        Just(20_000_000),
        Just(u64::MAX)
    ]
}

fn outpoint() -> impl Strategy<Value = OutpointPick> {
    prop_oneof![
        Just(OutpointPick::Fresh),
        target().prop_map(OutpointPick::Of),
        (1u8..=4).prop_map(OutpointPick::MatchingTemp),
    ]
}

fn forged() -> impl Strategy<Value = Forged> {
    prop_oneof![
        1 => (target(), funding(), amount(), 0u8..12).prop_map(|(temp, funding_sat, push_msat, bad)| {
            Forged::Open {
                temp,
                funding_sat,
                push_msat,
                bad,
            }
        }),
        1 => (target(), 0u8..6).prop_map(|(temp, bad)| Forged::Accept { temp, bad }),
        1 => (target(), outpoint())
            .prop_map(|(temp, outpoint)| Forged::FundingCreated { temp, outpoint }),
        1 => target().prop_map(|chan| Forged::FundingSigned { chan }),
        1 => target().prop_map(|chan| Forged::ChannelReady { chan }),
        4 => (target(), htlc_id(), amount(), any::<u8>(), any::<u8>(), any::<u8>()).prop_map(
            |(chan, id, amount_msat, cltv, onion, hash)| Forged::Add {
                chan,
                id,
                amount_msat,
                cltv,
                onion,
                hash,
            }
        ),
        2 => (target(), htlc_id(), any::<u8>())
            .prop_map(|(chan, id, preimage)| Forged::Fulfill { chan, id, preimage }),
        1 => (target(), htlc_id(), any::<u8>())
            .prop_map(|(chan, id, reason_len)| Forged::Fail { chan, id, reason_len }),
        1 => (target(), htlc_id(), prop_oneof![Just(0xc005u16), Just(0xc006), any::<u16>()])
            .prop_map(|(chan, id, code)| Forged::FailMalformed { chan, id, code }),
        2 => (target(), 0u8..12)
            .prop_map(|(chan, htlc_sigs)| Forged::CommitmentSigned { chan, htlc_sigs }),
        1 => (target(), any::<u8>()).prop_map(|(chan, secret)| Forged::RevokeAndAck { chan, secret }),
        1 => (target(), prop_oneof![Just(253u32), 0u32..400_000, Just(u32::MAX)])
            .prop_map(|(chan, feerate)| Forged::UpdateFee { chan, feerate }),
        1 => (target(), any::<u8>()).prop_map(|(chan, script)| Forged::Shutdown { chan, script }),
        1 => (target(), amount()).prop_map(|(chan, fee_sat)| Forged::ClosingSigned { chan, fee_sat }),
        2 => (target(), counter(), counter(), any::<u8>()).prop_map(|(chan, c, r, secret)| {
            Forged::Reestablish {
                chan,
                next_commitment_number: c,
                next_revocation_number: r,
                secret,
            }
        }),
        1 => (target(), 0u8..8).prop_map(|(chan, data_len)| Forged::Error { chan, data_len }),
        2 => (target(), 0u8..5, any::<[bool; 2]>(), any::<u32>(), any::<u32>()).prop_map(
            |(chan, signer, [other_chain, flip_direction], timestamp, fee_base_msat)| {
                Forged::ChannelUpdate {
                    chan,
                    signer,
                    other_chain,
                    flip_direction,
                    timestamp,
                    fee_base_msat,
                }
            }
        ),
    ]
}

/// Bytes with a known message type in front, so that some decode.
fn raw_bytes() -> impl Strategy<Value = Vec<u8>> {
    let types = vec![
        17u16, 32, 33, 34, 35, 36, 38, 39, 128, 130, 131, 132, 133, 134, 136,
    ];
    (
        prop::sample::select(types),
        prop::collection::vec(any::<u8>(), 0..400),
    )
        .prop_map(|(t, tail)| {
            let mut bytes = t.to_be_bytes().to_vec();
            bytes.extend(tail);
            bytes
        })
}

fn action() -> impl Strategy<Value = Action> {
    let route = prop_oneof![
        Just(HonestRoute::AToHub),
        Just(HonestRoute::AToB),
        Just(HonestRoute::BToA),
        Just(HonestRoute::CToHub),
        Just(HonestRoute::HubToB),
        Just(HonestRoute::HubToC),
        Just(HonestRoute::HubToMallory),
        Just(HonestRoute::BToMallory),
    ];
    let pay_to = prop_oneof![Just(PayTo::Hub), Just(PayTo::B), Just(PayTo::Herself)];
    let who = prop_oneof![
        1 => Just(Who::A),
        1 => Just(Who::B),
        1 => Just(Who::C),
        2 => Just(Who::Mallory),
        1 => Just(Who::Eve),
    ];
    prop_oneof![
        3 => (route, prop_oneof![9 => 1_000u64..40_000_000, 1 => Just(900_000_000)])
            .prop_map(|(route, amount_msat)| Action::Pay { route, amount_msat }),
        4 => (1u8..12).prop_map(|count| Action::Deliver { count }),
        1 => Just(Action::Forward),
        2 => any::<bool>().prop_map(|claim| Action::Settle { claim }),
        1 => who.prop_map(|who| Action::Reconnect { who }),
        2 => (pay_to, amount())
            .prop_map(|(to, amount_msat)| Action::MalloryPay { to, amount_msat }),
        4 => (1u8..8, prop_oneof![3 => Just(0u8), 1 => 1u8..4])
            .prop_map(|(count, skip)| Action::MalloryDeliver { count, skip }),
        1 => funding().prop_map(|funding_sat| Action::MalloryOpen { funding_sat }),
        1 => outpoint().prop_map(|outpoint| Action::MalloryFund { outpoint }),
        1 => funding().prop_map(|funding_sat| Action::HubOpen { funding_sat }),
        1 => Just(Action::Confirm),
        1 => (target(), any::<bool>()).prop_map(|(target, force)| Action::HubClose { target, force }),
        1 => (target(), prop_oneof![Just(253u32), 254u32..20_000])
            .prop_map(|(target, feerate)| Action::HubUpdateFee { target, feerate }),
        10 => (sender(), forged()).prop_map(|(from, msg)| Action::Forge { from, msg }),
        4 => (sender(), any::<u16>(), prop::option::of(target())).prop_map(
            |(from, index, retarget)| Action::Replay {
                from,
                index,
                retarget
            }
        ),
        2 => (sender(), any::<u16>(), any::<u16>(), any::<u8>()).prop_map(
            |(from, index, pos, xor)| Action::Mutate {
                from,
                index,
                pos,
                xor
            }
        ),
        1 => (sender(), raw_bytes()).prop_map(|(from, bytes)| Action::Raw { from, bytes }),
    ]
}

/// Bounded for CI (each case is up to 60 steps, every one checked);
/// `PROPTEST_CASES=N` runs more.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    ProptestConfig {
        cases,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hostile_peers_cannot_hurt_the_hub(actions in prop::collection::vec(action(), 1..60)) {
        let mut w = World::new();
        for a in &actions {
            apply(&mut w, a);
        }
        w.finish();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..config() })]

    /// The fuzz target's byte decoder, on random bytes: every input plays.
    #[test]
    fn fuzz_decoder_plays_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut w = World::new();
        for a in &decode::decode_actions(&bytes) {
            apply(&mut w, a);
        }
        w.finish();
    }
}

/// The world itself, with no adversary: honest traffic only must pass.
#[test]
fn honest_world_finishes() {
    let mut w = World::new();
    for a in [
        Action::Pay {
            route: HonestRoute::AToB,
            amount_msat: 5_000_000,
        },
        Action::Pay {
            route: HonestRoute::HubToC,
            amount_msat: 3_000_000,
        },
        Action::Deliver { count: 5 },
        Action::Reconnect { who: Who::B },
        Action::MalloryPay {
            to: PayTo::B,
            amount_msat: 2_000_000,
        },
        Action::MalloryDeliver { count: 3, skip: 0 },
    ] {
        apply(&mut w, &a);
    }
    w.finish();
}

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
    a.pay_invoice(&route_to(&b, scid), paid.payment_hash(), 500_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    events(&b);
    b.claim_funds(paid).unwrap();
    let back = PaymentPreimage([6; 32]);
    let before = b.debug_state();
    assert_eq!(
        b.pay_invoice(&route_to(&a, scid), back.payment_hash(), 300_000_000),
        Err(StoreError::AmountExceedsBalance {
            channel_id: id,
            amount_msat: 300_000_000,
            available_msat: 0
        })
    );
    assert_eq!(b.debug_state(), before);
    // Once the fulfill has settled, the value is B's to spend.
    deliver_all(&[&a, &b]);
    b.pay_invoice(&route_to(&a, scid), back.payment_hash(), 300_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    a.claim_funds(back).unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(b.channel_details(&id).unwrap().balance_msat, 200_000_000);
    for n in [&a, &b] {
        n.check_value_conserved().unwrap();
    }
}

/// A peer fulfills our HTLC and at once offers one paid from it, before
/// the fulfill is committed. The value is the peer's from its fulfill on
/// (the preimage is out, and the removal is in every commitment to come),
/// and LDK spends it that early, so the add is taken (`ldk_interop.rs`,
/// `s2_ldk_spends_a_payment_it_just_claimed`). Our first version of that
/// credit panicked on the peer's HTLCs exceeding its settled balance; now
/// the snapshot adds up, value is conserved, and a reconnection (which
/// forgets the uncommitted add) leaves the fulfill to complete.
#[test]
fn a_peer_may_spend_our_htlc_it_fulfilled_before_it_settles() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let paid = PaymentPreimage([5; 32]);
    a.pay_invoice(&route_to(&b, scid), paid.payment_hash(), 500_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    events(&b);
    b.claim_funds(paid).unwrap();
    // B's update_fulfill_htlc and commitment_signed reach A...
    for (_, msg) in take_msgs(&b) {
        deliver_one(&b, &a, msg);
    }
    // ...and B offers an HTLC paid from the fulfilled value.
    let add = craft_add(&a, id, 0, 300_000_000, preimage(6, 0).payment_hash(), CLTV);
    a.handle_message(&b.node_id(), add).unwrap();
    let d = a.channel_details(&id).unwrap();
    assert_eq!(
        (d.balance_msat, d.inbound_capacity_msat, d.in_flight_msat),
        (500_000_000, 200_000_000, 300_000_000),
        "{d:?}"
    );
    a.check_value_conserved().unwrap();
    // More than the fulfill left it is still refused.
    one_msat_more_is_refused_then_it_settles(
        (&a, &b),
        id,
        (1, preimage(6, 1).payment_hash()),
        200_000_000,
        500_000_000,
    );
}

/// B offers one msat more than A says it may (`available_msat`) with
/// `(htlc_id, hash)`: A refuses it precisely and changes nothing. B never
/// signs the crafted add it sent before, so a reconnection forgets it, the
/// round trip under way completes, and A ends with `balance_msat` and no
/// HTLC.
fn one_msat_more_is_refused_then_it_settles(
    (a, b): (&ChannelStore, &ChannelStore),
    id: ChannelId,
    (htlc_id, hash): (u64, PaymentHash),
    available_msat: u64,
    balance_msat: u64,
) {
    let too_much = craft_add(a, id, htlc_id, available_msat + 1, hash, CLTV);
    let (frozen, _) = freeze(&[a]);
    assert_eq!(
        a.handle_message(&b.node_id(), too_much),
        Err(StoreError::AmountExceedsBalance {
            channel_id: id,
            amount_msat: available_msat + 1,
            available_msat
        })
    );
    assert_unchanged(&[a], &frozen);
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    connect_all(&[a, b]);
    deliver_all(&[a, b]);
    let d = a.channel_details(&id).unwrap();
    assert_eq!(
        (d.balance_msat, d.pending_htlcs),
        (balance_msat, 0),
        "{d:?}"
    );
    for n in [a, b] {
        n.check_value_conserved().unwrap();
    }
}

/// B (600,000,000 msat pushed to it on a 1,000,000 sat channel) pays A
/// 500,000,000 msat with `failed`'s hash, and A fails it back: A's
/// `update_fail_htlc` and `commitment_signed` are queued, not delivered.
fn b_pays_a_who_fails_it(failed: PaymentPreimage) -> (ChannelStore, ChannelStore, ChannelId) {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 600_000_000);
    b.pay_invoice(&route_to(&a, scid), failed.payment_hash(), 500_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    events(&a);
    a.fail_htlc_backwards(&failed.payment_hash()).unwrap();
    (a, b, id)
}

/// A hostile peer whose HTLC we failed offers its value again before the
/// failure is committed: both HTLCs would be outputs of our commitment at
/// once, more than the peer has. We used to credit the failed HTLC back,
/// take the add and panic on the negative balance.
#[test]
fn a_peer_cannot_spend_a_failed_htlc_before_the_failure_settles() {
    let (a, b, id) = b_pays_a_who_fails_it(PaymentPreimage([7; 32]));
    // A's update_fail_htlc and commitment_signed are still on their way.
    take_msgs(&a);
    let add = craft_add(&a, id, 1, 500_000_000, preimage(7, 1).payment_hash(), CLTV);
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

/// Once the peer has revoked the commitment that had its HTLC we failed, the
/// value is the peer's again: any `commitment_signed` it sends from then on
/// has the failure (LDK spends it from there, `ldk_interop.rs`,
/// `s6_ldk_raises_the_fee_after_a_fail_crossed_its_payment`). So an add
/// paid from it is taken; the snapshot adds up, the record reads back
/// (without the add, which no `commitment_signed` covers), and more than
/// the failure gave back is still refused.
#[test]
fn a_peer_may_spend_its_htlc_we_failed_once_it_revoked() {
    let (a, b, id) = b_pays_a_who_fails_it(PaymentPreimage([8; 32]));
    // A's update_fail_htlc and commitment_signed reach B; B's
    // revoke_and_ack reaches A, its commitment_signed waits.
    for (_, msg) in take_msgs(&a) {
        deliver_one(&a, &b, msg);
    }
    for (_, msg) in take_msgs(&b) {
        if matches!(msg, Message::RevokeAndAck(_)) {
            deliver_one(&b, &a, msg);
        }
    }
    let add = craft_add(&a, id, 1, 450_000_000, preimage(8, 1).payment_hash(), CLTV);
    a.handle_message(&b.node_id(), add).unwrap();
    let d = a.channel_details(&id).unwrap();
    assert_eq!(
        (d.balance_msat, d.inbound_capacity_msat, d.in_flight_msat),
        (400_000_000, 150_000_000, 450_000_000),
        "{d:?}"
    );
    a.check_value_conserved().unwrap();
    let record = a.encode_channel(&id).unwrap();
    let decoded = chanstore::persist::decode_channel_details(&record, &world::secret(1)).unwrap();
    assert_eq!(
        (decoded.inbound_capacity_msat, decoded.pending_htlcs),
        (600_000_000, 1)
    );
    one_msat_more_is_refused_then_it_settles(
        (&a, &b),
        id,
        (2, preimage(8, 2).payment_hash()),
        150_000_000,
        400_000_000,
    );
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

/// A peer's dust limit trims our outputs as well as its own (our
/// `to_remote` in its commitment; in a cooperative close, any output of
/// ours not above it), so one of 100,000 sat in a channel of 1,000,000 (its
/// reserve allowed it) sent a balance of ours of 90,000 sat to miners at
/// the close. Above 546 sat (LDK's `MAX_CHAN_DUST_LIMIT_SATOSHIS`) it is
/// refused, in `open_channel` and in `accept_channel`, and nothing changes.
#[test]
fn a_peer_dust_limit_above_546_is_refused_in_open_and_accept() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    a.create_channel(b.node_id(), 1_000_000, 0).unwrap();
    let Some((_, Message::OpenChannel(open))) = take_msgs(&a).pop() else {
        panic!("expected open_channel")
    };
    let id = open.temporary_channel_id;
    for (dust, reserve) in [(547, 10_000), (100_000, 100_000)] {
        let msg = Message::OpenChannel(OpenChannel {
            dust_limit_satoshis: dust,
            channel_reserve_satoshis: reserve,
            ..open.clone()
        });
        let (frozen, _) = freeze(&[&b]);
        assert_eq!(
            b.handle_message(&a.node_id(), msg),
            Err(StoreError::UnacceptableParameter {
                channel_id: id,
                parameter: "dust_limit_satoshis",
                value: dust,
                limit: 546
            })
        );
        assert_unchanged(&[&b], &frozen);
    }
    // 546 itself is fine.
    b.handle_message(
        &a.node_id(),
        Message::OpenChannel(OpenChannel {
            dust_limit_satoshis: 546,
            ..open.clone()
        }),
    )
    .unwrap();
    let Some((_, Message::AcceptChannel(accept))) = take_msgs(&b).pop() else {
        panic!("expected accept_channel")
    };
    // Our reserve of the peer is 10,000 sat here: 547 passes that check
    // and fails the bound.
    let (frozen, _) = freeze(&[&a]);
    assert_eq!(
        a.handle_message(
            &b.node_id(),
            Message::AcceptChannel(AcceptChannel {
                dust_limit_satoshis: 547,
                ..accept.clone()
            })
        ),
        Err(StoreError::UnacceptableParameter {
            channel_id: id,
            parameter: "dust_limit_satoshis",
            value: 547,
            limit: 546
        })
    );
    assert_unchanged(&[&a], &frozen);
    a.handle_message(&b.node_id(), Message::AcceptChannel(accept))
        .unwrap();
}

/// BOLT 7: a channel opened with `announce_channel` is owed
/// `announcement_signatures`, which we never send (our channels are
/// unannounced). It is refused, and nothing changes; reserved bits alone
/// are no reason to refuse.
#[test]
fn an_open_channel_asking_to_be_announced_is_refused() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    a.create_channel(b.node_id(), 100_000, 0).unwrap();
    let Some((_, Message::OpenChannel(open))) = take_msgs(&a).pop() else {
        panic!("expected open_channel")
    };
    let id = open.temporary_channel_id;
    for flags in [1, 0x81] {
        let msg = Message::OpenChannel(OpenChannel {
            channel_flags: flags,
            ..open.clone()
        });
        let (frozen, _) = freeze(&[&b]);
        assert_eq!(
            b.handle_message(&a.node_id(), msg),
            Err(StoreError::UnacceptableParameter {
                channel_id: id,
                parameter: "channel_flags (announce_channel)",
                value: flags.into(),
                limit: 0
            })
        );
        assert_unchanged(&[&b], &frozen);
    }
    b.handle_message(
        &a.node_id(),
        Message::OpenChannel(OpenChannel {
            channel_flags: 0x80,
            ..open
        }),
    )
    .unwrap();
    assert!(matches!(
        take_msgs(&b).pop(),
        Some((_, Message::AcceptChannel(_)))
    ));
}

/// Our own dust limit is held to the same bound: a peer would refuse it.
#[test]
fn a_dust_limit_above_546_is_not_a_valid_config() {
    let config = |dust_limit_sat| StoreConfig {
        dust_limit_sat,
        ..StoreConfig::default()
    };
    assert!(config(546).validate().is_ok());
    assert!(matches!(
        config(547).validate(),
        Err(StoreError::InvalidConfig { .. })
    ));
}

// ---------------------------------------------------------------------------
// Regressions: HTLCs being removed still count.
// ---------------------------------------------------------------------------

/// An HTLC we are removing (fulfilled or failed, not yet committed) is
/// still an output of our commitment, so it counts towards the
/// `max_accepted_htlcs` we impose on the peer (BOLT 2 counts the HTLCs in
/// the commitment). It used not to: a peer could keep more than that many
/// HTLCs in our commitment by adding one for each we were removing.
#[test]
fn htlcs_being_removed_count_towards_max_accepted_htlcs() {
    let config = StoreConfig {
        max_accepted_htlcs: 3,
        ..StoreConfig::default()
    };
    let (a, b) = (node_with(1, config), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 500_000_000);
    for i in 0..3 {
        b.pay_invoice(
            &route_to(&a, scid),
            preimage(8, i).payment_hash(),
            1_000_000,
        )
        .unwrap();
    }
    deliver_all(&[&a, &b]);
    events(&a);
    a.fail_htlc_backwards(&preimage(8, 0).payment_hash())
        .unwrap();
    // A's update_fail_htlc and commitment_signed are still on their way.
    take_msgs(&a);
    let add = craft_add(&a, id, 3, 1_000_000, preimage(8, 3).payment_hash(), CLTV);
    let (frozen, _) = freeze(&[&a]);
    assert_eq!(
        a.handle_message(&b.node_id(), add),
        Err(StoreError::TooManyHtlcs {
            channel_id: id,
            count: 4,
            max: 3
        })
    );
    assert_unchanged(&[&a], &frozen);
}

/// The same at BOLT 2's limit: 483 HTLCs each way, one of the peer's being
/// failed, one more from the peer. Taken, it made 967 HTLCs in one channel,
/// more than `Channel::check_consistency` accepts (2 x 483): the store could
/// no longer be read back from its own `write`.
#[test]
fn a_peer_cannot_push_a_channel_past_what_the_store_can_read_back() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 10_000_000, 5_000_000_000);
    // Below the dust limit: no HTLC outputs, so no HTLC signatures.
    for i in 0..483 {
        a.pay_invoice(&route_to(&b, scid), preimage(9, i).payment_hash(), 1_000)
            .unwrap();
        b.pay_invoice(&route_to(&a, scid), preimage(10, i).payment_hash(), 1_000)
            .unwrap();
    }
    deliver_all(&[&a, &b]);
    events(&a);
    a.fail_htlc_backwards(&preimage(10, 0).payment_hash())
        .unwrap();
    take_msgs(&a);
    let add = craft_add(&a, id, 483, 1_000, preimage(10, 483).payment_hash(), CLTV);
    assert_eq!(
        a.handle_message(&b.node_id(), add),
        Err(StoreError::TooManyHtlcs {
            channel_id: id,
            count: 484,
            max: 483
        })
    );
    let mut bytes = Vec::new();
    a.write(&mut bytes).unwrap();
    let secret = bitcoin::secp256k1::SecretKey::from_slice(&[1; 32]).unwrap();
    let back = ChannelStore::read(&mut &bytes[..], StoreConfig::default(), secret)
        .expect("the store reads back");
    assert_eq!(back.list_channels().len(), 1);
}

// ---------------------------------------------------------------------------
// Regressions: HTLCs of 0 msat.
// ---------------------------------------------------------------------------

/// Every store's `write` must read back.
fn assert_reads_back(node: &ChannelStore, seed: u8, config: StoreConfig) {
    let mut bytes = Vec::new();
    node.write(&mut bytes).unwrap();
    let secret = bitcoin::secp256k1::SecretKey::from_slice(&[seed; 32]).unwrap();
    if let Err(e) = ChannelStore::read(&mut &bytes[..], config, secret) {
        panic!("node {seed}: its own write does not read back: {e}");
    }
}

/// BOLT 2: an HTLC of 0 msat is refused, whatever `htlc_minimum_msat`
/// says. A peer may announce a minimum of 0, and an onion may ask us to
/// forward 0 msat (`amt_to_forward`): we used to offer that HTLC, and a store
/// configured with a minimum of 0 took one. `Channel::check_consistency`
/// refuses a 0-msat HTLC on load, so such a store's own write no longer read
/// back: a persisting node could not restart.
#[test]
fn zero_msat_htlcs_are_refused_both_ways() {
    let zero_minimum = StoreConfig {
        htlc_minimum_msat: 0,
        ..StoreConfig::default()
    };
    let (a, b, c) = (node(1), node(2), node_with(3, zero_minimum.clone()));
    connect_all(&[&a, &b, &c]);
    let (_, ab) = open_channel(&a, &b, 1_000_000, 0);
    let (bc_id, bc) = open_channel(&b, &c, 1_000_000, 0);
    let route = Route {
        hops: vec![
            RouteHop {
                node_id: b.node_id(),
                short_channel_id: ab,
                fee_msat: b.config().forwarding_fee_msat(0),
                cltv_expiry_delta: 72,
            },
            RouteHop {
                node_id: c.node_id(),
                short_channel_id: bc,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            },
        ],
    };
    let paid = PaymentPreimage([11; 32]);
    a.pay_invoice(&route, paid.payment_hash(), 0).unwrap();
    deliver_all(&[&a, &b, &c]);
    // B did not forward it: A's payment failed and nothing reached C.
    let failed = events(&a).into_iter().any(|e| {
        matches!(e, Event::PaymentFailed { payment_hash, .. } if payment_hash == paid.payment_hash())
    });
    assert!(failed);
    assert_eq!(b.channel_details(&bc_id).unwrap().pending_htlcs, 0);
    // A 0-msat add is refused even by C, whose minimum is 0.
    let add = craft_add(&c, bc_id, 0, 0, preimage(11, 1).payment_hash(), CLTV);
    let (frozen, _) = freeze(&[&c]);
    assert_eq!(
        c.handle_message(&b.node_id(), add),
        Err(StoreError::HtlcBelowMinimum {
            channel_id: bc_id,
            amount_msat: 0,
            minimum_msat: 1
        })
    );
    assert_unchanged(&[&c], &frozen);
    assert_reads_back(&a, 1, StoreConfig::default());
    assert_reads_back(&b, 2, StoreConfig::default());
    assert_reads_back(&c, 3, zero_minimum);
}
