//! The TLV payload each onion layer carries for its hop.
//!
//! | item | BOLT 4 section |
//! | --- | --- |
//! | [`HopPayload`], [`PaymentData`] | "Packet Structure", "`payload` format" (records 2, 4, 6, 8, 16) |
//! | [`HopPayload::encode`] | "`payload` format", "Requirements", the writer; "Payload for the Last Node" |
//! | [`HopPayload::decode`] | "`payload` format", "Requirements", the reader (outside blinded routes) |
//! | [`InvalidPayload`] | "Failure Messages": `invalid_onion_payload` (PERM\|22) |
//!
//! A payload is a BOLT 1 TLV stream (here without the `BigSize` length that
//! frames it in the onion: [`super::packet`] adds and removes that). The
//! reader applies BOLT 1's rules: `BigSize`s and truncated integers (`tu32`,
//! `tu64`) in their shortest form, types strictly increasing, unknown odd
//! types skipped, unknown even types refused. On top of them, BOLT 4's:
//! every payload has `amt_to_forward` (2) and `outgoing_cltv_value` (4); a
//! forward has `short_channel_id` (6) and no `payment_data` (8); the final
//! payload has no `short_channel_id`, and may have `payment_data` and
//! `payment_metadata` (16). Whether a payload is the final one is not read
//! from the payload but from the onion layer that carried it (an all-zero
//! next HMAC, see [`super::packet::Peeled`]).
//!
//! Route blinding records (10 `encrypted_recipient_data`, 12
//! `current_path_key`, 18 `total_amount_msat`) are not supported: being
//! even, they are refused like any unknown even type.
//!
//! Every refusal names the record type and the byte offset of the record
//! (from the start of the TLV stream, after the onion's length prefix), as
//! `invalid_onion_payload` reports them: [`InvalidPayload::failure_data`].
//! For a missing record the offset is where it should have been (the start
//! of the first record of a greater type, or the end of the stream).

use super::tlv::{self, write_bigsize, StreamErrorKind};
use crate::persist::tlv::TlvWriter;
use crate::types::{PaymentSecret, ShortChannelId};

/// Record type of `amt_to_forward` (tu64).
pub const AMT_TO_FORWARD: u64 = 2;
/// Record type of `outgoing_cltv_value` (tu32).
pub const OUTGOING_CLTV_VALUE: u64 = 4;
/// Record type of `short_channel_id` (8 bytes).
pub const SHORT_CHANNEL_ID: u64 = 6;
/// Record type of `payment_data` (32-byte secret, tu64 `total_msat`).
pub const PAYMENT_DATA: u64 = 8;
/// Record type of `payment_metadata` (any bytes).
pub const PAYMENT_METADATA: u64 = 16;

/// BOLT 4 `invalid_onion_payload` (PERM|22).
pub const INVALID_ONION_PAYLOAD: u16 = 0x4000 | 22;

/// What one hop is told to do, decoded from its onion payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HopPayload {
    /// Forward the HTLC to the next hop.
    Forward {
        /// The outgoing channel (any channel to the same peer will do, BOLT 4
        /// "Non-strict Forwarding").
        short_channel_id: ShortChannelId,
        /// Amount of the outgoing HTLC.
        amt_to_forward: u64,
        /// `cltv_expiry` of the outgoing HTLC.
        outgoing_cltv_value: u32,
    },
    /// This hop is the recipient.
    Receive {
        /// The amount the recipient must receive (at most the incoming HTLC's).
        amt_to_forward: u64,
        /// The expiry the incoming HTLC must have at least.
        outgoing_cltv_value: u32,
        /// The invoice's payment secret and the payment's total (for
        /// multi-part payments).
        payment_data: Option<PaymentData>,
        /// The invoice's `payment_metadata`, which the sender returns to the
        /// recipient (a store receiving it does not keep it: its
        /// `PaymentReceived` does not carry it).
        payment_metadata: Option<Vec<u8>>,
    },
}

/// The `payment_data` record of a final payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentData {
    /// The invoice's payment secret.
    pub payment_secret: PaymentSecret,
    /// The total of all parts of the payment (`amt_to_forward` for a payment
    /// in one part).
    pub total_msat: u64,
}

/// A payload that is not valid, with what BOLT 4's `invalid_onion_payload`
/// reports about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid onion payload: {reason} (record type {record_type} at byte {offset})")]
#[non_exhaustive]
pub struct InvalidPayload {
    /// The offending record's type (0 when its type itself could not be read).
    pub record_type: u64,
    /// Where the record starts in the TLV stream (or, for a missing record,
    /// where it should have been); saturates at `u16::MAX`.
    pub offset: u16,
    /// What is wrong with it.
    pub reason: PayloadFault,
}

/// What is wrong with a payload record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadFault {
    /// The stream ends inside the record.
    #[error("record is truncated")]
    Truncated,
    /// A `BigSize` or truncated integer longer than it needs to be.
    #[error("encoding is not minimal")]
    NonMinimal,
    /// A type not greater than the one before it.
    #[error("types are not strictly increasing")]
    OutOfOrder,
    /// An even type this node does not know.
    #[error("unknown even type")]
    UnknownEven,
    /// A known record that this kind of payload must not carry
    /// (`payment_data` or `payment_metadata` in a forward, `short_channel_id`
    /// in a final payload).
    #[error("record is not allowed in this payload")]
    NotAllowed,
    /// A required record is absent.
    #[error("required record is missing")]
    Missing,
    /// A value of the wrong length for its type.
    #[error("value has the wrong length")]
    BadLength,
}

impl InvalidPayload {
    /// The BOLT 4 failure code to return: `invalid_onion_payload`.
    pub fn failure_code(&self) -> u16 {
        INVALID_ONION_PAYLOAD
    }

    /// The failure data of `invalid_onion_payload`: `BigSize` type, then the
    /// u16 offset.
    pub fn failure_data(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(11);
        write_bigsize(&mut out, self.record_type);
        out.extend_from_slice(&self.offset.to_be_bytes());
        out
    }
}

/// The shortest big-endian form of `v` (a truncated integer).
fn truncated(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    bytes[(v.leading_zeros() / 8) as usize..].to_vec()
}

/// Reads a truncated integer of at most `max` bytes.
fn read_truncated(value: &[u8], max: usize) -> Result<u64, PayloadFault> {
    if value.len() > max {
        return Err(PayloadFault::BadLength);
    }
    if value.first() == Some(&0) {
        return Err(PayloadFault::NonMinimal);
    }
    Ok(value.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
}

impl HopPayload {
    /// The amount this hop forwards (or, at the recipient, must receive).
    pub fn amt_to_forward(&self) -> u64 {
        match self {
            HopPayload::Forward { amt_to_forward, .. }
            | HopPayload::Receive { amt_to_forward, .. } => *amt_to_forward,
        }
    }

    /// The expiry of the outgoing HTLC (or, at the recipient, the least the
    /// incoming HTLC must have).
    pub fn outgoing_cltv_value(&self) -> u32 {
        match self {
            HopPayload::Forward {
                outgoing_cltv_value,
                ..
            }
            | HopPayload::Receive {
                outgoing_cltv_value,
                ..
            } => *outgoing_cltv_value,
        }
    }

    /// The TLV stream, without the onion's length prefix.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = TlvWriter::new();
        w.record(AMT_TO_FORWARD, &truncated(self.amt_to_forward()));
        w.record(
            OUTGOING_CLTV_VALUE,
            &truncated(u64::from(self.outgoing_cltv_value())),
        );
        match self {
            HopPayload::Forward {
                short_channel_id, ..
            } => {
                w.record(SHORT_CHANNEL_ID, &short_channel_id.to_u64().to_be_bytes());
            }
            HopPayload::Receive {
                payment_data,
                payment_metadata,
                ..
            } => {
                if let Some(data) = payment_data {
                    w.with(PAYMENT_DATA, |v| {
                        v.extend_from_slice(&data.payment_secret.0);
                        v.extend_from_slice(&truncated(data.total_msat));
                    });
                }
                if let Some(metadata) = payment_metadata {
                    w.record(PAYMENT_METADATA, metadata);
                }
            }
        }
        w.finish()
    }

    /// Reads a payload: a forward's, or the recipient's when `is_final` (the
    /// onion layer's next HMAC was all zero).
    pub fn decode(bytes: &[u8], is_final: bool) -> Result<Self, InvalidPayload> {
        let at = |offset: usize| u16::try_from(offset).unwrap_or(u16::MAX);
        let records = tlv::records(bytes).map_err(|e| InvalidPayload {
            record_type: e.ty.unwrap_or(0),
            offset: at(e.offset),
            reason: match e.kind {
                StreamErrorKind::Truncated => PayloadFault::Truncated,
                StreamErrorKind::NonCanonical => PayloadFault::NonMinimal,
                StreamErrorKind::OutOfOrder => PayloadFault::OutOfOrder,
            },
        })?;
        let (allowed, refused): (&[u64], &[u64]) = if is_final {
            (
                &[
                    AMT_TO_FORWARD,
                    OUTGOING_CLTV_VALUE,
                    PAYMENT_DATA,
                    PAYMENT_METADATA,
                ],
                &[SHORT_CHANNEL_ID],
            )
        } else {
            (
                &[AMT_TO_FORWARD, OUTGOING_CLTV_VALUE, SHORT_CHANNEL_ID],
                &[PAYMENT_DATA, PAYMENT_METADATA],
            )
        };
        for r in &records {
            let reason = if refused.contains(&r.ty) {
                PayloadFault::NotAllowed
            } else if !allowed.contains(&r.ty) && r.ty % 2 == 0 {
                PayloadFault::UnknownEven
            } else {
                continue;
            };
            return Err(InvalidPayload {
                record_type: r.ty,
                offset: at(r.offset),
                reason,
            });
        }
        let fail = |ty: u64, reason| {
            let offset = records
                .iter()
                .find(|r| r.ty >= ty)
                .map_or(bytes.len(), |r| r.offset);
            InvalidPayload {
                record_type: ty,
                offset: at(offset),
                reason,
            }
        };
        let find = |ty: u64| records.iter().find(|r| r.ty == ty).map(|r| r.value);
        let required = |ty: u64| find(ty).ok_or_else(|| fail(ty, PayloadFault::Missing));

        let amt_to_forward =
            read_truncated(required(AMT_TO_FORWARD)?, 8).map_err(|e| fail(AMT_TO_FORWARD, e))?;
        let outgoing_cltv_value = read_truncated(required(OUTGOING_CLTV_VALUE)?, 4)
            .map_err(|e| fail(OUTGOING_CLTV_VALUE, e))? as u32;
        if !is_final {
            let scid: [u8; 8] = required(SHORT_CHANNEL_ID)?
                .try_into()
                .map_err(|_| fail(SHORT_CHANNEL_ID, PayloadFault::BadLength))?;
            return Ok(HopPayload::Forward {
                short_channel_id: ShortChannelId::from_u64(u64::from_be_bytes(scid)),
                amt_to_forward,
                outgoing_cltv_value,
            });
        }
        let payment_data = find(PAYMENT_DATA)
            .map(|v| {
                if v.len() < 32 {
                    return Err(fail(PAYMENT_DATA, PayloadFault::BadLength));
                }
                let (secret, total) = v.split_at(32);
                Ok(PaymentData {
                    payment_secret: PaymentSecret(secret.try_into().expect("32 bytes")),
                    total_msat: read_truncated(total, 8).map_err(|e| fail(PAYMENT_DATA, e))?,
                })
            })
            .transpose()?;
        Ok(HopPayload::Receive {
            amt_to_forward,
            outgoing_cltv_value,
            payment_data,
            payment_metadata: find(PAYMENT_METADATA).map(<[u8]>::to_vec),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn forward() -> HopPayload {
        HopPayload::Forward {
            short_channel_id: ShortChannelId::from_u64(1),
            amt_to_forward: 15_000,
            outgoing_cltv_value: 1_500,
        }
    }

    fn err(bytes: &[u8], is_final: bool) -> (u64, u16, PayloadFault) {
        let e = HopPayload::decode(bytes, is_final).unwrap_err();
        (e.record_type, e.offset, e.reason)
    }

    #[test]
    fn forward_encodes_as_in_the_spec_vector() {
        // bolt04/onion-test.json, hop 0, without its length prefix 0x12.
        let bytes = forward().encode();
        assert_eq!(
            bytes,
            [2, 2, 0x3a, 0x98, 4, 2, 0x05, 0xdc, 6, 8, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(HopPayload::decode(&bytes, false), Ok(forward()));
    }

    #[test]
    fn zero_amounts_encode_as_empty_values() {
        let p = HopPayload::Receive {
            amt_to_forward: 0,
            outgoing_cltv_value: 0,
            payment_data: Some(PaymentData {
                payment_secret: PaymentSecret([9; 32]),
                total_msat: 0,
            }),
            payment_metadata: Some(vec![]),
        };
        let bytes = p.encode();
        assert_eq!(&bytes[..6], &[2, 0, 4, 0, 8, 32]);
        assert_eq!(&bytes[bytes.len() - 2..], &[16, 0]);
        assert_eq!(HopPayload::decode(&bytes, true), Ok(p));
    }

    #[test]
    fn kind_rules() {
        let fwd = forward().encode();
        // A forward read as final: its short_channel_id (at byte 8) is refused.
        assert_eq!(err(&fwd, true), (6, 8, PayloadFault::NotAllowed));
        // A forward with payment_data.
        let mut bad = fwd.clone();
        bad.extend_from_slice(&[8, 32]);
        bad.extend_from_slice(&[1; 32]);
        assert_eq!(err(&bad, false), (8, 18, PayloadFault::NotAllowed));
        // A forward without short_channel_id: missing at the stream's end.
        assert_eq!(err(&fwd[..8], false), (6, 8, PayloadFault::Missing));
        // A final payload without amount: missing where the cltv record is.
        assert_eq!(err(&[4, 1, 9], true), (2, 0, PayloadFault::Missing));
        assert_eq!(err(&[2, 1, 9], true), (4, 3, PayloadFault::Missing));
        assert_eq!(err(&[], true), (2, 0, PayloadFault::Missing));
        // Unknown odd skipped, unknown even refused.
        let mut odd = vec![2, 1, 9, 4, 1, 9, 7, 2, 0, 0];
        assert!(HopPayload::decode(&odd, true).is_ok());
        odd[6] = 12;
        assert_eq!(err(&odd, true), (12, 6, PayloadFault::UnknownEven));
    }

    #[test]
    fn values_must_be_minimal_and_sized() {
        assert_eq!(
            err(&[2, 2, 0, 9, 4, 1, 9], true),
            (2, 0, PayloadFault::NonMinimal)
        );
        assert_eq!(
            err(&[2, 9, 1, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1, 9], true),
            (2, 0, PayloadFault::BadLength)
        );
        assert_eq!(
            err(&[2, 1, 9, 4, 5, 1, 1, 1, 1, 1], true),
            (4, 3, PayloadFault::BadLength)
        );
        assert_eq!(
            err(&[2, 1, 9, 4, 1, 9, 6, 7, 0, 0, 0, 0, 0, 0, 1], false),
            (6, 6, PayloadFault::BadLength)
        );
        assert_eq!(
            err(&[2, 1, 9, 4, 1, 9, 8, 31], true).2,
            PayloadFault::Truncated
        );
        let mut short_secret = vec![2, 1, 9, 4, 1, 9, 8, 31];
        short_secret.extend_from_slice(&[0; 31]);
        assert_eq!(err(&short_secret, true), (8, 6, PayloadFault::BadLength));
        let mut zero_total = vec![2, 1, 9, 4, 1, 9, 8, 33];
        zero_total.extend_from_slice(&[0; 33]);
        assert_eq!(err(&zero_total, true), (8, 6, PayloadFault::NonMinimal));
        // Non-canonical BigSize length, out-of-order and repeated types.
        assert_eq!(
            err(&[2, 0xfd, 0, 1, 9], true),
            (2, 0, PayloadFault::NonMinimal)
        );
        assert_eq!(
            err(&[4, 1, 9, 2, 1, 9], true),
            (2, 3, PayloadFault::OutOfOrder)
        );
        assert_eq!(
            err(&[2, 1, 9, 2, 1, 9], true),
            (2, 3, PayloadFault::OutOfOrder)
        );
    }

    #[test]
    fn failure_data_is_bigsize_type_then_offset() {
        let e = HopPayload::decode(&[2, 1, 9, 4, 1, 9, 0xfd, 0x01, 0x00, 0], true).unwrap_err();
        assert_eq!((e.record_type, e.reason), (256, PayloadFault::UnknownEven));
        assert_eq!(e.failure_code(), 0x4016);
        assert_eq!(e.failure_data(), [0xfd, 0x01, 0x00, 0x00, 0x06]);
        assert_eq!(
            e.to_string(),
            "invalid onion payload: unknown even type (record type 256 at byte 6)"
        );
    }

    fn any_payload() -> impl Strategy<Value = HopPayload> {
        let forward = (any::<u64>(), any::<u64>(), any::<u32>()).prop_map(|(scid, amt, cltv)| {
            HopPayload::Forward {
                short_channel_id: ShortChannelId::from_u64(scid),
                amt_to_forward: amt,
                outgoing_cltv_value: cltv,
            }
        });
        let receive = (
            any::<u64>(),
            any::<u32>(),
            proptest::option::of((any::<[u8; 32]>(), any::<u64>())),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..600)),
        )
            .prop_map(|(amt, cltv, data, metadata)| HopPayload::Receive {
                amt_to_forward: amt,
                outgoing_cltv_value: cltv,
                payment_data: data.map(|(secret, total)| PaymentData {
                    payment_secret: PaymentSecret(secret),
                    total_msat: total,
                }),
                payment_metadata: metadata,
            });
        prop_oneof![forward, receive]
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(p in any_payload()) {
            let is_final = matches!(p, HopPayload::Receive { .. });
            let bytes = p.encode();
            prop_assert_eq!(HopPayload::decode(&bytes, is_final), Ok(p));
            // The other kind never accepts it.
            prop_assert!(HopPayload::decode(&bytes, !is_final).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            is_final in any::<bool>(),
        ) {
            match HopPayload::decode(&bytes, is_final) {
                // Whatever decodes re-decodes the same from its encoding.
                Ok(p) => prop_assert_eq!(HopPayload::decode(&p.encode(), is_final), Ok(p)),
                Err(e) => prop_assert!(usize::from(e.offset) <= bytes.len()),
            }
        }
    }
}
