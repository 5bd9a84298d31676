//! Issue 11: one regression test per defect a review found, each named
//! after what must hold. Nodes A - B - C; B (the hub) is durable and is
//! restarted from what its persister holds.

mod common;

use std::sync::Arc;

use bitcoin::secp256k1::{PublicKey, SecretKey};
use chanstore::message::{ClosingSigned, OpenChannel, Shutdown};
use chanstore::{
    ChannelId, ChannelStore, ClosureReason, Event, FailureCode, HtlcDirection, Message,
    OnChainAction, OnChainOutcome, PaymentPreimage, Persister, Route, ShortChannelId,
    SpendableOutputKind, StoreConfig, StoreError,
};
use common::recording::Recording;
use common::*;

fn secret(seed: u8) -> SecretKey {
    SecretKey::from_slice(&[seed; 32]).unwrap()
}

fn durable(seed: u8, config: StoreConfig, p: &Arc<Recording>) -> ChannelStore {
    ChannelStore::with_persister(
        config,
        secret(seed),
        HEIGHT,
        p.clone() as Arc<dyn Persister>,
    )
    .unwrap()
}

/// A - B - C, B durable.
struct Net {
    a: ChannelStore,
    b: ChannelStore,
    c: ChannelStore,
    pb: Arc<Recording>,
    config: StoreConfig,
    ab: ChannelId,
    scid_ab: ShortChannelId,
    bc: ChannelId,
    scid_bc: ShortChannelId,
}

impl Net {
    fn new() -> Net {
        Net::with(StoreConfig::default())
    }

    fn with(config: StoreConfig) -> Net {
        let pb = Recording::new();
        let (a, b, c) = (
            node_with(1, config.clone()),
            durable(2, config.clone(), &pb),
            node_with(3, config.clone()),
        );
        connect_all(&[&a, &b, &c]);
        // B has a balance on both sides (300k sat pushed on A-B).
        let (ab, scid_ab) = open_channel(&a, &b, 1_000_000, 300_000_000);
        let (bc, scid_bc) = open_channel(&b, &c, 1_000_000, 0);
        Net {
            a,
            b,
            c,
            pb,
            config,
            ab,
            scid_ab,
            bc,
            scid_bc,
        }
    }

    fn nodes(&self) -> [&ChannelStore; 3] {
        [&self.a, &self.b, &self.c]
    }

    fn route(&self, amount_msat: u64) -> Route {
        route_through(&self.b, self.scid_ab, &self.c, self.scid_bc, amount_msat)
    }

    /// A pays C through B; returns the preimage. C has `PaymentReceived`.
    fn pay_to_c(&self, n: u16, amount_msat: u64) -> PaymentPreimage {
        let p = preimage(0xc, n);
        self.a
            .pay_invoice(&self.route(amount_msat), p.payment_hash(), amount_msat)
            .unwrap();
        deliver_all(&self.nodes());
        assert!(events(&self.c).contains(&Event::PaymentReceived {
            payment_hash: p.payment_hash(),
            amount_msat,
            payment_preimage: None,
        }));
        p
    }

    /// B crashes and restarts from everything it wrote; its peers see it go.
    fn restart_b(&mut self) {
        for n in [&self.a, &self.c] {
            n.peer_disconnected(&self.b.node_id());
        }
        self.b = durable(2, self.config.clone(), &self.pb);
        for n in [&self.a, &self.c] {
            connect(n, &self.b);
        }
    }

    fn pending(&self, n: &ChannelStore, id: &ChannelId) -> usize {
        n.channel_details(id).unwrap().pending_htlcs
    }
}

fn has(events: &[Event], f: impl Fn(&Event) -> bool) -> bool {
    events.iter().any(f)
}

// ---- 1 and 2: a closed channel keeps what is at stake ----

/// Point 1: after B-C closes with A's forward on it, B keeps A's HTLC
/// pending across restarts until the on-chain outcome is reported; then it
/// settles A's side accordingly.
#[test]
fn restart_keeps_incoming_htlc_whose_outgoing_channel_closed() {
    for outcome in ["fulfilled", "failed"] {
        let mut net = Net::new();
        let p = net.pay_to_c(1, 5_000_000);
        // C fails the channel (it will claim B's HTLC on chain): B gets its `error`.
        net.c.force_close_channel(&net.bc).unwrap();
        deliver_all(&net.nodes());
        let evs = events(&net.b);
        let htlc = evs
            .iter()
            .find_map(|e| match e {
                Event::OnChainResolutionRequired { htlc } => Some(htlc.clone()),
                _ => None,
            })
            .expect("the offered HTLC is reported for on-chain resolution");
        assert_eq!(
            (htlc.direction, htlc.action, htlc.payment_hash),
            (
                HtlcDirection::Offered,
                OnChainAction::TimeOut,
                p.payment_hash()
            )
        );
        for _ in 0..3 {
            net.restart_b();
            deliver_all(&net.nodes());
            assert_eq!(net.pending(&net.a, &net.ab), 1, "A's HTLC stays pending");
            assert!(!has(&events(&net.a), |e| matches!(
                e,
                Event::PaymentFailed { .. }
            )));
            let closed = net.b.closed_channel(&net.bc).expect("record kept");
            assert_eq!(closed.htlcs.len(), 1);
            net.b.check_indexes().unwrap();
        }
        let result = if outcome == "fulfilled" {
            OnChainOutcome::Fulfilled(p)
        } else {
            OnChainOutcome::Failed
        };
        // A wrong preimage is refused and changes nothing.
        assert_eq!(
            net.b.htlc_resolved_on_chain(
                &net.bc,
                HtlcDirection::Offered,
                htlc.htlc_id,
                OnChainOutcome::Fulfilled(PaymentPreimage([7; 32]))
            ),
            Err(StoreError::WrongPreimage {
                channel_id: net.bc,
                htlc_id: htlc.htlc_id
            })
        );
        net.b
            .htlc_resolved_on_chain(&net.bc, HtlcDirection::Offered, htlc.htlc_id, result)
            .unwrap();
        deliver_all(&net.nodes());
        let a_events = events(&net.a);
        if outcome == "fulfilled" {
            assert!(has(&a_events, |e| matches!(e, Event::PaymentSent { .. })));
            assert!(has(&events(&net.b), |e| matches!(
                e,
                Event::HtlcForwarded { .. }
            )));
        } else {
            // B timed it out on chain: B decided the failure.
            assert!(a_events.contains(&failed_by(
                &net.b,
                p.payment_hash(),
                FailureCode::PermanentChannelFailure,
                vec![]
            )));
        }
        assert_eq!(net.pending(&net.a, &net.ab), 0);
        // A second report is refused: the HTLC is settled.
        assert!(net
            .b
            .htlc_resolved_on_chain(&net.bc, HtlcDirection::Offered, htlc.htlc_id, result)
            .is_err());
        net.restart_b();
        deliver_all(&net.nodes());
        assert!(events(&net.a).is_empty(), "nothing happens twice");
    }
}

/// Point 2: a cooperative close keeps the signed closing transaction and
/// our output, spendable with the key the store derives, until swept.
#[test]
fn cooperative_close_keeps_what_spends_our_output() {
    let mut net = Net::new();
    // B funded B-C: its balance is its output in the closing transaction.
    net.b.close_channel(&net.bc).unwrap();
    deliver_all(&net.nodes());
    let evs = events(&net.b);
    assert!(has(&evs, |e| matches!(
        e,
        Event::ChannelClosed {
            reason: ClosureReason::Cooperative { .. },
            ..
        }
    )));
    assert!(has(&evs, |e| matches!(
        e,
        Event::BroadcastTransaction { .. }
    )));
    assert!(has(&evs, |e| matches!(e, Event::SpendableOutputs { .. })));
    net.restart_b();
    let closed = net
        .b
        .closed_channel(&net.bc)
        .expect("kept across a restart");
    let tx = closed.transaction.clone().expect("the closing transaction");
    assert_eq!(tx.input[0].witness.len(), 4, "signed by both sides");
    let out = &closed.outputs[0];
    assert_eq!(out.kind, SpendableOutputKind::StaticPayment);
    assert_eq!(out.outpoint.unwrap().txid, tx.compute_txid());
    let vout = out.outpoint.unwrap().vout as usize;
    assert_eq!(tx.output[vout].script_pubkey, out.script_pubkey);
    assert_eq!(tx.output[vout].value.to_sat(), out.value_sat);
    // The key the store derives is the one the output pays.
    let key = net.b.spendable_output_key(out);
    let pk = bitcoin::CompressedPublicKey(PublicKey::from_secret_key(
        &bitcoin::secp256k1::Secp256k1::new(),
        &key,
    ));
    assert_eq!(
        out.script_pubkey,
        bitcoin::ScriptBuf::new_p2wpkh(&pk.wpubkey_hash())
    );
    // C has nothing in the channel: it keeps no record.
    assert!(net.c.closed_channel(&net.bc).is_none());
    net.b.spendable_outputs_swept(&net.bc).unwrap();
    assert!(
        net.b.closed_channel(&net.bc).is_none(),
        "done: the record goes"
    );
    net.b.check_indexes().unwrap();
    net.restart_b();
    assert!(net.b.closed_channels().is_empty(), "and stays gone");
}

/// Outputs reported swept are no longer listed, though the record stays for
/// its open HTLC (and stays so across a restart): a wallet that sweeps
/// whatever a record lists must not try to spend them twice.
#[test]
fn swept_outputs_are_no_longer_listed() {
    let mut net = Net::new();
    net.pay_to_c(1, 5_000_000);
    net.b.force_close_channel(&net.bc).unwrap();
    deliver_all(&net.nodes());
    let before = net.b.closed_channel(&net.bc).unwrap();
    assert!(!before.outputs.is_empty() && !before.outputs_swept);
    net.b.spendable_outputs_swept(&net.bc).unwrap();
    for restarted in [false, true] {
        if restarted {
            net.restart_b();
        }
        let after = net.b.closed_channel(&net.bc).expect("its HTLC is open");
        assert!(after.outputs_swept);
        assert!(
            after.outputs.is_empty(),
            "restarted {restarted}: {:?}",
            after.outputs
        );
        assert_eq!(after.htlcs, before.htlcs);
    }
}

/// Point 2: a force close keeps our signed latest commitment, our delayed
/// output with its key, and every HTLC with what claiming it needs.
#[test]
fn force_close_keeps_commitment_outputs_and_htlcs() {
    let mut net = Net::new();
    let p = net.pay_to_c(1, 5_000_000);
    net.c.claim_funds(p).unwrap();
    // C's fulfill reaches B, not yet A: B knows the preimage of A's HTLC.
    for (_, m) in net.c.get_and_clear_pending_msg_events() {
        net.b.handle_message(&net.c.node_id(), m).unwrap();
    }
    net.b.process_pending_forwards();
    net.b.force_close_channel(&net.ab).unwrap();
    let evs = events(&net.b);
    let tx = evs
        .iter()
        .find_map(|e| match e {
            Event::BroadcastTransaction { transaction, .. } => Some(transaction.clone()),
            _ => None,
        })
        .unwrap();
    net.restart_b();
    let closed = net.b.closed_channel(&net.ab).unwrap();
    assert_eq!(closed.transaction.as_ref(), Some(&tx));
    assert_eq!(tx.input[0].witness.len(), 4);
    let delayed = closed
        .outputs
        .iter()
        .find(|o| matches!(o.kind, SpendableOutputKind::DelayedPayment { .. }))
        .expect("our to_local");
    assert_eq!(delayed.outpoint.unwrap().txid, tx.compute_txid());
    let SpendableOutputKind::DelayedPayment { witness_script, .. } = &delayed.kind else {
        unreachable!()
    };
    // The key the store derives is the one the script checks.
    let key = net.b.spendable_output_key(delayed);
    let pk = PublicKey::from_secret_key(&bitcoin::secp256k1::Secp256k1::new(), &key);
    assert!(witness_script
        .as_bytes()
        .windows(33)
        .any(|w| w == pk.serialize()));
    let htlc = &closed.htlcs[0];
    assert_eq!(htlc.direction, HtlcDirection::Received);
    assert_eq!(htlc.action, OnChainAction::Claim);
    assert_eq!(htlc.payment_preimage, Some(p));
    assert!(htlc.commitment_output.is_some() && htlc.counterparty_htlc_signature.is_some());
    // A, which got B's error, closed too; its side of the HTLC times out.
    deliver_all(&net.nodes());
    let a_closed = net.a.closed_channel(&net.ab).unwrap();
    assert_eq!(a_closed.htlcs[0].action, OnChainAction::TimeOut);
}

// ---- 3: a preimage is never lost ----

/// Point 3: when the fulfill meets an upstream channel that is gone, the
/// preimage is written with the change that consumed it, in one batch.
#[test]
fn fulfill_meeting_a_closed_upstream_keeps_the_preimage_in_the_same_batch() {
    let mut net = Net::new();
    let p = net.pay_to_c(1, 5_000_000);
    net.a.force_close_channel(&net.ab).unwrap();
    deliver_all(&net.nodes());
    events(&net.b);
    net.c.claim_funds(p).unwrap();
    let before = net.pb.len();
    deliver_all(&net.nodes());
    // Every batch B wrote from here on: the state after each one either has
    // no preimage for A's HTLC anywhere, or has it in the closed record.
    for k in before..=net.pb.len() {
        let b = durable(2, net.config.clone(), &Recording::from_prefix(&net.pb, k));
        let in_record = b.closed_channel(&net.ab).unwrap().htlcs[0].payment_preimage;
        let fulfilled_downstream = b
            .list_channels()
            .iter()
            .any(|d| d.channel_id == net.bc && d.pending_htlcs == 0);
        assert!(
            in_record == Some(p) || !fulfilled_downstream,
            "after batch {k}: downstream settled, preimage lost"
        );
    }
    let evs = events(&net.b);
    assert!(has(&evs, |e| matches!(
        e,
        Event::OnChainResolutionRequired { htlc } if htlc.payment_preimage == Some(p)
    )));
    net.restart_b();
    assert_eq!(
        net.b.closed_channel(&net.ab).unwrap().htlcs[0].payment_preimage,
        Some(p)
    );
}

// ---- 4: PaymentReceived is never lost ----

/// Point 4: the batch that makes a payment to us claimable carries its
/// `PaymentReceived`; after a crash at any batch, the payment is either not
/// claimable yet or its event is there (or was taken).
#[test]
fn crash_at_any_batch_never_loses_payment_received() {
    let pb = Recording::new();
    let (a, b) = (node(1), durable(2, StoreConfig::default(), &pb));
    connect_all(&[&a, &b]);
    let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = preimage(4, 0);
    let start = pb.len();
    a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 3_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    for k in start..=pb.len() {
        let restored = durable(2, StoreConfig::default(), &Recording::from_prefix(&pb, k));
        let received = events(&restored)
            .iter()
            .any(|e| matches!(e, Event::PaymentReceived { .. }));
        let claimable = restored.claim_funds(p).is_ok();
        assert_eq!(claimable, received, "after batch {k}");
    }
    assert!(events(&b).contains(&Event::PaymentReceived {
        payment_hash: p.payment_hash(),
        amount_msat: 3_000_000,
        payment_preimage: None,
    }));
}

/// Point 4: an HTLC the final-hop checks refuse is failed in the section
/// that commits it, and never becomes claimable, not even after a restart
/// from any of the batches written meanwhile.
#[test]
fn refused_final_htlc_never_becomes_claimable_after_restart() {
    let pb = Recording::new();
    // B requires a longer final CLTV delta than A gives.
    let strict = StoreConfig {
        min_final_cltv_expiry_delta: 100,
        ..StoreConfig::default()
    };
    let (a, b) = (node(1), durable(2, strict.clone(), &pb));
    connect_all(&[&a, &b]);
    let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = preimage(4, 1);
    let start = pb.len();
    a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 1_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    assert!(events(&a).contains(&unknown_to(&b, p.payment_hash(), 1_000_000)));
    assert!(events(&b).is_empty(), "no PaymentReceived");
    for k in start..=pb.len() {
        let restored = durable(2, strict.clone(), &Recording::from_prefix(&pb, k));
        assert!(restored.claim_funds(p).is_err(), "after batch {k}");
        assert!(events(&restored).is_empty(), "after batch {k}");
    }
}

// ---- 5: no spurious on-chain resolution after a restart ----

/// Point 5: an HTLC settled upstream while the downstream's last
/// `revoke_and_ack` is outstanding is not reported for on-chain resolution
/// after restarts.
#[test]
fn restart_reports_no_resolution_for_htlc_settled_off_chain() {
    let mut net = Net::new();
    let p = net.pay_to_c(1, 5_000_000);
    net.c.claim_funds(p).unwrap();
    // Deliver everything except C's messages after its first, so C's last
    // revoke_and_ack to B is outstanding while A-B settles.
    loop {
        let mut moved = false;
        for from in [&net.a, &net.b] {
            for (to, m) in from.get_and_clear_pending_msg_events() {
                let dest = net.nodes().into_iter().find(|n| n.node_id() == to).unwrap();
                deliver_one(from, dest, m);
                moved = true;
            }
            moved |= from.process_pending_forwards() > 0;
        }
        let from_c = net.c.get_and_clear_pending_msg_events();
        let last_raa = from_c
            .iter()
            .all(|(_, m)| matches!(m, Message::RevokeAndAck(_)))
            && !from_c.is_empty()
            && net.pending(&net.a, &net.ab) == 0;
        if last_raa {
            break;
        }
        for (_, m) in from_c {
            deliver_one(&net.c, &net.b, m);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    assert_eq!(net.pending(&net.a, &net.ab), 0, "settled upstream");
    assert!(has(&events(&net.a), |e| matches!(
        e,
        Event::PaymentSent { .. }
    )));
    events(&net.b);
    for _ in 0..2 {
        net.restart_b();
        deliver_all(&net.nodes());
        let evs = events(&net.b);
        assert!(
            !has(&evs, |e| matches!(
                e,
                Event::OnChainResolutionRequired { .. }
            )),
            "{evs:?}"
        );
        assert!(events(&net.a).is_empty());
    }
}

// ---- 6: forwards on a channel closed before the add was committed ----

/// Point 6: a forward whose add never reached a commitment on the outgoing
/// channel is failed back when that channel closes.
#[test]
fn forward_to_channel_closed_before_commit_fails_back() {
    let net = Net::new();
    // C reconnects but its channel_reestablish has not arrived: B queues the
    // forward into the paused channel (the add would go out after the
    // reestablish), signed into no commitment.
    net.b.peer_disconnected(&net.c.node_id());
    net.b.peer_connected(net.c.node_id());
    let p = preimage(6, 0);
    net.a
        .pay_invoice(&net.route(5_000_000), p.payment_hash(), 5_000_000)
        .unwrap();
    deliver_without_c(&net);
    assert_eq!(net.pending(&net.b, &net.bc), 1, "queued on B-C");
    net.b.force_close_channel(&net.bc).unwrap();
    deliver_without_c(&net);
    let a_events = events(&net.a);
    assert!(
        a_events.contains(&failed_by(
            &net.b,
            p.payment_hash(),
            FailureCode::PermanentChannelFailure,
            vec![]
        )),
        "{a_events:?}"
    );
    assert_eq!(net.pending(&net.a, &net.ab), 0);
    let b_events = events(&net.b);
    assert!(
        !has(&b_events, |e| matches!(
            e,
            Event::OnChainResolutionRequired { .. }
        )),
        "nothing to settle on chain: {b_events:?}"
    );
}

/// Point 6, the other side of the line: once the outgoing add was signed
/// into a commitment the peer holds, it may go on chain, so the incoming
/// HTLC waits for the on-chain outcome instead of failing at once.
#[test]
fn forward_signed_into_the_peers_commitment_waits_for_the_chain() {
    let net = Net::new();
    let p = preimage(6, 1);
    net.a
        .pay_invoice(&net.route(5_000_000), p.payment_hash(), 5_000_000)
        .unwrap();
    // Deliver, dropping everything B sends C (its add and commitment_signed).
    loop {
        let mut moved = false;
        for (from, to) in [(&net.a, &net.b), (&net.b, &net.a)] {
            for (dest, m) in from.get_and_clear_pending_msg_events() {
                if dest != net.c.node_id() {
                    deliver_one(from, to, m);
                    moved = true;
                }
            }
            moved |= from.process_pending_forwards() > 0;
        }
        if !moved {
            break;
        }
    }
    net.b.peer_disconnected(&net.c.node_id());
    net.b.force_close_channel(&net.bc).unwrap();
    deliver_all(&[&net.a, &net.b]);
    assert!(events(&net.a).is_empty());
    assert_eq!(net.pending(&net.a, &net.ab), 1);
    let htlc = &net.b.closed_channel(&net.bc).unwrap().htlcs[0];
    assert_eq!(htlc.action, OnChainAction::TimeOut);
}

// ---- 7: write amplification ----

/// Point 7: updates a peer never signs are never written, however many.
#[test]
fn unsigned_updates_are_never_written() {
    let pb = Recording::new();
    let (a, b) = (node(1), durable(2, StoreConfig::default(), &pb));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 0);
    let (batches, bytes) = (pb.len(), pb.bytes());
    for n in 0..483u64 {
        let add = craft_add(
            &b,
            id,
            n,
            1_000,
            preimage(7, n as u16).payment_hash(),
            HEIGHT + 100,
        );
        b.handle_message(&a.node_id(), add).unwrap();
    }
    b.peer_disconnected(&a.node_id());
    b.peer_connected(a.node_id());
    assert_eq!((pb.len(), pb.bytes()), (batches, bytes), "nothing written");
}

/// Bytes B writes to forward one HTLC with `background` HTLCs in flight in
/// both its channels.
fn bytes_to_forward_one(background: u16) -> (usize, usize) {
    let config = StoreConfig {
        max_dust_htlc_exposure_msat: u64::MAX,
        ..StoreConfig::default()
    };
    let net = Net::with(config);
    // Background payments to C, not claimed: dust-sized, so the peer's
    // per-HTLC signatures (which a broadcastable commitment needs) do not
    // grow the figure.
    for i in 0..background {
        net.a
            .pay_invoice(&net.route(400_000), preimage(8, i).payment_hash(), 400_000)
            .unwrap();
    }
    deliver_all(&net.nodes());
    events(&net.c);
    let (batches, bytes) = (net.pb.len(), net.pb.bytes());
    let p = net.pay_to_c(999, 5_000_000);
    net.c.claim_funds(p).unwrap();
    deliver_all(&net.nodes());
    (net.pb.len() - batches, net.pb.bytes() - bytes)
}

/// Point 7: the bytes written per forwarded HTLC do not grow with the
/// HTLCs already in the channel.
#[test]
fn bytes_per_forwarded_htlc_do_not_grow_with_htlcs_in_flight() {
    let (batches_0, bytes_0) = bytes_to_forward_one(0);
    let (batches_n, bytes_n) = bytes_to_forward_one(40);
    assert_eq!(batches_0, batches_n);
    // The headers grow a little as commitment numbers and secrets grow.
    assert!(
        bytes_n <= bytes_0 + bytes_0 / 10,
        "{bytes_0} bytes with nothing in flight, {bytes_n} with 40 HTLCs"
    );
}

// ---- 8: resources ----

/// Point 8: a peer that connects and leaves with nothing costs nothing.
#[test]
fn peer_with_no_channels_costs_nothing_after_it_leaves() {
    let hub = node(2);
    for i in 0..200u8 {
        let peer = PublicKey::from_secret_key(
            &bitcoin::secp256k1::Secp256k1::new(),
            &SecretKey::from_slice(&[i.wrapping_add(10); 32]).unwrap(),
        );
        hub.peer_connected(peer);
        hub.peer_disconnected(&peer);
    }
    let counts = hub.resource_counts();
    assert_eq!((counts.peers, counts.ready_outboxes), (0, 0), "{counts:?}");
}

/// A real `open_channel` (from a store that opened a channel to someone).
fn open_template() -> OpenChannel {
    let funder = node(1);
    let to = node(250).node_id();
    greet(&funder, to);
    funder.create_channel(to, 100_000, 0).unwrap();
    let Some((_, Message::OpenChannel(open))) = funder.get_and_clear_pending_msg_events().pop()
    else {
        panic!("no open_channel")
    };
    open
}

/// The template with another temporary id.
fn open_msg(temporary: u8, template: &OpenChannel) -> Message {
    let mut open = template.clone();
    open.temporary_channel_id = ChannelId([temporary; 32]);
    Message::OpenChannel(open)
}

/// Point 8: unfunded inbound channels are capped per peer and store-wide,
/// and opening then leaving writes nothing durable.
#[test]
fn unfunded_inbound_channels_are_capped_and_cost_nothing_durable() {
    let config = StoreConfig {
        max_unfunded_channels_per_peer: 2,
        max_inbound_unfunded_channels: 3,
        ..StoreConfig::default()
    };
    let pb = Recording::new();
    let hub = durable(2, config, &pb);
    let funder = open_template();
    let peers: Vec<ChannelStore> = (0..3).map(|i| node(20 + i)).collect();
    for p in &peers {
        greet(&hub, p.node_id());
    }
    let from = |i: usize| peers[i].node_id();
    hub.handle_message(&from(0), open_msg(1, &funder)).unwrap();
    hub.handle_message(&from(0), open_msg(2, &funder)).unwrap();
    assert!(matches!(
        hub.handle_message(&from(0), open_msg(3, &funder)),
        Err(StoreError::PeerLimit {
            resource: "unfunded channels",
            ..
        })
    ));
    hub.handle_message(&from(1), open_msg(1, &funder)).unwrap();
    assert_eq!(
        hub.handle_message(&from(2), open_msg(1, &funder)),
        Err(StoreError::GlobalLimit {
            resource: "inbound unfunded channels",
            limit: 3
        })
    );
    // A peer leaving frees its slots.
    let written = pb.len();
    for _ in 0..50 {
        hub.peer_disconnected(&from(0));
        greet(&hub, from(0));
        hub.handle_message(&from(0), open_msg(1, &funder)).unwrap();
    }
    hub.peer_disconnected(&from(0));
    hub.handle_message(&from(2), open_msg(1, &funder)).unwrap();
    assert_eq!(pb.len(), written, "no durable write for unfunded channels");
    assert!(
        events(&hub).is_empty(),
        "no event for a peer's unfunded channels"
    );
}

/// Point 8: with only the per-peer drain in use, reconnections do not grow
/// the list of peers with messages.
#[test]
fn reconnections_do_not_grow_the_ready_list() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (_, _) = open_channel(&a, &b, 1_000_000, 0);
    for _ in 0..100 {
        a.peer_disconnected(&b.node_id());
        a.peer_connected(b.node_id());
        let msgs = a.get_and_clear_pending_msg_events_for(&[b.node_id()]);
        assert!(!msgs.is_empty());
    }
    assert!(a.resource_counts().ready_outboxes <= 1);
}

/// Point 8: a fundee forgets a channel whose funding never confirms within
/// `funding_timeout_blocks`, also across a restart.
#[test]
fn fundee_forgets_unconfirmed_channel_after_timeout() {
    for restart in [false, true] {
        let pb = Recording::new();
        let (a, mut b) = (node(1), durable(2, StoreConfig::default(), &pb));
        connect_all(&[&a, &b]);
        let temp = a.create_channel(b.node_id(), 1_000_000, 0).unwrap();
        deliver_all(&[&a, &b]);
        let outpoint = bitcoin::OutPoint::new(
            <bitcoin::Txid as bitcoin::hashes::Hash>::from_byte_array([9; 32]),
            0,
        );
        let id = a
            .funding_transaction_generated(&temp, &b.node_id(), outpoint)
            .unwrap();
        deliver_all(&[&a, &b]);
        events(&b);
        let timeout = StoreConfig::default().funding_timeout_blocks;
        b.best_block_updated(HEIGHT + timeout - 1);
        assert!(b.channel_details(&id).is_some());
        if restart {
            b = durable(2, StoreConfig::default(), &pb);
        }
        b.best_block_updated(HEIGHT + timeout);
        assert!(b.channel_details(&id).is_none(), "forgotten");
        assert!(events(&b).contains(&Event::ChannelClosed {
            channel_id: id,
            counterparty_node_id: a.node_id(),
            reason: ClosureReason::FundingTimedOut
        }));
        b.check_indexes().unwrap();
    }
}

// ---- 9: shutdown retransmission ----

/// Point 9: the `shutdown` BOLT 2 makes a peer send again after a
/// reconnection is accepted, and the close completes.
#[test]
fn retransmitted_shutdown_is_accepted_and_close_completes() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    // An HTLC in flight keeps both sides shutting down across the reconnect.
    a.pay_invoice(
        &route_to(&b, scid),
        preimage(9, 0).payment_hash(),
        1_000_000,
    )
    .unwrap();
    deliver_all(&[&a, &b]);
    a.close_channel(&id).unwrap();
    deliver_all(&[&a, &b]);
    for (x, y) in [(&a, &b), (&b, &a)] {
        x.peer_disconnected(&y.node_id());
    }
    connect_all(&[&a, &b]);
    // The reestablishes cross; each side then sends its shutdown again, and
    // each accepts the other's (deliver_all panics on a refusal).
    let reestablish_a = take_msgs(&a);
    let reestablish_b = take_msgs(&b);
    for (_, m) in reestablish_a {
        deliver_one(&a, &b, m);
    }
    for (_, m) in reestablish_b {
        deliver_one(&b, &a, m);
    }
    for n in [&a, &b] {
        let msgs = n.get_and_clear_pending_msg_events();
        assert!(
            msgs.iter().any(|(_, m)| matches!(m, Message::Shutdown(_))),
            "{msgs:?}"
        );
        let other = if n.node_id() == a.node_id() { &b } else { &a };
        for (_, m) in msgs {
            deliver_one(n, other, m);
        }
    }
    deliver_all(&[&a, &b]);
    b.claim_funds(preimage(9, 0)).unwrap();
    deliver_all(&[&a, &b]);
    for n in [&a, &b] {
        assert!(has(&events(n), |e| matches!(
            e,
            Event::ChannelClosed {
                reason: ClosureReason::Cooperative { .. },
                ..
            }
        )));
    }
}

// ---- 10: index changes in section order ----

/// Point 10: racing `open_channel` against `peer_disconnected` never leaves
/// a ghost snapshot or index entry behind.
#[test]
fn racing_open_and_disconnect_leaves_no_ghost() {
    let hub = Arc::new(node(2));
    let funder = open_template();
    let peer = node(30).node_id();
    let opens: Vec<Message> = (0..300u16)
        .map(|i| open_msg((i % 250) as u8 + 1, &funder))
        .collect();
    for open in opens {
        greet(&hub, peer);
        let h = hub.clone();
        let t = std::thread::spawn(move || {
            let _ = h.handle_message(&peer, open);
        });
        hub.peer_disconnected(&peer);
        t.join().unwrap();
        hub.peer_disconnected(&peer);
        assert!(hub.list_channels().is_empty(), "a ghost snapshot");
        hub.check_indexes().unwrap();
    }
    assert_eq!(hub.resource_counts().peers, 0);
}

// ---- 12: funding_created is never stranded ----

/// Point 12: a channel whose `funding_signed` never came is forgotten on
/// disconnection, and on restart, and the user told not to broadcast.
#[test]
fn channel_without_funding_signed_is_forgotten_on_disconnect_and_restart() {
    for restart in [false, true] {
        let pa = Recording::new();
        let (mut a, b) = (durable(1, StoreConfig::default(), &pa), node(2));
        connect_all(&[&a, &b]);
        let temp = a.create_channel(b.node_id(), 1_000_000, 0).unwrap();
        deliver_all(&[&a, &b]);
        events(&a);
        let outpoint = bitcoin::OutPoint::new(
            <bitcoin::Txid as bitcoin::hashes::Hash>::from_byte_array([8; 32]),
            0,
        );
        let id = a
            .funding_transaction_generated(&temp, &b.node_id(), outpoint)
            .unwrap();
        take_msgs(&a); // funding_created is lost
        if restart {
            a = durable(1, StoreConfig::default(), &pa);
        } else {
            a.peer_disconnected(&b.node_id());
        }
        assert!(events(&a).contains(&Event::ChannelClosed {
            channel_id: id,
            counterparty_node_id: b.node_id(),
            reason: ClosureReason::FundingNotSigned
        }));
        assert!(a.list_channels().is_empty());
        a.check_indexes().unwrap();
        let again = durable(1, StoreConfig::default(), &pa);
        assert!(again.list_channels().is_empty());
        assert!(events(&again).is_empty(), "told once");
    }
}

// ---- 13: smaller deviations ----

/// Point 13: a funder's `update_fee` that would trim HTLCs over our dust
/// exposure limit is refused; dust adds over it are not sent, and the
/// peer's are failed back once committed.
#[test]
fn dust_exposure_is_capped() {
    let config = StoreConfig {
        max_dust_htlc_exposure_msat: 2_000_000,
        ..StoreConfig::default()
    };
    let (a, b) = (node_with(1, config.clone()), node_with(2, config));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 500_000_000);
    // 100 sat HTLCs are dust: A may send 20 (2M msat), not 21.
    for i in 0..20 {
        a.pay_invoice(&route_to(&b, scid), preimage(13, i).payment_hash(), 100_000)
            .unwrap();
    }
    assert!(matches!(
        a.pay_invoice(
            &route_to(&b, scid),
            preimage(13, 20).payment_hash(),
            100_000
        ),
        Err(StoreError::DustExposureExceeded { .. })
    ));
    deliver_all(&[&a, &b]);
    // An update_fee that trims 1_000 sat HTLCs (20 of them would be 20M msat).
    for i in 0..20 {
        b.claim_funds(preimage(13, i)).unwrap();
    }
    deliver_all(&[&a, &b]);
    for i in 0..10 {
        a.pay_invoice(
            &route_to(&b, scid),
            preimage(14, i).payment_hash(),
            1_000_000,
        )
        .unwrap();
    }
    deliver_all(&[&a, &b]);
    assert!(matches!(
        a.update_fee(&id, 10_000),
        Err(StoreError::DustExposureExceeded { .. })
    ));
    // The peer's such update is refused and fails the channel (refused
    // alone, it would come back with its commitment_signed forever), as
    // LDK fails it.
    let _ = events(&b);
    assert!(matches!(
        b.handle_message(
            &a.node_id(),
            Message::UpdateFee(chanstore::message::UpdateFee {
                channel_id: id,
                feerate_per_kw: 10_000
            })
        ),
        Err(StoreError::DustExposureExceeded { .. })
    ));
    assert!(events(&b).iter().any(|e| matches!(
        e,
        Event::ChannelClosed {
            reason: ClosureReason::UnacceptableFeeUpdate {
                feerate_per_kw: 10_000
            },
            ..
        }
    )));
    assert!(b.channel_details(&id).is_none());
}

/// Point 13: an incoming HTLC expiring farther out than
/// `max_cltv_expiry_delta` is failed back with `expiry_too_far`.
#[test]
fn htlc_expiring_too_far_is_failed_with_expiry_too_far() {
    // A gives a final delta beyond what B accepts (B's default is 2016).
    let a = node_with(
        5,
        StoreConfig {
            min_final_cltv_expiry_delta: 2100,
            max_cltv_expiry_delta: 3000,
            ..StoreConfig::default()
        },
    );
    let b = node(2);
    connect_all(&[&a, &b]);
    let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = preimage(13, 1);
    a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 1_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    assert!(events(&a).contains(&failed_by(
        &b,
        p.payment_hash(),
        FailureCode::ExpiryTooFar,
        vec![]
    )));
    assert!(events(&b).is_empty());
}

/// Point 13: `force_close_channel` tells the peer with an `error`.
#[test]
fn force_close_sends_error_to_the_peer() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 0);
    a.force_close_channel(&id).unwrap();
    let msgs = take_msgs(&a);
    assert!(
        msgs.iter()
            .any(|(to, m)| *to == b.node_id()
                && matches!(m, Message::Error(e) if e.channel_id == id)),
        "{msgs:?}"
    );
    for (_, m) in msgs {
        deliver_one(&a, &b, m);
    }
    assert!(has(&events(&b), |e| matches!(
        e,
        Event::ChannelClosed {
            reason: ClosureReason::CounterpartyError { .. },
            ..
        }
    )));
}

/// Point 13: a peer may not shut down while it has removals or a fee update
/// our commitment does not cover yet.
#[test]
fn shutdown_refused_while_peer_has_unsigned_removals_or_fee() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    a.pay_invoice(
        &route_to(&b, scid),
        preimage(13, 2).payment_hash(),
        1_000_000,
    )
    .unwrap();
    deliver_all(&[&a, &b]);
    b.claim_funds(preimage(13, 2)).unwrap();
    let fulfill = take_msgs(&b)
        .into_iter()
        .find(|(_, m)| matches!(m, Message::UpdateFulfillHtlc(_)))
        .unwrap()
        .1;
    deliver_one(&b, &a, fulfill);
    // B's shutdown now, with its fulfill unsigned: A refuses.
    let shutdown = Message::Shutdown(Shutdown {
        channel_id: id,
        scriptpubkey: bitcoin::ScriptBuf::new_p2wpkh(
            &<bitcoin::WPubkeyHash as bitcoin::hashes::Hash>::from_byte_array([2; 20]),
        ),
    });
    let (frozen, _) = freeze(&[&a]);
    assert_eq!(
        a.handle_message(&b.node_id(), shutdown.clone()),
        Err(StoreError::WrongState {
            channel_id: id,
            action: "shutdown",
            state: "normal"
        })
    );
    assert_unchanged(&[&a], &frozen);
    // Likewise a funder with an unsigned update_fee.
    let (c, d) = (node(3), node(4));
    connect_all(&[&c, &d]);
    let (id2, _) = open_channel(&c, &d, 1_000_000, 0);
    c.update_fee(&id2, 500).unwrap();
    let fee = take_msgs(&c).remove(0).1;
    deliver_one(&c, &d, fee);
    let shutdown = Message::Shutdown(Shutdown {
        channel_id: id2,
        scriptpubkey: bitcoin::ScriptBuf::new_p2wpkh(
            &<bitcoin::WPubkeyHash as bitcoin::hashes::Hash>::from_byte_array([2; 20]),
        ),
    });
    assert!(matches!(
        d.handle_message(&c.node_id(), shutdown),
        Err(StoreError::WrongState {
            action: "shutdown",
            ..
        })
    ));
}

/// Point 13: our `channel_reestablish` goes out whatever the peer does
/// between its connection and ours: a peer's messages are refused until the
/// section that takes its `init` has queued ours.
#[test]
fn reestablish_is_sent_even_when_the_peer_races_us() {
    let (a, b) = (Arc::new(node(1)), node(2));
    connect_all(&[&a, &b]);
    let (_, _) = open_channel(&a, &b, 1_000_000, 0);
    deliver_all(&[&a, &b]);
    for _ in 0..100 {
        a.peer_disconnected(&b.node_id());
        b.peer_disconnected(&a.node_id());
        a.peer_connected(b.node_id());
        b.peer_connected(a.node_id());
        // A's init reaches B, which answers with its reestablish.
        for (_, m) in take_msgs(&a) {
            deliver_one(&a, &b, m);
        }
        let theirs = take_msgs(&b);
        let [(_, init @ Message::Init(_)), (_, reestablish @ Message::ChannelReestablish(_))] =
            &theirs[..]
        else {
            panic!("{theirs:?}");
        };
        let (init, reestablish) = (init.clone(), reestablish.clone());
        // The reestablish races the init it follows (which a transport
        // never lets it do).
        let a2 = a.clone();
        let from = b.node_id();
        let racing = reestablish.clone();
        let t = std::thread::spawn(move || a2.handle_message(&from, racing));
        a.handle_message(&b.node_id(), init).unwrap();
        let result = t.join().unwrap();
        // Either refused (before B's init) or taken after A's section
        // queued A's reestablish.
        if let Err(e) = &result {
            assert!(matches!(e, StoreError::InitRequired { .. }), "{e}");
            deliver_one(&b, &a, reestablish);
        }
        let ours = take_msgs(&a);
        assert!(
            matches!(ours.first(), Some((_, Message::ChannelReestablish(_)))),
            "{ours:?}"
        );
        for (_, m) in ours {
            deliver_one(&a, &b, m);
        }
        deliver_all(&[&a, &b]);
    }
}

/// Point 13: a peer that fails an HTLC after revealing its preimage (across
/// a reconnection) gets us `PaymentSent` only, never also `PaymentFailed`.
#[test]
fn fail_after_revealed_preimage_reports_payment_sent_only() {
    let pb = Recording::new();
    let (a, b) = (node(1), durable(2, StoreConfig::default(), &pb));
    connect_all(&[&a, &b]);
    let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = preimage(13, 3);
    a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 1_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    events(&b);
    let before_claim = pb.len();
    b.claim_funds(p).unwrap();
    let fulfill = take_msgs(&b)
        .into_iter()
        .find(|(_, m)| matches!(m, Message::UpdateFulfillHtlc(_)))
        .unwrap()
        .1;
    deliver_one(&b, &a, fulfill);
    assert!(has(&events(&a), |e| matches!(e, Event::PaymentSent { .. })));
    // B loses its claim (restored from before it) and fails the HTLC.
    a.peer_disconnected(&b.node_id());
    let b = durable(
        2,
        StoreConfig::default(),
        &Recording::from_prefix(&pb, before_claim),
    );
    connect_all(&[&a, &b]);
    deliver_all(&[&a, &b]);
    b.fail_htlc_backwards(&p.payment_hash()).unwrap();
    deliver_all(&[&a, &b]);
    let evs = events(&a);
    assert!(
        !has(&evs, |e| matches!(e, Event::PaymentFailed { .. })),
        "{evs:?}"
    );
}

// ---- 14: deadlines ----

/// Point 14: an offered HTLC past its expiry (plus grace) that the peer does
/// not remove closes the channel; the incoming side waits for the on-chain
/// outcome. Also when the blocks pass after a restart.
#[test]
fn offered_htlc_past_expiry_closes_the_channel() {
    for restart in [false, true] {
        let mut net = Net::new();
        net.pay_to_c(1, 5_000_000);
        let expiry = net.b.closed_channels().len();
        assert_eq!(expiry, 0);
        // C goes silent.
        net.b.peer_disconnected(&net.c.node_id());
        let cltv = HEIGHT + u32::from(net.config.min_final_cltv_expiry_delta);
        let grace = net.config.htlc_timeout_grace_blocks;
        net.b.best_block_updated(cltv + grace - 1);
        assert!(net.b.closed_channel(&net.bc).is_none());
        if restart {
            net.b = durable(2, net.config.clone(), &net.pb);
        }
        net.b.best_block_updated(cltv + grace);
        let evs = events(&net.b);
        assert!(has(&evs, |e| matches!(
            e,
            Event::ChannelClosed {
                reason: ClosureReason::HtlcTimedOut { .. },
                ..
            }
        )));
        assert!(has(&evs, |e| matches!(
            e,
            Event::OnChainResolutionRequired { htlc } if htlc.action == OnChainAction::TimeOut
        )));
        // A and B reconnect (B may have restarted).
        net.a.peer_disconnected(&net.b.node_id());
        net.b.peer_disconnected(&net.a.node_id());
        connect_all(&[&net.a, &net.b]);
        deliver_all(&[&net.a, &net.b]);
        assert_eq!(
            net.pending(&net.a, &net.ab),
            1,
            "A's side waits for the outcome"
        );
    }
}

/// Point 14: an incoming HTLC whose preimage we revealed, that the peer
/// does not settle, goes on chain before its expiry minus the claim buffer.
#[test]
fn revealed_preimage_is_claimed_on_chain_before_expiry() {
    let pb = Recording::new();
    let (a, b) = (node(1), durable(2, StoreConfig::default(), &pb));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = preimage(14, 0);
    a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 1_000_000)
        .unwrap();
    deliver_all(&[&a, &b]);
    b.claim_funds(p).unwrap();
    take_msgs(&b); // A never gets the fulfill
    let cltv = HEIGHT + u32::from(StoreConfig::default().min_final_cltv_expiry_delta);
    let buffer = StoreConfig::default().htlc_claim_buffer_blocks;
    b.best_block_updated(cltv - buffer - 1);
    assert!(b.closed_channel(&id).is_none());
    let b = durable(2, StoreConfig::default(), &pb);
    b.best_block_updated(cltv - buffer);
    let evs = events(&b);
    assert!(has(&evs, |e| matches!(
        e,
        Event::ChannelClosed {
            reason: ClosureReason::HtlcClaimDeadline { .. },
            ..
        }
    )));
    let closed = b.closed_channel(&id).unwrap();
    assert_eq!(closed.htlcs[0].action, OnChainAction::Claim);
    assert_eq!(closed.htlcs[0].payment_preimage, Some(p));
}

/// Point 14: a payment to us the user neither claims nor fails is failed
/// back before it expires, also after a restart.
#[test]
fn unclaimed_payment_is_failed_back_before_expiry() {
    for restart in [false, true] {
        let pb = Recording::new();
        let (a, mut b) = (node(1), durable(2, StoreConfig::default(), &pb));
        connect_all(&[&a, &b]);
        let (_, scid) = open_channel(&a, &b, 1_000_000, 0);
        let p = preimage(14, 1);
        a.pay_invoice(&route_to(&b, scid), p.payment_hash(), 1_000_000)
            .unwrap();
        deliver_all(&[&a, &b]);
        events(&b);
        let cltv = HEIGHT + u32::from(StoreConfig::default().min_final_cltv_expiry_delta);
        let buffer = StoreConfig::default().htlc_fail_back_buffer_blocks;
        b.best_block_updated(cltv - buffer - 1);
        if restart {
            b = durable(2, StoreConfig::default(), &pb);
            a.peer_disconnected(&b.node_id());
            connect_all(&[&a, &b]);
        }
        b.best_block_updated(cltv - buffer);
        assert!(events(&b).contains(&Event::PaymentClaimExpired {
            payment_hash: p.payment_hash(),
            amount_msat: 1_000_000
        }));
        deliver_all(&[&a, &b]);
        assert!(has(&events(&a), |e| matches!(
            e,
            Event::PaymentFailed { .. }
        )));
        assert!(b.claim_funds(p).is_err(), "too late to claim");
    }
}

/// Delivers every message, but applies no queued forward.
fn deliver_holding_forwards(nodes: &[&ChannelStore]) {
    loop {
        let mut moved = false;
        for from in nodes {
            for (to, msg) in take_msgs(from) {
                let dest = nodes.iter().find(|n| n.node_id() == to).unwrap();
                deliver_one(from, dest, msg);
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

/// Point 14: a forward that waited in B's queue (B was slow, or stopped
/// with it durable and restarted later) until its outgoing expiry is too
/// close is failed back to A with `expiry_too_soon`, not offered to C: an
/// HTLC C must refuse, and that B would close B-C on a block later.
#[test]
fn a_forward_queued_past_its_expiry_is_failed_back() {
    for restart in [false, true] {
        let mut net = Net::new();
        let amount = 5_000_000;
        let p = preimage(14, 2 + u16::from(restart));
        let route = net.route(amount);
        net.a.pay_invoice(&route, p.payment_hash(), amount).unwrap();
        deliver_holding_forwards(&net.nodes());
        assert_eq!(net.b.pending_forwards(), 1);
        // The outgoing expiry is HEIGHT + 42, the incoming one 72 later.
        let outgoing = HEIGHT + u32::from(net.config.min_final_cltv_expiry_delta);
        let now = outgoing - net.config.htlc_timeout_grace_blocks;
        if restart {
            net.b.flush().unwrap();
            net.b.best_block_updated(now);
            net.restart_b();
            deliver_holding_forwards(&net.nodes());
            assert_eq!(net.b.pending_forwards(), 1, "the forward was restored");
        }
        for n in net.nodes() {
            n.best_block_updated(now);
        }
        net.b.process_pending_forwards();
        let out = take_msgs(&net.b);
        assert!(
            !out.iter().any(|(to, _)| *to == net.c.node_id()),
            "restart={restart}: nothing goes to C: {out:?}"
        );
        for (to, msg) in out {
            assert_eq!(to, net.a.node_id());
            deliver_one(&net.b, &net.a, msg);
        }
        deliver_all(&net.nodes());
        let a_events = events(&net.a);
        assert!(
            has(&a_events, |e| matches!(
                e,
                Event::PaymentFailed { failure: FailureCode::ExpiryTooSoon, failing_node, .. }
                    if *failing_node == Some(net.b.node_id())
            )),
            "restart={restart}: {a_events:?}"
        );
        assert_eq!(net.pending(&net.a, &net.ab), 0);
        assert_eq!(net.pending(&net.b, &net.bc), 0);
        // Blocks pass: nothing is left to close a channel on.
        for n in net.nodes() {
            n.best_block_updated(outgoing + net.config.htlc_timeout_grace_blocks + 1);
        }
        assert!(net.b.closed_channels().is_empty(), "restart={restart}");
        assert!(net.a.closed_channels().is_empty(), "restart={restart}");
    }
}

/// Delivers every message between A and B, and B's forwards, until quiet;
/// what either sends C is dropped (C is away).
fn deliver_without_c(net: &Net) {
    loop {
        let mut moved = false;
        for (from, to) in [(&net.a, &net.b), (&net.b, &net.a)] {
            for (dest, m) in from.get_and_clear_pending_msg_events() {
                if dest == to.node_id() {
                    deliver_one(from, to, m);
                    moved = true;
                }
            }
            moved |= from.process_pending_forwards() > 0;
        }
        if !moved {
            return;
        }
    }
}

/// Point 14: forwards queued into a channel whose peer never came back to
/// `channel_reestablish` are in no commitment. Once the first is too close
/// to its expiry to offer, it and those queued after it are failed back
/// (`expiry_too_soon`, then `temporary_channel_failure`), and the channel
/// lives: no HTLC timeout closes it for an HTLC the peer never signed, and
/// when the peer comes back the next add takes the first id taken back.
#[test]
fn forwards_queued_into_a_channel_the_peer_left_are_failed_back_in_time() {
    for restart in [false, true] {
        let mut net = Net::new();
        net.b.peer_disconnected(&net.c.node_id());
        net.b.peer_connected(net.c.node_id());
        let amount = 5_000_000;
        let send = |net: &Net, n: u16| {
            let p = preimage(14, 10 + n + 2 * u16::from(restart));
            let route = net.route(amount);
            let hash = p.payment_hash();
            net.a.pay_invoice(&route, hash, amount).unwrap();
            deliver_without_c(net);
            hash
        };
        let first = send(&net, 0);
        for n in net.nodes() {
            n.best_block_updated(HEIGHT + 5);
        }
        let second = send(&net, 1);
        assert_eq!(net.pending(&net.b, &net.bc), 2, "both queued on B-C");
        if restart {
            net.b.flush().unwrap();
            net.restart_b();
            deliver_without_c(&net);
            assert_eq!(net.pending(&net.b, &net.bc), 2, "both restored");
        }
        // The first forward's outgoing expiry is HEIGHT + 42.
        let grace = net.config.htlc_timeout_grace_blocks;
        let outgoing = HEIGHT + u32::from(net.config.min_final_cltv_expiry_delta);
        for n in net.nodes() {
            n.best_block_updated(outgoing - grace);
        }
        deliver_without_c(&net);
        let a_events = events(&net.a);
        for (hash, code) in [
            (first, FailureCode::ExpiryTooSoon),
            (second, FailureCode::TemporaryChannelFailure),
        ] {
            assert!(
                has(&a_events, |e| matches!(
                    e,
                    Event::PaymentFailed { payment_hash, failure, failing_node, .. }
                        if *payment_hash == hash && *failure == code
                            && *failing_node == Some(net.b.node_id())
                )),
                "restart={restart}: {code:?}: {a_events:?}"
            );
        }
        assert_eq!(net.pending(&net.a, &net.ab), 0, "restart={restart}");
        assert_eq!(net.pending(&net.b, &net.bc), 0, "restart={restart}");
        for n in net.nodes() {
            n.best_block_updated(outgoing + 5 + grace + 1);
        }
        for n in net.nodes() {
            assert!(n.closed_channels().is_empty(), "restart={restart}");
        }
        if restart {
            // What was taken back is gone from disk too.
            net.b.flush().unwrap();
            net.restart_b();
            deliver_without_c(&net);
            assert_eq!(net.pending(&net.b, &net.bc), 0, "nothing restored");
        }
        // C comes back: the channel works, from the first id taken back.
        net.b.peer_disconnected(&net.c.node_id());
        net.c.peer_disconnected(&net.b.node_id());
        connect(&net.b, &net.c);
        deliver_all(&net.nodes());
        let p = net.pay_to_c(20 + u16::from(restart), amount);
        net.c.claim_funds(p).unwrap();
        deliver_all(&net.nodes());
        assert!(
            has(&events(&net.a), |e| matches!(
                e,
                Event::PaymentSent { payment_preimage, .. } if *payment_preimage == p
            )),
            "restart={restart}"
        );
    }
}

/// BOLT 2: a node SHOULD fail to route an HTLC added after its
/// `shutdown`. A, which has not seen B's `shutdown` of A-B yet, adds a
/// forward to C and a payment to B: both are failed back
/// (`permanent_channel_failure`, as LDK), neither reaches C or the user, and
/// the close then completes. Unchecked, a peer that kept adding could hold
/// the close off for as long as it liked.
#[test]
fn htlcs_added_after_our_shutdown_are_failed_not_routed() {
    let net = Net::new();
    net.b.close_channel(&net.ab).unwrap();
    let held: Vec<Message> = (net.b.get_and_clear_pending_msg_events().into_iter())
        .map(|(_, m)| m)
        .collect();
    assert!(matches!(held[..], [Message::Shutdown(_)]), "{held:?}");
    let amount = 5_000_000;
    let to_c = preimage(0xd, 1).payment_hash();
    let route = net.route(amount);
    (net.a.pay_invoice(&route, to_c, amount)).unwrap();
    let (to_b, secret) = net.b.create_inbound_payment(Some(amount), 3600).unwrap();
    let route = route_to(&net.b, net.scid_ab);
    let fields = chanstore::RecipientOnionFields::secret_only(secret);
    (net.a.send_payment(&route, to_b, amount, fields)).unwrap();
    deliver_all(&net.nodes());
    let a_events = events(&net.a);
    for hash in [to_c, to_b] {
        assert!(
            a_events.contains(&failed_by(
                &net.b,
                hash,
                FailureCode::PermanentChannelFailure,
                vec![]
            )),
            "{a_events:?}"
        );
    }
    assert_eq!(net.pending(&net.b, &net.bc), 0, "nothing went to C");
    assert!(events(&net.c).is_empty());
    let b_events = events(&net.b);
    assert!(
        !has(&b_events, |e| matches!(e, Event::PaymentReceived { .. })),
        "{b_events:?}"
    );
    // B's shutdown arrives late: the close completes.
    deliver_one(&net.b, &net.a, held[0].clone());
    deliver_all(&net.nodes());
    for n in [&net.a, &net.b] {
        assert!(n.channel_details(&net.ab).is_none());
    }
}

// ---- 15: adds checked against the commitment they appear in ----

/// Point 15: a funder peer's add is priced with every HTLC the commitment
/// will carry, ours included.
#[test]
fn funder_peer_add_is_priced_with_our_htlcs() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    // A funds 1M sat and pushes B 500k sat.
    let (id, scid) = open_channel(&a, &b, 1_000_000, 500_000_000);
    // 20 HTLCs of B's committed.
    for i in 0..20 {
        b.pay_invoice(
            &route_to(&a, scid),
            preimage(15, i).payment_hash(),
            1_000_000,
        )
        .unwrap();
    }
    deliver_all(&[&a, &b]);
    let fee_21 = chanstore::transactions::commitment_fee_sat(253, 21, false) * 1000;
    let reserve = 10_000_000;
    let a_balance = a.channel_details(&id).unwrap().balance_msat;
    // An add by A leaving it less than the fee of the commitment with 21
    // HTLCs (crafted: A's own check is stricter) is refused.
    let amount = a_balance - reserve - fee_21 + 1;
    let (frozen, _) = freeze(&[&b]);
    assert!(matches!(
        b.handle_message(
            &a.node_id(),
            craft_add(
                &b,
                id,
                0,
                amount,
                preimage(15, 99).payment_hash(),
                HEIGHT + 100
            )
        ),
        Err(StoreError::ReserveViolated { .. })
    ));
    assert_unchanged(&[&b], &frozen);
}

/// Point 15: as funder we refuse the fundee's adds once their fee would
/// exceed what we can pay.
#[test]
fn fundee_adds_cannot_make_the_funder_unable_to_pay() {
    // The numbers: A funds 700k sat at 2,500 sat/kw and keeps 50k;
    // B offers HTLCs of 3,000 sat, each adding 430 sat of fee A must pay.
    let config = StoreConfig {
        feerate_per_kw: 2_500,
        max_dust_htlc_exposure_msat: u64::MAX,
        ..StoreConfig::default()
    };
    let (a, b) = (node_with(1, config.clone()), node_with(2, config));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 700_000, 650_000_000);
    let mut refused = None;
    for n in 0..200u64 {
        // Crafted: B's own check would stop earlier.
        let add = craft_add(
            &a,
            id,
            n,
            3_000_000,
            preimage(16, n as u16).payment_hash(),
            HEIGHT + 100,
        );
        let (frozen, _) = freeze(&[&a]);
        if let Err(e) = a.handle_message(&b.node_id(), add) {
            assert_unchanged(&[&a], &frozen);
            refused = Some((n, e));
            break;
        }
    }
    let (n, e) = refused.expect("an add that A cannot pay the fee of is refused");
    assert!(matches!(e, StoreError::ReserveViolated { .. }), "{e}");
    // A can pay for n HTLCs but not n + 1 (7,000 sat reserve).
    let fee = |htlcs| chanstore::transactions::commitment_fee_sat(2_500, htlcs, false) * 1000;
    assert!(50_000_000 >= 7_000_000 + fee(n as usize), "n = {n}");
    assert!(50_000_000 < 7_000_000 + fee(n as usize + 1), "n = {n}");
    a.check_commitments_fully_paid().unwrap();
}

/// Point 15: two honest stores racing (the funder sends its maximum while
/// the fundee sends 30 HTLCs) never sign an underfunded commitment.
#[test]
fn racing_adds_never_underfund_a_commitment() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 200_000, 100_000_000);
    for i in 0..30 {
        let _ = b.pay_invoice(
            &route_to(&a, scid),
            preimage(17, i).payment_hash(),
            2_000_000,
        );
    }
    let max = a.channel_details(&id).unwrap().outbound_capacity_msat;
    a.pay_invoice(&route_to(&b, scid), preimage(17, 99).payment_hash(), max)
        .unwrap();
    // Deliver everything; a refusal (the channel failing) is allowed, an
    // underfunded commitment is not.
    deliver_auditing(&a, &b);
}

// ---- 16: closing fees ----

/// Point 16: a closing fee below our relay floor is never signed: we
/// counter-offer, and the negotiation converges on a fee we accept.
#[test]
fn closing_fee_below_the_floor_is_refused_with_a_counter_offer() {
    // B (fundee) requires a higher floor than A's proposal.
    let (a, b) = (
        node(1),
        node_with(
            2,
            StoreConfig {
                min_closing_feerate_per_kw: 1_000,
                ..StoreConfig::default()
            },
        ),
    );
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 0);
    a.close_channel(&id).unwrap();
    let mut fees = Vec::new();
    for _ in 0..20 {
        let mut moved = false;
        for (from, to) in [(&a, &b), (&b, &a)] {
            for (_, m) in from.get_and_clear_pending_msg_events() {
                if let Message::ClosingSigned(cs) = &m {
                    fees.push(cs.fee_satoshis);
                }
                deliver_one(from, to, m);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    assert!(b.channel_details(&id).is_none(), "closed: {fees:?}");
    assert!(fees[1] > fees[0], "B counter-offered: {fees:?}");
    let agreed = match events(&b).into_iter().find_map(|e| match e {
        Event::ChannelClosed {
            reason: ClosureReason::Cooperative { closing_tx_fee_sat },
            ..
        } => Some(closing_tx_fee_sat),
        _ => None,
    }) {
        Some(f) => f,
        None => panic!("no cooperative close: {fees:?}"),
    };
    assert_eq!(agreed, fees[1]);
}

/// Point 16: as fundee, a proposal of fee 0 is answered with a counter-offer
/// and not signed (the channel stays until agreement).
#[test]
fn zero_closing_fee_is_never_signed() {
    let config = StoreConfig {
        verify_signatures: false,
        ..StoreConfig::default()
    };
    let (a, b) = (node(1), node_with(2, config));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 0);
    a.close_channel(&id).unwrap();
    let mut proposal = None;
    for _ in 0..10 {
        for (from, to) in [(&a, &b), (&b, &a)] {
            for (_, m) in from.get_and_clear_pending_msg_events() {
                match m {
                    Message::ClosingSigned(cs) if proposal.is_none() => proposal = Some(cs),
                    m => deliver_one(from, to, m),
                }
            }
        }
    }
    let mut zero: ClosingSigned = proposal.expect("A proposed a fee");
    zero.fee_satoshis = 0;
    // Outside the range the message itself names: refused, unchanged.
    let range = zero.fee_range.expect("A sends fee_range");
    let before = b.debug_state();
    assert!(matches!(
        b.handle_message(&a.node_id(), Message::ClosingSigned(zero.clone())),
        Err(chanstore::StoreError::ClosingFeeOutOfRange { fee_sat: 0, min_sat, max_sat, .. })
            if (min_sat, max_sat) == (range.min_fee_satoshis, range.max_fee_satoshis)
    ));
    assert_eq!(b.debug_state(), before);
    // Without fee_range (legacy negotiation): a counter-offer.
    zero.fee_range = None;
    b.handle_message(&a.node_id(), Message::ClosingSigned(zero))
        .unwrap();
    let replies = take_msgs(&b);
    let Some((_, Message::ClosingSigned(counter))) = replies.first() else {
        panic!("{replies:?}")
    };
    assert!(counter.fee_satoshis > 0);
    assert!(b.closed_channel(&id).is_none(), "not signed, not closed");
    assert!(b.channel_details(&id).is_some());
}

/// Point 9, found by the simulation: after a reconnection our `shutdown`
/// goes back before the updates we sent after it, never after them (the
/// peer would see a shutdown with our updates unsigned and refuse it).
#[test]
fn retransmitted_shutdown_precedes_updates_sent_after_it() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    for i in 0..2 {
        a.pay_invoice(
            &route_to(&b, scid),
            preimage(9, 10 + i).payment_hash(),
            1_000_000,
        )
        .unwrap();
    }
    deliver_all(&[&a, &b]);
    // B's shutdown is lost on the way.
    b.close_channel(&id).unwrap();
    assert!(take_msgs(&b)
        .iter()
        .any(|(_, m)| matches!(m, Message::Shutdown(_))));
    // B claims one (fulfill + commitment_signed, which reach A), then the
    // other while it waits for A's revoke_and_ack: that fulfill is not
    // signed yet when the connection drops.
    b.claim_funds(preimage(9, 10)).unwrap();
    for (_, m) in take_msgs(&b) {
        deliver_one(&b, &a, m);
    }
    b.claim_funds(preimage(9, 11)).unwrap();
    take_msgs(&b);
    take_msgs(&a);
    for (x, y) in [(&a, &b), (&b, &a)] {
        x.peer_disconnected(&y.node_id());
    }
    connect_all(&[&a, &b]);
    // deliver_all panics on a refusal.
    deliver_all(&[&a, &b]);
    for n in [&a, &b] {
        assert!(has(&events(n), |e| matches!(
            e,
            Event::ChannelClosed {
                reason: ClosureReason::Cooperative { .. },
                ..
            }
        )));
    }
}

/// `closed_channels()` and `closed_channel()` hand out the commitment to
/// broadcast: only once the record naming it is durable. Here A's HTLC and
/// `commitment_signed` (a new commitment of C's) and then A's `error` are
/// handled by C, and nothing else has committed them; the record is listed
/// at once, the user broadcasts what it names, and C crashes. Restarted,
/// C must name the same transaction (before the fix it had no record, a
/// live channel at the older commitment, and closing it named another
/// transaction than the one on chain: the outputs it describes would never
/// confirm).
#[test]
fn a_closed_channel_record_is_handed_out_only_once_durable() {
    for single in [false, true] {
        let a = node(1);
        let rec = Recording::new();
        let c = durable(3, StoreConfig::default(), &rec);
        connect_all(&[&a, &c]);
        let (id, scid) = open_channel(&a, &c, 1_000_000, 400_000_000);
        let _ = (events(&a), events(&c));
        c.flush().unwrap();
        let p = preimage(9, 9);
        let route = route_to(&c, scid);
        (a.pay_invoice(&route, p.payment_hash(), 2_000_000)).unwrap();
        for (_, msg) in take_msgs(&a) {
            deliver_one(&a, &c, msg); // update_add_htlc, commitment_signed
        }
        let error = chanstore::message::ErrorMessage {
            channel_id: id,
            data: b"bye".to_vec(),
        };
        c.handle_message(&a.node_id(), Message::Error(error))
            .unwrap();
        let told = if single {
            c.closed_channel(&id)
        } else {
            c.closed_channels().pop()
        };
        let told = (told.and_then(|r| r.transaction)).expect("a commitment to broadcast");
        let crash_at = rec.len();
        drop(c);
        let c = durable(
            3,
            StoreConfig::default(),
            &Recording::from_prefix(&rec, crash_at),
        );
        let again = c.closed_channel(&id).and_then(|r| r.transaction);
        assert_eq!(
            again.map(|t| t.compute_txid()),
            Some(told.compute_txid()),
            "closed_channel{} named a transaction the restarted store does not know",
            if single { "" } else { "s" }
        );
    }
}
