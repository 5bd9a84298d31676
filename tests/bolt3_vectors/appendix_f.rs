//! BOLT 3 appendix F: commitment and HTLC transactions with
//! `option_anchors`. One test per entry of the appendix's list; the values
//! are in `appendix_f_vectors.rs`. The keys and the other parameters are
//! those of appendix C (`fixture.rs`).

use bitcoin::consensus::encode::serialize_hex;
use chanstore::transactions::{
    build_commitment_transaction, build_htlc_transaction, commitment_sighash, funding_redeemscript,
    funding_spend_witness, htlc_broadcaster_sighash, htlc_sighash, htlc_tx_witness, sign, verify,
    CommitmentParams, HtlcOutputInCommitment,
};

use super::appendix_f_vectors::*;
use super::der;
use super::fixture::{self, fixture, FUNDING_SAT, LOCAL_DELAY};

/// One entry of the appendix F list (JSON field names in snake case).
pub struct AnchorVector {
    pub name: &'static str,
    /// `to_local_msat` of appendix C: in-flight HTLCs already taken out.
    pub local_balance: u64,
    pub remote_balance: u64,
    pub dust_limit_satoshis: u64,
    pub fee_per_kw: u32,
    pub use_test_htlcs: bool,
    /// One per untrimmed HTLC output, in output order.
    pub htlc_descs: &'static [HtlcDesc],
    pub expected_commitment_tx_hex: &'static str,
    pub remote_sig_hex: &'static str,
}

/// The second-stage transaction of one HTLC output.
pub struct HtlcDesc {
    pub remote_sig_hex: &'static str,
    pub resolution_tx_hex: &'static str,
}

/// The test HTLCs of `UseTestHtlcs`: 0 to 4, except for the vector named
/// after identical offered HTLCs, which (like its appendix C namesake, and
/// as the balances show: 10 000 000 sat in all) uses 1, 5 and 6.
fn test_htlcs(v: &AnchorVector) -> &'static [usize] {
    if !v.use_test_htlcs {
        &[]
    } else if v
        .name
        .contains("2 offered having the same amount and preimage")
    {
        &[1, 5, 6]
    } else {
        &[0, 1, 2, 3, 4]
    }
}

/// Builds, signs and checks one vector.
fn run(v: &AnchorVector) {
    let name = v.name;
    let f = fixture();
    let numbers = test_htlcs(v);
    let htlcs: Vec<HtlcOutputInCommitment> = numbers.iter().map(|&n| fixture::htlc(n)).collect();
    let in_flight: u64 = htlcs.iter().map(|h| h.amount_msat).sum();
    assert_eq!(
        v.local_balance + v.remote_balance + in_flight,
        FUNDING_SAT * 1000,
        "{name}: balances and HTLCs add up to the funding"
    );
    let params = CommitmentParams {
        funding_outpoint: f.funding_outpoint,
        commitment_number: fixture::COMMITMENT_NUMBER,
        obscure_factor: f.obscure_factor,
        to_broadcaster_value_msat: v.local_balance,
        to_countersignatory_value_msat: v.remote_balance,
        broadcaster_is_funder: true,
        feerate_per_kw: v.fee_per_kw,
        dust_limit_sat: v.dust_limit_satoshis,
        to_self_delay: LOCAL_DELAY,
        keys: &f.keys,
        countersignatory_payment_key: f.remote.payment_basepoint,
        broadcaster_funding_pubkey: f.local.funding_pubkey,
        countersignatory_funding_pubkey: f.remote.funding_pubkey,
        anchors: true,
        htlcs: &htlcs,
    };
    let built = build_commitment_transaction(&params);
    let mut tx = built.tx.clone();

    let redeemscript = funding_redeemscript(&f.local.funding_pubkey, &f.remote.funding_pubkey);
    let msg = commitment_sighash(&tx, &redeemscript, FUNDING_SAT);
    let remote_sig = sign(&msg, &f.remote_funding_privkey);
    let local_sig = sign(&msg, &f.local_funding_privkey);
    assert_eq!(der(&remote_sig), v.remote_sig_hex, "{name}: RemoteSigHex");
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
    assert_eq!(
        serialize_hex(&tx),
        v.expected_commitment_tx_hex,
        "{name}: ExpectedCommitmentTxHex"
    );

    // Untrimmed HTLCs in output order, one HtlcDesc each.
    let mut untrimmed: Vec<(u32, usize)> = built
        .htlc_output_index
        .iter()
        .enumerate()
        .filter_map(|(i, output)| Some(((*output)?, i)))
        .collect();
    untrimmed.sort_unstable();
    assert_eq!(
        untrimmed.len(),
        v.htlc_descs.len(),
        "{name}: untrimmed htlcs"
    );
    let txid = tx.compute_txid();
    for ((output, i), desc) in untrimmed.into_iter().zip(v.htlc_descs) {
        let what = format!("{name}: output #{output} (htlc #{})", numbers[i]);
        let htlc = &htlcs[i];
        let mut htlc_tx = build_htlc_transaction(
            &txid,
            output,
            htlc,
            v.fee_per_kw,
            LOCAL_DELAY,
            &f.keys,
            true,
        );
        let remote = sign(
            &htlc_sighash(&htlc_tx, htlc, &f.keys, true),
            &f.remote_htlc_privkey,
        );
        let local = sign(
            &htlc_broadcaster_sighash(&htlc_tx, htlc, &f.keys, true),
            &f.local_htlc_privkey,
        );
        assert_eq!(der(&remote), desc.remote_sig_hex, "{what}: RemoteSigHex");
        let preimage = fixture::preimage(numbers[i]);
        htlc_tx.input[0].witness =
            htlc_tx_witness(htlc, &f.keys, true, &remote, &local, Some(&preimage));
        assert_eq!(
            serialize_hex(&htlc_tx),
            desc.resolution_tx_hex,
            "{what}: ResolutionTxHex"
        );
    }
}

#[test]
fn simple_commitment_tx_with_no_htlcs() {
    run(&SIMPLE_COMMITMENT_TX_WITH_NO_HTLCS);
}

#[test]
fn simple_commitment_tx_with_no_htlcs_and_single_anchor() {
    run(&SIMPLE_COMMITMENT_TX_WITH_NO_HTLCS_AND_SINGLE_ANCHOR);
}

#[test]
fn commitment_tx_with_seven_outputs_untrimmed() {
    run(&COMMITMENT_TX_WITH_SEVEN_OUTPUTS_UNTRIMMED);
}

#[test]
fn commitment_tx_with_six_outputs_untrimmed_minimum_dust_limit() {
    run(&COMMITMENT_TX_WITH_SIX_OUTPUTS_UNTRIMMED_MINIMUM_DUST_LIMIT);
}

#[test]
fn commitment_tx_with_four_outputs_untrimmed_minimum_dust_limit() {
    run(&COMMITMENT_TX_WITH_FOUR_OUTPUTS_UNTRIMMED_MINIMUM_DUST_LIMIT);
}

#[test]
fn commitment_tx_with_three_outputs_untrimmed_minimum_dust_limit() {
    run(&COMMITMENT_TX_WITH_THREE_OUTPUTS_UNTRIMMED_MINIMUM_DUST_LIMIT);
}

#[test]
fn commitment_tx_with_two_outputs_untrimmed_minimum_dust_limit() {
    run(&COMMITMENT_TX_WITH_TWO_OUTPUTS_UNTRIMMED_MINIMUM_DUST_LIMIT);
}

#[test]
fn commitment_tx_with_one_output_untrimmed_minimum_dust_limit() {
    run(&COMMITMENT_TX_WITH_ONE_OUTPUT_UNTRIMMED_MINIMUM_DUST_LIMIT);
}

#[test]
fn commitment_tx_with_3_htlc_outputs_2_offered_having_the_same_amount_and_preimage() {
    run(&COMMITMENT_TX_WITH_3_HTLC_OUTPUTS_2_OFFERED_HAVING_THE_SAME_AMOUNT_AND_PREIMAGE);
}
