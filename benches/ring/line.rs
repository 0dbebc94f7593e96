//! The latency floor: one cache line bounced between the two processes.

use crate::plan::Ctx;
use crate::support::{
    self, ping_pong, serve_echo, Control, Echoer, Pinger, Pings, Wait, CHILD_IDLE_LIMIT,
    PARENT_WAIT_LIMIT,
};
use crate::{LINK_A_VAR, STOP};
use shmkit::{RegionOptions, Shm, ShmSafe};
use std::sync::atomic::{AtomicU64, Ordering};

/// One cache line (two, against adjacent-line prefetch) holding the ball.
#[repr(C, align(128))]
pub(crate) struct Line {
    value: AtomicU64,
}
// SAFETY: repr(C); its only field is an AtomicU64, which is
// ShmSafe; the rest is padding, for which any bytes do.
unsafe impl ShmSafe for Line {}

/// The floor's parent side: ping `seq` is the odd value `2 * seq + 1`,
/// its echo that plus one.
pub(crate) struct LinePinger<'a> {
    line: &'a Line,
    how: Wait,
}

impl Pinger for LinePinger<'_> {
    #[inline]
    fn ping(&mut self, seq: u64) -> Result<(), String> {
        let ball = 2 * seq + 1;
        self.line.value.store(ball, Ordering::Release);
        let answer = ball + 1;
        support::wait_for(PARENT_WAIT_LIMIT, self.how, || {
            (self.line.value.load(Ordering::Acquire) == answer).then_some(())
        })
        .ok_or_else(|| format!("no answer to ping {seq} within {PARENT_WAIT_LIMIT:?}"))
    }

    fn stop(&mut self) -> Result<(), String> {
        self.line.value.store(STOP, Ordering::Release);
        Ok(())
    }
}

/// The floor's child side: answers every odd value with value + 1.
pub(crate) struct LineEchoer {
    line: Shm<Line>,
    how: Wait,
    expect: u64,
}

impl Echoer for LineEchoer {
    #[inline]
    fn echo(&mut self) -> Result<bool, String> {
        let expect = self.expect;
        let v = support::wait_for(CHILD_IDLE_LIMIT, self.how, || {
            let v = self.line.value.load(Ordering::Acquire);
            (v == expect || v == STOP).then_some(v)
        })
        .ok_or_else(|| format!("parent silent for {CHILD_IDLE_LIMIT:?} (expected {expect})"))?;
        if v == STOP {
            return Ok(false);
        }
        self.line.value.store(v + 1, Ordering::Release);
        self.expect = v + 2;
        Ok(true)
    }
}

/// The parent's side of the floor's round trips.
pub(crate) fn latency(ctx: &Ctx, role: &str, control: &Shm<Control>) -> Pings {
    let plan = &ctx.plan;
    let line = Shm::<Line>::anonymous(|_| {})
        .map_err(|e| format!("creating the cache-line region: {e}"))?;
    let child = ctx.spawn(role, control, |cmd| {
        line.region().pass_to_child(cmd, LINK_A_VAR);
    })?;
    let mut pinger = LinePinger {
        line: &line,
        how: ctx.placement.how,
    };
    ctx.drive(role, control, child, (), || {
        ping_pong(&mut pinger, &plan.latency)
    })
}

/// The child's side of the floor: echo every ping.
pub(crate) fn echo(control: &Control, how: Wait) -> Result<(), String> {
    // SAFETY: the parent passed this descriptor with
    // `pass_to_child` under LINK_A_VAR for exactly this purpose;
    // nothing else in this process owns it, and this is the only
    // call for the variable.
    let region = unsafe { RegionOptions::for_type::<Line>().from_env(LINK_A_VAR) }
        .map_err(|e| format!("opening the inherited cache line: {e}"))?;
    let line = Shm::<Line>::from_region(region).map_err(|e| format!("cache line type: {e}"))?;
    serve_echo(
        control,
        LineEchoer {
            line,
            how,
            expect: 1,
        },
    )
}
