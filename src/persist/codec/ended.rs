//! HTLCs kept for the peer's revoked commitments (`channel/ended.rs`),
//! each a fixed 53 bytes: offered (u8: 1 we offered it, 0 the peer did),
//! id u64, amount u64, payment hash, cltv expiry u32. A list is a u32
//! count, then its entries; a `Key::EndedHtlc` record is record 0, one
//! entry, whose direction and id must be the key's.

use crate::error::DecodeError;
use crate::onchain::{HtlcDirection, RevokedHtlc};
use crate::persist::tlv::{Cursor, TlvReader, TlvWriter};
use crate::types::PaymentHash;

/// Bytes of one entry.
const ENTRY_LEN: usize = 53;

fn put_entry(out: &mut Vec<u8>, h: &RevokedHtlc) {
    out.push(u8::from(h.direction == HtlcDirection::Offered));
    out.extend_from_slice(&h.htlc_id.to_be_bytes());
    out.extend_from_slice(&h.amount_msat.to_be_bytes());
    out.extend_from_slice(&h.payment_hash.0);
    out.extend_from_slice(&h.cltv_expiry.to_be_bytes());
}

fn get_entry(c: &mut Cursor<'_>) -> Result<RevokedHtlc, DecodeError> {
    let direction = if c.bool()? {
        HtlcDirection::Offered
    } else {
        HtlcDirection::Received
    };
    Ok(RevokedHtlc {
        direction,
        htlc_id: c.u64()?,
        amount_msat: c.u64()?,
        payment_hash: PaymentHash(c.array()?),
        cltv_expiry: c.u32()?,
    })
}

/// A list of entries: its count, then each.
pub(crate) fn put_revoked_htlcs(out: &mut Vec<u8>, list: &[RevokedHtlc]) {
    out.extend_from_slice(&(list.len() as u32).to_be_bytes());
    for h in list {
        put_entry(out, h);
    }
}

/// Reads what [`put_revoked_htlcs`] wrote, the whole of `c`; an HTLC
/// listed twice is corruption.
pub(crate) fn get_revoked_htlcs(c: &mut Cursor<'_>) -> Result<Vec<RevokedHtlc>, DecodeError> {
    let n = c.count(ENTRY_LEN)?;
    let mut list = Vec::with_capacity(n);
    for _ in 0..n {
        list.push(get_entry(c)?);
    }
    c.end()?;
    let mut ids: Vec<_> = list.iter().map(|h| (h.direction, h.htlc_id)).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(DecodeError::InvalidValue {
            field: "revoked_htlcs (an HTLC twice)",
        });
    }
    Ok(list)
}

/// The `Key::EndedHtlc` record of `h`.
pub(crate) fn encode_ended_htlc(h: &RevokedHtlc) -> Vec<u8> {
    TlvWriter::new().with(0, |out| put_entry(out, h)).finish()
}

/// Decodes the `Key::EndedHtlc(_, offered, id)` record.
pub(crate) fn decode_ended_htlc(
    bytes: &[u8],
    offered: bool,
    id: u64,
) -> Result<RevokedHtlc, DecodeError> {
    let r = TlvReader::parse(bytes, &[0], "ended htlc")?;
    let mut c = r.cursor(0, "ended_htlc")?;
    let h = get_entry(&mut c)?;
    c.end()?;
    if (h.direction == HtlcDirection::Offered, h.htlc_id) != (offered, id) {
        return Err(DecodeError::InvalidValue {
            field: "ended_htlc (not the HTLC its key names)",
        });
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(direction: HtlcDirection, htlc_id: u64) -> RevokedHtlc {
        RevokedHtlc {
            direction,
            htlc_id,
            payment_hash: PaymentHash([7; 32]),
            amount_msat: 5_000_000,
            cltv_expiry: 800_144,
        }
    }

    /// Lists and records read back what was written; a cut entry, an HTLC
    /// twice, and a record under another HTLC's key are refused.
    #[test]
    fn entries_are_whole_unique_and_under_their_own_key() {
        let list = [
            entry(HtlcDirection::Offered, 3),
            entry(HtlcDirection::Received, 3),
        ];
        let mut out = Vec::new();
        put_revoked_htlcs(&mut out, &list);
        assert_eq!(out.len(), 4 + 2 * ENTRY_LEN);
        assert_eq!(
            get_revoked_htlcs(&mut Cursor::new(&out, "t")).unwrap(),
            list
        );
        assert!(get_revoked_htlcs(&mut Cursor::new(&out[..out.len() - 1], "t")).is_err());
        let mut twice = Vec::new();
        put_revoked_htlcs(&mut twice, &[list[0], list[0]]);
        assert!(get_revoked_htlcs(&mut Cursor::new(&twice, "t")).is_err());

        let record = encode_ended_htlc(&list[1]);
        assert_eq!(decode_ended_htlc(&record, false, 3), Ok(list[1]));
        assert!(decode_ended_htlc(&record, true, 3).is_err());
        assert!(decode_ended_htlc(&record, false, 4).is_err());
    }
}
