//! Golden logs of `FilePersister`: `tests/data/log-v<N>/chanstore.log`, one
//! per released log layout, written once by `regenerate_golden_log` (run
//! with `--ignored` only when the layout changes; it names the directory by
//! the version byte of the header it wrote) and read forever after.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chanstore::persist::Key;
use chanstore::{FileOptions, FilePersister, Persister};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// Three batches in three groups: writes, an overwrite, a delete.
fn scenario() -> Vec<Vec<(Key, Option<Vec<u8>>)>> {
    vec![
        vec![
            (Key::Work(1), Some(vec![1; 10])),
            (Key::Event(7), Some(b"event".to_vec())),
        ],
        vec![
            (Key::Work(1), Some(vec![2; 20])),
            (Key::Work(3), Some(b"third".to_vec())),
        ],
        vec![(Key::Event(7), None)],
    ]
}

fn expected() -> BTreeMap<Key, Vec<u8>> {
    BTreeMap::from([
        (Key::Work(1), vec![2; 20]),
        (Key::Work(3), b"third".to_vec()),
    ])
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "chanstore-golden-log-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
#[ignore = "writes tests/data/log-v<N>; run only when the log layout changes"]
fn regenerate_golden_log() {
    let dir = scratch("regenerate");
    let options = FileOptions {
        sync: false,
        ..FileOptions::default()
    };
    let p = FilePersister::open(&dir, options).unwrap();
    for batch in scenario() {
        p.write_batch(&batch).unwrap();
    }
    drop(p);
    let log = std::fs::read(dir.join("chanstore.log")).unwrap();
    // Layout 2's header is `CSLOG\0\0\2`, later ones `\0\0\0\0CSLOG\0\0` and the version.
    let version = if log.starts_with(b"CSLOG") {
        log[7]
    } else {
        log[11]
    };
    let out = Path::new(DATA).join(format!("log-v{version}"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("chanstore.log"), log).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens a copy of a golden log (`open` rewrites the log it opens), checks
/// its values, and that the rewrite reads back the same.
fn reads_back(version: u8) {
    let dir = scratch(&format!("v{version}"));
    let golden = Path::new(DATA).join(format!("log-v{version}/chanstore.log"));
    std::fs::copy(&golden, dir.join("chanstore.log"))
        .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
    let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
    assert_eq!(p.recovered_tail(), None);
    assert_eq!(p.load().unwrap(), expected());
    drop(p);
    // The rewrite on open is in the current layout (its header's version
    // byte), and reads back the same.
    let rewritten = std::fs::read(dir.join("chanstore.log")).unwrap();
    assert_eq!(&rewritten[..12], b"\0\0\0\0CSLOG\0\0\x03");
    let p = FilePersister::open(&dir, FileOptions::default()).unwrap();
    assert_eq!(p.load().unwrap(), expected());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn v2_log_reads_back() {
    reads_back(2);
}

#[test]
fn v3_log_reads_back() {
    reads_back(3);
}
