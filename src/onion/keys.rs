//! The keys derived from a hop's shared secret, and the byte stream they key.
//!
//! | item | BOLT 4 section |
//! | --- | --- |
//! | [`KeyType`], [`derive_key`] | "Key Generation" (and `ammag` from "Returning Errors", "Erring node") |
//! | `xor_stream`, `cipher` | "Pseudo Random Byte Stream": ChaCha20, 96-bit zero nonce, XORed in |
//! | `hmac` | the HMAC-SHA256 of "Packet Construction", "Onion Decryption" and "Returning Errors" |
//! | `hmac_eq` | "Onion Decryption": "MUST use a constant time comparison" |
//!
//! A key is `HMAC-SHA256(key = the key type's ASCII name, message = the
//! 32-byte secret)`; the name has no terminating zero byte.

use bitcoin::hashes::{cmp::fixed_time_eq, hmac, sha256, Hash, HashEngine};
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;

/// Which key [`derive_key`] derives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// `rho`: keys the stream that obfuscates the hop payloads (and the filler).
    Rho,
    /// `mu`: keys the HMAC of a hop's onion layer.
    Mu,
    /// `um`: keys the HMAC of a failure message.
    Um,
    /// `pad`: keys the stream the initial hop payloads are filled with
    /// (derived from the session key, not a shared secret).
    Pad,
    /// `ammag`: keys the stream that obfuscates a failure message.
    Ammag,
}

impl KeyType {
    /// The key type's name: the HMAC key of the derivation.
    pub fn label(self) -> &'static [u8] {
        match self {
            KeyType::Rho => b"rho",
            KeyType::Mu => b"mu",
            KeyType::Um => b"um",
            KeyType::Pad => b"pad",
            KeyType::Ammag => b"ammag",
        }
    }
}

/// The `key_type` key for `secret` (a hop's shared secret, or the session key
/// for [`KeyType::Pad`]): `HMAC-SHA256(key_type's name, secret)`.
pub fn derive_key(key_type: KeyType, secret: &[u8; 32]) -> [u8; 32] {
    hmac(key_type.label(), &[secret])
}

/// HMAC-SHA256 keyed by `key` over the concatenation of `parts`.
pub(super) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut engine = hmac::HmacEngine::<sha256::Hash>::new(key);
    for part in parts {
        engine.input(part);
    }
    hmac::Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()
}

/// Whether two HMACs are equal, in time that does not depend on where they
/// differ.
pub(super) fn hmac_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && fixed_time_eq(a, b)
}

/// The ChaCha20 stream keyed by `key`, at its start (zero nonce).
pub(super) fn cipher(key: &[u8; 32]) -> ChaCha20 {
    ChaCha20::new(key.into(), &[0u8; 12].into())
}

/// XORs `buf` with bytes `offset..offset + buf.len()` of the stream keyed by
/// `key`.
pub(super) fn xor_stream(key: &[u8; 32], offset: u64, buf: &mut [u8]) {
    let mut c = cipher(key);
    c.seek(offset);
    c.apply_keystream(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let v: Vec<u8> = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect();
        v.try_into().unwrap()
    }

    #[test]
    fn keys_match_the_spec_trace() {
        // BOLT 4 "Returning Errors" test vector, hop 4.
        let ss = hex32("b5756b9b542727dbafc6765a49488b023a725d631af688fc031217e90770c328");
        assert_eq!(
            derive_key(KeyType::Um, &ss),
            hex32("4da7f2923edce6c2d85987d1d9fa6d88023e6c3a9c3d20f07d3b10b61a78d646")
        );
        assert_eq!(
            derive_key(KeyType::Ammag, &ss),
            hex32("2f36bb8822e1f0d04c27b7d8bb7d7dd586e032a3218b8d414afbba6f169a4d68")
        );
    }

    #[test]
    fn stream_is_seekable_and_an_involution() {
        let key = [7; 32];
        let mut whole = [0u8; 100];
        xor_stream(&key, 0, &mut whole);
        let mut tail = [0u8; 40];
        xor_stream(&key, 60, &mut tail);
        assert_eq!(&whole[60..], &tail[..]);
        xor_stream(&key, 0, &mut whole);
        assert_eq!(whole, [0; 100]);
        assert!(hmac_eq(&[1, 2], &[1, 2]));
        assert!(!hmac_eq(&[1, 2], &[1, 3]));
        assert!(!hmac_eq(&[1, 2], &[1]));
    }
}
