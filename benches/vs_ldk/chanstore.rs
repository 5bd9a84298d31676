//! The chanstore side: the same send pair as `ldk.rs` on two
//! `ChannelStore`s with one channel (8M sat, 100k sat pushed, as LDK's
//! bench), messages handed from one store to the other as `Message`s (as
//! LDK's bench hands its structs), with a real Sphinx onion and a payment
//! secret from `create_inbound_payment_for_hash`. Events are taken with
//! `process_pending_events` (at least once, as LDK's event handling is), not
//! `get_and_clear_pending_events` (at most once, one commit more each time).

use std::path::Path;
use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::SecretKey;
use bitcoin::{OutPoint, Txid};
use chanstore::{
    ChannelStore, Event, FileOptions, FilePersister, PaymentPreimage, RecipientOnionFields, Route,
    RouteHop, ShortChannelId, StoreConfig,
};

use super::ldk::PAYMENT_MSAT;

const HEIGHT: u32 = 800_000;

/// Two stores and their channel.
pub struct CsPair {
    a: ChannelStore,
    b: ChannelStore,
    scid: ShortChannelId,
    payments: u64,
}

impl CsPair {
    /// Two stores in memory (no persister: nothing is encoded or written,
    /// as LDK's `TestPersister` writes nothing).
    pub fn in_memory() -> Self {
        let node =
            |n: u8| ChannelStore::new(StoreConfig::default(), secret(n), HEIGHT).expect("store");
        Self::open(node(1), node(2))
    }

    /// Two stores each writing through a `FilePersister` with fsync on, in
    /// `dir/a` and `dir/b`.
    pub fn durable(dir: &Path) -> Self {
        let node = |n: u8, sub: &str| {
            let options = FileOptions {
                sync: true,
                ..FileOptions::default()
            };
            let persister = FilePersister::open(dir.join(sub), options).expect("log directory");
            ChannelStore::with_persister(
                StoreConfig::default(),
                secret(n),
                HEIGHT,
                Arc::new(persister),
            )
            .expect("store")
        };
        Self::open(node(1, "a"), node(2, "b"))
    }

    fn open(a: ChannelStore, b: ChannelStore) -> Self {
        a.peer_connected(b.node_id());
        b.peer_connected(a.node_id());
        deliver(&a, &b); // the inits
        let temp = a
            .create_channel(b.node_id(), 8_000_000, 100_000_000)
            .expect("open_channel");
        deliver(&a, &b);
        let outpoint = OutPoint::new(Txid::from_byte_array([1; 32]), 0);
        let id = a
            .funding_transaction_generated(&temp, &b.node_id(), outpoint)
            .expect("funding");
        deliver(&a, &b);
        let scid = ShortChannelId::new(HEIGHT - 10, 1, 0).expect("scid");
        a.funding_confirmed(&id, scid).expect("confirmed");
        b.funding_confirmed(&id, scid).expect("confirmed");
        deliver(&a, &b);
        take_events(&a);
        take_events(&b);
        assert_eq!(a.list_channels().len(), 1);
        CsPair {
            a,
            b,
            scid,
            payments: 0,
        }
    }

    /// Send pairs run so far.
    pub fn pairs_run(&self) -> u64 {
        self.payments / 2
    }

    /// One send pair: a payment A to B, then one B to A, each claimed and
    /// settled (both commitment round trips), as `LdkPair::send_pair`.
    pub fn send_pair(&mut self) {
        let n = self.payments;
        self.payments += 2;
        self.pay(true, n);
        self.pay(false, n + 1);
    }

    fn pay(&self, a_to_b: bool, n: u64) {
        let (from, to) = if a_to_b {
            (&self.a, &self.b)
        } else {
            (&self.b, &self.a)
        };
        let mut bytes = [0u8; 32];
        bytes[0..8].copy_from_slice(&n.to_le_bytes());
        let preimage = PaymentPreimage(bytes);
        let hash = preimage.payment_hash();
        let secret = to
            .create_inbound_payment_for_hash(hash, None, 7200)
            .expect("invoice");
        let route = Route {
            hops: vec![RouteHop {
                node_id: to.node_id(),
                short_channel_id: self.scid,
                fee_msat: 0,
                cltv_expiry_delta: 0,
            }],
        };
        from.send_payment(
            &route,
            hash,
            PAYMENT_MSAT,
            RecipientOnionFields::secret_only(secret),
        )
        .expect("send");
        deliver(from, to);
        let events = take_events(to);
        assert!(
            matches!(
                &events[..],
                [Event::PaymentReceived {
                    amount_msat: PAYMENT_MSAT,
                    ..
                }]
            ),
            "{events:?}"
        );
        to.claim_funds(preimage).expect("claim");
        deliver(from, to);
        let events = take_events(from);
        assert!(
            matches!(&events[..], [Event::PaymentSent { payment_preimage, .. }] if *payment_preimage == preimage),
            "{events:?}"
        );
        // Nothing left for the recipient either (no event piles up).
        assert!(take_events(to).is_empty());
    }
}

/// The node's pending events, taken as LDK's bench takes LDK's: through the
/// at-least-once API (`process_pending_events`: the handler first, the
/// deletion after, written with the next commit), which is what LDK's own
/// event handling promises. `get_and_clear_pending_events` is at most once
/// and pays a commit of its own for that.
fn take_events(node: &ChannelStore) -> Vec<Event> {
    let mut out = Vec::new();
    node.process_pending_events(|e| out.push(e))
        .expect("events");
    out
}

fn secret(n: u8) -> SecretKey {
    SecretKey::from_slice(&[n; 32]).expect("secret")
}

/// Hands every queued message to the other store until both are quiet.
fn deliver(x: &ChannelStore, y: &ChannelStore) {
    loop {
        let mut quiet = true;
        for (from, to) in [(x, y), (y, x)] {
            for (dest, msg) in from.get_and_clear_pending_msg_events() {
                assert_eq!(dest, to.node_id());
                to.handle_message(&from.node_id(), msg).expect("accepted");
                quiet = false;
            }
            quiet &= from.process_pending_forwards() == 0;
        }
        if quiet {
            return;
        }
    }
}
