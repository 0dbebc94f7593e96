//! Rows measured by another program: Python's `multiprocessing` (run
//! with `python3` when there is one) and iceoryx2 (the workspace's
//! `shmkit-peer-iceoryx2` binary, when it is built).

use super::far::Cpus;
use super::measure::{Figures, Plan};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The Python side of the Python rows.
const PYTHON_PEER: &str = include_str!("python_peer.py");

/// Whether `python3` runs here.
pub fn python() -> bool {
    Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python row, `kind` `pipe` (`multiprocessing.Pipe`) or `queue`
/// (`multiprocessing.Queue`), at `plan`'s size. Python reports
/// percentiles only, so the figures hold those three as their samples.
pub fn python_row(kind: &str, plan: &Plan, cpus: Cpus) -> Result<Figures, String> {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(PYTHON_PEER).arg(kind);
    for n in [plan.size, plan.warmup, plan.rounds, plan.stream] {
        cmd.arg(n.to_string());
    }
    if let Some((near, far)) = cpus.0 {
        cmd.arg(near.to_string()).arg(far.to_string());
    }
    let out = super::measure::unpinned(&mut cmd)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no message");
        return Err(format!("python3 failed: {last}"));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = line
        .split_whitespace()
        .map(|w| w.parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("python3 printed {line:?}"))?;
    let [p50, p99, p999, n, per_second] = v[..] else {
        return Err(format!("python3 printed {line:?}"));
    };
    Ok(Figures::from_quantiles(
        [p50, p99, p999],
        n as usize,
        (per_second > 0.0).then_some(per_second),
    ))
}

/// The iceoryx2 peer's binary: `SHMKIT_ICEORYX2_PEER`, else beside this
/// program (`cargo build --release -p shmkit-peer-iceoryx2` puts it
/// there), else on `PATH`.
pub fn iceoryx2_peer() -> Option<PathBuf> {
    const NAME: &str = "shmkit-peer-iceoryx2";
    if let Some(p) = std::env::var_os("SHMKIT_ICEORYX2_PEER") {
        return Some(PathBuf::from(p));
    }
    let beside = std::env::current_exe().ok()?.with_file_name(NAME);
    if beside.is_file() {
        return Some(beside);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(NAME))
            .find(|p| p.is_file())
    })
}

/// iceoryx2's rows at every size, measured by its peer binary (loans,
/// stamped and sent, the receiver polling, as iceoryx2's own benchmarks
/// do): `(size, figures)` for each size it measured.
pub fn iceoryx2_rows(peer: &PathBuf, quick: bool) -> Result<Vec<(usize, Figures)>, String> {
    let csv = std::env::temp_dir().join(format!("shmkit-bench-iox-{}.csv", std::process::id()));
    let mut cmd = Command::new(peer);
    cmd.arg("iceoryx2")
        .env("SHMKIT_SUITE_CSV", &csv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if quick {
        cmd.env("SHMKIT_BENCH_QUICK", "1");
    }
    let out = super::measure::unpinned(&mut cmd)
        .output()
        .map_err(|e| format!("running {}: {e}", peer.display()))?;
    let text = std::fs::read_to_string(&csv);
    let _ = std::fs::remove_file(&csv);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no message");
        return Err(format!("the iceoryx2 peer failed: {last}"));
    }
    let text = text.map_err(|e| format!("reading the iceoryx2 peer's figures: {e}"))?;
    let mut rows = Vec::new();
    // Lines: `iceoryx2,SIZE,P50,P99,P999,SAMPLES,PER_SECOND`.
    for line in text.lines().filter(|l| l.starts_with("iceoryx2,")) {
        let v: Vec<f64> = line
            .split(',')
            .skip(1)
            .map(|w| w.parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("the iceoryx2 peer wrote {line:?}"))?;
        let [size, p50, p99, p999, n, per_second] = v[..] else {
            return Err(format!("the iceoryx2 peer wrote {line:?}"));
        };
        let figures = Figures::from_quantiles(
            [p50, p99, p999],
            n as usize,
            (per_second > 0.0).then_some(per_second),
        );
        rows.push((size as usize, figures));
    }
    Ok(rows)
}
