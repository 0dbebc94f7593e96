//! The suite's table, its CSV and its charts.

use super::far::Cpus;
use super::{Cell, Group, Options, Results};
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// The charts' font: DejaVu Sans cut down to ASCII (see `cli/font`).
const FONT: &[u8] = include_bytes!("../../font/DejaVuSans-ascii.ttf");

/// `64 B`, `4 KiB`, `16 MiB`.
pub fn fmt_size(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// A duration in ns, three significant figures and a unit.
pub fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        return "-".into();
    }
    let (v, unit) = match ns {
        n if n < 1e3 => (n, "ns"),
        n if n < 1e6 => (n / 1e3, "µs"),
        n if n < 1e9 => (n / 1e6, "ms"),
        n => (n / 1e9, "s"),
    };
    let digits = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{v:.digits$} {unit}")
}

fn fmt_rate(per_second: f64, size: usize) -> (String, String) {
    let msgs = match per_second {
        r if r >= 1e6 => format!("{:.1} M/s", r / 1e6),
        r if r >= 1e3 => format!("{:.1} k/s", r / 1e3),
        r => format!("{r:.0} /s"),
    };
    let bytes = per_second * size as f64;
    let bytes = if bytes >= 1e9 {
        format!("{:.2} GB/s", bytes / 1e9)
    } else {
        format!("{:.0} MB/s", bytes / 1e6)
    };
    (msgs, bytes)
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r.is_finite() && r >= 10.0 => format!("{r:.0}x"),
        Some(r) if r.is_finite() && r >= 0.1 => format!("{r:.2}x"),
        Some(r) if r.is_finite() => format!("{r:.3}x"),
        _ => "-".into(),
    }
}

/// Whether a system hands over a loaned block (its payload written in
/// place) rather than carrying a copy of the message.
pub fn zero_copy(name: &str) -> bool {
    name.contains("loan")
}

/// The best peers at one size: the fastest copying one and the fastest
/// zero-copy one, each with its name and p50. Each row is set against
/// the peer of its own kind.
struct Best {
    copying: Option<(&'static str, f64)>,
    zero_copy: Option<(&'static str, f64)>,
}

impl Best {
    fn for_row(&self, name: &str) -> Option<(&'static str, f64)> {
        if zero_copy(name) {
            self.zero_copy
        } else {
            self.copying
        }
    }
}

/// The p50 of the memcpy floor and the best peers at the size in column
/// `i`.
fn baselines(results: &Results, i: usize) -> (Option<f64>, Best) {
    let p50 = |c: &Cell| match c {
        Cell::Done(f) if f.p50().is_finite() => Some(f.p50()),
        _ => None,
    };
    let floor = results
        .rows
        .iter()
        .find(|(s, _)| s.name == "floor: memcpy ring")
        .and_then(|(_, cells)| p50(&cells[i]));
    let best = |zero: bool| {
        results
            .rows
            .iter()
            .filter(|(s, _)| s.group == Group::Peer && zero_copy(s.name) == zero)
            .filter_map(|(s, cells)| p50(&cells[i]).map(|p| (s.name, p)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    };
    (
        floor,
        Best {
            copying: best(false),
            zero_copy: best(true),
        },
    )
}

/// Prints the table: a block a size.
pub fn print(results: &Results, opts: &Options, cpus: Cpus) {
    let where_ = match cpus.0 {
        Some((near, far)) => format!("this side on CPU {near}, the far end on CPU {far}"),
        None => "one CPU: both sides share it".into(),
    };
    println!(
        "one-way latency (round trip / 2) and one-way throughput between two processes; \
         {where_}; up to {} timed round trips a row{}",
        opts.rounds,
        if opts.quick { " (quick run)" } else { "" }
    );
    println!(
        "x floor: p50 over the memcpy floor's at the same size; x peer: p50 over the \
         fastest other cross-process system's of the same kind (a copy for copying rows, a \
         loan for loan rows; below 1: faster)"
    );
    for (i, &size) in results.sizes.iter().enumerate() {
        let (floor, best) = baselines(results, i);
        let named = |b: Option<(&str, f64)>| {
            b.map_or("-".to_owned(), |(n, p)| format!("{n}, {}", fmt_ns(p)))
        };
        println!(
            "\n{}  (best copying peer: {}; best zero-copy peer: {})",
            fmt_size(size),
            named(best.copying),
            named(best.zero_copy)
        );
        println!(
            "  {:<38} {:>9} {:>9} {:>9} {:>8} {:>8} {:>10} {:>10}",
            "system", "p50", "p99", "p99.9", "x floor", "x peer", "messages", "bytes"
        );
        for (system, cells) in &results.rows {
            match &cells[i] {
                Cell::Done(f) => {
                    let [p50, p99, p999] = f.one_way;
                    let (msgs, mut bytes) = f
                        .per_second
                        .map_or(("-".into(), "-".into()), |r| fmt_rate(r, size));
                    if zero_copy(system.name) {
                        // Its payload is written in place, not carried.
                        bytes = "in place".into();
                    }
                    println!(
                        "  {:<38} {:>9} {:>9} {:>9} {:>8} {:>8} {:>10} {:>10}",
                        system.name,
                        fmt_ns(p50),
                        fmt_ns(p99),
                        fmt_ns(p999),
                        fmt_ratio(floor.map(|fl| p50 / fl)),
                        fmt_ratio(best.for_row(system.name).map(|(_, b)| p50 / b)),
                        msgs,
                        bytes
                    );
                }
                Cell::NotRun(why) if size == 64 || !why.contains("cache line") => {
                    println!("  {:<38} not run: {why}", system.name)
                }
                Cell::NotRun(_) => {}
                Cell::Failed(e) => println!("  {:<38} FAILED: {e}", system.name),
            }
        }
    }
}

/// Quotes a CSV field if it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The CSV: one line a system and size.
pub fn csv(results: &Results) -> String {
    let mut out = String::from(
        "system,group,size_bytes,p50_ns,p99_ns,p999_ns,samples,messages_per_s,bytes_per_s,\
         x_floor,x_best_peer,note\n",
    );
    for (i, &size) in results.sizes.iter().enumerate() {
        let (floor, best) = baselines(results, i);
        for (system, cells) in &results.rows {
            let head = format!("{},{},{size}", csv_field(system.name), system.group.tag());
            let line = match &cells[i] {
                Cell::Done(f) => {
                    let [p50, p99, p999] = f.one_way;
                    let rate = f.per_second.map_or((String::new(), String::new()), |r| {
                        (format!("{r:.1}"), format!("{:.0}", r * size as f64))
                    });
                    let ratio =
                        |b: Option<f64>| b.map_or(String::new(), |b| format!("{:.4}", p50 / b));
                    format!(
                        "{head},{p50:.1},{p99:.1},{p999:.1},{},{},{},{},{},",
                        f.samples,
                        rate.0,
                        rate.1,
                        ratio(floor),
                        ratio(best.for_row(system.name).map(|b| b.1))
                    )
                }
                Cell::NotRun(why) => {
                    format!("{head},,,,,,,,,{}", csv_field(&format!("not run: {why}")))
                }
                Cell::Failed(e) => format!("{head},,,,,,,,,{}", csv_field(&format!("failed: {e}"))),
            };
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Writes `bench.csv`, `latency.png` and `throughput.png` into `dir`.
pub fn write_files(results: &Results, dir: &Path) -> Result<Vec<PathBuf>, String> {
    let csv_path = dir.join("bench.csv");
    std::fs::write(&csv_path, csv(results))
        .map_err(|e| format!("writing {}: {e}", csv_path.display()))?;
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    let latency = dir.join("latency.png");
    chart(
        results,
        &latency,
        "One-way latency, p50",
        "ns",
        |f, _| Some(f.p50()),
        |_| true,
    )
    .map_err(|e| format!("drawing {}: {e}", latency.display()))?;
    let throughput = dir.join("throughput.png");
    chart(
        results,
        &throughput,
        "One-way throughput",
        "bytes per second",
        |f, size| f.per_second.map(|r| r * size as f64),
        // Loans carry no bytes: their payload is written where it lies.
        |name| !zero_copy(name),
    )
    .map_err(|e| format!("drawing {}: {e}", throughput.display()))?;
    Ok(vec![csv_path, latency, throughput])
}

/// A log-log chart of `value` against the payload size, one line a
/// system.
fn chart(
    results: &Results,
    path: &Path,
    title: &str,
    unit: &str,
    value: impl Fn(&super::Figures, usize) -> Option<f64>,
    shown: impl Fn(&str) -> bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let lines: Vec<(&str, Vec<(f64, f64)>)> = results
        .rows
        .iter()
        .filter(|(s, _)| shown(s.name))
        .map(|(s, cells)| {
            let points = cells
                .iter()
                .zip(&results.sizes)
                .filter_map(|(c, &size)| match c {
                    Cell::Done(f) => value(f, size)
                        .filter(|v| v.is_finite() && *v > 0.0)
                        .map(|v| (size as f64, v)),
                    _ => None,
                })
                .collect();
            (s.name, points)
        })
        .filter(|(_, p): &(&str, Vec<(f64, f64)>)| !p.is_empty())
        .collect();
    let all = lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let (lo, hi) = all.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return Err("nothing measured to draw".into());
    }
    let (xlo, xhi) = results
        .sizes
        .iter()
        .fold((f64::INFINITY, 0f64), |(lo, hi), &s| {
            (lo.min(s as f64), hi.max(s as f64))
        });
    let root = BitMapBackend::new(path, (1400, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, legend) = root.split_horizontally(1040);
    let key_points: Vec<f64> = results.sizes.iter().map(|&s| s as f64).collect();
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 28))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(
            (xlo / 1.5..xhi * 1.5)
                .log_scale()
                .with_key_points(key_points),
            (lo / 2.0..hi * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("payload size")
        .y_desc(unit)
        .x_label_formatter(&|x| fmt_size(*x as usize))
        .y_label_formatter(&|y| {
            if unit == "ns" {
                fmt_ns(*y).replace('µ', "u")
            } else {
                format!("{:.0} MB/s", y / 1e6)
            }
        })
        .label_style(("sans-serif", 16))
        .draw()?;
    for (i, (name, points)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).mix(0.9);
        let style = ShapeStyle::from(&color).stroke_width(2);
        chart.draw_series(LineSeries::new(points.iter().copied(), style))?;
        chart.draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 4, ShapeStyle::from(&color).filled())),
        )?;
        // The key, beside the plot.
        let y = 70 + 28 * i as i32;
        legend.draw(&PathElement::new(vec![(10, y), (40, y)], style))?;
        legend.draw(&Text::new(
            name.to_string(),
            (50, y - 9),
            ("sans-serif", 17).into_font(),
        ))?;
    }
    root.present()?;
    Ok(())
}
