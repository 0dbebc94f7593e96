//! Participant liveness cannot be fooled by what happens to names in
//! `/dev/shm`: a removed or squatted file, a planted symlink, a joiner
//! stopped half-way. Each case runs the lock holder (or channel end) in a
//! child process.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, kill, spawn, unique_name, wait_for_line};
use shmkit::channel::{Receiver, Sender};
use shmkit::sync::{LockTimeoutError, Mutex, TryLockError};
use shmkit::{Error, Region, Shm, ShmSafe};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
/// What "at once" means for a call that must not wait (generous: the
/// machine is loaded).
const PROMPT: Duration = Duration::from_millis(500);

#[repr(C)]
struct Shared {
    lock: Mutex<u64>,
    started: AtomicU32,
    go: AtomicU32,
}
// SAFETY: repr(C); every field is ShmSafe.
unsafe impl ShmSafe for Shared {}

/// The per-user file an earlier design kept its participant registry in:
/// nothing may depend on it any more.
fn old_registry() -> String {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    format!("/dev/shm/shmkit-participants-v1-{uid}")
}

/// Serializes the tests that change [`old_registry`].
static REGISTRY_NAME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn registry_name() -> std::sync::MutexGuard<'static, ()> {
    REGISTRY_NAME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes `path` when dropped.
struct Remove(String);
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    match role.as_str() {
        "hold" => {
            let s = Shm::<Shared>::open(&args[0]).expect("open");
            let g = s.lock.lock().expect("lock");
            s.started.store(1, Ordering::Release);
            common::report("locked");
            std::thread::sleep(LIMIT);
            drop(g);
        }
        "check-held" => {
            // Opened before the names go; every lock call comes after.
            let s = Shm::<Shared>::open(&args[0]).expect("open");
            common::report("opened");
            common::wait_until(LIMIT, "the go signal", || s.go.load(Ordering::Acquire) == 1);
            assert_held_elsewhere(&s);
        }
        "receive" => {
            let rx = Receiver::<u64>::open(&args[0]).expect("open receiver");
            common::report("attached");
            assert_eq!(rx.recv().expect("recv"), 7);
            std::thread::sleep(LIMIT);
        }
        "half-join" => {
            // What a joiner stopped between locking a participant slot and
            // publishing its generation leaves: the slot's byte locked by a
            // live process. Then stop for good.
            let path = format!("/dev/shm{}", args[0]);
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .expect("open the object's file");
            for slot in 0..1023u64 {
                // SAFETY: an all-zero flock is valid; the fields are set
                // before use.
                let mut fl: libc::flock = unsafe { std::mem::zeroed() };
                fl.l_type = libc::F_WRLCK as libc::c_short;
                fl.l_whence = libc::SEEK_SET as libc::c_short;
                fl.l_start = ((1u64 << 40) + slot) as libc::off_t;
                fl.l_len = 1;
                // SAFETY: a valid descriptor and a live flock.
                if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) } == 0 {
                    break;
                }
            }
            common::report("half-joined");
            // SAFETY: raise has no preconditions.
            unsafe { libc::raise(libc::SIGSTOP) };
            std::thread::sleep(LIMIT);
        }
        other => panic!("unknown role {other}"),
    }
}

fn holder(name: &str) -> (Shm<Shared>, std::process::Child) {
    let s = Shm::<Shared>::create(name, |_| {}).unwrap();
    let mut child = spawn("hold", &[name]);
    assert_eq!(wait_for_line(&mut child), "locked");
    (s, child)
}

/// While another process holds the lock, nothing this process does gets
/// it: every form reports it held, within its own deadline.
fn assert_held_elsewhere(s: &Shared) {
    let t = Instant::now();
    assert!(matches!(s.lock.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(t.elapsed() < PROMPT, "try_lock took {:?}", t.elapsed());
    let t = Instant::now();
    let r = s.lock.lock_timeout(Duration::from_millis(200));
    assert!(matches!(r, Err(LockTimeoutError::Timeout)), "{r:?}");
    assert!(
        t.elapsed() < Duration::from_millis(200) + PROMPT,
        "lock_timeout(200 ms) took {:?}",
        t.elapsed()
    );
}

#[test]
fn removing_every_name_keeps_a_live_holder_live() {
    let name = unique_name("unlinked");
    let (s, child) = holder(&name);
    let mut checker = spawn("check-held", &[&name]);
    assert_eq!(wait_for_line(&mut checker), "opened");
    let _serial = registry_name();
    // Everything a cleaner could remove: the region's own name and the
    // per-user file an earlier design depended on.
    Region::unlink(&name).unwrap();
    let _ = std::fs::remove_file(old_registry());
    s.go.store(1, Ordering::Release);
    common::finish(checker, LIMIT);
    assert_held_elsewhere(&s);
    // A handle opened afresh elsewhere cannot be opened by name any more,
    // but the one we have still sees the holder alive; once it dies, the
    // next locker is told.
    kill(child);
    let r = s.lock.lock_timeout(LIMIT);
    let mut g = r.unwrap_err().into_owner_died().expect("OwnerDied");
    g.mark_consistent();
}

#[test]
fn a_second_receiver_is_refused_whatever_was_removed() {
    let name = unique_name("second-rx");
    let tx = Sender::<u64>::create(&name, 8).unwrap();
    let mut child = spawn("receive", &[&name]);
    assert_eq!(wait_for_line(&mut child), "attached");
    let _serial = registry_name();
    let _ = std::fs::remove_file(old_registry());
    let r = Receiver::<u64>::open(&name);
    assert!(matches!(r, Err(Error::ChannelBusy { .. })), "{r:?}");
    tx.send(7).unwrap();
    kill(child);
}

#[test]
fn a_squatted_or_garbage_registry_name_changes_nothing() {
    // Squat the old per-user name: garbage content, world-writable, and
    // (when we can) another user's.
    let _serial = registry_name();
    let path = old_registry();
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, vec![0xA5u8; 4096]).unwrap();
    let _cleanup = Remove(path.clone());
    let cpath = std::ffi::CString::new(path.clone()).unwrap();
    // SAFETY: as above; chmod and chown have no other preconditions.
    unsafe {
        libc::chmod(cpath.as_ptr(), 0o666);
        if libc::geteuid() == 0 {
            libc::chown(cpath.as_ptr(), 65534, 65534);
        }
    }
    let name = unique_name("squat");
    let (s, child) = holder(&name);
    assert_held_elsewhere(&s);
    kill(child);
    let mut g = s.lock.lock().unwrap_err().into_owner_died().unwrap();
    g.mark_consistent();
    drop(g);
    drop(s.lock.try_lock().expect("a clean lock after repair"));
    let ch = unique_name("squat-ch");
    let tx = Sender::<u64>::create(&ch, 4).unwrap();
    let rx = Receiver::<u64>::open(&ch).unwrap();
    tx.try_send(1).unwrap();
    assert_eq!(rx.try_recv().unwrap(), 1);
}

#[test]
fn a_dangling_symlink_at_the_registry_name_changes_nothing() {
    let _serial = registry_name();
    let path = old_registry();
    let _ = std::fs::remove_file(&path);
    std::os::unix::fs::symlink("/nonexistent/shmkit-target", &path).unwrap();
    let _cleanup = Remove(path);
    let name = unique_name("symlink");
    let (s, child) = holder(&name);
    assert_held_elsewhere(&s);
    kill(child);
    assert!(s.lock.lock().unwrap_err().into_owner_died().is_some());
}

#[test]
fn a_joiner_stopped_half_way_blocks_nobody() {
    let name = unique_name("half-join");
    let s = Shm::<Shared>::create(&name, |_| {}).unwrap();
    let mut stopped = spawn("half-join", &[&name]);
    assert_eq!(wait_for_line(&mut stopped), "half-joined");
    // Joining, locking and trying are all prompt beside it.
    let t = Instant::now();
    let again = Shm::<Shared>::open(&name).unwrap();
    drop(again.lock.try_lock().expect("try_lock"));
    drop(s.lock.lock_timeout(Duration::from_secs(1)).expect("lock"));
    assert!(t.elapsed() < PROMPT, "took {:?}", t.elapsed());
    // And a real holder beside it is still seen as alive.
    let mut child = spawn("hold", &[&name]);
    assert_eq!(wait_for_line(&mut child), "locked");
    assert_held_elsewhere(&s);
    kill(child);
    assert!(s.lock.lock().unwrap_err().into_owner_died().is_some());
    // SAFETY: kill has no preconditions; the child is ours.
    unsafe { libc::kill(stopped.id() as libc::pid_t, libc::SIGCONT) };
    kill(stopped);
}

#[test]
fn handles_opened_and_dropped_while_others_count_never_break_exclusion() {
    // Slots and generations churn (handles join and leave) while two
    // processes' worth of threads count under the lock.
    let name = unique_name("churn");
    let s = Shm::<Shared>::create(&name, |_| {}).unwrap();
    const N: u64 = 2000;
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for i in 0..N {
                    let h = Shm::<Shared>::open(&name).unwrap();
                    let mut g = h.lock.lock().expect("lock");
                    let v = *g;
                    if i % 7 == 0 {
                        std::thread::yield_now();
                    }
                    *g = v + 1;
                }
            });
        }
    });
    assert_eq!(*s.lock.lock().unwrap(), 4 * N);
}
