//! Fee arithmetic real peers rely on (issue 13): a commitment is priced at
//! the feerate it trims at, a funder's add is priced on the funder's own
//! commitment (where LDK prices it), and the funding waits for the depth the
//! fundee asked for.

mod common;

use chanstore::transactions::commitment_fee_sat;
use chanstore::{ChannelStore, Event, Message, ShortChannelId, StoreConfig, StoreError};
use common::*;

const CLTV: u32 = HEIGHT + 100;

fn config(dust_limit_sat: u64) -> StoreConfig {
    StoreConfig {
        dust_limit_sat,
        // Room for the dust HTLCs these tests put in flight.
        max_dust_htlc_exposure_msat: 50_000_000,
        ..StoreConfig::default()
    }
}

/// `n` payments of `amount_msat` from `from` to `to`, left in flight
/// (irrevocably committed, never claimed).
fn pay_many(
    from: &ChannelStore,
    to: &ChannelStore,
    scid: ShortChannelId,
    n: u16,
    amount_msat: u64,
) {
    for i in 0..n {
        let hash = preimage(0x31, i).payment_hash();
        from.pay_invoice(&route_to(to, scid), hash, amount_msat)
            .unwrap();
    }
    deliver_all(&[from, to]);
}

/// The funder's add must leave it the fee of *its own* next commitment,
/// trimmed at its own dust limit: B's HTLCs of 600 sat are outputs of B's
/// commitment (dust limit 354) but dust in A's (546). LDK, as funder,
/// sends up to its balance less the reserve and twice the fee of its own
/// commitment with one more HTLC (channel.rs:5664-5690); such an add was
/// refused with `ReserveViolated`, priced on B's commitment with ten more
/// outputs.
#[test]
fn a_funder_add_is_priced_on_the_funder_commitment() {
    let (a, b) = (node_with(1, config(546)), node_with(2, config(354)));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 100_000_000);
    pay_many(&b, &a, scid, 10, 600_000);
    assert_eq!(b.channel_details(&id).unwrap().pending_htlcs, 10);
    let balance = a.channel_details(&id).unwrap().balance_msat;
    assert_eq!(balance, 900_000_000);
    let reserve = 10_000_000;
    // On A's commitment the ten are dust: the add is its only HTLC output.
    let own_fee = commitment_fee_sat(253, 1, false) * 1000;
    // What B's commitment would have cost: eleven HTLC outputs.
    let b_fee = commitment_fee_sat(253, 11, false) * 1000;
    let ldk_priced = balance - reserve - 2 * commitment_fee_sat(253, 2, false) * 1000;
    assert!(
        balance - ldk_priced < reserve + b_fee,
        "the case that was refused"
    );
    // One more msat than the funder can pay on its own commitment: refused,
    // naming that commitment's need, and nothing changes.
    let max = balance - reserve - own_fee;
    let over = craft_add(&b, id, 0, max + 1, preimage(0x32, 0).payment_hash(), CLTV);
    let (frozen, _) = freeze(&[&b]);
    assert_eq!(
        b.handle_message(&a.node_id(), over),
        Err(StoreError::ReserveViolated {
            channel_id: id,
            balance_msat: (reserve + own_fee - 1) as i64,
            reserve_msat: reserve + own_fee,
        })
    );
    assert_unchanged(&[&b], &frozen);
    // LDK's price goes through, and the channel goes on.
    let add = craft_add(
        &b,
        id,
        0,
        ldk_priced,
        preimage(0x32, 1).payment_hash(),
        CLTV,
    );
    b.handle_message(&a.node_id(), add).unwrap();
    assert_eq!(b.channel_details(&id).unwrap().pending_htlcs, 11);
}

/// With an `update_fee` of ours in flight, the peer's add is checked
/// against each commitment we may have to pay for, each priced at the
/// feerate it trims at. B's HTLCs of 1000 sat are outputs at 253 sat/kw and
/// dust at 2000 sat/kw: they were counted as outputs at 253 and priced at
/// 2000, and the eleventh was refused with `ReserveViolated`.
#[test]
fn a_pending_fee_update_prices_each_commitment_at_its_own_feerate() {
    let (a, b) = (node_with(1, config(354)), node_with(2, config(354)));
    connect_all(&[&a, &b]);
    // A, the funder, keeps 15_000 sat: 10_000 reserve, 5_000 for fees.
    let (id, scid) = open_channel(&a, &b, 1_000_000, 985_000_000);
    a.update_fee(&id, 2_000).unwrap();
    // B does not see the update yet; its adds reach A one by one.
    let mut accepted = 0;
    for i in 0..11u16 {
        let hash = preimage(0x33, i).payment_hash();
        b.pay_invoice(&route_to(&a, scid), hash, 1_000_000).unwrap();
        for (_, m) in take_msgs(&b) {
            let is_add = matches!(m, Message::UpdateAddHtlc(_));
            match a.handle_message(&b.node_id(), m) {
                Ok(()) => accepted += usize::from(is_add),
                Err(e) => panic!("add {i} refused: {e}"),
            }
        }
    }
    assert_eq!(accepted, 11);
    // What the worst commitment costs A: at 2000 sat/kw the HTLCs are dust.
    let worst = commitment_fee_sat(2_000, 0, false).max(commitment_fee_sat(253, 11, false));
    assert!(15_000 >= 10_000 + worst);
    assert!(
        15_000 < 10_000 + commitment_fee_sat(2_000, 11, false),
        "the case that was refused"
    );
    deliver_all(&[&a, &b]);
    for n in [&a, &b] {
        let d = n.channel_details(&id).unwrap();
        assert_eq!((d.feerate_per_kw, d.pending_htlcs), (2_000, 11), "{d:?}");
        n.check_value_conserved().unwrap();
        n.check_commitments_fully_paid().unwrap();
    }
}

/// Opens a channel from `a` to `b` funded in block `HEIGHT` and reported
/// confirmed at once (depth 1); returns its id and scid.
fn open_at_depth_one(a: &ChannelStore, b: &ChannelStore) -> (chanstore::ChannelId, ShortChannelId) {
    fund_and_confirm(a, b, 1_000_000, 0, 0x5d)
}

fn ready(node: &ChannelStore) -> bool {
    events(node)
        .iter()
        .any(|e| matches!(e, Event::ChannelReady { .. }))
}

/// BOLT 2: the funder waits for the `minimum_depth` the fundee asked for in
/// `accept_channel` (LDK as fundee asks for 6), and shows it; `channel_ready`
/// goes when a block makes the funding deep enough, also after a restart.
#[test]
fn the_funder_waits_for_the_fundee_minimum_depth() {
    let fundee_config = StoreConfig {
        minimum_depth: 6,
        ..StoreConfig::default()
    };
    let (a, b) = (node(1), node_with(2, fundee_config));
    assert_eq!(a.config().minimum_depth, 3);
    connect_all(&[&a, &b]);
    let (id, _) = open_at_depth_one(&a, &b);
    let d = a.channel_details(&id).unwrap();
    assert_eq!(
        (d.counterparty_minimum_depth, d.confirmations_required),
        (Some(6), 6)
    );
    let d = b.channel_details(&id).unwrap();
    assert_eq!(
        (d.counterparty_minimum_depth, d.confirmations_required),
        (None, 6)
    );
    // Depth 1 .. 5: no channel_ready from either side.
    for depth in 1..6 {
        for n in [&a, &b] {
            n.best_block_updated(HEIGHT + depth - 1);
        }
        assert!(
            take_msgs(&a).is_empty() && take_msgs(&b).is_empty(),
            "channel_ready at depth {depth}"
        );
    }
    // A restart keeps what it waits for.
    let mut bytes = Vec::new();
    a.write(&mut bytes).unwrap();
    let a = ChannelStore::read(
        &mut &bytes[..],
        StoreConfig::default(),
        bitcoin::secp256k1::SecretKey::from_slice(&[1; 32]).unwrap(),
    )
    .unwrap();
    a.peer_connected(b.node_id());
    b.peer_disconnected(&a.node_id());
    b.peer_connected(a.node_id());
    deliver_all(&[&a, &b]);
    let d = a.channel_details(&id).unwrap();
    assert_eq!(
        (
            d.counterparty_minimum_depth,
            d.confirmations_required,
            d.is_usable
        ),
        (Some(6), 6, false)
    );
    // Depth 6: both send it and the channel is usable.
    for n in [&a, &b] {
        n.best_block_updated(HEIGHT + 5);
    }
    deliver_all(&[&a, &b]);
    assert!(ready(&a) && ready(&b));
    assert!(a.channel_details(&id).unwrap().is_usable);
}

/// A funder peer that announces a higher dust limit than ours (546 sat,
/// the most we allow, against our 354) sends HTLCs that are dust in its own commitment but outputs of
/// ours: free for it, 172 weight units each in ours. Each add must still
/// leave it the fee of *our* next commitment, the one we would broadcast,
/// or that commitment pays below its feerate and never confirms (no anchor,
/// our `to_local` delayed: our funds locked). B checks no signature, so the
/// test can play A's `commitment_signed`; a hostile A would sign for real.
#[test]
fn a_funder_peer_cannot_underfund_our_commitment_with_its_dust() {
    let a = node_with(
        1,
        StoreConfig {
            dust_limit_sat: 546,
            ..StoreConfig::default()
        },
    );
    let b = node_with(
        2,
        StoreConfig {
            verify_signatures: false,
            ..StoreConfig::default()
        },
    );
    connect_all(&[&a, &b]);
    // A, the funder, keeps 300,000 sat.
    let (id, _) = open_channel(&a, &b, 1_000_000, 700_000_000);
    // 600 sat: dust in A's commitment (below 546 + 167), an output of
    // B's (above 354 + 177).
    let mut taken = 0u16;
    let mut refused = None;
    for i in 0..483u16 {
        let hash = preimage(0x77, i).payment_hash();
        let add = craft_add(&b, id, u64::from(i), 600_000, hash, CLTV);
        match b.handle_message(&a.node_id(), add) {
            Ok(()) => taken += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(refused, Some(StoreError::ReserveViolated { .. })),
        "an add that leaves A unable to pay B's commitment is refused, {taken} taken: {refused:?}"
    );
    // A signs B's next commitment with all it added: B takes it and revokes.
    let sig = bitcoin::secp256k1::ecdsa::Signature::from_compact(&[1; 64]).unwrap();
    let cs = chanstore::message::CommitmentSigned {
        channel_id: id,
        signature: sig,
        htlc_signatures: vec![sig; usize::from(taken)],
    };
    b.handle_message(&a.node_id(), Message::CommitmentSigned(cs))
        .expect("B takes A's commitment_signed");
    assert!(take_msgs(&b)
        .iter()
        .any(|(_, m)| matches!(m, Message::RevokeAndAck(_))));
    b.check_commitments_fully_paid()
        .expect("every commitment's funder pays its fee");
    // What B would broadcast pays its BOLT 3 fee at 253 sat/kw.
    let _ = events(&b);
    b.force_close_channel(&id).unwrap();
    let tx = events(&b)
        .into_iter()
        .find_map(|e| match e {
            Event::BroadcastTransaction { transaction, .. } => Some(transaction),
            _ => None,
        })
        .expect("B broadcasts its commitment");
    let fee = 1_000_000 - tx.output.iter().map(|o| o.value.to_sat()).sum::<u64>();
    assert_eq!(tx.output.len(), usize::from(taken) + 2);
    assert!(fee >= commitment_fee_sat(253, usize::from(taken), false));
}
