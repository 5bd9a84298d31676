//! Updates: `update_add_htlc`, `update_fulfill_htlc`, `update_fail_htlc`,
//! sent or received (`update_fee` is in `fee.rs`). The balance, fee and dust checks they
//! need are in `stats.rs` (which explains why an honest sender is never
//! refused).

use super::htlc::{Htlc, HtlcKind, HtlcSource, HtlcState, Inbound, Removal};
use super::{Channel, OutboundResolved, Outcome, Phase};
use crate::config::StoreConfig;
use crate::error::StoreError;
use bitcoin::secp256k1::SecretKey;

use crate::message::{
    Message, OnionPacket, UpdateAddHtlc, UpdateFailHtlc, UpdateFailMalformedHtlc, UpdateFulfillHtlc,
};
use crate::onion::packet::{peel_onion, BadOnion, Peeled};
use crate::onion::payload::HopPayload;
use crate::onion::{sha256_of_onion, Failure, FailureCode};
use crate::types::{PaymentHash, PaymentPreimage};

/// Block heights stop here; above it `cltv_expiry` would be a timestamp.
pub(crate) const LOCKTIME_THRESHOLD: u32 = 500_000_000;

impl Channel {
    /// Offers an HTLC to the peer.
    pub(crate) fn send_htlc(
        &mut self,
        config: &StoreConfig,
        amount_msat: u64,
        payment_hash: PaymentHash,
        cltv_expiry: u32,
        onion: OnionPacket,
        source: HtlcSource,
    ) -> Result<UpdateAddHtlc, StoreError> {
        if !self.accepts_htlcs() {
            return Err(self.wrong_state("update_add_htlc"));
        }
        self.check_our_add(amount_msat, config.max_dust_htlc_exposure_msat)?;
        let msg = UpdateAddHtlc {
            channel_id: self.channel_id,
            id: self.next_offered_id,
            amount_msat,
            payment_hash,
            cltv_expiry,
            onion_routing_packet: onion.clone(),
        };
        self.htlcs.push(Htlc {
            id: self.next_offered_id,
            amount_msat,
            payment_hash,
            cltv_expiry,
            state: HtlcState::SentAddHtlc,
            removal: None,
            kind: HtlcKind::Offered {
                source,
                fulfill_reported: false,
            },
            onion: Some(onion),
        });
        self.next_offered_id += 1;
        Ok(msg)
    }

    /// The peer offers an HTLC. Its onion is peeled here, with
    /// `node_secret`: what it says is kept with the HTLC (see [`Inbound`]),
    /// and an onion that cannot be read is no protocol error: the HTLC is
    /// failed back once committed.
    pub(crate) fn handle_update_add_htlc(
        &mut self,
        config: &StoreConfig,
        msg: &UpdateAddHtlc,
        best_height: u32,
        node_secret: &SecretKey,
    ) -> Result<(), StoreError> {
        // After the peer's shutdown it may add nothing (BOLT 2), except what
        // it retransmits after it (`takes_retransmitted_adds`).
        let shutting_open =
            self.remote_shutdown_script.is_none() || self.takes_retransmitted_adds();
        // Nor before its channel_ready (a close begun before the channel
        // was ready: BOLT 2).
        let open = self.phase == Phase::Normal
            || (self.phase == Phase::ShuttingDown && shutting_open && self.received_ready);
        if !open {
            return Err(self.wrong_state("update_add_htlc"));
        }
        if msg.id != self.next_received_id {
            return Err(StoreError::HtlcIdOutOfOrder {
                channel_id: self.channel_id,
                expected: self.next_received_id,
                got: msg.id,
            });
        }
        // 500,000,000 and above is a timestamp, not a height (BOLT 2: fail
        // the connection). An expiry already past is taken: the peer saw
        // fewer blocks, or forwards for a hub that did, and BOLT 2 has no
        // such rule for the receiver. Once committed, it is failed back
        // like any HTLC too close to its expiry (`expiry_too_soon`, or
        // `incorrect_or_unknown_payment_details` at the final hop), as LDK
        // does; refusing the message would leave the two sides out of step
        // for good, the peer resending it on every reconnection.
        if msg.cltv_expiry >= LOCKTIME_THRESHOLD {
            return Err(StoreError::HtlcExpired {
                channel_id: self.channel_id,
                cltv_expiry: msg.cltv_expiry,
                best_height,
            });
        }
        let within_dust_limit =
            self.check_their_add(msg.amount_msat, config.max_dust_htlc_exposure_msat)?;
        let (mut inbound, onion) = read_onion(msg, node_secret);
        // One over our dust limit, or one the peer's commitment cannot pay
        // the fee of (`check_their_add`), is failed back once committed.
        if !within_dust_limit && !matches!(inbound, Inbound::Malformed { .. }) {
            inbound = Inbound::Fail {
                code: FailureCode::TemporaryChannelFailure,
                // BOLT 4: `u16 len` and a channel_update; the outgoing
                // channel is not known yet, so none (len 0, as LDK does for
                // its incoming channel's failures, channelmanager.rs:8516-8532).
                data: vec![0, 0],
                shared_secret: inbound.shared_secret().copied(),
            };
        }
        let onion = onion.filter(|_| matches!(inbound, Inbound::Payload { .. }));
        self.htlcs.push(Htlc {
            id: msg.id,
            amount_msat: msg.amount_msat,
            payment_hash: msg.payment_hash,
            cltv_expiry: msg.cltv_expiry,
            state: HtlcState::RcvdAddHtlc,
            removal: None,
            kind: HtlcKind::Received(inbound),
            onion,
        });
        self.next_received_id += 1;
        Ok(())
    }

    /// Index of an HTLC the peer offered that we may remove now.
    fn removable_received(&self, htlc_id: u64) -> Result<usize, StoreError> {
        self.htlc_index(false, htlc_id)
            .filter(|&i| self.htlcs[i].state.is_removable() && self.htlcs[i].removal.is_none())
            .ok_or(StoreError::UnknownHtlc {
                channel_id: self.channel_id,
                htlc_id,
            })
    }

    /// Index of an HTLC we offered that the peer may remove now.
    fn removable_offered(&self, htlc_id: u64) -> Result<usize, StoreError> {
        self.htlc_index(true, htlc_id)
            .filter(|&i| self.htlcs[i].state.is_removable() && self.htlcs[i].removal.is_none())
            .ok_or(StoreError::UnknownHtlc {
                channel_id: self.channel_id,
                htlc_id,
            })
    }

    fn can_remove(&self, action: &'static str) -> Result<(), StoreError> {
        match self.phase {
            Phase::Normal | Phase::ShuttingDown => Ok(()),
            _ => Err(self.wrong_state(action)),
        }
    }

    /// We claim an HTLC the peer offered.
    pub(crate) fn fulfill_htlc(
        &mut self,
        htlc_id: u64,
        preimage: PaymentPreimage,
    ) -> Result<UpdateFulfillHtlc, StoreError> {
        self.can_remove("update_fulfill_htlc")?;
        let i = self.removable_received(htlc_id)?;
        if !preimage.matches(&self.htlcs[i].payment_hash) {
            return Err(StoreError::WrongPreimage {
                channel_id: self.channel_id,
                htlc_id,
            });
        }
        let h = &mut self.htlcs[i];
        h.removal = Some(Removal::Fulfill(preimage));
        h.state = HtlcState::SentRemoveHtlc;
        Ok(UpdateFulfillHtlc {
            channel_id: self.channel_id,
            id: htlc_id,
            payment_preimage: preimage,
        })
    }

    /// We fail an HTLC the peer offered, with `failure` built into a
    /// failure onion with its shared secret; one whose onion we could not
    /// read is failed with `update_fail_malformed_htlc` instead.
    pub(crate) fn fail_htlc(
        &mut self,
        htlc_id: u64,
        failure: &Failure,
    ) -> Result<Message, StoreError> {
        self.can_remove("update_fail_htlc")?;
        let i = self.removable_received(htlc_id)?;
        let h = &mut self.htlcs[i];
        let HtlcKind::Received(inbound) = &h.kind else {
            unreachable!("removable_received found a received htlc")
        };
        let (removal, msg) = match inbound {
            Inbound::Malformed {
                code,
                sha256_of_onion,
            } => (
                Removal::Malformed {
                    code: *code,
                    sha256_of_onion: *sha256_of_onion,
                },
                Message::UpdateFailMalformedHtlc(UpdateFailMalformedHtlc {
                    channel_id: self.channel_id,
                    id: htlc_id,
                    sha256_of_onion: *sha256_of_onion,
                    failure_code: *code,
                }),
            ),
            _ => {
                let reason = failure.reason(inbound.shared_secret());
                (
                    Removal::Fail(reason.clone()),
                    Message::UpdateFailHtlc(UpdateFailHtlc {
                        channel_id: self.channel_id,
                        id: htlc_id,
                        reason,
                    }),
                )
            }
        };
        h.removal = Some(removal);
        h.state = HtlcState::SentRemoveHtlc;
        Ok(msg)
    }

    /// The peer claims an HTLC we offered. The preimage is passed on at once
    /// (it is proof enough), exactly once; the removal still goes through
    /// the round trip.
    pub(crate) fn handle_update_fulfill_htlc(
        &mut self,
        msg: &UpdateFulfillHtlc,
    ) -> Result<Option<OutboundResolved>, StoreError> {
        self.can_remove("update_fulfill_htlc")?;
        let i = self.removable_offered(msg.id)?;
        if !msg.payment_preimage.matches(&self.htlcs[i].payment_hash) {
            return Err(StoreError::WrongPreimage {
                channel_id: self.channel_id,
                htlc_id: msg.id,
            });
        }
        let h = &mut self.htlcs[i];
        h.removal = Some(Removal::Fulfill(msg.payment_preimage));
        h.state = HtlcState::RcvdRemoveHtlc;
        let HtlcKind::Offered {
            source,
            fulfill_reported,
            ..
        } = &mut h.kind
        else {
            unreachable!("removable_offered found an offered htlc")
        };
        if std::mem::replace(fulfill_reported, true) {
            return Ok(None);
        }
        Ok(Some(OutboundResolved {
            source: source.clone(),
            payment_hash: h.payment_hash,
            amount_msat: h.amount_msat,
            outcome: Outcome::Fulfilled(msg.payment_preimage),
        }))
    }

    /// The peer fails an HTLC we offered; it is passed on once irrevocably removed.
    pub(crate) fn handle_update_fail_htlc(
        &mut self,
        msg: &UpdateFailHtlc,
    ) -> Result<(), StoreError> {
        self.can_remove("update_fail_htlc")?;
        let i = self.removable_offered(msg.id)?;
        let h = &mut self.htlcs[i];
        h.removal = Some(Removal::Fail(msg.reason.clone()));
        h.state = HtlcState::RcvdRemoveHtlc;
        Ok(())
    }

    /// The peer could not read the onion of an HTLC we offered. Its code
    /// must have the BADONION bit (BOLT 2); it is passed on once
    /// irrevocably removed.
    pub(crate) fn handle_update_fail_malformed_htlc(
        &mut self,
        msg: &UpdateFailMalformedHtlc,
    ) -> Result<(), StoreError> {
        self.can_remove("update_fail_malformed_htlc")?;
        if !FailureCode::from_code(msg.failure_code).is_bad_onion() {
            return Err(StoreError::MalformedWithoutBadOnion {
                channel_id: self.channel_id,
                failure_code: msg.failure_code,
            });
        }
        let i = self.removable_offered(msg.id)?;
        let h = &mut self.htlcs[i];
        h.removal = Some(Removal::Malformed {
            code: msg.failure_code,
            sha256_of_onion: msg.sha256_of_onion,
        });
        h.state = HtlcState::RcvdRemoveHtlc;
        Ok(())
    }
}

impl Channel {
    /// BOLT 2, on disconnection: forget the updates the peer sent that no
    /// `commitment_signed` of its covered yet (it forgets them too). A
    /// preimage it revealed stays known: we may already have used it.
    pub(crate) fn drop_uncommitted_remote_updates(&mut self) {
        let mut lowest_dropped = None;
        self.htlcs.retain(|h| {
            let keep = h.state != HtlcState::RcvdAddHtlc;
            if !keep {
                lowest_dropped = Some(lowest_dropped.map_or(h.id, |l: u64| l.min(h.id)));
            }
            keep
        });
        if let Some(id) = lowest_dropped {
            self.next_received_id = id;
        }
        for h in &mut self.htlcs {
            if h.state == HtlcState::RcvdRemoveHtlc {
                h.state = HtlcState::SentAddAckRevocation;
                h.removal = None;
            }
        }
        self.pending_fees
            .retain(|f| f.state != HtlcState::RcvdAddHtlc);
    }
}

/// Peels the onion of an `update_add_htlc` and reads our payload: what the
/// HTLC becomes, and the packet for the next hop if it is a forward.
fn read_onion(msg: &UpdateAddHtlc, node_secret: &SecretKey) -> (Inbound, Option<OnionPacket>) {
    let packet = &msg.onion_routing_packet;
    let (bytes, is_final, next, shared_secret) =
        match peel_onion(node_secret, packet, &msg.payment_hash.0) {
            Ok(Peeled::Forward {
                payload,
                next,
                shared_secret,
            }) => (payload, false, Some(next), shared_secret),
            Ok(Peeled::Final {
                payload,
                shared_secret,
            }) => (payload, true, None, shared_secret),
            Err(BadOnion::Payload { shared_secret }) => {
                return (
                    Inbound::Fail {
                        code: FailureCode::InvalidOnionPayload,
                        data: Vec::new(),
                        shared_secret: Some(shared_secret),
                    },
                    None,
                )
            }
            Err(bad) => {
                return (
                    Inbound::Malformed {
                        code: bad.failure_code(),
                        sha256_of_onion: sha256_of_onion(packet),
                    },
                    None,
                )
            }
        };
    match HopPayload::decode(&bytes, is_final) {
        Ok(mut payload) => {
            if let HopPayload::Receive {
                payment_metadata, ..
            } = &mut payload
            {
                // Not kept: nothing reads it, and it may be large.
                *payment_metadata = None;
            }
            let inbound = Inbound::Payload {
                payload,
                shared_secret: Some(shared_secret),
            };
            (inbound, next)
        }
        Err(invalid) => (
            Inbound::Fail {
                code: FailureCode::InvalidOnionPayload,
                data: invalid.failure_data(),
                shared_secret: Some(shared_secret),
            },
            None,
        ),
    }
}
