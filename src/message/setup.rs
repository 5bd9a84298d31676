//! Channel establishment messages (BOLT 2, "Channel Establishment v1"):
//! `open_channel`, `accept_channel`, `funding_created`, `funding_signed` and
//! `channel_ready`.
//!
//! Each struct mirrors the BOLT 2 field list in order; the codec checks only
//! the format (widths, valid points and signatures). Whether the values are
//! acceptable is for the channel state machine to decide.

use bitcoin::constants::ChainHash;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{ecdsa::Signature, PublicKey};
use bitcoin::{ScriptBuf, Txid};

use super::tlv;
use super::wire::{Reader, Writer, POINT_LEN, SIGNATURE_LEN};
use crate::error::DecodeError;
use crate::features::Features;
use crate::types::ChannelId;

/// `open_channel` (type 32): the funder proposes a channel and its parameters.
///
/// `open_channel_tlvs` carries `upfront_shutdown_script` (type 0) and
/// `channel_type` (type 1); other odd records are skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenChannel {
    /// Genesis block hash of the chain the channel is to be opened on.
    pub chain_hash: ChainHash,
    /// Id chosen by the funder, unique only between the two peers, used until
    /// the funding outpoint is known.
    pub temporary_channel_id: ChannelId,
    /// Channel capacity.
    pub funding_satoshis: u64,
    /// Amount given to the fundee up front.
    pub push_msat: u64,
    /// Outputs below this are not created on the funder's commitment.
    pub dust_limit_satoshis: u64,
    /// Cap on the total value of outstanding HTLCs offered to the funder.
    pub max_htlc_value_in_flight_msat: u64,
    /// Balance the fundee must keep on its side.
    pub channel_reserve_satoshis: u64,
    /// Smallest HTLC the funder accepts.
    pub htlc_minimum_msat: u64,
    /// Initial commitment fee rate, in satoshi per 1000 weight.
    pub feerate_per_kw: u32,
    /// Blocks the fundee's to-self outputs must wait.
    pub to_self_delay: u16,
    /// Most HTLCs the fundee may offer the funder at once.
    pub max_accepted_htlcs: u16,
    /// The funder's key in the 2-of-2 funding output.
    pub funding_pubkey: PublicKey,
    /// Base point for the revocation keys of the fundee's commitments.
    pub revocation_basepoint: PublicKey,
    /// Base point for the funder's `to_remote` output.
    pub payment_basepoint: PublicKey,
    /// Base point for the funder's delayed `to_local` output.
    pub delayed_payment_basepoint: PublicKey,
    /// Base point for the funder's HTLC keys.
    pub htlc_basepoint: PublicKey,
    /// Per-commitment point of the funder's first commitment.
    pub first_per_commitment_point: PublicKey,
    /// Bit 0: `announce_channel`; other bits reserved.
    pub channel_flags: u8,
    /// `upfront_shutdown_script` (TLV 0): `None` when absent, an empty
    /// script when the sender names none.
    pub shutdown_scriptpubkey: Option<ScriptBuf>,
    /// `channel_type` (TLV 1): the commitment format proposed.
    pub channel_type: Option<Features>,
}

/// The two records `open_channel` and `accept_channel` share:
/// `upfront_shutdown_script` (0) and `channel_type` (1).
fn read_setup_tlvs(
    r: &mut Reader<'_>,
    message: &'static str,
) -> Result<(Option<ScriptBuf>, Option<Features>), DecodeError> {
    let records = tlv::read_stream(r, message, &[0])?;
    Ok((
        tlv::find(&records, 0).map(|v| ScriptBuf::from_bytes(v.to_vec())),
        tlv::find(&records, 1).map(Features::from_wire),
    ))
}

fn write_setup_tlvs(w: &mut Writer, script: &Option<ScriptBuf>, channel_type: &Option<Features>) {
    if let Some(script) = script {
        tlv::write_record(w, 0, script.as_bytes());
    }
    if let Some(t) = channel_type {
        tlv::write_record(w, 1, t.as_wire());
    }
}

impl OpenChannel {
    /// Length of the fixed-width fields (here the whole body), without the type
    /// and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + 32 + 6 * 8 + 4 + 2 + 2 + 6 * POINT_LEN + 1;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(OpenChannel {
            chain_hash: ChainHash::from(r.read_array::<32>("open_channel.chain_hash")?),
            temporary_channel_id: ChannelId(r.read_array("open_channel.temporary_channel_id")?),
            funding_satoshis: r.read_u64("open_channel.funding_satoshis")?,
            push_msat: r.read_u64("open_channel.push_msat")?,
            dust_limit_satoshis: r.read_u64("open_channel.dust_limit_satoshis")?,
            max_htlc_value_in_flight_msat: r
                .read_u64("open_channel.max_htlc_value_in_flight_msat")?,
            channel_reserve_satoshis: r.read_u64("open_channel.channel_reserve_satoshis")?,
            htlc_minimum_msat: r.read_u64("open_channel.htlc_minimum_msat")?,
            feerate_per_kw: r.read_u32("open_channel.feerate_per_kw")?,
            to_self_delay: r.read_u16("open_channel.to_self_delay")?,
            max_accepted_htlcs: r.read_u16("open_channel.max_accepted_htlcs")?,
            funding_pubkey: r.read_pubkey("open_channel.funding_pubkey")?,
            revocation_basepoint: r.read_pubkey("open_channel.revocation_basepoint")?,
            payment_basepoint: r.read_pubkey("open_channel.payment_basepoint")?,
            delayed_payment_basepoint: r.read_pubkey("open_channel.delayed_payment_basepoint")?,
            htlc_basepoint: r.read_pubkey("open_channel.htlc_basepoint")?,
            first_per_commitment_point: r.read_pubkey("open_channel.first_per_commitment_point")?,
            channel_flags: r.read_u8("open_channel.channel_flags")?,
            shutdown_scriptpubkey: None,
            channel_type: None,
        })
        .and_then(|mut m| {
            (m.shutdown_scriptpubkey, m.channel_type) = read_setup_tlvs(r, "open_channel")?;
            Ok(m)
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.chain_hash.as_bytes());
        w.write_bytes(self.temporary_channel_id.as_bytes());
        w.write_u64(self.funding_satoshis);
        w.write_u64(self.push_msat);
        w.write_u64(self.dust_limit_satoshis);
        w.write_u64(self.max_htlc_value_in_flight_msat);
        w.write_u64(self.channel_reserve_satoshis);
        w.write_u64(self.htlc_minimum_msat);
        w.write_u32(self.feerate_per_kw);
        w.write_u16(self.to_self_delay);
        w.write_u16(self.max_accepted_htlcs);
        w.write_pubkey(&self.funding_pubkey);
        w.write_pubkey(&self.revocation_basepoint);
        w.write_pubkey(&self.payment_basepoint);
        w.write_pubkey(&self.delayed_payment_basepoint);
        w.write_pubkey(&self.htlc_basepoint);
        w.write_pubkey(&self.first_per_commitment_point);
        w.write_u8(self.channel_flags);
        write_setup_tlvs(w, &self.shutdown_scriptpubkey, &self.channel_type);
    }
}

/// `accept_channel` (type 33): the fundee accepts an `open_channel` and states
/// its own parameters.
///
/// `accept_channel_tlvs` carries `upfront_shutdown_script` (type 0) and
/// `channel_type` (type 1); other odd records are skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptChannel {
    /// The `temporary_channel_id` of the `open_channel` being accepted.
    pub temporary_channel_id: ChannelId,
    /// Outputs below this are not created on the fundee's commitment.
    pub dust_limit_satoshis: u64,
    /// Cap on the total value of outstanding HTLCs offered to the fundee.
    pub max_htlc_value_in_flight_msat: u64,
    /// Balance the funder must keep on its side.
    pub channel_reserve_satoshis: u64,
    /// Smallest HTLC the fundee accepts.
    pub htlc_minimum_msat: u64,
    /// Confirmations the fundee waits for before `channel_ready`.
    pub minimum_depth: u32,
    /// Blocks the funder's to-self outputs must wait.
    pub to_self_delay: u16,
    /// Most HTLCs the funder may offer the fundee at once.
    pub max_accepted_htlcs: u16,
    /// The fundee's key in the 2-of-2 funding output.
    pub funding_pubkey: PublicKey,
    /// Base point for the revocation keys of the funder's commitments.
    pub revocation_basepoint: PublicKey,
    /// Base point for the fundee's `to_remote` output.
    pub payment_basepoint: PublicKey,
    /// Base point for the fundee's delayed `to_local` output.
    pub delayed_payment_basepoint: PublicKey,
    /// Base point for the fundee's HTLC keys.
    pub htlc_basepoint: PublicKey,
    /// Per-commitment point of the fundee's first commitment.
    pub first_per_commitment_point: PublicKey,
    /// `upfront_shutdown_script` (TLV 0): `None` when absent, an empty
    /// script when the sender names none.
    pub shutdown_scriptpubkey: Option<ScriptBuf>,
    /// `channel_type` (TLV 1): must equal the one in `open_channel`.
    pub channel_type: Option<Features>,
}

impl AcceptChannel {
    /// Length of the fixed-width fields (here the whole body), without the type
    /// and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + 4 * 8 + 4 + 2 + 2 + 6 * POINT_LEN;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AcceptChannel {
            temporary_channel_id: ChannelId(r.read_array("accept_channel.temporary_channel_id")?),
            dust_limit_satoshis: r.read_u64("accept_channel.dust_limit_satoshis")?,
            max_htlc_value_in_flight_msat: r
                .read_u64("accept_channel.max_htlc_value_in_flight_msat")?,
            channel_reserve_satoshis: r.read_u64("accept_channel.channel_reserve_satoshis")?,
            htlc_minimum_msat: r.read_u64("accept_channel.htlc_minimum_msat")?,
            minimum_depth: r.read_u32("accept_channel.minimum_depth")?,
            to_self_delay: r.read_u16("accept_channel.to_self_delay")?,
            max_accepted_htlcs: r.read_u16("accept_channel.max_accepted_htlcs")?,
            funding_pubkey: r.read_pubkey("accept_channel.funding_pubkey")?,
            revocation_basepoint: r.read_pubkey("accept_channel.revocation_basepoint")?,
            payment_basepoint: r.read_pubkey("accept_channel.payment_basepoint")?,
            delayed_payment_basepoint: r.read_pubkey("accept_channel.delayed_payment_basepoint")?,
            htlc_basepoint: r.read_pubkey("accept_channel.htlc_basepoint")?,
            first_per_commitment_point: r
                .read_pubkey("accept_channel.first_per_commitment_point")?,
            shutdown_scriptpubkey: None,
            channel_type: None,
        })
        .and_then(|mut m| {
            (m.shutdown_scriptpubkey, m.channel_type) = read_setup_tlvs(r, "accept_channel")?;
            Ok(m)
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.temporary_channel_id.as_bytes());
        w.write_u64(self.dust_limit_satoshis);
        w.write_u64(self.max_htlc_value_in_flight_msat);
        w.write_u64(self.channel_reserve_satoshis);
        w.write_u64(self.htlc_minimum_msat);
        w.write_u32(self.minimum_depth);
        w.write_u16(self.to_self_delay);
        w.write_u16(self.max_accepted_htlcs);
        w.write_pubkey(&self.funding_pubkey);
        w.write_pubkey(&self.revocation_basepoint);
        w.write_pubkey(&self.payment_basepoint);
        w.write_pubkey(&self.delayed_payment_basepoint);
        w.write_pubkey(&self.htlc_basepoint);
        w.write_pubkey(&self.first_per_commitment_point);
        write_setup_tlvs(w, &self.shutdown_scriptpubkey, &self.channel_type);
    }
}

/// `funding_created` (type 34): the funder names the funding outpoint and
/// signs the fundee's first commitment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FundingCreated {
    /// The channel's temporary id.
    pub temporary_channel_id: ChannelId,
    /// Txid of the funding transaction, in wire (internal) byte order.
    pub funding_txid: Txid,
    /// Index of the funding output.
    pub funding_output_index: u16,
    /// The funder's signature on the fundee's first commitment.
    pub signature: Signature,
}

impl FundingCreated {
    /// Length of the fixed-width fields (here the whole body), without the type
    /// and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + 32 + 2 + SIGNATURE_LEN;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(FundingCreated {
            temporary_channel_id: ChannelId(r.read_array("funding_created.temporary_channel_id")?),
            funding_txid: Txid::from_byte_array(r.read_array("funding_created.funding_txid")?),
            funding_output_index: r.read_u16("funding_created.funding_output_index")?,
            signature: r.read_signature("funding_created.signature")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.temporary_channel_id.as_bytes());
        w.write_bytes(self.funding_txid.as_byte_array());
        w.write_u16(self.funding_output_index);
        w.write_signature(&self.signature);
    }
}

/// `funding_signed` (type 35): the fundee signs the funder's first commitment;
/// from here on the channel is known by its permanent id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FundingSigned {
    /// The permanent channel id (funding txid XOR output index).
    pub channel_id: ChannelId,
    /// The fundee's signature on the funder's first commitment.
    pub signature: Signature,
}

impl FundingSigned {
    /// Length of the fixed-width fields (here the whole body), without the type
    /// and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + SIGNATURE_LEN;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(FundingSigned {
            channel_id: ChannelId(r.read_array("funding_signed.channel_id")?),
            signature: r.read_signature("funding_signed.signature")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_signature(&self.signature);
    }
}

/// `channel_ready` (type 36): the funding transaction is deep enough for the
/// sender; it gives the point for its second commitment.
///
/// Trailing `channel_ready_tlvs` (`short_channel_id` alias, odd) are
/// skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelReady {
    /// The channel.
    pub channel_id: ChannelId,
    /// Per-commitment point of the sender's second commitment.
    pub second_per_commitment_point: PublicKey,
}

impl ChannelReady {
    /// Length of the fixed-width fields (here the whole body), without the type
    /// and without extensions.
    pub(crate) const FIXED_LEN: usize = 32 + POINT_LEN;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ChannelReady {
            channel_id: ChannelId(r.read_array("channel_ready.channel_id")?),
            second_per_commitment_point: r
                .read_pubkey("channel_ready.second_per_commitment_point")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_pubkey(&self.second_per_commitment_point);
    }
}
