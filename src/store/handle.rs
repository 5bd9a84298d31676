//! [`ChannelStore::handle_message`]: one peer message, dispatched to its
//! channel under that peer's lock.

use std::sync::atomic::Ordering;

use bitcoin::secp256k1::PublicKey;
use bitcoin::OutPoint;

use super::{ChannelStore, Container};
use crate::channel::signer::ChannelSigner;
use crate::channel::Channel;
use crate::error::StoreError;
use crate::event::{ClosureReason, Event};
use crate::message::Message;
use crate::types::{ChannelId, NodeId};

impl<C: Container> ChannelStore<C> {
    /// Handles a message from peer `from`.
    ///
    /// A message that is refused returns the precise [`StoreError`] and
    /// changes nothing: not its channel, not any other. Messages a peer sends
    /// for a channel it does not have with us are refused with
    /// [`StoreError::WrongPeer`] (another peer's channel) or
    /// [`StoreError::UnknownChannel`] ([`StoreError::UnknownShortChannelId`]
    /// for a `channel_update`, which names its channel by short channel id).
    ///
    /// **Locking behaviour:** takes `from`'s peer lock once; the signature
    /// checks and signing the message needs happen under it.
    pub fn handle_message(&self, from: &PublicKey, msg: Message) -> Result<(), StoreError> {
        let node = NodeId::from(from);
        let result = match msg {
            Message::FundingCreated(m) => {
                // Claim the permanent id first, so two peers can never fund
                // channels with the same id (one of them would be lying).
                let id = ChannelId::from_funding_outpoint(&OutPoint::new(
                    m.funding_txid,
                    m.funding_output_index.into(),
                ));
                self.claim_id(id, node, from)?;
                let result = self.with_section(&node, |s| {
                    if !s.ps.connected {
                        return Err(StoreError::PeerNotConnected { node_id: *from });
                    }
                    if s.ps.their_features.is_none() {
                        return Err(StoreError::InitRequired {
                            node_id: *from,
                            message: "funding_created",
                        });
                    }
                    let temp = m.temporary_channel_id;
                    s.channel(&temp, false)?;
                    // Nor may the permanent id be another unfunded channel's
                    // temporary id (one snapshot cell for two channels).
                    if id != temp && s.ps.unfunded.contains_key(&id) {
                        return Err(StoreError::DuplicateChannelId { channel_id: id });
                    }
                    let signed = s.channel(&temp, false)?.handle_funding_created(&m)?;
                    s.promote_funded(temp, id, Message::FundingSigned(signed));
                    let pending = channel_pending(s.channel(&id, true)?);
                    s.event(pending);
                    Ok(())
                });
                if result.is_err() {
                    self.container.index_release(&id, &node);
                }
                return result;
            }
            msg => self.with_section(&node, |s| {
                if !s.ps.connected {
                    return Err(StoreError::PeerNotConnected { node_id: *from });
                }
                match self.connection_message(s, msg)? {
                    Some(msg) => self.dispatch(s, msg),
                    None => Ok(()),
                }
            }),
        };
        // A channel this peer does not have: say whose it is, if anyone's.
        match result {
            Err(StoreError::UnknownChannel { channel_id }) => {
                match self.container.index_get(&channel_id) {
                    Some(owner) if owner != node => Err(StoreError::WrongPeer {
                        channel_id,
                        sender: *from,
                    }),
                    _ => Err(StoreError::UnknownChannel { channel_id }),
                }
            }
            Err(StoreError::UnknownShortChannelId { scid }) => {
                let owner = self
                    .container
                    .scid_get(&scid)
                    .and_then(|id| self.container.index_get(&id).map(|n| (id, n)));
                match owner {
                    Some((channel_id, owner)) if owner != node => Err(StoreError::WrongPeer {
                        channel_id,
                        sender: *from,
                    }),
                    _ => Err(StoreError::UnknownShortChannelId { scid }),
                }
            }
            other => other,
        }
    }

    fn dispatch(&self, s: &mut super::Section<'_>, msg: Message) -> Result<(), StoreError> {
        let id = msg.channel_id();
        let height = self.best_height();
        // Between a reconnection and the peer's channel_reestablish, a
        // channel takes nothing else (BOLT 2).
        let needs_live_channel = !matches!(
            msg,
            Message::ChannelReestablish(_)
                | Message::Error(_)
                | Message::OpenChannel(_)
                | Message::AcceptChannel(_)
        );
        if needs_live_channel && s.ps.channels.get(&id).is_some_and(|c| c.paused) {
            return Err(StoreError::AwaitingReestablish {
                channel_id: id,
                action: msg.name(),
            });
        }
        // A retransmitted shutdown comes first after the peer's
        // channel_reestablish (`Channel::takes_retransmitted_adds`): any
        // other message taken first says there is none.
        let after_reestablish =
            !matches!(msg, Message::Shutdown(_) | Message::ChannelReestablish(_));
        let result = self.dispatch_to(s, id, height, msg);
        if result.is_ok() && after_reestablish {
            if let Some(c) = s.ps.channels.get_mut(&id) {
                c.just_reestablished = false;
            }
        }
        result
    }

    /// [`ChannelStore::dispatch`]'s handlers, by message.
    fn dispatch_to(
        &self,
        s: &mut super::Section<'_>,
        id: ChannelId,
        height: u32,
        msg: Message,
    ) -> Result<(), StoreError> {
        // A peer reconnects to a channel we closed (it missed our `error`,
        // or our last `closing_signed`), or one we settled and forgot since:
        // tell it (BOLT 1), so it goes on chain too instead of waiting for
        // a peer that will never sign again.
        // (Not for another peer's channel: that is refused as `WrongPeer`.)
        if matches!(msg, Message::ChannelReestablish(_))
            && !s.ps.channels.contains_key(&id)
            && !s.ps.unfunded.contains_key(&id)
            && !matches!(self.container.index_get(&id),
                Some(owner) if owner.public_key() != s.ps.node)
        {
            let closed = s.ps.closed.contains_key(&id);
            let data: &[u8] = if closed {
                b"channel closed"
            } else {
                b"unknown channel"
            };
            s.send(Message::Error(crate::message::ErrorMessage {
                channel_id: id,
                data: data.to_vec(),
            }));
            // Answered, not refused: the error is the answer BOLT 1 asks for.
            return Ok(());
        }
        match msg {
            Message::OpenChannel(m) => {
                // Not the id of any channel of this peer, funded ones
                // included: the two would share one snapshot cell.
                if s.ps.unfunded.contains_key(&id) || s.ps.channels.contains_key(&id) {
                    return Err(StoreError::DuplicateChannelId { channel_id: id });
                }
                self.check_channel_limit(s)?;
                let per_peer = self.config.max_unfunded_channels_per_peer;
                if s.ps.unconfirmed_inbound() >= per_peer {
                    return Err(StoreError::PeerLimit {
                        node_id: s.ps.node,
                        resource: "unfunded channels",
                        limit: per_peer as u64,
                    });
                }
                // The store-wide cap, checked before the keys are derived
                // (a key creation each): a peer refused at the cap makes us do
                // no EC work. Taken for good below, after the checks.
                let global = self.config.max_inbound_unfunded_channels;
                if self.inbound_unfunded.load(Ordering::Relaxed) >= global {
                    return Err(StoreError::GlobalLimit {
                        resource: "inbound unfunded channels",
                        limit: global as u64,
                    });
                }
                let signer =
                    ChannelSigner::derive(&self.node_secret, ChannelSigner::random_keys_id());
                let (channel, accept) = Channel::new_inbound(&self.config, s.ps.node, &m, signer)?;
                // Last, so that a refused open takes no slot. Relaxed: one
                // atomic read-modify-write, publishing nothing else.
                self.inbound_unfunded
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        (n < global).then_some(n + 1)
                    })
                    .map_err(|_| StoreError::GlobalLimit {
                        resource: "inbound unfunded channels",
                        limit: global as u64,
                    })?;
                s.add_unfunded(channel, Message::AcceptChannel(accept));
                Ok(())
            }
            Message::AcceptChannel(m) => {
                let config = &self.config;
                s.on_channel(&id, false, |c, e| {
                    e.events.push(c.handle_accept_channel(config, &m)?);
                    Ok(())
                })
            }
            Message::FundingCreated(_) => unreachable!("handled before dispatch"),
            Message::Init(_) | Message::Ping(_) | Message::Pong(_) | Message::Warning(_) => {
                unreachable!("connection messages are taken before dispatch")
            }
            Message::FundingSigned(m) => s.on_channel(&id, true, |c, e| {
                c.handle_funding_signed(&m)?;
                e.events.push(channel_pending(c));
                Ok(())
            }),
            Message::ChannelReady(m) => s.on_channel(&id, true, |c, e| {
                *e = c.handle_channel_ready(&m)?;
                Ok(())
            }),
            Message::UpdateAddHtlc(m) => {
                let (config, secret) = (&self.config, &self.node_secret);
                let result = s.on_channel(&id, true, |c, _| {
                    c.handle_update_add_htlc(config, &m, height, secret)
                });
                fail_if_unpayable(s, &id, result)
            }
            Message::UpdateFulfillHtlc(m) => s.on_channel(&id, true, |c, e| {
                if let Some(resolved) = c.handle_update_fulfill_htlc(&m)? {
                    e.resolved.push(resolved);
                }
                Ok(())
            }),
            Message::UpdateFailHtlc(m) => {
                s.on_channel(&id, true, |c, _| c.handle_update_fail_htlc(&m))
            }
            Message::UpdateFailMalformedHtlc(m) => {
                s.on_channel(&id, true, |c, _| c.handle_update_fail_malformed_htlc(&m))
            }
            Message::CommitmentSigned(m) => {
                let result = s.on_channel(&id, true, |c, e| {
                    let revoke = c.handle_commitment_signed(&m, e)?;
                    e.msgs.push(Message::RevokeAndAck(revoke));
                    Ok(())
                });
                fail_if_unpayable(s, &id, result)
            }
            Message::RevokeAndAck(m) => {
                s.on_channel(&id, true, |c, e| c.handle_revoke_and_ack(&m, e))?;
                // Its batch may be lazy if it releases nothing (`Outcome::may_wait`).
                s.out.received_revocation = true;
                Ok(())
            }
            Message::UpdateFee(m) => {
                let config = &self.config;
                let result = s.on_channel(&id, true, |c, _| c.handle_update_fee(config, &m));
                fail_if_fee_refused(s, &id, m.feerate_per_kw, result)
            }
            Message::Shutdown(m) => {
                let anysegwit = (s.ps.their_features.as_ref())
                    .is_some_and(|f| f.supports(crate::features::SHUTDOWN_ANYSEGWIT));
                s.on_channel(&id, true, |c, _| c.handle_shutdown(&m, anysegwit))
            }
            Message::ClosingSigned(m) => {
                let config = &self.config;
                s.on_channel(&id, true, |c, e| {
                    *e = c.handle_closing_signed(config, &m)?;
                    Ok(())
                })
            }
            Message::ChannelReestablish(m) => {
                s.on_channel(&id, true, |c, e| c.handle_channel_reestablish(&m, e))
            }
            // Named by short channel id; taken even while the channel waits
            // for channel_reestablish (it changes no commitment).
            Message::ChannelUpdate(m) => s.handle_channel_update(&m),
            Message::Error(m) => {
                // BOLT 1: an all-zero channel id means every channel with this peer.
                let all = id == ChannelId([0; 32]);
                let targets: Vec<(ChannelId, bool)> = if all {
                    s.ps.channels
                        .keys()
                        .map(|k| (*k, true))
                        .chain(s.ps.unfunded.keys().map(|k| (*k, false)))
                        .collect()
                } else if s.ps.channels.contains_key(&id) {
                    vec![(id, true)]
                } else {
                    vec![(id, false)]
                };
                for (target, funded) in targets {
                    s.on_channel(&target, funded, |c, e| {
                        *e = c.handle_error(&m);
                        Ok(())
                    })?;
                }
                Ok(())
            }
        }
    }
}

/// `ChannelPending` for a channel whose first commitments are both signed.
fn channel_pending(c: &Channel) -> Event {
    Event::ChannelPending {
        channel_id: c.channel_id,
        counterparty_node_id: c.counterparty,
        funding_outpoint: c
            .funding_outpoint
            .expect("a channel with signed commitments has its funding outpoint"),
    }
}

/// A refused `update_fee` (see [`ClosureReason::UnacceptableFeeUpdate`]):
/// the peer counts it in its next `commitment_signed` and resends both
/// after every reconnection, so the channel is failed with our latest
/// commitment, as LDK fails it; the error is still returned. A message in
/// the wrong state (a fundee's, one while paused) is only refused.
fn fail_if_fee_refused(
    s: &mut super::Section<'_>,
    id: &ChannelId,
    feerate_per_kw: u32,
    result: Result<(), StoreError>,
) -> Result<(), StoreError> {
    let refused = matches!(
        &result,
        Err(StoreError::UnacceptableParameter {
            parameter: "feerate_per_kw",
            ..
        } | StoreError::DustExposureExceeded { .. }
            | StoreError::ReserveViolated { .. }
            | StoreError::FunderCannotPayFee { .. })
    );
    if refused {
        let reason = ClosureReason::UnacceptableFeeUpdate { feerate_per_kw };
        let failed = s.on_channel(id, true, |c, e| {
            c.fail_with_error("unacceptable update_fee", reason, e);
            Ok(())
        });
        debug_assert!(failed.is_ok(), "the channel was just found");
    }
    result
}

/// A message refused with [`StoreError::FunderCannotPayFee`] (an
/// `update_fee` raced the fundee's adds) leaves a channel that can go on
/// only with a commitment that pays less than its fee: it is failed
/// instead, with our latest commitment, as LDK fails it ("Funding remote
/// cannot afford proposed new fee"); the error is still returned.
fn fail_if_unpayable<T>(
    s: &mut super::Section<'_>,
    id: &ChannelId,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    if let Err(StoreError::FunderCannotPayFee { feerate_per_kw, .. }) = &result {
        let reason = ClosureReason::FunderCannotPayFee {
            feerate_per_kw: *feerate_per_kw,
        };
        let failed = s.on_channel(id, true, |c, e| {
            c.fail_with_error("the funder cannot pay the commitment fee", reason, e);
            Ok(())
        });
        debug_assert!(failed.is_ok(), "the channel was just found");
    }
    result
}
