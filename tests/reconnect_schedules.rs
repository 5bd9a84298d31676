//! Random schedules of payments both ways, claims, fails, fee updates and
//! a cooperative close, with disconnections at random message boundaries
//! and, in the crash schedules, crashes: a node restarts from what its
//! persister holds (uncommitted and lazy batches lost). Both sides must
//! converge with value conserved, every payment ending once and, closing,
//! one cooperative close. `SEEDS` and `FIRST` pick the seeds.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chanstore::{ChannelStore, Event, MemoryPersister, Message, PaymentHash, PaymentPreimage};
use common::schedule::{store, Rng};
use common::*;

/// Crashes played, and those after which the node came back with another
/// state than it had (what was lost was not yet durable).
static CRASHES: AtomicUsize = AtomicUsize::new(0);
static LOST: AtomicUsize = AtomicUsize::new(0);

#[derive(Default, Debug, Clone)]
struct Pay {
    payer: usize,
    amount: u64,
    preimage: Option<PaymentPreimage>,
    received: usize,
    sent: usize,
    failed: usize,
    decided: Option<bool>, // Some(true) claim, Some(false) fail
}

struct Sim {
    nodes: [ChannelStore; 2],
    /// Each node's persister, in the crash schedules.
    disks: Option<[Arc<MemoryPersister>; 2]>,
    cfg: chanstore::StoreConfig,
    queues: [VecDeque<Message>; 2], // queues[i]: from i to 1-i
    log: Vec<String>,
    pays: HashMap<PaymentHash, Pay>,
    pending_received: Vec<(usize, PaymentHash)>,
    closing: bool,
    closed: [Option<u64>; 2],
}

impl Sim {
    fn collect(&mut self) {
        for i in 0..2 {
            for (_, m) in self.nodes[i].get_and_clear_pending_msg_events() {
                self.queues[i].push_back(m);
            }
        }
    }
    fn events(&mut self) {
        for i in 0..2 {
            for e in self.nodes[i].get_and_clear_pending_events() {
                match e {
                    Event::PaymentReceived { payment_hash, .. } => {
                        let p = self.pays.get_mut(&payment_hash).expect("known");
                        assert_eq!(1 - p.payer, i, "received at the wrong node");
                        p.received += 1;
                        self.pending_received.push((i, payment_hash));
                    }
                    Event::PaymentSent { payment_hash, .. } => {
                        let p = self.pays.get_mut(&payment_hash).expect("known");
                        assert_eq!(p.payer, i);
                        p.sent += 1;
                    }
                    Event::PaymentFailed { payment_hash, .. } => {
                        let p = self.pays.get_mut(&payment_hash).expect("known");
                        assert_eq!(p.payer, i);
                        p.failed += 1;
                    }
                    Event::ChannelClosed { reason, .. } => match reason {
                        chanstore::ClosureReason::Cooperative { closing_tx_fee_sat }
                            if self.closing =>
                        {
                            self.closed[i] = Some(closing_tx_fee_sat);
                        }
                        chanstore::ClosureReason::CounterpartyError { ref message }
                            if self.closing
                                && message == "channel closed"
                                && self.closed[1 - i].is_some() =>
                        {
                            self.closed[i] = self.closed[1 - i];
                            self.log
                                .push(format!("{} told closed by error", ["a", "b"][i]));
                        }
                        _ => panic!("channel closed: {reason:?}\nlog {:#?}", self.log),
                    },
                    _ => {}
                }
            }
        }
    }
    fn deliver(&mut self, from: usize) -> bool {
        self.collect();
        let Some(m) = self.queues[from].pop_front() else {
            return false;
        };
        let name = format!(
            "{}->{} {}",
            ["a", "b"][from],
            ["a", "b"][1 - from],
            m.name()
        );
        let wire = Message::decode(&m.encode()).unwrap();
        let (src, dst) = (&self.nodes[from], &self.nodes[1 - from]);
        if let Err(e) = dst.handle_message(&src.node_id(), wire) {
            panic!("{name} refused: {e}\nlog {:#?}", self.log);
        }
        self.log.push(name);
        true
    }
    fn reconnect(&mut self) {
        self.collect();
        let lost: usize = self.queues.iter().map(|q| q.len()).sum();
        self.queues[0].clear();
        self.queues[1].clear();
        let [a, b] = &self.nodes;
        a.peer_disconnected(&b.node_id());
        b.peer_disconnected(&a.node_id());
        a.peer_connected(b.node_id());
        b.peer_connected(a.node_id());
        self.log.push(format!("-- reconnect (lost {lost}) --"));
    }
    fn crash(&mut self, i: usize) {
        self.collect();
        self.queues[0].clear();
        self.queues[1].clear();
        let other = self.nodes[i].node_id();
        let disk = self.disks.as_ref().expect("a crash schedule")[i].clone();
        let fresh = store(&self.cfg, i, Some(disk), HEIGHT);
        let chans = |n: &ChannelStore| {
            let mut d = n.list_channels();
            d.sort_by_key(|d| d.channel_id);
            format!("{d:?}")
        };
        if chans(&self.nodes[i]) != chans(&fresh) {
            LOST.fetch_add(1, Ordering::Relaxed);
        }
        CRASHES.fetch_add(1, Ordering::Relaxed);
        let old = std::mem::replace(&mut self.nodes[i], fresh);
        drop(old);
        self.nodes[1 - i].peer_disconnected(&other);
        let [a, b] = &self.nodes;
        a.peer_connected(b.node_id());
        b.peer_connected(a.node_id());
        self.log.push(format!("-- crash {} --", ["a", "b"][i]));
    }
    fn settle(&mut self) {
        for _ in 0..10_000 {
            self.events();
            let moved = self.deliver(0) | self.deliver(1);
            if !moved {
                return;
            }
        }
        panic!("never quiet");
    }
}

/// What a schedule may do besides payments, claims, fails and
/// reconnections.
#[derive(Clone, Copy)]
struct Plays {
    fee: bool,
    close: bool,
    crashes: bool,
}

fn run(seed: u64, steps: usize, plays: Plays) {
    let Plays {
        fee: with_fee,
        close: with_close,
        crashes,
    } = plays;
    let cfg = chanstore::StoreConfig {
        max_dust_htlc_exposure_msat: 1_000_000_000,
        ..Default::default()
    };
    let disks = crashes.then(|| [(); 2].map(|_| Arc::new(MemoryPersister::new())));
    let disk = |i: usize| disks.as_ref().map(|d| d[i].clone());
    let (a, b) = (
        store(&cfg, 0, disk(0), HEIGHT),
        store(&cfg, 1, disk(1), HEIGHT),
    );
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 400_000_000);
    a.flush().unwrap();
    b.flush().unwrap();
    let before = [
        a.channel_details(&id).unwrap().balance_msat,
        b.channel_details(&id).unwrap().balance_msat,
    ];
    let mut sim = Sim {
        nodes: [a, b],
        disks: disks.clone(),
        cfg: cfg.clone(),
        queues: [VecDeque::new(), VecDeque::new()],
        log: vec![],
        pays: HashMap::new(),
        pending_received: vec![],
        closing: false,
        closed: [None; 2],
    };
    let mut rng = Rng::new(seed);
    let mut n_pay = 0u16;
    for _ in 0..steps {
        match rng.below(20) {
            0..=2 => {
                let payer = rng.below(2) as usize;
                let (s, r) = (&sim.nodes[payer], &sim.nodes[1 - payer]);
                n_pay += 1;
                let pre = preimage(7 + payer as u8, n_pay);
                let amount = 1_000_000 + rng.below(5) * 3_000_000;
                let route = route_to(r, scid);
                let res = s.pay_invoice(&route, pre.payment_hash(), amount);
                if res.is_ok() {
                    sim.log.push(format!("{} pays {amount}", ["a", "b"][payer]));
                    sim.pays.insert(
                        pre.payment_hash(),
                        Pay {
                            payer,
                            amount,
                            preimage: Some(pre),
                            ..Default::default()
                        },
                    );
                }
            }
            3..=4 => {
                if !sim.pending_received.is_empty() {
                    let k = rng.below(sim.pending_received.len() as u64) as usize;
                    let (i, hash) = sim.pending_received.remove(k);
                    let claim = rng.below(3) != 0;
                    let p = sim.pays.get_mut(&hash).unwrap();
                    p.decided = Some(claim);
                    let pre = p.preimage.unwrap();
                    if claim {
                        sim.nodes[i].claim_funds(pre).unwrap();
                        sim.log.push(format!("{} claims", ["a", "b"][i]));
                    } else {
                        sim.nodes[i].fail_htlc_backwards(&hash).unwrap();
                        sim.log.push(format!("{} fails", ["a", "b"][i]));
                    }
                }
            }
            5 if with_fee => {
                let rate = 253 + rng.below(8) as u32 * 250;
                if sim.nodes[0].update_fee(&id, rate).is_ok() {
                    sim.log.push(format!("a update_fee {rate}"));
                }
            }
            6 => sim.reconnect(),
            8 if crashes && rng.below(2) == 0 => {
                let i = rng.below(2) as usize;
                sim.crash(i);
            }
            7 if with_close && !sim.closing && rng.below(10) == 0 => {
                let who = rng.below(2) as usize;
                sim.nodes[who].close_channel(&id).unwrap();
                sim.closing = true;
                sim.log.push(format!("{} close_channel", ["a", "b"][who]));
            }
            _ => {
                let from = rng.below(2) as usize;
                sim.deliver(from);
            }
        }
        // A crash schedule leaves events unread for a while: they must
        // survive the crash (or be redone), not be lost.
        if !crashes || rng.below(4) == 0 {
            sim.events();
        }
        for n in &sim.nodes {
            n.check_value_conserved()
                .unwrap_or_else(|e| panic!("{e}\nlog {:#?}", sim.log));
            n.check_commitments_fully_paid()
                .unwrap_or_else(|e| panic!("{e}\nlog {:#?}", sim.log));
        }
    }
    // Converge: reconnect, deliver, decide everything pending (claim).
    sim.reconnect();
    sim.settle();
    for _ in 0..5 {
        while let Some((i, hash)) = sim.pending_received.pop() {
            let p = sim.pays.get_mut(&hash).unwrap();
            p.decided = Some(true);
            sim.nodes[i].claim_funds(p.preimage.unwrap()).unwrap();
        }
        sim.settle();
        sim.events();
    }
    // A close held back after the reconnection (the peer's shutdown came
    // first: its adds might have followed) goes on at a timer tick.
    for n in &sim.nodes {
        n.timer_tick_occurred();
    }
    sim.settle();
    sim.events();
    let mut delta = [0i64; 2];
    for (hash, p) in &sim.pays {
        assert!(
            p.received <= 1,
            "received twice {hash:?} {p:?}\nlog {:#?}",
            sim.log
        );
        assert_eq!(
            p.sent + p.failed,
            1,
            "payment {hash:?} must end once: {p:?}\nlog {:#?}",
            sim.log
        );
        if p.sent == 1 {
            assert_eq!(p.decided, Some(true), "{p:?}\nlog {:#?}", sim.log);
            delta[p.payer] -= p.amount as i64;
            delta[1 - p.payer] += p.amount as i64;
        }
    }
    if sim.closing {
        assert!(
            sim.closed[0].is_some() && sim.closed[0] == sim.closed[1],
            "closes {:?}\nlog {:#?}",
            sim.closed,
            sim.log
        );
        return;
    }
    for i in 0..2 {
        let d = sim.nodes[i].channel_details(&id).unwrap();
        assert_eq!(d.pending_htlcs, 0, "node {i} {d:?}\nlog {:#?}", sim.log);
        assert!(d.is_usable, "{d:?}");
        assert_eq!(
            d.balance_msat as i64,
            before[i] as i64 + delta[i],
            "node {i} balance\nlog {:#?}",
            sim.log
        );
        sim.nodes[i].check_value_conserved().unwrap();
        sim.nodes[i].check_commitments_fully_paid().unwrap();
    }
    let fa = sim.nodes[0].channel_details(&id).unwrap().feerate_per_kw;
    let fb = sim.nodes[1].channel_details(&id).unwrap().feerate_per_kw;
    assert_eq!(fa, fb, "feerates differ");
}

fn seeds(default: u64) -> std::ops::Range<u64> {
    let env = |name, default| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let first = env("FIRST", 0);
    first..first + env("SEEDS", default)
}

fn run_all(plays: Plays, default_seeds: u64) {
    for seed in seeds(default_seeds) {
        eprintln!("seed {seed}");
        run(seed, 300, plays);
    }
}

#[test]
fn random_schedules_no_fee() {
    let plays = Plays {
        fee: false,
        close: false,
        crashes: false,
    };
    run_all(plays, 40);
}

#[test]
fn random_schedules_with_fee() {
    let plays = Plays {
        fee: true,
        close: false,
        crashes: false,
    };
    run_all(plays, 40);
}

#[test]
fn random_schedules_with_close() {
    let plays = Plays {
        fee: true,
        close: true,
        crashes: false,
    };
    run_all(plays, 40);
}

#[test]
fn crash_schedules() {
    let plays = Plays {
        fee: true,
        close: false,
        crashes: true,
    };
    run_all(plays, 40);
    eprintln!(
        "crashes {} lost-state {}",
        CRASHES.load(Ordering::Relaxed),
        LOST.load(Ordering::Relaxed)
    );
}

#[test]
fn crash_schedules_with_close() {
    let plays = Plays {
        fee: true,
        close: true,
        crashes: true,
    };
    run_all(plays, 20);
}

/// A restarts from an old snapshot (two payments behind): B's
/// `channel_reestablish` proves it (its `your_last_per_commitment_secret`
/// is A's secret for a commitment A's old state never revoked). A must fail
/// the channel without broadcasting (LostData) and B must go on chain with
/// its latest commitment.
#[test]
fn restored_from_old_backup_is_told_and_does_not_broadcast() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 400_000_000);
    let old = reread(&a, 1);
    for n in 0..2u16 {
        let pre = preimage(3, n);
        a.pay_invoice(&route_to(&b, scid), pre.payment_hash(), 2_000_000)
            .unwrap();
        deliver_all(&[&a, &b]);
        b.claim_funds(pre).unwrap();
        deliver_all(&[&a, &b]);
    }
    drop(a);
    let a = old;
    b.peer_disconnected(&a.node_id());
    connect(&a, &b);
    let ra = take_msgs(&a);
    let rb = take_msgs(&b);
    for (_, m) in rb {
        let _ = a.handle_message(&b.node_id(), m);
    }
    for (_, m) in ra {
        let _ = b.handle_message(&a.node_id(), m);
    }
    let ea = events(&a);
    assert!(
        ea.iter().any(|e| matches!(
            e,
            Event::ChannelClosed {
                reason: chanstore::ClosureReason::LostData,
                ..
            }
        )),
        "{ea:?}"
    );
    let ca = a.closed_channel(&id).expect("A keeps a record");
    assert!(
        ca.transaction.is_none(),
        "A must not broadcast its revoked commitment: {ca:?}"
    );
    let eb = events(&b);
    assert!(
        eb.iter().any(|e| matches!(e, Event::ChannelClosed { .. })),
        "{eb:?}"
    );
}

/// Both `channel_ready`s lost (and, for a second channel, the funding seen
/// while disconnected): after reconnecting both sides become ready and can pay.
#[test]
fn channel_ready_lost_or_confirmed_while_disconnected() {
    for while_disconnected in [false, true] {
        let (a, b) = (node(1), node(2));
        connect_all(&[&a, &b]);
        let temp = a.create_channel(b.node_id(), 1_000_000, 0).unwrap();
        deliver_all(&[&a, &b]);
        let outpoint = bitcoin::OutPoint::new(bitcoin::hashes::Hash::from_byte_array([7u8; 32]), 0);
        let id = a
            .funding_transaction_generated(&temp, &b.node_id(), outpoint)
            .unwrap();
        deliver_all(&[&a, &b]);
        let scid = chanstore::ShortChannelId::new(HEIGHT, 8, 0).unwrap();
        if while_disconnected {
            a.peer_disconnected(&b.node_id());
            b.peer_disconnected(&a.node_id());
        }
        a.funding_confirmed(&id, scid).unwrap();
        b.funding_confirmed(&id, scid).unwrap();
        a.best_block_updated(HEIGHT + 5);
        b.best_block_updated(HEIGHT + 5);
        let lost: Vec<_> = take_msgs(&a)
            .into_iter()
            .chain(take_msgs(&b))
            .map(|(_, m)| m.name())
            .collect();
        eprintln!("lost {lost:?}");
        if !while_disconnected {
            a.peer_disconnected(&b.node_id());
            b.peer_disconnected(&a.node_id());
        }
        connect(&a, &b);
        let ra: Vec<_> = take_msgs(&a).into_iter().map(|(_, m)| m).collect();
        let rb: Vec<_> = take_msgs(&b).into_iter().map(|(_, m)| m).collect();
        for m in ra {
            deliver_one(&a, &b, m);
        }
        for m in rb {
            deliver_one(&b, &a, m);
        }
        deliver_all(&[&a, &b]);
        for n in [&a, &b] {
            let d = n.channel_details(&id).unwrap();
            assert!(d.is_usable, "{while_disconnected}: {d:?}");
        }
        let pre = preimage(5, 1);
        a.pay_invoice(&route_to(&b, scid), pre.payment_hash(), 2_000_000)
            .unwrap();
        deliver_all(&[&a, &b]);
        b.claim_funds(pre).unwrap();
        deliver_all(&[&a, &b]);
        assert_eq!(b.channel_details(&id).unwrap().balance_msat, 2_000_000);
    }
}
