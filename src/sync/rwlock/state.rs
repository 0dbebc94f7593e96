//! An [`RwLock`](super::RwLock)'s words read from outside, for
//! [`sync::inspect`](crate::sync::inspect()).

use super::raw::{check, writer, RawRwLock, CLAIMING, NOT_RECOVERABLE, ORPHANED, PARKED};
use super::readers::{corrupted_reader, entry_count, entry_token, ENTRIES, MAX_COUNT};
use crate::region::Outside;
use crate::sync::error::RawLockError;
use crate::sync::inspect::{holder, Holds, RwLockState};

/// The state of the lock at the start of `object`'s data.
pub(in crate::sync) fn state_of(object: &Outside) -> crate::Result<RwLockState> {
    let size = core::mem::size_of::<RawRwLock>();
    let words = object.data(0, size)?;
    let mut out = RwLockState::default();
    if words.len() < size {
        out.corrupted = Some("the file ends inside the rwlock");
        return Ok(out);
    }
    let s = words.u64_at(core::mem::offset_of!(RawRwLock, state));
    if s == NOT_RECOVERABLE {
        out.not_recoverable = true;
        return Ok(out);
    }
    if let Err(e) = check(s) {
        out.corrupted = Some(reason(e));
        return Ok(out);
    }
    out.orphaned = s & ORPHANED != 0;
    out.waiters = s & PARKED != 0;
    out.claiming = s & CLAIMING != 0;
    let w = writer(s);
    if w != 0 {
        match holder(object, w)? {
            Some(h) => out.writer = Some(h),
            None => {
                out.corrupted = Some(reason(super::raw::corrupted_token()));
                return Ok(out);
            }
        }
    }
    let readers = core::mem::offset_of!(RawRwLock, readers);
    for i in 0..ENTRIES {
        let e = words.u64_at(readers + 8 * i);
        let (token, count) = (entry_token(e), entry_count(e));
        if count == 0 {
            continue;
        }
        let found = match count {
            c if c > MAX_COUNT => None,
            _ => holder(object, token as u32)?,
        };
        match found {
            Some(h) => out.readers.push(Holds {
                holder: h,
                count: count as u32,
            }),
            None => {
                out.corrupted = Some(reason(corrupted_reader()));
                return Ok(out);
            }
        }
    }
    Ok(out)
}

fn reason(e: RawLockError) -> &'static str {
    match e {
        RawLockError::Corrupted(what) => what,
        _ => "rwlock state is not recoverable",
    }
}
