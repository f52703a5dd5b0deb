//! What the failover benchmarks share (`examples/failover_bench.rs`, in one process, and
//! `examples/failover_bench_processes.rs`, on separate processes; `#[path]`-included): trial counts from
//! the environment and the printed figures. Prints only; asserts no times.

#![allow(dead_code)]

/// `name` from the environment as a count, else `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// The `fraction` percentile of `sorted` (nearest rank); NaN when empty.
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index]
}

/// One line of figures: count, p50, max, min and every trial, in seconds.
pub fn report(label: &str, mut seconds: Vec<f64>) {
    seconds.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{label}: n={} p50={:.2} s max={:.2} s min={:.2} s (all: {})",
        seconds.len(),
        percentile(&seconds, 0.5),
        seconds.last().copied().unwrap_or(f64::NAN),
        seconds.first().copied().unwrap_or(f64::NAN),
        seconds.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(" ")
    );
}
