//! The run: every selected row in rounds, their samples merged.

use crate::latency::latency;
use crate::link::Link;
use crate::plan::Ctx;
use crate::report::{size_label, Results, StreamRow};
use crate::support::{self, Stats};
use crate::throughput::{throughput, Throughput};
use crate::{LATENCY_LINKS, STREAMS};
use hdrhistogram::Histogram;

pub(crate) fn run(ctx: &Ctx) -> Result<Results, String> {
    let clock_ns = support::clock_cost();
    let mut pinned = false;
    let links: Vec<Link> = LATENCY_LINKS
        .into_iter()
        .filter(|l| ctx.latency && (*l == Link::Line || ctx.selects(l.latency_label())))
        .collect();
    let mut merged: Vec<Result<Histogram<u64>, String>> = links
        .iter()
        .map(|_| Err("no round ran".to_owned()))
        .collect();
    for round in 1..=ctx.plan.latency_rounds {
        for (link, acc) in links.iter().zip(merged.iter_mut()) {
            if acc.is_err() && round > 1 {
                continue; // a row that failed once stays failed
            }
            support::progress(&format!(
                "one-way latency, round {round}/{}: {}",
                ctx.plan.latency_rounds,
                link.latency_label()
            ));
            let r = latency(*link, ctx);
            if *link == Link::Line {
                // Without the floor, no row means anything.
                r.as_ref().map_err(|e| format!("the floor: {e}"))?;
            }
            *acc = match (r, std::mem::replace(acc, Err(String::new()))) {
                (Ok(l), Ok(mut h)) => {
                    pinned |= l.pinned;
                    h.add(&l.hist)
                        .map_err(|e| format!("merging histograms: {e}"))?;
                    Ok(h)
                }
                (Ok(l), Err(_)) => {
                    pinned |= l.pinned;
                    Ok(l.hist)
                }
                (Err(e), _) => Err(e),
            };
        }
    }
    let lat = links
        .into_iter()
        .zip(merged)
        .map(|(link, h)| (link, h.map(|h| Stats::from_histogram(&h, 0.5))))
        .collect();
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
    let mut pinned = false;
    let chosen = |(l, size): &(Link, usize)| {
        ctx.selects(&format!("{}: {}", size_label(*size), l.stream_label(*size)))
    };
    // A selected row's size brings its pipe baseline along.
    let sizes: Vec<usize> = STREAMS.iter().filter(|r| chosen(r)).map(|r| r.1).collect();
    let rows: Vec<(Link, usize)> = STREAMS
        .into_iter()
        .filter(|r| ctx.streams && (chosen(r) || (r.0 == Link::Pipe && sizes.contains(&r.1))))
        .collect();
    let mut merged: Vec<Result<(Vec<f64>, u64), String>> =
        rows.iter().map(|_| Ok((Vec::new(), 0))).collect();
    let rounds = ctx.plan.stream_rounds;
    for round in 1..=rounds {
        for (&(link, size), acc) in rows.iter().zip(merged.iter_mut()) {
            let Ok((samples, count)) = acc else {
                continue;
            };
            support::progress(&format!(
                "throughput, round {round}/{rounds}, {}: {}",
                size_label(size),
                link.stream_label(size)
            ));
            match throughput(link, size, ctx) {
                Ok(mut run) => {
                    samples.append(&mut run.samples);
                    *count += run.count;
                    pinned |= run.pinned;
                }
                Err(e) => *acc = Err(e),
            }
        }
    }
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
