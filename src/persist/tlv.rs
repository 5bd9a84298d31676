//! TLV streams (BOLT 1 style): `BigSize` type, `BigSize` length, value;
//! types strictly increasing; even types are required, odd ones optional.
//!
//! [`TlvWriter`] builds a stream; [`TlvReader`] reads one, skipping unknown
//! odd records and refusing unknown even ones with a [`DecodeError`] that
//! names the record type and where it was found. [`Cursor`] reads the fields
//! inside a record value, each read bounds-checked.

use crate::error::DecodeError;

/// Writes a `BigSize` (BOLT 1): 1, 3, 5 or 9 bytes, big-endian.
pub(crate) fn write_bigsize(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0xfc => out.push(v as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// Builds a TLV stream. Records must be written in increasing type order
/// (checked in debug builds).
#[derive(Default)]
pub(crate) struct TlvWriter {
    out: Vec<u8>,
    last: Option<u64>,
}

impl TlvWriter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends one record.
    pub(crate) fn record(&mut self, ty: u64, value: &[u8]) -> &mut Self {
        debug_assert!(self.last.is_none_or(|l| l < ty), "tlv types must increase");
        self.last = Some(ty);
        write_bigsize(&mut self.out, ty);
        write_bigsize(&mut self.out, value.len() as u64);
        self.out.extend_from_slice(value);
        self
    }

    /// Appends a record whose value is built by `f`.
    pub(crate) fn with(&mut self, ty: u64, f: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        let mut value = Vec::new();
        f(&mut value);
        self.record(ty, &value)
    }

    pub(crate) fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// Bounds-checked reads of the fields inside a value.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    field: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], field: &'static str) -> Self {
        Cursor { bytes, field }
    }

    fn short(&self) -> DecodeError {
        DecodeError::ShortRead { field: self.field }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(self.short());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::InvalidValue { field: self.field }),
        }
    }

    pub(crate) fn bigsize(&mut self) -> Result<u64, DecodeError> {
        let v = match self.u8()? {
            0xff => self.u64()?,
            0xfe => u64::from(self.u32()?),
            0xfd => u64::from(self.u16()?),
            b => u64::from(b),
        };
        Ok(v)
    }

    /// A u32-length-prefixed byte string.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// A count that must fit in what is left, given `min_item` bytes per item
    /// (so a corrupt count cannot make us allocate much).
    pub(crate) fn count(&mut self, min_item: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item.max(1)) > self.bytes.len() {
            return Err(self.short());
        }
        Ok(n)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Fails unless everything was read.
    pub(crate) fn end(&self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { field: self.field })
        }
    }
}

/// Appends a u32-length-prefixed byte string.
pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads a TLV stream into `(type, value)` records, checking order and the
/// even/odd rule against `known` types. `context` names the stream in errors.
pub(crate) struct TlvReader<'a> {
    records: Vec<(u64, &'a [u8])>,
    context: String,
}

impl<'a> TlvReader<'a> {
    pub(crate) fn parse(
        bytes: &'a [u8],
        known: &[u64],
        context: impl Into<String>,
    ) -> Result<Self, DecodeError> {
        let context = context.into();
        let mut cur = Cursor::new(bytes, "tlv record");
        let mut records = Vec::new();
        let mut last: Option<u64> = None;
        while !cur.is_empty() {
            let ty = cur.bigsize()?;
            if last.is_some_and(|l| l >= ty) {
                return Err(DecodeError::RecordOrder {
                    record_type: ty,
                    context,
                });
            }
            last = Some(ty);
            let len = cur.bigsize()?;
            let len = usize::try_from(len).map_err(|_| DecodeError::ShortRead {
                field: "tlv record",
            })?;
            let value = cur.take(len)?;
            if known.contains(&ty) {
                records.push((ty, value));
            } else if ty % 2 == 0 {
                return Err(DecodeError::UnknownRequiredRecord {
                    record_type: ty,
                    context,
                });
            }
            // Unknown odd record: optional, skipped.
        }
        Ok(TlvReader { records, context })
    }

    /// The value of record `ty` in `bytes`, found without checking the rest
    /// of the stream (to name a record in the errors of the full parse).
    pub(crate) fn peek(bytes: &'a [u8], ty: u64) -> Option<&'a [u8]> {
        let mut cur = Cursor::new(bytes, "tlv record");
        while !cur.is_empty() {
            let t = cur.bigsize().ok()?;
            let len = usize::try_from(cur.bigsize().ok()?).ok()?;
            let value = cur.take(len).ok()?;
            if t == ty {
                return Some(value);
            }
        }
        None
    }

    /// The value of a record that must be present.
    pub(crate) fn required(&self, ty: u64) -> Result<&'a [u8], DecodeError> {
        self.optional(ty).ok_or_else(|| DecodeError::MissingRecord {
            record_type: ty,
            context: self.context.clone(),
        })
    }

    /// The value of a record that may be absent.
    pub(crate) fn optional(&self, ty: u64) -> Option<&'a [u8]> {
        self.records.iter().find(|(t, _)| *t == ty).map(|(_, v)| *v)
    }

    /// A cursor over a required record, with a field name for errors.
    pub(crate) fn cursor(&self, ty: u64, field: &'static str) -> Result<Cursor<'a>, DecodeError> {
        Ok(Cursor::new(self.required(ty)?, field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigsize_round_trips_at_every_width() {
        for v in [
            0,
            0xfc,
            0xfd,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_bigsize(&mut out, v);
            assert_eq!(Cursor::new(&out, "v").bigsize().unwrap(), v);
        }
    }

    #[test]
    fn unknown_odd_is_skipped_unknown_even_refused() {
        let stream = TlvWriter::new()
            .record(0, b"a")
            .record(3, b"skip me")
            .record(4, b"b")
            .finish();
        let r = TlvReader::parse(&stream, &[0, 4], "test").unwrap();
        assert_eq!(r.required(4).unwrap(), b"b");
        let err = TlvReader::parse(&stream, &[0, 3], "test").err().unwrap();
        assert_eq!(
            err,
            DecodeError::UnknownRequiredRecord {
                record_type: 4,
                context: "test".into()
            }
        );
        assert!(matches!(
            r.required(2),
            Err(DecodeError::MissingRecord { record_type: 2, .. })
        ));
    }

    #[test]
    fn out_of_order_and_truncated_streams_are_errors() {
        let mut bad = TlvWriter::new().record(4, b"b").finish();
        bad.extend(TlvWriter::new().record(2, b"a").finish());
        assert!(matches!(
            TlvReader::parse(&bad, &[2, 4], "t"),
            Err(DecodeError::RecordOrder { record_type: 2, .. })
        ));
        let good = TlvWriter::new().record(0, &[7; 40]).finish();
        for cut in 1..good.len() {
            assert!(
                TlvReader::parse(&good[..cut], &[0], "t").is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn corrupt_counts_do_not_allocate() {
        let bytes = u32::MAX.to_be_bytes();
        assert!(Cursor::new(&bytes, "n").count(8).is_err());
    }
}
