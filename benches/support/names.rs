//! Region names for benches that create named regions.

pub fn unique_names(count: usize) -> Vec<String> {
    // A process-local counter (a mutex, not an atomic: clippy.toml keeps
    // raw atomics out of everything but the crate's primitive module).
    static NEXT: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
    let start = {
        let mut next = NEXT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let start = *next;
        *next += count;
        start
    };
    let pid = std::process::id();
    (start..start + count)
        .map(|i| format!("/shmkit-bench-{pid}-{i}"))
        .collect()
}
