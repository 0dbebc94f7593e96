//! Runs sequences of attaches, detaches, sends, receives and scribbles on
//! the two attachment tables (`Side`s) of an MPMC channel of `u64` in an
//! anonymous region, and predicts every result from a model of both
//! tables and of the ring's queue. Any mismatch panics.
//!
//! Handles are real: an attach is a `try_clone` of an existing handle of
//! that end (or, with none left, `from_region` on a fresh mapping), a
//! detach is a drop. Every `Region` handle has a participant token of its
//! own (`slot << 21 | generation`, 31 bits, never 0), alive while that
//! `Region` is open: a clone shares its source's `Region`, so its token;
//! a handle made with `from_region` brings a new `Region`, whose token
//! dies with the last handle using it. The first sender and receiver have
//! a `Region` each, and so has the mapping the target scribbles through,
//! whose token stays alive throughout. The model records each handle's
//! token (a clone's is its source's; a new `Region`'s is read from the
//! entry the model predicts it takes, and must be well formed and never
//! seen before), and counts a token alive while a live handle or the
//! scribbling mapping has it. Scribbles write the table words as a
//! misbehaving peer could: a count (0, the entries held, one off either
//! way, the limit, one past it, `u32::MAX`, anything), an entry (free, a
//! live token, or a word of 32 bits with the top one set, which no handle
//! has as a token: tokens are 31 bits), the `attached` flag, or the
//! epoch. The model predicts each table's words exactly after every
//! operation (which entry an attach takes, the token and count it leaves,
//! the epoch), and what the other end's calls return:
//!
//! ```text
//! a table's state: count > 65536 (the limit)           Corrupted
//!                  count < entries held (non-zero)     Corrupted
//!                  attached == 0                       Idle
//!                  an entry holds a live token         Open
//!                  otherwise                           Closed
//! hint:            count == 0 && attached != 0, or count > 65536
//! ```
//!
//! `recv_timeout(0)` on an empty queue answers from the senders' state
//! (`Disconnected` for Closed, `Corrupted`, else `Timeout`);
//! `send_timeout(v, 0)` asks the receivers' state first when the hint
//! fires (Closed: `Disconnected`, Corrupted: `Corrupted`), then pushes,
//! and on a full ring answers from their state as a receive does. A
//! blocking call's `Disconnected` is remembered by its handle, for its
//! `try_` calls. Those ask the state when the hint fires, and otherwise
//! at most once per 10 ms per handle: where that timing decides, the
//! target accepts the answer without the probe (`Empty`/`Full`) or the
//! one from the predicted state, and follows whichever came.
//!
//! The model's attach: refused (`ChannelBusy`) with 32 entries holding
//! live tokens; otherwise the first entry not holding one: a free one
//! raises the count (unless it is at the limit: then it is passed over)
//! and the epoch, one holding a dead token or garbage is taken over as it
//! is; either way the entry gets the attaching handle's token. A detach
//! frees its entry (even one another handle has taken over since a
//! scribble) and lowers the count, wrapping; the handle's token dies with
//! it if no other live handle shares its `Region`.
//!
//! Input layout (bytes past the end read as zero):
//!
//! ```text
//! offset  len  meaning
//!      0    1  capacity: 1 << (b % 4), 1..=8 slots
//!      1    8  salt, u64 LE: the n-th value sent is n ^ salt
//!      9    -  operations: an op byte, then its arguments
//! ```
//!
//! Operations (op byte % 12; for 4-7, op byte / 12 % 2 picks the table:
//! 0 senders, 1 receivers; a handle byte picks the (b % n)-th of n
//! handles of that end, and the operation does nothing with none):
//!
//! ```text
//!  0  attach a sender
//!  1  attach a receiver
//!  2  drop a sender              (handle byte)
//!  3  drop a receiver            (handle byte)
//!  4  scribble the count         (selector byte, u32 LE for "anything")
//!  5  scribble an entry          (index byte, kind byte, u32 LE: for
//!                                 a live token, the (u32 % n)-th of the
//!                                 n live ones, in increasing order)
//!  6  scribble `attached`        (selector byte, u32 LE)
//!  7  scribble the epoch         (u32 LE)
//!  8  recv_timeout(0)            (handle byte)
//!  9  send_timeout(v, 0)         (handle byte)
//! 10  try_recv                   (handle byte)
//! 11  try_send                   (handle byte)
//! ```
//!
//! The table offsets (channel header in `src/channel/blocking.rs`, `Side`
//! in `src/channel/side.rs`), the count limit and the token format
//! (`src/region/participants.rs`) are the library's, written out here. So
//! is the mutex's lock word (`src/sync/raw_mutex.rs`: `token << 1` while
//! locked), which tells the scribbling mapping's token: it locks a mutex
//! in the unused bytes between the channel header (768 bytes) and the ring
//! (at 1024), and the first sender's mapping reads the word.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::channel::{
    mpmc_channel, MpmcReceiver, MpmcSender, RecvTimeoutError, SendTimeoutError, TryRecvError,
    TrySendError,
};
use shmkit::sync::Mutex;
use shmkit::{Error, Region, RegionOptions};
use shmkit_fuzz::Input;
use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Kinds of operation (the op byte modulo this).
const OPS: u8 = 12;
/// Where each table starts in the channel region's data: senders,
/// receivers.
const TABLES: [usize; 2] = [256, 512];
const ATTACHED: usize = 0;
const COUNT: usize = 4;
const TOKENS: usize = 8;
const EPOCH: usize = 136;
/// Entries per table.
const ENTRIES: usize = 32;
/// The most a healthy count is.
const COUNT_LIMIT: u32 = 1 << 16;
/// Bits of a token holding its slot's generation.
const GEN_BITS: u32 = 21;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;
/// Slots in a region's participant table (`0..SLOTS`).
const SLOTS: u32 = 1023;
/// The largest token.
const TOKEN_MAX: u32 = ((SLOTS - 1) << GEN_BITS) | GEN_MASK;
/// Where the scribbling mapping locks a mutex to show its token: past the
/// channel header, before the ring.
const PROBE: usize = 768;
/// Handles of each end the target keeps at most (past 32, attaches are
/// refused anyway).
const POOL: usize = 40;

const SENDERS: usize = 0;
const RECEIVERS: usize = 1;

/// What a table looks like from the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Open,
    Closed,
    Corrupted,
}

/// One table's words, as the model predicts them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Table {
    attached: u32,
    count: u32,
    tokens: [u32; ENTRIES],
    epoch: u32,
}

impl Table {
    fn held(&self) -> u32 {
        self.tokens.iter().filter(|&&t| t != 0).count() as u32
    }

    /// The table's state, with `live` the tokens alive now.
    fn state(&self, live: &[u32]) -> State {
        if self.count > COUNT_LIMIT || self.count < self.held() {
            State::Corrupted
        } else if self.attached == 0 {
            State::Idle
        } else if self.tokens.iter().any(|t| live.contains(t)) {
            State::Open
        } else {
            State::Closed
        }
    }

    /// The hot paths' one-load hint.
    fn hint(&self) -> bool {
        (self.count == 0 && self.attached != 0) || self.count > COUNT_LIMIT
    }

    /// The entry an attach takes while the tokens in `live` are alive, or
    /// `None` for `ChannelBusy`. The entry gets the attaching handle's
    /// token: the caller writes it (a new `Region`'s is only known once
    /// it is there).
    fn attach(&mut self, live: &[u32]) -> Option<usize> {
        if self.tokens.iter().filter(|t| live.contains(t)).count() >= ENTRIES {
            return None;
        }
        for i in 0..ENTRIES {
            let t = self.tokens[i];
            if live.contains(&t) {
                continue;
            }
            if t == 0 {
                if self.count >= COUNT_LIMIT {
                    continue;
                }
                self.count += 1;
                self.epoch = self.epoch.wrapping_add(1);
            }
            self.attached = 1;
            return Some(i);
        }
        None
    }

    fn detach(&mut self, i: usize) {
        self.tokens[i] = 0;
        self.count = self.count.wrapping_sub(1);
    }
}

/// A handle of either end, with what the model knows of it.
struct Handle<H> {
    h: H,
    entry: usize,
    /// The token of the `Region` it uses.
    token: u32,
    /// Whether it has seen the other end gone (a blocking call's
    /// `Disconnected`, or a `try_` call's probe).
    gone: bool,
}

/// What a call came to, values left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    Ok(Option<u64>),
    Empty,
    Full,
    Timeout,
    Disconnected,
    Corrupted,
}

fn recv_got(r: Result<u64, impl Into<Got>>) -> Got {
    r.map_or_else(Into::into, |v| Got::Ok(Some(v)))
}

fn send_got(r: Result<(), impl Into<Got>>) -> Got {
    r.map_or_else(Into::into, |()| Got::Ok(None))
}

impl From<TryRecvError> for Got {
    fn from(e: TryRecvError) -> Self {
        match e {
            TryRecvError::Empty => Got::Empty,
            TryRecvError::Disconnected => Got::Disconnected,
            TryRecvError::Corrupted(_) => Got::Corrupted,
            e => panic!("unexpected {e:?}"),
        }
    }
}

impl From<RecvTimeoutError> for Got {
    fn from(e: RecvTimeoutError) -> Self {
        match e {
            RecvTimeoutError::Timeout => Got::Timeout,
            RecvTimeoutError::Disconnected => Got::Disconnected,
            RecvTimeoutError::Corrupted(_) => Got::Corrupted,
            e => panic!("unexpected {e:?}"),
        }
    }
}

impl<T> From<TrySendError<T>> for Got {
    fn from(e: TrySendError<T>) -> Self {
        match e {
            TrySendError::Full(_) => Got::Full,
            TrySendError::Disconnected(_) => Got::Disconnected,
            TrySendError::Corrupted(_) => Got::Corrupted,
            e => panic!("unexpected {e:?}"),
        }
    }
}

impl<T> From<SendTimeoutError<T>> for Got {
    fn from(e: SendTimeoutError<T>) -> Self {
        match e {
            SendTimeoutError::Timeout(_) => Got::Timeout,
            SendTimeoutError::Disconnected(_) => Got::Disconnected,
            SendTimeoutError::Corrupted(_) => Got::Corrupted,
            e => panic!("unexpected {e:?}"),
        }
    }
}

/// What a blocking call answers from a table's state when it would wait.
fn blocked(s: State) -> Got {
    match s {
        State::Closed => Got::Disconnected,
        State::Corrupted => Got::Corrupted,
        State::Idle | State::Open => Got::Timeout,
    }
}

/// The word at `offset` in table `t`.
fn word(region: &Region, t: usize, offset: usize) -> &AtomicU32 {
    region.place(TABLES[t] + offset).expect("a table word")
}

fn read_table(region: &Region, t: usize) -> Table {
    let w = |o| word(region, t, o).load(Ordering::SeqCst);
    Table {
        attached: w(ATTACHED),
        count: w(COUNT),
        tokens: std::array::from_fn(|i| w(TOKENS + 4 * i)),
        epoch: w(EPOCH),
    }
}

/// Whether `t` could be a token: non-zero, in range, with a non-zero
/// generation.
fn well_formed(t: u32) -> bool {
    t != 0 && t <= TOKEN_MAX && t & GEN_MASK != 0
}

/// The tokens alive now, in increasing order: the scribbling mapping's
/// and every live handle's.
fn live_tokens<S, R>(scribbler: u32, senders: &[Handle<S>], receivers: &[Handle<R>]) -> Vec<u32> {
    let mut live: Vec<u32> = std::iter::once(scribbler)
        .chain(senders.iter().map(|h| h.token))
        .chain(receivers.iter().map(|h| h.token))
        .collect();
    live.sort_unstable();
    live.dedup();
    live
}

/// The token a new `Region` wrote into entry `entry` of table `t` when it
/// attached: any well-formed one no handle had before; `seen` records it.
fn new_token(region: &Region, t: usize, entry: usize, seen: &mut Vec<u32>) -> u32 {
    let token = word(region, t, TOKENS + 4 * entry).load(Ordering::SeqCst);
    assert!(well_formed(token), "table {t}: a new token: {token:#x}");
    assert!(
        !seen.contains(&token),
        "table {t}: a new token {token:#x} seen before: {seen:x?}"
    );
    seen.push(token);
    token
}

/// The `(b % n)`-th index of `n`, if any.
fn pick(b: u8, n: usize) -> Option<usize> {
    (n > 0).then(|| b as usize % n)
}

fn attach_result<H>(r: shmkit::Result<H>) -> Option<H> {
    match r {
        Ok(h) => Some(h),
        Err(Error::ChannelBusy { .. }) => None,
        Err(e) => panic!("attach failed: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cap = 1usize << (input.u8() % 4);
    let salt = input.u64();
    let (tx0, rx0) = mpmc_channel::<u64>(cap).expect("channel");
    // A mapping of its own, for scribbles and for handles attached when
    // an end has none left.
    let region = RegionOptions::new()
        .any_layout()
        .from_fd(tx0.region().as_fd().try_clone_to_owned().expect("dup"))
        .expect("open the channel region");
    let fd = || region.as_fd().try_clone_to_owned().expect("dup");
    // The scribbling mapping's token, as its mutex's lock word shows it to
    // another mapping.
    let scribbler = {
        let lock = region.place::<Mutex<u32>>(PROBE).expect("a mutex");
        let guard = lock.lock().expect("lock");
        let w = tx0
            .region()
            .place::<AtomicU32>(PROBE)
            .expect("the lock word")
            .load(Ordering::SeqCst);
        drop(guard);
        assert_eq!(w & 1, 0, "lock word {w:#x}");
        w >> 1
    };
    let tx0_token = word(&region, SENDERS, TOKENS).load(Ordering::SeqCst);
    let rx0_token = word(&region, RECEIVERS, TOKENS).load(Ordering::SeqCst);
    // Every token a handle or the scribbling mapping has had.
    let mut seen = vec![scribbler, tx0_token, rx0_token];
    for (k, &t) in seen.iter().enumerate() {
        assert!(well_formed(t), "a token: {t:#x}");
        assert!(!seen[..k].contains(&t), "tokens not distinct: {seen:x?}");
    }
    let first = |me| Table {
        attached: 1,
        count: 1,
        tokens: std::array::from_fn(|i| if i == 0 { me } else { 0 }),
        epoch: 1,
    };
    let mut tables = [first(tx0_token), first(rx0_token)];
    let mut senders = vec![Handle {
        h: tx0,
        entry: 0,
        token: tx0_token,
        gone: false,
    }];
    let mut receivers = vec![Handle {
        h: rx0,
        entry: 0,
        token: rx0_token,
        gone: false,
    }];
    let mut queue = VecDeque::new();
    let mut sent = 0u64;

    for _ in 0..10_000 {
        if input.done() {
            break;
        }
        let op = input.u8();
        let t = usize::from(op / OPS % 2);
        let live = live_tokens(scribbler, &senders, &receivers);
        match op % OPS {
            0 if senders.len() < POOL => {
                let h = match senders.first() {
                    Some(s) => attach_result(s.h.try_clone()),
                    None => {
                        let r = RegionOptions::new().any_layout().from_fd(fd()).unwrap();
                        attach_result(MpmcSender::from_region(r))
                    }
                };
                let gone = senders.first().is_some_and(|s| s.gone);
                let source = senders.first().map(|s| s.token);
                match (tables[SENDERS].attach(&live), h) {
                    (Some(entry), Some(h)) => {
                        let token =
                            source.unwrap_or_else(|| new_token(&region, SENDERS, entry, &mut seen));
                        tables[SENDERS].tokens[entry] = token;
                        senders.push(Handle {
                            h,
                            entry,
                            token,
                            gone,
                        });
                    }
                    (None, None) => {}
                    (want, got) => panic!("sender attach: want {want:?}, got {}", got.is_some()),
                }
            }
            1 if receivers.len() < POOL => {
                let h = match receivers.first() {
                    Some(r) => attach_result(r.h.try_clone()),
                    None => {
                        let r = RegionOptions::new().any_layout().from_fd(fd()).unwrap();
                        attach_result(MpmcReceiver::from_region(r))
                    }
                };
                let gone = receivers.first().is_some_and(|r| r.gone);
                let source = receivers.first().map(|r| r.token);
                match (tables[RECEIVERS].attach(&live), h) {
                    (Some(entry), Some(h)) => {
                        let token = source
                            .unwrap_or_else(|| new_token(&region, RECEIVERS, entry, &mut seen));
                        tables[RECEIVERS].tokens[entry] = token;
                        receivers.push(Handle {
                            h,
                            entry,
                            token,
                            gone,
                        });
                    }
                    (None, None) => {}
                    (want, got) => {
                        panic!("receiver attach: want {want:?}, got {}", got.is_some())
                    }
                }
            }
            2 => {
                if let Some(k) = pick(input.u8(), senders.len()) {
                    let h = senders.remove(k);
                    tables[SENDERS].detach(h.entry);
                }
            }
            3 => {
                if let Some(k) = pick(input.u8(), receivers.len()) {
                    let h = receivers.remove(k);
                    tables[RECEIVERS].detach(h.entry);
                }
            }
            4 => {
                let sel = input.u8();
                let any = u32::from_le_bytes(std::array::from_fn(|_| input.u8()));
                let held = tables[t].held();
                let v = match sel % 8 {
                    0 => 0,
                    1 => held,
                    2 => held.wrapping_sub(1),
                    3 => held + 1,
                    4 => COUNT_LIMIT,
                    5 => COUNT_LIMIT + 1,
                    6 => u32::MAX,
                    _ => any,
                };
                word(&region, t, COUNT).store(v, Ordering::SeqCst);
                tables[t].count = v;
            }
            5 => {
                let i = usize::from(input.u8()) % ENTRIES;
                let kind = input.u8();
                let any = u32::from_le_bytes(std::array::from_fn(|_| input.u8()));
                let v = match kind % 3 {
                    0 => 0,
                    1 => live[any as usize % live.len()],
                    _ => any | 1 << 31,
                };
                word(&region, t, TOKENS + 4 * i).store(v, Ordering::SeqCst);
                tables[t].tokens[i] = v;
            }
            6 => {
                let sel = input.u8();
                let any = u32::from_le_bytes(std::array::from_fn(|_| input.u8()));
                let v = match sel % 3 {
                    0 => 0,
                    1 => 1,
                    _ => any,
                };
                word(&region, t, ATTACHED).store(v, Ordering::SeqCst);
                tables[t].attached = v;
            }
            7 => {
                let v = u32::from_le_bytes(std::array::from_fn(|_| input.u8()));
                word(&region, t, EPOCH).store(v, Ordering::SeqCst);
                tables[t].epoch = v;
            }
            8 => {
                if let Some(k) = pick(input.u8(), receivers.len()) {
                    let r = &mut receivers[k];
                    let got = recv_got(r.h.recv_timeout(Duration::ZERO));
                    let want = match queue.front() {
                        Some(&v) => Got::Ok(Some(v)),
                        None => blocked(tables[SENDERS].state(&live)),
                    };
                    assert_eq!(got, want, "recv_timeout");
                    match got {
                        Got::Ok(_) => drop(queue.pop_front()),
                        Got::Disconnected => r.gone = true,
                        _ => {}
                    }
                }
            }
            9 => {
                if let Some(k) = pick(input.u8(), senders.len()) {
                    let s = &mut senders[k];
                    let v = sent ^ salt;
                    let got = send_got(s.h.send_timeout(v, Duration::ZERO));
                    let peers = &tables[RECEIVERS];
                    let state = peers.state(&live);
                    let want = if peers.hint() && matches!(state, State::Closed | State::Corrupted)
                    {
                        blocked(state)
                    } else if queue.len() < cap {
                        Got::Ok(None)
                    } else {
                        blocked(state)
                    };
                    assert_eq!(got, want, "send_timeout");
                    match got {
                        Got::Ok(_) => {
                            queue.push_back(v);
                            sent += 1;
                        }
                        Got::Disconnected => s.gone = true,
                        _ => {}
                    }
                }
            }
            10 => {
                if let Some(k) = pick(input.u8(), receivers.len()) {
                    let r = &mut receivers[k];
                    let got = recv_got(r.h.try_recv());
                    let peers = &tables[SENDERS];
                    let state = peers.state(&live);
                    if let Some(&v) = queue.front() {
                        assert_eq!(got, Got::Ok(Some(v)), "try_recv");
                        queue.pop_front();
                    } else if r.gone {
                        assert_eq!(got, Got::Disconnected, "try_recv, gone");
                    } else if peers.hint() {
                        let want = match state {
                            State::Closed => Got::Disconnected,
                            State::Corrupted => Got::Corrupted,
                            State::Idle | State::Open => Got::Empty,
                        };
                        assert_eq!(got, want, "try_recv, hint");
                    } else {
                        // Probed or not, as the clock says.
                        let probed = match state {
                            State::Closed => Got::Disconnected,
                            State::Corrupted => Got::Corrupted,
                            State::Idle | State::Open => Got::Empty,
                        };
                        assert!(
                            got == Got::Empty || got == probed,
                            "try_recv: {got:?}, state {state:?}"
                        );
                        if got == Got::Disconnected {
                            r.gone = true;
                        }
                    }
                }
            }
            11 => {
                if let Some(k) = pick(input.u8(), senders.len()) {
                    let s = &mut senders[k];
                    let v = sent ^ salt;
                    let got = send_got(s.h.try_send(v));
                    let peers = &tables[RECEIVERS];
                    let state = peers.state(&live);
                    let probed = match state {
                        State::Closed => Got::Disconnected,
                        State::Corrupted => Got::Corrupted,
                        State::Idle | State::Open => Got::Full,
                    };
                    if s.gone {
                        assert_eq!(got, Got::Disconnected, "try_send, gone");
                    } else if peers.hint() && probed != Got::Full {
                        assert_eq!(got, probed, "try_send, hint");
                    } else if queue.len() < cap {
                        assert_eq!(got, Got::Ok(None), "try_send");
                    } else if peers.hint() {
                        assert_eq!(got, Got::Full, "try_send, full, hint");
                    } else {
                        assert!(
                            got == Got::Full || got == probed,
                            "try_send, full: {got:?}, state {state:?}"
                        );
                        if got == Got::Disconnected {
                            s.gone = true;
                        }
                    }
                    if got == Got::Ok(None) {
                        queue.push_back(v);
                        sent += 1;
                    }
                }
            }
            _ => {}
        }
        for (t, table) in tables.iter().enumerate() {
            assert_eq!(&read_table(&region, t), table, "table {t} after op {op}");
        }
    }
});
