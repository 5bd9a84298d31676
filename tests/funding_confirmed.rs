//! The chain as the store sees it: `funding_confirmed` for a live channel
//! and for the record of one that closed before its funding confirmed, a
//! scid given twice (one after the other, and racing), `channel_ready`
//! across repeated heights and reorgs, blocks racing payments. From an
//! adversarial review, which found the defects the second and fourth tests
//! show.

mod common;

use std::sync::{mpsc, Arc};

use chanstore::{ChannelStore, Event, Message, ShortChannelId, StoreConfig, StoreError};
use common::*;

/// A fundee force-closes a channel before the user reported its funding
/// confirmed; the funder pushed it 300,000 sat. The funding then confirms.
/// The record holds the fundee's output, but `funding_confirmed` answered
/// `UnknownChannel` (it looked at live channels only), and the funding
/// timeout deleted the record with the output unswept. Now the record
/// takes the confirmation and stays.
#[test]
fn record_of_a_confirmed_funding_is_not_forgotten_by_the_funding_timeout() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let id = open_unconfirmed(&a, &b, 300_000_000, 0x31, 0);
    b.force_close_channel(&id).unwrap();
    let _ = (events(&b), take_msgs(&b));
    let record = b.closed_channel(&id).expect("a record");
    assert!(!record.outputs.is_empty(), "{record:?}");
    // The funding confirms 6 blocks after funding_created.
    let scid = ShortChannelId::new(HEIGHT + 6, 1, 0).unwrap();
    b.best_block_updated(HEIGHT + 6);
    let confirmed = b.funding_confirmed(&id, scid);
    let timeout = StoreConfig::default().funding_timeout_blocks;
    for h in [HEIGHT + timeout, HEIGHT + timeout + 1, HEIGHT + timeout + 2] {
        b.best_block_updated(h);
    }
    b.check_indexes().unwrap();
    let kept = b.closed_channel(&id);
    assert!(
        kept.as_ref().is_some_and(|r| !r.outputs.is_empty()),
        "the record of a channel whose funding confirmed (funding_confirmed \
         answered {confirmed:?}) was forgotten {timeout} blocks on, with \
         300,000 sat of ours unswept: {kept:?}"
    );
}

/// The confirmation of a record is durable: after a restart the record
/// survives the funding timeout, and it no longer holds an unfunded slot.
#[test]
fn a_confirmed_record_survives_a_restart_and_frees_its_slot() {
    use common::recording::Recording;
    let config = StoreConfig {
        max_inbound_unfunded_channels: 1,
        ..StoreConfig::default()
    };
    let pb = Recording::new();
    let durable = |p: &Arc<Recording>| node_on(2, config.clone(), p.clone());
    let (a, mut b, c) = (node(1), durable(&pb), node(3));
    connect_all(&[&a, &b, &c]);
    let id = open_unconfirmed(&a, &b, 300_000_000, 0x81, 0);
    b.force_close_channel(&id).unwrap();
    let _ = (events(&b), take_msgs(&b));
    let scid = ShortChannelId::new(HEIGHT + 2, 1, 0).unwrap();
    // Wrong output index: refused, the record unchanged.
    let bad = ShortChannelId::new(HEIGHT + 2, 1, 3).unwrap();
    assert!(matches!(
        b.funding_confirmed(&id, bad),
        Err(StoreError::ShortChannelIdMismatch { .. })
    ));
    b.funding_confirmed(&id, scid).unwrap();
    drop(b);
    b = durable(&pb);
    connect_all(&[&b, &c]);
    let timeout = config.funding_timeout_blocks;
    b.best_block_updated(HEIGHT + timeout + 1);
    b.best_block_updated(HEIGHT + timeout + 2);
    b.check_indexes().unwrap();
    assert!(b.closed_channel(&id).is_some_and(|r| !r.outputs.is_empty()));
    // A second confirmation of the record is refused.
    assert!(b.funding_confirmed(&id, scid).is_err());
    // The slot is free: C can open.
    let _ = c.create_channel(b.node_id(), 1_000_000, 0).unwrap();
    for (_, m) in c.get_and_clear_pending_msg_events() {
        b.handle_message(&c.node_id(), m).unwrap();
    }
}

/// The same scid for two channels of two peers, sequentially: the second
/// is refused and changes nothing.
#[test]
fn an_scid_of_another_peers_channel_is_refused() {
    let (a, h, c) = (node(1), node(2), node(3));
    connect_all(&[&a, &h, &c]);
    let x = open_unconfirmed(&a, &h, 0, 0x41, 0);
    let y = open_unconfirmed(&c, &h, 0, 0x42, 0);
    let scid = ShortChannelId::new(HEIGHT, 7, 0).unwrap();
    h.funding_confirmed(&x, scid).unwrap();
    let e = h.funding_confirmed(&y, scid).unwrap_err();
    assert!(
        matches!(e, StoreError::ShortChannelIdMismatch { .. }),
        "{e:?}"
    );
    assert_eq!(h.channel_details(&y).unwrap().short_channel_id, None);
    h.check_indexes().unwrap();
    // Wrong output index: refused, nothing changes.
    let s2 = ShortChannelId::new(HEIGHT, 8, 1).unwrap();
    let e = h.funding_confirmed(&y, s2).unwrap_err();
    assert!(
        matches!(e, StoreError::ShortChannelIdMismatch { .. }),
        "{e:?}"
    );
    assert_eq!(h.channel_details(&y).unwrap().short_channel_id, None);
    // Twice for one channel, same or different scid: refused.
    assert!(h.funding_confirmed(&x, scid).is_err());
    let s3 = ShortChannelId::new(HEIGHT, 9, 0).unwrap();
    assert!(h.funding_confirmed(&x, s3).is_err());
    assert_eq!(h.channel_details(&x).unwrap().short_channel_id, Some(scid));
    h.check_indexes().unwrap();
}

/// Two confirmations with one scid, for channels of two peers, race: one
/// stalls (test hook) after its check and before its index insert. Both
/// succeeded, and the scid index ended up naming one channel while both
/// channels had that scid; closing the one it named dropped the scid from
/// the index while the other still had it. Now exactly one succeeds.
#[cfg(feature = "test-hooks")]
#[test]
fn racing_confirmations_with_one_scid_pass_once() {
    let (a, h, c) = (node(1), Arc::new(node(2)), node(3));
    connect_all(&[&a, &h, &c]);
    let x = open_unconfirmed(&a, &h, 0, 0x51, 0);
    let y = open_unconfirmed(&c, &h, 0, 0x52, 0);
    let scid = ShortChannelId::new(HEIGHT, 11, 0).unwrap();
    let (stalled_tx, stalled_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let h1 = h.clone();
    let t = std::thread::spawn(move || {
        let mut once = Some((stalled_tx, go_rx));
        chanstore::test_hooks::set_before_append(Some(Box::new(move || {
            if let Some((stalled, go)) = once.take() {
                stalled.send(()).unwrap();
                let _ = go.recv_timeout(std::time::Duration::from_secs(10));
            }
        })));
        let r = h1.funding_confirmed(&x, scid);
        chanstore::test_hooks::set_before_append(None);
        r
    });
    stalled_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    // The second runs on its own thread: it may wait for the first.
    let h2 = h.clone();
    let t2 = std::thread::spawn(move || h2.funding_confirmed(&y, scid));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = go_tx.send(());
    let first = t.join().unwrap();
    let second = t2.join().unwrap();
    let ok = [&first, &second].iter().filter(|r| r.is_ok()).count();
    // The one that went last owns the scid in the index; close it: the
    // other still has the scid, and the index no longer names it.
    if ok == 2 {
        h.force_close_channel(&x).unwrap();
    }
    let idx = h.check_indexes();
    assert!(
        ok == 1 && idx.is_ok(),
        "two channels confirmed with one scid: {first:?} / {second:?}; \
         x has {:?}, y has {:?}; check_indexes {idx:?}",
        h.channel_details(&x).and_then(|d| d.short_channel_id),
        h.channel_details(&y).and_then(|d| d.short_channel_id),
    );
}

/// channel_ready waits for minimum depth; the same height twice, a reorg
/// below the confirmation, then forward: one channel_ready only.
#[test]
fn channel_ready_once_across_reorgs() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let id = open_unconfirmed(&a, &b, 0, 0x71, 0);
    let scid = ShortChannelId::new(HEIGHT + 1, 1, 0).unwrap();
    // Confirmed in a block the store has not seen yet.
    b.funding_confirmed(&id, scid).unwrap();
    let readies = |n: &ChannelStore| {
        take_msgs(n)
            .into_iter()
            .filter(|(_, m)| matches!(m, Message::ChannelReady(_)))
            .count()
    };
    let depth = StoreConfig::default().minimum_depth;
    let mut count = readies(&b);
    assert_eq!(count, 0);
    for h in [HEIGHT, HEIGHT + 1, HEIGHT + depth - 1, HEIGHT + depth - 1] {
        b.best_block_updated(h);
        count += readies(&b);
    }
    assert_eq!(count, 0, "channel_ready before minimum depth");
    for h in [
        HEIGHT + depth,
        HEIGHT + depth,
        0,
        HEIGHT,
        HEIGHT + depth + 5,
        u32::MAX,
    ] {
        b.best_block_updated(h);
        count += readies(&b);
    }
    assert_eq!(count, 1);
    b.check_indexes().unwrap();
}

/// Blocks pass on one thread (reorgs included) while payments go A -> B
/// -> C and C claims: every HTLC resolved once, value conserved, no hang.
#[test]
fn blocks_racing_payments_lose_nothing() {
    let (a, b, c) = (Arc::new(node(1)), Arc::new(node(2)), Arc::new(node(3)));
    connect_all(&[&a, &b, &c]);
    let (_ab, s_ab) = open_channel(&a, &b, 5_000_000, 0);
    let (_bc, s_bc) = open_channel(&b, &c, 5_000_000, 0);
    let _ = (events(&a), events(&b), events(&c));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let blocks = {
        let (a, b, c, stop) = (a.clone(), b.clone(), c.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut h = HEIGHT;
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                h = if i.is_multiple_of(7) { h - 3 } else { h + 1 };
                for n in [&a, &b, &c] {
                    n.best_block_updated(h.min(HEIGHT + 30));
                }
            }
        })
    };
    let watchdog = std::thread::spawn(move || {
        if done_rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .is_err()
        {
            eprintln!("watchdog: hang");
            std::process::abort();
        }
    });
    let n = 40u16;
    let mut sent = Vec::new();
    let mut c_log = Vec::new();
    for i in 0..n {
        let p = preimage(0xb1, i);
        let route = route_through(&b, s_ab, &c, s_bc, 10_000);
        sent.push(p);
        a.send_payment(
            &route,
            p.payment_hash(),
            10_000,
            invoice(&route, p.payment_hash()),
        )
        .unwrap();
        deliver_all(&[&a, &b, &c]);
        claim_received(&c, &sent, &mut c_log);
        deliver_all(&[&a, &b, &c]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    blocks.join().unwrap();
    for _ in 0..3 {
        deliver_all(&[&a, &b, &c]);
        claim_received(&c, &sent, &mut c_log);
    }
    deliver_all(&[&a, &b, &c]);
    let b_evs = events(&b);
    let _ = done_tx.send(());
    watchdog.join().unwrap();
    let evs = events(&a);
    let ok = evs
        .iter()
        .filter(|e| matches!(e, Event::PaymentSent { .. }))
        .count();
    let failed = evs
        .iter()
        .filter(|e| matches!(e, Event::PaymentFailed { .. }))
        .count();
    for s in [&a, &b, &c] {
        s.check_value_conserved().unwrap();
        s.check_indexes().unwrap();
        assert!(s.closed_channels().is_empty());
        for d in s.list_channels() {
            assert_eq!(
                d.pending_htlcs, 0,
                "{d:?}\nC: {c_log:?}\nB: {b_evs:?}\nA: {evs:?}"
            );
        }
    }
    assert_eq!(
        ok + failed,
        usize::from(n),
        "sent {ok}, failed {failed}: {evs:?}"
    );
}

fn claim_received(c: &ChannelStore, sent: &[chanstore::PaymentPreimage], log: &mut Vec<String>) {
    for e in events(c) {
        if let Event::PaymentReceived { payment_hash, .. } = &e {
            if let Some(p) = sent.iter().find(|p| p.payment_hash() == *payment_hash) {
                let r = c.claim_funds(*p);
                log.push(format!("claim {r:?}"));
            }
        }
        log.push(format!("{e:?}"));
    }
}
