//! Participants: the identity a process writes into a lock word, and the
//! test of whether that process is still alive.
//!
//! Every process that takes a shmkit lock registers once in a small
//! per-user registry region, `/shmkit-participants-v1-<uid>`. Registering
//! means winning a *slot*: taking an OFD write lock on byte
//! `LOCK_BASE + slot` of the registry object without blocking, then bumping
//! the slot's generation. The process's [`Token`] is `(slot, generation)`
//! packed in 31 bits; lock words hold tokens, never pids.
//!
//! A token is alive while its slot's byte is locked by some other open
//! file description *and* the slot's generation still equals the token's.
//! The kernel drops the lock when the process dies (however it dies), and
//! a process that later reuses the slot bumps the generation, so neither a
//! recycled pid nor a recycled slot can make a dead owner look alive.
//!
//! Invariants:
//! - a token is never 0 (0 means "unlocked" in lock words) and never
//!   [`Token::MAX_RAW`] + 1 (reserved: `u32::MAX` lock words mean "not
//!   recoverable");
//! - only a slot's lock holder writes its generation and pid.
//!
//! The registry must outlive every participant: removing it by hand while
//! processes hold locks makes later registrants use a fresh registry in
//! which the earlier tokens look dead. Likewise, processes that share
//! regions must share `/dev/shm` (the same registry); containers with
//! private `/dev/shm` that exchange memfds are not supported.
//!
//! After `fork()` without `exec`, the child shares the parent's token (and
//! its registry lock): both count as one participant until the last of
//! them exits. Processes that fork must not hold shmkit locks across the
//! fork, and should exec.
//!
//! Under `--cfg shmkit_loom` each loom thread gets its own token and every
//! token is alive: models check the lock protocols, cross-process tests
//! check owner death.

use crate::error::Result;

/// Bits of a token that hold the slot's generation.
const GEN_BITS: u32 = 19;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;
/// Slots in the registry: indices `0..SLOTS` (the all-ones index is kept
/// out so that no token is all ones).
pub(crate) const SLOTS: usize = 4095;

/// A participant's identity: `slot << 19 | generation`, 31 bits, never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token(u32);

impl Token {
    /// The largest raw value a real token can have.
    pub(crate) const MAX_RAW: u32 = ((SLOTS as u32 - 1) << GEN_BITS) | GEN_MASK;

    /// The token as stored in shared memory.
    #[inline]
    pub(crate) const fn raw(self) -> u32 {
        self.0
    }

    /// A token read back from shared memory; may be garbage, which
    /// [`liveness`] reports as [`Liveness::Invalid`].
    #[inline]
    pub(crate) const fn from_raw(raw: u32) -> Self {
        Self(raw)
    }

    /// Whether `raw` could be a token at all (cheap; no liveness check):
    /// non-zero, in range, with a non-zero generation.
    #[inline]
    pub(crate) const fn is_well_formed(raw: u32) -> bool {
        raw != 0 && raw <= Self::MAX_RAW && raw & GEN_MASK != 0
    }

    #[cfg(not(shmkit_loom))]
    fn new(slot: usize, gen: u32) -> Self {
        Self(((slot as u32) << GEN_BITS) | gen)
    }

    #[cfg(not(shmkit_loom))]
    fn slot(self) -> usize {
        (self.0 >> GEN_BITS) as usize
    }

    #[cfg(not(shmkit_loom))]
    fn gen(self) -> u32 {
        self.0 & GEN_MASK
    }
}

/// What [`liveness`] found out about a token.
#[cfg_attr(shmkit_loom, allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Its process is alive (or could not be proven dead).
    Alive,
    /// Its process is gone.
    Dead,
    /// No process ever had this token: the word holding it is garbage.
    Invalid,
}

#[cfg(not(shmkit_loom))]
pub(crate) use real::{current, liveness};

#[cfg(shmkit_loom)]
pub(crate) use model::{current, liveness};

#[cfg(not(shmkit_loom))]
mod real {
    use super::*;
    use crate::primitive::{AtomicU32, Ordering};
    use crate::region::{LayoutId, Region, RegionOptions, ShmSafe};
    use crate::sys;
    use crate::Error;
    use std::os::fd::AsFd;
    use std::sync::OnceLock;

    /// Registry lock bytes live far past the object's end, clear of any
    /// other use of the descriptor.
    const LOCK_BASE: u64 = 1 << 40;

    /// The registry's data.
    #[repr(C)]
    struct Table {
        /// Where the next registrant starts looking for a free slot.
        next: AtomicU32,
        _reserved: AtomicU32,
        /// Current generation of each slot, `1..=GEN_MASK`; 0 = never used.
        gens: [AtomicU32; SLOTS],
        /// Pid of each slot's latest holder, for diagnostics only.
        pids: [AtomicU32; SLOTS],
    }
    // SAFETY: repr(C); every field is an atomic or an array of them.
    unsafe impl ShmSafe for Table {}

    struct Registry {
        region: Region,
        me: Token,
    }

    impl Registry {
        fn table(&self) -> &Table {
            // Checked when the registry was opened.
            self.region
                .place::<Table>(0)
                .expect("registry table checked at open")
        }
    }

    /// This process's token (0 until registered).
    static ME: AtomicU32 = AtomicU32::new(0);
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    static REGISTERING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// This process's token, registering on first use.
    #[inline]
    pub(crate) fn current() -> Result<Token> {
        let raw = ME.load(Ordering::Relaxed);
        if raw != 0 {
            return Ok(Token(raw));
        }
        register()
    }

    #[cold]
    fn register() -> Result<Token> {
        let _one_at_a_time = REGISTERING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = REGISTRY.get() {
            return Ok(r.me);
        }
        let name = format!("/shmkit-participants-v1-{}", sys::fd::euid());
        let region = RegionOptions::new()
            .size(core::mem::size_of::<Table>())
            .layout(LayoutId::named("shmkit::participants", 1))
            .keep(true)
            .open_or_create(&name)?;
        let table = region.place::<Table>(0)?;
        let fd = region.as_fd();
        let start = table.next.fetch_add(1, Ordering::Relaxed) as usize;
        for k in 0..SLOTS {
            let slot = (start + k) % SLOTS;
            if sys::ofd::try_lock_byte(fd, LOCK_BASE + slot as u64)? {
                let old = table.gens[slot].load(Ordering::Relaxed);
                let gen = if old >= GEN_MASK { 1 } else { old + 1 };
                table.gens[slot].store(gen, Ordering::Release);
                table.pids[slot].store(sys::fd::pid(), Ordering::Relaxed);
                let me = Token::new(slot, gen);
                let _ = REGISTRY.set(Registry { region, me });
                ME.store(me.raw(), Ordering::Release);
                return Ok(me);
            }
        }
        Err(Error::TooManyParticipants { slots: SLOTS })
    }

    /// Whether the process that holds token `t` is alive.
    ///
    /// I/O failures count as alive: a waiter then keeps waiting (bounded
    /// by its own deadline) rather than breaking a live owner's lock.
    pub(crate) fn liveness(t: Token) -> Liveness {
        if !Token::is_well_formed(t.raw()) {
            return Liveness::Invalid;
        }
        let me = match current() {
            Ok(me) => me,
            Err(_) => return Liveness::Alive,
        };
        if t.slot() == me.slot() {
            // Our own slot: our token, or a dead predecessor's.
            return if t == me {
                Liveness::Alive
            } else {
                Liveness::Dead
            };
        }
        let Some(reg) = REGISTRY.get() else {
            return Liveness::Alive;
        };
        match sys::ofd::byte_locked_by_other(reg.region.as_fd(), LOCK_BASE + t.slot() as u64) {
            Ok(false) => Liveness::Dead,
            Ok(true) => {
                let gen = reg.table().gens[t.slot()].load(Ordering::Acquire);
                if gen == t.gen() {
                    Liveness::Alive
                } else {
                    Liveness::Dead
                }
            }
            Err(_) => Liveness::Alive,
        }
    }
}

#[cfg(shmkit_loom)]
mod model {
    use super::*;

    /// Hands out loom-thread tokens; outside the model, so plain std.
    #[allow(clippy::disallowed_types)]
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

    loom::thread_local! {
        static ME: Token = {
            #[allow(clippy::disallowed_types)]
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Slot n, generation 1: always well formed.
            Token(((n % (SLOTS as u32 - 1)) << GEN_BITS) | 1)
        };
    }

    pub(crate) fn current() -> Result<Token> {
        Ok(ME.with(|t| *t))
    }

    pub(crate) fn liveness(_t: Token) -> Liveness {
        Liveness::Alive
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_garbage_is_invalid() {
        let me = current().unwrap();
        assert_ne!(me.raw(), 0);
        assert!(me.raw() <= Token::MAX_RAW);
        assert_eq!(current().unwrap(), me, "one token per process");
        assert_eq!(liveness(me), Liveness::Alive);
        assert_eq!(liveness(Token::from_raw(0)), Liveness::Invalid);
        assert_eq!(liveness(Token::from_raw(u32::MAX)), Liveness::Invalid);
        assert_eq!(
            liveness(Token::from_raw(Token::MAX_RAW + 1)),
            Liveness::Invalid
        );
        // A predecessor in our own slot is dead.
        let other_gen = if me.gen() == 1 { 2 } else { me.gen() - 1 };
        let old = Token::new(me.slot(), other_gen);
        assert_eq!(liveness(old), Liveness::Dead);
    }

    #[test]
    fn a_slot_nobody_holds_is_dead() {
        let me = current().unwrap();
        // Some slot far from ours that no process in a test run holds.
        let slot = (me.slot() + SLOTS / 2) % SLOTS;
        assert_eq!(liveness(Token::new(slot, 1)), Liveness::Dead);
    }
}
