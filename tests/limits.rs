//! Per-peer resource limits (`StoreConfig::max_channels_per_peer`,
//! `max_pending_forwards_per_peer`): a peer that hits one is refused
//! precisely, and nothing else changes.

mod common;

use chanstore::message::OpenChannel;
use chanstore::{
    ClosureReason, Event, FailureCode, Message, PaymentPreimage, Route, RouteHop, StoreConfig,
    StoreError,
};
use common::*;

#[test]
fn channels_per_peer_are_capped_both_ways() {
    let config = StoreConfig {
        max_channels_per_peer: 2,
        ..StoreConfig::default()
    };
    let (a, b) = (node(1), node_with(2, config));
    connect_all(&[&a, &b]);
    open_channel(&a, &b, 100_000, 0);
    // The second is still allowed; a third open_channel from A is refused.
    let temp = a.create_channel(b.node_id(), 100_000, 0).unwrap();
    deliver_all(&[&a, &b]);
    assert!(events(&a).iter().any(|e| matches!(e, Event::FundingGenerationReady { temporary_channel_id, .. } if *temporary_channel_id == temp)));
    a.create_channel(b.node_id(), 100_000, 0).unwrap();
    let (to, open) = a.get_and_clear_pending_msg_events().pop().unwrap();
    assert_eq!(to, b.node_id());
    let Message::OpenChannel(open): Message = open else {
        panic!("expected open_channel")
    };
    let before = b.debug_state();
    assert_eq!(
        b.handle_message(&a.node_id(), Message::OpenChannel(OpenChannel { ..open })),
        Err(StoreError::PeerLimit {
            node_id: a.node_id(),
            resource: "channels",
            limit: 2
        })
    );
    assert_eq!(b.debug_state(), before);
    // B itself may not open a third channel to A either.
    assert_eq!(
        b.create_channel(a.node_id(), 100_000, 0),
        Err(StoreError::PeerLimit {
            node_id: a.node_id(),
            resource: "channels",
            limit: 2
        })
    );
}

#[test]
fn queued_forwards_per_peer_are_capped() {
    let config = StoreConfig {
        max_pending_forwards_per_peer: 2,
        ..StoreConfig::default()
    };
    let (a, b, c) = (node(1), node_with(2, config), node(3));
    connect_all(&[&a, &b, &c]);
    let (_, ab) = open_channel(&a, &b, 1_000_000, 0);
    let (_, bc) = open_channel(&b, &c, 1_000_000, 0);
    let amount = 1_000_000;
    let fee = b.config().forwarding_fee_msat(amount);
    let route = Route {
        hops: vec![
            RouteHop {
                node_id: b.node_id(),
                short_channel_id: ab,
                fee_msat: fee,
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
    let hashes: Vec<_> = (0..3u8)
        .map(|i| PaymentPreimage([i + 40; 32]).payment_hash())
        .collect();
    for h in &hashes {
        a.pay_invoice(&route, *h, amount).unwrap();
    }
    // Commit all three at B without letting B drain its queue.
    loop {
        let mut moved = false;
        for (from, to) in [(&a, &b), (&b, &a)] {
            for (_, m) in from.get_and_clear_pending_msg_events() {
                to.handle_message(&from.node_id(), m).unwrap();
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    // Two forwards wait for C; the third was failed back to A at once, in
    // the section that committed it (nothing queued for it).
    assert_eq!(b.pending_forwards(), 2, "two forwards are queued");
    deliver_all(&[&a, &b, &c]);
    let mut last_failure = None;
    let failed: Vec<_> = events(&a)
        .into_iter()
        .filter_map(|e| match &e {
            Event::PaymentFailed {
                payment_hash,
                failure,
                ..
            } => {
                let found = (*payment_hash, *failure);
                last_failure = Some(e);
                Some(found)
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].1, FailureCode::TemporaryChannelFailure);
    // BOLT 4: len and B's channel_update for the channel the onion named.
    let Some(Event::PaymentFailed { failure_data, .. }) = last_failure.take() else {
        unreachable!("taken above")
    };
    update_in_failure(&failure_data, 0, &b, bc);
    let received = events(&c)
        .iter()
        .filter(|e| matches!(e, Event::PaymentReceived { .. }))
        .count();
    assert_eq!(received, 2);
    // Once drained, the peer may queue forwards again.
    a.pay_invoice(&route, PaymentPreimage([99; 32]).payment_hash(), amount)
        .unwrap();
    deliver_all(&[&a, &b, &c]);
    assert!(events(&c)
        .iter()
        .any(|e| matches!(e, Event::PaymentReceived { .. })));
}

/// A peer's `funding_satoshis` is any u64: the reserve bound computed from
/// it must not overflow (a panic in a debug build, a wrong bound in a
/// release one), even where `max_funding_sat` allows all the bitcoin
/// there is; and no `max_funding_sat` above that is a valid config.
#[test]
fn a_huge_open_channel_is_judged_without_overflow() {
    let all_bitcoin = 21_000_000 * 100_000_000;
    let config = StoreConfig {
        max_funding_sat: all_bitcoin,
        ..StoreConfig::default()
    };
    assert!(StoreConfig {
        max_funding_sat: all_bitcoin + 1,
        ..StoreConfig::default()
    }
    .validate()
    .is_err());
    let (a, b) = (node(1), node_with(2, config));
    connect_all(&[&a, &b]);
    a.create_channel(b.node_id(), 100_000, 0).unwrap();
    let Some((_, Message::OpenChannel(mut open))) = a.get_and_clear_pending_msg_events().pop()
    else {
        panic!("no open_channel")
    };
    // 1M BTC, its reserve 1%: within every bound.
    open.funding_satoshis = 100_000_000_000_000;
    open.channel_reserve_satoshis = 1_000_000_000_000;
    b.handle_message(&a.node_id(), Message::OpenChannel(open.clone()))
        .unwrap();
    assert!(matches!(
        b.get_and_clear_pending_msg_events().pop(),
        Some((_, Message::AcceptChannel(_)))
    ));
    // Above the bound: refused precisely.
    open.temporary_channel_id = chanstore::ChannelId([0xee; 32]);
    open.funding_satoshis = u64::MAX;
    assert!(matches!(
        b.handle_message(&a.node_id(), Message::OpenChannel(open)),
        Err(StoreError::FundingTooLarge { .. })
    ));
}

/// An outpoint no transaction has: a `funding_created` naming it costs its
/// sender nothing on chain.
fn made_up_outpoint(i: u8) -> bitcoin::OutPoint {
    use bitcoin::hashes::Hash;
    bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array([i; 32]), 0)
}

/// `a` opens a channel to `b` and "funds" it with a made-up outpoint;
/// returns its id, or the error `b` answered the `open_channel` with.
/// (`all`: every node connected to either, for the deliveries.)
fn open_unconfirmed_among(
    all: &[&chanstore::ChannelStore],
    a: &chanstore::ChannelStore,
    b: &chanstore::ChannelStore,
    push_msat: u64,
    i: u8,
) -> Result<chanstore::ChannelId, StoreError> {
    deliver_all(all);
    let temp = a.create_channel(b.node_id(), 100_000, push_msat).unwrap();
    for (_, m) in a.get_and_clear_pending_msg_events() {
        b.handle_message(&a.node_id(), m)?;
    }
    deliver_all(all);
    events(a);
    let id = a
        .funding_transaction_generated(&temp, &b.node_id(), made_up_outpoint(i))
        .unwrap();
    deliver_all(all);
    events(b);
    Ok(id)
}

fn open_unconfirmed(
    a: &chanstore::ChannelStore,
    b: &chanstore::ChannelStore,
    push_msat: u64,
    i: u8,
) -> Result<chanstore::ChannelId, StoreError> {
    open_unconfirmed_among(&[a, b], a, b, push_msat, i)
}

/// A funded channel whose funding has not confirmed still counts under
/// the unfunded caps (per peer and store-wide), also after a restart,
/// until the funding confirms: otherwise `funding_created` for made-up
/// transactions opens channels without end.
#[test]
fn channels_funded_but_unconfirmed_count_under_the_unfunded_caps() {
    let config = StoreConfig {
        max_unfunded_channels_per_peer: 1,
        max_inbound_unfunded_channels: 2,
        ..StoreConfig::default()
    };
    let disk = std::sync::Arc::new(chanstore::MemoryPersister::new());
    let hub = |disk: &std::sync::Arc<chanstore::MemoryPersister>| {
        chanstore::ChannelStore::with_persister(
            config.clone(),
            bitcoin::secp256k1::SecretKey::from_slice(&[2; 32]).unwrap(),
            HEIGHT,
            disk.clone() as std::sync::Arc<dyn chanstore::Persister>,
        )
        .unwrap()
    };
    let (a, c, d) = (node(1), node(3), node(4));
    let mut b = hub(&disk);
    connect_all(&[&a, &b, &c, &d]);
    let first = open_unconfirmed_among(&[&a, &b, &c, &d], &a, &b, 0, 1).unwrap();
    let per_peer = |r: Result<_, StoreError>| {
        matches!(
            r,
            Err(StoreError::PeerLimit {
                resource: "unfunded channels",
                limit: 1,
                ..
            })
        )
    };
    assert!(per_peer(open_unconfirmed_among(
        &[&a, &b, &c, &d],
        &a,
        &b,
        0,
        2
    )));
    open_unconfirmed_among(&[&a, &b, &c, &d], &c, &b, 0, 3).unwrap();
    let global =
        |r: Result<_, StoreError>| matches!(r, Err(StoreError::GlobalLimit { limit: 2, .. }));
    assert!(global(open_unconfirmed_among(
        &[&a, &b, &c, &d],
        &d,
        &b,
        0,
        4
    )));
    // The same after a restart.
    b.flush().unwrap();
    drop(b);
    b = hub(&disk);
    for n in [&a, &c, &d] {
        n.peer_disconnected(&b.node_id());
    }
    connect_all(&[&a, &b, &c, &d]);
    assert!(per_peer(open_unconfirmed_among(
        &[&a, &b, &c, &d],
        &a,
        &b,
        0,
        5
    )));
    assert!(global(open_unconfirmed_among(
        &[&a, &b, &c, &d],
        &d,
        &b,
        0,
        6
    )));
    // A's funding confirms: its place goes to D.
    b.funding_confirmed(&first, chanstore::ShortChannelId::new(1, 1, 0).unwrap())
        .unwrap();
    open_unconfirmed_among(&[&a, &b, &c, &d], &d, &b, 0, 7).unwrap();
    assert_eq!(b.list_channels().len(), 3);
}

/// A channel closed before its funding confirmed keeps a record (its
/// commitment, should the funding confirm after all), which a peer could
/// make for free: such records count under the unfunded caps too, and go
/// `funding_timeout_blocks` after `funding_created`, as a live channel
/// whose funding never confirms goes (with no record).
#[test]
fn records_of_channels_closed_unconfirmed_are_capped_and_expire() {
    let config = StoreConfig {
        max_unfunded_channels_per_peer: 2,
        ..StoreConfig::default()
    };
    let (a, b) = (node(1), node_with(2, config));
    connect_all(&[&a, &b]);
    for i in 0..2 {
        // Pushing B something, so the record has an output to keep.
        let id = open_unconfirmed(&a, &b, 50_000_000, i + 1).unwrap();
        a.force_close_channel(&id).unwrap();
        deliver_all(&[&a, &b]);
        assert!(b.closed_channel(&id).is_some());
    }
    assert_eq!(b.resource_counts().closed_channels, 2);
    assert!(matches!(
        open_unconfirmed(&a, &b, 50_000_000, 3),
        Err(StoreError::PeerLimit {
            resource: "unfunded channels",
            ..
        })
    ));
    // A live one whose funding never confirms goes at the timeout with no
    // record; so do the records.
    let timeout = StoreConfig::default().funding_timeout_blocks;
    b.best_block_updated(HEIGHT + timeout - 1);
    assert_eq!(b.resource_counts().closed_channels, 2);
    b.best_block_updated(HEIGHT + timeout);
    assert_eq!(b.resource_counts().closed_channels, 0);
    let live = open_unconfirmed(&a, &b, 50_000_000, 4).unwrap();
    b.best_block_updated(HEIGHT + 2 * timeout);
    assert!(b.channel_details(&live).is_none());
    assert!(b.closed_channel(&live).is_none(), "forgotten, no record");
    assert!(events(&b).iter().any(|e| matches!(
        e,
        Event::ChannelClosed {
            reason: chanstore::ClosureReason::FundingTimedOut,
            ..
        }
    )));
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    assert_eq!(b.resource_counts().peers, 0, "nothing of A is kept");
}

/// `a` opens a channel to `b` that gets as far as `accept_channel` and is
/// never funded; returns its temporary id, or `b`'s refusal of the open.
fn open_unfunded(
    a: &chanstore::ChannelStore,
    b: &chanstore::ChannelStore,
) -> Result<chanstore::ChannelId, StoreError> {
    let temp = a.create_channel(b.node_id(), 100_000, 0).unwrap();
    for (_, m) in a.get_and_clear_pending_msg_events() {
        b.handle_message(&a.node_id(), m)?;
    }
    deliver_all(&[a, b]);
    Ok(temp)
}

/// A connected peer that opens channels and never funds them held its
/// places under the unfunded caps for good (per peer, and store-wide:
/// enough such peers shut every other peer out). Now a channel unfunded
/// for `unfunded_channel_age_limit_ticks` timer ticks is forgotten, with an
/// `error` to the peer, and its place is free again; the opener that never
/// funded its own is told (`UnfundedTimedOut`). Funded channels are not
/// touched, whatever the ticks.
#[test]
fn an_unfunded_channel_is_forgotten_after_its_age_limit() {
    let b_config = StoreConfig {
        max_unfunded_channels_per_peer: 1,
        unfunded_channel_age_limit_ticks: 3,
        ..StoreConfig::default()
    };
    let a_config = StoreConfig {
        unfunded_channel_age_limit_ticks: 5,
        ..StoreConfig::default()
    };
    let (a, b) = (node_with(1, a_config), node_with(2, b_config));
    connect_all(&[&a, &b]);
    let (funded, _) = open_channel(&a, &b, 100_000, 0);
    let stale = open_unfunded(&a, &b).unwrap();
    events(&a);
    let refused = |r: Result<_, StoreError>| {
        matches!(
            r,
            Err(StoreError::PeerLimit {
                resource: "unfunded channels",
                ..
            })
        )
    };
    for _ in 0..2 {
        b.timer_tick_occurred();
        deliver_all(&[&a, &b]);
        assert!(refused(open_unfunded(&a, &b)), "its place is still taken");
    }
    b.timer_tick_occurred();
    assert!(events(&b).is_empty(), "a peer's open costs no event");
    let to_a = b.get_and_clear_pending_msg_events();
    assert!(
        matches!(&to_a[..], [(to, Message::Error(e))] if *to == a.node_id() && e.channel_id == stale),
        "{to_a:?}"
    );
    for (_, m) in to_a {
        let _ = a.handle_message(&b.node_id(), m);
    }
    let fresh = open_unfunded(&a, &b).expect("the place is free");
    events(&a);

    // A's own channel, waiting for the funding transaction A never gives.
    for _ in 0..5 {
        a.timer_tick_occurred();
    }
    let closed = events(&a);
    assert!(
        closed.iter().any(|e| matches!(e, Event::ChannelClosed { channel_id, reason: ClosureReason::UnfundedTimedOut, .. } if *channel_id == fresh)),
        "{closed:?}"
    );
    // Its errors: for `fresh`, and for the two opens B refused, which B
    // does not know.
    for (_, m) in a.get_and_clear_pending_msg_events() {
        let _ = b.handle_message(&a.node_id(), m);
    }
    assert!(b.get_and_clear_pending_msg_events().is_empty());
    for _ in 0..10 {
        a.timer_tick_occurred();
        b.timer_tick_occurred();
    }
    deliver_all(&[&a, &b]);
    for n in [&a, &b] {
        assert!(n.channel_details(&funded).unwrap().is_usable);
    }
}
