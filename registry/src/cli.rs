//! The `kasane-registry` commands as library functions, so the binary (one struct per command
//! in `src/bin/kasane-registry/commands/`) only parses arguments and prints, and tests or other
//! programs can call the same code.
//!
//! This is the command layer: its errors are for a person at a terminal, so functions return
//! [`anyhow::Result`] with context naming the file or key involved; the typed
//! [`crate::RegistryError`] or [`kasane_sandbox::SandboxError`] stays underneath in the chain
//! (`err.downcast_ref`). Nothing here prints, and nothing returned carries secret key bytes.
//!
//! Key directory layout (`--keys DIR`): one secret key file per role, named as in
//! [`DEV_KEY_FILES`] (`root.key`, `targets.key`, `snapshot.key`, `revocations.key`,
//! `host.key`), mode 0600. Each command reads only the keys of the roles it re-signs, so an
//! online machine needs only `snapshot.key`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};

use crate::harness::{HarnessOptions, Report, test_module};
use crate::hexfmt::Sha256Hash;
use crate::keys::{
    KeyId, PublicKey, SecretKey, read_key_file, read_public_key_file, write_key_file,
    write_public_key_file,
};
use crate::metadata::root::{RoleSpec, Root, fingerprint};
use crate::metadata::targets::{AuthorFile, Profile, TargetEntry};
use crate::metadata::{MAX_AUTHOR_LEN, MAX_MODULE_LEN, MAX_ROOT_LEN, parse_unverified};
use crate::repo::{
    DEV_KEY_FILES, InitSigners, Lifetimes, Repository, RoleSetup, RootSetup, author_sign,
    delegation, target_entry,
};
use crate::run::ProfileChoice;
use crate::trust::{
    Clock, DirFetcher, Fetcher, Pin, STATE_FILE, SystemClock, TrustStore, root_path,
};

/// Now, unix seconds (the system clock).
pub fn now() -> u64 {
    SystemClock.now()
}

/// The key file of `role` (`root`, `targets`, …) in a keys directory.
pub fn role_key_path(keys_dir: &Path, role: &str) -> PathBuf {
    keys_dir.join(format!("{role}.key"))
}

/// Reads the secret key of `role` from a keys directory.
pub fn read_role_key(keys_dir: &Path, role: &str) -> anyhow::Result<SecretKey> {
    let path = role_key_path(keys_dir, role);
    read_key_file(&path).with_context(|| format!("reading the {role} key {}", path.display()))
}

fn load_repo(repo_dir: &Path) -> anyhow::Result<Repository> {
    Repository::load(repo_dir)
        .with_context(|| format!("loading the repository in {}", repo_dir.display()))
}

fn save_repo(repo: &Repository, repo_dir: &Path) -> anyhow::Result<()> {
    repo.save(repo_dir)
        .with_context(|| format!("writing the repository in {}", repo_dir.display()))
}

fn read_capped(path: &Path, max: u64, what: &str) -> anyhow::Result<Vec<u8>> {
    crate::files::read_capped(path, max, what)
        .with_context(|| format!("reading {what} {}", path.display()))
}

/// What [`keygen`] wrote.
#[derive(Clone, Debug)]
pub struct KeygenReport {
    /// The secret key file (mode 0600).
    pub secret_path: PathBuf,
    /// The public key file (mode 0644): what an author or key holder hands over.
    pub public_path: PathBuf,
    /// The public key.
    pub public: PublicKey,
}

/// `keygen`: a fresh Ed25519 key in `out` (mode 0600, never overwriting a file) and its public
/// half in `out` + `.pub`.
pub fn keygen(out: &Path) -> anyhow::Result<KeygenReport> {
    let key = SecretKey::generate();
    let public_path = PathBuf::from(format!("{}.pub", out.display()));
    ensure!(
        !public_path.exists(),
        "{} already exists; refusing to overwrite it",
        public_path.display()
    );
    write_key_file(out, &key).with_context(|| format!("writing key file {}", out.display()))?;
    write_public_key_file(&public_path, &key.public())
        .with_context(|| format!("writing public key file {}", public_path.display()))?;
    Ok(KeygenReport {
        secret_path: out.to_owned(),
        public_path,
        public: key.public(),
    })
}

/// Options of [`init`] beyond the keys directory.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Root key holders' secret key files, used instead of `root.key` (each signs root 1).
    pub root_keys: Vec<PathBuf>,
    /// Further root public keys (holders who do not sign root 1).
    pub root_public_keys: Vec<PathBuf>,
    /// Root threshold (default 1).
    pub root_threshold: Option<u32>,
    /// The host identity's public key file, used instead of `host.key` (the host generates
    /// its identity key and hands over only the public half).
    pub host_public_key: Option<PathBuf>,
}

/// What [`init`] did.
#[derive(Clone, Debug)]
pub struct InitReport {
    /// Role key files generated because they were missing.
    pub generated: Vec<PathBuf>,
    /// SHA-256 of `1.root.json`: what clients pin.
    pub root_fingerprint: Sha256Hash,
    /// Root keys and threshold.
    pub root_keys: usize,
    /// Root threshold.
    pub root_threshold: u32,
}

/// `init`: a new repository in `repo_dir` signed with the role keys in `keys_dir`. A missing
/// role key file is generated (mode 0600) and reported, so an empty keys directory gives a
/// development repository with one key per role. Refuses a directory that already holds a
/// repository.
pub fn init(repo_dir: &Path, keys_dir: &Path, opts: &InitOptions) -> anyhow::Result<InitReport> {
    let root1 = repo_dir.join(root_path(1));
    ensure!(
        !root1.exists(),
        "{} already exists: {} already holds a repository",
        root1.display(),
        repo_dir.display()
    );
    crate::files::create_private_dir(keys_dir)
        .with_context(|| format!("creating keys directory {}", keys_dir.display()))?;
    let mut generated = Vec::new();
    let mut role_key = |role: &str| -> anyhow::Result<SecretKey> {
        let path = role_key_path(keys_dir, role);
        if !path.exists() {
            write_key_file(&path, &SecretKey::generate())
                .with_context(|| format!("writing key file {}", path.display()))?;
            generated.push(path);
        }
        read_role_key(keys_dir, role)
    };
    let root_signers: Vec<SecretKey> = if opts.root_keys.is_empty() {
        vec![role_key("root")?]
    } else {
        read_root_keys(&opts.root_keys)?
    };
    let [targets, snapshot, revocations] = ["targets", "snapshot", "revocations"]
        .map(&mut role_key)
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?
        .try_into()
        .map_err(|_| anyhow::anyhow!("internal: three role keys expected"))?;
    let host = match &opts.host_public_key {
        Some(p) => read_public_key_file(p)
            .with_context(|| format!("reading host public key {}", p.display()))?,
        None => role_key("host")?.public(),
    };
    let mut root_public: Vec<PublicKey> = root_signers.iter().map(SecretKey::public).collect();
    for p in &opts.root_public_keys {
        root_public.push(
            read_public_key_file(p)
                .with_context(|| format!("reading root public key {}", p.display()))?,
        );
    }
    let root_threshold = opts.root_threshold.unwrap_or(1);
    let setup = RootSetup {
        root: RoleSetup {
            keys: root_public.clone(),
            threshold: root_threshold,
        },
        targets: RoleSetup::single(&targets.public()),
        snapshot: RoleSetup::single(&snapshot.public()),
        revocations: RoleSetup::single(&revocations.public()),
        host: RoleSetup::single(&host),
    };
    let root_refs: Vec<&SecretKey> = root_signers.iter().collect();
    let signers = InitSigners {
        root: &root_refs,
        targets: &[&targets],
        revocations: &[&revocations],
        snapshot: &[&snapshot],
    };
    let repo = Repository::init(&setup, signers, now(), &Lifetimes::default())
        .context("creating the repository")?;
    save_repo(&repo, repo_dir)?;
    Ok(InitReport {
        generated,
        root_fingerprint: fingerprint(repo.root_bytes()),
        root_keys: root_public.len(),
        root_threshold,
    })
}

/// A module to publish and the limits it is published with (`add`, `author-sign`).
#[derive(Clone, Debug)]
pub struct ModuleSpec {
    /// The module file (binary wasm).
    pub module: PathBuf,
    /// The name it is published under.
    pub name: String,
    /// The entry's version; default: the previous entry's version + 1, or 1.
    pub version: Option<u64>,
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
}

/// Runs the authoring harness on the module (as `kasane-registry test` does) and builds its
/// entry. A module whose ABI, profile or imports are wrong is always refused; one that fails
/// any other check is refused unless `spec.force`.
pub fn check_and_build_entry(
    spec: &ModuleSpec,
    previous: Option<&TargetEntry>,
) -> anyhow::Result<Checked> {
    let wasm = read_capped(&spec.module, MAX_MODULE_LEN, "module")?;
    let report = test_module(
        &wasm,
        &HarnessOptions {
            profile: spec.profile,
            fuel: spec.fuel,
            memory: spec.memory,
            params: spec.params.clone(),
            headroom: spec.headroom,
            inputs: Vec::new(),
            vectors: Vec::new(),
        },
    );
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    let structural = report
        .checks
        .iter()
        .any(|c| !c.passed && matches!(c.name, "engine" | "abi" | "compile"));
    if structural || report.profile.is_none() {
        bail!(
            "module {} refused by the sandbox ({})",
            spec.module.display(),
            failed.join("; ")
        );
    }
    if !report.passed() && !spec.force {
        bail!(
            "module {} fails `kasane-registry test` ({}); fix it, or pass --force to publish anyway",
            spec.module.display(),
            failed.join("; ")
        );
    }
    let profile = match report.profile {
        Some(kasane_sandbox::Profile::Wasi) => Profile::Wasi,
        _ => Profile::Pure,
    };
    let mut entry = target_entry(
        &spec.name,
        &wasm,
        profile,
        spec.fuel,
        spec.memory,
        spec.params.clone(),
        spec.weight,
    )
    .with_context(|| format!("building the entry for {}", spec.name))?;
    entry.version = match (spec.version, previous) {
        (Some(v), _) => v,
        (None, Some(p)) => p.version.saturating_add(1),
        (None, None) => 1,
    };
    Ok(Checked { entry, report })
}

/// `add`: checks the module with the harness and publishes it as a first-party entry signed
/// with `targets.key` (replacing an entry of the same name). Run [`snapshot`] afterwards.
pub fn add(repo_dir: &Path, keys_dir: &Path, spec: &ModuleSpec) -> anyhow::Result<Checked> {
    let mut repo = load_repo(repo_dir)?;
    let previous = repo
        .targets()
        .targets
        .iter()
        .find(|e| e.name == spec.name)
        .cloned();
    let checked = check_and_build_entry(spec, previous.as_ref())?;
    let targets = read_role_key(keys_dir, "targets")?;
    repo.add_target(
        checked.entry.clone(),
        &[&targets],
        now(),
        &Lifetimes::default(),
    )
    .with_context(|| format!("publishing {}", spec.name))?;
    save_repo(&repo, repo_dir)?;
    Ok(checked)
}

/// What to revoke.
#[derive(Clone, Debug)]
pub enum RevokeTarget {
    /// A module hash.
    Hash(Sha256Hash),
    /// An author key, by id.
    AuthorKey(KeyId),
}

/// `revoke`: adds a module hash or an author key to `revocations`, signed with
/// `revocations.key`. Run [`snapshot`] afterwards.
pub fn revoke(repo_dir: &Path, keys_dir: &Path, what: &RevokeTarget) -> anyhow::Result<()> {
    let mut repo = load_repo(repo_dir)?;
    let key = read_role_key(keys_dir, "revocations")?;
    let (now, life) = (now(), Lifetimes::default());
    match what {
        RevokeTarget::Hash(h) => repo.revoke_hash(*h, &[&key], now, &life),
        RevokeTarget::AuthorKey(k) => repo.revoke_author_key(*k, &[&key], now, &life),
    }
    .context("signing revocations")?;
    save_repo(&repo, repo_dir)
}

/// `delegate`: delegates `prefix` to author `author` (its public key files, `threshold` of
/// them), signed with `targets.key`. Run [`snapshot`] once the author's file is in.
pub fn delegate(
    repo_dir: &Path,
    keys_dir: &Path,
    author: &str,
    prefix: &str,
    author_keys: &[PathBuf],
    threshold: u32,
) -> anyhow::Result<()> {
    let keys = author_keys
        .iter()
        .map(|p| {
            read_public_key_file(p)
                .with_context(|| format!("reading author public key {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let d = delegation(author, prefix, &keys, threshold)
        .with_context(|| format!("delegating {prefix} to {author}"))?;
    let mut repo = load_repo(repo_dir)?;
    let targets = read_role_key(keys_dir, "targets")?;
    repo.delegate(d, &[&targets], now(), &Lifetimes::default())
        .context("signing targets")?;
    save_repo(&repo, repo_dir)
}

/// `author-sign`: what an author runs on its own machine. Checks the module with the harness,
/// lists it (replacing an entry of the same name) in the author's file — the `previous` file
/// if given (its entries are kept, its version + 1), else a new one — and signs the file with
/// the author's keys. Returns the file's bytes (for `snapshot --author-file`) and the entry.
/// Nothing here needs the registry's keys.
pub fn author_sign_module(
    author: &str,
    author_keys: &[PathBuf],
    previous: Option<&Path>,
    spec: &ModuleSpec,
) -> anyhow::Result<(Vec<u8>, Checked)> {
    let keys = author_keys
        .iter()
        .map(|p| read_key_file(p).with_context(|| format!("reading author key {}", p.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    ensure!(
        !keys.is_empty(),
        "at least one author key (--key) is needed"
    );
    let mut file = match previous {
        Some(p) => {
            let bytes = read_capped(p, MAX_AUTHOR_LEN, "author file")?;
            let (mut f, _) = parse_unverified::<AuthorFile>(&bytes, "author file")
                .with_context(|| format!("reading the previous author file {}", p.display()))?;
            ensure!(
                f.author == author,
                "{} is the file of author {:?}, not {author:?}",
                p.display(),
                f.author
            );
            f.version = f
                .version
                .checked_add(1)
                .context("the previous author file has the last possible version")?;
            f
        }
        None => AuthorFile {
            author: author.to_owned(),
            version: 1,
            expires: 0,
            targets: Vec::new(),
            delegations: Vec::new(),
        },
    };
    let previous_entry = file.targets.iter().find(|e| e.name == spec.name).cloned();
    let checked = check_and_build_entry(spec, previous_entry.as_ref())?;
    file.targets.retain(|e| e.name != spec.name);
    file.targets.push(checked.entry.clone());
    file.expires = now().saturating_add(Lifetimes::default().targets);
    let refs: Vec<&SecretKey> = keys.iter().collect();
    let bytes = author_sign(&file, &refs).context("signing the author file")?;
    Ok((bytes, checked))
}

/// What [`snapshot`] did.
#[derive(Clone, Debug)]
pub struct SnapshotReport {
    /// The new snapshot version.
    pub version: u64,
    /// Author files accepted.
    pub authors: Vec<String>,
}

/// `snapshot`: accepts authors' signed files (each checked against its delegation, prefix and
/// version), then signs a new snapshot of every file with `snapshot.key`.
pub fn snapshot(
    repo_dir: &Path,
    keys_dir: &Path,
    author_files: &[PathBuf],
) -> anyhow::Result<SnapshotReport> {
    let mut repo = load_repo(repo_dir)?;
    let mut authors = Vec::new();
    for p in author_files {
        let bytes = read_capped(p, MAX_AUTHOR_LEN, "author file")?;
        let (unverified, _) = parse_unverified::<AuthorFile>(&bytes, "author file")
            .with_context(|| format!("reading author file {}", p.display()))?;
        repo.put_author_file(bytes)
            .with_context(|| format!("accepting author file {}", p.display()))?;
        authors.push(unverified.author);
    }
    let key = read_role_key(keys_dir, "snapshot")?;
    repo.snapshot(&[&key], now(), &Lifetimes::default())
        .context("signing the snapshot")?;
    save_repo(&repo, repo_dir)?;
    Ok(SnapshotReport {
        version: repo.snapshot_info().0.version,
        authors,
    })
}

/// What [`rotate_root`] did.
#[derive(Clone, Debug)]
pub struct RotateReport {
    /// The new root version.
    pub version: u64,
    /// Roles whose key changed.
    pub rotated: Vec<&'static str>,
}

/// `rotate-root`: root N+1, signed by the current `root.key` and (if the root key changes) the
/// new one. Each role key file present in `new_keys_dir` replaces that role's key (threshold
/// 1); targets, revocations and the snapshot are re-signed with their new keys at once, so the
/// repository stays valid. Without `new_keys_dir`, root is re-signed with a new expiry. Move
/// the new key files into the keys directory afterwards.
///
/// `root_keys`: the current root key holders' secret key files, instead of `root.key` (a
/// threshold of them must be given when root has more than one key).
pub fn rotate_root(
    repo_dir: &Path,
    keys_dir: &Path,
    new_keys_dir: Option<&Path>,
    root_keys: &[PathBuf],
) -> anyhow::Result<RotateReport> {
    let mut repo = load_repo(repo_dir)?;
    let (now, life) = (now(), Lifetimes::default());
    let mut next = repo.next_root(now, &life);
    let new_keys = match new_keys_dir {
        Some(dir) => install_new_keys(&mut next, dir)?,
        None => NewKeys::default(),
    };
    let old_root = if root_keys.is_empty() {
        vec![read_role_key(keys_dir, "root")?]
    } else {
        read_root_keys(root_keys)?
    };
    let mut signers: Vec<&SecretKey> = old_root.iter().collect();
    signers.extend(new_keys.get("root"));
    let version = next.version;
    repo.rotate_root(next, &signers)
        .with_context(|| format!("signing root version {version}"))?;
    resign_with_new_keys(&mut repo, &new_keys, keys_dir, now, &life)?;
    save_repo(&repo, repo_dir)?;
    Ok(RotateReport {
        version,
        rotated: new_keys.0.iter().map(|(role, _)| *role).collect(),
    })
}

/// The new role keys of a rotation, in role order.
#[derive(Default)]
struct NewKeys(Vec<(&'static str, SecretKey)>);

impl NewKeys {
    fn get(&self, role: &str) -> Option<&SecretKey> {
        self.0.iter().find(|(r, _)| *r == role).map(|(_, k)| k)
    }
}

/// Puts each role key file found in `dir` into root `next` (threshold 1), and drops the keys
/// no role uses any more.
fn install_new_keys(next: &mut Root, dir: &Path) -> anyhow::Result<NewKeys> {
    let mut new_keys = NewKeys::default();
    for role in ["root", "targets", "snapshot", "revocations", "host"] {
        if !role_key_path(dir, role).exists() {
            continue;
        }
        let k = read_role_key(dir, role)?;
        let spec = RoleSpec {
            keyids: vec![k.key_id()],
            threshold: 1,
        };
        let r = &mut next.roles;
        match role {
            "root" => r.root = spec,
            "targets" => r.targets = spec,
            "snapshot" => r.snapshot = spec,
            "revocations" => r.revocations = spec,
            _ => r.host = spec,
        }
        next.keys.insert(k.key_id(), k.public().into());
        new_keys.0.push((role, k));
    }
    let used: std::collections::BTreeSet<KeyId> = [
        &next.roles.root,
        &next.roles.targets,
        &next.roles.snapshot,
        &next.roles.revocations,
        &next.roles.host,
    ]
    .iter()
    .flat_map(|s| s.keyids.iter().copied())
    .collect();
    next.keys.retain(|id, _| used.contains(id));
    Ok(new_keys)
}

/// After a rotation: targets and revocations re-signed with their new keys (if replaced), so
/// the repository stays valid, then a snapshot with the new or the current snapshot key.
fn resign_with_new_keys(
    repo: &mut Repository,
    new_keys: &NewKeys,
    keys_dir: &Path,
    now: u64,
    life: &Lifetimes,
) -> anyhow::Result<()> {
    if let Some(k) = new_keys.get("targets") {
        repo.refresh_targets(&[k], now, life)
            .context("re-signing targets with the new key")?;
    }
    if let Some(k) = new_keys.get("revocations") {
        repo.refresh_revocations(&[k], now, life)
            .context("re-signing revocations with the new key")?;
    }
    let old_snapshot;
    let snap_key = match new_keys.get("snapshot") {
        Some(k) => k,
        None => {
            old_snapshot = read_role_key(keys_dir, "snapshot")?;
            &old_snapshot
        }
    };
    repo.snapshot(&[snap_key], now, life)
        .context("signing the snapshot")
}

/// Reads root key holders' secret key files (`--root-key`).
fn read_root_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<SecretKey>> {
    paths
        .iter()
        .map(|p| read_key_file(p).with_context(|| format!("reading root key {}", p.display())))
        .collect()
}

/// `sign-ticket`: a session ticket for the client's `nonce` naming module `name`, bound to the
/// current snapshot, signed with `snapshot.key`. Returns the ticket file's bytes.
pub fn sign_ticket(
    repo_dir: &Path,
    keys_dir: &Path,
    nonce: [u8; 32],
    name: &str,
) -> anyhow::Result<Vec<u8>> {
    let repo = load_repo(repo_dir)?;
    let key = read_role_key(keys_dir, "snapshot")?;
    repo.sign_ticket(nonce, name, &[&key], now(), &Lifetimes::default())
        .with_context(|| format!("signing a ticket for {name}"))
}

/// How [`verify`] pins the first root when it creates a trust store.
#[derive(Clone, Debug)]
pub enum PinSource {
    /// A root file delivered out of band.
    RootFile(PathBuf),
    /// The SHA-256 of the repository's `1.root.json`.
    Fingerprint(Sha256Hash),
}

/// What [`verify`] found.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The trusted root version.
    pub root_version: u64,
    /// The trusted snapshot version.
    pub snapshot_version: u64,
    /// Whether a new trust store was created (else an existing one was updated).
    pub created: bool,
    /// The runnable modules and the author that listed each (`None`: first-party).
    pub runnable: Vec<(TargetEntry, Option<String>)>,
}

/// `verify`: checks a repository directory as a client would. With no trust store in
/// `state_dir`, one is created pinned by `pin` (required then); an existing one is updated,
/// so its version floors refuse a rolled-back repository.
pub fn verify(
    repo_dir: &Path,
    state_dir: &Path,
    pin: Option<&PinSource>,
) -> anyhow::Result<VerifyReport> {
    let clock = SystemClock;
    let created = !state_dir.join(STATE_FILE).exists();
    let mut store = if created {
        let (root_bytes, pin) = match pin {
            None => bail!(
                "no trust store in {}: pin the first root with --root FILE or --fingerprint HEX",
                state_dir.display()
            ),
            Some(PinSource::RootFile(p)) => (read_capped(p, MAX_ROOT_LEN, "root")?, Pin::File),
            Some(PinSource::Fingerprint(fp)) => (
                DirFetcher::new(repo_dir)
                    .fetch(&root_path(1), MAX_ROOT_LEN)?
                    .with_context(|| format!("no {} in {}", root_path(1), repo_dir.display()))?,
                Pin::Fingerprint(*fp),
            ),
        };
        TrustStore::init(state_dir, &root_bytes, pin, clock).context("pinning the first root")?
    } else {
        TrustStore::open(state_dir, clock)
            .with_context(|| format!("opening the trust store in {}", state_dir.display()))?
    };
    store
        .update_all(&DirFetcher::new(repo_dir))
        .with_context(|| format!("verifying the repository in {}", repo_dir.display()))?;
    Ok(VerifyReport {
        root_version: store.root().version,
        snapshot_version: store.snapshot().map_or(0, |(v, _)| v),
        created,
        runnable: store.runnable(),
    })
}

/// `inspect`: the payload of any Kasane metadata file, pretty-printed. No signature is checked.
pub fn inspect(path: &Path) -> anyhow::Result<String> {
    let bytes = read_capped(path, crate::metadata::MAX_TARGETS_LEN * 2, "file")?;
    crate::repo::inspect(&bytes).with_context(|| format!("reading {}", path.display()))
}

/// Reads the public key of an author key file (public or secret), for `revoke --author-key`.
pub fn author_key_id(path: &Path) -> anyhow::Result<KeyId> {
    Ok(read_public_key_file(path)
        .with_context(|| format!("reading author key {}", path.display()))?
        .key_id())
}

/// The key file names of a keys directory, for `--help` and messages.
pub fn key_file_names() -> String {
    DEV_KEY_FILES.join(", ")
}
