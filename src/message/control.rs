//! Channel control messages: `shutdown` and `closing_signed` (BOLT 2, "Channel
//! Close"), `error` (BOLT 1) and `channel_reestablish` (BOLT 2, "Message
//! Retransmission").
//!
//! The codec checks only the format; script standardness, fee ranges and
//! commitment numbers are checked by the channel state machine.

use bitcoin::secp256k1::{ecdsa::Signature, PublicKey};
use bitcoin::ScriptBuf;

use super::tlv;
use super::wire::{Reader, Writer, POINT_LEN, SIGNATURE_LEN};
use crate::error::DecodeError;
use crate::types::ChannelId;

/// `shutdown` (type 38): start a mutual close, naming where the sender wants
/// its funds paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shutdown {
    /// The channel.
    pub channel_id: ChannelId,
    /// The sender's closing output script. Any bytes are accepted here (at
    /// most 65535 on the wire); the state machine checks the allowed forms.
    pub scriptpubkey: ScriptBuf,
}

impl Shutdown {
    /// Length of the fixed-width fields (the script length prefix included),
    /// without the type and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + 2;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Shutdown {
            channel_id: ChannelId(r.read_array("shutdown.channel_id")?),
            scriptpubkey: ScriptBuf::from_bytes(r.read_u16_prefixed("shutdown.scriptpubkey")?),
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_u16_prefixed(self.scriptpubkey.as_bytes(), "shutdown.scriptpubkey");
    }
}

/// `closing_signed` (type 39): propose a closing fee, with the sender's
/// signature on the closing transaction that pays it.
///
/// Its `closing_signed_tlvs` stream is read by BOLT 1's rules: `fee_range`
/// (type 1) is kept, an unknown odd record is skipped, an unknown even one
/// is refused ([`DecodeError::UnknownEvenTlv`]), and a stream that is not
/// well formed (truncated, a non-canonical `BigSize`, types not strictly
/// increasing) is [`DecodeError::InvalidTlvStream`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosingSigned {
    /// The channel.
    pub channel_id: ChannelId,
    /// The proposed closing fee.
    pub fee_satoshis: u64,
    /// The sender's signature on the closing transaction with that fee.
    pub signature: Signature,
    /// The fees the sender accepts (TLV 1); `None` in a legacy negotiation.
    pub fee_range: Option<ClosingFeeRange>,
}

/// `fee_range` (TLV 1 of `closing_signed`): the lowest and highest closing
/// fee the sender accepts. The codec does not check that `min <= max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClosingFeeRange {
    /// The lowest fee the sender accepts.
    pub min_fee_satoshis: u64,
    /// The highest fee the sender accepts.
    pub max_fee_satoshis: u64,
}

/// `closing_signed_tlvs` type of `fee_range`.
const FEE_RANGE_TYPE: u64 = 1;

impl ClosingSigned {
    /// Length of the fixed-width fields, without the type and without the
    /// TLV stream.
    pub(crate) const FIXED_LEN: usize = 32 + 8 + SIGNATURE_LEN;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ClosingSigned {
            channel_id: ChannelId(r.read_array("closing_signed.channel_id")?),
            fee_satoshis: r.read_u64("closing_signed.fee_satoshis")?,
            signature: r.read_signature("closing_signed.signature")?,
            fee_range: read_closing_tlvs(r)?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_u64(self.fee_satoshis);
        w.write_signature(&self.signature);
        if let Some(range) = self.fee_range {
            let mut value = [0u8; 16];
            value[..8].copy_from_slice(&range.min_fee_satoshis.to_be_bytes());
            value[8..].copy_from_slice(&range.max_fee_satoshis.to_be_bytes());
            tlv::write_record(w, FEE_RANGE_TYPE, &value);
        }
    }
}

/// The `closing_signed_tlvs` stream (BOLT 1 rules, see [`ClosingSigned`]).
fn read_closing_tlvs(r: &mut Reader<'_>) -> Result<Option<ClosingFeeRange>, DecodeError> {
    let records = tlv::read_stream(r, "closing_signed", &[])?;
    let Some(value) = tlv::find(&records, FEE_RANGE_TYPE) else {
        return Ok(None);
    };
    let bytes: [u8; 16] = value.try_into().map_err(|_| DecodeError::InvalidValue {
        field: "closing_signed.fee_range",
    })?;
    let (min, max) = bytes.split_at(8);
    Ok(Some(ClosingFeeRange {
        min_fee_satoshis: u64::from_be_bytes(min.try_into().expect("8 bytes")),
        max_fee_satoshis: u64::from_be_bytes(max.try_into().expect("8 bytes")),
    }))
}

/// `error` (type 17, BOLT 1): the sender fails the channel (or, with an all
/// zero `channel_id`, every channel with the receiver).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMessage {
    /// The channel, or all zero for all channels.
    pub channel_id: ChannelId,
    /// Free-form diagnostic bytes, usually ASCII; never trusted or interpreted
    /// by the codec. At most 65535 on the wire (`u16` length).
    pub data: Vec<u8>,
}

impl ErrorMessage {
    /// Length of the fixed-width fields (the data length prefix included),
    /// without the type and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + 2;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ErrorMessage {
            channel_id: ChannelId(r.read_array("error.channel_id")?),
            data: r.read_u16_prefixed("error.data")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_u16_prefixed(&self.data, "error.data");
    }
}

/// `channel_reestablish` (type 136): after a reconnection, each side says
/// which commitment and revocation it expects next, so lost updates can be
/// retransmitted.
///
/// Trailing `channel_reestablish_tlvs` (`next_funding`, ...) are not decoded;
/// they are ignored like any BOLT 1 extension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelReestablish {
    /// The channel.
    pub channel_id: ChannelId,
    /// Commitment number of the next `commitment_signed` the sender expects to
    /// receive.
    pub next_commitment_number: u64,
    /// Commitment number of the next `revoke_and_ack` the sender expects to
    /// receive.
    pub next_revocation_number: u64,
    /// The last per-commitment secret the sender received from the receiver
    /// (all zero if none).
    pub your_last_per_commitment_secret: [u8; 32],
    /// The sender's current per-commitment point.
    pub my_current_per_commitment_point: PublicKey,
}

impl ChannelReestablish {
    /// Length of the fixed-width fields (here the whole body), without the type
    /// and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + 8 + 8 + 32 + POINT_LEN;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ChannelReestablish {
            channel_id: ChannelId(r.read_array("channel_reestablish.channel_id")?),
            next_commitment_number: r.read_u64("channel_reestablish.next_commitment_number")?,
            next_revocation_number: r.read_u64("channel_reestablish.next_revocation_number")?,
            your_last_per_commitment_secret: r
                .read_array("channel_reestablish.your_last_per_commitment_secret")?,
            my_current_per_commitment_point: r
                .read_pubkey("channel_reestablish.my_current_per_commitment_point")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_u64(self.next_commitment_number);
        w.write_u64(self.next_revocation_number);
        w.write_bytes(&self.your_last_per_commitment_secret);
        w.write_pubkey(&self.my_current_per_commitment_point);
    }
}
