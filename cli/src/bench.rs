//! `shmkit bench`: one-way latency of a 64-byte message between two
//! processes of this machine, over shmkit and the kernel's own ways, all
//! in one run and set against the machine's floor (one cache line moved
//! between the two processes).
//!
//! Each row is a ping-pong: this process sends, a child (this program run
//! again, `shmkit::process`) answers, and half of each timed round trip
//! is one sample. The full suite, with every peer and payloads to 16 MiB,
//! is `cargo bench` in the repository.
#![allow(clippy::disallowed_types)] // std's atomics in a ShmSafe struct, as users write them

use shmkit::channel::{ByteReceiver, ByteSender, Receiver, Sender};
use shmkit::process::{self, Builder, ProcessPool, Shutdown};
use shmkit::{CachePadded, Shm, ShmSafe};
use std::io::{BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The ball of the floor's ping-pong, alone on its cache lines.
#[derive(ShmSafe)]
#[repr(C)]
struct Line {
    value: CachePadded<AtomicU64>,
}

const STOP: u64 = u64::MAX;
const LINE_VAR: &str = "SHMKIT_BENCH_LINE";
const PING_VAR: &str = "SHMKIT_BENCH_PING";
const PONG_VAR: &str = "SHMKIT_BENCH_PONG";
/// How long either side waits for the other before it gives up.
const PATIENCE: Duration = Duration::from_secs(10);

/// p50, p99, p99.9 of `samples` (sorted here).
pub fn percentiles(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| {
        if samples.is_empty() {
            return f64::NAN;
        }
        let i = ((samples.len() - 1) as f64 * p).round() as usize;
        samples[i.min(samples.len() - 1)]
    };
    (at(0.5), at(0.99), at(0.999))
}

fn spin_until(mut ready: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    let mut n = 0u32;
    while !ready() {
        std::hint::spin_loop();
        n = n.wrapping_add(1);
        if n % 1024 == 0 {
            if Instant::now() > deadline {
                return Err("the other process stopped answering".into());
            }
            std::thread::yield_now();
        }
    }
    Ok(())
}

/// Times `rounds` round trips of `round` after `rounds / 10` unmeasured
/// ones; one-way samples.
fn time_rounds(
    rounds: usize,
    progress: &mut dyn FnMut(usize),
    mut round: impl FnMut(u64) -> Result<(), String>,
) -> Result<Vec<f64>, String> {
    for i in 0..rounds / 10 {
        round(i as u64)?;
    }
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let t = Instant::now();
        round((rounds + i) as u64)?;
        samples.push(t.elapsed().as_nanos() as f64 / 2.0);
        if i % 256 == 0 {
            progress(i);
        }
    }
    Ok(samples)
}

// ---- the children ---------------------------------------------------------

fn floor_child(_: ()) -> Result<(), String> {
    // SAFETY: the parent passed this region under LINE_VAR for this use.
    let region = unsafe { shmkit::RegionOptions::for_type::<Line>().from_env(LINE_VAR) }
        .map_err(|e| e.to_string())?;
    let line = Shm::<Line>::from_region(region).map_err(|e| e.to_string())?;
    let mut expect = 1u64;
    loop {
        let mut seen = 0;
        spin_until(|| {
            seen = line.value.load(Ordering::Acquire);
            seen == expect || seen == STOP
        })?;
        if seen == STOP {
            return Ok(());
        }
        line.value.store(seen + 1, Ordering::Release);
        expect = seen + 2;
    }
}

fn channel_child(_: ()) -> Result<(), String> {
    // SAFETY: the parent passed these regions for these ends only.
    let ping = unsafe { Receiver::<[u8; 64]>::from_env(PING_VAR) }.map_err(|e| e.to_string())?;
    // SAFETY: as above.
    let pong = unsafe { Sender::<[u8; 64]>::from_env(PONG_VAR) }.map_err(|e| e.to_string())?;
    for msg in ping.iter() {
        pong.send(msg).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn bytes_child(_: ()) -> Result<(), String> {
    // SAFETY: the parent passed these regions for these ends only.
    let ping = unsafe { ByteReceiver::from_env(PING_VAR) }.map_err(|e| e.to_string())?;
    // SAFETY: as above.
    let pong = unsafe { ByteSender::from_env(PONG_VAR) }.map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(64);
    while ping.recv(&mut buf).is_ok() {
        pong.send(&buf).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Echoes 64-byte messages from stdin to stdout (the pipe row).
fn pipe_child(_: ()) -> Result<(), String> {
    let (mut i, mut o) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut msg = [0u8; 64];
    while i.read_exact(&mut msg).is_ok() {
        o.write_all(&msg).map_err(|e| e.to_string())?;
        o.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Echoes 64-byte messages over a Unix socket at `path`.
fn socket_child(path: String) -> Result<(), String> {
    let mut s = UnixStream::connect(&path).map_err(|e| e.to_string())?;
    let mut msg = [0u8; 64];
    while s.read_exact(&mut msg).is_ok() {
        s.write_all(&msg).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn echo(x: u64) -> u64 {
    x
}

// ---- the rows ---------------------------------------------------------------

fn floor(rounds: usize, progress: &mut dyn FnMut(usize)) -> Result<Vec<f64>, String> {
    let line = Shm::<Line>::anonymous(|_| {}).map_err(|e| e.to_string())?;
    let child = Builder::new()
        .pass_region(LINE_VAR, line.region())
        .map_err(|e| e.to_string())?
        .spawn(floor_child, ())
        .map_err(|e| e.to_string())?;
    let mut next = 1u64;
    let samples = time_rounds(rounds, progress, |_| {
        line.value.store(next, Ordering::Release);
        let want = next + 1;
        spin_until(|| line.value.load(Ordering::Acquire) == want)?;
        next += 2;
        Ok(())
    });
    line.value.store(STOP, Ordering::Release);
    child.join().map_err(|e| e.to_string())??;
    samples
}

fn channel(rounds: usize, progress: &mut dyn FnMut(usize)) -> Result<Vec<f64>, String> {
    let ping = Sender::<[u8; 64]>::anonymous(64).map_err(|e| e.to_string())?;
    let pong = Receiver::<[u8; 64]>::anonymous(64).map_err(|e| e.to_string())?;
    let child = Builder::new()
        .pass_region(PING_VAR, ping.region())
        .and_then(|b| b.pass_region(PONG_VAR, pong.region()))
        .map_err(|e| e.to_string())?
        .spawn(channel_child, ())
        .map_err(|e| e.to_string())?;
    let samples = time_rounds(rounds, progress, |i| {
        let mut msg = [0u8; 64];
        msg[..8].copy_from_slice(&i.to_ne_bytes());
        ping.send(msg).map_err(|e| e.to_string())?;
        match pong.recv() {
            Ok(back) if back == msg => Ok(()),
            Ok(_) => Err("a wrong echo".into()),
            Err(e) => Err(e.to_string()),
        }
    });
    drop(ping);
    child.join().map_err(|e| e.to_string())??;
    samples
}

fn byte_channel(rounds: usize, progress: &mut dyn FnMut(usize)) -> Result<Vec<f64>, String> {
    let ping = ByteSender::anonymous(4096, 256).map_err(|e| e.to_string())?;
    let pong = ByteReceiver::anonymous(4096, 256).map_err(|e| e.to_string())?;
    let child = Builder::new()
        .pass_region(PING_VAR, ping.region())
        .and_then(|b| b.pass_region(PONG_VAR, pong.region()))
        .map_err(|e| e.to_string())?
        .spawn(bytes_child, ())
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(64);
    let samples = time_rounds(rounds, progress, |i| {
        let mut msg = [0u8; 64];
        msg[..8].copy_from_slice(&i.to_ne_bytes());
        ping.send(&msg).map_err(|e| e.to_string())?;
        pong.recv(&mut buf).map_err(|e| e.to_string())?;
        (buf[..] == msg[..])
            .then_some(())
            .ok_or("a wrong echo".into())
    });
    drop(ping);
    child.join().map_err(|e| e.to_string())??;
    samples
}

fn pipe(rounds: usize, progress: &mut dyn FnMut(usize)) -> Result<Vec<f64>, String> {
    let mut child = Builder::new()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn(pipe_child, ())
        .map_err(|e| e.to_string())?;
    let mut tx = child.child_mut().take_stdin().ok_or("no stdin")?;
    let mut rx = BufReader::new(child.child_mut().take_stdout().ok_or("no stdout")?);
    // The child is a re-executed binary: a test harness may print first.
    let samples = time_rounds(rounds, progress, |i| {
        let mut msg = [0u8; 64];
        msg[..8].copy_from_slice(&i.to_ne_bytes());
        tx.write_all(&msg).map_err(|e| e.to_string())?;
        let mut back = [0u8; 64];
        rx.read_exact(&mut back).map_err(|e| e.to_string())?;
        (back == msg).then_some(()).ok_or("a wrong echo".into())
    });
    drop(tx);
    child.join().map_err(|e| e.to_string())??;
    samples
}

fn socket(rounds: usize, progress: &mut dyn FnMut(usize)) -> Result<Vec<f64>, String> {
    let dir = std::env::temp_dir().join(format!("shmkit-bench-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let listener = UnixListener::bind(&dir).map_err(|e| e.to_string())?;
    let child =
        process::spawn(socket_child, dir.display().to_string()).map_err(|e| e.to_string())?;
    let (mut s, _) = listener.accept().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&dir);
    let samples = time_rounds(rounds, progress, |i| {
        let mut msg = [0u8; 64];
        msg[..8].copy_from_slice(&i.to_ne_bytes());
        s.write_all(&msg).map_err(|e| e.to_string())?;
        let mut back = [0u8; 64];
        s.read_exact(&mut back).map_err(|e| e.to_string())?;
        (back == msg).then_some(()).ok_or("a wrong echo".into())
    });
    drop(s);
    child.join().map_err(|e| e.to_string())??;
    samples
}

fn pool_apply(rounds: usize, progress: &mut dyn FnMut(usize)) -> Result<Vec<f64>, String> {
    let pool = ProcessPool::builder()
        .workers(1)
        .build()
        .map_err(|e| e.to_string())?;
    let samples = time_rounds(rounds, progress, |i| match pool.apply(echo, i) {
        Ok(v) if v == i => Ok(()),
        Ok(_) => Err("a wrong result".into()),
        Err(e) => Err(e.to_string()),
    });
    pool.shutdown(Shutdown::Wait);
    samples
}

type Bench = fn(usize, &mut dyn FnMut(usize)) -> Result<Vec<f64>, String>;

/// Every row, the floor first.
pub const ROWS: [(&str, Bench); 6] = [
    ("floor: one cache line", floor),
    ("shmkit channel<[u8; 64]>", channel),
    ("shmkit byte_channel", byte_channel),
    ("shmkit ProcessPool::apply (round trip / 2)", pool_apply),
    ("pipe", pipe),
    ("Unix socket", socket),
];
