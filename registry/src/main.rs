//! `kasane-registry`: publish, inspect and try Kasane transform modules.
//!
//! A thin binary over the `kasane_registry` library. Exit codes: 0 success, 1 the module
//! failed (a typed sandbox error), 2 bad arguments or input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kasane_registry::Sha256Hash;
use kasane_registry::cli::{self, Checked, ModuleSpec, PinSource, RevokeTarget};
use kasane_registry::harness::{HarnessOptions, parse_vectors, test_module};
use kasane_registry::keys::KeyId;
use kasane_registry::run::{ProfileChoice, parse_input, run_module};
use kasane_sandbox::{Limits, Profile};

/// Publish, inspect and try Kasane transform modules.
///
/// Repository commands take an explicit repository directory (--repo) and a keys directory
/// (--keys) holding one secret key file per role: root.key, targets.key, snapshot.key,
/// revocations.key, host.key (mode 0600). Each command reads only the keys it signs with.
/// Exit codes: 0 success, 1 failure (refused module, file or signature), 2 bad arguments.
#[derive(Parser)]
#[command(name = "kasane-registry", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    #[arg(long, value_enum, default_value_t = ProfileArg::Auto)]
    profile: ProfileArg,
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

/// A module and the limits it is published with.
#[derive(Args)]
struct ModuleArgs {
    /// The module (binary wasm).
    module: PathBuf,
    /// The name to publish it under: [a-z0-9._/-], e.g. sha256-chain or acme/otp.
    #[arg(long)]
    name: String,
    /// The entry's version (default: the previous entry's version + 1, or 1).
    #[arg(long, value_name = "N")]
    version: Option<u64>,
    #[command(flatten)]
    harness: HarnessArgs,
    /// Rollout weight (0: published but never picked by the host).
    #[arg(long, value_name = "N", default_value_t = 100)]
    weight: u32,
    /// Publish even if `kasane-registry test` finds a problem (never with a wrong ABI,
    /// profile or import, which the sandbox would refuse anyway).
    #[arg(long)]
    force: bool,
}

/// What `revoke` revokes: exactly one of these.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct RevokeArgs {
    /// A module hash (64 hex digits).
    #[arg(long, value_name = "SHA256")]
    hash: Option<String>,
    /// A module file: its SHA-256 is revoked.
    #[arg(long, value_name = "MODULE.wasm")]
    module: Option<PathBuf>,
    /// An author key, from its public (or secret) key file.
    #[arg(long, value_name = "FILE")]
    author_key: Option<PathBuf>,
    /// An author key, by key id (64 hex digits).
    #[arg(long, value_name = "KEYID")]
    author_key_id: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Generate an Ed25519 key: OUT (secret, mode 0600) and OUT.pub (public).
    ///
    /// Never overwrites a file. Prints the public key and its key id; the secret is never
    /// printed. Hand over only OUT.pub (to `delegate`, or to whoever runs `init`).
    Keygen {
        /// The secret key file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },

    /// Create a repository: root 1, empty targets and revocations, a snapshot.
    ///
    /// Role key files missing from --keys are generated (mode 0600) and reported: an empty
    /// keys directory gives a development repository with one key per role. For a real
    /// deployment, pass the root key holders' files with --root-key / --root-public-key and
    /// --root-threshold (see docs/REGISTRY.md). Prints the root fingerprint clients pin.
    Init {
        #[command(flatten)]
        dirs: RepoKeys,
        /// A root key holder's secret key file, signing root 1 (repeatable; replaces root.key).
        #[arg(long, value_name = "FILE")]
        root_key: Vec<PathBuf>,
        /// A further root public key that does not sign root 1 (repeatable).
        #[arg(long, value_name = "FILE")]
        root_public_key: Vec<PathBuf>,
        /// Distinct root keys needed to sign a root.
        #[arg(long, value_name = "N")]
        root_threshold: Option<u32>,
        /// The host identity's public key file (replaces host.key: the host keeps the secret).
        #[arg(long, value_name = "FILE")]
        host_public_key: Option<PathBuf>,
    },

    /// Publish a first-party module (signed with targets.key); run `snapshot` afterwards.
    ///
    /// Runs the `test` harness first: a module with a wrong ABI, profile or import is always
    /// refused; one failing another check (determinism, fuel headroom, output) is refused
    /// unless --force. Prints what was published: name, version, sha256, length, profile, fuel.
    Add {
        #[command(flatten)]
        dirs: RepoKeys,
        #[command(flatten)]
        module: ModuleArgs,
    },

    /// Revoke a module hash or an author key (signed with revocations.key); then `snapshot`.
    Revoke {
        #[command(flatten)]
        dirs: RepoKeys,
        #[command(flatten)]
        what: RevokeArgs,
    },

    /// Delegate a name prefix to a third-party author (signed with targets.key).
    ///
    /// The author then signs its own authors/<ID> file with `author-sign`, and `snapshot
    /// --author-file` takes it in.
    Delegate {
        #[command(flatten)]
        dirs: RepoKeys,
        /// The author id: [a-z0-9-], up to 64 characters.
        #[arg(long, value_name = "ID")]
        author: String,
        /// The name prefix the author may publish under; ends with `/` (e.g. acme/).
        #[arg(long, value_name = "PREFIX")]
        prefix: String,
        /// An author public key file (repeatable).
        #[arg(long = "author-key", value_name = "FILE", required = true)]
        author_keys: Vec<PathBuf>,
        /// Distinct author keys needed to sign the author's file.
        #[arg(long, value_name = "N", default_value_t = 1)]
        threshold: u32,
    },

    /// Sign your authors/<ID> file listing MODULE (what a third-party author runs).
    ///
    /// Runs the `test` harness on MODULE (as `add` does), lists it in the file given by
    /// --previous (keeping its other entries, version + 1) or in a new file, signs it with
    /// your --key file(s) and writes it to --out. Needs no registry key. Send the file to the
    /// registry, which takes it in with `snapshot --author-file`.
    AuthorSign {
        /// Your author id (as delegated).
        #[arg(long, value_name = "ID")]
        author: String,
        /// Your secret key file (repeatable, for an author threshold above 1).
        #[arg(long = "key", value_name = "FILE", required = true)]
        keys: Vec<PathBuf>,
        /// Your current authors/<ID>.json, to extend (its signatures are not checked).
        #[arg(long, value_name = "FILE")]
        previous: Option<PathBuf>,
        /// Where to write the signed file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[command(flatten)]
        module: ModuleArgs,
    },

    /// Sign root N+1, optionally replacing role keys with those in --new-keys.
    ///
    /// Signed by the current root.key (or the --root-key holders) and, when the root key
    /// changes, the new one. Each role
    /// key file in --new-keys (root.key, targets.key, snapshot.key, revocations.key, host.key)
    /// replaces that role's key; files signed by a replaced key are re-signed at once. Move
    /// the new key files into --keys afterwards. Without --new-keys, root gets a new expiry.
    RotateRoot {
        #[command(flatten)]
        dirs: RepoKeys,
        /// A directory of new role key files.
        #[arg(long, value_name = "DIR")]
        new_keys: Option<PathBuf>,
        /// A current root key holder's secret key file (repeatable; replaces root.key, for a
        /// root with a threshold above 1).
        #[arg(long, value_name = "FILE")]
        root_key: Vec<PathBuf>,
    },

    /// Sign a new snapshot of every file (the online snapshot.key).
    ///
    /// First takes in any --author-file, checked against its delegation (keys, threshold,
    /// prefix) and required to have a higher version than the one it replaces.
    Snapshot {
        #[command(flatten)]
        dirs: RepoKeys,
        /// A signed authors/<ID>.json from `author-sign` (repeatable).
        #[arg(long, value_name = "FILE")]
        author_file: Vec<PathBuf>,
    },

    /// Sign a session ticket for one login (the online snapshot.key).
    ///
    /// Binds the client's nonce, the current snapshot and the module's name, sha256 and length.
    /// Writes the ticket to --out, or to standard output.
    SignTicket {
        #[command(flatten)]
        dirs: RepoKeys,
        /// The client's nonce for this login (64 hex digits).
        #[arg(long, value_name = "HEX")]
        nonce: String,
        /// The module the ticket names.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// Where to write the ticket (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },

    /// Check a repository directory as a client would, and list the runnable modules.
    ///
    /// The trust store in --state is created on first use, pinned by --root or --fingerprint,
    /// and updated on later runs (so a rolled-back repository is refused). Exits 1 if the
    /// repository does not verify, or if a --require'd module is not runnable.
    Verify {
        /// The repository directory.
        #[arg(long, value_name = "DIR")]
        repo: PathBuf,
        /// The trust store directory (state.json, mode 0600).
        #[arg(long, value_name = "DIR")]
        state: PathBuf,
        /// Pin the first root to this file, delivered out of band (used only when --state
        /// holds no trust store yet).
        #[arg(long, value_name = "FILE", conflicts_with = "fingerprint")]
        root: Option<PathBuf>,
        /// Pin the first root to this SHA-256 of the repository's 1.root.json (used only when
        /// --state holds no trust store yet).
        #[arg(long, value_name = "HEX")]
        fingerprint: Option<String>,
        /// Fail unless this module is runnable (repeatable).
        #[arg(long, value_name = "NAME")]
        require: Vec<String>,
    },

    /// Print any metadata file or ticket as readable JSON, WITHOUT verifying it.
    ///
    /// Shows the payload type, the key ids that signed it and the payload. No signature is
    /// checked: use `verify` to decide whether to trust a repository.
    Inspect {
        /// The file (N.root.json, targets.json, authors/<ID>.json, snapshot.json, a ticket, ...).
        file: PathBuf,
    },

    /// Run MODULE once on the input in a JSON file and print the output and the fuel used.
    ///
    /// Prints the output as lowercase hex on the first line and the fuel used on the second.
    /// INPUT.json is one object with the fields purpose ("auth" or "message"), challenges and
    /// responses (arrays of hex strings), counter, timestamp, seq, direction (numbers),
    /// server_nonce, client_nonce, transcript_hash, params (hex strings); a missing field is
    /// zero or empty, an unknown one is an error. Exits 1 when the module fails (the typed
    /// error is printed on stderr), 2 on bad arguments or input.
    Run {
        /// The module (binary wasm).
        module: PathBuf,
        /// The derive input as JSON ("-" reads standard input).
        #[arg(long, value_name = "INPUT.json")]
        input: PathBuf,
        /// Fuel budget (default: the sandbox's default budget).
        #[arg(long, value_name = "N")]
        fuel: Option<u64>,
        /// Profile to run under; `auto` picks `wasi` when the module imports
        /// `wasi_snapshot_preview1` and `pure` otherwise.
        #[arg(long, value_enum, default_value_t = ProfileArg::Auto)]
        profile: ProfileArg,
    },

    /// Test MODULE as an author would before publishing it.
    ///
    /// Checks the ABI and imports, compiles on a pooling and an on-demand engine, runs 16
    /// generated inputs (plus any --input and --vectors) on both, and requires identical output
    /// and fuel, the most fuel used times --headroom within the --fuel budget, and one output
    /// length. Prints one line per check; exits 1 if any check fails, 2 on bad arguments.
    Test {
        /// The module (binary wasm).
        module: PathBuf,
        #[command(flatten)]
        harness: HarnessArgs,
        /// An extra input (the `run` JSON format); repeatable.
        #[arg(long = "input", value_name = "INPUT.json")]
        inputs: Vec<PathBuf>,
        /// Known answers: a JSON array of {"input": {...}, "output": "<hex>"}.
        #[arg(long, value_name = "VECTORS.json")]
        vectors: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    Auto,
    Pure,
    Wasi,
}

/// A failure, with the exit code it maps to.
enum Failure {
    /// Bad arguments or input: exit 2.
    Usage(anyhow::Error),
    /// A refused module, file or signature: exit 1.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Failed(e)
    }
}

fn usage(e: anyhow::Error) -> Failure {
    Failure::Usage(e)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(e)) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
        Err(Failure::Usage(e)) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the input from stdin")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

impl ProfileArg {
    fn choice(self) -> ProfileChoice {
        match self {
            ProfileArg::Auto => ProfileChoice::Auto,
            ProfileArg::Pure => ProfileChoice::Fixed(Profile::Pure),
            ProfileArg::Wasi => ProfileChoice::Fixed(Profile::Wasi),
        }
    }
}

fn read_module(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .with_context(|| format!("reading module {}", path.display()))
        .map_err(Failure::Usage)
}

fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Keygen { out } => {
            let r = cli::keygen(&out)?;
            println!("secret key  {} (mode 0600)", r.secret_path.display());
            println!("public key  {}", r.public_path.display());
            println!("public      {}", r.public.to_hex());
            println!("key id      {}", r.public.key_id());
            Ok(())
        }
        Command::Init {
            dirs,
            root_key,
            root_public_key,
            root_threshold,
            host_public_key,
        } => {
            let opts = cli::InitOptions {
                root_keys: root_key,
                root_public_keys: root_public_key,
                root_threshold,
                host_public_key,
            };
            let r = cli::init(&dirs.repo, &dirs.keys, &opts)?;
            for p in &r.generated {
                println!("generated   {} (mode 0600)", p.display());
            }
            println!("repository  {}", dirs.repo.display());
            println!(
                "root        version 1, {} of {} root keys",
                r.root_threshold, r.root_keys
            );
            println!("fingerprint {}", r.root_fingerprint);
            println!(
                "clients pin it: kasane-registry verify --repo {} --state DIR --fingerprint {}",
                dirs.repo.display(),
                r.root_fingerprint
            );
            Ok(())
        }
        Command::Add { dirs, module } => {
            let spec = module_spec(module)?;
            let checked = cli::add(&dirs.repo, &dirs.keys, &spec)?;
            print_published("published", &checked);
            println!(
                "next: kasane-registry snapshot --repo {} --keys {}",
                dirs.repo.display(),
                dirs.keys.display()
            );
            Ok(())
        }
        Command::Revoke { dirs, what } => {
            let target = revoke_target(what)?;
            cli::revoke(&dirs.repo, &dirs.keys, &target)?;
            match target {
                RevokeTarget::Hash(h) => println!("revoked module hash {h}"),
                RevokeTarget::AuthorKey(k) => println!("revoked author key {k}"),
            }
            println!(
                "next: kasane-registry snapshot --repo {} --keys {}",
                dirs.repo.display(),
                dirs.keys.display()
            );
            Ok(())
        }
        Command::Delegate {
            dirs,
            author,
            prefix,
            author_keys,
            threshold,
        } => {
            cli::delegate(
                &dirs.repo,
                &dirs.keys,
                &author,
                &prefix,
                &author_keys,
                threshold,
            )?;
            println!(
                "delegated {prefix} to author {author} ({threshold} of {} keys)",
                author_keys.len()
            );
            Ok(())
        }
        Command::AuthorSign {
            author,
            keys,
            previous,
            out,
            module,
        } => {
            let spec = module_spec(module)?;
            let (bytes, checked) =
                cli::author_sign_module(&author, &keys, previous.as_deref(), &spec)?;
            kasane_registry::files::write_public(&out, &bytes)
                .with_context(|| format!("writing {}", out.display()))?;
            print_published("listed", &checked);
            println!("wrote authors/{author}.json to {}", out.display());
            Ok(())
        }
        Command::RotateRoot {
            dirs,
            new_keys,
            root_key,
        } => {
            let r = cli::rotate_root(&dirs.repo, &dirs.keys, new_keys.as_deref(), &root_key)?;
            println!("root version {}", r.version);
            if r.rotated.is_empty() {
                println!("no key changed (new expiry)");
            } else {
                println!("rotated keys: {}", r.rotated.join(", "));
                println!("move the new key files into {}", dirs.keys.display());
            }
            Ok(())
        }
        Command::Snapshot { dirs, author_file } => {
            let r = cli::snapshot(&dirs.repo, &dirs.keys, &author_file)?;
            for a in &r.authors {
                println!("accepted authors/{a}");
            }
            println!("snapshot version {}", r.version);
            Ok(())
        }
        Command::SignTicket {
            dirs,
            nonce,
            name,
            out,
        } => {
            let nonce = parse_hex32(&nonce, "--nonce")?;
            let ticket = cli::sign_ticket(&dirs.repo, &dirs.keys, nonce, &name)?;
            match out {
                Some(p) => {
                    kasane_registry::files::write_public(&p, &ticket)
                        .with_context(|| format!("writing {}", p.display()))?;
                    println!("wrote ticket for {name} to {}", p.display());
                }
                None => println!("{}", String::from_utf8_lossy(&ticket)),
            }
            Ok(())
        }
        Command::Verify {
            repo,
            state,
            root,
            fingerprint,
            require,
        } => {
            let pin = match (root, fingerprint) {
                (Some(p), _) => Some(PinSource::RootFile(p)),
                (None, Some(f)) => Some(PinSource::Fingerprint(Sha256Hash(parse_hex32(
                    &f,
                    "--fingerprint",
                )?))),
                (None, None) => None,
            };
            let r = cli::verify(&repo, &state, pin.as_ref())?;
            println!(
                "verified: root version {}, snapshot version {}{}",
                r.root_version,
                r.snapshot_version,
                if r.created { " (new trust store)" } else { "" }
            );
            for (e, author) in &r.runnable {
                println!(
                    "{}  version {}  sha256 {}  length {}  profile {}  fuel {}  memory {}  weight {}  {}",
                    e.name,
                    e.version,
                    e.sha256,
                    e.length,
                    profile_name(e.profile),
                    e.fuel,
                    e.memory,
                    e.rollout_weight,
                    author
                        .as_ref()
                        .map_or("first-party".to_owned(), |a| format!("author {a}")),
                );
            }
            println!("{} runnable modules", r.runnable.len());
            let missing: Vec<&str> = require
                .iter()
                .filter(|n| !r.runnable.iter().any(|(e, _)| &e.name == *n))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(Failure::Failed(anyhow::anyhow!(
                    "not runnable (not listed, revoked, or its author distrusted): {}",
                    missing.join(", ")
                )));
            }
            Ok(())
        }
        Command::Inspect { file } => {
            let text = cli::inspect(&file)?;
            eprintln!("note: signatures NOT verified (inspect is for reading only; use `verify`)");
            print!("{text}");
            Ok(())
        }
        Command::Run {
            module,
            input,
            fuel,
            profile,
        } => {
            let wasm = read_module(&module)?;
            let json = read_input(&input).map_err(Failure::Usage)?;
            let input = parse_input(&json)
                .with_context(|| format!("in {}", input.display()))
                .map_err(Failure::Usage)?;
            let (_, derived) = run_module(&wasm, &input, fuel, profile.choice())
                .with_context(|| format!("module {}", module.display()))
                .map_err(Failure::Failed)?;
            if !derived.diagnostics.is_empty() {
                eprintln!(
                    "module output: {}",
                    String::from_utf8_lossy(&derived.diagnostics).trim_end()
                );
            }
            println!("{}", hex::encode(derived.key.as_bytes()));
            println!("{}", derived.fuel_used);
            Ok(())
        }
        Command::Test {
            module,
            harness,
            inputs,
            vectors,
        } => {
            let wasm = read_module(&module)?;
            let (params, headroom) = harness.params_and_headroom()?;
            let fuel = harness.fuel;
            let inputs = inputs
                .iter()
                .map(|p| {
                    let json = read_input(p)?;
                    parse_input(&json).with_context(|| format!("in {}", p.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()
                .map_err(usage)?;
            let vectors = match vectors {
                None => Vec::new(),
                Some(p) => {
                    let json = read_input(&p).map_err(usage)?;
                    parse_vectors(&json)
                        .with_context(|| format!("in {}", p.display()))
                        .map_err(usage)?
                }
            };
            let opts = HarnessOptions {
                profile: harness.profile.choice(),
                fuel,
                memory: harness.memory,
                params,
                headroom,
                inputs,
                vectors,
            };
            let report = test_module(&wasm, &opts);
            println!("module  {}", module.display());
            println!("sha256  {}", report.sha256);
            println!("length  {} bytes", report.length);
            if let Some(p) = report.profile {
                println!("profile {}", p.as_str());
            }
            for c in &report.checks {
                let verdict = if c.passed { "ok  " } else { "FAIL" };
                println!("{verdict} {:<12} {}", c.name, c.detail);
            }
            if report.passed() {
                println!(
                    "passed: fuel used at most {} of {}",
                    report.max_fuel_used, fuel
                );
                Ok(())
            } else {
                let failed: Vec<&str> = report
                    .checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.name)
                    .collect();
                Err(Failure::Failed(anyhow::anyhow!(
                    "module failed: {}",
                    failed.join(", ")
                )))
            }
        }
    }
}

/// The error and its causes on one line, `a: b: c`. A cause whose text its parent already
/// shows (an error that prints its source inline, like `malformed JSON: {0}`) is left out, so
/// nothing is said twice.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut previous = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !previous.is_empty() && previous.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        previous = text;
    }
    out.replace('\n', " ")
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

fn module_spec(m: ModuleArgs) -> Result<ModuleSpec, Failure> {
    let (params, headroom) = m.harness.params_and_headroom()?;
    Ok(ModuleSpec {
        params,
        module: m.module,
        name: m.name,
        version: m.version,
        fuel: m.harness.fuel,
        memory: m.harness.memory,
        profile: m.harness.profile.choice(),
        weight: m.weight,
        force: m.force,
        headroom,
    })
}

fn revoke_target(a: RevokeArgs) -> Result<RevokeTarget, Failure> {
    Ok(match (a.hash, a.module, a.author_key, a.author_key_id) {
        (Some(h), ..) => RevokeTarget::Hash(Sha256Hash(parse_hex32(&h, "--hash")?)),
        (_, Some(m), ..) => RevokeTarget::Hash(Sha256Hash::of(&read_module(&m)?)),
        (_, _, Some(k), _) => RevokeTarget::AuthorKey(cli::author_key_id(&k)?),
        (_, _, _, Some(id)) => RevokeTarget::AuthorKey(KeyId(parse_hex32(&id, "--author-key-id")?)),
        (None, None, None, None) => {
            return Err(usage(anyhow::anyhow!(
                "give one of --hash, --module, --author-key, --author-key-id"
            )));
        }
    })
}

fn profile_name(p: kasane_registry::metadata::targets::Profile) -> &'static str {
    match p {
        kasane_registry::metadata::targets::Profile::Pure => "pure",
        kasane_registry::metadata::targets::Profile::Wasi => "wasi",
    }
}

fn print_published(verb: &str, c: &Checked) {
    let e = &c.entry;
    println!("{verb} {} version {}", e.name, e.version);
    println!("  sha256  {}", e.sha256);
    println!("  length  {} bytes", e.length);
    println!("  profile {}", profile_name(e.profile));
    println!(
        "  fuel    {} (tested: at most {} used)",
        e.fuel, c.report.max_fuel_used
    );
    println!("  memory  {} bytes", e.memory);
    println!(
        "  params  {} ({} bytes)",
        hex::encode(&e.params),
        e.params.len()
    );
    println!("  weight  {}", e.rollout_weight);
    if !c.report.passed() {
        for ch in c.report.checks.iter().filter(|ch| !ch.passed) {
            println!("  forced past failed check {}: {}", ch.name, ch.detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bad byte")
        }
    }
    impl std::error::Error for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "malformed JSON: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn one_line_says_each_cause_once() {
        let e = anyhow::Error::new(Outer(Inner)).context("reading x.json");
        assert_eq!(one_line(&e), "reading x.json: malformed JSON: bad byte");
        let e = anyhow::Error::new(Inner).context("line one\nline two");
        assert_eq!(one_line(&e), "line one line two: bad byte");
    }
}
