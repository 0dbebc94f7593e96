//! Crash leftovers: listing shmkit objects, removing only the unused ones,
//! and channels that a restarted program reopens with `open_or_create`.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, finish, kill, spawn, unique_name, wait_for_line};
use shmkit::channel::{ByteReceiver, ByteSender, MpmcReceiver, MpmcSender, Receiver, Sender};
use shmkit::region::{self, ObjectKind, ObjectState};
use shmkit::{Region, RegionOptions};
use std::os::fd::AsFd;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
#[ignore = "child process entry point, run by the tests that spawn it"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    match role.as_str() {
        "create-and-die" => {
            // Leave behind what a crashed program leaves: a kept region and
            // channels whose ends were open when it died.
            let mut r = Region::create(&args[0], 4096).expect("create");
            r.keep();
            let tx = Sender::<u64>::open_or_create(&args[1], 8).expect("channel");
            tx.send(41).unwrap();
            tx.send(42).unwrap();
            let rx = MpmcReceiver::<u64>::open_or_create(&args[2], 8).expect("mpmc");
            common::report("ready");
            std::thread::sleep(LIMIT);
            drop((r, tx, rx));
        }
        "hold-open" => {
            let r = Region::open(&args[0]).expect("open");
            common::report("ready");
            std::thread::sleep(LIMIT);
            drop(r);
        }
        "restart-receiver" => {
            let rx = Receiver::<u64>::open_or_create(&args[0], 8).expect("reopen");
            assert_eq!(rx.recv_timeout(LIMIT).unwrap(), 41);
            assert_eq!(rx.recv_timeout(LIMIT).unwrap(), 42);
        }
        other => panic!("unknown role {other}"),
    }
}

fn find(name: &str) -> Option<region::ObjectInfo> {
    region::list().unwrap().into_iter().find(|o| o.name == name)
}

#[test]
fn a_killed_creators_objects_are_listed_unused_and_removed() {
    let (r, ch, mp) = (
        unique_name("left-region"),
        unique_name("left-spsc"),
        unique_name("left-mpmc"),
    );
    let mut child = spawn("create-and-die", &[&r, &ch, &mp]);
    assert_eq!(wait_for_line(&mut child), "ready");
    let pid = child.id();
    let live = find(&r).expect("listed");
    assert_eq!(live.kind, ObjectKind::Region);
    assert_eq!(live.state, ObjectState::Ready);
    assert_eq!(live.creator_pid, pid);
    assert!(live.in_use);
    assert_eq!(live.attached, vec![pid]);
    assert_eq!(find(&ch).unwrap().kind, ObjectKind::SpscChannel);
    assert_eq!(find(&mp).unwrap().kind, ObjectKind::MpmcChannel);
    for name in [&r, &ch, &mp] {
        assert!(!region::remove_if_unused(name).unwrap(), "{name} is live");
        assert!(Region::open(name).is_ok() || name != &r);
    }
    kill(child);
    for name in [&r, &ch, &mp] {
        let dead = find(name).expect("still there after the kill");
        assert!(!dead.in_use, "{name}: {dead:?}");
        assert!(dead.attached.is_empty());
    }
    // A restarted receiver reopens the same channel and gets what was sent.
    finish(spawn("restart-receiver", &[&ch]), LIMIT);
    for name in [&r, &ch, &mp] {
        assert!(region::remove_if_unused(name).unwrap(), "{name}");
        assert!(find(name).is_none());
    }
    assert!(matches!(
        Region::open(&r),
        Err(shmkit::Error::NotFound { .. })
    ));
}

#[test]
fn a_live_holder_in_another_process_keeps_the_object() {
    let name = unique_name("held");
    let mut r = Region::create(&name, 64).unwrap();
    r.keep();
    let mut child = spawn("hold-open", &[&name]);
    assert_eq!(wait_for_line(&mut child), "ready");
    drop(r);
    let o = find(&name).unwrap();
    assert!(o.in_use);
    assert_eq!(o.attached, vec![child.id()]);
    assert!(!region::remove_if_unused(&name).unwrap());
    assert!(!region::sweep().unwrap().contains(&name));
    assert!(Region::open(&name).is_ok());
    kill(child);
    assert!(region::sweep().unwrap().contains(&name));
    assert!(find(&name).is_none());
}

#[test]
fn foreign_files_links_and_other_users_objects_are_never_touched() {
    // A file that is not a shmkit object.
    let foreign = unique_name("foreign");
    let path = format!("/dev/shm{foreign}");
    std::fs::write(&path, b"not a shmkit object, just some bytes").unwrap();
    // A symlink to a shmkit object kept elsewhere.
    let target = unique_name("link-target");
    let mut kept = Region::create(&target, 64).unwrap();
    kept.keep();
    drop(kept);
    let link = unique_name("link");
    let link_path = format!("/dev/shm{link}");
    std::os::unix::fs::symlink(format!("/dev/shm{target}"), &link_path).unwrap();

    assert!(find(&foreign).is_none());
    assert!(find(&link).is_none());
    assert!(matches!(
        region::inspect(&foreign),
        Err(shmkit::Error::NotShmkit { .. })
    ));
    assert!(region::inspect(&link).is_err());
    assert!(region::remove_if_unused(&foreign).is_err() || std::fs::metadata(&path).is_ok());
    assert!(region::remove_if_unused(&link).is_err());
    assert!(!region::remove_if_unused(&foreign).unwrap_or(false));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"not a shmkit object, just some bytes"
    );
    assert!(std::fs::symlink_metadata(&link_path).is_ok());
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(&link_path).unwrap();
    // The target itself is ours and unused.
    assert!(region::remove_if_unused(&target).unwrap());
}

#[test]
fn a_half_made_object_is_listed_and_removable() {
    // What a creator killed between O_EXCL and writing its header leaves.
    let name = unique_name("half-made");
    let path = format!("/dev/shm{name}");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(16384).unwrap();
    drop(f);
    let o = find(&name).expect("listed");
    assert_eq!(o.state, ObjectState::Initializing);
    assert!(!o.in_use);
    assert!(region::remove_if_unused(&name).unwrap());
    assert!(std::fs::metadata(&path).is_err());
}

#[test]
fn openers_racing_a_remover_never_lose_their_object() {
    // While this thread opens (or creates) the object and checks that its
    // name still names what it opened, another removes it whenever it is
    // unused. A handle must never outlive its name by a removal.
    let name = unique_name("race");
    let stop = std::sync::atomic::AtomicBool::new(false);
    /// Stops the remover however this thread leaves (a failed check
    /// unwinds through it, and the scope joins the remover).
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = region::remove_if_unused(&name);
            }
        });
        let _stop = Stop(&stop);
        for _ in 0..3000 {
            let mut h = RegionOptions::new()
                .size(64)
                .open_or_create(&name)
                .expect("open_or_create");
            h.keep();
            let again = Region::open(&name).expect("the name was removed under a live handle");
            let ino = |r: &Region| {
                std::fs::File::from(r.as_fd().try_clone_to_owned().unwrap())
                    .metadata()
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                    .unwrap()
            };
            assert_eq!(ino(&h), ino(&again));
        }
    });
    let _ = Region::unlink(&name);
}

#[test]
fn every_channel_kind_reopens_with_open_or_create() {
    let (a, b, c) = (
        unique_name("ooc-spsc"),
        unique_name("ooc-mpmc"),
        unique_name("ooc-bytes"),
    );
    let tx = Sender::<u32>::open_or_create(&a, 4).unwrap();
    let rx = Receiver::<u32>::open_or_create(&a, 4).unwrap();
    tx.send(1).unwrap();
    assert_eq!(rx.recv().unwrap(), 1);
    assert!(matches!(
        Receiver::<u32>::open_or_create(&a, 8),
        Err(shmkit::Error::InvalidSize { .. })
    ));
    let mtx = MpmcSender::<u32>::open_or_create(&b, 4).unwrap();
    let mrx = MpmcReceiver::<u32>::open_or_create(&b, 4).unwrap();
    mtx.send(2).unwrap();
    assert_eq!(mrx.recv().unwrap(), 2);
    let btx = ByteSender::open_or_create(&c, 1024, 100).unwrap();
    let brx = ByteReceiver::open_or_create(&c, 1024, 100).unwrap();
    btx.send(b"three").unwrap();
    let mut v = Vec::new();
    brx.recv(&mut v).unwrap();
    assert_eq!(v, b"three");
    assert_eq!(find(&c).unwrap().kind, ObjectKind::ByteChannel);
}
