//! The acceptance test of [`chanstore::keys`]: every key and
//! per-commitment-secret test vector of BOLT 3 (`03-transactions.md`,
//! lightning/bolts commit a377265), through the public API the channel
//! state machine uses.
//!
//! - appendix D: per-commitment secret generation (5) and storage (9)
//!   (`appendix_d.rs`);
//! - appendix E: key derivation (4) (`appendix_e.rs`).
//!
//! Each named vector is its own `#[test]`, named after the vector, and every
//! assertion message starts with the vector's name. Values are copied
//! verbatim from the spec.

#[path = "bolt3_vectors/appendix_d.rs"]
mod appendix_d;
#[path = "bolt3_vectors/appendix_e.rs"]
mod appendix_e;

use bitcoin::hex::FromHex;
use bitcoin::secp256k1::PublicKey;

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
