//! The process pool: results in order and each once, panics, worker deaths
//! during `map`, `imap_unordered` and while idle, recycling, the
//! initializer, timeouts, cancellation, shutdown, and a parent killed
//! with SIGKILL.
#![allow(clippy::disallowed_types)]

mod common;

use shmkit::process::{ExitStatus, ProcessPool, Shutdown, TaskError, WaitTimeoutError};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

shmkit::process_test_support!();

/// A pool and its shared bytes cross threads.
const _: fn() = || {
    fn is<T: Send + Sync>() {}
    is::<ProcessPool>();
    is::<shmkit::process::SharedBytes>();
    is::<shmkit::process::TaskHandle<u64>>();
};

fn triple(x: u64) -> u64 {
    x.wrapping_mul(3) ^ 0x5a
}

fn pid_of(_: u32) -> u32 {
    std::process::id()
}

fn slow_identity(x: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(5));
    x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn fail_on_odd(x: u32) -> u32 {
    if x % 2 == 1 {
        panic!("odd {x}");
    }
    x
}

static INITS: AtomicU32 = AtomicU32::new(0);

fn count_init(tag: u32) {
    assert_eq!(tag, 77);
    INITS.fetch_add(1, Ordering::Relaxed);
}

fn inits_and_pid(_: u32) -> (u32, u32) {
    (INITS.load(Ordering::Relaxed), std::process::id())
}

fn failing_init(_: u32) {
    panic!("no configuration");
}

fn new_pool(workers: usize) -> ProcessPool {
    ProcessPool::builder().workers(workers).build().unwrap()
}

fn kill_pid(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until `pool` reports a worker pid that differs from `old`.
fn wait_replaced(pool: &ProcessPool, old: u32) {
    common::wait_until(Duration::from_secs(30), "a replacement worker", || {
        let pids = pool.pids();
        pids.len() == pool.workers() && !pids.contains(&old)
    });
}

#[test]
fn map_of_a_million_tiny_tasks_is_exact_and_in_order() {
    let pool = new_pool(2);
    let n = 1_000_000u64;
    let got = pool.map_chunked(triple, 0..n, 1000).unwrap();
    assert_eq!(got.len(), n as usize);
    for (i, v) in got.iter().enumerate() {
        assert_eq!(*v, triple(i as u64), "item {i}");
    }
    // The automatic chunk size too.
    let got = pool.map(triple, 0..10_000u64).unwrap();
    assert!(got.iter().enumerate().all(|(i, v)| *v == triple(i as u64)));
    pool.shutdown(Shutdown::Wait);
}

#[test]
fn imap_is_in_order_and_imap_unordered_gives_each_result_once() {
    let pool = new_pool(2);
    let ordered: Vec<u32> = pool
        .imap(slow_identity, 0..40)
        .map(Result::unwrap)
        .collect();
    assert_eq!(ordered, (0..40).collect::<Vec<_>>());
    let mut seen: Vec<u32> = pool
        .imap_unordered_chunked(slow_identity, 0..200, 7)
        .map(Result::unwrap)
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
}

#[test]
fn submit_apply_and_panics_that_leave_the_worker_alive() {
    let pool = new_pool(1);
    assert_eq!(pool.apply(triple, 5).unwrap(), triple(5));
    let before = pool.pids();
    match pool.submit(fail_on_odd, 3).wait() {
        Err(TaskError::Panicked { message }) => assert!(message.starts_with("odd 3"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.submit(fail_on_odd, 4).wait().unwrap(), 4);
    assert_eq!(pool.pids(), before, "a panic does not cost the worker");
    // Each item's own outcome.
    let outcomes: Vec<_> = pool.imap_chunked(fail_on_odd, 0..6, 3).collect();
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.is_ok(), i % 2 == 0, "{i}: {o:?}");
    }
    assert!(matches!(
        pool.map(fail_on_odd, 0..6),
        Err(TaskError::Panicked { .. })
    ));
}

#[test]
fn a_worker_killed_during_map_fails_the_map_with_that_task_only() {
    let pool = new_pool(2);
    let victim = pool.pids()[0];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        kill_pid(victim);
    });
    // `map` gives the first failure in order, as Python's does: the one
    // task the killed worker was running.
    assert_eq!(
        pool.map_chunked(slow_identity, 0..200, 1),
        Err(TaskError::WorkerDied {
            status: ExitStatus::Signal(9)
        })
    );
    killer.join().unwrap();
    wait_replaced(&pool, victim);
    assert_eq!(pool.map(triple, 0..10u64).unwrap()[9], triple(9));
}

#[test]
fn a_worker_killed_during_imap_fails_only_its_task() {
    let pool = new_pool(2);
    let victim = pool.pids()[0];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        kill_pid(victim);
    });
    let outcomes: Vec<_> = pool.imap(slow_identity, 0..200).collect();
    killer.join().unwrap();
    let failed: Vec<usize> = (0..200).filter(|i| outcomes[*i].is_err()).collect();
    assert_eq!(
        failed.len(),
        1,
        "exactly the running task fails: {failed:?}"
    );
    assert_eq!(
        outcomes[failed[0]],
        Err(TaskError::WorkerDied {
            status: ExitStatus::Signal(9)
        })
    );
    for (i, o) in outcomes.iter().enumerate() {
        if i != failed[0] {
            assert_eq!(*o, Ok(i as u32));
        }
    }
    wait_replaced(&pool, victim);
    // The pool goes on.
    assert_eq!(pool.map(triple, 0..100u64).unwrap()[99], triple(99));
}

#[test]
fn a_retry_policy_resubmits_the_task_of_a_killed_worker() {
    let pool = ProcessPool::builder()
        .workers(2)
        .retries(1)
        .build()
        .unwrap();
    let victim = pool.pids()[1];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        kill_pid(victim);
    });
    let got = pool.map_chunked(slow_identity, 0..200, 1).unwrap();
    killer.join().unwrap();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
}

#[test]
fn a_worker_killed_during_imap_unordered_fails_only_its_task() {
    let pool = new_pool(2);
    let victim = pool.pids()[0];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(80));
        kill_pid(victim);
    });
    let outcomes: Vec<_> = pool.imap_unordered(slow_identity, 0..150).collect();
    killer.join().unwrap();
    let died = outcomes
        .iter()
        .filter(|o| matches!(o, Err(TaskError::WorkerDied { .. })))
        .count();
    assert_eq!(died, 1);
    let mut ok: Vec<u32> = outcomes.into_iter().filter_map(Result::ok).collect();
    ok.sort_unstable();
    ok.dedup();
    assert_eq!(ok.len(), 149, "every other item exactly once");
}

#[test]
fn a_worker_killed_while_idle_is_replaced() {
    let pool = new_pool(2);
    let victim = pool.pids()[0];
    kill_pid(victim);
    wait_replaced(&pool, victim);
    let pids: HashSet<u32> = pool
        .map_chunked(pid_of, 0..64, 1)
        .unwrap()
        .into_iter()
        .collect();
    assert!(!pids.contains(&victim));
    assert!(pool.map(triple, 0..1000u64).is_ok());
}

#[test]
fn max_tasks_per_child_replaces_workers() {
    let pool = ProcessPool::builder()
        .workers(1)
        .max_tasks_per_child(3)
        .build()
        .unwrap();
    let pids: Vec<u32> = pool.map_chunked(pid_of, 0..12, 1).unwrap();
    let distinct: HashSet<u32> = pids.iter().copied().collect();
    assert!(distinct.len() >= 4, "{pids:?}");
    for pid in &distinct {
        assert!(pids.iter().filter(|p| *p == pid).count() <= 3, "{pids:?}");
    }
}

#[test]
fn the_initializer_runs_once_in_every_worker() {
    let pool = ProcessPool::builder()
        .workers(2)
        .initializer(count_init, 77)
        .max_tasks_per_child(5)
        .build()
        .unwrap();
    let got = pool.map_chunked(inits_and_pid, 0..40, 1).unwrap();
    assert!(got.iter().all(|(inits, _)| *inits == 1), "{got:?}");
    let pids: HashSet<u32> = got.iter().map(|(_, p)| *p).collect();
    assert!(pids.len() >= 8, "recycled workers ran it too: {pids:?}");
}

#[test]
fn a_failing_initializer_breaks_the_pool_instead_of_looping() {
    let pool = ProcessPool::builder()
        .workers(2)
        .initializer(failing_init, 0)
        .build()
        .unwrap();
    match pool.apply(triple, 1) {
        Err(TaskError::InitializerFailed { message }) => {
            assert!(message.contains("no configuration"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_hung_task_is_abandoned_by_its_timeout_and_the_rest_completes() {
    let pool = new_pool(2);
    let hung = pool.submit_timeout(sleep_ms, 60_000, Duration::from_millis(200));
    let others: Vec<_> = (0..20).map(|i| pool.submit(sleep_ms, i)).collect();
    let started = Instant::now();
    assert_eq!(
        hung.wait().unwrap_err(),
        TaskError::TimedOut {
            after: Duration::from_millis(200)
        }
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    for (i, t) in others.into_iter().enumerate() {
        assert_eq!(t.wait().unwrap(), i as u64);
    }
}

#[test]
fn wait_timeout_and_cancellation() {
    let pool = new_pool(1);
    let long = pool.submit(sleep_ms, 400);
    let queued: Vec<_> = (0..4).map(|_| pool.submit(sleep_ms, 1)).collect();
    let long = match long.wait_timeout(Duration::from_millis(10)) {
        Err(WaitTimeoutError::Timeout(h)) => h,
        other => panic!("{other:?}"),
    };
    assert!(!long.cancel(), "a running task is not cancelled");
    let last = queued.last().unwrap();
    assert!(last.cancel());
    assert!(last.is_finished());
    let outcomes: Vec<_> = queued.into_iter().map(|t| t.wait()).collect();
    assert_eq!(outcomes[3], Err(TaskError::Cancelled));
    assert!(outcomes[..3].iter().all(|o| *o == Ok(1)));
    assert_eq!(long.wait().unwrap(), 400);
}

#[test]
fn shutdown_waits_cancels_or_kills() {
    let pool = new_pool(2);
    let tasks: Vec<_> = (0..10).map(|i| pool.submit(slow_identity, i)).collect();
    pool.shutdown(Shutdown::Wait);
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.wait().unwrap(), i as u32);
    }

    let pool = new_pool(1);
    let tasks: Vec<_> = (0..10).map(|_| pool.submit(sleep_ms, 50)).collect();
    std::thread::sleep(Duration::from_millis(20));
    pool.shutdown(Shutdown::CancelPending);
    let outcomes: Vec<_> = tasks.into_iter().map(|t| t.wait()).collect();
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    assert_eq!(outcomes[9], Err(TaskError::Cancelled));

    let pool = new_pool(1);
    let t = pool.submit(sleep_ms, 60_000);
    let pids = pool.pids();
    pool.shutdown(Shutdown::Kill);
    assert_eq!(t.wait(), Err(TaskError::PoolClosed));
    assert!(
        !std::path::Path::new(&format!("/proc/{}/cmdline", pids[0])).exists() || {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", pids[0])).unwrap_or_default();
            stat.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        }
    );

    let pool = new_pool(1);
    pool.close();
    assert_eq!(pool.apply(triple, 1), Err(TaskError::PoolClosed));
}

#[test]
fn a_parent_killed_with_sigkill_leaves_no_worker_running() {
    let mut cmd = common::child_command("pool_parent", &[]);
    cmd.stdout(Stdio::piped());
    let mut parent = common::spawn_command(&mut cmd);
    let mut out = BufReader::new(parent.stdout.take().unwrap());
    let mut line = String::new();
    let pids: Vec<u32> = loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the pool parent ended early"
        );
        if let Some(rest) = line.trim().strip_prefix("WORKERS ") {
            break rest.split(',').map(|p| p.parse().unwrap()).collect();
        }
    };
    assert_eq!(pids.len(), 2);
    parent.kill().unwrap();
    parent.wait().unwrap();
    let gone = |pid: u32| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    };
    common::wait_until(Duration::from_secs(10), "the workers to die", || {
        pids.iter().all(|p| gone(*p))
    });
}

#[test]
#[ignore]
fn child_entry() {
    let Some((role, _args)) = common::child_role() else {
        return;
    };
    match role.as_str() {
        "pool_parent" => {
            let pool = new_pool(2);
            // Busy workers: the parent dies mid-map.
            let _running: Vec<_> = (0..4).map(|_| pool.submit(sleep_ms, 60_000)).collect();
            let pids: Vec<String> = pool.pids().iter().map(u32::to_string).collect();
            println!("WORKERS {}", pids.join(","));
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role {other}"),
    }
}

mod shared_blocks {
    use super::*;
    use shmkit::pool::PoolConfig;
    use shmkit::process::{self, SharedBytes};

    fn checksum(frame: SharedBytes) -> u64 {
        frame.iter().map(|b| u64::from(*b)).sum()
    }

    fn make_frame(len: usize) -> SharedBytes {
        let mut loan = process::loan_bytes(len).expect("a block in the worker");
        for (i, b) in loan.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        loan.share()
    }

    /// Says it runs (creates `flag`), then holds `frame` for a minute.
    fn hold_and_sleep((frame, flag): (SharedBytes, String)) -> u64 {
        std::fs::write(&flag, b"running").unwrap();
        std::thread::sleep(Duration::from_secs(60));
        frame.len() as u64
    }

    fn shared_pool() -> ProcessPool {
        ProcessPool::builder()
            .workers(2)
            .shared_blocks(PoolConfig::new().class(8 << 20, 4))
            .build()
            .unwrap()
    }

    fn all_free(pool: &ProcessPool) {
        common::wait_until(Duration::from_secs(10), "every block back", || {
            pool.free_blocks(0) == Some(4)
        });
    }

    #[test]
    fn a_large_argument_is_read_in_place_and_its_block_comes_back() {
        let pool = shared_pool();
        let len = 8 << 20;
        let mut loan = pool.loan_bytes(len).unwrap();
        loan.fill(3);
        let frame = loan.share();
        assert_eq!(pool.free_blocks(0), Some(3));
        // The argument is dropped by `submit`; the job keeps its block.
        let sum = pool.submit(checksum, frame).wait().unwrap();
        assert_eq!(sum, 3 * len as u64);
        all_free(&pool);
        // The same frame to many tasks: each holds it while it runs.
        let mut loan = pool.loan_bytes(1 << 20).unwrap();
        loan.fill(1);
        let frame = loan.share();
        let sums = pool
            .map_chunked(checksum, (0..16).map(|_| frame.clone()), 1)
            .unwrap();
        assert!(sums.iter().all(|s| *s == 1 << 20));
        drop(frame);
        all_free(&pool);
    }

    #[test]
    fn a_large_result_comes_back_in_place() {
        let pool = shared_pool();
        let frames = pool
            .map_chunked(make_frame, [1usize << 20, 8 << 20, 5], 1)
            .unwrap();
        for f in &frames {
            assert!(f.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
        }
        assert_eq!(frames[1].len(), 8 << 20);
        assert_eq!(pool.free_blocks(0), Some(1));
        drop(frames);
        all_free(&pool);
        // Results nobody reads give their blocks back too.
        drop(pool.submit(make_frame, 1000));
        let _ = pool.apply(checksum_len, 1);
        all_free(&pool);
    }

    fn checksum_len(n: u64) -> u64 {
        n
    }

    #[test]
    fn a_killed_workers_blocks_come_back() {
        let pool = shared_pool();
        let mut loan = pool.loan_bytes(100).unwrap();
        loan.fill(9);
        let flag = std::env::temp_dir().join(format!("shmkit-test-{}-holding", std::process::id()));
        let _ = std::fs::remove_file(&flag);
        let task = pool.submit(hold_and_sleep, (loan.share(), flag.display().to_string()));
        common::wait_until(Duration::from_secs(30), "the task to start", || {
            flag.exists()
        });
        let _ = std::fs::remove_file(&flag);
        for pid in pool.pids() {
            kill_pid(pid);
        }
        assert!(matches!(task.wait(), Err(TaskError::WorkerDied { .. })));
        all_free(&pool);
        // The pool and its blocks go on.
        let frame = pool.apply(make_frame, 64).unwrap();
        assert_eq!(frame.len(), 64);
    }

    #[test]
    fn blocks_need_a_pool_with_shared_memory() {
        let plain = new_pool(1);
        assert!(plain.loan_bytes(10).is_err());
        assert!(process::loan_bytes(10).is_err(), "not a worker");
        let pool = shared_pool();
        let mut loan = pool.loan_bytes(10).unwrap();
        loan.fill(0);
        // A block of one pool given to another's task fails that task.
        let other = shared_pool();
        assert!(matches!(
            other.submit(checksum, loan.share()).wait(),
            Err(TaskError::Decode(_))
        ));
        all_free(&pool);
        // A worker of a pool without shared memory cannot lend.
        assert!(matches!(
            plain.apply(make_frame, 10),
            Err(TaskError::Panicked { .. })
        ));
    }
}

fn reversed(v: Vec<u8>) -> Vec<u8> {
    let mut v = v;
    v.reverse();
    v.extend_from_slice(&[7; 1 << 20]);
    v
}

#[test]
fn messages_larger_than_the_rings_cross_whole_both_ways() {
    let pool = ProcessPool::builder()
        .workers(1)
        .ring_bytes(64 << 10)
        .build()
        .unwrap();
    let arg: Vec<u8> = (0..(3 << 20)).map(|i| (i % 253) as u8).collect();
    let mut want = arg.clone();
    want.reverse();
    want.extend_from_slice(&[7; 1 << 20]);
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(pool.apply(reversed, arg.clone()).unwrap(), want);
    }
    // A piece at a time through a 64 KiB ring, 200 pieces each way: no
    // sleep per piece (a generous bound, not a benchmark).
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// Workers killed at random for a while under mixed work: every outcome is
/// the right result or `WorkerDied`, nothing else; afterwards the pool
/// works and every shared block is back.
#[test]
fn a_soak_of_random_worker_kills_loses_nothing_else() {
    use shmkit::pool::PoolConfig;
    use shmkit::process::SharedBytes;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    fn sum_block(b: SharedBytes) -> u64 {
        b.iter().map(|x| u64::from(*x)).sum()
    }

    let pool = Arc::new(
        ProcessPool::builder()
            .workers(2)
            .shared_blocks(PoolConfig::new().class(4096, 16))
            .build()
            .unwrap(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (stop, pool) = (stop.clone(), pool.clone());
        std::thread::spawn(move || {
            let mut kills = 0u32;
            let mut seed = 0x9e37_79b9u32;
            while !stop.load(Ordering::Relaxed) {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                std::thread::sleep(Duration::from_millis(15 + u64::from(seed % 40)));
                let pids = pool.pids();
                if let Some(pid) = pids.get(seed as usize % pids.len().max(1)) {
                    let _ = std::process::Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .status();
                    kills += 1;
                }
            }
            kills
        })
    };
    let started = Instant::now();
    let (mut ok, mut died) = (0u64, 0u64);
    while started.elapsed() < Duration::from_millis(1500) {
        for (i, o) in pool.imap_chunked(triple, 0..400u64, 25).enumerate() {
            match o {
                Ok(v) => {
                    assert_eq!(v, triple(i as u64));
                    ok += 1;
                }
                Err(TaskError::WorkerDied { .. }) => died += 1,
                Err(e) => panic!("{e}"),
            }
        }
        let mut loan = pool.loan_bytes(4096).unwrap();
        loan.fill(1);
        match pool.apply(sum_block, loan.share()) {
            Ok(s) => assert_eq!(s, 4096),
            Err(TaskError::WorkerDied { .. }) => died += 1,
            Err(e) => panic!("{e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let kills = killer.join().unwrap();
    assert!(ok > 0, "work got done between kills");
    eprintln!("{kills} kills, {ok} results, {died} tasks lost with their worker");
    common::wait_until(Duration::from_secs(20), "every shared block back", || {
        pool.free_blocks(0) == Some(16)
    });
    assert_eq!(pool.map(triple, 0..100u64).unwrap()[99], triple(99));
}

#[test]
fn one_pool_serves_many_threads_at_once() {
    let pool = new_pool(2);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let pool = &pool;
                s.spawn(move || {
                    for round in 0..20u64 {
                        let base = t * 1_000_000 + round * 1000;
                        let got = pool.map_chunked(triple, base..base + 300, 17).unwrap();
                        assert!(got
                            .iter()
                            .enumerate()
                            .all(|(i, v)| *v == triple(base + i as u64)));
                        assert_eq!(pool.apply(triple, base).unwrap(), triple(base));
                        let mut seen: Vec<u64> = pool
                            .imap_unordered(triple, base..base + 20)
                            .map(Result::unwrap)
                            .collect();
                        seen.sort_unstable();
                        let mut want: Vec<u64> = (base..base + 20).map(triple).collect();
                        want.sort_unstable();
                        assert_eq!(seen, want);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}
