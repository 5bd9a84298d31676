//! BOLT 3 appendix B: the funding transaction. Its output script comes from
//! `chanstore::transactions`; the P2PKH input is signed here with the
//! `bitcoin` crate (the channel never spends a P2PKH output).

use bitcoin::absolute::LockTime;
use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::hashes::Hash;
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::secp256k1::{Message, PublicKey, Secp256k1};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};
use chanstore::transactions::{funding_output_script, funding_redeemscript, sign};

use super::{bytes, pubkey, secret};

#[test]
fn funding_transaction() {
    let block1_coinbase: Transaction = deserialize_hex("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff03510101ffffffff0100f2052a010000001976a9143ca33c2e4446f4a305f23c80df8ad1afdcf652f988ac00000000").unwrap();
    let coinbase_privkey =
        secret("6bd078650fcee8444e4e09825227b801a1ca928debb750eb36e6d56124bb20e801");
    let local_funding_pubkey =
        pubkey("023da092f6980e58d2c037173180e9a465476026ee50f96695963e8efe436f54eb");
    let remote_funding_pubkey =
        pubkey("030e9f7b623d2ccc7c9bd44d66d5ce21ce504c0acf6385a132cec6d3c39fa711c1");
    let funding_wscript = "5221023da092f6980e58d2c037173180e9a465476026ee50f96695963e8efe436f54eb21030e9f7b623d2ccc7c9bd44d66d5ce21ce504c0acf6385a132cec6d3c39fa711c152ae";
    let input_txid = "fd2105607605d2302994ffea703b09f66b6351816ee737a93e42a841ea20bbad";
    let input_index = 0;
    let input_satoshis = 5000000000;
    let funding_satoshis = 10000000;
    let change_satoshis = 4989986080;
    let funding_output = 0;
    let funding_tx = "0200000001adbb20ea41a8423ea937e76e8151636bf6093b70eaff942930d20576600521fd000000006b48304502210090587b6201e166ad6af0227d3036a9454223d49a1f11839c1a362184340ef0240220577f7cd5cca78719405cbf1de7414ac027f0239ef6e214c90fcaab0454d84b3b012103535b32d5eb0a6ed0982a0479bbadc9868d9836f6ba94dd5a63be16d875069184ffffffff028096980000000000220020c015c4a6be010e21657068fc2e6a9d02b27ebe4d490a25846f7237f104d1a3cd20256d29010000001600143ca33c2e4446f4a305f23c80df8ad1afdcf652f900000000";
    let funding_txid = "8984484a580b825b9972d7adb15050b3ab624ccd731946b3eeddb92f4e7ef6be";

    assert_eq!(
        funding_redeemscript(&local_funding_pubkey, &remote_funding_pubkey).as_bytes(),
        bytes(funding_wscript),
        "funding witness script"
    );
    assert_eq!(
        block1_coinbase.compute_txid().to_string(),
        input_txid,
        "input txid"
    );
    let spent = &block1_coinbase.output[input_index];
    assert_eq!(
        spent.value,
        Amount::from_sat(input_satoshis),
        "input satoshis"
    );

    let coinbase_pubkey = PublicKey::from_secret_key(&Secp256k1::signing_only(), &coinbase_privkey);
    let change_script = ScriptBuf::new_p2wpkh(&CompressedPublicKey(coinbase_pubkey).wpubkey_hash());
    // BIP 69: the funding output is the smaller one.
    let mut tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(block1_coinbase.compute_txid(), input_index as u32),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(funding_satoshis),
                script_pubkey: funding_output_script(&local_funding_pubkey, &remote_funding_pubkey),
            },
            TxOut {
                value: Amount::from_sat(change_satoshis),
                script_pubkey: change_script,
            },
        ],
    };
    let sighash = SighashCache::new(&tx)
        .legacy_signature_hash(0, &spent.script_pubkey, EcdsaSighashType::All.to_u32())
        .unwrap();
    let sig = sign(
        &Message::from_digest(sighash.to_byte_array()),
        &coinbase_privkey,
    );
    let mut sig_bytes = sig.serialize_der().to_vec();
    sig_bytes.push(EcdsaSighashType::All as u8);
    tx.input[0].script_sig = Builder::new()
        .push_slice(PushBytesBuf::try_from(sig_bytes).unwrap())
        .push_slice(coinbase_pubkey.serialize())
        .into_script();

    assert_eq!(serialize_hex(&tx), funding_tx, "funding tx");
    assert_eq!(tx.compute_txid().to_string(), funding_txid, "funding txid");
    assert_eq!(
        tx.output[funding_output].value,
        Amount::from_sat(funding_satoshis),
        "funding output"
    );
}
