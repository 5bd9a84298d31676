//! Random schedules of payments both ways, claims, fails and fee updates,
//! with disconnections at random message boundaries and crashes: a node
//! restarts from what its persister holds (uncommitted and lazy batches
//! lost); both sides must converge with value conserved and every payment
//! ending once.

mod common;

use std::collections::{HashMap, VecDeque};

use chanstore::{ChannelStore, Event, Message, PaymentHash, PaymentPreimage};
use common::*;

static LOST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static CRASHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

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
    disks: [std::sync::Arc<chanstore::MemoryPersister>; 2],
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
        let fresh = ChannelStore::with_persister(
            self.cfg.clone(),
            bitcoin::secp256k1::SecretKey::from_slice(&[i as u8 + 1; 32]).unwrap(),
            HEIGHT,
            self.disks[i].clone(),
        )
        .unwrap();
        let chans = |n: &ChannelStore| {
            let mut d = n.list_channels();
            d.sort_by_key(|d| d.channel_id);
            format!("{d:?}")
        };
        if chans(&self.nodes[i]) != chans(&fresh) {
            LOST.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        CRASHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

fn run(seed: u64, steps: usize, with_fee: bool, with_close: bool) {
    let cfg = chanstore::StoreConfig {
        max_dust_htlc_exposure_msat: 1_000_000_000,
        ..Default::default()
    };
    let disks = [
        std::sync::Arc::new(chanstore::MemoryPersister::new()),
        std::sync::Arc::new(chanstore::MemoryPersister::new()),
    ];
    let mk = |i: usize| {
        ChannelStore::with_persister(
            cfg.clone(),
            bitcoin::secp256k1::SecretKey::from_slice(&[i as u8 + 1; 32]).unwrap(),
            HEIGHT,
            disks[i].clone(),
        )
        .unwrap()
    };
    let (a, b) = (mk(0), mk(1));
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
    let mut rng = Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
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
                let res = s.send_payment(
                    &route,
                    pre.payment_hash(),
                    amount,
                    invoice(&route, pre.payment_hash()),
                );
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
            8 if rng.below(2) == 0 => {
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
        if rng.below(4) == 0 {
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
    if sim.closing {
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
        }
        assert!(
            sim.closed[0].is_some() && sim.closed[0] == sim.closed[1],
            "closes {:?}\nlog {:#?}",
            sim.closed,
            sim.log
        );
        return;
    }
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

#[test]
fn crash_schedules() {
    let n: u64 = std::env::var("SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let first: u64 = std::env::var("FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for seed in first..first + n {
        eprintln!("seed {seed}");
        run(seed, 300, true, std::env::var("CLOSE").is_ok());
    }
    eprintln!(
        "crashes {} lost-state {}",
        CRASHES.load(std::sync::atomic::Ordering::Relaxed),
        LOST.load(std::sync::atomic::Ordering::Relaxed)
    );
}
