//! The acceptance test of [`chanstore::keys`] and [`chanstore::transactions`]:
//! every test vector of BOLT 3 (`03-transactions.md`, lightning/bolts commit
//! a377265), through the public API the channel state machine uses.
//!
//! - appendix B: the funding transaction (`appendix_b.rs`);
//! - appendix C: 16 commitment transactions and their 33 HTLC transactions,
//!   signatures and full hex (`appendix_c.rs`, values in
//!   `appendix_c_vectors.rs`, common parameters in `fixture.rs`);
//! - appendix D: per-commitment secret generation (5) and storage (9)
//!   (`appendix_d.rs`);
//! - appendix E: key derivation (4) (`appendix_e.rs`);
//! - appendix F: 9 anchor commitment transactions and their 15 HTLC
//!   transactions (`appendix_f.rs`, values in `appendix_f_vectors.rs`).
//!
//! Each named vector is its own `#[test]`, named after the vector, and every
//! assertion message starts with the vector's name. Values are copied
//! verbatim from the spec; signatures are reproduced exactly (RFC 6979) and
//! whole transactions are compared as hex.

#[path = "bolt3_vectors/appendix_b.rs"]
mod appendix_b;
#[path = "bolt3_vectors/appendix_c.rs"]
mod appendix_c;
#[path = "bolt3_vectors/appendix_c_vectors.rs"]
mod appendix_c_vectors;
#[path = "bolt3_vectors/appendix_d.rs"]
mod appendix_d;
#[path = "bolt3_vectors/appendix_e.rs"]
mod appendix_e;
#[path = "bolt3_vectors/appendix_f.rs"]
mod appendix_f;
#[path = "bolt3_vectors/appendix_f_vectors.rs"]
mod appendix_f_vectors;
#[path = "bolt3_vectors/fixture.rs"]
mod fixture;

use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::secp256k1::{ecdsa::Signature, PublicKey, SecretKey};

/// Bytes from hex (an optional `0x` prefix is skipped).
fn bytes(hex: &str) -> Vec<u8> {
    Vec::<u8>::from_hex(hex.trim_start_matches("0x")).expect("valid hex in a test vector")
}

/// 32 bytes from hex.
fn bytes32(hex: &str) -> [u8; 32] {
    bytes(hex).try_into().expect("32 bytes")
}

/// A public key from hex.
fn pubkey(hex: &str) -> PublicKey {
    PublicKey::from_slice(&bytes(hex)).expect("valid public key")
}

/// A private key from hex; the spec writes them with a trailing `01`
/// ("compressed" marker), which is dropped.
fn secret(hex: &str) -> SecretKey {
    let hex = hex.trim_start_matches("0x");
    SecretKey::from_slice(&bytes(&hex[..64])).expect("valid private key")
}

/// A signature as the spec prints it: DER, without sighash byte.
fn der(sig: &Signature) -> String {
    sig.serialize_der().to_lower_hex_string()
}
