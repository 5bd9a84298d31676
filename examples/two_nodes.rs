//! Two in-process channel stores, Alice and Bob: open a channel, pay through
//! it, settle, and close it cooperatively, printing every message exchanged,
//! every event and the balances along the way.
//!
//! ```text
//! cargo run --release --example two_nodes
//! ```
//!
//! In a real node the messages would travel over an encrypted BOLT 8
//! connection and the funding transaction would come from a wallet; here the
//! messages go through their wire encoding in memory, and the funding
//! outpoint is made up.

use bitcoin::hashes::{sha256d, Hash};
use bitcoin::secp256k1::SecretKey;
use bitcoin::{OutPoint, Txid};
use chanstore::{
    ChannelId, ChannelStore, Event, Message, RecipientOnionFields, Route, RouteHop, ShortChannelId,
    StoreConfig,
};

const HEIGHT: u32 = 800_000;

type Named<'a> = (&'static str, &'a ChannelStore);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let alice = ChannelStore::new(
        StoreConfig::default(),
        SecretKey::from_slice(&[1; 32])?,
        HEIGHT,
    )?;
    let bob = ChannelStore::new(
        StoreConfig::default(),
        SecretKey::from_slice(&[2; 32])?,
        HEIGHT,
    )?;
    let nodes = [("Alice", &alice), ("Bob", &bob)];
    alice.peer_connected(bob.node_id());
    bob.peer_connected(alice.node_id());
    deliver(&nodes)?; // the two inits (BOLT 1: nothing may go out before)

    println!("== Alice opens a 1_000_000 sat channel to Bob, pushing him 100_000 sat");
    let temporary_id = alice.create_channel(bob.node_id(), 1_000_000, 100_000_000)?;
    deliver(&nodes)?;
    let script = events(&nodes)
        .into_iter()
        .find_map(|(_, e)| match e {
            Event::FundingGenerationReady { output_script, .. } => Some(output_script),
            _ => None,
        })
        .ok_or("no FundingGenerationReady")?;

    println!("== Alice's wallet funds it (here: a made-up transaction paying {script})");
    let txid = Txid::from_raw_hash(sha256d::Hash::hash(script.as_bytes()));
    let channel_id = alice.funding_transaction_generated(
        &temporary_id,
        &bob.node_id(),
        OutPoint::new(txid, 0),
    )?;
    deliver(&nodes)?;

    println!("== The funding transaction confirms");
    let scid = ShortChannelId::new(HEIGHT + 1, 7, 0).ok_or("bad scid")?;
    alice.funding_confirmed(&channel_id, scid)?;
    bob.funding_confirmed(&channel_id, scid)?;
    // channel_ready goes once the funding is `confirmations_required` deep
    // (StoreConfig::minimum_depth, 3): two more blocks.
    let depth = alice
        .channel_details(&channel_id)
        .ok_or("no channel")?
        .confirmations_required;
    for node in [&alice, &bob] {
        node.best_block_updated(HEIGHT + depth);
    }
    deliver(&nodes)?;
    events(&nodes);
    balances(&nodes, &channel_id);

    println!("== Bob makes an invoice for 25_000 sat; Alice pays it");
    // Stateless: the hash and secret come from Bob's key, nothing is stored.
    let (payment_hash, payment_secret) = bob.create_inbound_payment(Some(25_000_000), 3600)?;
    let route = Route {
        hops: vec![RouteHop {
            node_id: bob.node_id(),
            short_channel_id: scid,
            fee_msat: 0,
            cltv_expiry_delta: 0,
        }],
    };
    let invoice = RecipientOnionFields::secret_only(payment_secret);
    alice.send_payment(&route, payment_hash, 25_000_000, invoice)?;
    deliver(&nodes)?;
    let preimage = events(&nodes)
        .into_iter()
        .find_map(|(_, e)| match e {
            Event::PaymentReceived {
                payment_preimage, ..
            } => payment_preimage,
            _ => None,
        })
        .ok_or("no PaymentReceived")?;
    balances(&nodes, &channel_id);

    println!("== Bob claims it with the preimage his key derives");
    bob.claim_funds(preimage)?;
    deliver(&nodes)?;
    events(&nodes);
    balances(&nodes, &channel_id);

    println!("== Alice closes the channel cooperatively");
    alice.close_channel(&channel_id)?;
    deliver(&nodes)?;
    events(&nodes);
    for (name, node) in nodes {
        println!("   {name}: {} channel(s) left", node.list_channels().len());
    }
    Ok(())
}

/// Moves messages between the stores, through their wire encoding, until
/// neither has anything left to send.
fn deliver(nodes: &[Named<'_>]) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        let mut progress = false;
        for (name, from) in nodes {
            for (to, msg) in from.get_and_clear_pending_msg_events() {
                let (to_name, dest) = nodes
                    .iter()
                    .find(|(_, n)| n.node_id() == to)
                    .ok_or("message for an unknown node")?;
                let bytes = msg.encode();
                println!(
                    "   {name} -> {to_name}: {} ({} bytes)",
                    msg.name(),
                    bytes.len()
                );
                dest.handle_message(&from.node_id(), Message::decode(&bytes)?)?;
                progress = true;
            }
            if from.process_pending_forwards() > 0 {
                progress = true;
            }
        }
        if !progress {
            return Ok(());
        }
    }
}

/// Prints and returns every pending event of every store.
fn events(nodes: &[Named<'_>]) -> Vec<(&'static str, Event)> {
    let mut all = Vec::new();
    for (name, node) in nodes {
        for event in node.get_and_clear_pending_events() {
            println!("   {name} event: {}", describe(&event));
            all.push((*name, event));
        }
    }
    all
}

fn describe(event: &Event) -> String {
    match event {
        Event::FundingGenerationReady {
            channel_value_sat, ..
        } => format!("FundingGenerationReady ({channel_value_sat} sat)"),
        Event::ChannelReady { .. } => "ChannelReady".into(),
        Event::PaymentReceived { amount_msat, .. } => {
            format!("PaymentReceived ({amount_msat} msat)")
        }
        Event::PaymentSent { fee_paid_msat, .. } => {
            format!("PaymentSent (fee {fee_paid_msat} msat)")
        }
        Event::ChannelClosed { reason, .. } => format!("ChannelClosed ({reason:?})"),
        Event::ChannelPending {
            funding_outpoint, ..
        } => format!("ChannelPending (broadcast the funding transaction {funding_outpoint})"),
        Event::BroadcastTransaction { transaction, .. } => format!(
            "BroadcastTransaction ({}, {} outputs)",
            transaction.compute_txid(),
            transaction.output.len()
        ),
        Event::SpendableOutputs { outputs, .. } => {
            let list: Vec<String> = outputs
                .iter()
                .map(|o| {
                    let at = o.outpoint.map_or("?".into(), |p| p.to_string());
                    format!("{} sat at {at}", o.value_sat)
                })
                .collect();
            format!("SpendableOutputs ({})", list.join(", "))
        }
        other => format!("{other:?}"),
    }
}

fn balances(nodes: &[Named<'_>], channel_id: &ChannelId) {
    for (name, node) in nodes {
        if let Some(d) = node.channel_details(channel_id) {
            println!(
                "   {name}: balance {} msat, {} HTLC(s) in flight, state {}",
                d.balance_msat, d.pending_htlcs, d.state
            );
        }
    }
}
