//! The LDK side: two LDK 0.2.7 `ChannelManager`s with one channel, set up
//! and driven as LDK's own `bench_sends` does (rust-lightning,
//! `lightning/src/ln/channelmanager.rs`, `pub mod bench`, `bench_two_sends`;
//! MIT OR Apache-2.0, the structure copied here). Messages go from one
//! manager to the other as structs, as there.
//!
//! What differs from LDK's file, and why:
//! - Every part is owned through an `Arc` instead of borrowed from the
//!   function's stack, so a pair outlives one criterion call and the final
//!   timing pass can interleave it with chanstore's.
//! - The logger is [`BenchLogger`], LDK's `TestLogger` as it is compiled
//!   under `cfg(ldk_bench)` (format every record, read the bytes, print
//!   nothing). A dependency cannot be built with that cfg from here, and
//!   without it `TestLogger` prints every line.
//! - For the same reason the router is a `DefaultRouter` over that logger
//!   (what `TestRouter` wraps, without its serialization round trip of each
//!   route) and the message router a `DefaultMessageRouter` (unused by
//!   sends). The scorer is LDK's `TestScorer`, as there.
//! - The event checks of LDK's macros (`expect_payment_claimable!` and the
//!   like) are small functions here: same checks, no `NodeHolder`.

use std::sync::{Arc, RwLock};

use bitcoin::absolute::LockTime;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::transaction::Version;
use bitcoin::{Amount, Network, Transaction, TxOut};
use lightning::chain::chainmonitor::{ChainMonitor, Persist};
use lightning::chain::{BestBlock, Listen};
use lightning::events::Event;
use lightning::ln::channelmanager::{
    ChainParameters, ChannelManager, PaymentId, RecipientOnionFields, Retry,
};
use lightning::ln::functional_test_utils::{create_dummy_block, TEST_FINAL_CLTV};
use lightning::ln::msgs::{
    BaseMessageHandler, ChannelMessageHandler, CommitmentSigned, Init, MessageSendEvent,
    RevokeAndACK,
};
use lightning::onion_message::messenger::DefaultMessageRouter;
use lightning::routing::gossip::NetworkGraph;
use lightning::routing::router::{DefaultRouter, PaymentParameters, RouteParameters};
use lightning::sign::{InMemorySigner, KeysManager, NodeSigner};
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use lightning::util::config::{MaxDustHTLCExposure, UserConfig};
use lightning::util::logger::{Logger, Record};
use lightning::util::persist::MonitorUpdatingPersister;
use lightning::util::test_utils::{TestBroadcaster, TestChainSource, TestFeeEstimator, TestScorer};
use lightning_persister::fs_store::FilesystemStore;

/// Amount of each payment, msat: LDK's `bench_sends` (below dust, so
/// neither commitment has an HTLC output).
pub const PAYMENT_MSAT: u64 = 10_000;

/// LDK's `TestLogger` under `cfg(ldk_bench)`: every record is formatted
/// with its context and the result read, so the work is not optimized
/// away; nothing is printed.
pub struct BenchLogger {
    id: &'static str,
}

impl Logger for BenchLogger {
    fn log(&self, record: Record) {
        let context = format!(
            "{} {} [{}:{}]",
            self.id, record.level, record.module_path, record.line
        );
        let s = format!("{:<55} {}", context, record.args);
        std::hint::black_box(s.as_bytes());
    }
}

/// The logger as the nodes hold it.
pub type Log = Arc<BenchLogger>;
type Graph = NetworkGraph<Log>;
type Router =
    DefaultRouter<Arc<Graph>, Log, Arc<KeysManager>, Arc<RwLock<TestScorer>>, (), TestScorer>;
type MessageRouter = DefaultMessageRouter<Arc<Graph>, Log, Arc<KeysManager>>;
type Monitor<P> = ChainMonitor<
    InMemorySigner,
    Arc<TestChainSource>,
    Arc<TestBroadcaster>,
    Arc<TestFeeEstimator>,
    Log,
    Arc<P>,
    Arc<KeysManager>,
>;
type Manager<P> = ChannelManager<
    Arc<Monitor<P>>,
    Arc<TestBroadcaster>,
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<TestFeeEstimator>,
    Arc<Router>,
    Arc<MessageRouter>,
    Log,
>;

/// Two LDK nodes with one funded, usable channel, persisting their
/// `ChannelMonitor`s through `P` (`TestPersister`: in memory;
/// `FilesystemStore`: durable, as LDK's `lightning-persister` bench).
pub struct LdkPair<P: Persist<InMemorySigner>> {
    a: Manager<P>,
    b: Manager<P>,
    payments: u64,
}

/// What a persister may need of its node (`MonitorUpdatingPersister`
/// takes all of it).
pub struct NodeParts {
    /// 0 for node A, 1 for node B.
    pub index: usize,
    /// The node's keys.
    pub keys: Arc<KeysManager>,
    /// Its logger.
    pub logger: Log,
    /// The shared broadcaster.
    pub broadcaster: Arc<TestBroadcaster>,
    /// The shared fee estimator.
    pub fee_estimator: Arc<TestFeeEstimator>,
}

/// A `MonitorUpdatingPersister` over a `FilesystemStore`: LDK's persister
/// that writes each `ChannelMonitorUpdate` alone and the whole monitor only
/// every `maximum_pending_updates` updates.
pub type UpdatingPersister = MonitorUpdatingPersister<
    Arc<FilesystemStore>,
    Log,
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<TestBroadcaster>,
    Arc<TestFeeEstimator>,
>;

impl<P: Persist<InMemorySigner>> LdkPair<P> {
    /// Builds both nodes, each persisting through `persister(its parts)`,
    /// and opens the channel: 8M sat, 100k sat pushed to B, confirmed at
    /// depth 1, as in `bench_two_sends`.
    pub fn new(persister: impl Fn(&NodeParts) -> P) -> Self {
        let network = Network::Testnet;
        let genesis_block = bitcoin::constants::genesis_block(network);
        let tx_broadcaster = Arc::new(TestBroadcaster::new(network));
        let fee_estimator = Arc::new(TestFeeEstimator::new(253));
        let logger_a = Arc::new(BenchLogger { id: "node a" });
        let logger_b = Arc::new(BenchLogger { id: "node b" });
        let scorer = Arc::new(RwLock::new(TestScorer::new()));
        let entropy = Arc::new(KeysManager::new(&[0u8; 32], 42, 42, true));
        let graph = Arc::new(NetworkGraph::new(network, logger_a.clone()));
        let router = Arc::new(DefaultRouter::new(
            graph.clone(),
            logger_a.clone(),
            entropy.clone(),
            scorer,
            (),
        ));
        let message_router = Arc::new(DefaultMessageRouter::new(graph, entropy));

        let mut config: UserConfig = Default::default();
        config.channel_config.max_dust_htlc_exposure =
            MaxDustHTLCExposure::FeeRateMultiplier(5_000_000 / 253);
        config.channel_handshake_config.minimum_depth = 1;

        let node = |seed: u8, logger: &Log| {
            let keys = Arc::new(KeysManager::new(&[seed; 32], 42, 42, true));
            let persister = persister(&NodeParts {
                index: usize::from(seed - 1),
                keys: keys.clone(),
                logger: logger.clone(),
                broadcaster: tx_broadcaster.clone(),
                fee_estimator: fee_estimator.clone(),
            });
            let chain_monitor = Arc::new(ChainMonitor::new(
                None,
                tx_broadcaster.clone(),
                // LDK's bench gives both chain monitors node a's logger.
                logger_a.clone(),
                fee_estimator.clone(),
                Arc::new(persister),
                keys.clone(),
                keys.get_peer_storage_key(),
            ));
            ChannelManager::new(
                fee_estimator.clone(),
                chain_monitor,
                tx_broadcaster.clone(),
                router.clone(),
                message_router.clone(),
                logger.clone(),
                keys.clone(),
                keys.clone(),
                keys,
                config.clone(),
                ChainParameters {
                    network,
                    best_block: BestBlock::from_network(network),
                },
                genesis_block.header.time,
            )
        };
        let a = node(1, &logger_a);
        let b = node(2, &logger_b);
        let (id_a, id_b) = (a.get_our_node_id(), b.get_our_node_id());

        let init = |m: &Manager<P>| Init {
            features: m.init_features(),
            networks: None,
            remote_network_address: None,
        };
        a.peer_connected(id_b, &init(&b), true).unwrap();
        b.peer_connected(id_a, &init(&a), false).unwrap();
        a.create_channel(id_b, 8_000_000, 100_000_000, 42, None, None)
            .unwrap();
        match one(&a) {
            MessageSendEvent::SendOpenChannel { msg, .. } => b.handle_open_channel(id_a, &msg),
            e => panic!("expected open_channel, got {e:?}"),
        }
        match one(&b) {
            MessageSendEvent::SendAcceptChannel { msg, .. } => a.handle_accept_channel(id_b, &msg),
            e => panic!("expected accept_channel, got {e:?}"),
        }
        let tx = match one_event(&a) {
            Event::FundingGenerationReady {
                temporary_channel_id,
                output_script,
                ..
            } => {
                let tx = Transaction {
                    version: Version::TWO,
                    lock_time: LockTime::ZERO,
                    input: Vec::new(),
                    output: vec![TxOut {
                        value: Amount::from_sat(8_000_000),
                        script_pubkey: output_script,
                    }],
                };
                a.funding_transaction_generated(temporary_channel_id, id_b, tx.clone())
                    .unwrap();
                tx
            }
            e => panic!("expected FundingGenerationReady, got {e:?}"),
        };
        match one(&a) {
            MessageSendEvent::SendFundingCreated { msg, .. } => {
                b.handle_funding_created(id_a, &msg)
            }
            e => panic!("expected funding_created, got {e:?}"),
        }
        assert!(matches!(one_event(&b), Event::ChannelPending { .. }));
        match one(&b) {
            MessageSendEvent::SendFundingSigned { msg, .. } => a.handle_funding_signed(id_b, &msg),
            e => panic!("expected funding_signed, got {e:?}"),
        }
        assert!(matches!(one_event(&a), Event::ChannelPending { .. }));
        assert_eq!(
            &tx_broadcaster.txn_broadcasted.lock().unwrap()[..],
            std::slice::from_ref(&tx)
        );

        let block = create_dummy_block(BestBlock::from_network(network).block_hash, 42, vec![tx]);
        Listen::block_connected(&a, &block, 1);
        Listen::block_connected(&b, &block, 1);
        match one(&b) {
            MessageSendEvent::SendChannelReady { msg, .. } => a.handle_channel_ready(id_b, &msg),
            e => panic!("expected channel_ready, got {e:?}"),
        }
        for e in a.get_and_clear_pending_msg_events() {
            match e {
                MessageSendEvent::SendChannelReady { msg, .. } => {
                    b.handle_channel_ready(id_a, &msg)
                }
                MessageSendEvent::SendChannelUpdate { .. } => {}
                e => panic!("unexpected {e:?}"),
            }
        }
        // B's channel_update for A: private channel, nothing to do with it.
        b.get_and_clear_pending_msg_events();
        assert!(matches!(one_event(&a), Event::ChannelReady { .. }));
        assert!(matches!(one_event(&b), Event::ChannelReady { .. }));
        LdkPair { a, b, payments: 0 }
    }

    /// Send pairs run so far.
    pub fn pairs_run(&self) -> u64 {
        self.payments / 2
    }

    /// One send pair, as LDK's bench iteration: a payment A to B, then one
    /// B to A, each claimed and settled (both commitment round trips).
    pub fn send_pair(&mut self) {
        let n = self.payments;
        self.payments += 2;
        pay(&self.a, &self.b, n);
        pay(&self.b, &self.a, n + 1);
    }
}

/// The only message event `node` has.
fn one<P: Persist<InMemorySigner>>(node: &Manager<P>) -> MessageSendEvent {
    let mut events = node.get_and_clear_pending_msg_events();
    assert_eq!(events.len(), 1, "{events:?}");
    events.pop().unwrap()
}

/// The only event `node` has.
fn one_event<P: Persist<InMemorySigner>>(node: &Manager<P>) -> Event {
    let mut events = node.get_and_clear_pending_events();
    assert_eq!(events.len(), 1, "{events:?}");
    events.pop().unwrap()
}

/// `get_revoke_commit_msgs`: the `revoke_and_ack` and `commitment_signed`
/// that answer a commitment update.
fn revoke_commit<P: Persist<InMemorySigner>>(
    node: &Manager<P>,
) -> (RevokeAndACK, Vec<CommitmentSigned>) {
    let mut events = node.get_and_clear_pending_msg_events().into_iter();
    let raa = match events.next() {
        Some(MessageSendEvent::SendRevokeAndACK { msg, .. }) => msg,
        e => panic!("expected revoke_and_ack, got {e:?}"),
    };
    let cs = match events.next() {
        Some(MessageSendEvent::UpdateHTLCs { updates, .. }) => updates.commitment_signed,
        e => panic!("expected commitment_signed, got {e:?}"),
    };
    assert!(events.next().is_none());
    (raa, cs)
}

fn commitment_signed<P: Persist<InMemorySigner>>(
    to: &Manager<P>,
    from: bitcoin::secp256k1::PublicKey,
    batch: &[CommitmentSigned],
) {
    // `handle_commitment_signed_batch_test` with a batch of one.
    assert_eq!(batch.len(), 1);
    to.handle_commitment_signed(from, &batch[0]);
}

/// The `send_payment!` macro of `bench_two_sends`: `from` pays `to`
/// through LDK's router (payment secret from `create_inbound_payment_for_hash`),
/// `to` claims, and every message goes across until both commitments are
/// settled.
fn pay<P: Persist<InMemorySigner>>(from: &Manager<P>, to: &Manager<P>, n: u64) {
    let (id_from, id_to) = (from.get_our_node_id(), to.get_our_node_id());
    let params = PaymentParameters::from_node_id(id_to, TEST_FINAL_CLTV)
        .with_bolt11_features(to.bolt11_invoice_features())
        .unwrap();
    let mut preimage = PaymentPreimage([0; 32]);
    preimage.0[0..8].copy_from_slice(&n.to_le_bytes());
    let hash = PaymentHash(sha256::Hash::hash(&preimage.0).to_byte_array());
    let secret = to
        .create_inbound_payment_for_hash(hash, None, 7200, None)
        .unwrap();
    from.send_payment(
        hash,
        RecipientOnionFields::secret_only(secret),
        PaymentId(hash.0),
        RouteParameters::from_payment_params_and_value(params, PAYMENT_MSAT),
        Retry::Attempts(0),
    )
    .unwrap();
    let updates = match one(from) {
        MessageSendEvent::UpdateHTLCs { updates, .. } => updates,
        e => panic!("expected update_add_htlc, got {e:?}"),
    };
    to.handle_update_add_htlc(id_from, &updates.update_add_htlcs[0]);
    commitment_signed(to, id_from, &updates.commitment_signed);
    let (raa, cs) = revoke_commit(to);
    from.handle_revoke_and_ack(id_to, &raa);
    commitment_signed(from, id_to, &cs);
    match one(from) {
        MessageSendEvent::SendRevokeAndACK { msg, .. } => to.handle_revoke_and_ack(id_from, &msg),
        e => panic!("expected revoke_and_ack, got {e:?}"),
    }

    to.process_pending_htlc_forwards();
    match one_event(to) {
        Event::PaymentClaimable {
            payment_hash,
            amount_msat,
            ..
        } => assert_eq!((payment_hash, amount_msat), (hash, PAYMENT_MSAT)),
        e => panic!("expected PaymentClaimable, got {e:?}"),
    }
    to.claim_funds(preimage);
    match one_event(to) {
        Event::PaymentClaimed {
            payment_hash,
            amount_msat,
            ..
        } => assert_eq!((payment_hash, amount_msat), (hash, PAYMENT_MSAT)),
        e => panic!("expected PaymentClaimed, got {e:?}"),
    }

    match one(to) {
        MessageSendEvent::UpdateHTLCs { mut updates, .. } => {
            let fulfill = updates.update_fulfill_htlcs.remove(0);
            from.handle_update_fulfill_htlc(id_to, fulfill);
            commitment_signed(from, id_to, &updates.commitment_signed);
        }
        e => panic!("expected update_fulfill_htlc, got {e:?}"),
    }
    let (raa, cs) = revoke_commit(from);
    to.handle_revoke_and_ack(id_from, &raa);
    commitment_signed(to, id_from, &cs);
    match one(to) {
        MessageSendEvent::SendRevokeAndACK { msg, .. } => from.handle_revoke_and_ack(id_to, &msg),
        e => panic!("expected revoke_and_ack, got {e:?}"),
    }

    // `expect_payment_sent!`: PaymentSent, then PaymentPathSuccessful.
    let events = from.get_and_clear_pending_events();
    assert!(
        matches!(&events[..], [Event::PaymentSent { payment_preimage, .. }, Event::PaymentPathSuccessful { .. }] if *payment_preimage == preimage),
        "{events:?}"
    );
}
