//! What `peers/iceoryx2` shares with this bench besides the loan row: the
//! latency budgets, the baseline row, echo roles and the latency table's
//! frame, so that the two print figures that can be put side by side.
//! Like `loan.rs`, this file names nothing of the bench it sits in but
//! `crate::support`.

use crate::support::{self, fmt_rounds, Control, LatencyBudget, Pings, Placement, Table};
use shmkit::channel::{channel, Receiver, Sender};
use shmkit::Shm;
use std::time::Duration;

/// Child role (`echo:<link>:<size>[:<more>]`): echo pings.
pub const ROLE_ECHO: &str = "echo";
/// The whole run (or a child's whole life) ends with an error past this.
pub const RUN_LIMIT: Duration = Duration::from_secs(300);
/// Bytes of the baseline's messages.
pub const MSG: usize = 64;
/// Names the baseline in a child role.
pub const BASELINE_TAG: &str = "typed";
/// Names the baseline in the table.
pub const BASELINE_LABEL: &str = "baseline: shmkit channel<[u8; 64]> send/recv";

/// The latency rows' budget: a smoke run's (`quick`) or a full run's.
pub fn latency_budget(quick: bool) -> LatencyBudget {
    if quick {
        LatencyBudget {
            warmup: Duration::from_millis(10),
            budget: Duration::from_millis(100),
            max_round_trips: 100_000,
            rounds: 1,
        }
    } else {
        LatencyBudget {
            warmup: Duration::from_millis(100),
            budget: Duration::from_millis(2000),
            max_round_trips: 5_000_000,
            rounds: 5,
        }
    }
}

/// The child role echoing over `tag`'s link with `size`-byte messages.
pub fn echo_role(tag: &str, size: usize) -> String {
    format!("{ROLE_ECHO}:{tag}:{size}")
}

/// An echo role's link tag, size and the rest (if any).
pub fn parse_echo_role(role: &str) -> Result<(&str, usize, Option<&str>), String> {
    let mut parts = role.splitn(4, ':');
    match (
        parts.next(),
        parts.next(),
        parts.next().map(str::parse::<usize>),
        parts.next(),
    ) {
        (Some(ROLE_ECHO), Some(link), Some(Ok(size)), rest) => Ok((link, size, rest)),
        _ => Err(format!("unknown role {role:?}")),
    }
}

/// The baseline's parent side: shmkit's typed channel of `[u8; 64]`.
pub fn baseline_latency(
    placement: &Placement,
    budget: &LatencyBudget,
    role: &str,
    control: &Shm<Control>,
) -> Pings {
    support::typed_latency(
        channel::<[u8; MSG]>,
        support::patterned_array(),
        placement,
        budget,
        role,
        control,
    )
}

/// The baseline's child side.
pub fn baseline_echo(control: &Control) -> Result<(), String> {
    support::typed_echo::<Receiver<[u8; MSG]>, Sender<[u8; MSG]>, MSG>(control)
}

/// A child's common start: dies with its parent, ends past [`RUN_LIMIT`].
pub fn child_limits(role: &str) {
    support::die_with_parent();
    support::watchdog(RUN_LIMIT, &format!("bench child ({role})"), 4);
}

/// The latency table's frame: `title` with the budget, p99.9 shown, the
/// ratio column to the baseline's p50 (if measured).
pub fn latency_table(title: &str, budget: &LatencyBudget, baseline_p50: Option<f64>) -> Table {
    timed_table(title, "round trip / 2", budget, baseline_p50)
}

/// [`latency_table`]'s frame with the rows' figure named (`round trip /
/// 2` there) and the ratio column to `floor_ns` (the baseline's same
/// figure, if measured).
pub fn timed_table(
    title: &str,
    figure: &str,
    budget: &LatencyBudget,
    floor_ns: Option<f64>,
) -> Table {
    let mut t = Table::new(format!(
        "\n{title} ({figure}, every round trip timed, HDR histogram; up to {} round \
         trips or {:.1} s per row, in {})",
        budget.max_round_trips,
        budget.budget.as_secs_f64(),
        fmt_rounds(budget.rounds)
    ));
    t.show_p999();
    t.set_ratio_label("vs channel 64 B");
    if let Some(base) = floor_ns {
        t.set_floor_ns(base);
    }
    t
}
