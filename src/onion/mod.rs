//! BOLT 4 onion routing: the Sphinx packet each `update_add_htlc` carries,
//! the TLV hop payloads inside it, the failure onions that travel back, and
//! the failure codes they carry.
//!
//! - [`keys`]: the per-hop keys (`rho`, `mu`, `um`, `pad`, `ammag`) derived
//!   from a shared secret ("Key Generation"), and the ChaCha20 stream they
//!   key ("Pseudo Random Byte Stream").
//! - [`packet`]: building an onion for a route ("Packet Construction",
//!   "Shared Secret", "Blinding Ephemeral Onion Keys", "Filler Generation")
//!   and peeling one layer of it ("Onion Decryption").
//! - [`payload`]: the TLV hop payload each layer carries ("`payload`
//!   format"), and the `invalid_onion_payload` failure for one that is not
//!   valid.
//! - [`failure`]: failure onions ("Returning Errors"): built by the failing
//!   node, re-obfuscated by each hop back, attributed by the origin.
//!
//! How the store uses them: `send_payment` builds the onion with a fresh
//! session key and keeps the key and the route's node ids with its HTLC
//! (enough to recompute every hop's shared secret if a failure comes back).
//! A hop peels its layer when the `update_add_htlc` arrives (the HMAC is
//! checked before anything is used) and keeps only its decoded payload and
//! the 32-byte shared secret with the HTLC; a forward also keeps the peeled
//! packet for the next hop until the forward is decided. A failure decided
//! at a hop is built into a failure onion with that secret when it is sent;
//! one coming back from downstream is wrapped with it. An onion that cannot
//! be read at all is answered with `update_fail_malformed_htlc`, which the
//! hop before turns into a failure onion of its own (BOLT 4).

pub mod failure;
pub mod keys;
pub mod packet;
pub mod payload;
pub(crate) mod tlv;

use bitcoin::hashes::{sha256, Hash};

use crate::message::OnionPacket;

/// BOLT 4 failure codes this store produces or understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureCode {
    /// The onion's version byte is unknown (BADONION|PERM|4).
    InvalidOnionVersion,
    /// The onion's HMAC does not match (BADONION|PERM|5).
    InvalidOnionHmac,
    /// The onion's ephemeral key does not parse (BADONION|PERM|6).
    InvalidOnionKey,
    /// The hop's payload is not valid (PERM|22); the data names the record.
    InvalidOnionPayload,
    /// The parts of a multi-part payment did not all arrive in time (23).
    MppTimeout,
    /// The channel closed before the HTLC could be settled on it (PERM|8).
    PermanentChannelFailure,
    /// No channel with the next short channel id (PERM|10).
    UnknownNextPeer,
    /// The outgoing channel cannot take the HTLC now (UPDATE|7).
    TemporaryChannelFailure,
    /// Amount below the outgoing channel's minimum (UPDATE|11).
    AmountBelowMinimum,
    /// The fee left for us is below our forwarding fee (UPDATE|12).
    FeeInsufficient,
    /// The cltv delta left for us is below ours (UPDATE|13).
    IncorrectCltvExpiry,
    /// The HTLC expires too soon to forward (UPDATE|14).
    ExpiryTooSoon,
    /// The recipient does not know the payment, or refused it (PERM|15).
    IncorrectOrUnknownPaymentDetails,
    /// The final cltv does not match the onion (18).
    FinalIncorrectCltvExpiry,
    /// The final amount does not match the onion (19).
    FinalIncorrectHtlcAmount,
    /// The outgoing channel is closing or closed (UPDATE|20).
    ChannelDisabled,
    /// The HTLC expires too far in the future (21).
    ExpiryTooFar,
    /// A code this crate does not name.
    Other(u16),
    /// Not a BOLT 4 code: a failure onion that decoded at no hop of the
    /// route, or whose failing hop's message could not be read
    /// ([`FailureCode::code`] is 0).
    Unreadable,
}

const BADONION: u16 = 0x8000;
const PERM: u16 = 0x4000;
const UPDATE: u16 = 0x1000;

impl FailureCode {
    /// The BOLT 4 numeric code.
    pub fn code(self) -> u16 {
        match self {
            FailureCode::InvalidOnionVersion => BADONION | PERM | 4,
            FailureCode::InvalidOnionHmac => BADONION | PERM | 5,
            FailureCode::InvalidOnionKey => BADONION | PERM | 6,
            FailureCode::InvalidOnionPayload => PERM | 22,
            FailureCode::MppTimeout => 23,
            FailureCode::PermanentChannelFailure => PERM | 8,
            FailureCode::UnknownNextPeer => PERM | 10,
            FailureCode::TemporaryChannelFailure => UPDATE | 7,
            FailureCode::AmountBelowMinimum => UPDATE | 11,
            FailureCode::FeeInsufficient => UPDATE | 12,
            FailureCode::IncorrectCltvExpiry => UPDATE | 13,
            FailureCode::ExpiryTooSoon => UPDATE | 14,
            FailureCode::IncorrectOrUnknownPaymentDetails => PERM | 15,
            FailureCode::FinalIncorrectCltvExpiry => 18,
            FailureCode::FinalIncorrectHtlcAmount => 19,
            FailureCode::ChannelDisabled => UPDATE | 20,
            FailureCode::ExpiryTooFar => 21,
            FailureCode::Other(code) => code,
            FailureCode::Unreadable => 0,
        }
    }

    /// The failure for a numeric code (0 is [`FailureCode::Unreadable`]).
    pub fn from_code(code: u16) -> Self {
        if code == 0 {
            return FailureCode::Unreadable;
        }
        [
            FailureCode::InvalidOnionVersion,
            FailureCode::InvalidOnionHmac,
            FailureCode::InvalidOnionKey,
            FailureCode::InvalidOnionPayload,
            FailureCode::MppTimeout,
            FailureCode::PermanentChannelFailure,
            FailureCode::UnknownNextPeer,
            FailureCode::TemporaryChannelFailure,
            FailureCode::AmountBelowMinimum,
            FailureCode::FeeInsufficient,
            FailureCode::IncorrectCltvExpiry,
            FailureCode::ExpiryTooSoon,
            FailureCode::IncorrectOrUnknownPaymentDetails,
            FailureCode::FinalIncorrectCltvExpiry,
            FailureCode::FinalIncorrectHtlcAmount,
            FailureCode::ChannelDisabled,
            FailureCode::ExpiryTooFar,
        ]
        .into_iter()
        .find(|f| f.code() == code)
        .unwrap_or(FailureCode::Other(code))
    }

    /// Whether the BADONION bit is set: the code of an
    /// `update_fail_malformed_htlc`.
    pub fn is_bad_onion(self) -> bool {
        self.code() & BADONION != 0
    }
}

/// Why an HTLC is failed back, as it travels from where that was decided to
/// the incoming channel, where it becomes the bytes the peer is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Decided here: a failure onion is built with the incoming HTLC's
    /// shared secret from this code and data.
    Local {
        /// The failure code.
        code: FailureCode,
        /// Its data (BOLT 4 defines it per code; empty for most).
        data: Vec<u8>,
    },
    /// The failure onion an outgoing HTLC's peer returned
    /// (`update_fail_htlc.reason`), wrapped with our layer when passed on.
    Onion(Vec<u8>),
    /// The outgoing HTLC's peer could not read our onion
    /// (`update_fail_malformed_htlc`): passed on as a failure of ours with
    /// this code and the onion's hash as its data (BOLT 4).
    Malformed {
        /// A BADONION code.
        code: u16,
        /// SHA256 of the onion the peer could not read.
        sha256_of_onion: [u8; 32],
    },
}

impl Failure {
    /// A failure decided here, without data.
    pub(crate) fn local(code: FailureCode) -> Self {
        Failure::Local {
            code,
            data: Vec::new(),
        }
    }

    /// The `update_fail_htlc` reason for an incoming HTLC whose shared
    /// secret is `shared_secret`. Without one (an HTLC stored by version
    /// 0.1, which spoke plaintext onions) the reason is the bare 2-byte
    /// code, as 0.1 sent it.
    pub(crate) fn reason(&self, shared_secret: Option<&[u8; 32]>) -> Vec<u8> {
        match (self, shared_secret) {
            (Failure::Local { code, data }, Some(ss)) => {
                failure::build_failure(ss, code.code(), data)
            }
            (
                Failure::Malformed {
                    code,
                    sha256_of_onion,
                },
                Some(ss),
            ) => failure::build_failure(ss, *code, sha256_of_onion),
            (Failure::Onion(bytes), Some(ss)) => {
                let mut bytes = bytes.clone();
                failure::wrap_failure(ss, &mut bytes);
                bytes
            }
            (Failure::Local { code, .. }, None) => code.code().to_be_bytes().to_vec(),
            (Failure::Malformed { code, .. }, None) => code.to_be_bytes().to_vec(),
            (Failure::Onion(bytes), None) => bytes.clone(),
        }
    }
}

/// SHA256 of a packet, as `update_fail_malformed_htlc` names it.
pub(crate) fn sha256_of_onion(packet: &OnionPacket) -> [u8; 32] {
    sha256::Hash::hash(&packet.0[..]).to_byte_array()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_codes_round_trip() {
        for code in [
            0x400a,
            0x1007,
            0x100c,
            0x400f,
            18,
            23,
            0x4016,
            0x1014,
            0x8004 | 0x4000,
            0x8005 | 0x4000,
            0x8006 | 0x4000,
            77,
        ] {
            assert_eq!(FailureCode::from_code(code).code(), code);
        }
        assert!(!matches!(
            FailureCode::from_code(0xc005),
            FailureCode::Other(_)
        ));
        assert_eq!(FailureCode::from_code(0), FailureCode::Unreadable);
        assert!(FailureCode::InvalidOnionKey.is_bad_onion());
        assert!(!FailureCode::InvalidOnionPayload.is_bad_onion());
    }

    #[test]
    fn a_local_failure_is_built_into_an_onion_the_sender_can_read() {
        let ss = [7u8; 32];
        let failure = Failure::Local {
            code: FailureCode::FeeInsufficient,
            data: vec![1, 2, 3],
        };
        let reason = failure.reason(Some(&ss));
        // hmac, failure_len, 256 bytes of failuremsg and pad, pad_len.
        assert_eq!(reason.len(), 32 + 2 + 256 + 2);
        assert_eq!(
            failure::decode_failure(&[ss], &reason),
            failure::DecodedFailure::Hop {
                index: 0,
                code: FailureCode::FeeInsufficient.code(),
                data: vec![1, 2, 3]
            }
        );
        // A downstream failure is wrapped, and decodes one hop further.
        let downstream = Failure::Onion(failure::build_failure(&[8; 32], 0x400f, &[]));
        let wrapped = downstream.reason(Some(&ss));
        assert_eq!(
            failure::decode_failure(&[ss, [8; 32]], &wrapped),
            failure::DecodedFailure::Hop {
                index: 1,
                code: 0x400f,
                data: vec![]
            }
        );
        // Without a secret (a 0.1 record) the bare code goes back.
        assert_eq!(failure.reason(None), vec![0x10, 0x0c]);
    }
}
