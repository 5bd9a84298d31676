//! The one secp256k1 context the crate signs and verifies with, and a
//! precomputed table for multiplying the generator by *public* scalars.
//!
//! # The generator table
//!
//! BOLT 3's `localpubkey`, `local_htlcpubkey`, `remote_htlcpubkey`,
//! `local_delayedpubkey` and `remote_delayedpubkey` are each
//! `basepoint + SHA256(per_commitment_point || basepoint) * G`, and the
//! receiver of `revoke_and_ack` checks that the revealed secret `s` gives
//! the previous point, `s * G`. Every scalar there is public: a hash of two
//! public points, or a secret the peer has just given away. libsecp256k1's
//! own calls for them (`ec_pubkey_tweak_add`, `ec_pubkey_create`) cost
//! 22 to 24 µs on the 2-core machine: the first runs 129 shared point
//! doublings, the second a constant-time comb that reads its whole table
//! for every digit.
//!
//! For a public scalar neither is needed. [`GENERATOR_TABLE`] holds
//! `b * 256^i * G` for every byte position `i` (0 to 31) and byte value `b`
//! (1 to 255), so `k * G` is the sum of one entry per nonzero byte of `k`:
//! at most 32 additions and one inversion, in a single
//! `PublicKey::combine_keys` (libsecp256k1's `ec_pubkey_combine`), with no
//! doubling at all. That is about 10.5 µs against 23.6 µs for
//! `tweak_add` (`examples/ec_costs`). The table has 8,160 points (522 KB)
//! and is built once per process, on first use, in about 25 ms.
//!
//! Which entries are read depends on the scalar's bytes, so the time and
//! the cache lines touched depend on the scalar: **never pass a secret**.
//! Multiplications by secrets (per-commitment points of our own, the known
//! term of a revocation key, signatures) stay on libsecp256k1's
//! constant-time paths.

use std::sync::LazyLock;

use bitcoin::secp256k1::{All, PublicKey, Scalar, Secp256k1, SecretKey};

/// Shared signing and verification context. `Secp256k1<All>` is `Send + Sync`
/// and every operation takes `&self`, so one context serves every thread;
/// building it once avoids the ~1 ms table setup per use.
pub(crate) static SECP: LazyLock<Secp256k1<All>> = LazyLock::new(Secp256k1::new);

/// Byte values per byte position in the table (1 to 255; 0 adds nothing).
const ENTRIES: usize = 255;

/// `b * 256^i * G` at index `i * 255 + (b - 1)`, for `i` in 0..32 (byte
/// `31 - i` of a big-endian scalar) and `b` in 1..=255.
static GENERATOR_TABLE: LazyLock<Box<[PublicKey]>> = LazyLock::new(|| {
    let one = SecretKey::from_slice(&{
        let mut b = [0; 32];
        b[31] = 1;
        b
    })
    .expect("1 is a valid secret key");
    window_multiples(&PublicKey::from_secret_key(&SECP, &one), 32, ENTRIES, 8)
});

/// `j * 2^(bits * i) * point` at index `i * entries + (j - 1)`, for each
/// window `i` below `windows` and `j` in `1..=entries`, where `entries` is
/// at least half of `2^bits` (the generator table's 255 of 256, a point
/// table's 32 of 64): one addition per entry, each window's base the sum of
/// two entries of the window below. Never the point at infinity: every
/// multiple is of a nonzero point by a number far below the group order.
fn window_multiples(
    point: &PublicKey,
    windows: usize,
    entries: usize,
    bits: u32,
) -> Box<[PublicKey]> {
    let span = 1usize << bits;
    debug_assert!(2 * entries >= span && entries < span);
    let mut table = Vec::with_capacity(windows * entries);
    let mut base = *point;
    for _ in 0..windows {
        let start = table.len();
        let mut entry = base;
        table.push(entry);
        for _ in 1..entries {
            entry = entry
                .combine(&base)
                .expect("a small multiple is not infinity");
            table.push(entry);
        }
        // span * base = entries * base + (span - entries) * base.
        base = entry
            .combine(&table[start + span - entries - 1])
            .expect("a small multiple is not infinity");
    }
    table.into_boxed_slice()
}

/// `point + k * G` (or `k * G` when `point` is `None`) for a **public**
/// `k`, in variable time (module docs). `None` when the sum is the point
/// at infinity, or when `k` is zero and there is no `point`.
fn public_sum(point: Option<&PublicKey>, k: &[u8; 32]) -> Option<PublicKey> {
    let table = &*GENERATOR_TABLE;
    let first = point.unwrap_or(&table[0]);
    let mut terms = [first; 33];
    let mut n = usize::from(point.is_some());
    for (i, &byte) in k.iter().rev().enumerate() {
        if byte != 0 {
            terms[n] = &table[i * ENTRIES + usize::from(byte) - 1];
            n += 1;
        }
    }
    if n == 0 {
        return None;
    }
    PublicKey::combine_keys(&terms[..n]).ok()
}

/// `point + k * G` for a public scalar `k` (what
/// `point.add_exp_tweak(&SECP, k)` computes, twice as fast; module docs).
/// `None` only when the sum is the point at infinity.
pub(crate) fn add_public_multiple(point: &PublicKey, k: &Scalar) -> Option<PublicKey> {
    public_sum(Some(point), &k.to_be_bytes())
}

/// `s * G` for a secret that is **no longer secret** (one a peer has
/// revealed): what `PublicKey::from_secret_key` computes, twice as fast,
/// in variable time (module docs).
pub(crate) fn public_point_of(s: &SecretKey) -> PublicKey {
    public_sum(None, &s.secret_bytes()).expect("a valid secret key is nonzero below the order")
}

/// Bits per digit of a [`PointTable`]'s signed windows.
const WINDOW_BITS: usize = 6;
/// Windows of a 256-bit scalar: enough to cover 257 bits, so the carry out
/// of the top window (at most half its range plus one) never spills over.
const WINDOWS: usize = 257_usize.div_ceil(WINDOW_BITS);
/// Entries per window: the digit magnitudes 1 to 32.
const HALF: usize = 1 << (WINDOW_BITS - 1);

/// `j * 64^i * P` for one fixed point `P`, every window `i` (0 to 42) and
/// digit magnitude `j` (1 to 32): 1,376 points, 88 KB, built in about
/// 3.5 ms. With it `k * P`, for a **public** `k`, is one sum of at most 43
/// entries (a negative digit adds the entry's negation), in one
/// `ec_pubkey_combine` and no doubling: about 14 µs against 30 µs for
/// `ec_pubkey_tweak_mul` (`examples/ec_costs`).
///
/// A channel's two revocation basepoints are fixed for its life and each
/// of its revocation keys multiplies one of them by a hash of public
/// points, so a busy channel keeps a table of each
/// ([`crate::keys::RevocationBasepointTable`]). Variable time, like the
/// generator table: **never a secret scalar**.
#[derive(Clone)]
pub(crate) struct PointTable {
    point: PublicKey,
    entries: Box<[PublicKey]>,
}

impl PointTable {
    /// The table of `point`: 1,419 point additions.
    pub(crate) fn new(point: &PublicKey) -> Self {
        PointTable {
            point: *point,
            entries: window_multiples(point, WINDOWS, HALF, WINDOW_BITS as u32),
        }
    }

    /// The point the table multiplies.
    pub(crate) fn point(&self) -> &PublicKey {
        &self.point
    }

    /// `extra + k * P` for a **public** `k`, in variable time. `None` only
    /// when the sum is the point at infinity.
    pub(crate) fn add_multiple_to(&self, extra: &PublicKey, k: &Scalar) -> Option<PublicKey> {
        let bytes = k.to_be_bytes();
        // k as little-endian 64-bit limbs.
        let limb = |i: usize| {
            let at = 32 - 8 * (i + 1);
            u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
        };
        let limbs = [limb(0), limb(1), limb(2), limb(3)];
        // WINDOW_BITS bits of k from bit `low` up (zero above bit 255).
        let window = |low: usize| -> usize {
            let (i, shift) = (low / 64, low % 64);
            let mut v = limbs[i] >> shift;
            if shift + WINDOW_BITS > 64 && i + 1 < 4 {
                v |= limbs[i + 1] << (64 - shift);
            }
            (v & ((1 << WINDOW_BITS) - 1)) as usize
        };
        // Signed digits in -31..=32: a window's value plus the carry is
        // 0..=64; above 32 it is taken as value - 64 and carries one.
        let mut negated = [*extra; WINDOWS];
        let mut terms = [extra; WINDOWS + 1];
        let mut negative = [None; WINDOWS + 1];
        let mut n = 1;
        let mut carry = 0;
        let windows = negated.iter_mut().zip(self.entries.chunks_exact(HALF));
        for (w, (slot, entries)) in windows.enumerate() {
            let value = window(w * WINDOW_BITS) + carry;
            carry = usize::from(value > HALF);
            let magnitude = if carry == 1 { 2 * HALF - value } else { value };
            if magnitude != 0 {
                let entry = &entries[magnitude - 1];
                if carry == 1 {
                    *slot = entry.negate(&SECP);
                    negative[n] = Some(w);
                } else {
                    terms[n] = entry;
                }
                n += 1;
            }
        }
        debug_assert_eq!(carry, 0, "k < 2^256 leaves no carry out of 257 bits");
        for (term, w) in terms.iter_mut().zip(negative) {
            if let Some(w) = w {
                *term = &negated[w];
            }
        }
        PublicKey::combine_keys(&terms[..n]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use proptest::prelude::*;

    /// The group order minus one, the largest valid scalar.
    const ORDER_MINUS_ONE: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x40,
    ];

    /// A point for any `seed` (`[seed; 32]` itself is not a valid secret
    /// for 0 or from 0xff up).
    fn point(seed: u8) -> PublicKey {
        let secret = bitcoin::hashes::sha256::Hash::hash(&[seed]).to_byte_array();
        PublicKey::from_secret_key(&SECP, &SecretKey::from_slice(&secret).unwrap())
    }

    /// Both functions against libsecp256k1's own calls for one scalar.
    fn check(bytes: [u8; 32], base: &PublicKey) {
        let Ok(k) = Scalar::from_be_bytes(bytes) else {
            return;
        };
        assert_eq!(
            add_public_multiple(base, &k),
            base.add_exp_tweak(&SECP, &k).ok(),
            "{bytes:02x?}"
        );
        if let Ok(s) = SecretKey::from_slice(&bytes) {
            assert_eq!(
                public_point_of(&s),
                PublicKey::from_secret_key(&SECP, &s),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn every_table_entry_matches_libsecp256k1() {
        // One nonzero byte: each scalar selects exactly one entry.
        let base = point(7);
        for i in 0..32 {
            for b in 1..=255u8 {
                let mut bytes = [0; 32];
                bytes[i] = b;
                check(bytes, &base);
            }
        }
    }

    #[test]
    fn edge_scalars_match_libsecp256k1() {
        let base = point(9);
        let mut one = [0; 32];
        one[31] = 1;
        for bytes in [[0; 32], one, ORDER_MINUS_ONE, [0x55; 32], [0xaa; 32]] {
            check(bytes, &base);
        }
        // Zero adds nothing; there is no point for zero alone.
        let zero = Scalar::from_be_bytes([0; 32]).unwrap();
        assert_eq!(add_public_multiple(&base, &zero), Some(base));
        assert_eq!(public_sum(None, &[0; 32]), None);
    }

    #[test]
    fn a_sum_at_infinity_is_none() {
        // base = s * G, and k = n - s: base + k * G is the point at infinity.
        let s = SecretKey::from_slice(&[3; 32]).unwrap();
        let k = Scalar::from(s.negate());
        let base = PublicKey::from_secret_key(&SECP, &s);
        assert_eq!(add_public_multiple(&base, &k), None);
        assert!(base.add_exp_tweak(&SECP, &k).is_err());
    }

    /// `extra + k * P` from the table against libsecp256k1's
    /// `tweak_mul` and `combine`, for one scalar.
    fn check_table(table: &PointTable, extra: &PublicKey, bytes: [u8; 32]) {
        let Ok(k) = Scalar::from_be_bytes(bytes) else {
            return;
        };
        let expected = match table.point().mul_tweak(&SECP, &k) {
            Ok(product) => extra.combine(&product).ok(),
            // Only k = 0 fails: the product is the point at infinity.
            Err(_) => Some(*extra),
        };
        assert_eq!(table.add_multiple_to(extra, &k), expected, "{bytes:02x?}");
    }

    /// The 256-bit big-endian scalar `sum(window[w] * 64^w)`, cut to 256
    /// bits.
    fn from_windows(windows: &[u64; WINDOWS]) -> [u8; 32] {
        let mut limbs = [0u64; 5];
        for (w, &v) in windows.iter().enumerate() {
            let (i, shift) = (w * WINDOW_BITS / 64, w * WINDOW_BITS % 64);
            limbs[i] |= v << shift;
            if shift + WINDOW_BITS > 64 {
                limbs[i + 1] |= v >> (64 - shift);
            }
        }
        let mut bytes = [0; 32];
        for i in 0..4 {
            bytes[24 - 8 * i..32 - 8 * i].copy_from_slice(&limbs[i].to_be_bytes());
        }
        bytes
    }

    #[test]
    fn every_point_table_window_and_digit_matches_libsecp256k1() {
        // One window set to each value 1..=63: digits 1..=32 read one
        // entry, 33..=63 an entry's negation and a carry into the next
        // window (in the top window too, whose bits past 255 are cut).
        let table = PointTable::new(&point(11));
        let extra = point(12);
        for w in 0..WINDOWS {
            for v in 1..(1 << WINDOW_BITS) {
                let mut windows = [0; WINDOWS];
                windows[w] = v;
                check_table(&table, &extra, from_windows(&windows));
            }
        }
        // Carry chains: every window at the boundary, just above it, full.
        for v in [HALF as u64, HALF as u64 + 1, (1 << WINDOW_BITS) - 1] {
            check_table(&table, &extra, from_windows(&[v; WINDOWS]));
        }
    }

    #[test]
    fn point_table_edge_scalars_match_libsecp256k1() {
        let table = PointTable::new(&point(13));
        let extra = point(14);
        let mut one = [0; 32];
        one[31] = 1;
        for bytes in [
            [0; 32],
            one,
            ORDER_MINUS_ONE,
            [0x55; 32],
            [0xaa; 32],
            [0x7f; 32],
        ] {
            check_table(&table, &extra, bytes);
        }
        // extra = (n - 1) * P: extra + 1 * P is the point at infinity.
        let minus_p = table.point().negate(&SECP);
        let one = Scalar::from_be_bytes(one).unwrap();
        assert_eq!(table.add_multiple_to(&minus_p, &one), None);
    }

    proptest! {
        #[test]
        fn random_scalars_match_libsecp256k1(bytes in any::<[u8; 32]>(), seed in any::<u8>()) {
            check(bytes, &point(seed));
        }

        #[test]
        fn random_point_table_sums_match_libsecp256k1(bytes in any::<[u8; 32]>(), seed in 1..u8::MAX) {
            let table = PointTable::new(&point(seed));
            check_table(&table, &point(seed.wrapping_add(1)), bytes);
        }
    }
}
