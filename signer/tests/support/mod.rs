//! Shared test helpers: finding tools (Python with `cryptography`), and the skip rule.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Under CI (env `CI` set) a missing tool fails the test; elsewhere the test says why it is
/// skipped and returns.
pub(crate) fn skip_or_fail(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so this test may not be skipped: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// A Python interpreter that can `import cryptography`: env `KASANE_TEST_PYTHON`, else
/// `/tmp/tufvenv/bin/python`, else `python3` on PATH. `None` (after [`skip_or_fail`]) if none.
pub(crate) fn python_with_cryptography() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("KASANE_TEST_PYTHON") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![
            PathBuf::from("/tmp/tufvenv/bin/python"),
            PathBuf::from("python3"),
        ],
    };
    for python in &candidates {
        let ok = Command::new(python)
            .args(["-c", "import cryptography"])
            .output()
            .is_ok_and(|out| out.status.success());
        if ok {
            return Some(python.clone());
        }
    }
    skip_or_fail(&format!(
        "no Python with the `cryptography` module (tried {candidates:?}; set KASANE_TEST_PYTHON)"
    ));
    None
}

/// Runs `python -c script args...`, panics with its stderr on failure, returns its stdout.
pub(crate) fn run_python(python: &Path, script: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python output is UTF-8")
}
