//! The run: every selected row in rounds, their samples merged.

use crate::latency::latency;
use crate::link::Link;
use crate::plan::Ctx;
use crate::report::{size_label, Results, StreamRow};
use crate::support::{self, Stats};
use crate::throughput::{throughput, Throughput};
use crate::{LATENCY_LINKS, STREAMS};

pub(crate) fn run(ctx: &Ctx) -> Result<Results, String> {
    let clock_ns = support::clock_cost();
    let links: Vec<Link> = LATENCY_LINKS
        .into_iter()
        .filter(|l| ctx.latency && (*l == Link::Line || ctx.selects(l.latency_label())))
        .collect();
    // Without the floor, no row means anything.
    let (stats, mut pinned) = support::latency_rounds(
        &links,
        ctx.plan.latency.rounds,
        |l| l.latency_label().to_owned(),
        |l| *l == Link::Line,
        |l| latency(*l, ctx),
    )?;
    let lat = links.into_iter().zip(stats).collect();
    let (streams, streams_pinned) = stream_rounds(ctx);
    pinned |= streams_pinned;
    Ok(Results {
        pinning: ctx.describe_pinning(pinned),
        clock_ns,
        latency: lat,
        streams,
    })
}

/// Section B: every stream row in each of `stream_rounds` rounds, each
/// round a fresh child with its own calibration and repetitions; a row's
/// samples and counts merge over its rounds, so a machine that changes
/// speed during the run moves every row alike. A row that fails once stays
/// failed.
/// Also returns whether the parent ran pinned.
pub(crate) fn stream_rounds(ctx: &Ctx) -> (Vec<StreamRow>, bool) {
    let chosen = |(l, size): &(Link, usize)| {
        ctx.selects(&format!("{}: {}", size_label(*size), l.stream_label(*size)))
    };
    // A selected row's size brings its pipe baseline along.
    let sizes: Vec<usize> = STREAMS.iter().filter(|r| chosen(r)).map(|r| r.1).collect();
    let rows: Vec<(Link, usize)> = STREAMS
        .into_iter()
        .filter(|r| ctx.streams && (chosen(r) || (r.0 == Link::Pipe && sizes.contains(&r.1))))
        .collect();
    let (merged, pinned) = support::stream_rounds(
        &rows,
        ctx.plan.streams.rounds,
        |&(link, size)| format!("{}: {}", size_label(size), link.stream_label(size)),
        |&(link, size)| throughput(link, size, ctx),
    );
    let rows = rows
        .into_iter()
        .zip(merged)
        .map(|((link, size), acc)| {
            let tp = acc.map(|(mut samples, count)| Throughput {
                stats: Stats::from_samples(&mut samples),
                count,
            });
            (link, size, tp)
        })
        .collect();
    (rows, pinned)
}
