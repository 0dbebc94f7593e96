//! Objects as text: the `ls` table and the `inspect` page.

use shmkit::region::{ObjectInfo, ObjectState};
use shmkit::sync::{EventMode, Holder, Holds, LockState, SyncState};
use std::fmt::Write as _;

/// A size in bytes, in the largest binary unit that keeps it whole-ish.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The pids of the live handles, or `nobody`.
pub fn pids(attached: &[u32]) -> String {
    if attached.is_empty() {
        return "nobody".into();
    }
    let mut v: Vec<u32> = attached.to_vec();
    v.sort_unstable();
    let mut out = String::new();
    let mut i = 0;
    while i < v.len() {
        let j = v[i..].iter().take_while(|p| **p == v[i]).count();
        if !out.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{}", v[i]);
        if j > 1 {
            let _ = write!(out, "×{j}");
        }
        i += j;
    }
    out
}

/// The state as a word (and why, when corrupted).
pub fn state(s: &ObjectState) -> String {
    match s {
        ObjectState::Ready => "ready".into(),
        ObjectState::Initializing => "initializing".into(),
        ObjectState::Abandoned => "abandoned".into(),
        ObjectState::OtherVersion(v) => format!("format version {v}"),
        ObjectState::Corrupted(why) => format!("corrupted: {why}"),
        other => format!("{other:?}"),
    }
}

/// Whether process `pid` exists now (a claim: the pid may be reused).
pub fn running(pid: u32) -> bool {
    pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn creator(o: &ObjectInfo) -> String {
    match o.creator_pid {
        0 => "-".into(),
        p if running(p) => format!("{p}"),
        p => format!("{p} (gone)"),
    }
}

/// The `ls` table.
pub fn table(objects: &[ObjectInfo]) -> String {
    let rows: Vec<[String; 6]> = objects
        .iter()
        .map(|o| {
            [
                o.name.clone(),
                o.kind.to_string(),
                state(&o.state),
                size(o.size),
                creator(o),
                if o.in_use {
                    format!("in use by {}", pids(&o.attached))
                } else {
                    "unused".into()
                },
            ]
        })
        .collect();
    let head = ["NAME", "KIND", "STATE", "SIZE", "CREATOR", "USE"];
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                let _ = writeln!(out, "{c}");
            } else {
                let pad = w - c.chars().count();
                let _ = write!(out, "{c}{}  ", " ".repeat(pad));
            }
        }
    };
    line(&mut out, &head);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&mut out, &cells);
    }
    let unused = objects.iter().filter(|o| !o.in_use).count();
    let _ = writeln!(
        out,
        "{} object{}, {unused} unused (`shmkit clean` removes those)",
        objects.len(),
        if objects.len() == 1 { "" } else { "s" }
    );
    out
}

/// The `inspect` page.
pub fn details(o: &ObjectInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "name:      {}", o.name);
    let _ = writeln!(out, "kind:      {}", o.kind);
    let _ = writeln!(out, "state:     {}", state(&o.state));
    let _ = writeln!(out, "size:      {} ({} bytes)", size(o.size), o.size);
    let _ = writeln!(out, "layout:    {:#018x}", o.layout.to_raw());
    let _ = writeln!(out, "creator:   {} (as its header claims)", creator(o));
    let _ = writeln!(
        out,
        "in use:    {}",
        if o.in_use {
            "yes (a live process has it open: its lock on the file says so)"
        } else {
            "no (no live process has it open)"
        }
    );
    let _ = writeln!(out, "handles:   {}", pids(&o.attached));
    out
}

/// The `inspect` lines of a lock, semaphore, barrier or event: who holds
/// what, whether they live, who waits.
pub fn sync(state: &SyncState) -> String {
    let mut out = String::new();
    match state {
        SyncState::Mutex(l) => {
            let _ = writeln!(out, "lock:      {}", lock(l));
        }
        SyncState::RwLock(s) if s.not_recoverable => {
            let _ = writeln!(out, "lock:      {NOT_RECOVERABLE}");
        }
        SyncState::RwLock(s) => {
            let writer = s.writer.map_or("none".to_owned(), |w| {
                let what = if s.claiming {
                    "claims it, waiting for the readers to leave"
                } else {
                    "holds it"
                };
                format!("{} {what}", holder(w, "the next locker gets OwnerDied"))
            });
            let _ = writeln!(out, "writer:    {writer}");
            let _ = writeln!(
                out,
                "readers:   {}",
                holds(&s.readers, "read locks", "dropped by the next writer")
            );
            let mut notes = Vec::new();
            if s.orphaned {
                notes.push("a dead writer's data is not repaired: the next locker gets OwnerDied");
            }
            if s.waiters {
                notes.push("waiters asleep");
            }
            if !notes.is_empty() {
                let _ = writeln!(out, "state:     {}", notes.join("; "));
            }
        }
        SyncState::Semaphore(s) => {
            let bound = s
                .bound
                .map_or("unbounded".to_owned(), |b| format!("bound {b}"));
            let sleepers = if s.sleepers { ", waiters asleep" } else { "" };
            let _ = writeln!(
                out,
                "permits:   {} available, {bound}{sleepers}",
                s.available
            );
            let _ = writeln!(
                out,
                "owned:     {}",
                holds(
                    &s.owners,
                    "permits",
                    "the next acquirer that finds none gives them back"
                )
            );
        }
        SyncState::Barrier(s) => {
            let mut line = format!(
                "{} of {} arrived, generation {}",
                s.arrived, s.parties, s.generation
            );
            if s.broken {
                line.push_str(", broken: every wait fails");
            }
            if s.sleepers {
                line.push_str(", waiters asleep");
            }
            let _ = writeln!(out, "barrier:   {line}");
            let parties: Vec<String> = s
                .processes
                .iter()
                .map(|&h| holder(h, "breaks the next generation that waits for it"))
                .collect();
            let _ = writeln!(out, "processes: {}", list_or_none(parties));
        }
        SyncState::Event(s) => {
            let mode = match s.mode {
                EventMode::ManualReset => "manual reset",
                _ => "auto reset",
            };
            let set = if s.set { "set" } else { "clear" };
            let sleepers = if s.sleepers { ", waiters asleep" } else { "" };
            let _ = writeln!(out, "event:     {set}, {mode}{sleepers}");
        }
        _ => {
            let _ = writeln!(out, "state:     a kind this version does not know");
        }
    }
    if let Some(what) = state.corrupted() {
        if !matches!(state, SyncState::Mutex(_)) {
            let _ = writeln!(out, "corrupted: {what}");
        }
    }
    out
}

const NOT_RECOVERABLE: &str = "not recoverable (a dead holder's data was never marked consistent)";

/// A mutex's lock word: free, or held by whom and whether they live.
fn lock(l: &LockState) -> String {
    match l {
        LockState::Unlocked => "unlocked".to_owned(),
        LockState::Locked {
            pid,
            alive,
            waiters,
        } => format!(
            "locked by {}{}",
            holder(
                Holder {
                    pid: *pid,
                    alive: *alive
                },
                "the next locker gets OwnerDied"
            ),
            if *waiters { ", waiters asleep" } else { "" }
        ),
        LockState::NotRecoverable => NOT_RECOVERABLE.to_owned(),
        LockState::Corrupted(w) => format!("corrupted (lock word {w:#010x})"),
        _ => "a state this version does not know".to_owned(),
    }
}

/// `pid N (alive)`, or `pid N (dead: <then>)`.
fn holder(h: Holder, then: &str) -> String {
    if h.alive {
        format!("pid {} (alive)", h.pid)
    } else {
        format!("pid {} (dead: {then})", h.pid)
    }
}

/// `pid N (alive): 2 <what>, ...`, or `none`.
fn holds(all: &[Holds], what: &str, then: &str) -> String {
    list_or_none(
        all.iter()
            .map(|h| format!("{}: {} {what}", holder(h.holder, then), h.count))
            .collect(),
    )
}

fn list_or_none(items: Vec<String>) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// The `inspect` section of a channel.
pub fn channel(c: &shmkit::channel::ChannelInfo) -> String {
    let mut out = String::new();
    let unit = if c.max_message.is_some() {
        "bytes"
    } else {
        "slots"
    };
    let _ = writeln!(out, "channel:   {} {unit}, {} queued", c.capacity, c.len);
    if let Some(m) = c.max_message {
        let _ = writeln!(out, "messages:  up to {m} bytes each");
    }
    let _ = writeln!(
        out,
        "ends:      {} sender handle(s), {} receiver handle(s) (as the tables count them)",
        c.senders, c.receivers
    );
    if let Some(why) = c.inconsistent {
        let _ = writeln!(out, "corrupted: {why}");
    }
    out
}

/// The `inspect` section of a publish/subscribe service.
pub fn service(s: &shmkit::pubsub::ServiceInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "publisher: {}",
        if s.publisher { "attached" } else { "none" }
    );
    let _ = writeln!(
        out,
        "receivers: {} of {} subscriber entries present {:?}",
        s.present.len(),
        s.max_subscribers,
        s.present
    );
    let _ = writeln!(
        out,
        "stream:    next sequence {}, queues of {}, history {}",
        s.next_seq, s.queue_capacity, s.history
    );
    out.push_str(&pool(&s.pool, |bit| match bit {
        63 => "publisher".into(),
        62 => "history".into(),
        b => format!("subscriber {b}:"),
    }));
    out
}

/// The `inspect` section of a request/response service.
pub fn reqresp(s: &shmkit::reqresp::ServiceInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "server:    {}",
        if s.server { "attached" } else { "none" }
    );
    let _ = writeln!(
        out,
        "clients:   {} of {} entries taken {:?}, queues of {}",
        s.clients.len(),
        s.max_clients,
        s.clients,
        s.queue_capacity
    );
    out.push_str(&pool(&s.pool, |bit| match bit {
        62 => "server".into(),
        b => format!("client {b}:"),
    }));
    out
}

/// Whether a service's pool reads as corrupted.
pub fn pool_corrupted(pool: &Result<shmkit::pool::PoolUsage, &'static str>) -> bool {
    pool.as_ref()
        .map_or(true, |p| p.classes.iter().any(|c| c.corrupted > 0))
}

/// A pool's lines: each class's use, and who holds its shared blocks
/// (`holder` names a bit).
fn pool(
    pool: &Result<shmkit::pool::PoolUsage, &'static str>,
    holder: impl Fn(u8) -> String,
) -> String {
    let mut out = String::new();
    match pool {
        Err(why) => {
            let _ = writeln!(out, "corrupted: pool: {why}");
        }
        Ok(p) => {
            for (i, c) in p.classes.iter().enumerate() {
                let held: Vec<String> = c
                    .held_by
                    .iter()
                    .map(|(bit, n)| format!("{} {n}", holder(*bit)))
                    .collect();
                let _ = writeln!(
                    out,
                    "pool [{i}]:  {} blocks of {}: {} free, {} lent, {} shared{}{}",
                    c.blocks,
                    size(c.block_size),
                    c.free,
                    c.lent,
                    c.shared,
                    if held.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", held.join(", "))
                    },
                    if c.corrupted > 0 {
                        format!(", {} corrupted", c.corrupted)
                    } else {
                        String::new()
                    },
                );
            }
        }
    }
    out
}
