//! A channel's own secrets: funding key, the four basepoint secrets and the
//! per-commitment seed, all derived from the node secret and a random
//! per-channel `keys_id` (so persistence stores 32 bytes, not the keys).

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{PublicKey, SecretKey};

use crate::keys::{
    per_commitment_point, per_commitment_secret, SecretChainPrefix, INITIAL_COMMITMENT_INDEX,
};
use crate::secp::SECP;
use crate::transactions::ChannelPublicKeys;

/// Our per-commitment secrets come from the BOLT 3 hash chain over a sha256
/// seed: a valid scalar except with probability ~2^-128, which no peer can
/// steer.
const HASH_CHAIN_KEY: &str = "hash-chain secret is a valid key";

/// Our secrets for one channel.
#[derive(Clone)]
pub(crate) struct ChannelSigner {
    /// Random per-channel input to the derivation; all that is persisted.
    pub(crate) keys_id: [u8; 32],
    pub(crate) funding_key: SecretKey,
    pub(crate) htlc_base_key: SecretKey,
    /// The secret of our revocation basepoint: with it the revocation key
    /// of the peer's commitment costs a generator multiplication instead of
    /// a variable-base one (`keys::derive_revocation_public_key_from_base_secret`).
    pub(crate) revocation_base_key: SecretKey,
    commitment_seed: [u8; 32],
    /// The public halves, as sent in open_channel/accept_channel.
    pub(crate) pubkeys: ChannelPublicKeys,
    /// The last commitment point computed through [`ChannelSigner::point`],
    /// with its secret: the next one we announce in `revoke_and_ack` is the
    /// one the peer's next `commitment_signed` signs, so it is computed
    /// once, not twice, and its secret (which that commitment's revocation
    /// key is derived with) is not walked down the hash chain again.
    /// Memory only: a restart computes it again.
    last_point: Option<(u64, [u8; 32], PublicKey)>,
    /// The hash chain walked down to the prefix of the last point computed:
    /// the secrets near it (the next point's, the one `revoke_and_ack`
    /// reveals) cost at most 8 SHA-256 each instead of up to 48. Memory
    /// only, like `last_point`.
    chain: Option<SecretChainPrefix>,
}

impl core::fmt::Debug for ChannelSigner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChannelSigner")
            .field("pubkeys", &self.pubkeys)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ChannelSigner {
    fn eq(&self, other: &Self) -> bool {
        self.keys_id == other.keys_id && self.funding_key == other.funding_key
    }
}
impl Eq for ChannelSigner {}

/// `sha256(node_secret || keys_id || label)` as a secret key.
fn derive_secret(node_secret: &SecretKey, keys_id: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(&node_secret.secret_bytes());
    engine.input(keys_id);
    engine.input(label);
    sha256::Hash::from_engine(engine).to_byte_array()
}

fn derive_key(node_secret: &SecretKey, keys_id: &[u8; 32], label: &[u8]) -> SecretKey {
    // A sha256 output is a valid secret key unless it is zero or >= the curve
    // order: probability ~2^-128, which no input can steer (the node secret is ours).
    SecretKey::from_slice(&derive_secret(node_secret, keys_id, label))
        .expect("sha256 output is a valid key")
}

impl ChannelSigner {
    /// Derives a channel's keys from the node secret and `keys_id`.
    pub(crate) fn derive(node_secret: &SecretKey, keys_id: [u8; 32]) -> Self {
        let funding_key = derive_key(node_secret, &keys_id, b"funding");
        let revocation_base_key = derive_key(node_secret, &keys_id, b"revocation");
        let payment_key = derive_key(node_secret, &keys_id, b"payment");
        let delayed_payment_base_key = derive_key(node_secret, &keys_id, b"delayed");
        let htlc_base_key = derive_key(node_secret, &keys_id, b"htlc");
        let commitment_seed = derive_secret(node_secret, &keys_id, b"commitment seed");
        let public = |k: &SecretKey| PublicKey::from_secret_key(&SECP, k);
        let pubkeys = ChannelPublicKeys {
            funding_pubkey: public(&funding_key),
            revocation_basepoint: public(&revocation_base_key),
            payment_basepoint: public(&payment_key),
            delayed_payment_basepoint: public(&delayed_payment_base_key),
            htlc_basepoint: public(&htlc_base_key),
        };
        // The payment and delayed-payment secrets only sign on chain
        // (sweeps), which is outside this crate: only their public halves
        // are kept; they can be derived again from `keys_id`. The revocation
        // base secret is kept: it makes the peer's revocation keys cheaper.
        ChannelSigner {
            keys_id,
            funding_key,
            htlc_base_key,
            revocation_base_key,
            commitment_seed,
            pubkeys,
            last_point: None,
            chain: None,
        }
    }

    /// The secret of our payment basepoint: it spends our cooperative
    /// closing output and our `to_remote` output in the peer's commitment
    /// (both P2WPKH to the basepoint, `option_static_remotekey`).
    pub(crate) fn payment_secret(node_secret: &SecretKey, keys_id: &[u8; 32]) -> SecretKey {
        derive_key(node_secret, keys_id, b"payment")
    }

    /// The secret of our delayed payment basepoint (its key for one
    /// commitment is derived with that commitment's point).
    pub(crate) fn delayed_payment_base_secret(
        node_secret: &SecretKey,
        keys_id: &[u8; 32],
    ) -> SecretKey {
        derive_key(node_secret, keys_id, b"delayed")
    }

    /// A fresh random `keys_id`.
    pub(crate) fn random_keys_id() -> [u8; 32] {
        use bitcoin::secp256k1::rand::RngCore;
        let mut id = [0u8; 32];
        bitcoin::secp256k1::rand::thread_rng().fill_bytes(&mut id);
        id
    }

    /// The secret of our commitment number `n` (BOLT 3: index counts down from 2^48 - 1).
    pub(crate) fn commitment_secret(&self, n: u64) -> [u8; 32] {
        let index = INITIAL_COMMITMENT_INDEX - n;
        self.chain
            .as_ref()
            .and_then(|chain| chain.secret(index))
            .unwrap_or_else(|| per_commitment_secret(&self.commitment_seed, index))
    }

    /// [`ChannelSigner::commitment_point`], remembered: asking for the
    /// point computed last costs no EC operation.
    pub(crate) fn point(&mut self, n: u64) -> PublicKey {
        match self.last_point {
            Some((m, _, point)) if m == n => point,
            _ => {
                let index = INITIAL_COMMITMENT_INDEX - n;
                if !self.chain.as_ref().is_some_and(|c| c.serves(index)) {
                    self.chain = Some(SecretChainPrefix::new(&self.commitment_seed, index));
                }
                let secret = self.commitment_secret(n);
                let point = per_commitment_point(&secret).expect(HASH_CHAIN_KEY);
                self.last_point = Some((n, secret, point));
                point
            }
        }
    }

    /// [`ChannelSigner::commitment_secret`] as a key, from the memory of
    /// [`ChannelSigner::point`] when it is the point computed last.
    pub(crate) fn commitment_secret_key(&self, n: u64) -> SecretKey {
        let secret = match self.last_point {
            Some((m, secret, _)) if m == n => secret,
            _ => self.commitment_secret(n),
        };
        SecretKey::from_slice(&secret).expect(HASH_CHAIN_KEY)
    }

    /// The point of our commitment number `n`.
    pub(crate) fn commitment_point(&self, n: u64) -> PublicKey {
        per_commitment_point(&self.commitment_secret(n)).expect(HASH_CHAIN_KEY)
    }

    /// A P2WPKH script to our payment key, used as our shutdown script.
    pub(crate) fn shutdown_script(&self) -> bitcoin::ScriptBuf {
        let key = bitcoin::CompressedPublicKey(self.pubkeys.payment_basepoint);
        bitcoin::ScriptBuf::new_p2wpkh(&key.wpubkey_hash())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory of `point` (the last point and the chain prefix) gives
    /// what the plain derivation gives, across prefix boundaries and when
    /// asked out of order (a reestablish asks for older secrets).
    #[test]
    fn remembered_secrets_and_points_are_the_derived_ones() {
        let node = SecretKey::from_slice(&[3; 32]).unwrap();
        let mut signer = ChannelSigner::derive(&node, [5; 32]);
        let plain =
            |n: u64| per_commitment_secret(&signer_seed(&node), INITIAL_COMMITMENT_INDEX - n);
        for n in (0..600).chain([254, 255, 256, 257, 3, 511, 512, 0]) {
            let point = signer.point(n);
            assert_eq!(signer.commitment_secret(n), plain(n), "n = {n}");
            assert_eq!(point, per_commitment_point(&plain(n)).unwrap(), "n = {n}");
            assert_eq!(signer.commitment_secret_key(n).secret_bytes(), plain(n));
            if n > 0 {
                assert_eq!(
                    signer.commitment_secret(n - 1),
                    plain(n - 1),
                    "n - 1 = {}",
                    n - 1
                );
            }
            assert_eq!(signer.commitment_secret(n + 300), plain(n + 300));
        }
    }

    fn signer_seed(node: &SecretKey) -> [u8; 32] {
        derive_secret(node, &[5; 32], b"commitment seed")
    }
}
