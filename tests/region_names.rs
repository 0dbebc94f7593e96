//! Names in `/dev/shm` are untrusted: whatever another process (or user)
//! put under a name, opening it must refuse what is not a private shared
//! memory object with a typed error, at once, and leave it untouched.
//!
//! Every object a test plants is removed by a guard, also when the test
//! fails. Cases that need another user run in a child that becomes
//! `nobody` (the suite runs as root in CI); they are skipped when not root.
#![allow(clippy::disallowed_types)]

mod common;

use common::{child_role, finish, is_root, report, spawn, unique_name, NOBODY};
use shmkit::{Error, Region, RegionOptions};
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// How long a call that must fail at once may take before the test calls
/// it a hang (generous: the machine is shared and may be loaded).
const HANG: Duration = Duration::from_secs(5);
const LIMIT: Duration = Duration::from_secs(30);

fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm{name}"))
}

/// Removes a file system object (file, symlink, fifo, socket or empty
/// directory) when dropped, whatever the test's outcome.
struct Planted(PathBuf);

impl Drop for Planted {
    fn drop(&mut self) {
        match fs::symlink_metadata(&self.0) {
            Ok(m) if m.is_dir() => {
                let _ = fs::remove_dir(&self.0);
            }
            Ok(_) => {
                let _ = fs::remove_file(&self.0);
            }
            Err(_) => {}
        }
    }
}

/// A path outside `/dev/shm`, unique to this test and process.
fn outside_shm(tag: &str) -> PathBuf {
    std::env::temp_dir().join(unique_name(tag).trim_start_matches('/'))
}

/// A regular file outside `/dev/shm` with known contents: what a planted
/// symlink points at.
fn target_file(bytes: &[u8]) -> (Planted, PathBuf) {
    let path = outside_shm("target");
    let _ = fs::remove_file(&path);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    fs::write(&path, bytes).unwrap();
    (Planted(path.clone()), path)
}

/// What can be observed of an object without opening it: type, inode,
/// mode, size, link target, and contents for regular files.
#[derive(Debug, PartialEq)]
struct Snapshot {
    kind: String,
    ino: u64,
    mode: u32,
    size: u64,
    link: Option<PathBuf>,
    contents: Option<Vec<u8>>,
}

fn snapshot(path: &Path) -> Snapshot {
    let m = fs::symlink_metadata(path).unwrap();
    let ft = m.file_type();
    Snapshot {
        kind: format!("{ft:?}"),
        ino: m.ino(),
        mode: m.mode(),
        size: m.size(),
        link: ft.is_symlink().then(|| fs::read_link(path).unwrap()),
        contents: ft.is_file().then(|| fs::read(path).unwrap()),
    }
}

/// Runs `f` on a thread; fails the test if it has not returned within
/// [`HANG`].
fn returns_soon<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{what} did not return within {HANG:?}"))
}

/// Every way to open `name`, with no timeout where one can be set, each
/// on a thread that must return soon; returns their errors.
fn open_every_way(name: &str) -> Vec<(&'static str, Error)> {
    type Call = fn(&str) -> shmkit::Result<Region>;
    let calls: [(&'static str, Call); 5] = [
        ("Region::open", Region::open),
        ("Region::open_or_create", |n| Region::open_or_create(n, 64)),
        ("RegionOptions::open", |n| {
            RegionOptions::new().timeout(None).open(n)
        }),
        ("RegionOptions::open_or_create", |n| {
            RegionOptions::new()
                .size(64)
                .timeout(None)
                .open_or_create(n)
        }),
        ("RegionOptions::create", |n| {
            RegionOptions::new().size(64).timeout(None).create(n)
        }),
    ];
    calls
        .into_iter()
        .map(|(what, call)| {
            let n = name.to_owned();
            let r = returns_soon(what, move || call(&n));
            (what, r.expect_err(what))
        })
        .collect()
}

/// Asserts that every open of `name` is refused as `found`, and create as
/// taken.
fn assert_refused_as(name: &str, found: &str) {
    for (what, err) in open_every_way(name) {
        if what == "RegionOptions::create" {
            assert!(
                matches!(&err, Error::AlreadyExists { name: n } if n == name),
                "{what}: {err:?}"
            );
            continue;
        }
        assert!(
            matches!(&err, Error::NotARegularFile { name: n, found: f } if n == name && *f == found),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn a_symlink_to_a_file_is_refused_and_the_file_untouched() {
    // Zeros look like a region whose creator died: before names were
    // opened without following links, `open_or_create` marked the target
    // abandoned (writing 4 bytes into it) and then replaced the link.
    for contents in [vec![0u8; 4096], vec![0x5Au8; 4096], b"private".to_vec()] {
        let (_t, target) = target_file(&contents);
        let name = unique_name("symlink");
        let link = shm_path(&name);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let _l = Planted(link.clone());
        let (before, link_before) = (snapshot(&target), snapshot(&link));
        assert_refused_as(&name, "symbolic link");
        assert_eq!(snapshot(&target), before, "the target changed");
        assert_eq!(fs::read(&target).unwrap(), contents);
        assert_eq!(snapshot(&link), link_before, "the link changed");
    }
}

#[test]
fn a_symlink_to_a_region_is_refused() {
    let real = unique_name("real");
    let region = Region::create(&real, 64).unwrap();
    // SAFETY: nothing else in this process uses these bytes.
    unsafe { region.write::<u64>(0, &7) }.unwrap();
    let name = unique_name("alias");
    std::os::unix::fs::symlink(shm_path(&real), shm_path(&name)).unwrap();
    let _l = Planted(shm_path(&name));
    let before = snapshot(&shm_path(&real));
    assert_refused_as(&name, "symbolic link");
    assert_eq!(snapshot(&shm_path(&real)), before);
    // SAFETY: as above.
    assert_eq!(unsafe { region.read::<u64>(0) }.unwrap(), 7);
}

#[test]
fn a_dangling_symlink_is_refused_at_once() {
    let name = unique_name("dangling");
    let link = shm_path(&name);
    let nowhere = outside_shm("nowhere");
    let _ = fs::remove_file(&nowhere);
    std::os::unix::fs::symlink(&nowhere, &link).unwrap();
    let _l = Planted(link.clone());
    let _n = Planted(nowhere.clone()); // in case a call created it
    let before = snapshot(&link);
    assert_refused_as(&name, "symbolic link");
    assert_eq!(snapshot(&link), before);
    assert!(!nowhere.exists(), "the link's target was created");
}

#[test]
fn a_directory_is_refused_at_once() {
    let name = unique_name("dir");
    let dir = shm_path(&name);
    fs::create_dir(&dir).unwrap();
    let _d = Planted(dir.clone());
    let before = snapshot(&dir);
    assert_refused_as(&name, "directory");
    assert_eq!(snapshot(&dir), before);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn a_fifo_is_refused_at_once() {
    let name = unique_name("fifo");
    let path = shm_path(&name);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let _f = Planted(path.clone());
    let before = snapshot(&path);
    assert_refused_as(&name, "fifo");
    assert_eq!(snapshot(&path), before);
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_fifo());
}

#[test]
fn a_unix_socket_is_refused_at_once() {
    let name = unique_name("sock");
    let path = shm_path(&name);
    let _listener = UnixListener::bind(&path).unwrap();
    let _s = Planted(path.clone());
    let before = snapshot(&path);
    assert_refused_as(&name, "socket");
    assert_eq!(snapshot(&path), before);
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());
}

/// A kept region, removed when the guard drops.
fn kept(tag: &str) -> (Planted, String) {
    let name = unique_name(tag);
    RegionOptions::new()
        .size(64)
        .keep(true)
        .create(&name)
        .unwrap();
    (Planted(shm_path(&name)), name)
}

#[test]
fn a_region_others_could_write_is_refused() {
    let (_g, name) = kept("mode");
    for mode in [0o644, 0o660, 0o606, 0o640, 0o604, 0o610, 0o601, 0o777] {
        fs::set_permissions(shm_path(&name), fs::Permissions::from_mode(mode)).unwrap();
        for (what, err) in open_every_way(&name) {
            if what == "RegionOptions::create" {
                assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
                continue;
            }
            assert!(
                matches!(&err, Error::InsecureMode { name: n, mode: m } if n == &name && *m == mode),
                "{what}, mode {mode:o}: {err:?}"
            );
        }
        // Refused, not repaired: the mode is left as found.
        let now = fs::metadata(shm_path(&name)).unwrap().mode() & 0o7777;
        assert_eq!(now, mode);
    }
    // Narrower than the creator's mode is no risk (but only root may open
    // a 0400 object read-write).
    let narrower: &[u32] = if is_root() { &[0o600, 0o400] } else { &[0o600] };
    for &mode in narrower {
        fs::set_permissions(shm_path(&name), fs::Permissions::from_mode(mode)).unwrap();
        Region::open(&name).unwrap();
    }
}

#[test]
fn a_wide_mode_is_refused_before_a_stale_object_is_replaced() {
    // Zeros and nobody holding the creator's lock: stale. With a mode that
    // lets others write it, it is not ours to judge, replace or remove.
    let name = unique_name("stale-wide");
    let path = shm_path(&name);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let _g = Planted(path.clone());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
    let before = snapshot(&path);
    let err = returns_soon("open_or_create", {
        let n = name.clone();
        move || {
            RegionOptions::new()
                .size(64)
                .timeout(None)
                .open_or_create(&n)
        }
    })
    .unwrap_err();
    assert!(
        matches!(err, Error::InsecureMode { mode: 0o666, .. }),
        "{err:?}"
    );
    assert_eq!(snapshot(&path), before);
}

#[test]
fn a_stale_object_that_cannot_be_removed_is_reported_not_spun_on() {
    // Zeros nobody initializes: stale. But another open file description
    // keeps a shared lock on it, so the exclusive lock needed to remove it
    // can never be had. Every attempt ends "creator died, removal busy";
    // `open_or_create` must give up and say so, not retry forever.
    let name = unique_name("stale-locked");
    let path = shm_path(&name);
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    let _g = Planted(path.clone());
    f.set_len(4096).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockShared).unwrap();
    let before = snapshot(&path);
    let err = returns_soon("open_or_create", {
        let n = name.clone();
        move || {
            RegionOptions::new()
                .size(64)
                .timeout(None)
                .open_or_create(&n)
        }
    })
    .unwrap_err();
    assert!(matches!(err, Error::CreatorDied { pid: 0 }), "{err:?}");
    assert_eq!(snapshot(&path), before);
    drop(f);
}

#[test]
fn anonymous_regions_are_not_held_to_the_named_mode() {
    // A memfd's mode is 0777 by nature; it is reachable by descriptor only.
    let region = Region::anonymous(64).unwrap();
    let st = rustix::fs::fstat(region.as_fd()).unwrap();
    assert_ne!(st.st_mode & 0o077, 0, "memfds are expected to be 0777");
    let dup = rustix::io::fcntl_dupfd_cloexec(region.as_fd(), 0).unwrap();
    let twin = RegionOptions::new().from_fd(dup).unwrap();
    assert_eq!(twin.len(), 64);
}

// ---- Cases with another user -------------------------------------------

#[test]
#[ignore = "child process entry point, run by the tests below"]
fn child_entry() {
    let Some((role, args)) = child_role() else {
        return;
    };
    common::become_nobody();
    match role.as_str() {
        "plant-symlink" => {
            std::os::unix::fs::symlink(&args[1], shm_path(&args[0])).unwrap();
        }
        "create-region" => {
            let mut r = Region::create(&args[0], 64).unwrap();
            r.keep();
        }
        "create-wide" => {
            let f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(shm_path(&args[0]))
                .unwrap();
            f.set_len(4096).unwrap();
            f.set_permissions(fs::Permissions::from_mode(0o666))
                .unwrap();
        }
        "open-root-region" => {
            let e1 = Region::open(&args[0]).unwrap_err();
            let e2 = RegionOptions::new()
                .size(64)
                .timeout(None)
                .open_or_create(&args[0])
                .unwrap_err();
            for e in [e1, e2] {
                report(match e {
                    Error::PermissionDenied { .. } => "PermissionDenied".to_owned(),
                    e => format!("{e:?}"),
                });
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn skip_unless_root() -> bool {
    if !is_root() {
        eprintln!("skipped: switching to another user needs root");
        return true;
    }
    false
}

#[test]
fn a_symlink_planted_by_another_user_is_refused() {
    if skip_unless_root() {
        return;
    }
    // A file only root may write, as an attacker would aim at.
    let (_t, target) = target_file(&[0u8; 4096]);
    let name = unique_name("planted");
    let _l = Planted(shm_path(&name));
    finish(
        spawn("plant-symlink", &[&name, target.to_str().unwrap()]),
        LIMIT,
    );
    let link = fs::symlink_metadata(shm_path(&name)).unwrap();
    assert_eq!(link.uid(), NOBODY);
    let before = snapshot(&target);
    assert_refused_as(&name, "symbolic link");
    assert_eq!(snapshot(&target), before);
    assert_eq!(fs::read(&target).unwrap(), vec![0u8; 4096]);
}

#[test]
fn a_region_created_by_another_user_is_refused() {
    if skip_unless_root() {
        return;
    }
    let name = unique_name("theirs");
    let _g = Planted(shm_path(&name));
    finish(spawn("create-region", &[&name]), LIMIT);
    let before = snapshot(&shm_path(&name));
    assert_eq!(fs::metadata(shm_path(&name)).unwrap().uid(), NOBODY);
    for (what, err) in open_every_way(&name) {
        if what == "RegionOptions::create" {
            assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
            continue;
        }
        assert!(
            matches!(
                err,
                Error::ForeignOwner {
                    owner: NOBODY,
                    expected: 0
                }
            ),
            "{what}: {err:?}"
        );
    }
    assert_eq!(snapshot(&shm_path(&name)), before);
}

#[test]
fn a_stale_object_of_another_user_is_not_replaced() {
    if skip_unless_root() {
        return;
    }
    let name = unique_name("theirs-stale");
    let _g = Planted(shm_path(&name));
    finish(spawn("create-wide", &[&name]), LIMIT);
    let before = snapshot(&shm_path(&name));
    let err = returns_soon("open_or_create", {
        let n = name.clone();
        move || {
            RegionOptions::new()
                .size(64)
                .timeout(None)
                .open_or_create(&n)
        }
    })
    .unwrap_err();
    // The owner is checked first: it is what says whose object it is.
    assert!(
        matches!(err, Error::ForeignOwner { owner: NOBODY, .. }),
        "{err:?}"
    );
    assert_eq!(snapshot(&shm_path(&name)), before);
}

#[test]
fn another_user_cannot_open_a_region() {
    if skip_unless_root() {
        return;
    }
    let (_g, name) = kept("mine");
    let before = snapshot(&shm_path(&name));
    let seen = finish(spawn("open-root-region", &[&name]), LIMIT);
    assert_eq!(seen, ["PermissionDenied", "PermissionDenied"]);
    assert_eq!(snapshot(&shm_path(&name)), before);
}
