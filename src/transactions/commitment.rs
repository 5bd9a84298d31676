//! The BOLT 3 commitment transaction: obscured commitment number, fee and
//! anchor deduction, dust trimming, BIP 69 + CLTV output order.

use bitcoin::absolute::LockTime;
use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{self, PublicKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, Script, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

use super::channel_keys::TxCreationKeys;
use super::fees::{commitment_fee_sat, is_trimmed, ANCHOR_OUTPUT_VALUE_SAT};
use super::scripts::{
    anchor_output_script, htlc_witness_script, to_local_script, to_remote_output_script,
};
use crate::types::PaymentHash;

/// Mask of the 48 bits a commitment number has.
const COMMITMENT_NUMBER_MASK: u64 = (1 << 48) - 1;

/// An HTLC as one commitment transaction sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HtlcOutputInCommitment {
    /// Whether the commitment's *broadcaster* offered this HTLC (its output
    /// then uses the offered-HTLC script and is claimed back by an
    /// HTLC-timeout transaction); `false` when the broadcaster received it.
    pub offered: bool,
    /// The HTLC's amount; its output carries the whole satoshis.
    pub amount_msat: u64,
    /// The HTLC's absolute expiry (block height).
    pub cltv_expiry: u32,
    /// The hash that locks it.
    pub payment_hash: PaymentHash,
}

/// The lower 48 bits of `SHA256(funder_payment_basepoint ||
/// fundee_payment_basepoint)`, which obscure the commitment number in the
/// commitment transaction's locktime and sequence.
///
/// The funder is the side that sent `open_channel`, whoever broadcasts.
pub fn obscure_factor(
    funder_payment_basepoint: &PublicKey,
    fundee_payment_basepoint: &PublicKey,
) -> u64 {
    let mut engine = sha256::Hash::engine();
    engine.input(&funder_payment_basepoint.serialize());
    engine.input(&fundee_payment_basepoint.serialize());
    let hash = sha256::Hash::from_engine(engine).to_byte_array();
    let mut low = [0u8; 8];
    low[2..].copy_from_slice(&hash[26..]);
    u64::from_be_bytes(low)
}

/// Everything a commitment transaction is built from, from the point of view
/// of its broadcaster.
#[derive(Clone, Debug)]
pub struct CommitmentParams<'a> {
    /// The funding output the commitment spends.
    pub funding_outpoint: OutPoint,
    /// The BOLT 3 commitment number: 0 for the first commitment, counting
    /// up. (The per-commitment *index* is
    /// [`crate::keys::INITIAL_COMMITMENT_INDEX`] minus this.) Only the low 48
    /// bits are used.
    pub commitment_number: u64,
    /// [`obscure_factor`] of the channel.
    pub obscure_factor: u64,
    /// The broadcaster's balance with in-flight HTLCs already taken out,
    /// before the commitment fee and anchors (BOLT 3 appendix C
    /// `to_local_msat`).
    pub to_broadcaster_value_msat: u64,
    /// The countersignatory's balance, likewise (`to_remote_msat`).
    pub to_countersignatory_value_msat: u64,
    /// Whether the broadcaster is the funder, who pays the fee and anchors.
    pub broadcaster_is_funder: bool,
    /// The commitment's feerate.
    pub feerate_per_kw: u32,
    /// The broadcaster's `dust_limit_satoshis`.
    pub dust_limit_sat: u64,
    /// CSV delay on the broadcaster's `to_local` (the countersignatory's
    /// `to_self_delay`).
    pub to_self_delay: u16,
    /// The keys of this commitment.
    pub keys: &'a TxCreationKeys,
    /// The `to_remote` key: with `option_static_remotekey`, the
    /// countersignatory's `payment_basepoint`.
    pub countersignatory_payment_key: PublicKey,
    /// The broadcaster's funding key (its anchor output).
    pub broadcaster_funding_pubkey: PublicKey,
    /// The countersignatory's funding key (its anchor output).
    pub countersignatory_funding_pubkey: PublicKey,
    /// Whether `option_anchors` applies.
    pub anchors: bool,
    /// The HTLCs in flight in this commitment, trimmed ones included.
    pub htlcs: &'a [HtlcOutputInCommitment],
}

/// A built commitment transaction (unsigned: the input's witness is empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitmentTransaction {
    /// The transaction.
    pub tx: Transaction,
    /// The base commitment fee the funder paid ([`commitment_fee_sat`] for
    /// the untrimmed HTLCs). The fee actually left to miners is higher by
    /// whatever was trimmed, rounded off or (when the funder could not
    /// afford it) unpaid.
    pub fee_sat: u64,
    /// Value of the `to_local` output; 0 when it is omitted as dust.
    pub to_broadcaster_sat: u64,
    /// Value of the `to_remote` output; 0 when it is omitted as dust.
    pub to_countersignatory_sat: u64,
    /// For each entry of params.htlcs, in the same order: its output index, or None when trimmed as dust.
    pub htlc_output_index: Vec<Option<u32>>,
}

/// Builds the commitment transaction described by `params` (BOLT 3
/// "Commitment Transaction Construction"):
///
/// 1. version 2; locktime `0x20` followed by the low 24 bits of the obscured
///    commitment number; the input's sequence `0x80` followed by its high 24
///    bits;
/// 2. HTLCs whose amount minus their second-stage fee is below the dust
///    limit are trimmed;
/// 3. the funder's balance pays the base fee for the untrimmed HTLCs (and
///    2 × 330 sat for the anchors with `option_anchors`), going to zero if it
///    cannot;
/// 4. one output per untrimmed HTLC; `to_local` and `to_remote` when at
///    least the dust limit; with `option_anchors`, the broadcaster's anchor
///    when `to_local` exists or any HTLC is untrimmed, and the
///    countersignatory's when `to_remote` does or any HTLC is untrimmed;
/// 5. outputs sorted by value, then `scriptPubKey`, then (for identical HTLC
///    outputs) `cltv_expiry`; ties beyond that keep `params.htlcs` order.
pub fn build_commitment_transaction(params: &CommitmentParams<'_>) -> CommitmentTransaction {
    let anchors = params.anchors;
    let untrimmed: Vec<bool> = params
        .htlcs
        .iter()
        .map(|htlc| !is_trimmed(htlc, params.feerate_per_kw, params.dust_limit_sat, anchors))
        .collect();
    let num_untrimmed = untrimmed.iter().filter(|u| **u).count();
    let fee_sat = commitment_fee_sat(params.feerate_per_kw, num_untrimmed, anchors);
    let anchors_sat = if anchors {
        2 * ANCHOR_OUTPUT_VALUE_SAT
    } else {
        0
    };
    let funder_cost = fee_sat + anchors_sat;

    let mut to_broadcaster = params.to_broadcaster_value_msat / 1000;
    let mut to_countersignatory = params.to_countersignatory_value_msat / 1000;
    if params.broadcaster_is_funder {
        to_broadcaster = to_broadcaster.saturating_sub(funder_cost);
    } else {
        to_countersignatory = to_countersignatory.saturating_sub(funder_cost);
    }
    // Below the dust limit the output is omitted; 0 stands for "no output"
    // (a zero-value output is never produced, even with a zero dust limit).
    if to_broadcaster < params.dust_limit_sat {
        to_broadcaster = 0;
    }
    if to_countersignatory < params.dust_limit_sat {
        to_countersignatory = 0;
    }

    // (output, cltv tie-break, index into params.htlcs)
    let mut outputs: Vec<(TxOut, u32, Option<usize>)> = Vec::with_capacity(num_untrimmed + 4);
    for (i, htlc) in params.htlcs.iter().enumerate() {
        if untrimmed[i] {
            let script = htlc_witness_script(htlc, params.keys, anchors).to_p2wsh();
            outputs.push((
                txout(htlc.amount_msat / 1000, script),
                htlc.cltv_expiry,
                Some(i),
            ));
        }
    }
    if to_broadcaster > 0 {
        let script = to_local_script(
            &params.keys.revocation_key,
            params.to_self_delay,
            &params.keys.broadcaster_delayed_payment_key,
        )
        .to_p2wsh();
        outputs.push((txout(to_broadcaster, script), 0, None));
    }
    if to_countersignatory > 0 {
        let script = to_remote_output_script(&params.countersignatory_payment_key, anchors);
        outputs.push((txout(to_countersignatory, script), 0, None));
    }
    if anchors {
        if to_broadcaster > 0 || num_untrimmed > 0 {
            let script = anchor_output_script(&params.broadcaster_funding_pubkey);
            outputs.push((txout(ANCHOR_OUTPUT_VALUE_SAT, script), 0, None));
        }
        if to_countersignatory > 0 || num_untrimmed > 0 {
            let script = anchor_output_script(&params.countersignatory_funding_pubkey);
            outputs.push((txout(ANCHOR_OUTPUT_VALUE_SAT, script), 0, None));
        }
    }
    // Stable sort: identical HTLC outputs with equal expiry keep input order.
    outputs.sort_by(|(a, a_cltv, _), (b, b_cltv, _)| {
        (a.value, a.script_pubkey.as_bytes(), a_cltv).cmp(&(
            b.value,
            b.script_pubkey.as_bytes(),
            b_cltv,
        ))
    });

    let mut htlc_output_index = vec![None; params.htlcs.len()];
    for (position, (_, _, htlc)) in outputs.iter().enumerate() {
        if let Some(i) = htlc {
            htlc_output_index[*i] = Some(position as u32);
        }
    }

    let obscured = (params.commitment_number ^ params.obscure_factor) & COMMITMENT_NUMBER_MASK;
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::from_consensus((0x20 << 24) | (obscured & 0xff_ffff) as u32),
        input: vec![TxIn {
            previous_output: params.funding_outpoint,
            script_sig: ScriptBuf::new(),
            sequence: Sequence((0x80 << 24) | (obscured >> 24) as u32),
            witness: Witness::new(),
        }],
        output: outputs.into_iter().map(|(out, _, _)| out).collect(),
    };
    CommitmentTransaction {
        tx,
        fee_sat,
        to_broadcaster_sat: to_broadcaster,
        to_countersignatory_sat: to_countersignatory,
        htlc_output_index,
    }
}

/// A transaction output of `value_sat` to `script_pubkey`.
pub(super) fn txout(value_sat: u64, script_pubkey: ScriptBuf) -> TxOut {
    TxOut {
        value: Amount::from_sat(value_sat),
        script_pubkey,
    }
}

/// The BIP 143 `SIGHASH_ALL` digest each side signs for input 0 of a
/// transaction spending the funding output (a commitment or closing
/// transaction).
///
/// Panics if `tx` has no input (the builders here always give it one).
pub fn commitment_sighash(
    tx: &Transaction,
    funding_redeemscript: &Script,
    funding_sat: u64,
) -> secp256k1::Message {
    let hash = SighashCache::new(tx)
        .p2wsh_signature_hash(
            0,
            funding_redeemscript,
            Amount::from_sat(funding_sat),
            EcdsaSighashType::All,
        )
        .expect("a funding spend has an input 0");
    secp256k1::Message::from_digest(hash.to_byte_array())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::SecretKey;
    use bitcoin::Txid;

    use crate::secp::SECP;

    fn key(byte: u8) -> PublicKey {
        PublicKey::from_secret_key(&SECP, &SecretKey::from_slice(&[byte; 32]).unwrap())
    }

    fn keys() -> TxCreationKeys {
        TxCreationKeys {
            per_commitment_point: key(1),
            revocation_key: key(2),
            broadcaster_htlc_key: key(3),
            countersignatory_htlc_key: key(4),
            broadcaster_delayed_payment_key: key(5),
        }
    }

    fn params<'a>(
        keys: &'a TxCreationKeys,
        htlcs: &'a [HtlcOutputInCommitment],
        broadcaster_is_funder: bool,
        anchors: bool,
    ) -> CommitmentParams<'a> {
        CommitmentParams {
            funding_outpoint: OutPoint::new(Txid::all_zeros(), 1),
            commitment_number: 0x1234_5678_9abc,
            obscure_factor: 0xffff_0000_ffff,
            to_broadcaster_value_msat: 400_000_999,
            to_countersignatory_value_msat: 600_000_999,
            broadcaster_is_funder,
            feerate_per_kw: 1000,
            dust_limit_sat: 546,
            to_self_delay: 144,
            keys,
            countersignatory_payment_key: key(6),
            broadcaster_funding_pubkey: key(7),
            countersignatory_funding_pubkey: key(8),
            anchors,
            htlcs,
        }
    }

    #[test]
    fn the_funder_pays_fee_and_anchors_whoever_broadcasts() {
        let keys = keys();
        for anchors in [false, true] {
            let fee = commitment_fee_sat(1000, 0, anchors);
            let cost = fee + if anchors { 660 } else { 0 };
            let ours = build_commitment_transaction(&params(&keys, &[], true, anchors));
            assert_eq!(ours.fee_sat, fee);
            assert_eq!(ours.to_broadcaster_sat, 400_000 - cost);
            assert_eq!(ours.to_countersignatory_sat, 600_000);
            let theirs = build_commitment_transaction(&params(&keys, &[], false, anchors));
            assert_eq!(theirs.to_broadcaster_sat, 400_000);
            assert_eq!(theirs.to_countersignatory_sat, 600_000 - cost);
            assert_eq!(theirs.tx.output.len(), if anchors { 4 } else { 2 });
        }
    }

    #[test]
    fn obscured_number_is_split_over_locktime_and_sequence() {
        let keys = keys();
        let built = build_commitment_transaction(&params(&keys, &[], true, false));
        let obscured: u64 = 0x1234_5678_9abc ^ 0xffff_0000_ffff;
        assert_eq!(
            built.tx.lock_time.to_consensus_u32(),
            0x2000_0000 | (obscured & 0xff_ffff) as u32
        );
        assert_eq!(
            built.tx.input[0].sequence.0,
            0x8000_0000 | (obscured >> 24) as u32
        );
    }

    #[test]
    fn trimmed_htlcs_have_no_output_index_and_no_anchor_alone() {
        let keys = keys();
        let htlcs = [
            HtlcOutputInCommitment {
                offered: true,
                amount_msat: 545_999,
                cltv_expiry: 10,
                payment_hash: PaymentHash([1; 32]),
            },
            HtlcOutputInCommitment {
                offered: false,
                amount_msat: 50_000_000,
                cltv_expiry: 11,
                payment_hash: PaymentHash([2; 32]),
            },
        ];
        let built = build_commitment_transaction(&params(&keys, &htlcs, true, true));
        assert_eq!(built.htlc_output_index[0], None);
        let index = built.htlc_output_index[1].unwrap() as usize;
        assert_eq!(built.tx.output[index].value.to_sat(), 50_000);
        assert_eq!(built.fee_sat, commitment_fee_sat(1000, 1, true));

        // Only the funder's output left: only its anchor.
        let mut alone = params(&keys, &[], true, true);
        alone.to_countersignatory_value_msat = 0;
        let built = build_commitment_transaction(&alone);
        assert_eq!(built.tx.output.len(), 2);
        assert!(built
            .tx
            .output
            .iter()
            .any(|o| o.script_pubkey == anchor_output_script(&key(7))));
    }
}
