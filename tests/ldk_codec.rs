//! chanstore's codec against LDK 0.2.7's own encoder and decoder, message by
//! message, both directions: what one writes the other reads to the same
//! fields and writes back to the same bytes, and signatures made by one
//! verify by the other's rules.
//!
//! `channel_update` (BOLT 7, 258): LDK's `msgs::ChannelUpdate`
//! (ln/msgs.rs:3997-4056: fields in BOLT 7 order, `excess_data` read to the
//! end and signed, `must_be_one` required), signed by LDK's `KeysManager`
//! (sign/mod.rs:2399-2402: double SHA-256 of the unsigned part).

mod ldk;

use bitcoin::constants::ChainHash;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use chanstore::message::ChannelUpdate;
use chanstore::{DecodeError, Message, ShortChannelId};
use ldk::wire::{frame, ldk_update_signed_by, read_ldk_channel_update};
use lightning::ln::msgs;
use lightning::sign::{KeysManager, NodeSigner, Recipient};
use proptest::prelude::*;

/// The fields both sides have, in BOLT 7 order (the signature aside).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fields {
    chain_hash: [u8; 32],
    scid: u64,
    timestamp: u32,
    message_flags: u8,
    channel_flags: u8,
    cltv_expiry_delta: u16,
    htlc_minimum_msat: u64,
    fee_base_msat: u32,
    fee_proportional_millionths: u32,
    htlc_maximum_msat: u64,
    excess_data: Vec<u8>,
}

fn of_ldk(u: &msgs::UnsignedChannelUpdate) -> Fields {
    Fields {
        chain_hash: u.chain_hash.to_bytes(),
        scid: u.short_channel_id,
        timestamp: u.timestamp,
        message_flags: u.message_flags,
        channel_flags: u.channel_flags,
        cltv_expiry_delta: u.cltv_expiry_delta,
        htlc_minimum_msat: u.htlc_minimum_msat,
        fee_base_msat: u.fee_base_msat,
        fee_proportional_millionths: u.fee_proportional_millionths,
        htlc_maximum_msat: u.htlc_maximum_msat,
        excess_data: u.excess_data.clone(),
    }
}

fn of_chanstore(u: &ChannelUpdate) -> Fields {
    Fields {
        chain_hash: u.chain_hash.to_bytes(),
        scid: u.short_channel_id.to_u64(),
        timestamp: u.timestamp,
        message_flags: u.message_flags,
        channel_flags: u.channel_flags,
        cltv_expiry_delta: u.cltv_expiry_delta,
        htlc_minimum_msat: u.htlc_minimum_msat,
        fee_base_msat: u.fee_base_msat,
        fee_proportional_millionths: u.fee_proportional_millionths,
        htlc_maximum_msat: u.htlc_maximum_msat,
        excess_data: u.excess_data.clone(),
    }
}

fn ldk_unsigned(f: &Fields) -> msgs::UnsignedChannelUpdate {
    msgs::UnsignedChannelUpdate {
        chain_hash: ChainHash::from(f.chain_hash),
        short_channel_id: f.scid,
        timestamp: f.timestamp,
        message_flags: f.message_flags,
        channel_flags: f.channel_flags,
        cltv_expiry_delta: f.cltv_expiry_delta,
        htlc_minimum_msat: f.htlc_minimum_msat,
        htlc_maximum_msat: f.htlc_maximum_msat,
        fee_base_msat: f.fee_base_msat,
        fee_proportional_millionths: f.fee_proportional_millionths,
        excess_data: f.excess_data.clone(),
    }
}

fn chanstore_unsigned(f: &Fields) -> ChannelUpdate {
    let mut u = ChannelUpdate::unsigned(
        ChainHash::from(f.chain_hash),
        ShortChannelId::from_u64(f.scid),
    );
    u.timestamp = f.timestamp;
    u.message_flags = f.message_flags;
    u.channel_flags = f.channel_flags;
    u.cltv_expiry_delta = f.cltv_expiry_delta;
    u.htlc_minimum_msat = f.htlc_minimum_msat;
    u.fee_base_msat = f.fee_base_msat;
    u.fee_proportional_millionths = f.fee_proportional_millionths;
    u.htlc_maximum_msat = f.htlc_maximum_msat;
    u.excess_data = f.excess_data.clone();
    u
}

fn ldk_keys() -> KeysManager {
    KeysManager::new(&[0x42; 32], 1_700_000_000, 0, true)
}

/// LDK writes and signs; chanstore reads the same fields, writes the same
/// bytes, and finds LDK's signature valid for LDK's node id.
fn ldk_to_chanstore(keys: &KeysManager, f: &Fields) -> Result<(), TestCaseError> {
    let contents = ldk_unsigned(f);
    let signature = keys
        .sign_gossip_message(msgs::UnsignedGossipMessage::ChannelUpdate(&contents))
        .unwrap();
    let bytes = frame(&msgs::ChannelUpdate {
        signature,
        contents,
    });
    let Ok(Message::ChannelUpdate(ours)) = Message::decode(&bytes) else {
        return Err(TestCaseError::fail(format!(
            "chanstore cannot read LDK's: {:?}",
            Message::decode(&bytes)
        )));
    };
    prop_assert_eq!(of_chanstore(&ours), f.clone());
    prop_assert_eq!(ours.signature, signature);
    prop_assert_eq!(Message::ChannelUpdate(ours.clone()).encode(), bytes);
    prop_assert!(ours.verify(&keys.get_node_id(Recipient::Node).unwrap()));
    Ok(())
}

/// chanstore writes and signs; LDK reads the same fields, writes the same
/// bytes, and finds chanstore's signature valid by its router's rule.
fn chanstore_to_ldk(secret: &SecretKey, f: &Fields) -> Result<(), TestCaseError> {
    let mut ours = chanstore_unsigned(f);
    ours.sign(secret);
    let bytes = Message::ChannelUpdate(ours.clone()).encode();
    let theirs = read_ldk_channel_update(&bytes);
    prop_assert_eq!(of_ldk(&theirs.contents), f.clone());
    prop_assert_eq!(theirs.signature, ours.signature);
    prop_assert_eq!(frame(&theirs), bytes);
    let node_id = PublicKey::from_secret_key(&Secp256k1::new(), secret);
    prop_assert!(ldk_update_signed_by(&theirs, &node_id));
    Ok(())
}

/// What LDK 0.2.7 sends on a private channel (channelmanager.rs:5187-5200),
/// and what chanstore sends: `must_be_one` (and, for chanstore,
/// `dont_forward`), a direction bit, real-looking policy.
fn typical() -> Fields {
    Fields {
        chain_hash: ChainHash::TESTNET3.to_bytes(),
        scid: ShortChannelId::new(800_001, 3, 1).unwrap().to_u64(),
        timestamp: 1_700_000_123,
        message_flags: 1,
        channel_flags: 1,
        cltv_expiry_delta: 72,
        htlc_minimum_msat: 1,
        fee_base_msat: 1000,
        fee_proportional_millionths: 0,
        htlc_maximum_msat: 900_000_000,
        excess_data: Vec::new(),
    }
}

#[test]
fn channel_update_both_ways_typical() {
    let keys = ldk_keys();
    let secret = SecretKey::from_slice(&[0x43; 32]).unwrap();
    for f in [
        typical(),
        Fields {
            message_flags: 3,
            channel_flags: 2,
            ..typical()
        },
        // A field of a later BOLT 7: signed, kept, written back by both.
        Fields {
            excess_data: vec![0x01, 0x02, 0x03],
            ..typical()
        },
    ] {
        ldk_to_chanstore(&keys, &f).unwrap();
        chanstore_to_ldk(&secret, &f).unwrap();
    }
}

#[test]
fn channel_update_without_must_be_one_is_refused_by_both() {
    let mut ours = chanstore_unsigned(&typical());
    ours.sign(&SecretKey::from_slice(&[0x43; 32]).unwrap());
    let mut bytes = Message::ChannelUpdate(ours).encode();
    bytes[2 + 64 + 32 + 8 + 4] = 0; // message_flags
    assert_eq!(
        Message::decode(&bytes),
        Err(DecodeError::InvalidValue {
            field: "channel_update.message_flags"
        })
    );
    let mut r = &bytes[2..];
    let ldk = <msgs::ChannelUpdate as lightning::util::ser::LengthReadable>::read_from_fixed_length_buffer(&mut r);
    assert_eq!(ldk, Err(msgs::DecodeError::InvalidValue));
}

fn any_fields() -> impl Strategy<Value = Fields> {
    (
        (
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u32>(),
            any::<u8>().prop_map(|f| f | 1),
            any::<u8>(),
            any::<u16>(),
        ),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..40),
        ),
    )
        .prop_map(
            |(
                (chain_hash, scid, timestamp, message_flags, channel_flags, cltv_expiry_delta),
                (htlc_minimum_msat, fee_base_msat, ppm, htlc_maximum_msat, excess_data),
            )| Fields {
                chain_hash,
                scid,
                timestamp,
                message_flags,
                channel_flags,
                cltv_expiry_delta,
                htlc_minimum_msat,
                fee_base_msat,
                fee_proportional_millionths: ppm,
                htlc_maximum_msat,
                excess_data,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn channel_update_both_ways_any_fields(f in any_fields()) {
        ldk_to_chanstore(&ldk_keys(), &f)?;
        chanstore_to_ldk(&SecretKey::from_slice(&[0x43; 32]).unwrap(), &f)?;
    }
}
