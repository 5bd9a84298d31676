//! The one secp256k1 context the crate signs and verifies with.

use std::sync::LazyLock;

use bitcoin::secp256k1::{All, Secp256k1};

/// Shared signing and verification context. `Secp256k1<All>` is `Send + Sync`
/// and every operation takes `&self`, so one context serves every thread;
/// building it once avoids the ~1 ms table setup per use.
pub(crate) static SECP: LazyLock<Secp256k1<All>> = LazyLock::new(Secp256k1::new);
