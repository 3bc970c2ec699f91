//! The `kasane-registry` commands as library functions, so the binary (one struct per command
//! in `src/bin/kasane-registry/commands/`) only parses arguments and prints, and tests or other
//! programs can call the same code.
//!
//! This is the command layer: its errors are for a person at a terminal, so functions return
//! [`anyhow::Result`] with context naming the file or key involved; the typed
//! [`crate::RegistryError`], [`kasane_signer::SignerError`] or [`kasane_sandbox::SandboxError`]
//! stays underneath in the chain (`err.downcast_ref`). Nothing here prints, and nothing
//! returned carries secret key bytes.
//!
//! # Role keys
//!
//! Each command opens only the keys of the roles it re-signs ([`Role`]). A key is a
//! [`KeyLocation`]: a PKCS#8 PEM key file (optionally passphrase-encrypted) or an RFC 7512
//! PKCS#11 URI (`pkcs11:token=<label>;object=<label>`; feature `pkcs11`). Without an explicit
//! location a role's key is `<keys-dir>/<role>.pem`. The host's identity key stays `host.key`
//! in its own format ([`crate::keys`]); only its public half goes into the repository.
//!
//! Every change re-signs snapshot and timestamp with the `online` key, and the result is
//! checked as a client would check it ([`Repository::active`]) before anything is written.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context as _, bail, ensure};
use kasane_signer::{KeyFileSigner, KeyKind, PublicKey, Signer, SignerError};
use kasane_tuf::metadata::{Metadata, Targets};
use zeroize::Zeroizing;

use crate::documents::HostKeys;
use crate::entry::{MAX_MODULE_LEN, Profile, TargetEntry};
use crate::harness::{HarnessOptions, Report, test_module};
use crate::hexfmt::Sha256Hash;
use crate::repo::{
    DEV_KEY_FILES, InitSigners, Lifetimes, RepoLock, Repository, RoleSetup, Setup, dev_init,
    metadata_path, target_file_path,
};
use crate::run::ProfileChoice;
use crate::signing::{TufSigner, tuf_key};
use crate::trust::{Clock, SystemClock};

/// The env variable holding the PKCS#11 user PIN (never a command-line argument).
pub const PIN_ENV: &str = "KASANE_PKCS11_PIN";
/// The env variable naming the PKCS#11 module when `--pkcs11-module` is not given.
pub const MODULE_ENV: &str = "KASANE_PKCS11_MODULE";
/// The host identity key file in a keys directory (its own format, see [`crate::keys`]).
pub const HOST_KEY_FILE: &str = "host.key";
/// Cap on a metadata file or ticket read by `inspect` and `snapshot --author-file`.
const MAX_FILE: u64 = 5_000_000;

/// Now, unix seconds (the system clock).
pub fn now() -> u64 {
    SystemClock.now()
}

/// A signing role of the registry, and the key file it defaults to in a keys directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `root` (offline).
    Root,
    /// `targets` (offline): first-party modules and `kasane/host-keys.json`.
    Targets,
    /// `timestamp` and `snapshot` (one online key).
    Online,
    /// `revocations`: `kasane/revocations.json`.
    Revocations,
    /// `authors`: delegates one role per third-party author.
    Authors,
    /// The host's ticket key (session tickets).
    Ticket,
}

impl Role {
    /// The role's name (`root`, `targets`, `online`, …).
    pub fn name(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Targets => "targets",
            Role::Online => "online",
            Role::Revocations => "revocations",
            Role::Authors => "authors",
            Role::Ticket => "ticket",
        }
    }

    /// The key file the role defaults to in a keys directory (`targets.pem`).
    pub fn file_name(self) -> String {
        format!("{}.pem", self.name())
    }
}

/// An RFC 7512 PKCS#11 URI naming a key: `pkcs11:token=<label>;object=<label>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// The token label.
    pub token: String,
    /// The key pair's label (`CKA_LABEL`).
    pub object: String,
}

impl std::fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pkcs11:token={};object={}", self.token, self.object)
    }
}

fn percent_decode(s: &str) -> anyhow::Result<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next().unwrap_or(b'?'), bytes.next().unwrap_or(b'?')];
            let v = std::str::from_utf8(&hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .with_context(|| format!("bad %-escape in {s:?}"))?;
            out.push(v);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).with_context(|| format!("{s:?} is not UTF-8 once decoded"))
}

impl FromStr for Pkcs11Uri {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let rest = s
            .strip_prefix("pkcs11:")
            .context("a PKCS#11 URI starts with pkcs11:")?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if query.split('&').any(|q| q.starts_with("pin-value=")) {
            bail!("never put the PIN in the key URI: set env {PIN_ENV}");
        }
        ensure!(
            query.is_empty(),
            "{s}: query attributes are not supported (the module is --pkcs11-module or env \
             {MODULE_ENV}, the PIN env {PIN_ENV})"
        );
        let (mut token, mut object) = (None, None);
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (k, v) = attr
                .split_once('=')
                .with_context(|| format!("{s}: attribute {attr:?} has no ="))?;
            let v = percent_decode(v)?;
            match k {
                "token" => token = Some(v),
                "object" => object = Some(v),
                "type" if v == "private" => {}
                _ => bail!("{s}: unsupported attribute {k:?} (use token=...;object=...)"),
            }
        }
        Ok(Self {
            token: token.with_context(|| format!("{s}: token=<label> missing"))?,
            object: object.with_context(|| format!("{s}: object=<label> missing"))?,
        })
    }
}

/// Where a signing key lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyLocation {
    /// A PKCS#8 PEM key file (plain or encrypted).
    File(PathBuf),
    /// A key on a PKCS#11 token.
    Pkcs11(Pkcs11Uri),
}

impl FromStr for KeyLocation {
    type Err = anyhow::Error;

    /// `pkcs11:…` is a PKCS#11 URI; anything else is a file path.
    fn from_str(s: &str) -> anyhow::Result<Self> {
        if s.starts_with("pkcs11:") {
            Ok(KeyLocation::Pkcs11(s.parse()?))
        } else {
            Ok(KeyLocation::File(PathBuf::from(s)))
        }
    }
}

impl std::fmt::Display for KeyLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyLocation::File(p) => write!(f, "{}", p.display()),
            KeyLocation::Pkcs11(u) => write!(f, "{u}"),
        }
    }
}

/// Asks for a secret on the terminal (no echo); given the prompt text.
pub type PromptFn = fn(&str) -> anyhow::Result<Zeroizing<String>>;

/// How keys are unlocked: the passphrase of encrypted key files, the PKCS#11 module and PIN.
#[derive(Clone, Debug, Default)]
pub struct KeyAccess {
    /// The env variable holding the passphrase of encrypted key files.
    pub passphrase_env: Option<String>,
    /// The PKCS#11 module (shared library).
    pub pkcs11_module: Option<PathBuf>,
    /// Asks for a passphrase when a key file is encrypted and `passphrase_env` is not set
    /// (`None`: not on a terminal, so an encrypted key without `passphrase_env` is an error).
    pub prompt: Option<PromptFn>,
}

impl KeyAccess {
    fn passphrase(&self, path: &Path) -> anyhow::Result<Zeroizing<String>> {
        if let Some(var) = &self.passphrase_env {
            let p = std::env::var(var)
                .with_context(|| format!("--passphrase-env {var}: the variable is not set"))?;
            return Ok(Zeroizing::new(p));
        }
        match self.prompt {
            Some(ask) => ask(&format!("passphrase for {}: ", path.display())),
            None => bail!(
                "{} is encrypted: give --passphrase-env VAR, or run on a terminal to be asked",
                path.display()
            ),
        }
    }

    /// Opens the key at `loc`.
    pub fn open(&self, loc: &KeyLocation) -> anyhow::Result<Box<dyn Signer>> {
        match loc {
            KeyLocation::File(path) => {
                match KeyFileSigner::open(path, None) {
                    Ok(s) => Ok(Box::new(s)),
                    Err(SignerError::PassphraseRequired) => {
                        let pass = self.passphrase(path)?;
                        let s = KeyFileSigner::open(path, Some(pass.as_bytes()))
                            .with_context(|| format!("opening key file {}", path.display()))?;
                        Ok(Box::new(s))
                    }
                    Err(e) => Err(anyhow::Error::new(e)
                        .context(format!("opening key file {}", path.display()))),
                }
            }
            KeyLocation::Pkcs11(uri) => self.open_pkcs11(uri),
        }
    }

    #[cfg(feature = "pkcs11")]
    fn module(&self) -> anyhow::Result<&Path> {
        self.pkcs11_module.as_deref().with_context(|| {
            format!("a PKCS#11 key needs the module: --pkcs11-module PATH or env {MODULE_ENV}")
        })
    }

    #[cfg(feature = "pkcs11")]
    fn pin() -> anyhow::Result<Zeroizing<String>> {
        std::env::var(PIN_ENV)
            .map(Zeroizing::new)
            .with_context(|| format!("a PKCS#11 key needs the user PIN in env {PIN_ENV}"))
    }

    #[cfg(feature = "pkcs11")]
    fn open_pkcs11(&self, uri: &Pkcs11Uri) -> anyhow::Result<Box<dyn Signer>> {
        let pin = Self::pin()?;
        let s = kasane_signer::Pkcs11Signer::open(self.module()?, &uri.token, &pin, &uri.object)
            .with_context(|| format!("opening {uri}"))?;
        Ok(Box::new(s))
    }

    #[cfg(not(feature = "pkcs11"))]
    fn open_pkcs11(&self, uri: &Pkcs11Uri) -> anyhow::Result<Box<dyn Signer>> {
        bail!("{uri}: this kasane-registry was built without PKCS#11 support (feature pkcs11)")
    }
}

/// The role keys of a command: explicit locations, else `<dir>/<role>.pem`.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    /// The keys directory.
    pub dir: Option<PathBuf>,
    /// Explicit locations by role (`--targets-key …`).
    pub explicit: Vec<(Role, KeyLocation)>,
    /// How keys are unlocked.
    pub access: KeyAccess,
}

impl Keys {
    /// Where `role`'s key is.
    pub fn location(&self, role: Role) -> anyhow::Result<KeyLocation> {
        if let Some((_, loc)) = self.explicit.iter().find(|(r, _)| *r == role) {
            return Ok(loc.clone());
        }
        let dir = self.dir.as_ref().with_context(|| {
            format!(
                "no {} key: give --{}-key KEY or --keys DIR",
                role.name(),
                role.name()
            )
        })?;
        Ok(KeyLocation::File(dir.join(role.file_name())))
    }

    /// Opens `role`'s key.
    pub fn open(&self, role: Role) -> anyhow::Result<Box<dyn Signer>> {
        let loc = self.location(role)?;
        self.access
            .open(&loc)
            .with_context(|| format!("the {} key {loc}", role.name()))
    }
}

/// The TUF key id of a public key.
pub fn key_id(public: &PublicKey) -> String {
    tuf_key(public).key_id().to_string()
}

fn load_repo(repo_dir: &Path) -> anyhow::Result<Repository> {
    Repository::load(repo_dir)
        .with_context(|| format!("loading the repository in {}", repo_dir.display()))
}

/// Takes the repository lock (waiting for a host's re-signing or another command to end),
/// then loads the repository: every command that changes a repository holds the lock from
/// load to save, so no two writers sign the same version.
fn lock_and_load(repo_dir: &Path) -> anyhow::Result<(RepoLock, Repository)> {
    let lock = RepoLock::acquire(repo_dir)
        .with_context(|| format!("locking the repository in {}", repo_dir.display()))?;
    Ok((lock, load_repo(repo_dir)?))
}

/// Checks `repo` as a client would, then writes it: nothing is written if it does not verify.
fn save_checked(repo: &Repository, repo_dir: &Path) -> anyhow::Result<()> {
    repo.active(now())
        .context("the result does not verify as a client would check it; nothing written")?;
    repo.save(repo_dir)
        .with_context(|| format!("writing the repository in {}", repo_dir.display()))
}

/// Re-signs snapshot and timestamp with the online key, then [`save_checked`].
fn snapshot_and_save(repo: &mut Repository, repo_dir: &Path, keys: &Keys) -> anyhow::Result<()> {
    let online = keys.open(Role::Online)?;
    repo.snapshot(&[&TufSigner(&*online)], now(), &Lifetimes::default())
        .context("signing snapshot and timestamp")?;
    save_checked(repo, repo_dir)
}

/// Writes a module as `targets/<sha256>.<name>` (consistent snapshots).
fn write_target_file(repo_dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let path = repo_dir.join(target_file_path(name, &Sha256Hash::of(bytes)));
    let vis = crate::files::Visibility::of_root(repo_dir);
    if let Some(dir) = path.parent() {
        crate::files::create_repo_dir(dir, vis)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::files::write_repo_file(&path, bytes, vis)
        .with_context(|| format!("writing module file {}", path.display()))?;
    Ok(path)
}

fn read_capped(path: &Path, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    crate::files::read_capped(path, max, what)
        .with_context(|| format!("reading {what} {}", path.display()))
}

/// What [`keygen`] wrote.
#[derive(Clone, Debug)]
pub struct KeygenReport {
    /// The private key: a file (mode 0600) or a key on a token.
    pub secret: String,
    /// The public key file (SubjectPublicKeyInfo PEM, mode 0644): what a key holder hands over.
    pub public_path: PathBuf,
    /// The public key.
    pub public: PublicKey,
}

fn public_path_of(out: &Path) -> anyhow::Result<PathBuf> {
    let p = PathBuf::from(format!("{}.pub", out.display()));
    ensure!(
        !p.exists(),
        "{} already exists; refusing to overwrite it",
        p.display()
    );
    Ok(p)
}

fn write_public_key(path: &Path, public: &PublicKey) -> anyhow::Result<()> {
    let pem = public.to_pem().context("encoding the public key")?;
    crate::files::write_public(path, pem.as_bytes())
        .with_context(|| format!("writing public key file {}", path.display()))
}

/// `keygen`: a new key of `kind` in `out` (PKCS#8 PEM, mode 0600, encrypted under
/// `passphrase` if given; never overwriting a file) and its public half in `out` + `.pub`.
pub fn keygen(
    out: &Path,
    kind: KeyKind,
    passphrase: Option<&[u8]>,
) -> anyhow::Result<KeygenReport> {
    let public_path = public_path_of(out)?;
    let signer = KeyFileSigner::generate(kind, out, passphrase)
        .with_context(|| format!("writing key file {}", out.display()))?;
    write_public_key(&public_path, signer.public_key())?;
    Ok(KeygenReport {
        secret: format!("{} (mode 0600)", out.display()),
        public_path,
        public: signer.public_key().clone(),
    })
}

/// `keygen --pkcs11`: a new key pair of `kind` generated on the token (the private half never
/// leaves it), its public half written to `public_out`.
#[cfg(feature = "pkcs11")]
pub fn keygen_pkcs11(
    uri: &Pkcs11Uri,
    kind: KeyKind,
    access: &KeyAccess,
    public_out: &Path,
) -> anyhow::Result<KeygenReport> {
    ensure!(
        !public_out.exists(),
        "{} already exists; refusing to overwrite it",
        public_out.display()
    );
    let pin = KeyAccess::pin()?;
    let public = kasane_signer::Pkcs11Signer::generate(
        access.module()?,
        &uri.token,
        &pin,
        &uri.object,
        kind,
    )
    .with_context(|| format!("generating a key pair at {uri}"))?;
    write_public_key(public_out, &public)?;
    Ok(KeygenReport {
        secret: format!("{uri} (on the token)"),
        public_path: public_out.to_owned(),
        public,
    })
}

/// Options of [`init`] beyond the role keys.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Development setup: fresh unencrypted keys for every role in the keys directory.
    pub dev: bool,
    /// The root keys signing root 1 (default: the root key of the keys directory).
    pub root_keys: Vec<KeyLocation>,
    /// Further root public keys (SubjectPublicKeyInfo PEM) that do not sign root 1.
    pub root_public_keys: Vec<PathBuf>,
    /// Root threshold (default 1).
    pub root_threshold: Option<u64>,
    /// The host identity's public key file (default: the public half of `host.key`).
    pub host_public_key: Option<PathBuf>,
}

/// What [`init`] did.
#[derive(Clone, Debug)]
pub struct InitReport {
    /// Key files generated (`--dev`).
    pub generated: Vec<PathBuf>,
    /// SHA-256 of `metadata/1.root.json`: what clients pin.
    pub root_fingerprint: Sha256Hash,
    /// Root keys.
    pub root_keys: usize,
    /// Root threshold.
    pub root_threshold: u64,
}

/// `init`: a new repository in `repo_dir`. With `opts.dev`, fresh keys are written to the
/// keys directory ([`DEV_KEY_FILES`]); otherwise every role's existing key is used. Refuses a
/// directory that already holds a repository.
pub fn init(repo_dir: &Path, keys: &Keys, opts: &InitOptions) -> anyhow::Result<InitReport> {
    let root1 = repo_dir.join(metadata_path("root", Some(1)));
    ensure!(
        !root1.exists(),
        "{} already exists: {} already holds a repository",
        root1.display(),
        repo_dir.display()
    );
    let repo = if opts.dev {
        let dir = keys.dir.as_ref().context("init --dev needs --keys DIR")?;
        dev_init(repo_dir, dir, now(), &Lifetimes::default()).with_context(|| {
            format!(
                "creating a development repository with keys in {}",
                dir.display()
            )
        })?
    } else {
        let repo = init_with_keys(keys, opts)?;
        save_checked(&repo, repo_dir)?;
        repo
    };
    let generated = match (&keys.dir, opts.dev) {
        (Some(d), true) => DEV_KEY_FILES.iter().map(|f| d.join(f)).collect(),
        _ => Vec::new(),
    };
    let root = &repo.root().roles["root"];
    Ok(InitReport {
        generated,
        root_fingerprint: Sha256Hash::of(repo.first_root_bytes()),
        root_keys: root.keyids.len(),
        root_threshold: root.threshold,
    })
}

fn host_identity(keys: &Keys, opts: &InitOptions) -> anyhow::Result<[u8; 32]> {
    if let Some(p) = &opts.host_public_key {
        let k = crate::keys::read_public_key_file(p)
            .with_context(|| format!("reading host public key {}", p.display()))?;
        return Ok(k.to_bytes());
    }
    let dir = keys
        .dir
        .as_ref()
        .context("no host identity key: give --host-public-key FILE or --keys DIR")?;
    let p = dir.join(HOST_KEY_FILE);
    let k = crate::keys::read_key_file(&p)
        .with_context(|| format!("reading the host identity key {}", p.display()))?;
    Ok(k.public().to_bytes())
}

fn init_with_keys(keys: &Keys, opts: &InitOptions) -> anyhow::Result<Repository> {
    let root: Vec<Box<dyn Signer>> = if opts.root_keys.is_empty() {
        vec![keys.open(Role::Root)?]
    } else {
        let open = |l: &KeyLocation| keys.access.open(l).with_context(|| format!("root key {l}"));
        opts.root_keys
            .iter()
            .map(open)
            .collect::<anyhow::Result<_>>()?
    };
    let [targets, online, revocations, authors, ticket] = [
        Role::Targets,
        Role::Online,
        Role::Revocations,
        Role::Authors,
        Role::Ticket,
    ]
    .map(|r| keys.open(r));
    let (targets, online, revocations, authors, ticket) =
        (targets?, online?, revocations?, authors?, ticket?);
    let mut root_keys: Vec<_> = root.iter().map(|s| tuf_key(s.public_key())).collect();
    for p in &opts.root_public_keys {
        let k = PublicKey::read_pem_file(p)
            .with_context(|| format!("reading root public key {}", p.display()))?;
        root_keys.push(tuf_key(&k));
    }
    let one = |s: &dyn Signer| RoleSetup::single(tuf_key(s.public_key()));
    let setup = Setup {
        root: RoleSetup {
            keys: root_keys,
            threshold: opts.root_threshold.unwrap_or(1),
        },
        targets: one(&*targets),
        online: one(&*online),
        revocations: one(&*revocations),
        authors: one(&*authors),
    };
    let ticket_public = TufSigner(&*ticket)
        .ed25519_public()
        .context("the ticket key must be Ed25519 (clients verify tickets with it)")?;
    let host = HostKeys::new(&host_identity(keys, opts)?, &ticket_public);
    let root_tuf: Vec<TufSigner<'_>> = root.iter().map(|s| TufSigner(&**s)).collect();
    let root_dyn: Vec<&dyn kasane_tuf::metadata::Signer> =
        root_tuf.iter().map(|s| s as _).collect();
    let (t, o, v, a) = (
        TufSigner(&*targets),
        TufSigner(&*online),
        TufSigner(&*revocations),
        TufSigner(&*authors),
    );
    let signers = InitSigners {
        root: &root_dyn,
        targets: &[&t],
        online: &[&o],
        revocations: &[&v],
        authors: &[&a],
    };
    Repository::init(&setup, &signers, &host, now(), &Lifetimes::default())
        .context("creating the repository")
}

/// A module to publish and the limits it is published with (`add`, `author-sign`).
#[derive(Clone, Debug)]
pub struct ModuleSpec {
    /// The module file (binary wasm).
    pub module: PathBuf,
    /// The name it is published under.
    pub name: String,
    /// Fuel budget.
    pub fuel: u64,
    /// Linear memory limit, bytes.
    pub memory: u64,
    /// Params (`DeriveInput.params`).
    pub params: Vec<u8>,
    /// Profile, or auto-detected from the imports.
    pub profile: ProfileChoice,
    /// Rollout weight.
    pub weight: u32,
    /// Publish even if the harness finds a problem other than ABI, profile or imports.
    pub force: bool,
    /// Headroom factor required over the most fuel used.
    pub headroom: f64,
}

/// A module entry built by [`check_and_build_entry`], with the harness report behind it.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The entry to publish.
    pub entry: TargetEntry,
    /// What `kasane-registry test` found.
    pub report: Report,
    /// The module bytes.
    pub bytes: Vec<u8>,
}

fn failed_checks(report: &Report) -> String {
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    failed.join("; ")
}

/// Runs the authoring harness on the module (as `kasane-registry test` does) and builds its
/// entry. A module whose ABI, profile or imports are wrong, or whose auth output ignores a
/// response or the whole session ([`crate::dependence`]), is always refused; one that fails
/// any other check is refused unless `spec.force`.
pub fn check_and_build_entry(spec: &ModuleSpec) -> anyhow::Result<Checked> {
    crate::layout::validate_module_name(&spec.name)
        .with_context(|| format!("--name {}", spec.name))?;
    let wasm = read_capped(&spec.module, MAX_MODULE_LEN, "module")?;
    let opts = HarnessOptions {
        profile: spec.profile,
        fuel: spec.fuel,
        memory: spec.memory,
        params: spec.params.clone(),
        headroom: spec.headroom,
        inputs: Vec::new(),
        vectors: Vec::new(),
    };
    let report = test_module(&wasm, &opts);
    if let Some(ignored) = &report.ignored {
        // A security property, not a quality one: --force does not pass it.
        return Err(anyhow::Error::new(ignored.clone()).context(format!(
            "module {} refused whatever --force says",
            spec.module.display()
        )));
    }
    let structural = report
        .checks
        .iter()
        .any(|c| !c.passed && matches!(c.name, "engine" | "abi" | "compile"));
    if structural || report.profile.is_none() {
        bail!(
            "module {} refused by the sandbox ({})",
            spec.module.display(),
            failed_checks(&report)
        );
    }
    if !report.passed() && !spec.force {
        bail!(
            "module {} fails `kasane-registry test` ({}); fix it, or pass --force to publish anyway",
            spec.module.display(),
            failed_checks(&report)
        );
    }
    let entry = TargetEntry {
        name: spec.name.clone(),
        sha256: Sha256Hash::of(&wasm),
        length: wasm.len() as u64,
        profile: report.profile.unwrap_or(Profile::Pure),
        fuel: spec.fuel,
        memory: spec.memory,
        params: spec.params.clone(),
        rollout_weight: spec.weight,
    };
    entry
        .validate()
        .with_context(|| format!("building the entry for {}", spec.name))?;
    Ok(Checked {
        entry,
        report,
        bytes: wasm,
    })
}

/// What a publishing command left: the new role versions.
#[derive(Clone, Debug)]
pub struct Published {
    /// The role that lists the change, and its new version.
    pub role: (String, u64),
    /// The new snapshot version (= timestamp version).
    pub snapshot: u64,
}

fn published(repo: &Repository, role: &str) -> Published {
    let version = if role == "targets" {
        repo.targets().version
    } else {
        repo.delegated(role).map_or(0, |t| t.version)
    };
    Published {
        role: (role.to_owned(), version),
        snapshot: repo.versions().1,
    }
}

/// `add`: checks the module with the harness, writes it to `targets/<sha256>.<name>`, lists it
/// in `targets` (replacing an entry of the same name; signed with the targets key) and
/// re-signs snapshot and timestamp (the online key).
pub fn add(
    repo_dir: &Path,
    keys: &Keys,
    spec: &ModuleSpec,
) -> anyhow::Result<(Checked, Published)> {
    let checked = check_and_build_entry(spec)?;
    let (_lock, mut repo) = lock_and_load(repo_dir)?;
    let targets = keys.open(Role::Targets)?;
    repo.add_target(
        &checked.entry,
        &[&TufSigner(&*targets)],
        now(),
        &Lifetimes::default(),
    )
    .with_context(|| format!("listing {}", spec.name))?;
    write_target_file(repo_dir, &spec.name, &checked.bytes)?;
    snapshot_and_save(&mut repo, repo_dir, keys)?;
    Ok((checked, published(&repo, "targets")))
}

/// What to revoke.
#[derive(Clone, Debug)]
pub enum RevokeTarget {
    /// A module hash (listed in `kasane/revocations.json`).
    Hash(Sha256Hash),
    /// An author: `authors` no longer delegates to it.
    Author(String),
}

/// `revoke`: a module hash into `kasane/revocations.json` (the revocations key), or an author
/// out of the `authors` role (the authors key); then snapshot and timestamp (the online key).
pub fn revoke(repo_dir: &Path, keys: &Keys, what: &RevokeTarget) -> anyhow::Result<Published> {
    let (_lock, mut repo) = lock_and_load(repo_dir)?;
    let life = Lifetimes::default();
    let role = match what {
        RevokeTarget::Hash(h) => {
            let k = keys.open(Role::Revocations)?;
            repo.revoke_hash(Some(*h), &[&TufSigner(&*k)], now(), &life)
                .context("signing revocations")?;
            crate::layout::REVOCATIONS_ROLE
        }
        RevokeTarget::Author(id) => {
            let k = keys.open(Role::Authors)?;
            repo.undelegate(id, &[&TufSigner(&*k)], now(), &life)
                .with_context(|| format!("removing author {id} from the authors role"))?;
            crate::layout::AUTHORS_ROLE
        }
    };
    snapshot_and_save(&mut repo, repo_dir, keys)?;
    Ok(published(&repo, role))
}

/// `delegate`: delegates `<author>/*` to `author` with its public key files (SubjectPublicKeyInfo
/// PEM) and `threshold`, in the `authors` role (the authors key), capping the author's rollout
/// weights at `max_weight` ([`crate::weights`]); then snapshot and timestamp.
pub fn delegate(
    repo_dir: &Path,
    keys: &Keys,
    author: &str,
    author_keys: &[PathBuf],
    threshold: u64,
    max_weight: u32,
) -> anyhow::Result<Published> {
    let mut public = Vec::new();
    for p in author_keys {
        let k = PublicKey::read_pem_file(p)
            .with_context(|| format!("reading author public key {}", p.display()))?;
        let k = tuf_key(&k);
        if !public.contains(&k) {
            public.push(k);
        }
    }
    ensure!(
        threshold >= 1 && threshold as usize <= public.len(),
        "--threshold {threshold} needs between 1 and {} distinct author keys",
        public.len()
    );
    let (_lock, mut repo) = lock_and_load(repo_dir)?;
    let k = keys.open(Role::Authors)?;
    let setup = RoleSetup {
        keys: public,
        threshold,
    };
    repo.delegate_capped(
        author,
        &setup,
        max_weight,
        &[&TufSigner(&*k)],
        now(),
        &Lifetimes::default(),
    )
    .with_context(|| format!("delegating {author}/* to {author}"))?;
    snapshot_and_save(&mut repo, repo_dir, keys)?;
    Ok(published(&repo, crate::layout::AUTHORS_ROLE))
}

/// `author-sign` (the author's half): checks the module with the harness and lists it in the
/// author's role file — the one the repository in `repo_dir` holds, version + 1, or a new one —
/// signed with the author's keys. Returns the signed file and the entry. Needs no registry key.
pub fn author_sign(
    repo_dir: &Path,
    author: &str,
    author_keys: &[KeyLocation],
    access: &KeyAccess,
    spec: &ModuleSpec,
) -> anyhow::Result<(Vec<u8>, Checked)> {
    ensure!(
        !author_keys.is_empty(),
        "at least one author key (--key) is needed"
    );
    ensure!(
        crate::layout::author_of(&spec.name) == Some(author),
        "--name {} is outside the author's names ({author}/...)",
        spec.name
    );
    let repo = load_repo(repo_dir)?;
    let mut role: Targets = repo
        .author_template(author, now(), &Lifetimes::default())
        .with_context(|| format!("the role file of author {author}"))?;
    let checked = check_and_build_entry(spec)?;
    role.targets
        .insert(spec.name.clone(), checked.entry.to_target_file());
    let mut m = Metadata::new(role);
    for loc in author_keys {
        let s = access
            .open(loc)
            .with_context(|| format!("author key {loc}"))?;
        m.sign(&TufSigner(&*s)).context("signing the author role")?;
    }
    let bytes = m.to_bytes().context("encoding the author role")?;
    Ok((bytes, checked))
}

/// An author's signed role file for [`snapshot`] to take in, and the module files it lists.
#[derive(Clone, Debug)]
pub struct AuthorImport {
    /// The author id.
    pub author: String,
    /// The signed role file (from `author-sign --out`).
    pub file: PathBuf,
    /// Module files; each listed target not yet in the repository must be among them.
    pub modules: Vec<PathBuf>,
}

/// Takes in author `id`'s role file (checked against its delegation: keys, threshold, paths,
/// version) and writes the module files it lists that the repository lacks, from `modules`.
fn accept_author_role(
    repo: &mut Repository,
    repo_dir: &Path,
    id: &str,
    bytes: &[u8],
    modules: &[Vec<u8>],
) -> anyhow::Result<Vec<String>> {
    repo.put_author_role(id, bytes)
        .with_context(|| format!("accepting the role file of author {id}"))?;
    let role = repo
        .delegated(id)
        .context("internal: the accepted role is missing")?;
    let mut names = Vec::new();
    for (name, file) in &role.targets {
        let entry = TargetEntry::from_target(name, file)?;
        let on_disk = repo_dir.join(target_file_path(name, &entry.sha256));
        if !on_disk.exists() {
            let bytes = modules
                .iter()
                .find(|m| Sha256Hash::of(m) == entry.sha256)
                .with_context(|| {
                    format!("{name}: its module (sha256 {}) is not in the repository; give it with --module", entry.sha256)
                })?;
            write_target_file(repo_dir, name, bytes)?;
        }
        names.push(name.clone());
    }
    Ok(names)
}

/// `author-sign --apply`: [`author_sign`], then the registry takes the file in at once (the
/// online key re-signs snapshot and timestamp).
pub fn author_sign_apply(
    repo_dir: &Path,
    keys: &Keys,
    author: &str,
    author_keys: &[KeyLocation],
    spec: &ModuleSpec,
) -> anyhow::Result<(Checked, Published)> {
    let (bytes, checked) = author_sign(repo_dir, author, author_keys, &keys.access, spec)?;
    let (_lock, mut repo) = lock_and_load(repo_dir)?;
    accept_author_role(
        &mut repo,
        repo_dir,
        author,
        &bytes,
        std::slice::from_ref(&checked.bytes),
    )?;
    snapshot_and_save(&mut repo, repo_dir, keys)?;
    Ok((checked, published(&repo, author)))
}

/// What [`snapshot`] did.
#[derive(Clone, Debug)]
pub struct SnapshotReport {
    /// The new snapshot (and timestamp) version.
    pub version: u64,
    /// The author whose role file was taken in, and the targets it lists.
    pub accepted: Option<(String, Vec<String>)>,
}

/// `snapshot`: takes in an author's signed role file if given, then signs a new snapshot and
/// timestamp with the online key (also what keeps them from expiring).
pub fn snapshot(
    repo_dir: &Path,
    keys: &Keys,
    import: Option<&AuthorImport>,
) -> anyhow::Result<SnapshotReport> {
    let (_lock, mut repo) = lock_and_load(repo_dir)?;
    let accepted = match import {
        Some(i) => {
            let bytes = read_capped(&i.file, MAX_FILE, "author role file")?;
            let modules = i
                .modules
                .iter()
                .map(|p| read_capped(p, MAX_MODULE_LEN, "module"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let names = accept_author_role(&mut repo, repo_dir, &i.author, &bytes, &modules)
                .with_context(|| format!("taking in {}", i.file.display()))?;
            Some((i.author.clone(), names))
        }
        None => None,
    };
    snapshot_and_save(&mut repo, repo_dir, keys)?;
    Ok(SnapshotReport {
        version: repo.versions().1,
        accepted,
    })
}

/// An offline role [`refresh`] re-signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshRole {
    /// `root` (a new root version with the same keys: [`rotate_root`] with no new key).
    Root,
    /// `targets`.
    Targets,
    /// `revocations`.
    Revocations,
    /// `authors`.
    Authors,
}

/// `refresh`: re-signs an offline role with the next version, a new expiry and unchanged
/// content (the ceremony that keeps it from expiring), then snapshot and timestamp (the
/// online key). Returns the role's new version and the snapshot version.
pub fn refresh(repo_dir: &Path, keys: &Keys, role: RefreshRole) -> anyhow::Result<Published> {
    let (name, key) = match role {
        RefreshRole::Root => {
            let r = rotate_root(repo_dir, keys, &RotateOptions::default())?;
            let (_lock, repo) = lock_and_load(repo_dir)?;
            return Ok(Published {
                role: ("root".to_owned(), r.version),
                snapshot: repo.versions().1,
            });
        }
        RefreshRole::Targets => ("targets", Role::Targets),
        RefreshRole::Revocations => (crate::layout::REVOCATIONS_ROLE, Role::Revocations),
        RefreshRole::Authors => (crate::layout::AUTHORS_ROLE, Role::Authors),
    };
    let (_lock, mut repo) = lock_and_load(repo_dir)?;
    let k = keys.open(key)?;
    repo.refresh_role(name, &[&TufSigner(&*k)], now(), &Lifetimes::default())
        .with_context(|| format!("re-signing {name}"))?;
    snapshot_and_save(&mut repo, repo_dir, keys)?;
    Ok(published(&repo, name))
}

/// New keys for [`rotate_root`] (each replaces that role's keys, threshold 1).
#[derive(Clone, Debug, Default)]
pub struct RotateOptions {
    /// The current root keys signing the new root (default: the keys directory's root key).
    pub root_keys: Vec<KeyLocation>,
    /// A new root key.
    pub new_root: Option<KeyLocation>,
    /// A new targets key.
    pub new_targets: Option<KeyLocation>,
    /// A new online key (timestamp and snapshot).
    pub new_online: Option<KeyLocation>,
}

/// What [`rotate_root`] did.
#[derive(Clone, Debug)]
pub struct RotateReport {
    /// The new root version.
    pub version: u64,
    /// Roles whose key changed.
    pub rotated: Vec<&'static str>,
}

/// Sets `roles`' keys in `root` to `key` alone, threshold 1, dropping keys no role uses.
/// Refuses a role held by more than one key: one new key would silently turn its k-of-n into
/// 1-of-1 (one stolen key would then be enough).
fn replace_root_role(
    root: &mut kasane_tuf::metadata::Root,
    roles: &[&str],
    key: &PublicKey,
) -> anyhow::Result<()> {
    for r in roles {
        if let Some(role) = root.roles.get(*r)
            && (role.threshold > 1 || role.keyids.len() > 1)
        {
            anyhow::bail!(
                "the {r} role is held by {} keys (threshold {}): one new key would make it 1 of 1; \
                 rotate-root replaces only a role held by one key",
                role.keyids.len(),
                role.threshold
            );
        }
    }
    let k = tuf_key(key);
    let id = k.key_id();
    for r in roles {
        if let Some(role) = root.roles.get_mut(*r) {
            role.keyids = vec![id.clone()];
            role.threshold = 1;
        }
    }
    root.keys.insert(id, k);
    let used: std::collections::BTreeSet<_> =
        root.roles.values().flat_map(|r| r.keyids.clone()).collect();
    root.keys.retain(|id, _| used.contains(id));
    Ok(())
}

/// `rotate-root`: root N+1 signed by the current root keys (a threshold of them) and, when the
/// root key changes, the new one. A new targets key re-signs `targets` at once, and snapshot
/// and timestamp are re-signed with the new or the current online key, so the repository
/// stays valid. With no new key, root just gets a new expiry.
pub fn rotate_root(
    repo_dir: &Path,
    keys: &Keys,
    opts: &RotateOptions,
) -> anyhow::Result<RotateReport> {
    let (_lock, mut repo) = lock_and_load(repo_dir)?;
    let (now, life) = (now(), Lifetimes::default());
    let mut next = repo.next_root(now, &life).context("the next root")?;
    let open =
        |l: &KeyLocation, what: &str| keys.access.open(l).with_context(|| format!("{what} {l}"));
    let new_root = opts
        .new_root
        .as_ref()
        .map(|l| open(l, "new root key"))
        .transpose()?;
    let new_targets = opts
        .new_targets
        .as_ref()
        .map(|l| open(l, "new targets key"))
        .transpose()?;
    let new_online = opts
        .new_online
        .as_ref()
        .map(|l| open(l, "new online key"))
        .transpose()?;
    let mut rotated = Vec::new();
    for (roles, key, name) in [
        (&["root"][..], &new_root, "root"),
        (&["targets"][..], &new_targets, "targets"),
        (&["timestamp", "snapshot"][..], &new_online, "online"),
    ] {
        if let Some(k) = key {
            replace_root_role(&mut next, roles, k.public_key())?;
            rotated.push(name);
        }
    }
    let old: Vec<Box<dyn Signer>> = if opts.root_keys.is_empty() {
        vec![keys.open(Role::Root)?]
    } else {
        opts.root_keys
            .iter()
            .map(|l| open(l, "root key"))
            .collect::<anyhow::Result<_>>()?
    };
    let tuf: Vec<TufSigner<'_>> = old
        .iter()
        .chain(&new_root)
        .map(|s| TufSigner(&**s))
        .collect();
    let signers: Vec<&dyn kasane_tuf::metadata::Signer> = tuf.iter().map(|s| s as _).collect();
    let version = next.version;
    repo.rotate_root(next, &signers)
        .with_context(|| format!("signing root version {version}"))?;
    if let Some(t) = &new_targets {
        let host = repo.host_keys().context("reading kasane/host-keys.json")?;
        repo.set_host_keys(&host, &[&TufSigner(&**t)], now, &life)
            .context("re-signing targets with the new key")?;
    }
    match &new_online {
        Some(o) => {
            repo.snapshot(&[&TufSigner(&**o)], now, &life)
                .context("signing snapshot and timestamp with the new online key")?;
            save_checked(&repo, repo_dir)?;
        }
        None => snapshot_and_save(&mut repo, repo_dir, keys)?,
    }
    Ok(RotateReport { version, rotated })
}

/// Which list of `kasane/host-keys.json` a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKeyKind {
    /// Identity keys: one signs each login's start response and the audit checkpoints.
    Identity,
    /// Ticket keys: one signs each login's session ticket.
    Ticket,
}

impl std::fmt::Display for HostKeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Identity => "identity",
            Self::Ticket => "ticket",
        })
    }
}

/// One change `host-keys` makes: a raw Ed25519 public key added to or removed from a list.
#[derive(Clone, Debug)]
pub struct HostKeyChange {
    /// The list.
    pub kind: HostKeyKind,
    /// The key.
    pub key: [u8; 32],
    /// Added (else removed).
    pub add: bool,
}

/// `host-keys`: `kasane/host-keys.json` as the repository holds it.
pub fn host_keys(repo_dir: &Path) -> anyhow::Result<HostKeys> {
    load_repo(repo_dir)?
        .host_keys()
        .context("reading kasane/host-keys.json")
}

/// `host-keys --add-… / --remove-…`: `kasane/host-keys.json` with `change` made, listed in
/// targets version + 1 (the targets key), snapshot and timestamp re-signed (the online key).
/// Refuses to add a key already listed, to remove one that is not, and to remove the last
/// key of a list (clients would refuse every login).
pub fn change_host_keys(
    repo_dir: &Path,
    keys: &Keys,
    change: &HostKeyChange,
) -> anyhow::Result<(HostKeys, Published)> {
    let (_lock, mut repo) = lock_and_load(repo_dir)?;
    let mut host = repo.host_keys().context("reading kasane/host-keys.json")?;
    let list = match change.kind {
        HostKeyKind::Identity => &mut host.identity,
        HostKeyKind::Ticket => &mut host.tickets,
    };
    let (kind, hex) = (change.kind, hex::encode(change.key));
    // A key clients cannot parse would fail every login; a weak (small-order) one verifies
    // forged signatures.
    let point = ed25519_dalek::VerifyingKey::from_bytes(&change.key);
    ensure!(
        point.is_ok_and(|p| !p.is_weak()),
        "{hex} is not a usable Ed25519 public key"
    );
    let key = kasane_tuf::keys::Key::ed25519(&change.key);
    if change.add {
        ensure!(
            !list.contains(&key),
            "{hex} is already one of the {kind} keys"
        );
        list.push(key);
    } else {
        ensure!(list.contains(&key), "{hex} is not one of the {kind} keys");
        ensure!(
            list.len() > 1,
            "{hex} is the last {kind} key: clients would refuse every login; add its successor first"
        );
        list.retain(|k| *k != key);
    }
    let targets = keys.open(Role::Targets)?;
    repo.set_host_keys(
        &host,
        &[&TufSigner(&*targets)],
        now(),
        &Lifetimes::default(),
    )
    .context("signing targets")?;
    snapshot_and_save(&mut repo, repo_dir, keys)?;
    Ok((host, published(&repo, "targets")))
}

/// `sign-ticket`: a session ticket for the client's `nonce` naming module `name` (which must
/// be runnable), bound to the current timestamp and snapshot, signed with the ticket key
/// (which must be a ticket key of `kasane/host-keys.json`). Returns the ticket file's bytes.
pub fn sign_ticket(
    repo_dir: &Path,
    keys: &Keys,
    nonce: [u8; 32],
    name: &str,
) -> anyhow::Result<Vec<u8>> {
    let repo = load_repo(repo_dir)?;
    let key = keys.open(Role::Ticket)?;
    let now = now();
    let entry = repo
        .find_entry(name, now)
        .with_context(|| format!("{name} is not a module of this repository"))?;
    let revoked = repo
        .revocations()
        .context("reading kasane/revocations.json")?;
    ensure!(!revoked.is_revoked(&entry.sha256), "{name} is revoked");
    let host = repo.host_keys().context("reading kasane/host-keys.json")?;
    ensure!(
        host.tickets.contains(&tuf_key(key.public_key())),
        "the ticket key {} is not a ticket key of kasane/host-keys.json: clients would refuse its tickets",
        keys.location(Role::Ticket)?
    );
    repo.sign_ticket(nonce, &entry, &TufSigner(&*key), now, &Lifetimes::default())
        .with_context(|| format!("signing a ticket for {name}"))
}

/// How [`verify`] pins the first root.
#[derive(Clone, Debug)]
pub enum PinSource {
    /// A root file delivered out of band: its SHA-256 is the pin.
    RootFile(PathBuf),
    /// The SHA-256 of the repository's `metadata/1.root.json`.
    Fingerprint(Sha256Hash),
}

/// What [`verify`] found.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The trusted root version.
    pub root_version: u64,
    /// The trusted (timestamp, snapshot) versions.
    pub versions: (u64, u64),
    /// The runnable modules and the role that listed each (`targets`, or an author id).
    pub runnable: Vec<(TargetEntry, String)>,
}

/// `verify`: checks a repository directory as a fresh client pinned by `pin` would
/// ([`crate::trust::verify_repository`]; a new trust store in `state_dir`, replacing any
/// there), and lists the modules it makes runnable.
pub fn verify(repo_dir: &Path, state_dir: &Path, pin: &PinSource) -> anyhow::Result<VerifyReport> {
    let fp = match pin {
        PinSource::Fingerprint(fp) => *fp,
        PinSource::RootFile(p) => Sha256Hash::of(&read_capped(p, MAX_FILE, "root")?),
    };
    let runnable = crate::trust::verify_repository(repo_dir, state_dir, fp, SystemClock)
        .with_context(|| format!("verifying the repository in {}", repo_dir.display()))?;
    let repo = load_repo(repo_dir)?;
    Ok(VerifyReport {
        root_version: repo.root().version,
        versions: repo.versions(),
        runnable,
    })
}

/// `inspect`: a TUF metadata file or a ticket, pretty-printed: its type, the key ids that
/// signed it, and its payload. No signature is checked.
pub fn inspect(path: &Path) -> anyhow::Result<String> {
    let bytes = read_capped(path, MAX_FILE, "file")?;
    let v: serde_json::Value = crate::json::from_slice_strict(&bytes, MAX_FILE, "file")
        .with_context(|| format!("reading {}", path.display()))?;
    let (Some(signed), Some(sigs)) = (
        v.get("signed"),
        v.get("signatures").and_then(|s| s.as_array()),
    ) else {
        bail!(
            "{} is not TUF metadata or a ticket (no signed/signatures)",
            path.display()
        );
    };
    let keyids: Vec<&serde_json::Value> = sigs.iter().filter_map(|s| s.get("keyid")).collect();
    let out = serde_json::json!({
        "type": signed.get("_type"),
        "signed_by": keyids,
        "signed": signed,
    });
    let mut text = serde_json::to_string_pretty(&out)?;
    text.push('\n');
    Ok(text)
}

/// The role key file names of a keys directory, for `--help` and messages.
pub fn key_file_names() -> String {
    DEV_KEY_FILES.join(", ")
}
