//! Fuzz target for the BOLT 1/2 message codec.
//!
//! Any input must decode or fail without panicking. When it decodes, the
//! re-encoding must be exactly the prefix of the input that was consumed
//! (trailing extension bytes are ignored by design; `channel_update` keeps
//! them, signed, so its re-encoding is the whole input) and must decode to
//! the same message again. Every type `Message::decode` knows is reached,
//! 258 (`channel_update`) included.
//!
//! Run from `fuzz/`: `cargo +nightly fuzz run decode_message`.
#![no_main]

use chanstore::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::decode(data) {
        let bytes = msg.encode();
        assert!(
            bytes.len() <= data.len(),
            "re-encoding is longer than the input"
        );
        assert_eq!(
            &bytes[..],
            &data[..bytes.len()],
            "re-encoding is not a prefix"
        );
        let again = Message::decode(&bytes).expect("a re-encoded message decodes");
        assert_eq!(again, msg, "decode(encode(m)) != m");
    }
});
