//! The run's budgets, its selection of rows, and driving a child.

use crate::control::Control;
use crate::support::{self, ChildGuard, Placement, CHILD_EXIT_LIMIT};
use crate::CONTROL_VAR;
use shmkit::Shm;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Budgets for one run.
pub(crate) struct Plan {
    /// Latency: round trips before measuring, for this long.
    pub(crate) latency_warmup: Duration,
    /// Latency: measured round trips, for about this long...
    pub(crate) latency_budget: Duration,
    /// ...but at most this many.
    pub(crate) max_round_trips: u64,
    /// Latency: rounds over every row, sharing the budget and the count.
    pub(crate) latency_rounds: u32,
    /// Streams: the calibration run grows until it lasts this long.
    pub(crate) pilot_time: Duration,
    /// Streams: a repetition is sized to last about this long.
    pub(crate) rep_time: Duration,
    /// Streams: measured repetitions per round.
    pub(crate) reps: usize,
    /// Streams: discarded repetitions per round.
    pub(crate) warmup_reps: usize,
    /// Streams: rounds over every row, each with a fresh child.
    pub(crate) stream_rounds: u32,
}

/// The run's plan and where its two sides run.
pub(crate) struct Ctx {
    pub(crate) plan: Plan,
    /// Whether to run section A (latency) and section B (streams).
    pub(crate) latency: bool,
    pub(crate) streams: bool,
    /// Words a row's label must contain one of to run (none: every row).
    /// The baselines the ratios need run anyway.
    pub(crate) filters: Vec<String>,
    pub(crate) placement: Placement,
}

impl Ctx {
    /// Whether the row labelled `label` is selected.
    pub(crate) fn selects(&self, label: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| label.contains(f.as_str()))
    }

    pub(crate) fn describe_pinning(&self, pinned: bool) -> String {
        self.placement.describe(pinned)
    }

    /// Spawns the child `role` with the control region, its CPU and wait
    /// mode; `configure` hands it its ends of the link.
    pub(crate) fn spawn(
        &self,
        role: &str,
        control: &Shm<Control>,
        configure: impl FnOnce(&mut Command),
    ) -> Result<ChildGuard, String> {
        support::spawn_child(role, |cmd| {
            control.region().pass_to_child(cmd, CONTROL_VAR);
            self.placement.pass_to_child(cmd);
            configure(cmd);
        })
        .map_err(|e| format!("spawning the {role} child: {e}"))
    }

    /// The parent's side of a measurement with a spawned child: closes
    /// `child_ends` (the parent's copies of what the child inherited, so
    /// that the child's are the only ones: a channel end admits one holder,
    /// and a pipe reports end of file only once every write end is
    /// closed), tells the child it may open them, pins this thread, waits
    /// for the child to be ready, runs `body` and reaps the child. Returns
    /// `body`'s result and whether the pinning took effect.
    pub(crate) fn drive<T, K>(
        &self,
        role: &str,
        control: &Shm<Control>,
        mut child: ChildGuard,
        child_ends: K,
        body: impl FnOnce() -> Result<T, String>,
    ) -> Result<(T, bool), String> {
        drop(child_ends);
        control.handed_over.store(1, Ordering::Release);
        let pinned = self.placement.pin_parent();
        let is_pinned = pinned.as_ref().is_some_and(|p| p.pinned);
        let result = support::wait_ready(&mut child, || control.ready.load(Ordering::Acquire) == 1)
            .and_then(|()| body());
        drop(pinned);
        let value = child.settle(result.map_err(|e| format!("{role}: {e}")), CHILD_EXIT_LIMIT)?;
        Ok((value, is_pinned))
    }
}
