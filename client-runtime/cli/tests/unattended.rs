//! A host left alone for 400 days (issue 13): the real `kasane-host` binary serves under a
//! clock moved forward day by day (libfaketime, one offset file shared with every process),
//! and the real `kasane` client logs in on every simulated day.
//!
//! Nobody restarts the host. It re-signs timestamp and snapshot itself; an operator re-signs
//! each offline role (`kasane-registry refresh`) a few days before it expires — except once,
//! when targets is forgotten: logins then fail, `/readyz` says `registry: targets expired
//! at …`, the log names the role and when, and the late `refresh --role targets` brings
//! logins back with the host still running.
//!
//! The three binaries are found beside this package's `kasane` (`cargo test --workspace`
//! builds them all). About 400 logins: ~75 s on a 2-core machine. Needs libfaketime and curl
//! (skipped with a printed reason locally, a failure under `CI`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use common::{FAKETIME_LIB, Sim};
const DAYS: u64 = 400;
/// From this day the operator forgets to re-sign targets (once: until it has expired).
const FORGET_TARGETS_FROM: u64 = 200;
/// An operator re-signs a role this many days before it expires.
const RENEW_AHEAD: u64 = 3;

/// Each offline role's lifetime in days (`kasane-registry`'s defaults).
fn lifetimes() -> BTreeMap<&'static str, u64> {
    [
        ("revocations", 30),
        ("targets", 90),
        ("authors", 90),
        ("root", 365),
    ]
    .into()
}

#[test]
fn a_host_left_alone_for_400_days_keeps_serving_logins() {
    if !Path::new(FAKETIME_LIB).exists() {
        assert!(std::env::var_os("CI").is_none(), "CI: libfaketime missing");
        eprintln!("SKIPPED: {FAKETIME_LIB} missing (apt install libfaketime)");
        return;
    }
    let sim = Sim::start(true);
    let life = lifetimes();
    let mut expires: BTreeMap<&str, u64> = life.clone();
    let mut versions = vec![sim.snapshot_version()];
    // Set when the operator forgets targets, cleared once the late refresh brought it back.
    let (mut forgetting, mut forgotten) = (false, false);
    for day in 0..=DAYS {
        sim.set_day(day);
        for (role, at) in &mut expires {
            if *at > day + RENEW_AHEAD {
                continue;
            }
            if *role == "targets" && (forgetting || (!forgotten && day >= FORGET_TARGETS_FROM)) {
                forgetting = true;
                continue;
            }
            sim.refresh(role);
            *at = day + life[role];
        }
        let out = sim.login();
        if expires["targets"] <= day {
            expired_targets_day(&sim, day, &out);
            sim.refresh("targets");
            expires.insert("targets", day + life["targets"]);
            (forgetting, forgotten) = (false, true);
            let again = sim.login();
            assert!(
                again.status.success(),
                "day {day}, after refresh: {again:?}"
            );
        } else {
            assert!(out.status.success(), "day {day}: {out:?}\n{}", sim.log());
        }
        if day % 10 == 0 {
            versions.push(sim.snapshot_version());
        }
    }
    assert!(forgotten);
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "snapshot versions went backwards: {versions:?}"
    );
    // 7-day online roles re-signed at half-life: about every 3.5 days over 400.
    let last = *versions.last().unwrap();
    assert!(last > versions[0] + 100, "snapshot versions {versions:?}");
}

/// The day targets has expired: the login fails, `/readyz` is 503 naming targets, and the
/// log says which role and since when.
fn expired_targets_day(sim: &Sim, day: u64, login: &Output) {
    assert!(
        !login.status.success(),
        "day {day}: a login on expired targets"
    );
    let (status, body) = sim.get("/readyz");
    assert_eq!(status, 503, "day {day}: {body}");
    assert!(body.starts_with("registry: targets expired at "), "{body}");
    let log = sim.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("targets") && l.contains("expired")),
        "{log}"
    );
}
