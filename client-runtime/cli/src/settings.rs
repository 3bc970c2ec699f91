//! Connection settings: flags win over the config file, which wins over defaults; and the
//! state directory (trust store, compile cache).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use serde::Deserialize;

use crate::fail::{Class, Failure, OrFail};

/// Default seconds for one request to the host.
const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Global connection flags (each may also come from the config file).
#[derive(Args, Debug, Default)]
pub(crate) struct Flags {
    /// The host, e.g. `https://127.0.0.1:8443`.
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) server: Option<String>,
    /// The name to check the host's certificate against, when it differs from the URL's host.
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) server_name: Option<String>,
    /// The host's TLS certificate (or its CA), PEM: the only certificate trusted.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// The pinned registry root (`registry/metadata/1.root.json` from the host's data directory).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) root: Option<PathBuf>,
    /// The user to log in as (default: the config file's, else the card's, else $USER).
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) user: Option<String>,
    /// Reads the password from the first line of standard input instead of the terminal.
    #[arg(long, global = true)]
    pub(crate) password_stdin: bool,
    /// Answers the challenges from this code card file instead of prompting.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) card: Option<PathBuf>,
    /// Leaves nothing on disk: no trust store, no compile cache.
    #[arg(long, global = true)]
    pub(crate) no_cache: bool,
    /// Pads sealed messages to Padmé size buckets, so their length says less about their
    /// content (the default; at most 12.5 % more bytes).
    #[arg(long, global = true, overrides_with = "no_pad")]
    pub(crate) pad: bool,
    /// Seals messages unpadded: their exact length shows.
    #[arg(long, global = true, overrides_with = "pad")]
    pub(crate) no_pad: bool,
    /// The config file (default: $KASANE_CONFIG, else the platform config dir's kasane/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// The config file's keys (all optional).
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: Option<String>,
    server_name: Option<String>,
    ca: Option<PathBuf>,
    root: Option<PathBuf>,
    user: Option<String>,
    card: Option<PathBuf>,
    no_cache: Option<bool>,
    pad: Option<bool>,
    timeout_secs: Option<u64>,
}

/// The settings in effect.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The config file read, if any; and whether it existed.
    pub(crate) config_file: Option<(PathBuf, bool)>,
    pub(crate) server: Option<String>,
    pub(crate) server_name: Option<String>,
    pub(crate) ca: Option<PathBuf>,
    pub(crate) root: Option<PathBuf>,
    pub(crate) user: Option<String>,
    pub(crate) card: Option<PathBuf>,
    pub(crate) password_stdin: bool,
    pub(crate) pad: bool,
    pub(crate) timeout: Duration,
    /// `None` in no-cache mode.
    pub(crate) state_dir: Option<PathBuf>,
}

/// The platform's config file for kasane, if the platform has a home directory.
fn default_config_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "kasane").map(|d| d.config_dir().join("config.toml"))
}

/// The platform's cache dir for kasane (trust store and compile cache).
pub(crate) fn default_state_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "kasane").map(|d| d.cache_dir().to_owned())
}

fn relative_to(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() { p } else { base.join(p) }
}

/// The config file flags point at (`--config`, else `$KASANE_CONFIG`, else the platform
/// default) and where it was looked for: `(path, found)`. A missing default file is an empty
/// config; a missing explicit one is an error.
fn read_config_file(flags: &Flags) -> Result<(FileConfig, Option<(PathBuf, bool)>), Failure> {
    let explicit = flags
        .config
        .clone()
        .or_else(|| std::env::var_os("KASANE_CONFIG").map(PathBuf::from));
    let Some(path) = explicit.clone().or_else(default_config_file) else {
        return Ok((FileConfig::default(), None));
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut file: FileConfig = toml::from_str(&text)
                .with_context(|| format!("reading the config file {}", path.display()))
                .or_fail(Class::Config)?;
            let base = path.parent().map(Path::to_owned).unwrap_or_default();
            file.ca = file.ca.map(|p| relative_to(&base, p));
            file.root = file.root.map(|p| relative_to(&base, p));
            file.card = file.card.map(|p| relative_to(&base, p));
            Ok((file, Some((path, true))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            Ok((FileConfig::default(), Some((path, false))))
        }
        Err(e) => Err(anyhow::Error::new(e))
            .with_context(|| format!("reading the config file {}", path.display()))
            .or_fail(Class::Config),
    }
}

impl Settings {
    /// Merges flags over the config file. With `need_connection`, the server, CA and root
    /// must be known.
    pub(crate) fn resolve(flags: &Flags, need_connection: bool) -> Result<Self, Failure> {
        let (file, config_file) = read_config_file(flags)?;
        let no_cache = flags.no_cache || file.no_cache.unwrap_or(false);
        let state_dir = if no_cache {
            None
        } else {
            Some(
                default_state_dir()
                    .ok_or_else(|| {
                        anyhow!("no home directory for the state dir: use --no-cache or set HOME")
                    })
                    .or_fail(Class::Config)?,
            )
        };
        let s = Settings {
            config_file,
            server: flags.server.clone().or(file.server),
            server_name: flags.server_name.clone().or(file.server_name),
            ca: flags.ca.clone().or(file.ca),
            root: flags.root.clone().or(file.root),
            user: flags.user.clone().or(file.user),
            card: flags.card.clone().or(file.card),
            password_stdin: flags.password_stdin,
            pad: padding(flags, file.pad),
            timeout: Duration::from_secs(file.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)),
            state_dir,
        };
        if need_connection {
            s.require_connection()?;
        }
        Ok(s)
    }

    /// The server, CA and root must be known to connect.
    fn require_connection(&self) -> Result<(), Failure> {
        let missing = if self.server.is_none() {
            "no server: give --server URL or `server` in the config file"
        } else if self.ca.is_none() {
            "no CA: give --ca FILE (the host's tls/cert.pem) or `ca` in the config file"
        } else if self.root.is_none() {
            "no registry root: give --root FILE (the host's registry/metadata/1.root.json) or `root` in the config file"
        } else {
            return Ok(());
        };
        Err(Failure::new(Class::Config, anyhow!(missing)))
    }

    /// Reads the CA and root files and builds the library's configuration.
    pub(crate) fn client_config(&self) -> Result<kasane_client::ClientConfig, Failure> {
        let read = |what: &str, p: &Option<PathBuf>| -> Result<Vec<u8>, Failure> {
            let p = p
                .as_ref()
                .ok_or_else(|| anyhow!("no {what} file"))
                .or_fail(Class::Config)?;
            std::fs::read(p)
                .with_context(|| format!("reading the {what} file {}", p.display()))
                .or_fail(Class::Config)
        };
        let ca = read("CA", &self.ca)?;
        if !String::from_utf8_lossy(&ca).contains("-----BEGIN CERTIFICATE-----") {
            let p = self.ca.as_deref().unwrap_or(Path::new(""));
            return Err(Failure::new(
                Class::Config,
                anyhow!("the CA file {} holds no PEM certificate", p.display()),
            ));
        }
        let root = read("registry root", &self.root)?;
        if let Err(why) = looks_like_root(&root) {
            let p = self.root.as_deref().unwrap_or(Path::new(""));
            return Err(Failure::new(
                Class::Config,
                anyhow!(
                    "the registry root file {} is not a TUF root (the host's registry/metadata/1.root.json): {why}",
                    p.display()
                ),
            ));
        }
        let server = self
            .server
            .clone()
            .ok_or_else(|| anyhow!("no server"))
            .or_fail(Class::Config)?;
        let mut cfg = kasane_client::ClientConfig::new(server, ca, root);
        cfg.server_name = self.server_name.clone();
        cfg.timeout = self.timeout;
        cfg.padding = self.pad;
        if let Some(dir) = &self.state_dir {
            kasane_os::fs::create_private_dir(dir)
                .with_context(|| format!("creating the state dir {}", dir.display()))
                .or_fail(Class::Config)?;
        }
        cfg.state_dir = self.state_dir.clone();
        Ok(cfg)
    }
}

/// Whether `bytes` are a TUF root document in shape (JSON, `signed._type` = `root`), so a
/// wrong `--root` file is named here; its signatures are checked by the trust store.
fn looks_like_root(bytes: &[u8]) -> Result<(), String> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    match doc.pointer("/signed/_type").and_then(|t| t.as_str()) {
        Some("root") => Ok(()),
        Some(other) => Err(format!("its type is {other:?}")),
        None => Err("no signed._type".into()),
    }
}

/// Whether messages are padded: the last of `--pad` / `--no-pad` given, else the config
/// file's `pad`, else on.
fn padding(flags: &Flags, file: Option<bool>) -> bool {
    if flags.no_pad {
        false
    } else {
        flags.pad || file.unwrap_or(true)
    }
}
