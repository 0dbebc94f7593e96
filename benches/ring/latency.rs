//! A. Latency: ping-pong between the parent and an echoing child (the
//! loop and the links shared with other benches are in `support`).

use crate::link::Link;
use crate::plan::Ctx;
use crate::support::{self, KernelLink, Pings};
use crate::{line, Msg, MSG, ROLE_ECHO};
use shmkit::channel::{channel, mpmc_channel};

/// Measures one round of round trips over `link` with a child echoing.
pub(crate) fn latency(link: Link, ctx: &Ctx) -> Pings {
    let control = support::new_control()?;
    let role = format!("{ROLE_ECHO}:{}", link.tag());
    let (placement, budget) = (&ctx.placement, &ctx.plan.latency);
    match link {
        Link::Line => line::latency(ctx, &role, &control),
        Link::Pipe | Link::Unix => support::kernel_latency(
            kernel(link),
            support::patterned_array::<MSG>(),
            placement,
            budget,
            &role,
            &control,
        ),
        Link::Typed => support::typed_latency(
            channel::<Msg>,
            support::patterned_array(),
            placement,
            budget,
            &role,
            &control,
        ),
        Link::Mpmc => support::typed_latency(
            mpmc_channel::<Msg>,
            support::patterned_array(),
            placement,
            budget,
            &role,
            &control,
        ),
        Link::Bytes => {
            support::bytes_latency(support::patterned(MSG), placement, budget, &role, &control)
        }
        Link::Ideal | Link::IdealEach | Link::TypedBatch | Link::RingChunks | Link::RingEach => {
            Err(format!("no latency measurement over {link:?}"))
        }
    }
}

/// The kernel's stream behind a pipe or socket row.
pub(crate) fn kernel(link: Link) -> KernelLink {
    if link == Link::Pipe {
        KernelLink::Pipe
    } else {
        KernelLink::Unix
    }
}
