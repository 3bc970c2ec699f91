//! One struct per subcommand, each with its own `run` (cargo's and ripgrep's habit), and the
//! argument groups and helpers they share.
//!
//! - repository authoring: [`keygen`], [`init`], [`publish`] (`add`, `author-sign`),
//!   [`revoke`], [`delegate`], [`rotate_root`], [`snapshot`], [`sign_ticket`];
//! - reading: [`verify`], [`inspect`];
//! - trying modules: [`run`], [`test`].

mod delegate;
mod init;
mod inspect;
mod keygen;
mod publish;
mod revoke;
mod rotate_root;
mod run;
mod sign_ticket;
mod snapshot;
mod test;
mod verify;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::builder::TypedValueParser as _;
use clap::{Args, Subcommand};
use kasane_registry::run::ProfileChoice;
use kasane_sandbox::Limits;

use crate::failure::{Failure, usage};

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Generate an Ed25519 key: OUT (secret, mode 0600) and OUT.pub (public).
    ///
    /// Never overwrites a file. Prints the public key and its key id; the secret is never
    /// printed. Hand over only OUT.pub (to `delegate`, or to whoever runs `init`).
    Keygen(keygen::KeygenArgs),

    /// Create a repository: root 1, empty targets and revocations, a snapshot.
    ///
    /// Role key files missing from --keys are generated (mode 0600) and reported: an empty
    /// keys directory gives a development repository with one key per role. For a real
    /// deployment, pass the root key holders' files with --root-key / --root-public-key and
    /// --root-threshold (see docs/REGISTRY.md). Prints the root fingerprint clients pin.
    Init(init::InitArgs),

    /// Publish a first-party module (signed with targets.key); run `snapshot` afterwards.
    ///
    /// Runs the `test` harness first: a module with a wrong ABI, profile or import is always
    /// refused; one failing another check (determinism, fuel headroom, output) is refused
    /// unless --force. Prints what was published: name, version, sha256, length, profile, fuel.
    Add(publish::AddArgs),

    /// Revoke a module hash or an author key (signed with revocations.key); then `snapshot`.
    Revoke(revoke::RevokeArgs),

    /// Delegate a name prefix to a third-party author (signed with targets.key).
    ///
    /// The author then signs its own authors/<ID> file with `author-sign`, and `snapshot
    /// --author-file` takes it in.
    Delegate(delegate::DelegateArgs),

    /// Sign your authors/<ID> file listing MODULE (what a third-party author runs).
    ///
    /// Runs the `test` harness on MODULE (as `add` does), lists it in the file given by
    /// --previous (keeping its other entries, version + 1) or in a new file, signs it with
    /// your --key file(s) and writes it to --out. Needs no registry key. Send the file to the
    /// registry, which takes it in with `snapshot --author-file`.
    AuthorSign(publish::AuthorSignArgs),

    /// Sign root N+1, optionally replacing role keys with those in --new-keys.
    ///
    /// Signed by the current root.key (or the --root-key holders) and, when the root key
    /// changes, the new one. Each role
    /// key file in --new-keys (root.key, targets.key, snapshot.key, revocations.key, host.key)
    /// replaces that role's key; files signed by a replaced key are re-signed at once. Move
    /// the new key files into --keys afterwards. Without --new-keys, root gets a new expiry.
    RotateRoot(rotate_root::RotateRootArgs),

    /// Sign a new snapshot of every file (the online snapshot.key).
    ///
    /// First takes in any --author-file, checked against its delegation (keys, threshold,
    /// prefix) and required to have a higher version than the one it replaces.
    Snapshot(snapshot::SnapshotArgs),

    /// Sign a session ticket for one login (the online snapshot.key).
    ///
    /// Binds the client's nonce, the current snapshot and the module's name, sha256 and length.
    /// Writes the ticket to --out, or to standard output.
    SignTicket(sign_ticket::SignTicketArgs),

    /// Check a repository directory as a client would, and list the runnable modules.
    ///
    /// The trust store in --state is created on first use, pinned by --root or --fingerprint,
    /// and updated on later runs (so a rolled-back repository is refused). Exits 1 if the
    /// repository does not verify, or if a --require'd module is not runnable.
    Verify(verify::VerifyArgs),

    /// Print any metadata file or ticket as readable JSON, WITHOUT verifying it.
    ///
    /// Shows the payload type, the key ids that signed it and the payload. No signature is
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
    /// length. Prints one line per check; exits 1 if any check fails, 2 on bad arguments.
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
            Command::Snapshot(c) => c.run(),
            Command::SignTicket(c) => c.run(),
            Command::Verify(c) => c.run(),
            Command::Inspect(c) => c.run(),
            Command::Run(c) => c.run(),
            Command::Test(c) => c.run(),
        }
    }
}

/// The repository directory and the role keys directory.
#[derive(Args)]
struct RepoKeys {
    /// The repository directory (what clients fetch).
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// The directory of role key files (root.key, targets.key, snapshot.key, ...).
    #[arg(long, value_name = "DIR")]
    keys: PathBuf,
}

impl RepoKeys {
    /// The hint printed after a command whose change only clients see after a snapshot.
    fn print_snapshot_hint(&self) {
        println!(
            "next: kasane-registry snapshot --repo {} --keys {}",
            self.repo.display(),
            self.keys.display()
        );
    }
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
