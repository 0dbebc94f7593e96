//! The results: the tables and the goals checked against them.

use crate::link::Link;
use crate::plan::Ctx;
use crate::support::{self, fmt_rounds, fmt_significant, verdict, Stats, Table, Unit};
use crate::throughput::Throughput;
use crate::SIZES;

/// Per stream: link, size, messages/s or why it failed.
pub(crate) type StreamRow = (Link, usize, Result<Throughput, String>);

pub(crate) struct Results {
    pub(crate) pinning: String,
    /// Cost of one `Instant::now()`, ns (p50 of back-to-back pairs).
    pub(crate) clock_ns: f64,
    pub(crate) latency: Vec<(Link, Result<Stats, String>)>,
    pub(crate) streams: Vec<StreamRow>,
}

/// `u64` or `64 B`, `4 KiB`...
pub(crate) fn size_label(size: usize) -> String {
    match size {
        8 => "u64".to_owned(),
        s if s >= 1024 => format!("{} KiB", s / 1024),
        s => format!("{s} B"),
    }
}

impl Results {
    pub(crate) fn latency_p50(&self, link: Link) -> Option<f64> {
        self.latency
            .iter()
            .find(|(l, _)| *l == link)
            .and_then(|(_, r)| r.as_ref().ok())
            .map(|s| s.p50)
    }

    /// Median messages/s of `link` at `size`.
    pub(crate) fn rate(&self, link: Link, size: usize) -> Option<f64> {
        self.streams
            .iter()
            .find(|(l, s, _)| *l == link && *s == size)
            .and_then(|(_, _, r)| r.as_ref().ok())
            .map(|t| t.stats.p50)
    }

    pub(crate) fn print(&self, ctx: &Ctx) {
        support::print_setup(&self.pinning, self.clock_ns);
        let mut failed = Vec::new();

        if !self.latency.is_empty() {
            let mut t = Table::new(format!(
                "\nA. one-way latency, 64-byte messages (ns; round trip / 2, every round trip \
                 timed, HDR histogram; up to {} round trips or {:.1} s per row, in {})",
                ctx.plan.latency.max_round_trips,
                ctx.plan.latency.budget.as_secs_f64(),
                fmt_rounds(ctx.plan.latency.rounds)
            ));
            t.show_p999();
            t.add_column("samples");
            for (link, r) in &self.latency {
                match r {
                    Ok(s) if *link == Link::Line => {
                        t.set_floor_ns(s.p50);
                        t.row_with_cells(link.latency_label(), *s, Unit::Ns, vec![s.n.to_string()]);
                    }
                    Ok(s) => {
                        t.row_with_cells(link.latency_label(), *s, Unit::Ns, vec![s.n.to_string()]);
                    }
                    Err(e) => failed.push(format!("{}: {e}", link.latency_label())),
                }
            }
            t.print();
        }

        for size in SIZES {
            if !self.streams.iter().any(|(_, s, _)| *s == size) {
                continue;
            }
            let (unit, per) = if size >= 4096 {
                ("kmsg/s", 1e3)
            } else {
                ("Mmsg/s", 1e6)
            };
            let pipe = self.rate(Link::Pipe, size);
            let unix = self.rate(Link::Unix, size);
            let count = self
                .streams
                .iter()
                .filter(|(_, s, _)| *s == size)
                .filter_map(|(_, _, r)| r.as_ref().ok())
                .map(|t| t.count)
                .max()
                .unwrap_or(0);
            let mut t = Table::new(format!(
                "\nB. throughput, {}{} messages, child -> parent ({unit} per repetition; \
                 {} repetitions of ~{:.0} ms in each of {}; up to {count} messages checked \
                 per row)",
                size_label(size),
                if size == 8 { " (8-byte)" } else { "" },
                ctx.plan.streams.reps,
                ctx.plan.streams.rep_time.as_secs_f64() * 1e3,
                fmt_rounds(ctx.plan.streams.rounds),
            ));
            t.set_ratio_label("vs pipe");
            if let Some(p) = pipe {
                t.set_rate_floor(p / per);
            }
            t.add_column("vs socket");
            t.add_column("GB/s p50");
            for (link, s, r) in self.streams.iter().filter(|(_, s, _)| *s == size) {
                match r {
                    Ok(tp) => {
                        let vs_unix =
                            unix.map_or("-".to_owned(), |u| support::fmt_ratio(tp.stats.p50 / u));
                        let gbs = fmt_significant(tp.stats.p50 * *s as f64 / 1e9);
                        t.row_with_cells(
                            link.stream_label(*s),
                            tp.stats.scaled(1.0 / per),
                            Unit::Other(unit),
                            vec![vs_unix, gbs],
                        );
                    }
                    Err(e) => {
                        failed.push(format!("{} {}: {e}", size_label(*s), link.stream_label(*s)))
                    }
                }
            }
            t.print();
        }

        self.print_goals();
        support::print_failed(&failed);
    }

    pub(crate) fn print_goals(&self) {
        println!("\ngoals (from this run's medians):");
        let floor = self.latency_p50(Link::Line);
        // Half a clock read sits in every one-way figure; taking it out of
        // both sides raises the ratio, so it is shown too.
        let half_clock = self.clock_ns / 2.0;
        for (link, what) in [
            (Link::Typed, "channel<[u8; 64]>"),
            (Link::Bytes, "byte_channel"),
        ] {
            let line = match (self.latency_p50(link), floor) {
                (Some(v), Some(f)) => {
                    let r = v / f;
                    let bare = (v - half_clock) / (f - half_clock);
                    format!(
                        "{v:.0} ns vs floor {f:.0} ns ({r:.2}x; {bare:.2}x without the clock \
                         read) -> {}",
                        verdict(r <= 2.0, || format!(
                            "{:.0}% over the 2x budget",
                            (r / 2.0 - 1.0) * 100.0
                        ))
                    )
                }
                _ => "not measured".to_owned(),
            };
            println!(
                "  (a) 64 B one-way p50 at most 2x the cache-line floor, shmkit {what}: {line}"
            );
        }
        let pipe = self.rate(Link::Pipe, 8);
        // Each shmkit row against the ideal ring publishing as often.
        for (link, what, ideal) in [
            (
                Link::RingChunks,
                "SpscRing chunks vs ideal per batch",
                Link::Ideal,
            ),
            (Link::Typed, "send/recv vs ideal per item", Link::IdealEach),
            (
                Link::TypedBatch,
                "send_all/recv_slice vs ideal per batch",
                Link::Ideal,
            ),
        ] {
            let mine = self.rate(link, 8);
            let line = match (mine, self.rate(ideal, 8)) {
                (Some(v), Some(i)) => {
                    let r = v / i;
                    format!(
                        "{:.1} vs {:.1} Mmsg/s ({r:.2}x) -> {}",
                        v / 1e6,
                        i / 1e6,
                        verdict(r >= 0.5, || format!(
                            "{:.0}% short of half",
                            (1.0 - r / 0.5) * 100.0
                        ))
                    )
                }
                _ => "not measured".to_owned(),
            };
            println!("  (b) SPSC u64 throughput at least half the ideal stream, {what}: {line}");
        }
        for (link, what) in [
            (Link::Typed, "send/recv"),
            (Link::TypedBatch, "send_all/recv_slice"),
        ] {
            let line = match (self.rate(link, 8), pipe) {
                (Some(v), Some(p)) => {
                    let r = v / p;
                    format!(
                        "{:.1} vs {:.2} Mmsg/s ({r:.0}x) -> {}",
                        v / 1e6,
                        p / 1e6,
                        verdict(r >= 100.0, || format!(
                            "{:.0}% short of 100x",
                            (1.0 - r / 100.0) * 100.0
                        ))
                    )
                }
                _ => "not measured".to_owned(),
            };
            println!("  (c) u64 msg/s at least 100x a pipe's, {what}: {line}");
        }
    }
}
