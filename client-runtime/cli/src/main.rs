//! `kasane`: the thin client's command line. It parses arguments, reads the configuration
//! and credentials, and calls the `kasane_client` library.
//!
//! # Module map
//!
//! - `settings`: the connection settings — flags over the config file over defaults — and
//!   where state lives.
//! - `credentials`: the password and challenge answers: prompted without echo on the
//!   terminal, or read from standard input and a code card file for scripts.
//! - `commands`: `login`, `token`, `send`, `inbox`, `session`, `status`.
//! - `proxy`: `proxy`, the local HTTP front of the sealed gateway.
//! - `health`: `GET /healthz` over TLS 1.3 for `status`.
//! - `fail`: exit codes by class of failure, and the one-line error report.
#![forbid(unsafe_code)]

mod commands;
mod credentials;
mod fail;
mod health;
mod proxy;
mod settings;

use clap::{Parser, Subcommand};

use crate::fail::Failure;

const AFTER_HELP: &str = "\
Configuration:
  Flags win over the config file, which is read from --config, else $KASANE_CONFIG, else
  the platform config dir (Linux: $XDG_CONFIG_HOME/kasane/config.toml or
  ~/.config/kasane/config.toml). Its keys: server, server_name, ca, root, user, card,
  no_cache, pad, timeout_secs. Relative paths are relative to the config file.
  State (trust store and compile cache) lives in the platform cache dir (Linux:
  $XDG_CACHE_HOME/kasane or ~/.cache/kasane) unless --no-cache.

Credentials:
  The password and every challenge answer are prompted for on the terminal without echo.
  For scripts: --password-stdin reads the password from the first line of standard input,
  and --card FILE answers the challenges from a code card (the text `kasane-host user add`
  writes to <data>/cards/<user>.card).

Exit status:
  0  success
  1  other failure
  2  usage error (bad flags or arguments)
  3  configuration or local file error (config, --ca, --root, --card, state dir)
  4  connection or trust failure (host unreachable, bad certificate, untrusted module)
  5  login refused (wrong password or answers, throttled, revoked)
  6  messaging failure after login (send, inbox, session, proxy)

The self-contained demo (a host and two clients in one process) is its own program,
`kasane-demo`, so that this client links no server code.";

/// The Kasane thin client: logs in to a Kasane host with a password and code-card
/// challenges answered through a transform the host's signed registry chose, then sends
/// and reads sealed messages.
#[derive(Parser, Debug)]
#[command(name = "kasane", version, about, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    conn: settings::Flags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Logs in, prints what the login ran (transform, hash, signer, cache), logs out.
    Login,
    /// Logs in, sends one message, logs out.
    Send {
        /// The recipient.
        #[arg(long, value_name = "USER")]
        to: String,
        /// The message; read from standard input when absent (after the password line
        /// with --password-stdin).
        message: Option<String>,
    },
    /// Logs in, prints the messages waiting, logs out. A message's later lines are indented
    /// (none can pass for a `from …` line), and its control characters but tab and newline,
    /// bidirectional-text controls and invisible characters are printed as escapes (`\r`,
    /// `\u{1b}`, `\u{200b}`).
    Inbox {
        /// Seconds to wait for a message when none is waiting.
        #[arg(long, default_value_t = 0)]
        wait: u32,
    },
    /// Logs in and stays: lines typed are sent (`@bob hi`, or `/to bob` then plain lines;
    /// `/quit` to leave; any other line starting with `/` is refused, not sent), incoming
    /// messages are printed as they arrive (as `inbox` prints them).
    Session,
    /// Logs in, then replaces your password and code card: asks for the new password twice
    /// (with --password-stdin: standard input's second line), makes a new card and writes it
    /// to the --new-card FILE (mode 0600). The password and the responses never leave this
    /// machine; the next login needs both new ones. Your other sessions end (this one stays).
    Passwd {
        /// Where to write the new card (text form, for --card); refused if it exists.
        #[arg(long, value_name = "FILE")]
        new_card: std::path::PathBuf,
    },
    /// Logs in and prints the session token (64 hex digits) on standard output, for
    /// forward-auth behind a reverse proxy (`Authorization: Bearer TOKEN` or the cookie
    /// `kasane_session=TOKEN`). Stays logged in: the token works until the host's idle or
    /// absolute time-out. It is a secret: whoever holds it is you until then.
    Token,
    /// Logs in and serves plain HTTP on loopback: each request goes to the service behind
    /// the host (its `[gateway]`) sealed in this session, and the answer comes back sealed.
    /// Prints the address it serves; logs in again when the host ends the session (with
    /// --card and --password-stdin from memory, else asking on the terminal). A request it
    /// cannot forward gets a 4xx/5xx with a one-line reason. Ctrl-C logs out and stops.
    Proxy {
        /// Where to listen (a loopback address; port 0 picks a free one).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Largest request body accepted, bytes (larger ones get 413 here).
        #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024 * 1024)]
        max_body: usize,
    },
    /// Shows the settings in effect, where state lives, the trusted registry state, and
    /// whether the host answers `GET /healthz`.
    Status,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KASANE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = anyhow::Error::new(e).context("starting the runtime");
            return Failure::new(fail::Class::Other, e).report();
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Status => {
            let s = settings::Settings::resolve(&cli.conn, false)?;
            commands::status(&s).await
        }
        cmd => {
            let s = settings::Settings::resolve(&cli.conn, true)?;
            match cmd {
                Command::Login => commands::login(&s).await,
                Command::Token => commands::token(&s).await,
                Command::Send { to, message } => commands::send(&s, &to, message).await,
                Command::Inbox { wait } => commands::inbox(&s, wait).await,
                Command::Session => commands::session(&s).await,
                Command::Passwd { new_card } => commands::passwd(&s, &new_card).await,
                Command::Proxy { listen, max_body } => proxy::proxy(&s, &listen, max_body).await,
                Command::Status => Ok(()),
            }
        }
    }
}
