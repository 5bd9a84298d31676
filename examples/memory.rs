//! Measures the hub's memory per idle channel: `--channels` channels (default
//! 100,000) over `--peers` peers (default 10,000), opened with the real
//! BOLT 2 flow and real signatures, then left idle.
//!
//! A counting global allocator tracks live heap bytes. Peer stores are
//! dropped as soon as their channels are ready, and every event and message
//! is drained, so what remains is the hub: its peer map, channels, indexes
//! and snapshots. Run in release: `cargo run --release --example memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::SecretKey;
use bitcoin::{OutPoint, Txid};
use chanstore::{ChannelStore, ShortChannelId, StoreConfig};

/// Live heap bytes. Relaxed: a statistic, read after the threads joined.
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every method forwards to `System` unchanged and only adds
// bookkeeping on an atomic counter, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr`/`layout` come from our caller under `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn secret(n: u32) -> SecretKey {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&(n + 1).to_be_bytes());
    b[31] = 1;
    SecretKey::from_slice(&b).unwrap()
}

/// Opens `count` channels from `peer` to `hub` and drives them to ready.
fn open_from(hub: &ChannelStore, peer: &ChannelStore, peer_index: u32, count: u32) {
    let deliver = || loop {
        let mut moved = false;
        for (from, to) in [(peer, hub), (hub, peer)] {
            let msgs = if std::ptr::eq(from, hub) {
                hub.get_and_clear_pending_msg_events_for(&[peer.node_id()])
            } else {
                from.get_and_clear_pending_msg_events()
            };
            for (_, m) in msgs {
                to.handle_message(&from.node_id(), m).unwrap();
                moved = true;
            }
        }
        if !moved {
            break;
        }
    };
    deliver(); // the inits
    for c in 0..count {
        let temp = peer.create_channel(hub.node_id(), 100_000, 0).unwrap();
        deliver();
        let mut txid = [0u8; 32];
        txid[..4].copy_from_slice(&peer_index.to_be_bytes());
        txid[4..8].copy_from_slice(&c.to_be_bytes());
        let id = peer
            .funding_transaction_generated(
                &temp,
                &hub.node_id(),
                OutPoint::new(Txid::from_byte_array(txid), 0),
            )
            .unwrap();
        deliver();
        let scid = ShortChannelId::new(peer_index + 1, c, 0).unwrap();
        peer.funding_confirmed(&id, scid).unwrap();
        hub.funding_confirmed(&id, scid).unwrap();
        deliver();
    }
}

fn main() {
    let channels = arg("--channels", 100_000) as u32;
    let peers = arg("--peers", 10_000) as u32;
    let threads = arg(
        "--threads",
        std::thread::available_parallelism().map_or(2, |n| n.get()),
    );
    let per_peer = channels / peers;
    let config = StoreConfig {
        max_channels_per_peer: per_peer as usize + 1,
        ..StoreConfig::default()
    };
    // Warm up lazily built statics (secp context) before the baseline.
    drop(ChannelStore::new(config.clone(), secret(u32::MAX - 1), 800_000).unwrap());
    let before = LIVE.load(Ordering::Relaxed);
    let hub = Arc::new(ChannelStore::new(config.clone(), secret(u32::MAX - 2), 800_000).unwrap());
    let started = std::time::Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (hub, next, config) = (hub.clone(), next.clone(), config.clone());
            scope.spawn(move || loop {
                let p = next.fetch_add(1, Ordering::Relaxed) as u32;
                if p >= peers {
                    break;
                }
                let peer = ChannelStore::new(config.clone(), secret(p), 800_000).unwrap();
                hub.peer_connected(peer.node_id());
                peer.peer_connected(hub.node_id());
                open_from(&hub, &peer, p, per_peer);
                hub.get_and_clear_pending_events();
                if p % 1000 == 999 {
                    eprintln!("{} peers done ({:.0?})", p + 1, started.elapsed());
                }
            });
        }
    });
    hub.get_and_clear_pending_events();
    assert!(hub.get_and_clear_pending_msg_events().is_empty());
    let opened = hub.list_channels().len();
    assert_eq!(opened as u32, per_peer * peers);
    let after = LIVE.load(Ordering::Relaxed);
    let per_channel = (after - before) as f64 / opened as f64;
    println!(
        "{opened} idle channels over {peers} peers: hub heap {:.1} MiB, {per_channel:.0} bytes per channel ({:.2} KiB); setup {:.1?}",
        (after - before) as f64 / (1 << 20) as f64,
        per_channel / 1024.0,
        started.elapsed()
    );
}
