//! BOLT 3 appendix D: per-commitment secret generation (all five vectors)
//! and the compact storage tests (all nine, every "incorrect" case
//! included), through `chanstore::keys`.

use chanstore::keys::{per_commitment_secret, CounterpartyCommitmentSecrets};
use chanstore::{ChannelId, StoreError};

use super::bytes32;

/// `output: OK`.
const OK: bool = true;
/// `output: ERROR`.
const ERROR: bool = false;

/// A generation test: `generate_from_seed(seed, I) == output`.
fn generate(name: &str, seed: &str, index: u64, output: &str) {
    assert_eq!(
        per_commitment_secret(&bytes32(seed), index),
        bytes32(output),
        "{name}"
    );
}

/// A storage test: secrets inserted in order into one store, each expected
/// to be accepted (`OK`) or refused (`ERROR`). A refused secret must leave
/// the store unchanged; after each accepted one, every secret inserted so
/// far must still be retrievable.
fn storage(name: &str, steps: &[(u64, &str, bool)]) {
    let mut store = CounterpartyCommitmentSecrets::new();
    assert_eq!(store.min_seen_index(), None, "{name}: empty store");
    for (step, &(index, secret, ok)) in steps.iter().enumerate() {
        let before = store.clone();
        let result = store.insert_secret(index, bytes32(secret));
        if ok {
            assert_eq!(
                result,
                Ok(()),
                "{name}: step {step} (I = {index}) must be OK"
            );
            assert_eq!(
                store.min_seen_index(),
                Some(index),
                "{name}: step {step} min index"
            );
            for &(earlier, earlier_secret, _) in &steps[..=step] {
                assert_eq!(
                    store.get_secret(earlier),
                    Some(bytes32(earlier_secret)),
                    "{name}: step {step}: secret of I = {earlier}"
                );
            }
        } else {
            assert_eq!(
                result,
                Err(StoreError::InvalidRevocationSecret {
                    channel_id: ChannelId([0; 32])
                }),
                "{name}: step {step} (I = {index}) must be ERROR"
            );
            assert_eq!(
                store, before,
                "{name}: step {step}: refused secret changed the store"
            );
        }
    }
}

#[test]
fn generate_from_seed_0_final_node() {
    generate(
        "generate_from_seed 0 final node",
        "0x0000000000000000000000000000000000000000000000000000000000000000",
        281474976710655,
        "0x02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148",
    );
}

#[test]
fn generate_from_seed_ff_final_node() {
    generate(
        "generate_from_seed FF final node",
        "0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        281474976710655,
        "0x7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
    );
}

#[test]
fn generate_from_seed_ff_alternate_bits_1() {
    generate(
        "generate_from_seed FF alternate bits 1",
        "0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        0xaaaaaaaaaaa,
        "0x56f4008fb007ca9acf0e15b054d5c9fd12ee06cea347914ddbaed70d1c13a528",
    );
}

#[test]
fn generate_from_seed_ff_alternate_bits_2() {
    generate(
        "generate_from_seed FF alternate bits 2",
        "0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        0x555555555555,
        "0x9015daaeb06dba4ccc05b91b2f73bd54405f2be9f217fbacd3c5ac2e62327d31",
    );
}

#[test]
fn generate_from_seed_01_last_nontrivial_node() {
    generate(
        "generate_from_seed 01 last nontrivial node",
        "0x0101010101010101010101010101010101010101010101010101010101010101",
        1,
        "0x915c75942a26bb3a433a8ce2cb0427c29ec6c1775cfc78328b57f6ba7bfeaa9c",
    );
}

#[test]
fn insert_secret_correct_sequence() {
    storage(
        "insert_secret correct sequence",
        &[
            (
                281474976710655,
                "0x7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
                OK,
            ),
            (
                281474976710654,
                "0xc7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                OK,
            ),
            (
                281474976710653,
                "0x2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
                OK,
            ),
            (
                281474976710652,
                "0x27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                OK,
            ),
            (
                281474976710651,
                "0xc65716add7aa98ba7acb236352d665cab17345fe45b55fb879ff80e6bd0c41dd",
                OK,
            ),
            (
                281474976710650,
                "0x969660042a28f32d9be17344e09374b379962d03db1574df5a8a5a47e19ce3f2",
                OK,
            ),
            (
                281474976710649,
                "0xa5a64476122ca0925fb344bdc1854c1c0a59fc614298e50a33e331980a220f32",
                OK,
            ),
            (
                281474976710648,
                "0x05cde6323d949933f7f7b78776bcc1ea6d9b31447732e3802e1f7ac44b650e17",
                OK,
            ),
        ],
    );
}

#[test]
fn insert_secret_1_incorrect() {
    storage(
        "insert_secret #1 incorrect",
        &[
            (
                281474976710655,
                "0x02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148",
                OK,
            ),
            (
                281474976710654,
                "0xc7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                ERROR,
            ),
        ],
    );
}

#[test]
fn insert_secret_2_incorrect_1_derived_from_incorrect() {
    storage(
        "insert_secret #2 incorrect (#1 derived from incorrect)",
        &[
            (
                281474976710655,
                "0x02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148",
                OK,
            ),
            (
                281474976710654,
                "0xdddc3a8d14fddf2b68fa8c7fbad2748274937479dd0f8930d5ebb4ab6bd866a3",
                OK,
            ),
            (
                281474976710653,
                "0x2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
                OK,
            ),
            (
                281474976710652,
                "0x27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                ERROR,
            ),
        ],
    );
}

#[test]
fn insert_secret_3_incorrect() {
    storage(
        "insert_secret #3 incorrect",
        &[
            (
                281474976710655,
                "0x7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
                OK,
            ),
            (
                281474976710654,
                "0xc7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                OK,
            ),
            (
                281474976710653,
                "0xc51a18b13e8527e579ec56365482c62f180b7d5760b46e9477dae59e87ed423a",
                OK,
            ),
            (
                281474976710652,
                "0x27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                ERROR,
            ),
        ],
    );
}

#[test]
fn insert_secret_4_incorrect_1_2_3_derived_from_incorrect() {
    storage(
        "insert_secret #4 incorrect (1,2,3 derived from incorrect)",
        &[
            (
                281474976710655,
                "0x02a40c85b6f28da08dfdbe0926c53fab2de6d28c10301f8f7c4073d5e42e3148",
                OK,
            ),
            (
                281474976710654,
                "0xdddc3a8d14fddf2b68fa8c7fbad2748274937479dd0f8930d5ebb4ab6bd866a3",
                OK,
            ),
            (
                281474976710653,
                "0xc51a18b13e8527e579ec56365482c62f180b7d5760b46e9477dae59e87ed423a",
                OK,
            ),
            (
                281474976710652,
                "0xba65d7b0ef55a3ba300d4e87af29868f394f8f138d78a7011669c79b37b936f4",
                OK,
            ),
            (
                281474976710651,
                "0xc65716add7aa98ba7acb236352d665cab17345fe45b55fb879ff80e6bd0c41dd",
                OK,
            ),
            (
                281474976710650,
                "0x969660042a28f32d9be17344e09374b379962d03db1574df5a8a5a47e19ce3f2",
                OK,
            ),
            (
                281474976710649,
                "0xa5a64476122ca0925fb344bdc1854c1c0a59fc614298e50a33e331980a220f32",
                OK,
            ),
            (
                281474976710648,
                "0x05cde6323d949933f7f7b78776bcc1ea6d9b31447732e3802e1f7ac44b650e17",
                ERROR,
            ),
        ],
    );
}

#[test]
fn insert_secret_5_incorrect() {
    storage(
        "insert_secret #5 incorrect",
        &[
            (
                281474976710655,
                "0x7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
                OK,
            ),
            (
                281474976710654,
                "0xc7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                OK,
            ),
            (
                281474976710653,
                "0x2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
                OK,
            ),
            (
                281474976710652,
                "0x27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                OK,
            ),
            (
                281474976710651,
                "0x631373ad5f9ef654bb3dade742d09504c567edd24320d2fcd68e3cc47e2ff6a6",
                OK,
            ),
            (
                281474976710650,
                "0x969660042a28f32d9be17344e09374b379962d03db1574df5a8a5a47e19ce3f2",
                ERROR,
            ),
        ],
    );
}

#[test]
fn insert_secret_6_incorrect_5_derived_from_incorrect() {
    storage(
        "insert_secret #6 incorrect (5 derived from incorrect)",
        &[
            (
                281474976710655,
                "0x7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
                OK,
            ),
            (
                281474976710654,
                "0xc7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                OK,
            ),
            (
                281474976710653,
                "0x2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
                OK,
            ),
            (
                281474976710652,
                "0x27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                OK,
            ),
            (
                281474976710651,
                "0x631373ad5f9ef654bb3dade742d09504c567edd24320d2fcd68e3cc47e2ff6a6",
                OK,
            ),
            (
                281474976710650,
                "0xb7e76a83668bde38b373970155c868a653304308f9896692f904a23731224bb1",
                OK,
            ),
            (
                281474976710649,
                "0xa5a64476122ca0925fb344bdc1854c1c0a59fc614298e50a33e331980a220f32",
                OK,
            ),
            (
                281474976710648,
                "0x05cde6323d949933f7f7b78776bcc1ea6d9b31447732e3802e1f7ac44b650e17",
                ERROR,
            ),
        ],
    );
}

#[test]
fn insert_secret_7_incorrect() {
    storage(
        "insert_secret #7 incorrect",
        &[
            (
                281474976710655,
                "0x7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
                OK,
            ),
            (
                281474976710654,
                "0xc7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                OK,
            ),
            (
                281474976710653,
                "0x2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
                OK,
            ),
            (
                281474976710652,
                "0x27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                OK,
            ),
            (
                281474976710651,
                "0xc65716add7aa98ba7acb236352d665cab17345fe45b55fb879ff80e6bd0c41dd",
                OK,
            ),
            (
                281474976710650,
                "0x969660042a28f32d9be17344e09374b379962d03db1574df5a8a5a47e19ce3f2",
                OK,
            ),
            (
                281474976710649,
                "0xe7971de736e01da8ed58b94c2fc216cb1dca9e326f3a96e7194fe8ea8af6c0a3",
                OK,
            ),
            (
                281474976710648,
                "0x05cde6323d949933f7f7b78776bcc1ea6d9b31447732e3802e1f7ac44b650e17",
                ERROR,
            ),
        ],
    );
}

#[test]
fn insert_secret_8_incorrect() {
    storage(
        "insert_secret #8 incorrect",
        &[
            (
                281474976710655,
                "0x7cc854b54e3e0dcdb010d7a3fee464a9687be6e8db3be6854c475621e007a5dc",
                OK,
            ),
            (
                281474976710654,
                "0xc7518c8ae4660ed02894df8976fa1a3659c1a8b4b5bec0c4b872abeba4cb8964",
                OK,
            ),
            (
                281474976710653,
                "0x2273e227a5b7449b6e70f1fb4652864038b1cbf9cd7c043a7d6456b7fc275ad8",
                OK,
            ),
            (
                281474976710652,
                "0x27cddaa5624534cb6cb9d7da077cf2b22ab21e9b506fd4998a51d54502e99116",
                OK,
            ),
            (
                281474976710651,
                "0xc65716add7aa98ba7acb236352d665cab17345fe45b55fb879ff80e6bd0c41dd",
                OK,
            ),
            (
                281474976710650,
                "0x969660042a28f32d9be17344e09374b379962d03db1574df5a8a5a47e19ce3f2",
                OK,
            ),
            (
                281474976710649,
                "0xa5a64476122ca0925fb344bdc1854c1c0a59fc614298e50a33e331980a220f32",
                OK,
            ),
            (
                281474976710648,
                "0xa7efbc61aac46d34f77778bac22c8a20c6a46ca460addc49009bda875ec88fa4",
                ERROR,
            ),
        ],
    );
}
