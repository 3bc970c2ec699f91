//! Kasane benchmarks: see `benches/` and BENCHMARKS.md at the repository root.
#![forbid(unsafe_code)]

use std::time::Duration;

/// The `p`-th percentile (0..=100) of `samples` (sorted in place), nearest rank.
#[must_use]
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// One line of a latency table: name, n, p50 and p99 in milliseconds.
#[must_use]
pub fn row(name: &str, samples: &mut [Duration]) -> String {
    let p50 = percentile(samples, 50.0);
    let p99 = percentile(samples, 99.0);
    format!(
        "{name:<44} n={:<4} p50 {:>8.2} ms   p99 {:>8.2} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&mut v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&mut [], 50.0), Duration::ZERO);
    }
}
