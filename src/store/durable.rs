//! Which records of a channel a section writes: only those that changed
//! (issue 11, point 7).
//!
//! A funded channel is stored as several records (see `docs/FORMAT.md`):
//! a header (`Key::Channel`: everything but the HTLCs), one record per HTLC
//! (`Key::Htlc`), one per onion still needed (`Key::Onion`: the onion we
//! sent, until the peer committed the add; the onion to forward, until the
//! forward is decided), and the peer's signatures on our latest commitment
//! (`Key::Signatures`), and one per HTLC that ended while it was open,
//! kept for the peer's revoked commitments (`Key::EndedHtlc`, written once).
//! Each section writes the records whose bytes changed
//! and deletes those that went away, so the bytes written per HTLC are
//! O(1), not O(HTLCs in the channel): an HTLC's record is a few hundred
//! bytes, written once per state change, and its onion once.
//!
//! What is written is the channel's *durable view*: its state as a
//! disconnection would leave it. BOLT 2 makes both sides forget the peer's
//! updates that no `commitment_signed` covered, so those are never written
//! (a peer cannot make us write by sending updates it never signs), nor are
//! the connection state and the closing fee negotiation (it restarts on
//! reconnection).

use bitcoin::hashes::{sha256, Hash};

use crate::channel::Channel;
use crate::onchain::HtlcDirection;
use crate::persist::codec::{
    encode_channel_header, encode_ended_htlc, encode_htlc, encode_signatures,
};
use crate::persist::{frame, Key};

/// The writes that bring `channel`'s records on disk up to date.
pub(crate) fn channel_writes(channel: &mut Channel, out: &mut Vec<(Key, Option<Vec<u8>>)>) {
    let id = channel.channel_id;
    let mut present = 0u32;
    for h in &channel.htlcs {
        let Some(fingerprint) = h.durable_fingerprint() else {
            continue;
        };
        present += 1;
        let key = (h.offered(), h.id);
        let on_disk = channel.disk.htlcs.get(&key).copied();
        if on_disk.map(|(f, _)| f) != Some(fingerprint) {
            out.push((
                Key::Htlc(id, h.offered(), h.id),
                Some(frame(&encode_htlc(h, true))),
            ));
        }
        let onion_on_disk = on_disk.is_some_and(|(_, o)| o);
        match (&h.onion, onion_on_disk) {
            (Some(onion), false) => {
                out.push((Key::Onion(id, h.offered(), h.id), Some(onion.0.to_vec())))
            }
            (None, true) => out.push((Key::Onion(id, h.offered(), h.id), None)),
            _ => {}
        }
        channel
            .disk
            .htlcs
            .insert(key, (fingerprint, h.onion.is_some()));
    }
    // HTLCs that ended (or were forgotten) since the last write.
    if channel.disk.htlcs.len() != present as usize {
        let live: std::collections::HashSet<(bool, u64)> = channel
            .htlcs
            .iter()
            .filter(|h| h.durable_state().is_some())
            .map(|h| (h.offered(), h.id))
            .collect();
        channel.disk.htlcs.retain(|key, (_, onion)| {
            if live.contains(key) {
                return true;
            }
            out.push((Key::Htlc(id, key.0, key.1), None));
            if *onion {
                out.push((Key::Onion(id, key.0, key.1), None));
            }
            false
        });
    }
    // HTLCs that ended since the last write, kept for the peer's revoked
    // commitments: written once each, in the batch that deletes their record.
    for h in &channel.ended_htlcs[channel.disk.ended_on_disk..] {
        let offered = h.direction == HtlcDirection::Offered;
        out.push((
            Key::EndedHtlc(id, offered, h.htlc_id),
            Some(frame(&encode_ended_htlc(h))),
        ));
    }
    channel.disk.ended_on_disk = channel.ended_htlcs.len();
    if channel.disk.sigs_dirty {
        channel.disk.sigs_dirty = false;
        if let Some(sigs) = &channel.holder_sigs {
            out.push((Key::Signatures(id), Some(frame(&encode_signatures(sigs)))));
            channel.disk.sigs_on_disk = true;
        }
    }
    let header = encode_channel_header(channel, present);
    let digest = record_digest(&header);
    if channel.disk.header != Some(digest) {
        channel.disk.header = Some(digest);
        out.push((Key::Channel(id), Some(frame(&header))));
    }
}

/// What `DiskState::header` keeps of the channel record on disk.
pub(crate) fn record_digest(record: &[u8]) -> [u8; 16] {
    sha256::Hash::hash(record).to_byte_array()[..16]
        .try_into()
        .expect("16 bytes")
}

/// The deletes that remove every record of a channel that closed.
pub(crate) fn channel_deletes(channel: &Channel, out: &mut Vec<(Key, Option<Vec<u8>>)>) {
    let id = channel.channel_id;
    if channel.disk.header.is_some() {
        out.push((Key::Channel(id), None));
    }
    for ((offered, htlc_id), (_, onion)) in &channel.disk.htlcs {
        out.push((Key::Htlc(id, *offered, *htlc_id), None));
        if *onion {
            out.push((Key::Onion(id, *offered, *htlc_id), None));
        }
    }
    if channel.disk.sigs_on_disk {
        out.push((Key::Signatures(id), None));
    }
    // The closed record, written in the same batch, lists them.
    for h in &channel.ended_htlcs[..channel.disk.ended_on_disk] {
        let offered = h.direction == HtlcDirection::Offered;
        out.push((Key::EndedHtlc(id, offered, h.htlc_id), None));
    }
}
