//! Runs sequences of loans, releases, reclaims and scribbles on a block
//! pool (`shmkit::pool`) in an anonymous region, through several views of
//! it, and checks every result against a model of who owns each block.
//! Any mismatch panics.
//!
//! Three region handles of the pool's memfd are live participants, each
//! with a participant token of its own: handle 0 (the creator's) has two
//! views (views 0 and 1, one token, one mapping), handles 1 and 2 one view
//! each (views 2 and 3). A fourth handle never opens the pool: it plays a
//! misbehaving peer, and reads and writes the pool's control words (its
//! header, state words, holders words and bitmap words, never a block's
//! bytes). Other participants come and go within one operation: a *ghost*
//! opens a handle and a view of its own, loans a few blocks, keeps each as
//! a `Loan` it forgets or as a `BlockRef` (or drops it), and dies (its
//! handle is dropped) with what it kept still owned, so that later loans
//! take those blocks over and `reclaim` frees them; a *transient view*
//! opens one more view on a live handle (its token), loans, and is
//! dropped (a `Loan` it forgot stays lent to that live token for good).
//!
//! The model keeps, per block, its expected state word (`free(g)`,
//! `lent(t, g)`, `held(t, g)` of `src/pool/state.rs`, tokens learned from
//! the words the first loans write) and owner: free, lent to a live view
//! as a `Loan`, held by a live handle as a `BlockRef`, a ghost's while it
//! runs, dead (a dead token's, lent or held), or leaked (a forgotten loan
//! of a live token). Every loan writes a pattern of its own into its bytes.
//! While no state or bitmap word has been scribbled on, the model is
//! exact and checks:
//! - a loan of `len` bytes takes the smallest class that holds it
//!   (`TooLarge` if none), succeeds exactly when that class has a free or
//!   a dead block, takes a free one if there is any (the free bitmap
//!   has every free block's bit) and else a dead one, with the
//!   generation one past the block's last; `Exhausted` otherwise;
//!   `loan_timeout(0)` answers the same, `Timeout` for `Exhausted`;
//! - no loan returns a block that is lent to a live `Loan` (any view) or
//!   held by a live handle;
//! - `into_block`, a loan's drop, `release_block` (of a held block's own
//!   name, one of another generation, a live loan's name, any block's,
//!   one out of range: predicted from the state word and the releasing
//!   handle's token) and `reclaim` (every dead block, counted) change
//!   the state words exactly as predicted; the bitmap words have the bit
//!   of every free block set (and may keep a loaned block's, a stale
//!   hint, but no bit past the last block), the holders words hold what
//!   was last written there;
//! - `free_blocks`, `block_size`, `block_count`, `block_offset` of every
//!   view agree with the model;
//! - every loan's pattern is intact when it is dropped, given up as a
//!   block or rewritten (and a held block's when it is released);
//! - a view opened after the header was scribbled on opens if the words
//!   `open` checks are intact (and may fail with `Corrupted` otherwise).
//!
//! Scribbles on the hint words, the signal and the holders words keep the
//! model exact (loans do not depend on them); so does one on any header
//! word for the views already open (they never read the header again).
//! A scribbled bitmap word only frees loans from taking free blocks
//! first. A scribbled state word ends the exact model: from then on
//! every result must still be typed (`TooLarge` and `NoSuchBlock` stay
//! exactly predicted), no loan may return a block that a live `Loan` in
//! this process covers, and the patterns of live loans must stay intact
//! (scribbles never touch block bytes).
//!
//! Input layout (bytes past the end read as zero):
//!
//! ```text
//! offset  len  meaning
//!      0    1  classes: 1 + b % 3; pool offset in the region: 128 * (b / 3 % 3)
//!      1   2k  per class: a size byte (step 64 * (1 + b % 4) past the last
//!              class, given up to 63 bytes short of it) and a count byte
//!              (1 + b % 72 blocks)
//!   1+2k    8  salt, u64 LE: mixed into every pattern
//!  9+2k    -   operations: an op byte, then its arguments
//! ```
//!
//! Operations (op byte % 14; a view byte picks view b % 4, an index byte
//! the (b % n)-th of n live loans or held blocks; nothing happens without
//! one):
//!
//! ```text
//!  0  try_loan             view, u16 LE length (% largest block + 65)
//!  1  try_loan_value       view, type byte (u64, [u64; 16], [u8; 200], [u8; 700])
//!  2  loan_timeout(0)      view, u16 LE length
//!  3  drop a loan          index
//!  4  into_block           index
//!  5  release_block        view, kind byte, index byte, u16 LE argument
//!  6  reclaim              view
//!  7  rewrite a loan       index (its pattern is checked, then replaced)
//!  8  ghost                count byte (% 5), then per loan: u16 LE length,
//!                          fate byte (% 3: keep as a block, forget, drop)
//!  9  scribble a state     class byte, u16 LE index, kind byte, u64 LE
//! 10  scribble a bitmap    class byte, word byte, kind byte, u64 LE
//! 11  scribble a holders   class byte, u16 LE index, u64 LE
//! 12  scribble the header  word byte (% 128), kind byte, u64 LE
//! 13  transient view       handle byte (% 3), u16 LE length, fate byte
//!                          (% 3: keep as a block, forget, drop); then
//!                          every view's sizes and counts are checked
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmkit::pool::{BlockRef, Loan, LoanError, LoanTimeoutError, Pool, PoolConfig, ReleaseError};
use shmkit::testing::pool as wire;
use shmkit::{Error, Region, RegionOptions};
use shmkit_fuzz::{fill, intact, Input};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Kinds of operation (the op byte modulo this).
const OPS: u8 = 14;
/// Live region handles; views 0 and 1 are handle 0's.
const HANDLES: usize = 3;
const VIEW_HANDLE: [usize; 4] = [0, 0, 1, 2];
/// Caps that keep one input's work bounded.
const MAX_OPS: usize = 2_000;
const MAX_GHOSTS: usize = 24;
const MAX_TIMED: usize = 16;
const MAX_LOANS: usize = 256;

const DETACHED: u64 = wire::DETACHED;

fn free(gen: u32) -> u64 {
    u64::from(gen) << 32
}
fn lent(token: u32, gen: u32) -> u64 {
    u64::from(gen) << 32 | u64::from(token)
}
fn held(token: u32, gen: u32) -> u64 {
    lent(token, gen) | DETACHED
}
fn gen_of(word: u64) -> u32 {
    (word >> 32) as u32
}
fn token_of(word: u64) -> u32 {
    (word & (DETACHED - 1)) as u32
}

/// Who owns a block, as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Free,
    /// A live `Loan` of view (or transient view) `v`; 4 + n for the n-th
    /// transient view.
    Lent(usize),
    /// Held as a `BlockRef` by live handle `h`.
    Held(usize),
    /// The running ghost's.
    Ghost,
    /// A dead participant's.
    Dead,
    /// A forgotten loan of a live token: nobody takes it again.
    Leaked,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    owner: Owner,
    /// The state word it should have.
    word: u64,
}

/// A live loan of one of the fixed views.
struct Live<'v> {
    view: usize,
    loan: Loan<'v>,
    seed: u64,
}

/// A block a live handle holds as a `BlockRef`.
struct Held {
    handle: usize,
    block: BlockRef,
    seed: u64,
    len: usize,
}

/// The bytes a live loan covers, and the block it names.
#[derive(Debug, Clone, Copy)]
struct Span {
    class: usize,
    index: usize,
    /// From the region data's start.
    offset: usize,
    len: usize,
}

impl Span {
    fn of(loan: &Loan<'_>) -> Self {
        Span {
            class: loan.class(),
            index: loan.index(),
            offset: loan.offset(),
            len: loan.len(),
        }
    }

    /// Whether two loans cover one block or share a byte.
    fn overlaps(&self, other: &Span) -> bool {
        (self.class, self.index) == (other.class, other.index)
            || (self.offset < other.offset + other.len && other.offset < self.offset + self.len)
    }
}

/// Who is loaning, for the model.
#[derive(Clone, Copy)]
enum Who {
    /// A fixed view (`VIEW_HANDLE` says whose token) or a transient view
    /// (4 + n) of handle `h`.
    View {
        view: usize,
        handle: usize,
    },
    Ghost,
}

struct Model {
    sizes: Vec<usize>,
    blocks: Vec<Vec<Block>>,
    holders: Vec<Vec<u64>>,
    /// Live handles' tokens, learned from the first state word each
    /// writes.
    tokens: [Option<u32>; HANDLES],
    /// Tokens of participants that died, and of the running ghost.
    dead: Vec<u32>,
    ghost: Option<u32>,
    /// No state word scribbled on: the model predicts everything.
    exact: bool,
    /// No bitmap word scribbled on: it names exactly the free blocks.
    bitmap_exact: bool,
    next_seed: u64,
    salt: u64,
}

impl Model {
    fn seed(&mut self) -> u64 {
        self.next_seed += 1;
        (self.next_seed ^ self.salt).wrapping_mul(0x2545_f491_4f6c_dd1d) | 1
    }

    /// The class a loan of `len` bytes takes, or `TooLarge`.
    fn class_for(&self, len: usize) -> Result<usize, LoanError> {
        self.sizes
            .iter()
            .position(|&s| s >= len)
            .ok_or(LoanError::TooLarge {
                len,
                max: *self.sizes.last().unwrap(),
            })
    }

    fn count(&self, class: usize, owner: Owner) -> usize {
        self.blocks[class]
            .iter()
            .filter(|b| b.owner == owner)
            .count()
    }

    /// A token seen in a state word a new participant wrote: well formed,
    /// and nobody else's.
    fn learn(&mut self, token: u32, who: Who) -> u32 {
        assert!(
            token != 0 && token <= wire::MAX_TOKEN,
            "a loan wrote token {token:#x}"
        );
        let known = self
            .tokens
            .iter()
            .flatten()
            .chain(&self.dead)
            .chain(&self.ghost);
        match who {
            Who::View { handle, .. } => match self.tokens[handle] {
                Some(t) => assert_eq!(t, token, "handle {handle}'s token changed"),
                None => {
                    assert!(
                        known.copied().all(|t| t != token),
                        "token {token:#x} reused"
                    );
                    self.tokens[handle] = Some(token);
                }
            },
            Who::Ghost => match self.ghost {
                Some(t) => assert_eq!(t, token, "the ghost's token changed"),
                None => {
                    assert!(
                        known.copied().all(|t| t != token),
                        "token {token:#x} reused"
                    );
                    self.ghost = Some(token);
                }
            },
        }
        token
    }
}

/// The pool's control words, as the scribbling handle sees them.
struct Words<'r> {
    header: &'r [AtomicU64],
    states: Vec<&'r [AtomicU64]>,
    holders: Vec<&'r [AtomicU64]>,
    bitmap: Vec<&'r [AtomicU64]>,
}

impl<'r> Words<'r> {
    fn new(region: &'r Region, offset: usize, counts: &[usize]) -> Self {
        let header: &[AtomicU64] = region
            .place_slice(offset, wire::HEADER_SIZE / 8)
            .expect("the pool header");
        let field = |c: usize, f: usize| {
            let w = header[(wire::CLASSES_OFFSET + c * wire::CLASS_STRIDE + f) / 8]
                .load(Ordering::SeqCst);
            offset + w as usize
        };
        let mut words = Words {
            header,
            states: Vec::new(),
            holders: Vec::new(),
            bitmap: Vec::new(),
        };
        for (c, &n) in counts.iter().enumerate() {
            let at = |f, len| region.place_slice(field(c, f), len).expect("a section");
            // Block entries of 16 bytes: the state word, then the
            // holders word (block `i`'s at word `2 i` of either slice).
            words.states.push(at(wire::CLASS_META_OFFSET, 2 * n));
            words
                .holders
                .push(at(wire::CLASS_HOLDERS_OFFSET, 2 * n - 1));
            words
                .bitmap
                .push(at(wire::CLASS_BITMAP_OFFSET, n.div_ceil(64)));
        }
        words
    }

    fn state(&self, class: usize, index: usize) -> u64 {
        self.states[class][2 * index].load(Ordering::SeqCst)
    }

    /// Indices of the header words `Pool::open` reads, for `classes`
    /// classes.
    fn checked(classes: usize) -> Vec<usize> {
        let mut w = vec![
            wire::MAGIC_OFFSET / 8,
            wire::VERSION_OFFSET / 8,
            wire::CLASS_COUNT_OFFSET / 8,
            wire::TOTAL_BYTES_OFFSET / 8,
        ];
        for c in 0..classes {
            for f in [
                wire::CLASS_BLOCK_SIZE,
                wire::CLASS_BLOCK_COUNT,
                wire::CLASS_META_OFFSET,
                wire::CLASS_BITMAP_OFFSET,
                wire::CLASS_DATA_OFFSET,
                wire::CLASS_HOLDERS_OFFSET,
            ] {
                w.push((wire::CLASSES_OFFSET + c * wire::CLASS_STRIDE + f) / 8);
            }
        }
        w
    }
}

/// Checks the result of a loan attempt of `len` bytes by `who` against
/// the model; on success records the block as `who`'s (`Owner::Lent` for
/// a view, `Owner::Ghost`) and returns its (class, index). `others` are
/// the blocks live loans cover.
fn on_loan(
    m: &mut Model,
    words: &Words<'_>,
    others: &[Span],
    len: usize,
    who: Who,
    trusted: bool,
    got: Result<&Loan<'_>, LoanError>,
) -> Option<(usize, usize)> {
    if let Ok(loan) = got {
        let span = Span::of(loan);
        if let Some(o) = others.iter().find(|o| o.overlaps(&span)) {
            panic!("a loan of {span:?} overlaps a live loan of {o:?}");
        }
    }
    if !trusted {
        // A view of a scribbled header: its classes may not be the
        // model's. Its answers need only be typed.
        match got {
            Ok(_) | Err(LoanError::Exhausted | LoanError::Corrupted(_)) => {}
            Err(LoanError::TooLarge { len: l, .. }) => assert_eq!(l, len),
            Err(e) => panic!("loan of {len}: {e:?}"),
        }
        return None;
    }
    let want = m.class_for(len);
    let class = match (want, got) {
        (Err(e), got) => {
            assert_eq!(got.as_ref().err(), Some(&e), "len {len}");
            return None;
        }
        (Ok(c), _) => c,
    };
    let (free, dead) = (m.count(class, Owner::Free), m.count(class, Owner::Dead));
    let loan = match got {
        Ok(loan) => loan,
        Err(LoanError::Exhausted) => {
            if m.exact {
                assert_eq!((free, dead), (0, 0), "exhausted with blocks to take");
            }
            return None;
        }
        Err(LoanError::Corrupted(w)) => {
            assert!(!m.exact, "corrupted without a scribble: {w}");
            return None;
        }
        Err(e) => panic!("loan of {len}: {e:?}"),
    };
    let (c, i) = (loan.class(), loan.index());
    assert_eq!((c, loan.len()), (class, len), "the loan's class and length");
    assert!(i < m.blocks[c].len(), "index {i} out of range");
    let before = m.blocks[c][i];
    let gen = loan.generation();
    let word = words.state(c, i);
    if m.exact {
        assert!(
            matches!(before.owner, Owner::Free | Owner::Dead),
            "loaned block {c}/{i} is {:?}",
            before.owner
        );
        if m.bitmap_exact && free > 0 {
            assert_eq!(
                before.owner,
                Owner::Free,
                "a dead block taken before a free one"
            );
        }
        assert_eq!(gen, gen_of(before.word).wrapping_add(1), "generation");
        assert_eq!(gen_of(word), gen, "the state word's generation");
        assert_eq!(word & DETACHED, 0, "a loan's word is not detached");
        let token = m.learn(token_of(word), who);
        assert_eq!(word, lent(token, gen));
    }
    m.blocks[c][i] = Block {
        owner: match who {
            Who::View { view, .. } => Owner::Lent(view),
            Who::Ghost => Owner::Ghost,
        },
        word,
    };
    Some((c, i))
}

/// The expected result of `release_block(b)` by handle `h`, from the
/// model's state word.
fn expect_release(m: &Model, b: BlockRef, h: usize) -> Result<(), ReleaseError> {
    let (c, i) = (b.class as usize, b.index as usize);
    let no_such = ReleaseError::NoSuchBlock {
        class: b.class,
        index: b.index,
    };
    let word = m
        .blocks
        .get(c)
        .and_then(|bs| bs.get(i))
        .ok_or(no_such)?
        .word;
    match m.tokens[h] {
        Some(t) if word == held(t, b.generation) => Ok(()),
        _ => Err(ReleaseError::NotHeld),
    }
}

/// Whether `e` is one of the pool's `Corrupted` errors.
fn corrupted(e: &Error) -> bool {
    matches!(e, Error::Corrupted { .. })
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let first = input.u8();
    let nclasses = 1 + first as usize % 3;
    let offset = 128 * (first as usize / 3 % 3);
    let mut classes = Vec::new();
    let mut prev = 0;
    for _ in 0..nclasses {
        let s = input.u8() as usize;
        let n = 1 + input.u8() as usize % 72;
        let rounded = prev + 64 * (1 + s % 4);
        classes.push((rounded - (s / 4) % 64, n));
        prev = rounded;
    }
    let salt = input.u64();
    let config = classes
        .iter()
        .fold(PoolConfig::new(), |c, &(s, n)| c.class(s, n));
    let bytes = Pool::bytes_for(&config).expect("a valid configuration");
    let creator = RegionOptions::new()
        .size(offset + bytes)
        .anonymous_with(|r| Pool::create(r, offset, &config).map(drop))
        .expect("the pool's region");
    let fd = || creator.as_fd().try_clone_to_owned().expect("dup");
    let handle = || {
        RegionOptions::new()
            .any_layout()
            .from_fd(fd())
            .expect("a handle")
    };
    let regions = [handle(), handle()];
    let scribbler = handle();
    let handles = [&creator, &regions[0], &regions[1]];
    let views: Vec<Pool<'_>> = VIEW_HANDLE
        .iter()
        .map(|&h| Pool::open(handles[h], offset).expect("a view"))
        .collect();
    let counts: Vec<usize> = classes.iter().map(|&(_, n)| n).collect();
    let sizes: Vec<usize> = classes
        .iter()
        .map(|&(s, _)| s.next_multiple_of(64))
        .collect();
    let max = *sizes.last().unwrap();
    let words = Words::new(&scribbler, offset, &counts);
    let header_at_start: Vec<u64> = words
        .header
        .iter()
        .map(|w| w.load(Ordering::SeqCst))
        .collect();
    let mut m = Model {
        sizes: sizes.clone(),
        blocks: counts
            .iter()
            .map(|&n| {
                vec![
                    Block {
                        owner: Owner::Free,
                        word: free(0),
                    };
                    n
                ]
            })
            .collect(),
        holders: counts.iter().map(|&n| vec![0; n]).collect(),
        tokens: [None; HANDLES],
        dead: Vec::new(),
        ghost: None,
        exact: true,
        bitmap_exact: true,
        next_seed: 0,
        salt,
    };
    let mut live: Vec<Live<'_>> = Vec::new();
    let mut held_blocks: Vec<Held> = Vec::new();
    let mut ghosts = 0;
    let mut timed = 0;
    let mut transients = 0;

    // The blocks live loans cover, `(class, index)`.
    let covered =
        |live: &[Live<'_>]| -> Vec<Span> { live.iter().map(|l| Span::of(&l.loan)).collect() };
    // Whether the header words a new view checks are what the creator
    // wrote.
    let header_intact = |words: &Words<'_>| {
        Words::checked(nclasses)
            .into_iter()
            .all(|w| words.header[w].load(Ordering::SeqCst) == header_at_start[w])
    };

    for _ in 0..MAX_OPS {
        if input.done() {
            break;
        }
        let op = input.u8() % OPS;
        match op {
            0..=2 => {
                let v = input.u8() as usize % views.len();
                let kind = if op == 1 { input.u8() % 4 } else { 0 };
                let len = match op {
                    1 => [8, 128, 200, 700][kind as usize],
                    _ => input.u16() as usize % (max + 65),
                };
                if live.len() >= MAX_LOANS || (op == 2 && timed >= MAX_TIMED) {
                    continue;
                }
                let view = &views[v];
                let got: Result<Loan<'_>, LoanError> = match op {
                    0 => view.try_loan(len),
                    1 => match kind {
                        0 => view.try_loan_value::<u64>().map(|mut t| {
                            *t = salt;
                            assert_eq!(*t, salt);
                            t.into_loan()
                        }),
                        1 => view.try_loan_value::<[u64; 16]>().map(|mut t| {
                            *t = [salt; 16];
                            assert_eq!(t.block().class as usize, m.class_for(128).unwrap());
                            t.into_loan()
                        }),
                        2 => view.try_loan_value::<[u8; 200]>().map(|t| t.into_loan()),
                        _ => view.try_loan_value::<[u8; 700]>().map(|t| t.into_loan()),
                    },
                    _ => {
                        timed += 1;
                        view.loan_timeout(len, Duration::ZERO).map_err(|e| match e {
                            LoanTimeoutError::Timeout => LoanError::Exhausted,
                            LoanTimeoutError::TooLarge { len, max } => {
                                LoanError::TooLarge { len, max }
                            }
                            LoanTimeoutError::Corrupted(w) => LoanError::Corrupted(w),
                            e => panic!("loan_timeout: {e:?}"),
                        })
                    }
                };
                let who = Who::View {
                    view: v,
                    handle: VIEW_HANDLE[v],
                };
                let others = covered(&live);
                if on_loan(
                    &mut m,
                    &words,
                    &others,
                    len,
                    who,
                    true,
                    got.as_ref().map_err(|e| *e),
                )
                .is_some()
                {
                    let mut loan = got.unwrap();
                    let seed = m.seed();
                    fill(&mut loan, seed);
                    live.push(Live {
                        view: v,
                        loan,
                        seed,
                    });
                }
            }
            3 | 4 | 7 => {
                if live.is_empty() {
                    continue;
                }
                let k = input.u8() as usize % live.len();
                let l = &live[k];
                let (c, i) = (l.loan.class(), l.loan.index());
                assert!(intact(&l.loan, l.seed), "loan {c}/{i}'s bytes changed");
                assert_eq!(l.loan.offset(), views[l.view].block_offset(c, i).unwrap());
                match op {
                    3 => {
                        let l = live.swap_remove(k);
                        let gen = l.loan.generation();
                        drop(l);
                        if m.exact {
                            assert_eq!(words.state(c, i), free(gen), "a dropped loan's word");
                        }
                        m.blocks[c][i] = Block {
                            owner: Owner::Free,
                            word: free(gen),
                        };
                    }
                    4 => {
                        let l = live.swap_remove(k);
                        let h = VIEW_HANDLE[l.view];
                        let len = l.loan.len();
                        let block = l.loan.into_block();
                        assert_eq!(
                            (block.class as usize, block.index as usize),
                            (c, i),
                            "into_block names its block"
                        );
                        let word = words.state(c, i);
                        if m.exact {
                            let t = m.tokens[h].expect("a loan taught the token");
                            assert_eq!(word, held(t, block.generation), "a held block's word");
                        }
                        m.blocks[c][i] = Block {
                            owner: Owner::Held(h),
                            word,
                        };
                        held_blocks.push(Held {
                            handle: h,
                            block,
                            seed: l.seed,
                            len,
                        });
                    }
                    _ => {
                        let seed = m.seed();
                        let l = &mut live[k];
                        fill(&mut l.loan, seed);
                        l.seed = seed;
                    }
                }
            }
            5 => {
                let v = input.u8() as usize % views.len();
                let h = VIEW_HANDLE[v];
                let kind = input.u8() % 6;
                let k = input.u8() as usize;
                let arg = input.u16();
                let pick = |c: u16| {
                    (
                        c as usize % nclasses,
                        arg as usize % counts[c as usize % nclasses],
                    )
                };
                let mut block = match kind {
                    0 | 1 if !held_blocks.is_empty() => {
                        let mut b = held_blocks[k % held_blocks.len()].block;
                        if kind == 1 {
                            b.generation = b.generation.wrapping_add(u32::from(arg | 1));
                        }
                        b
                    }
                    2 if !live.is_empty() => live[k % live.len()].loan.block(),
                    _ => {
                        let (c, i) = pick(k as u16);
                        BlockRef {
                            class: c as u32,
                            index: i as u32,
                            generation: gen_of(m.blocks[c][i].word),
                        }
                    }
                };
                match kind {
                    4 => block.index = (counts[block.class as usize] + arg as usize) as u32,
                    5 => block.class = (nclasses + arg as usize % 8) as u32,
                    _ => {}
                }
                let (c, i) = (block.class as usize, block.index as usize);
                // The bytes of a block this handle holds, before it lets go.
                let mine = held_blocks
                    .iter()
                    .position(|x| x.handle == h && x.block == block);
                if let (Some(p), true) = (mine, m.exact) {
                    let x = &held_blocks[p];
                    let mut buf = vec![0; x.len];
                    let at = views[v].block_offset(c, i).unwrap();
                    // SAFETY: a plain read of a held block's bytes, through
                    // the scribbling handle: no loan covers them (the exact
                    // model checked every loan against the held blocks) and
                    // no other thread runs.
                    unsafe { scribbler.read_bytes(at, &mut buf) }.expect("in the region");
                    assert!(intact(&buf, x.seed), "held block {c}/{i}'s bytes changed");
                }
                let got = views[v].release_block(block);
                let want = expect_release(&m, block, h);
                if m.exact {
                    assert_eq!(got, want, "release_block({block:?}) by handle {h}");
                } else {
                    match (&got, &want) {
                        (Err(ReleaseError::NoSuchBlock { .. }), _)
                        | (_, Err(ReleaseError::NoSuchBlock { .. })) => assert_eq!(got, want),
                        (Ok(()) | Err(ReleaseError::NotHeld | ReleaseError::Corrupted(_)), _) => {}
                        (Err(e), _) => panic!("release_block: {e:?}"),
                    }
                }
                if got.is_ok() {
                    m.blocks[c][i] = Block {
                        owner: Owner::Free,
                        word: free(block.generation),
                    };
                    if let Some(p) = held_blocks
                        .iter()
                        .position(|x| (x.block.class, x.block.index) == (block.class, block.index))
                    {
                        held_blocks.swap_remove(p);
                    }
                    assert!(!m.exact || mine.is_some(), "released a block nobody held");
                }
            }
            6 => {
                let v = input.u8() as usize % views.len();
                let got = views[v].reclaim();
                if m.exact {
                    let dead: usize = (0..nclasses).map(|c| m.count(c, Owner::Dead)).sum();
                    assert_eq!(got, Ok(dead), "reclaim by view {v}");
                    for c in 0..nclasses {
                        for b in m.blocks[c].iter_mut().filter(|b| b.owner == Owner::Dead) {
                            *b = Block {
                                owner: Owner::Free,
                                word: free(gen_of(b.word)),
                            };
                        }
                    }
                }
            }
            8 => {
                let n = input.u8() % 5;
                let plan: Vec<(usize, u8)> = (0..n)
                    .map(|_| (input.u16() as usize % (max + 65), input.u8() % 3))
                    .collect();
                if ghosts >= MAX_GHOSTS {
                    continue;
                }
                ghosts += 1;
                let intact_header = header_intact(&words);
                let region = handle();
                let pool = match Pool::open(&region, offset) {
                    Ok(p) => p,
                    Err(e) => {
                        assert!(!intact_header && corrupted(&e), "a ghost's open: {e}");
                        continue;
                    }
                };
                // Over a scribbled header it may see another layout than
                // the model's.
                let trusted = intact_header;
                if !trusted {
                    m.exact = false;
                }
                let mut mine: Vec<(Loan<'_>, u64)> = Vec::new();
                for (len, fate) in plan {
                    let got = pool.try_loan(len);
                    let mut others = covered(&live);
                    others.extend(mine.iter().map(|(l, _)| Span::of(l)));
                    let rec = on_loan(
                        &mut m,
                        &words,
                        &others,
                        len,
                        Who::Ghost,
                        trusted,
                        got.as_ref().map_err(|e| *e),
                    );
                    let Some((c, i)) = rec else {
                        if let Ok(mut loan) = got {
                            // Untrusted: its bytes must be nobody else's.
                            loan.fill(0x5a);
                            assert!(
                                live.iter().all(|l| intact(&l.loan, l.seed)),
                                "a foreign loan overwrote a live one"
                            );
                            assert!(
                                mine.iter().all(|(l, s)| intact(l, *s)),
                                "a foreign loan overwrote a live one"
                            );
                        }
                        continue;
                    };
                    let mut loan = got.unwrap();
                    let seed = m.seed();
                    fill(&mut loan, seed);
                    match fate {
                        0 => {
                            let _ = loan.into_block();
                            m.blocks[c][i].word = words.state(c, i);
                        }
                        1 => mine.push((loan, seed)),
                        _ => {
                            let gen = loan.generation();
                            assert!(intact(&loan, seed));
                            drop(loan);
                            m.blocks[c][i] = Block {
                                owner: Owner::Free,
                                word: free(gen),
                            };
                        }
                    }
                }
                for (loan, seed) in mine {
                    assert!(intact(&loan, seed), "a ghost's loan's bytes changed");
                    std::mem::forget(loan);
                }
                drop(pool);
                drop(region);
                for b in m.blocks.iter_mut().flatten() {
                    if b.owner == Owner::Ghost {
                        b.owner = Owner::Dead;
                    }
                }
                m.dead.extend(m.ghost.take());
            }
            9 => {
                let c = input.u8() as usize % nclasses;
                let i = input.u16() as usize % counts[c];
                let kind = input.u8();
                let raw = input.u64();
                let g = gen_of(m.blocks[c][i].word);
                let known: Vec<u32> = m.tokens.iter().flatten().chain(&m.dead).copied().collect();
                let token = match known.len() {
                    0 => raw as u32 & (DETACHED as u32 - 1),
                    n => known[(raw >> 40) as usize % n],
                };
                let value = match kind % 8 {
                    0 => free(g),
                    1 => free(raw as u32),
                    2 => lent(token, g),
                    3 => held(token, g),
                    4 => free(g) | DETACHED,
                    5 => raw,
                    6 => m.blocks[c][i].word ^ (1 << (raw % 64)),
                    _ => lent(token, g.wrapping_add(raw as u32 % 3)) | (kind as u64 & 0x80) << 24,
                };
                let old = words.states[c][2 * i].swap(value, Ordering::SeqCst);
                if old != value {
                    m.exact = false;
                }
            }
            10 => {
                let c = input.u8() as usize % nclasses;
                let w = input.u8() as usize % words.bitmap[c].len();
                let kind = input.u8();
                let raw = input.u64();
                let word = &words.bitmap[c][w];
                let value = match kind % 4 {
                    0 => raw,
                    1 => u64::MAX,
                    2 => word.load(Ordering::SeqCst) | 1 << (raw % 64),
                    _ => 0,
                };
                if word.swap(value, Ordering::SeqCst) != value {
                    m.bitmap_exact = false;
                }
            }
            11 => {
                let c = input.u8() as usize % nclasses;
                let i = input.u16() as usize % counts[c];
                let raw = input.u64();
                words.holders[c][2 * i].store(raw, Ordering::SeqCst);
                m.holders[c][i] = raw;
            }
            12 => {
                let w = input.u8() as usize % words.header.len();
                let kind = input.u8();
                let raw = input.u64();
                let word = &words.header[w];
                let old = word.load(Ordering::SeqCst);
                let value = match kind % 4 {
                    0 => raw,
                    1 => old.wrapping_add(raw % 5).wrapping_sub(2),
                    2 => old ^ 1 << (raw % 64),
                    _ => header_at_start[w],
                };
                word.store(value, Ordering::SeqCst);
            }
            _ => {
                let h = input.u8() as usize % HANDLES;
                let len = input.u16() as usize % (max + 65);
                let fate = input.u8() % 3;
                if transients < MAX_GHOSTS {
                    transients += 1;
                    let intact_header = header_intact(&words);
                    match Pool::open(handles[h], offset) {
                        Err(e) => assert!(!intact_header && corrupted(&e), "a view's open: {e}"),
                        Ok(pool) => {
                            let trusted = intact_header;
                            if !trusted {
                                m.exact = false;
                            }
                            let id = 4 + transients;
                            let got = pool.try_loan(len);
                            let others = covered(&live);
                            let who = Who::View {
                                view: id,
                                handle: h,
                            };
                            let rec = on_loan(
                                &mut m,
                                &words,
                                &others,
                                len,
                                who,
                                trusted,
                                got.as_ref().map_err(|e| *e),
                            );
                            match (rec, got) {
                                (None, Ok(mut loan)) => {
                                    loan.fill(0x5a);
                                    assert!(
                                        live.iter().all(|l| intact(&l.loan, l.seed)),
                                        "a foreign loan overwrote a live one"
                                    );
                                }
                                (Some((c, i)), Ok(mut loan)) => {
                                    let seed = m.seed();
                                    fill(&mut loan, seed);
                                    match fate {
                                        0 => {
                                            let block = loan.into_block();
                                            let word = words.state(c, i);
                                            m.blocks[c][i] = Block {
                                                owner: Owner::Held(h),
                                                word,
                                            };
                                            held_blocks.push(Held {
                                                handle: h,
                                                block,
                                                seed,
                                                len,
                                            });
                                        }
                                        1 => {
                                            std::mem::forget(loan);
                                            m.blocks[c][i].owner = Owner::Leaked;
                                        }
                                        _ => {
                                            let gen = loan.generation();
                                            drop(loan);
                                            m.blocks[c][i] = Block {
                                                owner: Owner::Free,
                                                word: free(gen),
                                            };
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
                for view in &views {
                    assert_eq!(view.class_count(), nclasses);
                    for c in 0..nclasses {
                        assert_eq!(view.block_size(c), Some(sizes[c]));
                        assert_eq!(view.block_count(c), Some(counts[c]));
                        assert!(view.block_offset(c, counts[c]).is_none());
                        let n = view.free_blocks(c).unwrap();
                        if m.exact {
                            assert_eq!(n, m.count(c, Owner::Free), "free blocks of class {c}");
                        } else {
                            assert!(n <= counts[c]);
                        }
                    }
                    assert_eq!(view.block_size(nclasses), None);
                    assert_eq!(view.free_blocks(nclasses), None);
                }
                for l in &live {
                    assert!(intact(&l.loan, l.seed), "a live loan's bytes changed");
                }
            }
        }

        // Every word as the model says, while it can.
        if m.exact {
            for c in 0..nclasses {
                for (i, b) in m.blocks[c].iter().enumerate() {
                    assert_eq!(
                        words.state(c, i),
                        b.word,
                        "state word {c}/{i} ({:?})",
                        b.owner
                    );
                    assert_eq!(
                        words.holders[c][2 * i].load(Ordering::SeqCst),
                        m.holders[c][i]
                    );
                }
                if m.bitmap_exact {
                    for (w, word) in words.bitmap[c].iter().enumerate() {
                        let bits_of = |keep: &dyn Fn(&Block) -> bool| {
                            (0..64)
                                .filter(|k| m.blocks[c].get(64 * w + k).is_some_and(keep))
                                .fold(0u64, |acc, k| acc | 1 << k)
                        };
                        let free = bits_of(&|b| b.owner == Owner::Free);
                        let blocks = bits_of(&|_| true);
                        let got = word.load(Ordering::SeqCst);
                        // Every free block's bit, and bits of blocks only
                        // (a loan leaves its block's bit as a stale hint).
                        assert_eq!(got & free, free, "bitmap word {c}/{w} lost a free block");
                        assert_eq!(
                            got & !blocks,
                            0,
                            "bitmap word {c}/{w}: a bit past the blocks"
                        );
                    }
                }
            }
        }
    }

    // Every live loan kept its bytes to the end.
    for l in &live {
        assert!(intact(&l.loan, l.seed), "a live loan's bytes changed");
    }
    drop(live);
    if m.exact {
        let free_now: usize = (0..nclasses)
            .map(|c| views[0].free_blocks(c).unwrap())
            .sum();
        let held_or_dead = held_blocks.len()
            + m.blocks
                .iter()
                .flatten()
                .filter(|b| matches!(b.owner, Owner::Dead | Owner::Leaked))
                .count();
        assert_eq!(free_now + held_or_dead, counts.iter().sum::<usize>());
    }
});
