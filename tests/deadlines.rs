//! HTLC deadlines and block height, tried at their boundaries: A - B - C,
//! the hub B on a `FilePersister` in a temporary directory and restarted
//! from it between blocks; heights that jump, repeat, go back or overflow.

mod common;

use std::path::PathBuf;

use bitcoin::secp256k1::SecretKey;
use chanstore::{
    ChannelId, ChannelStore, ClosureReason, Event, OnChainAction, PaymentPreimage, Route,
    ShortChannelId, StoreConfig,
};
use common::*;

fn secret(seed: u8) -> SecretKey {
    SecretKey::from_slice(&[seed; 32]).unwrap()
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "review-deadline-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Net {
    a: ChannelStore,
    b: ChannelStore,
    c: ChannelStore,
    dir: PathBuf,
    config: StoreConfig,
    ab: ChannelId,
    scid_ab: ShortChannelId,
    bc: ChannelId,
    scid_bc: ShortChannelId,
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Net {
    fn new(tag: &str) -> Net {
        let config = StoreConfig::default();
        let dir = tempdir(tag);
        let a = node_with(1, config.clone());
        let b = ChannelStore::open(&dir, config.clone(), secret(2), HEIGHT).unwrap();
        let c = node_with(3, config.clone());
        connect_all(&[&a, &b, &c]);
        let (ab, scid_ab) = open_channel(&a, &b, 1_000_000, 300_000_000);
        let (bc, scid_bc) = open_channel(&b, &c, 1_000_000, 0);
        Net {
            a,
            b,
            c,
            dir,
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

    fn pay_to_c(&self, n: u16, amount_msat: u64) -> PaymentPreimage {
        let p = preimage(0xd, n);
        let route = self.route(amount_msat);
        self.a
            .pay_invoice(&route, p.payment_hash(), amount_msat)
            .unwrap();
        deliver_all(&self.nodes());
        assert!(events(&self.c).iter().any(|e| matches!(e,
            Event::PaymentReceived { payment_hash, .. } if *payment_hash == p.payment_hash())));
        p
    }

    /// B crashes and reopens from its directory at `height`; nobody
    /// reconnects (the peers are stalled or away).
    fn restart_b(&mut self, height: u32) {
        self.b.flush().unwrap();
        for n in [&self.a, &self.c] {
            n.peer_disconnected(&self.b.node_id());
        }
        // Drop the old store (and its file lock) first.
        let placeholder = node_with(99, self.config.clone());
        drop(std::mem::replace(&mut self.b, placeholder));
        self.b = ChannelStore::open(&self.dir, self.config.clone(), secret(2), height).unwrap();
    }

    fn pending(&self, n: &ChannelStore, id: &ChannelId) -> usize {
        n.channel_details(id)
            .map(|d| d.pending_htlcs)
            .unwrap_or(usize::MAX)
    }

    fn audit(&self) {
        for n in self.nodes() {
            n.check_value_conserved().unwrap();
            n.check_indexes().unwrap();
        }
    }
}

/// Delivers messages only between `x` and `y` (others' messages dropped),
/// with forwards processed, until quiet.
fn deliver_pair(x: &ChannelStore, y: &ChannelStore) {
    deliver_pair_draining(x, y, true);
}

/// [`deliver_pair`], with the users' `process_pending_forwards` calls
/// only if `drain`.
fn deliver_pair_draining(x: &ChannelStore, y: &ChannelStore, drain: bool) {
    loop {
        let mut moved = false;
        for (from, to) in [(x, y), (y, x)] {
            for (dest, m) in from.get_and_clear_pending_msg_events() {
                if dest == to.node_id() {
                    deliver_one(from, to, m);
                    moved = true;
                }
            }
            moved |= drain && from.process_pending_forwards() > 0;
        }
        if !moved {
            return;
        }
    }
}

fn closed_for(evs: &[Event], id: &ChannelId) -> Option<ClosureReason> {
    evs.iter().find_map(|e| match e {
        Event::ChannelClosed {
            channel_id, reason, ..
        } if channel_id == id => Some(reason.clone()),
        _ => None,
    })
}

// ---- Rule 1 and 2: C stalls while connected (HTLC irrevocably committed) ----

/// C holds the HTLC forever (never claims or fails, gets no blocks). B must
/// close B-C exactly at cltv + grace, not one block earlier, across a
/// restart between the block updates, and must keep A's HTLC pending.
#[test]
fn stalled_downstream_times_out_exactly_at_boundary_across_restart() {
    for restart in [false, true] {
        let mut net = Net::new("stall");
        net.pay_to_c(1, 5_000_000);
        let cltv = HEIGHT + u32::from(net.config.min_final_cltv_expiry_delta);
        let grace = net.config.htlc_timeout_grace_blocks;
        for h in [HEIGHT + 1, cltv - 1, cltv, cltv + grace - 1] {
            net.b.best_block_updated(h);
            net.b.best_block_updated(h); // repeated: idempotent
            assert!(
                net.b.closed_channel(&net.bc).is_none(),
                "closed early at {h}"
            );
            assert!(net.b.channel_details(&net.bc).is_some());
        }
        if restart {
            net.restart_b(cltv + grace - 1);
            assert!(net.b.closed_channel(&net.bc).is_none(), "closed by restart");
        }
        events(&net.b);
        net.b.best_block_updated(cltv + grace);
        let evs = events(&net.b);
        assert!(
            matches!(
                closed_for(&evs, &net.bc),
                Some(ClosureReason::HtlcTimedOut { .. })
            ),
            "restart={restart}: {evs:?}"
        );
        assert!(closed_for(&evs, &net.ab).is_none(), "A-B must stay open");
        // A's HTLC is not failed back before the on-chain outcome.
        if restart {
            connect(&net.a, &net.b);
        }
        deliver_pair(&net.a, &net.b);
        assert_eq!(net.pending(&net.a, &net.ab), 1, "restart={restart}");
        assert_eq!(net.pending(&net.b, &net.ab), 1, "restart={restart}");
        assert!(!events(&net.a)
            .iter()
            .any(|e| matches!(e, Event::PaymentFailed { .. })));
        net.audit();
        // Many more blocks: still nothing failed back to A, B does not close A-B
        // (it has no preimage to claim).
        net.b.best_block_updated(cltv + grace + 60);
        deliver_pair(&net.a, &net.b);
        assert_eq!(net.pending(&net.a, &net.ab), 1);
        assert!(
            net.b.channel_details(&net.ab).is_some(),
            "B closed A-B without reason"
        );
        net.audit();
    }
}

/// The same, but the height jumps from the start far past the deadline in
/// one update, and through a restart opened at that height.
#[test]
fn stalled_downstream_height_jump_closes_once() {
    for restart in [false, true] {
        let mut net = Net::new("jump");
        net.pay_to_c(2, 5_000_000);
        let cltv = HEIGHT + u32::from(net.config.min_final_cltv_expiry_delta);
        let far = cltv + 1000;
        if restart {
            net.restart_b(far);
        } else {
            net.b.best_block_updated(far);
        }
        let evs = events(&net.b);
        let n_closed = evs
            .iter()
            .filter(|e| matches!(e, Event::ChannelClosed { .. }))
            .count();
        assert!(
            matches!(
                closed_for(&evs, &net.bc),
                Some(ClosureReason::HtlcTimedOut { .. })
            ),
            "{evs:?}"
        );
        assert_eq!(n_closed, 1, "only B-C closes: {evs:?}");
        let rec = net.b.closed_channel(&net.bc).unwrap();
        assert_eq!(rec.htlcs.len(), 1);
        assert_eq!(rec.htlcs[0].action, OnChainAction::TimeOut);
        // Repeat and go backwards: nothing more happens, no panic.
        for h in [far, far, HEIGHT, far + 1] {
            net.b.best_block_updated(h);
            let evs = events(&net.b);
            assert!(
                !evs.iter().any(|e| matches!(e, Event::ChannelClosed { .. })),
                "{h}: {evs:?}"
            );
        }
        if restart {
            connect(&net.a, &net.b);
        }
        deliver_pair(&net.a, &net.b);
        assert_eq!(net.pending(&net.a, &net.ab), 1);
        net.audit();
    }
}

/// B learns the preimage from C; A stalls (connected, or away) and never
/// takes the fulfill. B restarts in between. B must close A-B at
/// cltv_in - claim_buffer, exactly, with the preimage in the record.
#[test]
fn hub_claims_upstream_on_chain_when_a_stalls_across_restart() {
    for (restart, a_away) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut net = Net::new("claim");
        let p = net.pay_to_c(3, 5_000_000);
        if a_away {
            net.a.peer_disconnected(&net.b.node_id());
            net.b.peer_disconnected(&net.a.node_id());
        }
        net.c.claim_funds(p).unwrap();
        deliver_pair(&net.b, &net.c); // what goes to A is dropped
        assert_eq!(net.pending(&net.b, &net.bc), 0, "B-C settled");
        assert!(events(&net.b)
            .iter()
            .any(|e| matches!(e, Event::HtlcForwarded { .. })));
        let cltv_in = HEIGHT
            + u32::from(net.config.min_final_cltv_expiry_delta)
            + u32::from(net.config.cltv_expiry_delta);
        let buffer = net.config.htlc_claim_buffer_blocks;
        net.b.best_block_updated(cltv_in - buffer - 1);
        if restart {
            net.restart_b(cltv_in - buffer - 1);
        }
        assert!(net.b.closed_channel(&net.ab).is_none(), "closed early");
        events(&net.b);
        net.b.best_block_updated(cltv_in - buffer);
        let evs = events(&net.b);
        assert!(
            matches!(
                closed_for(&evs, &net.ab),
                Some(ClosureReason::HtlcClaimDeadline { .. })
            ),
            "restart={restart} a_away={a_away}: {evs:?}"
        );
        let rec = net.b.closed_channel(&net.ab).expect("record");
        assert_eq!(rec.htlcs.len(), 1);
        assert_eq!(rec.htlcs[0].action, OnChainAction::Claim);
        assert_eq!(rec.htlcs[0].payment_preimage, Some(p));
        net.b.check_value_conserved().unwrap();
    }
}

/// Same, with the height jumping from HEIGHT past A's expiry at once
/// (after a restart opened there): still claimed with the preimage.
#[test]
fn hub_claims_upstream_after_height_jump() {
    for restart in [false, true] {
        let mut net = Net::new("claimjump");
        let p = net.pay_to_c(4, 5_000_000);
        net.c.claim_funds(p).unwrap();
        deliver_pair(&net.b, &net.c);
        let cltv_in = HEIGHT
            + u32::from(net.config.min_final_cltv_expiry_delta)
            + u32::from(net.config.cltv_expiry_delta);
        if restart {
            net.restart_b(cltv_in + 50);
        } else {
            net.b.best_block_updated(cltv_in + 50);
        }
        let evs = events(&net.b);
        assert!(
            matches!(
                closed_for(&evs, &net.ab),
                Some(ClosureReason::HtlcClaimDeadline { .. })
            ),
            "{evs:?}"
        );
        assert!(
            closed_for(&evs, &net.bc).is_none(),
            "B-C is settled: {evs:?}"
        );
        let rec = net.b.closed_channel(&net.ab).expect("record");
        assert_eq!(rec.htlcs[0].payment_preimage, Some(p));
        net.b.check_value_conserved().unwrap();
    }
}

// ---- Rule 2: C fails the HTLC back but stalls before committing ----

/// C sends update_fail_htlc (and even its commitment_signed) but never
/// revokes: the HTLC is still in C's unrevoked commitment. B must not fail
/// A's HTLC back until the removal is irrevocable, and must time out B-C.
#[test]
fn fail_from_c_not_passed_back_before_irrevocable() {
    let net = Net::new("failstall");
    let p = net.pay_to_c(5, 5_000_000);
    net.c.fail_htlc_backwards(&p.payment_hash()).unwrap();
    // Deliver C -> B only (update_fail + commitment_signed); B's answers dropped.
    for (dest, m) in take_msgs(&net.c) {
        assert_eq!(dest, net.b.node_id());
        deliver_one(&net.c, &net.b, m);
    }
    net.b.process_pending_forwards();
    let to_c: Vec<_> = take_msgs(&net.b);
    assert!(
        to_c.iter().all(|(d, _)| *d == net.c.node_id()),
        "nothing to A yet: {to_c:?}"
    );
    // B sent revoke_and_ack + commitment_signed to C; deliver them to C but C's
    // final revoke_and_ack is dropped.
    for (_, m) in to_c {
        deliver_one(&net.b, &net.c, m);
    }
    let _ = take_msgs(&net.c);
    net.b.process_pending_forwards();
    assert!(
        take_msgs(&net.b).iter().all(|(d, _)| *d != net.a.node_id()),
        "failed back too early"
    );
    assert_eq!(net.pending(&net.b, &net.ab), 1);
    let cltv = HEIGHT + u32::from(net.config.min_final_cltv_expiry_delta);
    net.b
        .best_block_updated(cltv + net.config.htlc_timeout_grace_blocks);
    let evs = events(&net.b);
    assert!(
        matches!(
            closed_for(&evs, &net.bc),
            Some(ClosureReason::HtlcTimedOut { .. })
        ),
        "{evs:?}"
    );
    net.b.process_pending_forwards();
    let out = take_msgs(&net.b);
    assert!(
        !out.iter()
            .any(|(d, m)| *d == net.a.node_id()
                && matches!(m, chanstore::Message::UpdateFailHtlc(_))),
        "A's HTLC failed back while C's unrevoked commitment still holds it: {out:?}"
    );
    net.b.check_value_conserved().unwrap();
}

// ---- Rule 3: final hop ----

fn pay_b(
    a: &ChannelStore,
    b: &ChannelStore,
    scid: ShortChannelId,
    n: u16,
    amount: u64,
) -> PaymentPreimage {
    let p = preimage(0xe, n);
    let route = route_to(b, scid);
    a.pay_invoice(&route, p.payment_hash(), amount).unwrap();
    deliver_all(&[a, b]);
    p
}

/// A payment to B whose expiry is too close to B's height is refused with
/// incorrect_or_unknown_payment_details (with B's height); one block less
/// close is accepted.
#[test]
fn final_hop_expiry_boundary() {
    let config = StoreConfig::default();
    let least = (u32::from(config.min_final_cltv_expiry_delta) - config.htlc_timeout_grace_blocks)
        .max(config.htlc_fail_back_buffer_blocks + 1);
    let delta = u32::from(config.min_final_cltv_expiry_delta);
    for (ahead, accepted) in [
        (delta - least, true),
        (delta - least + 1, false),
        (delta, false),
    ] {
        let (a, b) = (node(1), node(2));
        connect_all(&[&a, &b]);
        let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
        // B is `ahead` blocks ahead of A: A's cltv = HEIGHT + delta.
        b.best_block_updated(HEIGHT + ahead);
        let p = pay_b(&a, &b, scid, ahead as u16, 1_000_000);
        let got = events(&b);
        let received = got
            .iter()
            .any(|e| matches!(e, Event::PaymentReceived { .. }));
        assert_eq!(received, accepted, "ahead {ahead}: {got:?}");
        let a_evs = events(&a);
        if !accepted {
            assert!(
                a_evs.contains(&unknown_to(&b, p.payment_hash(), 1_000_000)),
                "{a_evs:?}"
            );
            assert!(b.claim_funds(p).is_err());
        } else {
            // Claimable right up to the fail-back height, then not.
            let cltv = HEIGHT + delta;
            let buffer = config.htlc_fail_back_buffer_blocks;
            b.best_block_updated(cltv - buffer - 1);
            assert!(!events(&b)
                .iter()
                .any(|e| matches!(e, Event::PaymentClaimExpired { .. })));
            b.best_block_updated(cltv - buffer);
            assert!(events(&b)
                .iter()
                .any(|e| matches!(e, Event::PaymentClaimExpired { .. })));
            assert!(b.claim_funds(p).is_err(), "claim after fail-back");
            deliver_all(&[&a, &b]);
            assert_eq!(b.channel_details(&id).unwrap().pending_htlcs, 0);
        }
        a.check_value_conserved().unwrap();
        b.check_value_conserved().unwrap();
    }
}

/// A and B with one channel, and the first part (400,000 of 1,000,000
/// msat) of payment `n` to B delivered.
fn first_of_two_parts(
    n: u16,
) -> (
    ChannelStore,
    ChannelStore,
    ChannelId,
    Route,
    PaymentPreimage,
    chanstore::RecipientOnionFields,
) {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = preimage(0xf, n);
    let route = route_to(&b, scid);
    let fields = invoice(&route, p.payment_hash());
    a.send_payment_part(&route, p.payment_hash(), 400_000, 1_000_000, fields.clone())
        .unwrap();
    deliver_all(&[&a, &b]);
    (a, b, id, route, p, fields)
}

/// The first part's expiry and the fail-back buffer before it.
fn first_part_deadline() -> (u32, u32) {
    let config = StoreConfig::default();
    (
        HEIGHT + u32::from(config.min_final_cltv_expiry_delta),
        config.htlc_fail_back_buffer_blocks,
    )
}

/// MPP: two parts with different expiries; when the earlier one reaches
/// the fail-back buffer, the whole set goes back, none of it is left
/// claimable, and a claim afterwards fails.
#[test]
fn mpp_part_expiring_fails_whole_set() {
    let (a, b, id, route, p, fields) = first_of_two_parts(1);
    a.best_block_updated(HEIGHT + 5);
    b.best_block_updated(HEIGHT + 5);
    a.send_payment_part(&route, p.payment_hash(), 600_000, 1_000_000, fields)
        .unwrap();
    deliver_all(&[&a, &b]);
    assert!(events(&b)
        .iter()
        .any(|e| matches!(e, Event::PaymentReceived { .. })));
    let (cltv1, buffer) = first_part_deadline();
    b.best_block_updated(cltv1 - buffer - 1);
    assert_eq!(b.channel_details(&id).unwrap().pending_htlcs, 2);
    b.best_block_updated(cltv1 - buffer);
    let evs = events(&b);
    assert!(
        evs.contains(&Event::PaymentClaimExpired {
            payment_hash: p.payment_hash(),
            amount_msat: 1_000_000
        }),
        "{evs:?}"
    );
    assert!(b.claim_funds(p).is_err());
    deliver_all(&[&a, &b]);
    assert_eq!(b.channel_details(&id).unwrap().pending_htlcs, 0);
    assert!(b.channel_details(&id).is_some() && b.closed_channels().is_empty());
    a.check_value_conserved().unwrap();
    b.check_value_conserved().unwrap();
}

/// Claimed in the last block before fail-back, the peer stalling on the
/// fulfill: B must close before the claim buffer, with the preimage.
#[test]
fn last_moment_claim_goes_on_chain_in_time() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = pay_b(&a, &b, scid, 77, 1_000_000);
    let cltv = HEIGHT + u32::from(StoreConfig::default().min_final_cltv_expiry_delta);
    let c = StoreConfig::default();
    b.best_block_updated(cltv - c.htlc_fail_back_buffer_blocks - 1);
    b.claim_funds(p).unwrap();
    take_msgs(&b);
    // Jump straight past the expiry.
    b.best_block_updated(cltv + 10);
    let evs = events(&b);
    assert!(
        matches!(
            closed_for(&evs, &id),
            Some(ClosureReason::HtlcClaimDeadline { .. })
        ),
        "{evs:?}"
    );
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Event::PaymentClaimExpired { .. })),
        "{evs:?}"
    );
    let rec = b.closed_channel(&id).unwrap();
    assert_eq!(rec.htlcs[0].payment_preimage, Some(p));
    b.check_value_conserved().unwrap();
}

// ---- Rule 4: heights backwards, repeated, extreme ----

/// A reorg below the funding height of live channels and of a channel
/// awaiting depth, then forward again, with the same height repeated:
/// nothing closes, no panic; a channel awaiting depth does not become ready
/// early.
#[test]
fn reorg_and_repeated_heights_are_harmless() {
    let net = Net::new("reorg");
    net.pay_to_c(6, 5_000_000);
    for h in [
        HEIGHT,
        HEIGHT,
        0,
        1,
        HEIGHT - 1000,
        HEIGHT + 10,
        HEIGHT + 10,
        HEIGHT + 2,
    ] {
        for n in net.nodes() {
            n.best_block_updated(h);
            let _ = n.list_channels();
        }
        for n in net.nodes() {
            let evs = events(n);
            assert!(
                !evs.iter().any(|e| matches!(e, Event::ChannelClosed { .. })),
                "{h}: {evs:?}"
            );
            assert!(n.closed_channels().is_empty());
        }
        deliver_all(&net.nodes());
    }
    net.audit();
}

/// A bogus height (`u32::MAX`) panics nowhere: it once overflowed in the
/// funding depth of a channel waiting for its confirmations, under the
/// peer's lock. Going back from it changes no balance either.
#[test]
fn the_largest_height_panics_nowhere() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = fund_and_confirm(&a, &b, 1_000_000, 0, 0x5a);
    let balance = |n: &ChannelStore| n.channel_details(&id).map(|d| d.balance_msat);
    let before = (balance(&a), balance(&b));
    for height in [u32::MAX, u32::MAX - 1, HEIGHT] {
        a.best_block_updated(height);
        deliver_all(&[&a, &b]);
    }
    a.check_value_conserved().unwrap();
    b.check_value_conserved().unwrap();
    assert_eq!((balance(&a), balance(&b)), before);
}

/// C stalls; B-C times out; C claims on chain with the preimage, reported
/// to B; A stalls on the fulfill. B must close A-B by cltv_in - claim
/// buffer with the preimage in its record.
#[test]
fn preimage_learned_on_chain_is_claimed_upstream_in_time() {
    onchain_preimage_case(&[(false, true), (true, true)]);
}

/// The same, but the user calls no `process_pending_forwards` between the
/// on-chain report and the blocks: the preimage is durable in B's work
/// queue, yet no deadline sees it.
#[test]
fn queued_preimage_counts_for_the_claim_deadline() {
    onchain_preimage_case(&[(false, false)]);
}

fn onchain_preimage_case(cases: &[(bool, bool)]) {
    use chanstore::{HtlcDirection, OnChainOutcome};
    for &(late, apply_work) in cases {
        eprintln!("case late={late} apply_work={apply_work}");
        let net = Net::new("onchain");
        let p = net.pay_to_c(8, 5_000_000);
        let cltv_out = HEIGHT + u32::from(net.config.min_final_cltv_expiry_delta);
        let cltv_in = cltv_out + u32::from(net.config.cltv_expiry_delta);
        let buffer = net.config.htlc_claim_buffer_blocks;
        net.b
            .best_block_updated(cltv_out + net.config.htlc_timeout_grace_blocks);
        assert!(matches!(
            closed_for(&events(&net.b), &net.bc),
            Some(ClosureReason::HtlcTimedOut { .. })
        ));
        let report_at = if late {
            cltv_in - buffer + 2
        } else {
            cltv_in - buffer - 5
        };
        net.b.best_block_updated(report_at);
        assert!(net.b.channel_details(&net.ab).is_some());
        let rec = net.b.closed_channel(&net.bc).unwrap();
        net.b
            .htlc_resolved_on_chain(
                &net.bc,
                HtlcDirection::Offered,
                rec.htlcs[0].htlc_id,
                OnChainOutcome::Fulfilled(p),
            )
            .unwrap();
        if apply_work {
            net.b.process_pending_forwards();
        }
        let _ = take_msgs(&net.b); // A stalls
        let closed_now = closed_for(&events(&net.b), &net.ab);
        if late {
            // Already past the deadline when the preimage came: report whether
            // B closes at once or only at the next block.
            eprintln!("late report: closed without a new block: {closed_now:?}");
            if closed_now.is_none() {
                net.b.best_block_updated(report_at + 1);
                assert!(matches!(
                    closed_for(&events(&net.b), &net.ab),
                    Some(ClosureReason::HtlcClaimDeadline { .. })
                ));
            }
        } else {
            assert!(closed_now.is_none());
            net.b.best_block_updated(cltv_in - buffer - 1);
            assert!(closed_for(&events(&net.b), &net.ab).is_none());
            net.b.best_block_updated(cltv_in - buffer);
            let evs = events(&net.b);
            assert!(
                matches!(
                    closed_for(&evs, &net.ab),
                    Some(ClosureReason::HtlcClaimDeadline { .. })
                ),
                "{evs:?}\nB's A-B: {:?}\nB: {}",
                net.b.channel_details(&net.ab),
                net.b.debug_state()
            );
        }
        let rec = net.b.closed_channel(&net.ab).unwrap();
        assert_eq!(rec.htlcs[0].payment_preimage, Some(p));
        net.b.check_value_conserved().unwrap();
    }
}

/// An incomplete MPP set (one part of two) reaching the fail-back height
/// before any timer tick is failed back, and a later second part does not
/// complete a set whose first part is gone.
#[test]
fn incomplete_mpp_part_expiring_is_failed_back() {
    let (a, b, id, route, p, fields) = first_of_two_parts(2);
    let (cltv1, buffer) = first_part_deadline();
    b.best_block_updated(cltv1 - buffer);
    deliver_all(&[&a, &b]);
    assert_eq!(b.channel_details(&id).unwrap().pending_htlcs, 0);
    assert!(!events(&b)
        .iter()
        .any(|e| matches!(e, Event::PaymentClaimExpired { .. })));
    a.best_block_updated(cltv1 - buffer);
    a.send_payment_part(&route, p.payment_hash(), 600_000, 1_000_000, fields)
        .unwrap();
    deliver_all(&[&a, &b]);
    assert!(
        !events(&b)
            .iter()
            .any(|e| matches!(e, Event::PaymentReceived { .. })),
        "600k of 1M announced"
    );
    assert!(b.claim_funds(p).is_err());
    for _ in 0..5 {
        b.timer_tick_occurred();
    }
    deliver_all(&[&a, &b]);
    assert_eq!(b.channel_details(&id).unwrap().pending_htlcs, 0);
    a.check_value_conserved().unwrap();
    b.check_value_conserved().unwrap();
}

/// C claims off chain and B's user calls no `process_pending_forwards`
/// while blocks come; A stalls. The preimage waits in B's work queue, and
/// B must still go on chain with it at A's HTLC's claim deadline (before,
/// it did not: A could time the HTLC out after B had paid C).
#[test]
fn a_preimage_from_downstream_left_in_the_queue_counts_for_the_claim_deadline() {
    let net = Net::new("offchain");
    let p = net.pay_to_c(9, 5_000_000);
    net.c.claim_funds(p).unwrap();
    // B and C settle; B's queue is never drained by its user.
    deliver_pair_draining(&net.b, &net.c, false);
    assert_eq!(net.pending(&net.b, &net.bc), 0, "C's claim settled with B");
    let cltv_out = HEIGHT + u32::from(net.config.min_final_cltv_expiry_delta);
    let cltv_in = cltv_out + u32::from(net.config.cltv_expiry_delta);
    let deadline = cltv_in - net.config.htlc_claim_buffer_blocks;
    net.b.best_block_updated(deadline - 1);
    let _ = take_msgs(&net.b); // A stalls: B's fulfill never reaches it
    assert!(closed_for(&events(&net.b), &net.ab).is_none());
    net.b.best_block_updated(deadline);
    assert!(matches!(
        closed_for(&events(&net.b), &net.ab),
        Some(ClosureReason::HtlcClaimDeadline { .. })
    ));
    let record = net.b.closed_channel(&net.ab).unwrap();
    assert_eq!(record.htlcs[0].payment_preimage, Some(p));
    net.b.check_value_conserved().unwrap();
}
