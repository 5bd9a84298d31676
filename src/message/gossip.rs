//! `channel_update` (type 258, BOLT 7 "The `channel_update` Message"): one
//! side's forwarding policy for one direction of a channel, signed by that
//! side's node key.
//!
//! On an unannounced channel it is sent only to the channel's peer (after
//! `channel_ready`, and again after every `channel_reestablish`), so the
//! peer learns what we charge to forward over the channel towards it; the
//! same message, type included, is the `channel_update` of BOLT 4's UPDATE
//! failures.
//!
//! Unlike the BOLT 2 messages it has no TLV extension: BOLT 7 signs
//! "the entire message following the `signature` field (including unknown
//! fields following `fee_proportional_millionths`)", so the bytes after
//! `htlc_maximum_msat` are kept verbatim in [`ChannelUpdate::excess_data`]
//! and written back: `encode(decode(bytes)) == bytes`.

use bitcoin::constants::ChainHash;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::secp256k1::{ecdsa::Signature, Message as SecpMessage, PublicKey, SecretKey};

use super::wire::{Reader, Writer, SIGNATURE_LEN};
use crate::error::DecodeError;
use crate::secp::SECP;
use crate::types::ShortChannelId;

/// `message_flags` bit 0, `must_be_one`: once the flag that
/// `htlc_maximum_msat` is present, which it now always is.
pub const MESSAGE_FLAG_MUST_BE_ONE: u8 = 1 << 0;
/// `message_flags` bit 1, `dont_forward`: the update is for the peer only
/// (an unannounced channel).
pub const MESSAGE_FLAG_DONT_FORWARD: u8 = 1 << 1;
/// `channel_flags` bit 0, `direction`: 0 if the sender is `node_id_1` (the
/// lesser of the two node ids, compressed, compared as bytes), 1 if it is
/// `node_id_2`.
pub const CHANNEL_FLAG_DIRECTION: u8 = 1 << 0;
/// `channel_flags` bit 1, `disable`: the sender does not forward over the
/// channel now.
pub const CHANNEL_FLAG_DISABLE: u8 = 1 << 1;

/// `channel_update` (type 258): the sender's policy for forwarding over
/// `short_channel_id` in the direction `channel_flags` names.
///
/// The codec checks the format only (widths, a valid compact signature,
/// `must_be_one` set, as LDK's reader also requires). Whether the signature
/// is the peer's, the chain ours and the channel one of the peer's is the
/// store's business (`ChannelStore::handle_message`).
///
/// # Examples
///
/// ```
/// use bitcoin::constants::ChainHash;
/// use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
/// use chanstore::message::{ChannelUpdate, Message};
/// use chanstore::ShortChannelId;
///
/// let key = SecretKey::from_slice(&[3; 32]).unwrap();
/// let mut update = ChannelUpdate::unsigned(ChainHash::TESTNET3, ShortChannelId::new(700_000, 12, 1).unwrap());
/// update.fee_base_msat = 1000;
/// update.sign(&key);
/// assert!(update.verify(&PublicKey::from_secret_key(&Secp256k1::new(), &key)));
///
/// let bytes = Message::from(update.clone()).encode();
/// assert_eq!(&bytes[..2], &[0x01, 0x02]); // type 258
/// assert_eq!(bytes.len(), 2 + 136);
/// assert_eq!(Message::decode(&bytes), Ok(Message::ChannelUpdate(update)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelUpdate {
    /// The sender's node key's signature of [`ChannelUpdate::digest`].
    pub signature: Signature,
    /// Genesis block hash of the channel's chain.
    pub chain_hash: ChainHash,
    /// The channel: its real short channel id, or an alias the sender
    /// received from its peer (BOLT 7).
    pub short_channel_id: ShortChannelId,
    /// Orders the sender's updates for this channel (usually UNIX seconds).
    pub timestamp: u32,
    /// [`MESSAGE_FLAG_MUST_BE_ONE`], [`MESSAGE_FLAG_DONT_FORWARD`].
    pub message_flags: u8,
    /// [`CHANNEL_FLAG_DIRECTION`], [`CHANNEL_FLAG_DISABLE`].
    pub channel_flags: u8,
    /// Blocks the sender subtracts from an incoming HTLC's `cltv_expiry`.
    pub cltv_expiry_delta: u16,
    /// Smallest HTLC the sender forwards over the channel.
    pub htlc_minimum_msat: u64,
    /// Fixed part of the sender's forwarding fee.
    pub fee_base_msat: u32,
    /// Proportional part of the fee, in millionths of the amount forwarded.
    pub fee_proportional_millionths: u32,
    /// Largest HTLC the sender forwards over the channel.
    pub htlc_maximum_msat: u64,
    /// Bytes after `htlc_maximum_msat`, fields of a later BOLT 7 this crate
    /// does not know: signed, so kept as they came.
    pub excess_data: Vec<u8>,
}

impl ChannelUpdate {
    /// Length of the fixed-width fields, without the type.
    pub(crate) const FIXED_LEN: usize = SIGNATURE_LEN + 32 + 8 + 4 + 1 + 1 + 2 + 8 + 4 + 4 + 8;

    /// An update for `short_channel_id` on `chain_hash` with every other
    /// field zero (but `must_be_one`), and a placeholder signature: set the
    /// fields, then [`ChannelUpdate::sign`].
    pub fn unsigned(chain_hash: ChainHash, short_channel_id: ShortChannelId) -> Self {
        ChannelUpdate {
            // r = s = 1 is a valid compact encoding (never a valid signature).
            signature: Signature::from_compact(&placeholder_signature())
                .expect("r = s = 1 is in range"),
            chain_hash,
            short_channel_id,
            timestamp: 0,
            message_flags: MESSAGE_FLAG_MUST_BE_ONE,
            channel_flags: 0,
            cltv_expiry_delta: 0,
            htlc_minimum_msat: 0,
            fee_base_msat: 0,
            fee_proportional_millionths: 0,
            htlc_maximum_msat: 0,
            excess_data: Vec::new(),
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let signature = r.read_signature("channel_update.signature")?;
        let chain_hash = ChainHash::from(r.read_array::<32>("channel_update.chain_hash")?);
        let short_channel_id =
            ShortChannelId::from_u64(r.read_u64("channel_update.short_channel_id")?);
        let timestamp = r.read_u32("channel_update.timestamp")?;
        let message_flags = r.read_u8("channel_update.message_flags")?;
        if message_flags & MESSAGE_FLAG_MUST_BE_ONE == 0 {
            // Without it, the bytes where htlc_maximum_msat stands meant
            // something else (BOLT 7 before 2022): not this format.
            return Err(DecodeError::InvalidValue {
                field: "channel_update.message_flags",
            });
        }
        let channel_flags = r.read_u8("channel_update.channel_flags")?;
        let cltv_expiry_delta = r.read_u16("channel_update.cltv_expiry_delta")?;
        let htlc_minimum_msat = r.read_u64("channel_update.htlc_minimum_msat")?;
        let fee_base_msat = r.read_u32("channel_update.fee_base_msat")?;
        let fee_proportional_millionths =
            r.read_u32("channel_update.fee_proportional_millionths")?;
        let htlc_maximum_msat = r.read_u64("channel_update.htlc_maximum_msat")?;
        let excess_data = r
            .read_bytes(r.remaining(), "channel_update.excess_data")?
            .to_vec();
        Ok(ChannelUpdate {
            signature,
            chain_hash,
            short_channel_id,
            timestamp,
            message_flags,
            channel_flags,
            cltv_expiry_delta,
            htlc_minimum_msat,
            fee_base_msat,
            fee_proportional_millionths,
            htlc_maximum_msat,
            excess_data,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_signature(&self.signature);
        self.write_signed(w);
    }

    /// Everything after the signature: what it signs.
    fn write_signed(&self, w: &mut Writer) {
        w.write_bytes(self.chain_hash.as_bytes());
        w.write_u64(self.short_channel_id.to_u64());
        w.write_u32(self.timestamp);
        w.write_u8(self.message_flags);
        w.write_u8(self.channel_flags);
        w.write_u16(self.cltv_expiry_delta);
        w.write_u64(self.htlc_minimum_msat);
        w.write_u32(self.fee_base_msat);
        w.write_u32(self.fee_proportional_millionths);
        w.write_u64(self.htlc_maximum_msat);
        w.write_bytes(&self.excess_data);
    }

    /// What the signature signs (BOLT 7): the double SHA-256 of the message
    /// after the `signature` field, `excess_data` included.
    pub fn digest(&self) -> [u8; 32] {
        let mut w = Writer::with_capacity(Self::FIXED_LEN + self.excess_data.len());
        self.write_signed(&mut w);
        sha256d::Hash::hash(&w.into_bytes()).to_byte_array()
    }

    /// Signs the update with `node_secret` (deterministic, RFC 6979).
    pub fn sign(&mut self, node_secret: &SecretKey) {
        let msg = SecpMessage::from_digest(self.digest());
        self.signature = SECP.sign_ecdsa(&msg, node_secret);
    }

    /// Whether [`ChannelUpdate::signature`] is `node_id`'s signature of the
    /// update.
    pub fn verify(&self, node_id: &PublicKey) -> bool {
        let msg = SecpMessage::from_digest(self.digest());
        SECP.verify_ecdsa(&msg, &self.signature, node_id).is_ok()
    }

    /// Whether the update is for the direction `node_id_2` forwards in (the
    /// `direction` bit).
    pub fn is_from_node_2(&self) -> bool {
        self.channel_flags & CHANNEL_FLAG_DIRECTION != 0
    }

    /// Whether the `disable` bit is clear.
    pub fn is_enabled(&self) -> bool {
        self.channel_flags & CHANNEL_FLAG_DISABLE == 0
    }
}

/// A compact signature with r = s = 1.
fn placeholder_signature() -> [u8; 64] {
    let mut bytes = [0u8; 64];
    bytes[31] = 1;
    bytes[63] = 1;
    bytes
}

/// Whether `ours` is `node_id_1` of a channel with `theirs` (BOLT 7: the
/// lesser compressed key, compared as bytes).
pub(crate) fn is_node_1(ours: &PublicKey, theirs: &PublicKey) -> bool {
    ours.serialize() < theirs.serialize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn sample() -> ChannelUpdate {
        let mut u = ChannelUpdate::unsigned(
            ChainHash::TESTNET3,
            ShortChannelId::new(700_000, 12, 1).unwrap(),
        );
        u.timestamp = 1_700_000_000;
        u.message_flags |= MESSAGE_FLAG_DONT_FORWARD;
        u.channel_flags = CHANNEL_FLAG_DIRECTION;
        u.cltv_expiry_delta = 72;
        u.htlc_minimum_msat = 1;
        u.fee_base_msat = 1000;
        u.fee_proportional_millionths = 100;
        u.htlc_maximum_msat = 900_000_000;
        u.sign(&SecretKey::from_slice(&[5; 32]).unwrap());
        u
    }

    #[test]
    fn fixed_length_matches_bolt7() {
        // signature, chain_hash, scid, timestamp, two flag bytes, cltv delta,
        // htlc min, fee base, fee ppm, htlc max.
        assert_eq!(
            ChannelUpdate::FIXED_LEN,
            64 + 32 + 8 + 4 + 2 + 2 + 8 + 4 + 4 + 8
        );
        assert_eq!(ChannelUpdate::FIXED_LEN, 136);
    }

    #[test]
    fn round_trips_with_and_without_excess_data() {
        let u = sample();
        let bytes = Message::from(u.clone()).encode();
        assert_eq!(bytes.len(), 2 + 136);
        assert_eq!(&bytes[..2], &258u16.to_be_bytes());
        assert_eq!(
            Message::decode(&bytes),
            Ok(Message::ChannelUpdate(u.clone()))
        );
        // Fields in BOLT 7 order, big-endian.
        assert_eq!(&bytes[66..98], ChainHash::TESTNET3.as_bytes());
        assert_eq!(&bytes[98..106], &u.short_channel_id.to_u64().to_be_bytes());
        assert_eq!(
            bytes[110],
            MESSAGE_FLAG_MUST_BE_ONE | MESSAGE_FLAG_DONT_FORWARD
        );
        assert_eq!(&bytes[130..138], &900_000_000u64.to_be_bytes());

        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0xde, 0xad]);
        let Ok(Message::ChannelUpdate(with)) = Message::decode(&longer) else {
            panic!("decodes with excess data");
        };
        assert_eq!(with.excess_data, vec![0xde, 0xad]);
        assert_eq!(Message::from(with.clone()).encode(), longer);
        // The excess is signed: the old signature no longer covers it.
        let node = PublicKey::from_secret_key(&SECP, &SecretKey::from_slice(&[5; 32]).unwrap());
        assert!(u.verify(&node));
        assert!(!with.verify(&node));
    }

    #[test]
    fn hostile_bytes_are_errors_naming_the_field() {
        let bytes = Message::from(sample()).encode();
        for len in 0..bytes.len() {
            assert!(Message::decode(&bytes[..len]).is_err(), "prefix of {len}");
        }
        assert_eq!(
            Message::decode(&bytes[..2 + 135]),
            Err(DecodeError::ShortRead {
                field: "channel_update.htlc_maximum_msat"
            })
        );
        let mut no_must_be_one = bytes.clone();
        no_must_be_one[2 + 64 + 32 + 8 + 4] = MESSAGE_FLAG_DONT_FORWARD;
        assert_eq!(
            Message::decode(&no_must_be_one),
            Err(DecodeError::InvalidValue {
                field: "channel_update.message_flags"
            })
        );
        // r at the curve order: not a compact signature.
        let mut bad_sig = bytes.clone();
        bad_sig[2..34].copy_from_slice(&[0xff; 32]);
        assert_eq!(
            Message::decode(&bad_sig),
            Err(DecodeError::InvalidSignature {
                field: "channel_update.signature"
            })
        );
    }

    #[test]
    fn signature_covers_every_field() {
        let u = sample();
        let node = PublicKey::from_secret_key(&SECP, &SecretKey::from_slice(&[5; 32]).unwrap());
        assert!(u.verify(&node));
        let other = PublicKey::from_secret_key(&SECP, &SecretKey::from_slice(&[6; 32]).unwrap());
        assert!(!u.verify(&other));
        let changes: [fn(&mut ChannelUpdate); 10] = [
            |u| u.chain_hash = ChainHash::BITCOIN,
            |u| u.short_channel_id = ShortChannelId::from_u64(1),
            |u| u.timestamp += 1,
            |u| u.message_flags ^= MESSAGE_FLAG_DONT_FORWARD,
            |u| u.channel_flags ^= CHANNEL_FLAG_DISABLE,
            |u| u.cltv_expiry_delta += 1,
            |u| u.htlc_minimum_msat += 1,
            |u| u.fee_base_msat += 1,
            |u| u.fee_proportional_millionths += 1,
            |u| u.htlc_maximum_msat += 1,
        ];
        for change in changes {
            let mut changed = u.clone();
            change(&mut changed);
            assert!(!changed.verify(&node), "{changed:?}");
        }
    }

    #[test]
    fn node_1_is_the_lesser_key() {
        let a = PublicKey::from_secret_key(&SECP, &SecretKey::from_slice(&[5; 32]).unwrap());
        let b = PublicKey::from_secret_key(&SECP, &SecretKey::from_slice(&[6; 32]).unwrap());
        assert_ne!(is_node_1(&a, &b), is_node_1(&b, &a));
        assert_eq!(is_node_1(&a, &b), a.serialize() < b.serialize());
    }
}
