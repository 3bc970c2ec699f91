//! `login`, `token`, `send`, `inbox`, `session`, `passwd` and `status`.

use std::io::{BufRead, Read};

use anyhow::{Context, anyhow};
use kasane_client::{Client, ClientError, LoginReport, Received, Session, utc};
use kasane_protocol::wire::Shown;
use zeroize::Zeroizing;

use crate::credentials;
use crate::fail::{Class, Failure, OrFail};
use crate::settings::Settings;

pub(crate) fn client_fail(e: ClientError, during: &str) -> Failure {
    let class = crate::fail::classify(&e);
    Failure::new(class, anyhow::Error::new(e).context(during.to_owned()))
}

fn messaging_fail(e: ClientError, during: &str) -> Failure {
    let class = crate::fail::classify_messaging(&e);
    Failure::new(class, anyhow::Error::new(e).context(during.to_owned()))
}

/// What every login prints: the transform, its hash, its signer, cache, counter, challenges.
pub(crate) fn print_report(r: &LoginReport, indent: &str) {
    for line in r.lines(indent) {
        println!("{line}");
    }
}

/// Connects and logs in with the responder the settings ask for.
async fn connect_and_login(s: &Settings) -> Result<(Session, LoginReport), Failure> {
    let cfg = s.client_config()?;
    let (user, mut responder) = credentials::responder(s)?;
    let client = Client::connect(cfg)
        .await
        .map_err(|e| client_fail(e, "connecting"))?;
    client
        .login(&user, responder.as_mut())
        .await
        .map_err(|e| client_fail(e, &format!("logging in as {user}")))
}

async fn close(session: Session) -> Result<(), Failure> {
    session
        .close()
        .await
        .map_err(|e| client_fail(e, "logging out"))
}

/// `kasane login`.
pub(crate) async fn login(s: &Settings) -> Result<(), Failure> {
    let (session, report) = connect_and_login(s).await?;
    print_report(&report, "");
    close(session).await?;
    println!("logged out");
    Ok(())
}

/// `kasane token`: the report on standard error, the token alone on standard output.
pub(crate) async fn token(s: &Settings) -> Result<(), Failure> {
    let (session, report) = connect_and_login(s).await?;
    for line in report.lines("") {
        eprintln!("{line}");
    }
    println!("{}", &*session.bearer_token());
    Ok(())
}

/// `kasane passwd`.
pub(crate) async fn passwd(s: &Settings, new_card: &std::path::Path) -> Result<(), Failure> {
    if new_card.exists() {
        return Err(Failure::new(
            Class::Config,
            anyhow!(
                "{} exists: refusing to overwrite a card",
                new_card.display()
            ),
        ));
    }
    let (mut session, report) = connect_and_login(s).await?;
    print_report(&report, "");
    let password = match credentials::new_password(s) {
        Ok(p) => p,
        Err(f) => {
            let _ = session.close().await;
            return Err(f);
        }
    };
    let card = kasane_protocol::card::CodeCard::generate(session.user());
    // The card first: a card lost after the host took it would lock the user out.
    let text = Zeroizing::new(card.to_text());
    kasane_os::fs::write_private_new(new_card, text.as_bytes())
        .with_context(|| format!("writing the new card to {}", new_card.display()))
        .or_fail(Class::Config)?;
    let changed = session.change_credentials(password, &card).await;
    if let Err(e) = changed {
        let _ = session.close().await;
        if host_kept_the_old(&e) {
            let _ = std::fs::remove_file(new_card);
            return Err(client_fail(e, "changing the password and card"));
        }
        let during = format!(
            "changing the password and card (the host may have taken them: the new card stays in {}; \
             log in with the new password and card, and if that fails the old ones still work)",
            new_card.display()
        );
        return Err(client_fail(e, &during));
    }
    println!(
        "password and card changed; new card written to {}",
        new_card.display()
    );
    close(session).await
}

/// Whether a failed change certainly left the host with the old password and card: it
/// answered with a refusal, or the change failed here before anything was sent. A timeout,
/// a broken connection or an answer that could not be read may come after the host took
/// the new ones, so the new card must not be deleted then: it would be the only copy.
fn host_kept_the_old(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Refused(_)
            | ClientError::PasswordRefused
            | ClientError::LoginRefused
            | ClientError::Input(_)
            | ClientError::Task(_)
    )
}

/// `kasane send`.
pub(crate) async fn send(s: &Settings, to: &str, message: Option<String>) -> Result<(), Failure> {
    // With --password-stdin the responder takes standard input's first line as the
    // password; the message is the rest, read after the login.
    let (session, report) = connect_and_login(s).await?;
    print_report(&report, "");
    let body = match message {
        Some(m) => m.into_bytes(),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut buf)
                .context("reading the message from standard input")
                .or_fail(Class::Message)?;
            buf
        }
    };
    let accepted = session
        .send(to, &body)
        .await
        .map_err(|e| messaging_fail(e, &format!("sending to {to}")));
    let accepted = match accepted {
        Ok(a) => a,
        Err(f) => {
            let _ = session.close().await;
            return Err(f);
        }
    };
    println!(
        "sent to {to}: {} bytes, seq {}, accepted at {}",
        body.len(),
        accepted.seq,
        utc(accepted.received_at)
    );
    close(session).await
}

fn print_message(m: &Received) {
    println!("from {} at {}: {}", m.from, utc(m.sent_at), shown(&m.body));
}

/// Another user's message body as text that cannot pass for anything else on the reader's
/// terminal: a line break starts an indented line (no line of a body starts where a `from …`
/// line does), trailing line breaks are dropped, and every other control character (a
/// carriage return, an escape sequence), the bidirectional-text controls and the invisible
/// characters are printed as escapes (`\r`, `\u{1b}`, `\u{202e}`: [`Shown`]); tabs stay.
/// Printed as they came, they would let the sender forge a line `from admin at …` under the
/// real one, or drive the terminal.
fn shown(body: &[u8]) -> String {
    use std::fmt::Write as _;
    let text = String::from_utf8_lossy(body);
    let text = text.trim_end_matches(['\n', '\r']);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\n    "),
            '\t' => out.push(c),
            _ => {
                let _ = write!(out, "{}", Shown(c.encode_utf8(&mut [0; 4])));
            }
        }
    }
    out
}

/// `kasane inbox`.
pub(crate) async fn inbox(s: &Settings, wait: u32) -> Result<(), Failure> {
    let (mut session, report) = connect_and_login(s).await?;
    print_report(&report, "");
    let got = session
        .inbox_report(wait)
        .await
        .map_err(|e| messaging_fail(e, "reading the inbox"));
    let got = match got {
        Ok(g) => g,
        Err(f) => {
            let _ = session.close().await;
            return Err(f);
        }
    };
    if got.received.is_empty() && got.refused.is_empty() {
        println!("no messages");
    }
    for m in &got.received {
        print_message(m);
    }
    // Messages that did not open stay unacknowledged on the host; say so, on stdout, as
    // part of the listing (the command itself worked).
    for e in &got.refused {
        println!("refused a message: {e}");
    }
    if got.more {
        println!("(more messages are waiting: run `kasane inbox` again)");
    }
    if let Some(e) = got.ack_error {
        let _ = session.close().await;
        let during =
            "acknowledging the messages shown (the next `kasane inbox` may show them again)";
        return Err(messaging_fail(e, during));
    }
    close(session).await
}

/// Seconds one inbox poll of `session` waits; lines typed meanwhile are sent after it.
const POLL_SECS: u32 = 2;

/// `kasane session`: one task owns the session; it polls the inbox (waiting up to
/// [`POLL_SECS`]) and sends the lines typed meanwhile, so the session is never used twice
/// at once.
pub(crate) async fn session(s: &Settings) -> Result<(), Failure> {
    let (mut session, report) = connect_and_login(s).await?;
    print_report(&report, "");
    println!("type `@user message`, or `/to user` then plain lines; `/quit` to leave");
    let mut typed = spawn_stdin_lines();
    let mut default_to: Option<String> = None;
    let result = loop {
        match send_typed(&mut typed, &mut session, &mut default_to).await {
            Ok(Flow::Go) => {}
            Ok(Flow::Quit) => break Ok(()),
            Err(f) => break Err(f),
        }
        match session.inbox_report(POLL_SECS).await {
            Ok(got) => {
                got.received.iter().for_each(print_message);
                for e in &got.refused {
                    println!("(refused a message: {e})");
                }
                if let Some(e) = &got.ack_error {
                    println!("(acknowledging them failed, they may come again: {e})");
                }
            }
            Err(e) => break Err(messaging_fail(e, "reading the inbox")),
        }
    };
    match result {
        Ok(()) => {
            close(session).await?;
            println!("logged out");
            Ok(())
        }
        Err(f) => {
            let _ = session.close().await;
            Err(f)
        }
    }
}

/// Lines of standard input, read on a thread. std's stdin, not tokio's: with
/// --password-stdin the password line was read through std's buffer, which may already hold
/// the lines after it.
fn spawn_stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Whether the session goes on after the lines typed so far.
enum Flow {
    Go,
    Quit,
}

/// What one typed line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Typed {
    Nothing,
    Quit,
    DefaultTo(String),
    Send { to: String, text: String },
    Hint(&'static str),
}

fn interpret(line: &str, default_to: Option<&str>) -> Typed {
    let line = line.trim();
    if line.is_empty() {
        return Typed::Nothing;
    }
    if let Some(command) = line.strip_prefix('/') {
        return slash_command(command);
    }
    let (to, text) = match (line.strip_prefix('@'), default_to) {
        (Some(rest), _) => match rest.split_once(' ') {
            Some((to, text)) => (to, text.trim()),
            None => return Typed::Hint("(usage: @user message)"),
        },
        (None, Some(to)) => (to, line),
        (None, None) => return Typed::Hint("(no recipient: `@user message` or `/to user`)"),
    };
    Typed::Send {
        to: to.to_owned(),
        text: text.to_owned(),
    }
}

/// A line starting with `/`: `/quit`, `/to user`, or a hint. Nothing that starts with `/` is
/// sent as text, so a mistyped command never reaches anyone (`@user /…` sends such a line).
fn slash_command(command: &str) -> Typed {
    match command.split_once(' ') {
        None if command == "quit" => Typed::Quit,
        None if command == "to" => Typed::Hint("(usage: /to user)"),
        Some(("to", user)) if !user.trim().is_empty() => Typed::DefaultTo(user.trim().to_owned()),
        _ => Typed::Hint(
            "(the commands are `/to user` and `/quit`; to send a line starting with `/`, type `@user /…`)",
        ),
    }
}

/// Sends everything typed so far. Standard input ending leaves as `/quit` does.
async fn send_typed(
    typed: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    session: &mut Session,
    default_to: &mut Option<String>,
) -> Result<Flow, Failure> {
    use tokio::sync::mpsc::error::TryRecvError;
    loop {
        let line = match typed.try_recv() {
            Ok(line) => line,
            Err(TryRecvError::Empty) => return Ok(Flow::Go),
            Err(TryRecvError::Disconnected) => return Ok(Flow::Quit),
        };
        match interpret(&line, default_to.as_deref()) {
            Typed::Nothing => {}
            Typed::Quit => return Ok(Flow::Quit),
            Typed::Hint(h) => println!("{h}"),
            Typed::DefaultTo(user) => {
                println!("(sending to {user} by default)");
                *default_to = Some(user);
            }
            Typed::Send { to, text } => match session.send(&to, text.as_bytes()).await {
                Ok(a) => println!("(sent to {to}, seq {})", a.seq),
                Err(e) => return Err(messaging_fail(e, &format!("sending to {to}"))),
            },
        }
    }
}

/// `kasane status`.
pub(crate) async fn status(s: &Settings) -> Result<(), Failure> {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not set)".to_owned());
    let show_path = |v: &Option<std::path::PathBuf>| {
        v.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(not set)".to_owned())
    };
    match &s.config_file {
        Some((p, true)) => println!("config file: {}", p.display()),
        Some((p, false)) => println!("config file: {} (absent)", p.display()),
        None => println!("config file: (no platform config dir)"),
    }
    println!("server: {}", show(&s.server));
    if s.server_name.is_some() {
        println!("server name: {}", show(&s.server_name));
    }
    println!("CA: {}", show_path(&s.ca));
    println!("registry root: {}", show_path(&s.root));
    println!("user: {}", show(&s.user));
    println!("card: {}", show_path(&s.card));
    println!("padding: {}", if s.pad { "on" } else { "off" });
    println!("timeout: {} s", s.timeout.as_secs());
    match &s.state_dir {
        None => println!("state: none (--no-cache: nothing is kept on disk)"),
        Some(dir) => {
            println!("state dir: {}", dir.display());
            let root = s.root.as_ref().and_then(|r| std::fs::read(r).ok());
            print_state(dir, root.as_deref());
        }
    }
    match (&s.server, &s.ca) {
        (Some(server), Some(ca)) => {
            let pem = std::fs::read(ca)
                .with_context(|| format!("reading the CA file {}", ca.display()))
                .or_fail(Class::Config)?;
            match crate::health::check(server, s.server_name.as_deref(), &pem, s.timeout).await {
                Ok(body) => println!("host: reachable ({server}/healthz answered {body:?})"),
                Err(e) => {
                    println!("host: NOT reachable: {}", kasane_os::report::Chain(&*e));
                    return Err(Failure::new(
                        Class::Connect,
                        anyhow!("{server} is not reachable"),
                    ));
                }
            }
        }
        _ => println!("host: not checked (needs --server and --ca)"),
    }
    Ok(())
}

/// What the state dir holds for the pinned `root` (its trust store: [`kasane_client::trust_dir`]):
/// the trusted registry metadata (`metadata/<role>.json`, as last verified: shown, not
/// re-verified here), the latest trusted time (`state.json`), and how many modules and compiled
/// modules are cached.
fn print_state(dir: &std::path::Path, root: Option<&[u8]>) {
    let Some(root) = root else {
        println!("  trusted registry state: not shown (no readable --root)");
        return print_cached(dir);
    };
    let trust = kasane_client::trust_dir(dir, root);
    let state = trust.join("state.json");
    let Ok(bytes) = std::fs::read(&state) else {
        println!("  trusted registry state: none yet (made at the first login)");
        return print_cached(dir);
    };
    println!("  trusted registry state ({}):", trust.display());
    let version = |role: &str| -> Option<u64> {
        let b = std::fs::read(trust.join("metadata").join(format!("{role}.json"))).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
        v.get("signed")?.get("version")?.as_u64()
    };
    let versions: Vec<String> = ["root", "timestamp", "snapshot", "targets"]
        .iter()
        .filter_map(|role| version(role).map(|n| format!("{role} v{n}")))
        .collect();
    println!("    versions trusted: {}", versions.join(", "));
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) => {
            if let Some(t) = v.get("latest_time").and_then(serde_json::Value::as_u64) {
                println!("    latest trusted time: {}", utc(t));
            }
        }
        Err(_) => println!("    {} is unreadable", state.display()),
    }
    print_cached(dir);
}

/// How many verified and compiled modules the state dir caches.
fn print_cached(dir: &std::path::Path) {
    let count = |sub: &str, ext: &str| {
        std::fs::read_dir(dir.join(sub))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == ext))
                    .count()
            })
            .unwrap_or(0)
    };
    println!(
        "  cached: {} verified modules, {} compiled modules",
        count("modules", "wasm"),
        count("cache", "cwasm")
    );
}

#[cfg(test)]
mod tests {
    use super::{ClientError, Typed, host_kept_the_old, interpret, shown};
    use kasane_protocol::wire::RefusalReason;

    /// `kasane passwd` deletes its new card only when the host certainly kept the old
    /// credentials: after a timeout or a broken answer the new card may be the only copy.
    #[test]
    fn a_new_card_is_deleted_only_after_a_certain_refusal() {
        for kept in [
            ClientError::Refused(RefusalReason::SessionEnded),
            ClientError::PasswordRefused,
            ClientError::LoginRefused,
        ] {
            assert!(host_kept_the_old(&kept), "{kept:?}");
        }
        let broken = kasane_client::ConnectError::Tls(rustls::Error::DecryptError);
        for unsure in [ClientError::TimedOut, ClientError::Connect(broken)] {
            assert!(!host_kept_the_old(&unsure), "{unsure:?}");
        }
    }

    #[test]
    fn a_message_cannot_forge_a_line_or_drive_the_terminal() {
        assert_eq!(shown("hi there, ålice\n".as_bytes()), "hi there, ålice");
        assert_eq!(shown(b"a\tb\r\n\r\n"), "a\tb");
        let forged = "hi\nfrom admin at 2026-12-07 09:00:00 UTC: reset your password";
        assert_eq!(
            shown(forged.as_bytes()),
            "hi\n    from admin at 2026-12-07 09:00:00 UTC: reset your password"
        );
        assert_eq!(shown(b"\x1b[2J\rx\x00"), "\\u{1b}[2J\\rx\\0");
        assert_eq!(shown("a\u{202e}b".as_bytes()), "a\\u{202e}b");
        assert_eq!(shown("ad\u{200b}min".as_bytes()), "ad\\u{200b}min");
        assert_eq!(shown(b"C:\\dir \xff"), "C:\\dir \u{fffd}");
    }

    #[test]
    fn typed_lines_mean_what_the_help_says() {
        assert_eq!(interpret("  ", None), Typed::Nothing);
        assert_eq!(interpret("/quit", Some("bob")), Typed::Quit);
        assert_eq!(interpret("/to  bob ", None), Typed::DefaultTo("bob".into()));
        let send = |to: &str, text: &str| Typed::Send {
            to: to.into(),
            text: text.into(),
        };
        assert_eq!(interpret("@bob hi there", None), send("bob", "hi there"));
        assert_eq!(interpret("@carol hi", Some("bob")), send("carol", "hi"));
        assert_eq!(interpret("hello", Some("bob")), send("bob", "hello"));
        assert!(matches!(interpret("@bob", None), Typed::Hint(_)));
        assert!(matches!(interpret("hello", None), Typed::Hint(_)));
        // A mistyped or unknown command is never sent as text.
        for typo in ["/qiut", "/to", "/to  ", "/tobob", "/quit now", "/"] {
            assert!(
                matches!(interpret(typo, Some("bob")), Typed::Hint(_)),
                "{typo}"
            );
        }
        assert_eq!(interpret("@bob /quit", None), send("bob", "/quit"));
    }
}
