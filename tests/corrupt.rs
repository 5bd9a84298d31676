//! Corrupt input never panics and never becomes a wrong state: truncated,
//! bit-flipped and random bytes, and checksum-valid garbage inside the frame.

use bitcoin::secp256k1::SecretKey;
use chanstore::persist::decode_channel_details;
use chanstore::{ChannelStore, StoreConfig};
use proptest::prelude::*;

mod common;
use common::frame_records;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/v1");

fn secret() -> SecretKey {
    SecretKey::from_slice(&[2; 32]).unwrap()
}

fn read(bytes: &[u8]) -> Result<ChannelStore, chanstore::StoreError> {
    ChannelStore::read(&mut &bytes[..], StoreConfig::default(), secret())
}

fn golden_store() -> Vec<u8> {
    std::fs::read(format!("{DIR}/store.bin")).unwrap()
}

#[test]
fn every_truncation_of_the_golden_store_is_an_error() {
    let bytes = golden_store();
    for cut in 0..bytes.len() {
        assert!(
            read(&bytes[..cut]).is_err(),
            "prefix of {cut} bytes was accepted"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bit_flip_is_an_error(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = golden_store();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(read(&bytes).is_err());
    }

    #[test]
    fn random_bytes_are_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(read(&bytes).is_err());
        prop_assert!(decode_channel_details(&bytes, &secret()).is_err());
    }

    /// Past the checksum: well-framed garbage, and the golden records with
    /// bytes changed before framing, must decode cleanly or fail cleanly.
    #[test]
    fn framed_garbage_never_panics(
        noise in proptest::collection::vec(any::<u8>(), 0..512),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let _ = read(&frame_records(1, &noise));
        let _ = decode_channel_details(&frame_records(1, &noise), &secret());
        let golden = golden_store();
        let mut records = golden[1..golden.len() - 8].to_vec();
        for (pos, value) in edits {
            let i = pos.index(records.len());
            records[i] = value;
        }
        if let Ok(store) = read(&frame_records(1, &records)) {
            // Whatever decodes must satisfy the invariants.
            prop_assert!(store.check_value_conserved().is_ok());
            prop_assert!(store.check_indexes().is_ok());
        }
    }
}
