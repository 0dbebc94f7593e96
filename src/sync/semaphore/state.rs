//! A [`Semaphore`]'s words read from outside, for
//! [`sync::inspect`](crate::sync::inspect()).

use super::owners::{e_token, holds, ENTRIES, HELD};
use super::{
    max_of, Semaphore, BAD_ENTRY, BAD_OWNER, BOUND_OUT_OF_RANGE, COUNT_ABOVE_BOUND, HELD_AT_LIMIT,
    PERMITS, SLEEPERS, UNBOUNDED,
};
use crate::region::Outside;
use crate::sync::inspect::{holder, Holds, SemaphoreState};
use core::mem::{offset_of, size_of};

/// The state of the semaphore at the start of `object`'s data.
pub(in crate::sync) fn state_of(object: &Outside) -> crate::Result<SemaphoreState> {
    let words = object.data(0, size_of::<Semaphore>())?;
    let mut out = SemaphoreState::default();
    if words.len() < size_of::<Semaphore>() {
        out.corrupted = Some("the file ends inside the semaphore");
        return Ok(out);
    }
    let s = words.u64_at(offset_of!(Semaphore, state));
    let limit = words.u32_at(offset_of!(Semaphore, limit));
    out.available = (s & PERMITS) as u32;
    out.sleepers = s & SLEEPERS != 0;
    let Some(max) = max_of(limit) else {
        out.corrupted = Some(BOUND_OUT_OF_RANGE);
        return Ok(out);
    };
    out.bound = (limit != UNBOUNDED).then_some(max);
    if out.available > max {
        out.corrupted = Some(COUNT_ABOVE_BOUND);
        return Ok(out);
    }
    let owners = offset_of!(Semaphore, owners);
    for i in 0..ENTRIES {
        let e = words.u64_at(owners + 8 * i);
        let token = e_token(e);
        if token == 0 {
            continue;
        }
        let found = match u32::try_from(token) {
            Ok(raw) => holder(object, raw)?,
            Err(_) => None,
        };
        let Some(h) = found else {
            out.corrupted = Some(BAD_OWNER);
            return Ok(out);
        };
        match holds(e, s, i) {
            Some(count) if count > HELD => out.corrupted = Some(HELD_AT_LIMIT),
            Some(0) => {}
            Some(count) => out.owners.push(Holds {
                holder: h,
                count: count as u32,
            }),
            None => out.corrupted = Some(BAD_ENTRY),
        }
        if out.corrupted.is_some() {
            return Ok(out);
        }
    }
    Ok(out)
}
