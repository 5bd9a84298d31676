//! Test helpers: nodes, and a courier that moves messages between stores
//! (through the wire format) until nothing is left to deliver.
#![allow(dead_code)]

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{PublicKey, SecretKey};
use bitcoin::{OutPoint, Txid};
use chanstore::{ChannelId, ChannelStore, Event, Message, ShortChannelId, StoreConfig};

pub const HEIGHT: u32 = 800_000;

/// A store with a node secret made from `seed`.
pub fn node(seed: u8) -> ChannelStore {
    node_with(seed, StoreConfig::default())
}

pub fn node_with(seed: u8, config: StoreConfig) -> ChannelStore {
    ChannelStore::new(config, SecretKey::from_slice(&[seed; 32]).unwrap(), HEIGHT).unwrap()
}

/// Connects every pair of the given stores.
pub fn connect_all(nodes: &[&ChannelStore]) {
    for a in nodes {
        for b in nodes {
            if a.node_id() != b.node_id() {
                a.peer_connected(b.node_id());
            }
        }
    }
}

/// Delivers messages (encoded and decoded, as on the wire) and processes
/// forwards until every store is quiet. Panics if a message is refused.
/// Returns the number of messages delivered.
pub fn deliver_all(nodes: &[&ChannelStore]) -> usize {
    let mut delivered = 0;
    loop {
        let mut progress = false;
        for from in nodes {
            for (to, msg) in from.get_and_clear_pending_msg_events() {
                let dest = nodes
                    .iter()
                    .find(|n| n.node_id() == to)
                    .expect("message for a known node");
                let wire = Message::decode(&msg.encode()).expect("our own messages decode");
                assert_eq!(wire, msg);
                dest.handle_message(&from.node_id(), wire)
                    .unwrap_or_else(|e| panic!("{} refused {}: {e}", short(&to), msg.name()));
                delivered += 1;
                progress = true;
            }
            if from.process_pending_forwards() > 0 {
                progress = true;
            }
        }
        if !progress {
            return delivered;
        }
    }
}

pub fn short(pk: &PublicKey) -> String {
    pk.to_string()[..8].to_string()
}

/// Events of a store, drained.
pub fn events(node: &ChannelStore) -> Vec<Event> {
    node.get_and_clear_pending_events()
}

static NEXT_BLOCK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Opens, funds and confirms a channel from `a` to `b`; returns its id and scid.
pub fn open_channel(
    a: &ChannelStore,
    b: &ChannelStore,
    funding_sat: u64,
    push_msat: u64,
) -> (ChannelId, ShortChannelId) {
    let temp = a
        .create_channel(b.node_id(), funding_sat, push_msat)
        .expect("create_channel");
    deliver_all(&[a, b]);
    let ready = events(a);
    assert!(
        ready.iter().any(|e| matches!(e, Event::FundingGenerationReady { temporary_channel_id, .. } if *temporary_channel_id == temp)),
        "{ready:?}"
    );
    let block = NEXT_BLOCK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut txid = [0u8; 32];
    txid[..4].copy_from_slice(&block.to_be_bytes());
    txid[4..12].copy_from_slice(&a.node_id().serialize()[1..9]);
    let outpoint = OutPoint::new(Txid::from_byte_array(txid), 0);
    let id = a
        .funding_transaction_generated(&temp, &b.node_id(), outpoint)
        .expect("funding");
    deliver_all(&[a, b]);
    let scid = ShortChannelId::new(block, 1, 0).unwrap();
    a.funding_confirmed(&id, scid).expect("confirm a");
    b.funding_confirmed(&id, scid).expect("confirm b");
    deliver_all(&[a, b]);
    for n in [a, b] {
        let evs = events(n);
        assert!(
            evs.iter()
                .any(|e| matches!(e, Event::ChannelReady { channel_id, .. } if *channel_id == id)),
            "{evs:?}"
        );
    }
    (id, scid)
}
