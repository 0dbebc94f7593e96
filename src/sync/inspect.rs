//! [`inspect`]: a lock, semaphore, barrier or event, read from outside.
//!
//! Each type decodes its own words (`state_of` in its module); this holds
//! what they decode to, and the one entry point.

use super::EventMode;
use crate::error::Result;
use crate::region::{ObjectKind, Outside};

/// What the primitive alone in a region is doing, read without locking,
/// mapping or attaching anything (see [`inspect`]). Every field is what
/// the shared words claim: shown, never trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncState {
    /// A [`Mutex`](super::Mutex)'s lock word.
    Mutex(LockState),
    /// An [`RwLock`](super::RwLock)'s writer and readers.
    RwLock(RwLockState),
    /// A [`Semaphore`](super::Semaphore)'s permits and owners.
    Semaphore(SemaphoreState),
    /// A [`Barrier`](super::Barrier)'s generation and parties.
    Barrier(BarrierState),
    /// An [`Event`](super::Event)'s flag.
    Event(EventState),
}

impl SyncState {
    /// What is wrong with the words, if a correct participant could not
    /// have written them.
    pub fn corrupted(&self) -> Option<String> {
        match self {
            SyncState::Mutex(LockState::Corrupted(w)) => {
                Some(format!("lock word {w:#010x} is no state a mutex has"))
            }
            SyncState::Mutex(_) => None,
            SyncState::RwLock(s) => s.corrupted.map(str::to_owned),
            SyncState::Semaphore(s) => s.corrupted.map(str::to_owned),
            SyncState::Barrier(s) => s.corrupted.map(str::to_owned),
            SyncState::Event(s) => s.corrupted.map(str::to_owned),
        }
    }
}

/// What a mutex's lock word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// Nobody holds it.
    Unlocked,
    /// A holder recorded in the word.
    Locked {
        /// The pid the holder's participant slot records (a claim of
        /// the object's memory: shown, never trusted).
        pid: u32,
        /// Whether the holder's handle is still open: the kernel's lock
        /// on the holder's byte of the object's file, and the slot's
        /// generation. A dead holder's lock goes to the next locker
        /// with [`LockError::OwnerDied`](super::LockError::OwnerDied).
        alive: bool,
        /// Whether a waiter may be asleep on it.
        waiters: bool,
    },
    /// A dead holder's data was never marked consistent: every lock
    /// fails with [`LockError::NotRecoverable`](super::LockError::NotRecoverable).
    NotRecoverable,
    /// A word no shmkit lock writes (here is what it holds).
    Corrupted(u32),
}

/// A participant a primitive records (a region handle, in some process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// The pid its participant slot records (a claim: shown, never
    /// trusted).
    pub pid: u32,
    /// Whether its handle is still open (the kernel's lock on its byte of
    /// the object's file, and the slot's generation): a dead one's holds
    /// are recovered by the next participant that waits.
    pub alive: bool,
}

/// A participant's holds: read locks of an [`RwLock`](super::RwLock), or
/// owned permits of a [`Semaphore`](super::Semaphore).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holds {
    /// Who holds them.
    pub holder: Holder,
    /// How many (all its threads together).
    pub count: u32,
}

/// What an [`RwLock`](super::RwLock)'s words say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RwLockState {
    /// The writer that holds the lock, or claims it and waits for the
    /// readers to leave (`claiming`).
    pub writer: Option<Holder>,
    /// Whether `writer` only claims the lock so far.
    pub claiming: bool,
    /// The participants that hold read locks, and how many each.
    pub readers: Vec<Holds>,
    /// A dead writer's data is not repaired yet: the next locker gets
    /// [`LockError::OwnerDied`](super::LockError::OwnerDied).
    pub orphaned: bool,
    /// Whether a waiter may be asleep on it.
    pub waiters: bool,
    /// A dead writer's data was never marked consistent: every lock fails
    /// with [`LockError::NotRecoverable`](super::LockError::NotRecoverable).
    pub not_recoverable: bool,
    /// What no participant writes, if something is found (the fields
    /// above are then what could be read before it).
    pub corrupted: Option<&'static str>,
}

/// What a [`Semaphore`](super::Semaphore)'s words say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SemaphoreState {
    /// Permits available now.
    pub available: u32,
    /// The most it may hold, if bounded.
    pub bound: Option<u32>,
    /// Whether someone may be asleep waiting for a permit.
    pub sleepers: bool,
    /// The participants that hold owned permits
    /// ([`acquire_permit`](super::Semaphore::acquire_permit)), and how many
    /// each; a dead one's go back to the next acquirer that finds none.
    /// Plain permits are not recorded anywhere.
    pub owners: Vec<Holds>,
    /// What no participant writes, if something is found.
    pub corrupted: Option<&'static str>,
}

/// What a [`Barrier`](super::Barrier)'s words say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BarrierState {
    /// Its number of parties (0: not initialized).
    pub parties: u32,
    /// Arrivals in the current generation.
    pub arrived: u32,
    /// Generations completed (wrapping at 2^23).
    pub generation: u32,
    /// Broken by [`abort`](super::Barrier::abort) or a dead party: every
    /// wait fails.
    pub broken: bool,
    /// Whether a waiter may be asleep on it.
    pub sleepers: bool,
    /// Every process that has waited on it (a dead one breaks the next
    /// generation that waits for it).
    pub processes: Vec<Holder>,
    /// What no participant writes, if something is found.
    pub corrupted: Option<&'static str>,
}

/// What an [`Event`](super::Event)'s words say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EventState {
    /// Its mode (manual reset if the mode word is corrupted).
    pub mode: EventMode,
    /// Whether it is set.
    pub set: bool,
    /// Whether a waiter may be asleep on it.
    pub sleepers: bool,
    /// What no participant writes, if something is found.
    pub corrupted: Option<&'static str>,
}

/// Reads the synchronization primitive alone in object `name` (a
/// [`Shm`](crate::Shm) of a [`Mutex`](super::Mutex),
/// [`RwLock`](super::RwLock), [`Semaphore`](super::Semaphore),
/// [`Barrier`](super::Barrier) or [`Event`](super::Event)) from outside:
/// who holds what, whether those processes still live, who may be
/// waiting. `pread` of its file: nothing is mapped, locked or written, so
/// looking changes nothing (a dead holder's lock still goes to the next
/// locker with `OwnerDied`). For tools (`shmkit inspect`) and health
/// checks. Words no participant writes are reported in the state
/// ([`SyncState::corrupted`]), not as an error.
///
/// Fails as [`region::inspect`](crate::region::inspect) does for a bad
/// name, a foreign file or another user's object, and with
/// [`Error::LayoutMismatch`](crate::Error::LayoutMismatch) for an object
/// of another kind (or not ready). A primitive that shares its region
/// with other fields (a `#[derive(ShmSafe)]` struct) is a plain value to
/// this function.
///
/// ```
/// use shmkit::sync::{self, Holder, LockState, Semaphore, SyncState};
/// use shmkit::Shm;
/// # let name = format!("/shmkit-doc-sync-inspect-{}", std::process::id());
/// let m = Shm::<shmkit::sync::Mutex<u64>>::create(&name, |_| {})?;
/// assert_eq!(sync::inspect(&name)?, SyncState::Mutex(LockState::Unlocked));
/// let guard = m.lock().map_err(|e| e.to_string())?;
/// let me = std::process::id();
/// assert!(matches!(
///     sync::inspect(&name)?,
///     SyncState::Mutex(LockState::Locked { pid, alive: true, .. }) if pid == me
/// ));
/// drop(guard);
///
/// # let name = format!("/shmkit-doc-sync-inspect-sem-{}", std::process::id());
/// let slots = Shm::<Semaphore>::create(&name, |s| s.init(3, Some(3)))?;
/// let permit = slots.acquire_permit().map_err(|e| e.to_string())?;
/// let SyncState::Semaphore(s) = sync::inspect(&name)? else { unreachable!() };
/// assert_eq!((s.available, s.bound), (2, Some(3)));
/// assert_eq!(s.owners[0].holder, Holder { pid: me, alive: true });
/// assert_eq!(s.owners[0].count, 1);
/// drop(permit);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn inspect(name: &str) -> Result<SyncState> {
    let object = Outside::open(
        name,
        &[
            ObjectKind::Mutex,
            ObjectKind::RwLock,
            ObjectKind::Semaphore,
            ObjectKind::Barrier,
            ObjectKind::Event,
        ],
    )?;
    Ok(match object.info.kind {
        ObjectKind::Mutex => SyncState::Mutex(super::raw_mutex::state_of(&object)?),
        ObjectKind::RwLock => SyncState::RwLock(super::rwlock::state_of(&object)?),
        ObjectKind::Semaphore => SyncState::Semaphore(super::semaphore::state_of(&object)?),
        ObjectKind::Barrier => SyncState::Barrier(super::barrier::state_of(&object)?),
        _ => SyncState::Event(super::event::state_of(&object)?),
    })
}

/// The holder of token `raw` in `object`, or `None` if no participant
/// could have that token.
pub(super) fn holder(object: &Outside, raw: u32) -> Result<Option<Holder>> {
    Ok(object
        .holder(raw)?
        .map(|(pid, alive)| Holder { pid, alive }))
}
