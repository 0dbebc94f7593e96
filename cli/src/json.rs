//! Objects as JSON, written by hand (a handful of fields).

use shmkit::region::{ObjectInfo, ObjectState};
use shmkit::sync::{EventMode, Holder, Holds, LockState, SyncState};

/// `s` as a JSON string.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON array of already-written values.
pub fn array(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(","))
}

/// One object.
pub fn object(o: &ObjectInfo) -> String {
    let (state, why) = match &o.state {
        ObjectState::Ready => ("ready", None),
        ObjectState::Initializing => ("initializing", None),
        ObjectState::Abandoned => ("abandoned", None),
        ObjectState::OtherVersion(_) => ("other_version", None),
        ObjectState::Corrupted(w) => ("corrupted", Some(*w)),
        _ => ("unknown", None),
    };
    let attached = array(o.attached.iter().map(u32::to_string));
    format!(
        "{{\"name\":{},\"kind\":{},\"state\":{},\"corrupted\":{},\"size\":{},\"layout\":{},\"creator_pid\":{},\"creator_running\":{},\"in_use\":{},\"attached\":{}}}",
        string(&o.name),
        string(&o.kind.to_string()),
        string(state),
        why.map_or("null".into(), string),
        o.size,
        o.layout.to_raw(),
        o.creator_pid,
        crate::show::running(o.creator_pid),
        o.in_use,
        attached,
    )
}

/// A lock's, semaphore's, barrier's or event's state, under its kind's
/// key (`"mutex"`, `"rwlock"`, `"semaphore"`, `"barrier"`, `"event"`),
/// with `"corrupted"`: null or what is wrong.
pub fn sync(state: &SyncState) -> String {
    let (key, body) = match state {
        SyncState::Mutex(l) => ("mutex", lock(l)),
        SyncState::RwLock(s) => (
            "rwlock",
            format!(
                "\"writer\":{},\"claiming\":{},\"readers\":{},\"orphaned\":{},\"waiters\":{},\"not_recoverable\":{}",
                s.writer.map_or("null".to_owned(), holder),
                s.claiming,
                holds(&s.readers),
                s.orphaned,
                s.waiters,
                s.not_recoverable
            ),
        ),
        SyncState::Semaphore(s) => (
            "semaphore",
            format!(
                "\"available\":{},\"bound\":{},\"sleepers\":{},\"owners\":{}",
                s.available,
                s.bound.map_or("null".to_owned(), |b| b.to_string()),
                s.sleepers,
                holds(&s.owners)
            ),
        ),
        SyncState::Barrier(s) => (
            "barrier",
            format!(
                "\"parties\":{},\"arrived\":{},\"generation\":{},\"broken\":{},\"sleepers\":{},\"processes\":{}",
                s.parties,
                s.arrived,
                s.generation,
                s.broken,
                s.sleepers,
                array(s.processes.iter().map(|&h| holder(h)))
            ),
        ),
        SyncState::Event(s) => (
            "event",
            format!(
                "\"set\":{},\"auto_reset\":{},\"sleepers\":{}",
                s.set,
                s.mode == EventMode::AutoReset,
                s.sleepers
            ),
        ),
        _ => ("sync", String::new()),
    };
    let corrupted = state.corrupted().map_or("null".to_owned(), |w| string(&w));
    let sep = if body.is_empty() { "" } else { "," };
    format!("\"{key}\":{{{body}{sep}\"corrupted\":{corrupted}}}")
}

/// A mutex's lock word, as fields.
fn lock(l: &LockState) -> String {
    match l {
        LockState::Unlocked => "\"state\":\"unlocked\"".to_owned(),
        LockState::Locked {
            pid,
            alive,
            waiters,
        } => format!("\"state\":\"locked\",\"pid\":{pid},\"alive\":{alive},\"waiters\":{waiters}"),
        LockState::NotRecoverable => "\"state\":\"not recoverable\"".to_owned(),
        LockState::Corrupted(w) => format!("\"state\":\"corrupted\",\"word\":{w}"),
        _ => "\"state\":\"unknown\"".to_owned(),
    }
}

fn holder(h: Holder) -> String {
    format!("{{\"pid\":{},\"alive\":{}}}", h.pid, h.alive)
}

fn holds(all: &[Holds]) -> String {
    array(all.iter().map(|h| {
        format!(
            "{{\"pid\":{},\"alive\":{},\"count\":{}}}",
            h.holder.pid, h.holder.alive, h.count
        )
    }))
}

/// A channel's state.
pub fn channel(c: &shmkit::channel::ChannelInfo) -> String {
    format!(
        "{{\"capacity\":{},\"len\":{},\"max_message\":{},\"senders\":{},\"receivers\":{},\"inconsistent\":{}}}",
        c.capacity,
        c.len,
        c.max_message.map_or("null".into(), |m| m.to_string()),
        c.senders,
        c.receivers,
        c.inconsistent.map_or("null".into(), string),
    )
}

/// A service's pool.
fn pool(pool: &Result<shmkit::pool::PoolUsage, &'static str>) -> String {
    match pool {
        Err(why) => format!("{{\"corrupted\":{}}}", string(why)),
        Ok(p) => array(p.classes.iter().map(|c| {
            let held = array(
                c.held_by
                    .iter()
                    .map(|(bit, n)| format!("{{\"bit\":{bit},\"blocks\":{n}}}")),
            );
            format!(
                "{{\"block_size\":{},\"blocks\":{},\"free\":{},\"lent\":{},\"shared\":{},\"corrupted\":{},\"held_by\":{held}}}",
                c.block_size, c.blocks, c.free, c.lent, c.shared, c.corrupted
            )
        })),
    }
}

/// A request/response service's state.
pub fn reqresp(s: &shmkit::reqresp::ServiceInfo) -> String {
    format!(
        "{{\"server\":{},\"max_clients\":{},\"clients\":{},\"queue_capacity\":{},\"pool\":{}}}",
        s.server,
        s.max_clients,
        array(s.clients.iter().map(usize::to_string)),
        s.queue_capacity,
        pool(&s.pool),
    )
}

/// A publish/subscribe service's state.
pub fn service(s: &shmkit::pubsub::ServiceInfo) -> String {
    let pool = pool(&s.pool);
    format!(
        "{{\"publisher\":{},\"max_subscribers\":{},\"present\":{},\"next_seq\":{},\"queue_capacity\":{},\"history\":{},\"pool\":{pool}}}",
        s.publisher,
        s.max_subscribers,
        array(s.present.iter().map(usize::to_string)),
        s.next_seq,
        s.queue_capacity,
        s.history,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(
            array(["1".to_string(), "2".to_string()].into_iter()),
            "[1,2]"
        );
    }
}
