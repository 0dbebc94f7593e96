//! Children that run a function of this program or a command: results,
//! panics, exit codes and signals, waiting on many, and what happens to a
//! child whose parent is killed.
#![allow(clippy::disallowed_types)]

mod common;

use shmkit::process::{self, Builder, ExitStatus, JoinError, JoinTimeoutError, Plain, SpawnError};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

shmkit::process_test_support!();

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}
impl Plain for Point {}

fn square(x: u64) -> u64 {
    x * x
}

fn norm(p: Point) -> f64 {
    (p.x * p.x + p.y * p.y).sqrt()
}

fn shout(words: Vec<String>) -> (String, usize) {
    let joined = words.join(" ").to_uppercase();
    let n = joined.len();
    (joined, n)
}

fn boom(x: u32) -> u32 {
    if x > 0 {
        panic!("refusing {x}");
    }
    x
}

fn exit_with(code: i32) -> u32 {
    std::process::exit(code)
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn big(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn a_function_runs_in_a_child_and_its_result_comes_back() {
    let child = process::spawn(square, 12).unwrap();
    assert_ne!(child.pid(), std::process::id());
    assert_eq!(child.join().unwrap(), 144);

    let p = Point { x: 3.0, y: 4.0 };
    assert_eq!(process::spawn(norm, p).unwrap().join().unwrap(), 5.0);

    let words = vec!["hello".to_string(), "world".to_string()];
    let (s, n) = process::spawn(shout, words).unwrap().join().unwrap();
    assert_eq!((s.as_str(), n), ("HELLO WORLD", 11));

    // A closure that captures nothing is a function too.
    let child = process::spawn(|v: Vec<u32>| v.iter().sum::<u32>(), vec![1, 2, 3]).unwrap();
    assert_eq!(child.join().unwrap(), 6);
}

#[test]
fn large_arguments_and_results_cross_whole() {
    let n = 5 << 20;
    let got = process::spawn(big, n).unwrap().join().unwrap();
    assert_eq!(got, big(n));
    let arg = big(3 << 20);
    let back = process::spawn(
        |v: Vec<u8>| v.iter().map(|b| *b as u64).sum::<u64>(),
        arg.clone(),
    )
    .unwrap()
    .join()
    .unwrap();
    assert_eq!(back, arg.iter().map(|b| *b as u64).sum::<u64>());
}

#[test]
fn a_panic_comes_back_with_its_message_and_exit_code_101() {
    let mut child = process::spawn(boom, 7).unwrap();
    let status = child.child_mut().wait().unwrap();
    assert_eq!(status, ExitStatus::Code(101));
    match child.join() {
        Err(JoinError::Panicked { message }) => {
            assert!(message.starts_with("refusing 7"), "{message}");
            assert!(message.contains("process.rs"), "{message}");
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(process::spawn(boom, 0).unwrap().join().unwrap(), 0);
}

#[test]
fn exit_codes_and_signals_are_reported() {
    match process::spawn(exit_with, 3).unwrap().join() {
        Err(JoinError::Ended(ExitStatus::Code(3))) => {}
        other => panic!("{other:?}"),
    }

    let mut child = process::spawn(sleep_ms, 60_000).unwrap();
    assert!(child.is_alive().unwrap());
    child.kill().unwrap();
    assert_eq!(child.child_mut().wait().unwrap(), ExitStatus::Signal(9));
    assert!(!child.is_alive().unwrap());
    assert_eq!(child.child().exit_status(), Some(ExitStatus::Signal(9)));
    child.kill().unwrap(); // an ended child: nothing happens
    match child.join() {
        Err(JoinError::Ended(s)) => assert_eq!(s.signal(), Some(9)),
        other => panic!("{other:?}"),
    }

    let child = process::spawn(sleep_ms, 60_000).unwrap();
    child.terminate().unwrap();
    match child.join() {
        Err(JoinError::Ended(s)) => {
            assert_eq!(s, ExitStatus::Signal(15));
            assert_eq!(s.to_string(), "signal 15 (SIGTERM)");
        }
        other => panic!("{other:?}"),
    }

    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exit 4"]);
    let mut c = process::spawn_command(cmd).unwrap();
    assert_eq!(c.wait().unwrap(), ExitStatus::Code(4));
    assert_eq!(c.exit_status().and_then(ExitStatus::code), Some(4));
}

#[test]
fn join_timeout_gives_the_handle_back_while_the_child_runs() {
    let child = process::spawn(
        |ms: u64| -> u64 {
            std::thread::sleep(Duration::from_millis(ms));
            ms
        },
        300,
    )
    .unwrap();
    let started = Instant::now();
    let child = match child.join_timeout(Duration::from_millis(20)) {
        Err(JoinTimeoutError::Timeout(h)) => h,
        other => panic!("{other:?}"),
    };
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert_eq!(child.join_timeout(Duration::from_secs(30)).unwrap(), 300);
}

#[test]
fn wait_any_returns_the_first_to_end_and_wait_all_waits_for_every_one() {
    let mut slow = Command::new("sleep");
    slow.arg("30");
    let mut slow = process::spawn_command(slow).unwrap();
    let mut fast = process::spawn(sleep_ms, 10).unwrap();
    let first = process::wait_any(
        &mut [&mut slow, fast.child_mut()],
        Some(Duration::from_secs(20)),
    )
    .unwrap();
    assert_eq!(first, Some(1));
    assert_eq!(
        process::wait_any(&mut [&mut slow], Some(Duration::from_millis(10))).unwrap(),
        None
    );
    assert!(!process::wait_all(
        &mut [&mut slow, fast.child_mut()],
        Some(Duration::from_millis(10))
    )
    .unwrap());
    slow.kill().unwrap();
    assert!(process::wait_all(&mut [&mut slow, fast.child_mut()], None).unwrap());
    assert_eq!(slow.exit_status(), Some(ExitStatus::Signal(9)));
    assert_eq!(process::wait_any(&mut [], None).unwrap(), None);
}

#[test]
fn a_child_that_never_runs_the_function_says_so() {
    // A garbled worker variable: the child refuses to start.
    let child = Builder::new()
        .env("SHMKIT_PROCESS", "garbage")
        .spawn(square, 1)
        .unwrap();
    match child.join() {
        Err(JoinError::NotStarted(s)) => assert!(!s.success()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_worker_that_skipped_init_cannot_spawn_again() {
    let mut cmd = common::child_command("spawn_without_init", &[]);
    cmd.env("SHMKIT_PROCESS", "call:99");
    let out = common::wait_limited(common::spawn_command(&mut cmd), Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("RESULT refused"));
}

/// Spawns a grandchild (a sleeper) from a child, kills the child with
/// SIGKILL, and says whether the grandchild was still running a while
/// later.
fn grandchild_outlives_killed_parent(survive: bool) -> bool {
    let mut cmd = common::child_command("middle", &[if survive { "survive" } else { "die" }]);
    cmd.stdout(Stdio::piped());
    let mut middle = common::spawn_command(&mut cmd);
    let mut out = BufReader::new(middle.stdout.take().unwrap());
    let mut line = String::new();
    let pid = loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break None;
        }
        if let Some(pid) = line.trim().strip_prefix("GRANDCHILD ") {
            break Some(pid.parse::<i32>().unwrap());
        }
    };
    middle.kill().unwrap();
    middle.wait().unwrap();
    let pid = pid.expect("the middle child ended before naming its child");
    let gone = |pid: i32| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie no one reaped yet has ended too.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    };
    // Death comes within milliseconds; survival is judged after a while.
    let limit = if survive { 300 } else { 10_000 };
    let deadline = Instant::now() + Duration::from_millis(limit);
    while !gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let alive = !gone(pid);
    if alive {
        // The sleeper watched just now (alive a moment ago).
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    alive
}

#[test]
fn children_die_with_a_parent_killed_by_sigkill() {
    assert!(!grandchild_outlives_killed_parent(false));
}

#[test]
fn survive_parent_keeps_the_child_running() {
    assert!(grandchild_outlives_killed_parent(true));
}

#[test]
fn regions_are_handed_to_a_function_child() {
    use shmkit::channel::{byte_channel, ByteSender};
    fn send_hello(_: ()) -> bool {
        // SAFETY: passed by the parent for this end only, taken once.
        let tx = unsafe { ByteSender::from_env("HELLO_TX") }.unwrap();
        println!("attached");
        tx.send(b"hello from the child").is_ok()
    }
    // With both ends made here, the child's end must be dropped first (an
    // end admits one handle) and the parent waits for the child's word.
    let (tx, rx) = byte_channel(4096, 256).unwrap();
    let builder = Builder::new()
        .pass_region("HELLO_TX", tx.region())
        .unwrap()
        .stdout(Stdio::piped());
    drop(tx);
    let mut child = builder.spawn(send_hello, ()).unwrap();
    let mut out = BufReader::new(child.child_mut().take_stdout().unwrap());
    let mut line = String::new();
    while line != "attached\n" {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("the child ended first: {:?}", child.join());
        }
    }
    let mut buf = Vec::new();
    rx.recv_timeout(&mut buf, Duration::from_secs(30)).unwrap();
    assert_eq!(buf, b"hello from the child");
    assert!(child.join().unwrap());
}

fn sum_from_parent(_: ()) -> u64 {
    use shmkit::channel::Receiver;
    // SAFETY: passed by the parent for this end only, taken once.
    let rx = unsafe { Receiver::<u64>::from_env("SUM_RX") }.unwrap();
    rx.iter().sum()
}

fn count_to_parent(n: u64) -> u64 {
    use shmkit::channel::MpmcSender;
    // SAFETY: passed by the parent for this end only, taken once.
    let tx = unsafe { MpmcSender::<u64>::from_env("COUNT_TX") }.unwrap();
    for i in 0..n {
        tx.send(i).unwrap();
    }
    n
}

#[test]
fn an_end_made_alone_is_handed_to_a_child_without_a_handshake() {
    use shmkit::channel::{MpmcReceiver, RecvTimeoutError, Sender};
    // The parent sends before the child has attached: the values wait.
    let tx = Sender::<u64>::anonymous(1024).unwrap();
    let child = Builder::new()
        .pass_region("SUM_RX", tx.region())
        .unwrap()
        .spawn(sum_from_parent, ())
        .unwrap();
    for i in 0..1000 {
        tx.send(i).unwrap();
    }
    drop(tx);
    assert_eq!(child.join().unwrap(), 499_500);

    // The other way: the parent's end reads the child as not yet there,
    // never as gone, until it attaches.
    let rx = MpmcReceiver::<u64>::anonymous(64).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvTimeoutError::Timeout)
    );
    let child = Builder::new()
        .pass_region("COUNT_TX", rx.region())
        .unwrap()
        .spawn(count_to_parent, 500)
        .unwrap();
    let got: u64 = rx.iter().sum();
    assert_eq!(got, (0..500).sum::<u64>());
    assert_eq!(child.join().unwrap(), 500);
}

#[test]
#[ignore]
fn child_entry() {
    let Some((role, args)) = common::child_role() else {
        return;
    };
    match role.as_str() {
        "spawn_without_init" => match process::spawn(square, 2) {
            Err(SpawnError::NotInitialized) => common::report("refused"),
            other => panic!("{other:?}"),
        },
        "middle" => {
            let survive = args[0] == "survive";
            let sleeper = Builder::new()
                .survive_parent(survive)
                .spawn(sleep_ms, 60_000)
                .unwrap();
            println!("GRANDCHILD {}", sleeper.pid());
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role {other}"),
    }
}
