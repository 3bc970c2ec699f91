//! Host metrics as Prometheus text (`GET /metrics`): logins by outcome, throttling,
//! transform choices, sandbox errors by kind, derive latency, housekeeping passes. Atomics only: no lock is taken
//! on the login path except the one for a new label value.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency buckets of the derive histogram, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// A login's end, for `kasane_logins_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A session was opened.
    Success,
    /// The uniform failure (any reason).
    Failure,
    /// Refused while the user or source was locked.
    Throttled,
}

/// The host's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    success: AtomicU64,
    failure: AtomicU64,
    throttled: AtomicU64,
    locks: AtomicU64,
    choices: Mutex<BTreeMap<String, u64>>,
    sandbox_errors: Mutex<BTreeMap<String, u64>>,
    derive_buckets: [AtomicU64; BUCKETS.len()],
    derive_count: AtomicU64,
    derive_micros: AtomicU64,
    housekeeping_ok: AtomicU64,
    housekeeping_failed: AtomicU64,
    purged_pending_logins: AtomicU64,
    purged_sessions: AtomicU64,
    purged_throttle: AtomicU64,
    purged_audit_chains: AtomicU64,
    purged_audit_records: AtomicU64,
    dead_letters: AtomicU64,
    gateway_status: Mutex<BTreeMap<String, u64>>,
    gateway_buckets: [AtomicU64; BUCKETS.len()],
    gateway_count: AtomicU64,
    gateway_micros: AtomicU64,
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, key: &str) {
    if let Ok(mut m) = map.lock() {
        *m.entry(key.to_owned()).or_default() += 1;
    }
}

/// Writes a histogram (`name`, help) of [`BUCKETS`].
fn histogram(
    s: &mut String,
    (name, help): (&str, &str),
    buckets: &[AtomicU64; BUCKETS.len()],
    count: &AtomicU64,
    micros: &AtomicU64,
) {
    let _ = writeln!(s, "# HELP {name} {help}");
    let _ = writeln!(s, "# TYPE {name} histogram");
    for (b, a) in BUCKETS.iter().zip(buckets) {
        let _ = writeln!(s, "{name}_bucket{{le=\"{b}\"}} {}", g(a));
    }
    let count = g(count);
    let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {count}");
    #[allow(
        clippy::cast_precision_loss,
        reason = "a metric sum, precision is irrelevant"
    )]
    let sum = g(micros) as f64 / 1e6;
    let _ = writeln!(s, "{name}_sum {sum}");
    let _ = writeln!(s, "{name}_count {count}");
}

/// Adds one observation of `d` to a histogram's buckets, count and sum.
fn observe(
    buckets: &[AtomicU64; BUCKETS.len()],
    count: &AtomicU64,
    micros: &AtomicU64,
    d: Duration,
) {
    let secs = d.as_secs_f64();
    for (b, slot) in BUCKETS.iter().zip(buckets) {
        if secs <= *b {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }
    count.fetch_add(1, Ordering::Relaxed);
    micros.fetch_add(
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

impl Metrics {
    /// Counts a login outcome.
    pub fn login(&self, outcome: Outcome) {
        match outcome {
            Outcome::Success => &self.success,
            Outcome::Failure => &self.failure,
            Outcome::Throttled => &self.throttled,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a queued message moved to the dead letters (it did not open).
    pub fn dead_letter(&self) {
        self.dead_letters.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failure that locked a user or source.
    pub fn lock_engaged(&self) {
        self.locks.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the choice of a transform for a login.
    pub fn transform_chosen(&self, name: &str) {
        bump(&self.choices, name);
    }

    /// Counts a sandbox error by kind.
    pub fn sandbox_error(&self, err: &kasane_sandbox::SandboxError) {
        use kasane_sandbox::SandboxError as E;
        let kind = match err {
            E::OutOfFuel => "out_of_fuel",
            E::MemoryLimit => "memory_limit",
            E::TableLimit => "table_limit",
            E::StackOverflow => "stack_overflow",
            E::WallClockTimeout => "wall_clock_timeout",
            E::Trap(_) => "trap",
            E::BadAbi(_) => "bad_abi",
            E::ForbiddenImport { .. } => "forbidden_import",
            E::UnsupportedFeature(_) => "unsupported_feature",
            E::BadOutput(_) => "bad_output",
            E::ModuleTooLarge { .. } => "module_too_large",
            E::InvalidWasm(_) => "invalid_wasm",
            E::Guest(_) => "guest",
            _ => "other",
        };
        bump(&self.sandbox_errors, kind);
    }

    /// Records one derive's wall-clock time.
    pub fn derive_latency(&self, d: Duration) {
        observe(
            &self.derive_buckets,
            &self.derive_count,
            &self.derive_micros,
            d,
        );
    }

    /// Counts one gateway request by the status the client got from the upstream (502 or
    /// 504 when it got none) and records how long the upstream took.
    pub fn gateway(&self, status: u16, d: Duration) {
        bump(&self.gateway_status, &status.to_string());
        observe(
            &self.gateway_buckets,
            &self.gateway_count,
            &self.gateway_micros,
            d,
        );
    }

    /// Counts a housekeeping pass and what it purged.
    pub fn housekeeping_done(&self, purged: &crate::store::Purged) {
        self.housekeeping_ok.fetch_add(1, Ordering::Relaxed);
        self.purged_pending_logins
            .fetch_add(purged.pending_logins, Ordering::Relaxed);
        self.purged_sessions
            .fetch_add(purged.sessions, Ordering::Relaxed);
        self.purged_throttle
            .fetch_add(purged.throttle, Ordering::Relaxed);
        self.purged_audit_chains
            .fetch_add(purged.audit_chains, Ordering::Relaxed);
        self.purged_audit_records
            .fetch_add(purged.audit_records, Ordering::Relaxed);
    }

    /// Counts a housekeeping pass that failed.
    pub fn housekeeping_failed(&self) {
        self.housekeeping_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.render_logins(&mut s);
        self.render_labelled(&mut s);
        self.render_derive(&mut s);
        self.render_housekeeping(&mut s);
        self.render_gateway(&mut s);
        s
    }

    fn render_gateway(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "# HELP kasane_gateway_requests_total Gateway requests by the upstream's status (502/504: no answer)."
        );
        let _ = writeln!(s, "# TYPE kasane_gateway_requests_total counter");
        if let Ok(m) = self.gateway_status.lock() {
            for (status, n) in m.iter() {
                let _ = writeln!(
                    s,
                    "kasane_gateway_requests_total{{status=\"{status}\"}} {n}"
                );
            }
        }
        histogram(
            s,
            (
                "kasane_gateway_upstream_seconds",
                "Time the upstream took to answer a gateway request.",
            ),
            &self.gateway_buckets,
            &self.gateway_count,
            &self.gateway_micros,
        );
    }

    fn render_logins(&self, s: &mut String) {
        let _ = writeln!(s, "# HELP kasane_logins_total Logins by outcome.");
        let _ = writeln!(s, "# TYPE kasane_logins_total counter");
        for (o, a) in [
            ("success", &self.success),
            ("failure", &self.failure),
            ("throttled", &self.throttled),
        ] {
            let _ = writeln!(s, "kasane_logins_total{{outcome=\"{o}\"}} {}", g(a));
        }
        let _ = writeln!(
            s,
            "# HELP kasane_throttle_locks_total Failures that locked a user or source address."
        );
        let _ = writeln!(s, "# TYPE kasane_throttle_locks_total counter");
        let _ = writeln!(s, "kasane_throttle_locks_total {}", g(&self.locks));
        let _ = writeln!(
            s,
            "# HELP kasane_queue_dead_letters_total Queued messages that did not open under the queue key, moved to relay_dead_letters."
        );
        let _ = writeln!(s, "# TYPE kasane_queue_dead_letters_total counter");
        let _ = writeln!(
            s,
            "kasane_queue_dead_letters_total {}",
            g(&self.dead_letters)
        );
    }

    fn render_labelled(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "# HELP kasane_transform_choices_total Transforms chosen for logins."
        );
        let _ = writeln!(s, "# TYPE kasane_transform_choices_total counter");
        if let Ok(m) = self.choices.lock() {
            for (k, v) in m.iter() {
                let _ = writeln!(
                    s,
                    "kasane_transform_choices_total{{transform=\"{}\"}} {v}",
                    escape(k)
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP kasane_sandbox_errors_total Sandbox errors by kind."
        );
        let _ = writeln!(s, "# TYPE kasane_sandbox_errors_total counter");
        if let Ok(m) = self.sandbox_errors.lock() {
            for (k, v) in m.iter() {
                let _ = writeln!(s, "kasane_sandbox_errors_total{{kind=\"{k}\"}} {v}");
            }
        }
    }

    fn render_derive(&self, s: &mut String) {
        histogram(
            s,
            (
                "kasane_derive_seconds",
                "Host-side transform derive latency.",
            ),
            &self.derive_buckets,
            &self.derive_count,
            &self.derive_micros,
        );
    }

    fn render_housekeeping(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "# HELP kasane_housekeeping_passes_total Housekeeping passes by outcome."
        );
        let _ = writeln!(s, "# TYPE kasane_housekeeping_passes_total counter");
        for (o, a) in [
            ("ok", &self.housekeeping_ok),
            ("error", &self.housekeeping_failed),
        ] {
            let _ = writeln!(
                s,
                "kasane_housekeeping_passes_total{{outcome=\"{o}\"}} {}",
                g(a)
            );
        }
        let _ = writeln!(
            s,
            "# HELP kasane_housekeeping_purged_total Entries housekeeping deleted: expired ones, \
             audit chains and records pruned by retain_days."
        );
        let _ = writeln!(s, "# TYPE kasane_housekeeping_purged_total counter");
        for (k, a) in [
            ("pending_logins", &self.purged_pending_logins),
            ("sessions", &self.purged_sessions),
            ("throttle", &self.purged_throttle),
            ("audit_chains", &self.purged_audit_chains),
            ("audit_records", &self.purged_audit_records),
        ] {
            let _ = writeln!(
                s,
                "kasane_housekeeping_purged_total{{kind=\"{k}\"}} {}",
                g(a)
            );
        }
    }
}

fn g(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.login(Outcome::Success);
        m.login(Outcome::Failure);
        m.login(Outcome::Failure);
        m.transform_chosen("ocra");
        m.sandbox_error(&kasane_sandbox::SandboxError::OutOfFuel);
        m.derive_latency(Duration::from_millis(3));
        let t = m.render();
        assert!(
            t.contains("kasane_logins_total{outcome=\"failure\"} 2"),
            "{t}"
        );
        assert!(t.contains("kasane_transform_choices_total{transform=\"ocra\"} 1"));
        assert!(t.contains("kasane_sandbox_errors_total{kind=\"out_of_fuel\"} 1"));
        assert!(t.contains("kasane_derive_seconds_bucket{le=\"0.005\"} 1"));
        assert!(t.contains("kasane_derive_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(t.contains("kasane_derive_seconds_count 1"));
        m.housekeeping_done(&crate::store::Purged {
            sessions: 2,
            pending_logins: 0,
            throttle: 3,
            audit_chains: 4,
            audit_records: 5,
        });
        m.housekeeping_failed();
        let t = m.render();
        assert!(t.contains("kasane_housekeeping_passes_total{outcome=\"ok\"} 1"));
        assert!(t.contains("kasane_housekeeping_passes_total{outcome=\"error\"} 1"));
        assert!(t.contains("kasane_housekeeping_purged_total{kind=\"sessions\"} 2"));
        assert!(t.contains("kasane_housekeeping_purged_total{kind=\"audit_chains\"} 4"));
        assert!(t.contains("kasane_housekeeping_purged_total{kind=\"audit_records\"} 5"));
    }
}
