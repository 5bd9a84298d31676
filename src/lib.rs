//! `chanstore`: the channel store of a Lightning node.
//!
//! See `README.md` for an overview and `docs/` for the design, formats and
//! benchmarks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "baselines")]
pub mod baseline;
#[cfg(feature = "baselines")]
#[doc(hidden)]
pub mod bench_support;
mod channel;
pub mod config;
pub mod error;
pub mod event;
pub mod features;
mod forward;
pub mod inbound_payment;
pub mod keys;
pub mod message;
pub mod onchain;
pub mod onion;
pub mod persist;
pub mod route;
mod secp;
mod store;
#[cfg(feature = "test-hooks")]
#[doc(hidden)]
pub mod test_hooks;
pub mod transactions;
pub mod types;

pub use config::StoreConfig;
pub use error::{DecodeError, StoreError};
pub use event::{ChannelDetails, ClosureReason, Event, ForwardingPolicy};
pub use message::Message;
pub use onchain::{
    ClosedChannelDetails, CounterpartyCommitment, HolderCommitment, HtlcDirection, OnChainAction,
    OnChainHtlc, OnChainOutcome, RevokedHtlc, SpendableOutput, SpendableOutputKind,
};
pub use onion::FailureCode;
pub use persist::{FileOptions, FilePersister, MemoryPersister, Persister};
#[cfg(feature = "postgres")]
pub use persist::{PostgresOptions, PostgresPersister, Takeover};
#[cfg(feature = "sqlite")]
pub use persist::{SqliteOptions, SqlitePersister};
pub use route::{RecipientOnionFields, Route, RouteHop};
#[doc(hidden)]
pub use store::ResourceCounts;
pub use store::{ChannelStore, Container, PeerState, Sharded};
pub use types::{ChannelId, PaymentHash, PaymentPreimage, PaymentSecret, ShortChannelId};
