//! The bounds-checked byte reader and the writer that every message codec is
//! built from (BOLT 1 fundamental types: big-endian integers, 33-byte points,
//! 64-byte compact signatures, `u16`-length-prefixed byte strings).
//!
//! Every read takes the name of the field it reads and returns a
//! [`DecodeError`] naming that field when the input is too short or the bytes
//! are not a valid value of the field's type. No read ever indexes out of
//! bounds or allocates more than the input could hold.

use bitcoin::secp256k1::{ecdsa::Signature, PublicKey};

use crate::error::DecodeError;

/// Length of a compressed secp256k1 point on the wire.
pub(crate) const POINT_LEN: usize = 33;

/// Length of a compact (`r || s`) ECDSA signature on the wire.
pub(crate) const SIGNATURE_LEN: usize = 64;

/// Reads fields off the front of a byte slice, failing instead of panicking
/// when the slice runs out.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    /// The bytes not read yet.
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, positioned at the first byte.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// Everything not read yet (the reader is then empty).
    pub(crate) fn take_rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// How many bytes are left to read.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `n` bytes, or [`DecodeError::ShortRead`] naming `field` (the
    /// reader is left unchanged on error).
    pub(crate) fn read_bytes(
        &mut self,
        n: usize,
        field: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or(DecodeError::ShortRead { field })?;
        self.rest = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn read_array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let bytes = self.read_bytes(N, field)?;
        // `read_bytes` returned exactly N bytes, so this conversion cannot fail;
        // map the impossible error rather than unwrap.
        bytes
            .try_into()
            .map_err(|_| DecodeError::ShortRead { field })
    }

    /// A single byte.
    pub(crate) fn read_u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let [b] = self.read_array::<1>(field)?;
        Ok(b)
    }

    /// A big-endian `u16`.
    pub(crate) fn read_u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.read_array(field)?))
    }

    /// A big-endian `u32`.
    pub(crate) fn read_u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.read_array(field)?))
    }

    /// A big-endian `u64`.
    pub(crate) fn read_u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.read_array(field)?))
    }

    /// A 33-byte compressed point (BOLT 1 `point`); anything that is not a
    /// valid compressed secp256k1 public key is
    /// [`DecodeError::InvalidPublicKey`].
    pub(crate) fn read_pubkey(&mut self, field: &'static str) -> Result<PublicKey, DecodeError> {
        let bytes = self.read_array::<POINT_LEN>(field)?;
        PublicKey::from_slice(&bytes).map_err(|_| DecodeError::InvalidPublicKey { field })
    }

    /// A 64-byte compact ECDSA signature (BOLT 1 `signature`); `r` or `s` not
    /// below the curve order is [`DecodeError::InvalidSignature`].
    pub(crate) fn read_signature(&mut self, field: &'static str) -> Result<Signature, DecodeError> {
        let bytes = self.read_array::<SIGNATURE_LEN>(field)?;
        Signature::from_compact(&bytes).map_err(|_| DecodeError::InvalidSignature { field })
    }

    /// A `u16` length followed by that many bytes (`[u16:len][len*byte:field]`).
    /// The length is checked against the input before anything is allocated.
    pub(crate) fn read_u16_prefixed(
        &mut self,
        field: &'static str,
    ) -> Result<Vec<u8>, DecodeError> {
        let len = self.read_u16(field)?;
        Ok(self.read_bytes(usize::from(len), field)?.to_vec())
    }
}

/// Appends fields to a growing message.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    /// The bytes written so far.
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// The bytes written.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Raw bytes, no length prefix.
    pub(crate) fn write_bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// A single byte.
    pub(crate) fn write_u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A big-endian `u16`.
    pub(crate) fn write_u16(&mut self, v: u16) {
        self.write_bytes(&v.to_be_bytes());
    }

    /// A big-endian `u32`.
    pub(crate) fn write_u32(&mut self, v: u32) {
        self.write_bytes(&v.to_be_bytes());
    }

    /// A big-endian `u64`.
    pub(crate) fn write_u64(&mut self, v: u64) {
        self.write_bytes(&v.to_be_bytes());
    }

    /// A 33-byte compressed point.
    pub(crate) fn write_pubkey(&mut self, key: &PublicKey) {
        self.write_bytes(&key.serialize());
    }

    /// A 64-byte compact signature.
    pub(crate) fn write_signature(&mut self, sig: &Signature) {
        self.write_bytes(&sig.serialize_compact());
    }

    /// A `u16` count or length for a field of `len` items.
    ///
    /// # Panics
    ///
    /// When `len` does not fit in a `u16`: such a field cannot be put on the
    /// wire (BOLT 1 caps a whole message at 65535 bytes), and truncating the
    /// prefix would silently produce a different message.
    pub(crate) fn write_u16_len(&mut self, len: usize, field: &'static str) {
        let len = u16::try_from(len)
            .unwrap_or_else(|_| panic!("{field} has {len} entries; the wire allows at most 65535"));
        self.write_u16(len);
    }

    /// A `u16` length followed by the bytes.
    ///
    /// # Panics
    ///
    /// When `bytes` is longer than 65535 (see [`Writer::write_u16_len`]).
    pub(crate) fn write_u16_prefixed(&mut self, bytes: &[u8], field: &'static str) {
        self.write_u16_len(bytes.len(), field);
        self.write_bytes(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_big_endian() {
        let mut w = Writer::default();
        w.write_u8(0x01);
        w.write_u16(0x0203);
        w.write_u32(0x0405_0607);
        w.write_u64(0x0809_0a0b_0c0d_0e0f);
        let bytes = w.into_bytes();
        assert_eq!(bytes, (1..=15).collect::<Vec<u8>>());

        let mut r = Reader::new(&bytes);
        assert_eq!(r.read_u8("a"), Ok(0x01));
        assert_eq!(r.read_u16("b"), Ok(0x0203));
        assert_eq!(r.read_u32("c"), Ok(0x0405_0607));
        assert_eq!(r.read_u64("d"), Ok(0x0809_0a0b_0c0d_0e0f));
        assert_eq!(r.remaining(), 0);
        assert_eq!(r.read_u8("e"), Err(DecodeError::ShortRead { field: "e" }));
    }

    #[test]
    fn short_read_names_the_field_and_consumes_nothing() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.read_u32("x"), Err(DecodeError::ShortRead { field: "x" }));
        assert_eq!(r.remaining(), 3);
        assert_eq!(r.read_array::<3>("y"), Ok([1, 2, 3]));
    }

    #[test]
    fn length_prefix_longer_than_input_is_a_short_read() {
        // Claims 0xffff bytes, has 2: must fail without allocating 64 KiB.
        let mut r = Reader::new(&[0xff, 0xff, 0xaa, 0xbb]);
        assert_eq!(
            r.read_u16_prefixed("reason"),
            Err(DecodeError::ShortRead { field: "reason" })
        );
        let mut r = Reader::new(&[0x00, 0x02, 0xaa, 0xbb, 0xcc]);
        assert_eq!(r.read_u16_prefixed("reason"), Ok(vec![0xaa, 0xbb]));
        assert_eq!(r.remaining(), 1);
    }

    #[test]
    fn invalid_point_and_signature_are_typed() {
        let mut r = Reader::new(&[0x04; POINT_LEN]);
        assert_eq!(
            r.read_pubkey("k"),
            Err(DecodeError::InvalidPublicKey { field: "k" })
        );
        // r = s = 0xff..ff is above the curve order.
        let mut r = Reader::new(&[0xff; SIGNATURE_LEN]);
        assert_eq!(
            r.read_signature("s"),
            Err(DecodeError::InvalidSignature { field: "s" })
        );
    }

    #[test]
    #[should_panic(expected = "at most 65535")]
    fn oversized_length_prefix_panics_instead_of_truncating() {
        Writer::default().write_u16_prefixed(&vec![0; 65_536], "data");
    }
}
