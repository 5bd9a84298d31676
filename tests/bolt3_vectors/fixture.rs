//! The common parameters of BOLT 3 appendix C (which appendix F reuses):
//! funding, keys, obscuring factor and the seven test HTLCs. Keys the
//! appendix lists are derived through `chanstore::keys` and checked against
//! the listed values.

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{OutPoint, Txid};
use chanstore::keys::{derive_private_key, per_commitment_point};
use chanstore::transactions::{
    funding_redeemscript, obscure_factor, ChannelPublicKeys, HtlcOutputInCommitment, TxCreationKeys,
};
use chanstore::PaymentPreimage;

use super::{bytes, bytes32, pubkey, secret};

/// `funding_amount_satoshi`.
pub const FUNDING_SAT: u64 = 10_000_000;
/// `commitment_number`.
pub const COMMITMENT_NUMBER: u64 = 42;
/// `local_delay`.
pub const LOCAL_DELAY: u16 = 144;
/// `local_dust_limit_satoshi`.
pub const LOCAL_DUST_LIMIT_SAT: u64 = 546;

/// `htlc N direction / amount_msat / expiry / payment_preimage`, N = 0..=6.
/// `remote->local` is an HTLC the local node (the broadcaster) received.
const HTLCS: [(&str, u64, u32, &str); 7] = [
    (
        "remote->local",
        1000000,
        500,
        "0000000000000000000000000000000000000000000000000000000000000000",
    ),
    (
        "remote->local",
        2000000,
        501,
        "0101010101010101010101010101010101010101010101010101010101010101",
    ),
    (
        "local->remote",
        2000000,
        502,
        "0202020202020202020202020202020202020202020202020202020202020202",
    ),
    (
        "local->remote",
        3000000,
        503,
        "0303030303030303030303030303030303030303030303030303030303030303",
    ),
    (
        "remote->local",
        4000000,
        504,
        "0404040404040404040404040404040404040404040404040404040404040404",
    ),
    (
        "local->remote",
        5000000,
        506,
        "0505050505050505050505050505050505050505050505050505050505050505",
    ),
    (
        "local->remote",
        5000001,
        505,
        "0505050505050505050505050505050505050505050505050505050505050505",
    ),
];

/// Test HTLC `n` as the local commitment sees it.
pub fn htlc(n: usize) -> HtlcOutputInCommitment {
    let (direction, amount_msat, cltv_expiry, _) = HTLCS[n];
    HtlcOutputInCommitment {
        offered: direction == "local->remote",
        amount_msat,
        cltv_expiry,
        payment_hash: preimage(n).payment_hash(),
    }
}

/// The preimage of test HTLC `n`.
pub fn preimage(n: usize) -> PaymentPreimage {
    PaymentPreimage(bytes32(HTLCS[n].3))
}

/// Everything appendix C's transactions are built and signed with.
pub struct Fixture {
    pub funding_outpoint: OutPoint,
    pub obscure_factor: u64,
    pub local: ChannelPublicKeys,
    pub remote: ChannelPublicKeys,
    pub keys: TxCreationKeys,
    pub local_funding_privkey: SecretKey,
    pub remote_funding_privkey: SecretKey,
    /// `local_htlc_basepoint` equals `local_payment_basepoint`, so this is
    /// also `local_privkey`.
    pub local_htlc_privkey: SecretKey,
    /// Likewise `remote_privkey` of the appendix.
    pub remote_htlc_privkey: SecretKey,
}

fn public(key: &SecretKey) -> PublicKey {
    PublicKey::from_secret_key(&Secp256k1::signing_only(), key)
}

/// Builds the fixture, asserting every key appendix C lists.
pub fn fixture() -> Fixture {
    let funding_txid: Txid = "8984484a580b825b9972d7adb15050b3ab624ccd731946b3eeddb92f4e7ef6be"
        .parse()
        .unwrap();
    let funding_outpoint = OutPoint::new(funding_txid, 0);

    // INTERNAL values (the HTML comment of appendix C).
    let remote_funding_privkey =
        secret("1552dfba4f6cf29a62a0af13c8d6981d36d0ef8d61ba10fb0fe90da7634d7e1301");
    let local_payment_basepoint_secret =
        secret("111111111111111111111111111111111111111111111111111111111111111101");
    let remote_revocation_basepoint_secret =
        secret("222222222222222222222222222222222222222222222222222222222222222201");
    let local_delayed_payment_basepoint_secret =
        secret("333333333333333333333333333333333333333333333333333333333333333301");
    let remote_payment_basepoint_secret =
        secret("444444444444444444444444444444444444444444444444444444444444444401");
    let x_local_per_commitment_secret =
        bytes32("1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100");
    let remote_revocation_basepoint =
        pubkey("02466d7fcae563e5cb09a0d1870bb580344804617879a14949cf22285f1bae3f27");
    let local_delayed_payment_basepoint =
        pubkey("023c72addb4fdf09af94f0c94d7fe92a386a7e70cf8a1d85916386bb2535c7b1b1");
    let local_per_commitment_point =
        pubkey("025f7117a78150fe2ef97db7cfc83bd57b2e2c0d0dd25eaf467a4a1c2a45ce1486");
    let remote_privkey =
        secret("8deba327a7cc6d638ab0eb025770400a6184afcba6713c210d8d10e199ff2fda01");
    let local_delayed_privkey =
        secret("adf3464ce9c2f230fd2582fda4c6965e4993ca5524e8c9580e3df0cf226981ad01");

    // Public values.
    let local_payment_basepoint =
        pubkey("034f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa");
    let remote_payment_basepoint =
        pubkey("032c0b7cf95324a07d05398b240174dc0c2be444d96b159aa6c7f7b1e668680991");
    let local_htlc_basepoint =
        pubkey("034f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa");
    let remote_htlc_basepoint =
        pubkey("032c0b7cf95324a07d05398b240174dc0c2be444d96b159aa6c7f7b1e668680991");
    let local_funding_privkey =
        secret("30ff4956bbdd3222d44cc5e8a1261dab1e07957bdac5ae88fe3261ef321f374901");
    let local_funding_pubkey =
        pubkey("023da092f6980e58d2c037173180e9a465476026ee50f96695963e8efe436f54eb");
    let remote_funding_pubkey =
        pubkey("030e9f7b623d2ccc7c9bd44d66d5ce21ce504c0acf6385a132cec6d3c39fa711c1");
    let local_privkey =
        secret("bb13b121cdc357cd2e608b0aea294afca36e2b34cf958e2e6451a2f27469449101");
    let local_htlcpubkey =
        pubkey("030d417a46946384f88d5f3337267c5e579765875dc4daca813e21734b140639e7");
    let remote_htlcpubkey =
        pubkey("0394854aa6eab5b2a8122cc726e9dded053a2184d88256816826d6231c068d4a5b");
    let local_delayedpubkey =
        pubkey("03fd5960528dc152014952efdb702a88f71e3c1653b2314431701ec77e57fde83c");
    let local_revocation_pubkey =
        pubkey("0212a140cd0c6539d07cd08dfe09984dec3251ea808b892efeac3ede9402bf2b19");
    let funding_wscript = "5221023da092f6980e58d2c037173180e9a465476026ee50f96695963e8efe436f54eb21030e9f7b623d2ccc7c9bd44d66d5ce21ce504c0acf6385a132cec6d3c39fa711c152ae";
    // obscured commitment number = 0x2bb038521914 ^ 42
    let obscuring = 0x2bb038521914;

    assert_eq!(public(&local_funding_privkey), local_funding_pubkey);
    assert_eq!(public(&remote_funding_privkey), remote_funding_pubkey);
    assert_eq!(
        public(&local_payment_basepoint_secret),
        local_payment_basepoint
    );
    assert_eq!(
        public(&remote_payment_basepoint_secret),
        remote_payment_basepoint
    );
    assert_eq!(
        public(&remote_revocation_basepoint_secret),
        remote_revocation_basepoint
    );
    assert_eq!(
        public(&local_delayed_payment_basepoint_secret),
        local_delayed_payment_basepoint
    );
    assert_eq!(
        per_commitment_point(&x_local_per_commitment_secret).unwrap(),
        local_per_commitment_point
    );
    assert_eq!(
        funding_redeemscript(&local_funding_pubkey, &remote_funding_pubkey).as_bytes(),
        bytes(funding_wscript)
    );
    assert_eq!(
        obscure_factor(&local_payment_basepoint, &remote_payment_basepoint),
        obscuring
    );

    // The local node's own revocation basepoint and the remote node's
    // delayed payment basepoint do not enter the local commitment; the
    // appendix does not give them, so any key does.
    let unused = public(&SecretKey::from_slice(&[0x99; 32]).unwrap());
    let local = ChannelPublicKeys {
        funding_pubkey: local_funding_pubkey,
        revocation_basepoint: unused,
        payment_basepoint: local_payment_basepoint,
        delayed_payment_basepoint: local_delayed_payment_basepoint,
        htlc_basepoint: local_htlc_basepoint,
    };
    let remote = ChannelPublicKeys {
        funding_pubkey: remote_funding_pubkey,
        revocation_basepoint: remote_revocation_basepoint,
        payment_basepoint: remote_payment_basepoint,
        delayed_payment_basepoint: unused,
        htlc_basepoint: remote_htlc_basepoint,
    };
    let keys = TxCreationKeys::derive(&local_per_commitment_point, &local, &remote);
    assert_eq!(keys.per_commitment_point, local_per_commitment_point);
    assert_eq!(keys.revocation_key, local_revocation_pubkey);
    assert_eq!(keys.broadcaster_htlc_key, local_htlcpubkey);
    assert_eq!(keys.countersignatory_htlc_key, remote_htlcpubkey);
    assert_eq!(keys.broadcaster_delayed_payment_key, local_delayedpubkey);

    let local_htlc_privkey =
        derive_private_key(&local_payment_basepoint_secret, &local_per_commitment_point);
    assert_eq!(local_htlc_privkey, local_privkey);
    assert_eq!(public(&local_htlc_privkey), local_htlcpubkey);
    let remote_htlc_privkey = derive_private_key(
        &remote_payment_basepoint_secret,
        &local_per_commitment_point,
    );
    assert_eq!(remote_htlc_privkey, remote_privkey);
    assert_eq!(public(&remote_htlc_privkey), remote_htlcpubkey);
    assert_eq!(
        derive_private_key(
            &local_delayed_payment_basepoint_secret,
            &local_per_commitment_point
        ),
        local_delayed_privkey
    );
    assert_eq!(public(&local_delayed_privkey), local_delayedpubkey);

    Fixture {
        funding_outpoint,
        obscure_factor: obscuring,
        local,
        remote,
        keys,
        local_funding_privkey,
        remote_funding_privkey,
        local_htlc_privkey,
        remote_htlc_privkey,
    }
}

/// The appendix C parameters and keys, on their own.
#[test]
fn appendix_c_parameters_and_keys() {
    let f = fixture();
    assert_eq!(f.funding_outpoint.vout, 0);
    assert_eq!(f.obscure_factor ^ COMMITMENT_NUMBER, 0x2bb038521914 ^ 42);
}
