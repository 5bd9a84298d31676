//! Connection messages (BOLT 1): `init`, `warning`, `ping` and `pong`.
//!
//! None of them concerns a channel: [`crate::Message::channel_id`] is all
//! zero for `init`, `ping` and `pong`.

use bitcoin::constants::ChainHash;

use super::tlv;
use super::wire::{Reader, Writer};
use crate::error::DecodeError;
use crate::features::Features;
use crate::types::ChannelId;

/// `init` (type 16): the first message on every connection, each side's
/// features and the chains it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Init {
    /// `globalfeatures`: the legacy field, bits 0..13 at most. A reader
    /// combines it with `features` ([`Init::combined_features`]).
    pub global_features: Features,
    /// `features`: every feature the sender supports or requires.
    pub features: Features,
    /// The `networks` TLV (type 1): genesis hashes of the chains the sender
    /// is interested in; `None` when absent (any chain).
    pub networks: Option<Vec<ChainHash>>,
}

impl Init {
    /// Length of the fixed-width fields (the two length prefixes), without
    /// the type.
    pub(crate) const FIXED_LEN: usize = 2 + 2;

    /// The `init` this crate sends: [`Features::ours`] (bits up to 13 also
    /// in `globalfeatures`, as BOLT 1 asks for older readers) on `chain`.
    pub fn ours(chain: ChainHash) -> Init {
        let features = Features::ours();
        let global = features.bits().filter(|&b| b <= 13).collect::<Vec<_>>();
        Init {
            global_features: Features::from_bits(&global),
            features,
            networks: Some(vec![chain]),
        }
    }

    /// `globalfeatures` OR `features` (BOLT 1: the reader's view).
    pub fn combined_features(&self) -> Features {
        self.features.union(&self.global_features)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let global_features = Features::from_wire(&r.read_u16_prefixed("init.globalfeatures")?);
        let features = Features::from_wire(&r.read_u16_prefixed("init.features")?);
        // Type 3 (`remote_addr`) is odd: skipped.
        let records = tlv::read_stream(r, "init", &[])?;
        let networks = match tlv::find(&records, 1) {
            None => None,
            Some(v) if v.len() % 32 != 0 => {
                return Err(DecodeError::InvalidValue {
                    field: "init.networks",
                })
            }
            Some(v) => Some(
                v.chunks_exact(32)
                    .map(|c| {
                        let mut h = [0; 32];
                        h.copy_from_slice(c);
                        ChainHash::from(h)
                    })
                    .collect(),
            ),
        };
        Ok(Init {
            global_features,
            features,
            networks,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_u16_prefixed(self.global_features.as_wire(), "init.globalfeatures");
        w.write_u16_prefixed(self.features.as_wire(), "init.features");
        if let Some(networks) = &self.networks {
            let bytes: Vec<u8> = networks.iter().flat_map(|h| *h.as_bytes()).collect();
            tlv::write_record(w, 1, &bytes);
        }
    }
}

/// `warning` (type 1): something is wrong but the sender does not fail the
/// channel (unlike `error`). All-zero `channel_id`: the connection as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The channel, or all zero.
    pub channel_id: ChannelId,
    /// Free-form diagnostic bytes (at most 65535).
    pub data: Vec<u8>,
}

impl Warning {
    /// Length of the fixed-width fields (the data length prefix included).
    pub(crate) const FIXED_LEN: usize = 32 + 2;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Warning {
            channel_id: ChannelId(r.read_array("warning.channel_id")?),
            data: r.read_u16_prefixed("warning.data")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_bytes(self.channel_id.as_bytes());
        w.write_u16_prefixed(&self.data, "warning.data");
    }
}

/// `ping` (type 18): asks for a `pong` of `num_pong_bytes` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ping {
    /// Size of the `pong` payload asked for; 65532 or more asks for none.
    pub num_pong_bytes: u16,
    /// Padding, ignored by the receiver.
    pub ignored: Vec<u8>,
}

/// A `ping` asking for this many bytes or more gets no `pong` (BOLT 1).
pub const PING_NO_PONG: u16 = 65532;

impl Ping {
    /// Length of the fixed-width fields.
    pub(crate) const FIXED_LEN: usize = 2 + 2;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Ping {
            num_pong_bytes: r.read_u16("ping.num_pong_bytes")?,
            ignored: r.read_u16_prefixed("ping.ignored")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_u16(self.num_pong_bytes);
        w.write_u16_prefixed(&self.ignored, "ping.ignored");
    }

    /// The answer BOLT 1 asks for: `num_pong_bytes` zero bytes, or none at
    /// all for [`PING_NO_PONG`] and above.
    pub fn answer(&self) -> Option<Pong> {
        (self.num_pong_bytes < PING_NO_PONG).then(|| Pong {
            ignored: vec![0; usize::from(self.num_pong_bytes)],
        })
    }
}

/// `pong` (type 19): the answer to a `ping`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pong {
    /// Payload, ignored by the receiver.
    pub ignored: Vec<u8>,
}

impl Pong {
    /// Length of the fixed-width fields.
    pub(crate) const FIXED_LEN: usize = 2;

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Pong {
            ignored: r.read_u16_prefixed("pong.ignored")?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.write_u16_prefixed(&self.ignored, "pong.ignored");
    }
}
