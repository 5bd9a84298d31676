//! [`PeerState`]: everything the store keeps about one peer, guarded by that
//! peer's lock.

use std::collections::HashMap;

use crate::channel::{Channel, ClosedChannel};
use crate::message::Message;
use crate::types::ChannelId;

/// The tag of a message whose section has not ended yet (never seen outside
/// its peer lock).
const UNSEALED: u64 = u64::MAX;

/// One peer's channels and the messages waiting to be sent to it.
///
/// Lock rule: a `PeerState` is only reached through its container's
/// `with_peer`, under that peer's lock, and a thread holds at most one such
/// lock at a time.
#[derive(Debug)]
pub struct PeerState {
    /// The peer's key (the maps key peers by its compressed form).
    pub(crate) node: bitcoin::secp256k1::PublicKey,
    /// Channels that have a permanent id (funding outpoint known). Boxed:
    /// a channel is ~1.4 KB, and a map sized in powers of two would
    /// otherwise keep up to twice that per channel in empty slots.
    pub(crate) channels: HashMap<ChannelId, Box<Channel>>,
    /// Channels still known by their temporary id, which is unique only
    /// between this peer and us (BOLT 2), so it never leaves this map.
    pub(crate) unfunded: HashMap<ChannelId, Box<Channel>>,
    /// Closed channels that still have outputs to sweep or HTLCs to settle
    /// on chain (kept until the user is done with them).
    pub(crate) closed: HashMap<ChannelId, Box<ClosedChannel>>,
    /// Messages for the peer, in the order they must be sent, each with the
    /// journal number its section waits for (`journal.rs`): a message
    /// leaves only once that batch is durable.
    pub(crate) outbox: Vec<(u64, Message)>,
    /// Whether the container has been told this peer has messages (so it is
    /// told once per batch, not once per message).
    pub(crate) listed: bool,
    /// Whether the peer is connected.
    pub(crate) connected: bool,
    /// The features of the peer's `init` on this connection (`globalfeatures`
    /// OR `features`); `None` until it arrives, and no other message is
    /// taken before it (BOLT 1).
    pub(crate) their_features: Option<crate::features::Features>,
    /// A `warning` from the peer was reported on this connection (later
    /// ones are not: one event per connection at most).
    pub(crate) warned: bool,
    /// A `pong` waits in the outbox: a `ping` that comes before it leaves
    /// is answered by that one (a burst of pings asking for 65531 bytes
    /// each would otherwise hold 64 KiB per 6-byte ping until a drain).
    pub(crate) pong_queued: bool,
    /// This state was dropped from the container (the peer left and nothing
    /// of it remained). A thread that cloned its `Arc` before the removal
    /// and locks it afterwards must treat the peer as unknown.
    pub(crate) removed: bool,
}

impl PeerState {
    /// A peer seen for the first time.
    pub(crate) fn new(node: bitcoin::secp256k1::PublicKey) -> Self {
        PeerState {
            node,
            channels: HashMap::new(),
            unfunded: HashMap::new(),
            closed: HashMap::new(),
            outbox: Vec::new(),
            listed: false,
            connected: false,
            their_features: None,
            warned: false,
            pong_queued: false,
            removed: false,
        }
    }

    /// Queues a message (its journal number is set when its section ends,
    /// [`PeerState::seal`]); returns true if the peer was not listed as
    /// having messages and now must be.
    pub(crate) fn send(&mut self, msg: Message) -> bool {
        self.outbox.push((UNSEALED, msg));
        !std::mem::replace(&mut self.listed, true)
    }

    /// Gives the messages queued from `from` on the journal number of the
    /// section that queued them.
    pub(crate) fn seal(&mut self, from: usize, seq: u64) {
        let from = from.min(self.outbox.len());
        for (tag, _) in &mut self.outbox[from..] {
            *tag = seq;
        }
    }

    /// Takes the messages whose batches are durable (numbers up to
    /// `durable`), in order; says whether any are left waiting (the peer
    /// then stays listed).
    pub(crate) fn take_outbox(&mut self, durable: u64) -> (Vec<Message>, bool) {
        let ready = self
            .outbox
            .iter()
            .position(|(seq, _)| *seq > durable)
            .unwrap_or(self.outbox.len());
        let msgs = self.outbox.drain(..ready).map(|(_, m)| m).collect();
        let left = !self.outbox.is_empty();
        self.listed = left;
        if self.pong_queued {
            self.pong_queued = (self.outbox.iter()).any(|(_, m)| matches!(m, Message::Pong(_)));
        }
        (msgs, left)
    }

    /// Number of channels, funded or not.
    pub(crate) fn channel_count(&self) -> usize {
        self.channels.len() + self.unfunded.len()
    }

    /// Channels this peer opened whose funding we have not seen confirmed,
    /// live or closed (`Channel::holds_unconfirmed_slot`).
    pub(crate) fn unconfirmed_inbound(&self) -> usize {
        let live = (self.channels.values())
            .chain(self.unfunded.values())
            .filter(|c| c.holds_unconfirmed_slot())
            .count();
        live + (self.closed.values())
            .filter(|r| r.unconfirmed_since.is_some())
            .count()
    }

    /// Nothing of this peer needs keeping: it is disconnected and has no
    /// channel, live or closed, and no message waiting. Its state can be
    /// dropped, so a peer that connects and leaves costs nothing after.
    pub(crate) fn is_idle(&self) -> bool {
        !self.connected
            && self.channels.is_empty()
            && self.unfunded.is_empty()
            && self.closed.is_empty()
            && self.outbox.is_empty()
    }
}
