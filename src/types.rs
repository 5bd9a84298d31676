//! Identifiers and value types shared by every part of the store: channel ids,
//! short channel ids, payment hashes, secrets and preimages.

use core::fmt;
use core::str::FromStr;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::OutPoint;

/// Writes `bytes` as lower-case hex.
fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// A 32-byte channel identifier (BOLT 2).
///
/// Before funding, the opener picks a random *temporary* id that is unique only
/// between the two peers. Once the funding outpoint is known the channel is
/// renamed to its permanent id: the funding txid (in wire byte order) with the
/// output index XORed into its last two bytes.
///
/// # Examples
///
/// ```
/// use bitcoin::{hashes::Hash, OutPoint, Txid};
/// use chanstore::ChannelId;
///
/// let txid = Txid::from_byte_array([0xaa; 32]);
/// let id = ChannelId::from_funding_outpoint(&OutPoint::new(txid, 1));
/// assert_eq!(id.as_bytes()[31], 0xab);
/// assert_eq!(id.as_bytes()[30], 0xaa);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub [u8; 32]);

impl ChannelId {
    /// The permanent id of a channel funded by `outpoint` (BOLT 2).
    pub fn from_funding_outpoint(outpoint: &OutPoint) -> Self {
        let mut id = outpoint.txid.to_byte_array();
        let [hi, lo] = (outpoint.vout as u16).to_be_bytes();
        id[30] ^= hi;
        id[31] ^= lo;
        ChannelId(id)
    }

    /// A fresh random temporary id, as the opener of a channel picks one.
    pub fn temporary() -> Self {
        use bitcoin::secp256k1::rand::RngCore;
        let mut id = [0u8; 32];
        bitcoin::secp256k1::rand::thread_rng().fill_bytes(&mut id);
        ChannelId(id)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelId(")?;
        write_hex(f, &self.0)?;
        write!(f, ")")
    }
}

/// A short channel id (BOLT 7): the funding output's position in the chain,
/// packed as 3 bytes of block height, 3 bytes of transaction index and 2 bytes
/// of output index.
///
/// # Examples
///
/// ```
/// use chanstore::ShortChannelId;
///
/// let scid: ShortChannelId = "700000x12x1".parse().unwrap();
/// assert_eq!(scid.block_height(), 700_000);
/// assert_eq!(scid.tx_index(), 12);
/// assert_eq!(scid.output_index(), 1);
/// assert_eq!(scid.to_string(), "700000x12x1");
/// assert!("16777216x0x0".parse::<ShortChannelId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ShortChannelId(u64);

/// Largest block height or transaction index a short channel id can hold (24 bits).
const SCID_MAX_24: u32 = (1 << 24) - 1;

impl ShortChannelId {
    /// Builds a short channel id, or `None` when `block_height` or `tx_index`
    /// does not fit in 24 bits.
    pub fn new(block_height: u32, tx_index: u32, output_index: u16) -> Option<Self> {
        if block_height > SCID_MAX_24 || tx_index > SCID_MAX_24 {
            return None;
        }
        Some(ShortChannelId(
            (u64::from(block_height) << 40) | (u64::from(tx_index) << 16) | u64::from(output_index),
        ))
    }

    /// The id from its 8-byte integer form (as on the wire).
    pub fn from_u64(raw: u64) -> Self {
        ShortChannelId(raw)
    }

    /// The 8-byte integer form (as on the wire).
    pub fn to_u64(self) -> u64 {
        self.0
    }

    /// Height of the block that holds the funding transaction.
    pub fn block_height(self) -> u32 {
        (self.0 >> 40) as u32
    }

    /// Index of the funding transaction in its block.
    pub fn tx_index(self) -> u32 {
        ((self.0 >> 16) & u64::from(SCID_MAX_24)) as u32
    }

    /// Index of the funding output in its transaction.
    pub fn output_index(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
}

impl fmt::Display for ShortChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}x{}x{}",
            self.block_height(),
            self.tx_index(),
            self.output_index()
        )
    }
}

/// Why a string is not a short channel id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseShortChannelIdError {
    /// The string does not have the `BLOCKxTXxOUTPUT` shape.
    #[error("short channel id must look like 700000x12x1")]
    Format,
    /// One part is not a decimal number or does not fit its field.
    #[error("short channel id {part} is out of range (max {max})")]
    OutOfRange {
        /// Which part: "block height", "transaction index" or "output index".
        part: &'static str,
        /// Largest value the part may take.
        max: u32,
    },
}

impl FromStr for ShortChannelId {
    type Err = ParseShortChannelIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('x');
        let (Some(block), Some(tx), Some(out), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseShortChannelIdError::Format);
        };
        let parse = |text: &str, part: &'static str, max: u32| -> Result<u32, Self::Err> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseShortChannelIdError::Format);
            }
            match text.parse::<u32>() {
                Ok(v) if v <= max => Ok(v),
                _ => Err(ParseShortChannelIdError::OutOfRange { part, max }),
            }
        };
        let block = parse(block, "block height", SCID_MAX_24)?;
        let tx = parse(tx, "transaction index", SCID_MAX_24)?;
        let out = parse(out, "output index", u32::from(u16::MAX))?;
        Ok(ShortChannelId::new(block, tx, out as u16).expect("parts were range-checked"))
    }
}

/// The SHA-256 hash that locks an HTLC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaymentHash(pub [u8; 32]);

impl fmt::Display for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentHash(")?;
        write_hex(f, &self.0)?;
        write!(f, ")")
    }
}

/// The 32-byte `payment_secret` an invoice (BOLT 11) gives the payer, who
/// sends it back to the recipient in the final hop's onion payload (BOLT 4
/// `payment_data`), so that only the payer (not a probing hop) can complete
/// the payment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaymentSecret(pub [u8; 32]);

impl fmt::Display for PaymentSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for PaymentSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentSecret(")?;
        write_hex(f, &self.0)?;
        write!(f, ")")
    }
}

/// The secret whose SHA-256 is a [`PaymentHash`]; revealing it claims the HTLC.
///
/// # Examples
///
/// ```
/// use chanstore::{PaymentHash, PaymentPreimage};
///
/// let preimage = PaymentPreimage([7; 32]);
/// let hash = preimage.payment_hash();
/// assert!(preimage.matches(&hash));
/// assert!(!PaymentPreimage([8; 32]).matches(&hash));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaymentPreimage(pub [u8; 32]);

impl PaymentPreimage {
    /// The payment hash this preimage unlocks: `sha256(preimage)`.
    pub fn payment_hash(&self) -> PaymentHash {
        PaymentHash(sha256::Hash::hash(&self.0).to_byte_array())
    }

    /// Whether `sha256(self) == hash`.
    pub fn matches(&self, hash: &PaymentHash) -> bool {
        self.payment_hash() == *hash
    }

    /// A fresh random preimage.
    pub fn random() -> Self {
        use bitcoin::secp256k1::rand::RngCore;
        let mut bytes = [0u8; 32];
        bitcoin::secp256k1::rand::thread_rng().fill_bytes(&mut bytes);
        PaymentPreimage(bytes)
    }
}

impl fmt::Debug for PaymentPreimage {
    // The preimage is a secret until it is revealed: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentPreimage(..)")
    }
}

/// A node's public key in its 33-byte compressed form: what the store keys
/// its maps and queues by. Hashing or comparing it touches 33 bytes, where
/// `PublicKey`'s `Hash` and `Eq` serialize the point every time (most of a
/// map lookup's cost, measured). Built only from valid keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeId(pub(crate) [u8; 33]);

impl From<&bitcoin::secp256k1::PublicKey> for NodeId {
    fn from(pk: &bitcoin::secp256k1::PublicKey) -> Self {
        NodeId(pk.serialize())
    }
}

impl NodeId {
    /// The key itself (decompresses the point: not for hot paths).
    pub(crate) fn public_key(&self) -> bitcoin::secp256k1::PublicKey {
        bitcoin::secp256k1::PublicKey::from_slice(&self.0)
            .expect("a NodeId is built from a valid key")
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId(")?;
        write_hex(f, &self.0)?;
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::Txid;

    #[test]
    fn channel_id_xors_output_index_big_endian() {
        let txid = Txid::from_byte_array([0x11; 32]);
        let id = ChannelId::from_funding_outpoint(&OutPoint::new(txid, 0x0102));
        assert_eq!(&id.0[..30], &[0x11; 30]);
        assert_eq!(id.0[30], 0x11 ^ 0x01);
        assert_eq!(id.0[31], 0x11 ^ 0x02);
        assert_eq!(
            ChannelId::from_funding_outpoint(&OutPoint::new(txid, 0)).0,
            [0x11; 32]
        );
    }

    #[test]
    fn temporary_ids_differ() {
        assert_ne!(ChannelId::temporary(), ChannelId::temporary());
    }

    #[test]
    fn scid_round_trips_and_rejects_out_of_range() {
        let max: ShortChannelId = "16777215x16777215x65535".parse().unwrap();
        assert_eq!(max.to_u64(), u64::MAX);
        assert_eq!(ShortChannelId::from_u64(max.to_u64()), max);
        for bad in [
            "16777216x0x0",
            "0x16777216x0",
            "0x0x65536",
            "99999999999x1x1",
        ] {
            assert!(matches!(
                bad.parse::<ShortChannelId>(),
                Err(ParseShortChannelIdError::OutOfRange { .. })
            ));
        }
        for bad in [
            "", "1x2", "1x2x3x4", "ax1x1", "1x-1x1", "1x+1x1", " 1x1x1", "1xx1",
        ] {
            assert_eq!(
                bad.parse::<ShortChannelId>(),
                Err(ParseShortChannelIdError::Format),
                "{bad}"
            );
        }
        assert_eq!(ShortChannelId::new(1 << 24, 0, 0), None);
    }

    #[test]
    fn preimage_hash_is_sha256() {
        // sha256 of 32 zero bytes.
        let expected = "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925";
        assert_eq!(
            PaymentPreimage([0; 32]).payment_hash().to_string(),
            expected
        );
    }
}
