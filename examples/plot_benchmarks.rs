//! `plot_benchmarks`: throughput against threads, one line per design, from
//! criterion's JSON output; an SVG per benchmark group and a Markdown table.
//!
//! ```text
//! cargo bench --features baselines
//! cargo run --example plot_benchmarks -- [CRITERION_DIR] [OUT_DIR]
//! ```
//!
//! `CRITERION_DIR` defaults to `target/criterion`, `OUT_DIR` to `docs/img`.
//! For every `<group>/<design>/<threads>/new/` it reads `benchmark.json`
//! (ids and the throughput per iteration) and `estimates.json` (time per
//! iteration: the slope where criterion fitted one, else the mean, with its
//! 95% confidence interval), writes `OUT_DIR/<group>.svg`, and prints a
//! Markdown table of elements per second to paste into
//! `docs/BENCHMARKS.md`. Needs nothing outside cargo (plotters' SVG backend).

use std::collections::BTreeMap;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

/// One measured point: elements per second, with its confidence interval.
#[derive(Clone, Copy, Debug)]
struct Point {
    threads: u32,
    rate: f64,
    low: f64,
    high: f64,
}

/// group -> design -> points, sorted by threads.
type Results = BTreeMap<String, BTreeMap<String, Vec<Point>>>;

/// One benchmark's `(group, design, point)`.
type Measured = (String, String, Point);

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") || args.len() > 2 {
        println!("usage: plot_benchmarks [CRITERION_DIR (target/criterion)] [OUT_DIR (docs/img)]");
        return Ok(());
    }
    let dir = PathBuf::from(args.first().map_or("target/criterion", String::as_str));
    let out = PathBuf::from(args.get(1).map_or("docs/img", String::as_str));
    let results = collect(&dir)?;
    if results.is_empty() {
        return Err(format!(
            "no criterion results under {} (run `cargo bench --features baselines` first)",
            dir.display()
        )
        .into());
    }
    fs::create_dir_all(&out)?;
    for (group, designs) in &results {
        let path = out.join(format!("{group}.svg"));
        plot(group, designs, &path)?;
        eprintln!("wrote {}", path.display());
    }
    print!("{}", table(&results));
    Ok(())
}

/// Finds every `new/benchmark.json` below `dir` (a few levels deep).
fn collect(dir: &Path) -> Result<Results, Box<dyn Error>> {
    let mut results = Results::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "new") {
                if let Some((group, design, point)) = read_point(&path)? {
                    results
                        .entry(group)
                        .or_default()
                        .entry(design)
                        .or_default()
                        .push(point);
                }
            } else if depth < 6 && path.file_name().is_some_and(|n| n != "report") {
                stack.push((path, depth + 1));
            }
        }
    }
    for designs in results.values_mut() {
        for points in designs.values_mut() {
            points.sort_by_key(|p| p.threads);
        }
    }
    Ok(results)
}

/// Reads one benchmark's point; `None` if it is not a `<group>/<design>/<threads>` one.
fn read_point(new: &Path) -> Result<Option<Measured>, Box<dyn Error>> {
    let (Ok(bench), Ok(estimates)) = (
        fs::read_to_string(new.join("benchmark.json")),
        fs::read_to_string(new.join("estimates.json")),
    ) else {
        return Ok(None);
    };
    let bench: Value = serde_json::from_str(&bench)?;
    let estimates: Value = serde_json::from_str(&estimates)?;
    let (Some(group), Some(design), Some(threads)) = (
        bench["group_id"].as_str(),
        bench["function_id"].as_str(),
        bench["value_str"]
            .as_str()
            .and_then(|v| v.parse::<u32>().ok()),
    ) else {
        return Ok(None);
    };
    let elements = bench["throughput"]["Elements"].as_f64().unwrap_or(1.0);
    // Criterion's own choice: the slope for linear sampling, else the mean.
    let est = if estimates["slope"].is_object() {
        &estimates["slope"]
    } else {
        &estimates["mean"]
    };
    let ns = |v: &Value| v.as_f64().filter(|x| *x > 0.0);
    let (Some(mid), Some(lo), Some(hi)) = (
        ns(&est["point_estimate"]),
        ns(&est["confidence_interval"]["lower_bound"]),
        ns(&est["confidence_interval"]["upper_bound"]),
    ) else {
        return Ok(None);
    };
    let per_sec = |t_ns: f64| elements * 1e9 / t_ns;
    Ok(Some((
        group.to_string(),
        design.to_string(),
        Point {
            threads,
            rate: per_sec(mid),
            // A longer time per iteration is a lower rate.
            low: per_sec(hi),
            high: per_sec(lo),
        },
    )))
}

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// Throughput (y) against threads (x, log 2 scale), one line per design, with
/// the confidence intervals as whiskers.
fn plot(
    group: &str,
    designs: &BTreeMap<String, Vec<Point>>,
    path: &Path,
) -> Result<(), Box<dyn Error>> {
    let points = designs.values().flatten();
    let max_threads = points.clone().map(|p| p.threads).max().unwrap_or(1).max(2);
    let max_rate = points.map(|p| p.high).fold(0.0, f64::max).max(1.0);
    let (scale, unit) = if max_rate >= 2e6 {
        (1e6, "M ")
    } else if max_rate >= 2e3 {
        (1e3, "k ")
    } else {
        (1.0, "")
    };
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    // x is log2(threads) (the thread counts are powers of two), one tick
    // per power of two, with an empty tick either side as a margin.
    let top = f64::from(max_threads).log2().ceil() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{group}: throughput vs threads"),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-1i32..top + 2, 0f64..max_rate / scale * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("threads")
        .y_desc(format!("{unit}{} / s", what(group)))
        .x_labels((top + 3) as usize)
        .x_label_formatter(&|x| match *x {
            x if (0..=top).contains(&x) => format!("{}", 1u32 << x),
            _ => String::new(),
        })
        .draw()?;
    for (i, (design, pts)) in designs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let xy = |p: &Point| (log2(p.threads), p.rate / scale);
        chart
            .draw_series(LineSeries::new(pts.iter().map(xy), color.stroke_width(2)))?
            .label(design.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.iter().map(|p| Circle::new(xy(p), 4, color.filled())))?;
        chart.draw_series(pts.iter().map(|p| {
            let x = log2(p.threads);
            PathElement::new(vec![(x, p.low / scale), (x, p.high / scale)], color)
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// What one element of a group is, for the y axis.
fn what(group: &str) -> &'static str {
    if group.starts_with("store_ops") {
        "operations"
    } else if group.starts_with("forwarding") || group.starts_with("reads_under_load") {
        "forwarded HTLCs"
    } else {
        "elements"
    }
}

/// The x coordinate of a thread count (rounded down to a power of two).
fn log2(threads: u32) -> i32 {
    threads.max(1).ilog2() as i32
}

/// A Markdown table: one row per group and design, one column per thread count.
fn table(results: &Results) -> String {
    let mut threads: Vec<u32> = results
        .values()
        .flat_map(|d| d.values().flatten().map(|p| p.threads))
        .collect();
    threads.sort_unstable();
    threads.dedup();
    let mut s = String::from("| group | design |");
    for t in &threads {
        s += &format!(" {t} thr |");
    }
    s += "\n|---|---|";
    s += &"---:|".repeat(threads.len());
    s += "\n";
    for (group, designs) in results {
        for (design, pts) in designs {
            s += &format!("| {group} | {design} |");
            for t in &threads {
                match pts.iter().find(|p| p.threads == *t) {
                    Some(p) => s += &format!(" {} |", human(p.rate)),
                    None => s += " |",
                }
            }
            s += "\n";
        }
    }
    s
}

/// 1234567.0 -> "1.23 M", 5432.1 -> "5.43 k", 543.2 -> "543".
fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1} k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.2} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}
