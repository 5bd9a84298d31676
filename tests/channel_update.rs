//! BOLT 7 `channel_update` between two stores, through the public API: each
//! sends its own (signed with its node key) when `channel_ready` has gone
//! both ways and after every reestablish; each checks the other's and shows
//! its policy in `ChannelDetails`, durably; a hostile one is refused with a
//! precise error and changes nothing; UPDATE failures carry the hub's.

mod common;

use std::sync::Arc;

use bitcoin::constants::ChainHash;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::SecretKey;
use bitcoin::{OutPoint, Txid};
use chanstore::message::gossip::{CHANNEL_FLAG_DIRECTION, MESSAGE_FLAG_DONT_FORWARD};
use chanstore::message::ChannelUpdate;
use chanstore::{
    ChannelId, ChannelStore, Event, FailureCode, ForwardingPolicy, MemoryPersister, Message,
    Persister, Route, RouteHop, ShortChannelId, StoreConfig, StoreError,
};
use common::*;

/// A's and B's configs differ in everything a `channel_update` carries.
fn config(n: u32) -> StoreConfig {
    StoreConfig {
        forwarding_fee_base_msat: 1000 + n,
        forwarding_fee_proportional_millionths: 100 + n,
        cltv_expiry_delta: 72 + n as u16,
        htlc_minimum_msat: 1 + u64::from(n),
        ..StoreConfig::default()
    }
}

/// The `channel_update`s among `msgs`.
fn updates(msgs: &[(bitcoin::secp256k1::PublicKey, Message)]) -> Vec<ChannelUpdate> {
    msgs.iter()
        .filter_map(|(_, m)| match m {
            Message::ChannelUpdate(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

/// What `from`'s update on a channel of `funding_sat` says, as `to` keeps it.
fn policy_of(from: &ChannelStore, to: &ChannelStore, funding_sat: u64) -> ForwardingPolicy {
    let (f, t) = (from.config(), to.config());
    ForwardingPolicy {
        fee_base_msat: f.forwarding_fee_base_msat,
        fee_proportional_millionths: f.forwarding_fee_proportional_millionths,
        cltv_expiry_delta: f.cltv_expiry_delta,
        // The larger of the two minimums; the capacity capped by the
        // in-flight limit `to` gave `from`.
        htlc_minimum_msat: f.htlc_minimum_msat.max(t.htlc_minimum_msat),
        htlc_maximum_msat: (funding_sat * 1000).min(t.max_htlc_value_in_flight_msat),
        enabled: true,
        timestamp: 0,
    }
}

fn without_timestamp(p: Option<ForwardingPolicy>) -> Option<ForwardingPolicy> {
    p.map(|p| ForwardingPolicy { timestamp: 0, ..p })
}

/// Opens A -> B up to both `funding_confirmed`s, delivering nothing after.
fn open_until_confirmed(a: &ChannelStore, b: &ChannelStore) -> (ChannelId, ShortChannelId) {
    let temp = a.create_channel(b.node_id(), 1_000_000, 0).unwrap();
    deliver_all(&[a, b]);
    events(a);
    let outpoint = OutPoint::new(Txid::from_byte_array([0x77; 32]), 0);
    let id = a
        .funding_transaction_generated(&temp, &b.node_id(), outpoint)
        .unwrap();
    deliver_all(&[a, b]);
    let scid = ShortChannelId::new(900, 1, 0).unwrap();
    a.funding_confirmed(&id, scid).unwrap();
    b.funding_confirmed(&id, scid).unwrap();
    (id, scid)
}

#[test]
fn sent_when_both_are_ready_and_after_each_reestablish() {
    let (a, b) = (node_with(1, config(0)), node_with(2, config(7)));
    connect_all(&[&a, &b]);
    let (id, scid) = open_until_confirmed(&a, &b);
    // Each has sent only channel_ready: neither has the other's yet.
    let (from_a, from_b) = (take_msgs(&a), take_msgs(&b));
    assert!(
        matches!(&from_a[..], [(_, Message::ChannelReady(_))]),
        "{from_a:?}"
    );
    assert!(
        matches!(&from_b[..], [(_, Message::ChannelReady(_))]),
        "{from_b:?}"
    );
    // With the other's channel_ready, each sends its update, nothing else.
    for (msg, from, to) in [(&from_a[0].1, &a, &b), (&from_b[0].1, &b, &a)] {
        deliver_one(from, to, msg.clone());
        let sent = take_msgs(to);
        let [u] = &updates(&sent)[..] else {
            panic!("one channel_update: {sent:?}");
        };
        assert_eq!(sent.len(), 1);
        check_ours(u, to, from, scid);
    }
    // Taken, not delivered: neither knows the other's policy yet.
    for n in [&a, &b] {
        let d = n.channel_details(&id).unwrap();
        assert!(d.is_usable);
        assert_eq!(d.counterparty_forwarding_policy, None);
    }

    // After a reconnection: reestablish both ways, then the update again,
    // last.
    for (x, y) in [(&a, &b), (&b, &a)] {
        x.peer_disconnected(&y.node_id());
    }
    connect_all(&[&a, &b]);
    let (ra, rb) = (take_msgs(&a), take_msgs(&b));
    assert!(
        updates(&ra).is_empty() && updates(&rb).is_empty(),
        "not before reestablish"
    );
    for (msgs, from, to) in [(&ra, &a, &b), (&rb, &b, &a)] {
        for (_, m) in msgs.iter() {
            deliver_one(from, to, m.clone());
        }
    }
    for (n, peer) in [(&a, &b), (&b, &a)] {
        let sent = take_msgs(n);
        assert!(
            matches!(sent.last(), Some((_, Message::ChannelUpdate(_)))),
            "{sent:?}"
        );
        let [u] = &updates(&sent)[..] else {
            panic!("one channel_update: {sent:?}");
        };
        check_ours(u, n, peer, scid);
        for (_, m) in sent {
            deliver_one(n, peer, m);
        }
    }
    assert_eq!(
        without_timestamp(
            a.channel_details(&id)
                .unwrap()
                .counterparty_forwarding_policy
        ),
        Some(policy_of(&b, &a, 1_000_000))
    );
    assert_eq!(
        without_timestamp(
            b.channel_details(&id)
                .unwrap()
                .counterparty_forwarding_policy
        ),
        Some(policy_of(&a, &b, 1_000_000))
    );
}

/// `u` is `by`'s update for `scid`, to `peer`: signed by `by`, private,
/// its direction bit right, its policy `by`'s.
fn check_ours(u: &ChannelUpdate, by: &ChannelStore, peer: &ChannelStore, scid: ShortChannelId) {
    assert!(u.verify(&by.node_id()));
    assert_eq!(u.short_channel_id, scid);
    assert_eq!(
        u.chain_hash,
        ChainHash::using_genesis_block(by.config().network)
    );
    assert_ne!(u.message_flags & MESSAGE_FLAG_DONT_FORWARD, 0);
    let node_2 = by.node_id().serialize() > peer.node_id().serialize();
    assert_eq!(
        u.channel_flags,
        if node_2 { CHANNEL_FLAG_DIRECTION } else { 0 }
    );
    assert!(u.timestamp > 0);
    let p = policy_of(by, peer, 1_000_000);
    assert_eq!(
        (
            u.fee_base_msat,
            u.fee_proportional_millionths,
            u.cltv_expiry_delta,
            u.htlc_minimum_msat,
            u.htlc_maximum_msat
        ),
        (
            p.fee_base_msat,
            p.fee_proportional_millionths,
            p.cltv_expiry_delta,
            p.htlc_minimum_msat,
            p.htlc_maximum_msat
        )
    );
}

/// A, B, C; channels A-B and A-C; B's policy is known to A.
struct Trio {
    a: ChannelStore,
    b: ChannelStore,
    c: ChannelStore,
    ab: ChannelId,
    scid_ab: ShortChannelId,
    ac: ChannelId,
    scid_ac: ShortChannelId,
}

fn trio() -> Trio {
    let (a, b, c) = (
        node_with(1, config(0)),
        node_with(2, config(7)),
        node_with(3, config(9)),
    );
    connect_all(&[&a, &b, &c]);
    let (ab, scid_ab) = open_channel(&a, &b, 1_000_000, 0);
    let (ac, scid_ac) = open_channel(&a, &c, 1_000_000, 0);
    Trio {
        a,
        b,
        c,
        ab,
        scid_ab,
        ac,
        scid_ac,
    }
}

/// The timestamp of B's update that A keeps.
fn b_timestamp(t: &Trio) -> u32 {
    let d = t.a.channel_details(&t.ab).unwrap();
    d.counterparty_forwarding_policy.unwrap().timestamp
}

/// A valid update of B's for A-B at `b_timestamp(t) + later`, with `edit`
/// applied, then signed by node `signer`.
fn b_update(
    t: &Trio,
    later: u32,
    edit: impl FnOnce(&mut ChannelUpdate),
    signer: u8,
) -> ChannelUpdate {
    b_update_at(t, b_timestamp(t) + later, edit, signer)
}

/// [`b_update`] at `timestamp`.
fn b_update_at(
    t: &Trio,
    timestamp: u32,
    edit: impl FnOnce(&mut ChannelUpdate),
    signer: u8,
) -> ChannelUpdate {
    let mut u = ChannelUpdate::unsigned(
        ChainHash::using_genesis_block(t.b.config().network),
        t.scid_ab,
    );
    u.timestamp = timestamp;
    u.message_flags |= MESSAGE_FLAG_DONT_FORWARD;
    if t.b.node_id().serialize() > t.a.node_id().serialize() {
        u.channel_flags |= CHANNEL_FLAG_DIRECTION;
    }
    u.cltv_expiry_delta = 144;
    u.htlc_minimum_msat = 5;
    u.fee_base_msat = 4242;
    u.fee_proportional_millionths = 7;
    u.htlc_maximum_msat = 1_000;
    edit(&mut u);
    u.sign(&SecretKey::from_slice(&[signer; 32]).unwrap());
    u
}

#[test]
fn the_peers_policy_is_shown_and_replaced_by_a_newer_update() {
    let t = trio();
    let before =
        t.a.channel_details(&t.ab)
            .unwrap()
            .counterparty_forwarding_policy;
    assert_eq!(
        without_timestamp(before),
        Some(policy_of(&t.b, &t.a, 1_000_000))
    );
    // C's policy is on A-C, not mixed up with B's.
    assert_eq!(
        without_timestamp(
            t.a.channel_details(&t.ac)
                .unwrap()
                .counterparty_forwarding_policy
        ),
        Some(policy_of(&t.c, &t.a, 1_000_000))
    );
    let newer = b_update(&t, 10, |_| {}, 2);
    t.a.handle_message(&t.b.node_id(), newer.clone().into())
        .unwrap();
    let want = ForwardingPolicy {
        fee_base_msat: 4242,
        fee_proportional_millionths: 7,
        cltv_expiry_delta: 144,
        htlc_minimum_msat: 5,
        htlc_maximum_msat: 1_000,
        enabled: true,
        timestamp: newer.timestamp,
    };
    let shown = |t: &Trio| {
        t.a.channel_details(&t.ab)
            .unwrap()
            .counterparty_forwarding_policy
    };
    assert_eq!(shown(&t), Some(want));
    assert!(t
        .a
        .list_channels()
        .iter()
        .any(|d| d.counterparty_forwarding_policy == Some(want)));
    // Older or equal: ignored (BOLT 7), not refused.
    for timestamp in [newer.timestamp, newer.timestamp - 1] {
        let stale = b_update_at(&t, timestamp, |u| u.fee_base_msat = 1, 2);
        t.a.handle_message(&t.b.node_id(), stale.into()).unwrap();
        assert_eq!(shown(&t), Some(want));
    }
    // The disable bit shows.
    let disabled = b_update(&t, 11, |u| u.channel_flags |= 2, 2);
    t.a.handle_message(&t.b.node_id(), disabled.into()).unwrap();
    assert_eq!(shown(&t).map(|p| p.enabled), Some(false));
}

#[test]
fn a_hostile_update_is_refused_precisely_and_changes_nothing() {
    let t = trio();
    let nodes = [&t.a, &t.b, &t.c];
    let cases: Vec<(ChannelUpdate, StoreError)> = vec![
        // Signed by C, not by B.
        (
            b_update(&t, 10, |_| {}, 3),
            StoreError::InvalidSignature {
                channel_id: t.ab,
                what: "channel_update",
            },
        ),
        // Another chain.
        (
            b_update(&t, 10, |u| u.chain_hash = ChainHash::BITCOIN, 2),
            StoreError::ChannelUpdateWrongChain { scid: t.scid_ab },
        ),
        // A's side of A-B, signed by B.
        (
            b_update(&t, 10, |u| u.channel_flags ^= CHANNEL_FLAG_DIRECTION, 2),
            StoreError::ChannelUpdateWrongDirection {
                channel_id: t.ab,
                scid: t.scid_ab,
            },
        ),
        // C's channel with A, from B.
        (
            b_update(&t, 10, |u| u.short_channel_id = t.scid_ac, 2),
            StoreError::WrongPeer {
                channel_id: t.ac,
                sender: t.b.node_id(),
            },
        ),
        // No channel at all.
        (
            b_update(
                &t,
                10,
                |u| u.short_channel_id = ShortChannelId::new(1, 2, 3).unwrap(),
                2,
            ),
            StoreError::UnknownShortChannelId {
                scid: ShortChannelId::new(1, 2, 3).unwrap(),
            },
        ),
    ];
    for (update, want) in cases {
        let (frozen, _) = freeze(&nodes);
        let got = t.a.handle_message(&t.b.node_id(), update.clone().into());
        assert_eq!(got, Err(want), "{update:?}");
        assert_unchanged(&nodes, &frozen);
        assert!(take_msgs(&t.a).is_empty());
    }
    // C's own valid update for A-C, replayed by B: refused; from C: taken.
    let mut c_update = b_update(&t, 10, |u| u.short_channel_id = t.scid_ac, 3);
    c_update.channel_flags = if t.c.node_id().serialize() > t.a.node_id().serialize() {
        CHANNEL_FLAG_DIRECTION
    } else {
        0
    };
    c_update.sign(&SecretKey::from_slice(&[3; 32]).unwrap());
    let (frozen, _) = freeze(&nodes);
    assert_eq!(
        t.a.handle_message(&t.b.node_id(), c_update.clone().into()),
        Err(StoreError::WrongPeer {
            channel_id: t.ac,
            sender: t.b.node_id(),
        })
    );
    assert_unchanged(&nodes, &frozen);
    t.a.handle_message(&t.c.node_id(), c_update.into()).unwrap();
    let d = t.a.channel_details(&t.ac).unwrap();
    assert_eq!(
        d.counterparty_forwarding_policy.map(|p| p.fee_base_msat),
        Some(4242)
    );
}

#[test]
fn the_peers_policy_survives_a_restart() {
    let (pa, pb) = (
        Arc::new(MemoryPersister::new()),
        Arc::new(MemoryPersister::new()),
    );
    let durable = |seed: u8, p: &Arc<MemoryPersister>| {
        ChannelStore::with_persister(
            config(u32::from(seed)),
            SecretKey::from_slice(&[seed; 32]).unwrap(),
            HEIGHT,
            p.clone() as Arc<dyn Persister>,
        )
        .unwrap()
    };
    let (a, b) = (durable(1, &pa), durable(2, &pb));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 0);
    let kept = a
        .channel_details(&id)
        .unwrap()
        .counterparty_forwarding_policy;
    assert_eq!(without_timestamp(kept), Some(policy_of(&b, &a, 1_000_000)));
    // Whole-store form.
    let mut bytes = Vec::new();
    a.write(&mut bytes).unwrap();
    let read = ChannelStore::read(
        &mut &bytes[..],
        config(1),
        SecretKey::from_slice(&[1; 32]).unwrap(),
    )
    .unwrap();
    assert_eq!(
        read.channel_details(&id)
            .unwrap()
            .counterparty_forwarding_policy,
        kept
    );
    // A persister's form: restart from what is on disk.
    a.flush().unwrap();
    drop((a, b));
    let (a, b) = (durable(1, &pa), durable(2, &pb));
    assert_eq!(
        a.channel_details(&id)
            .unwrap()
            .counterparty_forwarding_policy,
        kept
    );
    assert!(b
        .channel_details(&id)
        .unwrap()
        .counterparty_forwarding_policy
        .is_some());
}

#[test]
fn incorrect_cltv_expiry_at_the_hub_carries_the_expiry_and_its_update() {
    // A -> B -> C; A leaves B one block less than its delta.
    let (a, b, c) = (node(1), node(2), node(3));
    connect_all(&[&a, &b, &c]);
    let (_, scid_ab) = open_channel(&a, &b, 1_000_000, 0);
    let (_, scid_bc) = open_channel(&b, &c, 1_000_000, 0);
    let amount = 1_000_000;
    let fee = b.config().forwarding_fee_msat(amount);
    let route = Route {
        hops: vec![
            RouteHop {
                node_id: b.node_id(),
                short_channel_id: scid_ab,
                fee_msat: fee,
                cltv_expiry_delta: u32::from(b.config().cltv_expiry_delta) - 1,
            },
            RouteHop {
                node_id: c.node_id(),
                short_channel_id: scid_bc,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            },
        ],
    };
    let p = preimage(0x51, 0);
    a.pay_invoice(&route, p.payment_hash(), amount).unwrap();
    deliver_all(&[&a, &b, &c]);
    let evs = events(&a);
    let [Event::PaymentFailed {
        failure: FailureCode::IncorrectCltvExpiry,
        failing_node: Some(by),
        failure_data,
        ..
    }] = &evs[..]
    else {
        panic!("B's incorrect_cltv_expiry: {evs:?}");
    };
    assert_eq!(*by, b.node_id());
    // The incoming HTLC's expiry: what A's onion gave C, plus B's short delta.
    let final_cltv = HEIGHT + u32::from(a.config().min_final_cltv_expiry_delta);
    let expiry = u32::from_be_bytes(failure_data[..4].try_into().unwrap());
    assert_eq!(
        expiry,
        final_cltv + u32::from(b.config().cltv_expiry_delta) - 1
    );
    update_in_failure(failure_data, 4, &b, scid_bc);
}

#[test]
fn a_dust_htlc_over_the_receivers_limit_fails_with_no_update() {
    // B takes 4 dust HTLCs of 500 sat (2_000_000 msat); A sends a fifth.
    let b_config = StoreConfig {
        max_dust_htlc_exposure_msat: 2_000_000,
        ..StoreConfig::default()
    };
    let (a, b) = (node(1), node_with(2, b_config));
    connect_all(&[&a, &b]);
    let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
    for i in 0..5 {
        let hash = preimage(0x52, i).payment_hash();
        let route = route_to(&b, scid);
        a.pay_invoice(&route, hash, 500_000).unwrap();
    }
    deliver_all(&[&a, &b]);
    let evs = events(&a);
    let failed: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::PaymentFailed {
                failure,
                failure_data,
                ..
            } => Some((*failure, failure_data.clone())),
            _ => None,
        })
        .collect();
    // BOLT 4 temporary_channel_failure: `len` 0, since B decides on the
    // incoming channel, before any outgoing one is known (as LDK does).
    assert_eq!(
        failed,
        vec![(FailureCode::TemporaryChannelFailure, vec![0, 0])],
        "{evs:?}"
    );
}

/// B re-signs the same policy with a newer timestamp, again and again: each
/// one rewrote A's channel header, one durable batch per 136-byte message
/// (found by a review: 10 messages, 10 batches and 6,430 bytes). An update
/// that changes nothing but its timestamp is now ignored, as a stale one
/// is (LDK keeps no timestamp and writes nothing for it); one that changes
/// the policy is still written, and reads back.
#[test]
fn an_update_that_changes_only_its_timestamp_writes_nothing() {
    let disk = common::recording::Recording::new();
    let a = node_on(1, config(0), disk.clone());
    let (b, c) = (node_with(2, config(7)), node_with(3, config(9)));
    connect_all(&[&a, &b, &c]);
    let (ab, scid_ab) = open_channel(&a, &b, 1_000_000, 0);
    let (ac, scid_ac) = open_channel(&a, &c, 1_000_000, 0);
    let t = Trio {
        a,
        b,
        c,
        ab,
        scid_ab,
        ac,
        scid_ac,
    };
    let first = b_update(&t, 10, |_| {}, 2);
    t.a.handle_message(&t.b.node_id(), first.clone().into())
        .unwrap();
    t.a.flush().unwrap();
    let before = (disk.len(), disk.bytes());
    for later in 1..=10 {
        let again = b_update_at(&t, first.timestamp + later, |_| {}, 2);
        t.a.handle_message(&t.b.node_id(), again.into()).unwrap();
        t.a.flush().unwrap();
    }
    assert_eq!((disk.len(), disk.bytes()), before, "batches, bytes");
    let changed = b_update_at(&t, first.timestamp + 20, |u| u.fee_base_msat = 1, 2);
    t.a.handle_message(&t.b.node_id(), changed.into()).unwrap();
    t.a.flush().unwrap();
    assert_eq!(disk.len(), before.0 + 1);
    let fee = |a: &ChannelStore| {
        let d = a.channel_details(&t.ab).unwrap();
        d.counterparty_forwarding_policy.unwrap().fee_base_msat
    };
    assert_eq!(fee(&t.a), 1);
    let reread = node_on(1, config(0), disk.prefix(disk.len()));
    assert_eq!(fee(&reread), 1);
}

/// BOLT 7: an update older than the last one received is ignored, also
/// when that last one changed only its timestamp (and so was not written):
/// B disables its channel at +10, re-signs that at +30, and an enabled one
/// of +20 comes after it. The skip once kept the +10 timestamp, so the +20
/// update was taken (found by a review of the timestamp-only skip).
#[test]
fn an_update_older_than_a_skipped_newer_one_is_ignored() {
    let t = trio();
    let t0 = b_timestamp(&t);
    for (later, disabled) in [(10, true), (30, true), (20, false)] {
        let u = b_update_at(
            &t,
            t0 + later,
            |u| {
                if disabled {
                    u.channel_flags |= 2
                }
            },
            2,
        );
        t.a.handle_message(&t.b.node_id(), u.into()).unwrap();
    }
    let d = t.a.channel_details(&t.ab).unwrap();
    assert!(!d.counterparty_forwarding_policy.unwrap().enabled);
}
