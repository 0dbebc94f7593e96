//! The run (every selected row in rounds) and its tables.

use crate::fanout::{fanout, fanout_label, FANOUT_SIZE, FANOUT_SUBSCRIBERS};
use crate::loan::{loan_row_bytes, PAYLOAD_SIZES};
use crate::reqresp::{REQUEST_BLOCKS, REQUEST_QUEUE, REQUEST_SIZE};
use crate::shared::{latency_table, timed_table, BASELINE_LABEL};
use crate::support::{self, fmt_ratio, fmt_rounds, fmt_size, Stats, Table, Unit};
use crate::{latency, Ctx, Row, Section};

pub(crate) struct Results {
    pinning: String,
    /// Cost of one `Instant::now()`, ns.
    clock_ns: f64,
    /// Sections A's and C's rows and the baseline: one-way statistics
    /// (round trip / 2, ns).
    latency: Vec<(Row, Result<Stats, String>)>,
    /// Per subscriber count: samples/s every subscriber received.
    fanout: Vec<(usize, Result<Stats, String>)>,
}

pub(crate) fn run(ctx: &Ctx) -> Result<Results, String> {
    let clock_ns = support::clock_cost();
    let rows: Vec<Row> = Row::all()
        .into_iter()
        .filter(|r| match r.section() {
            Section::Baseline => ctx.latency || ctx.reqresp,
            Section::Latency => ctx.latency && ctx.selects(&r.label()),
            Section::RequestResponse => ctx.reqresp && ctx.selects(&r.label()),
        })
        .collect();
    let (stats, mut pinned) = support::latency_rounds(
        &rows,
        ctx.plan.latency.rounds,
        |r| r.label(),
        |r| *r == Row::Typed,
        |r| latency(*r, ctx),
    )?;
    let counts: Vec<usize> = FANOUT_SUBSCRIBERS
        .into_iter()
        .filter(|&n| ctx.fanout && ctx.selects(&fanout_label(n)))
        .collect();
    let (merged, fan_pinned) = support::stream_rounds(
        &counts,
        ctx.plan.fanout.rounds,
        |&n| fanout_label(n),
        |&n| fanout(n, &ctx.placement, &ctx.plan.fanout),
    );
    pinned |= fan_pinned;
    Ok(Results {
        pinning: ctx.placement.describe(pinned),
        clock_ns,
        latency: rows.into_iter().zip(stats).collect(),
        fanout: counts
            .into_iter()
            .zip(merged)
            .map(|(n, m)| {
                (
                    n,
                    m.map(|(mut samples, _)| Stats::from_samples(&mut samples)),
                )
            })
            .collect(),
    })
}

impl Results {
    fn p50(&self, row: Row) -> Option<f64> {
        self.latency
            .iter()
            .find(|(r, _)| *r == row)
            .and_then(|(_, s)| s.as_ref().ok())
            .map(|s| s.p50)
    }

    pub(crate) fn print(&self, ctx: &Ctx) {
        support::print_setup(&self.pinning, self.clock_ns);
        let mut failed = Vec::new();
        // Table A unless its rows are all filtered out and table C shows
        // the baseline.
        let reqresp = self.section(Section::RequestResponse).next().is_some();
        let latency = self.section(Section::Latency).next().is_some();
        if ctx.latency && !self.latency.is_empty() && (latency || !reqresp) {
            self.print_latency(ctx, &mut failed);
        }
        if !self.fanout.is_empty() {
            self.print_fanout(ctx, &mut failed);
        }
        if reqresp {
            self.print_reqresp(ctx, &mut failed);
        }
        support::print_failed(&failed);
    }

    /// The rows of `section`, in order.
    fn section(&self, section: Section) -> impl Iterator<Item = &(Row, Result<Stats, String>)> {
        self.latency
            .iter()
            .filter(move |(r, _)| r.section() == section)
    }

    fn print_latency(&self, ctx: &Ctx, failed: &mut Vec<String>) {
        let largest = PAYLOAD_SIZES.iter().copied().max().unwrap_or(0);
        println!(
            "\nloan rows: services of one pool class of the payload's size, 4 blocks each; \
             the {} row maps {:.0} MiB",
            fmt_size(largest),
            loan_row_bytes(largest).unwrap_or(0) as f64 / f64::from(1 << 20)
        );
        println!(
            "loan rows write the sequence number into the first and last 8 bytes of the \
             loaned block, nothing else; copy rows copy the whole payload each way"
        );
        let mut t = latency_table(
            "A. one-way latency by payload size",
            &ctx.plan.latency,
            self.p50(Row::Typed),
        );
        t.add_column("samples");
        for (row, r) in self
            .section(Section::Baseline)
            .chain(self.section(Section::Latency))
        {
            support::latency_row(&mut t, failed, &row.label(), r, Vec::new());
        }
        t.print();
        println!("\np50 growth with the payload (each link's p50 over its own 64 B p50):");
        for (what, make) in [
            ("shmkit pubsub loan", Row::Loan as fn(usize) -> Row),
            ("shmkit byte_channel", Row::Bytes),
            ("unix socket", Row::Unix),
        ] {
            let ratio = |size: usize| match (self.p50(make(size)), self.p50(make(64))) {
                (Some(v), Some(small)) if small > 0.0 => fmt_ratio(v / small),
                _ => "not measured".to_owned(),
            };
            println!(
                "  {what:<20} 1 MiB / 64 B: {:>8}   16 MiB / 64 B: {:>8}",
                ratio(1 << 20),
                ratio(16 << 20)
            );
        }
    }

    /// Table C: whole round trips (the rows' one-way figures doubled
    /// back), the baseline's round trip first, every ratio to it.
    fn print_reqresp(&self, ctx: &Ctx, failed: &mut Vec<String>) {
        println!(
            "\nreqresp rows: one service, one client, a pool of one {} class of {REQUEST_BLOCKS} \
             blocks, queues of {REQUEST_QUEUE}, held limits of 1; the request and every \
             response are loans stamped with the sequence number in their first and last 8 bytes",
            fmt_size(REQUEST_SIZE)
        );
        let round_trip = self.p50(Row::Typed).map(|p| 2.0 * p);
        let mut t = timed_table(
            "C. request/response round trip",
            "whole round trip: not halved",
            &ctx.plan.latency,
            round_trip,
        );
        t.set_ratio_label("vs channel 64 B round trip");
        t.add_column("samples");
        for (row, r) in self
            .section(Section::Baseline)
            .chain(self.section(Section::RequestResponse))
        {
            let label = match row {
                Row::Typed => format!("{BASELINE_LABEL}, round trip"),
                _ => row.label(),
            };
            // Kept one-way, as every latency row: doubled back here.
            let whole = r.clone().map(|s| s.scaled(2.0));
            support::latency_row(&mut t, failed, &label, &whole, Vec::new());
        }
        t.print();
        println!(
            "a round trip: the request loaned, stamped and sent until the end of its \
             response stream is received; the ratio is to the baseline's round trip \
             (2 × its one-way p50{})",
            round_trip.map_or_else(String::new, |p| format!(", {} ns", support::fmt_value(p)))
        );
    }

    fn print_fanout(&self, ctx: &Ctx, failed: &mut Vec<String>) {
        let b = &ctx.plan.fanout;
        let mut t = Table::new(format!(
            "\nB. fan-out throughput, {FANOUT_SIZE}-byte samples, lossless (Msample/s that \
             every subscriber received, per repetition; {} repetitions of ~{:.0} ms in each \
             of {})",
            b.reps,
            b.rep_time.as_secs_f64() * 1e3,
            fmt_rounds(b.rounds)
        ));
        t.set_ratio_label("vs 1 sub");
        t.add_column("deliveries/s p50");
        let one = self
            .fanout
            .iter()
            .find(|(n, _)| *n == 1)
            .and_then(|(_, r)| r.as_ref().ok())
            .map(|s| s.p50);
        if let Some(one) = one {
            t.set_rate_floor(one / 1e6);
        }
        for (n, r) in &self.fanout {
            match r {
                Ok(s) => t.row_with_cells(
                    fanout_label(*n),
                    s.scaled(1e-6),
                    Unit::Other("Msample/s"),
                    vec![format!("{:.2} M", s.p50 * *n as f64 / 1e6)],
                ),
                Err(e) => failed.push(format!("{}: {e}", fanout_label(*n))),
            }
        }
        t.print();
    }
}
