//! `shmkit`: see, inspect and clean the shmkit objects of this user in
//! `/dev/shm`.
//!
//! ```text
//! shmkit ls [--json]                 every object: kind, size, creator, who has it open
//! shmkit inspect NAME [--json]       one object's header and state, changing nothing
//! shmkit clean [--dry-run] [NAME..]  remove what no live process uses
//! shmkit bench [--quick] [--out DIR] latency and throughput, 64 B to 16 MiB, shmkit beside every peer
//! ```
//!
//! Nothing here trusts an object's contents: what its header claims is
//! shown as a claim, and liveness comes from the kernel's locks on the
//! object's own file, never from a pid it recorded. Exit codes: 0 done,
//! 1 an error (a bad name, nothing there, another user's file, a file
//! that is not a shmkit object), 2 a usage error, 3 the object is
//! corrupted.

mod bench;
mod json;
mod show;

use clap::{Parser, Subcommand};
use shmkit::region::{self, ObjectInfo, ObjectKind, ObjectState};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "shmkit",
    version,
    about = "See, inspect and clean shmkit objects in /dev/shm"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every shmkit object of this user.
    Ls {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one object's header, participants and state, changing nothing.
    Inspect {
        /// The object's name (the leading `/` may be left out).
        name: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Time messages of 64 B to 16 MiB between two processes over
    /// shmkit, the kernel's ways and every peer this machine has,
    /// beside the machine's floor, all in one run.
    Bench {
        /// Timed round trips a row at 64 B (fewer at larger sizes).
        #[arg(long, default_value_t = 20_000)]
        rounds: usize,
        /// A smoke run: a few hundred round trips, short streams.
        #[arg(long)]
        quick: bool,
        /// Only the systems whose names contain this word (repeatable;
        /// the floors always run).
        #[arg(long, value_name = "WORD")]
        only: Vec<String>,
        /// Only this payload size in bytes (repeatable): 64, 4096,
        /// 65536, 1048576, 16777216.
        #[arg(long, value_name = "BYTES")]
        size: Vec<usize>,
        /// Also write bench.csv, latency.png and throughput.png here.
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
    /// Remove the objects no live process has open (all of them, or the
    /// named ones); never one in use.
    Clean {
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only these objects.
        names: Vec<String>,
    },
}

/// Exit code for an object whose header is corrupted.
const CORRUPTED: u8 = 3;

fn main() -> ExitCode {
    // `bench` runs its far ends in children: this program, run again.
    shmkit::process::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls { json } => ls(json),
        Command::Inspect { name, json } => inspect(&name, json),
        Command::Clean { dry_run, names } => clean(dry_run, &names),
        Command::Bench {
            rounds,
            quick,
            only,
            size,
            out,
        } => {
            let opts = bench::Options {
                rounds: if quick { rounds.min(500) } else { rounds }.max(20),
                quick,
                only,
                sizes: size,
                out,
            };
            match bench::run(&opts) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("shmkit: bench: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shmkit: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `name` with its leading `/`.
fn full_name(name: &str) -> String {
    if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    }
}

fn ls(json: bool) -> Result<ExitCode, shmkit::Error> {
    let mut objects = region::list()?;
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        println!("{}", json::array(objects.iter().map(json::object)));
    } else {
        print!("{}", show::table(&objects));
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(name: &str, json: bool) -> Result<ExitCode, shmkit::Error> {
    let name = full_name(name);
    let info = region::inspect(&name)?;
    let channel = match info.kind {
        ObjectKind::SpscChannel | ObjectKind::MpmcChannel | ObjectKind::ByteChannel
            if info.state == ObjectState::Ready =>
        {
            Some(shmkit::channel::inspect(&name)?)
        }
        _ => None,
    };
    let ready = info.state == ObjectState::Ready;
    let service = match info.kind {
        ObjectKind::PubSub if ready => Some(shmkit::pubsub::inspect(&name)?),
        _ => None,
    };
    let sync = match info.kind {
        ObjectKind::Mutex
        | ObjectKind::RwLock
        | ObjectKind::Semaphore
        | ObjectKind::Barrier
        | ObjectKind::Event
            if ready =>
        {
            Some(shmkit::sync::inspect(&name)?)
        }
        _ => None,
    };
    let reqresp = match info.kind {
        ObjectKind::ReqResp if ready => Some(shmkit::reqresp::inspect(&name)?),
        _ => None,
    };
    if json {
        let mut text = json::object(&info);
        if let Some(c) = &channel {
            text.pop();
            text.push_str(&format!(",\"channel\":{}}}", json::channel(c)));
        }
        if let Some(s) = &service {
            text.pop();
            text.push_str(&format!(",\"service\":{}}}", json::service(s)));
        }
        if let Some(s) = &sync {
            text.pop();
            text.push_str(&format!(",{}}}", json::sync(s)));
        }
        if let Some(s) = &reqresp {
            text.pop();
            text.push_str(&format!(",\"service\":{}}}", json::reqresp(s)));
        }
        println!("{text}");
    } else {
        print!("{}", show::details(&info));
        if let Some(c) = &channel {
            print!("{}", show::channel(c));
        }
        if let Some(s) = &service {
            print!("{}", show::service(s));
        }
        if let Some(s) = &reqresp {
            print!("{}", show::reqresp(s));
        }
        if let Some(s) = &sync {
            print!("{}", show::sync(s));
        }
    }
    let corrupted = matches!(info.state, ObjectState::Corrupted(_))
        || sync.as_ref().is_some_and(|s| s.corrupted().is_some())
        || channel.as_ref().is_some_and(|c| c.inconsistent.is_some())
        || service
            .as_ref()
            .is_some_and(|s| show::pool_corrupted(&s.pool))
        || reqresp
            .as_ref()
            .is_some_and(|s| show::pool_corrupted(&s.pool));
    Ok(if corrupted {
        ExitCode::from(CORRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

fn clean(dry_run: bool, names: &[String]) -> Result<ExitCode, shmkit::Error> {
    let candidates: Vec<ObjectInfo> = if names.is_empty() {
        region::list()?
    } else {
        names
            .iter()
            .map(|n| region::inspect(&full_name(n)))
            .collect::<Result<_, _>>()?
    };
    let (mut removed, mut kept) = (0, 0);
    for o in candidates {
        if o.in_use {
            println!(
                "kept     {} (in use by {})",
                o.name,
                show::pids(&o.attached)
            );
            kept += 1;
            continue;
        }
        if dry_run {
            println!(
                "would remove {} ({}, {})",
                o.name,
                o.kind,
                show::size(o.size)
            );
            removed += 1;
            continue;
        }
        // The removal checks again, under the object's lock: a process
        // that opened it since keeps it.
        if region::remove_if_unused(&o.name)? {
            println!("removed  {} ({}, {})", o.name, o.kind, show::size(o.size));
            removed += 1;
        } else {
            println!("kept     {} (opened meanwhile)", o.name);
            kept += 1;
        }
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    println!("{verb} {removed}, kept {kept} in use");
    Ok(ExitCode::SUCCESS)
}
