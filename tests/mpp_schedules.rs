//! Random schedules of payments to C in several parts, one from A's
//! channel and one from B's (sometimes a third from A; and single-part
//! payments), with claims (after `PaymentReceived`, or before it as a user
//! holding the preimage may), `fail_htlc_backwards`, MPP timeouts
//! (`timer_tick_occurred`), blocks (fail-back deadlines), payers sending
//! failed parts again, disconnections at random message boundaries and
//! crashes of C (and, in one test, of the payers) between deliveries: a
//! crashed node restarts from what its `MemoryPersister` holds (batches not
//! yet committed are lost), sometimes at a later or a lagging height.
//!
//! Checked after every step: value conserved and every commitment paid
//! on each node, and (at random steps) that C, if it crashed now, could
//! claim every payment the user was told of and has not decided. After a
//! final reconnect-settle-claim phase: each part ended once at its payer;
//! a payment is fulfilled in every part or failed in every part (never
//! some of each: the preimage out and C not paid in full; with parts sent
//! again, the fulfilled ones add up to the total); a claimed payment is
//! fulfilled; an announced one was claimable until it was decided or
//! expired; no HTLC is left and every balance moved by exactly what was
//! fulfilled.
//!
//! `SEEDS` and `FIRST` pick the seeds, `STEPS` the length (300), `LOG`
//! prints each schedule's log.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chanstore::inbound_payment::{self, ExpandedKey};
use chanstore::Persister;
use chanstore::{
    ChannelId, ChannelStore, Event, MemoryPersister, Message, PaymentHash, PaymentPreimage,
    RecipientOnionFields, ShortChannelId, StoreError,
};
use common::schedule::{store, Rng};
use common::*;

/// What the schedules played, per test thread (tests run in parallel).
#[derive(Clone, Copy)]
enum Count {
    Crashes,
    Claims,
    EarlyClaims,
    Fails,
    Expired,
    MppPaid,
    MppFailed,
    StepsRun,
    ShadowClaims,
    Retries,
    RetriedPaid,
}

thread_local! {
    static COUNTS: std::cell::RefCell<[usize; 11]> = const { std::cell::RefCell::new([0; 11]) };
}

fn bump(c: Count) {
    COUNTS.with(|k| k.borrow_mut()[c as usize] += 1);
}

fn count(c: Count) -> usize {
    COUNTS.with(|k| k.borrow()[c as usize])
}

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const NAMES: [&str; 3] = ["a", "b", "c"];
/// Links: (from, to).
const LINKS: [(usize, usize); 4] = [(A, C), (C, A), (B, C), (C, B)];
/// Blocks the schedule may add: below the claim deadline of any HTLC
/// (42 - 18 = 24 blocks after it was sent, at the least expiry), past the
/// fail-back one (21).
const MAX_BLOCKS: u32 = 23;
/// With a user who claims nothing before the end (no preimage out while
/// blocks come): below the payers' HTLC timeout (42 + 3 blocks after
/// sending), well past the fail-back deadline.
const MAX_BLOCKS_IDLE: u32 = 40;

#[derive(Debug, Clone)]
struct Part {
    payer: usize,
    amount: u64,
    /// `send_payment_part` returned Ok.
    sent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decided {
    Claim,
    Fail,
    Expired,
}

#[derive(Debug, Clone)]
struct Pay {
    total: u64,
    preimage: PaymentPreimage,
    fields: RecipientOnionFields,
    derived: bool,
    parts: Vec<Part>,
    received: usize,
    /// PaymentSent / PaymentFailed per payer.
    ok: [usize; 2],
    failed: [usize; 2],
    decided: Option<Decided>,
    /// Parts sent again after their first failed (payments with one part
    /// per payer only, each retry of that payer's amount).
    retries: usize,
}

/// Whether each payer has at most one part's amount in `p` (so that its
/// fulfilled parts tell the amount C was paid).
fn one_amount_per_payer(p: &Pay) -> bool {
    [A, B].iter().all(|&payer| {
        let mut amounts = p
            .parts
            .iter()
            .filter(|x| x.payer == payer)
            .map(|x| x.amount);
        let first = amounts.next();
        amounts.all(|a| Some(a) == first)
    }) && p.parts.len() - p.retries <= 2
}

fn amount_of(p: &Pay, payer: usize) -> u64 {
    p.parts
        .iter()
        .find(|x| x.payer == payer)
        .map_or(0, |x| x.amount)
}

struct Sim {
    nodes: [ChannelStore; 3],
    disks: [Option<Arc<MemoryPersister>>; 3],
    cfg: chanstore::StoreConfig,
    height: u32,
    /// Blocks the schedule may add (`MAX_BLOCKS`, `MAX_BLOCKS_IDLE`).
    max_blocks: u32,
    queues: [VecDeque<Message>; 4],
    scids: [ShortChannelId; 2],
    chans: [ChannelId; 2],
    log: Vec<String>,
    pays: HashMap<PaymentHash, Pay>,
    order: Vec<PaymentHash>,
    /// Parts that failed at their payer, which it may send again.
    to_retry: Vec<(PaymentHash, usize)>,
}

fn link(from: usize, to: usize) -> usize {
    LINKS.iter().position(|l| *l == (from, to)).unwrap()
}

impl Sim {
    fn fail(&self, what: String) -> ! {
        let tail: Vec<_> = self.log.iter().rev().take(400).rev().collect();
        panic!("{what}\nlog {tail:#?}");
    }
    fn collect_from(&mut self, i: usize) {
        for (to, m) in self.nodes[i].get_and_clear_pending_msg_events() {
            let j = (0..3).find(|&j| self.nodes[j].node_id() == to).unwrap();
            self.queues[link(i, j)].push_back(m);
        }
    }
    fn collect(&mut self) {
        for i in 0..3 {
            self.collect_from(i);
        }
    }
    fn events(&mut self) {
        for i in 0..3 {
            for e in self.nodes[i].get_and_clear_pending_events() {
                self.event(i, e);
            }
        }
    }
    fn event(&mut self, i: usize, e: Event) {
        match e {
            Event::PaymentReceived {
                payment_hash,
                amount_msat,
                payment_preimage,
            } => {
                assert_eq!(i, C);
                let Some(p) = self.pays.get_mut(&payment_hash) else {
                    self.fail(format!("unknown payment received {payment_hash:?}"))
                };
                p.received += 1;
                let (total, derived, pre) = (p.total, p.derived, p.preimage);
                let (received, decided) = (p.received, p.decided);
                self.log
                    .push(format!("c received {}", short_hash(&payment_hash)));
                if received > 1 {
                    // Parts sent again after the user failed it (or it
                    // expired) make a new set, announced anew.
                    if p.retries > 0 && matches!(decided, Some(Decided::Fail | Decided::Expired)) {
                        p.decided = None;
                    } else {
                        self.fail(format!("received twice {payment_hash:?} ({decided:?})"));
                    }
                }
                if amount_msat != total {
                    self.fail(format!("received {amount_msat} of {total}"));
                }
                if derived && payment_preimage != Some(pre) {
                    self.fail(format!("derived preimage {payment_preimage:?}"));
                }
            }
            Event::PaymentSent { payment_hash, .. } | Event::PaymentFailed { payment_hash, .. } => {
                let sent = matches!(e, Event::PaymentSent { .. });
                let why = match &e {
                    Event::PaymentFailed { failure, .. } => format!(" {failure:?}"),
                    _ => String::new(),
                };
                assert!(i < 2, "c pays nobody");
                let Some(p) = self.pays.get_mut(&payment_hash) else {
                    self.fail(format!("unknown payment ended {payment_hash:?}"))
                };
                if sent {
                    p.ok[i] += 1;
                } else {
                    p.failed[i] += 1;
                    if p.parts.len() > 1
                        && one_amount_per_payer(p)
                        && p.retries < 3
                        && p.decided.is_none()
                    {
                        self.to_retry.push((payment_hash, i));
                    }
                }
                self.log.push(format!(
                    "{} {} {}{why}",
                    NAMES[i],
                    if sent { "sent" } else { "failed" },
                    short_hash(&payment_hash)
                ));
            }
            Event::PaymentClaimExpired { payment_hash, .. } => {
                let p = self.pays.get_mut(&payment_hash).expect("known");
                let was = p.decided;
                if p.decided.is_none() {
                    p.decided = Some(Decided::Expired);
                }
                bump(Count::Expired);
                self.log
                    .push(format!("c claim expired {}", short_hash(&payment_hash)));
                if was.is_some() {
                    self.fail(format!("expired though decided {was:?}"));
                }
            }
            Event::ChannelClosed { reason, .. } => {
                self.fail(format!("{} channel closed: {reason:?}", NAMES[i]))
            }
            _ => {}
        }
    }
    fn deliver(&mut self, l: usize) -> bool {
        let (from, to) = LINKS[l];
        self.collect_from(from);
        let Some(m) = self.queues[l].pop_front() else {
            return false;
        };
        let name = format!("{}->{} {}", NAMES[from], NAMES[to], m.name());
        let wire = Message::decode(&m.encode()).unwrap();
        let src = self.nodes[from].node_id();
        if let Err(e) = self.nodes[to].handle_message(&src, wire) {
            self.fail(format!("{name} refused: {e}"));
        }
        self.log.push(name);
        true
    }
    fn disconnect(&mut self, payer: usize) {
        self.collect();
        let lost = self.queues[link(payer, C)].len() + self.queues[link(C, payer)].len();
        self.queues[link(payer, C)].clear();
        self.queues[link(C, payer)].clear();
        let (p, c) = (&self.nodes[payer], &self.nodes[C]);
        p.peer_disconnected(&c.node_id());
        c.peer_disconnected(&p.node_id());
        self.log
            .push(format!("-- {} disconnected (lost {lost}) --", NAMES[payer]));
    }
    fn connect(&mut self, payer: usize) {
        let (p, c) = (&self.nodes[payer], &self.nodes[C]);
        p.peer_connected(c.node_id());
        c.peer_connected(p.node_id());
    }
    fn reconnect(&mut self, payer: usize) {
        self.disconnect(payer);
        self.connect(payer);
    }
    /// `i` crashes: messages it queued but nobody took are lost (unless
    /// `collect`, which takes them, committing what they wait for).
    fn crash(&mut self, i: usize, collect: bool, blocks: u32, lag: u32) {
        let Some(disk) = self.disks[i].clone() else {
            return;
        };
        if collect {
            self.collect();
        } else {
            for j in 0..3 {
                if j != i {
                    self.collect_from(j);
                }
            }
        }
        // Blocks found while it was down: it opens at the new height.
        if blocks > 0 {
            self.height = (self.height + blocks).min(HEIGHT + self.max_blocks);
            self.log.push(format!("block {} (while down)", self.height));
        }
        // Its block source may lag at first: it opens `lag` blocks behind
        // and hears of the rest at the next block.
        let fresh = store(&self.cfg, i, Some(disk), self.height - lag);
        for j in (0..3).filter(|&j| j != i) {
            self.nodes[j].best_block_updated(self.height);
        }
        bump(Count::Crashes);
        let old = std::mem::replace(&mut self.nodes[i], fresh);
        drop(old);
        let peers: Vec<usize> = if i == C { vec![A, B] } else { vec![i] };
        for payer in peers {
            self.queues[link(payer, C)].clear();
            self.queues[link(C, payer)].clear();
            let other = if i == C { payer } else { C };
            let gone = self.nodes[i].node_id();
            self.nodes[other].peer_disconnected(&gone);
            self.connect(payer);
        }
        self.log
            .push(format!("-- crash {} (collected {collect}) --", NAMES[i]));
    }
    /// What a crash of C now would leave: a store opened from a copy of
    /// C's disk. Every payment the user was told of and has not decided
    /// must be claimable there (the user, restarted, claims it), unless
    /// it expired (an event the restarted store hands out first).
    fn shadow_check(&mut self) {
        let Some(disk) = &self.disks[C] else { return };
        let copy = Arc::new(MemoryPersister::new());
        let batch: Vec<_> = (disk.load().unwrap().into_iter())
            .map(|(k, v)| (k, Some(v)))
            .collect();
        copy.write_batch(&batch).unwrap();
        let shadow = store(&self.cfg, C, Some(copy), self.height);
        let expired: Vec<PaymentHash> = (shadow.get_and_clear_pending_events().into_iter())
            .filter_map(|e| match e {
                Event::PaymentClaimExpired { payment_hash, .. } => Some(payment_hash),
                _ => None,
            })
            .collect();
        shadow.process_pending_forwards();
        for h in &self.order {
            let p = &self.pays[h];
            if p.received == 0 || p.decided.is_some() || expired.contains(h) {
                continue;
            }
            bump(Count::ShadowClaims);
            if let Err(e) = shadow.claim_funds(p.preimage) {
                self.fail(format!(
                    "crashed now, C could not claim announced {}: {e} ({p:?})",
                    short_hash(h)
                ));
            }
        }
    }
    fn forwards(&mut self) {
        for i in 0..3 {
            self.nodes[i].process_pending_forwards();
        }
    }
    fn settle(&mut self) {
        for _ in 0..10_000 {
            self.events();
            self.forwards();
            let mut moved = false;
            for l in 0..4 {
                moved |= self.deliver(l);
            }
            if !moved {
                self.events();
                return;
            }
        }
        self.fail("never quiet".into());
    }
    fn audit(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            if let Err(e) = n.check_value_conserved() {
                self.fail(format!("{}: {e}", NAMES[i]));
            }
            if let Err(e) = n.check_commitments_fully_paid() {
                self.fail(format!("{}: {e}", NAMES[i]));
            }
        }
    }
    /// C claims `hash` (the user's claim): an announced, undecided payment
    /// must be claimable.
    fn claim(&mut self, hash: PaymentHash) {
        let p = self.pays[&hash].clone();
        if matches!(p.decided, Some(Decided::Fail) | Some(Decided::Expired)) {
            return;
        }
        let res = self.nodes[C].claim_funds(p.preimage);
        self.log
            .push(format!("c claims {} -> {res:?}", short_hash(&hash)));
        match res {
            Ok(()) => {
                bump(Count::Claims);
                if p.received == 0 {
                    bump(Count::EarlyClaims);
                }
                self.pays.get_mut(&hash).unwrap().decided = Some(Decided::Claim);
                // A confused user fails what it claimed: nothing to fail.
                if hash.0[31].is_multiple_of(4) {
                    let res = self.nodes[C].fail_htlc_backwards(&hash);
                    self.log
                        .push(format!("c fails claimed {} -> {res:?}", short_hash(&hash)));
                    if !matches!(res, Err(StoreError::UnknownPayment { .. })) {
                        self.fail(format!("failing a claimed payment: {res:?}"));
                    }
                }
            }
            Err(StoreError::UnknownPayment { .. }) if p.decided.is_some() => {}
            Err(StoreError::UnknownPayment { .. }) if p.received == 0 => {
                // Not announced then: its `PaymentReceived`, if any, must
                // come later, not be waiting already.
                self.events();
                let q = &self.pays[&hash];
                if q.received > 0 && q.decided.is_none() {
                    self.fail(format!(
                        "claim of {} refused while its PaymentReceived waited ({q:?})",
                        short_hash(&hash)
                    ));
                }
            }
            Err(e) => {
                // An expiry the store decided and the user had not read yet
                // is the one excuse.
                self.events();
                if self.pays[&hash].decided != Some(Decided::Expired) {
                    self.fail(format!(
                        "announced payment {} not claimable: {e} ({p:?})",
                        short_hash(&hash)
                    ))
                }
            }
        }
    }
    fn fail_back(&mut self, hash: PaymentHash) {
        let p = self.pays[&hash].clone();
        if p.decided.is_some() {
            return;
        }
        let res = self.nodes[C].fail_htlc_backwards(&hash);
        self.log
            .push(format!("c fails {} -> {res:?}", short_hash(&hash)));
        match res {
            Ok(()) => {
                bump(Count::Fails);
                self.pays.get_mut(&hash).unwrap().decided = Some(Decided::Fail);
            }
            Err(StoreError::UnknownPayment { .. }) if p.received == 0 => {}
            Err(e) => {
                self.events();
                if self.pays[&hash].decided != Some(Decided::Expired) {
                    self.fail(format!("fail_htlc_backwards: {e}"))
                }
            }
        }
    }
    fn send_part(&mut self, hash: PaymentHash, k: usize) {
        let p = &self.pays[&hash];
        let part = p.parts[k].clone();
        if part.sent {
            return;
        }
        let mut route = route_to(&self.nodes[C], self.scids[part.payer]);
        // Some parts give C more blocks than its minimum (an invoice's
        // `c`, or a longer route's slack): 42, 62 or 82.
        let extra = [0, 20, 40][usize::from(hash.0[k % 32]) % 3];
        if extra > 0 {
            route.hops[0].cltv_expiry_delta = 42 + extra;
        }
        let res = self.nodes[part.payer].send_payment_part(
            &route,
            hash,
            part.amount,
            p.total,
            p.fields.clone(),
        );
        self.log.push(format!(
            "{} sends {} of {} for {} -> {}",
            NAMES[part.payer],
            part.amount,
            p.total,
            short_hash(&hash),
            if res.is_ok() {
                "ok".into()
            } else {
                format!("{res:?}")
            }
        ));
        if res.is_ok() {
            self.pays.get_mut(&hash).unwrap().parts[k].sent = true;
        }
    }
}

fn short_hash(h: &PaymentHash) -> String {
    h.0[..3].iter().map(|b| format!("{b:02x}")).collect()
}

/// What a schedule plays.
#[derive(Clone, Copy)]
struct Plays {
    /// A and B on persisters, and crashing too.
    payers_crash: bool,
}

fn run(seed: u64, steps: usize, plays: Plays) {
    let cfg = chanstore::StoreConfig {
        max_dust_htlc_exposure_msat: 1_000_000_000,
        ..Default::default()
    };
    let mut rng = Rng::new(seed);
    let durable =
        |i: usize| (i == C || plays.payers_crash).then(|| Arc::new(MemoryPersister::new()));
    let disks = [durable(A), durable(B), durable(C)];
    let nodes = [0, 1, 2].map(|i| store(&cfg, i, disks[i].clone(), HEIGHT));
    connect_all(&[&nodes[A], &nodes[C]]);
    connect_all(&[&nodes[B], &nodes[C]]);
    let (ca, sa) = open_channel(&nodes[A], &nodes[C], 1_000_000, 0);
    let (cb, sb) = open_channel(&nodes[B], &nodes[C], 1_000_000, 0);
    for n in &nodes {
        n.flush().unwrap();
    }
    let before: Vec<[u64; 2]> = [ca, cb]
        .iter()
        .map(|id| {
            [
                nodes[if *id == ca { A } else { B }]
                    .channel_details(id)
                    .unwrap()
                    .balance_msat,
                nodes[C].channel_details(id).unwrap().balance_msat,
            ]
        })
        .collect();
    let key = ExpandedKey::new(&bitcoin::secp256k1::SecretKey::from_slice(&[3; 32]).unwrap());
    let mut sim = Sim {
        nodes,
        disks,
        cfg: cfg.clone(),
        height: HEIGHT,
        max_blocks: MAX_BLOCKS,
        queues: Default::default(),
        scids: [sa, sb],
        chans: [ca, cb],
        log: vec![],
        pays: HashMap::new(),
        order: vec![],
        to_retry: vec![],
    };
    let mut n_pay = 0u16;
    // How calm the schedule is: more deliveries between the rest.
    let calm = 40 + rng.below(4) * 40;
    // How eager the user is to decide what was announced (1: at once).
    // A quarter of the schedules: a user who decides nothing until the
    // end, with blocks coming fast (payments expire).
    let idle = rng.below(4) == 0;
    let eager = if idle { u64::MAX } else { 1 + rng.below(3) * 4 };
    // How often the user reads events.
    let reads = 1 + rng.below(16);
    // How fast blocks come, in steps.
    let blocks = if idle {
        4 + rng.below(8)
    } else {
        8 + rng.below(40)
    };
    if idle {
        sim.max_blocks = MAX_BLOCKS_IDLE;
    }
    // Whether payers send failed parts again.
    let retry = rng.below(2) == 0;
    for _ in 0..steps {
        bump(Count::StepsRun);
        match rng.below(calm) {
            // A new payment: in two parts (A and B), sometimes three
            // (A, B, A), or in one part.
            0..=3 => {
                n_pay += 1;
                let derived = rng.below(2) == 0;
                // As C's `create_inbound_payment` and
                // `create_inbound_payment_for_hash` make them, but with the
                // schedule's own randomness (and today's start for the
                // time), so that a seed replays exactly.
                let today = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
                    / 86_400
                    * 86_400;
                let (hash, preimage, secret) = if derived {
                    let mut random = [0u8; 16];
                    random[..8].copy_from_slice(&rng.next().to_be_bytes());
                    random[8..].copy_from_slice(&seed.to_be_bytes());
                    let (hash, secret) =
                        inbound_payment::create(&key, None, 2 * 86_400, today, random).unwrap();
                    let pre = inbound_payment::get_payment_preimage(&key, &hash, &secret).unwrap();
                    (hash, pre, secret)
                } else {
                    let pre = preimage(9, n_pay);
                    let hash = pre.payment_hash();
                    let secret =
                        inbound_payment::create_from_hash(&key, hash, None, 2 * 86_400, today)
                            .unwrap();
                    (hash, pre, secret)
                };
                let unit = 1_000_000;
                let parts: Vec<Part> = match rng.below(6) {
                    0 => vec![Part {
                        payer: rng.below(2) as usize,
                        amount: unit * (1 + rng.below(4)),
                        sent: false,
                    }],
                    1 => vec![
                        Part {
                            payer: A,
                            amount: unit,
                            sent: false,
                        },
                        Part {
                            payer: B,
                            amount: 2 * unit,
                            sent: false,
                        },
                        Part {
                            payer: A,
                            amount: unit / 2,
                            sent: false,
                        },
                    ],
                    _ => {
                        let first = rng.below(2) as usize;
                        vec![
                            Part {
                                payer: first,
                                amount: unit * (1 + rng.below(3)),
                                sent: false,
                            },
                            Part {
                                payer: 1 - first,
                                amount: unit * (1 + rng.below(3)),
                                sent: false,
                            },
                        ]
                    }
                };
                let total = parts.iter().map(|p| p.amount).sum();
                sim.log.push(format!(
                    "new payment {} total {total} parts {:?} derived {derived}",
                    short_hash(&hash),
                    parts
                        .iter()
                        .map(|p| (NAMES[p.payer], p.amount))
                        .collect::<Vec<_>>()
                ));
                sim.pays.insert(
                    hash,
                    Pay {
                        total,
                        preimage,
                        fields: RecipientOnionFields::secret_only(secret),
                        derived,
                        parts,
                        received: 0,
                        ok: [0; 2],
                        failed: [0; 2],
                        decided: None,
                        retries: 0,
                    },
                );
                sim.order.push(hash);
                sim.send_part(hash, 0);
                if rng.below(2) == 0 {
                    let n = sim.pays[&hash].parts.len();
                    for k in 1..n {
                        sim.send_part(hash, k);
                    }
                }
            }
            // A part not sent yet (or whose send was refused) goes.
            4..=6 => {
                let unsent: Vec<(PaymentHash, usize)> = (sim.order.iter())
                    .flat_map(|h| {
                        let p = &sim.pays[h];
                        (0..p.parts.len())
                            .filter(|&k| !p.parts[k].sent)
                            .map(move |k| (*h, k))
                    })
                    .collect();
                if !unsent.is_empty() {
                    let (h, k) = unsent[rng.below(unsent.len() as u64) as usize];
                    sim.send_part(h, k);
                }
            }
            // Claim: an announced payment mostly, sometimes one not (yet).
            7..=9 if rng.below(eager) == 0 => {
                let received: Vec<PaymentHash> = (sim.order.iter())
                    .filter(|h| sim.pays[h].received > 0 && sim.pays[h].decided.is_none())
                    .copied()
                    .collect();
                // Not announced (as far as the user read): claimed early, as
                // a user holding the preimage may.
                let unread: Vec<PaymentHash> = (sim.order.iter())
                    .filter(|h| {
                        let p = &sim.pays[h];
                        p.received == 0 && p.decided.is_none() && p.parts.iter().all(|x| x.sent)
                    })
                    .copied()
                    .collect();
                if !received.is_empty() && rng.below(3) != 0 {
                    let h = received[rng.below(received.len() as u64) as usize];
                    sim.claim(h);
                } else if !unread.is_empty() {
                    let h = unread[rng.below(unread.len() as u64) as usize];
                    sim.claim(h);
                }
            }
            10 if rng.below(eager) == 0 => {
                let received: Vec<PaymentHash> = (sim.order.iter())
                    .filter(|h| sim.pays[h].received > 0 && sim.pays[h].decided.is_none())
                    .copied()
                    .collect();
                if !received.is_empty() && rng.below(3) != 0 {
                    let h = received[rng.below(received.len() as u64) as usize];
                    sim.fail_back(h);
                } else if !sim.order.is_empty() {
                    let h = sim.order[rng.below(sim.order.len() as u64) as usize];
                    sim.fail_back(h);
                }
            }
            11 => {
                sim.log.push("c timer".into());
                sim.nodes[C].timer_tick_occurred();
            }
            _ if rng.below(blocks) == 0 => {
                if sim.height < HEIGHT + sim.max_blocks {
                    sim.height += 1;
                    let h = sim.height;
                    sim.log.push(format!("block {h}"));
                    for n in &sim.nodes {
                        n.best_block_updated(h);
                    }
                }
            }
            14..=15 => {
                let payer = rng.below(2) as usize;
                sim.reconnect(payer);
            }
            16 => {
                // Disconnected a while: reconnected at some later step.
                let payer = rng.below(2) as usize;
                sim.disconnect(payer);
                for _ in 0..rng.below(4) {
                    sim.forwards();
                }
                sim.connect(payer);
            }
            17..=18 if rng.below(2) == 0 => {
                let collect = rng.below(2) == 0;
                let blocks = if rng.below(3) == 0 {
                    1 + rng.below(3) as u32
                } else {
                    0
                };
                let lag = (rng.below(4) as u32)
                    .saturating_sub(1)
                    .min(sim.height - HEIGHT);
                sim.crash(C, collect, blocks, lag);
            }
            19 if plays.payers_crash && rng.below(3) == 0 => {
                let i = rng.below(2) as usize;
                let collect = rng.below(2) == 0;
                sim.crash(i, collect, 0, 0);
            }
            20..=21 => sim.forwards(),
            // A payer sends again a part that failed, as a payer retrying
            // a payment in parts does (same hash, secret and total).
            22..=26 if retry && !sim.to_retry.is_empty() => {
                let k = rng.below(sim.to_retry.len() as u64) as usize;
                let (h, payer) = sim.to_retry.swap_remove(k);
                let p = sim.pays.get_mut(&h).unwrap();
                if p.decided.is_some() {
                    continue;
                }
                let amount = amount_of(p, payer);
                p.parts.push(Part {
                    payer,
                    amount,
                    sent: false,
                });
                p.retries += 1;
                bump(Count::Retries);
                let n = p.parts.len();
                sim.log
                    .push(format!("{} retries {}", NAMES[payer], short_hash(&h)));
                sim.send_part(h, n - 1);
            }
            _ => {
                let l = rng.below(4) as usize;
                let delivered = sim.deliver(l);
                // A user holding the preimage may claim at once, before
                // reading `PaymentReceived`: right after what may have
                // completed a payment.
                if delivered && !idle && LINKS[l].1 == C && rng.below(3) == 0 {
                    let unread: Vec<PaymentHash> = (sim.order.iter())
                        .filter(|h| {
                            let p = &sim.pays[h];
                            p.received == 0 && p.decided.is_none() && p.parts.iter().all(|x| x.sent)
                        })
                        .copied()
                        .collect();
                    if !unread.is_empty() {
                        let h = unread[rng.below(unread.len() as u64) as usize];
                        sim.claim(h);
                    }
                }
            }
        }
        // Events are sometimes left unread for a while: they must survive
        // a crash.
        if rng.below(reads) == 0 {
            sim.events();
        }
        sim.audit();
        if rng.below(4) == 0 {
            sim.shadow_check();
        }
    }
    // Converge: reconnect everything, settle, claim what was announced,
    // let the timers fail what never completed.
    sim.log.push("== final ==".into());
    for payer in [A, B] {
        sim.reconnect(payer);
    }
    sim.settle();
    for _ in 0..6 {
        let received: Vec<PaymentHash> = (sim.order.iter())
            .filter(|h| sim.pays[h].received > 0 && sim.pays[h].decided.is_none())
            .copied()
            .collect();
        for h in received {
            sim.claim(h);
        }
        sim.settle();
        sim.nodes[C].timer_tick_occurred();
        sim.settle();
    }
    sim.audit();
    let mut delta = [0u64; 2];
    for h in &sim.order {
        let p = &sim.pays[h];
        let mut parts_of = [0usize; 2];
        for part in p.parts.iter().filter(|part| part.sent) {
            parts_of[part.payer] += 1;
        }
        for payer in [A, B] {
            if p.ok[payer] + p.failed[payer] != parts_of[payer] {
                sim.fail(format!(
                    "payment {} must end once per part: {} of {} has {} sent, {} failed ({p:?})",
                    short_hash(h),
                    NAMES[payer],
                    parts_of[payer],
                    p.ok[payer],
                    p.failed[payer]
                ));
            }
        }
        let ok = p.ok[0] + p.ok[1];
        let failed = p.failed[0] + p.failed[1];
        if p.retries == 0 && ok > 0 && failed > 0 {
            sim.fail(format!(
                "payment {} partly fulfilled, partly failed: C gave out the preimage for less than the total ({p:?})",
                short_hash(h)
            ));
        }
        if p.retries > 0 && ok > 0 {
            let paid = p.ok[A] as u64 * amount_of(p, A) + p.ok[B] as u64 * amount_of(p, B);
            if paid != p.total {
                sim.fail(format!(
                    "payment {} fulfilled for {paid} of {} ({p:?})",
                    short_hash(h),
                    p.total
                ));
            }
        }
        if ok > 0 {
            if p.decided != Some(Decided::Claim) {
                sim.fail(format!("fulfilled but not claimed: {p:?}"));
            }
            if p.retries == 0 && p.parts.iter().any(|part| !part.sent) {
                sim.fail(format!("fulfilled with a part never sent: {p:?}"));
            }
            for payer in [A, B] {
                if p.retries == 0 {
                    delta[payer] += (p.parts.iter())
                        .filter(|x| x.payer == payer)
                        .map(|x| x.amount)
                        .sum::<u64>();
                } else {
                    delta[payer] += p.ok[payer] as u64 * amount_of(p, payer);
                }
            }
            if p.parts.len() > 1 {
                bump(Count::MppPaid);
            }
            if p.retries > 0 {
                bump(Count::RetriedPaid);
            }
        } else if p.parts.len() > 1 && failed > 0 {
            bump(Count::MppFailed);
        }
        if p.decided == Some(Decided::Claim) && ok == 0 {
            sim.fail(format!("claimed, never fulfilled: {p:?}"));
        }
        if p.decided == Some(Decided::Claim) && failed > 0 && p.retries == 0 {
            sim.fail(format!("claimed, yet failed: {p:?}"));
        }
    }
    if std::env::var("LOG").is_ok() {
        eprintln!("{:#?}", sim.log);
    }
    for (k, id) in sim.chans.iter().enumerate() {
        let payer = k;
        for (side, node) in [(0, payer), (1, C)] {
            let d = sim.nodes[node].channel_details(id).unwrap();
            if d.pending_htlcs != 0 {
                sim.fail(format!(
                    "{} still has {} htlcs: {d:?}",
                    NAMES[node], d.pending_htlcs
                ));
            }
            let want = if side == 0 {
                before[k][0] - delta[payer]
            } else {
                before[k][1] + delta[payer]
            };
            if d.balance_msat != want {
                sim.fail(format!(
                    "{} balance on {}'s channel {} != {want}",
                    NAMES[node], NAMES[payer], d.balance_msat
                ));
            }
        }
    }
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

fn steps() -> usize {
    std::env::var("STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

fn run_all(plays: Plays, default_seeds: u64) {
    for seed in seeds(default_seeds) {
        eprintln!("seed {seed}");
        run(seed, steps(), plays);
    }
    eprintln!(
        "steps {} crashes {} claims {} (early {}) fails {} expired {} mpp paid {} mpp failed {} retries {} paid after retry {} shadow claims {}",
        count(Count::StepsRun),
        count(Count::Crashes),
        count(Count::Claims),
        count(Count::EarlyClaims),
        count(Count::Fails),
        count(Count::Expired),
        count(Count::MppPaid),
        count(Count::MppFailed),
        count(Count::Retries),
        count(Count::RetriedPaid),
        count(Count::ShadowClaims),
    );
}

#[test]
fn mpp_crash_schedules() {
    run_all(
        Plays {
            payers_crash: false,
        },
        10,
    );
}

#[test]
fn mpp_crash_schedules_payers_crash_too() {
    run_all(Plays { payers_crash: true }, 10);
}

/// A payment in two parts (A's and B's) that C announced and the user
/// never claimed: C is down while the blocks pass its fail-back deadline
/// and restarts at that height. Restart fails both parts back (with
/// `PaymentClaimExpired`), so a late claim finds nothing; each payer hears
/// its part failed, none fulfilled.
#[test]
fn an_announced_payment_expiring_while_down_fails_every_part() {
    let cfg = chanstore::StoreConfig::default();
    let disk = Arc::new(MemoryPersister::new());
    let (a, b) = (store(&cfg, A, None, HEIGHT), store(&cfg, B, None, HEIGHT));
    let c = store(&cfg, C, Some(disk.clone()), HEIGHT);
    connect_all(&[&a, &c]);
    connect_all(&[&b, &c]);
    let (_, sa) = open_channel(&a, &c, 1_000_000, 0);
    let (_, sb) = open_channel(&b, &c, 1_000_000, 0);
    let pre = preimage(9, 4242);
    let hash = pre.payment_hash();
    let fields = RecipientOnionFields::secret_only(secret_for(&c.node_id(), hash));
    a.send_payment_part(
        &route_to(&c, sa),
        hash,
        3_000_000,
        5_000_000,
        fields.clone(),
    )
    .unwrap();
    b.send_payment_part(&route_to(&c, sb), hash, 2_000_000, 5_000_000, fields)
        .unwrap();
    deliver_all(&[&a, &b, &c]);
    assert!(events(&c).iter().any(|e| matches!(
        e,
        Event::PaymentReceived {
            amount_msat: 5_000_000,
            ..
        }
    )));
    let _ = (events(&a), events(&b));
    drop(c);
    // Default expiry: 42 blocks; failed back 21 before.
    let height = HEIGHT + 21;
    for n in [&a, &b] {
        n.best_block_updated(height);
    }
    let c = store(&cfg, C, Some(disk), height);
    let evs = events(&c);
    assert!(
        evs.iter()
            .any(|e| matches!(e, Event::PaymentClaimExpired { payment_hash, .. } if *payment_hash == hash)),
        "{evs:?}"
    );
    assert!(matches!(
        c.claim_funds(pre),
        Err(StoreError::UnknownPayment { .. })
    ));
    for payer in [&a, &b] {
        payer.peer_disconnected(&c.node_id());
        connect_all(&[payer, &c]);
    }
    deliver_all(&[&a, &b, &c]);
    for (who, payer) in [("A", &a), ("B", &b)] {
        let evs = events(payer);
        let failed = evs
            .iter()
            .filter(|e| matches!(e, Event::PaymentFailed { .. }))
            .count();
        let sent = evs
            .iter()
            .filter(|e| matches!(e, Event::PaymentSent { .. }))
            .count();
        assert_eq!((sent, failed), (0, 1), "{who}: {evs:?}");
    }
    for n in [&a, &b, &c] {
        n.check_value_conserved().unwrap();
        n.check_commitments_fully_paid().unwrap();
    }
}
