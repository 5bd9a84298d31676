//! BOLT 3 key material: per-commitment secrets and points, the key
//! derivations that turn basepoints into the keys of one commitment, and
//! the compact store of the secrets a counterparty has revealed.
//!
//! # Panics and failure
//!
//! Every derivation here multiplies or adds a SHA-256 output as a scalar.
//! Such a step can fail only when the hash is zero or not below the curve
//! order, or when a sum lands on the point at infinity; for hash outputs that
//! happens with probability about 2^-128 and cannot be steered by a peer
//! without breaking SHA-256. Those functions therefore return the key
//! directly and `expect` the step, with the reason written at each site (the
//! same choice rust-lightning makes).
//!
//! The one input a peer controls directly is a revealed per-commitment
//! secret (in `revoke_and_ack`), which may be any 32 bytes, including zero or
//! a value above the curve order. [`per_commitment_point`] therefore returns
//! a `Result` instead of panicking, and [`CounterpartyCommitmentSecrets`]
//! only hashes secrets, never treats them as scalars.

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{PublicKey, Scalar, SecretKey};

use crate::error::StoreError;
use crate::secp::{add_public_multiple, public_point_of, PointTable, SECP};
use crate::types::ChannelId;

/// The per-commitment index of commitment number 0.
///
/// BOLT 3 numbers per-commitment secrets downwards from `2^48 - 1`: the
/// secret of commitment number `n` has index `INITIAL_COMMITMENT_INDEX - n`.
pub const INITIAL_COMMITMENT_INDEX: u64 = (1 << 48) - 1;

/// Number of index bits BOLT 3 uses.
const INDEX_BITS: u8 = 48;

/// Number of buckets of the compact store: one per count of trailing zero
/// bits of an index (0..=47), plus one for index 0.
const BUCKETS: usize = INDEX_BITS as usize + 1;

/// The error the secret store and [`per_commitment_point`] report: the
/// channel is unknown at this level, so its id is all zero (as
/// [`StoreError::InvalidRevocationSecret`] documents).
fn invalid_secret() -> StoreError {
    StoreError::InvalidRevocationSecret {
        channel_id: ChannelId([0; 32]),
    }
}

/// BOLT 3 `derive_secret(base, bits, I)`: walks from `base` (whose index
/// agrees with `index` on bits `bits..48`) down to the secret of `index`.
fn derive_secret(base: [u8; 32], bits: u8, index: u64) -> [u8; 32] {
    walk_bits(base, bits, 0, index)
}

/// The walk of [`derive_secret`] over bits `high - 1` down to `low` of
/// `index` only: one SHA-256 per bit set.
fn walk_bits(mut p: [u8; 32], high: u8, low: u8, index: u64) -> [u8; 32] {
    for b in (low..high).rev() {
        if index & (1 << b) != 0 {
            p[usize::from(b / 8)] ^= 1 << (b % 8);
            p = sha256::Hash::hash(&p).to_byte_array();
        }
    }
    p
}

/// Index bits a [`SecretChainPrefix`] leaves to walk.
const PREFIX_LOW_BITS: u8 = 8;

/// Where the walk down our hash chain stands after the index's high 40
/// bits: the secrets of the 256 indices that share them are each at most
/// 8 SHA-256 away, where [`per_commitment_secret`] walks up to 48. Our
/// commitments count down, so consecutive ones share a prefix 255 times in
/// 256. It derives those 256 secrets, future ones included, so it is kept
/// only where the seed is (which derives them all), and never written.
#[derive(Clone)]
pub(crate) struct SecretChainPrefix {
    /// `index >> PREFIX_LOW_BITS` of the indices it serves.
    high: u64,
    state: [u8; 32],
}

impl SecretChainPrefix {
    /// The prefix of `index` (low 48 bits) in the chain of `seed`.
    pub(crate) fn new(seed: &[u8; 32], index: u64) -> Self {
        let index = index & INITIAL_COMMITMENT_INDEX;
        SecretChainPrefix {
            high: index >> PREFIX_LOW_BITS,
            state: walk_bits(*seed, INDEX_BITS, PREFIX_LOW_BITS, index),
        }
    }

    /// Whether `index` shares this prefix.
    pub(crate) fn serves(&self, index: u64) -> bool {
        (index & INITIAL_COMMITMENT_INDEX) >> PREFIX_LOW_BITS == self.high
    }

    /// The secret of `index`, the same as [`per_commitment_secret`] gives;
    /// `None` when `index` does not share this prefix.
    pub(crate) fn secret(&self, index: u64) -> Option<[u8; 32]> {
        self.serves(index)
            .then(|| walk_bits(self.state, PREFIX_LOW_BITS, 0, index))
    }
}

/// The per-commitment secret with index `index`, generated from `seed` by the
/// BOLT 3 `generate_from_seed` algorithm.
///
/// Only the low 48 bits of `index` are used (indices run from
/// [`INITIAL_COMMITMENT_INDEX`] down to 0).
///
/// # Examples
///
/// ```
/// use chanstore::keys::{per_commitment_secret, INITIAL_COMMITMENT_INDEX};
///
/// // BOLT 3 appendix D, "generate_from_seed 0 final node".
/// let secret = per_commitment_secret(&[0; 32], INITIAL_COMMITMENT_INDEX);
/// assert_eq!(secret[..4], [0x02, 0xa4, 0x0c, 0x85]);
/// ```
pub fn per_commitment_secret(seed: &[u8; 32], index: u64) -> [u8; 32] {
    derive_secret(*seed, INDEX_BITS, index & INITIAL_COMMITMENT_INDEX)
}

/// The per-commitment point `secret * G`.
///
/// # Errors
///
/// [`StoreError::InvalidRevocationSecret`] (with an all-zero channel id) when
/// `secret` is not a valid private key: zero, or not below the curve order.
/// Secrets generated by [`per_commitment_secret`] are SHA-256 outputs and fail
/// with probability about 2^-128, but a secret revealed by a peer can be any
/// 32 bytes, so this is an error rather than a panic.
pub fn per_commitment_point(secret: &[u8; 32]) -> Result<PublicKey, StoreError> {
    let secret = SecretKey::from_slice(secret).map_err(|_| invalid_secret())?;
    Ok(PublicKey::from_secret_key(&SECP, &secret))
}

/// [`per_commitment_point`] for a secret the peer has revealed (in
/// `revoke_and_ack`): the same point and the same errors, but computed in
/// variable time from the generator table (`crate::secp`), twice as fast.
/// Only for secrets that are public once received; our own stay on
/// [`per_commitment_point`]'s constant-time path.
pub fn revealed_secret_point(secret: &[u8; 32]) -> Result<PublicKey, StoreError> {
    let secret = SecretKey::from_slice(secret).map_err(|_| invalid_secret())?;
    Ok(public_point_of(&secret))
}

/// `SHA256(a || b)` over two compressed points, as a scalar.
///
/// Panics only if the hash is not below the curve order (probability about
/// 2^-128, and choosing `a` or `b` to hit it means inverting SHA-256).
fn tweak(a: &PublicKey, b: &PublicKey) -> Scalar {
    let mut engine = sha256::Hash::engine();
    engine.input(&a.serialize());
    engine.input(&b.serialize());
    let hash = sha256::Hash::from_engine(engine).to_byte_array();
    Scalar::from_be_bytes(hash).expect("a SHA-256 output is below the curve order (p ~ 1 - 2^-128)")
}

/// `basepoint + SHA256(per_commitment_point || basepoint) * G`: the
/// `localpubkey`, `local_htlcpubkey`, `remote_htlcpubkey`,
/// `local_delayedpubkey` and `remote_delayedpubkey` of BOLT 3.
///
/// Panics only with probability about 2^-128 (see the module docs).
pub fn derive_public_key(basepoint: &PublicKey, per_commitment_point: &PublicKey) -> PublicKey {
    let t = tweak(per_commitment_point, basepoint);
    // Every input is public, so the variable-time generator table serves
    // (`crate::secp`: half the cost of `add_exp_tweak`). Fails only if
    // t*G == -basepoint, i.e. if the hash of the basepoint is its own
    // negated discrete log: not reachable without breaking SHA-256.
    add_public_multiple(basepoint, &t)
        .expect("tweaked basepoint is not the point at infinity (p ~ 2^-128)")
}

/// `base_secret + SHA256(per_commitment_point || basepoint)`: the private key
/// of [`derive_public_key`] for the basepoint `base_secret * G`.
///
/// Panics only with probability about 2^-128 (see the module docs).
pub fn derive_private_key(base_secret: &SecretKey, per_commitment_point: &PublicKey) -> SecretKey {
    let basepoint = PublicKey::from_secret_key(&SECP, base_secret);
    derive_private_key_from(base_secret, &basepoint, per_commitment_point)
}

/// [`derive_private_key`] for a caller that already has the basepoint
/// (`base_secret * G`): no EC operation at all, only a hash and a scalar
/// addition.
pub fn derive_private_key_from(
    base_secret: &SecretKey,
    basepoint: &PublicKey,
    per_commitment_point: &PublicKey,
) -> SecretKey {
    debug_assert_eq!(*basepoint, PublicKey::from_secret_key(&SECP, base_secret));
    let t = tweak(per_commitment_point, basepoint);
    // Fails only if the sum is zero mod n, the private-key twin of the case
    // in derive_public_key.
    base_secret
        .add_tweak(&t)
        .expect("tweaked secret is not zero (p ~ 2^-128)")
}

/// The `revocationpubkey` of BOLT 3:
/// `revocation_basepoint * SHA256(revocation_basepoint || per_commitment_point)
///  + per_commitment_point * SHA256(per_commitment_point || revocation_basepoint)`.
///
/// Panics only with probability about 2^-128 (see the module docs).
pub fn derive_revocation_public_key(
    revocation_basepoint: &PublicKey,
    per_commitment_point: &PublicKey,
) -> PublicKey {
    let base_tweak = tweak(revocation_basepoint, per_commitment_point);
    let point_tweak = tweak(per_commitment_point, revocation_basepoint);
    // mul_tweak fails only for a zero scalar; combine only if the two terms
    // cancel. Both need a chosen SHA-256 output.
    let a = revocation_basepoint
        .mul_tweak(&SECP, &base_tweak)
        .expect("hash scalar is not zero (p ~ 2^-256)");
    let b = per_commitment_point
        .mul_tweak(&SECP, &point_tweak)
        .expect("hash scalar is not zero (p ~ 2^-256)");
    a.combine(&b)
        .expect("revocation key terms do not cancel (p ~ 2^-128)")
}

/// [`derive_revocation_public_key`] for the countersignatory, who knows
/// `revocation_base_secret` (the secret of `revocation_basepoint`): the
/// revocation key of the peer's commitment.
///
/// Its term `revocation_basepoint * SHA256(revocation_basepoint ||
/// per_commitment_point)` is `(revocation_base_secret * that hash) * G`: a
/// scalar product (no EC work) and a generator multiplication (constant
/// time, as a secret scalar needs) instead of a variable-base
/// multiplication. The result is the same point.
///
/// Panics only with probability about 2^-128 (see the module docs).
pub fn derive_revocation_public_key_from_base_secret(
    revocation_base_secret: &SecretKey,
    revocation_basepoint: &PublicKey,
    per_commitment_point: &PublicKey,
) -> PublicKey {
    debug_assert_eq!(
        *revocation_basepoint,
        PublicKey::from_secret_key(&SECP, revocation_base_secret)
    );
    revocation_key_knowing(
        revocation_base_secret,
        &tweak(revocation_basepoint, per_commitment_point),
        per_commitment_point,
        &tweak(per_commitment_point, revocation_basepoint),
    )
}

/// [`derive_revocation_public_key`] for the broadcaster, who knows
/// `per_commitment_secret` (the secret of `per_commitment_point`): the
/// revocation key of our own commitment, the same point computed with one
/// generator multiplication in place of a variable-base one (see
/// [`derive_revocation_public_key_from_base_secret`]).
///
/// Panics only with probability about 2^-128 (see the module docs).
pub fn derive_revocation_public_key_from_commitment_secret(
    revocation_basepoint: &PublicKey,
    per_commitment_secret: &SecretKey,
    per_commitment_point: &PublicKey,
) -> PublicKey {
    debug_assert_eq!(
        *per_commitment_point,
        PublicKey::from_secret_key(&SECP, per_commitment_secret)
    );
    revocation_key_knowing(
        per_commitment_secret,
        &tweak(per_commitment_point, revocation_basepoint),
        revocation_basepoint,
        &tweak(revocation_basepoint, per_commitment_point),
    )
}

/// `(known_secret * known_tweak) * G + other_point * other_tweak`: the
/// revocation key when the secret of one of its two points is known.
///
/// `PublicKey::from_secret_key` is libsecp256k1's constant-time generator
/// multiplication; `add_exp_tweak` would be one call fewer but multiplies
/// its tweak in variable time, which a scalar derived from a secret must
/// not be.
fn revocation_key_knowing(
    known_secret: &SecretKey,
    known_tweak: &Scalar,
    other_point: &PublicKey,
    other_tweak: &Scalar,
) -> PublicKey {
    let known = known_secret
        .mul_tweak(known_tweak)
        .expect("hash scalar is not zero (p ~ 2^-256)");
    let other = other_point
        .mul_tweak(&SECP, other_tweak)
        .expect("hash scalar is not zero (p ~ 2^-256)");
    PublicKey::from_secret_key(&SECP, &known)
        .combine(&other)
        .expect("revocation key terms do not cancel (p ~ 2^-128)")
}

/// Precomputed multiples of one revocation basepoint, for deriving many
/// revocation keys of the same channel faster.
///
/// Each revocation key multiplies the channel's revocation basepoint (fixed
/// for the channel's life) by a hash of public points. With this table
/// (832 points, about 53 KB, about 2 ms to build) that product is one sum
/// of table entries instead of a variable-base multiplication; the table
/// is read in an order that depends on the hash only, which is public, so
/// no secret goes through variable-time code.
#[derive(Clone)]
pub struct RevocationBasepointTable(PointTable);

impl RevocationBasepointTable {
    /// The table of `revocation_basepoint`.
    pub fn new(revocation_basepoint: &PublicKey) -> Self {
        RevocationBasepointTable(PointTable::new(revocation_basepoint))
    }

    /// The basepoint the table was built for.
    pub fn basepoint(&self) -> &PublicKey {
        self.0.point()
    }

    /// `term + revocation_basepoint * SHA256(revocation_basepoint ||
    /// per_commitment_point)`: the revocation key, given its other term.
    fn revocation_key(&self, per_commitment_point: &PublicKey, term: &PublicKey) -> PublicKey {
        self.0
            .add_multiple_to(term, &tweak(self.basepoint(), per_commitment_point))
            .expect("revocation key terms do not cancel (p ~ 2^-128)")
    }
}

impl core::fmt::Debug for RevocationBasepointTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("RevocationBasepointTable")
            .field(self.basepoint())
            .finish()
    }
}

/// [`derive_revocation_public_key`] with a table of the revocation
/// basepoint: the same point, for anyone (no secret needed), with one
/// variable-base multiplication (of `per_commitment_point`) instead of two.
///
/// Panics only with probability about 2^-128 (see the module docs).
pub fn derive_revocation_public_key_with_table(
    revocation_basepoint: &RevocationBasepointTable,
    per_commitment_point: &PublicKey,
) -> PublicKey {
    let point_term = per_commitment_point
        .mul_tweak(
            &SECP,
            &tweak(per_commitment_point, revocation_basepoint.basepoint()),
        )
        .expect("hash scalar is not zero (p ~ 2^-256)");
    revocation_basepoint.revocation_key(per_commitment_point, &point_term)
}

/// [`derive_revocation_public_key_from_commitment_secret`] with a table of
/// the peer's revocation basepoint: the revocation key of our own
/// commitment from one constant-time generator multiplication (the secret's
/// term) and a table sum, with no variable-base multiplication.
///
/// Panics only with probability about 2^-128 (see the module docs).
pub fn derive_revocation_public_key_from_commitment_secret_with_table(
    revocation_basepoint: &RevocationBasepointTable,
    per_commitment_secret: &SecretKey,
    per_commitment_point: &PublicKey,
) -> PublicKey {
    debug_assert_eq!(
        *per_commitment_point,
        PublicKey::from_secret_key(&SECP, per_commitment_secret)
    );
    let known = per_commitment_secret
        .mul_tweak(&tweak(
            per_commitment_point,
            revocation_basepoint.basepoint(),
        ))
        .expect("hash scalar is not zero (p ~ 2^-256)");
    let point_term = PublicKey::from_secret_key(&SECP, &known);
    revocation_basepoint.revocation_key(per_commitment_point, &point_term)
}

/// The `revocationprivkey` of BOLT 3, computable once the counterparty has
/// revealed `per_commitment_secret`:
/// `revocation_base_secret * SHA256(revocation_basepoint || per_commitment_point)
///  + per_commitment_secret * SHA256(per_commitment_point || revocation_basepoint)`.
///
/// Panics only with probability about 2^-128 (see the module docs). A secret
/// revealed by a peer must first become a [`SecretKey`], which is where an
/// invalid one is rejected.
pub fn derive_revocation_private_key(
    revocation_base_secret: &SecretKey,
    per_commitment_secret: &SecretKey,
) -> SecretKey {
    let revocation_basepoint = PublicKey::from_secret_key(&SECP, revocation_base_secret);
    let per_commitment_point = PublicKey::from_secret_key(&SECP, per_commitment_secret);
    let base_tweak = tweak(&revocation_basepoint, &per_commitment_point);
    let point_tweak = tweak(&per_commitment_point, &revocation_basepoint);
    let a = revocation_base_secret
        .mul_tweak(&base_tweak)
        .expect("hash scalar is not zero (p ~ 2^-256)");
    let b = per_commitment_secret
        .mul_tweak(&point_tweak)
        .expect("hash scalar is not zero (p ~ 2^-256)");
    a.add_tweak(&Scalar::from(b))
        .expect("revocation key terms do not cancel (p ~ 2^-128)")
}

/// The bucket of an index in the compact store: its count of trailing zero
/// bits, 48 for index 0 (BOLT 3 `where_to_put_secret`).
fn bucket_of(index: u64) -> usize {
    if index == 0 {
        BUCKETS - 1
    } else {
        index.trailing_zeros() as usize
    }
}

/// Whether the secret of `index` can be derived from the entry `(base, bucket)`:
/// `index` agrees with `base` on every bit from `bucket` up.
fn covers(base: u64, bucket: usize, index: u64) -> bool {
    let mask = !((1u64 << bucket) - 1);
    index & mask == base
}

/// The per-commitment secrets a counterparty has revealed, kept in the BOLT 3
/// compact form: at most 49 `(secret, index)` entries, from which every
/// secret revealed so far can be derived.
///
/// Secrets must arrive in BOLT order: the first has index
/// [`INITIAL_COMMITMENT_INDEX`], each next one the index below the last.
///
/// # Examples
///
/// ```
/// use chanstore::keys::{per_commitment_secret, CounterpartyCommitmentSecrets, INITIAL_COMMITMENT_INDEX};
///
/// let seed = [0xff; 32];
/// let mut secrets = CounterpartyCommitmentSecrets::new();
/// for n in 0..11 {
///     let index = INITIAL_COMMITMENT_INDEX - n;
///     secrets.insert_secret(index, per_commitment_secret(&seed, index)).unwrap();
/// }
/// assert_eq!(secrets.min_seen_index(), Some(INITIAL_COMMITMENT_INDEX - 10));
/// let old = INITIAL_COMMITMENT_INDEX - 3;
/// assert_eq!(secrets.get_secret(old), Some(per_commitment_secret(&seed, old)));
/// // A secret from another seed does not derive the ones before it. (Only
/// // an index with trailing zero bits can be checked: `...0100` here.)
/// let next = INITIAL_COMMITMENT_INDEX - 11;
/// assert!(secrets.insert_secret(next, per_commitment_secret(&[0; 32], next)).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterpartyCommitmentSecrets {
    /// Bucket `b` holds the latest secret received whose index has exactly
    /// `b` trailing zero bits (bucket 48: index 0), with that index. Grown
    /// on demand: after `k` revocations only about `log2(k) + 1` buckets
    /// exist, and never more than 49, so an idle channel pays a few bytes
    /// instead of 49 empty slots.
    buckets: Vec<Option<(u64, [u8; 32])>>,
}

impl Default for CounterpartyCommitmentSecrets {
    fn default() -> Self {
        Self::new()
    }
}

impl CounterpartyCommitmentSecrets {
    /// An empty store.
    pub fn new() -> Self {
        CounterpartyCommitmentSecrets {
            buckets: Vec::new(),
        }
    }

    /// Records the secret the counterparty revealed for `index` (BOLT 3
    /// `insert_secret`).
    ///
    /// `index` must be the next one expected: [`INITIAL_COMMITMENT_INDEX`]
    /// for the first secret, then one below [`Self::min_seen_index`].
    /// Re-inserting a secret already known (same index, same value) is
    /// accepted and changes nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidRevocationSecret`] (all-zero channel id; the
    /// caller knows the channel) when the index is out of sequence or the
    /// secret does not derive the secrets stored before it, i.e. was not
    /// generated from the same seed. On error nothing changes.
    pub fn insert_secret(&mut self, index: u64, secret: [u8; 32]) -> Result<(), StoreError> {
        let expected = match self.min_seen_index() {
            None => INITIAL_COMMITMENT_INDEX,
            Some(min) if index >= min => {
                return match self.get_secret(index) {
                    Some(known) if known == secret => Ok(()),
                    _ => Err(invalid_secret()),
                };
            }
            Some(0) => return Err(invalid_secret()),
            Some(min) => min - 1,
        };
        if index != expected {
            return Err(invalid_secret());
        }
        let bucket = bucket_of(index);
        for (known_index, known_secret) in self.buckets.iter().take(bucket).flatten() {
            if derive_secret(secret, bucket as u8, *known_index) != *known_secret {
                return Err(invalid_secret());
            }
        }
        if self.buckets.len() <= bucket {
            self.buckets.resize(bucket + 1, None);
        }
        self.buckets[bucket] = Some((index, secret));
        Ok(())
    }

    /// The secret revealed for `index`, or `None` if it has not been revealed
    /// yet (BOLT 3 `derive_old_secret`).
    pub fn get_secret(&self, index: u64) -> Option<[u8; 32]> {
        self.buckets
            .iter()
            .enumerate()
            .find_map(|(bucket, entry)| match entry {
                Some((base, secret)) if covers(*base, bucket, index) => {
                    Some(derive_secret(*secret, bucket as u8, index))
                }
                _ => None,
            })
    }

    /// The lowest index inserted so far, `None` when the store is empty.
    pub fn min_seen_index(&self) -> Option<u64> {
        self.buckets.iter().flatten().map(|(index, _)| *index).min()
    }

    /// The stored `(index, secret)` entries, by bucket (for persistence).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (u64, [u8; 32])> + '_ {
        self.buckets.iter().flatten().copied()
    }

    /// Rebuilds a store from [`Self::entries`], checking that the entries
    /// are exactly those a valid history leaves behind and that they are
    /// consistent with one another.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidRevocationSecret`] (all-zero channel id) when
    /// they are not.
    pub(crate) fn from_entries(
        entries: impl IntoIterator<Item = (u64, [u8; 32])>,
    ) -> Result<Self, StoreError> {
        let mut store = Self::new();
        for (index, secret) in entries {
            if index > INITIAL_COMMITMENT_INDEX {
                return Err(invalid_secret());
            }
            let bucket = bucket_of(index);
            if store.buckets.len() <= bucket {
                store.buckets.resize(bucket + 1, None);
            }
            let slot = &mut store.buckets[bucket];
            if slot.is_some() {
                return Err(invalid_secret());
            }
            *slot = Some((index, secret));
        }
        let Some(min) = store.min_seen_index() else {
            return Ok(store);
        };
        // After secrets INITIAL..=min, bucket b holds the lowest index >= min
        // with b trailing zeros, if there is one.
        for bucket in 0..BUCKETS {
            let entry = store.buckets.get(bucket).copied().flatten();
            if entry.map(|(index, _)| index) != expected_bucket_index(bucket, min) {
                return Err(invalid_secret());
            }
        }
        // Every entry another one covers must derive from it.
        for (bucket, entry) in store.buckets.iter().enumerate() {
            let Some((base, secret)) = *entry else {
                continue;
            };
            for (index, known) in store.buckets.iter().take(bucket).flatten() {
                if covers(base, bucket, *index)
                    && derive_secret(secret, bucket as u8, *index) != *known
                {
                    return Err(invalid_secret());
                }
            }
        }
        Ok(store)
    }
}

/// The lowest index `>= min` whose bucket is `bucket`, if it is a valid index.
fn expected_bucket_index(bucket: usize, min: u64) -> Option<u64> {
    if bucket == BUCKETS - 1 {
        return (min == 0).then_some(0);
    }
    // Indices in this bucket are odd multiples of 2^bucket.
    let mut multiple = min.div_ceil(1 << bucket);
    if multiple.is_multiple_of(2) {
        multiple += 1;
    }
    let index = multiple << bucket;
    (index <= INITIAL_COMMITMENT_INDEX).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(seed: &[u8; 32], count: u64) -> CounterpartyCommitmentSecrets {
        let mut store = CounterpartyCommitmentSecrets::new();
        for n in 0..count {
            let index = INITIAL_COMMITMENT_INDEX - n;
            store
                .insert_secret(index, per_commitment_secret(seed, index))
                .unwrap();
        }
        store
    }

    #[test]
    fn a_chain_prefix_gives_the_secrets_of_its_256_indices_and_no_others() {
        let seed = [9; 32];
        // Any prefix works: ours near the top, and elsewhere in the range.
        for start in [INITIAL_COMMITMENT_INDEX, 0x1234_5678_9a00, 255, 0] {
            let prefix = SecretChainPrefix::new(&seed, start);
            let first = start & !0xff;
            for index in first..=first + 0xff {
                assert_eq!(
                    prefix.secret(index),
                    Some(per_commitment_secret(&seed, index))
                );
            }
            assert_eq!(prefix.secret(first + 0x100), None);
            if first > 0 {
                assert_eq!(prefix.secret(first - 1), None);
            }
            // Only the low 48 bits count, as in `per_commitment_secret`.
            assert_eq!(
                prefix.secret(start | 1 << 60),
                Some(per_commitment_secret(&seed, start))
            );
        }
    }

    #[test]
    fn every_received_secret_is_derivable() {
        let seed = [7; 32];
        let store = filled(&seed, 300);
        for n in 0..300 {
            let index = INITIAL_COMMITMENT_INDEX - n;
            assert_eq!(
                store.get_secret(index),
                Some(per_commitment_secret(&seed, index))
            );
        }
        assert_eq!(store.get_secret(INITIAL_COMMITMENT_INDEX - 300), None);
        assert_eq!(store.get_secret(0), None);
    }

    #[test]
    fn out_of_sequence_is_rejected_without_change() {
        let seed = [7; 32];
        let mut store = filled(&seed, 5);
        let before = store.clone();
        let skip = INITIAL_COMMITMENT_INDEX - 6;
        assert!(store
            .insert_secret(skip, per_commitment_secret(&seed, skip))
            .is_err());
        let known = INITIAL_COMMITMENT_INDEX - 2;
        assert!(store.insert_secret(known, [0; 32]).is_err());
        assert!(store.insert_secret(1 << 48, [0; 32]).is_err());
        assert_eq!(store, before);
        // Re-inserting a known secret is a no-op.
        store
            .insert_secret(known, per_commitment_secret(&seed, known))
            .unwrap();
        assert_eq!(store, before);
        assert!(CounterpartyCommitmentSecrets::new()
            .insert_secret(INITIAL_COMMITMENT_INDEX - 1, [0; 32])
            .is_err());
    }

    #[test]
    fn entries_round_trip_and_corruption_is_caught() {
        let seed = [9; 32];
        // Even counts: the newest entry (odd index) then covers bucket 0's
        // entry, so corrupting bucket 0 is detectable.
        for count in [0, 2, 8, 100, 1024] {
            let store = filled(&seed, count);
            let entries: Vec<_> = store.entries().collect();
            assert_eq!(
                CounterpartyCommitmentSecrets::from_entries(entries.clone()).unwrap(),
                store
            );
            if entries.len() > 1 {
                let mut bad = entries.clone();
                bad[0].1[0] ^= 1;
                assert!(CounterpartyCommitmentSecrets::from_entries(bad).is_err());
                let mut missing = entries.clone();
                missing.remove(0);
                assert!(CounterpartyCommitmentSecrets::from_entries(missing).is_err());
            }
        }
        assert!(CounterpartyCommitmentSecrets::from_entries([(1 << 63, [0; 32])]).is_err());
        assert!(CounterpartyCommitmentSecrets::from_entries([(1 << 48, [0; 32])]).is_err());
    }

    #[test]
    fn expected_bucket_index_matches_history() {
        let store = filled(&[1; 32], 77);
        let min = store.min_seen_index().unwrap();
        for (bucket, entry) in store.buckets.iter().enumerate() {
            assert_eq!(
                entry.map(|(i, _)| i),
                expected_bucket_index(bucket, min),
                "{bucket}"
            );
        }
    }

    #[test]
    fn revocation_key_from_either_secret_is_the_same_point() {
        for n in 1..=16u8 {
            let base = SecretKey::from_slice(&[n; 32]).unwrap();
            let secret = SecretKey::from_slice(&per_commitment_secret(&[n; 32], 7)).unwrap();
            let basepoint = PublicKey::from_secret_key(&SECP, &base);
            let point = PublicKey::from_secret_key(&SECP, &secret);
            let expected = derive_revocation_public_key(&basepoint, &point);
            assert_eq!(
                derive_revocation_public_key_from_base_secret(&base, &basepoint, &point),
                expected
            );
            assert_eq!(
                derive_revocation_public_key_from_commitment_secret(&basepoint, &secret, &point),
                expected
            );
            // With a table of the basepoint, for either side.
            let table = RevocationBasepointTable::new(&basepoint);
            assert_eq!(
                derive_revocation_public_key_with_table(&table, &point),
                expected
            );
            assert_eq!(
                derive_revocation_public_key_from_commitment_secret_with_table(
                    &table, &secret, &point
                ),
                expected
            );
            // And it is the public half of the private key BOLT 3 defines.
            assert_eq!(
                PublicKey::from_secret_key(&SECP, &derive_revocation_private_key(&base, &secret)),
                expected
            );
        }
    }

    #[test]
    fn invalid_secret_has_no_point() {
        assert!(per_commitment_point(&[0; 32]).is_err());
        assert!(per_commitment_point(&[0xff; 32]).is_err());
        assert!(per_commitment_point(&[1; 32]).is_ok());
    }
}
