//! Bytes between LDK and chanstore, as a `PeerManager` would move them.
//!
//! LDK side out: every `MessageSendEvent` becomes the wire messages
//! `PeerManager::process_events` would write for it
//! (lightning-0.2.7/src/ln/peer_handler.rs:2916-3340), each one
//! `Type::type_id()` (2 bytes, big-endian) followed by `Writeable::encode()`
//! (`ln/wire.rs:434`, `write`). `UpdateHTLCs` is split in the same order:
//! fulfills, fails, malformed, adds, fee, `commitment_signed`
//! (`peer_handler.rs:3090-3114`).
//!
//! LDK side in: the bytes chanstore wrote are parsed by the message type's
//! own `LengthReadable::read_from_fixed_length_buffer`, as
//! `ln/wire.rs:258` (`do_read`) does, then handed to the matching
//! `ChannelMessageHandler::handle_*` (`peer_handler.rs`, `handle_message`).

use bitcoin::secp256k1::PublicKey;
use lightning::ln::msgs::MessageSendEvent;
use lightning::ln::msgs::{self, BaseMessageHandler, ChannelMessageHandler, ErrorAction};
use lightning::ln::wire::Type;
use lightning::util::ser::{LengthReadable, Writeable};

/// One message as it goes on the wire (BOLT 1): type, then payload.
pub fn frame<M: Type + Writeable>(msg: &M) -> Vec<u8> {
    let mut bytes = msg.type_id().to_be_bytes().to_vec();
    bytes.extend_from_slice(&msg.encode());
    bytes
}

/// The BOLT name of a message type, for the transcript.
pub fn type_name(type_id: u16) -> String {
    let name = match type_id {
        1 => "warning",
        16 => "init",
        17 => "error",
        18 => "ping",
        19 => "pong",
        32 => "open_channel",
        33 => "accept_channel",
        34 => "funding_created",
        35 => "funding_signed",
        36 => "channel_ready",
        38 => "shutdown",
        39 => "closing_signed",
        128 => "update_add_htlc",
        130 => "update_fulfill_htlc",
        131 => "update_fail_htlc",
        132 => "commitment_signed",
        133 => "revoke_and_ack",
        134 => "update_fee",
        135 => "update_fail_malformed_htlc",
        136 => "channel_reestablish",
        256 => "channel_announcement",
        258 => "channel_update",
        259 => "announcement_signatures",
        _ => return format!("type {type_id}"),
    };
    name.to_string()
}

/// The type of a framed message (0xffff if there is none).
pub fn type_of(bytes: &[u8]) -> u16 {
    match bytes {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0xffff,
    }
}

/// What LDK's `PeerManager` does with one `MessageSendEvent`.
#[derive(Debug)]
pub enum Out {
    /// Write this message to `to`.
    Msg { to: PublicKey, bytes: Vec<u8> },
    /// Disconnect `peer` (after writing what came before).
    Disconnect { peer: PublicKey, why: String },
    /// Nothing goes on the wire; LDK only logs (`IgnoreError`,
    /// `IgnoreAndLog`), or broadcasts gossip to everyone.
    Note {
        peer: Option<PublicKey>,
        what: String,
    },
}

fn msg<M: Type + Writeable>(to: &PublicKey, m: &M) -> Out {
    Out::Msg {
        to: *to,
        bytes: frame(m),
    }
}

/// The wire messages (and disconnections) `PeerManager::process_events`
/// makes of `event`.
pub fn ldk_event_to_wire(event: MessageSendEvent) -> Vec<Out> {
    use MessageSendEvent as E;
    match event {
        E::SendAcceptChannel { node_id, msg: m } => vec![msg(&node_id, &m)],
        E::SendOpenChannel { node_id, msg: m } => vec![msg(&node_id, &m)],
        E::SendFundingCreated { node_id, msg: m } => vec![msg(&node_id, &m)],
        E::SendFundingSigned { node_id, msg: m } => vec![msg(&node_id, &m)],
        E::SendChannelReady { node_id, msg: m } => vec![msg(&node_id, &m)],
        E::SendAnnouncementSignatures { node_id, msg: m } => vec![msg(&node_id, &m)],
        E::UpdateHTLCs {
            node_id, updates, ..
        } => {
            let msgs::CommitmentUpdate {
                update_add_htlcs,
                update_fulfill_htlcs,
                update_fail_htlcs,
                update_fail_malformed_htlcs,
                update_fee,
                commitment_signed,
            } = updates;
            let mut out = Vec::new();
            // peer_handler.rs:3090-3114: this order, exactly.
            out.extend(update_fulfill_htlcs.iter().map(|m| msg(&node_id, m)));
            out.extend(update_fail_htlcs.iter().map(|m| msg(&node_id, m)));
            out.extend(update_fail_malformed_htlcs.iter().map(|m| msg(&node_id, m)));
            out.extend(update_add_htlcs.iter().map(|m| msg(&node_id, m)));
            out.extend(update_fee.iter().map(|m| msg(&node_id, m)));
            assert!(
                commitment_signed.len() <= 1,
                "a commitment_signed batch (splicing) is not expected here"
            );
            out.extend(commitment_signed.iter().map(|m| msg(&node_id, m)));
            out
        }
        E::SendRevokeAndACK { node_id, msg: m } => vec![msg(&node_id, &m)],
        E::SendClosingSigned { node_id, msg: m } => vec![msg(&node_id, &m)],
        E::SendShutdown { node_id, msg: m } => vec![msg(&node_id, &m)],
        E::SendChannelReestablish { node_id, msg: m } => vec![msg(&node_id, &m)],
        E::SendChannelUpdate { node_id, msg: m } => vec![msg(&node_id, &m)],
        E::SendChannelAnnouncement {
            node_id,
            msg: m,
            update_msg,
        } => vec![msg(&node_id, &m), msg(&node_id, &update_msg)],
        E::BroadcastChannelUpdate { msg: m } => vec![Out::Note {
            peer: None,
            what: format!(
                "broadcast channel_update for scid {}",
                m.contents.short_channel_id
            ),
        }],
        E::BroadcastChannelAnnouncement { msg: m, .. } => vec![Out::Note {
            peer: None,
            what: format!(
                "broadcast channel_announcement for scid {}",
                m.contents.short_channel_id
            ),
        }],
        E::BroadcastNodeAnnouncement { .. } => vec![Out::Note {
            peer: None,
            what: "broadcast node_announcement".into(),
        }],
        E::HandleError { node_id, action } => match action {
            // peer_handler.rs:3262-3332.
            ErrorAction::DisconnectPeer { msg: m } => {
                let why = m
                    .as_ref()
                    .map(|m| format!("DisconnectPeer with error {:?}", m.data))
                    .unwrap_or_else(|| "DisconnectPeer".into());
                let mut out: Vec<Out> = m.iter().map(|m| msg(&node_id, m)).collect();
                out.push(Out::Disconnect { peer: node_id, why });
                out
            }
            ErrorAction::DisconnectPeerWithWarning { msg: m } => vec![
                msg(&node_id, &m),
                Out::Disconnect {
                    peer: node_id,
                    why: format!("DisconnectPeerWithWarning {:?}", m.data),
                },
            ],
            // An error closes the channel it names (or all): LDK failed
            // them, which `Net::assert_clean` must see.
            ErrorAction::SendErrorMessage { msg: m } => vec![
                msg(&node_id, &m),
                Out::Note {
                    peer: Some(node_id),
                    what: format!("HandleError SendErrorMessage {:?}", m.data),
                },
            ],
            ErrorAction::SendWarningMessage { msg: m, .. } => vec![msg(&node_id, &m)],
            ErrorAction::IgnoreError => vec![Out::Note {
                peer: Some(node_id),
                what: "HandleError IgnoreError".into(),
            }],
            ErrorAction::IgnoreAndLog(level) => vec![Out::Note {
                peer: Some(node_id),
                what: format!("HandleError IgnoreAndLog({level:?})"),
            }],
            ErrorAction::IgnoreDuplicateGossip => vec![],
        },
        other => panic!("MessageSendEvent the harness does not route: {other:?}"),
    }
}

fn read<M: LengthReadable>(payload: &[u8], name: &str) -> Result<M, String> {
    let mut r = payload;
    M::read_from_fixed_length_buffer(&mut r)
        .map_err(|e| format!("LDK cannot read chanstore's {name}: {e:?}"))
}

/// What LDK made of bytes chanstore sent it.
pub struct Delivered {
    /// The message, as LDK's `Debug` prints it.
    pub parsed: String,
    /// LDK's own encoding of what it parsed, when it differs from the bytes
    /// received (a field LDK reads differently, or bytes it dropped).
    pub reencoded_differs: Option<Vec<u8>>,
}

/// Parses `bytes` (one framed message from chanstore) with LDK's readers
/// and hands it to `cm` as `PeerManager` would. `Err` is a message LDK
/// could not read (its `PeerManager` would disconnect) or one it has no
/// handler for.
pub fn deliver_to_ldk<CM>(cm: &CM, from: PublicKey, bytes: &[u8]) -> Result<Delivered, String>
where
    CM: ChannelMessageHandler + BaseMessageHandler,
{
    let t = type_of(bytes);
    let payload = bytes.get(2..).unwrap_or(&[]);
    let name = type_name(t);
    macro_rules! go {
        ($ty:ty, |$m:ident| $call:expr) => {{
            let $m: $ty = read(payload, &name)?;
            let again = frame(&$m);
            let parsed = format!("{:?}", $m);
            $call;
            Ok(Delivered {
                parsed,
                reencoded_differs: (again != bytes).then_some(again),
            })
        }};
    }
    match t {
        17 => go!(msgs::ErrorMessage, |m| cm.handle_error(from, &m)),
        1 => go!(msgs::WarningMessage, |m| {
            // PeerManager only logs a warning (peer_handler.rs, Warning arm).
            let _ = &m;
        }),
        32 => go!(msgs::OpenChannel, |m| cm.handle_open_channel(from, &m)),
        33 => go!(msgs::AcceptChannel, |m| cm.handle_accept_channel(from, &m)),
        34 => go!(msgs::FundingCreated, |m| cm
            .handle_funding_created(from, &m)),
        35 => go!(msgs::FundingSigned, |m| cm.handle_funding_signed(from, &m)),
        36 => go!(msgs::ChannelReady, |m| cm.handle_channel_ready(from, &m)),
        38 => go!(msgs::Shutdown, |m| cm.handle_shutdown(from, &m)),
        39 => go!(msgs::ClosingSigned, |m| cm.handle_closing_signed(from, &m)),
        128 => go!(msgs::UpdateAddHTLC, |m| cm.handle_update_add_htlc(from, &m)),
        130 => go!(msgs::UpdateFulfillHTLC, |m| cm
            .handle_update_fulfill_htlc(from, m.clone())),
        131 => go!(msgs::UpdateFailHTLC, |m| cm
            .handle_update_fail_htlc(from, &m)),
        132 => go!(msgs::CommitmentSigned, |m| cm
            .handle_commitment_signed(from, &m)),
        133 => go!(msgs::RevokeAndACK, |m| cm.handle_revoke_and_ack(from, &m)),
        134 => go!(msgs::UpdateFee, |m| cm.handle_update_fee(from, &m)),
        135 => go!(msgs::UpdateFailMalformedHTLC, |m| cm
            .handle_update_fail_malformed_htlc(from, &m)),
        136 => go!(msgs::ChannelReestablish, |m| cm
            .handle_channel_reestablish(from, &m)),
        // PeerManager also gives it to the router (peer_handler.rs,
        // ChannelUpdate arm); only the channel manager matters here.
        258 => go!(msgs::ChannelUpdate, |m| cm.handle_channel_update(from, &m)),
        other => Err(format!(
            "the harness has no LDK handler for {} from chanstore",
            type_name(other)
        )),
    }
}

/// A `channel_update` (type 258 first, as BOLT 4 failure data carries it)
/// read with LDK's own reader. Panics if LDK cannot read it.
pub fn read_ldk_channel_update(bytes: &[u8]) -> msgs::ChannelUpdate {
    assert_eq!(type_of(bytes), 258, "a channel_update: {}", hex(bytes));
    read(&bytes[2..], "channel_update").unwrap()
}

/// Whether `update` is signed by `node_id` as LDK's router checks it: the
/// double SHA-256 of LDK's own encoding of the signed part
/// (routing/gossip.rs, `update_channel_internal`; sign/mod.rs:2399-2402).
pub fn ldk_update_signed_by(update: &msgs::ChannelUpdate, node_id: &PublicKey) -> bool {
    use bitcoin::hashes::{sha256d, Hash};
    let digest = sha256d::Hash::hash(&update.contents.encode()).to_byte_array();
    let msg = bitcoin::secp256k1::Message::from_digest(digest);
    bitcoin::secp256k1::Secp256k1::verification_only()
        .verify_ecdsa(&msg, &update.signature, node_id)
        .is_ok()
}

/// `hex` of some bytes, for the transcript and the findings.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A few fields of a framed message worth seeing in the transcript.
pub fn detail(bytes: &[u8]) -> String {
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
    };
    match type_of(bytes) {
        39 => {
            let fee = u64_at(34).unwrap_or(0);
            let tlvs = parse_tlvs(bytes.get(106..).unwrap_or(&[]));
            let range = tlvs
                .unwrap_or_default()
                .into_iter()
                .find(|(t, _)| *t == 1)
                .map(|(_, v)| {
                    let min = u64::from_be_bytes(v[..8].try_into().unwrap());
                    let max = u64::from_be_bytes(v[8..16].try_into().unwrap());
                    format!(", fee_range {min}..={max}")
                })
                .unwrap_or_else(|| ", no fee_range".into());
            format!(" fee {fee} sat{range}")
        }
        134 => format!(" feerate {} sat/kw", u32_at(34).unwrap_or(0)),
        258 => format!(
            " scid {} flags {:?} cltv_delta {} fee {}+{}ppm",
            u64_at(98).map_or("?".into(), |s| chanstore::ShortChannelId::from_u64(s)
                .to_string()),
            bytes.get(110..112).unwrap_or(&[]),
            bytes
                .get(112..114)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]])),
            u32_at(122).unwrap_or(0),
            u32_at(126).unwrap_or(0),
        ),
        128 => format!(
            " id {} amount {} msat cltv {}",
            u64_at(34).unwrap_or(0),
            u64_at(42).unwrap_or(0),
            u32_at(82).unwrap_or(0)
        ),
        130 | 131 | 135 => format!(" id {}", u64_at(34).unwrap_or(0)),
        132 => format!(
            " {} htlc sigs",
            bytes
                .get(98..100)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .unwrap_or(0)
        ),
        136 => format!(
            " next_commitment {} next_revocation {}",
            u64_at(34).unwrap_or(0),
            u64_at(42).unwrap_or(0)
        ),
        17 | 1 => {
            let len = bytes
                .get(34..36)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                .unwrap_or(0);
            let data = bytes.get(36..36 + len).unwrap_or(&[]);
            format!(" {:?}", String::from_utf8_lossy(data))
        }
        _ => String::new(),
    }
}

/// Where the fixed fields of a BOLT 2 message end (type included): the
/// TLV stream, if any, starts there.
pub fn fixed_end(bytes: &[u8]) -> Option<usize> {
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    Some(match type_of(bytes) {
        1 | 17 | 38 => 2 + 32 + 2 + u16_at(34)?,
        32 => 2 + 319,
        33 => 2 + 270,
        34 => 2 + 130,
        35 => 2 + 96,
        36 => 2 + 65,
        39 => 2 + 104,
        128 => 2 + 1450,
        130 => 2 + 72,
        131 => 2 + 42 + u16_at(42)?,
        132 => 2 + 98 + 64 * u16_at(98)?,
        133 => 2 + 97,
        134 => 2 + 36,
        135 => 2 + 74,
        136 => 2 + 113,
        _ => return None,
    })
}

/// The TLV records after a message's fixed fields, as `type:len`.
pub fn tlv_summary(bytes: &[u8]) -> String {
    let Some(end) = fixed_end(bytes) else {
        return String::new();
    };
    match bytes.get(end..) {
        None | Some([]) => String::new(),
        Some(tail) => match parse_tlvs(tail) {
            Some(tlvs) => format!(
                " tlvs [{}]",
                tlvs.iter()
                    .map(|(t, v)| format!("{t}:{}", v.len()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!(" {} trailing bytes (no TLV stream)", tail.len()),
        },
    }
}

/// BOLT 1 `BigSize`: the value and how many bytes it took.
fn read_bigsize(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let (len, v) = match first {
        0xfd => (
            3,
            u64::from(u16::from_be_bytes(bytes.get(1..3)?.try_into().ok()?)),
        ),
        0xfe => (
            5,
            u64::from(u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?)),
        ),
        0xff => (9, u64::from_be_bytes(bytes.get(1..9)?.try_into().ok()?)),
        b => (1, u64::from(b)),
    };
    Some((v, len))
}

/// A TLV stream, parsed (BOLT 1): `(type, value)` in order. `None` if it
/// is not one.
pub fn parse_tlvs(mut bytes: &[u8]) -> Option<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (t, n) = read_bigsize(bytes)?;
        bytes = &bytes[n..];
        let (len, n) = read_bigsize(bytes)?;
        bytes = &bytes[n..];
        let len = usize::try_from(len).ok()?;
        out.push((t, bytes.get(..len)?.to_vec()));
        bytes = &bytes[len..];
    }
    Some(out)
}
