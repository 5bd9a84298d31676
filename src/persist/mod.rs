//! Durable state: what must survive a crash, how it is written, and how a
//! store is rebuilt from it.
//!
//! **What is durable.** Every funded channel (with its HTLCs), every queued
//! cross-peer work item (an HTLC forward or a resolution on its way to
//! another peer), and every event not yet taken by the user. Temporary
//! (unfunded) channels are not: BOLT 2 says not to remember them.
//!
//! **Ordering rule.** A critical section under a peer's lock ends by
//! writing, as one atomic batch and before the lock is released, the new
//! state of every channel it changed, the work items and events it created,
//! and the deletion of the work items it consumed. Messages produced in the
//! section sit in the peer's outbox until the lock is released, so a
//! `commitment_signed` or `revoke_and_ack` never leaves before the state it
//! depends on is durable. (The store may hold a batch that releases nothing
//! back until its next commit, `store/journal.rs`; that changes no backend:
//! it arrives in the next `write_batch`, with the batches after it.) A forward is decided after the lock is released
//! (it needs the indexes); the decision is written before the forward is
//! queued. Because a consumed work item is deleted in the same batch as the
//! channel change that consumed it, no item is ever applied twice, and a
//! decision lost in a crash is simply made again on restart (see
//! `ChannelStore::open`).
//!
//! Files: `tlv.rs` (the TLV stream), `codec.rs` (records), `file.rs`
//! ([`FilePersister`]: append-only log, checksummed, group commit),
//! `memory.rs` ([`MemoryPersister`]), `sqlite.rs` (`SqlitePersister`,
//! feature `sqlite`), `postgres.rs` (`PostgresPersister`, feature
//! `postgres`), with `group.rs` (the group-commit core the SQL backends
//! share) and `sql.rs` (their schema version and rows). This module is the format and the
//! backends only: it knows nothing of the store. The store's side
//! (`ChannelStore::open`/`write`/`read` and restart) lives in
//! `store/restore.rs`.

pub(crate) mod codec;
mod file;
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
mod group;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
pub(crate) mod tlv;

use std::collections::BTreeMap;

use bitcoin::hashes::{sha256, Hash};

pub use file::{FileOptions, FilePersister};
pub use memory::MemoryPersister;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresPersister, Takeover};
pub use sql::SCHEMA_VERSION as SQL_SCHEMA_VERSION;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOptions, SqlitePersister};

use crate::error::{DecodeError, StoreError};
use crate::types::ChannelId;

/// The current format version (first byte of every framed record).
pub const FORMAT_VERSION: u8 = 1;

/// TLV type of the checksum that ends every framed record: the first four
/// bytes of `sha256(version || records before it)`. Even: required.
pub(crate) const CHECKSUM_TYPE: u64 = 65534;

/// What a [`Persister`] stores a value under.
///
/// A live funded channel is several records (its header, one per HTLC, one
/// per onion it still needs, the peer's signatures on our latest
/// commitment), so a change writes only the records it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// A funded channel's header (everything but its HTLCs; in version 0.1
    /// stores, the whole channel).
    Channel(ChannelId),
    /// A queued cross-peer work item.
    Work(u64),
    /// An event not yet taken by the user.
    Event(u64),
    /// One HTLC of a channel: (channel, offered by us, HTLC id).
    Htlc(ChannelId, bool, u64),
    /// The onion an HTLC still needs: (channel, offered by us, HTLC id).
    Onion(ChannelId, bool, u64),
    /// The peer's signatures on our latest commitment of a channel.
    Signatures(ChannelId),
    /// A closed channel's record (outputs to sweep, HTLCs to settle on chain).
    Closed(ChannelId),
    /// An HTLC that ended while its channel was open, kept for its output
    /// in the peer's revoked commitments: (channel, offered by us, HTLC id).
    EndedHtlc(ChannelId, bool, u64),
}

impl Key {
    /// Appends the key's stable byte form: a tag byte, then the id. Every
    /// backend stores keys in this form (`docs/FORMAT.md`), so they sort and
    /// compare the same everywhere.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Key::Channel(id) => {
                out.push(0);
                out.extend_from_slice(&id.0);
            }
            Key::Work(n) => {
                out.push(1);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Key::Event(n) => {
                out.push(2);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Key::Htlc(id, offered, n)
            | Key::Onion(id, offered, n)
            | Key::EndedHtlc(id, offered, n) => {
                out.push(match self {
                    Key::Htlc(..) => 3,
                    Key::Onion(..) => 4,
                    _ => 7,
                });
                out.extend_from_slice(&id.0);
                out.push(u8::from(*offered));
                out.extend_from_slice(&n.to_be_bytes());
            }
            Key::Signatures(id) => {
                out.push(5);
                out.extend_from_slice(&id.0);
            }
            Key::Closed(id) => {
                out.push(6);
                out.extend_from_slice(&id.0);
            }
        }
    }

    /// The key's stable byte form (see [`Key::encode_into`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(42);
        self.encode_into(&mut out);
        out
    }

    /// Reads a key written by [`Key::encode_into`]; the whole of `bytes` must be one key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, DecodeError> {
        let mut c = tlv::Cursor::new(bytes, "key");
        let key = Key::decode_from(&mut c)?;
        c.end()?;
        Ok(key)
    }

    pub(crate) fn decode_from(c: &mut tlv::Cursor<'_>) -> Result<Key, DecodeError> {
        Ok(match c.u8()? {
            0 => Key::Channel(ChannelId(c.array()?)),
            1 => Key::Work(c.u64()?),
            2 => Key::Event(c.u64()?),
            tag @ (3 | 4 | 7) => {
                let id = ChannelId(c.array()?);
                let offered = c.bool()?;
                let n = c.u64()?;
                match tag {
                    3 => Key::Htlc(id, offered, n),
                    4 => Key::Onion(id, offered, n),
                    _ => Key::EndedHtlc(id, offered, n),
                }
            }
            5 => Key::Signatures(ChannelId(c.array()?)),
            6 => Key::Closed(ChannelId(c.array()?)),
            _ => return Err(DecodeError::InvalidValue { field: "key" }),
        })
    }
}

/// Durable key-value storage for a store.
///
/// `write_batch` must be atomic (after a crash, all of a batch or none of it
/// is visible) and durable when it returns. It is called from many threads
/// at once, each under one peer's lock, so an implementation that lets
/// concurrent batches share one `fsync` (group commit) lets peers' updates
/// proceed in parallel.
pub trait Persister: Send + Sync + std::fmt::Debug {
    /// Stores each `(key, Some(value))` and deletes each `(key, None)`,
    /// atomically and durably.
    fn write_batch(&self, batch: &[(Key, Option<Vec<u8>>)]) -> std::io::Result<()>;
    /// The latest value of every key.
    fn load(&self) -> Result<BTreeMap<Key, Vec<u8>>, StoreError>;
}

/// Frames a TLV stream: version byte, the records, then the checksum record.
pub(crate) fn frame(records: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() + 12);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(records);
    let sum = sha256::Hash::hash(&out).to_byte_array();
    let mut w = tlv::TlvWriter::new();
    w.record(CHECKSUM_TYPE, &sum[..4]);
    out.extend(w.finish());
    out
}

/// Checks a framed record's version and checksum and returns its TLV
/// records (without the checksum record). `context` names it in errors.
pub(crate) fn unframe<'a>(bytes: &'a [u8], context: &str) -> Result<&'a [u8], DecodeError> {
    let (&version, _) = bytes.split_first().ok_or(DecodeError::ShortRead {
        field: "format version",
    })?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    // The checksum record is the last 8 bytes: type 0xfd fffe, length 4, value.
    const TRAILER: usize = 3 + 1 + 4;
    if bytes.len() < 1 + TRAILER {
        return Err(DecodeError::ShortRead { field: "checksum" });
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER);
    if trailer[..4] != [0xfd, 0xff, 0xfe, 4] {
        return Err(DecodeError::MissingRecord {
            record_type: CHECKSUM_TYPE,
            context: context.to_string(),
        });
    }
    let sum = sha256::Hash::hash(body).to_byte_array();
    if sum[..4] != trailer[4..] {
        return Err(DecodeError::Checksum {
            context: context.to_string(),
        });
    }
    Ok(&body[1..])
}

/// Decodes one channel record (as `ChannelStore::encode_channel` returns
/// it, or as a persister stores it) into a snapshot of the channel. The
/// node secret re-derives the channel's keys.
pub fn decode_channel_details(
    bytes: &[u8],
    node_secret: &bitcoin::secp256k1::SecretKey,
) -> Result<crate::event::ChannelDetails, DecodeError> {
    let records = unframe(bytes, "channel")?;
    Ok(codec::decode_channel(records, node_secret)?.details())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_catches_every_bit_flip() {
        let records = tlv::TlvWriter::new()
            .record(0, b"hello")
            .record(3, b"odd")
            .finish();
        let framed = frame(&records);
        assert_eq!(unframe(&framed, "t").unwrap(), &records[..]);
        for byte in 0..framed.len() {
            for bit in 0..8 {
                let mut bad = framed.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    unframe(&bad, "t").is_err(),
                    "flip at {byte}.{bit} not caught"
                );
            }
        }
        assert_eq!(
            unframe(&[2, 0, 0], "t"),
            Err(DecodeError::UnsupportedVersion(2))
        );
        for cut in 0..framed.len() {
            assert!(unframe(&framed[..cut], "t").is_err());
        }
    }
}
