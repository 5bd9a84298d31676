//! `chanstore`: the channel store of a Lightning node.
//!
//! See `README.md` for an overview and `docs/` for the design, formats and
//! benchmarks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod keys;
pub mod message;
mod secp;
pub mod transactions;
pub mod types;

pub use config::StoreConfig;
pub use error::{DecodeError, StoreError};
pub use message::Message;
pub use types::{ChannelId, PaymentHash, PaymentPreimage, ShortChannelId};
