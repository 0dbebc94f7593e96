//! A process pool surviving its workers' deaths: one worker is killed with
//! SIGKILL in the middle of a `map`, one task hangs and is ended by its
//! timeout, one panics. Each costs only its own task; the pool replaces
//! the worker and every other task completes. (Python's `Pool` hangs for
//! good when a worker is killed; `ProcessPoolExecutor` fails every pending
//! task.)
//!
//! Run: `cargo run --release --example pool_crash`

use shmkit::process::{self, ProcessPool, TaskError};
use std::time::{Duration, Instant};

fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    x * x
}

fn hang(_: ()) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn check(x: u64) -> u64 {
    assert!(x != 13, "13 is unlucky");
    x
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    process::init();
    let pool = ProcessPool::builder().workers(2).build()?;
    let victim = pool.pids()[0];

    // Kill a worker 100 ms into a map of 500 tasks.
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let _ = std::process::Command::new("kill")
            .args(["-9", &victim.to_string()])
            .status();
    });
    let t = Instant::now();
    let outcomes: Vec<_> = pool.imap(slow_square, 0..500).collect();
    killer.join().unwrap();
    let failed: Vec<(usize, &TaskError)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.as_ref().err().map(|e| (i, e)))
        .collect();
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    println!(
        "worker {victim} killed mid-map: {ok} of 500 tasks done in {:.0} ms; failed: {failed:?}",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("workers now: {:?} (the dead one replaced)", pool.pids());

    // A hung task, ended by its timeout; the others go on.
    let t = Instant::now();
    let hung = pool.submit_timeout(hang, (), Duration::from_millis(300));
    let others = pool.map(check, (0..13).chain(14..100))?;
    println!("{} other tasks done while one hung", others.len());
    println!(
        "the hung task: {} (after {:.0} ms)",
        hung.wait().unwrap_err(),
        t.elapsed().as_secs_f64() * 1e3
    );

    // A panic is that task's error, and the worker lives on.
    let before = pool.pids();
    println!("a panicking task: {}", pool.apply(check, 13).unwrap_err());
    assert_eq!(pool.pids(), before);
    println!("same workers after the panic: {before:?}");

    // With a retry policy the killed worker's task is run again instead.
    let pool = ProcessPool::builder().workers(2).retries(2).build()?;
    let victim = pool.pids()[1];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        let _ = std::process::Command::new("kill")
            .args(["-9", &victim.to_string()])
            .status();
    });
    let all = pool.map_chunked(slow_square, 0..300, 1)?;
    killer.join().unwrap();
    println!(
        "with retries(2): all {} results, despite worker {victim} killed",
        all.len()
    );
    Ok(())
}
