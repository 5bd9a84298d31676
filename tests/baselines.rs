//! The three designs run the same channel logic: the same A -> B -> C
//! forwarding scenario gives the same balances, events and channel lists on
//! `Sharded`, `GlobalLock` and `RwLockPeers`; and each forwards correctly
//! when driven from several threads (the benchmarks' harness).
#![cfg(feature = "baselines")]

#[path = "../benches/common/net.rs"]
mod net;

use std::collections::BTreeMap;
use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{OutPoint, Txid};
use chanstore::baseline::{GlobalLock, RwLockPeers};
use chanstore::{
    ChannelDetails, ChannelId, ChannelStore, Container, Event, FailureCode, Message,
    PaymentPreimage, Route, RouteHop, Sharded, ShortChannelId, StoreConfig,
};

const HEIGHT: u32 = 800_000;

fn node<C: Container>(seed: u8) -> ChannelStore<C> {
    ChannelStore::<C>::with_container(
        StoreConfig::default(),
        SecretKey::from_slice(&[seed; 32]).unwrap(),
        HEIGHT,
    )
    .unwrap()
}

/// Delivers messages (through the wire format) and forwards until quiet.
fn deliver_all<C: Container>(nodes: &[&ChannelStore<C>]) {
    loop {
        let mut progress = false;
        for from in nodes {
            for (to, msg) in from.get_and_clear_pending_msg_events() {
                let dest = nodes.iter().find(|n| n.node_id() == to).unwrap();
                let wire = Message::decode(&msg.encode()).unwrap();
                dest.handle_message(&from.node_id(), wire)
                    .unwrap_or_else(|e| panic!("{} refused {}: {e}", C::NAME, msg.name()));
                progress = true;
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

/// Opens, funds and confirms a channel from `a` to `b` (funding txid made
/// from `n`, so the channel id is the same for every design).
fn open<C: Container>(
    a: &ChannelStore<C>,
    b: &ChannelStore<C>,
    n: u8,
) -> (ChannelId, ShortChannelId) {
    let temp = a.create_channel(b.node_id(), 1_000_000, 0).unwrap();
    deliver_all(&[a, b]);
    let outpoint = OutPoint::new(Txid::from_byte_array([n; 32]), 0);
    let id = a
        .funding_transaction_generated(&temp, &b.node_id(), outpoint)
        .unwrap();
    deliver_all(&[a, b]);
    let scid = ShortChannelId::new(700_000 + u32::from(n), 1, 0).unwrap();
    a.funding_confirmed(&id, scid).unwrap();
    b.funding_confirmed(&id, scid).unwrap();
    deliver_all(&[a, b]);
    (id, scid)
}

/// An event without what is random per run (temporary ids, funding keys).
fn normalize(e: &Event) -> String {
    match e {
        Event::FundingGenerationReady {
            counterparty_node_id,
            channel_value_sat,
            ..
        } => format!("funding_generation_ready {counterparty_node_id} {channel_value_sat}"),
        // Scripts and signatures come from each run's random channel keys:
        // compare what the transactions and outputs carry.
        Event::BroadcastTransaction {
            channel_id,
            transaction,
        } => {
            let values: Vec<u64> = transaction
                .output
                .iter()
                .map(|o| o.value.to_sat())
                .collect();
            format!("broadcast_transaction {channel_id} {values:?}")
        }
        Event::SpendableOutputs {
            channel_id,
            outputs,
        } => {
            let values: Vec<(u64, bool)> = outputs
                .iter()
                .map(|o| (o.value_sat, o.outpoint.is_some()))
                .collect();
            format!("spendable_outputs {channel_id} {values:?}")
        }
        other => format!("{other:?}"),
    }
}

/// What one run of the scenario left behind, per node.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Events, sorted (designs may queue independent events in another order).
    events: Vec<Vec<String>>,
    /// Every channel of every node, by id.
    channels: Vec<BTreeMap<ChannelId, ChannelDetails>>,
}

fn route(
    hub: PublicKey,
    first: ShortChannelId,
    dest: PublicKey,
    last: ShortChannelId,
    fee: u64,
) -> Route {
    Route {
        hops: vec![
            RouteHop {
                node_id: hub,
                short_channel_id: first,
                fee_msat: fee,
                cltv_expiry_delta: 72,
            },
            RouteHop {
                node_id: dest,
                short_channel_id: last,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            },
        ],
    }
}

/// A pays C three times through B in one batch; C claims two and fails one;
/// then A closes its channel with B cooperatively.
fn scenario<C: Container>() -> Outcome {
    let (a, b, c) = (node::<C>(1), node::<C>(2), node::<C>(3));
    for (x, y) in [(&a, &b), (&b, &c), (&a, &c)] {
        x.peer_connected(y.node_id());
        y.peer_connected(x.node_id());
    }
    // The inits cross.
    deliver_all(&[&a, &b, &c]);
    let (ab, ab_scid) = open(&a, &b, 1);
    let (bc, bc_scid) = open(&b, &c, 2);
    for n in [&a, &b, &c] {
        n.get_and_clear_pending_events();
    }

    let fee = |amount| b.config().forwarding_fee_msat(amount);
    let amounts = [10_000_000u64, 20_000_000, 30_000_000];
    let preimages: Vec<PaymentPreimage> = (0..3u8).map(|i| PaymentPreimage([10 + i; 32])).collect();
    for (p, amount) in preimages.iter().zip(amounts) {
        let r = route(b.node_id(), ab_scid, c.node_id(), bc_scid, fee(amount));
        // C is the recipient: its invoice's secret.
        let secret = c
            .create_inbound_payment_for_hash(p.payment_hash(), None, 3600)
            .unwrap();
        a.send_payment(
            &r,
            p.payment_hash(),
            amount,
            chanstore::RecipientOnionFields::secret_only(secret),
        )
        .unwrap();
    }
    deliver_all(&[&a, &b, &c]);
    c.claim_funds(preimages[0]).unwrap();
    c.fail_htlc_backwards(&preimages[1].payment_hash()).unwrap();
    c.claim_funds(preimages[2]).unwrap();
    deliver_all(&[&a, &b, &c]);

    // Mid-way checks every design must pass on its own.
    let sent: u64 = amounts[0] + amounts[2];
    let fees = fee(amounts[0]) + fee(amounts[2]);
    assert_eq!(
        a.channel_details(&ab).unwrap().balance_msat,
        1_000_000_000 - sent - fees
    );
    assert_eq!(b.channel_details(&ab).unwrap().balance_msat, sent + fees);
    assert_eq!(
        b.channel_details(&bc).unwrap().balance_msat,
        1_000_000_000 - sent
    );
    assert_eq!(c.channel_details(&bc).unwrap().balance_msat, sent);
    for n in [&a, &b, &c] {
        n.check_value_conserved().unwrap();
        n.check_indexes().unwrap();
        assert_eq!(n.pending_forwards(), 0, "{}", C::NAME);
        assert!(n.list_channels().iter().all(|d| d.pending_htlcs == 0));
    }
    assert_eq!(b.counterparty_of(&ab), Some(a.node_id()));
    assert_eq!(b.counterparty_of(&bc), Some(c.node_id()));

    a.close_channel(&ab).unwrap();
    deliver_all(&[&a, &b, &c]);

    let events: Vec<Vec<String>> = [&a, &b, &c]
        .iter()
        .map(|n| {
            let mut e: Vec<String> = n
                .get_and_clear_pending_events()
                .iter()
                .map(normalize)
                .collect();
            e.sort();
            e
        })
        .collect();
    let channels = [&a, &b, &c]
        .iter()
        .map(|n| {
            n.list_channels()
                .into_iter()
                .map(|mut d| {
                    // The peer's channel_update carries the wall clock's
                    // seconds: two runs a second apart differ there, and
                    // in nothing a design decides.
                    if let Some(policy) = &mut d.counterparty_forwarding_policy {
                        policy.timestamp = 0;
                    }
                    (d.channel_id, d)
                })
                .collect()
        })
        .collect();
    for n in [&a, &b, &c] {
        n.check_indexes().unwrap();
    }
    assert_eq!(b.counterparty_of(&ab), None, "{}: closed", C::NAME);
    Outcome { events, channels }
}

#[test]
fn forward_scenario_is_identical_on_every_design() {
    let sharded = scenario::<Sharded>();
    // Spot checks that the reference itself is right.
    let a_events = &sharded.events[0];
    assert_eq!(
        a_events
            .iter()
            .filter(|e| e.starts_with("PaymentSent"))
            .count(),
        2
    );
    let failed: Vec<_> = a_events
        .iter()
        .filter(|e| e.starts_with("PaymentFailed"))
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains(&format!(
        "{:?}",
        FailureCode::IncorrectOrUnknownPaymentDetails
    )));
    assert_eq!(
        sharded.events[1]
            .iter()
            .filter(|e| e.starts_with("HtlcForwarded"))
            .count(),
        2
    );
    assert_eq!(
        sharded.events[2]
            .iter()
            .filter(|e| e.starts_with("PaymentReceived"))
            .count(),
        3
    );
    assert!(a_events
        .iter()
        .any(|e| e.starts_with("ChannelClosed") && e.contains("Cooperative")));
    // A's only channel closed; B keeps B-C; C keeps B-C.
    assert_eq!(
        sharded.channels.iter().map(|c| c.len()).collect::<Vec<_>>(),
        [0, 1, 1]
    );

    assert_eq!(
        scenario::<GlobalLock>(),
        sharded,
        "global_lock differs from sharded"
    );
    assert_eq!(
        scenario::<RwLockPeers>(),
        sharded,
        "rwlock_peers differs from sharded"
    );
}

/// The benchmarks' harness on each design: a hub with 6 peers, 3 worker
/// threads each owning 2 peers, 60 payments; every payment ends exactly
/// once, value is conserved, indexes agree, nothing is left queued.
fn concurrent<C: Container>() {
    let config = net::NetConfig {
        peers: 6,
        channels_per_peer: 2,
        setup_threads: 2,
        ..Default::default()
    };
    let net = Arc::new(net::Net::<C>::build(&config, &|_| {}));
    assert_eq!(net.hub.list_channels().len(), 12);
    let pool = net::Pool::new(net.clone(), 3, Some(std::time::Duration::ZERO));
    let spec = net::RunSpec {
        payments: Some(60),
        in_flight: 12,
        ..Default::default()
    };
    for _ in 0..2 {
        let result = pool.run(&spec, |_| false);
        assert_eq!(result.sent(), 60, "{}", C::NAME);
        assert_eq!(result.succeeded(), 60, "{}", C::NAME);
        assert_eq!(result.failed(), 0);
        assert_eq!(result.unexpected_ends(), 0);
        assert!(result.not_ended_once().is_empty());
        assert_eq!(
            result.forwarded,
            60,
            "{}: one HtlcForwarded per payment",
            C::NAME
        );
        assert!(result.reads > 0, "the reader ran");
        let hub = &net.hub;
        assert_eq!(hub.pending_forwards(), 0);
        hub.check_value_conserved().unwrap();
        hub.check_indexes().unwrap();
        assert!(hub
            .list_channels()
            .iter()
            .all(|d| d.pending_htlcs == 0 && d.is_usable));
        assert!(
            hub.get_and_clear_pending_msg_events().is_empty(),
            "nothing left to send"
        );
        for p in &net.peers {
            p.store.check_value_conserved().unwrap();
            assert!(p.store.get_and_clear_pending_msg_events().is_empty());
        }
        assert!(net.preimages.is_empty(), "every payment was claimed");
    }
    // The hub earned a fee on every payment: its balances went up in total.
    let hub_total: u64 = net.hub.list_channels().iter().map(|d| d.balance_msat).sum();
    let start_total = 12 * config.funding_sat * 500;
    assert!(
        hub_total > start_total,
        "{}: {hub_total} <= {start_total}",
        C::NAME
    );
}

#[test]
fn harness_forwards_concurrently_on_sharded() {
    concurrent::<Sharded>();
}

#[test]
fn harness_forwards_concurrently_on_global_lock() {
    concurrent::<GlobalLock>();
}

#[test]
fn harness_forwards_concurrently_on_rwlock_peers() {
    concurrent::<RwLockPeers>();
}
