//! A - B - C in one process, then `--payments N` payments from A to C
//! through B, each claimed (or, with `--pair`, LDK's `bench_sends` load:
//! payments alternately A to B and B to A over one channel, dust-sized, so
//! a send pair is two payments): the load to count libsecp256k1 calls on
//! (`docs/BENCHMARKS.md`, "What a payment costs in EC operations"). Run it
//! with N and with N + 10 under `perf stat` with uprobes on the library's
//! functions; the difference over 10 is one payment's.
//!
//! `--amount MSAT` sets the A -> B -> C amount (default 1,000,000 msat;
//! anything above about 531 sat gives every commitment an HTLC output and
//! an HTLC signature at the default feerate). `--hub-thread` runs every
//! call into B (messages, forwards, its outbox) on one thread named `hub`,
//! and A's and C's on the main thread, so per-thread counts (`perf record`
//! on the uprobes, or `scripts/ec_ops --hub`) are the hub's alone.
//!
//! ```text
//! cargo build --release --example ec_ops
//! perf probe -x target/release/examples/ec_ops rustsecp256k1_v0_10_0_ecdh
//! perf stat -e 'probe_ec_ops:*' target/release/examples/ec_ops --payments 10
//! ```

use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{OutPoint, Txid};
use chanstore::{
    ChannelStore, Event, Message, PaymentPreimage, RecipientOnionFields, Route, RouteHop,
    ShortChannelId, StoreConfig,
};

const HEIGHT: u32 = 800_000;

type Job = Box<dyn FnOnce() + Send>;

/// A node, and the thread its calls run on: the caller's, or its own.
struct Node {
    store: Arc<ChannelStore>,
    thread: Option<Sender<Job>>,
}

impl Node {
    fn new(n: u8, own_thread: Option<&str>) -> Node {
        let store = ChannelStore::new(
            StoreConfig::default(),
            SecretKey::from_slice(&[n; 32]).unwrap(),
            HEIGHT,
        )
        .unwrap();
        let thread = own_thread.map(|name| {
            let (tx, rx) = channel::<Job>();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || rx.into_iter().for_each(|job| job()))
                .unwrap();
            tx
        });
        Node {
            store: Arc::new(store),
            thread,
        }
    }

    /// Runs `f` on the node, on its own thread if it has one, and waits.
    fn call<R: Send + 'static>(&self, f: impl FnOnce(&ChannelStore) -> R + Send + 'static) -> R {
        let Some(thread) = &self.thread else {
            return f(&self.store);
        };
        let (tx, rx) = channel();
        let store = Arc::clone(&self.store);
        thread
            .send(Box::new(move || tx.send(f(&store)).unwrap()))
            .unwrap();
        rx.recv().unwrap()
    }

    /// The CPU time the node's own thread has used so far, in µs (0 for a
    /// node without one).
    fn thread_cpu_us(&self) -> f64 {
        if self.thread.is_none() {
            return 0.0;
        }
        self.call(|_| {
            let mut t = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: clock_gettime only writes the timespec it is given,
            // which lives on this stack frame for the whole call.
            let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
            assert_eq!(rc, 0, "clock_gettime");
            t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
        })
    }

    fn id(&self) -> PublicKey {
        self.store.node_id()
    }

    fn handle(&self, from: PublicKey, msg: Message) {
        self.call(move |s| s.handle_message(&from, msg).expect("accepted"));
    }
}

fn deliver(nodes: &[&Node]) {
    loop {
        let mut quiet = true;
        for from in nodes {
            for (to, msg) in from.call(|s| s.get_and_clear_pending_msg_events()) {
                let dest = nodes.iter().find(|n| n.id() == to).expect("known");
                dest.handle(from.id(), msg);
                quiet = false;
            }
            quiet &= from.call(|s| s.process_pending_forwards()) == 0;
        }
        if quiet {
            return;
        }
    }
}

/// Opens a channel from `a` to `b`; `nodes` are all of them (since
/// `peer_connected` sends `init`, a node may have messages for a third).
fn open(nodes: &[&Node], a: &Node, b: &Node, n: u8) -> ShortChannelId {
    // Half pushed, so payments can go either way; 1,600 payments of
    // 5,000,000 msat fit.
    let peer = b.id();
    deliver(nodes); // the inits: BOLT 1 lets nothing go out before them
    let temp = a.call(move |s| s.create_channel(peer, 16_000_000, 8_000_000_000).unwrap());
    deliver(nodes);
    let outpoint = OutPoint::new(Txid::from_byte_array([n; 32]), 0);
    let id = a.call(move |s| {
        s.funding_transaction_generated(&temp, &peer, outpoint)
            .unwrap()
    });
    deliver(nodes);
    let scid = ShortChannelId::new(HEIGHT - 10, u32::from(n), 0).unwrap();
    a.call(move |s| s.funding_confirmed(&id, scid).unwrap());
    b.call(move |s| s.funding_confirmed(&id, scid).unwrap());
    deliver(nodes);
    scid
}

/// Sends `amount_msat` from `from` over `route` to `to`, delivers, claims
/// and delivers again; checks the sender saw it sent.
fn pay(nodes: &[&Node], from: &Node, to: &Node, route: Route, amount_msat: u64, i: u16, tag: u8) {
    let mut bytes = [tag; 32];
    bytes[..2].copy_from_slice(&i.to_be_bytes());
    let preimage = PaymentPreimage(bytes);
    let hash = preimage.payment_hash();
    let secret = to.call(move |s| s.create_inbound_payment_for_hash(hash, None, 3600).unwrap());
    from.call(move |s| {
        s.send_payment(
            &route,
            hash,
            amount_msat,
            RecipientOnionFields::secret_only(secret),
        )
        .unwrap()
    });
    deliver(nodes);
    to.call(move |s| s.claim_funds(preimage).unwrap());
    deliver(nodes);
    let sent = from.call(|s| {
        s.get_and_clear_pending_events()
            .iter()
            .any(|e| matches!(e, Event::PaymentSent { .. }))
    });
    assert!(sent, "payment {i} was not sent");
}

fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .map(|n| n.parse().ok().unwrap_or_else(|| panic!("{name} N")))
}

fn main() {
    let payments: u16 = arg("--payments").unwrap_or(10);
    let amount_msat: u64 = arg("--amount").unwrap_or(1_000_000);
    let hub_thread = std::env::args().any(|a| a == "--hub-thread");
    let (a, b, c) = (
        Node::new(1, None),
        Node::new(2, hub_thread.then_some("hub")),
        Node::new(3, None),
    );
    for (x, y) in [(&a, &b), (&b, &c)] {
        let (xid, yid) = (x.id(), y.id());
        x.call(move |s| s.peer_connected(yid));
        y.call(move |s| s.peer_connected(xid));
    }
    let nodes = [&a, &b, &c];
    let (ab, bc) = (open(&nodes, &a, &b, 1), open(&nodes, &b, &c, 2));
    if std::env::args().any(|a| a == "--pair") {
        // A <-> B over A-B: 10,000 msat, below the dust limit.
        for i in 0..payments {
            let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let route = Route {
                hops: vec![RouteHop {
                    node_id: to.id(),
                    short_channel_id: ab,
                    fee_msat: 0,
                    cltv_expiry_delta: 0,
                }],
            };
            pay(&nodes, from, to, route, 10_000, i, 9);
        }
        println!("{payments} payments A <-> B");
        return;
    }
    let fee = b.store.config().forwarding_fee_msat(amount_msat);
    let route = Route {
        hops: vec![
            RouteHop {
                node_id: b.id(),
                short_channel_id: ab,
                fee_msat: fee,
                cltv_expiry_delta: u32::from(b.store.config().cltv_expiry_delta),
            },
            RouteHop {
                node_id: c.id(),
                short_channel_id: bc,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            },
        ],
    };
    let cpu_before = b.thread_cpu_us();
    for i in 0..payments {
        pay(&nodes, &a, &c, route.clone(), amount_msat, i, 7);
    }
    println!("{payments} payments of {amount_msat} msat A -> B -> C");
    if hub_thread && payments > 0 {
        let per_payment = (b.thread_cpu_us() - cpu_before) / f64::from(payments);
        println!("hub thread CPU: {per_payment:.0} µs per payment");
    }
}
