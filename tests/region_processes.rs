//! Regions shared between real processes: create/open, the open-or-create
//! race, anonymous regions inherited or sent over a socket, the mode a
//! named region gets whatever the umask, and a creator that dies while
//! initializing.
// Tests use `std`'s atomics as a library user would; the ban on naming
// them is for the library's own code.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, finish, report, spawn, unique_name, wait_until};
use shmkit::{Error, Region, RegionOptions, SharedCell, Shm, ShmSafe};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

#[repr(C)]
struct Board {
    value: AtomicU64,
    reply: AtomicU64,
    inits: AtomicU32,
    joined: AtomicU32,
    text: SharedCell<[u8; 32]>,
}
// SAFETY: repr(C); every field is ShmSafe.
unsafe impl ShmSafe for Board {}

fn text(s: &str) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..s.len()].copy_from_slice(s.as_bytes());
    b
}

/// Entry point of every child process this file spawns.
#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    match role.as_str() {
        "open-and-reply" => {
            let b = Shm::<Board>::open(&args[0]).expect("child open");
            assert_eq!(b.text.get(), text("from parent"));
            let v = b.value.load(Ordering::Acquire);
            b.text.set(text("from child"));
            b.reply.store(v * 2, Ordering::Release);
        }
        "race" => {
            let start: u64 = args[1].parse().unwrap();
            // Start together: spin until the agreed wall-clock instant.
            while now_micros() < start {
                std::hint::spin_loop();
            }
            let b = Shm::<Board>::open_or_create(&args[0], |b| {
                b.inits.fetch_add(1, Ordering::Relaxed);
                b.text.set(text("initialized"));
            })
            .expect("open_or_create");
            assert_eq!(b.text.get(), text("initialized"));
            b.joined.fetch_add(1, Ordering::AcqRel);
            // Hold the region until every racer has it, so the creator's
            // drop cannot remove the name under a latecomer.
            wait_until(LIMIT, "all racers", || {
                b.joined.load(Ordering::Acquire) == 8
            });
            report(format!(
                "created={} inits={}",
                b.region().created(),
                b.inits.load(Ordering::Acquire)
            ));
        }
        "inherit" => {
            // SAFETY: the parent passed this descriptor for us alone.
            let r = unsafe { RegionOptions::for_type::<Board>().from_env("SHMKIT_TEST_FD") }
                .expect("from_env");
            assert!(r.name().is_none());
            let b = Shm::<Board>::from_region(r).expect("typed");
            assert_eq!(b.text.get(), text("inherited"));
            b.reply
                .store(b.value.load(Ordering::Acquire) + 1, Ordering::Release);
        }
        "send" => {
            let sock = UnixStream::connect(&args[0]).expect("connect");
            let b = Shm::<Board>::anonymous(|b| {
                b.value.store(777, Ordering::Relaxed);
                b.text.set(text("sent"));
            })
            .expect("anonymous");
            b.region().send_over(&sock).expect("send");
            // The parent answers through the region itself.
            wait_until(LIMIT, "parent's reply", || {
                b.reply.load(Ordering::Acquire) == 778
            });
        }
        "umask-create" => {
            let mask: u32 = args[1].parse().unwrap();
            // SAFETY: umask only sets the process's file-mode mask; this
            // child runs a single test on a single thread.
            unsafe { libc::umask(mask as libc::mode_t) };
            let mut r = Region::create(&args[0], 64).expect("create");
            r.keep();
        }
        "hang-while-initializing" => {
            let _ = RegionOptions::new()
                .size(4096)
                .create_with(&args[0], |_| loop {
                    std::thread::sleep(Duration::from_secs(1));
                });
            unreachable!("init never returns");
        }
        "die-while-initializing" => {
            let _ = RegionOptions::new()
                .size(4096)
                .create_with(&args[0], |_| std::process::exit(3));
            unreachable!("init exits the process");
        }
        other => panic!("unknown child role {other}"),
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[test]
fn named_region_opened_by_a_child_process() {
    let name = unique_name("open");
    let b = Shm::<Board>::create(&name, |b| {
        b.value.store(21, Ordering::Relaxed);
        b.text.set(text("from parent"));
    })
    .unwrap();
    finish(spawn("open-and-reply", &[&name]), LIMIT);
    assert_eq!(b.reply.load(Ordering::Acquire), 42);
    assert_eq!(b.text.get(), text("from child"));
}

#[test]
fn open_or_create_race_among_8_processes_initializes_once() {
    for round in 0..3 {
        let name = unique_name(&format!("race{round}"));
        let start = now_micros() + 150_000;
        let start = start.to_string();
        let children: Vec<_> = (0..8).map(|_| spawn("race", &[&name, &start])).collect();
        let lines: Vec<String> = children
            .into_iter()
            .flat_map(|c| finish(c, LIMIT))
            .collect();
        assert_eq!(lines.len(), 8, "{lines:?}");
        let creators = lines
            .iter()
            .filter(|l| l.starts_with("created=true"))
            .count();
        assert_eq!(creators, 1, "exactly one creator expected: {lines:?}");
        assert!(lines.iter().all(|l| l.ends_with("inits=1")), "{lines:?}");
        // The creator removed the name when it was done.
        assert!(matches!(Region::open(&name), Err(Error::NotFound { .. })));
    }
}

#[test]
fn anonymous_region_inherited_by_a_child() {
    let b = Shm::<Board>::anonymous(|b| {
        b.value.store(99, Ordering::Relaxed);
        b.text.set(text("inherited"));
    })
    .unwrap();
    let mut cmd = common::child_command("inherit", &[]);
    b.region().pass_to_child(&mut cmd, "SHMKIT_TEST_FD");
    finish(cmd.spawn().unwrap(), LIMIT);
    assert_eq!(b.reply.load(Ordering::Acquire), 100);
}

#[test]
fn anonymous_region_sent_over_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("shmkit-test-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let child = spawn("send", &[path.to_str().unwrap()]);
    let (sock, _) = listener.accept().unwrap();
    let region = RegionOptions::for_type::<Board>().receive(&sock).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(!region.created());
    let b = Shm::<Board>::from_region(region).unwrap();
    assert_eq!(b.value.load(Ordering::Acquire), 777);
    assert_eq!(b.text.get(), text("sent"));
    b.reply.store(778, Ordering::Release);
    finish(child, LIMIT);
}

#[test]
fn named_regions_are_mode_0600_whatever_the_umask() {
    for mask in [0o000, 0o022, 0o077, 0o777] {
        let name = unique_name("mode");
        finish(spawn("umask-create", &[&name, &mask.to_string()]), LIMIT);
        let meta = std::fs::metadata(format!("/dev/shm{name}")).unwrap();
        Region::unlink(&name).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o600, "umask {mask:o}");
    }
}

#[test]
fn a_creator_that_dies_while_initializing_is_detected_and_replaced() {
    let name = unique_name("died");
    let child = spawn("die-while-initializing", &[&name]);
    let pid = child.id();
    let out = common::wait_limited(child, LIMIT);
    assert_eq!(out.status.code(), Some(3));
    // Detected through the creator's lock, long before the timeout.
    let err = RegionOptions::new()
        .timeout(Duration::from_secs(20))
        .open(&name)
        .unwrap_err();
    assert!(
        matches!(err, Error::CreatorDied { pid: p } if p == pid),
        "{err:?}"
    );
    // open_or_create removes the stale object and creates a new one.
    let r = Region::open_or_create(&name, 4096).unwrap();
    assert!(r.created());
    assert_eq!(r.creator_pid(), std::process::id());
}

#[test]
fn openers_waiting_on_a_creator_that_is_killed_stop_waiting() {
    let name = unique_name("killed");
    let mut child = spawn("hang-while-initializing", &[&name]);
    wait_until(LIMIT, "the child's object", || {
        std::path::Path::new(&format!("/dev/shm{name}")).exists()
    });
    let opener = {
        let name = name.clone();
        std::thread::spawn(move || {
            RegionOptions::new()
                .timeout(Duration::from_secs(20))
                .open(&name)
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    child.kill().unwrap();
    child.wait().unwrap();
    let err = opener.join().unwrap().unwrap_err();
    assert!(matches!(err, Error::CreatorDied { .. }), "{err:?}");
    Region::unlink(&name).unwrap();
}

#[test]
fn creator_removes_the_name_on_drop_unless_kept() {
    let name = unique_name("drop");
    drop(Region::create(&name, 16).unwrap());
    assert!(matches!(Region::open(&name), Err(Error::NotFound { .. })));

    let kept = RegionOptions::new()
        .size(16)
        .keep(true)
        .create(&name)
        .unwrap();
    // SAFETY (both): nothing else in this process uses the region.
    unsafe { kept.write::<u32>(0, &5) }.unwrap();
    drop(kept);
    assert_eq!(
        unsafe { Region::open(&name).unwrap().read::<u32>(0) }.unwrap(),
        5
    );
    Region::unlink(&name).unwrap();
    assert!(matches!(Region::open(&name), Err(Error::NotFound { .. })));
    assert!(matches!(Region::unlink(&name), Err(Error::NotFound { .. })));
}

#[test]
fn an_opener_never_removes_the_name() {
    let name = unique_name("opener");
    let creator = Region::create(&name, 16).unwrap();
    drop(Region::open(&name).unwrap());
    Region::open(&name).unwrap();
    drop(creator);
    assert!(matches!(Region::open(&name), Err(Error::NotFound { .. })));
}

#[test]
fn a_creator_does_not_remove_a_successor_under_the_same_name() {
    let name = unique_name("successor");
    let first = Region::create(&name, 16).unwrap();
    Region::unlink(&name).unwrap();
    let second = Region::create(&name, 32).unwrap();
    drop(first);
    assert_eq!(Region::open(&name).unwrap().len(), 32);
    drop(second);
}

#[test]
fn open_waits_for_a_slow_creator() {
    let name = unique_name("slow");
    let n2 = name.clone();
    let creator = std::thread::spawn(move || {
        RegionOptions::new()
            .size(64)
            .create_with(&n2, |r| {
                std::thread::sleep(Duration::from_millis(150));
                // SAFETY: the region is not published yet: nothing else
                // uses it.
                unsafe { r.write::<u64>(0, &0xfeed) }
            })
            .unwrap()
    });
    // Open as soon as the name exists, while the creator is still inside
    // its init.
    wait_until(LIMIT, "name to exist", || {
        std::path::Path::new(&format!("/dev/shm{name}")).exists()
    });
    let r = Region::open(&name).unwrap();
    // SAFETY: nothing in this process writes the region.
    assert_eq!(unsafe { r.read::<u64>(0) }.unwrap(), 0xfeed);
    drop(creator.join().unwrap());
}
