//! What a closed channel's record gives the user's chain layer, through the
//! public API: enough to find and spend every output of whichever
//! commitment of the peer's confirms. Built here from the record alone and
//! checked against the transaction the peer really broadcast.

mod common;

use std::sync::Arc;

use bitcoin::secp256k1::{PublicKey, Secp256k1};
use bitcoin::ScriptBuf;
use chanstore::keys::{
    derive_revocation_public_key, per_commitment_point, INITIAL_COMMITMENT_INDEX,
};
use chanstore::persist::Key;
use chanstore::transactions::{
    build_htlc_transaction, htlc_sighash, offered_htlc_script, received_htlc_script,
    to_local_script, verify, HtlcOutputInCommitment, TxCreationKeys,
};
use chanstore::{
    ChannelId, ChannelStore, ClosedChannelDetails, ClosureReason, Event, HtlcDirection,
    MemoryPersister, OnChainAction, OnChainHtlc, PaymentPreimage, Persister, ShortChannelId,
    StoreConfig,
};
use common::*;

fn p2wsh(script: &ScriptBuf) -> ScriptBuf {
    ScriptBuf::new_p2wsh(&script.wscript_hash())
}

/// The record's HTLC paid for with `p`.
fn the_htlc<'a>(d: &'a ClosedChannelDetails, p: &PaymentPreimage) -> &'a OnChainHtlc {
    d.htlcs
        .iter()
        .find(|h| h.payment_hash == p.payment_hash())
        .unwrap()
}

/// A channel from `a` to `b` with one HTLC of 5,000 sat (an output on both
/// commitments) from `a`, irrevocably committed and not yet claimed.
fn htlc_in_flight(a: &ChannelStore, b: &ChannelStore, tag: u8) -> (ChannelId, PaymentPreimage) {
    connect_all(&[a, b]);
    let (id, scid) = open_channel(a, b, 1_000_000, 0);
    let p = preimage(tag, 0);
    send_5000_sat(a, b, scid, &p);
    (id, p)
}

/// 5,000 sat from `a` to `b` over `scid`, delivered (not claimed).
fn send_5000_sat(a: &ChannelStore, b: &ChannelStore, scid: ShortChannelId, p: &PaymentPreimage) {
    let route = route_to(b, scid);
    a.pay_invoice(&route, p.payment_hash(), 5_000_000).unwrap();
    deliver_all(&[a, b]);
}

/// A pays B 5,000 sat (an HTLC output on both commitments); B claims it but
/// its fulfill never reaches A, and A broadcasts its latest commitment. The
/// HTLC output there is B's to claim with the preimage, and only B's record
/// can say what its script and B's key are: both come from A's
/// per-commitment point, which the chain does not show. The record used to
/// drop that point at the close (found by review), so the preimage B holds
/// could claim nothing, and A took the HTLC back after its expiry.
#[test]
fn the_record_rebuilds_the_peers_commitment_and_our_key_for_its_htlc() {
    let b_config = StoreConfig {
        to_self_delay: 200,
        ..StoreConfig::default()
    };
    let (a, b) = (node(1), node_with(2, b_config));
    let (id, p) = htlc_in_flight(&a, &b, 0x51);
    events(&b);
    b.claim_funds(p).unwrap();
    take_msgs(&b); // the fulfill is lost
    events(&a);
    a.force_close_channel(&id).unwrap();
    let broadcast = events(&a)
        .into_iter()
        .find_map(|e| match e {
            Event::BroadcastTransaction { transaction, .. } => Some(transaction),
            _ => None,
        })
        .expect("A broadcasts its commitment");
    deliver_all(&[&a, &b]); // A's error closes B's end
    let d = b.closed_channel(&id).expect("B keeps a record");
    let htlc = the_htlc(&d, &p);
    assert_eq!(htlc.action, OnChainAction::Claim);

    // From the record alone: A's keys for each commitment of A's that may
    // confirm. B signed two that A did not revoke: 1 (with the HTLC, which
    // A broadcast) and 2 (with the fulfill, which A never got).
    let theirs = d.counterparty_keys.expect("A's basepoints");
    let ours = b.closed_channel_holder_keys(&d);
    let numbers: Vec<u64> = d
        .counterparty_commitments
        .iter()
        .map(|c| c.commitment_number)
        .collect();
    assert_eq!(numbers, [2, 1], "newest first");
    let outputs: Vec<_> = broadcast
        .output
        .iter()
        .map(|o| (o.script_pubkey.clone(), o.value.to_sat()))
        .collect();
    let matching: Vec<_> = d
        .counterparty_commitments
        .iter()
        .filter_map(|c| {
            let keys = TxCreationKeys::derive(&c.per_commitment_point, &theirs, &ours);
            let htlc_script = offered_htlc_script(&keys, &p.payment_hash(), false);
            outputs
                .contains(&(p2wsh(&htlc_script), 5_000))
                .then_some((*c, keys))
        })
        .collect();
    let [(broadcast_commitment, keys)] = matching[..] else {
        panic!("the HTLC output of A's commitment, from B's record: {outputs:?}")
    };
    assert_eq!(broadcast_commitment.commitment_number, 1);
    // A's to_local waits the delay B asked for (200), not A's (144).
    let to_local = to_local_script(
        &keys.revocation_key,
        d.counterparty_to_self_delay.expect("kept"),
        &keys.broadcaster_delayed_payment_key,
    );
    assert_eq!(d.counterparty_to_self_delay, Some(200));
    assert!(
        outputs.iter().any(|(s, _)| *s == p2wsh(&to_local)),
        "A's to_local"
    );
    let latest = broadcast_commitment;
    // B's key for that output: the one in its script.
    let key = b.closed_channel_htlc_key(&d, &latest.per_commitment_point);
    assert_eq!(
        PublicKey::from_secret_key(&Secp256k1::new(), &key),
        keys.countersignatory_htlc_key
    );
    assert_eq!(d.holder_to_self_delay, Some(a.config().to_self_delay));

    // All of it is durable: the record reads back the same.
    let b2 = reread(&b, 2);
    assert_eq!(b2.closed_channel(&id), Some(d));
}

/// Every commitment of the peer's older than those in
/// `counterparty_commitments` is revoked, and its secret is in
/// `counterparty_secrets`: with `closed_channel_revocation_key` it gives the
/// key of that commitment's revocation paths (the key its scripts name).
#[test]
fn the_record_gives_the_revocation_key_of_each_revoked_commitment() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    for i in 0..3 {
        let p = preimage(0x52, i);
        send_5000_sat(&a, &b, scid, &p);
        b.claim_funds(p).unwrap();
        deliver_all(&[&a, &b]);
    }
    b.force_close_channel(&id).unwrap();
    let d = b.closed_channel(&id).unwrap();
    let ours = b.closed_channel_holder_keys(&d);
    let latest = d.counterparty_commitments[0].commitment_number;
    assert_eq!(latest, 6, "3 payments, 2 commitments of A's each");
    let secp = Secp256k1::new();
    for n in 0..latest {
        let secret = d
            .counterparty_secrets
            .get_secret(INITIAL_COMMITMENT_INDEX - n)
            .unwrap_or_else(|| panic!("A revoked its commitment {n}"));
        let point = per_commitment_point(&secret).unwrap();
        let key = b.closed_channel_revocation_key(&d, &secret).unwrap();
        assert_eq!(
            PublicKey::from_secret_key(&secp, &key),
            derive_revocation_public_key(&ours.revocation_basepoint, &point),
            "commitment {n}"
        );
    }
    // The latest is not revoked: no secret for it.
    assert_eq!(
        d.counterparty_secrets
            .get_secret(INITIAL_COMMITMENT_INDEX - latest),
        None
    );
    assert!(b.closed_channel_revocation_key(&d, &[0; 32]).is_err());
}

/// Our own commitment, broadcast by us with an HTLC we offered: from the
/// record alone, its HTLC output's script, the HTLC-timeout transaction
/// that spends it, the peer's signature on that transaction (which must
/// verify) and our key for the second signature.
#[test]
fn the_record_rebuilds_our_htlc_timeout_transaction() {
    let (a, b) = (node(1), node(2));
    let (id, p) = htlc_in_flight(&a, &b, 0x53);
    events(&a);
    a.force_close_channel(&id).unwrap();
    let d = a.closed_channel(&id).unwrap();
    let tx = d.transaction.clone().expect("our commitment");
    let holder = d.holder_commitment.expect("kept with the transaction");
    let ours = a.closed_channel_holder_keys(&d);
    let keys = TxCreationKeys::derive(
        &holder.per_commitment_point,
        &ours,
        &d.counterparty_keys.unwrap(),
    );
    let htlc = the_htlc(&d, &p);
    assert_eq!(htlc.action, OnChainAction::TimeOut);
    let vout = htlc.commitment_output.expect("not trimmed");
    assert_eq!(
        tx.output[vout as usize].script_pubkey,
        p2wsh(&offered_htlc_script(&keys, &p.payment_hash(), false))
    );
    let output = HtlcOutputInCommitment {
        offered: true,
        amount_msat: htlc.amount_msat,
        cltv_expiry: htlc.cltv_expiry,
        payment_hash: htlc.payment_hash,
    };
    let timeout = build_htlc_transaction(
        &tx.compute_txid(),
        vout,
        &output,
        holder.feerate_per_kw,
        d.holder_to_self_delay.unwrap(),
        &keys,
        false,
    );
    let sighash = htlc_sighash(&timeout, &output, &keys, false);
    assert!(verify(
        &sighash,
        &htlc.counterparty_htlc_signature.expect("the peer's"),
        &keys.countersignatory_htlc_key
    ));
    let key = a.closed_channel_htlc_key(&d, &holder.per_commitment_point);
    assert_eq!(
        PublicKey::from_secret_key(&Secp256k1::new(), &key),
        keys.broadcaster_htlc_key
    );
    assert_eq!(reread(&a, 1).closed_channel(&id), Some(d));
}

/// B restores an old backup and broadcasts the commitment it held then, now
/// revoked, with two HTLCs that have since ended: one A offered and B
/// failed (in the latest state its value is A's again), and one B offered
/// and A claimed. A's record must name the script of every output of that
/// commitment: an HTLC output's script holds its payment hash (and, for an
/// HTLC A offered, its expiry), which the chain shows only once the output
/// is spent, so without them the revocation key spends nothing. Nobody else
/// can spend the one A offered either: B has no preimage. The record used
/// to keep only the HTLCs still open at the close.
#[test]
fn the_record_names_every_output_of_a_revoked_commitment() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 300_000_000);
    let (failed, claimed) = (preimage(0x54, 0), preimage(0x54, 1));
    send_5000_sat(&a, &b, scid, &failed);
    b.pay_invoice(&route_to(&a, scid), claimed.payment_hash(), 6_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    // B's backup, with both HTLCs in its latest commitment.
    let mut backup = Vec::new();
    b.write(&mut backup).unwrap();
    events(&a);
    events(&b);
    b.fail_htlc_backwards(&failed.payment_hash()).unwrap();
    a.claim_funds(claimed).unwrap();
    deliver_all(&[&a, &b]);
    for n in [&a, &b] {
        assert_eq!(n.channel_details(&id).unwrap().pending_htlcs, 0);
    }

    let old_b = ChannelStore::read(
        &mut &backup[..],
        StoreConfig::default(),
        secret_of(&b.node_id()),
    )
    .unwrap();
    old_b.force_close_channel(&id).unwrap();
    let revoked = events(&old_b)
        .into_iter()
        .find_map(|e| match e {
            Event::BroadcastTransaction { transaction, .. } => Some(transaction),
            _ => None,
        })
        .expect("the old commitment");
    a.force_close_channel(&id).unwrap(); // A's chain layer saw it
    let d = a.closed_channel(&id).unwrap();
    assert!(d.htlcs.is_empty(), "none open at the close");

    // Which of B's revoked commitments it is: the one whose to_local is there.
    let theirs = d.counterparty_keys.expect("B's basepoints");
    let ours = a.closed_channel_holder_keys(&d);
    let oldest_unrevoked = d.counterparty_commitments.last().unwrap().commitment_number;
    let found: Vec<_> = (0..oldest_unrevoked)
        .filter_map(|n| {
            let secret = d
                .counterparty_secrets
                .get_secret(INITIAL_COMMITMENT_INDEX - n)?;
            let point = per_commitment_point(&secret).unwrap();
            let keys = TxCreationKeys::derive(&point, &theirs, &ours);
            let to_local = p2wsh(&to_local_script(
                &keys.revocation_key,
                d.counterparty_to_self_delay.unwrap(),
                &keys.broadcaster_delayed_payment_key,
            ));
            let there = revoked.output.iter().any(|o| o.script_pubkey == to_local);
            there.then_some((secret, keys, to_local))
        })
        .collect();
    let [(secret, keys, to_local)] = &found[..] else {
        panic!("one revoked commitment of B's has this to_local: {found:?}")
    };
    let key = a.closed_channel_revocation_key(&d, secret).unwrap();
    assert_eq!(
        PublicKey::from_secret_key(&Secp256k1::new(), &key),
        keys.revocation_key
    );
    let to_remote =
        ScriptBuf::new_p2wpkh(&bitcoin::CompressedPublicKey(ours.payment_basepoint).wpubkey_hash());
    let candidates: Vec<ScriptBuf> = d
        .revoked_htlcs
        .iter()
        .map(|h| {
            p2wsh(&match h.direction {
                // B's commitment: ours is an HTLC it received, its own one it offered.
                HtlcDirection::Offered => {
                    received_htlc_script(keys, &h.payment_hash, h.cltv_expiry, false)
                }
                HtlcDirection::Received => offered_htlc_script(keys, &h.payment_hash, false),
            })
        })
        .collect();
    let htlc_outputs: Vec<_> = revoked
        .output
        .iter()
        .filter(|o| o.script_pubkey != *to_local && o.script_pubkey != to_remote)
        .collect();
    assert_eq!(htlc_outputs.len(), 2, "{revoked:?}");
    for o in htlc_outputs {
        assert!(
            candidates.contains(&o.script_pubkey),
            "an HTLC output of the revoked commitment the record cannot name: {o:?}"
        );
    }
    assert_eq!(reread(&a, 1).closed_channel(&id), Some(d));
}

/// Pays `msat` from `a` to `b` over `scid` and settles it: claimed, or
/// failed back.
fn settle(
    a: &ChannelStore,
    b: &ChannelStore,
    scid: ShortChannelId,
    p: PaymentPreimage,
    msat: u64,
    claim: bool,
) {
    a.pay_invoice(&route_to(b, scid), p.payment_hash(), msat)
        .unwrap();
    deliver_all(&[a, b]);
    if claim {
        b.claim_funds(p).unwrap();
    } else {
        b.fail_htlc_backwards(&p.payment_hash()).unwrap();
    }
    deliver_all(&[a, b]);
    events(a);
    events(b);
}

/// Each HTLC kept for the peer's revoked commitments is durable from the
/// batch it ends in: a restart loses none. A dust HTLC (below the peer's
/// dust limit: trimmed from every commitment of the peer's) is not kept.
/// Once the channel closes, their records leave the persister in the batch
/// that writes the closed record, which lists them, also after a restart.
#[test]
fn ended_htlcs_are_durable_and_leave_with_the_channel() {
    let pa = Arc::new(MemoryPersister::new());
    let (mut a, b) = (node_on(1, StoreConfig::default(), pa.clone()), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = |n| preimage(0x55, n);
    settle(&a, &b, scid, p(0), 5_000_000, false);
    settle(&a, &b, scid, p(1), 300_000, true); // dust: B's limit is 354 sat
    settle(&a, &b, scid, p(2), 6_000_000, true);
    assert_eq!(
        ended_records(&*pa),
        [Key::EndedHtlc(id, true, 0), Key::EndedHtlc(id, true, 2)]
    );
    b.peer_disconnected(&a.node_id());
    a = node_on(1, StoreConfig::default(), pa.clone());
    connect(&a, &b);
    deliver_all(&[&a, &b]);
    settle(&a, &b, scid, p(3), 7_000_000, false);

    a.force_close_channel(&id).unwrap();
    let d = a.closed_channel(&id).unwrap();
    let kept: Vec<_> = d
        .revoked_htlcs
        .iter()
        .map(|h| (h.direction, h.htlc_id, h.payment_hash, h.amount_msat))
        .collect();
    let offered = |n: u16, msat| {
        (
            HtlcDirection::Offered,
            u64::from(n),
            p(n).payment_hash(),
            msat,
        )
    };
    assert_eq!(
        kept,
        [
            offered(0, 5_000_000),
            offered(2, 6_000_000),
            offered(3, 7_000_000)
        ]
    );
    assert!(
        ended_records(&*pa).is_empty(),
        "the closed record holds them now"
    );
    drop(a);
    let a = node_on(1, StoreConfig::default(), pa.clone());
    assert_eq!(a.closed_channel(&id), Some(d));
}

/// At `max_revoked_htlcs_per_channel` kept HTLCs the channel closes
/// cooperatively (after its `shutdown` no HTLC can be added, so the list
/// stops growing), and its record lists every one of them.
#[test]
fn a_channel_at_its_bound_of_ended_htlcs_closes_cooperatively() {
    let config = StoreConfig {
        max_revoked_htlcs_per_channel: 3,
        ..StoreConfig::default()
    };
    let (a, b) = (node_with(1, config), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    for n in 0..3 {
        assert!(a.channel_details(&id).unwrap().is_usable, "{n} kept");
        settle(&a, &b, scid, preimage(0x56, n), 5_000_000, n != 1);
    }
    deliver_all(&[&a, &b]);
    assert!(a.channel_details(&id).is_none() && b.channel_details(&id).is_none());
    let d = a.closed_channel(&id).expect("A has a balance to sweep");
    assert!(
        matches!(d.reason, ClosureReason::Cooperative { .. }),
        "{:?}",
        d.reason
    );
    assert_eq!(d.revoked_htlcs.len(), 3);
}

/// A kept HTLC's record under a channel that has none, or under another
/// HTLC's key, is corruption: the store refuses to open.
#[test]
fn a_stray_or_misfiled_ended_htlc_record_is_refused() {
    let pa = Arc::new(MemoryPersister::new());
    let (a, b) = (node_on(1, StoreConfig::default(), pa.clone()), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    settle(&a, &b, scid, preimage(0x57, 0), 5_000_000, false);
    drop(a);
    let map = pa.load().unwrap();
    let value = map[&Key::EndedHtlc(id, true, 0)].clone();
    for bad in [
        Key::EndedHtlc(ChannelId([9; 32]), true, 0),
        Key::EndedHtlc(id, true, 1),
    ] {
        let copy = Arc::new(MemoryPersister::new());
        let all: Vec<_> = map.iter().map(|(k, v)| (*k, Some(v.clone()))).collect();
        copy.write_batch(&all).unwrap();
        copy.write_batch(&[(bad, Some(value.clone()))]).unwrap();
        let secret = bitcoin::secp256k1::SecretKey::from_slice(&[1; 32]).unwrap();
        let opened = ChannelStore::with_persister(
            StoreConfig::default(),
            secret,
            HEIGHT,
            copy as Arc<dyn Persister>,
        );
        assert!(opened.is_err(), "{bad:?} was taken");
    }
}
