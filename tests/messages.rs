//! The BOLT 1/2 wire codec through the public API: round trips, exact type
//! numbers and lengths, truncation, invalid points and signatures, unknown
//! types, ignored extensions, and property tests that arbitrary or mutated
//! input never panics and that whatever decodes re-encodes to a prefix of it.

use std::sync::LazyLock;

use bitcoin::constants::ChainHash;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{self, ecdsa::Signature, PublicKey, Secp256k1, SecretKey};
use bitcoin::{ScriptBuf, Txid};
use chanstore::features::Features;
use chanstore::message::{
    AcceptChannel, ChannelReady, ChannelReestablish, ChannelUpdate, ClosingFeeRange, ClosingSigned,
    CommitmentSigned, ErrorMessage, FundingCreated, FundingSigned, Init, OnionPacket, OpenChannel,
    Ping, Pong, RevokeAndAck, Shutdown, UpdateAddHtlc, UpdateFailHtlc, UpdateFailMalformedHtlc,
    UpdateFee, UpdateFulfillHtlc, Warning, ONION_PACKET_LEN,
};
use chanstore::{ChannelId, DecodeError, Message, PaymentPreimage};
use proptest::prelude::*;

/// Every type number this crate decodes, from BOLT 1, BOLT 2 and BOLT 7
/// (`channel_update`).
const KNOWN_TYPES: [u16; 21] = [
    1, 16, 17, 18, 19, 32, 33, 34, 35, 36, 38, 39, 128, 130, 131, 132, 133, 134, 135, 136, 258,
];

static SECP: LazyLock<Secp256k1<secp256k1::All>> = LazyLock::new(Secp256k1::new);

/// A distinct valid public key for each `n >= 1`.
fn key(n: u8) -> PublicKey {
    let sk = SecretKey::from_slice(&[n; 32]).expect("valid secret key");
    PublicKey::from_secret_key(&SECP, &sk)
}

/// A distinct real signature for each `n >= 1`.
fn sig(n: u8) -> Signature {
    let sk = SecretKey::from_slice(&[n; 32]).expect("valid secret key");
    let digest = secp256k1::Message::from_digest([n.wrapping_mul(3); 32]);
    SECP.sign_ecdsa(&digest, &sk)
}

/// 32 bytes that differ from position to position, so byte order shows.
fn bytes32(seed: u8) -> [u8; 32] {
    core::array::from_fn(|i| seed.wrapping_add(i as u8))
}

fn onion() -> OnionPacket {
    let mut packet = OnionPacket::default();
    for (i, b) in packet.0.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    packet
}

fn open_channel() -> OpenChannel {
    OpenChannel {
        chain_hash: ChainHash::BITCOIN,
        temporary_channel_id: ChannelId(bytes32(1)),
        funding_satoshis: 16_777_215,
        push_msat: 1_000_000,
        dust_limit_satoshis: 546,
        max_htlc_value_in_flight_msat: u64::MAX,
        channel_reserve_satoshis: 167_772,
        htlc_minimum_msat: 1,
        feerate_per_kw: 253,
        to_self_delay: 144,
        max_accepted_htlcs: 483,
        funding_pubkey: key(1),
        revocation_basepoint: key(2),
        payment_basepoint: key(3),
        delayed_payment_basepoint: key(4),
        htlc_basepoint: key(5),
        first_per_commitment_point: key(6),
        channel_flags: 1,
        shutdown_scriptpubkey: None,
        channel_type: None,
    }
}

fn accept_channel() -> AcceptChannel {
    AcceptChannel {
        temporary_channel_id: ChannelId(bytes32(1)),
        dust_limit_satoshis: 354,
        max_htlc_value_in_flight_msat: 5_000_000_000,
        channel_reserve_satoshis: 10_000,
        htlc_minimum_msat: 1000,
        minimum_depth: 3,
        to_self_delay: 720,
        max_accepted_htlcs: 30,
        funding_pubkey: key(11),
        revocation_basepoint: key(12),
        payment_basepoint: key(13),
        delayed_payment_basepoint: key(14),
        htlc_basepoint: key(15),
        first_per_commitment_point: key(16),
        shutdown_scriptpubkey: None,
        channel_type: None,
    }
}

/// One sample of every message, with non-trivial field values, plus the
/// variable-length ones at their edges (empty fields, several signatures).
fn samples() -> Vec<Message> {
    let cid = ChannelId(bytes32(0x40));
    vec![
        open_channel().into(),
        accept_channel().into(),
        FundingCreated {
            temporary_channel_id: ChannelId(bytes32(1)),
            funding_txid: Txid::from_byte_array(bytes32(0x80)),
            funding_output_index: 0x0102,
            signature: sig(21),
        }
        .into(),
        FundingSigned {
            channel_id: cid,
            signature: sig(22),
        }
        .into(),
        ChannelReady {
            channel_id: cid,
            second_per_commitment_point: key(23),
        }
        .into(),
        UpdateAddHtlc {
            channel_id: cid,
            id: 7,
            amount_msat: 123_456_789,
            payment_hash: PaymentPreimage([9; 32]).payment_hash(),
            cltv_expiry: 800_144,
            onion_routing_packet: onion(),
        }
        .into(),
        UpdateFulfillHtlc {
            channel_id: cid,
            id: 7,
            payment_preimage: PaymentPreimage([9; 32]),
        }
        .into(),
        UpdateFailHtlc {
            channel_id: cid,
            id: u64::MAX,
            reason: (0..=255).cycle().take(292).collect(),
        }
        .into(),
        UpdateFailHtlc {
            channel_id: cid,
            id: 0,
            reason: Vec::new(),
        }
        .into(),
        CommitmentSigned {
            channel_id: cid,
            signature: sig(31),
            htlc_signatures: vec![sig(32), sig(33), sig(34)],
        }
        .into(),
        CommitmentSigned {
            channel_id: cid,
            signature: sig(35),
            htlc_signatures: Vec::new(),
        }
        .into(),
        RevokeAndAck {
            channel_id: cid,
            per_commitment_secret: bytes32(0xa0),
            next_per_commitment_point: key(41),
        }
        .into(),
        UpdateFee {
            channel_id: cid,
            feerate_per_kw: 0x0102_0304,
        }
        .into(),
        Shutdown {
            channel_id: cid,
            // P2WPKH: OP_0 PUSH20 <20 bytes>.
            scriptpubkey: ScriptBuf::from_bytes([&[0x00, 0x14][..], &[0x5a; 20]].concat()),
        }
        .into(),
        ClosingSigned {
            channel_id: cid,
            fee_satoshis: 4_321,
            signature: sig(51),
            fee_range: None,
        }
        .into(),
        ChannelReestablish {
            channel_id: cid,
            next_commitment_number: 42,
            next_revocation_number: 41,
            your_last_per_commitment_secret: bytes32(0xc0),
            my_current_per_commitment_point: key(61),
        }
        .into(),
        ErrorMessage {
            channel_id: ChannelId([0; 32]),
            data: b"internal error: all channels".to_vec(),
        }
        .into(),
        ErrorMessage {
            channel_id: cid,
            data: Vec::new(),
        }
        .into(),
        UpdateFailMalformedHtlc {
            channel_id: cid,
            id: 7,
            sha256_of_onion: bytes32(0x33),
            failure_code: 0xc005,
        }
        .into(),
        // Appended, so the indices above stay what other tests use.
        OpenChannel {
            shutdown_scriptpubkey: Some(ScriptBuf::new()),
            channel_type: Some(Features::static_remotekey_channel()),
            ..open_channel()
        }
        .into(),
        AcceptChannel {
            shutdown_scriptpubkey: Some(ScriptBuf::from_bytes(vec![0x00, 0x14, 7, 7, 7])),
            channel_type: Some(Features::from_wire(&[0x00, 0x10, 0x00])),
            ..accept_channel()
        }
        .into(),
        Init::ours(ChainHash::TESTNET3).into(),
        Init {
            global_features: Features::empty(),
            features: Features::from_wire(&[0, 0x02, 0x00]),
            networks: None,
        }
        .into(),
        Init {
            global_features: Features::from_bits(&[0]),
            features: Features::from_bits(&[9, 12, 45]),
            networks: Some(vec![ChainHash::BITCOIN, ChainHash::SIGNET]),
        }
        .into(),
        Warning {
            channel_id: cid,
            data: b"fee too low".to_vec(),
        }
        .into(),
        Ping {
            num_pong_bytes: 12,
            ignored: vec![0; 3],
        }
        .into(),
        Pong { ignored: vec![] }.into(),
        channel_update().into(),
        // With its TLV.
        ClosingSigned {
            channel_id: cid,
            fee_satoshis: 4_321,
            signature: sig(52),
            fee_range: Some(ClosingFeeRange {
                min_fee_satoshis: 0x0102_0304_0506_0708,
                max_fee_satoshis: u64::MAX,
            }),
        }
        .into(),
    ]
}

fn channel_update() -> ChannelUpdate {
    let mut u = ChannelUpdate::unsigned(
        ChainHash::TESTNET3,
        chanstore::ShortChannelId::new(0x01_0203, 0x04_0506, 0x0708).unwrap(),
    );
    u.timestamp = 0x1122_3344;
    u.message_flags = 3;
    u.channel_flags = 1;
    u.cltv_expiry_delta = 144;
    u.htlc_minimum_msat = 1;
    u.fee_base_msat = 1000;
    u.fee_proportional_millionths = 100;
    u.htlc_maximum_msat = 0x0102_0304_0506_0708;
    u.sign(&SecretKey::from_slice(&[24; 32]).unwrap());
    u
}

static SAMPLES: LazyLock<Vec<(Message, Vec<u8>)>> = LazyLock::new(|| {
    samples()
        .into_iter()
        .map(|m| {
            let bytes = m.encode();
            (m, bytes)
        })
        .collect()
});

/// Length of a TLV record holding `len` bytes (one-byte type and length).
fn record(len: usize) -> usize {
    assert!(len < 0xfd);
    2 + len
}

/// Length of the TLV extension of a sample: the records its fields write.
fn extension_len(msg: &Message) -> usize {
    let setup = |script: &Option<ScriptBuf>, t: &Option<Features>| {
        script.as_ref().map_or(0, |s| record(s.len()))
            + t.as_ref().map_or(0, |t| record(t.as_wire().len()))
    };
    match msg {
        Message::OpenChannel(m) => setup(&m.shutdown_scriptpubkey, &m.channel_type),
        Message::AcceptChannel(m) => setup(&m.shutdown_scriptpubkey, &m.channel_type),
        Message::Init(m) => m.networks.as_ref().map_or(0, |n| record(32 * n.len())),
        // fee_range: two u64.
        Message::ClosingSigned(m) => m.fee_range.map_or(0, |_| record(16)),
        _ => 0,
    }
}

/// The BOLT type, name and exact encoded length (type included, no
/// extension) of a sample, summed from the spec's field widths.
fn expected_wire(msg: &Message) -> (u16, &'static str, usize) {
    const POINT: usize = 33;
    const SIG: usize = 64;
    let body = match msg {
        Message::Warning(m) => 32 + 2 + m.data.len(),
        Message::Init(m) => 2 + m.global_features.as_wire().len() + 2 + m.features.as_wire().len(),
        Message::Ping(m) => 2 + 2 + m.ignored.len(),
        Message::Pong(m) => 2 + m.ignored.len(),
        Message::OpenChannel(_) => 32 + 32 + 8 * 6 + 4 + 2 + 2 + POINT * 6 + 1,
        Message::AcceptChannel(_) => 32 + 8 * 4 + 4 + 2 + 2 + POINT * 6,
        Message::FundingCreated(_) => 32 + 32 + 2 + SIG,
        Message::FundingSigned(_) => 32 + SIG,
        Message::ChannelReady(_) => 32 + POINT,
        Message::UpdateAddHtlc(_) => 32 + 8 + 8 + 32 + 4 + 1366,
        Message::UpdateFulfillHtlc(_) => 32 + 8 + 32,
        Message::UpdateFailHtlc(m) => 32 + 8 + 2 + m.reason.len(),
        Message::UpdateFailMalformedHtlc(_) => 32 + 8 + 32 + 2,
        Message::CommitmentSigned(m) => 32 + SIG + 2 + SIG * m.htlc_signatures.len(),
        Message::RevokeAndAck(_) => 32 + 32 + POINT,
        Message::UpdateFee(_) => 32 + 4,
        Message::Shutdown(m) => 32 + 2 + m.scriptpubkey.len(),
        Message::ClosingSigned(_) => 32 + 8 + SIG,
        Message::ChannelReestablish(_) => 32 + 8 + 8 + 32 + POINT,
        Message::Error(m) => 32 + 2 + m.data.len(),
        Message::ChannelUpdate(m) => {
            SIG + 32 + 8 + 4 + 1 + 1 + 2 + 8 + 4 + 4 + 8 + m.excess_data.len()
        }
    };
    let (type_id, name) = match msg {
        Message::Warning(_) => (1, "warning"),
        Message::Init(_) => (16, "init"),
        Message::Ping(_) => (18, "ping"),
        Message::Pong(_) => (19, "pong"),
        Message::Error(_) => (17, "error"),
        Message::OpenChannel(_) => (32, "open_channel"),
        Message::AcceptChannel(_) => (33, "accept_channel"),
        Message::FundingCreated(_) => (34, "funding_created"),
        Message::FundingSigned(_) => (35, "funding_signed"),
        Message::ChannelReady(_) => (36, "channel_ready"),
        Message::Shutdown(_) => (38, "shutdown"),
        Message::ClosingSigned(_) => (39, "closing_signed"),
        Message::UpdateAddHtlc(_) => (128, "update_add_htlc"),
        Message::UpdateFulfillHtlc(_) => (130, "update_fulfill_htlc"),
        Message::UpdateFailHtlc(_) => (131, "update_fail_htlc"),
        Message::CommitmentSigned(_) => (132, "commitment_signed"),
        Message::RevokeAndAck(_) => (133, "revoke_and_ack"),
        Message::UpdateFee(_) => (134, "update_fee"),
        Message::UpdateFailMalformedHtlc(_) => (135, "update_fail_malformed_htlc"),
        Message::ChannelReestablish(_) => (136, "channel_reestablish"),
        Message::ChannelUpdate(_) => (258, "channel_update"),
    };
    (type_id, name, 2 + body)
}

#[test]
fn every_message_round_trips() {
    for (msg, bytes) in SAMPLES.iter() {
        assert_eq!(Message::decode(bytes).as_ref(), Ok(msg), "{}", msg.name());
    }
}

#[test]
fn encoding_has_the_bolt_type_name_and_length() {
    let mut seen: Vec<u16> = Vec::new();
    for (msg, bytes) in SAMPLES.iter() {
        let (type_id, name, len) = expected_wire(msg);
        assert_eq!(msg.type_id(), type_id, "{name}");
        assert_eq!(msg.name(), name);
        assert_eq!(bytes[..2], type_id.to_be_bytes(), "{name}");
        assert_eq!(bytes.len(), len + extension_len(msg), "{name}");
        seen.push(type_id);
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, KNOWN_TYPES, "a sample of every message type");
    // The worked example: open_channel is 319 bytes of body after the type.
    assert_eq!(Message::from(open_channel()).encode().len(), 2 + 319);
}

#[test]
fn fields_are_big_endian_in_bolt_order() {
    let msg = Message::from(UpdateFee {
        channel_id: ChannelId(bytes32(0x40)),
        feerate_per_kw: 0x0102_0304,
    });
    let mut expected = vec![0x00, 0x86];
    expected.extend_from_slice(&bytes32(0x40));
    expected.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(msg.encode(), expected);

    // funding_created: the txid goes out in internal byte order, exactly as
    // `Txid::to_byte_array` holds it, and the output index big-endian.
    let created = &SAMPLES[2].1;
    assert_eq!(created[..2], [0x00, 0x22]);
    assert_eq!(created[2 + 32..2 + 64], bytes32(0x80));
    assert_eq!(created[2 + 64..2 + 66], [0x01, 0x02]);

    // open_channel: chain hash as stored by `ChainHash`, then the temporary id.
    let open = &SAMPLES[0].1;
    assert_eq!(open[2..34], *ChainHash::BITCOIN.as_bytes());
    assert_eq!(open[34..66], bytes32(1));
    // channel_flags is the very last byte.
    assert_eq!(open.last(), Some(&1));
}

#[test]
fn channel_id_is_the_one_the_message_names() {
    for (msg, _) in SAMPLES.iter() {
        let expected = match msg {
            Message::OpenChannel(_) | Message::AcceptChannel(_) | Message::FundingCreated(_) => {
                ChannelId(bytes32(1))
            }
            Message::Error(m) => m.channel_id,
            Message::Init(_) | Message::Ping(_) | Message::Pong(_) => ChannelId([0; 32]),
            // Named by short channel id, not by channel id.
            Message::ChannelUpdate(_) => ChannelId([0; 32]),
            _ => ChannelId(bytes32(0x40)),
        };
        assert_eq!(msg.channel_id(), expected, "{}", msg.name());
    }
}

#[test]
fn every_strict_prefix_is_an_error_or_another_message() {
    for (msg, bytes) in SAMPLES.iter() {
        let fixed = expected_wire(msg).2;
        for len in 0..bytes.len() {
            let result = Message::decode(&bytes[..len]);
            if len < fixed {
                assert!(
                    matches!(result, Err(DecodeError::ShortRead { .. })),
                    "{} cut to {len} bytes gave {result:?}",
                    msg.name()
                );
            } else {
                // Inside the extension: cut at a record boundary it is the
                // message without the later records, else a broken stream.
                match result {
                    Ok(other) => assert_ne!(&other, msg, "{} cut to {len}", msg.name()),
                    Err(e) => assert_eq!(
                        e,
                        DecodeError::InvalidTlvStream {
                            message: msg.name()
                        }
                    ),
                }
            }
        }
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("field present in the encoding")
}

#[test]
fn invalid_points_are_named() {
    let cases: Vec<(usize, PublicKey, &str)> = vec![
        (0, key(1), "open_channel.funding_pubkey"),
        (0, key(2), "open_channel.revocation_basepoint"),
        (0, key(3), "open_channel.payment_basepoint"),
        (0, key(4), "open_channel.delayed_payment_basepoint"),
        (0, key(5), "open_channel.htlc_basepoint"),
        (0, key(6), "open_channel.first_per_commitment_point"),
        (1, key(11), "accept_channel.funding_pubkey"),
        (1, key(16), "accept_channel.first_per_commitment_point"),
        (4, key(23), "channel_ready.second_per_commitment_point"),
        (11, key(41), "revoke_and_ack.next_per_commitment_point"),
        (
            15,
            key(61),
            "channel_reestablish.my_current_per_commitment_point",
        ),
    ];
    for (sample, point, field) in cases {
        let mut bytes = SAMPLES[sample].1.clone();
        let at = find(&bytes, &point.serialize());
        // 0x05 is no compressed-point prefix.
        bytes[at] = 0x05;
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::InvalidPublicKey { field }),
            "{field}"
        );
        // An x coordinate off the curve is just as invalid: x = 5 has no y.
        let mut off_curve = [0u8; 33];
        off_curve[0] = 0x02;
        off_curve[32] = 5;
        assert!(PublicKey::from_slice(&off_curve).is_err());
        bytes[at..at + 33].copy_from_slice(&off_curve);
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::InvalidPublicKey { field }),
            "{field}"
        );
    }
}

#[test]
fn invalid_signatures_are_named() {
    let cases: Vec<(usize, Signature, &str)> = vec![
        (2, sig(21), "funding_created.signature"),
        (3, sig(22), "funding_signed.signature"),
        (9, sig(31), "commitment_signed.signature"),
        (9, sig(33), "commitment_signed.htlc_signature"),
        (14, sig(51), "closing_signed.signature"),
    ];
    for (sample, signature, field) in cases {
        let mut bytes = SAMPLES[sample].1.clone();
        let at = find(&bytes, &signature.serialize_compact());
        // r = s = 2^256 - 1 is above the curve order.
        bytes[at..at + 64].copy_from_slice(&[0xff; 64]);
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::InvalidSignature { field }),
            "{field}"
        );
    }
}

#[test]
fn unknown_types_are_reported_odd_and_even() {
    // 137 (odd, unassigned), 256 channel_announcement (even), 32768/65535
    // custom range, 0.
    for t in [0u16, 2, 137, 200, 256, 32_768, 65_535] {
        assert!(!KNOWN_TYPES.contains(&t));
        let mut bytes = t.to_be_bytes().to_vec();
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::UnknownMessageType(t))
        );
        bytes.extend_from_slice(&[0xab; 300]);
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::UnknownMessageType(t))
        );
    }
}

#[test]
fn odd_tlv_records_are_skipped_even_ones_and_junk_refused() {
    for (msg, bytes) in SAMPLES.iter() {
        if let Message::ChannelUpdate(u) = msg {
            // No extension: BOLT 7 signs what follows, kept as it came.
            let mut extended = bytes.clone();
            extended.extend_from_slice(&[0xff; 10]);
            let mut expected = u.clone();
            expected.excess_data.extend_from_slice(&[0xff; 10]);
            let expected = Message::ChannelUpdate(expected);
            assert_eq!(Message::decode(&extended).as_ref(), Ok(&expected));
            assert_eq!(expected.encode(), extended);
            continue;
        }
        let name = msg.name();
        let with = |tail: &[u8]| {
            let mut extended = bytes.clone();
            extended.extend_from_slice(tail);
            Message::decode(&extended)
        };
        // Two odd records (BOLT 1 Appendix C), after any the sample has.
        assert_eq!(
            with(&[0xc9, 0x01, 0x2a, 0xcb, 0x01, 0x04]).as_ref(),
            Ok(msg),
            "{name}"
        );
        // An even one of a type no message knows.
        assert_eq!(
            with(&[0xca, 0x00]),
            Err(DecodeError::UnknownEvenTlv {
                message: name,
                tlv_type: 0xca
            }),
            "{name}"
        );
        // Bytes that are no TLV stream at all.
        assert_eq!(
            with(&[0xff; 1000]),
            Err(DecodeError::InvalidTlvStream { message: name }),
            "{name}"
        );
        // A record out of order.
        assert_eq!(
            with(&[0xcb, 0x00, 0xc9, 0x00]),
            Err(DecodeError::InvalidTlvStream { message: name }),
            "{name}"
        );
    }
}

/// `closing_signed_tlvs` by BOLT 1's rules: `fee_range` (type 1) kept and
/// written back, unknown odd records skipped, unknown even ones and broken
/// streams refused.
#[test]
fn closing_signed_fee_range_tlv() {
    let msg = ClosingSigned {
        channel_id: ChannelId([9; 32]),
        fee_satoshis: 170,
        signature: sig(7),
        fee_range: Some(ClosingFeeRange {
            min_fee_satoshis: 170,
            max_fee_satoshis: 1_170,
        }),
    };
    let bytes = Message::from(msg.clone()).encode();
    let fixed = 2 + 32 + 8 + 64;
    assert_eq!(bytes.len(), fixed + 18);
    assert_eq!(
        &bytes[fixed..],
        &[
            [0x01, 0x10].as_slice(),
            &170u64.to_be_bytes(),
            &1_170u64.to_be_bytes()
        ]
        .concat()[..]
    );
    let with = |tail: &[u8]| {
        let mut b = bytes[..fixed].to_vec();
        b.extend_from_slice(tail);
        Message::decode(&b)
    };
    let range_tlv = &bytes[fixed..];
    assert_eq!(with(range_tlv), Ok(Message::from(msg.clone())));
    // An unknown odd record after it is skipped; alone, too.
    let odd = [range_tlv, &[0x03, 0x02, 0xaa, 0xbb]].concat();
    assert_eq!(with(&odd), Ok(Message::from(msg.clone())));
    let no_range = ClosingSigned {
        fee_range: None,
        ..msg.clone()
    };
    assert_eq!(with(&[0x03, 0x00]), Ok(Message::from(no_range.clone())));
    assert_eq!(with(&[]), Ok(Message::from(no_range)));
    // An unknown even record is refused, before or after fee_range.
    let even = DecodeError::UnknownEvenTlv {
        message: "closing_signed",
        tlv_type: 2,
    };
    assert_eq!(
        with(&[range_tlv, &[0x02, 0x00]].concat()),
        Err(even.clone())
    );
    assert_eq!(
        with(&[0x00, 0x00]),
        Err(DecodeError::UnknownEvenTlv {
            message: "closing_signed",
            tlv_type: 0,
        })
    );
    // fee_range of the wrong length.
    let bad_range = DecodeError::InvalidValue {
        field: "closing_signed.fee_range",
    };
    assert_eq!(
        with(&range_tlv[..range_tlv.len() - 1]),
        Err(DecodeError::InvalidTlvStream {
            message: "closing_signed"
        })
    );
    let mut short = vec![0x01, 0x0f];
    short.extend_from_slice(&[0; 15]);
    assert_eq!(with(&short), Err(bad_range));
    // Not a stream: out of order, repeated, non-canonical, truncated.
    let not_a_stream = DecodeError::InvalidTlvStream {
        message: "closing_signed",
    };
    for tail in [
        [&[0x03, 0x00][..], range_tlv].concat(),
        [range_tlv, range_tlv].concat(),
        vec![0xfd, 0x00, 0x01, 0x00],
        vec![0x03, 0x05, 0x00],
        vec![0x03],
    ] {
        assert_eq!(with(&tail), Err(not_a_stream.clone()), "{tail:02x?}");
    }
}

#[test]
fn setup_tlvs_and_init_networks_are_read() {
    let open = Message::from(OpenChannel {
        shutdown_scriptpubkey: Some(ScriptBuf::new()),
        channel_type: Some(Features::static_remotekey_channel()),
        ..open_channel()
    });
    let bytes = open.encode();
    // After the 319-byte body: TLV 0 (empty script), TLV 1 = 0x1000.
    assert_eq!(&bytes[2 + 319..], &[0x00, 0x00, 0x01, 0x02, 0x10, 0x00]);
    // An even record other than 0 in open_channel is refused.
    let mut two = bytes[..2 + 319].to_vec();
    two.extend_from_slice(&[0x02, 0x00]);
    assert_eq!(
        Message::decode(&two),
        Err(DecodeError::UnknownEvenTlv {
            message: "open_channel",
            tlv_type: 2
        })
    );
    // init's networks: a multiple of 32 bytes.
    let mut init = vec![0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01, 0x05];
    init.extend_from_slice(&[0; 5]);
    assert_eq!(
        Message::decode(&init),
        Err(DecodeError::InvalidValue {
            field: "init.networks"
        })
    );
}

#[test]
fn ping_is_answered_by_bolt1_rules() {
    let ping = |n| Ping {
        num_pong_bytes: n,
        ignored: vec![],
    };
    assert_eq!(
        ping(5).answer(),
        Some(Pong {
            ignored: vec![0; 5]
        })
    );
    assert_eq!(ping(65531).answer().map(|p| p.ignored.len()), Some(65531));
    assert_eq!(ping(65532).answer(), None);
    assert_eq!(ping(u16::MAX).answer(), None);
}

#[test]
fn length_prefixes_longer_than_the_input_are_short_reads() {
    let cid = [0x40; 32];
    let cases: [(u16, &[u8], &str); 4] = [
        (131, &[0; 8], "update_fail_htlc.reason"),
        (38, &[], "shutdown.scriptpubkey"),
        (17, &[], "error.data"),
        (132, &[0; 64], "commitment_signed.htlc_signature"),
    ];
    for (t, middle, field) in cases {
        let mut bytes = t.to_be_bytes().to_vec();
        bytes.extend_from_slice(&cid);
        bytes.extend_from_slice(middle);
        if t == 132 {
            // Replace the zero signature with a real one.
            bytes.truncate(bytes.len() - 64);
            bytes.extend_from_slice(&sig(1).serialize_compact());
        }
        bytes.extend_from_slice(&[0xff, 0xff]); // claims 65535 bytes or sigs
        bytes.extend_from_slice(&[0x00; 100]);
        assert_eq!(
            Message::decode(&bytes),
            Err(DecodeError::ShortRead { field }),
            "{field}"
        );
    }
}

#[test]
fn onion_packet_debug_is_short_and_default_is_zero() {
    let packet = OnionPacket::default();
    assert!(packet.0.iter().all(|&b| b == 0));
    assert_eq!(packet.0.len(), ONION_PACKET_LEN);
    let shown = format!("{:?}", onion());
    assert!(shown.len() < 40, "{shown}");
    assert!(shown.starts_with("OnionPacket(0001020304050607"), "{shown}");
}

#[test]
fn message_debug_keeps_the_preimage_out() {
    let shown = format!("{:?}", SAMPLES[6].0);
    assert!(shown.contains("UpdateFulfillHtlc"));
    assert!(shown.contains("PaymentPreimage(..)"), "{shown}");
}

#[test]
fn decode_error_messages_name_the_field() {
    let err = Message::decode(&[0x00, 0x86, 0x01]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input ends early while reading update_fee.channel_id"
    );
    assert_eq!(
        Message::decode(&[0x00, 0x02]).unwrap_err().to_string(),
        "unknown message type 2"
    );
}

/// Decodes `bytes`; on success the re-encoding must be exactly the prefix of
/// `bytes` that was consumed, and must decode to the same message again.
fn check_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(msg) = Message::decode(bytes) {
        let again = msg.encode();
        prop_assert!(again.len() <= bytes.len());
        prop_assert_eq!(&again[..], &bytes[..again.len()]);
        prop_assert_eq!(Message::decode(&again), Ok(msg));
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_decode(&bytes)?;
    }

    #[test]
    fn arbitrary_bodies_of_known_types_never_panic(
        t in prop::sample::select(KNOWN_TYPES.to_vec()),
        body in prop::collection::vec(any::<u8>(), 0..1600),
    ) {
        let mut bytes = t.to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        check_decode(&bytes)?;
    }

    /// Valid encodings with random bytes overwritten, then cut or extended:
    /// reaches the success paths that random bytes rarely do.
    #[test]
    fn mutated_messages_never_panic_and_round_trip(
        sample in 0..SAMPLES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = SAMPLES[sample].1.clone();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if do_cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        bytes.extend_from_slice(&tail);
        check_decode(&bytes)?;
    }
}
