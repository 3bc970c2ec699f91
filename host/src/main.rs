//! `kasane-host`: parses arguments and calls the library (see `kasane_host`).
#![forbid(unsafe_code)]

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use kasane_host::config::Config;
use kasane_host::registry_db::DbRegistry;
use kasane_host::rekey::KeyReload;
use kasane_host::setup::{self, CodeCard};
use kasane_host::store::{self, Clock, Store, SystemClock};
use kasane_host::{HostError, server};
use kasane_protocol::wire::{Shown, is_hidden};

mod audit_cli;
mod check;

/// The environment, for `--help`.
const ENVIRONMENT: &str = "Environment:
  KASANE_DATA        the data directory (as --data)
  KASANE_LOG         log filter (default info, e.g. debug)
  KASANE_LOG_FORMAT  text (default) or json (one JSON object per line)
  KASANE_LISTEN, KASANE_DATABASE_URL, KASANE_CHANNEL_BINDING, KASANE_TLS_CERT, KASANE_TLS_KEY,
  KASANE_MAX_BODY_BYTES, KASANE_IDLE_TIMEOUT_SECS, KASANE_ABSOLUTE_TIMEOUT_SECS,
  KASANE_CHALLENGES_MIN, KASANE_CHALLENGES_MAX, KASANE_GATEWAY_UPSTREAM, KASANE_WEB
                     override kasane.toml
  Any other KASANE_* variable is an error (a typo must not silently do nothing).";

/// The Kasane host: login server over TLS 1.3 with a signed transform registry, message
/// relay and a tamper-evident audit log.
#[derive(Parser, Debug)]
#[command(version, about, after_help = ENVIRONMENT)]
struct Cli {
    /// The data directory (config, database, TLS, keys, registry, modules).
    #[arg(
        long,
        global = true,
        env = "KASANE_DATA",
        default_value = "kasane-data"
    )]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Makes a working data directory: config, SQLite, self-signed certificate, development
    /// keys, the registry with the built-in transforms published.
    Init {
        /// Address to listen on (written to the config).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Serves logins, sealed messages and inboxes over TLS (housekeeping every minute purges
    /// expired state and signs audit checkpoints; every second the host forgets the sessions
    /// other processes ended).
    ///
    /// With keys/online.pem it re-signs the registry's timestamp and snapshot before they
    /// expire; offline roles that expire within 30 days are warned about in the log and in
    /// /metrics (kasane_registry_expiry_seconds), and /readyz fails once one has expired.
    ///
    /// SIGHUP reloads the TLS certificate and key, re-reads the registry, and reads
    /// keys/host.key, keys/ticket.pem and keys/online.pem again (a key the registry does not
    /// list for its role is refused), and forgets the sessions it holds in memory (each is
    /// read from the store again at its next use); connections and logins in progress are
    /// kept (files that do not load leave the ones in use, and the log says why). SIGTERM or
    /// Ctrl-C stops accepting connections and lets open ones finish.
    Serve {
        /// Overrides the configured listen address.
        #[arg(long)]
        listen: Option<String>,
        /// Turns channel binding off (behind a TLS-terminating proxy).
        #[arg(long)]
        no_channel_binding: bool,
    },
    /// Validates the configuration and the data directory without serving: the
    /// configuration, the listen address (resolved, not bound), TLS certificate and key
    /// (and that the certificate has not expired), host and queue keys, the store, the registry,
    /// that the registry lists host.key, ticket.pem and online.pem for their roles, the
    /// transforms a login can be offered now (by name and weight; none is a failure), and the
    /// gateway upstream if one is configured (the probe `serve` runs at start).
    /// Prints one `ok:` line per check; exits non-zero at the first failure.
    Check,
    /// Manages users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Failed-login throttling: per user and per source network.
    Throttle {
        #[command(subcommand)]
        command: ThrottleCommand,
    },
    /// The audit log of accepted messages (per-session hash chains, signed checkpoints).
    Audit {
        #[command(subcommand)]
        command: audit_cli::AuditCommand,
    },
    /// Queued messages that did not open under keys/queue.key (a corrupted or altered row, or
    /// a replica with another queue key), moved out of the queue by the inbox read that met
    /// them (`kasane_queue_dead_letters_total`). Never delivered; kept until removed here.
    DeadLetters {
        #[command(subcommand)]
        command: audit_cli::DeadLetterCommand,
    },
    /// The registry in the database (PostgreSQL only: with SQLite the registry is the data
    /// directory's `registry/`, edited in place with `kasane-registry`).
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Writes a new host identity key to FILE (new, mode 0600; the format of keys/host.key)
    /// and prints its public key: the first step of rotating keys/host.key.
    ///
    /// Then list it with `kasane-registry host-keys --add-identity`, move it to keys/host.key
    /// (keep the old file for `audit verify --key`) and restart the host; clients that see a
    /// start response signed by a key they do not know update the registry first. Remove the
    /// old key with `host-keys --remove-identity` (docs/OPERATIONS.md, "Rotate keys").
    NewIdentityKey {
        /// The key file; it must not exist.
        file: PathBuf,
    },
    /// Writes a consistent copy of the SQLite database to FILE (new, mode 0600), also while
    /// the host serves. For PostgreSQL it fails and names the `pg_dump` command to use.
    Backup {
        /// The backup file; it must not exist.
        file: PathBuf,
    },
    /// Replaces the SQLite database with a copy of a backup FILE, with the host stopped
    /// (refused while anything has the database open). The database it replaces is kept
    /// beside it as kasane.db.replaced-<unix time>. The restored database's sessions and
    /// logins in flight are ended (a logged-out session must not come back) and every user's
    /// access counter moves 2^32 ahead (no counter is drawn twice); then it prints which
    /// users the backup takes back: enrolled since (gone), removed since (back), and changed
    /// password or card since (the old ones work again).
    ///
    /// PostgreSQL: restore with `pg_restore --clean --if-exists` (hosts stopped), then run
    /// `restore --already-restored` before starting them.
    Restore {
        /// The backup file (`backup` wrote it).
        #[arg(required_unless_present = "already_restored")]
        file: Option<PathBuf>,
        /// The database was restored by other means (pg_restore, files copied by hand): only
        /// end its sessions and logins in flight and move its counters ahead.
        #[arg(long, conflicts_with = "file")]
        already_restored: bool,
    },
}

#[derive(Subcommand, Debug)]
enum RegistryCommand {
    /// Writes the registry the database holds into DIR (created if missing; refused if not
    /// empty), for `kasane-registry add|refresh|revoke|… --repo DIR`, then `import`.
    Export {
        /// The directory.
        dir: PathBuf,
    },
    /// Checks the repository in DIR as a client would, and stores it in the database in one
    /// transaction: refused if a version would move backwards or a stored file differs (the
    /// registry changed since the export: export again). Every replica serves it at its next
    /// request.
    Import {
        /// The repository directory.
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ThrottleCommand {
    /// Lists every throttle entry: key (`u:<user>`, `a:<network>/<prefix>`, or
    /// `un:<network>/<prefix>|<user>` for a user from one of its known networks), failures
    /// left after decay, and the lock's remaining seconds if locked.
    List,
    /// Forgets one entry, by its key as `list` prints it (e.g. `a:203.0.113.7/32`; a control
    /// or invisible character in a key is listed, and may be given here, as its escape,
    /// e.g. `u:ad\u{200b}min`).
    Clear {
        /// The key.
        key: String,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Adds a user with a new code card (printed, written as SVG and as text for `kasane
    /// --card` in `<data>/cards/`, mode 0600), or custom pairs. The
    /// password is read from standard input (first line), or prompted for without echo when
    /// standard input is a terminal.
    Add {
        /// The user name: 1 to 256 bytes, no control, bidirectional or invisible characters,
        /// and not one that reads as an existing user's (`аlice`, `aIice`, `ALICE` beside
        /// `alice`).
        name: String,
        /// Custom pairs: one `PROMPT RESPONSE` per line.
        #[arg(long)]
        pairs: Option<PathBuf>,
        /// Where to write the SVG card (default: `<data>/cards/<name>.svg`).
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Lists users, one per line: pairs, failed logins (and `locked`), stored sessions.
    List,
    /// Removes a user.
    Remove {
        /// The user name.
        name: String,
    },
    /// Clears a user's throttling.
    Unlock {
        /// The user name.
        name: String,
    },
    /// Ends every session of a user (a lost device, a leaked token); the user can log in
    /// again. A serving host refuses the sessions' messages at once, and their inbox and
    /// forward-auth checks within about a second (when it next reads the ended sessions).
    Logout {
        /// The user name.
        name: String,
    },
}

/// How the host logs (`KASANE_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line (log collectors).
    Json,
}

/// `KASANE_LOG_FORMAT` is neither `text` nor `json`.
#[derive(Debug, thiserror::Error)]
#[error("KASANE_LOG_FORMAT={0:?}: expected text or json")]
struct LogFormatError(String);

impl LogFormat {
    /// The format `KASANE_LOG_FORMAT` names (`text` when it is unset or empty).
    fn from_env() -> Result<Self, LogFormatError> {
        match std::env::var("KASANE_LOG_FORMAT") {
            Err(std::env::VarError::NotPresent) => Ok(Self::Text),
            Ok(v) => match v.trim() {
                "" | "text" => Ok(Self::Text),
                "json" => Ok(Self::Json),
                _ => Err(LogFormatError(v)),
            },
            Err(std::env::VarError::NotUnicode(v)) => {
                Err(LogFormatError(v.to_string_lossy().into_owned()))
            }
        }
    }
}

/// Logs to standard error, filtered by `KASANE_LOG` (default `info`), in `format`; colours
/// only when standard error is a terminal.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KASANE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match LogFormat::from_env() {
        Ok(format) => init_logging(format),
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(real_main(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", kasane_os::report::Chain(&*e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn load_config(data: &Path) -> anyhow::Result<Config> {
    Config::load(data).with_context(|| format!("loading the configuration of {}", data.display()))
}

/// The password: prompted for without echo when standard input is a terminal (`rpassword`
/// reads from the terminal with echo off), else the first line of standard input (scripts).
fn read_password() -> anyhow::Result<zeroize::Zeroizing<String>> {
    let stdin = std::io::stdin();
    let line = if stdin.is_terminal() {
        zeroize::Zeroizing::new(
            rpassword::prompt_password("password: ").context("reading the password")?,
        )
    } else {
        let mut line = zeroize::Zeroizing::new(String::new());
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password")?;
        line
    };
    let pw = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    if pw.is_empty() {
        bail!("empty password");
    }
    Ok(pw)
}

/// The URL a client on this machine uses for a listen address: a wildcard address becomes
/// loopback (the self-signed certificate names `localhost` and `127.0.0.1`).
fn client_url(listen: &str) -> String {
    let hostport = match listen.rsplit_once(':') {
        Some(("0.0.0.0" | "[::]" | "::", port)) => format!("127.0.0.1:{port}"),
        _ => listen.to_owned(),
    };
    format!("https://{hostport}")
}

async fn real_main(cli: Cli) -> anyhow::Result<()> {
    let data = cli.data;
    match cli.command {
        Command::Init { listen } => init(&data, listen.as_deref()).await,
        Command::Serve {
            listen,
            no_channel_binding,
        } => serve(&data, listen, no_channel_binding).await,
        Command::Check => check::run(&data).await,
        Command::Audit { command } => audit_cli::audit(&data, command).await,
        Command::DeadLetters { command } => audit_cli::dead_letters(&data, command).await,
        Command::User { command } => user(&data, command).await,
        Command::Throttle { command } => throttle(&data, command).await,
        Command::Backup { file } => backup(&data, &file).await,
        Command::Restore { file, .. } => restore(&data, file.as_deref()).await,
        Command::NewIdentityKey { file } => new_identity_key(&file),
        Command::Registry { command } => registry(&data, command).await,
    }
}

/// `new-identity-key FILE`: a fresh Ed25519 key in the host key file format, never
/// overwriting a file.
fn new_identity_key(file: &Path) -> anyhow::Result<()> {
    let key = kasane_registry::keys::SecretKey::generate();
    kasane_registry::keys::write_key_file(file, &key)
        .with_context(|| format!("writing {}", file.display()))?;
    println!("identity key {} (mode 0600)", file.display());
    println!("public key   {}", key.public().to_hex());
    Ok(())
}

/// `registry export|import DIR` ([`DbRegistry`]).
async fn registry(data: &Path, command: RegistryCommand) -> anyhow::Result<()> {
    let (_, st) = open_store(data).await?;
    let Some(pool) = st.postgres_pool() else {
        bail!(
            "the registry is in the database only with PostgreSQL; with SQLite edit {}/registry with kasane-registry",
            data.display()
        );
    };
    let db = DbRegistry::new(pool.clone());
    match command {
        RegistryCommand::Export { dir } => {
            let n = db
                .export_dir(&dir)
                .await
                .with_context(|| format!("exporting the registry to {}", dir.display()))?;
            println!("exported {n} files to {}", dir.display());
        }
        RegistryCommand::Import { dir } => {
            let done = db
                .import_dir(&dir, SystemClock.now())
                .await
                .with_context(|| format!("importing the registry {}", dir.display()))?;
            let (timestamp, snapshot) = done.versions;
            println!(
                "imported {} files: timestamp {timestamp}, snapshot {snapshot}",
                done.written
            );
        }
    }
    Ok(())
}

/// `backup FILE`: the store writes the copy ([`Store::backup_to`]).
async fn backup(data: &Path, file: &Path) -> anyhow::Result<()> {
    let cfg = load_config(data)?;
    let store = store::open(&cfg.database_url)
        .await
        .context("opening the database")?;
    store
        .backup_to(file)
        .await
        .with_context(|| format!("backing up to {}", file.display()))?;
    println!("backed up to {}", file.display());
    Ok(())
}

/// `restore FILE` (SQLite: [`store::restore_file`]) or `restore --already-restored` (any
/// backend: [`Store::after_restore`] alone).
async fn restore(data: &Path, file: Option<&Path>) -> anyhow::Result<()> {
    let Some(file) = file else {
        let (_, st) = open_store(data).await?;
        let done = st
            .after_restore()
            .await
            .context("ending the restored sessions")?;
        print_restored(&done);
        return Ok(());
    };
    // Not `open_store`: the database must not be open here while it is replaced.
    let cfg = load_config(data)?;
    let Some(db) = store::database_file(&cfg.database_url)? else {
        bail!(
            "restore FILE is for a SQLite database file; with PostgreSQL run `pg_restore --clean --if-exists --dbname=\"$KASANE_DATABASE_URL\" FILE` with the hosts stopped, then `kasane-host --data {} restore --already-restored`",
            data.display()
        );
    };
    let report = store::restore_file(&db, file, SystemClock.now())
        .await
        .with_context(|| format!("restoring {} from {}", db.display(), file.display()))?;
    println!("restored {} from {}", db.display(), file.display());
    match &report.replaced {
        Some(p) => println!("the database it replaced: {}", p.display()),
        None => println!("there was no database to replace (nothing to compare the backup with)"),
    }
    print_restored(&report.restored);
    let lists = [
        (
            "enrolled since the backup, gone now (enroll them again)",
            &report.gone,
        ),
        (
            "removed since the backup, back now and able to log in (remove them again)",
            &report.back,
        ),
        (
            "password or card changed since the backup, the old ones work again (change them again)",
            &report.changed,
        ),
    ];
    for (what, names) in lists {
        if !names.is_empty() {
            println!("{what}: {}", names.join(", "));
        }
    }
    Ok(())
}

fn print_restored(done: &store::Restored) {
    println!(
        "ended {} and {} in flight; moved {} {} ahead",
        counted(done.sessions, "session", "sessions"),
        counted(done.pending_logins, "login", "logins"),
        counted(done.counters, "access counter", "access counters"),
        store::RESTORE_COUNTER_JUMP
    );
}

/// `n` and the noun for it: "1 session", "2 sessions".
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

async fn init(data: &Path, listen: Option<&str>) -> anyhow::Result<()> {
    let r = setup::init(data, listen, SystemClock.now())
        .await
        .with_context(|| format!("initializing {}", data.display()))?;
    println!("Initialized {}", r.data_dir.display());
    println!("published transforms: {}", r.published.join(", "));
    // Absolute paths, so the printed client command works from any directory.
    let abs = std::fs::canonicalize(&r.data_dir).unwrap_or_else(|_| r.data_dir.clone());
    let cfg = load_config(&abs)?;
    let root = cfg.registry_dir.join("metadata/1.root.json");
    let card = abs.join("cards").join("alice.card");
    println!();
    println!(
        "Start the host:   kasane-host --data {} serve",
        abs.display()
    );
    println!(
        "Add a user:       kasane-host --data {} user add alice",
        abs.display()
    );
    println!(
        "  (prints alice's code card and writes it to {})",
        card.display()
    );
    println!();
    println!("Then log in as alice (the client asks for her password on the terminal):");
    println!(
        "  kasane --server {} --ca {} --root {} --user alice --card {} login",
        client_url(&r.listen),
        cfg.tls_cert.display(),
        root.display(),
        card.display()
    );
    println!();
    println!("The client pins:");
    println!("  TLS certificate SHA-256: {}", r.cert_sha256);
    println!(
        "  registry root (metadata/1.root.json) SHA-256: {}",
        r.root_sha256
    );
    println!(
        "  (the root is served at /v1/registry/metadata/1.root.json; login at /v1/login/start)"
    );
    Ok(())
}

/// `serve`: the library serves (TLS, router, housekeeping); here only the configuration
/// and the signals: SIGHUP reloads, SIGTERM or Ctrl-C starts the graceful shutdown.
async fn serve(
    data: &Path,
    listen: Option<String>,
    no_channel_binding: bool,
) -> anyhow::Result<()> {
    let mut cfg = load_config(data)?;
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if no_channel_binding {
        cfg.channel_binding = false;
    }
    let host = setup::load_host(cfg, Arc::new(SystemClock))
        .await
        .context("loading the host")?;
    // Before anyone is told where the host listens: SIGHUP's default action ends the process.
    let mut hangups = Hangups::install().context("installing the SIGHUP handler")?;
    let running = server::spawn(host).await.context("serving")?;
    println!("listening on {}", running.addr());
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = hangups.next() => log_reload(running.reload().await),
        }
    }
    tracing::info!("shutting down: no new connections, finishing open ones");
    running.shutdown().await.context("serving")
}

/// Logs what a reload did: an error per part that kept the old one, then `reloaded`.
fn log_reload(r: server::Reloaded) {
    let certificate = match r.certificate {
        Ok(true) => "new",
        Ok(false) => "same",
        Err(e) => kept("TLS certificate", e),
    };
    let registry = match r.registry {
        Ok(active) => format!("{active} active transforms"),
        Err(e) => kept("registry", e).to_owned(),
    };
    let keys = r.keys;
    let (identity, ticket, online) = (
        log_key("host.key", keys.identity),
        log_key("ticket.pem", keys.ticket),
        log_key("online.pem", keys.online),
    );
    tracing::info!(
        tls_certificate = certificate,
        registry,
        host_key = identity,
        ticket_key = ticket,
        online_key = online,
        sessions_forgotten = r.sessions_forgotten,
        "reloaded"
    );
}

/// Says what became of a key at a reload (logging why one was kept).
fn log_key(file: &str, r: Result<KeyReload, HostError>) -> &'static str {
    match r {
        Ok(KeyReload::Same) => "same",
        Ok(KeyReload::New) => "new",
        Ok(KeyReload::None) => "none",
        Err(e) => kept(file, e),
    }
}

/// Logs why a reload kept `what` in use; says `kept`.
fn kept(what: &str, e: HostError) -> &'static str {
    tracing::error!(
        error = %kasane_os::report::Chain(&e),
        "reload: keeping the {what} in use"
    );
    "kept"
}

/// SIGHUP, as a stream of reload requests (never, where there are no such signals).
struct Hangups {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangups {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?,
        })
    }

    /// The next SIGHUP.
    async fn next(&mut self) {
        #[cfg(unix)]
        if self.signal.recv().await.is_some() {
            return;
        }
        // No more signals will come (the runtime is going away), or none ever could.
        std::future::pending::<()>().await;
    }
}

/// Ctrl-C or SIGTERM (what service managers and container runtimes send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn open_store(data: &Path) -> anyhow::Result<(Config, Arc<dyn Store>)> {
    let cfg = load_config(data)?;
    let st = store::open(&cfg.database_url)
        .await
        .context("opening the store")?;
    Ok((cfg, st))
}

/// `throttle list|clear`.
async fn throttle(data: &Path, command: ThrottleCommand) -> anyhow::Result<()> {
    let (cfg, st) = open_store(data).await?;
    match command {
        ThrottleCommand::List => {
            let now = SystemClock.now();
            let backoff = cfg.throttle.backoff();
            for e in st
                .list_throttle()
                .await
                .context("listing throttle entries")?
            {
                let left = backoff.decayed(e.failures, e.last_failure, now);
                let lock = match e.locked_until.checked_sub(now) {
                    Some(secs) if secs > 0 => format!("\tlocked {secs} s"),
                    _ => String::new(),
                };
                println!("{}\tfailures={left}{lock}", Shown(&e.key));
            }
            Ok(())
        }
        ThrottleCommand::Clear { key } => {
            let raw = throttle_key_as_listed(st.as_ref(), &key).await?;
            if !st.clear_throttle_key(&raw).await.context("clearing")? {
                bail!("no throttle entry {}", Shown(&key));
            }
            println!("cleared {}", Shown(&raw));
            Ok(())
        }
    }
}

/// The stored key that `throttle list` printed as `key`: the key itself, or the one whose
/// escaped form ([`Shown`]) it is (an entry counted before names were checked may hold
/// characters a terminal cannot show or a shell cannot type).
async fn throttle_key_as_listed(st: &dyn Store, key: &str) -> anyhow::Result<String> {
    if key.chars().any(is_hidden) || !key.contains('\\') {
        return Ok(key.to_owned());
    }
    let entries = st
        .list_throttle()
        .await
        .context("listing throttle entries")?;
    Ok(entries
        .into_iter()
        .map(|e| e.key)
        .find(|k| k != key && Shown(k).to_string() == key)
        .unwrap_or_else(|| key.to_owned()))
}

async fn user(data: &Path, command: UserCommand) -> anyhow::Result<()> {
    let (cfg, st) = open_store(data).await?;
    match command {
        UserCommand::Add { name, pairs, svg } => {
            let keys = kasane_host::keyfile::load_opaque_keys(&cfg.keys_dir)
                .context("the host's OPAQUE keys")?;
            setup::check_opaque_key(st.as_ref(), &keys, &cfg.keys_dir)
                .await
                .context("the host's OPAQUE keys")?;
            user_add(data, st.as_ref(), &keys, &name, pairs.as_deref(), svg).await
        }
        UserCommand::List => {
            let now = SystemClock.now();
            for u in st.list_users().await.context("listing users")? {
                let lock = if u.throttle.is_locked(now) {
                    " locked"
                } else {
                    ""
                };
                println!(
                    "{}\tpairs={}\tfailures={}{lock}\tsessions={}",
                    Shown(&u.name),
                    u.pair_count,
                    u.throttle.failures,
                    u.sessions
                );
            }
            Ok(())
        }
        UserCommand::Remove { name } => {
            if !st.remove_user(&name).await.context("removing")? {
                bail!("no user {name}");
            }
            println!("removed {name}");
            Ok(())
        }
        UserCommand::Unlock { name } => {
            if !st.unlock_user(&name).await.context("unlocking")? {
                bail!("no user {name}");
            }
            println!("unlocked {name}");
            Ok(())
        }
        UserCommand::Logout { name } => {
            let ended = st.end_sessions(&name).await.context("ending sessions")?;
            let Some(ended) = ended else {
                bail!("no user {name}");
            };
            println!("ended {} of {name}", counted(ended, "session", "sessions"));
            Ok(())
        }
    }
}

async fn user_add(
    data: &Path,
    st: &dyn Store,
    keys: &kasane_protocol::ServerKeys,
    name: &str,
    pairs: Option<&Path>,
    svg: Option<PathBuf>,
) -> anyhow::Result<()> {
    if !kasane_protocol::wire::is_user_name(name) {
        bail!(
            "user name {name:?}: it must be 1 to 256 bytes of UTF-8 without control, \
             bidirectional or invisible characters"
        );
    }
    // Before the password is asked for; `add_user` checks again.
    setup::refuse_look_alike(st, name).await?;
    let card = match pairs {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            CodeCard::parse(name, &text)?
        }
        None => CodeCard::generate(name),
    };
    let pw = read_password()?;
    setup::add_user(st, keys, &card, pw.as_bytes(), SystemClock.now())
        .await
        .with_context(|| format!("adding {name}"))?;
    // Printed before the files are written: the user is enrolled now, and should a file not
    // be written (a full disk, an unwritable --svg path) this is the only copy of the card.
    print!("{}", card.to_text());
    let files = setup::write_card(&card, data, svg.as_deref()).with_context(|| {
        format!("writing {name}'s card (it is enrolled: hand the card printed above to the user)")
    })?;
    println!(
        "(card written to {} and, as text for `kasane --card`, to {})",
        files.svg.display(),
        files.text.display()
    );
    Ok(())
}
