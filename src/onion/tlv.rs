//! Strict BOLT 1 reading for the onion: canonical `BigSize` values and a TLV
//! record walk that reports where each record starts.
//!
//! The store's own TLV reader (`crate::persist::tlv`) reads data this crate
//! wrote itself; an onion payload comes from a stranger, so here BOLT 1's
//! "Type-Length-Value Format" rules are checked to the letter: a `BigSize`
//! must use its shortest encoding, types must strictly increase, and a length
//! must not run past the end. Writing reuses `crate::persist::tlv`. The
//! message codec reads the TLV extensions of peer messages with the same
//! walk ([`records`]).

pub(super) use crate::persist::tlv::write_bigsize;

/// Why a `BigSize` could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BigSizeError {
    /// The input ends inside it.
    Truncated,
    /// A longer encoding than the value needs (BOLT 1: not canonical).
    NonCanonical,
}

/// Reads a canonical `BigSize` from the front of `bytes`: the value and how
/// many bytes it took.
pub(super) fn read_bigsize(bytes: &[u8]) -> Result<(u64, usize), BigSizeError> {
    let (&first, rest) = bytes.split_first().ok_or(BigSizeError::Truncated)?;
    let width = match first {
        0xfd => 2,
        0xfe => 4,
        0xff => 8,
        b => return Ok((u64::from(b), 1)),
    };
    let field = rest.get(..width).ok_or(BigSizeError::Truncated)?;
    let value = field.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b));
    let min = match width {
        2 => 0xfd,
        4 => 0x1_0000,
        _ => 0x1_0000_0000,
    };
    if value < min {
        return Err(BigSizeError::NonCanonical);
    }
    Ok((value, 1 + width))
}

/// Bytes a `BigSize` of `v` takes.
pub(super) fn bigsize_len(v: u64) -> usize {
    match v {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// One record of a TLV stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    /// Where the record (its type) starts in the stream.
    pub(crate) offset: usize,
    /// Its type.
    pub(crate) ty: u64,
    /// Its value.
    pub(crate) value: &'a [u8],
}

/// Why a TLV stream is not well formed, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamError {
    /// Where the bad record starts.
    pub(super) offset: usize,
    /// Its type, when it could be read.
    pub(super) ty: Option<u64>,
    /// What is wrong.
    pub(super) kind: StreamErrorKind,
}

/// What is wrong with a TLV stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StreamErrorKind {
    /// The stream ends inside a record.
    Truncated,
    /// A type or length `BigSize` is not canonical.
    NonCanonical,
    /// A type not greater than the one before it.
    OutOfOrder,
}

/// Splits a TLV stream into its records, checking the framing and the order
/// of types (not which types are allowed: that is the caller's).
pub(crate) fn records(stream: &[u8]) -> Result<Vec<Record<'_>>, StreamError> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut last: Option<u64> = None;
    while at < stream.len() {
        let offset = at;
        let fail = |ty, e: BigSizeError| StreamError {
            offset,
            ty,
            kind: match e {
                BigSizeError::Truncated => StreamErrorKind::Truncated,
                BigSizeError::NonCanonical => StreamErrorKind::NonCanonical,
            },
        };
        let (ty, n) = read_bigsize(&stream[at..]).map_err(|e| fail(None, e))?;
        at += n;
        if last.is_some_and(|l| l >= ty) {
            return Err(StreamError {
                offset,
                ty: Some(ty),
                kind: StreamErrorKind::OutOfOrder,
            });
        }
        last = Some(ty);
        let (len, n) = read_bigsize(&stream[at..]).map_err(|e| fail(Some(ty), e))?;
        at += n;
        let value = usize::try_from(len)
            .ok()
            .and_then(|len| stream.get(at..at.checked_add(len)?))
            .ok_or(StreamError {
                offset,
                ty: Some(ty),
                kind: StreamErrorKind::Truncated,
            })?;
        at += value.len();
        out.push(Record { offset, ty, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigsize_is_read_canonically_at_every_width() {
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
            assert_eq!(out.len(), bigsize_len(v));
            assert_eq!(read_bigsize(&out), Ok((v, out.len())));
            for cut in 0..out.len() {
                assert_eq!(read_bigsize(&out[..cut]), Err(BigSizeError::Truncated));
            }
        }
        // BOLT 1 "BigSize" test vectors: non-canonical encodings.
        for bad in [
            &[0xfd, 0x00, 0xfc][..],
            &[0xfe, 0x00, 0x00, 0xff, 0xff],
            &[0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert_eq!(read_bigsize(bad), Err(BigSizeError::NonCanonical));
        }
    }

    #[test]
    fn records_report_offsets_and_refuse_bad_streams() {
        let stream = [2, 1, 0xaa, 4, 0, 0xfd, 0x01, 0x01, 2, 7, 7];
        let r = records(&stream).unwrap();
        assert_eq!(
            r.iter().map(|r| (r.offset, r.ty)).collect::<Vec<_>>(),
            [(0, 2), (3, 4), (5, 257)]
        );
        assert_eq!(r[2].value, [7, 7]);
        let e = records(&[4, 0, 2, 0]).unwrap_err();
        assert_eq!(
            (e.offset, e.ty, e.kind),
            (2, Some(2), StreamErrorKind::OutOfOrder)
        );
        let e = records(&[4, 0, 4, 0]).unwrap_err();
        assert_eq!(e.kind, StreamErrorKind::OutOfOrder);
        let e = records(&[2, 3, 1, 2]).unwrap_err();
        assert_eq!(
            (e.offset, e.ty, e.kind),
            (0, Some(2), StreamErrorKind::Truncated)
        );
        let e = records(&[2, 0, 0xfd, 0, 1]).unwrap_err();
        assert_eq!(
            (e.offset, e.ty, e.kind),
            (2, None, StreamErrorKind::NonCanonical)
        );
        let e = records(&[2, 0xff, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(e.kind, StreamErrorKind::Truncated);
        assert_eq!(records(&[]), Ok(vec![]));
    }
}
