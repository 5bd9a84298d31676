//! The connection messages of BOLT 1 as the store takes them: the peer's
//! `init` (which must come first), `ping`, `pong` and `warning`. None of
//! them touches a channel.

use bitcoin::constants::ChainHash;

use super::section::Section;
use super::{ChannelStore, Container};
use crate::error::StoreError;
use crate::event::{printable, Event};
use crate::message::{Init, Message};
use crate::types::ChannelId;

impl<C: Container> ChannelStore<C> {
    /// Takes a connection message, or says that the message is for a
    /// channel (`Ok(Some(msg))` back) and may be handled: the peer's `init`
    /// has arrived on this connection.
    pub(super) fn connection_message(
        &self,
        s: &mut Section<'_>,
        msg: Message,
    ) -> Result<Option<Message>, StoreError> {
        let node_id = s.ps.node;
        match msg {
            Message::Init(init) => self.take_init(s, &init).map(|()| None),
            msg if s.ps.their_features.is_none() => Err(StoreError::InitRequired {
                node_id,
                message: msg.name(),
            }),
            Message::Ping(ping) => {
                // At most one pong waits per peer: one still unsent
                // answers this ping too (BOLT 1 lets a node fail a peer
                // that pings far more often than it should; we only keep
                // its cost to one pong between two drains).
                if !s.ps.pong_queued {
                    if let Some(pong) = ping.answer() {
                        s.send(Message::Pong(pong));
                        s.ps.pong_queued = true;
                    }
                }
                // A ping comes after whatever the peer retransmitted.
                s.end_resume_windows()?;
                Ok(None)
            }
            // We send no pings, so a pong answers nothing; BOLT 1 lets a
            // node ignore it.
            Message::Pong(_) => Ok(None),
            Message::Warning(w) => {
                if !std::mem::replace(&mut s.ps.warned, true) {
                    s.event(Event::PeerWarning {
                        counterparty_node_id: node_id,
                        channel_id: w.channel_id,
                        message: printable(&w.data),
                    });
                }
                Ok(None)
            }
            msg => Ok(Some(msg)),
        }
    }

    /// The peer's `init`: its features must leave us able to talk (none
    /// required that we do not know, none missing that we require) and its
    /// `networks`, when given, must include our chain. Then the channels
    /// paused by the last disconnection send their `channel_reestablish`.
    fn take_init(&self, s: &mut Section<'_>, init: &Init) -> Result<(), StoreError> {
        let node_id = s.ps.node;
        let refuse = |reason: String| Err(StoreError::IncompatiblePeer { node_id, reason });
        if s.ps.their_features.is_some() {
            return refuse("a second init on one connection".into());
        }
        let features = init.combined_features();
        if let Some(reason) = features.incompatibility() {
            return refuse(reason);
        }
        let chain = ChainHash::using_genesis_block(self.config.network);
        if init.networks.as_ref().is_some_and(|n| !n.contains(&chain)) {
            return refuse(format!("peer serves none of our chains ({chain})"));
        }
        s.ps.their_features = Some(features);
        let paused: Vec<ChannelId> =
            s.ps.channels
                .iter()
                .filter(|(_, c)| c.paused)
                .map(|(id, _)| *id)
                .collect();
        for id in paused {
            let msg = s.channel(&id, true)?.reestablish_message();
            s.send(Message::ChannelReestablish(msg));
        }
        Ok(())
    }
}
