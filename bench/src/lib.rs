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

/// A closed-loop load generator: tasks that each run one operation after another.
pub mod load {
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::time::{Duration, Instant};

    use super::percentile;

    /// Time every run of [`drive`] warms up before it measures.
    pub const WARMUP: Duration = Duration::from_millis(500);

    /// Worker phases.
    const WARM: u8 = 0;
    const MEASURE: u8 = 1;
    const STOP: u8 = 2;

    /// Throughput and latency of one variant in one cell.
    #[derive(Debug, Clone, Copy)]
    pub struct Stats {
        /// Operations completed in the window.
        pub count: usize,
        /// Operations that failed (not in `count` nor in the latencies).
        pub failed: usize,
        /// The window, seconds.
        pub secs: f64,
        /// Median latency.
        pub p50: Duration,
        /// 99th percentile latency.
        pub p99: Duration,
        /// CPU time (user + system) the whole process used during the window: client and
        /// host alike when both run here.
        pub cpu: Duration,
    }

    impl Stats {
        /// The stats of `samples` (and `failed` failures) over `secs`.
        #[must_use]
        pub fn of(mut samples: Vec<Duration>, failed: usize, secs: f64) -> Self {
            Self {
                count: samples.len(),
                failed,
                secs,
                p50: percentile(&mut samples, 50.0),
                p99: percentile(&mut samples, 99.0),
                cpu: Duration::ZERO,
            }
        }

        /// CPU time per completed operation (zero when none completed).
        #[must_use]
        pub fn cpu_per_op(&self) -> Duration {
            u32::try_from(self.count)
                .ok()
                .filter(|&n| n > 0)
                .map_or(Duration::ZERO, |n| self.cpu / n)
        }

        /// Cores busy on average during the window.
        #[must_use]
        pub fn cores(&self) -> f64 {
            self.cpu.as_secs_f64() / self.secs
        }

        /// Completions per second.
        #[must_use]
        pub fn rate(&self) -> f64 {
            self.count as f64 / self.secs
        }
    }

    /// Runs every op in a loop of its own: `WARMUP`, then `window` during which each completed
    /// op's duration (from its start) is recorded. Throughput: completions in the window. An op
    /// answering `false` failed: counted apart, not timed.
    pub async fn drive<F, Fut>(window: Duration, ops: Vec<F>) -> Stats
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        drive_paced(window, ops, None).await
    }

    /// [`drive`], each loop starting an op at most once per `pace` (when given): an offered
    /// load of `ops.len() / pace` per second, below saturation if the system keeps up, so the
    /// latencies are an op's own and not its wait behind the others. A late op starts the next
    /// one at once (no catching up).
    pub async fn drive_paced<F, Fut>(window: Duration, ops: Vec<F>, pace: Option<Duration>) -> Stats
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = bool> + Send,
    {
        let phase = Arc::new(AtomicU8::new(WARM));
        let mut tasks = Vec::new();
        for mut op in ops {
            let phase = phase.clone();
            tasks.push(tokio::spawn(async move {
                let (mut samples, mut failed) = (Vec::with_capacity(4096), 0);
                while phase.load(Ordering::Relaxed) != STOP {
                    let t = Instant::now();
                    let ok = op().await;
                    let took = t.elapsed();
                    // Counted by when it ended, not by when its pace ran out (which may be
                    // after the window).
                    let now = phase.load(Ordering::Relaxed);
                    if now == MEASURE {
                        if ok {
                            samples.push(took);
                        } else {
                            failed += 1;
                        }
                    }
                    if let Some(pace) = pace.filter(|_| now != STOP) {
                        tokio::time::sleep_until((t + pace).into()).await;
                    }
                }
                (samples, failed)
            }));
        }
        tokio::time::sleep(WARMUP).await;
        phase.store(MEASURE, Ordering::Relaxed);
        let (t, cpu) = (Instant::now(), process_cpu());
        tokio::time::sleep(window).await;
        phase.store(STOP, Ordering::Relaxed);
        let secs = t.elapsed().as_secs_f64();
        let cpu = process_cpu().saturating_sub(cpu);
        let (mut all, mut failed) = (Vec::new(), 0);
        for task in tasks {
            // A worker that panicked counts as nothing measured.
            let (samples, f) = task.await.unwrap_or_default();
            all.extend(samples);
            failed += f;
        }
        Stats {
            cpu,
            ..Stats::of(all, failed, secs)
        }
    }

    /// CPU time (user + system) of this process so far, from `/proc/self/stat` (clock
    /// ticks of 10 ms); zero where that cannot be read.
    #[must_use]
    pub fn process_cpu() -> Duration {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return Duration::ZERO;
        };
        // After the command name (in parentheses, which may hold spaces): utime is field
        // 14 and stime field 15 of the line, the 12th and 13th after the name.
        let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Duration::from_millis((tick(11) + tick(12)) * 10)
    }
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

    #[tokio::test]
    async fn a_paced_loop_starts_an_op_at_most_once_per_pace() {
        let (window, pace) = (Duration::from_millis(300), Duration::from_millis(50));
        let ops: Vec<_> = (0..4).map(|_| || async { true }).collect();
        let stats = load::drive_paced(window, ops, Some(pace)).await;
        // Instant ops, four loops: at most one per pace each in the window (plus the one
        // already started when it opened); unpaced they would be thousands.
        let most = 4 * (window.as_millis() / pace.as_millis() + 1);
        assert!(
            (1..=most as usize).contains(&stats.count),
            "{} ops",
            stats.count
        );
        assert_eq!(stats.failed, 0);
    }
}
