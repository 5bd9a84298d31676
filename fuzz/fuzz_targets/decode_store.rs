//! Fuzz target: `ChannelStore::read` and the channel record decoder on
//! arbitrary bytes. They must return an error or a store that keeps its
//! invariants, never panic. Bytes with a valid frame get past the checksum
//! only by chance, so the target also frames the input itself (version 1,
//! correct checksum) to reach the record decoders.
#![no_main]

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::SecretKey;
use chanstore::persist::decode_channel_details;
use chanstore::{ChannelStore, StoreConfig};
use libfuzzer_sys::fuzz_target;

fn frame(records: &[u8]) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(records);
    let sum = sha256::Hash::hash(&out).to_byte_array();
    out.extend_from_slice(&[0xfd, 0xff, 0xfe, 4]);
    out.extend_from_slice(&sum[..4]);
    out
}

fuzz_target!(|data: &[u8]| {
    let secret = SecretKey::from_slice(&[2; 32]).unwrap();
    for bytes in [data.to_vec(), frame(data)] {
        if let Ok(store) = ChannelStore::read(&mut &bytes[..], StoreConfig::default(), secret) {
            assert!(store.check_value_conserved().is_ok());
            assert!(store.check_indexes().is_ok());
        }
        let _ = decode_channel_details(&bytes, &secret);
    }
});
