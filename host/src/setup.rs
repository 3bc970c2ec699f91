//! Data directories and users: `kasane-host init`, loading a host from a data directory,
//! and `user add` with its code card.
//!
//! A data directory holds `kasane.toml`, `kasane.db` (SQLite), `tls/cert.pem` and
//! `tls/key.pem` (self-signed), `keys/` (development keys of every registry role, mode
//! 0600 — the host itself needs `host.key`, `ticket.pem` and `online.pem`; `init` makes
//! `queue.key`, and `opaque.key` is made on first use) and `registry/` (the TUF repository clients
//! fetch: `metadata/`, and `targets/` with the module files).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kasane_abi::Profile;
use kasane_registry::entry::TargetEntry;
use kasane_registry::files::Visibility;
use kasane_registry::repo::{Lifetimes, dev_init};
use kasane_registry::signing::{KeyFileSigner, TufSigner};
use kasane_registry::{RegistryError, Sha256Hash};
use kasane_sandbox::{Limits, Sandbox, SandboxConfig};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::HostError;
use crate::config::{CONFIG_FILE, Config};
use crate::crypto::KeyError;
use crate::host::Host;
use crate::registry::{HostRegistry, module_path};
use crate::registry_db::DbRegistry;
use crate::registry_source::{DbSource, RegistrySource};
use crate::store::{self, Clock, NewUser, Store};
use crate::upkeep::Upkeep;

/// The online key (timestamp and snapshot) in the keys directory.
pub use crate::keyfile::{ONLINE_KEY_FILE, read_signing_key};
pub use kasane_protocol::ServerKeys;
pub use kasane_protocol::card::{CardError, CodeCard, RESPONSE_LEN};

/// A built-in transform published by `init`.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// Registry name.
    pub name: &'static str,
    /// The module (from `guest-transforms/dist`, embedded in the binary).
    pub wasm: &'static [u8],
    /// Its profile.
    pub profile: Profile,
    /// Params.
    pub params: &'static str,
    /// Fuel budget.
    pub fuel: u64,
    /// Rollout weight.
    pub weight: u32,
}

/// The built-in transforms `init` publishes, with their params and weights.
pub const BUILTINS: [Builtin; 6] = [
    Builtin {
        name: "sha256-chain",
        wasm: include_bytes!("../../guest-transforms/dist/sha256-chain.wasm"),
        profile: Profile::Pure,
        params: "",
        fuel: 50_000_000,
        weight: 30,
    },
    Builtin {
        name: "hmac-sha256",
        wasm: include_bytes!("../../guest-transforms/dist/hmac-sha256.wasm"),
        profile: Profile::Pure,
        params: "",
        fuel: 50_000_000,
        weight: 30,
    },
    Builtin {
        name: "blake2s-keyed",
        wasm: include_bytes!("../../guest-transforms/dist/blake2s-keyed.wasm"),
        profile: Profile::Pure,
        params: "",
        fuel: 50_000_000,
        weight: 20,
    },
    Builtin {
        name: "pbkdf2-sha256",
        wasm: include_bytes!("../../guest-transforms/dist/pbkdf2-sha256.wasm"),
        profile: Profile::Pure,
        params: "1000",
        fuel: 50_000_000,
        weight: 10,
    },
    // Digits 0: the raw 32-byte HMAC, not 8 decimal digits, as key material. K = responses[0].
    Builtin {
        name: "ocra",
        wasm: include_bytes!("../../guest-transforms/dist/ocra.wasm"),
        profile: Profile::Pure,
        params: "OCRA-1:HOTP-SHA256-0:C-QA08",
        fuel: 50_000_000,
        weight: 5,
    },
    Builtin {
        name: "sha256-wasi-c",
        wasm: include_bytes!("../../guest-transforms/dist/sha256-wasi-c.wasm"),
        profile: Profile::Wasi,
        params: "",
        fuel: 50_000_000,
        weight: 5,
    },
];

/// What `init` made, for the message telling how a client connects.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The address the host will listen on.
    pub listen: String,
    /// SHA-256 of the TLS certificate (DER), hex: what a client pins.
    pub cert_sha256: String,
    /// SHA-256 of `registry/metadata/1.root.json`, hex: the root a client pins.
    pub root_sha256: String,
    /// The built-ins published.
    pub published: Vec<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HostError + '_ {
    move |e| HostError::io(path, e)
}

/// Writes a file of the data directory that holds no secret (certificate, module,
/// configuration), creating its folder. Still through the one private writer: atomic, and
/// nothing under the data directory is readable by group or others.
fn write_data_file(path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    if let Some(parent) = path.parent() {
        kasane_os::fs::create_private_dir(parent).map_err(io(parent))?;
    }
    kasane_os::fs::write_private(path, bytes).map_err(io(path))
}

/// Writes a new secret file (mode 0600 from its creation; never over an existing file).
/// Its folder, if missing, is created private (0700).
fn write_secret_new(path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    if let Some(parent) = path.parent() {
        kasane_os::fs::create_private_dir(parent).map_err(io(parent))?;
    }
    kasane_os::fs::write_private_new(path, bytes).map_err(io(path))
}

/// A self-signed certificate for `localhost` and `127.0.0.1`: (certificate PEM, key PEM,
/// certificate DER).
pub fn self_signed_cert() -> Result<(String, Zeroizing<String>, Vec<u8>), HostError> {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    Ok((
        ck.cert.pem(),
        Zeroizing::new(ck.key_pair.serialize_pem()),
        ck.cert.der().to_vec(),
    ))
}

/// `kasane-host init`: makes a working data directory (refusing one that already has a
/// configuration). `listen` overrides the default listen address.
pub async fn init(
    data_dir: &Path,
    listen: Option<&str>,
    now: u64,
) -> Result<InitReport, HostError> {
    let cfg_path = data_dir.join(CONFIG_FILE);
    if cfg_path.exists() {
        return Err(HostError::AlreadyInitialized { path: cfg_path });
    }
    kasane_os::fs::create_private_dir(data_dir).map_err(io(data_dir))?;
    let mut cfg = Config::default();
    if let Some(l) = listen {
        cfg.listen = l.to_owned();
    }
    let text = cfg.to_toml()?;
    let mut resolved = cfg.clone();
    resolved.resolve(data_dir);

    let (cert_pem, key_pem, cert_der) = self_signed_cert()?;
    write_data_file(&resolved.tls_cert, cert_pem.as_bytes())?;
    write_secret_new(&resolved.tls_key, key_pem.as_bytes())?;

    let published = publish_builtins(&resolved, now)?;

    // The key sealing queued messages at rest.
    crate::messages::load_queue_key(&resolved.keys_dir)?;

    // Creates the database and runs its migrations now, so `serve` finds a ready store.
    store::open(&resolved.database_url).await?;
    write_data_file(&cfg_path, text.as_bytes())?;

    let root = std::fs::read(resolved.registry_dir.join("metadata/1.root.json"))
        .map_err(io(&resolved.registry_dir))?;
    Ok(InitReport {
        data_dir: data_dir.to_owned(),
        listen: cfg.listen,
        cert_sha256: hex::encode(Sha256::digest(&cert_der)),
        root_sha256: hex::encode(Sha256::digest(&root)),
        published,
    })
}

/// The development registry: fresh keys for every role (`keys/*.pem`, `keys/host.key`), a
/// new repository, and every built-in transform published in it (module files under
/// `registry/targets/`). Returns the names published.
fn publish_builtins(resolved: &Config, now: u64) -> Result<Vec<String>, HostError> {
    let life = Lifetimes::default();
    let (repo_dir, keys_dir) = (&resolved.registry_dir, &resolved.keys_dir);
    // The host serves its registry itself: nothing in its data directory is readable by
    // others, and every later write into it follows this folder (`Visibility::of_root`).
    kasane_os::fs::create_private_dir(repo_dir).map_err(io(repo_dir))?;
    let mut repo = dev_init(repo_dir, keys_dir, now, &life)?;
    let open = |name: &str| KeyFileSigner::open(&keys_dir.join(name), None);
    let (targets, online) = (
        open("targets.pem").map_err(RegistryError::from)?,
        open(ONLINE_KEY_FILE).map_err(RegistryError::from)?,
    );
    let (targets, online) = (TufSigner(&targets), TufSigner(&online));
    let mut published = Vec::new();
    for b in BUILTINS {
        let entry = TargetEntry {
            name: b.name.to_owned(),
            sha256: Sha256Hash::of(b.wasm),
            length: b.wasm.len() as u64,
            profile: b.profile,
            fuel: b.fuel,
            memory: Limits::default().memory_bytes,
            params: b.params.as_bytes().to_vec(),
            rollout_weight: b.weight,
        };
        let path = module_path(repo_dir, &entry);
        let vis = Visibility::of_root(repo_dir);
        if let Some(dir) = path.parent() {
            kasane_registry::files::create_repo_dir(dir, vis)?;
        }
        kasane_registry::files::write_repo_file(&path, b.wasm, vis)?;
        repo.add_target(&entry, &[&targets], now, &life)?;
        published.push(b.name.to_owned());
    }
    repo.snapshot(&[&online], now, &life)?;
    repo.save(repo_dir)?;
    Ok(published)
}

/// The host's sandbox: the default (pooling) configuration, with a fuel cap high enough
/// that registry entries, not the host, set the budget (both sides must use the same one).
pub fn host_sandbox() -> Result<Sandbox, HostError> {
    Ok(Sandbox::new(SandboxConfig {
        max_limits: Limits {
            fuel: 2_000_000_000,
            ..Limits::default()
        },
        ..SandboxConfig::default()
    })?)
}

/// Builds a host from a resolved configuration: opens the store (running migrations), the
/// registry and the host key.
pub async fn load_host(cfg: Config, clock: Arc<dyn Clock>) -> Result<Arc<Host>, HostError> {
    let store = store::open(&cfg.database_url).await?;
    load_host_with_store(cfg, store, clock).await
}

/// Like [`load_host`] with a store opened by the caller (tests, custom pools). Refuses a
/// `keys/queue.key` other than the one the database's messages are sealed with
/// ([`KeyError::OtherQueueKey`](crate::error::KeyError::OtherQueueKey)): the first host to use
/// a database records its key's identifier there.
pub async fn load_host_with_store(
    cfg: Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<Host>, HostError> {
    let source = registry_source(&cfg, store.as_ref(), clock.now()).await?;
    let upkeep = registry_upkeep(&cfg.keys_dir)?;
    let registry =
        HostRegistry::open_source(source, &cfg.keys_dir, host_sandbox()?, clock.now(), upkeep)?;
    let host_key = crate::keyfile::load_identity_key(&cfg.keys_dir)?;
    let queue_key = crate::messages::load_queue_key(&cfg.keys_dir)?;
    check_queue_key(store.as_ref(), &queue_key, &cfg.keys_dir).await?;
    let opaque_keys = crate::keyfile::load_opaque_keys(&cfg.keys_dir)?;
    check_opaque_key(store.as_ref(), &opaque_keys, &cfg.keys_dir).await?;
    let metrics_token = crate::keyfile::load_metrics_token(&cfg.keys_dir)?;
    let assertion_key = crate::gateway::AssertionKey::load(&cfg.keys_dir)?;
    if !cfg.gateway.upstream.is_empty() {
        crate::gateway::probe(&cfg.gateway.upstream).await?;
    }
    if let Some(Some(dir)) = cfg.audit.pruning() {
        crate::retention::check_archive_dir(dir)?;
    }
    let host = Host::new(cfg, store, registry, host_key, clock)
        .with_queue_key(queue_key)
        .with_opaque_keys(opaque_keys)
        .with_metrics_token(metrics_token)
        .with_assertion_key(assertion_key);
    warn_unlisted_keys(&host);
    Ok(Arc::new(host))
}

/// Logs an error for a signing key in use that the registry does not list for its role: the
/// host serves, but clients refuse what that key signs (`kasane-host check` says the same).
fn warn_unlisted_keys(host: &Host) {
    if let Err(e) = host.check_keys_listed() {
        tracing::error!(
            error = %kasane_os::report::Chain(&e),
            "a signing key is not listed in the registry: clients will refuse what it signs"
        );
    }
}

/// Where the host's registry lives: with PostgreSQL, in the database (the data directory's
/// registry is imported into an empty one first: see [`crate::registry_db`]); with SQLite, in
/// the registry directory.
pub async fn registry_source(
    cfg: &Config,
    store: &dyn Store,
    now: u64,
) -> Result<RegistrySource, HostError> {
    let Some(pool) = store.postgres_pool() else {
        return Ok(RegistrySource::Dir(cfg.registry_dir.clone()));
    };
    let db = DbRegistry::new(pool.clone());
    if db.import_if_empty(&cfg.registry_dir, now).await? {
        tracing::info!(
            dir = %cfg.registry_dir.display(),
            "registry: imported the data directory's registry into the database"
        );
    }
    Ok(RegistrySource::Database(DbSource::open(db).await?))
}

/// The registry's upkeep: re-signing with `keys/online.pem` if the host holds it (a host
/// whose online key lives elsewhere, e.g. in a KMS another service uses, only warns).
fn registry_upkeep(keys_dir: &Path) -> Result<Upkeep, HostError> {
    let path = keys_dir.join(ONLINE_KEY_FILE);
    if !path.exists() {
        tracing::warn!(
            path = %path.display(),
            "no online key: this host will not re-sign timestamp and snapshot"
        );
        return Ok(Upkeep::default());
    }
    let key = KeyFileSigner::open(&path, None).map_err(RegistryError::from)?;
    Ok(Upkeep::new(Some(Box::new(key)), Lifetimes::default()))
}

/// Claims the database for `key` (its identifier in `host_facts`), or checks that it was
/// claimed for this key.
pub async fn check_queue_key(
    store: &dyn Store,
    key: &[u8; 32],
    keys_dir: &Path,
) -> Result<(), HostError> {
    let path = keys_dir.join(crate::messages::QUEUE_KEY_FILE);
    let Some(id) = crate::messages::queue_key_id(key) else {
        return Err(HostError::key(&path, KeyError::Invalid));
    };
    let fact = crate::messages::QUEUE_KEY_FACT;
    claim_key(store, fact, &id, &path, KeyError::OtherQueueKey).await
}

/// Records `keys`' identifier in the store the first time, and refuses keys other than the
/// recorded ones afterwards ([`KeyError::OtherOpaqueKey`]), as [`check_queue_key`] does for
/// the queue key: a replica (or `user add` on another machine) that made its own
/// `keys/opaque.key` would fail every login and lock users out on every replica.
pub async fn check_opaque_key(
    store: &dyn Store,
    keys: &ServerKeys,
    keys_dir: &Path,
) -> Result<(), HostError> {
    let path = keys_dir.join(crate::keyfile::OPAQUE_KEY_FILE);
    let id = crate::keyfile::opaque_key_id(keys);
    let fact = crate::keyfile::OPAQUE_KEY_FACT;
    claim_key(store, fact, &id, &path, KeyError::OtherOpaqueKey).await
}

/// Claims `fact` for the key file `path` whose identifier is `id`; `other` if the database
/// was claimed for another key.
async fn claim_key(
    store: &dyn Store,
    fact: &str,
    id: &[u8; 32],
    path: &Path,
    other: KeyError,
) -> Result<(), HostError> {
    let claimed = store.claim_fact(fact, id).await?;
    if claimed.as_slice() == id.as_slice() {
        Ok(())
    } else {
        Err(HostError::key(path, other))
    }
}

/// `user add`: enrolls the user (OPAQUE registration under the host's `keys`, one keyed
/// verifier per pair with a fresh 16-byte salt; see [`crate::crypto::enroll`]) and stores the
/// record and the verifiers. Neither the password nor the responses are stored. A name no
/// login could carry ([`kasane_protocol::wire::is_user_name`]) is refused.
pub async fn add_user(
    store: &dyn Store,
    keys: &ServerKeys,
    card: &CodeCard,
    password: &[u8],
    now: u64,
) -> Result<(), HostError> {
    if !kasane_protocol::wire::is_user_name(&card.user) {
        let field = "user name (1 to 256 bytes, no control, bidirectional or invisible characters)";
        return Err(kasane_protocol::ProtocolError::FieldRange { field }.into());
    }
    refuse_look_alike(store, &card.user).await?;
    let password = Zeroizing::new(password.to_vec());
    let responses: Vec<(String, Zeroizing<String>)> = card.pairs.clone();
    let user = card.user.clone();
    // argon2id once (OPAQUE's key stretching): off the async workers.
    let keys = keys.clone();
    let enrolled = tokio::task::spawn_blocking(move || {
        crate::crypto::enroll(&keys, &user, &password, &responses)
    })
    .await??;
    store
        .create_user(
            &NewUser {
                name: card.user.clone(),
                opaque_record: enrolled.opaque_record,
                pairs: enrolled.pairs,
            },
            now,
        )
        .await?;
    Ok(())
}

/// Refuses `name` when it reads as an existing user's name ([`reads_as`]). Messages name their
/// sender, the inbox and the audit log their user: a look-alike name would pass for another
/// user there. The name itself, already taken, is left to [`Store::create_user`] to refuse.
pub async fn refuse_look_alike(store: &dyn Store, name: &str) -> Result<(), HostError> {
    let wanted = shapes(name);
    let users = store.list_users().await?;
    match users
        .into_iter()
        .find(|u| u.name != name && alike(&wanted, &shapes(&u.name)))
    {
        Some(existing) => Err(HostError::LookAlike {
            name: spelled(name),
            existing: spelled(&existing.name),
        }),
        None => Ok(()),
    }
}

/// Whether `a` and `b` read alike: a Unicode UTS #39 skeleton (letters of other scripts that
/// look alike, composed and decomposed accents, `l` and `I`, `0` and `O`, `rn` and `m`) of
/// either name as written, in lower case or in upper case equals one of the other's. Three
/// forms, because case and look-alike letters combine: `ALlCE` reads as `ALICE`, which is
/// `alice`.
#[must_use]
pub fn reads_as(a: &str, b: &str) -> bool {
    alike(&shapes(a), &shapes(b))
}

/// Whether two names' [`shapes`] share a skeleton.
fn alike(a: &[String; 3], b: &[String; 3]) -> bool {
    a.iter().any(|s| b.contains(s))
}

/// The three skeletons [`reads_as`] compares.
fn shapes(name: &str) -> [String; 3] {
    let skeleton = |n: &str| unicode_security::skeleton(n).collect::<String>();
    [
        skeleton(name),
        skeleton(&name.to_lowercase()),
        skeleton(&name.to_uppercase()),
    ]
}

/// `name` with every character outside ASCII written as its code point (`a\u{430}` for a
/// Cyrillic `а`), so an error shows how two look-alike names differ, and `"` and `\`
/// escaped, as the message quotes it.
fn spelled(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii() {
                c.escape_debug().to_string()
            } else {
                c.escape_unicode().to_string()
            }
        })
        .collect()
}

/// Where [`write_card`] put a user's code card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardFiles {
    /// The printable SVG card.
    pub svg: PathBuf,
    /// The text form, for `kasane --card`.
    pub text: PathBuf,
}

/// The folder of the cards `user add` writes: `<data_dir>/cards`.
#[must_use]
pub fn cards_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cards")
}

/// A card's file name for `user`: the name itself, with `%`, `/` and `\` percent-encoded
/// and a leading `.` too, so that no user name (`../x`, `.hidden`) writes outside `cards/` or
/// makes a hidden file.
#[must_use]
pub fn card_file_stem(user: &str) -> String {
    let mut stem = String::with_capacity(user.len());
    for (i, c) in user.chars().enumerate() {
        match c {
            '%' => stem.push_str("%25"),
            '/' => stem.push_str("%2F"),
            '\\' => stem.push_str("%5C"),
            '.' if i == 0 => stem.push_str("%2E"),
            c => stem.push(c),
        }
    }
    stem
}

/// `user add`'s card files: the SVG (at `svg`, default `<data_dir>/cards/<user>.svg`) and the
/// text form for `kasane --card` (`<data_dir>/cards/<user>.card`; `<user>` as
/// [`card_file_stem`] writes it). Both hold every response, so both are as secret as the
/// password: written private (mode 0600 from creation, atomic) into a folder created private
/// (0700), replacing an older card of the same name.
pub fn write_card(
    card: &CodeCard,
    data_dir: &Path,
    svg: Option<&Path>,
) -> Result<CardFiles, HostError> {
    let dir = cards_dir(data_dir);
    let stem = card_file_stem(&card.user);
    let files = CardFiles {
        svg: svg.map_or_else(|| dir.join(format!("{stem}.svg")), Path::to_owned),
        text: dir.join(format!("{stem}.card")),
    };
    for (path, body) in [
        (&files.svg, Zeroizing::new(card.to_svg())),
        (&files.text, Zeroizing::new(card.to_text())),
    ] {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            kasane_os::fs::create_private_dir(parent).map_err(io(parent))?;
        }
        kasane_os::fs::write_private(path, body.as_bytes()).map_err(io(path))?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {

    #[test]
    fn look_alike_names_read_alike_and_near_names_do_not() {
        for (a, b) in [
            ("alice", "\u{430}lice"),
            ("alice", "aIice"),
            ("alice", "ALICE"),
            ("alice", "ALlCE"),
            ("Alice", "aIice"),
            ("bob", "b0b"),
            ("caf\u{e9}", "cafe\u{301}"),
            // Real names UTS #39 counts alike too (docs/SECURITY.md says so).
            ("horne", "home"),
            ("ema", "erna"),
            ("leo", "le0"),
            ("strauss", "strau\u{df}"),
        ] {
            assert!(super::reads_as(a, b) && super::reads_as(b, a), "{a} / {b}");
        }
        for (a, b) in [
            ("alice", "alicia"),
            ("alice", "bob"),
            ("bob", "bobby"),
            ("u1", "u2"),
        ] {
            assert!(!super::reads_as(a, b), "{a} / {b}");
        }
        assert_eq!(super::spelled("\u{430}lice"), "\\u{430}lice");
    }

    use super::*;

    #[test]
    fn no_user_name_writes_a_card_outside_the_cards_folder() {
        assert_eq!(card_file_stem("alice"), "alice");
        assert_eq!(card_file_stem("ålice.b"), "ålice.b");
        assert_eq!(card_file_stem("../../etc/x"), "%2E.%2F..%2Fetc%2Fx");
        assert_eq!(card_file_stem(".hidden"), "%2Ehidden");
        assert_eq!(card_file_stem("a\\b%2F"), "a%5Cb%252F");
        let dir = tempfile::tempdir().unwrap();
        let files = write_card(&CodeCard::generate("../up"), dir.path(), None).unwrap();
        assert_eq!(files.text.parent(), Some(cards_dir(dir.path()).as_path()));
    }

    #[test]
    fn generated_card_covers_the_grid_and_renders() {
        let c = CodeCard::generate("alice");
        assert_eq!(c.pairs.len(), 40);
        assert!(c.pairs.iter().all(|(_, r)| r.len() == RESPONSE_LEN));
        let t = c.to_text();
        assert!(t.contains(c.pairs[0].1.as_str()));
        assert_eq!(t.lines().count(), 2 + 8);
        let svg = c.to_svg();
        assert!(svg.starts_with("<svg") && svg.contains(c.pairs[39].1.as_str()));
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn card_files_are_private_and_a_new_card_replaces_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let card = CodeCard::generate("alice");
        let files = write_card(&card, dir.path(), None).unwrap();
        assert_eq!(files.svg, dir.path().join("cards").join("alice.svg"));
        assert_eq!(files.text, dir.path().join("cards").join("alice.card"));
        assert_eq!(std::fs::read_to_string(&files.svg).unwrap(), card.to_svg());
        #[cfg(unix)]
        {
            assert_eq!(mode(&files.svg), 0o600);
            assert_eq!(mode(&files.text), 0o600);
            assert_eq!(mode(&cards_dir(dir.path())), 0o700);
        }
        let again = CodeCard::generate("alice");
        let svg = dir.path().join("elsewhere").join("a.svg");
        let files = write_card(&again, dir.path(), Some(&svg)).unwrap();
        assert_eq!(files.svg, svg);
        assert_eq!(
            std::fs::read_to_string(&files.text).unwrap(),
            again.to_text()
        );
        #[cfg(unix)]
        assert_eq!(mode(&svg), 0o600);
    }

    #[tokio::test]
    async fn init_writes_its_secret_keys_private() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), Some("127.0.0.1:0"), 1_700_000_000)
            .await
            .unwrap();
        // Not `Config::load`: no `KASANE_*` variable of the environment applies here.
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
        let mut cfg = Config::from_toml(&text).unwrap();
        cfg.resolve(dir.path());
        assert!(cfg.tls_key.is_file());
        #[cfg(unix)]
        {
            assert_eq!(mode(&cfg.tls_key), 0o600);
            assert_eq!(
                mode(&cfg.keys_dir.join(crate::messages::QUEUE_KEY_FILE)),
                0o600
            );
        }
        // A second init refuses before it touches a key.
        let before = std::fs::read(&cfg.tls_key).unwrap();
        assert!(matches!(
            init(dir.path(), None, 1_700_000_000).await,
            Err(HostError::AlreadyInitialized { .. })
        ));
        assert_eq!(std::fs::read(&cfg.tls_key).unwrap(), before);
    }

    #[test]
    fn custom_pairs_parse_and_refuse_garbage() {
        let c = CodeCard::parse("bob", "# card\nA1 xy12\n\nB2  QQ99\n").unwrap();
        assert_eq!(c.pairs.len(), 2);
        assert_eq!(c.pairs[1].0, "B2");
        assert!(CodeCard::parse("bob", "A1\n").is_err());
        assert!(CodeCard::parse("bob", "").is_err());
    }
}
