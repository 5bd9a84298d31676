//! Building a BOLT 4 onion for a route, and peeling one layer of it.
//!
//! | item | BOLT 4 section |
//! | --- | --- |
//! | [`construct_onion`] | "Packet Construction", with "Shared Secret", "Blinding Ephemeral Onion Keys" and "Filler Generation" |
//! | [`peel_onion`], [`Peeled`] | "Onion Decryption" ("Accepting and Forwarding a Payment" for what the hop then does) |
//! | [`BadOnion`] | "Onion Decryption", "Requirements"; the codes from "Failure Messages" |
//! | [`hop_size`], [`HOP_PAYLOADS_LEN`] | "Packet Structure": `hop_payloads` |
//!
//! A packet is `version (0) || ephemeral public key (33) || hop_payloads
//! (1300) || hmac (32)`, carried as [`OnionPacket`]. Each hop's share of
//! `hop_payloads` is `BigSize length || payload || next hmac`, so a route is
//! limited by the 1300 bytes, not by a hop count: [`hop_size`] is what one
//! hop takes. Payloads are TLV streams ([`super::payload`]); the legacy
//! 65-byte frames (length 0) are not supported, and `length` 0 and 1 are
//! refused as BOLT 4 reserves them.
//!
//! The associated data every HMAC commits to is the payment hash.
//!
//! Costs, in elliptic-curve operations: [`construct_onion`] for `n` hops does
//! `n` ECDH and `n` public-key derivations (`pubkey_create`, one per
//! ephemeral key), plus `n - 1` scalar multiplications of the ephemeral
//! private key (`SecretKey::mul_tweak`, no point arithmetic).
//! [`peel_onion`] parses the ephemeral key, does one ECDH, and for a forward
//! one point blinding (`PublicKey::mul_tweak`).

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{ecdh::SharedSecret, PublicKey, Scalar, SecretKey};
use chacha20::cipher::StreamCipher;

use super::keys::{self, derive_key, KeyType};
use super::tlv::{bigsize_len, read_bigsize, write_bigsize};
use crate::message::{OnionPacket, ONION_PACKET_LEN};
use crate::secp::SECP;

/// The only packet version (BOLT 4 version 0).
pub const VERSION: u8 = 0;
/// Size of `hop_payloads`, the area all the hops' payloads share.
pub const HOP_PAYLOADS_LEN: usize = 1300;
/// Size of an HMAC.
const HMAC_LEN: usize = 32;
/// Where the ephemeral public key starts.
const KEY_START: usize = 1;
/// Where `hop_payloads` starts.
const PAYLOADS_START: usize = KEY_START + 33;
/// Where the packet's HMAC starts.
const HMAC_START: usize = PAYLOADS_START + HOP_PAYLOADS_LEN;

/// BADONION flag of a failure code.
const BADONION: u16 = 0x8000;
/// PERM flag of a failure code.
const PERM: u16 = 0x4000;

/// One hop of the route, as the sender sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnionHop {
    /// The hop's node id.
    pub node_id: PublicKey,
    /// Its payload: an encoded TLV stream
    /// ([`super::payload::HopPayload::encode`]), without the `BigSize`
    /// length, which the packet adds.
    pub payload: Vec<u8>,
}

/// Bytes of `hop_payloads` a hop with a payload of `payload_len` bytes takes:
/// the `BigSize` length, the payload and the next HMAC (BOLT 4's
/// `shift_size`). A route fits when its hops' sizes add up to at most
/// [`HOP_PAYLOADS_LEN`].
pub fn hop_size(payload_len: usize) -> usize {
    bigsize_len(payload_len as u64) + payload_len + HMAC_LEN
}

/// Why an onion could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OnionBuildError {
    /// A route without hops.
    #[error("route has no hops")]
    NoHops,
    /// A payload shorter than 2 bytes (BOLT 4 reserves lengths 0 and 1).
    #[error("payload of hop {hop} is {len} bytes, at least 2 are needed")]
    PayloadTooShort {
        /// The hop, from 0.
        hop: usize,
        /// Its payload's length.
        len: usize,
    },
    /// The payloads do not fit in the 1300 bytes of `hop_payloads`.
    #[error("route needs {needed} bytes of hop payloads, only {HOP_PAYLOADS_LEN} fit")]
    TooLarge {
        /// What the route needs (sum of [`hop_size`]).
        needed: usize,
    },
    /// A blinded ephemeral key came out invalid (probability about 2^-128).
    #[error("ephemeral key blinding failed")]
    Blinding,
}

/// Why a packet was refused by the hop peeling it. The first three happen
/// before the shared secret is trusted: the hop reports them to the previous
/// hop in `update_fail_malformed_htlc` with `sha256_of_onion`. The last one
/// happens after the HMAC checked, so the sender built the layer: it is
/// reported in an `update_fail_htlc` failure onion built with the shared
/// secret it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadOnion {
    /// A version byte other than 0.
    #[error("unknown onion version {0}")]
    Version(u8),
    /// The ephemeral public key does not parse.
    #[error("invalid onion ephemeral key")]
    Key,
    /// The HMAC does not match the packet and associated data.
    #[error("invalid onion hmac")]
    Hmac,
    /// The HMAC matched but this hop's share of `hop_payloads` is not
    /// framed as BOLT 4 requires (a length of 0 or 1, a malformed
    /// `BigSize`, or more than fits).
    #[error("invalid onion payload framing")]
    Payload {
        /// The shared secret, to build the failure onion with.
        shared_secret: [u8; 32],
    },
}

impl BadOnion {
    /// The BOLT 4 failure code: `invalid_onion_version` (BADONION|PERM|4),
    /// `invalid_onion_key` (BADONION|PERM|6), `invalid_onion_hmac`
    /// (BADONION|PERM|5), or `invalid_onion_payload` (PERM|22, with empty
    /// failure data since no record can be named).
    pub fn failure_code(&self) -> u16 {
        match self {
            BadOnion::Version(_) => BADONION | PERM | 4,
            BadOnion::Hmac => BADONION | PERM | 5,
            BadOnion::Key => BADONION | PERM | 6,
            BadOnion::Payload { .. } => super::payload::INVALID_ONION_PAYLOAD,
        }
    }
}

/// One peeled layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peeled {
    /// The packet goes on: its next HMAC is not all zero.
    Forward {
        /// This hop's payload (TLV stream, without the length).
        payload: Vec<u8>,
        /// The packet for the next hop.
        next: OnionPacket,
        /// The shared secret with the sender, to obfuscate failures with.
        shared_secret: [u8; 32],
    },
    /// This hop is the final one: its next HMAC is all zero.
    Final {
        /// The recipient's payload (TLV stream, without the length).
        payload: Vec<u8>,
        /// The shared secret with the sender, to obfuscate failures with.
        shared_secret: [u8; 32],
    },
}

/// The blinding factor for the next ephemeral key: `SHA256(epk || ss)`.
fn blinding_factor(ephemeral: &PublicKey, shared_secret: &[u8; 32]) -> Option<Scalar> {
    let mut engine = sha256::Hash::engine();
    engine.input(&ephemeral.serialize());
    engine.input(shared_secret);
    Scalar::from_be_bytes(sha256::Hash::from_engine(engine).to_byte_array()).ok()
}

/// The filler: the tail of `hop_payloads` as the last hop receives it,
/// made of what every earlier hop shifted in (zeros XOR its rho stream).
/// `secrets` and `sizes` are those of every hop but the last.
fn filler(secrets: &[[u8; 32]], sizes: &[usize]) -> Vec<u8> {
    let mut filler = Vec::with_capacity(sizes.iter().sum());
    for (secret, &size) in secrets.iter().zip(sizes) {
        // This hop's zero padding starts at byte 1300 of its stream; what
        // earlier hops shifted in sits `filler.len()` bytes before it.
        let offset = HOP_PAYLOADS_LEN - filler.len();
        filler.resize(filler.len() + size, 0);
        keys::xor_stream(
            &derive_key(KeyType::Rho, secret),
            offset as u64,
            &mut filler,
        );
    }
    filler
}

/// The shared secret of every node of `path` (first hop first) for an
/// onion built with `session_key` ("Shared Secret", "Blinding Ephemeral
/// Onion Keys"): what [`construct_onion`] returns, recomputed by a sender
/// that kept only the session key and the route. Costs one ECDH per hop
/// and one blinding (two EC multiplications) per hop but the last.
pub fn shared_secrets(
    session_key: &SecretKey,
    path: &[PublicKey],
) -> Result<Vec<[u8; 32]>, OnionBuildError> {
    Ok(secrets_and_first_key(session_key, path)?.0)
}

/// [`shared_secrets`], with the first ephemeral public key (the packet's).
fn secrets_and_first_key(
    session_key: &SecretKey,
    path: &[PublicKey],
) -> Result<(Vec<[u8; 32]>, PublicKey), OnionBuildError> {
    let first_key = PublicKey::from_secret_key(&SECP, session_key);
    let mut secrets = Vec::with_capacity(path.len());
    let (mut ek, mut epk) = (*session_key, first_key);
    for (i, node_id) in path.iter().enumerate() {
        let ss = SharedSecret::new(node_id, &ek).secret_bytes();
        secrets.push(ss);
        if i + 1 < path.len() {
            let factor = blinding_factor(&epk, &ss).ok_or(OnionBuildError::Blinding)?;
            ek = ek
                .mul_tweak(&factor)
                .map_err(|_| OnionBuildError::Blinding)?;
            epk = PublicKey::from_secret_key(&SECP, &ek);
        }
    }
    Ok((secrets, first_key))
}

/// Builds the onion for `hops` (first hop first) with `session_key` (fresh
/// and random for every payment), committing to `associated_data` (the
/// payment hash). Returns it with the shared secret of every hop, in route
/// order, which the sender keeps to read a failure
/// ([`super::failure::decode_failure`]).
pub fn construct_onion(
    session_key: &SecretKey,
    hops: &[OnionHop],
    associated_data: &[u8; 32],
) -> Result<(OnionPacket, Vec<[u8; 32]>), OnionBuildError> {
    if hops.is_empty() {
        return Err(OnionBuildError::NoHops);
    }
    if let Some((hop, h)) = hops.iter().enumerate().find(|(_, h)| h.payload.len() < 2) {
        return Err(OnionBuildError::PayloadTooShort {
            hop,
            len: h.payload.len(),
        });
    }
    let sizes: Vec<usize> = hops.iter().map(|h| hop_size(h.payload.len())).collect();
    let needed = sizes.iter().sum();
    if needed > HOP_PAYLOADS_LEN {
        return Err(OnionBuildError::TooLarge { needed });
    }

    let path: Vec<PublicKey> = hops.iter().map(|h| h.node_id).collect();
    let (secrets, first_key) = secrets_and_first_key(session_key, &path)?;

    // Layers, last hop first, over a start of pseudo-random bytes.
    let n = hops.len();
    let filler = filler(&secrets[..n - 1], &sizes[..n - 1]);
    let mut area = [0u8; HOP_PAYLOADS_LEN];
    keys::xor_stream(
        &derive_key(KeyType::Pad, &session_key.secret_bytes()),
        0,
        &mut area,
    );
    let mut hmac = [0u8; HMAC_LEN];
    for (i, hop) in hops.iter().enumerate().rev() {
        let size = sizes[i];
        area.copy_within(..HOP_PAYLOADS_LEN - size, size);
        let mut frame = Vec::with_capacity(size);
        write_bigsize(&mut frame, hop.payload.len() as u64);
        frame.extend_from_slice(&hop.payload);
        frame.extend_from_slice(&hmac);
        area[..size].copy_from_slice(&frame);
        keys::xor_stream(&derive_key(KeyType::Rho, &secrets[i]), 0, &mut area);
        if i == n - 1 {
            area[HOP_PAYLOADS_LEN - filler.len()..].copy_from_slice(&filler);
        }
        hmac = keys::hmac(
            &derive_key(KeyType::Mu, &secrets[i]),
            &[&area, associated_data],
        );
    }

    let mut packet = OnionPacket::default();
    packet.0[0] = VERSION;
    packet.0[KEY_START..PAYLOADS_START].copy_from_slice(&first_key.serialize());
    packet.0[PAYLOADS_START..HMAC_START].copy_from_slice(&area);
    packet.0[HMAC_START..].copy_from_slice(&hmac);
    debug_assert_eq!(packet.0.len(), ONION_PACKET_LEN);
    Ok((packet, secrets))
}

/// Peels the layer of `packet` meant for the node holding `node_secret`.
///
/// The version, the key and then the HMAC (over `hop_payloads` and
/// `associated_data`, compared in constant time) are checked before
/// anything in the packet is used. Replays (an HMAC seen before) are the
/// caller's to detect.
pub fn peel_onion(
    node_secret: &SecretKey,
    packet: &OnionPacket,
    associated_data: &[u8; 32],
) -> Result<Peeled, BadOnion> {
    let bytes = &packet.0;
    if bytes[0] != VERSION {
        return Err(BadOnion::Version(bytes[0]));
    }
    let ephemeral =
        PublicKey::from_slice(&bytes[KEY_START..PAYLOADS_START]).map_err(|_| BadOnion::Key)?;
    let shared_secret = SharedSecret::new(&ephemeral, node_secret).secret_bytes();
    let payloads = &bytes[PAYLOADS_START..HMAC_START];
    let expected = keys::hmac(
        &derive_key(KeyType::Mu, &shared_secret),
        &[payloads, associated_data],
    );
    if !keys::hmac_eq(&expected, &bytes[HMAC_START..]) {
        return Err(BadOnion::Hmac);
    }

    // hop_payloads followed by as many zeros as this hop shifts out, all
    // XORed with the rho stream: the stream runs on past byte 1300 so the
    // zeros become the next hop's (unreadable) padding.
    let mut cipher = keys::cipher(&derive_key(KeyType::Rho, &shared_secret));
    let mut area = [0u8; 2 * HOP_PAYLOADS_LEN];
    area[..HOP_PAYLOADS_LEN].copy_from_slice(payloads);
    cipher.apply_keystream(&mut area[..HOP_PAYLOADS_LEN]);
    let bad_framing = BadOnion::Payload { shared_secret };
    let (len, prefix) = read_bigsize(&area).map_err(|_| bad_framing)?;
    let len = usize::try_from(len).map_err(|_| bad_framing)?;
    if !(2..=HOP_PAYLOADS_LEN).contains(&len) {
        return Err(bad_framing);
    }
    let size = hop_size(len);
    debug_assert_eq!(size, prefix + len + HMAC_LEN);
    if size > HOP_PAYLOADS_LEN {
        return Err(bad_framing);
    }
    let payload = area[prefix..prefix + len].to_vec();
    let next_hmac: [u8; HMAC_LEN] = area[prefix + len..size].try_into().expect("32 bytes");
    if next_hmac == [0; HMAC_LEN] {
        return Ok(Peeled::Final {
            payload,
            shared_secret,
        });
    }
    cipher.apply_keystream(&mut area[HOP_PAYLOADS_LEN..HOP_PAYLOADS_LEN + size]);
    let next_key = blinding_factor(&ephemeral, &shared_secret)
        .and_then(|factor| ephemeral.mul_tweak(&SECP, &factor).ok())
        .ok_or(BadOnion::Key)?;
    let mut next = OnionPacket::default();
    next.0[0] = VERSION;
    next.0[KEY_START..PAYLOADS_START].copy_from_slice(&next_key.serialize());
    next.0[PAYLOADS_START..HMAC_START].copy_from_slice(&area[size..size + HOP_PAYLOADS_LEN]);
    next.0[HMAC_START..].copy_from_slice(&next_hmac);
    Ok(Peeled::Forward {
        payload,
        next,
        shared_secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onion::payload::HopPayload;
    use crate::types::ShortChannelId;
    use bitcoin::secp256k1::rand::{rngs::StdRng, Rng, SeedableRng};

    /// Most bytes a payload from [`payload_near`] has without padding.
    const BASE_MAX: usize = 23;

    /// A forward or final TLV payload of about `len` bytes: its records,
    /// grown towards `len` with an unknown odd record that readers skip.
    fn payload_near(rng: &mut StdRng, len: usize, is_final: bool) -> (HopPayload, Vec<u8>) {
        let p = if is_final {
            HopPayload::Receive {
                amt_to_forward: rng.gen_range(1..1 << 40),
                outgoing_cltv_value: rng.gen(),
                payment_data: None,
                payment_metadata: None,
            }
        } else {
            HopPayload::Forward {
                short_channel_id: ShortChannelId::from_u64(rng.gen()),
                amt_to_forward: rng.gen_range(1..1 << 40),
                outgoing_cltv_value: rng.gen(),
            }
        };
        let mut bytes = p.encode();
        assert!(bytes.len() <= BASE_MAX);
        // Record 65537 (odd): 5-byte type, a BigSize length, the value.
        let room = len.saturating_sub(bytes.len() + 5);
        let value_len = match room {
            0 => return (p, bytes),
            1..=0xfd => room - 1,
            _ => room - 3,
        };
        write_bigsize(&mut bytes, 65537);
        write_bigsize(&mut bytes, value_len as u64);
        bytes.extend((0..value_len).map(|_| rng.gen::<u8>()));
        (p, bytes)
    }

    /// A route of `n` (at most 20) hops, payloads of random sizes that fit.
    fn route(rng: &mut StdRng, n: usize) -> Vec<(SecretKey, HopPayload, OnionHop)> {
        let mut left = HOP_PAYLOADS_LEN;
        (0..n)
            .map(|i| {
                let reserve = (n - i - 1) * hop_size(BASE_MAX);
                let max = (left - reserve).saturating_sub(3 + HMAC_LEN).min(600);
                let len = rng.gen_range(BASE_MAX..=max.max(BASE_MAX));
                let secret = SecretKey::new(rng);
                let (p, payload) = payload_near(rng, len, i == n - 1);
                left -= hop_size(payload.len());
                let node_id = PublicKey::from_secret_key(&SECP, &secret);
                (secret, p, OnionHop { node_id, payload })
            })
            .collect()
    }

    #[test]
    fn round_trips_through_1_to_20_hops() {
        let mut rng = StdRng::seed_from_u64(4);
        let ad = [0x42; 32];
        for n in 1..=20 {
            let route = route(&mut rng, n);
            let hops: Vec<OnionHop> = route.iter().map(|(_, _, h)| h.clone()).collect();
            let session = SecretKey::new(&mut rng);
            let (mut packet, secrets) = construct_onion(&session, &hops, &ad).unwrap();
            assert_eq!(secrets.len(), n);
            for (i, (secret, expected, hop)) in route.iter().enumerate() {
                match peel_onion(secret, &packet, &ad).unwrap() {
                    Peeled::Forward {
                        payload,
                        next,
                        shared_secret,
                    } => {
                        assert!(i < n - 1, "{n} hops: hop {i} is the last");
                        assert_eq!(payload, hop.payload);
                        assert_eq!(HopPayload::decode(&payload, false).as_ref(), Ok(expected));
                        assert_eq!(shared_secret, secrets[i]);
                        packet = next;
                    }
                    Peeled::Final {
                        payload,
                        shared_secret,
                    } => {
                        assert_eq!(i, n - 1, "{n} hops: hop {i} is final");
                        assert_eq!(payload, hop.payload);
                        assert_eq!(HopPayload::decode(&payload, true).as_ref(), Ok(expected));
                        assert_eq!(shared_secret, secrets[i]);
                    }
                }
            }
        }
    }

    #[test]
    fn failures_at_any_hop_come_back_attributed_to_it() {
        use crate::onion::failure::{build_failure, decode_failure, wrap_failure, DecodedFailure};
        let mut rng = StdRng::seed_from_u64(7);
        let ad = [0x24; 32];
        for n in [1, 3, 20] {
            let route = route(&mut rng, n);
            let hops: Vec<OnionHop> = route.iter().map(|(_, _, h)| h.clone()).collect();
            let (mut packet, secrets) =
                construct_onion(&SecretKey::new(&mut rng), &hops, &ad).unwrap();
            // Each hop keeps the shared secret its peel gave it.
            let mut kept = Vec::new();
            for (secret, _, _) in &route {
                match peel_onion(secret, &packet, &ad).unwrap() {
                    Peeled::Forward {
                        next,
                        shared_secret,
                        ..
                    } => {
                        kept.push(shared_secret);
                        packet = next;
                    }
                    Peeled::Final { shared_secret, .. } => kept.push(shared_secret),
                }
            }
            for k in 0..n {
                let mut reply = build_failure(&kept[k], 0x1007, &[0, 0]);
                for ss in kept[..k].iter().rev() {
                    wrap_failure(ss, &mut reply);
                }
                assert_eq!(
                    decode_failure(&secrets, &reply),
                    DecodedFailure::Hop {
                        index: k,
                        code: 0x1007,
                        data: vec![0, 0]
                    },
                    "hop {k} of {n}"
                );
            }
        }
    }

    #[test]
    fn the_1300_bytes_limit_the_route() {
        let mut rng = StdRng::seed_from_u64(5);
        let keys: Vec<SecretKey> = (0..27).map(|_| SecretKey::new(&mut rng)).collect();
        let hop = |k: &SecretKey, len: usize| OnionHop {
            node_id: PublicKey::from_secret_key(&SECP, k),
            payload: vec![1; len],
        };
        // 37 minimal hops (2-byte payloads, 35 bytes each) fit; a 38th does not.
        let mut hops: Vec<OnionHop> = keys.iter().cycle().take(37).map(|k| hop(k, 2)).collect();
        let (mut packet, _) = construct_onion(&keys[0], &hops, &[0; 32]).unwrap();
        for (i, k) in keys.iter().cycle().take(37).enumerate() {
            match peel_onion(k, &packet, &[0; 32]).unwrap() {
                Peeled::Forward { next, .. } => {
                    assert!(i < 36);
                    packet = next;
                }
                Peeled::Final { .. } => assert_eq!(i, 36),
            }
        }
        hops.push(hop(&keys[0], 2));
        assert_eq!(
            construct_onion(&keys[0], &hops, &[0; 32]),
            Err(OnionBuildError::TooLarge { needed: 38 * 35 })
        );
        // One hop of exactly 1300 bytes fits and peels; one byte more does not.
        let full = [hop(&keys[1], HOP_PAYLOADS_LEN - 3 - HMAC_LEN)];
        let (packet, _) = construct_onion(&keys[0], &full, &[0; 32]).unwrap();
        assert!(matches!(
            peel_onion(&keys[1], &packet, &[0; 32]),
            Ok(Peeled::Final { payload, .. }) if payload == full[0].payload
        ));
        let over = [hop(&keys[1], HOP_PAYLOADS_LEN - 3 - HMAC_LEN + 1)];
        assert_eq!(
            construct_onion(&keys[0], &over, &[0; 32]),
            Err(OnionBuildError::TooLarge { needed: 1301 })
        );
        assert_eq!(
            construct_onion(&keys[0], &[], &[0; 32]),
            Err(OnionBuildError::NoHops)
        );
        assert_eq!(
            construct_onion(&keys[0], &[hop(&keys[1], 3), hop(&keys[2], 1)], &[0; 32]),
            Err(OnionBuildError::PayloadTooShort { hop: 1, len: 1 })
        );
    }

    #[test]
    fn every_tampered_byte_is_refused_with_its_code() {
        let mut rng = StdRng::seed_from_u64(6);
        let route = route(&mut rng, 3);
        let hops: Vec<OnionHop> = route.iter().map(|(_, _, h)| h.clone()).collect();
        let ad = [7; 32];
        let (packet, _) = construct_onion(&SecretKey::new(&mut rng), &hops, &ad).unwrap();
        let first = &route[0].0;
        let (mut keys, mut hmacs) = (0, 0);
        for at in 0..ONION_PACKET_LEN {
            for flip in [0x01, 0x80] {
                let mut bad = packet.clone();
                bad.0[at] ^= flip;
                let e = peel_onion(first, &bad, &ad).unwrap_err();
                match at {
                    0 => assert_eq!(e, BadOnion::Version(flip)),
                    1..=33 => assert!(matches!(e, BadOnion::Key | BadOnion::Hmac), "{at}: {e}"),
                    _ => assert_eq!(e, BadOnion::Hmac, "byte {at}"),
                }
                match e {
                    BadOnion::Key => keys += 1,
                    BadOnion::Hmac => hmacs += 1,
                    _ => {}
                }
            }
        }
        assert!(keys > 0, "some key flips make an invalid point");
        assert!(hmacs > 2 * (ONION_PACKET_LEN - 34));
        assert_eq!(BadOnion::Version(1).failure_code(), 0xc004);
        assert_eq!(BadOnion::Hmac.failure_code(), 0xc005);
        assert_eq!(BadOnion::Key.failure_code(), 0xc006);
        // The wrong associated data or the wrong node fails the HMAC too.
        assert_eq!(peel_onion(first, &packet, &[8; 32]), Err(BadOnion::Hmac));
        assert_eq!(peel_onion(&route[1].0, &packet, &ad), Err(BadOnion::Hmac));
        // A packet at the next hop refuses tampering the same way.
        let Ok(Peeled::Forward { mut next, .. }) = peel_onion(first, &packet, &ad) else {
            panic!("hop 0 forwards");
        };
        next.0[700] ^= 1;
        assert_eq!(peel_onion(&route[1].0, &next, &ad), Err(BadOnion::Hmac));
    }

    /// A packet whose HMAC is right for `node` but whose plaintext
    /// `hop_payloads` starts with `plain`.
    fn authentic_packet(node: &SecretKey, plain: &[u8], ad: &[u8; 32]) -> OnionPacket {
        let session = SecretKey::from_slice(&[3; 32]).unwrap();
        let node_id = PublicKey::from_secret_key(&SECP, node);
        let ss = SharedSecret::new(&node_id, &session).secret_bytes();
        let mut area = [0u8; HOP_PAYLOADS_LEN];
        area[..plain.len()].copy_from_slice(plain);
        keys::xor_stream(&derive_key(KeyType::Rho, &ss), 0, &mut area);
        let hmac = keys::hmac(&derive_key(KeyType::Mu, &ss), &[&area, ad]);
        let mut packet = OnionPacket::default();
        packet.0[KEY_START..PAYLOADS_START]
            .copy_from_slice(&PublicKey::from_secret_key(&SECP, &session).serialize());
        packet.0[PAYLOADS_START..HMAC_START].copy_from_slice(&area);
        packet.0[HMAC_START..].copy_from_slice(&hmac);
        packet
    }

    #[test]
    fn authentic_but_badly_framed_layers_are_payload_errors() {
        let node = SecretKey::from_slice(&[9; 32]).unwrap();
        let ad = [1; 32];
        let node_id = PublicKey::from_secret_key(&SECP, &node);
        let session = SecretKey::from_slice(&[3; 32]).unwrap();
        let ss = SharedSecret::new(&node_id, &session).secret_bytes();
        for plain in [
            &[0x00][..],         // legacy frame
            &[0x01],             // reserved length
            &[0xfd, 0x00, 0x10], // non-canonical BigSize
            &[0xfd, 0x05, 0x00], // 1280 + 3 + 32 > 1300
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ] {
            let e = peel_onion(&node, &authentic_packet(&node, plain, &ad), &ad).unwrap_err();
            assert_eq!(e, BadOnion::Payload { shared_secret: ss }, "{plain:02x?}");
            assert_eq!(e.failure_code(), 0x4016);
        }
        // The longest payload that fits (1265 bytes) is accepted; final since
        // its next HMAC (zeros here) is all zero.
        let ok = authentic_packet(&node, &[0xfd, 0x04, 0xf1], &ad);
        assert!(matches!(
            peel_onion(&node, &ok, &ad),
            Ok(Peeled::Final { payload, .. }) if payload.len() == 1265
        ));
        // An invalid point is a key error (checked before the HMAC).
        let mut bad = ok.clone();
        bad.0[KEY_START] = 0x04;
        assert_eq!(peel_onion(&node, &bad, &ad), Err(BadOnion::Key));
    }
}
