//! `kasane login` end to end: a real host over TLS on loopback (in this test process), the
//! binary run as a script would (`--password-stdin`, `--card`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use kasane_host::config::Config;
use kasane_host::setup::{self, CodeCard};
use kasane_host::store::{Clock, SystemClock};

const PASSWORD: &str = "correct horse battery staple";

struct Host {
    url: String,
    card: CodeCard,
    data: tempfile::TempDir,
    /// Serving until dropped (the host library's one entry, housekeeping included).
    _running: kasane_host::server::Running,
}

/// A host on 127.0.0.1:0 with user alice, whose card text is at `<data>/cards/alice.card`.
async fn start() -> Host {
    let data = tempfile::tempdir().unwrap();
    setup::init(data.path(), Some("127.0.0.1:0"), SystemClock.now())
        .await
        .unwrap();
    // The file alone: a developer's KASANE_* variables must not reach the test host.
    let cfg = Config::load_file(data.path()).unwrap();
    let host = setup::load_host(cfg, Arc::new(SystemClock)).await.unwrap();
    let card = CodeCard::generate("alice");
    setup::add_user(
        host.store().as_ref(),
        host.opaque_keys(),
        &card,
        PASSWORD.as_bytes(),
        SystemClock.now(),
    )
    .await
    .unwrap();
    setup::write_card(&card, data.path(), None).unwrap();
    let running = kasane_host::server::spawn(host).await.unwrap();
    Host {
        url: format!("https://{}", running.addr()),
        card,
        data,
        _running: running,
    }
}

fn arg(p: PathBuf) -> String {
    p.to_str().unwrap().to_owned()
}

/// Runs `kasane <connection flags> <args>` with `stdin`, in a blocking task.
async fn kasane(host: &Host, state: &Path, args: &[&str], stdin: &str) -> Output {
    kasane_with_ca(
        host,
        &host.data.path().join("tls/cert.pem"),
        state,
        args,
        stdin,
    )
    .await
}

async fn kasane_with_ca(
    host: &Host,
    ca: &Path,
    state: &Path,
    args: &[&str],
    stdin: &str,
) -> Output {
    run(kasane_command(host, ca, state, args, Umask::Inherit), stdin).await
}

/// Whether the child runs under the test's umask or under umask 000, where any file created
/// without an explicit private mode would be readable by everyone.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Umask {
    Inherit,
    Zero,
}

fn kasane_command(host: &Host, ca: &Path, state: &Path, args: &[&str], umask: Umask) -> Command {
    let d = host.data.path();
    let mut cmd = match umask {
        Umask::Inherit => Command::new(env!("CARGO_BIN_EXE_kasane")),
        Umask::Zero => {
            let mut sh = Command::new("sh");
            sh.args([
                "-c",
                "umask 000 && exec \"$0\" \"$@\"",
                env!("CARGO_BIN_EXE_kasane"),
            ]);
            sh
        }
    };
    cmd.args([
        "--server",
        &host.url,
        "--ca",
        &arg(ca.to_owned()),
        "--root",
        &arg(d.join("registry/metadata/1.root.json")),
        "--card",
        &arg(d.join("cards/alice.card")),
        "--password-stdin",
    ])
    .args(args)
    .env("HOME", state)
    .env("XDG_CONFIG_HOME", state.join("config"))
    .env("XDG_CACHE_HOME", state.join("cache"))
    .env_remove("KASANE_CONFIG")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` with `stdin`, in a blocking task.
async fn run(mut cmd: Command, stdin: &str) -> Output {
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Every file and directory below `dir` (itself included), with its permission bits.
#[cfg(unix)]
fn modes_below(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

/// Under umask 000, a cold login (trust state, module, compile cache) and a warm one leave
/// no file or directory in the client's state that group or others can read.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_state_is_private_whatever_the_umask() {
    let host = start().await;
    let state = tempfile::tempdir().unwrap();
    let ca = host.data.path().join("tls/cert.pem");
    for _ in 0..2 {
        let cmd = kasane_command(&host, &ca, state.path(), &["login"], Umask::Zero);
        let o = run(cmd, &format!("{PASSWORD}\n")).await;
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let modes = modes_below(&state.path().join("cache"));
    assert!(
        modes.len() > 3,
        "the login wrote nothing to check: {modes:?}"
    );
    let open: Vec<_> = modes.iter().filter(|(_, m)| m & 0o077 != 0).collect();
    assert!(open.is_empty(), "readable by group or others: {open:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_prints_the_transform_its_hash_signer_and_cache_then_from_cache() {
    let host = start().await;
    let state = tempfile::tempdir().unwrap();
    let o = kasane(&host, state.path(), &["login"], &format!("{PASSWORD}\n")).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("logged in as alice"), "{out}");
    assert!(out.contains("transform: "), "{out}");
    assert!(out.contains("(sha256 "), "{out}");
    assert!(out.contains("signed by: "), "{out}");
    assert!(out.contains("module from cache: no"), "{out}");
    assert!(out.contains("access counter: 1;"), "{out}");
    assert!(out.contains("logged out"), "{out}");
    // The trust state and the verified module stay in the state dir.
    let root = std::fs::read(host.data.path().join("registry/metadata/1.root.json")).unwrap();
    let trust = kasane_client::trust_dir(&state.path().join("cache/kasane"), &root);
    assert!(trust.join("state.json").exists());

    let o = kasane(&host, state.path(), &["status"], "").await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("versions trusted: "), "{out}");
    assert!(out.contains("host: reachable"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_one_line_and_exit_5() {
    let host = start().await;
    let state = tempfile::tempdir().unwrap();
    let o = kasane(&host, state.path(), &["--no-cache", "login"], "not it\n").await;
    assert_eq!(o.status.code(), Some(5));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("kasane: error: logging in as alice: login refused"),
        "{err}"
    );
    // --no-cache leaves nothing on disk.
    assert!(!state.path().join("cache").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_hosts_certificate_is_refused_with_exit_4() {
    let host = start().await;
    let other = tempfile::tempdir().unwrap();
    let (pem, _, _) = setup::self_signed_cert().unwrap();
    let ca = other.path().join("other.pem");
    std::fs::write(&ca, pem).unwrap();
    let o = kasane_with_ca(
        &host,
        &ca,
        other.path(),
        &["--no-cache", "login"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Output read so far from a child, filled by a reader thread.
struct Screen {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl Screen {
    /// Waits (up to 60 s) until the output after `from` contains `what`; the position after it.
    fn wait_for(&mut self, from: usize, what: &str) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(i) = self.seen[from..].find(what) {
                return from + i + what.len();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(bytes) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no {what:?} in the output:\n{}", self.seen),
            }
        }
    }
}

/// The terminal of the `kasane` process below `root` (a descendant of `script`), if it runs.
#[cfg(unix)]
fn kasane_tty(root: u32) -> Option<String> {
    let kasane = std::fs::canonicalize(env!("CARGO_BIN_EXE_kasane")).ok()?;
    let mut pids = vec![root];
    while let Some(pid) = pids.pop() {
        if std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_ref() == Some(&kasane) {
            let tty = std::fs::read_link(format!("/proc/{pid}/fd/0")).ok()?;
            return Some(tty.to_string_lossy().into_owned());
        }
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    None
}

/// Waits (up to 60 s) until the `kasane` process's terminal has echo turned off, as `stty`
/// reports it: the observable state the typing must wait for, instead of a guessed sleep.
#[cfg(unix)]
fn wait_until_echo_is_off(root: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(tty) = kasane_tty(root) {
            let o = Command::new("stty")
                .args(["-F", &tty, "-a"])
                .output()
                .unwrap();
            let settings = String::from_utf8_lossy(&o.stdout);
            if settings.split_whitespace().any(|w| w == "-echo") {
                return;
            }
        }
        assert!(std::time::Instant::now() < deadline, "echo never went off");
        std::thread::yield_now();
    }
}

/// The interactive login on a terminal (util-linux `script` gives the binary a pty): the
/// password and each challenge are prompted for, and nothing typed is echoed.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_login_prompts_on_the_terminal_without_echo() {
    use std::io::Read;
    if Command::new("script").arg("--version").output().is_err() {
        // CI installs util-linux (.ci/run); there a missing `script` is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "no `script` (util-linux) to make a pty, and CI is set"
        );
        eprintln!("skipped: no `script` (util-linux) to make a pty");
        return;
    }
    let host = start().await;
    let state = tempfile::tempdir().unwrap();
    let d = host.data.path();
    let line = format!(
        "'{}' --no-cache --server {} --ca '{}' --root '{}' --user alice login",
        env!("CARGO_BIN_EXE_kasane"),
        host.url,
        d.join("tls/cert.pem").display(),
        d.join("registry/metadata/1.root.json").display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("HOME", state.path())
        .env("XDG_CONFIG_HOME", state.path().join("config"))
        .env_remove("KASANE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let script_pid = child.id();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Screen {
        rx,
        seen: String::new(),
    };
    let mut input = child.stdin.take().unwrap();
    let card = CodeCard {
        user: host.card.user.clone(),
        pairs: host.card.pairs.clone(),
    };
    let answers = tokio::task::spawn_blocking(move || {
        let mut at = screen.wait_for(0, "Password for alice: ");
        // rpassword prints the prompt, then turns echo off: type only once it is off.
        wait_until_echo_is_off(script_pid);
        input.write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
        let mut asked = Vec::new();
        loop {
            let next_challenge = screen.seen[at..].find("Challenge ");
            let done = screen.seen[at..].find("logged out");
            match (next_challenge, done) {
                (Some(c), d) if d.is_none_or(|d| c < d) => {
                    let start = at + c + "Challenge ".len();
                    let end = screen.wait_for(start, ": ");
                    let prompt = screen.seen[start..end - 2].to_owned();
                    wait_until_echo_is_off(script_pid);
                    let answer = card.response(&prompt).unwrap().to_owned();
                    input.write_all(format!("{answer}\n").as_bytes()).unwrap();
                    asked.push((prompt, answer));
                    at = end;
                }
                (_, Some(_)) => break,
                _ => {
                    // Neither yet: wait for more output.
                    match screen.rx.recv_timeout(std::time::Duration::from_secs(60)) {
                        Ok(b) => screen.seen.push_str(&String::from_utf8_lossy(&b)),
                        Err(_) => panic!("stuck:\n{}", screen.seen),
                    }
                }
            }
        }
        (screen.seen, asked)
    })
    .await
    .unwrap();
    let (seen, asked) = answers;
    let status = child.wait().unwrap();
    assert!(status.success(), "{seen}");
    assert!(!asked.is_empty(), "{seen}");
    assert!(seen.contains("logged in as alice"), "{seen}");
    assert!(!seen.contains(PASSWORD), "the password was echoed:\n{seen}");
    for (prompt, answer) in &asked {
        assert!(seen.contains(&format!("Challenge {prompt}: ")));
        assert!(
            !seen.contains(answer.as_str()),
            "{answer} was echoed:\n{seen}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_from_stdin_then_inbox_shows_the_message() {
    let host = start().await;
    let state = tempfile::tempdir().unwrap();
    // --password-stdin: the first line is the password, the rest is the message.
    let o = kasane(
        &host,
        state.path(),
        &["--no-cache", "send", "--to", "alice"],
        &format!("{PASSWORD}\nnote to self\n"),
    )
    .await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("sent to alice: 13 bytes, seq 1"), "{out}");

    let o = kasane(
        &host,
        state.path(),
        &["--no-cache", "inbox", "--wait", "2"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("from alice at "), "{out}");
    assert!(out.contains(": note to self"), "{out}");
}

/// `kasane passwd`: the current password and card log in, the new password comes from
/// standard input's second line, the new card is written private; afterwards the old
/// password fails (exit 5) and the new password with the new card logs in. An existing card
/// file is never overwritten.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwd_replaces_the_password_and_writes_a_private_new_card() {
    use std::os::unix::fs::PermissionsExt;
    let host = start().await;
    let state = tempfile::tempdir().unwrap();
    let new_card = state.path().join("new.card");
    let args = [
        "--no-cache",
        "passwd",
        "--new-card",
        new_card.to_str().unwrap(),
    ];
    let o = kasane(
        &host,
        state.path(),
        &args,
        &format!("{PASSWORD}\nfresh pass 2\n"),
    )
    .await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("password and card changed"), "{out}");
    let mode = std::fs::metadata(&new_card).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Refused before anything is asked: the card file exists.
    let o = kasane(&host, state.path(), &args, &format!("{PASSWORD}\nagain\n")).await;
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The old password no longer logs in …
    let o = kasane(
        &host,
        state.path(),
        &["--no-cache", "login"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert_eq!(o.status.code(), Some(5));
    // … the new one with the new card does.
    std::fs::copy(&new_card, host.data.path().join("cards/alice.card")).unwrap();
    let o = kasane(
        &host,
        state.path(),
        &["--no-cache", "login"],
        "fresh pass 2\n",
    )
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
