//! BOLT 1 TLV streams: the `extension` after a message's fixed fields.
//!
//! A stream is a sequence of `(bigsize type, bigsize length, value)` records
//! with strictly increasing types, each `bigsize` in its shortest form (the
//! walk is the onion's strict one, `crate::onion::tlv::records`). A reader
//! skips a record of an unknown *odd* type and must refuse one of an
//! unknown *even* type ("it's OK to be odd"). Every message's stream is read
//! by [`read_stream`]; a message names the even types it knows and picks the
//! records it uses from the result.

use super::wire::{Reader, Writer};
use crate::error::DecodeError;
use crate::onion::tlv::{records, Record};

/// Writes one record.
pub(crate) fn write_record(w: &mut Writer, tlv_type: u64, value: &[u8]) {
    let mut head = Vec::with_capacity(18);
    crate::persist::tlv::write_bigsize(&mut head, tlv_type);
    crate::persist::tlv::write_bigsize(&mut head, value.len() as u64);
    w.write_bytes(&head);
    w.write_bytes(value);
}

/// Reads the rest of `r` as the TLV stream of `message`.
///
/// # Errors
///
/// [`DecodeError::InvalidTlvStream`] when the stream is malformed (a
/// truncated record, a non-minimal `bigsize`, types not strictly
/// increasing), [`DecodeError::UnknownEvenTlv`] for an even type not in
/// `known_even`.
pub(crate) fn read_stream<'a>(
    r: &mut Reader<'a>,
    message: &'static str,
    known_even: &[u64],
) -> Result<Vec<Record<'a>>, DecodeError> {
    let stream = r.take_rest();
    let found = records(stream).map_err(|_| DecodeError::InvalidTlvStream { message })?;
    if let Some(rec) = found
        .iter()
        .find(|rec| rec.ty % 2 == 0 && !known_even.contains(&rec.ty))
    {
        return Err(DecodeError::UnknownEvenTlv {
            message,
            tlv_type: rec.ty,
        });
    }
    Ok(found)
}

/// The value of the record of type `t`, if the stream has one.
pub(crate) fn find<'a>(records: &[Record<'a>], t: u64) -> Option<&'a [u8]> {
    records.iter().find(|r| r.ty == t).map(|r| r.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(bytes: &[u8], known: &[u64]) -> Result<Vec<(u64, Vec<u8>)>, DecodeError> {
        let mut r = Reader::new(bytes);
        read_stream(&mut r, "test", known)
            .map(|v| v.iter().map(|r| (r.ty, r.value.to_vec())).collect())
    }

    #[test]
    fn odd_unknown_kept_even_unknown_refused() {
        assert_eq!(
            stream(&[1, 1, 7, 3, 0], &[]),
            Ok(vec![(1, vec![7]), (3, vec![])])
        );
        assert_eq!(
            stream(&[2, 0], &[]),
            Err(DecodeError::UnknownEvenTlv {
                message: "test",
                tlv_type: 2
            })
        );
        assert_eq!(stream(&[2, 0], &[2]), Ok(vec![(2, vec![])]));
    }

    #[test]
    fn malformed_streams_are_refused() {
        let bad = Err(DecodeError::InvalidTlvStream { message: "test" });
        assert_eq!(stream(&[3, 0, 1, 0], &[]), bad, "decreasing");
        assert_eq!(stream(&[1, 0, 1, 0], &[]), bad, "repeated");
        assert_eq!(stream(&[1, 2, 0], &[]), bad, "value cut short");
        assert_eq!(stream(&[1], &[]), bad, "no length");
        assert_eq!(stream(&[0xfd, 0x00, 0x01, 0], &[]), bad, "non-minimal type");
        assert_eq!(
            stream(&[1, 0xfe, 0, 0, 0, 1, 0], &[]),
            bad,
            "non-minimal length"
        );
        let huge = [1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(stream(&huge, &[]), bad, "huge length");
    }

    #[test]
    fn written_records_read_back() {
        let mut w = Writer::with_capacity(300);
        write_record(&mut w, 1, &[9; 3]);
        write_record(&mut w, 0x1_0001, &[7; 256]);
        let bytes = w.into_bytes();
        assert_eq!(
            stream(&bytes, &[]),
            Ok(vec![(1, vec![9; 3]), (0x1_0001, vec![7; 256])])
        );
    }
}
