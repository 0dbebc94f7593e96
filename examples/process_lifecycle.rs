//! A process's life, as a chapter on Python's `multiprocessing.Process`
//! walks through it: start a function in a child, join it for its result,
//! see a panic come back with its message, stop a child that runs too
//! long, read exit codes and signals, wait for the first of several.
//!
//! Run: `cargo run --release --example process_lifecycle`

use shmkit::process::{self, Builder, ExitStatus, JoinError};
use std::process::Command;
use std::time::{Duration, Instant};

/// Sums the digits of every number below `n` (something to do).
fn digit_sum_below(n: u64) -> u64 {
    (0..n)
        .map(|mut x| {
            let mut s = 0;
            while x > 0 {
                s += x % 10;
                x /= 10;
            }
            s
        })
        .sum()
}

fn greet(name: String) -> String {
    format!("hello, {name}, from process {}", std::process::id())
}

fn refuse(x: u32) -> u32 {
    panic!("refusing to work on {x}")
}

fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn exit_with(code: i32) {
    std::process::exit(code)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First: a child started from here is this program run again, and
    // becomes its worker on this line.
    process::init();
    println!("parent is process {}", std::process::id());

    // 1. Start, join, result (Process(target=f).start(); join()).
    let t = Instant::now();
    let child = process::spawn(digit_sum_below, 10_000_000)?;
    println!("started child {} to sum digits", child.pid());
    let sum = child.join()?;
    println!(
        "1. result {sum} after {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    let child = process::spawn(greet, "shmkit".to_string())?;
    println!("   {}", child.join()?);

    // 2. A panic is a value with its message, and exit code 101.
    match process::spawn(refuse, 7)?.join() {
        Err(JoinError::Panicked { message }) => println!("2. the child panicked: {message}"),
        other => println!("2. unexpected: {other:?}"),
    }

    // 3. Exit codes and signals (p.exitcode: 3, -15, -9).
    match process::spawn(exit_with, 3)?.join() {
        Err(JoinError::Ended(status)) => println!("3. exit_with(3) ended with {status}"),
        other => println!("3. unexpected: {other:?}"),
    }
    let mut sleeper = process::spawn(nap, 60_000)?;
    let running = sleeper
        .child_mut()
        .wait_timeout(Duration::from_millis(100))?;
    println!(
        "   after 100 ms the sleeper is {}",
        if running.is_none() {
            "still running"
        } else {
            "done"
        }
    );
    sleeper.terminate()?; // SIGTERM
    let status = sleeper.child_mut().wait()?;
    println!(
        "   terminate() → {status} (code {:?}, signal {:?})",
        status.code(),
        status.signal()
    );
    let mut stubborn = process::spawn(nap, 60_000)?;
    stubborn.kill()?; // SIGKILL
    println!("   kill() → {}", stubborn.child_mut().wait()?);

    // 4. Any command, and waiting for the first of several to end.
    let mut slow = Command::new("sleep");
    slow.arg("5");
    let mut slow = process::spawn_command(slow)?;
    let mut quick = process::spawn(nap, 50)?;
    let first = process::wait_any(&mut [&mut slow, quick.child_mut()], None)?;
    println!(
        "4. first to end: {}",
        ["`sleep 5`", "the 50 ms nap"][first.unwrap_or(0)]
    );
    slow.kill()?;
    assert_eq!(slow.wait()?, ExitStatus::Signal(9));

    // 5. Children die with their parent, unless asked to outlive it.
    let keeper = Builder::new().survive_parent(true).spawn(nap, 10)?;
    keeper.join()?;
    println!("5. a child started with survive_parent(true) would outlive this process");
    Ok(())
}
