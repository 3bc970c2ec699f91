//! `kasane-tuf-client`: the tuf-conformance client CLI (`init`, `refresh`, `download`) over
//! the kasane-tuf library, with a small blocking HTTP fetcher. Exit 0 on success, 1 on any
//! failure (the error goes to stderr).
#![forbid(unsafe_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use kasane_tuf::updater::encode_role_name;
use kasane_tuf::{DirectoryStore, Fetcher, MetadataStore, TufError, Updater, UpdaterConfig};

#[derive(Parser)]
#[command(about = "TUF client for the tuf-conformance suite")]
struct Args {
    /// Directory of trusted metadata (`<role>.json`).
    #[arg(long)]
    metadata_dir: PathBuf,
    /// Base URL of the repository's metadata.
    #[arg(long)]
    metadata_url: Option<String>,
    /// Target path to download (repeatable; processed in order).
    #[arg(long)]
    target_name: Vec<String>,
    /// Base URL of the repository's targets.
    #[arg(long)]
    target_base_url: Option<String>,
    /// Directory to store downloaded targets in.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// More output (accepted for compatibility).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trust the root in TRUSTED_ROOT (copied, not checked).
    Init {
        /// Initial root.json.
        trusted_root: PathBuf,
    },
    /// Update the top-level metadata.
    Refresh,
    /// Update metadata, then download and verify each --target-name.
    Download,
}

/// GETs `<base><path>` over plain HTTP; 403/404 mean "not there".
struct HttpFetcher {
    base: String,
    agent: ureq::Agent,
}

impl HttpFetcher {
    fn new(base: &str) -> Self {
        let base = if base.ends_with('/') {
            base.to_owned()
        } else {
            format!("{base}/")
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build();
        Self { base, agent }
    }
}

impl Fetcher for HttpFetcher {
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, TufError> {
        let url = format!("{}{path}", self.base);
        let fetch_error = |reason: String| TufError::Fetch {
            what: url.clone(),
            reason,
        };
        let response = match self.agent.get(&url).call() {
            Ok(response) => response,
            Err(ureq::Error::Status(403 | 404, _)) => return Ok(None),
            Err(e) => return Err(fetch_error(e.to_string())),
        };
        let mut body = Vec::new();
        response
            .into_reader()
            .take(max_len.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| fetch_error(e.to_string()))?;
        if body.len() as u64 > max_len {
            return Err(TufError::TooLarge {
                what: url,
                max: max_len,
            });
        }
        Ok(Some(body))
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn required<'a, T: ?Sized>(value: Option<&'a T>, flag: &str) -> Result<&'a T, String> {
    value.ok_or_else(|| format!("{flag} is required"))
}

fn updater(args: &Args) -> Result<Updater<HttpFetcher, DirectoryStore>, String> {
    let url = required(args.metadata_url.as_deref(), "--metadata-url")?;
    let store = DirectoryStore::new(&args.metadata_dir);
    Updater::new(
        HttpFetcher::new(url),
        store,
        UpdaterConfig::default(),
        now(),
    )
    .map_err(|e| e.to_string())
}

fn download(args: &Args) -> Result<(), String> {
    let target_dir = required(args.target_dir.as_deref(), "--target-dir")?;
    let targets = HttpFetcher::new(required(
        args.target_base_url.as_deref(),
        "--target-base-url",
    )?);
    let mut updater = updater(args)?;
    for name in &args.target_name {
        let info = updater.get_targetinfo(name).map_err(|e| e.to_string())?;
        let local = target_dir.join(encode_role_name(&info.path));
        if is_cached(&local, &info) {
            continue;
        }
        let data = updater
            .download_target(&info, &targets)
            .map_err(|e| e.to_string())?;
        std::fs::write(&local, data).map_err(|e| format!("{}: {e}", local.display()))?;
    }
    Ok(())
}

fn is_cached(local: &Path, info: &kasane_tuf::TargetInfo) -> bool {
    std::fs::read(local).is_ok_and(|data| {
        info.file
            .verify_length_and_hashes(&info.path, &data)
            .is_ok()
    })
}

fn run(args: &Args) -> Result<(), String> {
    match &args.command {
        Command::Init { trusted_root } => {
            let root = std::fs::read(trusted_root)
                .map_err(|e| format!("{}: {e}", trusted_root.display()))?;
            DirectoryStore::new(&args.metadata_dir)
                .store("root", &root)
                .map_err(|e| e.to_string())
        }
        Command::Refresh => updater(args)?.refresh().map_err(|e| e.to_string()),
        Command::Download => download(args),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kasane-tuf-client: {e}");
            ExitCode::FAILURE
        }
    }
}
