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
    let mut table = Vec::with_capacity(32 * ENTRIES);
    let mut base = PublicKey::from_secret_key(&SECP, &one);
    for _ in 0..32 {
        let mut entry = base;
        table.push(entry);
        for _ in 1..ENTRIES {
            // (b + 1) * base for b * base: never the point at infinity, as
            // b + 1 < 256 is far below the group order.
            entry = entry.combine(&base).expect("b * 256^i * G is not infinity");
            table.push(entry);
        }
        // 256 * base = 255 * base + base.
        base = entry.combine(&base).expect("256^i * G is not infinity");
    }
    table.into_boxed_slice()
});

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

    proptest! {
        #[test]
        fn random_scalars_match_libsecp256k1(bytes in any::<[u8; 32]>(), seed in any::<u8>()) {
            check(bytes, &point(seed));
        }
    }
}
