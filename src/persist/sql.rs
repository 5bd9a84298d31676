//! What the SQL backends share: the schema version, rows as they are
//! queued for a group commit, and reading keys back.

use std::collections::BTreeMap;

use super::Key;
use crate::error::StoreError;

/// The schema version this code writes and reads (the `schema_version` row
/// of the `meta` table). A database with a newer one is refused.
pub const SCHEMA_VERSION: i64 = 1;

/// One batch as rows: each key in its stable byte form, with its new value
/// (`None`: delete it).
pub(crate) type Rows = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A batch as rows, ready to be queued.
pub(crate) fn rows(batch: &[(Key, Option<Vec<u8>>)]) -> Rows {
    batch
        .iter()
        .map(|(k, v)| (k.to_bytes(), v.clone()))
        .collect()
}

/// The net effect of a group of batches applied in order: each key's last
/// write. Lets a backend apply a whole group with one statement per kind
/// (a key may appear in several batches of one group).
pub(crate) fn net_effect(batches: &[Rows]) -> BTreeMap<&[u8], Option<&[u8]>> {
    let mut last = BTreeMap::new();
    for (key, value) in batches.iter().flatten() {
        last.insert(&key[..], value.as_deref());
    }
    last
}

/// Refuses a database whose schema is newer than this code knows.
pub(crate) fn check_schema_version(found: i64, what: &str) -> Result<(), StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::Persist(format!(
            "{what}: schema version {found} is newer than this chanstore supports \
             (version {SCHEMA_VERSION}); run a newer chanstore"
        )));
    }
    if found < 1 {
        return Err(StoreError::Persist(format!(
            "{what}: invalid schema version {found}"
        )));
    }
    Ok(())
}

/// Decodes a key read back from a `kv` table; a corrupt one is an error
/// that shows its bytes.
pub(crate) fn decode_key(bytes: &[u8], what: &str) -> Result<Key, StoreError> {
    Key::from_bytes(bytes).map_err(|e| {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        StoreError::Persist(format!("{what}: corrupt key {hex} in table kv: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_effect_keeps_each_keys_last_write() {
        let a = rows(&[(Key::Work(1), Some(vec![1])), (Key::Work(2), Some(vec![2]))]);
        let b = rows(&[(Key::Work(1), None), (Key::Work(2), Some(vec![3]))]);
        let group = [a, b];
        let net = net_effect(&group);
        assert_eq!(net.len(), 2);
        assert_eq!(net[&Key::Work(1).to_bytes()[..]], None);
        assert_eq!(net[&Key::Work(2).to_bytes()[..]], Some(&[3u8][..]));
    }

    #[test]
    fn versions_and_keys_are_checked() {
        assert!(check_schema_version(SCHEMA_VERSION, "db").is_ok());
        let err = check_schema_version(SCHEMA_VERSION + 1, "db").unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("schema version {}", SCHEMA_VERSION + 1)));
        assert!(text.contains(&format!("version {SCHEMA_VERSION}")));
        assert!(decode_key(&[9, 1, 2], "db")
            .unwrap_err()
            .to_string()
            .contains("corrupt key 090102"));
        assert_eq!(
            decode_key(&Key::Event(5).to_bytes(), "db"),
            Ok(Key::Event(5))
        );
    }
}
