//! A close begun before the channel is ready (both first commitments
//! signed, funding unconfirmed or not deep yet): nothing the peer sends may
//! wedge it, the fundee's funding timeout still applies, and it survives a
//! restart.

mod common;

use chanstore::{Message, ShortChannelId, StoreConfig};
use common::*;

/// A funder that never sends (or whose peer never got) `channel_ready`
/// sends, once the fundee started closing before the channel was ready,
/// `update_fee` and `commitment_signed`. The fundee takes both
/// (ShuttingDown accepts them), revokes, and can then never sign the
/// funder's next commitment: it has no second per-commitment point (that
/// comes in `channel_ready`, which a reestablish with
/// next_commitment_number 2 never retransmits). The fee update stays
/// pending for ever, so the close never negotiates and the closing timeout
/// never counts (`waits_for_closing_fee` needs no pending update): the
/// channel is wedged until someone force-closes it.
#[test]
fn a_peers_updates_before_channel_ready_cannot_wedge_an_early_close() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let id = open_unconfirmed(&a, &b, 300_000_000, 0x55, 0);
    let scid = ShortChannelId::new(HEIGHT, 1, 0).unwrap();
    // A's channel_ready is lost (a hostile funder would just not send it).
    a.funding_confirmed(&id, scid).unwrap();
    a.best_block_updated(HEIGHT + 10);
    let dropped = take_msgs(&a);
    assert!(
        !dropped.is_empty()
            && dropped
                .iter()
                .all(|(_, m)| matches!(m, Message::ChannelReady(_))),
        "{dropped:?}"
    );
    b.funding_confirmed(&id, scid).unwrap();
    b.best_block_updated(HEIGHT + 10);
    assert!(deliver_auditing(&a, &b).is_empty());
    assert_eq!(a.channel_details(&id).unwrap().state, "normal");
    assert_eq!(
        b.channel_details(&id).unwrap().state,
        "awaiting_channel_ready"
    );
    // B closes; its shutdown is still on the way when A raises the fee.
    b.close_channel(&id).unwrap();
    let b_shutdown = take_msgs(&b);
    a.update_fee(&id, 1_000).unwrap();
    let mut refusals = Vec::new();
    for (_, m) in take_msgs(&a) {
        let name = m.name();
        if let Err(e) = b.handle_message(&a.node_id(), m) {
            refusals.push((name, e));
        }
    }
    for (_, m) in b_shutdown {
        a.handle_message(&b.node_id(), m).unwrap();
    }
    refusals.extend(deliver_auditing(&a, &b));
    for round in 0..6 {
        a.timer_tick_occurred();
        b.timer_tick_occurred();
        refusals.extend(deliver_auditing(&a, &b));
        if round % 2 == 1 {
            a.peer_disconnected(&b.node_id());
            b.peer_disconnected(&a.node_id());
            connect(&a, &b);
            refusals.extend(deliver_auditing(&a, &b));
        }
    }
    let state = b.channel_details(&id).map(|d| d.state);
    assert!(
        state.is_none(),
        "the early close is wedged: b is still {state:?} after 6 ticks and 3 \
         reconnections (refusals {refusals:?})"
    );
}

/// The user closes, cooperatively, a channel a peer opened whose funding
/// never confirms, and the funder is gone (or ignores the shutdown).
/// Before 243dc34 the funding timeout forgot such a channel (BOLT 2) and
/// freed its place under `max_inbound_unfunded_channels`; now the channel
/// is ShuttingDown, `passed_deadline` checks only AwaitingReady, and the
/// closing timeout never counts without the peer's shutdown: the channel,
/// and its unfunded slot, stay for ever.
#[test]
fn an_early_close_the_funder_ignores_still_times_out_its_funding() {
    let config = StoreConfig {
        max_inbound_unfunded_channels: 1,
        ..StoreConfig::default()
    };
    let (a, b, c) = (node(1), node_with(2, config), node(3));
    connect_all(&[&a, &b, &c]);
    let id = open_unconfirmed(&a, &b, 0, 0x55, 0);
    b.close_channel(&id).unwrap();
    let _ = take_msgs(&b); // A never answers the shutdown.
    let timeout = StoreConfig::default().funding_timeout_blocks;
    for h in [HEIGHT + timeout, HEIGHT + 2 * timeout] {
        b.best_block_updated(h);
        b.timer_tick_occurred();
        b.timer_tick_occurred();
        b.timer_tick_occurred();
    }
    let state = b.channel_details(&id).map(|d| d.state);
    // The slot is still taken: C cannot open.
    let c_open = c.create_channel(b.node_id(), 1_000_000, 0).unwrap();
    let mut c_refused = None;
    for (_, m) in c.get_and_clear_pending_msg_events() {
        if let Err(e) = b.handle_message(&c.node_id(), m) {
            c_refused = Some(e);
        }
    }
    let _ = c_open;
    assert!(
        state.is_none() && c_refused.is_none(),
        "funding timeout escaped: b still has the channel as {state:?} {} blocks \
         past its funding_created; C's open_channel: {c_refused:?}",
        2 * timeout
    );
}

/// An early close survives a restart of either side (write/read), with the
/// funding confirmed in between, and completes.
#[test]
fn an_early_close_survives_a_restart() {
    for (restarted, closer) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let (a, b) = (node(1), node(2));
        connect_all(&[&a, &b]);
        let id = open_unconfirmed(&a, &b, 100_000_000, 0x55, 0);
        [&a, &b][closer].close_channel(&id).unwrap();
        // The closer's shutdown arrives, the answer is lost.
        let (c, o) = if closer == 0 { (&a, &b) } else { (&b, &a) };
        for (_, m) in take_msgs(c) {
            o.handle_message(&c.node_id(), m).unwrap();
        }
        let _ = take_msgs(o);
        let (a, b) = if restarted == 0 {
            (reread(&a, 1), b)
        } else {
            (a, reread(&b, 2))
        };
        a.peer_disconnected(&b.node_id());
        b.peer_disconnected(&a.node_id());
        let scid = ShortChannelId::new(HEIGHT, 1, 0).unwrap();
        a.funding_confirmed(&id, scid).unwrap();
        b.funding_confirmed(&id, scid).unwrap();
        a.best_block_updated(HEIGHT + 10);
        b.best_block_updated(HEIGHT + 10);
        connect(&a, &b);
        let mut refusals = deliver_auditing(&a, &b);
        a.timer_tick_occurred();
        b.timer_tick_occurred();
        refusals.extend(deliver_auditing(&a, &b));
        let closed = [&a, &b].map(|n| n.closed_channel(&id).map(|r| r.reason));
        assert!(
            refusals.is_empty()
                && closed
                    .iter()
                    .all(|r| matches!(r, Some(chanstore::ClosureReason::Cooperative { .. }))),
            "restarted {restarted} closer {closer}: {refusals:?} {closed:?}"
        );
    }
}
