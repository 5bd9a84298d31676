//! What the adversary (and the honest traffic around it) can do, as plain
//! data: [`Action`]. `tests/adversarial.rs` generates actions with proptest
//! (so shrinking prints readable counterexamples); the fuzz target decodes
//! them from raw bytes with [`decode_actions`]. [`apply`] plays one.
#![allow(dead_code)]

use bitcoin::constants::ChainHash;
use bitcoin::hashes::Hash;
use bitcoin::{Network, OutPoint, ScriptBuf, Txid};
use chanstore::features::Features;
use chanstore::message::{
    AcceptChannel, ChannelReady, ChannelReestablish, ChannelUpdate, ClosingSigned,
    CommitmentSigned, ErrorMessage, FundingCreated, FundingSigned, OpenChannel, RevokeAndAck,
    Shutdown, UpdateAddHtlc, UpdateFailHtlc, UpdateFailMalformedHtlc, UpdateFee, UpdateFulfillHtlc,
};
use chanstore::onion::payload::{HopPayload, PaymentData};

use crate::common::{onion_for, secret_for};
use chanstore::{ChannelId, Message, PaymentPreimage, ShortChannelId};

use crate::world::{secret, World, A, AH, B, C, CH, HB, HEIGHT, HM, HUB, M, MH, SEEDS};

/// One step.
#[derive(Clone, Debug)]
pub enum Action {
    // --- honest traffic ---
    /// An honest payment (refused ones change nothing).
    Pay {
        route: HonestRoute,
        amount_msat: u64,
    },
    /// Delivers up to `count` honest messages.
    Deliver { count: u8 },
    /// Runs the forward queues.
    Forward,
    /// Recipients claim (or fail) what they received.
    Settle { claim: bool },
    /// Cuts a connection to the hub and reconnects it.
    Reconnect { who: Who },
    // --- Mallory, with her real store ---
    /// Mallory pays the hub, or someone through the hub.
    MalloryPay { to: PayTo, amount_msat: u64 },
    /// Delivers Mallory's messages, reordered by `skip`.
    MalloryDeliver { count: u8, skip: u8 },
    /// Mallory opens another channel.
    MalloryOpen { funding_sat: u64 },
    /// Mallory funds it at `outpoint`.
    MalloryFund { outpoint: OutpointPick },
    /// The hub opens another channel to Mallory.
    HubOpen { funding_sat: u64 },
    /// Funded channels with Mallory confirm.
    Confirm,
    /// The hub's operator closes one of Mallory's channels.
    HubClose { target: Target, force: bool },
    /// The hub proposes a new feerate on one of Mallory's channels.
    HubUpdateFee { target: Target, feerate: u32 },
    // --- hostile messages ---
    /// A message built from scratch.
    Forge { from: Sender, msg: Forged },
    /// A message seen earlier on some connection, maybe for another channel.
    Replay {
        from: Sender,
        index: u16,
        retarget: Option<Target>,
    },
    /// A message seen earlier with one byte flipped (sent if it decodes).
    Mutate {
        from: Sender,
        index: u16,
        pos: u16,
        xor: u8,
    },
    /// Arbitrary bytes (sent if they decode).
    Raw { from: Sender, bytes: Vec<u8> },
}

/// Honest payments.
#[derive(Clone, Copy, Debug)]
pub enum HonestRoute {
    AToHub,
    AToB,
    BToA,
    CToHub,
    HubToB,
    HubToC,
    /// To Mallory, who may never settle it: it ends at most once.
    HubToMallory,
    /// B through the hub to Mallory: likewise.
    BToMallory,
}

/// Whom Mallory pays.
#[derive(Clone, Copy, Debug)]
pub enum PayTo {
    Hub,
    /// B, through the hub.
    B,
    /// Herself, through the hub (in on one of her channels, out on the other).
    Herself,
}

/// Whose connection to cut.
#[derive(Clone, Copy, Debug)]
pub enum Who {
    A,
    B,
    C,
    Mallory,
    Eve,
}

/// Who sends a hostile message.
#[derive(Clone, Copy, Debug)]
pub enum Sender {
    /// Has real channels with the hub.
    Mallory,
    /// Connected, no funded channel.
    Eve,
    /// Never connected.
    Unknown,
}

/// A channel id the adversary names.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    AHub,
    HubB,
    CHub,
    MHub,
    HubM,
    /// The last channel Mallory opened.
    MNew,
    /// The temporary id of the last channel the hub opened to Mallory.
    HubTemp,
    /// A small made-up id (`[n; 32]`, n in 1..=4), e.g. a forged temporary id.
    Temp(u8),
    /// All zero (BOLT 1: every channel, in an `error`).
    Zero,
}

/// A funding outpoint.
#[derive(Clone, Copy, Debug)]
pub enum OutpointPick {
    Fresh,
    /// The funding outpoint of an existing channel.
    Of(Target),
    /// One whose channel id is `Target::Temp(n)`.
    MatchingTemp(u8),
}

/// A hostile message, with the field values that matter.
#[derive(Clone, Debug)]
pub enum Forged {
    /// `bad` picks one parameter to make unacceptable (0: none).
    Open {
        temp: Target,
        funding_sat: u64,
        push_msat: u64,
        bad: u8,
    },
    Accept {
        temp: Target,
        bad: u8,
    },
    FundingCreated {
        temp: Target,
        outpoint: OutpointPick,
    },
    FundingSigned {
        chan: Target,
    },
    ChannelReady {
        chan: Target,
    },
    /// `cltv` and `onion` pick among expired/valid/absurd expiries and
    /// final/forward/garbage onions; `hash` reuses a known payment hash.
    Add {
        chan: Target,
        id: u64,
        amount_msat: u64,
        cltv: u8,
        onion: u8,
        hash: u8,
    },
    Fulfill {
        chan: Target,
        id: u64,
        preimage: u8,
    },
    Fail {
        chan: Target,
        id: u64,
        reason_len: u8,
    },
    /// `update_fail_malformed_htlc`, its code with or without BADONION.
    FailMalformed {
        chan: Target,
        id: u64,
        code: u16,
    },
    /// Signatures that are valid, but by the wrong key on the wrong message.
    CommitmentSigned {
        chan: Target,
        htlc_sigs: u8,
    },
    RevokeAndAck {
        chan: Target,
        secret: u8,
    },
    UpdateFee {
        chan: Target,
        feerate: u32,
    },
    Shutdown {
        chan: Target,
        script: u8,
    },
    ClosingSigned {
        chan: Target,
        fee_sat: u64,
    },
    Reestablish {
        chan: Target,
        next_commitment_number: u64,
        next_revocation_number: u64,
        secret: u8,
    },
    Error {
        chan: Target,
        data_len: u8,
    },
    /// `channel_update` naming `chan`'s short channel id, signed by node
    /// `signer` (Mallory's own key among them), on our chain or not, with
    /// the direction bit as it should be for the sender or flipped.
    ChannelUpdate {
        chan: Target,
        signer: u8,
        other_chain: bool,
        flip_direction: bool,
        timestamp: u32,
        fee_base_msat: u32,
    },
}

impl World {
    fn target(&self, t: Target) -> ChannelId {
        match t {
            Target::AHub => self.chans[AH].id,
            Target::HubB => self.chans[HB].id,
            Target::CHub => self.chans[CH].id,
            Target::MHub => self.chans[MH].id,
            Target::HubM => self.chans[HM].id,
            Target::MNew => self.m_new.unwrap_or(ChannelId([0xaa; 32])),
            Target::HubTemp => self.hub_temp.unwrap_or(ChannelId([0xbb; 32])),
            Target::Temp(n) => ChannelId([n % 4 + 1; 32]),
            Target::Zero => ChannelId([0; 32]),
        }
    }

    fn outpoint(&mut self, pick: OutpointPick) -> OutPoint {
        let known = |t| match t {
            Target::AHub => Some(AH),
            Target::HubB => Some(HB),
            Target::CHub => Some(CH),
            Target::MHub => Some(MH),
            Target::HubM => Some(HM),
            _ => None,
        };
        match pick {
            OutpointPick::Of(t) if known(t).is_some() => self.chans[known(t).unwrap()].outpoint,
            OutpointPick::MatchingTemp(n) => {
                OutPoint::new(Txid::from_byte_array([n % 4 + 1; 32]), 0)
            }
            _ => self.fresh_outpoint(0xd0),
        }
    }

    fn sender(&self, s: Sender) -> bitcoin::secp256k1::PublicKey {
        match s {
            Sender::Mallory => self.ids[M],
            Sender::Eve => self.eve,
            Sender::Unknown => self.unknown,
        }
    }

    fn forge(&mut self, f: &Forged) -> Message {
        let key = |n: usize| self.keys[n % self.keys.len()];
        let sig = self.foreign_sig;
        match *f {
            Forged::Open {
                temp,
                funding_sat,
                push_msat,
                bad,
            } => Message::OpenChannel(OpenChannel {
                chain_hash: ChainHash::using_genesis_block(if bad == 1 {
                    Network::Bitcoin
                } else {
                    Network::Regtest
                }),
                temporary_channel_id: self.target(temp),
                funding_satoshis: funding_sat,
                push_msat,
                dust_limit_satoshis: if bad == 2 { 100 } else { 354 },
                max_htlc_value_in_flight_msat: u64::MAX,
                channel_reserve_satoshis: if bad == 3 {
                    funding_sat
                } else {
                    (funding_sat / 100).max(354)
                },
                htlc_minimum_msat: if bad == 4 { u64::MAX } else { 1 },
                feerate_per_kw: match bad {
                    5 => u32::MAX,
                    6 => 0,
                    _ => 253,
                },
                to_self_delay: if bad == 7 { u16::MAX } else { 144 },
                max_accepted_htlcs: match bad {
                    8 => 0,
                    9 => u16::MAX,
                    _ => 483,
                },
                funding_pubkey: key(0),
                revocation_basepoint: key(1),
                payment_basepoint: key(2),
                delayed_payment_basepoint: key(3),
                htlc_basepoint: key(4),
                first_per_commitment_point: key(5),
                channel_flags: bad,
                shutdown_scriptpubkey: Some(ScriptBuf::new()),
                channel_type: Some(if bad == 10 {
                    // static_remotekey + anchors: not a type we build.
                    Features::from_bits(&[12, 22])
                } else {
                    Features::static_remotekey_channel()
                }),
            }),
            Forged::Accept { temp, bad } => Message::AcceptChannel(AcceptChannel {
                temporary_channel_id: self.target(temp),
                dust_limit_satoshis: if bad == 1 { 0 } else { 354 },
                max_htlc_value_in_flight_msat: u64::MAX,
                channel_reserve_satoshis: if bad == 2 { u64::MAX } else { 1_000 },
                htlc_minimum_msat: 1,
                minimum_depth: if bad == 3 { u32::MAX } else { 3 },
                to_self_delay: 144,
                max_accepted_htlcs: if bad == 4 { 0 } else { 483 },
                funding_pubkey: key(0),
                revocation_basepoint: key(1),
                payment_basepoint: key(2),
                delayed_payment_basepoint: key(3),
                htlc_basepoint: key(4),
                first_per_commitment_point: key(5),
                shutdown_scriptpubkey: None,
                channel_type: (bad == 5).then(|| Features::from_bits(&[])),
            }),
            Forged::FundingCreated { temp, outpoint } => {
                let outpoint = self.outpoint(outpoint);
                Message::FundingCreated(FundingCreated {
                    temporary_channel_id: self.target(temp),
                    funding_txid: outpoint.txid,
                    funding_output_index: outpoint.vout as u16,
                    signature: sig,
                })
            }
            Forged::FundingSigned { chan } => Message::FundingSigned(FundingSigned {
                channel_id: self.target(chan),
                signature: sig,
            }),
            Forged::ChannelReady { chan } => Message::ChannelReady(ChannelReady {
                channel_id: self.target(chan),
                second_per_commitment_point: key(6),
            }),
            Forged::Add {
                chan,
                id,
                amount_msat,
                cltv,
                onion,
                hash,
            } => {
                let cltv_expiry = match cltv % 5 {
                    0 => HEIGHT,
                    1 => u32::MAX,
                    2 => 500_000_000,
                    3 => HEIGHT + 300,
                    _ => HEIGHT + 40,
                };
                let payment_hash = match self.known_preimage(hash as usize) {
                    Some(p) if hash % 2 == 0 => p.payment_hash(),
                    _ => PaymentPreimage([hash; 32]).payment_hash(),
                };
                let hop = |scid: Option<ShortChannelId>, amt_to_forward| HopPayload::Forward {
                    // An unknown channel when `None`.
                    short_channel_id: scid
                        .unwrap_or_else(|| ShortChannelId::new(9_999, 9, 9).unwrap()),
                    amt_to_forward,
                    outgoing_cltv_value: cltv_expiry.saturating_sub(80),
                };
                let half = amount_msat / 2;
                let (hb, hm, mh) = (
                    self.chans[HB].scid,
                    self.chans[HM].scid,
                    self.chans[MH].scid,
                );
                let payload = match onion % 8 {
                    // Forwards: a fair fee, nothing left to forward, no fee,
                    // an unknown channel.
                    0 => hop(Some(hb), half),
                    1 => hop(Some(hm), half),
                    2 => hop(Some(hm), 0),
                    3 => hop(Some(mh), amount_msat),
                    4 => hop(ShortChannelId::new(9_999, 9, 9), half),
                    // For the hub: with its invoice's secret, or (7) without.
                    _ => HopPayload::Receive {
                        amt_to_forward: amount_msat,
                        outgoing_cltv_value: cltv_expiry,
                        payment_data: (onion % 8 != 7).then(|| PaymentData {
                            payment_secret: secret_for(&self.ids[HUB], payment_hash),
                            total_msat: amount_msat,
                        }),
                        payment_metadata: None,
                    },
                };
                let mut packet = onion_for(&[(self.ids[HUB], payload)], payment_hash);
                if onion % 8 == 5 {
                    packet.0[0] = 0xff; // unknown version
                }
                Message::UpdateAddHtlc(UpdateAddHtlc {
                    channel_id: self.target(chan),
                    id,
                    amount_msat,
                    payment_hash,
                    cltv_expiry,
                    onion_routing_packet: packet,
                })
            }
            Forged::Fulfill { chan, id, preimage } => {
                let payment_preimage = match self.known_preimage(preimage as usize) {
                    Some(p) if preimage % 4 != 3 => p,
                    _ => PaymentPreimage([preimage; 32]),
                };
                Message::UpdateFulfillHtlc(UpdateFulfillHtlc {
                    channel_id: self.target(chan),
                    id,
                    payment_preimage,
                })
            }
            Forged::Fail {
                chan,
                id,
                reason_len,
            } => Message::UpdateFailHtlc(UpdateFailHtlc {
                channel_id: self.target(chan),
                id,
                reason: vec![0x40; usize::from(reason_len) * 8],
            }),
            Forged::FailMalformed { chan, id, code } => {
                Message::UpdateFailMalformedHtlc(UpdateFailMalformedHtlc {
                    channel_id: self.target(chan),
                    id,
                    sha256_of_onion: [0x5c; 32],
                    failure_code: code,
                })
            }
            Forged::CommitmentSigned { chan, htlc_sigs } => {
                Message::CommitmentSigned(CommitmentSigned {
                    channel_id: self.target(chan),
                    signature: sig,
                    htlc_signatures: vec![sig; usize::from(htlc_sigs)],
                })
            }
            Forged::RevokeAndAck { chan, secret } => Message::RevokeAndAck(RevokeAndAck {
                channel_id: self.target(chan),
                per_commitment_secret: secret_bytes(secret),
                next_per_commitment_point: key(7),
            }),
            Forged::UpdateFee { chan, feerate } => Message::UpdateFee(UpdateFee {
                channel_id: self.target(chan),
                feerate_per_kw: feerate,
            }),
            Forged::Shutdown { chan, script } => Message::Shutdown(Shutdown {
                channel_id: self.target(chan),
                scriptpubkey: match script % 4 {
                    0 => {
                        let mut s = vec![0x00, 0x14];
                        s.extend_from_slice(&[0x33; 20]);
                        ScriptBuf::from_bytes(s)
                    }
                    1 => ScriptBuf::new(),
                    2 => ScriptBuf::from_bytes(vec![0x6a, 0x01, 0x00]),
                    _ => ScriptBuf::from_bytes(vec![0x51; 300]),
                },
            }),
            Forged::ClosingSigned { chan, fee_sat } => Message::ClosingSigned(ClosingSigned {
                channel_id: self.target(chan),
                fee_satoshis: fee_sat,
                signature: sig,
                fee_range: None,
            }),
            Forged::Reestablish {
                chan,
                next_commitment_number,
                next_revocation_number,
                secret,
            } => Message::ChannelReestablish(ChannelReestablish {
                channel_id: self.target(chan),
                next_commitment_number,
                next_revocation_number,
                your_last_per_commitment_secret: secret_bytes(secret),
                my_current_per_commitment_point: key(8),
            }),
            Forged::Error { chan, data_len } => Message::Error(ErrorMessage {
                channel_id: self.target(chan),
                data: vec![b'!'; usize::from(data_len)],
            }),
            Forged::ChannelUpdate {
                chan,
                signer,
                other_chain,
                flip_direction,
                timestamp,
                fee_base_msat,
            } => {
                let id = self.target(chan);
                let scid = self
                    .chans
                    .iter()
                    .find(|c| c.id == id)
                    .map_or(ShortChannelId::from_u64(u64::from(id.0[0])), |c| c.scid);
                let network = if other_chain {
                    Network::Bitcoin
                } else {
                    Network::Regtest
                };
                let mut u = ChannelUpdate::unsigned(ChainHash::using_genesis_block(network), scid);
                u.timestamp = timestamp;
                u.fee_base_msat = fee_base_msat;
                u.htlc_maximum_msat = 1_000_000;
                // Mallory is node_2 when her key is the greater.
                let mallory_is_2 = self.ids[M].serialize() > self.ids[HUB].serialize();
                if mallory_is_2 != flip_direction {
                    u.channel_flags = 1;
                }
                let signer = usize::from(signer) % SEEDS.len();
                u.sign(&secret(SEEDS[signer]));
                Message::ChannelUpdate(u)
            }
        }
    }
}

/// 32 bytes for a secret field: zero, not a valid scalar, or small patterns.
fn secret_bytes(n: u8) -> [u8; 32] {
    match n % 4 {
        0 => [0; 32],
        1 => [0xff; 32],
        _ => [n; 32],
    }
}

/// `msg` about channel `id` instead.
fn retarget(mut msg: Message, id: ChannelId) -> Message {
    match &mut msg {
        Message::OpenChannel(m) => m.temporary_channel_id = id,
        Message::AcceptChannel(m) => m.temporary_channel_id = id,
        Message::FundingCreated(m) => m.temporary_channel_id = id,
        Message::FundingSigned(m) => m.channel_id = id,
        Message::ChannelReady(m) => m.channel_id = id,
        Message::UpdateFailMalformedHtlc(m) => m.channel_id = id,
        Message::UpdateAddHtlc(m) => m.channel_id = id,
        Message::UpdateFulfillHtlc(m) => m.channel_id = id,
        Message::UpdateFailHtlc(m) => m.channel_id = id,
        Message::CommitmentSigned(m) => m.channel_id = id,
        Message::RevokeAndAck(m) => m.channel_id = id,
        Message::UpdateFee(m) => m.channel_id = id,
        Message::Shutdown(m) => m.channel_id = id,
        Message::ClosingSigned(m) => m.channel_id = id,
        Message::ChannelReestablish(m) => m.channel_id = id,
        Message::Error(m) => m.channel_id = id,
        Message::Warning(m) => m.channel_id = id,
        Message::Init(_) | Message::Ping(_) | Message::Pong(_) => {}
        // Names its channel by short channel id (and is signed): replayed as is.
        Message::ChannelUpdate(_) => {}
    }
    msg
}

/// Plays one action, then checks every store invariant.
pub fn apply(w: &mut World, action: &Action) {
    match action {
        Action::Pay {
            route:
                route @ (HonestRoute::AToHub
                | HonestRoute::AToB
                | HonestRoute::BToA
                | HonestRoute::CToHub
                | HonestRoute::HubToB
                | HonestRoute::HubToC),
            amount_msat,
        } => {
            let amount = *amount_msat;
            let (payer, route) = match route {
                HonestRoute::AToHub => (A, w.route(AH, None, amount)),
                HonestRoute::AToB => (A, w.route(AH, Some((B, HB)), amount)),
                HonestRoute::BToA => (B, w.route(HB, Some((A, AH)), amount)),
                HonestRoute::CToHub => (C, w.route(CH, None, amount)),
                HonestRoute::HubToB => (
                    HUB,
                    chanstore::Route {
                        hops: vec![w.hop(B, HB, 0, 0)],
                    },
                ),
                _ => (
                    HUB,
                    chanstore::Route {
                        hops: vec![w.hop(C, CH, 0, 0)],
                    },
                ),
            };
            w.pay(payer, &route, amount, true);
        }
        Action::Pay {
            route: HonestRoute::HubToMallory,
            amount_msat,
        } => {
            let route = chanstore::Route {
                hops: vec![w.hop(M, HM, 0, 0)],
            };
            w.pay(HUB, &route, *amount_msat, false);
        }
        Action::Pay {
            route: HonestRoute::BToMallory,
            amount_msat,
        } => {
            let route = w.route(HB, Some((M, MH)), *amount_msat);
            w.pay(B, &route, *amount_msat, false);
        }
        Action::Deliver { count } => w.deliver(usize::from(*count)),
        Action::Forward => w.forward(),
        Action::Settle { claim } => w.settle(*claim),
        Action::Reconnect { who } => w.reconnect(match who {
            Who::A => Some(A),
            Who::B => Some(B),
            Who::C => Some(C),
            Who::Mallory => Some(M),
            Who::Eve => None,
        }),
        Action::MalloryPay { to, amount_msat } => {
            let onward = match to {
                PayTo::Hub => None,
                PayTo::B => Some((B, HB)),
                PayTo::Herself => Some((M, HM)),
            };
            let route = w.route(MH, onward, *amount_msat);
            w.pay(M, &route, *amount_msat, false);
        }
        Action::MalloryDeliver { count, skip } => {
            w.mallory_deliver(usize::from(*count), usize::from(*skip))
        }
        Action::MalloryOpen { funding_sat } => w.mallory_open(*funding_sat),
        Action::MalloryFund { outpoint } => {
            let outpoint = w.outpoint(*outpoint);
            w.mallory_fund(outpoint);
        }
        Action::HubOpen { funding_sat } => w.hub_open(*funding_sat),
        Action::Confirm => w.confirm(),
        Action::HubClose { target, force } => {
            let id = w.target(*target);
            w.hub_acts(id, |hub, id| {
                let _ = if *force {
                    hub.force_close_channel(id)
                } else {
                    hub.close_channel(id)
                };
            });
        }
        Action::HubUpdateFee { target, feerate } => {
            let id = w.target(*target);
            w.hub_acts(id, |hub, id| {
                let _ = hub.update_fee(id, *feerate);
            });
        }
        Action::Forge { from, msg } => {
            let msg = w.forge(msg);
            let from = w.sender(*from);
            w.inject(from, msg);
        }
        Action::Replay {
            from,
            index,
            retarget: target,
        } => {
            if w.captured.is_empty() {
                return;
            }
            let mut msg = w.captured[usize::from(*index) % w.captured.len()].clone();
            if let Some(t) = target {
                msg = retarget(msg, w.target(*t));
            }
            let from = w.sender(*from);
            w.inject(from, msg);
        }
        Action::Mutate {
            from,
            index,
            pos,
            xor,
        } => {
            if w.captured.is_empty() {
                return;
            }
            let mut bytes = w.captured[usize::from(*index) % w.captured.len()].encode();
            let at = usize::from(*pos) % bytes.len();
            bytes[at] ^= (*xor).max(1);
            if let Ok(msg) = Message::decode(&bytes) {
                let from = w.sender(*from);
                w.inject(from, msg);
            }
        }
        Action::Raw { from, bytes } => {
            if let Ok(msg) = Message::decode(bytes) {
                let from = w.sender(*from);
                w.inject(from, msg);
            }
        }
    }
    w.check();
}
