//! Issue 15: lazy batches. A batch that releases nothing (a received
//! `revoke_and_ack` nothing answers, `process_pending_events`' deletions)
//! is not committed on its own: it becomes durable with the next commit.
//! A crash can therefore lose it; these tests prove that is harmless, on
//! every backend, and that events stay durable before they are seen.
//!
//! Nodes A and B, one channel; A pays B, then B pays A (LDK's send pair).
//! A writes through a [`dying::Dying`] persister and crashes, B never does.
//! A crashes either at one of its writes (every write, every cut of the
//! backend, as `crash_points.rs`), or right after one of its message polls
//! (`get_and_clear_pending_msg_events`, which commits what its messages wait
//! for): there nothing but lazy batches can be lost. A restarts from what
//! its storage kept, reconnects, and the network runs to quiet. Then:
//!
//! * both payments ended exactly once: the sender's `PaymentSent` (once
//!   per payment; a redelivery after a crash is the same payment, at least
//!   once as `process_pending_events` promises), never `PaymentFailed`, and
//!   the receiver got its `PaymentReceived` and claimed;
//! * the balances are exact: A has paid `TO_B - TO_A`, no HTLC is left,
//!   value is conserved;
//! * some crashes did lose a lazy batch: B had to retransmit a
//!   `revoke_and_ack` that A had received and handled before it crashed
//!   (BOLT 2 reestablish), with none of B's in flight at the crash.

mod common;
mod dying;
#[cfg(feature = "postgres")]
mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chanstore::persist::Key;
use chanstore::{
    ChannelId, ChannelStore, Event, Message, PaymentHash, PaymentPreimage, Persister,
    ShortChannelId, StoreConfig, StoreError,
};
use common::*;
use dying::{Backend, Cut, Dying};

const FUNDING_SAT: u64 = 1_000_000;
const PUSH_MSAT: u64 = 200_000_000;
const TO_B: u64 = 4_000_000;
const TO_A: u64 = 3_000_000;

fn secret(seed: u8) -> bitcoin::secp256k1::SecretKey {
    bitcoin::secp256k1::SecretKey::from_slice(&[seed; 32]).unwrap()
}

fn durable_a(p: Arc<dyn Persister>) -> ChannelStore {
    ChannelStore::with_persister(StoreConfig::default(), secret(1), HEIGHT, p).unwrap()
}

/// Where A dies.
#[derive(Clone, Copy, Debug)]
enum CrashAt {
    /// Never.
    Nowhere,
    /// At its `n`-th write (counted from its first after the setup).
    Write(usize, Cut),
    /// Right after its `n`-th message poll (from the first of the payments).
    Poll(usize),
}

struct World {
    a: ChannelStore,
    b: ChannelStore,
    disk: Arc<Dying>,
    id: ChannelId,
    scid: ShortChannelId,
    crash: CrashAt,
    polls: usize,
    /// A's storage died (its store refuses everything) or A crashed.
    dead: bool,
    restarted: bool,
    /// B retransmitted a `revoke_and_ack` after A's restart, and none of
    /// B's was lost in flight: A had lost one it had handled.
    resent_raa: bool,
    raa_in_flight: bool,
    a_sent_cs_since_restart: bool,
    /// Every event each user was handed, in order.
    a_events: Vec<Event>,
    b_events: Vec<Event>,
    /// What each user claimed (the user's own records survive A's crash).
    claimed: BTreeSet<PaymentHash>,
    preimages: BTreeMap<PaymentHash, PaymentPreimage>,
    second_sent: bool,
    /// A's disk died under `send_payment` of the first payment: whether it
    /// exists depends on whether the crash kept its batch.
    first_unknown: bool,
    setup_writes: usize,
}

impl World {
    fn new(backend: &dyn Backend, crash: CrashAt) -> World {
        let die_at = match crash {
            CrashAt::Write(n, _) => Some(n),
            _ => None,
        };
        let cut = match crash {
            CrashAt::Write(_, cut) => cut,
            _ => Cut::Clean,
        };
        // The write index is relative to the setup: count it first with a
        // disk that never dies (the setup writes the same batches each run).
        let setup_writes = {
            let probe = Arc::new(Dying::new(backend, None, Cut::Clean));
            let a = durable_a(probe.clone());
            let b = node(2);
            connect(&a, &b);
            open_channel(&a, &b, FUNDING_SAT, PUSH_MSAT);
            a.flush().unwrap();
            probe.written()
        };
        let disk = Arc::new(Dying::new(backend, die_at.map(|n| setup_writes + n), cut));
        let a = durable_a(disk.clone());
        let b = node(2);
        connect(&a, &b);
        let (id, scid) = open_channel(&a, &b, FUNDING_SAT, PUSH_MSAT);
        a.flush().unwrap();
        assert_eq!(disk.written(), setup_writes, "the setup is deterministic");
        World {
            a,
            b,
            disk,
            id,
            scid,
            crash,
            polls: 0,
            dead: false,
            restarted: false,
            resent_raa: false,
            raa_in_flight: false,
            a_sent_cs_since_restart: false,
            a_events: Vec::new(),
            b_events: Vec::new(),
            claimed: BTreeSet::new(),
            preimages: BTreeMap::new(),
            second_sent: false,
            first_unknown: false,
            setup_writes,
        }
    }

    fn pay(&mut self, a_to_b: bool, n: u16, amount: u64) {
        let p = preimage(0x15, n);
        self.preimages.insert(p.payment_hash(), p);
        let (from, to) = if a_to_b {
            (&self.a, &self.b)
        } else {
            (&self.b, &self.a)
        };
        let route = route_to(to, self.scid);
        let result = from.pay_invoice(&route, p.payment_hash(), amount);
        match result {
            Ok(_) => {}
            Err(StoreError::Persist(_)) if a_to_b => {
                self.dead = true;
                self.first_unknown = true;
            }
            Err(e) => panic!("send_payment: {e}"),
        }
    }

    /// A dies now: what B had not delivered yet is lost with the
    /// connection (noted if it was a `revoke_and_ack`).
    fn crash_a(&mut self) {
        self.dead = true;
        for (_, m) in self.b.get_and_clear_pending_msg_events() {
            self.raa_in_flight |= matches!(m, Message::RevokeAndAck(_));
        }
    }

    fn restart_a(&mut self) {
        self.b.peer_disconnected(&self.a.node_id());
        let p = self.disk.restart();
        // The old store goes with the process: its last write fails.
        self.a = durable_a(p);
        self.dead = false;
        self.restarted = true;
        connect(&self.a, &self.b);
    }

    /// One round: each node's messages to the other, its forwards, then
    /// the users' events. Returns whether anything moved.
    fn pump(&mut self) -> bool {
        let mut moved = false;
        // A's messages.
        if !self.dead {
            let msgs = self.a.get_and_clear_pending_msg_events();
            self.polls += 1;
            for (_, m) in msgs {
                moved = true;
                self.a_sent_cs_since_restart |=
                    self.restarted && matches!(m, Message::CommitmentSigned(_));
                let wire = Message::decode(&m.encode()).unwrap();
                self.b
                    .handle_message(&self.a.node_id(), wire)
                    .unwrap_or_else(|e| panic!("B refused {}: {e}", m.name()));
            }
            self.dead |= self.a.is_failed();
            if matches!(self.crash, CrashAt::Poll(n) if n + 1 == self.polls) && !self.restarted {
                self.crash_a();
                return true;
            }
        }
        // B's messages (lost while A is dead).
        for (_, m) in self.b.get_and_clear_pending_msg_events() {
            if self.dead {
                self.raa_in_flight |= matches!(m, Message::RevokeAndAck(_));
                continue;
            }
            moved = true;
            if self.restarted
                && !self.a_sent_cs_since_restart
                && matches!(m, Message::RevokeAndAck(_))
            {
                self.resent_raa = true;
            }
            let wire = Message::decode(&m.encode()).unwrap();
            match self.a.handle_message(&self.b.node_id(), wire) {
                Ok(()) => {}
                Err(StoreError::Persist(_)) => self.dead = true,
                Err(e) => panic!("A refused {}: {e}", m.name()),
            }
        }
        moved |= self.b.process_pending_forwards() > 0;
        if !self.dead {
            moved |= self.a.process_pending_forwards() > 0;
        }
        self.users();
        self.dead |= self.a.is_failed();
        moved
    }

    /// Both users take their events at least once
    /// (`process_pending_events`) and claim what they receive inside the
    /// handler (its contract: the handling is done when it returns).
    fn users(&mut self) {
        if !self.dead {
            let (store, claimed, preimages) = (&self.a, &mut self.claimed, &self.preimages);
            let mut dead = false;
            let mut got = Vec::new();
            let result = store.process_pending_events(|e| {
                if let Event::PaymentReceived { payment_hash, .. } = &e {
                    dead |= claim(store, claimed, preimages, payment_hash);
                }
                got.push(e);
            });
            self.a_events.extend(got);
            if let Err(e) = result {
                assert!(matches!(e, StoreError::Persist(_)), "{e}");
                dead = true;
            }
            self.dead |= dead;
        }
        let (store, claimed, preimages) = (&self.b, &mut self.claimed, &self.preimages);
        let mut got = Vec::new();
        store
            .process_pending_events(|e| {
                if let Event::PaymentReceived { payment_hash, .. } = &e {
                    assert!(!claim(store, claimed, preimages, payment_hash));
                }
                got.push(e);
            })
            .unwrap();
        self.b_events.extend(got);
    }

    fn run(&mut self) {
        for _ in 0..100 {
            let moved = self.pump();
            if self.dead {
                self.restart_a();
                continue;
            }
            if !moved && !self.pump() && !self.dead {
                if self.second_sent {
                    return;
                }
                // The first payment settled: B pays A.
                self.second_sent = true;
                self.pay(false, 2, TO_A);
            }
        }
        panic!("the network did not settle");
    }

    fn check(&self, context: &str) {
        let count = |events: &[Event], hash: &PaymentHash, sent: bool| {
            events
                .iter()
                .filter(|e| match e {
                    Event::PaymentSent { payment_hash, .. } => sent && payment_hash == hash,
                    Event::PaymentFailed { payment_hash, .. } => !sent && payment_hash == hash,
                    _ => false,
                })
                .count()
        };
        let [first, second] = [1u16, 2].map(|n| preimage(0x15, n).payment_hash());
        // A crashes once: an event is handed out at most twice. The first
        // payment happened unless A's disk died under its `send_payment`
        // and the crash did not keep its batch.
        let sent = count(&self.a_events, &first, true);
        let happened = !self.first_unknown || sent > 0;
        let expected = if happened { 1..=2 } else { 0..=0 };
        assert!(
            expected.contains(&sent),
            "{context}: A's PaymentSent x{sent}"
        );
        assert!(
            sent <= 1 || self.restarted,
            "{context}: redelivered without a crash"
        );
        assert_eq!(
            count(&self.a_events, &first, false),
            0,
            "{context}: A's payment failed"
        );
        assert_eq!(
            count(&self.b_events, &second, true),
            1,
            "{context}: B's PaymentSent"
        );
        assert_eq!(
            count(&self.b_events, &second, false),
            0,
            "{context}: B's payment failed"
        );
        let mut claims = BTreeSet::from([second]);
        if happened {
            claims.insert(first);
        }
        assert_eq!(self.claimed, claims, "{context}: claims");
        let a = self
            .a
            .channel_details(&self.id)
            .expect("A's channel is open");
        let b = self
            .b
            .channel_details(&self.id)
            .expect("B's channel is open");
        let paid = if happened { TO_B } else { 0 };
        let a_balance = FUNDING_SAT * 1000 - PUSH_MSAT - paid + TO_A;
        assert_eq!(a.balance_msat, a_balance, "{context}: A's balance");
        assert_eq!(
            b.balance_msat,
            PUSH_MSAT + paid - TO_A,
            "{context}: B's balance"
        );
        for (n, d) in [("A", &a), ("B", &b)] {
            assert_eq!(d.pending_htlcs, 0, "{context}: {n} left an HTLC");
            assert!(d.is_usable, "{context}: {n}'s channel is not usable: {d:?}");
        }
        for n in [&self.a, &self.b] {
            n.check_value_conserved().unwrap();
            n.check_indexes().unwrap();
        }
    }
}

/// One run; returns A's writes after the setup, its polls, and whether
/// the crash lost a lazy batch (see the module doc).
fn run_once(backend: &dyn Backend, crash: CrashAt) -> (usize, usize, bool) {
    let mut w = World::new(backend, crash);
    w.pay(true, 1, TO_B);
    w.run();
    let context = format!("{}: crash {crash:?}", backend.name());
    w.check(&context);
    if let CrashAt::Write(..) = crash {
        assert!(w.restarted, "{context}: no crash");
    }
    let lost_lazy = w.resent_raa && !w.raa_in_flight;
    (w.disk.written() - w.setup_writes, w.polls, lost_lazy)
}

fn crash_everywhere(backend: &dyn Backend) {
    let (writes, polls, _) = run_once(backend, CrashAt::Nowhere);
    let mut lazy_losses = 0;
    for n in 0..polls {
        let (_, _, lost) = run_once(backend, CrashAt::Poll(n));
        lazy_losses += usize::from(lost);
    }
    for &cut in backend.cuts() {
        for n in 0..writes {
            run_once(backend, CrashAt::Write(n, cut));
        }
    }
    eprintln!(
        "{}: {writes} writes x {} cuts, {polls} polls; {lazy_losses} crashes lost a lazy revoke_and_ack",
        backend.name(),
        backend.cuts().len()
    );
    // A's last revoke_and_ack of the first payment (as payer: nothing
    // answers it) is lazy: a crash after the payment settled loses it.
    assert!(
        lazy_losses > 0,
        "{}: no crash lost a lazy batch",
        backend.name()
    );
}

#[test]
fn lazy_batches_memory() {
    crash_everywhere(&dying::Memory);
}

#[test]
fn lazy_batches_file() {
    crash_everywhere(&dying::File::new());
}

#[cfg(feature = "sqlite")]
#[test]
fn lazy_batches_sqlite() {
    crash_everywhere(&dying::Sqlite::new());
}

#[cfg(feature = "postgres")]
#[test]
fn lazy_batches_postgres() {
    let Some(cluster) = pg::Cluster::start("lazy-batches", &["fsync = off"]) else {
        return;
    };
    crash_everywhere(&dying::Postgres::new(&cluster.base_conninfo()));
}

/// The user claims a payment it was told of; returns whether the store's
/// disk died under the claim. A payment the user claimed before (it is told
/// again after a crash) may be gone from the store's claimable set.
fn claim(
    store: &ChannelStore,
    claimed: &mut BTreeSet<PaymentHash>,
    preimages: &BTreeMap<PaymentHash, PaymentPreimage>,
    hash: &PaymentHash,
) -> bool {
    let again = !claimed.insert(*hash);
    match store.claim_funds(preimages[hash]) {
        Ok(()) => false,
        Err(StoreError::UnknownPayment { .. }) if again => false,
        // Whether the claim got to disk is unknown: the event comes back
        // after the restart unless it did.
        Err(StoreError::Persist(_)) => true,
        Err(e) => panic!("claim: {e}"),
    }
}

// ---- events ----

/// Two nodes, A durable on `p`, one channel; the setup's events are left.
fn pair(p: Arc<dyn Persister>) -> (ChannelStore, ChannelStore, ShortChannelId) {
    let a = durable_a(p);
    let b = node(2);
    connect(&a, &b);
    let (_, scid) = open_channel(&a, &b, FUNDING_SAT, PUSH_MSAT);
    (a, b, scid)
}

/// B pays A and everything is delivered: A's `PaymentReceived` is pending,
/// durable.
fn receive(a: &ChannelStore, b: &ChannelStore, scid: ShortChannelId) {
    let p = preimage(0x18, 1);
    let route = route_to(a, scid);
    b.pay_invoice(&route, p.payment_hash(), TO_A).unwrap();
    deliver_all(&[a, b]);
}

/// Events on A's disk.
fn stored_events(disk: &Dying) -> usize {
    let stored = disk.load().unwrap();
    stored.keys().filter(|k| matches!(k, Key::Event(_))).count()
}

/// B pays A. A's `PaymentReceived` comes with the `revoke_and_ack` that
/// makes the HTLC irrevocable, a batch that answers nothing. A's user takes
/// events right after A handled it, with no message poll in between (which
/// would commit it): the event must not be visible before its batch is
/// durable, and it must be visible now (taking events commits first).
#[test]
fn an_event_is_durable_before_it_is_seen() {
    let disk = Arc::new(Dying::new(&dying::Memory, None, Cut::Clean));
    let (a, b, scid) = pair(disk.clone());
    a.get_and_clear_pending_events();
    let p = preimage(0x16, 1);
    let route = route_to(&a, scid);
    b.pay_invoice(&route, p.payment_hash(), TO_A).unwrap();
    // B: add + commitment_signed; A: revoke_and_ack + commitment_signed;
    // B: revoke_and_ack alone, the one that commits the HTLC at A.
    for round in 0.. {
        assert!(round < 10, "B never sent its revoke_and_ack alone");
        let to_a = b.get_and_clear_pending_msg_events();
        let lone_raa = matches!(&to_a[..], [(_, Message::RevokeAndAck(_))]);
        for (_, m) in to_a {
            a.handle_message(&b.node_id(), m).unwrap();
        }
        if lone_raa {
            break;
        }
        for (_, m) in a.get_and_clear_pending_msg_events() {
            b.handle_message(&a.node_id(), m).unwrap();
        }
    }
    assert_eq!(
        stored_events(&disk),
        0,
        "nothing committed the event's batch yet"
    );
    let mut seen = Vec::new();
    a.process_pending_events(|e| seen.push((e, stored_events(&disk))))
        .unwrap();
    assert!(
        matches!(&seen[..], [(Event::PaymentReceived { payment_hash, .. }, 1)] if *payment_hash == p.payment_hash()),
        "the event was not seen once, durable: {seen:?}"
    );
}

/// `get_and_clear_pending_events` is at most once: when it returns, the
/// deletion is durable, and a crash right after never hands the events out
/// again. `process_pending_events` is at least once, and its deletion is
/// lazy: a crash right after the handler hands the events out again, and
/// the next commit writes the deletion.
#[test]
fn get_and_clear_is_at_most_once_and_process_is_at_least_once() {
    for at_most_once in [true, false] {
        let disk = Arc::new(Dying::new(&dying::Memory, None, Cut::Clean));
        let (a, b, scid) = pair(disk.clone());
        receive(&a, &b, scid);
        let on_disk = stored_events(&disk);
        assert!(on_disk > 0);
        let taken = if at_most_once {
            a.get_and_clear_pending_events()
        } else {
            let mut taken = Vec::new();
            a.process_pending_events(|e| taken.push(e)).unwrap();
            taken
        };
        assert_eq!(taken.len(), on_disk, "{taken:?}");
        let left = if at_most_once { 0 } else { on_disk };
        assert_eq!(stored_events(&disk), left, "at_most_once: {at_most_once}");
        if !at_most_once {
            // The next commit (a payment's first batch) takes the deletion along.
            let p = preimage(0x17, 1);
            let route = route_to(&b, scid);
            a.pay_invoice(&route, p.payment_hash(), TO_B).unwrap();
            assert_eq!(stored_events(&disk), 0, "the deletion never got to disk");
            continue;
        }
        // Crash now: the process dies, its store with it.
        let p = disk.restart();
        drop(a);
        let reopened = durable_a(p);
        let again = reopened.get_and_clear_pending_events();
        assert!(again.is_empty(), "delivered twice: {again:?}");
    }
}

/// The same crash right after `process_pending_events`: the events come
/// back (at least once), and only those.
#[test]
fn process_pending_events_redelivers_after_a_crash() {
    let disk = Arc::new(Dying::new(&dying::Memory, None, Cut::Clean));
    let (a, b, scid) = pair(disk.clone());
    receive(&a, &b, scid);
    let mut taken = Vec::new();
    a.process_pending_events(|e| taken.push(e)).unwrap();
    assert!(!taken.is_empty());
    let p = disk.restart();
    drop(a);
    let reopened = durable_a(p);
    let mut again = Vec::new();
    reopened.process_pending_events(|e| again.push(e)).unwrap();
    assert_eq!(again, taken, "not delivered again after the crash");
}

/// A dropped store writes nothing: its successor may already have loaded
/// the state, and a late write of the old store's lazy batches would put
/// stale channel state on disk after it. What `flush` would have written is
/// the lazy deletion, so the events are still stored.
#[test]
fn a_dropped_store_writes_nothing() {
    let disk = Arc::new(Dying::new(&dying::Memory, None, Cut::Clean));
    let (a, b, scid) = pair(disk.clone());
    receive(&a, &b, scid);
    let mut taken = Vec::new();
    a.process_pending_events(|e| taken.push(e)).unwrap();
    let on_disk = stored_events(&disk);
    assert!(
        on_disk > 0,
        "the events were durable before they were handed out"
    );
    drop(a);
    assert_eq!(stored_events(&disk), on_disk, "the dropped store wrote");
}
