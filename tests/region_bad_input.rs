//! Opening what is not a good region: each case must be the exact typed
//! error, never a panic, a SIGBUS or a hang.
#![allow(clippy::disallowed_types)]

mod common;

use common::unique_name;
use shmkit::{Error, LayoutId, Region, RegionOptions, SharedCell, Shm, ShmSafe};
use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

const HEADER: u64 = 128;
/// Where the data starts: the header, then the participant table.
const DATA: u64 = HEADER + 8192;
const QUICK: Duration = Duration::from_millis(50);

fn path(name: &str) -> String {
    format!("/dev/shm{name}")
}

/// Writes `bytes` at `offset` of the object behind `name`, as a peer (or
/// an attacker with the same uid) could.
fn poke(name: &str, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path(name)).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn set_len(name: &str, len: u64) {
    let f = OpenOptions::new().write(true).open(path(name)).unwrap();
    f.set_len(len).unwrap();
}

/// A named object that shmkit did not create, holding `bytes`, private to
/// this user (as a region is, so that only its contents are wrong).
fn foreign_object(bytes: &[u8]) -> String {
    let name = unique_name("foreign");
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path(&name))
        .unwrap();
    f.write_all_at(bytes, 0).unwrap();
    name
}

/// A kept region of `size` data bytes that the test then damages; removed
/// when the guard drops.
struct Kept(String);
impl Kept {
    fn new(size: usize) -> Self {
        let name = unique_name("kept");
        RegionOptions::new()
            .size(size)
            .keep(true)
            .create(&name)
            .unwrap();
        Kept(name)
    }
}
impl Drop for Kept {
    fn drop(&mut self) {
        let _ = Region::unlink(&self.0);
    }
}

fn open_quick(name: &str) -> shmkit::Result<Region> {
    RegionOptions::new().timeout(QUICK).open(name)
}

#[test]
fn invalid_names_are_refused_by_every_entry_point() {
    let long = format!("/{}", "n".repeat(shmkit::MAX_NAME_LEN + 1));
    for name in [
        "",
        "plain",
        "/",
        "/a/b",
        "/.",
        "/..",
        "/nul\0",
        long.as_str(),
    ] {
        let is_invalid = |r: shmkit::Result<Region>| matches!(r, Err(Error::InvalidName { .. }));
        assert!(is_invalid(Region::create(name, 8)), "create {name:?}");
        assert!(is_invalid(Region::open(name)), "open {name:?}");
        assert!(is_invalid(Region::open_or_create(name, 8)), "ooc {name:?}");
        assert!(
            matches!(Region::unlink(name), Err(Error::InvalidName { .. })),
            "unlink {name:?}"
        );
    }
}

#[test]
fn missing_and_taken_names() {
    let name = unique_name("missing");
    assert!(matches!(Region::open(&name), Err(Error::NotFound { name: n }) if n == name));
    let _r = Region::create(&name, 8).unwrap();
    assert!(matches!(Region::create(&name, 8), Err(Error::AlreadyExists { name: n }) if n == name));
}

#[test]
fn a_foreign_file_is_not_shmkit() {
    let name = foreign_object(&[0xAB; 4096]);
    let err = open_quick(&name).unwrap_err();
    Region::unlink(&name).unwrap();
    assert!(
        matches!(
            err,
            Error::NotShmkit {
                found: 0xABAB_ABAB_ABAB_ABAB
            }
        ),
        "{err:?}"
    );
}

#[test]
fn an_object_shorter_than_a_header_is_too_small() {
    for len in [1u64, 64, HEADER - 1] {
        let name = foreign_object(&vec![0x11; len as usize]);
        let err = open_quick(&name).unwrap_err();
        Region::unlink(&name).unwrap();
        assert!(
            matches!(err, Error::TooSmall { size, min: HEADER } if size == len),
            "{err:?}"
        );
    }
}

#[test]
fn a_region_cut_below_its_header_is_too_small() {
    let k = Kept::new(4096);
    set_len(&k.0, 100);
    let err = open_quick(&k.0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooSmall {
                size: 100,
                min: HEADER
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_region_shorter_than_its_header_claims_is_truncated() {
    let k = Kept::new(8192);
    set_len(&k.0, 4096);
    let err = open_quick(&k.0).unwrap_err();
    assert!(
        matches!(err, Error::Truncated { claimed, actual: 4096 } if claimed == 8192 + DATA),
        "{err:?}"
    );
}

#[test]
fn a_region_longer_than_its_header_claims_is_corrupted() {
    let k = Kept::new(4096);
    set_len(&k.0, 16384);
    let err = open_quick(&k.0).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
}

#[test]
fn another_format_version_is_named() {
    let k = Kept::new(64);
    poke(&k.0, 8, &7u32.to_le_bytes());
    let err = open_quick(&k.0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::VersionMismatch {
                found: 7,
                expected: 2
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_scribbled_header_fails_its_checksum() {
    let k = Kept::new(64);
    poke(&k.0, 24, &(1u64 << 40).to_le_bytes()); // total_size
    let err = open_quick(&k.0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupted {
                what: "header checksum"
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_garbage_state_word_is_corrupted() {
    let k = Kept::new(64);
    poke(&k.0, 12, &0xdead_beefu32.to_le_bytes());
    let err = open_quick(&k.0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupted {
                what: "header state word"
            }
        ),
        "{err:?}"
    );
}

#[repr(C)]
struct A {
    x: AtomicU64,
}
// SAFETY: repr(C); only an atomic.
unsafe impl ShmSafe for A {}

#[repr(C)]
struct B {
    x: SharedCell<u64>,
}
// SAFETY: repr(C); only a SharedCell of Pod.
unsafe impl ShmSafe for B {}

#[test]
fn another_layout_is_a_layout_mismatch() {
    let name = unique_name("layout");
    let _a = Shm::<A>::create(&name, |_| {}).unwrap();
    let err = Shm::<B>::open(&name).unwrap_err();
    assert!(
        matches!(err, Error::LayoutMismatch { found, expected }
            if found == LayoutId::of::<A>().to_raw() && expected == LayoutId::of::<B>().to_raw()),
        "{err:?}"
    );
    let err = Region::open(&name).unwrap_err();
    assert!(matches!(err, Error::LayoutMismatch { .. }), "{err:?}");
    let err = Shm::<A>::from_region(
        RegionOptions::new()
            .layout(LayoutId::of::<A>())
            .open(&name)
            .unwrap(),
    );
    assert!(err.is_ok());
}

#[test]
fn another_size_is_refused_when_a_size_is_asked() {
    let name = unique_name("size");
    let _r = Region::create(&name, 64).unwrap();
    let err = RegionOptions::new().size(128).open(&name).unwrap_err();
    assert!(
        matches!(err, Error::InvalidSize { size: 64, .. }),
        "{err:?}"
    );
    let err = Region::open_or_create(&name, 32).unwrap_err();
    assert!(
        matches!(err, Error::InvalidSize { size: 64, .. }),
        "{err:?}"
    );
    assert_eq!(Region::open_or_create(&name, 64).unwrap().len(), 64);
}

/// Creates `name` on another thread whose `init` holds the region
/// unpublished for `hold`; returns once the object exists.
fn slow_creator(name: &str, hold: Duration) -> std::thread::JoinHandle<Region> {
    let n = name.to_owned();
    let t = std::thread::spawn(move || {
        RegionOptions::new()
            .size(64)
            .create_with(&n, |_| {
                std::thread::sleep(hold);
                Ok(())
            })
            .unwrap()
    });
    common::wait_until(Duration::from_secs(10), "the object", || {
        std::path::Path::new(&path(name)).exists()
    });
    t
}

#[test]
fn a_creator_still_initializing_past_the_timeout_is_a_timeout() {
    let name = unique_name("slow");
    let creator = slow_creator(&name, Duration::from_millis(400));
    let t = Instant::now();
    let err = RegionOptions::new()
        .timeout(Duration::from_millis(80))
        .open(&name)
        .unwrap_err();
    let elapsed = t.elapsed();
    assert!(
        matches!(err, Error::InitTimeout { waited } if waited >= Duration::from_millis(80)),
        "{err:?}"
    );
    assert!(elapsed >= Duration::from_millis(80));
    // A zero timeout looks once.
    let err = RegionOptions::new()
        .timeout(Duration::ZERO)
        .open(&name)
        .unwrap_err();
    assert!(matches!(err, Error::InitTimeout { .. }), "{err:?}");
    // And a longer one sees it published.
    let r = RegionOptions::new()
        .timeout(Duration::from_secs(10))
        .open(&name)
        .unwrap();
    assert_eq!(r.creator_pid(), std::process::id());
    drop(creator.join().unwrap());
}

#[test]
fn an_object_nobody_is_initializing_is_stale() {
    // Zero-filled and unlocked: a creator that died after ftruncate.
    let name = foreign_object(&[0; 4096]);
    let err = RegionOptions::new()
        .timeout(Duration::from_secs(5))
        .open(&name)
        .unwrap_err();
    assert!(matches!(err, Error::CreatorDied { pid: 0 }), "{err:?}");
    // Empty and unlocked: a creator that died right after O_EXCL.
    set_len(&name, 0);
    let err = RegionOptions::new()
        .timeout(Duration::from_secs(5))
        .open(&name)
        .unwrap_err();
    assert!(matches!(err, Error::CreatorDied { pid: 0 }), "{err:?}");
    // open_or_create replaces it.
    let r = Region::open_or_create(&name, 64).unwrap();
    assert!(r.created());
    assert_eq!(r.len(), 64);
}

#[test]
fn an_init_that_fails_removes_the_half_made_region() {
    let name = unique_name("initfail");
    let err = RegionOptions::new()
        .size(64)
        .keep(true)
        .create_with(&name, |_| {
            Err(Error::Corrupted {
                what: "refused by init",
            })
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupted {
                what: "refused by init"
            }
        ),
        "{err:?}"
    );
    assert!(matches!(Region::open(&name), Err(Error::NotFound { .. })));
}

#[test]
fn a_region_owned_by_another_user_is_refused() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: changing an object's owner needs root");
        return;
    }
    let k = Kept::new(64);
    std::os::unix::fs::chown(path(&k.0), Some(65534), None).unwrap();
    let err = open_quick(&k.0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ForeignOwner {
                owner: 65534,
                expected: 0
            }
        ),
        "{err:?}"
    );
    // The uid in the header must also match the object's owner.
    std::os::unix::fs::chown(path(&k.0), Some(0), None).unwrap();
    poke(&k.0, 44, &65534u32.to_le_bytes());
    let err = open_quick(&k.0).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err:?}");
}

fn memfd(bytes: &[u8], seal: bool) -> OwnedFd {
    use rustix::fs::{fcntl_add_seals, memfd_create, MemfdFlags, SealFlags};
    let fd = memfd_create("t", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
    let f = std::fs::File::from(fd);
    f.write_all_at(bytes, 0).unwrap();
    if seal {
        fcntl_add_seals(&f, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL).unwrap();
    }
    f.into()
}

#[test]
fn an_unsealed_descriptor_is_refused() {
    let err = RegionOptions::new()
        .from_fd(memfd(&[0; 256], false))
        .unwrap_err();
    assert!(matches!(err, Error::NotSealed), "{err:?}");
}

#[test]
fn sealed_descriptors_are_validated_like_names() {
    let err = RegionOptions::new()
        .timeout(QUICK)
        .from_fd(memfd(&[0x5A; 512], true))
        .unwrap_err();
    assert!(matches!(err, Error::NotShmkit { .. }), "{err:?}");
    let err = RegionOptions::new()
        .timeout(QUICK)
        .from_fd(memfd(&[0; 16], true))
        .unwrap_err();
    assert!(matches!(err, Error::TooSmall { size: 16, .. }), "{err:?}");
}

#[test]
fn placement_is_checked_for_bounds_and_alignment() {
    let r = Region::anonymous(64).unwrap();
    // SAFETY (every raw copy below): one thread, and the only reference to
    // the region's bytes is a slice of atomics, which a write may overwrite.
    assert!(matches!(
        unsafe { r.read::<u64>(60) },
        Err(Error::OutOfBounds {
            offset: 60,
            size: 8,
            len: 64
        })
    ));
    assert!(matches!(
        unsafe { r.read::<u64>(usize::MAX - 2) },
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        unsafe { r.read::<u64>(4) },
        Err(Error::Misaligned {
            offset: 4,
            align: 8
        })
    ));
    assert!(matches!(
        unsafe { r.write::<u32>(62, &1) },
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        r.place::<AtomicU64>(3),
        Err(Error::Misaligned {
            offset: 3,
            align: 8
        })
    ));
    assert!(matches!(
        r.place_slice::<AtomicU64>(0, 9),
        Err(Error::OutOfBounds { size: 72, .. })
    ));
    assert!(matches!(
        r.place_slice::<AtomicU64>(0, usize::MAX),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        unsafe { r.write_bytes(60, &[0; 5]) },
        Err(Error::OutOfBounds { .. })
    ));
    assert_eq!(r.place_slice::<AtomicU64>(0, 8).unwrap().len(), 8);
    unsafe { r.write_bytes(60, &[1, 2, 3, 4]) }.unwrap();
    let mut back = [0u8; 4];
    unsafe { r.read_bytes(60, &mut back) }.unwrap();
    assert_eq!(back, [1, 2, 3, 4]);
}

#[test]
fn a_size_too_large_to_map_is_refused() {
    let err = Region::anonymous(usize::MAX).unwrap_err();
    assert!(matches!(err, Error::InvalidSize { .. }), "{err:?}");
    let err = RegionOptions::new().anonymous().unwrap_err();
    assert!(matches!(err, Error::InvalidSize { .. }), "{err:?}");
}

#[test]
fn a_missing_inherited_descriptor_is_an_error() {
    // SAFETY: the variable is unset, so no descriptor is taken over.
    let err = unsafe { RegionOptions::new().from_env("SHMKIT_TEST_UNSET_VARIABLE") }.unwrap_err();
    assert!(matches!(err, Error::Io { op: "from_env", .. }), "{err:?}");
}
