//! BOLT 3 appendix C: commitment and HTLC transactions without anchors.
//! One test per named vector; the values are in `appendix_c_vectors.rs`.

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::Amount;
use chanstore::transactions::{
    build_commitment_transaction, build_htlc_transaction, commitment_fee_sat, commitment_sighash,
    funding_redeemscript, funding_spend_witness, htlc_broadcaster_sighash, htlc_sighash,
    htlc_tx_witness, htlc_witness_script, sign, to_local_script, to_remote_output_script, verify,
    CommitmentParams, HtlcOutputInCommitment,
};

use super::appendix_c_vectors::*;
use super::fixture::{self, fixture, FUNDING_SAT, LOCAL_DELAY, LOCAL_DUST_LIMIT_SAT};
use super::{bytes, der, pubkey};

/// A named commitment transaction vector.
pub struct CommitmentVector {
    pub name: &'static str,
    pub to_local_msat: u64,
    pub to_remote_msat: u64,
    pub local_feerate_per_kw: u32,
    /// Which of the test HTLCs 0..=6 the commitment carries (trimmed ones
    /// included): none for the first vector, 1, 5 and 6 for the last one,
    /// 0 to 4 for the others, as the appendix's introduction says.
    pub htlcs: &'static [usize],
    /// `# base commitment transaction fee` (the last vector does not say).
    pub base_fee_sat: Option<u64>,
    /// `# actual commitment transaction fee`.
    pub actual_fee_sat: Option<u64>,
    /// `# HTLC #n offered|received amount .. wscript ..`.
    pub htlc_wscripts: &'static [HtlcScript],
    /// `# to_local amount .. wscript ..`; `None` when the output is absent.
    /// (The last vector comments neither fees nor these outputs; for it the
    /// fields are `None` and only the transaction hex checks them.)
    pub to_local: Option<ToLocal>,
    /// `# to_remote amount .. P2WPKH(..)`, likewise.
    pub to_remote: Option<ToRemote>,
    pub remote_signature: &'static str,
    pub local_signature: &'static str,
    pub commit_tx: &'static str,
    pub num_htlcs: usize,
    pub htlc_txs: &'static [HtlcTxVector],
}

/// An untrimmed HTLC output's witness script.
pub struct HtlcScript {
    pub htlc: usize,
    pub offered: bool,
    pub amount_sat: u64,
    pub wscript: &'static str,
}

/// The `to_local` output.
pub struct ToLocal {
    pub amount_sat: u64,
    pub wscript: &'static str,
}

/// The `to_remote` output.
pub struct ToRemote {
    pub amount_sat: u64,
    pub p2wpkh_key: &'static str,
}

/// One HTLC-success / HTLC-timeout transaction of a vector.
pub struct HtlcTxVector {
    /// The commitment output it spends.
    pub output: u32,
    /// The test HTLC.
    pub htlc: usize,
    /// HTLC-success (else HTLC-timeout).
    pub success: bool,
    pub remote_htlc_signature: &'static str,
    pub local_htlc_signature: &'static str,
    pub tx: &'static str,
}

/// Builds, signs and checks one vector.
fn run(v: &CommitmentVector) {
    let name = v.name;
    let f = fixture();
    let htlcs: Vec<HtlcOutputInCommitment> = v.htlcs.iter().map(|&n| fixture::htlc(n)).collect();
    let params = CommitmentParams {
        funding_outpoint: f.funding_outpoint,
        commitment_number: fixture::COMMITMENT_NUMBER,
        obscure_factor: f.obscure_factor,
        to_broadcaster_value_msat: v.to_local_msat,
        to_countersignatory_value_msat: v.to_remote_msat,
        broadcaster_is_funder: true,
        feerate_per_kw: v.local_feerate_per_kw,
        dust_limit_sat: LOCAL_DUST_LIMIT_SAT,
        to_self_delay: LOCAL_DELAY,
        keys: &f.keys,
        countersignatory_payment_key: f.remote.payment_basepoint,
        broadcaster_funding_pubkey: f.local.funding_pubkey,
        countersignatory_funding_pubkey: f.remote.funding_pubkey,
        anchors: false,
        htlcs: &htlcs,
    };
    let built = build_commitment_transaction(&params);
    let mut tx = built.tx.clone();

    // Fees.
    if let Some(base) = v.base_fee_sat {
        assert_eq!(built.fee_sat, base, "{name}: base fee");
        assert_eq!(
            commitment_fee_sat(v.local_feerate_per_kw, v.num_htlcs, false),
            base,
            "{name}: commitment_fee_sat"
        );
    }
    let outputs_sat: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    if let Some(actual) = v.actual_fee_sat {
        assert_eq!(FUNDING_SAT - outputs_sat, actual, "{name}: actual fee");
    }

    // The outputs the comments describe (all vectors but the last comment
    // their fees and every output).
    let commented = v.base_fee_sat.is_some();
    match &v.to_local {
        Some(to_local) => {
            assert_eq!(
                built.to_broadcaster_sat, to_local.amount_sat,
                "{name}: to_local amount"
            );
            let script = to_local_script(
                &f.keys.revocation_key,
                LOCAL_DELAY,
                &f.keys.broadcaster_delayed_payment_key,
            );
            assert_eq!(
                script.as_bytes(),
                bytes(to_local.wscript),
                "{name}: to_local wscript"
            );
            let out = tx
                .output
                .iter()
                .find(|o| o.script_pubkey == script.to_p2wsh());
            assert_eq!(
                out.map(|o| o.value),
                Some(Amount::from_sat(to_local.amount_sat)),
                "{name}: to_local output"
            );
        }
        None if commented => assert_eq!(built.to_broadcaster_sat, 0, "{name}: no to_local"),
        None => {}
    }
    match &v.to_remote {
        Some(to_remote) => {
            assert_eq!(
                built.to_countersignatory_sat, to_remote.amount_sat,
                "{name}: to_remote amount"
            );
            let script = to_remote_output_script(&pubkey(to_remote.p2wpkh_key), false);
            let out = tx.output.iter().find(|o| o.script_pubkey == script);
            assert_eq!(
                out.map(|o| o.value),
                Some(Amount::from_sat(to_remote.amount_sat)),
                "{name}: to_remote output"
            );
        }
        None if commented => {
            assert_eq!(built.to_countersignatory_sat, 0, "{name}: no to_remote")
        }
        None => {}
    }
    let untrimmed = built.htlc_output_index.iter().flatten().count();
    assert_eq!(untrimmed, v.num_htlcs, "{name}: untrimmed htlcs");
    assert_eq!(
        v.htlc_wscripts.len(),
        v.num_htlcs,
        "{name}: listed wscripts"
    );
    for s in v.htlc_wscripts {
        let i = v.htlcs.iter().position(|&n| n == s.htlc).unwrap();
        let htlc = &htlcs[i];
        assert_eq!(
            htlc.offered, s.offered,
            "{name}: htlc #{} direction",
            s.htlc
        );
        assert_eq!(
            htlc.amount_msat / 1000,
            s.amount_sat,
            "{name}: htlc #{} amount",
            s.htlc
        );
        let script = htlc_witness_script(htlc, &f.keys, false);
        assert_eq!(
            script.as_bytes(),
            bytes(s.wscript),
            "{name}: htlc #{} wscript",
            s.htlc
        );
        let index = built.htlc_output_index[i].expect("listed htlc is untrimmed");
        assert_eq!(
            tx.output[index as usize].script_pubkey,
            script.to_p2wsh(),
            "{name}: htlc #{} output",
            s.htlc
        );
    }

    // Signatures and the signed transaction.
    let redeemscript = funding_redeemscript(&f.local.funding_pubkey, &f.remote.funding_pubkey);
    let msg = commitment_sighash(&tx, &redeemscript, FUNDING_SAT);
    let remote_sig = sign(&msg, &f.remote_funding_privkey);
    let local_sig = sign(&msg, &f.local_funding_privkey);
    assert_eq!(
        der(&remote_sig),
        v.remote_signature,
        "{name}: remote_signature"
    );
    assert_eq!(
        der(&local_sig),
        v.local_signature,
        "{name}: local_signature"
    );
    assert!(
        verify(&msg, &remote_sig, &f.remote.funding_pubkey),
        "{name}: remote sig verifies"
    );
    tx.input[0].witness = funding_spend_witness(
        &local_sig,
        &f.local.funding_pubkey,
        &remote_sig,
        &f.remote.funding_pubkey,
    );
    assert_eq!(serialize_hex(&tx), v.commit_tx, "{name}: commit_tx");

    // HTLC transactions, one per untrimmed HTLC output.
    assert_eq!(v.htlc_txs.len(), v.num_htlcs, "{name}: htlc tx count");
    let txid = tx.compute_txid();
    for h in v.htlc_txs {
        let what = format!("{name}: output #{} (htlc #{})", h.output, h.htlc);
        let i = v.htlcs.iter().position(|&n| n == h.htlc).unwrap();
        let htlc = &htlcs[i];
        assert_eq!(
            built.htlc_output_index[i],
            Some(h.output),
            "{what}: output index"
        );
        assert_eq!(htlc.offered, !h.success, "{what}: success or timeout");
        let mut htlc_tx = build_htlc_transaction(
            &txid,
            h.output,
            htlc,
            v.local_feerate_per_kw,
            LOCAL_DELAY,
            &f.keys,
            false,
        );
        let remote = sign(
            &htlc_sighash(&htlc_tx, htlc, &f.keys, false),
            &f.remote_htlc_privkey,
        );
        let local = sign(
            &htlc_broadcaster_sighash(&htlc_tx, htlc, &f.keys, false),
            &f.local_htlc_privkey,
        );
        assert_eq!(
            der(&remote),
            h.remote_htlc_signature,
            "{what}: remote_htlc_signature"
        );
        assert_eq!(
            der(&local),
            h.local_htlc_signature,
            "{what}: local_htlc_signature"
        );
        let preimage = fixture::preimage(h.htlc);
        htlc_tx.input[0].witness =
            htlc_tx_witness(htlc, &f.keys, false, &remote, &local, Some(&preimage));
        assert_eq!(serialize_hex(&htlc_tx), h.tx, "{what}: htlc tx");
    }
}

#[test]
fn simple_commitment_tx_with_no_htlcs() {
    run(&SIMPLE_COMMITMENT_TX_WITH_NO_HTLCS);
}

#[test]
fn commitment_tx_with_all_five_htlcs_untrimmed_minimum_feerate() {
    run(&COMMITMENT_TX_WITH_ALL_FIVE_HTLCS_UNTRIMMED_MINIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_seven_outputs_untrimmed_maximum_feerate() {
    run(&COMMITMENT_TX_WITH_SEVEN_OUTPUTS_UNTRIMMED_MAXIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_six_outputs_untrimmed_minimum_feerate() {
    run(&COMMITMENT_TX_WITH_SIX_OUTPUTS_UNTRIMMED_MINIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_six_outputs_untrimmed_maximum_feerate() {
    run(&COMMITMENT_TX_WITH_SIX_OUTPUTS_UNTRIMMED_MAXIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_five_outputs_untrimmed_minimum_feerate() {
    run(&COMMITMENT_TX_WITH_FIVE_OUTPUTS_UNTRIMMED_MINIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_five_outputs_untrimmed_maximum_feerate() {
    run(&COMMITMENT_TX_WITH_FIVE_OUTPUTS_UNTRIMMED_MAXIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_four_outputs_untrimmed_minimum_feerate() {
    run(&COMMITMENT_TX_WITH_FOUR_OUTPUTS_UNTRIMMED_MINIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_four_outputs_untrimmed_maximum_feerate() {
    run(&COMMITMENT_TX_WITH_FOUR_OUTPUTS_UNTRIMMED_MAXIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_three_outputs_untrimmed_minimum_feerate() {
    run(&COMMITMENT_TX_WITH_THREE_OUTPUTS_UNTRIMMED_MINIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_three_outputs_untrimmed_maximum_feerate() {
    run(&COMMITMENT_TX_WITH_THREE_OUTPUTS_UNTRIMMED_MAXIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_two_outputs_untrimmed_minimum_feerate() {
    run(&COMMITMENT_TX_WITH_TWO_OUTPUTS_UNTRIMMED_MINIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_two_outputs_untrimmed_maximum_feerate() {
    run(&COMMITMENT_TX_WITH_TWO_OUTPUTS_UNTRIMMED_MAXIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_one_output_untrimmed_minimum_feerate() {
    run(&COMMITMENT_TX_WITH_ONE_OUTPUT_UNTRIMMED_MINIMUM_FEERATE);
}

#[test]
fn commitment_tx_with_fee_greater_than_funder_amount() {
    run(&COMMITMENT_TX_WITH_FEE_GREATER_THAN_FUNDER_AMOUNT);
}

#[test]
fn commitment_tx_with_3_htlc_outputs_2_offered_having_the_same_amount_and_preimage() {
    run(&COMMITMENT_TX_WITH_3_HTLC_OUTPUTS_2_OFFERED_HAVING_THE_SAME_AMOUNT_AND_PREIMAGE);
}
