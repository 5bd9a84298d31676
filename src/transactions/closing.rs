//! The BOLT 3 (legacy, `closing_signed`) mutual closing transaction.

use bitcoin::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{OutPoint, Script, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

use super::commitment::txout;

/// Builds the mutual closing transaction (BOLT 3 "Legacy Closing
/// Transaction"), unsigned.
///
/// `funder_value_sat` is the funder's final balance with the closing fee
/// already taken out, `fundee_value_sat` the fundee's. An output below
/// `dust_limit_sat` (the signer's) is omitted; the rest are in BIP 69 order.
/// Version 2, locktime 0, input sequence `0xFFFFFFFF`.
pub fn build_closing_transaction(
    funding_outpoint: OutPoint,
    funder_value_sat: u64,
    fundee_value_sat: u64,
    funder_script: &Script,
    fundee_script: &Script,
    dust_limit_sat: u64,
) -> Transaction {
    let mut output: Vec<TxOut> = [
        (funder_value_sat, funder_script),
        (fundee_value_sat, fundee_script),
    ]
    .into_iter()
    .filter(|(value, _)| *value >= dust_limit_sat)
    .map(|(value, script)| txout(value, script.to_owned()))
    .collect();
    output.sort_by(|a, b| {
        (a.value, a.script_pubkey.as_bytes()).cmp(&(b.value, b.script_pubkey.as_bytes()))
    });
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: funding_outpoint,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::Txid;

    #[test]
    fn dust_outputs_are_dropped_and_the_rest_sorted() {
        let outpoint = OutPoint::new(Txid::all_zeros(), 0);
        let a = ScriptBuf::from_bytes(vec![0x00, 0x14, 0xaa]);
        let b = ScriptBuf::from_bytes(vec![0x00, 0x14, 0xbb]);
        let tx = build_closing_transaction(outpoint, 5000, 4000, &a, &b, 546);
        assert_eq!(tx.output.len(), 2);
        assert_eq!(tx.output[0].script_pubkey, b);
        assert_eq!(tx.output[0].value.to_sat(), 4000);
        let tx = build_closing_transaction(outpoint, 5000, 5000, &b, &a, 546);
        assert_eq!(tx.output[0].script_pubkey, a);
        let tx = build_closing_transaction(outpoint, 5000, 545, &a, &b, 546);
        assert_eq!(tx.output.len(), 1);
        assert_eq!(tx.output[0].script_pubkey, a);
        assert_eq!(tx.input[0].sequence, Sequence::MAX);
        assert_eq!(tx.lock_time, LockTime::ZERO);
        assert_eq!(tx.version, Version::TWO);
    }
}
