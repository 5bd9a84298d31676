//! Issues 11 and 14: crash the hub after every prefix of its batches, on
//! every backend (memory, file, SQLite, PostgreSQL).
//!
//! Nodes A - B - C; A pays C through B. Each scenario is run once to count
//! the batches B writes (one per group commit: for the SQL backends, one
//! transaction), then once more for every batch boundary `k`: B dies at
//! batch `k + 1` (B is dead from that write on: its messages from then are
//! never sent, and what it had not sent yet is lost with it), B restarts
//! from what its storage kept, reconnects, and the network runs to quiet.
//! Closed channels are then settled the way a user watching the chain
//! would: an HTLC whose receiver knows the preimage is claimed, any other is
//! timed out by its offerer. Then:
//!
//! * the reopened storage holds exactly the first `k` batches, plus batch
//!   `k + 1` where the crash let it commit (checked by [`dying::Dying`]);
//! * every payment A started ended exactly once (`PaymentSent` or
//!   `PaymentFailed`, never both, never neither);
//! * a preimage known downstream is never lost upstream: C claimed a
//!   payment if and only if A has `PaymentSent` for it;
//! * B's fees are exact: one `HtlcForwarded` per payment that reached C,
//!   with B's fee, and no other;
//! * no spurious event: every `OnChainResolutionRequired` B reports is for
//!   an HTLC of a channel it closed;
//! * no HTLC is left in any channel, no closed-channel record is left once
//!   settled, value is conserved and the indexes agree with the channels.
//!
//! How batch `k + 1` dies depends on the backend ([`dying::Cut`]): never
//! written (every backend, also after the last batch); torn, a write that
//! never commits (the file log cut mid-record, SQLite's WAL cut mid-
//! transaction, a Postgres session terminated mid-transaction); written
//! whole with zeros or garbage after it (the file log, SQLite's WAL); rolled
//! back by a failing statement (SQLite); committed with the store dead
//! before it heard so (memory, Postgres). The PostgreSQL case starts one
//! cluster for the whole binary (skipped without PostgreSQL unless
//! `CHANSTORE_REQUIRE_POSTGRES=1`).

mod common;
mod dying;
#[cfg(feature = "postgres")]
mod pg;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chanstore::{
    ChannelId, ChannelStore, Event, HtlcDirection, Message, PaymentHash, PaymentPreimage,
    Persister, Route, RouteHop, ShortChannelId, StoreConfig, StoreError,
};
use common::chain::Chain;
use common::*;
use dying::{Backend, Cut, Dying};

// ---- the network ----

fn config() -> StoreConfig {
    StoreConfig::default()
}

fn secret(seed: u8) -> bitcoin::secp256k1::SecretKey {
    bitcoin::secp256k1::SecretKey::from_slice(&[seed; 32]).unwrap()
}

fn hub(p: Arc<dyn Persister>) -> ChannelStore {
    ChannelStore::with_persister(config(), secret(2), HEIGHT, p).unwrap()
}

struct World {
    a: ChannelStore,
    b: ChannelStore,
    c: ChannelStore,
    disk: Arc<Dying>,
    /// Batches B wrote during the setup (opening the two channels).
    setup: usize,
    ab: ChannelId,
    bc: ChannelId,
    scid_ab: ShortChannelId,
    scid_bc: ShortChannelId,
    /// B's disk died (its store refuses everything).
    dead: bool,
    /// Events of each node, as the user took them.
    a_events: Vec<Event>,
    b_events: Vec<Event>,
    c_events: Vec<Event>,
    /// Payments C claimed.
    claimed: BTreeSet<PaymentHash>,
    /// Preimages by hash, for C's decisions and the chain oracle.
    preimages: HashMap<PaymentHash, PaymentPreimage>,
    /// What each payment delivers to C.
    amounts: HashMap<PaymentHash, u64>,
    /// What happened on chain.
    chain: Chain,
    /// Channels B closed (any `OnChainResolutionRequired` must name one).
    b_closed: BTreeSet<ChannelId>,
    /// Policy actions already taken (each is taken once).
    done: BTreeSet<&'static str>,
}

fn route(w: &World, amount: u64) -> Route {
    Route {
        hops: vec![
            RouteHop {
                node_id: w.b.node_id(),
                short_channel_id: w.scid_ab,
                fee_msat: config().forwarding_fee_msat(amount),
                cltv_expiry_delta: config().cltv_expiry_delta.into(),
            },
            RouteHop {
                node_id: w.c.node_id(),
                short_channel_id: w.scid_bc,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            },
        ],
    }
}

impl World {
    fn new(backend: &dyn Backend, die_at: Option<usize>, cut: Cut) -> World {
        let disk = Arc::new(Dying::new(backend, die_at, cut));
        let (a, b, c) = (node(1), hub(disk.clone()), node(3));
        connect_all(&[&a, &b, &c]);
        let (ab, scid_ab) = open_channel(&a, &b, 1_000_000, 200_000_000);
        let (bc, scid_bc) = open_channel(&b, &c, 1_000_000, 200_000_000);
        for n in [&a, &b, &c] {
            n.get_and_clear_pending_events();
        }
        World {
            a,
            b,
            c,
            setup: disk.written(),
            disk,
            ab,
            bc,
            scid_ab,
            scid_bc,
            dead: false,
            a_events: Vec::new(),
            b_events: Vec::new(),
            c_events: Vec::new(),
            claimed: BTreeSet::new(),
            preimages: HashMap::new(),
            amounts: HashMap::new(),
            chain: Chain::default(),
            b_closed: BTreeSet::new(),
            done: BTreeSet::new(),
        }
    }

    /// True the first time it is asked for `action`.
    fn once(&mut self, action: &'static str) -> bool {
        self.done.insert(action)
    }

    fn batches(&self) -> usize {
        self.disk.written()
    }

    fn nodes(&self) -> [&ChannelStore; 3] {
        [&self.a, &self.b, &self.c]
    }

    fn pay(&mut self, n: u16, amount: u64) -> PaymentHash {
        let p = preimage(0x70, n);
        self.preimages.insert(p.payment_hash(), p);
        self.amounts.insert(p.payment_hash(), amount);
        self.a
            .pay_invoice(&route(self, amount), p.payment_hash(), amount)
            .unwrap();
        p.payment_hash()
    }

    /// Delivers one round of messages and forwards. Messages to or from a
    /// dead B are lost. Returns whether anything moved.
    fn pump(&mut self) -> bool {
        let mut moved = false;
        let mut dead = self.dead;
        let nodes = [&self.a, &self.b, &self.c];
        for (i, from) in nodes.iter().enumerate() {
            if i == 1 && dead {
                continue;
            }
            for (to, m) in from.get_and_clear_pending_msg_events() {
                moved = true;
                let j = nodes.iter().position(|n| n.node_id() == to).unwrap();
                if j == 1 && dead {
                    continue;
                }
                let wire = Message::decode(&m.encode()).unwrap();
                match nodes[j].handle_message(&from.node_id(), wire) {
                    Ok(()) => {}
                    Err(StoreError::Persist(_)) if j == 1 => dead = true,
                    // A message that crossed the receiver's close (its
                    // `error` is on its way to the sender).
                    Err(StoreError::UnknownChannel { channel_id })
                        if nodes[j].channel_details(&channel_id).is_none()
                            && [self.ab, self.bc].contains(&channel_id) => {}
                    Err(e) => panic!("{} refused {}: {e}", short(&to), m.name()),
                }
            }
            if !(i == 1 && dead) && from.process_pending_forwards() > 0 {
                moved = true;
            }
            dead |= self.b.is_failed();
        }
        self.dead = dead;
        moved
    }

    /// Takes A's and C's events (they never crash). B's stay with B until
    /// the end: taking an event deletes it in a batch of its own, and a
    /// crash around that batch would make the count depend on the crash
    /// point (delivered once, or lost, by design), not on the rule tested.
    fn take_events(&mut self) {
        self.a_events.extend(self.a.get_and_clear_pending_events());
        self.c_events.extend(self.c.get_and_clear_pending_events());
        if !self.dead {
            for c in self.b.closed_channels() {
                self.b_closed.insert(c.channel_id);
            }
        }
    }

    /// B's events, taken once at the end.
    fn take_b_events(&mut self) {
        for e in self.b.get_and_clear_pending_events() {
            match &e {
                Event::ChannelClosed { channel_id, .. } => {
                    self.b_closed.insert(*channel_id);
                }
                Event::OnChainResolutionRequired { htlc } => {
                    assert!(
                        self.b_closed.contains(&htlc.channel_id),
                        "spurious resolution: {e:?}"
                    );
                }
                _ => {}
            }
            self.b_events.push(e);
        }
    }

    /// Runs to quiet, with C's policy applied at every step.
    fn run(&mut self, policy: &mut dyn FnMut(&mut World)) {
        for _ in 0..200 {
            let moved = self.pump();
            self.take_events();
            policy(self);
            if !moved && !self.pump() {
                return;
            }
        }
        panic!("the network did not settle");
    }

    /// B restarts from what it wrote; everyone reconnects.
    fn restart_b(&mut self) {
        for n in [&self.a, &self.c] {
            n.peer_disconnected(&self.b.node_id());
        }
        let disk = self.disk.restart();
        self.b = hub(disk);
        self.dead = false;
        for n in [&self.a, &self.c] {
            n.peer_connected(self.b.node_id());
            self.b.peer_connected(n.node_id());
        }
    }

    /// Runs to quiet and settles on chain until nothing is left.
    fn finish(&mut self, policy: &mut dyn FnMut(&mut World)) {
        for round in 0..20 {
            self.run(policy);
            let final_round = round >= 3;
            let nodes = [
                Some(&self.a),
                (!self.dead).then_some(&self.b),
                Some(&self.c),
            ];
            if !self.chain.settle(&nodes, final_round) && final_round {
                self.run(policy);
                return;
            }
        }
        panic!("closed channels never settled");
    }

    /// The checks of the module doc.
    fn check(&self, payments: &[PaymentHash], context: &str) {
        for hash in payments {
            let sent = self
                .a_events
                .iter()
                .filter(|e| matches!(e, Event::PaymentSent { payment_hash, .. } if payment_hash == hash))
                .count();
            let failed = self
                .a_events
                .iter()
                .filter(|e| matches!(e, Event::PaymentFailed { payment_hash, .. } if payment_hash == hash))
                .count();
            assert_eq!(
                sent + failed,
                1,
                "{context}: payment {hash} ended {sent} + {failed} times"
            );
            assert_eq!(
                sent == 1,
                self.claimed.contains(hash),
                "{context}: payment {hash}: sent={sent}, claimed by C={}",
                self.claimed.contains(hash)
            );
        }
        // B never pays downstream what it is not paid upstream: its HTLC to
        // C ended fulfilled (C claimed) only if A's HTLC to B did, off chain
        // (A has PaymentSent for it) or claimed by B on chain.
        for hash in payments {
            let upstream = match self.chain.outcome(1, &self.ab, HtlcDirection::Received, hash) {
                Some(fulfilled) => fulfilled,
                None => self
                    .a_events
                    .iter()
                    .any(|e| matches!(e, Event::PaymentSent { payment_hash, .. } if payment_hash == hash)),
            };
            let downstream = self.claimed.contains(hash);
            assert!(
                !downstream || upstream,
                "{context}: B paid C for {hash} but was not paid by A"
            );
        }
        let forwarded: Vec<u64> = self
            .b_events
            .iter()
            .filter_map(|e| match e {
                Event::HtlcForwarded {
                    fee_earned_msat, ..
                } => Some(*fee_earned_msat),
                _ => None,
            })
            .collect();
        let mut expected: Vec<u64> = self
            .claimed
            .iter()
            .map(|h| config().forwarding_fee_msat(self.amounts[h]))
            .collect();
        expected.sort();
        let mut forwarded = forwarded;
        forwarded.sort();
        assert_eq!(forwarded, expected, "{context}: B's forwarding fees");
        for n in self.nodes() {
            for d in n.list_channels() {
                assert_eq!(
                    d.pending_htlcs,
                    0,
                    "{context}: {} left an HTLC in {d:?}",
                    short(&n.node_id())
                );
            }
            assert!(
                n.closed_channels().is_empty(),
                "{context}: a closed channel was left unsettled"
            );
            n.check_value_conserved().unwrap();
            n.check_indexes().unwrap();
            assert_eq!(n.pending_forwards(), 0, "{context}");
        }
    }
}

const AMOUNT: u64 = 4_000_000;

/// A scenario: what starts it, and what the users do as it unfolds.
struct Scenario {
    name: &'static str,
    start: fn(&mut World) -> Vec<PaymentHash>,
    policy: fn(&mut World),
}

/// C claims every payment it receives.
fn c_claims(w: &mut World) {
    let received: Vec<PaymentHash> = w
        .c_events
        .iter()
        .filter_map(|e| match e {
            Event::PaymentReceived { payment_hash, .. } => Some(*payment_hash),
            _ => None,
        })
        .collect();
    for h in received {
        if w.claimed.insert(h) {
            w.c.claim_funds(w.preimages[&h]).unwrap();
        }
    }
}

/// C fails every payment it receives.
fn c_fails(w: &mut World) {
    let received: Vec<PaymentHash> = w
        .c_events
        .drain(..)
        .filter_map(|e| match e {
            Event::PaymentReceived { payment_hash, .. } => Some(payment_hash),
            _ => None,
        })
        .collect();
    for h in received {
        let _ = w.c.fail_htlc_backwards(&h);
    }
}

fn two_payments(w: &mut World) -> Vec<PaymentHash> {
    vec![w.pay(1, AMOUNT), w.pay(2, AMOUNT + 100_000)]
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "success",
            start: two_payments,
            policy: c_claims,
        },
        Scenario {
            name: "failure downstream",
            start: two_payments,
            policy: c_fails,
        },
        Scenario {
            name: "C fails the channel once paid, then claims on chain",
            start: two_payments,
            policy: |w| {
                let received = w
                    .c_events
                    .iter()
                    .any(|e| matches!(e, Event::PaymentReceived { .. }));
                if received && w.c.channel_details(&w.bc).is_some() {
                    w.c.force_close_channel(&w.bc).unwrap();
                }
                c_claims(w);
            },
        },
        Scenario {
            name: "A force-closes mid-payment",
            start: two_payments,
            policy: |w| {
                let c_received = w
                    .c_events
                    .iter()
                    .any(|e| matches!(e, Event::PaymentReceived { .. }));
                if c_received && w.a.channel_details(&w.ab).is_some() {
                    w.a.force_close_channel(&w.ab).unwrap();
                }
                c_claims(w);
            },
        },
        Scenario {
            name: "A force-closes once B's fulfill reached it",
            start: two_payments,
            policy: |w| {
                let sent = w
                    .a_events
                    .iter()
                    .any(|e| matches!(e, Event::PaymentSent { .. }));
                if sent && w.once("close") {
                    w.a.force_close_channel(&w.ab).unwrap();
                }
                c_claims(w);
            },
        },
        Scenario {
            name: "cooperative close with HTLCs settling",
            start: |w| {
                let hashes = two_payments(w);
                w.a.close_channel(&w.ab).unwrap();
                hashes
            },
            policy: c_claims,
        },
        Scenario {
            name: "reconnects and update_fee",
            start: |w| {
                let hashes = two_payments(w);
                // B may already be dead (a crash in its very first batch).
                let _ = w.b.update_fee(&w.bc, 1_000);
                hashes
            },
            policy: |w| {
                let received = w
                    .c_events
                    .iter()
                    .any(|e| matches!(e, Event::PaymentReceived { .. }));
                if received && w.once("reconnect") {
                    // Mid-flow, A and B lose their connection.
                    w.a.peer_disconnected(&w.b.node_id());
                    w.b.peer_disconnected(&w.a.node_id());
                    w.b.peer_connected(w.a.node_id());
                    w.a.peer_connected(w.b.node_id());
                }
                c_claims(w);
            },
        },
        Scenario {
            name: "C silent past the HTLC deadline",
            start: |w| vec![w.pay(1, AMOUNT)],
            policy: |w| {
                let received = w
                    .c_events
                    .iter()
                    .any(|e| matches!(e, Event::PaymentReceived { .. }));
                if received && w.once("silence") {
                    // C goes silent for good (and closes its side).
                    w.c.peer_disconnected(&w.b.node_id());
                    w.b.peer_disconnected(&w.c.node_id());
                    w.c.force_close_channel(&w.bc).unwrap();
                }
                if w.done.contains("silence") && !w.dead {
                    // Blocks pass at B, also after a restart.
                    let expiry = HEIGHT + u32::from(config().min_final_cltv_expiry_delta);
                    let deadline = expiry + config().htlc_timeout_grace_blocks;
                    if w.b.best_height() < deadline {
                        w.b.best_block_updated(deadline);
                    }
                }
            },
        },
    ]
}

/// One run: the scenario, with B crashing at batch `die_at` (counted from
/// B's first) cut as `cut`, then restarted, and the network settled and
/// checked. Returns the batches B wrote in the setup and in the scenario
/// up to the crash, and whether the crash happened.
fn run_scenario(
    backend: &dyn Backend,
    s: &Scenario,
    die_at: Option<usize>,
    cut: Cut,
) -> (usize, usize, bool) {
    let mut w = World::new(backend, die_at, cut);
    let mut policy = s.policy;
    let payments = (s.start)(&mut w);
    w.run(&mut policy);
    let written = w.batches() - w.setup;
    let died = w.disk.died();
    if w.dead || die_at.is_some() {
        w.restart_b();
    }
    w.finish(&mut policy);
    w.take_b_events();
    let context = format!(
        "{}: {}, crash at batch {die_at:?} ({cut:?})",
        backend.name(),
        s.name
    );
    w.check(&payments, &context);
    // In these scenarios nothing calls for a close: a crash and restart at
    // any write must not make one (a reestablish that failed after a
    // restart would, and the payment checks above would not see it).
    if ["success", "failure downstream", "reconnects and update_fee"].contains(&s.name) {
        let closes: Vec<&Event> = w
            .a_events
            .iter()
            .chain(&w.b_events)
            .chain(&w.c_events)
            .filter(|e| matches!(e, Event::ChannelClosed { .. }))
            .collect();
        assert!(
            closes.is_empty() && w.b_closed.is_empty(),
            "{context}: a crash and restart closed a channel: {closes:?}"
        );
    }
    (w.setup, written, died)
}

/// Every scenario on `backend`, crashed at each of its batches with each
/// cut the backend can suffer: `Clean` also after the last batch, the
/// others inside (or right after) each one.
fn crash_at_every_batch(backend: &dyn Backend) {
    let started = Instant::now();
    let mut runs = 0;
    for s in scenarios() {
        // Count the batches the setup and the scenario write.
        let (setup, batches, _) = run_scenario(backend, &s, None, Cut::Clean);
        for &cut in backend.cuts() {
            let last = if cut == Cut::Clean {
                batches
            } else {
                batches - 1
            };
            for k in 0..=last {
                let (_, _, died) = run_scenario(backend, &s, Some(setup + k), cut);
                assert!(
                    died || k == batches,
                    "{}: {}: no crash at batch {k} ({cut:?}) of {batches}",
                    backend.name(),
                    s.name
                );
                runs += 1;
            }
        }
        eprintln!(
            "{}: {}: {batches} batches, each a crash point",
            backend.name(),
            s.name
        );
    }
    eprintln!(
        "{}: {runs} crash runs ({:?}) in {:.1} s",
        backend.name(),
        backend.cuts(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn crash_points_memory() {
    crash_at_every_batch(&dying::Memory);
}

#[test]
fn crash_points_file() {
    crash_at_every_batch(&dying::File::new());
}

#[cfg(feature = "sqlite")]
#[test]
fn crash_points_sqlite() {
    crash_at_every_batch(&dying::Sqlite::new());
}

/// One cluster for every run, a database per run (server fsync off: only
/// the client ever dies here).
#[cfg(feature = "postgres")]
#[test]
fn crash_points_postgres() {
    let Some(cluster) = pg::Cluster::start("crash-points", &["fsync = off"]) else {
        return;
    };
    let backend = dying::Postgres::new(&cluster.base_conninfo());
    crash_at_every_batch(&backend);
    eprintln!(
        "postgres: {} database(s) for all the runs",
        backend.databases()
    );
}
