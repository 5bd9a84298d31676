//! Encoding of the durable records: a channel's header and HTLCs, the
//! peer's signatures on our latest commitment, a closed channel's record,
//! a queued cross-peer work item, a pending event. Each is a TLV stream
//! (see `tlv.rs` and `docs/FORMAT.md`): even types required, odd optional.
//!
//! Decoding never panics and never guesses: a missing or malformed field is
//! a [`DecodeError`](crate::DecodeError) naming the record and the field.

mod channel;
mod closed;
mod ended;
mod event;
mod fields;
mod htlc;
mod work;

pub(crate) use channel::{
    decode_channel, decode_channel_record, decode_signatures, encode_channel,
    encode_channel_header, encode_signatures, finish_channel,
};
pub(crate) use closed::{decode_closed, encode_closed};
pub(crate) use ended::{decode_ended_htlc, encode_ended_htlc};
pub(crate) use event::{decode_event, encode_event};
pub(crate) use htlc::{decode_htlc, encode_htlc, OnionPlace};
pub(crate) use work::{decode_work, encode_work};
