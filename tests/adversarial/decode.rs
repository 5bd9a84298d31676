//! Actions from raw bytes, for the fuzz target: each action is a tag byte
//! and its fields; missing bytes read as zero, so every input is a valid
//! sequence of actions.
#![allow(dead_code)]

use crate::actions::{Action, Forged, HonestRoute, OutpointPick, PayTo, Sender, Target, Who};

/// Reads actions from fuzzer bytes: each starts with a tag byte, then its
/// fields; missing bytes read as zero.
pub fn decode_actions(data: &[u8]) -> Vec<Action> {
    let mut r = Bytes(data);
    let mut actions = Vec::new();
    while !r.0.is_empty() && actions.len() < 64 {
        actions.push(r.action());
    }
    actions
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((first, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        *first
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// An amount: mostly plausible, sometimes extreme.
    fn amount(&mut self) -> u64 {
        match self.u8() % 8 {
            0 => 0,
            1 => u64::MAX,
            2 => 1_000_000_000_000,
            3 => self.u64(),
            _ => u64::from(self.u32() % 60_000_000) + 1_000,
        }
    }

    /// A small id, or any.
    fn id(&mut self) -> u64 {
        match self.u8() {
            0xff => u64::MAX,
            0xfe => self.u64(),
            n => u64::from(n % 12),
        }
    }

    fn funding(&mut self) -> u64 {
        match self.u8() % 4 {
            0 => 100_000,
            1 => 5_000,
            2 => u64::MAX,
            _ => u64::from(self.u32()),
        }
    }

    fn target(&mut self) -> Target {
        match self.u8() % 10 {
            0 => Target::AHub,
            1 => Target::HubB,
            2 => Target::CHub,
            3 => Target::MHub,
            4 => Target::HubM,
            5 => Target::MNew,
            6 => Target::HubTemp,
            7 => Target::Zero,
            _ => Target::Temp(self.u8()),
        }
    }

    fn sender(&mut self) -> Sender {
        match self.u8() % 4 {
            0 | 1 => Sender::Mallory,
            2 => Sender::Eve,
            _ => Sender::Unknown,
        }
    }

    fn outpoint(&mut self) -> OutpointPick {
        match self.u8() % 3 {
            0 => OutpointPick::Fresh,
            1 => OutpointPick::Of(self.target()),
            _ => OutpointPick::MatchingTemp(self.u8()),
        }
    }

    fn action(&mut self) -> Action {
        match self.u8() % 20 {
            0 => Action::Pay {
                route: match self.u8() % 8 {
                    0 => HonestRoute::AToHub,
                    1 => HonestRoute::AToB,
                    2 => HonestRoute::BToA,
                    3 => HonestRoute::CToHub,
                    4 => HonestRoute::HubToB,
                    5 => HonestRoute::HubToC,
                    6 => HonestRoute::HubToMallory,
                    _ => HonestRoute::BToMallory,
                },
                amount_msat: self.amount(),
            },
            1 => Action::Deliver { count: self.u8() },
            2 => Action::Forward,
            3 => Action::Settle { claim: self.bool() },
            4 => Action::Reconnect {
                who: match self.u8() % 5 {
                    0 => Who::A,
                    1 => Who::B,
                    2 => Who::C,
                    3 => Who::Mallory,
                    _ => Who::Eve,
                },
            },
            5 => Action::MalloryPay {
                to: match self.u8() % 3 {
                    0 => PayTo::Hub,
                    1 => PayTo::B,
                    _ => PayTo::Herself,
                },
                amount_msat: self.amount(),
            },
            6 => Action::MalloryDeliver {
                count: self.u8(),
                skip: self.u8() % 4,
            },
            7 => Action::MalloryOpen {
                funding_sat: self.funding(),
            },
            8 => Action::MalloryFund {
                outpoint: self.outpoint(),
            },
            9 => Action::HubOpen {
                funding_sat: self.funding(),
            },
            10 => Action::Confirm,
            11 => Action::HubClose {
                target: self.target(),
                force: self.bool(),
            },
            12 => Action::HubUpdateFee {
                target: self.target(),
                feerate: self.u32() % 200_000,
            },
            13 => Action::Replay {
                from: self.sender(),
                index: self.u16(),
                retarget: self.bool().then(|| self.target()),
            },
            14 => Action::Mutate {
                from: self.sender(),
                index: self.u16(),
                pos: self.u16(),
                xor: self.u8(),
            },
            15 => {
                let from = self.sender();
                let len = usize::from(self.u16() % 2048).min(self.0.len());
                let (bytes, rest) = self.0.split_at(len);
                self.0 = rest;
                Action::Raw {
                    from,
                    bytes: bytes.to_vec(),
                }
            }
            _ => Action::Forge {
                from: self.sender(),
                msg: self.forged(),
            },
        }
    }

    fn forged(&mut self) -> Forged {
        match self.u8() % 17 {
            0 => Forged::Open {
                temp: self.target(),
                funding_sat: self.funding(),
                push_msat: self.amount(),
                bad: self.u8() % 12,
            },
            1 => Forged::Accept {
                temp: self.target(),
                bad: self.u8() % 6,
            },
            2 => Forged::FundingCreated {
                temp: self.target(),
                outpoint: self.outpoint(),
            },
            3 => Forged::FundingSigned {
                chan: self.target(),
            },
            4 => Forged::ChannelReady {
                chan: self.target(),
            },
            5 => Forged::Add {
                chan: self.target(),
                id: self.id(),
                amount_msat: self.amount(),
                cltv: self.u8(),
                onion: self.u8(),
                hash: self.u8(),
            },
            6 => Forged::Fulfill {
                chan: self.target(),
                id: self.id(),
                preimage: self.u8(),
            },
            7 => Forged::Fail {
                chan: self.target(),
                id: self.id(),
                reason_len: self.u8(),
            },
            8 => Forged::CommitmentSigned {
                chan: self.target(),
                htlc_sigs: self.u8() % 16,
            },
            9 => Forged::RevokeAndAck {
                chan: self.target(),
                secret: self.u8(),
            },
            10 => Forged::UpdateFee {
                chan: self.target(),
                feerate: self.u32(),
            },
            11 => Forged::Shutdown {
                chan: self.target(),
                script: self.u8(),
            },
            12 => Forged::ClosingSigned {
                chan: self.target(),
                fee_sat: self.amount(),
            },
            13 => Forged::Reestablish {
                chan: self.target(),
                next_commitment_number: self.id(),
                next_revocation_number: self.id(),
                secret: self.u8(),
            },
            14 => Forged::FailMalformed {
                chan: self.target(),
                id: self.id(),
                code: self.u32() as u16,
            },
            15 => Forged::ChannelUpdate {
                chan: self.target(),
                signer: self.u8(),
                other_chain: self.u8().is_multiple_of(4),
                flip_direction: self.u8().is_multiple_of(4),
                timestamp: self.u32(),
                fee_base_msat: self.u32(),
            },
            _ => Forged::Error {
                chan: self.target(),
                data_len: self.u8(),
            },
        }
    }
}
