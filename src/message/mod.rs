//! The BOLT 1/2 wire codec for the channel messages the store handles.
//!
//! A message on the wire (after transport decryption, BOLT 1) is a 2-byte
//! big-endian type, the payload's fields in BOLT 2 order and widths, then an
//! optional TLV `extension` stream. [`Message`] is the sum of the messages
//! this crate speaks; each one is a plain struct whose fields mirror the spec:
//!
//! | type | message | struct | file |
//! |---:|---|---|---|
//! | 1 | `warning` | [`Warning`] | `connection.rs` |
//! | 16 | `init` | [`Init`] | `connection.rs` |
//! | 17 | `error` | [`ErrorMessage`] | `control.rs` |
//! | 18 | `ping` | [`Ping`] | `connection.rs` |
//! | 19 | `pong` | [`Pong`] | `connection.rs` |
//! | 32 | `open_channel` | [`OpenChannel`] | `setup.rs` |
//! | 33 | `accept_channel` | [`AcceptChannel`] | `setup.rs` |
//! | 34 | `funding_created` | [`FundingCreated`] | `setup.rs` |
//! | 35 | `funding_signed` | [`FundingSigned`] | `setup.rs` |
//! | 36 | `channel_ready` | [`ChannelReady`] | `setup.rs` |
//! | 38 | `shutdown` | [`Shutdown`] | `control.rs` |
//! | 39 | `closing_signed` | [`ClosingSigned`] | `control.rs` |
//! | 128 | `update_add_htlc` | [`UpdateAddHtlc`] | `update.rs` |
//! | 130 | `update_fulfill_htlc` | [`UpdateFulfillHtlc`] | `update.rs` |
//! | 131 | `update_fail_htlc` | [`UpdateFailHtlc`] | `update.rs` |
//! | 132 | `commitment_signed` | [`CommitmentSigned`] | `update.rs` |
//! | 133 | `revoke_and_ack` | [`RevokeAndAck`] | `update.rs` |
//! | 134 | `update_fee` | [`UpdateFee`] | `update.rs` |
//! | 135 | `update_fail_malformed_htlc` | [`UpdateFailMalformedHtlc`] | `update.rs` |
//! | 136 | `channel_reestablish` | [`ChannelReestablish`] | `control.rs` |
//! | 258 | `channel_update` (BOLT 7) | [`ChannelUpdate`] | `gossip.rs` |
//!
//! The codec enforces the format only: lengths, valid compressed points and
//! valid compact signatures. Whether values are acceptable (amounts, fee
//! rates, expiries, signature counts) is the channel state machine's business.
//!
//! **Extensions are TLV streams, read by BOLT 1's rules.** The bytes after a
//! message's last fixed field must be a well-formed TLV stream (`tlv.rs`):
//! records of unknown odd types are skipped, an unknown even type is
//! refused ([`DecodeError::UnknownEvenTlv`]). The records this crate uses
//! are fields of their message (`open_channel`/`accept_channel`:
//! `upfront_shutdown_script` and `channel_type`; `init`: `networks`;
//! `closing_signed`: `fee_range`) and are
//! written back; skipped ones are not, so `encode(decode(bytes))` is a
//! prefix of `bytes` whenever the skipped records come last.
//! `channel_update` has no extension: BOLT 7 signs whatever follows its
//! last field, so those bytes are kept ([`ChannelUpdate::excess_data`]).

mod connection;
mod control;
pub mod gossip;
mod setup;
mod tlv;
mod update;
mod wire;

pub use connection::{Init, Ping, Pong, Warning, PING_NO_PONG};
pub use control::{ChannelReestablish, ClosingFeeRange, ClosingSigned, ErrorMessage, Shutdown};
pub use gossip::ChannelUpdate;
pub use setup::{AcceptChannel, ChannelReady, FundingCreated, FundingSigned, OpenChannel};
pub use update::{
    CommitmentSigned, OnionPacket, RevokeAndAck, UpdateAddHtlc, UpdateFailHtlc,
    UpdateFailMalformedHtlc, UpdateFee, UpdateFulfillHtlc, ONION_PACKET_LEN,
};

use crate::error::DecodeError;
use crate::types::ChannelId;
use wire::{Reader, Writer};

/// One channel message, as sent to or received from a peer.
///
/// # Examples
///
/// ```
/// use chanstore::message::{Message, UpdateFee};
/// use chanstore::ChannelId;
///
/// let msg = Message::from(UpdateFee { channel_id: ChannelId([7; 32]), feerate_per_kw: 253 });
/// let bytes = msg.encode();
/// assert_eq!(&bytes[..2], &[0x00, 0x86]); // type 134, big-endian
/// assert_eq!(bytes.len(), 2 + 32 + 4);
/// assert_eq!(msg.name(), "update_fee");
///
/// // A TLV extension of an unknown odd type is skipped; an even one refused.
/// let mut extended = bytes.clone();
/// extended.extend_from_slice(&[0x01, 0x00]);
/// assert_eq!(Message::decode(&extended), Ok(msg));
/// let mut required = bytes.clone();
/// required.extend_from_slice(&[0x02, 0x00]);
/// assert!(Message::decode(&required).is_err());
/// assert!(Message::decode(&bytes[..bytes.len() - 1]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// `open_channel` (type 32).
    OpenChannel(OpenChannel),
    /// `accept_channel` (type 33).
    AcceptChannel(AcceptChannel),
    /// `funding_created` (type 34).
    FundingCreated(FundingCreated),
    /// `funding_signed` (type 35).
    FundingSigned(FundingSigned),
    /// `channel_ready` (type 36).
    ChannelReady(ChannelReady),
    /// `update_add_htlc` (type 128).
    UpdateAddHtlc(UpdateAddHtlc),
    /// `update_fulfill_htlc` (type 130).
    UpdateFulfillHtlc(UpdateFulfillHtlc),
    /// `update_fail_htlc` (type 131).
    UpdateFailHtlc(UpdateFailHtlc),
    /// `commitment_signed` (type 132).
    CommitmentSigned(CommitmentSigned),
    /// `revoke_and_ack` (type 133).
    RevokeAndAck(RevokeAndAck),
    /// `update_fee` (type 134).
    UpdateFee(UpdateFee),
    /// `update_fail_malformed_htlc` (type 135).
    UpdateFailMalformedHtlc(UpdateFailMalformedHtlc),
    /// `shutdown` (type 38).
    Shutdown(Shutdown),
    /// `closing_signed` (type 39).
    ClosingSigned(ClosingSigned),
    /// `channel_reestablish` (type 136).
    ChannelReestablish(ChannelReestablish),
    /// `error` (type 17, BOLT 1).
    Error(ErrorMessage),
    /// `warning` (type 1, BOLT 1).
    Warning(Warning),
    /// `init` (type 16, BOLT 1).
    Init(Init),
    /// `ping` (type 18, BOLT 1).
    Ping(Ping),
    /// `pong` (type 19, BOLT 1).
    Pong(Pong),
    /// `channel_update` (type 258, BOLT 7).
    ChannelUpdate(ChannelUpdate),
}

/// Generates the per-variant dispatch of [`Message`] from one table, so that
/// a type number, a name and a codec can never drift apart (a variant missing
/// from the table is a non-exhaustive match, a compile error).
macro_rules! message_table {
    // The id column: a field, or `_` for a message without one.
    (@id $m:ident, _) => {{
        let _ = $m;
        ChannelId([0; 32])
    }};
    (@id $m:ident, $field:ident) => {
        $m.$field
    };
    ($( $variant:ident($ty:ident) = $type_id:literal, $name:literal, $id_field:tt; )*) => {
        impl Message {
            /// The message's BOLT type number (the first two bytes on the wire).
            pub fn type_id(&self) -> u16 {
                match self {
                    $( Message::$variant(_) => $type_id, )*
                }
            }

            /// The message's BOLT name, e.g. `"update_add_htlc"`.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Message::$variant(_) => $name, )*
                }
            }

            /// The channel the message is about: the temporary channel id for
            /// `open_channel`, `accept_channel` and `funding_created`, the
            /// permanent one otherwise (all zero in an `error` that concerns
            /// every channel, and in a message that names no channel by id,
            /// such as `channel_update`, which names it by short channel id).
            pub fn channel_id(&self) -> ChannelId {
                match self {
                    $( Message::$variant(m) => message_table!(@id m, $id_field), )*
                }
            }

            /// The message on the wire (BOLT 1): its 2-byte big-endian type,
            /// then its fields in BOLT 2 order and widths, then the TLV
            /// records the message keeps as fields (`channel_type`,
            /// `upfront_shutdown_script`, `networks`, `fee_range`); no other
            /// extension is written.
            ///
            /// # Panics
            ///
            /// When a length-prefixed field (`reason`, `data`, `scriptpubkey`,
            /// `htlc_signatures`) holds more than 65535 entries, which its
            /// `u16` length cannot express. Messages built by the state
            /// machine stay far below that (at most 966 HTLC signatures).
            pub fn encode(&self) -> Vec<u8> {
                match self {
                    $( Message::$variant(m) => {
                        let mut w = Writer::with_capacity(2 + $ty::FIXED_LEN);
                        w.write_u16($type_id);
                        m.write(&mut w);
                        w.into_bytes()
                    } )*
                }
            }

            /// Parses one message (type included) from `bytes`.
            ///
            /// Bytes after the message's last field must be a BOLT 1 TLV
            /// `extension`: unknown odd records are skipped.
            ///
            /// # Errors
            ///
            /// - [`DecodeError::UnknownMessageType`] for a type this crate
            ///   does not handle. BOLT 1 says to ignore an odd one and to
            ///   close the connection on an even one; that choice is the
            ///   caller's.
            /// - [`DecodeError::ShortRead`] when the input ends inside a field
            ///   (or a length or count promises more bytes than remain).
            /// - [`DecodeError::InvalidTlvStream`] for a malformed extension,
            ///   [`DecodeError::UnknownEvenTlv`] for an even record this
            ///   message does not know.
            /// - [`DecodeError::InvalidPublicKey`] or
            ///   [`DecodeError::InvalidSignature`] for a point or signature
            ///   that is not valid.
            ///
            /// Every error names the field as `message.field`.
            pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
                let mut r = Reader::new(bytes);
                match r.read_u16("type")? {
                    $( $type_id => {
                        let msg = $ty::read(&mut r)?;
                        // What a message did not read itself is its TLV
                        // stream, checked by BOLT 1's rules.
                        tlv::read_stream(&mut r, $name, &[])?;
                        Ok(Message::$variant(msg))
                    } )*
                    other => Err(DecodeError::UnknownMessageType(other)),
                }
            }
        }

        $(
            impl From<$ty> for Message {
                fn from(msg: $ty) -> Self {
                    Message::$variant(msg)
                }
            }
        )*
    };
}

message_table! {
    Warning(Warning) = 1, "warning", channel_id;
    Init(Init) = 16, "init", _;
    Error(ErrorMessage) = 17, "error", channel_id;
    Ping(Ping) = 18, "ping", _;
    Pong(Pong) = 19, "pong", _;
    OpenChannel(OpenChannel) = 32, "open_channel", temporary_channel_id;
    AcceptChannel(AcceptChannel) = 33, "accept_channel", temporary_channel_id;
    FundingCreated(FundingCreated) = 34, "funding_created", temporary_channel_id;
    FundingSigned(FundingSigned) = 35, "funding_signed", channel_id;
    ChannelReady(ChannelReady) = 36, "channel_ready", channel_id;
    Shutdown(Shutdown) = 38, "shutdown", channel_id;
    ClosingSigned(ClosingSigned) = 39, "closing_signed", channel_id;
    UpdateAddHtlc(UpdateAddHtlc) = 128, "update_add_htlc", channel_id;
    UpdateFulfillHtlc(UpdateFulfillHtlc) = 130, "update_fulfill_htlc", channel_id;
    UpdateFailHtlc(UpdateFailHtlc) = 131, "update_fail_htlc", channel_id;
    CommitmentSigned(CommitmentSigned) = 132, "commitment_signed", channel_id;
    RevokeAndAck(RevokeAndAck) = 133, "revoke_and_ack", channel_id;
    UpdateFee(UpdateFee) = 134, "update_fee", channel_id;
    UpdateFailMalformedHtlc(UpdateFailMalformedHtlc) = 135, "update_fail_malformed_htlc", channel_id;
    ChannelReestablish(ChannelReestablish) = 136, "channel_reestablish", channel_id;
    ChannelUpdate(ChannelUpdate) = 258, "channel_update", _;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_lengths_match_bolt2() {
        // Sums of the BOLT 2 field widths, written out independently.
        assert_eq!(OpenChannel::FIXED_LEN, 319);
        assert_eq!(AcceptChannel::FIXED_LEN, 270);
        assert_eq!(FundingCreated::FIXED_LEN, 130);
        assert_eq!(FundingSigned::FIXED_LEN, 96);
        assert_eq!(ChannelReady::FIXED_LEN, 65);
        assert_eq!(UpdateAddHtlc::FIXED_LEN, 1450);
        assert_eq!(UpdateFulfillHtlc::FIXED_LEN, 72);
        assert_eq!(UpdateFailHtlc::FIXED_LEN, 42);
        assert_eq!(CommitmentSigned::FIXED_LEN, 98);
        assert_eq!(RevokeAndAck::FIXED_LEN, 97);
        assert_eq!(UpdateFee::FIXED_LEN, 36);
        assert_eq!(UpdateFailMalformedHtlc::FIXED_LEN, 74);
        assert_eq!(Shutdown::FIXED_LEN, 34);
        assert_eq!(ClosingSigned::FIXED_LEN, 104);
        assert_eq!(ChannelReestablish::FIXED_LEN, 113);
        assert_eq!(ErrorMessage::FIXED_LEN, 34);
    }

    #[test]
    fn huge_htlc_count_is_refused_before_allocating() {
        let mut bytes = vec![0x00, 0x84]; // commitment_signed
        bytes.extend_from_slice(&[0; 32]); // channel_id
        bytes.extend_from_slice(&[0; 64]); // r = s = 0 parses as compact
        bytes.extend_from_slice(&[0xff, 0xff]); // num_htlcs = 65535
        bytes.extend_from_slice(&[0; 64]); // only one signature follows
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::ShortRead {
                field: "commitment_signed.htlc_signature"
            })
        );
    }

    #[test]
    fn empty_and_one_byte_inputs_are_short_reads_of_the_type() {
        for bytes in [&[][..], &[0x00][..]] {
            assert_eq!(
                Message::decode(bytes),
                Err(DecodeError::ShortRead { field: "type" })
            );
        }
    }
}
