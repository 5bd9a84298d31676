//! The LDK interop harness: LDK `ChannelManager`s (built with LDK's own
//! functional test utilities) and chanstore `ChannelStore`s in one process,
//! every message crossing as bytes, one chain shared by all.
//!
//! - **Bytes.** `wire.rs` turns LDK's `MessageSendEvent`s into the framed
//!   messages its `PeerManager` would write and parses chanstore's with
//!   LDK's readers; chanstore's side is `Message::encode`/`Message::decode`.
//!   A courier delivers one message at a time in global FIFO order (so
//!   per-link order is kept), and can cut a link at any point, losing what
//!   is in flight on it.
//! - **init.** [`Net::connect`] is the one place a connection starts:
//!   LDK's `init` goes to chanstore as bytes, chanstore's comes back as
//!   bytes and LDK checks it the way `PeerManager` checks a peer's `init`
//!   (peer_handler.rs:2116-2170) before taking anything else.
//! - **Checks.** Every message chanstore decodes is re-encoded and compared
//!   with LDK's bytes; refusals, undecodable bytes and LDK's complaints are
//!   collected, and [`Net::assert_clean`] fails the test on any of them.
//! - **Chain.** [`Net::mine`] builds one block and connects it to every LDK
//!   node (LDK's `connect_block`, through `Listen`), tells every store the
//!   height, and calls `funding_confirmed` on a store's channel once its
//!   funding output confirmed (the store waits for the depth itself).
//! - **Wallets.** Funding is mechanical: `FundingGenerationReady` (either
//!   side) gets a transaction with no inputs paying the asked script, as
//!   LDK's own tests do (functional_test_utils.rs:1472); LDK broadcasts its
//!   own after `funding_signed`, chanstore's goes to the mempool on
//!   `ChannelPending`, and every `BroadcastTransaction` does too.
#![allow(dead_code)]

pub mod wire;

use std::collections::{HashMap, HashSet, VecDeque};

use bitcoin::absolute::LockTime;
use bitcoin::constants::ChainHash;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::transaction::Version;
use bitcoin::{Amount, Network, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, Txid};
use chanstore::{ChannelId as CsChannelId, ChannelStore, ShortChannelId, StoreConfig};
use lightning::events::Event as LdkEvent;
use lightning::ln::functional_test_utils::{connect_block, create_dummy_block, Node};
use lightning::ln::msgs::{self, BaseMessageHandler};
use lightning::ln::types::ChannelId as LdkChannelId;
use lightning::types::features::InitFeatures;
use lightning::util::config::UserConfig;

use wire::{hex, type_name, type_of, Out};

/// Builds `$n` LDK nodes with `$configs` (one `UserConfig` each) in the
/// caller's scope, as LDK's tests do (`create_chanmon_cfgs`,
/// `create_node_cfgs`, `create_node_chanmgrs`, `create_network`), and
/// binds them to `$nodes`. The nodes are disconnected from each other (LDK
/// connects them all): they talk only to chanstore. Blocks are given to
/// them through `Listen` (not a random `ConnectStyle`), so runs repeat.
#[macro_export]
macro_rules! ldk_nodes {
    ($nodes:ident, $configs:expr) => {
        let configs: Vec<Option<lightning::util::config::UserConfig>> =
            $configs.into_iter().map(Some).collect();
        let n = configs.len();
        let chanmon_cfgs = lightning::ln::functional_test_utils::create_chanmon_cfgs(n);
        let node_cfgs = lightning::ln::functional_test_utils::create_node_cfgs(n, &chanmon_cfgs);
        let chanmgrs =
            lightning::ln::functional_test_utils::create_node_chanmgrs(n, &node_cfgs, &configs);
        let $nodes = lightning::ln::functional_test_utils::create_network(n, &node_cfgs, &chanmgrs);
        *$nodes[0].connect_style.borrow_mut() =
            lightning::ln::functional_test_utils::ConnectStyle::FullBlockViaListen;
        $crate::ldk::unlink_ldk_nodes(&$nodes);
    };
}

/// Undoes `create_network`'s connections between LDK nodes.
pub fn unlink_ldk_nodes(nodes: &[Node]) {
    use lightning::ln::msgs::BaseMessageHandler as _;
    for a in nodes {
        for b in nodes {
            if a.node.get_our_node_id() != b.node.get_our_node_id() {
                a.node.peer_disconnected(b.node.get_our_node_id());
                a.onion_messenger
                    .peer_disconnected(b.node.get_our_node_id());
            }
        }
    }
}

/// LDK's `UserConfig` for these tests: its defaults (0.2.7), with the
/// choices the findings name:
/// - `negotiate_anchors_zero_fee_htlc_tx = false` (chanstore has no anchors;
///   also the 0.2.7 default),
/// - `manually_accept_inbound_channels = false` (LDK accepts chanstore's
///   opens by itself; the 0.2.7 default),
/// - `announce_for_forwarding = false` (chanstore opens unannounced
///   channels; the 0.2.7 default),
/// - `minimum_depth = 6` (LDK's default: as fundee it asks for 6),
/// - `max_dust_htlc_exposure = FeeRateMultiplier(50_000_000 / 253)`, as
///   LDK's own tests set it (functional_test_utils.rs:4580): with the
///   default (10_000 x feerate = 2_530_000 msat, and HTLCs under 2_310 sat
///   counted as dust at LDK's buffer feerate) LDK sends, and accepts, at
///   most one dust HTLC at a time per channel: its policy, not BOLT's.
pub fn ldk_config() -> UserConfig {
    let mut c = UserConfig::default();
    c.channel_config.max_dust_htlc_exposure =
        lightning::util::config::MaxDustHTLCExposure::FeeRateMultiplier(50_000_000 / 253);
    c.channel_handshake_config.minimum_depth = 6;
    c.channel_handshake_config.announce_for_forwarding = false;
    c.channel_handshake_config
        .negotiate_anchors_zero_fee_htlc_tx = false;
    c.manually_accept_inbound_channels = false;
    c
}

/// chanstore's config for these tests: its defaults on LDK's chain.
pub fn cs_config() -> StoreConfig {
    StoreConfig {
        network: Network::Testnet,
        ..StoreConfig::default()
    }
}

/// The `init` features chanstore implements (DESIGN.md, issue 13):
/// `option_data_loss_protect`, `var_onion_optin` (required),
/// `option_static_remotekey`, `payment_secret`, `option_channel_type`.
pub fn cs_init_features() -> InitFeatures {
    let mut f = InitFeatures::empty();
    f.set_data_loss_protect_optional();
    f.set_variable_length_onion_required();
    f.set_static_remote_key_optional();
    f.set_payment_secret_optional();
    f.set_channel_type_optional();
    f
}

/// A node of the test network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// `ldk[i]`.
    Ldk(usize),
    /// `cs[j]`.
    Cs(usize),
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Party::Ldk(i) => write!(f, "ldk{i}"),
            Party::Cs(j) => write!(f, "cs{j}"),
        }
    }
}

/// Something on its way.
#[derive(Debug)]
enum Envelope {
    Msg {
        from: Party,
        to: Party,
        bytes: Vec<u8>,
    },
    /// The sender closes the connection after what it wrote before.
    Disconnect { ldk: usize, cs: usize, why: String },
}

/// A connection between `ldk[i]` and `cs[j]`.
#[derive(Clone, Copy, Debug, Default)]
struct Link {
    /// LDK handled chanstore's `init` (its `peer_connected` ran).
    ldk_inited: bool,
}

/// What happened, in order: each delivery, refusal, error and block.
#[derive(Default)]
pub struct Transcript {
    pub lines: Vec<String>,
}

impl Transcript {
    fn push(&mut self, line: String) {
        if std::env::var_os("LDK_INTEROP_TRACE").is_some() {
            eprintln!("| {line}");
        }
        self.lines.push(line);
    }
    /// The last `n` lines, for a panic message.
    pub fn tail(&self, n: usize) -> String {
        let start = self.lines.len().saturating_sub(n);
        self.lines[start..].join("\n  ")
    }
}

/// The test network: LDK nodes, chanstore stores, the wires between them
/// and the chain.
pub struct Net<'n, 'a, 'b, 'c> {
    pub ldk: &'n [Node<'a, 'b, 'c>],
    pub cs: Vec<ChannelStore>,
    queue: VecDeque<Envelope>,
    links: HashMap<(usize, usize), Link>,
    pub log: Transcript,
    /// Every LDK event, per node, in order (tests consume them).
    pub ldk_events: Vec<Vec<LdkEvent>>,
    /// Every chanstore event, per store, in order (tests consume them).
    pub cs_events: Vec<Vec<chanstore::Event>>,
    /// chanstore's refusals: `handle_message` errors and undecodable bytes.
    pub cs_refusals: Vec<String>,
    /// LDK's complaints: `HandleError` actions and bytes it cannot read.
    pub ldk_errors: Vec<String>,
    /// Messages one side re-encodes differently from the bytes it got.
    pub mismatches: Vec<String>,
    /// Messages delivered so far.
    pub delivered: usize,
    pub height: u32,
    mempool: Vec<Transaction>,
    /// Txid -> (height, index in block).
    confirmed: HashMap<Txid, (u32, u32)>,
    /// Every transaction mined, by txid.
    mined: HashMap<Txid, Transaction>,
    /// Outpoints spent on chain, by the txid that spent them.
    spent: HashMap<OutPoint, Txid>,
    /// chanstore-funded channels waiting for `ChannelPending`: (store, id).
    cs_funding: HashMap<(usize, CsChannelId), Transaction>,
    /// Channels `funding_confirmed` was called for: (store, id).
    cs_notified: HashSet<(usize, CsChannelId)>,
    /// Funding transactions made for LDK, by temporary channel id.
    pub ldk_funding: HashMap<LdkChannelId, Transaction>,
    funding_nonce: i32,
}

impl<'n, 'a, 'b, 'c> Net<'n, 'a, 'b, 'c> {
    /// A network of `ldk` and `stores` chanstore nodes (secrets
    /// `[0x40 + j; 32]`, `cs_config()`), nobody connected yet.
    pub fn new(ldk: &'n [Node<'a, 'b, 'c>], stores: usize) -> Self {
        Self::with_configs(ldk, vec![cs_config(); stores])
    }

    /// As [`Net::new`], one store per config.
    pub fn with_configs(ldk: &'n [Node<'a, 'b, 'c>], configs: Vec<StoreConfig>) -> Self {
        let height = ldk[0].best_block_info().1;
        let cs: Vec<ChannelStore> = configs
            .into_iter()
            .enumerate()
            .map(|(j, c)| {
                ChannelStore::new(
                    c,
                    SecretKey::from_slice(&[0x40 + j as u8; 32]).unwrap(),
                    height,
                )
                .unwrap()
            })
            .collect();
        Net {
            ldk,
            ldk_events: vec![Vec::new(); ldk.len()],
            cs_events: vec![Vec::new(); cs.len()],
            cs,
            queue: VecDeque::new(),
            links: HashMap::new(),
            log: Transcript::default(),
            cs_refusals: Vec::new(),
            ldk_errors: Vec::new(),
            mismatches: Vec::new(),
            delivered: 0,
            height,
            mempool: Vec::new(),
            confirmed: HashMap::new(),
            spent: HashMap::new(),
            mined: HashMap::new(),
            cs_funding: HashMap::new(),
            cs_notified: HashSet::new(),
            ldk_funding: HashMap::new(),
            funding_nonce: 0,
        }
    }

    pub fn id(&self, p: Party) -> PublicKey {
        match p {
            Party::Ldk(i) => self.ldk[i].node.get_our_node_id(),
            Party::Cs(j) => self.cs[j].node_id(),
        }
    }

    fn party_of(&self, pk: &PublicKey) -> Option<Party> {
        (0..self.ldk.len())
            .map(Party::Ldk)
            .chain((0..self.cs.len()).map(Party::Cs))
            .find(|p| self.id(*p) == *pk)
    }

    pub fn is_connected(&self, ldk: usize, cs: usize) -> bool {
        self.links.contains_key(&(ldk, cs))
    }

    // ---------------------------------------------------------------
    // Connections
    // ---------------------------------------------------------------

    /// Connects `ldk[i]` and `cs[j]` (the transport is up): the one place
    /// `init` happens: LDK's `init` goes to chanstore as bytes and
    /// chanstore's must come back before LDK takes anything else.
    pub fn connect(&mut self, i: usize, j: usize) {
        assert!(
            !self.is_connected(i, j),
            "ldk{i} and cs{j} already connected"
        );
        let (ldk_id, cs_id) = (self.id(Party::Ldk(i)), self.id(Party::Cs(j)));
        let chain = ChainHash::using_genesis_block(Network::Testnet);
        self.links.insert((i, j), Link::default());
        self.log.push(format!("-- connect ldk{i} <-> cs{j} --"));
        // PeerManager sends its init as soon as the handshake is done
        // (peer_handler.rs:1881-1890).
        let init = msgs::Init {
            features: self.ldk[i].init_features(cs_id),
            networks: Some(vec![chain]),
            remote_network_address: None,
        };
        self.queue.push_back(Envelope::Msg {
            from: Party::Ldk(i),
            to: Party::Cs(j),
            bytes: wire::frame(&init),
        });
        self.cs[j].peer_connected(ldk_id);
    }

    /// LDK handles chanstore's `init` as `PeerManager` does
    /// (peer_handler.rs:2116-2170): chains, required bits both ways, then
    /// `ChannelManager::peer_connected`.
    fn ldk_takes_init(&mut self, i: usize, j: usize, init: &msgs::Init) {
        let cs_id = self.id(Party::Cs(j));
        let ours = self.ldk[i].init_features(cs_id);
        let chain = ChainHash::using_genesis_block(Network::Testnet);
        let refusal = if init.networks.as_ref().is_some_and(|n| !n.contains(&chain)) {
            Some("Peer does not support any of our supported chains".to_string())
        } else if init.features.requires_unknown_bits_from(&ours) {
            Some(format!(
                "Peer requires features unknown to us: {:?}",
                init.features.required_unknown_bits_from(&ours)
            ))
        } else if ours.requires_unknown_bits_from(&init.features) {
            Some(format!(
                "We require features unknown to our peer: {:?}",
                ours.required_unknown_bits_from(&init.features)
            ))
        } else if self.ldk[i].node.peer_connected(cs_id, init, true).is_err() {
            Some("Channel Handler decided we couldn't communicate with peer".to_string())
        } else {
            None
        };
        match refusal {
            None => {
                if let Some(link) = self.links.get_mut(&(i, j)) {
                    link.ldk_inited = true;
                }
                self.log
                    .push(format!("ldk{i} took cs{j}'s init: {}", init.features));
            }
            Some(why) => {
                self.ldk_errors
                    .push(format!("ldk{i} refused cs{j}'s init: {why}"));
                self.log.push(format!("ldk{i} refused cs{j}'s init: {why}"));
                self.drop_link(i, j, "LDK refused init");
            }
        }
    }

    /// Cuts the connection between `ldk[i]` and `cs[j]`: both sides see the
    /// disconnection and whatever was in flight on it is lost.
    pub fn disconnect(&mut self, i: usize, j: usize) {
        self.collect();
        self.drop_link(i, j, "test disconnects");
    }

    fn drop_link(&mut self, i: usize, j: usize, why: &str) {
        let Some(link) = self.links.remove(&(i, j)) else {
            return;
        };
        let lost = self.queue.len();
        self.queue.retain(|e| match e {
            Envelope::Msg { from, to, .. } => {
                !matches!((from, to), (Party::Ldk(a), Party::Cs(b)) | (Party::Cs(b), Party::Ldk(a)) if *a == i && *b == j)
            }
            Envelope::Disconnect { ldk, cs, .. } => !(*ldk == i && *cs == j),
        });
        let lost = lost - self.queue.len();
        if link.ldk_inited {
            self.ldk[i].node.peer_disconnected(self.id(Party::Cs(j)));
        }
        self.cs[j].peer_disconnected(&self.id(Party::Ldk(i)));
        self.log.push(format!(
            "-- disconnect ldk{i} <-> cs{j} ({why}); {lost} in flight lost --"
        ));
        // What the disconnection itself produced (LDK: nothing to send, a
        // channel may close) is collected with everything else.
    }

    /// Disconnects and connects again.
    pub fn reconnect(&mut self, i: usize, j: usize) {
        self.disconnect(i, j);
        self.connect(i, j);
    }

    // ---------------------------------------------------------------
    // The courier
    // ---------------------------------------------------------------

    /// Takes what every node wants to send, and the events it raised,
    /// until nothing more comes (handling an event can make messages).
    pub fn collect(&mut self) {
        for _ in 0..16 {
            if self.collect_once() == 0 {
                return;
            }
        }
    }

    /// One pass of `collect`; returns how much it took.
    fn collect_once(&mut self) -> usize {
        let mut taken = 0;
        for i in 0..self.ldk.len() {
            let node = &self.ldk[i];
            if node.node.needs_pending_htlc_processing() {
                node.node.process_pending_htlc_forwards();
            }
            for ev in node.node.get_and_clear_pending_msg_events() {
                taken += 1;
                for out in wire::ldk_event_to_wire(ev) {
                    self.enqueue_from_ldk(i, out);
                }
            }
            let evs = node.node.get_and_clear_pending_events();
            taken += evs.len();
            for ev in evs {
                self.on_ldk_event(i, ev);
            }
            node.chain_monitor.added_monitors.lock().unwrap().clear();
            let txs: Vec<Transaction> = node
                .tx_broadcaster
                .txn_broadcasted
                .lock()
                .unwrap()
                .drain(..)
                .collect();
            taken += txs.len();
            for tx in txs {
                self.broadcast(Party::Ldk(i), tx);
            }
        }
        for j in 0..self.cs.len() {
            taken += self.cs[j].process_pending_forwards();
            for (to, msg) in self.cs[j].get_and_clear_pending_msg_events() {
                taken += 1;
                let to = self
                    .party_of(&to)
                    .unwrap_or_else(|| panic!("cs{j} writes to an unknown node {to}"));
                let bytes = msg.encode();
                self.queue.push_back(Envelope::Msg {
                    from: Party::Cs(j),
                    to,
                    bytes,
                });
            }
            for ev in self.cs[j].get_and_clear_pending_events() {
                taken += 1;
                self.on_cs_event(j, ev);
            }
        }
        taken
    }

    fn enqueue_from_ldk(&mut self, i: usize, out: Out) {
        match out {
            Out::Msg { to, bytes } => match self.party_of(&to) {
                Some(to @ Party::Cs(_)) => self.queue.push_back(Envelope::Msg {
                    from: Party::Ldk(i),
                    to,
                    bytes,
                }),
                other => self.log.push(format!(
                    "ldk{i} writes {} to {other:?}: not routed",
                    type_name(type_of(&bytes))
                )),
            },
            Out::Disconnect { peer, why } => {
                if let Some(Party::Cs(j)) = self.party_of(&peer) {
                    self.ldk_errors.push(format!("ldk{i} -> cs{j}: {why}"));
                    self.queue
                        .push_back(Envelope::Disconnect { ldk: i, cs: j, why });
                }
            }
            Out::Note { peer, what } => {
                let to = peer.and_then(|p| self.party_of(&p));
                if what.starts_with("HandleError") {
                    self.ldk_errors.push(format!("ldk{i} -> {to:?}: {what}"));
                }
                self.log.push(format!("ldk{i} (to {to:?}): {what}"));
            }
        }
    }

    /// Delivers the oldest message in flight. `None` when nothing is left.
    pub fn step(&mut self) -> Option<String> {
        self.collect();
        let env = self.queue.pop_front()?;
        let line = match env {
            Envelope::Disconnect { ldk, cs, why } => {
                self.drop_link(ldk, cs, &format!("LDK: {why}"));
                format!("ldk{ldk} disconnects cs{cs}: {why}")
            }
            Envelope::Msg { from, to, bytes } => {
                self.delivered += 1;
                match (from, to) {
                    (Party::Ldk(i), Party::Cs(j)) => self.deliver_to_cs(i, j, bytes),
                    (Party::Cs(j), Party::Ldk(i)) => self.deliver_to_ldk(j, i, bytes),
                    _ => unreachable!("only LDK <-> chanstore links"),
                }
            }
        };
        Some(line)
    }

    /// Delivers the oldest envelope sent by chanstore (`from_cs`) or by LDK.
    pub fn step_dir(&mut self, from_cs: bool) -> Option<String> {
        self.collect();
        let pos = self.queue.iter().position(|e| match e {
            Envelope::Msg { from, .. } => matches!(from, Party::Cs(_)) == from_cs,
            Envelope::Disconnect { .. } => !from_cs,
        })?;
        let env = self.queue.remove(pos).unwrap();
        self.queue.push_front(env);
        self.step()
    }

    /// Delivers until every node is quiet; returns how many messages went.
    pub fn run(&mut self) -> usize {
        let before = self.delivered;
        for _ in 0..100_000 {
            if self.step().is_none() {
                return self.delivered - before;
            }
        }
        panic!("no quiescence after 100000 steps:\n  {}", self.log.tail(40));
    }

    /// Delivers exactly `n` messages (or fewer if the network gets quiet).
    pub fn run_steps(&mut self, n: usize) -> usize {
        let mut done = 0;
        while done < n {
            match self.step() {
                Some(_) => done += 1,
                None => break,
            }
        }
        done
    }

    /// The messages in flight, oldest first, as (from, to, name).
    pub fn in_flight(&mut self) -> Vec<(Party, Party, String)> {
        self.collect();
        self.queue
            .iter()
            .filter_map(|e| match e {
                Envelope::Msg { from, to, bytes } => Some((*from, *to, type_name(type_of(bytes)))),
                Envelope::Disconnect { .. } => None,
            })
            .collect()
    }

    fn deliver_to_cs(&mut self, i: usize, j: usize, bytes: Vec<u8>) -> String {
        let name = type_name(type_of(&bytes));
        let head = format!(
            "ldk{i} -> cs{j} {name} ({} bytes){}{}",
            bytes.len(),
            wire::detail(&bytes),
            wire::tlv_summary(&bytes)
        );
        if !self.is_connected(i, j) {
            return format!("{head}: link down, lost");
        }
        let from = self.id(Party::Ldk(i));
        let line = match chanstore::Message::decode(&bytes) {
            Ok(msg) => {
                // chanstore's encoding of what it read must be LDK's bytes
                // up to the TLV stream, then the records it keeps (it skips
                // odd ones it does not use, which LDK puts last; `fee_range`
                // is closing_signed's type 1).
                let again = msg.encode();
                let fixed = wire::fixed_end(&bytes)
                    .unwrap_or(bytes.len())
                    .min(bytes.len());
                if again.len() < fixed || !bytes.starts_with(&again) {
                    self.mismatches.push(format!(
                        "ldk{i} -> cs{j} {name}: chanstore re-encodes {} as {}",
                        hex(&bytes),
                        hex(&again)
                    ));
                }
                let is_error = matches!(msg, chanstore::Message::Error(_));
                match self.cs[j].handle_message(&from, msg) {
                    Ok(()) => head,
                    // BOLT 1: an `error` naming no channel we have is ignored.
                    Err(chanstore::StoreError::UnknownChannel { .. }) if is_error => {
                        format!("{head}: for no channel chanstore has (ignored, BOLT 1)")
                    }
                    Err(e) => {
                        let line = format!("{head}: REFUSED by chanstore: {e:?} [{e}]");
                        self.cs_refusals
                            .push(format!("{line}\n    bytes {}", hex(&bytes)));
                        line
                    }
                }
            }
            Err(e) => {
                // BOLT 1: an unknown even type, or a message that does not
                // parse, fails the connection; an unknown odd type is ignored.
                let unknown_odd =
                    matches!(e, chanstore::DecodeError::UnknownMessageType(t) if t % 2 == 1);
                let line = format!(
                    "{head}: chanstore cannot decode: {e:?}{}",
                    if unknown_odd {
                        " (odd: ignored)"
                    } else {
                        " (BOLT 1: connection failed)"
                    }
                );
                if !unknown_odd {
                    self.cs_refusals
                        .push(format!("{line}\n    bytes {}", hex(&bytes)));
                    self.log.push(line.clone());
                    self.drop_link(i, j, "chanstore cannot decode an even message");
                    return line;
                }
                line
            }
        };
        self.log.push(line.clone());
        line
    }

    fn deliver_to_ldk(&mut self, j: usize, i: usize, bytes: Vec<u8>) -> String {
        let name = type_name(type_of(&bytes));
        let head = format!(
            "cs{j} -> ldk{i} {name} ({} bytes){}{}",
            bytes.len(),
            wire::detail(&bytes),
            wire::tlv_summary(&bytes)
        );
        let Some(link) = self.links.get(&(i, j)).copied() else {
            return format!("{head}: link down, lost");
        };
        let from = self.id(Party::Cs(j));
        if type_of(&bytes) == 16 {
            let mut r = &bytes[2..];
            let line = match <msgs::Init as lightning::util::ser::LengthReadable>::read_from_fixed_length_buffer(&mut r) {
                Ok(init) => {
                    self.ldk_takes_init(i, j, &init);
                    head
                }
                Err(e) => {
                    self.ldk_errors.push(format!("{head}: LDK cannot read init: {e:?}"));
                    self.drop_link(i, j, "LDK cannot read init");
                    format!("{head}: LDK cannot read init: {e:?}")
                }
            };
            self.log.push(line.clone());
            return line;
        }
        if !link.ldk_inited {
            // peer_handler.rs:2235-2237.
            let line = format!("{head}: LDK disconnects: \"Peer sent non-Init first message\"");
            self.ldk_errors.push(line.clone());
            self.log.push(line.clone());
            self.drop_link(i, j, "non-init first message");
            return line;
        }
        let line = match wire::deliver_to_ldk(self.ldk[i].node, from, &bytes) {
            Ok(d) => match d.reencoded_differs {
                None => head,
                Some(again) => {
                    self.mismatches.push(format!(
                        "cs{j} -> ldk{i} {name}: LDK re-encodes {} as {}",
                        hex(&bytes),
                        hex(&again)
                    ));
                    head
                }
            },
            Err(e) => {
                let line = format!("{head}: {e}\n    bytes {}", hex(&bytes));
                self.ldk_errors.push(line.clone());
                self.log.push(line.clone());
                // PeerManager disconnects a peer whose message does not parse.
                self.drop_link(i, j, "LDK cannot read a message");
                return line;
            }
        };
        self.log.push(line.clone());
        line
    }

    // ---------------------------------------------------------------
    // Events: the embedder's part (wallet and broadcasting)
    // ---------------------------------------------------------------

    fn next_funding_tx(&mut self, value_sat: u64, script: ScriptBuf) -> Transaction {
        self.funding_nonce += 1;
        Transaction {
            // A distinct version per funding, as LDK's tests do, so that
            // two fundings of the same script never share a txid.
            version: Version(self.funding_nonce),
            lock_time: LockTime::ZERO,
            input: Vec::new(),
            output: vec![TxOut {
                value: Amount::from_sat(value_sat),
                script_pubkey: script,
            }],
        }
    }

    fn on_ldk_event(&mut self, i: usize, ev: LdkEvent) {
        self.log
            .push(format!("ldk{i} event {}", short_event(&format!("{ev:?}"))));
        if let LdkEvent::FundingGenerationReady {
            temporary_channel_id,
            counterparty_node_id,
            channel_value_satoshis,
            ref output_script,
            ..
        } = ev
        {
            let tx = self.next_funding_tx(channel_value_satoshis, output_script.clone());
            self.ldk_funding.insert(temporary_channel_id, tx.clone());
            self.ldk[i]
                .node
                .funding_transaction_generated(temporary_channel_id, counterparty_node_id, tx)
                .expect("LDK takes its funding transaction");
        }
        self.ldk_events[i].push(ev);
    }

    fn on_cs_event(&mut self, j: usize, ev: chanstore::Event) {
        self.log
            .push(format!("cs{j} event {}", short_event(&format!("{ev:?}"))));
        match &ev {
            chanstore::Event::FundingGenerationReady {
                temporary_channel_id,
                counterparty_node_id,
                channel_value_sat,
                output_script,
            } => {
                let tx = self.next_funding_tx(*channel_value_sat, output_script.clone());
                let outpoint = OutPoint::new(tx.compute_txid(), 0);
                match self.cs[j].funding_transaction_generated(
                    temporary_channel_id,
                    counterparty_node_id,
                    outpoint,
                ) {
                    Ok(id) => {
                        self.cs_funding.insert((j, id), tx);
                    }
                    Err(e) => self
                        .cs_refusals
                        .push(format!("cs{j} funding_transaction_generated: {e:?}")),
                }
            }
            chanstore::Event::ChannelPending { channel_id, .. } => {
                if let Some(tx) = self.cs_funding.remove(&(j, *channel_id)) {
                    self.broadcast(Party::Cs(j), tx);
                }
            }
            chanstore::Event::BroadcastTransaction { transaction, .. } => {
                self.broadcast(Party::Cs(j), transaction.clone());
            }
            _ => {}
        }
        self.cs_events[j].push(ev);
    }

    fn broadcast(&mut self, by: Party, tx: Transaction) {
        let txid = tx.compute_txid();
        if self.confirmed.contains_key(&txid)
            || self.mempool.iter().any(|t| t.compute_txid() == txid)
        {
            return;
        }
        self.log.push(format!("{by} broadcasts {txid}"));
        self.mempool.push(tx);
    }

    /// Transactions waiting for a block.
    pub fn mempool(&mut self) -> Vec<Transaction> {
        self.collect();
        self.mempool.clone()
    }

    /// A mined transaction.
    pub fn transaction(&self, txid: &Txid) -> Option<Transaction> {
        self.mined.get(txid).cloned()
    }

    /// The transaction that spent `outpoint` on chain, if any.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spent.get(outpoint).copied()
    }

    /// Where a transaction confirmed: (height, index in its block).
    pub fn confirmation(&self, txid: &Txid) -> Option<(u32, u32)> {
        self.confirmed.get(txid).copied()
    }

    // ---------------------------------------------------------------
    // The chain
    // ---------------------------------------------------------------

    /// Mines `n` blocks, the first with everything in the mempool (after a
    /// placeholder coinbase), and gives them to everyone.
    pub fn mine(&mut self, n: u32) {
        self.collect();
        for k in 0..n {
            let mut txdata = vec![Transaction {
                version: Version(1),
                lock_time: LockTime::ZERO,
                input: vec![TxIn::default()],
                output: Vec::new(),
            }];
            if k == 0 {
                // A transaction whose input is already spent (the other
                // side's commitment, say) conflicts: it never confirms.
                for tx in std::mem::take(&mut self.mempool) {
                    let txid = tx.compute_txid();
                    if let Some(by) = tx
                        .input
                        .iter()
                        .find_map(|i| self.spent.get(&i.previous_output))
                    {
                        self.log
                            .push(format!("{txid} conflicts with {by}: dropped"));
                        continue;
                    }
                    for i in &tx.input {
                        self.spent.insert(i.previous_output, txid);
                    }
                    txdata.push(tx);
                }
            }
            let height = self.height + 1;
            for (index, tx) in txdata.iter().enumerate().skip(1) {
                self.confirmed
                    .insert(tx.compute_txid(), (height, index as u32));
                self.mined.insert(tx.compute_txid(), tx.clone());
            }
            let prev = self.ldk[0].best_block_hash();
            let block = create_dummy_block(prev, height, txdata);
            for node in self.ldk {
                assert_eq!(node.best_block_hash(), prev, "LDK nodes share one chain");
                connect_block(node, &block);
            }
            self.height = height;
            self.log.push(format!(
                "-- block {height} ({} transactions) --",
                block.txdata.len() - 1
            ));
            for j in 0..self.cs.len() {
                self.confirm_cs_fundings(j);
                self.cs[j].best_block_updated(height);
            }
            self.collect();
        }
    }

    /// Calls `funding_confirmed` for each of `cs[j]`'s channels whose
    /// funding confirmed: the store itself waits until it is
    /// `confirmations_required` deep (its own `minimum_depth`, or LDK's as
    /// fundee) before it sends `channel_ready`.
    fn confirm_cs_fundings(&mut self, j: usize) {
        let depth = 1;
        for d in self.cs[j].list_channels() {
            let Some(outpoint) = d.funding_outpoint else {
                continue;
            };
            if self.cs_notified.contains(&(j, d.channel_id)) {
                continue;
            }
            let Some((h, index)) = self.confirmed.get(&outpoint.txid).copied() else {
                continue;
            };
            if self.height + 1 - h < depth {
                continue;
            }
            let scid = ShortChannelId::new(h, index, outpoint.vout as u16).unwrap();
            self.cs_notified.insert((j, d.channel_id));
            match self.cs[j].funding_confirmed(&d.channel_id, scid) {
                Ok(()) => self.log.push(format!(
                    "cs{j} funding_confirmed {} at {scid}",
                    d.channel_id
                )),
                Err(e) => self
                    .cs_refusals
                    .push(format!("cs{j} funding_confirmed {}: {e:?}", d.channel_id)),
            }
        }
    }

    // ---------------------------------------------------------------
    // Checks
    // ---------------------------------------------------------------

    /// Adds a line of the test's own to the transcript.
    pub fn log_note(&mut self, line: String) {
        self.log.push(line);
    }

    /// How many `name` messages (`wire::type_name`) from `ldk[i]` chanstore
    /// `cs[j]` decoded and took without refusing them.
    pub fn cs_took(&self, i: usize, j: usize, name: &str) -> usize {
        let head = format!("ldk{i} -> cs{j} {name} (");
        self.log
            .lines
            .iter()
            .filter(|l| {
                l.starts_with(&head)
                    && !l.contains(": REFUSED by chanstore")
                    && !l.contains(": chanstore cannot decode")
            })
            .count()
    }

    /// Takes the complaints LDK made so far (a test that expects LDK to
    /// send an error checks them, and the rest of the run stays checked).
    pub fn take_ldk_errors(&mut self) -> Vec<String> {
        std::mem::take(&mut self.ldk_errors)
    }

    /// Panics, with the transcript, if either side refused or complained.
    pub fn assert_clean(&self, what: &str) {
        if !self.cs_refusals.is_empty()
            || !self.ldk_errors.is_empty()
            || !self.mismatches.is_empty()
        {
            panic!(
                "{what}: chanstore refused {:#?}\nLDK complained {:#?}\nre-encoded differently {:#?}\ntranscript:\n  {}",
                self.cs_refusals,
                self.ldk_errors,
                self.mismatches,
                self.log.tail(60)
            );
        }
    }

    /// Panics with `msg` and the transcript unless `cond`.
    pub fn check(&self, cond: bool, msg: impl std::fmt::Display) {
        if !cond {
            panic!(
                "{msg}\nchanstore refused {:#?}\nLDK complained {:#?}\ntranscript:\n  {}",
                self.cs_refusals,
                self.ldk_errors,
                self.log.tail(60)
            );
        }
    }

    /// Takes `ldk[i]`'s events so far.
    pub fn take_ldk_events(&mut self, i: usize) -> Vec<LdkEvent> {
        self.collect();
        std::mem::take(&mut self.ldk_events[i])
    }

    /// Takes `cs[j]`'s events so far.
    pub fn take_cs_events(&mut self, j: usize) -> Vec<chanstore::Event> {
        self.collect();
        std::mem::take(&mut self.cs_events[j])
    }
}

impl Drop for Net<'_, '_, '_, '_> {
    /// Every test ends clean (no refusal, complaint or re-encoding
    /// mismatch since the start). LDK's `Node` panics on drop if events are
    /// left: the transcript already holds them, so let them go.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        self.assert_clean("at the end of the test");
        for node in self.ldk {
            node.node.get_and_clear_pending_msg_events();
            node.node.get_and_clear_pending_events();
            node.chain_monitor.added_monitors.lock().unwrap().clear();
        }
    }
}

/// An event's `Debug`, cut to one readable line.
fn short_event(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 300 {
        format!("{}...", &s[..300])
    } else {
        s
    }
}
