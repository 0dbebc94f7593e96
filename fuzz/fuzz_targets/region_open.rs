//! Opens arbitrary bytes as a region, through both public entry points:
//! a memfd handed to `RegionOptions::from_fd`, and a POSIX shm name handed to
//! `RegionOptions::open`. Opening must return `Ok` or an `Err` (any variant);
//! a panic, a crash (SIGBUS, SIGSEGV) or a hang is a bug.
//!
//! On top of "no crash", the target checks two oracles and panics when
//! either fails:
//! - it predicts from the bytes it wrote whether the header is valid (the
//!   checks in `src/region/mod.rs` and `header.rs`), and `open` must succeed
//!   exactly when it is;
//! - on success, every access at a fuzzer-chosen offset must succeed exactly
//!   when it is in bounds and aligned (and, for a placement, agrees with the
//!   earlier placements it overlaps: the same type, a whole number of
//!   values apart), and must see the bytes written to the object (or by
//!   earlier accesses).
//!
//! Input layout (bytes past the end read as zero, so every input is used):
//!
//! ```text
//! offset  len  meaning
//!      0    1  flags (F_*)
//!      1    1  seal flags (S_*), memfd only
//!      2    1  repair flags (R_*), with F_REPAIR
//!      3    1  misc flags (M_*)
//!      4    8  object size selector, u64 LE (with F_RESIZE)
//!     12    8  layout option selector, u64 LE (with F_LAYOUT)
//!     20    8  size option selector, u64 LE (with F_SIZE)
//!     28   32  four accesses, 8 bytes each:
//!              offset u32 LE, kind u8, len u16 LE, arg u8
//!     60    -  the object's contents (header at 0, data after the participant table)
//! ```
//!
//! `fuzz/seeds.py` writes a few seed inputs in this format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustix::fs::{MemfdFlags, Mode, SealFlags};
use shmkit::{LayoutId, Region, RegionOptions, SharedCell};
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Open by name (shm_open) instead of a memfd.
const F_NAMED: u8 = 1 << 0;
/// Write a valid magic, version 1, state READY and the checksum of the
/// other header fields as they are in the input (R_* adjust this), so the
/// fuzzer gets past the checksum.
const F_REPAIR: u8 = 1 << 1;
/// memfd: add no seals at all.
const F_UNSEALED: u8 = 1 << 2;
/// Set `RegionOptions::layout` from the layout selector.
const F_LAYOUT: u8 = 1 << 3;
/// Set `RegionOptions::size` from the size selector.
const F_SIZE: u8 = 1 << 4;
/// ftruncate the object to the selected size (else: the input's length).
const F_RESIZE: u8 = 1 << 5;

/// memfd: also add F_SEAL_WRITE.
const S_WRITE: u8 = 1 << 0;
/// memfd: also add F_SEAL_FUTURE_WRITE.
const S_FUTURE_WRITE: u8 = 1 << 1;
/// memfd: leave out F_SEAL_SHRINK.
const S_NO_SHRINK: u8 = 1 << 2;
/// memfd: leave out F_SEAL_GROW.
const S_NO_GROW: u8 = 1 << 3;
/// memfd: leave out F_SEAL_SEAL.
const S_NO_SEAL_SEAL: u8 = 1 << 4;
/// memfd: create without MFD_ALLOW_SEALING.
const S_NO_ALLOW_SEALING: u8 = 1 << 5;

/// Keep the input's magic.
const R_KEEP_MAGIC: u8 = 1 << 0;
/// Keep the input's version (it is still checksummed).
const R_KEEP_VERSION: u8 = 1 << 1;
/// Keep the input's state word.
const R_KEEP_STATE: u8 = 1 << 2;
/// Keep the input's checksum.
const R_KEEP_CHECKSUM: u8 = 1 << 3;
/// total_size = the object's size.
const R_FIX_TOTAL: u8 = 1 << 4;
/// data_offset = the data's offset (after the participant table).
const R_FIX_OFFSET: u8 = 1 << 5;
/// creator_uid = this process's euid.
const R_FIX_UID: u8 = 1 << 6;

/// Give the object to another user (root only), for `ForeignOwner`.
const M_CHOWN: u8 = 1 << 0;
/// The uid `M_CHOWN` gives the object to (`nobody`).
const OTHER_UID: u32 = 65534;

const PREFIX: usize = 60;
const HEADER: usize = 128;
/// Where the data starts: after the header and the participant table.
const DATA: usize = HEADER + 8192;
const MAGIC: u64 = u64::from_le_bytes(*b"shmkit\0R");
const VERSION: u32 = 2;
const READY: u32 = 2;
const ABANDONED: u32 = 3;
/// Largest object the size selector picks: big enough to span many pages,
/// small enough to keep an iteration fast (pages are only touched when read).
const MAX_SIZE: u64 = 64 << 20;
/// Largest single `read_bytes` / `write_bytes`.
const MAX_IO: usize = 4096;

/// Reads the input; bytes past its end are zero.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&self, at: usize) -> u8 {
        self.0.get(at).copied().unwrap_or(0)
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.u8(at), self.u8(at + 1)])
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(std::array::from_fn(|i| self.u8(at + i)))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|i| self.u8(at + i)))
    }
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// FNV-1a 64, as `src/region/layout.rs`.
fn fnv(words: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        for b in w.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The header checksum over the fields as they are in `b` (>= 60 bytes).
fn checksum(b: &[u8]) -> u64 {
    fnv(&[
        MAGIC,
        u64::from(get_u32(b, 8)),
        get_u64(b, 16),
        get_u64(b, 24),
        get_u64(b, 32),
        u64::from(get_u32(b, 40)),
        u64::from(get_u32(b, 44)),
        u64::from(get_u32(b, 56)),
    ])
}

fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// One shm name per process, reused every iteration.
fn shm_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("/shmkit-fuzz-{}", std::process::id()))
}

/// The object's size in bytes, from the selector.
fn object_size(sel: u64, written: usize) -> u64 {
    let v = sel >> 2;
    match sel & 3 {
        // 0..=255: empty, below the header, just above it.
        0 => v % 256,
        // A header and up to 16 KiB of data.
        1 => DATA as u64 + v % (16 << 10),
        // Around what was written: cut it a little, or zero-extend it.
        2 => (written as i64 + i64::from(v as i8)).max(0) as u64,
        _ => v % (MAX_SIZE + 1),
    }
}

/// What the object holds: the input bytes, cut or zero-extended to `size`.
struct Image<'a> {
    bytes: &'a [u8],
    size: u64,
}

impl Image<'_> {
    fn byte(&self, at: u64) -> u8 {
        assert!(at < self.size);
        usize::try_from(at)
            .ok()
            .and_then(|i| self.bytes.get(i))
            .copied()
            .unwrap_or(0)
    }
    fn u32(&self, at: u64) -> u32 {
        u32::from_le_bytes(std::array::from_fn(|i| self.byte(at + i as u64)))
    }
    fn u64(&self, at: u64) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|i| self.byte(at + i as u64)))
    }
}

/// What opening should do, from the object's contents and seals; `Err`
/// names the check that should fail (informational: only Ok-vs-Err is
/// asserted, any error variant is acceptable).
fn predict(
    img: &Image<'_>,
    owner: u32,
    seals: Option<SealFlags>,
    layout: LayoutId,
    size_opt: Option<usize>,
) -> Result<(), &'static str> {
    let required = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
    if let Some(s) = seals {
        if !s.contains(required) {
            return Err("NotSealed");
        }
    }
    if owner != euid() {
        return Err("ForeignOwner");
    }
    if img.size == 0 {
        return Err("InitTimeout");
    }
    if img.size < HEADER as u64 {
        return Err("TooSmall");
    }
    if let Some(s) = seals {
        // A shared writable mapping of a write-sealed memfd is refused.
        if s.intersects(SealFlags::WRITE | SealFlags::FUTURE_WRITE) {
            return Err("Io");
        }
    }
    let magic = img.u64(0);
    let state = img.u32(12);
    if magic != 0 && magic != MAGIC {
        return Err("NotShmkit");
    }
    match state {
        READY => {
            if magic != MAGIC {
                return Err("NotShmkit");
            }
            if img.u32(8) != VERSION {
                return Err("VersionMismatch");
            }
            let b: Vec<u8> = (0..60).map(|i| img.byte(i)).collect();
            if get_u64(&b, 48) != checksum(&b) {
                return Err("Corrupted");
            }
        }
        // Not ready: nobody holds a named object's creator lock, so its
        // creator counts as dead; a memfd times out at once (timeout zero).
        0 | 1 if seals.is_none() => return Err("CreatorDied"),
        0 | 1 => return Err("InitTimeout"),
        ABANDONED => return Err("CreatorDied"),
        _ if magic == MAGIC => return Err("Corrupted"),
        _ => return Err("NotShmkit"),
    }
    let total = img.u64(24);
    if total > img.size {
        return Err("Truncated");
    }
    if total < img.size {
        return Err("Corrupted");
    }
    if img.u64(32) != DATA as u64 || total < DATA as u64 {
        return Err("Corrupted");
    }
    if img.u32(44) != owner {
        return Err("Corrupted");
    }
    if img.u64(16) != layout.to_raw() {
        return Err("LayoutMismatch");
    }
    if size_opt.is_some_and(|s| s as u64 != img.size - DATA as u64) {
        return Err("InvalidSize");
    }
    Ok(())
}

/// Fills and sizes the object, and gives it away if asked; returns it and
/// its owner.
fn write_object(fd: OwnedFd, bytes: &[u8], resize: Option<u64>, chown: bool) -> (OwnedFd, u32) {
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes).expect("write to shm object");
    if let Some(size) = resize {
        file.set_len(size).expect("ftruncate shm object");
    }
    let fd = OwnedFd::from(file);
    if chown {
        // Fails (EPERM) unless root; the owner read back is what counts.
        let _ = rustix::fs::fchown(&fd, Some(rustix::process::Uid::from_raw(OTHER_UID)), None);
    }
    let owner = rustix::fs::fstat(&fd).expect("fstat").st_uid;
    (fd, owner)
}

/// Exercises an opened region and checks what it sees against the image.
/// Whether a placement failed because it conflicts with an earlier one.
fn is_conflict<T>(r: &Result<T, shmkit::Error>) -> bool {
    matches!(r, Err(shmkit::Error::PlacementConflict { .. }))
}

fn exercise(region: &Region, img: &Image<'_>, input: &Input<'_>) {
    let len = region.len();
    assert_eq!(
        len as u64,
        img.size - DATA as u64,
        "len() is not the object's data size"
    );
    assert_eq!(region.is_empty(), len == 0);
    assert_eq!(region.layout().to_raw(), img.u64(16));
    assert_eq!(region.creator_pid(), img.u32(40));
    assert_eq!(region.creator_uid(), img.u32(44));
    assert!(!region.created());

    // Bytes written through the region so far, by data offset.
    let mut written: HashMap<usize, u8> = HashMap::new();
    let expect = |written: &HashMap<usize, u8>, at: usize| -> u8 {
        written
            .get(&at)
            .copied()
            .unwrap_or_else(|| img.byte((DATA + at) as u64))
    };
    let fits = |off: usize, size: usize, align: usize| {
        off.checked_add(size).is_some_and(|end| end <= len) && off.is_multiple_of(align)
    };
    // What the region has placed: start, end, type (0 SharedCell<u64>, 1
    // AtomicU64, 2 AtomicU32), value size. A placement that overlaps one
    // of another type, or of its type off its value boundaries, conflicts.
    let mut placed: Vec<(usize, usize, u8, usize)> = Vec::new();
    let mut place = |off: usize, size: usize, ty: u8, stride: usize| -> bool {
        let clash = size > 0
            && placed.iter().any(|&(s, e, t, st)| {
                s < off + size && off < e && (t != ty || st != stride || s.abs_diff(off) % st != 0)
            });
        if !clash && size > 0 {
            placed.push((off, off + size, ty, stride));
        }
        !clash
    };
    // SAFETY (every raw copy in this target): one thread uses the region,
    // and the only references to its bytes are the atomics and shared
    // cells placed below, which raw copies may overwrite; none is used
    // while a copy runs.
    if len > 0 {
        let mut last = [0u8];
        unsafe { region.read_bytes(len - 1, &mut last) }.expect("last byte");
        assert_eq!(last[0], expect(&written, len - 1), "last byte");
        assert_eq!(
            unsafe { region.read::<u8>(len - 1) }.expect("last byte"),
            last[0]
        );
        let mut first = [0u8];
        unsafe { region.read_bytes(0, &mut first) }.expect("first byte");
        assert_eq!(first[0], expect(&written, 0), "first byte");
    }
    // Never in bounds, whatever the length.
    assert!(unsafe { region.read::<u8>(len) }.is_err());
    assert!(unsafe { region.read_bytes(usize::MAX, &mut [0u8; 2]) }.is_err());

    for op in 0..4 {
        let at = 26 + op * 8;
        let raw = input.u32(at) as usize;
        let kind = input.u8(at + 4);
        let n = usize::from(input.u16(at + 5)) % (MAX_IO + 1);
        let arg = input.u8(at + 7);
        let off = match kind >> 6 {
            0 => raw,
            // Counted back from the end (wraps to huge past the start).
            1 => len.wrapping_sub(raw),
            2 => usize::MAX - raw,
            _ => raw.wrapping_mul(4096),
        };
        match kind & 7 {
            0 => {
                let r = unsafe { region.read::<u64>(off) };
                assert_eq!(
                    r.is_ok(),
                    fits(off, 8, 8),
                    "read::<u64>({off}) of {len}: {r:?}"
                );
                if let Ok(v) = r {
                    let want =
                        u64::from_le_bytes(std::array::from_fn(|i| expect(&written, off + i)));
                    assert_eq!(v, want, "read::<u64>({off})");
                }
            }
            1 => {
                let r = region.place::<SharedCell<u64>>(off);
                let fit = fits(off, 8, 8);
                let free = fit && place(off, 8, 0, 8);
                assert_eq!(r.is_ok(), free, "place::<SharedCell<u64>>({off}) of {len}");
                assert_eq!(is_conflict(&r), fit && !free, "{r:?}");
                if let Ok(cell) = r {
                    let want =
                        u64::from_le_bytes(std::array::from_fn(|i| expect(&written, off + i)));
                    assert_eq!(cell.get(), want, "SharedCell::get at {off}");
                    if arg & 1 != 0 {
                        let v = u64::from(arg).wrapping_mul(0x0101_0101_0101_0101);
                        cell.set(v);
                        for (i, b) in v.to_le_bytes().into_iter().enumerate() {
                            written.insert(off + i, b);
                        }
                    }
                }
            }
            2 => {
                let mut buf = vec![0u8; n];
                let r = unsafe { region.read_bytes(off, &mut buf) };
                assert_eq!(
                    r.is_ok(),
                    fits(off, n, 1),
                    "read_bytes({off}, {n}) of {len}"
                );
                if r.is_ok() {
                    for (i, b) in buf.iter().enumerate() {
                        assert_eq!(*b, expect(&written, off + i), "read_bytes byte {}", off + i);
                    }
                }
            }
            3 => {
                let buf = vec![arg; n];
                let r = unsafe { region.write_bytes(off, &buf) };
                assert_eq!(
                    r.is_ok(),
                    fits(off, n, 1),
                    "write_bytes({off}, {n}) of {len}"
                );
                if r.is_ok() {
                    for i in 0..n {
                        written.insert(off + i, arg);
                    }
                }
            }
            4 => {
                let v = u64::from(arg).wrapping_mul(0x0001_0001_0001_0001);
                let r = unsafe { region.write::<u64>(off, &v) };
                assert_eq!(r.is_ok(), fits(off, 8, 8), "write::<u64>({off}) of {len}");
                if r.is_ok() {
                    for (i, b) in v.to_le_bytes().into_iter().enumerate() {
                        written.insert(off + i, b);
                    }
                    assert_eq!(unsafe { region.read::<u64>(off) }.unwrap(), v);
                }
            }
            5 => {
                // Counts that overflow `count * 8` as well as small ones.
                let count = if arg & 1 != 0 {
                    usize::MAX >> (usize::from(arg >> 1) % 64)
                } else {
                    n
                };
                let r = region.place_slice::<AtomicU64>(off, count);
                let fit = count.checked_mul(8).is_some_and(|size| fits(off, size, 8));
                let free = fit && place(off, count * 8, 1, 8);
                assert_eq!(
                    r.is_ok(),
                    free,
                    "place_slice::<AtomicU64>({off}, {count}) of {len}"
                );
                assert_eq!(is_conflict(&r), fit && !free, "{r:?}");
                if let Ok(s) = r {
                    assert_eq!(s.len(), count);
                    if let Some(last) = s.last() {
                        let at = off + (count - 1) * 8;
                        let want =
                            u64::from_le_bytes(std::array::from_fn(|i| expect(&written, at + i)));
                        assert_eq!(last.load(Ordering::Relaxed), want);
                    }
                }
            }
            6 => {
                let r = unsafe { region.read::<u8>(off) };
                assert_eq!(r.is_ok(), fits(off, 1, 1), "read::<u8>({off}) of {len}");
                if let Ok(v) = r {
                    assert_eq!(v, expect(&written, off));
                }
            }
            _ => {
                let r = region.place::<AtomicU32>(off);
                let fit = fits(off, 4, 4);
                let free = fit && place(off, 4, 2, 4);
                assert_eq!(r.is_ok(), free, "place::<AtomicU32>({off}) of {len}");
                assert_eq!(is_conflict(&r), fit && !free, "{r:?}");
                if let Ok(a) = r {
                    let want =
                        u32::from_le_bytes(std::array::from_fn(|i| expect(&written, off + i)));
                    assert_eq!(a.load(Ordering::Relaxed), want);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input(data);
    let flags = input.u8(0);
    let seal = input.u8(1);
    let repair = input.u8(2);
    let misc = input.u8(3);
    let mut bytes = data.get(PREFIX..).unwrap_or_default().to_vec();

    let size = if flags & F_RESIZE != 0 {
        object_size(input.u64(4), bytes.len())
    } else {
        bytes.len() as u64
    };

    if flags & F_REPAIR != 0 {
        if bytes.len() < 60 {
            bytes.resize(60, 0);
        }
        if repair & R_KEEP_MAGIC == 0 {
            bytes[0..8].copy_from_slice(&MAGIC.to_le_bytes());
        }
        if repair & R_KEEP_VERSION == 0 {
            bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
        }
        if repair & R_KEEP_STATE == 0 {
            bytes[12..16].copy_from_slice(&READY.to_le_bytes());
        }
        if repair & R_FIX_TOTAL != 0 {
            let total = if flags & F_RESIZE != 0 {
                size
            } else {
                bytes.len() as u64
            };
            bytes[24..32].copy_from_slice(&total.to_le_bytes());
        }
        if repair & R_FIX_OFFSET != 0 {
            bytes[32..40].copy_from_slice(&(DATA as u64).to_le_bytes());
        }
        if repair & R_FIX_UID != 0 {
            bytes[44..48].copy_from_slice(&euid().to_le_bytes());
        }
        if repair & R_KEEP_CHECKSUM == 0 {
            let sum = checksum(&bytes);
            bytes[48..56].copy_from_slice(&sum.to_le_bytes());
        }
    }
    let resize = (flags & F_RESIZE != 0).then_some(size);
    let size = resize.unwrap_or(bytes.len() as u64);
    let img = Image {
        bytes: &bytes,
        size,
    };

    let mut opts = RegionOptions::new().timeout(Duration::ZERO);
    let mut layout = LayoutId::BYTES;
    if flags & F_LAYOUT != 0 {
        let sel = input.u64(12);
        layout = match sel & 3 {
            0 => LayoutId::BYTES,
            1 => LayoutId::of::<u64>(),
            2 => LayoutId::from_raw(sel),
            // Whatever the header says, so the layout check can pass.
            _ if size >= 24 => LayoutId::from_raw(img.u64(16)),
            _ => LayoutId::from_raw(sel),
        };
        opts = opts.layout(layout);
    }
    let mut size_opt = None;
    if flags & F_SIZE != 0 {
        let sel = input.u64(20);
        let s = if sel & 1 == 0 {
            size.saturating_sub(DATA as u64) as usize
        } else {
            (sel >> 1) as usize
        };
        size_opt = Some(s);
        opts = opts.size(s);
    }

    let chown = misc & M_CHOWN != 0;
    let (result, owner, seals) = if flags & F_NAMED == 0 {
        let mut mflags = MemfdFlags::CLOEXEC;
        if seal & S_NO_ALLOW_SEALING == 0 {
            mflags |= MemfdFlags::ALLOW_SEALING;
        }
        let fd = rustix::fs::memfd_create("shmkit-fuzz", mflags).expect("memfd_create");
        let (fd, owner) = write_object(fd, &bytes, resize, chown);
        if flags & F_UNSEALED == 0 {
            let mut want = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
            if seal & S_NO_SHRINK != 0 {
                want.remove(SealFlags::SHRINK);
            }
            if seal & S_NO_GROW != 0 {
                want.remove(SealFlags::GROW);
            }
            if seal & S_NO_SEAL_SEAL != 0 {
                want.remove(SealFlags::SEAL);
            }
            if seal & S_WRITE != 0 {
                want |= SealFlags::WRITE;
            }
            if seal & S_FUTURE_WRITE != 0 {
                want |= SealFlags::FUTURE_WRITE;
            }
            // Fails (EPERM) without MFD_ALLOW_SEALING; the seals read back
            // below are what counts.
            let _ = rustix::fs::fcntl_add_seals(&fd, want);
        }
        let seals = rustix::fs::fcntl_get_seals(&fd).unwrap_or(SealFlags::empty());
        (opts.from_fd(fd), owner, Some(seals))
    } else {
        let name = shm_name();
        let fd = rustix::shm::open(
            name,
            rustix::shm::OFlags::CREATE | rustix::shm::OFlags::RDWR | rustix::shm::OFlags::TRUNC,
            Mode::RUSR | Mode::WUSR,
        )
        .expect("shm_open");
        let (fd, owner) = write_object(fd, &bytes, resize, chown);
        drop(fd);
        (opts.open(name), owner, None)
    };

    let predicted = predict(&img, owner, seals, layout, size_opt);
    match (&result, predicted) {
        (Ok(region), Ok(())) => {
            if flags & F_NAMED != 0 {
                assert_eq!(region.name(), Some(shm_name()));
            } else {
                assert_eq!(region.name(), None);
            }
            exercise(region, &img, &input);
        }
        (Err(_), Err(_)) => {}
        (Ok(_), Err(why)) => panic!("opened an object that should fail ({why})"),
        (Err(e), Ok(())) => panic!("refused a valid region: {e:?}"),
    }
    drop(result);
    if flags & F_NAMED != 0 {
        let _ = rustix::shm::unlink(shm_name());
    }
});
