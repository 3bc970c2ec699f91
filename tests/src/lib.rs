//! Test harness for the end-to-end tests: a real `kasane-host` served over TLS 1.3 on
//! `127.0.0.1:0` from a fresh data directory, registry edits with the registry's own library,
//! and client configurations that trust exactly that host (its certificate and registry root).
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test harness: a failure is a test failure"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kasane_client::{CardResponder, ClientConfig};
use kasane_host::config::Config;
use kasane_host::host::Host;
use kasane_host::registry::module_path;
use kasane_host::server::{self, Running};
use kasane_host::setup::{self, CodeCard};
use kasane_host::store::{Clock, SystemClock};
use kasane_protocol::wire::Profile;
use kasane_registry::Sha256Hash;
use kasane_registry::entry::TargetEntry;
use kasane_registry::repo::{Lifetimes, Repository};
use kasane_registry::signing::{KeyFileSigner, TufSigner};
use zeroize::Zeroizing;

pub mod browser;

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// A host serving a fresh data directory (made by `init`) on loopback.
pub struct TestHost {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The host.
    pub host: Arc<Host>,
    /// Its resolved configuration.
    pub cfg: Config,
    /// The data directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// Dropped with the test host: the server shuts down.
    running: Running,
}

/// Starts a host: `init` in a temporary directory, then serve on `127.0.0.1:0`.
pub async fn start() -> TestHost {
    start_with(|_| {}).await
}

/// Starts a host after `tweak` edits its configuration.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestHost {
    let dir = init().await;
    let mut cfg = file_config(dir.path());
    // Tests make many logins from 127.0.0.1.
    cfg.throttle.free_failures = 1000;
    tweak(&mut cfg);
    serve(dir, cfg).await
}

/// A fresh data directory made by `init`.
async fn init() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    setup::init(dir.path(), Some("127.0.0.1:0"), SystemClock.now())
        .await
        .unwrap();
    dir
}

/// The configuration `init` wrote into `dir`, resolved against it: the file only, not the
/// process environment (a developer's `KASANE_LISTEN` or `KASANE_DATABASE_URL` must not
/// reach a test host), listening on `127.0.0.1:0`.
pub fn file_config(dir: &Path) -> Config {
    let mut cfg = Config::load_file(dir).unwrap();
    cfg.listen = "127.0.0.1:0".into();
    cfg
}

/// Loads the host for `cfg` and serves it with the library's one entry, `server::spawn`
/// (housekeeping included).
async fn serve(dir: tempfile::TempDir, cfg: Config) -> TestHost {
    let host = setup::load_host(cfg.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let running = server::spawn(host.clone()).await.unwrap();
    TestHost {
        addr: running.addr(),
        host,
        cfg,
        dir,
        running,
    }
}

impl TestHost {
    /// The host's URL.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A client configuration trusting this host's certificate and registry root, keeping
    /// state in `state_dir` (`None`: no-cache mode).
    pub fn client_config(&self, state_dir: Option<PathBuf>) -> ClientConfig {
        self.client_config_for(&self.url(), state_dir)
    }

    /// The same for another address (a proxy in front of this host).
    pub fn client_config_for(&self, url: &str, state_dir: Option<PathBuf>) -> ClientConfig {
        let ca = std::fs::read(&self.cfg.tls_cert).unwrap();
        let root = std::fs::read(self.cfg.registry_dir.join("metadata/1.root.json")).unwrap();
        let mut c = ClientConfig::new(url, ca, root);
        c.state_dir = state_dir;
        c
    }

    /// Adds a user with a fresh standard card; returns the card.
    pub async fn add_user(&self, name: &str) -> CodeCard {
        let card = CodeCard::generate(name);
        setup::add_user(
            self.host.store().as_ref(),
            self.host.opaque_keys(),
            &card,
            PASSWORD.as_bytes(),
            SystemClock.now(),
        )
        .await
        .unwrap();
        card
    }

    /// Edits the registry: publishes `wasm` as `name` (pure profile) with `weight`.
    pub fn publish(&self, name: &str, wasm: &[u8], params: &[u8], weight: u32) -> Sha256Hash {
        let entry = TargetEntry {
            name: name.to_owned(),
            sha256: Sha256Hash::of(wasm),
            length: wasm.len() as u64,
            profile: Profile::Pure,
            fuel: 50_000_000,
            memory: 16 << 20,
            params: params.to_vec(),
            rollout_weight: weight,
        };
        let hash = entry.sha256;
        std::fs::write(module_path(&self.cfg.registry_dir, &entry), wasm).unwrap();
        edit_registry(&self.cfg, |repo, now, life, keys| {
            let targets = role_key(keys, "targets");
            repo.add_target(&entry, &[&TufSigner(&targets)], now, life)
                .unwrap();
        });
        hash
    }

    /// Edits the registry so only `name` has a positive rollout weight.
    pub fn force(&self, name: &str) {
        force_registry(&self.cfg, name);
    }

    /// A compromised host: a second host process on this data directory (every key, the
    /// same database) that offers revoked modules too. Returns it serving, and its URL.
    pub async fn compromised(&self) -> (Running, String) {
        let host = setup::load_host(self.cfg.clone(), Arc::new(SystemClock))
            .await
            .unwrap();
        host.registry().danger_ignore_revocations();
        let running = server::spawn(host).await.unwrap();
        let url = format!("https://{}", running.addr());
        (running, url)
    }

    /// Edits the registry: `kasane/host-keys.json` as `f` leaves it (the targets key, as
    /// `kasane-registry host-keys` signs it).
    pub fn edit_host_keys(&self, f: impl FnOnce(&mut kasane_registry::documents::HostKeys)) {
        edit_registry(&self.cfg, |repo, now, life, keys| {
            let mut host = repo.host_keys().unwrap();
            f(&mut host);
            let targets = role_key(keys, "targets");
            repo.set_host_keys(&host, &[&TufSigner(&targets)], now, life)
                .unwrap();
        });
    }

    /// What `SIGHUP` does to the serving host: certificate, registry and keys read again.
    pub async fn reload(&self) -> kasane_host::server::Reloaded {
        self.running.reload().await
    }

    /// A second host process on this data directory, as loaded now (its keys, the same
    /// database): serving, and its URL.
    pub async fn another_process(&self) -> (Running, String) {
        let host = setup::load_host(self.cfg.clone(), Arc::new(SystemClock))
            .await
            .unwrap();
        let running = server::spawn(host).await.unwrap();
        let url = format!("https://{}", running.addr());
        (running, url)
    }

    /// Edits the registry: revokes a module hash.
    pub fn revoke(&self, hash: Sha256Hash) {
        edit_registry(&self.cfg, |repo, now, life, keys| {
            let revocations = role_key(keys, "revocations");
            repo.revoke_hash(Some(hash), &[&TufSigner(&revocations)], now, life)
                .unwrap();
        });
    }
}

/// Edits the registry of the data directory `cfg` describes so that only `name` has a
/// positive rollout weight: [`TestHost::force`], and usable before a host loads the
/// directory (a host on PostgreSQL imports the registry when it first starts).
pub fn force_registry(cfg: &Config, name: &str) {
    let now = SystemClock.now();
    let entries: Vec<TargetEntry> = Repository::load(&cfg.registry_dir)
        .unwrap()
        .active(now)
        .unwrap()
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert!(
        entries.iter().any(|e| e.name == name),
        "{name} not published"
    );
    edit_registry(cfg, |repo, now, life, keys| {
        let targets = role_key(keys, "targets");
        for mut e in entries {
            e.rollout_weight = u32::from(e.name == name);
            repo.add_target(&e, &[&TufSigner(&targets)], now, life)
                .unwrap();
        }
    });
}

/// Edits the registry of `cfg`'s data directory with its development keys, then re-signs
/// snapshot and timestamp with the online key.
fn edit_registry(cfg: &Config, f: impl FnOnce(&mut Repository, u64, &Lifetimes, &Path)) {
    let now = SystemClock.now();
    let life = Lifetimes::default();
    let keys = &cfg.keys_dir;
    let mut repo = Repository::load(&cfg.registry_dir).unwrap();
    f(&mut repo, now, &life, keys);
    let online = role_key(keys, "online");
    repo.snapshot(&[&TufSigner(&online)], now, &life).unwrap();
    repo.save(&cfg.registry_dir).unwrap();
}

/// A registry role's development key (`keys/<role>.pem`).
fn role_key(keys: &Path, role: &str) -> KeyFileSigner {
    KeyFileSigner::open(&keys.join(format!("{role}.pem")), None).unwrap()
}

/// A responder answering from `card` with the test password.
pub fn responder(card: &CodeCard) -> CardResponder {
    responder_with(PASSWORD, card)
}

/// A responder answering from `card` with `password`.
pub fn responder_with(password: &str, card: &CodeCard) -> CardResponder {
    CardResponder::new(
        Zeroizing::new(password.to_owned()),
        CodeCard::from_text(&card.to_text()).unwrap(),
    )
}

/// A card as the browser driver (`web/e2e/drive.mjs`) takes it: a JSON object, prompt →
/// response (prompts and responses are letters and digits).
pub fn card_json(card: &CodeCard) -> String {
    let pairs: Vec<String> = card
        .pairs
        .iter()
        .map(|(p, r)| format!("\"{p}\":\"{}\"", r.as_str()))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// Every file under `dir` (recursively).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Replaces the host's identity key with a fresh one the registry root does not list, and
/// starts the host: its signed ephemeral keys no longer verify for any client.
pub async fn start_with_foreign_host_key() -> TestHost {
    let dir = init().await;
    let cfg = file_config(dir.path());
    let key_path = cfg.keys_dir.join("host.key");
    std::fs::remove_file(&key_path).unwrap();
    kasane_registry::keys::write_key_file(&key_path, &kasane_registry::keys::SecretKey::generate())
        .unwrap();
    serve(dir, cfg).await
}

pub mod proxy;

/// A TLS 1.3 client configuration trusting only the certificates in `ca_pem` (the host's),
/// offering `alpn`.
pub fn client_tls(ca_pem: &[u8], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(cfg)
}
