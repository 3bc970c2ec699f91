//! [`Client`]: connecting (TLS settings, the registry trust kept current, the sandbox and the
//! compile cache), and the helpers the login and the session share.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use hyper::StatusCode;
use kasane_protocol::wire::Message;
use kasane_registry::trust::{Pin, STATE_FILE, SystemClock, TrustStore};
use kasane_sandbox::{Allocator, CompileCache, Limits, Sandbox, SandboxConfig, Transform};
use zeroize::Zeroizing;

use crate::error::{FileError, RegistryUpdateError};
use crate::net::{Conn, Endpoint};
use crate::{ClientConfig, ClientError};

/// Fuel cap for any transform (the host uses the same): a registry entry may ask for less.
const MAX_FUEL: u64 = 2_000_000_000;

/// A connection-ready client: TLS settings checked and the registry trust updated.
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// What a [`Client`] and its sessions share.
pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) endpoint: Endpoint,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// The trust store: in `<state>/trust`, or in memory only in no-cache mode.
    pub(crate) trust: tokio::sync::Mutex<TrustStore<SystemClock>>,
    pub(crate) sandbox: Sandbox,
    pub(crate) cache: CompileCache,
    /// Where fetched modules are kept (cache mode only).
    pub(crate) modules_dir: Option<PathBuf>,
    /// The connection `connect` updated the registry on, kept for the first login (one TLS
    /// handshake fewer); taken by whoever needs a connection next.
    spare: std::sync::Mutex<Option<Conn>>,
}

impl Inner {
    /// Updates the trust store from the host on `conn` (a ticket named other metadata, the
    /// trusted metadata expired since `connect`, or a start signed by an unlisted host key).
    pub(crate) async fn refresh_trust(&self, conn: &mut Conn) -> Result<(), ClientError> {
        let mut store = self.trust.lock().await;
        crate::registry::update(&mut store, &mut HostRegistry(conn)).await
    }

    /// The host identity keys the trust store holds, after updating it first if `signer`
    /// (the key a start response names) is not one of them: a host key rotated since the
    /// last update.
    pub(crate) async fn host_keys_for(
        &self,
        conn: &mut Conn,
        signer: Option<[u8; 32]>,
    ) -> Result<Vec<VerifyingKey>, ClientError> {
        let keys = host_keys(&*self.trust.lock().await)?;
        match signer {
            Some(k) if !keys.iter().any(|v| v.as_bytes() == &k) => {
                self.refresh_trust(conn).await?;
                host_keys(&*self.trust.lock().await)
            }
            _ => Ok(keys),
        }
    }

    /// A connection to the host: the spare one if it is still open, else a new one.
    pub(crate) async fn conn(&self) -> Result<Conn, ClientError> {
        // A poisoned lock only loses the spare: a new connection is made instead.
        let spare = self.spare.lock().ok().and_then(|mut s| s.take());
        match spare {
            Some(c) if c.is_open() => Ok(c),
            _ => Conn::open(&self.endpoint, &self.tls, self.config.timeout).await,
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The transform run for a message (purpose = message): on one of the module's warm instances, in
/// place when its last call was quick (`kasane_sandbox::QUICK_FUEL`), else as blocking work
/// (`kasane_os::blocking`). The same output as a fresh instance (`Transform::derive_warm`).
pub(crate) async fn derive_message(
    transform: &Transform,
    input: kasane_abi::DeriveInputBuf,
) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    let transform = transform.clone();
    let quick = transform.is_quick();
    let run = move || -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let derived = kasane_protocol::with_derive_input(&input, |v| transform.derive_warm(v))??;
        Ok(Zeroizing::new(derived.key.as_bytes().to_vec()))
    };
    if quick {
        run()
    } else {
        kasane_os::blocking::run(run).await?
    }
}

/// Decodes a message from the host.
pub(crate) fn decode<M: Message>(body: &[u8]) -> Result<M, ClientError> {
    Ok(M::decode(body)?)
}

/// Creates `dir` (and its missing parents) with mode 0700.
fn private_dir(dir: &Path) -> Result<(), ClientError> {
    kasane_os::fs::create_private_dir(dir)
        .map_err(|e| FileError::io("creating the directory", dir, e).into())
}

/// The host's copy of the registry: `GET /v1/registry/<path>`.
struct HostRegistry<'a>(&'a mut Conn);

impl crate::registry::Source for HostRegistry<'_> {
    async fn fetch(&mut self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, ClientError> {
        let (status, body) = self
            .0
            .request(
                "GET",
                &format!("/v1/registry/{path}"),
                Vec::new(),
                None,
                Duration::ZERO,
            )
            .await?;
        match status {
            StatusCode::OK => {
                if body.len() as u64 > max_len.saturating_add(1) {
                    return Err(RegistryUpdateError::TooLarge {
                        path: path.to_owned(),
                        max: max_len,
                    }
                    .into());
                }
                Ok(Some(body))
            }
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(RegistryUpdateError::Status {
                path: path.to_owned(),
                status: s.as_u16(),
            }
            .into()),
        }
    }
}

impl Client {
    /// Checks the configuration, opens the trust store (kept in memory only, in no-cache
    /// mode) and updates it from the host.
    ///
    /// The local work overlaps the network's: the trust store is opened (its files read,
    /// their signatures checked) on a blocking thread while the TLS handshake runs, and the
    /// sandbox's engine and the compile cache are made while the registry update runs.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let endpoint = Endpoint::parse(&config.server, config.server_name.as_deref())?;
        let tls = crate::net::tls_config(&config.ca_pem)?;
        // The local work (the trust store opened and taken up from what it holds, the
        // sandbox's engine and the compile cache made) runs on a blocking thread while the
        // TLS handshake waits for the host.
        let opening = {
            let (state_dir, root) = (config.state_dir.clone(), config.root_json.clone());
            tokio::task::spawn_blocking(move || {
                let mut store = trust_store(state_dir.as_deref(), &root)?;
                let resumed = crate::registry::resume_local(&mut store);
                Ok::<_, ClientError>((store, resumed, local_parts(state_dir.as_deref())?))
            })
        };
        // Both halves are waited for, so that nothing is still writing to the state
        // directory when `connect` returns (an error of the connection is reported first).
        let (conn, opened) = tokio::join!(Conn::open(&endpoint, &tls, config.timeout), opening);
        let (mut conn, (mut store, resumed, (sandbox, cache, modules_dir))) = (conn?, opened??);
        if !resumed {
            refresh(&mut store, &mut HostRegistry(&mut conn)).await?;
        }
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                endpoint,
                tls,
                trust: tokio::sync::Mutex::new(store),
                sandbox,
                cache,
                modules_dir,
                spare: std::sync::Mutex::new(Some(conn)),
            }),
        })
    }

    /// Runs `op` on the trust store, fetching from the host on `conn` whatever files it
    /// needs (delegated roles a lookup reaches). The inner error is the trust store's own.
    pub(crate) async fn with_trust<T>(
        &self,
        conn: &mut Conn,
        mut op: impl FnMut(
            &mut TrustStore<SystemClock>,
            &dyn kasane_registry::trust::Fetcher,
        ) -> Result<T, kasane_registry::RegistryError>,
    ) -> Result<Result<T, kasane_registry::RegistryError>, ClientError> {
        let mut store = self.inner.trust.lock().await;
        crate::registry::with_fetched(&mut HostRegistry(conn), |files| op(&mut store, files)).await
    }
}

/// Makes `store` current for `connect`: what an earlier update left, if it is still valid
/// (no download: each login's ticket names the versions the host holds, and a ticket naming
/// others makes the login update first), else an update from the host.
async fn refresh(
    store: &mut TrustStore<SystemClock>,
    source: &mut HostRegistry<'_>,
) -> Result<(), ClientError> {
    if crate::registry::resume(store, source).await {
        return Ok(());
    }
    crate::registry::update(store, source).await
}

/// Where the trust store of the registry pinned by `root_json` lives in `state_dir`:
/// `trust/<the first 16 hex digits of the root file's SHA-256>`. One per pinned root, so a
/// state directory serves several hosts (each with its registry), and pinning another root
/// starts from that root instead of going on trusting the one pinned before.
#[must_use]
pub fn trust_dir(state_dir: &Path, root_json: &[u8]) -> PathBuf {
    use sha2::Digest as _;
    let digest = hex::encode(sha2::Sha256::digest(root_json));
    state_dir.join("trust").join(&digest[..16])
}

/// The trust store: in [`trust_dir`], or kept in memory only when there is no state
/// directory (nothing is written anywhere).
fn trust_store(
    state_dir: Option<&Path>,
    root_json: &[u8],
) -> Result<TrustStore<SystemClock>, ClientError> {
    match state_dir {
        Some(state_dir) => open_trust_store(&trust_dir(state_dir, root_json), root_json),
        None => Ok(TrustStore::in_memory(root_json, Pin::File, SystemClock)?),
    }
}

/// The sandbox (its engine), the compile cache and the module store's directory.
fn local_parts(
    state_dir: Option<&Path>,
) -> Result<(Sandbox, CompileCache, Option<PathBuf>), ClientError> {
    let sandbox = Sandbox::new(SandboxConfig {
        allocator: Allocator::OnDemand,
        max_limits: Limits {
            fuel: MAX_FUEL,
            ..Limits::default()
        },
        ..SandboxConfig::default()
    })?;
    let (cache, modules_dir) = open_cache(state_dir)?;
    Ok((sandbox, cache, modules_dir))
}

/// Opens the trust store in `trust_dir` (mode 0700), or creates it pinned to `root_json`.
fn open_trust_store(
    trust_dir: &Path,
    root_json: &[u8],
) -> Result<TrustStore<SystemClock>, ClientError> {
    if let Some(parent) = trust_dir.parent() {
        private_dir(parent)?;
    }
    private_dir(trust_dir)?;
    let store = if trust_dir.join(STATE_FILE).exists() {
        TrustStore::open(trust_dir, SystemClock)
    } else {
        TrustStore::init(trust_dir, root_json, Pin::File, SystemClock)
    }?;
    Ok(store)
}

/// The host identity keys of the trusted `kasane/host-keys.json`: one of them must sign the
/// host's start response.
fn host_keys(store: &TrustStore<SystemClock>) -> Result<Vec<VerifyingKey>, ClientError> {
    let keys = store
        .host_identity_keys()?
        .iter()
        .filter_map(|k| VerifyingKey::from_bytes(k).ok())
        .collect::<Vec<_>>();
    if keys.is_empty() {
        return Err(ClientError::HostKey);
    }
    Ok(keys)
}

/// The compile cache (`<state>/cache`, mode 0700) and the module store (`<state>/modules`),
/// or a disabled cache and no module store in no-cache mode. A cache that cannot be opened
/// (its key cannot be written on a full disk, or is readable by others) is disabled with a
/// warning: a cache only saves time, and a disabled one never reads an entry.
fn open_cache(state_dir: Option<&Path>) -> Result<(CompileCache, Option<PathBuf>), ClientError> {
    let Some(dir) = state_dir else {
        return Ok((CompileCache::disabled(), None));
    };
    let cache_dir = dir.join("cache");
    private_dir(&cache_dir)?;
    let cache = CompileCache::open(&cache_dir).unwrap_or_else(|e| {
        tracing::warn!(dir = %cache_dir.display(), error = %e, "compile cache disabled");
        CompileCache::disabled()
    });
    Ok((cache, Some(dir.join("modules"))))
}
