//! Normal operation messages (BOLT 2, "Normal Operation"): `update_add_htlc`,
//! `update_fulfill_htlc`, `update_fail_htlc`, `commitment_signed`,
//! `revoke_and_ack` and `update_fee`, plus the opaque [`OnionPacket`] that
//! `update_add_htlc` carries.
//!
//! The codec checks only the format; amounts, ids, expiries and signature
//! counts are checked by the channel state machine.

use core::fmt;

use bitcoin::secp256k1::{ecdsa::Signature, PublicKey};

use super::wire::{Reader, Writer, POINT_LEN, SIGNATURE_LEN};
use crate::error::DecodeError;
use crate::types::{ChannelId, PaymentHash, PaymentPreimage};

/// Length of a BOLT 4 onion packet: version (1) + public key (33) + hop
/// payloads (1300) + HMAC (32).
pub const ONION_PACKET_LEN: usize = 1366;

/// BOLT 4 onion packet bytes, carried opaquely (version 1 + pubkey 33 + hop
/// payloads 1300 + hmac 32).
///
/// Boxed so that an [`UpdateAddHtlc`] (and so every [`super::Message`]) stays
/// small to move. `Debug` prints only the first bytes; `Default` is all zero.
///
/// # Examples
///
/// ```
/// use chanstore::message::{OnionPacket, ONION_PACKET_LEN};
///
/// let mut onion = OnionPacket::default();
/// onion.0[0] = 0x00; // version
/// onion.0[1] = 0x02;
/// assert_eq!(onion.0.len(), ONION_PACKET_LEN);
/// assert_eq!(format!("{onion:?}"), "OnionPacket(0002000000000000..)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct OnionPacket(pub Box<[u8; ONION_PACKET_LEN]>);

impl Default for OnionPacket {
    fn default() -> Self {
        OnionPacket(Box::new([0; ONION_PACKET_LEN]))
    }
}

impl fmt::Debug for OnionPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OnionPacket(")?;
        for b in self.0.iter().take(8) {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// `update_add_htlc` (type 128): offer an HTLC to the peer.
///
/// Trailing `update_add_htlc_tlvs`: odd records are skipped; `blinding_point`
/// (type 0, route blinding, which this crate does not offer) is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateAddHtlc {
    /// The channel.
    pub channel_id: ChannelId,
    /// The HTLC's id: 0 for the sender's first, then one more each time.
    pub id: u64,
    /// Amount offered.
    pub amount_msat: u64,
    /// The hash whose preimage claims the HTLC.
    pub payment_hash: PaymentHash,
    /// Absolute block height at which the HTLC times out.
    pub cltv_expiry: u32,
    /// The onion for the next hop (BOLT 4).
    pub onion_routing_packet: OnionPacket,
}

impl UpdateAddHtlc {
    /// Length of the fixed-width fields (here the whole body), without the type
    /// and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + 8 + 8 + 32 + 4 + ONION_PACKET_LEN;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let channel_id = ChannelId(r.read_array("update_add_htlc.channel_id")?);
        let id = r.read_u64("update_add_htlc.id")?;
        let amount_msat = r.read_u64("update_add_htlc.amount_msat")?;
        let payment_hash = PaymentHash(r.read_array("update_add_htlc.payment_hash")?);
        let cltv_expiry = r.read_u32("update_add_htlc.cltv_expiry")?;
        // Copy straight into the heap rather than through a 1366-byte stack array.
        let field = "update_add_htlc.onion_routing_packet";
        let onion: Box<[u8]> = r.read_bytes(ONION_PACKET_LEN, field)?.into();
        let onion = onion
            .try_into()
            .map_err(|_| DecodeError::ShortRead { field })?;
        Ok(UpdateAddHtlc {
            channel_id,
            id,
            amount_msat,
            payment_hash,
            cltv_expiry,
            onion_routing_packet: OnionPacket(onion),
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_u64(self.id);
        w.write_u64(self.amount_msat);
        w.write_bytes(&self.payment_hash.0);
        w.write_u32(self.cltv_expiry);
        w.write_bytes(&self.onion_routing_packet.0[..]);
    }
}

/// `update_fulfill_htlc` (type 130): claim an HTLC with its preimage.
///
/// Trailing `update_fulfill_htlc_tlvs` (`attribution_data`, odd) are
/// skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateFulfillHtlc {
    /// The channel.
    pub channel_id: ChannelId,
    /// The id of the HTLC being fulfilled.
    pub id: u64,
    /// The preimage of the HTLC's payment hash.
    pub payment_preimage: PaymentPreimage,
}

impl UpdateFulfillHtlc {
    /// Length of the fixed-width fields (here the whole body), without the type
    /// and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + 8 + 32;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(UpdateFulfillHtlc {
            channel_id: ChannelId(r.read_array("update_fulfill_htlc.channel_id")?),
            id: r.read_u64("update_fulfill_htlc.id")?,
            payment_preimage: PaymentPreimage(
                r.read_array("update_fulfill_htlc.payment_preimage")?,
            ),
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_u64(self.id);
        w.write_bytes(&self.payment_preimage.0);
    }
}

/// `update_fail_htlc` (type 131): fail an HTLC, with an encrypted reason for
/// its origin.
///
/// Trailing `update_fail_htlc_tlvs` (`attribution_data`, odd) are skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateFailHtlc {
    /// The channel.
    pub channel_id: ChannelId,
    /// The id of the HTLC being failed.
    pub id: u64,
    /// The BOLT 4 failure onion, opaque here. At most 65535 bytes on the wire
    /// (`u16` length).
    pub reason: Vec<u8>,
}

impl UpdateFailHtlc {
    /// Length of the fixed-width fields (the `reason` length prefix included),
    /// without the type and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + 8 + 2;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(UpdateFailHtlc {
            channel_id: ChannelId(r.read_array("update_fail_htlc.channel_id")?),
            id: r.read_u64("update_fail_htlc.id")?,
            reason: r.read_u16_prefixed("update_fail_htlc.reason")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_u64(self.id);
        w.write_u16_prefixed(&self.reason, "update_fail_htlc.reason");
    }
}

/// `update_fail_malformed_htlc` (type 135): fail an HTLC whose onion the
/// sender of this message could not read (BOLT 2). There is no failure
/// onion: the hop before it builds one with `failure_code` and
/// `sha256_of_onion` as its data (BOLT 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateFailMalformedHtlc {
    /// The channel.
    pub channel_id: ChannelId,
    /// The id of the HTLC being failed.
    pub id: u64,
    /// SHA256 of the onion that could not be read.
    pub sha256_of_onion: [u8; 32],
    /// A BOLT 4 failure code with the BADONION bit (0x8000) set; the store
    /// refuses one without it.
    pub failure_code: u16,
}

impl UpdateFailMalformedHtlc {
    /// Length of the fixed-width fields, without the type and without
    /// extensions.
    pub(crate) const FIXED_LEN: usize = 32 + 8 + 32 + 2;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(UpdateFailMalformedHtlc {
            channel_id: ChannelId(r.read_array("update_fail_malformed_htlc.channel_id")?),
            id: r.read_u64("update_fail_malformed_htlc.id")?,
            sha256_of_onion: r.read_array("update_fail_malformed_htlc.sha256_of_onion")?,
            failure_code: r.read_u16("update_fail_malformed_htlc.failure_code")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_u64(self.id);
        w.write_bytes(&self.sha256_of_onion);
        w.write_u16(self.failure_code);
    }
}

/// `commitment_signed` (type 132): sign the peer's next commitment and each of
/// its untrimmed HTLC transactions.
///
/// Trailing `commitment_signed_tlvs` (`funding_txid`, odd, for splicing) are
/// skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitmentSigned {
    /// The channel.
    pub channel_id: ChannelId,
    /// Signature on the peer's new commitment transaction.
    pub signature: Signature,
    /// One signature per untrimmed HTLC output, in commitment output order.
    /// At most 65535 on the wire (`u16` `num_htlcs`).
    pub htlc_signatures: Vec<Signature>,
}

impl CommitmentSigned {
    /// Length of the fixed-width fields (`num_htlcs` included), without the
    /// type, the HTLC signatures and extensions.
    pub(crate) const FIXED_LEN: usize = 32 + SIGNATURE_LEN + 2;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let channel_id = ChannelId(r.read_array("commitment_signed.channel_id")?);
        let signature = r.read_signature("commitment_signed.signature")?;
        let num_htlcs = usize::from(r.read_u16("commitment_signed.num_htlcs")?);
        // Refuse a count the input cannot hold before allocating for it.
        let field = "commitment_signed.htlc_signature";
        if num_htlcs * SIGNATURE_LEN > r.remaining() {
            return Err(DecodeError::ShortRead { field });
        }
        let mut htlc_signatures = Vec::with_capacity(num_htlcs);
        for _ in 0..num_htlcs {
            htlc_signatures.push(r.read_signature(field)?);
        }
        Ok(CommitmentSigned {
            channel_id,
            signature,
            htlc_signatures,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_signature(&self.signature);
        w.write_u16_len(self.htlc_signatures.len(), "commitment_signed.num_htlcs");
        for sig in &self.htlc_signatures {
            w.write_signature(sig);
        }
    }
}

/// `revoke_and_ack` (type 133): revoke the sender's previous commitment and
/// give the point for its next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeAndAck {
    /// The channel.
    pub channel_id: ChannelId,
    /// The secret of the commitment being revoked.
    pub per_commitment_secret: [u8; 32],
    /// Per-commitment point of the sender's next commitment.
    pub next_per_commitment_point: PublicKey,
}

impl RevokeAndAck {
    /// Length of the fixed-width fields (here the whole body), without the type
    /// and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + 32 + POINT_LEN;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RevokeAndAck {
            channel_id: ChannelId(r.read_array("revoke_and_ack.channel_id")?),
            per_commitment_secret: r.read_array("revoke_and_ack.per_commitment_secret")?,
            next_per_commitment_point: r.read_pubkey("revoke_and_ack.next_per_commitment_point")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_bytes(&self.per_commitment_secret);
        w.write_pubkey(&self.next_per_commitment_point);
    }
}

/// `update_fee` (type 134): the funder changes the commitment fee rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateFee {
    /// The channel.
    pub channel_id: ChannelId,
    /// New fee rate, in satoshi per 1000 weight.
    pub feerate_per_kw: u32,
}

impl UpdateFee {
    /// Length of the fixed-width fields (here the whole body), without the type
    /// and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + 4;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(UpdateFee {
            channel_id: ChannelId(r.read_array("update_fee.channel_id")?),
            feerate_per_kw: r.read_u32("update_fee.feerate_per_kw")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_u32(self.feerate_per_kw);
    }
}
