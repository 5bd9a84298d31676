//! BOLT 3 scripts: the funding 2-of-2, `to_local`, `to_remote`, anchors and
//! the offered/received HTLC scripts.
//!
//! Functions named `..._script` that return a *witness script* say so; the
//! `..._output_script` ones return the P2WSH / P2WPKH `scriptPubKey` that goes
//! into a transaction output.

use bitcoin::hashes::{hash160, ripemd160, Hash};
use bitcoin::opcodes::all::{
    OP_CHECKMULTISIG, OP_CHECKSIG, OP_CHECKSIGVERIFY, OP_CLTV, OP_CSV, OP_DROP, OP_DUP, OP_ELSE,
    OP_ENDIF, OP_EQUAL, OP_EQUALVERIFY, OP_HASH160, OP_IF, OP_IFDUP, OP_NOTIF, OP_PUSHNUM_1,
    OP_PUSHNUM_16, OP_PUSHNUM_2, OP_SIZE, OP_SWAP,
};
use bitcoin::script::Builder;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{CompressedPublicKey, ScriptBuf};

use super::channel_keys::TxCreationKeys;
use super::commitment::HtlcOutputInCommitment;
use crate::types::PaymentHash;

/// The funding witness script `2 <pubkey1> <pubkey2> 2 OP_CHECKMULTISIG`,
/// with the two funding keys in lexicographic order of their compressed
/// encoding (so the argument order does not matter).
pub fn funding_redeemscript(a: &PublicKey, b: &PublicKey) -> ScriptBuf {
    let (a, b) = (a.serialize(), b.serialize());
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    Builder::new()
        .push_opcode(OP_PUSHNUM_2)
        .push_slice(first)
        .push_slice(second)
        .push_opcode(OP_PUSHNUM_2)
        .push_opcode(OP_CHECKMULTISIG)
        .into_script()
}

/// The funding output's `scriptPubKey`: P2WSH of [`funding_redeemscript`].
pub fn funding_output_script(a: &PublicKey, b: &PublicKey) -> ScriptBuf {
    funding_redeemscript(a, b).to_p2wsh()
}

/// The `to_local` witness script (also the output script of HTLC-timeout
/// and HTLC-success transactions):
///
/// ```text
/// OP_IF <revocationpubkey> OP_ELSE <to_self_delay> OP_CSV OP_DROP <local_delayedpubkey> OP_ENDIF OP_CHECKSIG
/// ```
pub fn to_local_script(
    revocation_key: &PublicKey,
    to_self_delay: u16,
    delayed_payment_key: &PublicKey,
) -> ScriptBuf {
    Builder::new()
        .push_opcode(OP_IF)
        .push_slice(revocation_key.serialize())
        .push_opcode(OP_ELSE)
        .push_int(i64::from(to_self_delay))
        .push_opcode(OP_CSV)
        .push_opcode(OP_DROP)
        .push_slice(delayed_payment_key.serialize())
        .push_opcode(OP_ENDIF)
        .push_opcode(OP_CHECKSIG)
        .into_script()
}

/// The `to_remote` witness script with `option_anchors`:
/// `<remotepubkey> OP_CHECKSIGVERIFY 1 OP_CHECKSEQUENCEVERIFY`.
pub fn to_remote_delayed_script(payment_key: &PublicKey) -> ScriptBuf {
    Builder::new()
        .push_slice(payment_key.serialize())
        .push_opcode(OP_CHECKSIGVERIFY)
        .push_opcode(OP_PUSHNUM_1)
        .push_opcode(OP_CSV)
        .into_script()
}

/// The `to_remote` output's `scriptPubKey`: P2WPKH to `payment_key`, or with
/// `anchors` P2WSH of [`to_remote_delayed_script`].
pub fn to_remote_output_script(payment_key: &PublicKey, anchors: bool) -> ScriptBuf {
    if anchors {
        to_remote_delayed_script(payment_key).to_p2wsh()
    } else {
        ScriptBuf::new_p2wpkh(&CompressedPublicKey(*payment_key).wpubkey_hash())
    }
}

/// The anchor witness script (`option_anchors`):
///
/// ```text
/// <funding_pubkey> OP_CHECKSIG OP_IFDUP OP_NOTIF OP_16 OP_CHECKSEQUENCEVERIFY OP_ENDIF
/// ```
pub fn anchor_script(funding_pubkey: &PublicKey) -> ScriptBuf {
    Builder::new()
        .push_slice(funding_pubkey.serialize())
        .push_opcode(OP_CHECKSIG)
        .push_opcode(OP_IFDUP)
        .push_opcode(OP_NOTIF)
        .push_opcode(OP_PUSHNUM_16)
        .push_opcode(OP_CSV)
        .push_opcode(OP_ENDIF)
        .into_script()
}

/// An anchor output's `scriptPubKey`: P2WSH of [`anchor_script`].
pub fn anchor_output_script(funding_pubkey: &PublicKey) -> ScriptBuf {
    anchor_script(funding_pubkey).to_p2wsh()
}

/// `OP_DUP OP_HASH160 <RIPEMD160(SHA256(revocationpubkey))> OP_EQUAL OP_IF
/// OP_CHECKSIG OP_ELSE <remote_htlcpubkey> OP_SWAP OP_SIZE 32 OP_EQUAL`: the
/// head both HTLC scripts share.
fn htlc_script_head(keys: &TxCreationKeys) -> Builder {
    let revocation_hash = hash160::Hash::hash(&keys.revocation_key.serialize());
    Builder::new()
        .push_opcode(OP_DUP)
        .push_opcode(OP_HASH160)
        .push_slice(revocation_hash.to_byte_array())
        .push_opcode(OP_EQUAL)
        .push_opcode(OP_IF)
        .push_opcode(OP_CHECKSIG)
        .push_opcode(OP_ELSE)
        .push_slice(keys.countersignatory_htlc_key.serialize())
        .push_opcode(OP_SWAP)
        .push_opcode(OP_SIZE)
        .push_int(32)
        .push_opcode(OP_EQUAL)
}

/// Closes an HTLC script: `[1 OP_CSV OP_DROP] OP_ENDIF`.
fn htlc_script_tail(builder: Builder, anchors: bool) -> ScriptBuf {
    let builder = if anchors {
        builder
            .push_opcode(OP_PUSHNUM_1)
            .push_opcode(OP_CSV)
            .push_opcode(OP_DROP)
    } else {
        builder
    };
    builder.push_opcode(OP_ENDIF).into_script()
}

/// `RIPEMD160(payment_hash)`, as the HTLC scripts compare it.
fn payment_hash160(payment_hash: &PaymentHash) -> [u8; 20] {
    ripemd160::Hash::hash(&payment_hash.0).to_byte_array()
}

/// The witness script of an HTLC offered by the broadcaster (BOLT 3
/// "Offered HTLC Outputs"); with `anchors` it carries `1 OP_CSV OP_DROP`.
pub fn offered_htlc_script(
    keys: &TxCreationKeys,
    payment_hash: &PaymentHash,
    anchors: bool,
) -> ScriptBuf {
    let builder = htlc_script_head(keys)
        .push_opcode(OP_NOTIF)
        .push_opcode(OP_DROP)
        .push_opcode(OP_PUSHNUM_2)
        .push_opcode(OP_SWAP)
        .push_slice(keys.broadcaster_htlc_key.serialize())
        .push_opcode(OP_PUSHNUM_2)
        .push_opcode(OP_CHECKMULTISIG)
        .push_opcode(OP_ELSE)
        .push_opcode(OP_HASH160)
        .push_slice(payment_hash160(payment_hash))
        .push_opcode(OP_EQUALVERIFY)
        .push_opcode(OP_CHECKSIG)
        .push_opcode(OP_ENDIF);
    htlc_script_tail(builder, anchors)
}

/// The witness script of an HTLC received by the broadcaster (BOLT 3
/// "Received HTLC Outputs"); with `anchors` it carries `1 OP_CSV OP_DROP`.
pub fn received_htlc_script(
    keys: &TxCreationKeys,
    payment_hash: &PaymentHash,
    cltv_expiry: u32,
    anchors: bool,
) -> ScriptBuf {
    let builder = htlc_script_head(keys)
        .push_opcode(OP_IF)
        .push_opcode(OP_HASH160)
        .push_slice(payment_hash160(payment_hash))
        .push_opcode(OP_EQUALVERIFY)
        .push_opcode(OP_PUSHNUM_2)
        .push_opcode(OP_SWAP)
        .push_slice(keys.broadcaster_htlc_key.serialize())
        .push_opcode(OP_PUSHNUM_2)
        .push_opcode(OP_CHECKMULTISIG)
        .push_opcode(OP_ELSE)
        .push_opcode(OP_DROP)
        .push_int(i64::from(cltv_expiry))
        .push_opcode(OP_CLTV)
        .push_opcode(OP_DROP)
        .push_opcode(OP_CHECKSIG)
        .push_opcode(OP_ENDIF);
    htlc_script_tail(builder, anchors)
}

/// The witness script of `htlc`'s output in the commitment: offered or
/// received, as the HTLC's direction says.
pub fn htlc_witness_script(
    htlc: &HtlcOutputInCommitment,
    keys: &TxCreationKeys,
    anchors: bool,
) -> ScriptBuf {
    if htlc.offered {
        offered_htlc_script(keys, &htlc.payment_hash, anchors)
    } else {
        received_htlc_script(keys, &htlc.payment_hash, htlc.cltv_expiry, anchors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::SecretKey;

    use crate::secp::SECP;

    fn key(byte: u8) -> PublicKey {
        PublicKey::from_secret_key(&SECP, &SecretKey::from_slice(&[byte; 32]).unwrap())
    }

    #[test]
    fn funding_script_does_not_depend_on_argument_order() {
        let (a, b) = (key(1), key(2));
        assert_eq!(funding_redeemscript(&a, &b), funding_redeemscript(&b, &a));
        assert_eq!(funding_output_script(&a, &b), funding_output_script(&b, &a));
        assert!(funding_output_script(&a, &b).is_p2wsh());
    }

    #[test]
    fn to_remote_is_p2wpkh_without_anchors_and_p2wsh_with() {
        assert!(to_remote_output_script(&key(3), false).is_p2wpkh());
        assert!(to_remote_output_script(&key(3), true).is_p2wsh());
        assert!(anchor_output_script(&key(3)).is_p2wsh());
    }

    #[test]
    fn anchors_add_the_csv_to_htlc_scripts() {
        let keys = TxCreationKeys {
            per_commitment_point: key(4),
            revocation_key: key(5),
            broadcaster_htlc_key: key(6),
            countersignatory_htlc_key: key(7),
            broadcaster_delayed_payment_key: key(8),
        };
        let hash = PaymentHash([9; 32]);
        let plain = offered_htlc_script(&keys, &hash, false);
        let anchored = offered_htlc_script(&keys, &hash, true);
        assert_eq!(anchored.len(), plain.len() + 3);
        let plain = received_htlc_script(&keys, &hash, 500, false);
        let anchored = received_htlc_script(&keys, &hash, 500, true);
        assert_eq!(anchored.len(), plain.len() + 3);
    }
}
