//! `shmkit bench`: one-way latency (p50, p99, p99.9) and throughput of
//! messages from 64 B to 16 MiB between two processes, over the
//! machine's floor, shmkit's channels, loans and process pool, and every
//! peer this machine has, all in one run; each figure set against the
//! floor and the best peer at its size. Prints a table; `--out DIR`
//! also writes `bench.csv`, `latency.png` and `throughput.png`.
//!
//! Every row runs the same protocol ([`measure`]): a far end (a child
//! process, this program run again through `shmkit::process`; a thread
//! for the in-process references) announces itself, echoes the timed
//! round trips (one-way = round trip / 2), then takes a stream of
//! messages and acknowledges the last (throughput). Every message is
//! stamped at both ends and checked on arrival.

mod external;
mod far;
mod measure;
mod peers;
mod report;
mod shm;

use far::Cpus;
use measure::{Figures, Plan};
use std::io::IsTerminal;
use std::path::PathBuf;

/// The payload sizes, bytes.
pub const SIZES: [usize; 5] = [64, 4 << 10, 64 << 10, 1 << 20, 16 << 20];

/// What `shmkit bench` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// Timed round trips at 64 B (fewer at larger sizes).
    pub rounds: usize,
    /// A smoke run: few rounds, the iceoryx2 peer in its quick mode.
    pub quick: bool,
    /// Only the systems whose names contain one of these words (the
    /// floor always runs).
    pub only: Vec<String>,
    /// Only these sizes (all of [`SIZES`] if empty).
    pub sizes: Vec<usize>,
    /// Where to write `bench.csv` and the charts.
    pub out: Option<PathBuf>,
}

/// Which kind of system a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The hardware's floor.
    Floor,
    /// shmkit.
    Shmkit,
    /// Another way between two processes.
    Peer,
    /// Two threads of one process: the in-process reference.
    InProcess,
}

impl Group {
    /// The name the CSV gives it.
    pub fn tag(self) -> &'static str {
        match self {
            Group::Floor => "floor",
            Group::Shmkit => "shmkit",
            Group::Peer => "peer",
            Group::InProcess => "in-process",
        }
    }
}

type RowFn = fn(&Plan, Cpus, &mut dyn FnMut(f64)) -> Result<Figures, String>;

/// How a row is measured.
#[derive(Clone, Copy)]
enum How {
    /// By this program.
    Here(RowFn),
    /// By `python3`: `pipe` or `queue`.
    Python(&'static str),
    /// By the iceoryx2 peer binary, all sizes at once.
    Iceoryx2,
}

/// A system the suite measures.
#[derive(Clone, Copy)]
pub struct System {
    /// Its name in the table, the CSV and the charts.
    pub name: &'static str,
    /// What kind of system it is.
    pub group: Group,
    how: How,
    /// The sizes it runs at (others are "not run", with the reason).
    sizes: fn(usize) -> Result<(), &'static str>,
}

fn any_size(_: usize) -> Result<(), &'static str> {
    Ok(())
}

fn typed_size(size: usize) -> Result<(), &'static str> {
    if shm::TYPED_SIZES.contains(&size) {
        Ok(())
    } else {
        Err("a typed value this large crosses the stack: use the byte channel")
    }
}

fn word_size(size: usize) -> Result<(), &'static str> {
    if size == 64 {
        Ok(())
    } else {
        Err("one cache line")
    }
}

/// Every system, the floors first.
pub const SYSTEMS: [System; 16] = [
    System {
        name: "floor: one cache line",
        group: Group::Floor,
        how: How::Here(shm::line),
        sizes: word_size,
    },
    System {
        name: "floor: memcpy ring",
        group: Group::Floor,
        how: How::Here(shm::floor),
        sizes: any_size,
    },
    System {
        name: "shmkit SPSC channel<[u8; N]>",
        group: Group::Shmkit,
        how: How::Here(shm::spsc),
        sizes: typed_size,
    },
    System {
        name: "shmkit MPMC channel<[u8; N]>",
        group: Group::Shmkit,
        how: How::Here(shm::mpmc),
        sizes: typed_size,
    },
    System {
        name: "shmkit byte channel",
        group: Group::Shmkit,
        how: How::Here(shm::bytes),
        sizes: any_size,
    },
    System {
        name: "shmkit pub/sub loan",
        group: Group::Shmkit,
        how: How::Here(shm::loan),
        sizes: any_size,
    },
    System {
        name: "shmkit ProcessPool apply/map",
        group: Group::Shmkit,
        how: How::Here(shm::pool),
        sizes: any_size,
    },
    System {
        name: "pipe",
        group: Group::Peer,
        how: How::Here(peers::pipe),
        sizes: any_size,
    },
    System {
        name: "Unix socket",
        group: Group::Peer,
        how: How::Here(peers::socket),
        sizes: any_size,
    },
    System {
        name: "ipc-channel",
        group: Group::Peer,
        how: How::Here(peers::ipc_channel),
        sizes: any_size,
    },
    System {
        name: "shared_memory + raw_sync",
        group: Group::Peer,
        how: How::Here(peers::raw_sync),
        sizes: any_size,
    },
    System {
        name: "iceoryx2 loan",
        group: Group::Peer,
        how: How::Iceoryx2,
        sizes: any_size,
    },
    System {
        name: "Python multiprocessing.Pipe",
        group: Group::Peer,
        how: How::Python("pipe"),
        sizes: any_size,
    },
    System {
        name: "Python multiprocessing.Queue",
        group: Group::Peer,
        how: How::Python("queue"),
        sizes: any_size,
    },
    System {
        name: "std::sync::mpsc (threads)",
        group: Group::InProcess,
        how: How::Here(peers::std_mpsc),
        sizes: any_size,
    },
    System {
        name: "crossbeam-channel (threads)",
        group: Group::InProcess,
        how: How::Here(peers::crossbeam),
        sizes: any_size,
    },
];

/// What a cell of the table holds.
#[derive(Debug, Clone)]
pub enum Cell {
    /// Measured.
    Done(Figures),
    /// Not run at this size, or not here: why.
    NotRun(String),
    /// Run, and failed: how.
    Failed(String),
}

/// How many round trips and streamed messages at `size`.
fn plan(size: usize, opts: &Options) -> Plan {
    let (min_rounds, stream_bytes, max_stream) = if opts.quick {
        (20, 8 << 20, 2_000)
    } else {
        (100, 512 << 20, 100_000)
    };
    let rounds = opts.rounds.min((256 << 20) / size).max(min_rounds);
    Plan {
        size,
        warmup: (rounds / 10).max(10),
        rounds,
        stream: (stream_bytes / size).clamp(16, max_stream),
    }
}

/// The results: one row a system, one cell a size.
pub struct Results {
    /// The sizes, bytes.
    pub sizes: Vec<usize>,
    /// Each system with its cells (in `sizes`' order).
    pub rows: Vec<(System, Vec<Cell>)>,
}

/// Runs the suite.
pub fn run(opts: &Options) -> Result<(), String> {
    let sizes: Vec<usize> = if opts.sizes.is_empty() {
        SIZES.to_vec()
    } else {
        opts.sizes.clone()
    };
    if let Some(bad) = sizes.iter().find(|s| !SIZES.contains(s)) {
        return Err(format!(
            "no size {bad}: the sizes are {}",
            SIZES.map(|s| s.to_string()).join(", ")
        ));
    }
    let chosen: Vec<System> = SYSTEMS
        .into_iter()
        .filter(|s| {
            s.group == Group::Floor
                || opts.only.is_empty()
                || opts
                    .only
                    .iter()
                    .any(|w| s.name.to_lowercase().contains(&w.to_lowercase()))
        })
        .collect();
    let cpus = Cpus(measure::cpu_pair());
    if let Some((near, _)) = cpus.0 {
        measure::pin(Some(near));
    }
    let python = external::python();
    let iceoryx2 = external::iceoryx2_peer();
    let mut bar = Bar::new(chosen.len() * sizes.len());
    let mut rows = Vec::new();
    for system in chosen {
        let mut cells: Vec<Cell> = Vec::new();
        if matches!(system.how, How::Iceoryx2) {
            bar.label(system.name, "every size, in its own binary");
            let all = match &iceoryx2 {
                None => Err(Cell::NotRun(
                    "not built: cargo build --release -p shmkit-peer-iceoryx2".into(),
                )),
                Some(peer) => external::iceoryx2_rows(peer, opts.quick).map_err(Cell::Failed),
            };
            for &size in &sizes {
                cells.push(match &all {
                    Err(c) => c.clone(),
                    Ok(rows) => rows.iter().find(|(s, _)| *s == size).map_or_else(
                        || Cell::NotRun("not measured".into()),
                        |(_, f)| Cell::Done(*f),
                    ),
                });
                bar.cell_done();
            }
            rows.push((system, cells));
            continue;
        }
        for &size in &sizes {
            let plan = plan(size, opts);
            bar.label(system.name, &report::fmt_size(size));
            let cell = match ((system.sizes)(size), system.how) {
                (Err(why), _) => Cell::NotRun(why.into()),
                (Ok(()), How::Python(_)) if !python => Cell::NotRun("no python3 here".into()),
                (Ok(()), How::Python(kind)) => {
                    bar.part(0.0);
                    cell(external::python_row(kind, &plan, cpus))
                }
                (Ok(()), How::Here(row)) => cell(row(&plan, cpus, &mut |f| bar.part(f))),
                (Ok(()), How::Iceoryx2) => unreachable!("measured above"),
            };
            bar.cell_done();
            cells.push(cell);
        }
        rows.push((system, cells));
    }
    bar.clear();
    let results = Results { sizes, rows };
    report::print(&results, opts, cpus);
    if let Some(dir) = &opts.out {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        for written in report::write_files(&results, dir)? {
            println!("wrote {}", written.display());
        }
    }
    let failed: Vec<String> = results
        .rows
        .iter()
        .flat_map(|(s, cells)| {
            cells
                .iter()
                .zip(&results.sizes)
                .filter_map(move |(c, size)| match c {
                    Cell::Failed(e) => {
                        Some(format!("{} at {}: {e}", s.name, report::fmt_size(*size)))
                    }
                    _ => None,
                })
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} rows failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        ))
    }
}

fn cell(r: Result<Figures, String>) -> Cell {
    match r {
        Ok(f) => Cell::Done(f),
        Err(e) => Cell::Failed(e),
    }
}

/// The progress bar on stderr (only if it is a terminal).
struct Bar {
    tty: bool,
    cells: usize,
    done: usize,
    label: String,
    shown: usize,
}

const BAR: usize = 30;

impl Bar {
    fn new(cells: usize) -> Bar {
        Bar {
            tty: std::io::stderr().is_terminal(),
            cells: cells.max(1),
            done: 0,
            label: String::new(),
            shown: usize::MAX,
        }
    }

    fn label(&mut self, system: &str, what: &str) {
        self.label = format!("{system}, {what}");
        self.shown = usize::MAX;
        self.part(0.0);
    }

    fn part(&mut self, fraction: f64) {
        if !self.tty {
            return;
        }
        let whole = (self.done as f64 + fraction.clamp(0.0, 1.0)) / self.cells as f64;
        let ticks = ((whole * BAR as f64) as usize).min(BAR);
        if ticks == self.shown {
            return;
        }
        self.shown = ticks;
        eprint!(
            "\r\x1b[2K[{}{}] {:>3}/{} {}",
            "#".repeat(ticks),
            ".".repeat(BAR - ticks),
            self.done,
            self.cells,
            self.label
        );
    }

    fn cell_done(&mut self) {
        self.done += 1;
        self.shown = usize::MAX;
        self.part(0.0);
    }

    fn clear(&self) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
    }
}
