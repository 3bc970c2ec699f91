//! One struct per subcommand, each with its own `run` (cargo's and ripgrep's habit), and the
//! argument groups and helpers they share.
//!
//! - repository authoring: [`keygen`], [`init`], [`publish`] (`add`, `author-sign`),
//!   [`revoke`], [`delegate`], [`rotate_root`], [`host_keys`], [`refresh`], [`snapshot`],
//!   [`sign_ticket`];
//! - reading: [`verify`], [`inspect`];
//! - trying modules: [`run`], [`test`].

mod delegate;
mod host_keys;
mod init;
mod inspect;
mod keygen;
mod publish;
mod refresh;
mod revoke;
mod rotate_root;
mod run;
mod sign_ticket;
mod snapshot;
mod test;
mod verify;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::builder::TypedValueParser as _;
use clap::{Args, Subcommand};
use kasane_registry::cli::{KeyAccess, KeyLocation, Keys, PromptFn, Role};
use kasane_registry::run::ProfileChoice;
use kasane_sandbox::Limits;
use zeroize::Zeroizing;

use crate::failure::{Failure, usage};

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Generate a signing key: OUT (PKCS#8 PEM, mode 0600) and OUT.pub (public key, PEM).
    ///
    /// Ed25519 unless --ecdsa (P-256). With --passphrase-env VAR the key file is encrypted
    /// under the passphrase in that variable. With --pkcs11 URI the key pair is generated on
    /// the token instead and only the public key is written (to --out). Never overwrites a
    /// file; prints the public key's TUF key id, never the secret. Hand over only the .pub
    /// file (to `delegate`, `init --root-public-key`, ...).
    Keygen(keygen::KeygenArgs),

    /// Create a repository: root 1, targets 1 (listing kasane/host-keys.json, delegating
    /// revocations and authors), snapshot and timestamp 1.
    ///
    /// --dev writes fresh unencrypted keys for every role into --keys (root.pem, targets.pem,
    /// online.pem, revocations.pem, authors.pem, ticket.pem, host.key): a development
    /// repository. Otherwise every role's existing key is used: --<role>-key, else
    /// <keys>/<role>.pem; the host identity is --host-public-key or the public half of
    /// <keys>/host.key. Prints the root fingerprint clients pin.
    Init(init::InitArgs),

    /// Publish a first-party module: written to targets/<sha256>.<name>, listed in targets
    /// (the targets key), snapshot and timestamp re-signed (the online key).
    ///
    /// Runs the `test` harness first: a module with a wrong ABI, profile or import, or whose
    /// auth output ignores a response or the whole session (check `inputs`), is always
    /// refused; one failing another check (determinism, fuel headroom, output) is refused
    /// unless --force. Prints what was published: name, sha256, length, profile, fuel.
    Add(publish::AddArgs),

    /// Revoke a module hash (kasane/revocations.json, the revocations key) or an author (out
    /// of the authors role, the authors key); snapshot and timestamp re-signed (online key).
    Revoke(revoke::RevokeArgs),

    /// Delegate <ID>/* to a third-party author with its public key file(s) and threshold, in
    /// the authors role (the authors key); snapshot and timestamp re-signed (online key).
    ///
    /// --max-weight N (default 10) caps the rollout weight of every module the author
    /// publishes: hosts and clients use min(signed weight, N). The author then signs its own
    /// role file with `author-sign`.
    Delegate(delegate::DelegateArgs),

    /// Sign your author role file listing MODULE (what a third-party author runs).
    ///
    /// Runs the `test` harness on MODULE (as `add` does), lists it in your role file as the
    /// repository in --repo holds it (version + 1) or in a new one, and signs it with your
    /// --key(s). Without --apply it writes the file to --out (no registry key needed): the
    /// registry takes it in with `snapshot --author ID --author-file FILE --module MODULE`.
    /// With --apply (run by the registry operator) the file and module go into --repo at
    /// once and snapshot and timestamp are re-signed (the online key).
    AuthorSign(publish::AuthorSignArgs),

    /// Sign root N+1, optionally with a new root, targets or online key.
    ///
    /// Signed by the current root key(s) (--root-key, repeatable; default <keys>/root.pem)
    /// and, when the root key changes, the new one. A new targets key re-signs targets at
    /// once; snapshot and timestamp are re-signed with the new or current online key. Move
    /// new key files into --keys afterwards. With no new key, root gets a new expiry.
    RotateRoot(rotate_root::RotateRootArgs),

    /// List the host's identity and ticket keys (kasane/host-keys.json), or add or remove
    /// one: targets re-signed (the targets key), then snapshot and timestamp (the online key).
    ///
    /// How a host key is rotated (docs/OPERATIONS.md): add the new key, let clients update,
    /// switch the host to it, then remove the old one. A client accepts a start response or
    /// a ticket signed by any key listed. Refuses to remove the last key of a list. A key is
    /// a public key file (PEM or JSON), a host key file (its public half) or 64 hex digits.
    HostKeys(host_keys::HostKeysArgs),

    /// Re-sign an offline role (root, targets, revocations or authors) with the next
    /// version and a new expiry, its content unchanged; snapshot and timestamp re-signed
    /// (the online key).
    ///
    /// What the offline ceremony runs before a role expires (a serving host warns from 30
    /// days before, in its log and in kasane_registry_expiry_seconds). A running host takes
    /// the new files in at its next login, with no restart. Lifetimes: root 365 days,
    /// targets 90, revocations 30, authors 90.
    Refresh(refresh::RefreshArgs),

    /// Sign a new snapshot and timestamp (the online key), first taking in an author's role
    /// file if --author-file is given.
    ///
    /// The file is checked against its delegation (keys, threshold, <ID>/* paths) and must
    /// have a higher version than the one it replaces; each module it lists that the
    /// repository lacks must be given with --module.
    Snapshot(snapshot::SnapshotArgs),

    /// Sign a session ticket for one login (the ticket key).
    ///
    /// Binds the client's nonce, the current timestamp and snapshot versions and the
    /// module's name, sha256 and length. Writes the ticket to --out, or to standard output.
    SignTicket(sign_ticket::SignTicketArgs),

    /// Check a repository directory as a fresh client pinned to its first root would, and
    /// list the runnable modules.
    ///
    /// The pin is --fingerprint (SHA-256 of metadata/1.root.json, as `init` prints it) or
    /// --root (that file, delivered out of band). A new trust store is made in --state
    /// (anything there is replaced). Exits 1 if the repository does not verify, or if a
    /// --require'd module is not runnable.
    Verify(verify::VerifyArgs),

    /// Print any metadata file or ticket as readable JSON, WITHOUT verifying it.
    ///
    /// Shows the type, the key ids that signed it and the payload. No signature is
    /// checked: use `verify` to decide whether to trust a repository.
    Inspect(inspect::InspectArgs),

    /// Run MODULE once on the input in a JSON file and print the output and the fuel used.
    ///
    /// Prints the output as lowercase hex on the first line and the fuel used on the second.
    /// INPUT.json is one object with the fields purpose ("auth" or "message"), challenges and
    /// responses (arrays of hex strings), counter, timestamp, seq, direction (numbers),
    /// server_nonce, client_nonce, transcript_hash, params (hex strings); a missing field is
    /// zero or empty, an unknown one is an error. Exits 1 when the module fails (the typed
    /// error is printed on stderr), 2 on bad arguments or input.
    Run(run::RunArgs),

    /// Test MODULE as an author would before publishing it.
    ///
    /// Checks the ABI and imports, compiles on a pooling and an on-demand engine, runs 16
    /// generated inputs (plus any --input and --vectors) on both, and requires identical output
    /// and fuel, the most fuel used times --headroom within the --fuel budget, and one output
    /// length. Check `inputs`: the auth output must change when any response changes, and when
    /// the counter, the timestamp, a nonce or the transcript hash does (at least one); `add` and
    /// `author-sign` refuse a module failing it even with --force, and hosts never offer an
    /// author's module that fails it. Prints one line per check; exits 1 if any check fails,
    /// 2 on bad arguments.
    Test(test::TestArgs),
}

impl Command {
    /// Runs the command named on the command line.
    pub(crate) fn run(self) -> Result<(), Failure> {
        match self {
            Command::Keygen(c) => c.run(),
            Command::Init(c) => c.run(),
            Command::Add(c) => c.run(),
            Command::Revoke(c) => c.run(),
            Command::Delegate(c) => c.run(),
            Command::AuthorSign(c) => c.run(),
            Command::RotateRoot(c) => c.run(),
            Command::HostKeys(c) => c.run(),
            Command::Refresh(c) => c.run(),
            Command::Snapshot(c) => c.run(),
            Command::SignTicket(c) => c.run(),
            Command::Verify(c) => c.run(),
            Command::Inspect(c) => c.run(),
            Command::Run(c) => c.run(),
            Command::Test(c) => c.run(),
        }
    }
}

/// How keys are unlocked: shared by every command that opens a key.
#[derive(Args)]
struct AccessArgs {
    /// Read the passphrase of encrypted key files from this environment variable (default:
    /// ask on the terminal; off a terminal an encrypted key without it is an error).
    #[arg(long, value_name = "VAR")]
    passphrase_env: Option<String>,
    /// The PKCS#11 module (shared library) for pkcs11: key URIs. The user PIN is read from
    /// env KASANE_PKCS11_PIN, never from the command line.
    #[arg(long, value_name = "PATH", env = "KASANE_PKCS11_MODULE")]
    pkcs11_module: Option<PathBuf>,
}

impl AccessArgs {
    fn access(&self) -> KeyAccess {
        KeyAccess {
            passphrase_env: self.passphrase_env.clone(),
            pkcs11_module: self.pkcs11_module.clone(),
            prompt: std::io::stdin().is_terminal().then_some(prompt as PromptFn),
        }
    }
}

/// Asks for a passphrase on the terminal, without echo.
fn prompt(text: &str) -> anyhow::Result<Zeroizing<String>> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .context("reading the passphrase from the terminal")
}

/// The repository directory, the keys directory and how keys are unlocked.
#[derive(Args)]
struct RepoKeys {
    /// The repository directory (what clients fetch: metadata/, targets/).
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// The directory of role keys: <role>.pem for root, targets, online, revocations,
    /// authors, ticket (used for each role whose --<role>-key is not given).
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
    #[command(flatten)]
    access: AccessArgs,
}

impl RepoKeys {
    /// The role keys: `explicit` locations first, else `<keys>/<role>.pem`.
    fn keys(&self, explicit: &[(Role, &Option<KeyLocation>)]) -> Keys {
        Keys {
            dir: self.keys.clone(),
            explicit: explicit
                .iter()
                .filter_map(|(r, l)| Option::clone(l).map(|l| (*r, l)))
                .collect(),
            access: self.access.access(),
        }
    }
}

/// `--targets-key`.
#[derive(Args)]
struct TargetsKey {
    /// The targets key: a PKCS#8 PEM file or pkcs11:token=...;object=... (default:
    /// <keys>/targets.pem).
    #[arg(long, value_name = "KEY")]
    targets_key: Option<KeyLocation>,
}

/// `--revocations-key`.
#[derive(Args)]
struct RevocationsKey {
    /// The revocations key: a PKCS#8 PEM file or pkcs11:token=...;object=... (default:
    /// <keys>/revocations.pem).
    #[arg(long, value_name = "KEY")]
    revocations_key: Option<KeyLocation>,
}

/// `--online-key`.
#[derive(Args)]
struct OnlineKey {
    /// The online key (timestamp and snapshot): a PKCS#8 PEM file or
    /// pkcs11:token=...;object=... (default: <keys>/online.pem).
    #[arg(long, value_name = "KEY")]
    online_key: Option<KeyLocation>,
}

/// `--authors-key`.
#[derive(Args)]
struct AuthorsKey {
    /// The authors key: a PKCS#8 PEM file or pkcs11:token=...;object=... (default:
    /// <keys>/authors.pem).
    #[arg(long, value_name = "KEY")]
    authors_key: Option<KeyLocation>,
}

/// The limits and params a module is tested (and published) with: shared by `add`,
/// `author-sign` and `test`, so all three check a module the same way.
#[derive(Args)]
struct HarnessArgs {
    /// Fuel budget.
    #[arg(long, value_name = "N", default_value_t = Limits::default().fuel)]
    fuel: u64,
    /// Linear memory limit, bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().memory_bytes)]
    memory: u64,
    /// Params passed to the module, as hex.
    #[arg(long, value_name = "HEX", conflicts_with = "params_text")]
    params: Option<String>,
    /// Params passed to the module, as UTF-8 text (e.g. "1000" or "OCRA-1:HOTP-SHA256-8:C-QN08").
    #[arg(long, value_name = "TEXT")]
    params_text: Option<String>,
    /// Sandbox profile; `auto` picks `wasi` when the module imports wasi_snapshot_preview1.
    #[arg(long, value_parser = profile_arg(), default_value = "auto")]
    profile: ProfileChoice,
    /// Headroom factor the fuel budget must leave over the most fuel used.
    #[arg(long, value_name = "FACTOR", default_value_t = 2.0)]
    headroom: f64,
}

impl HarnessArgs {
    /// The params bytes and the checked headroom factor.
    fn params_and_headroom(&self) -> Result<(Vec<u8>, f64), Failure> {
        if !(self.headroom.is_finite() && self.headroom >= 1.0) {
            return Err(usage(anyhow::anyhow!(
                "--headroom must be a number of at least 1.0, got {}",
                self.headroom
            )));
        }
        let params = parse_params(self.params.as_deref(), self.params_text.as_deref())?;
        Ok((params, self.headroom))
    }
}

/// `--profile`: one of [`ProfileChoice::NAMES`], shown in `--help` and checked by clap.
fn profile_arg() -> impl clap::builder::TypedValueParser<Value = ProfileChoice> {
    clap::builder::PossibleValuesParser::new(ProfileChoice::NAMES)
        .try_map(|name| name.parse::<ProfileChoice>())
}

/// Reads a `run` input (or vectors) file; `-` is standard input.
fn read_input(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the input from stdin")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// Reads a module file (a missing or unreadable file is a usage error).
fn read_module(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .with_context(|| format!("reading module {}", path.display()))
        .map_err(Failure::Usage)
}

fn parse_params(hex_params: Option<&str>, text: Option<&str>) -> Result<Vec<u8>, Failure> {
    match (hex_params, text) {
        (Some(h), _) => hex::decode(h)
            .context("--params is not valid hex")
            .map_err(usage),
        (None, Some(t)) => Ok(t.as_bytes().to_vec()),
        (None, None) => Ok(Vec::new()),
    }
}

/// Parses 64 hex digits given to `flag`.
fn parse_hex32(s: &str, flag: &str) -> Result<[u8; 32], Failure> {
    let bytes = hex::decode(s)
        .with_context(|| format!("{flag} is not valid hex"))
        .map_err(usage)?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        usage(anyhow::anyhow!(
            "{flag} must be 32 bytes (64 hex digits), got {} bytes",
            b.len()
        ))
    })
}
