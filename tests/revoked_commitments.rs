//! Revoked commitments of the peer's: every HTLC output of any of them must
//! be nameable from our closed record alone (`revoked_htlcs` with `htlcs`),
//! whatever ended the HTLC, across fee changes, reconnections, crashes at
//! every batch and the whole-store form (from a review of the list's first
//! version, which found the first two tests' defects).

mod common;

use bitcoin::{ScriptBuf, Transaction};
use chanstore::keys::{per_commitment_point, INITIAL_COMMITMENT_INDEX};
use chanstore::transactions::{
    offered_htlc_script, received_htlc_script, to_local_script, TxCreationKeys,
};
use chanstore::{
    ChannelId, ChannelStore, ClosedChannelDetails, Event, HtlcDirection, PaymentHash, StoreConfig,
};
use common::*;

fn p2wsh(script: &ScriptBuf) -> ScriptBuf {
    ScriptBuf::new_p2wsh(&script.wscript_hash())
}

/// The commitment the restored copy `old` of the peer broadcasts.
fn broadcast_of(old: &ChannelStore, id: &ChannelId) -> Transaction {
    old.force_close_channel(id).unwrap();
    events(old)
        .into_iter()
        .find_map(|e| match e {
            Event::BroadcastTransaction { transaction, .. } => Some(transaction),
            _ => None,
        })
        .expect("the old commitment")
}

/// A copy of `peer` as it is now (its backup), to broadcast later.
fn backup(peer: &ChannelStore) -> Vec<u8> {
    let mut b = Vec::new();
    peer.write(&mut b).unwrap();
    b
}

fn restore(bytes: &[u8], peer: &ChannelStore) -> ChannelStore {
    ChannelStore::read(
        &mut &bytes[..],
        StoreConfig::default(),
        secret_of(&peer.node_id()),
    )
    .unwrap()
}

/// The HTLC outputs of `revoked` (a revoked commitment of the peer's) that
/// `d` cannot name, as the doc of `revoked_htlcs` says to: `revoked_htlcs`
/// and `htlcs` together, with the keys of whichever revoked commitment it
/// is. Panics when no revoked commitment in the record fits at all.
fn unnamed_outputs(
    a: &ChannelStore,
    d: &ClosedChannelDetails,
    revoked: &Transaction,
) -> Vec<(u64, ScriptBuf)> {
    let theirs = d.counterparty_keys.expect("peer's basepoints");
    let ours = a.closed_channel_holder_keys(d);
    let to_remote =
        ScriptBuf::new_p2wpkh(&bitcoin::CompressedPublicKey(ours.payment_basepoint).wpubkey_hash());
    let mut named: Vec<(PaymentHash, u32, HtlcDirection)> = d
        .revoked_htlcs
        .iter()
        .map(|h| (h.payment_hash, h.cltv_expiry, h.direction))
        .collect();
    named.extend(
        d.htlcs
            .iter()
            .map(|h| (h.payment_hash, h.cltv_expiry, h.direction)),
    );
    let mut best: Option<Vec<(u64, ScriptBuf)>> = None;
    let mut points: Vec<_> = (0u64..)
        .map_while(|n| {
            d.counterparty_secrets
                .get_secret(INITIAL_COMMITMENT_INDEX - n)
        })
        .map(|s| per_commitment_point(&s).unwrap())
        .collect();
    // The unrevoked ones too (not revoked: `htlcs` must name theirs).
    points.extend(
        d.counterparty_commitments
            .iter()
            .map(|c| c.per_commitment_point),
    );
    for point in points {
        let keys = TxCreationKeys::derive(&point, &theirs, &ours);
        let to_local = p2wsh(&to_local_script(
            &keys.revocation_key,
            d.counterparty_to_self_delay.unwrap(),
            &keys.broadcaster_delayed_payment_key,
        ));
        let candidates: Vec<ScriptBuf> = named
            .iter()
            .map(|(hash, cltv, dir)| {
                p2wsh(&match dir {
                    HtlcDirection::Offered => received_htlc_script(&keys, hash, *cltv, false),
                    HtlcDirection::Received => offered_htlc_script(&keys, hash, false),
                })
            })
            .collect();
        let ours_there = revoked
            .output
            .iter()
            .any(|o| o.script_pubkey == to_local || candidates.contains(&o.script_pubkey));
        if ours_there {
            let missing: Vec<_> = revoked
                .output
                .iter()
                .filter(|o| {
                    o.script_pubkey != to_local
                        && o.script_pubkey != to_remote
                        && !candidates.contains(&o.script_pubkey)
                })
                .map(|o| (o.value.to_sat(), o.script_pubkey.clone()))
                .collect();
            if best.as_ref().is_none_or(|b| missing.len() < b.len()) {
                best = Some(missing);
            }
        }
    }
    best.expect("a revoked commitment of the peer's in the record fits")
}

/// B pays A 5,000 sat (X) and then 6,000 sat (Y); B's commitment holding X
/// alone is revoked. A force-closes: its record lists X and Y to await
/// their preimage. A then fails X back (`fail_htlc_backwards` after the
/// close, as `apply_resolution` allows): X leaves `htlcs`, and it was
/// never put in `revoked_htlcs`. B broadcasts the revoked commitment: X's
/// output (5,000 sat, B's to take back, A's with the revocation key) can no
/// longer be named from the record.
#[test]
fn an_htlc_failed_back_after_the_close_stays_nameable() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 300_000_000);
    let (x, y) = (preimage(0x61, 0), preimage(0x61, 1));
    b.pay_invoice(&route_to(&a, scid), x.payment_hash(), 5_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    let old = backup(&b);
    b.pay_invoice(&route_to(&a, scid), y.payment_hash(), 6_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    events(&a);
    events(&b);

    a.force_close_channel(&id).unwrap();
    assert_eq!(a.closed_channel(&id).unwrap().htlcs.len(), 2);
    a.fail_htlc_backwards(&x.payment_hash()).unwrap();
    let d = a.closed_channel(&id).unwrap();

    let revoked = broadcast_of(&restore(&old, &b), &id);
    let missing = unnamed_outputs(&a, &d, &revoked);
    assert!(
        missing.is_empty(),
        "outputs of B's revoked commitment A's record cannot name: {missing:?}\n{d:?}"
    );
}

/// B opened the channel (A starts with nothing) and pays A 5,000 sat, which
/// A fails: A has no balance in any state, so its close leaves no output
/// to sweep and no HTLC to settle, and the record is forgotten at once,
/// with the `revoked_htlcs` it held. B broadcasts its revoked commitment
/// holding that HTLC (and B's whole balance, A's with the revocation key).
#[test]
fn a_record_with_revoked_htlcs_is_not_forgotten_at_the_close() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&b, &a, 1_000_000, 0);
    let x = preimage(0x62, 0);
    b.pay_invoice(&route_to(&a, scid), x.payment_hash(), 5_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    let old = backup(&b);
    events(&a);
    a.fail_htlc_backwards(&x.payment_hash()).unwrap();
    deliver_all(&[&a, &b]);
    events(&b);
    assert_eq!(a.channel_details(&id).unwrap().pending_htlcs, 0);

    a.force_close_channel(&id).unwrap();
    let revoked = broadcast_of(&restore(&old, &b), &id);
    assert!(
        revoked.output.len() >= 2,
        "B's balance and the HTLC: {revoked:?}"
    );
    let d = a
        .closed_channel(&id)
        .expect("A's record, to name the revoked commitment's HTLC output");
    let missing = unnamed_outputs(&a, &d, &revoked);
    assert!(missing.is_empty(), "{missing:?}");
}

mod crash {
    use super::*;
    use crate::common::recording::Recording;
    use chanstore::persist::Key;
    use chanstore::Persister;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn hub(p: Arc<dyn Persister>) -> ChannelStore {
        let secret = bitcoin::secp256k1::SecretKey::from_slice(&[2; 32]).unwrap();
        ChannelStore::with_persister(StoreConfig::default(), secret, HEIGHT, p).unwrap()
    }

    /// A - B - C, B durable over a recording. Payments both ways on A-B, forwards
    /// through B (claimed and failed), then B force-closes A-B. After every batch
    /// prefix: each HTLC record gone from a channel still open has its
    /// `EndedHtlc`; no `EndedHtlc` without its channel; the store reopens, and
    /// its record (after a force close) names every one.
    #[test]
    fn every_crash_point_keeps_the_list_whole_and_nothing_stray() {
        let disk = Recording::new();
        let (a, b, c) = (node(1), hub(disk.clone()), node(3));
        connect_all(&[&a, &b, &c]);
        let (ab, scid_ab) = open_channel(&a, &b, 1_000_000, 300_000_000);
        let (_bc, scid_bc) = open_channel(&b, &c, 1_000_000, 0);
        let setup = disk.len();
        for n in 0..4u16 {
            let p = preimage(0x63, n);
            // A -> B -> C
            let route = route_through(&b, scid_ab, &c, scid_bc, 7_000_000);
            a.pay_invoice(&route, p.payment_hash(), 7_000_000).unwrap();
            deliver_all(&[&a, &b, &c]);
            if n % 2 == 0 {
                c.claim_funds(p).unwrap();
            } else {
                c.fail_htlc_backwards(&p.payment_hash()).unwrap();
            }
            deliver_all(&[&a, &b, &c]);
            // B -> A
            let q = preimage(0x64, n);
            b.pay_invoice(&route_to(&a, scid_ab), q.payment_hash(), 8_000_000)
                .unwrap();
            deliver_all(&[&a, &b, &c]);
            if n % 2 == 0 {
                a.claim_funds(q).unwrap();
            } else {
                a.fail_htlc_backwards(&q.payment_hash()).unwrap();
            }
            deliver_all(&[&a, &b, &c]);
            for s in [&a, &b, &c] {
                events(s);
            }
        }
        b.force_close_channel(&ab).unwrap();
        let total = disk.len();
        let mut ever: BTreeSet<Key> = BTreeSet::new();
        let mut failures = Vec::new();
        for k in setup..=total {
            let state = disk.state_after(k);
            ever.extend(state.keys().filter(|k| matches!(k, Key::Htlc(..))));
            for key in state.keys() {
                if let Key::EndedHtlc(ch, ..) = key {
                    if !state.contains_key(&Key::Channel(*ch)) {
                        failures.push(format!("after {k}: stray {key:?}"));
                    }
                }
            }
            for key in &ever {
                let Key::Htlc(ch, off, id) = *key else {
                    continue;
                };
                if state.contains_key(&Key::Channel(ch))
                    && !state.contains_key(key)
                    && !state.contains_key(&Key::EndedHtlc(ch, off, id))
                {
                    failures.push(format!("after {k}: {key:?} gone, not kept"));
                }
            }
            let ended: BTreeSet<(ChannelId, bool, u64)> = state
                .keys()
                .filter_map(|k| match k {
                    Key::EndedHtlc(ch, off, id) => Some((*ch, *off, *id)),
                    _ => None,
                })
                .collect();
            let reopened = hub(disk.prefix(k));
            if reopened.channel_details(&ab).is_some() {
                reopened.force_close_channel(&ab).unwrap();
            }
            let d = reopened.closed_channel(&ab).expect("B's record of A-B");
            let mut named: BTreeSet<(ChannelId, bool, u64)> = d
                .revoked_htlcs
                .iter()
                .map(|h| (ab, h.direction == HtlcDirection::Offered, h.htlc_id))
                .collect();
            let dups = d.revoked_htlcs.len() != named.len();
            if dups {
                failures.push(format!("after {k}: duplicates {:?}", d.revoked_htlcs));
            }
            named.extend(
                d.htlcs
                    .iter()
                    .map(|h| (ab, h.direction == HtlcDirection::Offered, h.htlc_id)),
            );
            for e in ended.iter().filter(|e| e.0 == ab) {
                if !named.contains(e) {
                    failures.push(format!("after {k}: {e:?} on disk, not in the record"));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        let last = disk.state_after(total);
        assert!(
            !last
                .keys()
                .any(|k| matches!(k, Key::EndedHtlc(ch, ..) if *ch == ab)),
            "A-B closed: its kept HTLCs live in the record"
        );
        let d = b.closed_channel(&ab).unwrap();
        assert_eq!(d.revoked_htlcs.len(), 8, "{:?}", d.revoked_htlcs);
    }
}

/// The bound is reached with HTLCs in flight both ways: A asks for the
/// cooperative close, the rest still settle, the channel closes
/// cooperatively (no wedge) and the record names every one.
#[test]
fn the_bound_with_htlcs_in_flight_closes_cooperatively() {
    let config = StoreConfig {
        max_revoked_htlcs_per_channel: 2,
        ..StoreConfig::default()
    };
    let (a, b) = (node_with(1, config), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 300_000_000);
    let ins: Vec<_> = (0..3).map(|n| preimage(0x65, n)).collect();
    let outs: Vec<_> = (0..2).map(|n| preimage(0x66, n)).collect();
    for p in &ins {
        b.pay_invoice(&route_to(&a, scid), p.payment_hash(), 5_000_000)
            .unwrap();
    }
    for p in &outs {
        a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 5_000_000)
            .unwrap();
    }
    deliver_all(&[&a, &b]);
    events(&a);
    events(&b);
    a.fail_htlc_backwards(&ins[0].payment_hash()).unwrap();
    a.claim_funds(ins[1]).unwrap();
    deliver_all(&[&a, &b]);
    assert!(!a.channel_details(&id).unwrap().is_usable, "shutting down");
    // B cannot add any more.
    let extra = preimage(0x67, 0);
    let _ = b.pay_invoice(&route_to(&a, scid), extra.payment_hash(), 5_000_000);
    deliver_all(&[&a, &b]);
    a.claim_funds(ins[2]).unwrap();
    b.fail_htlc_backwards(&outs[0].payment_hash()).unwrap();
    b.claim_funds(outs[1]).unwrap();
    deliver_all(&[&a, &b]);
    a.timer_tick_occurred();
    b.timer_tick_occurred();
    deliver_all(&[&a, &b]);
    assert!(
        a.channel_details(&id).is_none(),
        "wedged: {:?}",
        a.channel_details(&id)
    );
    let d = a.closed_channel(&id).unwrap();
    assert!(
        matches!(d.reason, chanstore::ClosureReason::Cooperative { .. }),
        "{:?}",
        d.reason
    );
    assert_eq!(d.revoked_htlcs.len(), 5, "{:?}", d.revoked_htlcs);
}

/// Delivers between `a` and `b` one message at a time, taking a backup of
/// `b` after each one it handles (so every commitment B ever held is in
/// some backup). `drop_after`: disconnect once this many messages went.
fn deliver_backing_up(
    a: &ChannelStore,
    b: &ChannelStore,
    backups: &mut Vec<Vec<u8>>,
    drop_after: Option<usize>,
) {
    let mut sent = 0;
    loop {
        let mut progress = false;
        for (from, to) in [(a, b), (b, a)] {
            for (_, msg) in take_msgs(from) {
                if drop_after == Some(sent) {
                    a.peer_disconnected(&b.node_id());
                    b.peer_disconnected(&a.node_id());
                    return;
                }
                deliver_one(from, to, msg);
                sent += 1;
                progress = true;
                backups.push(backup(b));
            }
            if from.process_pending_forwards() > 0 {
                progress = true;
            }
        }
        if !progress {
            return;
        }
    }
}

/// HTLCs both ways ending across fee updates (one HTLC trimmed at the high
/// feerate, not at the low one), a disconnection in the middle of a fail
/// and of a fulfill (retransmitted after `channel_reestablish`), MPP-like
/// parts of one hash: every commitment B ever held, broadcast after the
/// close, has all its HTLC outputs named by A's record.
#[test]
fn every_commitment_b_ever_held_is_named() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 300_000_000);
    deliver_all(&[&a, &b]);
    let mut backups = Vec::new();
    let mut n = 0u16;
    let mut next = || {
        n += 1;
        preimage(0x68, n)
    };
    for round in 0..6 {
        let (p, q) = (next(), next());
        // Near B's trim threshold at a high feerate: 354 sat + HTLC-timeout fee.
        let amount = if round % 2 == 0 { 1_500_000 } else { 5_000_000 };
        a.pay_invoice(&route_to(&b, scid), p.payment_hash(), amount)
            .unwrap();
        b.pay_invoice(&route_to(&a, scid), q.payment_hash(), amount + 1_000)
            .unwrap();
        deliver_backing_up(&a, &b, &mut backups, None);
        events(&a);
        events(&b);
        if round % 3 == 1 {
            let _ = a.update_fee(&id, 2_500);
        } else if round % 3 == 2 {
            let _ = a.update_fee(&id, 253);
        }
        if round % 2 == 0 {
            b.claim_funds(p).unwrap();
            a.fail_htlc_backwards(&q.payment_hash()).unwrap();
        } else {
            b.fail_htlc_backwards(&p.payment_hash()).unwrap();
            a.claim_funds(q).unwrap();
        }
        deliver_backing_up(&a, &b, &mut backups, Some(2 + round));
        connect(&a, &b);
        deliver_backing_up(&a, &b, &mut backups, None);
        events(&a);
        events(&b);
    }
    assert_eq!(a.channel_details(&id).unwrap().pending_htlcs, 0);
    a.force_close_channel(&id).unwrap();
    let d = a.closed_channel(&id).unwrap();
    let mut bad = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, bytes) in backups.iter().enumerate() {
        let tx = broadcast_of(&restore(bytes, &b), &id);
        if !seen.insert(tx.compute_txid()) {
            continue;
        }
        let missing = unnamed_outputs(&a, &d, &tx);
        if !missing.is_empty() {
            bad.push((i, missing));
        }
    }
    assert!(seen.len() > 10, "{} commitments", seen.len());
    assert!(bad.is_empty(), "{bad:?}\n{:?}", d.revoked_htlcs);
}

/// The whole-store form keeps the list of an open channel (TLV 50).
#[test]
fn write_and_read_keep_the_list() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    for n in 0..3u16 {
        let p = preimage(0x69, n);
        a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 5_000_000)
            .unwrap();
        deliver_all(&[&a, &b]);
        b.fail_htlc_backwards(&p.payment_hash()).unwrap();
        deliver_all(&[&a, &b]);
    }
    let copy = reread(&a, 1);
    copy.force_close_channel(&id).unwrap();
    assert_eq!(copy.closed_channel(&id).unwrap().revoked_htlcs.len(), 3);
}
