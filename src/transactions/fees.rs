//! BOLT 3 fees and dust: the expected weights, the commitment base fee, the
//! HTLC transaction fees and which HTLC outputs are trimmed.

use super::commitment::HtlcOutputInCommitment;

/// Expected weight of a commitment transaction without HTLC outputs.
pub const COMMITMENT_BASE_WEIGHT: u64 = 724;
/// Expected weight of a commitment transaction without HTLC outputs, with
/// `option_anchors`.
pub const COMMITMENT_BASE_WEIGHT_ANCHORS: u64 = 1124;
/// Weight each untrimmed HTLC output adds to a commitment transaction.
pub const COMMITMENT_WEIGHT_PER_HTLC: u64 = 172;
/// Expected weight of an HTLC-timeout transaction.
pub const HTLC_TIMEOUT_WEIGHT: u64 = 663;
/// Expected weight of an HTLC-success transaction.
pub const HTLC_SUCCESS_WEIGHT: u64 = 703;
/// Value of each anchor output (`option_anchors`), in satoshis.
pub const ANCHOR_OUTPUT_VALUE_SAT: u64 = 330;

/// `feerate_per_kw * weight / 1000`, rounded down.
fn fee_for_weight(feerate_per_kw: u32, weight: u64) -> u64 {
    // u32 * (weight < 2^20 for any HTLC count a channel allows) fits a u64;
    // saturate anyway so an absurd count cannot wrap.
    u64::from(feerate_per_kw).saturating_mul(weight) / 1000
}

/// The base commitment transaction fee the funder pays:
/// `(724 + 172 * n) * feerate / 1000`, or `(1124 + 172 * n) * feerate / 1000`
/// with `option_anchors`, rounded down, for `n` untrimmed HTLC outputs.
pub fn commitment_fee_sat(feerate_per_kw: u32, num_untrimmed_htlcs: usize, anchors: bool) -> u64 {
    let base = if anchors {
        COMMITMENT_BASE_WEIGHT_ANCHORS
    } else {
        COMMITMENT_BASE_WEIGHT
    };
    let htlcs = (num_untrimmed_htlcs as u64).saturating_mul(COMMITMENT_WEIGHT_PER_HTLC);
    fee_for_weight(feerate_per_kw, base.saturating_add(htlcs))
}

/// The fee of an HTLC-timeout transaction: `663 * feerate / 1000`, or 0 with
/// `option_anchors` (the broadcaster adds its own fee inputs).
pub fn htlc_timeout_fee_sat(feerate_per_kw: u32, anchors: bool) -> u64 {
    if anchors {
        0
    } else {
        fee_for_weight(feerate_per_kw, HTLC_TIMEOUT_WEIGHT)
    }
}

/// The fee of an HTLC-success transaction: `703 * feerate / 1000`, or 0 with
/// `option_anchors`.
pub fn htlc_success_fee_sat(feerate_per_kw: u32, anchors: bool) -> u64 {
    if anchors {
        0
    } else {
        fee_for_weight(feerate_per_kw, HTLC_SUCCESS_WEIGHT)
    }
}

/// Whether `htlc` gets no output in a commitment with this feerate and the
/// broadcaster's `dust_limit_sat`: its amount in whole satoshis, minus the
/// fee of the second-stage transaction that would spend it (HTLC-timeout for
/// an HTLC the broadcaster offered, HTLC-success for one it received), is
/// below the dust limit.
pub fn is_trimmed(
    htlc: &HtlcOutputInCommitment,
    feerate_per_kw: u32,
    dust_limit_sat: u64,
    anchors: bool,
) -> bool {
    let second_stage_fee = if htlc.offered {
        htlc_timeout_fee_sat(feerate_per_kw, anchors)
    } else {
        htlc_success_fee_sat(feerate_per_kw, anchors)
    };
    htlc.amount_msat / 1000 < dust_limit_sat.saturating_add(second_stage_fee)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PaymentHash;

    fn htlc(offered: bool, amount_msat: u64) -> HtlcOutputInCommitment {
        HtlcOutputInCommitment {
            offered,
            amount_msat,
            cltv_expiry: 500,
            payment_hash: PaymentHash([0; 32]),
        }
    }

    /// The worked example of BOLT 3 "Fees".
    #[test]
    fn bolt3_fee_example() {
        let (feerate, dust) = (5000, 546);
        assert_eq!(htlc_timeout_fee_sat(feerate, false), 3315);
        assert_eq!(htlc_success_fee_sat(feerate, false), 3515);
        let htlcs = [
            htlc(true, 5_000_000),
            htlc(true, 1_000_000),
            htlc(false, 7_000_000),
            htlc(false, 800_000),
        ];
        let untrimmed: Vec<_> = htlcs
            .iter()
            .map(|h| !is_trimmed(h, feerate, dust, false))
            .collect();
        assert_eq!(untrimmed, [true, false, true, false]);
        assert_eq!(commitment_fee_sat(feerate, 2, false), 5340);
    }

    #[test]
    fn anchors_zero_htlc_fees_and_trim_at_the_dust_limit() {
        assert_eq!(htlc_timeout_fee_sat(100_000, true), 0);
        assert_eq!(htlc_success_fee_sat(100_000, true), 0);
        assert!(is_trimmed(&htlc(true, 545_999), 100_000, 546, true));
        assert!(!is_trimmed(&htlc(false, 546_000), 100_000, 546, true));
        assert_eq!(commitment_fee_sat(1000, 0, true), 1124);
    }
}
