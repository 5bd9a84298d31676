//! Payments to us in several parts across a restart: a part that went on
//! chain still counts towards its payment, and a claim cut short by a crash
//! between its parts' batches still fulfills every part (the preimage is
//! out once the first one is).

mod common;

use std::sync::Arc;

use chanstore::persist::Key;
use chanstore::{
    ChannelId, ChannelStore, Event, MemoryPersister, Persister, RecipientOnionFields, StoreConfig,
    StoreError,
};
use common::recording::Recording;
use common::*;

fn c_on(p: Arc<dyn Persister>) -> ChannelStore {
    ChannelStore::with_persister(
        StoreConfig::default(),
        secret_of(&node(3).node_id()),
        HEIGHT,
        p,
    )
    .unwrap()
}

fn count(evs: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    evs.iter().filter(|e| f(e)).count()
}

/// A pays C 5,000,000 msat in two parts (3M and 2M) over two channels;
/// C announces it. Returns the channel of the second part.
fn pay_in_two_parts(a: &ChannelStore, c: &ChannelStore) -> (ChannelId, chanstore::PaymentPreimage) {
    connect_all(&[a, c]);
    let (_, scid1) = open_channel(a, c, 1_000_000, 0);
    let (ch2, scid2) = open_channel(a, c, 1_000_000, 0);
    let p = preimage(9, 1);
    let fields = RecipientOnionFields::secret_only(secret_for(&c.node_id(), p.payment_hash()));
    let hash = p.payment_hash();
    a.send_payment_part(
        &route_to(c, scid1),
        hash,
        3_000_000,
        5_000_000,
        fields.clone(),
    )
    .unwrap();
    a.send_payment_part(&route_to(c, scid2), hash, 2_000_000, 5_000_000, fields)
        .unwrap();
    deliver_all(&[a, c]);
    let evs = events(c);
    assert_eq!(
        count(&evs, |e| matches!(
            e,
            Event::PaymentReceived {
                amount_msat: 5_000_000,
                ..
            }
        )),
        1,
        "{evs:?}"
    );
    (ch2, p)
}

/// A heard of `parts` parts claimed and of none failed.
fn assert_paid(a: &ChannelStore, parts: usize, when: &str) {
    let evs = events(a);
    let sent = count(&evs, |e| matches!(e, Event::PaymentSent { .. }));
    let failed = count(&evs, |e| matches!(e, Event::PaymentFailed { .. }));
    assert_eq!((sent, failed), (parts, 0), "{when}: {evs:?}");
}

fn reconnect(a: &ChannelStore, c: &ChannelStore) {
    a.peer_disconnected(&c.node_id());
    connect_all(&[a, c]);
    deliver_all(&[a, c]);
}

#[test]
fn an_announced_payment_with_a_part_on_chain_is_claimable_after_restart() {
    let a = node(1);
    let disk = Arc::new(MemoryPersister::new());
    let c = c_on(disk.clone());
    let (ch2, p) = pay_in_two_parts(&a, &c);
    c.force_close_channel(&ch2).unwrap();
    deliver_all(&[&a, &c]);
    let _ = events(&a);
    let _ = events(&c);
    c.flush().unwrap();
    drop(c);
    // Live parts are restored before closed records: the live one alone
    // does not reach the total, the one on chain does.
    let c = c_on(disk);
    reconnect(&a, &c);
    c.claim_funds(p)
        .expect("the payment C announced is still C's to claim");
    deliver_all(&[&a, &c]);
    // The part on chain is claimed there; A hears of the live one.
    assert_paid(&a, 1, "after restart");
}

fn channel_of(key: &Key) -> Option<ChannelId> {
    match key {
        Key::Channel(id)
        | Key::Htlc(id, ..)
        | Key::Onion(id, ..)
        | Key::Signatures(id)
        | Key::Closed(id) => Some(*id),
        _ => None,
    }
}

/// Every state a crash during `claim_funds` may leave: each prefix of its
/// groups, and inside a group each prefix that ends where the records of
/// one channel (one section's batch) give way to another's.
fn crash_states(rec: &Recording, from: usize) -> Vec<Arc<MemoryPersister>> {
    let groups = rec.batches();
    let mut states = Vec::new();
    for (g, group) in groups.iter().enumerate().skip(from) {
        let mut cuts = vec![0];
        let mut last = None;
        for (j, (key, _)) in group.iter().enumerate() {
            if let Some(id) = channel_of(key) {
                if last.is_some_and(|l| l != id) {
                    cuts.push(j);
                }
                last = Some(id);
            }
        }
        for j in cuts {
            let disk = rec.prefix(g);
            disk.write_batch(&group[..j]).unwrap();
            states.push(disk);
        }
    }
    states.push(rec.prefix(groups.len()));
    states
}

/// `claim_funds` fulfills each part in its own section; another thread's
/// commit can make the first part's batch durable alone. After a crash at
/// any point of the claim, C restarts, the user (who never saw the call
/// return) claims again, the timers run out: both parts reach A fulfilled,
/// none failed.
#[test]
fn a_crash_anywhere_in_a_claim_still_fulfills_every_part() {
    let scenario = || {
        let a = node(1);
        let rec = Recording::new();
        let c = c_on(rec.clone());
        let (_, p) = pay_in_two_parts(&a, &c);
        let _ = events(&a);
        c.flush().unwrap();
        let from = rec.len();
        c.claim_funds(p).unwrap();
        (a, rec, from, p)
    };
    let (_, rec, from, _) = scenario();
    let n = crash_states(&rec, from).len();
    assert!(n >= 3, "the claim's writes give {n} crash states");
    for k in 0..n {
        let (a, rec, from, p) = scenario();
        let disk = crash_states(&rec, from).swap_remove(k);
        let c = c_on(disk);
        reconnect(&a, &c);
        c.process_pending_forwards();
        deliver_all(&[&a, &c]);
        match c.claim_funds(p) {
            Ok(()) | Err(StoreError::UnknownPayment { .. }) => {}
            Err(e) => panic!("state {k}: claim again: {e}"),
        }
        deliver_all(&[&a, &c]);
        for _ in 0..c.config().mpp_timeout_ticks {
            c.timer_tick_occurred();
        }
        c.process_pending_forwards();
        deliver_all(&[&a, &c]);
        assert_paid(&a, 2, &format!("crash state {k} of {n}"));
    }
}

/// C announced the payment `hash` of `amount_msat` (its preimage is not one
/// C derived: the tests' hashes are their own).
fn assert_received(c: &ChannelStore, hash: chanstore::PaymentHash, amount_msat: u64, when: &str) {
    let evs = events(c);
    assert!(
        evs.contains(&Event::PaymentReceived {
            payment_hash: hash,
            amount_msat,
            payment_preimage: None,
        }),
        "{when}: {evs:?}"
    );
}

/// C restarts: the same store, from what it wrote.
fn restart(a: &ChannelStore, c: ChannelStore, disk: &Arc<MemoryPersister>) -> ChannelStore {
    c.flush().unwrap();
    drop(c);
    let c = c_on(disk.clone());
    reconnect(a, &c);
    let _ = events(&c);
    c
}

/// An overpaid payment (BOLT 4 lets the parts' sum pass the total): 1M and
/// 0.5M of a 5M total on one channel, then 4M on another; C announces
/// 5.5M. A restart finds the parts in channel order, not in the order
/// they came (the set may be complete before its last part is found):
/// every part is in the set again, so the claim fulfills all three and
/// none is left to close a channel at its expiry.
#[test]
fn every_part_of_an_overpaid_payment_is_claimed_after_restart() {
    for restarted in [false, true] {
        let a = node(1);
        let disk = Arc::new(MemoryPersister::new());
        let c = c_on(disk.clone());
        connect_all(&[&a, &c]);
        let x = open_channel(&a, &c, 1_000_000, 0);
        let y = open_channel(&a, &c, 1_000_000, 0);
        // The parts that complete the set on the channel restored last.
        let (first, last) = if x.0 < y.0 { (x, y) } else { (y, x) };
        let p = preimage(9, 7);
        let hash = p.payment_hash();
        let fields = RecipientOnionFields::secret_only(secret_for(&c.node_id(), hash));
        let total = 5_000_000;
        for (scid, amount) in [(last.1, 1_000_000), (last.1, 500_000), (first.1, 4_000_000)] {
            a.send_payment_part(&route_to(&c, scid), hash, amount, total, fields.clone())
                .unwrap();
            deliver_all(&[&a, &c]);
        }
        assert_received(&c, hash, 5_500_000, "before any restart");
        let c = if restarted { restart(&a, c, &disk) } else { c };
        c.claim_funds(p)
            .expect("the announced payment is claimable");
        deliver_all(&[&a, &c]);
        assert_paid(&a, 3, &format!("restarted: {restarted}"));
        let pending: usize = c.list_channels().iter().map(|d| d.pending_htlcs).sum();
        assert_eq!(pending, 0, "restarted: {restarted}");
    }
}

/// The only part so far of a 5M payment (3M) waits on a channel that
/// force-closes, so it is on chain; C restarts; the other part (2M)
/// arrives: the set completes, as it does without the restart, because
/// the closed record kept the part's secret and total. (Before, the
/// restored set knew neither: it counted as complete, refused the new
/// part as another payment's, and the payer gave up.)
#[test]
fn a_payment_whose_only_part_is_on_chain_completes_after_restart() {
    for restarted in [false, true] {
        let a = node(1);
        let disk = Arc::new(MemoryPersister::new());
        let c = c_on(disk.clone());
        let p = preimage(9, 8);
        let hash = p.payment_hash();
        let (scid1, ch2, fields) = part_on_chain(&a, &c, &p);
        let c = if restarted { restart(&a, c, &disk) } else { c };
        // Still incomplete: nothing to claim yet.
        assert!(matches!(
            c.claim_funds(p),
            Err(StoreError::UnknownPayment { .. })
        ));
        a.send_payment_part(&route_to(&c, scid1), hash, 2_000_000, 5_000_000, fields)
            .unwrap();
        deliver_all(&[&a, &c]);
        assert_received(&c, hash, 5_000_000, &format!("restarted: {restarted}"));
        assert!(
            !events(&a)
                .iter()
                .any(|e| matches!(e, Event::PaymentFailed { .. })),
            "restarted: {restarted}"
        );
        c.claim_funds(p).unwrap();
        deliver_all(&[&a, &c]);
        // The part on chain is claimed there; A hears of the live one.
        assert_paid(&a, 1, &format!("restarted: {restarted}"));
        let closed = c.closed_channel(&ch2).unwrap();
        assert_eq!(closed.htlcs[0].payment_preimage, Some(p));
    }
}
