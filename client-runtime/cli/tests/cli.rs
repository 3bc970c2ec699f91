//! The `kasane` binary as a user runs it: help, and one clear error line for bad settings.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use std::process::{Command, Output};

fn kasane(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_kasane"))
        .args(args)
        // No config file or state from the machine running the tests.
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env_remove("KASANE_CONFIG")
        .output()
        .unwrap()
}

fn stderr_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn help_lists_the_commands_and_exit_codes() {
    let o = kasane(&["--help"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in ["login", "send", "inbox", "session", "status"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(cmd)),
            "{cmd} missing from:\n{out}"
        );
    }
    // The demo is its own program now, so this client links no server code.
    assert!(!out.lines().any(|l| l.trim_start().starts_with("demo")));
    assert!(out.contains("kasane-demo"), "{out}");
    assert!(out.contains("--password-stdin") && out.contains("--card"));
    assert!(out.contains("Exit status"));
}

#[test]
fn a_missing_ca_file_is_one_error_line_and_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("1.root.json");
    std::fs::write(&root, "{}").unwrap();
    let o = kasane(&[
        "--server",
        "https://127.0.0.1:1",
        "--ca",
        dir.path().join("nope.pem").to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--user",
        "alice",
        "login",
    ]);
    assert_eq!(o.status.code(), Some(3));
    let lines = stderr_lines(&o);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("kasane: error: reading the CA file"));
}

/// `kasane login` as alice with a CA and a root file of these contents (to a port nothing
/// answers on): its one line of standard error, after checking it exits 3 (configuration).
fn config_refusal(ca_text: &str, root_text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_text).unwrap();
    let root = dir.path().join("1.root.json");
    std::fs::write(&root, root_text).unwrap();
    let o = kasane(&[
        "--server",
        "https://127.0.0.1:1",
        "--ca",
        ca.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--user",
        "alice",
        "login",
    ]);
    assert_eq!(o.status.code(), Some(3));
    let lines = stderr_lines(&o);
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0].clone()
}

#[test]
fn a_ca_file_without_a_certificate_is_refused() {
    let line = config_refusal("not a certificate\n", "{}");
    assert!(line.contains("holds no PEM certificate"), "{line}");
}

/// A `--root` file that is not a TUF root (another role's file, not JSON) is named before any
/// connection, with exit code 3 (configuration).
#[test]
fn a_root_file_that_is_not_a_root_is_named() {
    let timestamp = r#"{"signed": {"_type": "timestamp"}, "signatures": []}"#;
    for (body, why) in [
        (timestamp, "its type is \"timestamp\""),
        ("hello", "expected value"),
    ] {
        let line = config_refusal("-----BEGIN CERTIFICATE-----\n", body);
        assert!(
            line.contains("is not a TUF root") && line.contains(why),
            "{line}"
        );
    }
}

#[test]
fn a_missing_root_is_one_error_line_and_exit_3() {
    let o = kasane(&[
        "--server",
        "https://127.0.0.1:1",
        "--ca",
        "/dev/null",
        "inbox",
    ]);
    assert_eq!(o.status.code(), Some(3));
    let lines = stderr_lines(&o);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("kasane: error: no registry root"));
}

#[test]
fn a_bad_config_file_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "servr = \"https://x\"\n").unwrap();
    let o = kasane(&["--config", cfg.to_str().unwrap(), "status"]);
    assert_eq!(o.status.code(), Some(3));
    let lines = stderr_lines(&o);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("kasane: error: reading the config file"));
}

#[test]
fn status_reads_the_config_file_and_says_when_the_host_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    // Port 1 on loopback: nothing listens there.
    std::fs::write(
        &cfg,
        "server = \"https://127.0.0.1:1\"\nuser = \"carol\"\nca = \"ca.pem\"\nno_cache = true\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("ca.pem"), "").unwrap();
    let o = kasane(&["--config", cfg.to_str().unwrap(), "status"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("server: https://127.0.0.1:1"), "{out}");
    assert!(out.contains("user: carol"), "{out}");
    assert!(out.contains(&dir.path().join("ca.pem").display().to_string()));
    assert!(out.contains("--no-cache"), "{out}");
    assert!(out.contains("host: NOT reachable"), "{out}");
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(stderr_lines(&o).len(), 1);
}

#[test]
fn padding_is_on_unless_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let base = "server = \"https://127.0.0.1:1\"\nno_cache = true\n";
    let padding = |file: &str, flags: &[&str]| {
        std::fs::write(&cfg, format!("{base}{file}")).unwrap();
        let mut args = vec!["--config", cfg.to_str().unwrap()];
        args.extend_from_slice(flags);
        args.push("status");
        let out = String::from_utf8_lossy(&kasane(&args).stdout).into_owned();
        let line = out.lines().find(|l| l.starts_with("padding: "));
        line.unwrap_or_else(|| panic!("no padding line in:\n{out}"))["padding: ".len()..].to_owned()
    };
    assert_eq!(padding("", &[]), "on");
    assert_eq!(padding("", &["--no-pad"]), "off");
    assert_eq!(padding("pad = false\n", &[]), "off");
    assert_eq!(padding("pad = false\n", &["--pad"]), "on");
    // The last of the two flags wins.
    assert_eq!(padding("", &["--pad", "--no-pad"]), "off");
    assert_eq!(padding("", &["--no-pad", "--pad"]), "on");
}
