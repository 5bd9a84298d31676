//! `simulate`: a routing hub under load, with its invariants checked.
//!
//! Builds a hub (`ChannelStore`) with 1,000 peers and 2 channels each,
//! opened through the real BOLT 2 flow with real signatures, then sends
//! payments from peer to peer through the hub from several threads for 5
//! seconds, and prints forwarded HTLCs per second, latency percentiles
//! (send to fulfill at the sender) and the invariant checks. Exits non-zero
//! if an invariant fails.
//!
//! ```text
//! cargo run --release --example simulate
//! cargo run --release --example simulate -- --help
//! cargo run --release --features baselines --example simulate -- --design global
//! ```
//!
//! Every peer is its own store (the default design) driven by the same
//! worker threads as the hub, so the machine runs both sides: the wall-clock
//! rate counts the peers' signing too. The "hub time" rate counts only the
//! time spent inside hub calls (see `benches/common/net.rs`, shared with the
//! benchmarks). `--design global|rwlock` runs the hub on the baseline
//! designs, which are compiled only with the `baselines` feature; without it
//! those choices stop with an error that says how to turn it on.

#[path = "../benches/common/net.rs"]
mod net;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chanstore::{Container, Sharded, StoreConfig};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

/// Simulate a Lightning routing hub: open channels to many peers, forward
/// payments between them from several threads, then check the store's
/// invariants and report throughput and latency.
#[derive(Parser, Debug)]
#[command(
    name = "simulate",
    version,
    after_help = "Exit status: 0 if every invariant holds, 1 if one fails, 2 on a usage error."
)]
struct Args {
    /// Peers (counterparty nodes) connected to the hub.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..))]
    peers: u64,

    /// Channels between each peer and the hub.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=50))]
    channels_per_peer: u64,

    /// Worker threads: each owns a share of the peers, sends their payments
    /// and delivers their messages to and from the hub. Also used to open
    /// the channels. [default: the number of cores]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    threads: Option<u64>,

    /// Seconds to keep sending new payments (payments in flight then finish).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,

    /// Payments in flight at once, across all threads.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    in_flight: u64,

    /// Smallest payment, in satoshi (each payment is drawn uniformly
    /// between the smallest and the largest).
    #[arg(long, default_value_t = 1_000)]
    min_sat: u64,

    /// Largest payment, in satoshi.
    #[arg(long, default_value_t = 5_000)]
    max_sat: u64,

    /// Concurrency design of the hub's store. `global` (one mutex, LDK
    /// before #1507) and `rwlock` (LDK after #1507) need
    /// `--features baselines`.
    #[arg(long, value_enum, default_value_t = Design::Sharded)]
    design: Design,

    /// Let the hub skip signature checks (it always signs). Only to see what
    /// verification costs.
    #[arg(long)]
    no_verify: bool,

    /// Make the peers check the hub's signatures too (off by default: it is
    /// the peers' cost, not the hub's, and it slows the simulation).
    #[arg(long)]
    peers_verify: bool,

    /// Run one more thread that calls `list_channels()` on the hub in a loop.
    #[arg(long)]
    reader: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Design {
    /// The default: sharded peer map, per-shard forward queues, snapshots.
    Sharded,
    /// One mutex over everything (baseline).
    Global,
    /// Fair RwLock over per-peer mutexes, one forward queue (baseline).
    Rwlock,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.min_sat == 0 || args.min_sat > args.max_sat {
        eprintln!("error: need 0 < --min-sat <= --max-sat");
        return ExitCode::from(2);
    }
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        eprintln!("error: --seconds must be a positive number");
        return ExitCode::from(2);
    }
    match args.design {
        Design::Sharded => run::<Sharded>(&args),
        #[cfg(feature = "baselines")]
        Design::Global => run::<chanstore::baseline::GlobalLock>(&args),
        #[cfg(feature = "baselines")]
        Design::Rwlock => run::<chanstore::baseline::RwLockPeers>(&args),
        #[cfg(not(feature = "baselines"))]
        other => {
            let name = format!("{other:?}").to_lowercase();
            eprintln!(
                "error: --design {name} is a baseline design, compiled only with the \
                 `baselines` feature:\n  cargo run --release --features baselines \
                 --example simulate -- --design {name}"
            );
            ExitCode::from(2)
        }
    }
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb
}

fn run<C: Container>(args: &Args) -> ExitCode {
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()),
        |t| t as usize,
    );
    let config = net::NetConfig {
        peers: args.peers as usize,
        channels_per_peer: args.channels_per_peer as usize,
        hub_config: StoreConfig {
            verify_signatures: !args.no_verify,
            ..StoreConfig::default()
        },
        peers_verify: args.peers_verify,
        setup_threads: threads,
        ..Default::default()
    };
    let channels = args.peers * args.channels_per_peer;
    println!(
        "hub design {}: {} peers x {} channels = {channels} channels, {threads} threads{}",
        C::NAME,
        args.peers,
        args.channels_per_peer,
        if args.reader {
            ", plus a list_channels reader"
        } else {
            ""
        },
    );

    // Set-up: open every channel, in parallel.
    let pb = bar(
        channels,
        "opening channels [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
    );
    let started = Instant::now();
    let net = Arc::new(net::Net::<C>::build(&config, &|n| pb.inc(n as u64)));
    pb.finish_and_clear();
    println!(
        "opened {} channels in {:.1} s",
        net.channel_count(),
        started.elapsed().as_secs_f64()
    );

    // Load: payments for `seconds`, then the ones in flight finish.
    let reader = args.reader.then_some(Duration::ZERO);
    let pool = net::Pool::new(net.clone(), threads, reader);
    let spec = net::RunSpec {
        payments: None,
        in_flight: args.in_flight as usize,
        amount_msat: args.min_sat * 1000..=args.max_sat * 1000,
        latencies: true,
    };
    let duration = Duration::from_secs_f64(args.seconds);
    let pb = bar(
        duration.as_millis() as u64,
        "forwarding     [{bar:40}] {elapsed_precise} {msg}",
    );
    let run_start = Instant::now();
    let mut draining = false;
    let result = pool.run(&spec, |ctx| {
        // Relaxed: a number for the progress display, nothing is read through it.
        let done = ctx.completed.load(Ordering::Relaxed);
        let elapsed = run_start.elapsed();
        pb.set_position(elapsed.min(duration).as_millis() as u64);
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        if elapsed >= duration {
            if !draining {
                draining = true;
                pb.set_message(format!("{done} payments, finishing those in flight"));
            }
            return true;
        }
        pb.set_message(format!("{done} payments ({rate:.0}/s)"));
        false
    });
    pb.finish_and_clear();
    drop(pool);

    report(&net, &result, args)
}

fn report<C: Container>(net: &net::Net<C>, result: &net::RunResult, args: &Args) -> ExitCode {
    let wall = result.wall.as_secs_f64();
    let hub_time = result.hub_time().as_secs_f64();
    let ok = result.succeeded();
    println!();
    println!(
        "payments: {} sent, {ok} succeeded, {} failed",
        result.sent(),
        result.failed()
    );
    println!(
        "forwarded HTLCs: {} in {wall:.2} s = {:.0} HTLC/s wall clock (hub and peers share the machine)",
        result.forwarded,
        result.forwarded as f64 / wall
    );
    println!(
        "                 busiest worker spent {hub_time:.2} s in hub calls = {:.0} HTLC/s of hub time",
        result.forwarded as f64 / hub_time.max(1e-9)
    );
    if args.reader {
        println!(
            "reader: {} list_channels calls = {:.0}/s",
            result.reads,
            result.reads as f64 / wall
        );
    }
    let lat = result.latency_us();
    if lat.is_empty() {
        println!("latency: no payment completed");
    } else {
        let ms = |q: f64| lat.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "latency add -> fulfill at sender: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms",
            ms(0.5),
            ms(0.99),
            ms(0.999),
            lat.max() as f64 / 1000.0
        );
    }

    println!();
    println!("invariants:");
    let hub = &net.hub;
    let mut failed = 0;
    let mut check = |name: &str, outcome: Result<(), String>| match outcome {
        Ok(()) => println!("  ok      {name}"),
        Err(e) => {
            failed += 1;
            println!("  FAILED  {name}: {e}");
        }
    };
    check(
        "value conserved on every channel (hub and peers)",
        hub.check_value_conserved().and_then(|_| {
            net.peers
                .iter()
                .try_for_each(|p| p.store.check_value_conserved())
        }),
    );
    let not_once = result.not_ended_once();
    check(
        "every payment ended exactly once at its sender (PaymentSent or PaymentFailed)",
        if !not_once.is_empty() {
            Err(format!(
                "{} payments did not (first: {} ended {} times)",
                not_once.len(),
                not_once[0].0,
                not_once[0].1
            ))
        } else if result.unexpected_ends() > 0 {
            Err(format!(
                "{} ends of unknown payments",
                result.unexpected_ends()
            ))
        } else if ok + result.failed() != result.sent() {
            Err(format!(
                "{} sent, {} ended",
                result.sent(),
                ok + result.failed()
            ))
        } else {
            Ok(())
        },
    );
    check(
        "one HtlcForwarded at the hub per successful payment",
        if result.forwarded == ok {
            Ok(())
        } else {
            Err(format!("{} forwarded, {ok} succeeded", result.forwarded))
        },
    );
    check(
        "hub indexes agree with its peers' state",
        hub.check_indexes(),
    );
    check(
        "no forward left queued (pending_forwards() == 0)",
        match hub.pending_forwards() {
            0 => Ok(()),
            n => Err(format!("{n} queued")),
        },
    );
    let open_htlcs: usize = hub.list_channels().iter().map(|d| d.pending_htlcs).sum();
    check(
        "no HTLC left in any hub channel",
        match open_htlcs {
            0 => Ok(()),
            n => Err(format!("{n} HTLCs")),
        },
    );
    let unsent = hub.get_and_clear_pending_msg_events().len()
        + net
            .peers
            .iter()
            .map(|p| p.store.get_and_clear_pending_msg_events().len())
            .sum::<usize>();
    check(
        "no message left undelivered",
        match unsent {
            0 => Ok(()),
            n => Err(format!("{n} messages")),
        },
    );
    println!();
    if failed > 0 {
        println!("{failed} invariant(s) FAILED");
        ExitCode::FAILURE
    } else {
        println!("all invariants hold");
        ExitCode::SUCCESS
    }
}
