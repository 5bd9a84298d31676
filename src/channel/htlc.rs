//! The life of one HTLC through the BOLT 2 commitment round trips.
//!
//! An update (add, fulfill, fail) becomes part of a commitment transaction in
//! two half-steps per side: the sender's `commitment_signed` puts it in the
//! receiver's commitment, the receiver's `revoke_and_ack` makes that
//! irrevocable; then the same in the other direction. [`HtlcState`] names the
//! ten states an HTLC passes through in each direction (the naming follows
//! c-lightning's `htlc_state`, which spells out the BOLT 2 rules), and
//! [`HtlcState::presence`] says whether the HTLC is in the local or the remote
//! commitment in each state. The four transition functions are the only way a
//! state changes, one per commitment message sent or received.
//!
//! Invariant used throughout: we never send a second `commitment_signed`
//! before the `revoke_and_ack` for the first, and neither may the peer, so a
//! received `revoke_and_ack` always acknowledges every update in a
//! `*Commit` state.

use bitcoin::secp256k1::{PublicKey, SecretKey};

use crate::message::OnionPacket;
use crate::onion::payload::HopPayload;
use crate::onion::FailureCode;
use crate::types::{ChannelId, NodeId, PaymentHash, PaymentPreimage};

/// Where an HTLC stands in the commitment round trips. `Sent*` and `Rcvd*`
/// name the last message (ours or the peer's) that moved it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HtlcState {
    // --- offered by us: add ---
    /// We sent `update_add_htlc`; in no commitment yet.
    SentAddHtlc,
    /// Our `commitment_signed` put it in the peer's commitment.
    SentAddCommit,
    /// The peer revoked its old commitment: irrevocable on their side.
    RcvdAddRevocation,
    /// The peer's `commitment_signed` put it in our commitment.
    RcvdAddAckCommit,
    /// We revoked our old commitment: irrevocably committed on both sides.
    SentAddAckRevocation,
    // --- offered by us: the peer removes it ---
    /// The peer sent `update_fulfill_htlc`/`update_fail_htlc`.
    RcvdRemoveHtlc,
    /// The peer's `commitment_signed` removed it from our commitment.
    RcvdRemoveCommit,
    /// We revoked the commitment that still held it.
    SentRemoveRevocation,
    /// Our `commitment_signed` removed it from the peer's commitment; the
    /// peer's `revoke_and_ack` ends it.
    SentRemoveAckCommit,
    // --- offered by the peer: add ---
    /// The peer sent `update_add_htlc`.
    RcvdAddHtlc,
    /// The peer's `commitment_signed` put it in our commitment.
    RcvdAddCommit,
    /// We revoked our old commitment.
    SentAddRevocation,
    /// Our `commitment_signed` put it in the peer's commitment.
    SentAddAckCommit,
    /// The peer revoked: irrevocably committed on both sides. Only now may we
    /// forward it, claim it or fail it.
    RcvdAddAckRevocation,
    // --- offered by the peer: we remove it ---
    /// We sent `update_fulfill_htlc`/`update_fail_htlc`.
    SentRemoveHtlc,
    /// Our `commitment_signed` removed it from the peer's commitment.
    SentRemoveCommit,
    /// The peer revoked the commitment that still held it.
    RcvdRemoveRevocation,
    /// The peer's `commitment_signed` removed it from our commitment; our
    /// `revoke_and_ack` ends it.
    RcvdRemoveAckCommit,
}

/// Whether an HTLC is part of a given commitment transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Not added to this commitment yet: the offerer still holds the value.
    NotYet,
    /// An HTLC output of this commitment.
    Present,
    /// Removed from this commitment: its value went to whoever the removal gives it.
    Removed,
}

/// Whether the HTLC ended (the transition took it out of both commitments,
/// both revoked) or goes on in a new state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Still alive, in this state.
    Now(HtlcState),
    /// Gone from both commitments for good: settle its value into the balances.
    Ended,
}

impl HtlcState {
    /// True for HTLCs we offered.
    pub(crate) fn offered_by_us(self) -> bool {
        use HtlcState::*;
        matches!(
            self,
            SentAddHtlc
                | SentAddCommit
                | RcvdAddRevocation
                | RcvdAddAckCommit
                | SentAddAckRevocation
                | RcvdRemoveHtlc
                | RcvdRemoveCommit
                | SentRemoveRevocation
                | SentRemoveAckCommit
        )
    }

    /// Is the HTLC in our (local) commitment?
    pub(crate) fn in_local(self) -> Presence {
        use HtlcState::*;
        match self {
            SentAddHtlc | SentAddCommit | RcvdAddRevocation | RcvdAddHtlc => Presence::NotYet,
            RcvdAddAckCommit | SentAddAckRevocation | RcvdRemoveHtlc => Presence::Present,
            RcvdAddCommit | SentAddRevocation | SentAddAckCommit | RcvdAddAckRevocation => {
                Presence::Present
            }
            SentRemoveHtlc | SentRemoveCommit | RcvdRemoveRevocation => Presence::Present,
            RcvdRemoveCommit | SentRemoveRevocation | SentRemoveAckCommit | RcvdRemoveAckCommit => {
                Presence::Removed
            }
        }
    }

    /// Is the HTLC in the peer's (remote) commitment?
    pub(crate) fn in_remote(self) -> Presence {
        use HtlcState::*;
        match self {
            SentAddHtlc | RcvdAddHtlc | RcvdAddCommit | SentAddRevocation => Presence::NotYet,
            SentAddCommit | RcvdAddRevocation | RcvdAddAckCommit | SentAddAckRevocation => {
                Presence::Present
            }
            RcvdRemoveHtlc | RcvdRemoveCommit | SentRemoveRevocation => Presence::Present,
            SentAddAckCommit | RcvdAddAckRevocation | SentRemoveHtlc => Presence::Present,
            SentRemoveAckCommit | SentRemoveCommit | RcvdRemoveRevocation | RcvdRemoveAckCommit => {
                Presence::Removed
            }
        }
    }

    /// After we send `commitment_signed`.
    pub(crate) fn on_send_commit(self) -> Step {
        use HtlcState::*;
        Step::Now(match self {
            SentAddHtlc => SentAddCommit,
            SentRemoveRevocation => SentRemoveAckCommit,
            SentAddRevocation => SentAddAckCommit,
            SentRemoveHtlc => SentRemoveCommit,
            other => other,
        })
    }

    /// After we receive `commitment_signed`.
    pub(crate) fn on_recv_commit(self) -> Step {
        use HtlcState::*;
        Step::Now(match self {
            RcvdAddHtlc => RcvdAddCommit,
            RcvdRemoveHtlc => RcvdRemoveCommit,
            RcvdAddRevocation => RcvdAddAckCommit,
            RcvdRemoveRevocation => RcvdRemoveAckCommit,
            other => other,
        })
    }

    /// After we send `revoke_and_ack`.
    pub(crate) fn on_send_revoke(self) -> Step {
        use HtlcState::*;
        match self {
            RcvdAddCommit => Step::Now(SentAddRevocation),
            RcvdRemoveCommit => Step::Now(SentRemoveRevocation),
            RcvdAddAckCommit => Step::Now(SentAddAckRevocation),
            RcvdRemoveAckCommit => Step::Ended,
            other => Step::Now(other),
        }
    }

    /// After we receive `revoke_and_ack`.
    pub(crate) fn on_recv_revoke(self) -> Step {
        use HtlcState::*;
        match self {
            SentAddCommit => Step::Now(RcvdAddRevocation),
            SentRemoveCommit => Step::Now(RcvdRemoveRevocation),
            SentAddAckCommit => Step::Now(RcvdAddAckRevocation),
            SentRemoveAckCommit => Step::Ended,
            other => Step::Now(other),
        }
    }

    /// States in which a change waits for our next `commitment_signed`.
    pub(crate) fn awaits_our_commit(self) -> bool {
        use HtlcState::*;
        matches!(
            self,
            SentAddHtlc | SentRemoveRevocation | SentAddRevocation | SentRemoveHtlc
        )
    }

    /// Irrevocably committed on both sides and not being removed: the only
    /// state from which the receiver may fulfill or fail it.
    pub(crate) fn is_removable(self) -> bool {
        matches!(
            self,
            HtlcState::SentAddAckRevocation | HtlcState::RcvdAddAckRevocation
        )
    }

    /// The state's number in stored records (never reorder).
    pub(crate) fn to_u8(self) -> u8 {
        use HtlcState::*;
        match self {
            SentAddHtlc => 0,
            SentAddCommit => 1,
            RcvdAddRevocation => 2,
            RcvdAddAckCommit => 3,
            SentAddAckRevocation => 4,
            RcvdRemoveHtlc => 5,
            RcvdRemoveCommit => 6,
            SentRemoveRevocation => 7,
            SentRemoveAckCommit => 8,
            RcvdAddHtlc => 9,
            RcvdAddCommit => 10,
            SentAddRevocation => 11,
            SentAddAckCommit => 12,
            RcvdAddAckRevocation => 13,
            SentRemoveHtlc => 14,
            SentRemoveCommit => 15,
            RcvdRemoveRevocation => 16,
            RcvdRemoveAckCommit => 17,
        }
    }

    /// The state a stored number names.
    pub(crate) fn from_u8(n: u8) -> Option<Self> {
        use HtlcState::*;
        Some(match n {
            0 => SentAddHtlc,
            1 => SentAddCommit,
            2 => RcvdAddRevocation,
            3 => RcvdAddAckCommit,
            4 => SentAddAckRevocation,
            5 => RcvdRemoveHtlc,
            6 => RcvdRemoveCommit,
            7 => SentRemoveRevocation,
            8 => SentRemoveAckCommit,
            9 => RcvdAddHtlc,
            10 => RcvdAddCommit,
            11 => SentAddRevocation,
            12 => SentAddAckCommit,
            13 => RcvdAddAckRevocation,
            14 => SentRemoveHtlc,
            15 => SentRemoveCommit,
            16 => RcvdRemoveRevocation,
            17 => RcvdRemoveAckCommit,
            _ => return None,
        })
    }

    /// Short lower-case name for test messages.
    #[cfg(test)]
    pub(crate) fn name(self) -> &'static str {
        use HtlcState::*;
        match self {
            SentAddHtlc => "sent_add_htlc",
            SentAddCommit => "sent_add_commit",
            RcvdAddRevocation => "rcvd_add_revocation",
            RcvdAddAckCommit => "rcvd_add_ack_commit",
            SentAddAckRevocation => "sent_add_ack_revocation",
            RcvdRemoveHtlc => "rcvd_remove_htlc",
            RcvdRemoveCommit => "rcvd_remove_commit",
            SentRemoveRevocation => "sent_remove_revocation",
            SentRemoveAckCommit => "sent_remove_ack_commit",
            RcvdAddHtlc => "rcvd_add_htlc",
            RcvdAddCommit => "rcvd_add_commit",
            SentAddRevocation => "sent_add_revocation",
            SentAddAckCommit => "sent_add_ack_commit",
            RcvdAddAckRevocation => "rcvd_add_ack_revocation",
            SentRemoveHtlc => "sent_remove_htlc",
            SentRemoveCommit => "sent_remove_commit",
            RcvdRemoveRevocation => "rcvd_remove_revocation",
            RcvdRemoveAckCommit => "rcvd_remove_ack_commit",
        }
    }

    /// Every state, for exhaustive tests.
    #[cfg(test)]
    pub(crate) const ALL: [HtlcState; 18] = {
        use HtlcState::*;
        [
            SentAddHtlc,
            SentAddCommit,
            RcvdAddRevocation,
            RcvdAddAckCommit,
            SentAddAckRevocation,
            RcvdRemoveHtlc,
            RcvdRemoveCommit,
            SentRemoveRevocation,
            SentRemoveAckCommit,
            RcvdAddHtlc,
            RcvdAddCommit,
            SentAddRevocation,
            SentAddAckCommit,
            RcvdAddAckRevocation,
            SentRemoveHtlc,
            SentRemoveCommit,
            RcvdRemoveRevocation,
            RcvdRemoveAckCommit,
        ]
    };
}

/// How an HTLC is being removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Claimed with the preimage: the value goes to the receiver.
    Fulfill(PaymentPreimage),
    /// Failed: the value returns to the offerer. The bytes are the
    /// `update_fail_htlc` reason (a failure onion).
    Fail(Vec<u8>),
    /// Failed because the receiver could not read the onion
    /// (`update_fail_malformed_htlc`): the value returns to the offerer.
    Malformed {
        /// A BADONION failure code.
        code: u16,
        /// SHA256 of the onion that could not be read.
        sha256_of_onion: [u8; 32],
    },
}

/// Why we offered an HTLC: our own payment or a forward of an incoming one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HtlcSource {
    /// A payment we started; `fee_msat` is what the route pays in fees.
    Local {
        /// Total routing fees included in the amount.
        fee_msat: u64,
        /// What reads a failure onion that comes back: the session key the
        /// onion was built with and the route's nodes (every hop's shared
        /// secret follows from them). `None` for a payment stored by
        /// version 0.1, whose failures were plaintext codes.
        onion_keys: Option<SessionKeys>,
    },
    /// A forward of an HTLC that came in on another channel.
    Forwarded(PrevHop),
}

/// A local payment's onion session key and route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionKeys {
    /// The onion's session key.
    pub(crate) session_key: SecretKey,
    /// The node of every hop, first hop first.
    pub(crate) path: Vec<PublicKey>,
}

/// The incoming side of a forwarded HTLC, where its resolution must go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PrevHop {
    /// The peer the HTLC came from.
    pub(crate) node_id: NodeId,
    /// The incoming channel.
    pub(crate) channel_id: ChannelId,
    /// The HTLC's id on the incoming channel.
    pub(crate) htlc_id: u64,
    /// What came in (the forward kept `incoming - outgoing` as its fee).
    pub(crate) amount_msat: u64,
}

/// What we know about an HTLC offered by the peer: what its onion told us,
/// kept small (its payload and shared secret, never the 1366-byte packet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// Its onion's payload for us, read when it arrived. The onion to pass
    /// on, if it is a forward, is the HTLC's [`Htlc::onion`].
    Payload {
        /// The decoded payload (`payment_metadata` is not kept).
        payload: HopPayload,
        /// The shared secret with the sender, to build or wrap a failure
        /// onion with; `None` for an HTLC stored by version 0.1.
        shared_secret: Option<[u8; 32]>,
    },
    /// It will be failed back with this failure once irrevocably
    /// committed: its payload is not valid, or taking it would break one
    /// of our limits that the peer cannot know (dust exposure).
    Fail {
        /// The failure code.
        code: FailureCode,
        /// Its data.
        data: Vec<u8>,
        /// As in [`Inbound::Payload`].
        shared_secret: Option<[u8; 32]>,
    },
    /// Its onion could not be read (version, key or HMAC): it will be
    /// failed back with `update_fail_malformed_htlc` once committed.
    Malformed {
        /// The BADONION code.
        code: u16,
        /// SHA256 of the onion.
        sha256_of_onion: [u8; 32],
    },
}

impl Inbound {
    /// Whether it is a payment to us.
    pub(crate) fn pays_us(&self) -> bool {
        matches!(
            self,
            Inbound::Payload {
                payload: HopPayload::Receive { .. },
                ..
            }
        )
    }

    /// The secret and total of a payment to us, as its onion named them
    /// (`None` for a forward, or a payment stored by version 0.1).
    pub(crate) fn payment_data(&self) -> Option<crate::onion::payload::PaymentData> {
        match self {
            Inbound::Payload {
                payload: HopPayload::Receive { payment_data, .. },
                ..
            } => *payment_data,
            _ => None,
        }
    }

    /// The shared secret with the sender, if we have one.
    pub(crate) fn shared_secret(&self) -> Option<&[u8; 32]> {
        match self {
            Inbound::Payload { shared_secret, .. } | Inbound::Fail { shared_secret, .. } => {
                shared_secret.as_ref()
            }
            Inbound::Malformed { .. } => None,
        }
    }
}

/// Direction-specific details of an HTLC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HtlcKind {
    /// We offered it.
    Offered {
        /// Why.
        source: HtlcSource,
        /// Its fulfill was already passed on. A fulfill the peer sends again
        /// after a reconnection (BOLT 2 makes us forget uncommitted ones) must
        /// not be passed on twice, and a fail after it must not be passed on
        /// at all (the preimage is proof of payment).
        fulfill_reported: bool,
    },
    /// The peer offered it.
    Received(Inbound),
}

/// One HTLC in a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Htlc {
    /// Id, unique per direction (each side counts from 0).
    pub(crate) id: u64,
    /// Value in millisatoshi.
    pub(crate) amount_msat: u64,
    /// The hash that locks it.
    pub(crate) payment_hash: PaymentHash,
    /// Absolute block height at which the offerer may take it back.
    pub(crate) cltv_expiry: u32,
    /// Where it stands in the commitment round trips.
    pub(crate) state: HtlcState,
    /// How it is being removed, once a fulfill/fail has been sent or received.
    pub(crate) removal: Option<Removal>,
    /// Offered or received, with the details of each.
    pub(crate) kind: HtlcKind,
    /// For an HTLC we offered, the onion we sent, kept until the peer has
    /// irrevocably committed the add (it is sent again after a
    /// reconnection). For one we received and must forward, the onion for
    /// the next hop, kept until the forward is decided (it then travels
    /// with the forward). Persisted as its own record, written once.
    pub(crate) onion: Option<OnionPacket>,
}

impl Htlc {
    /// Whether we offered it.
    pub(crate) fn offered(&self) -> bool {
        matches!(self.kind, HtlcKind::Offered { .. })
    }

    /// Whether the removal (if any) gives the value to the receiver.
    pub(crate) fn is_fulfilled(&self) -> bool {
        matches!(self.removal, Some(Removal::Fulfill(_)))
    }

    /// The state this HTLC has on disk: the state after a disconnection,
    /// which makes BOLT 2 forget the peer's updates that no
    /// `commitment_signed` covered. `None` for an add the peer has not
    /// signed yet: it is never persisted, so a peer cannot make us write by
    /// sending updates it never commits to.
    pub(crate) fn durable_state(&self) -> Option<(HtlcState, Option<&Removal>)> {
        match self.state {
            HtlcState::RcvdAddHtlc => None,
            HtlcState::RcvdRemoveHtlc => Some((HtlcState::SentAddAckRevocation, None)),
            state => Some((state, self.removal.as_ref())),
        }
    }

    /// A fingerprint of the durable record ([`Htlc::durable_state`], the
    /// flags, whether an onion is kept): it changes whenever the record's
    /// bytes do (everything else in the record never changes).
    pub(crate) fn durable_fingerprint(&self) -> Option<u32> {
        let (state, removal) = self.durable_state()?;
        let removal_tag = match removal {
            None => 0,
            Some(Removal::Fulfill(_)) => 1,
            Some(Removal::Fail(_)) => 2,
            Some(Removal::Malformed { .. }) => 3,
        };
        let reported = matches!(
            self.kind,
            HtlcKind::Offered {
                fulfill_reported: true,
                ..
            }
        );
        Some(
            u32::from(state.to_u8())
                | removal_tag << 8
                | u32::from(reported) << 11
                | u32::from(self.onion.is_some()) << 12,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HtlcState::*;

    /// Walks a full life and checks presence at each step.
    fn walk(start: HtlcState, events: &[fn(HtlcState) -> Step]) -> Vec<HtlcState> {
        let mut states = vec![start];
        let mut s = start;
        for ev in events {
            match ev(s) {
                Step::Now(n) => {
                    s = n;
                    states.push(n)
                }
                Step::Ended => break,
            }
        }
        states
    }

    #[test]
    fn offered_htlc_life_follows_bolt2_order() {
        // add: we send cs, recv raa, recv cs, send raa; remove: recv cs, send raa, send cs, recv raa.
        let life = walk(
            SentAddHtlc,
            &[
                HtlcState::on_send_commit,
                HtlcState::on_recv_revoke,
                HtlcState::on_recv_commit,
                HtlcState::on_send_revoke,
            ],
        );
        assert_eq!(
            life,
            [
                SentAddHtlc,
                SentAddCommit,
                RcvdAddRevocation,
                RcvdAddAckCommit,
                SentAddAckRevocation
            ]
        );
        let removal = walk(
            RcvdRemoveHtlc,
            &[
                HtlcState::on_recv_commit,
                HtlcState::on_send_revoke,
                HtlcState::on_send_commit,
                HtlcState::on_recv_revoke,
            ],
        );
        assert_eq!(
            removal,
            [
                RcvdRemoveHtlc,
                RcvdRemoveCommit,
                SentRemoveRevocation,
                SentRemoveAckCommit
            ]
        );
        assert_eq!(SentRemoveAckCommit.on_recv_revoke(), Step::Ended);
    }

    #[test]
    fn received_htlc_life_mirrors_offered() {
        let life = walk(
            RcvdAddHtlc,
            &[
                HtlcState::on_recv_commit,
                HtlcState::on_send_revoke,
                HtlcState::on_send_commit,
                HtlcState::on_recv_revoke,
            ],
        );
        assert_eq!(
            life,
            [
                RcvdAddHtlc,
                RcvdAddCommit,
                SentAddRevocation,
                SentAddAckCommit,
                RcvdAddAckRevocation
            ]
        );
        assert_eq!(RcvdRemoveAckCommit.on_send_revoke(), Step::Ended);
    }

    #[test]
    fn presence_mirrors_between_sides() {
        // The peer's view of an HTLC is ours with local/remote and sent/rcvd swapped.
        let mirror = |s: HtlcState| -> HtlcState {
            let i = HtlcState::ALL.iter().position(|x| *x == s).unwrap();
            HtlcState::ALL[(i + 9) % 18]
        };
        for s in HtlcState::ALL {
            assert_eq!(s.in_local(), mirror(s).in_remote(), "{}", s.name());
            assert_eq!(s.in_remote(), mirror(s).in_local(), "{}", s.name());
            assert_eq!(s.offered_by_us(), !mirror(s).offered_by_us());
        }
    }

    #[test]
    fn each_commit_adds_then_removes_monotonically() {
        // Along a life, presence in each commitment goes NotYet -> Present -> Removed, never back.
        let rank = |p: Presence| match p {
            Presence::NotYet => 0,
            Presence::Present => 1,
            Presence::Removed => 2,
        };
        for order in [&HtlcState::ALL[..9], &HtlcState::ALL[9..]] {
            for pair in order.windows(2) {
                assert!(rank(pair[0].in_local()) <= rank(pair[1].in_local()));
                assert!(rank(pair[0].in_remote()) <= rank(pair[1].in_remote()));
            }
        }
    }
}
