//! Failure onions: the `reason` of `update_fail_htlc`.
//!
//! | item | BOLT 4 section |
//! | --- | --- |
//! | [`build_failure`], [`build_failure_padded`] | "Returning Errors", "Erring node" (and its "Requirements") |
//! | [`wrap_failure`] | "Returning Errors", "Intermediate nodes", "Transformation of the return packet" |
//! | [`decode_failure`], [`DecodedFailure`] | "Returning Errors", "Origin node"; "Receiving Failure Codes" |
//!
//! The failing node writes `hmac (32) || u16 failure_len || failuremsg ||
//! u16 pad_len || pad`, where `failuremsg` is the u16 failure code and its
//! data ("Failure Messages"), `pad` is zeros making `failure_len + pad_len`
//! at least 256, and `hmac` is HMAC-SHA256 keyed by its `um` key over
//! everything after it. It then XORs the whole with its `ammag` stream.
//! Every hop back XORs in its own `ammag` stream again. The origin, holding
//! every hop's shared secret, removes the layers in route order and stops at
//! the first hop whose `um` HMAC matches: that hop sent it.
//!
//! `attribution_data` (`option_attribution_data`) is not produced nor read.

use super::keys::{self, derive_key, KeyType};

/// BOLT 4's least `failure_len + pad_len`, and what [`build_failure`] pads
/// a shorter message to.
pub const MIN_PADDED_LEN: usize = 256;

/// Size of the HMAC that starts a failure packet.
const HMAC_LEN: usize = 32;

/// What the origin read from a failure onion.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodedFailure {
    /// Hop `index` (from 0, in route order) sent the failure.
    Hop {
        /// The failing hop, from 0.
        index: usize,
        /// Its BOLT 4 failure code.
        code: u16,
        /// The code's data (and any TLV stream after it), unparsed.
        data: Vec<u8>,
    },
    /// Hop `index` authenticated the packet, but its `failuremsg` is not
    /// readable (shorter than a code, or longer than the packet): that hop
    /// is at fault.
    Malformed {
        /// The hop, from 0.
        index: usize,
    },
    /// No hop's HMAC matches: the packet was corrupted or made up on the way
    /// back, by a hop that cannot be told.
    Undecodable,
}

/// The failure packet a failing hop returns, already obfuscated with its own
/// `ammag` stream: `code` with `data`, padded to [`MIN_PADDED_LEN`].
/// `shared_secret` is the one peeling gave it
/// ([`super::packet::Peeled`]). Data beyond what a u16 `failure_len` can
/// frame (65533 bytes) is cut.
pub fn build_failure(shared_secret: &[u8; 32], code: u16, data: &[u8]) -> Vec<u8> {
    build_failure_padded(shared_secret, code, data, MIN_PADDED_LEN)
}

/// [`build_failure`], padding `failure_len + pad_len` to at least
/// `padded_len` (never less than [`MIN_PADDED_LEN`], at most 65535), so that
/// failures of different lengths look alike.
pub fn build_failure_padded(
    shared_secret: &[u8; 32],
    code: u16,
    data: &[u8],
    padded_len: usize,
) -> Vec<u8> {
    let max = usize::from(u16::MAX);
    let data = &data[..data.len().min(max - 2)];
    let failure_len = 2 + data.len();
    let pad_len = padded_len
        .clamp(MIN_PADDED_LEN, max)
        .saturating_sub(failure_len);
    let mut packet = vec![0u8; HMAC_LEN];
    packet.reserve(2 + failure_len + 2 + pad_len);
    packet.extend_from_slice(&(failure_len as u16).to_be_bytes());
    packet.extend_from_slice(&code.to_be_bytes());
    packet.extend_from_slice(data);
    packet.extend_from_slice(&(pad_len as u16).to_be_bytes());
    packet.resize(packet.len() + pad_len, 0);
    let hmac = keys::hmac(
        &derive_key(KeyType::Um, shared_secret),
        &[&packet[HMAC_LEN..]],
    );
    packet[..HMAC_LEN].copy_from_slice(&hmac);
    wrap_failure(shared_secret, &mut packet);
    packet
}

/// Adds this hop's layer to a failure packet on its way back: XORs it with
/// the `ammag` stream of `shared_secret`. (The same operation removes the
/// layer: the origin's [`decode_failure`] does that.)
pub fn wrap_failure(shared_secret: &[u8; 32], packet: &mut [u8]) {
    keys::xor_stream(&derive_key(KeyType::Ammag, shared_secret), 0, packet);
}

/// Reads a failure packet at the origin: `shared_secrets` are the route's,
/// in route order, as [`super::packet::construct_onion`] returned them.
///
/// Layers are removed hop by hop until one hop's HMAC matches; a packet
/// that matches at no hop (or is shorter than an HMAC) is
/// [`DecodedFailure::Undecodable`]. Extra bytes after `failuremsg` are
/// ignored, as BOLT 4 requires. Decoding stops at the failing hop (BOLT 4's
/// SHOULD of 27 constant-time rounds is not followed).
pub fn decode_failure(shared_secrets: &[[u8; 32]], packet: &[u8]) -> DecodedFailure {
    if packet.len() < HMAC_LEN {
        return DecodedFailure::Undecodable;
    }
    let mut packet = packet.to_vec();
    for (index, secret) in shared_secrets.iter().enumerate() {
        wrap_failure(secret, &mut packet);
        let (hmac, body) = packet.split_at(HMAC_LEN);
        let expected = keys::hmac(&derive_key(KeyType::Um, secret), &[body]);
        if !keys::hmac_eq(&expected, hmac) {
            continue;
        }
        let Some(len) = body.get(..2) else {
            return DecodedFailure::Malformed { index };
        };
        let failure_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        return match body.get(2..2 + failure_len) {
            Some(msg) if failure_len >= 2 => DecodedFailure::Hop {
                index,
                code: u16::from_be_bytes([msg[0], msg[1]]),
                data: msg[2..].to_vec(),
            },
            _ => DecodedFailure::Malformed { index },
        };
    }
    DecodedFailure::Undecodable
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::rand::{rngs::StdRng, Rng, SeedableRng};

    fn secrets(rng: &mut StdRng, n: usize) -> Vec<[u8; 32]> {
        (0..n).map(|_| rng.gen()).collect()
    }

    /// The packet the origin gets when hop `k` fails: built there, wrapped by
    /// every hop before it, last first.
    fn returned(secrets: &[[u8; 32]], k: usize, code: u16, data: &[u8]) -> Vec<u8> {
        let mut packet = build_failure(&secrets[k], code, data);
        for secret in secrets[..k].iter().rev() {
            wrap_failure(secret, &mut packet);
        }
        packet
    }

    #[test]
    fn a_failure_from_hop_k_of_n_is_attributed_to_hop_k() {
        let mut rng = StdRng::seed_from_u64(10);
        for n in 1..=20 {
            let secrets = secrets(&mut rng, n);
            for k in 0..n {
                let data: Vec<u8> = (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect();
                let code = rng.gen();
                assert_eq!(
                    decode_failure(&secrets, &returned(&secrets, k, code, &data)),
                    DecodedFailure::Hop {
                        index: k,
                        code,
                        data
                    },
                    "hop {k} of {n}"
                );
            }
        }
    }

    #[test]
    fn messages_are_padded_to_256_bytes_or_more() {
        let ss = [5; 32];
        // hmac, failure_len, code, pad_len, 254 bytes of pad.
        assert_eq!(build_failure(&ss, 0x2002, &[]).len(), 32 + 2 + 2 + 2 + 254);
        assert_eq!(build_failure(&ss, 1, &[0; 254]).len(), 32 + 2 + 256 + 2);
        assert_eq!(build_failure(&ss, 1, &[0; 300]).len(), 32 + 2 + 302 + 2);
        assert_eq!(
            build_failure_padded(&ss, 1, &[0; 300], 1024).len(),
            32 + 1028
        );
        assert_eq!(build_failure_padded(&ss, 1, &[], 10).len(), 32 + 260);
        // Data too long for a u16 failure_len is cut to fit.
        let huge = build_failure(&ss, 1, &vec![7; 70_000]);
        assert_eq!(huge.len(), 32 + 2 + 65535 + 2);
        assert!(matches!(
            decode_failure(&[ss], &huge),
            DecodedFailure::Hop { data, .. } if data.len() == 65533
        ));
    }

    #[test]
    fn tampered_packets_are_undecodable_never_misattributed() {
        let mut rng = StdRng::seed_from_u64(11);
        let secrets = secrets(&mut rng, 5);
        let packet = returned(&secrets, 2, 0x400f, &[1, 2, 3]);
        for at in 0..packet.len() {
            for flip in [0x01, 0x80] {
                let mut bad = packet.clone();
                bad[at] ^= flip;
                assert_eq!(
                    decode_failure(&secrets, &bad),
                    DecodedFailure::Undecodable,
                    "byte {at}"
                );
            }
        }
        // Cut, lengthened, or read with another route's secrets.
        for len in [0, 1, 31, 32, 33, 35, packet.len() - 1] {
            assert_eq!(
                decode_failure(&secrets, &packet[..len]),
                DecodedFailure::Undecodable
            );
        }
        let mut longer = packet.clone();
        longer.push(0);
        assert_eq!(
            decode_failure(&secrets, &longer),
            DecodedFailure::Undecodable
        );
        let others = [secrets[0], secrets[1], [9; 32]];
        assert_eq!(
            decode_failure(&others, &packet),
            DecodedFailure::Undecodable
        );
        assert_eq!(decode_failure(&[], &packet), DecodedFailure::Undecodable);
    }

    /// A packet authenticated by `ss` around an arbitrary body.
    fn authentic(ss: &[u8; 32], body: &[u8]) -> Vec<u8> {
        let mut packet = keys::hmac(&derive_key(KeyType::Um, ss), &[body]).to_vec();
        packet.extend_from_slice(body);
        wrap_failure(ss, &mut packet);
        packet
    }

    #[test]
    fn authentic_but_unreadable_messages_blame_their_hop() {
        let secrets = [[1; 32], [2; 32]];
        let mut outer = authentic(&secrets[1], &[0, 1, 0x20]);
        wrap_failure(&secrets[0], &mut outer);
        assert_eq!(
            decode_failure(&secrets, &outer),
            DecodedFailure::Malformed { index: 1 }
        );
        for body in [&[][..], &[0], &[0, 0], &[0, 5, 1, 2]] {
            assert_eq!(
                decode_failure(&secrets[..1], &authentic(&secrets[0], body)),
                DecodedFailure::Malformed { index: 0 },
                "{body:?}"
            );
        }
        // A message with no pad_len still reads (extra bytes are ignored).
        assert_eq!(
            decode_failure(&secrets[..1], &authentic(&secrets[0], &[0, 2, 0x20, 2, 9])),
            DecodedFailure::Hop {
                index: 0,
                code: 0x2002,
                data: vec![]
            }
        );
    }
}
