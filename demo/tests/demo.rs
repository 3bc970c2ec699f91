//! `kasane-demo`: a host in-process, two users, logins from their cards, a relayed message
//! and the audit log verified; exit 0 and every step narrated.
#![allow(clippy::unwrap_used, reason = "test code: a failure is a test failure")]

use std::process::Command;

#[test]
fn demo_runs_every_step_and_exits_0() {
    let home = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kasane-demo"))
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("TMPDIR", home.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}{err}");
    for step in 1..=11 {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{step}. "))),
            "step {step} missing:\n{out}"
        );
    }
    assert!(out.contains("alice logged in") && out.contains("bob logged in"));
    assert_eq!(out.matches("signed by: ").count(), 2, "{out}");
    assert!(out.contains("from alice at "), "{out}");
    assert!(out.contains("audit log verified"), "{out}");
    assert!(out.contains("demo finished"), "{out}");
    // The temporary data directories are gone.
    let left: Vec<_> = std::fs::read_dir(home.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("kasane-demo"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
