//! Second-stage HTLC transactions: HTLC-timeout (for an HTLC the broadcaster
//! offered) and HTLC-success (for one it received), their signature hashes
//! and their witnesses.

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{self, ecdsa::Signature};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, Txid, Witness};

use super::channel_keys::TxCreationKeys;
use super::commitment::{txout, HtlcOutputInCommitment};
use super::fees::{htlc_success_fee_sat, htlc_timeout_fee_sat};
use super::scripts::{htlc_witness_script, to_local_script};
use crate::types::PaymentPreimage;

/// Builds the HTLC-timeout (when `htlc.offered`) or HTLC-success transaction
/// spending output `output_index` of the commitment `commitment_txid`
/// (BOLT 3 "HTLC-Timeout and HTLC-Success Transactions"), unsigned.
///
/// Version 2; locktime `cltv_expiry` for HTLC-timeout, 0 for HTLC-success;
/// input sequence 0, or 1 with `option_anchors`; one output of the HTLC's
/// whole satoshis minus the HTLC transaction fee (zero with anchors), paid to
/// the `to_local` script of the broadcaster's revocation key,
/// `to_self_delay` and delayed payment key.
pub fn build_htlc_transaction(
    commitment_txid: &Txid,
    output_index: u32,
    htlc: &HtlcOutputInCommitment,
    feerate_per_kw: u32,
    to_self_delay: u16,
    keys: &TxCreationKeys,
    anchors: bool,
) -> Transaction {
    let (fee_sat, lock_time) = if htlc.offered {
        (
            htlc_timeout_fee_sat(feerate_per_kw, anchors),
            LockTime::from_consensus(htlc.cltv_expiry),
        )
    } else {
        (
            htlc_success_fee_sat(feerate_per_kw, anchors),
            LockTime::ZERO,
        )
    };
    let script = to_local_script(
        &keys.revocation_key,
        to_self_delay,
        &keys.broadcaster_delayed_payment_key,
    )
    .to_p2wsh();
    Transaction {
        version: Version::TWO,
        lock_time,
        input: vec![TxIn {
            previous_output: OutPoint::new(*commitment_txid, output_index),
            script_sig: ScriptBuf::new(),
            sequence: Sequence(u32::from(anchors)),
            witness: Witness::new(),
        }],
        // An untrimmed HTLC always covers its fee; saturate for the others.
        output: vec![txout(
            (htlc.amount_msat / 1000).saturating_sub(fee_sat),
            script,
        )],
    }
}

/// The sighash type of the countersignatory's HTLC signature:
/// `SIGHASH_ALL`, or `SIGHASH_SINGLE|SIGHASH_ANYONECANPAY` with
/// `option_anchors` (so the broadcaster can add fee inputs and outputs).
pub fn htlc_countersignatory_sighash_type(anchors: bool) -> EcdsaSighashType {
    if anchors {
        EcdsaSighashType::SinglePlusAnyoneCanPay
    } else {
        EcdsaSighashType::All
    }
}

/// BIP 143 digest of input 0 of `htlc_tx` spending `htlc`'s output, with
/// the given sighash type.
fn htlc_digest(
    htlc_tx: &Transaction,
    htlc: &HtlcOutputInCommitment,
    keys: &TxCreationKeys,
    anchors: bool,
    sighash_type: EcdsaSighashType,
) -> secp256k1::Message {
    let script = htlc_witness_script(htlc, keys, anchors);
    let hash = SighashCache::new(htlc_tx)
        .p2wsh_signature_hash(
            0,
            &script,
            Amount::from_sat(htlc.amount_msat / 1000),
            sighash_type,
        )
        .expect("an HTLC transaction has an input 0");
    secp256k1::Message::from_digest(hash.to_byte_array())
}

/// The digest the countersignatory signs for `htlc_tx` (the HTLC signatures
/// of `commitment_signed`): `SIGHASH_ALL`, or
/// `SIGHASH_SINGLE|SIGHASH_ANYONECANPAY` with `option_anchors`.
///
/// Panics if `htlc_tx` has no input ([`build_htlc_transaction`] gives it one).
pub fn htlc_sighash(
    htlc_tx: &Transaction,
    htlc: &HtlcOutputInCommitment,
    keys: &TxCreationKeys,
    anchors: bool,
) -> secp256k1::Message {
    htlc_digest(
        htlc_tx,
        htlc,
        keys,
        anchors,
        htlc_countersignatory_sighash_type(anchors),
    )
}

/// The digest the broadcaster signs for `htlc_tx` when it publishes it:
/// always `SIGHASH_ALL` (over the final transaction, which with anchors may
/// carry extra fee inputs and outputs).
///
/// Panics if `htlc_tx` has no input.
pub fn htlc_broadcaster_sighash(
    htlc_tx: &Transaction,
    htlc: &HtlcOutputInCommitment,
    keys: &TxCreationKeys,
    anchors: bool,
) -> secp256k1::Message {
    htlc_digest(htlc_tx, htlc, keys, anchors, EcdsaSighashType::All)
}

/// The witness of input 0 of an HTLC transaction:
/// `0 <remotehtlcsig> <localhtlcsig> <payment_preimage>` for HTLC-success,
/// `0 <remotehtlcsig> <localhtlcsig> <>` for HTLC-timeout, then the HTLC's
/// witness script.
///
/// `countersignatory_sig` is the signature over [`htlc_sighash`] and gets its
/// sighash byte ([`htlc_countersignatory_sighash_type`]); `broadcaster_sig`
/// is over [`htlc_broadcaster_sighash`] and gets `SIGHASH_ALL`. `preimage` is
/// needed for HTLC-success and ignored for HTLC-timeout.
pub fn htlc_tx_witness(
    htlc: &HtlcOutputInCommitment,
    keys: &TxCreationKeys,
    anchors: bool,
    countersignatory_sig: &Signature,
    broadcaster_sig: &Signature,
    preimage: Option<&PaymentPreimage>,
) -> Witness {
    let mut witness = Witness::new();
    witness.push(Vec::new());
    witness.push_ecdsa_signature(&bitcoin::ecdsa::Signature {
        signature: *countersignatory_sig,
        sighash_type: htlc_countersignatory_sighash_type(anchors),
    });
    witness.push_ecdsa_signature(&bitcoin::ecdsa::Signature::sighash_all(*broadcaster_sig));
    match (htlc.offered, preimage) {
        (false, Some(preimage)) => witness.push(preimage.0),
        _ => witness.push(Vec::new()),
    }
    witness.push(htlc_witness_script(htlc, keys, anchors).as_bytes());
    witness
}
