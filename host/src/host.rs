//! [`Host`]: one host process's state — configuration, store, registry, keys, clock,
//! metrics — and its housekeeping. The login steps are in [`crate::login`], sealed messages
//! and the inbox in [`crate::messages`]; both are methods of `Host`.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock};

use ed25519_dalek::SigningKey;
use kasane_protocol::ServerKeys;
use rand::RngCore;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::HostError;
use crate::assertion::AssertionKey;
use crate::audit::sign_checkpoint;
use crate::barrier::DurableBarrier;
use crate::config::Config;
use crate::group_commit::GroupCommit;
use crate::metrics::{Metrics, Outcome};
use crate::per_session::InProgress;
use crate::registry::{HostRegistry, NotReady};
use crate::session_cache::SessionCache;
use crate::store::{AcceptMessage, AcceptOutcome, Clock, Store, StoreError, UnixSeconds};
use crate::tls::CertResolver;
use crate::upstream::Upstream;

/// The host: configuration, store, registry, keys, clock and metrics. Logins in flight live
/// in the store, so any number of `Host`s sharing one database serve the same logins.
pub struct Host {
    pub(crate) config: Config,
    /// `http.trusted_proxies`, parsed once (every request's source address is checked
    /// against them).
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: HostRegistry,
    /// The identity key (`keys/host.key`); `SIGHUP` may replace it ([`crate::rekey`]).
    pub(crate) host_key: arc_swap::ArcSwap<SigningKey>,
    clock: Arc<dyn Clock>,
    pub(crate) metrics: Metrics,
    /// The OPAQUE keys (`keys/opaque.key`): OPRF seed, static key pair, fake client key.
    pub(crate) opaque_keys: Arc<ServerKeys>,
    /// AES-256-GCM key sealing queued messages at rest (`keys/queue.key`).
    pub(crate) queue_key: Zeroizing<[u8; 32]>,
    /// The bearer token `GET /metrics` asks for (`keys/metrics.token`).
    metrics_token: Zeroizing<[u8; 32]>,
    /// Per-user wake-ups for inbox long-polls (notified on enqueue, in this process).
    pub(crate) inbox_waiters: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// Inbox long-polls parked waiting for a message right now.
    pub(crate) inbox_parked: AtomicUsize,
    /// Inbox reads in progress, per session id (`messages.max_inbox_reads_per_session`).
    pub(crate) inbox_reads: InProgress,
    /// Message bodies being read, per session id (`messages.max_sends_per_session`).
    pub(crate) sends: InProgress,
    /// Live sessions in memory in front of the store.
    pub(crate) sessions: SessionCache,
    /// Puts the counters login starts draw on disk before a finish answers them.
    pub(crate) barrier: DurableBarrier,
    /// The message path's group commit (started on the first message).
    pub(crate) message_commits: OnceLock<GroupCommit<AcceptMessage, AcceptOutcome>>,
    /// Room held against users' daily byte budgets by gateway requests in flight here.
    pub(crate) budget_holds: crate::budget_holds::BudgetHolds,
    /// The service behind the gateway (`[gateway] upstream`), if any.
    pub(crate) upstream: Option<Upstream>,
    /// The key that signs `X-Kasane-Assertion` (`keys/gateway.key`).
    pub(crate) assertion_key: AssertionKey,
    /// When housekeeping next prunes the audit log (`[audit] retain_days`).
    pub(crate) retention: crate::audit_prune::Schedule,
    /// The TLS certificate served (`tls_cert`, `tls_key`), read when serving starts.
    certs: OnceLock<Arc<CertResolver>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("store", &self.store.backend())
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A host from its parts. `host_key` is the registry's `host` role key.
    #[must_use]
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        registry: HostRegistry,
        host_key: SigningKey,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let config_upstream = config.gateway.upstream.clone();
        // Not in the pass before the host serves: a backlog would delay its start.
        let first_prune = clock.now().saturating_add(60);
        let barrier = DurableBarrier::new(store.clone());
        Self {
            trusted_proxies: config.http.trusted_proxy_nets(),
            config,
            store,
            registry,
            host_key: arc_swap::ArcSwap::from_pointee(host_key),
            clock,
            metrics: Metrics::default(),
            // Replaced by `with_opaque_keys` for a host on a data directory.
            opaque_keys: Arc::new(<ServerKeys>::generate(&mut OsRng)),
            // Replaced by `with_queue_key` for a host on a data directory.
            queue_key: random_key(),
            // Replaced by `with_metrics_token` for a host on a data directory.
            metrics_token: random_key(),
            inbox_waiters: Mutex::new(HashMap::new()),
            inbox_parked: AtomicUsize::new(0),
            inbox_reads: Mutex::new(HashMap::new()),
            sends: Mutex::new(HashMap::new()),
            sessions: SessionCache::default(),
            barrier,
            message_commits: OnceLock::new(),
            budget_holds: crate::budget_holds::BudgetHolds::default(),
            upstream: Upstream::new(&config_upstream),
            // Replaced by `with_assertion_key` for a host on a data directory.
            assertion_key: AssertionKey::random(),
            retention: crate::audit_prune::Schedule::first_at(first_prune),
            certs: OnceLock::new(),
        }
    }

    /// Sets the key that signs gateway assertions (see [`AssertionKey::load`]). Without it a
    /// host signs with a random key of its own, published in its JWKS all the same.
    #[must_use]
    pub fn with_assertion_key(mut self, key: AssertionKey) -> Self {
        self.assertion_key = key;
        self
    }

    /// Sets the key that seals queued messages at rest (see
    /// [`load_queue_key`](crate::messages::load_queue_key)). Without it a host uses a random
    /// key of its own, so its queue does not survive a restart.
    #[must_use]
    pub fn with_queue_key(mut self, key: Zeroizing<[u8; 32]>) -> Self {
        self.queue_key = key;
        self
    }

    /// Sets the host's OPAQUE keys (see [`load_opaque_keys`](crate::keyfile::load_opaque_keys)).
    /// Without them a host uses keys of its own, so its users' records do not survive a
    /// restart and its replicas' fake answers differ.
    #[must_use]
    pub fn with_opaque_keys(mut self, keys: ServerKeys) -> Self {
        self.opaque_keys = Arc::new(keys);
        self
    }

    /// Sets the bearer token `GET /metrics` asks for (see
    /// [`load_metrics_token`](crate::keyfile::load_metrics_token)). Without it a host makes
    /// a random one nobody knows.
    #[must_use]
    pub fn with_metrics_token(mut self, token: Zeroizing<[u8; 32]>) -> Self {
        self.metrics_token = token;
        self
    }

    /// The metrics token (for a scraper set up in the same process, and tests).
    #[must_use]
    pub fn metrics_token(&self) -> &[u8; 32] {
        &self.metrics_token
    }

    /// The host's OPAQUE keys (enrollment runs registration under them).
    #[must_use]
    pub fn opaque_keys(&self) -> &ServerKeys {
        &self.opaque_keys
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The registry.
    #[must_use]
    pub fn registry(&self) -> &HostRegistry {
        &self.registry
    }

    /// The metrics.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The host role's public key (clients find it in the registry root).
    #[must_use]
    pub fn host_public_key(&self) -> [u8; 32] {
        self.host_key.load().verifying_key().to_bytes()
    }

    pub(crate) fn now(&self) -> UnixSeconds {
        self.clock.now()
    }

    /// The TLS certificate this host serves: read from `tls_cert` and `tls_key` on the first
    /// call (when serving starts), the same one after it.
    pub fn certificates(&self) -> Result<Arc<CertResolver>, HostError> {
        if let Some(c) = self.certs.get() {
            return Ok(c.clone());
        }
        let loaded = Arc::new(CertResolver::load(
            &self.config.tls_cert,
            &self.config.tls_key,
        )?);
        Ok(self.certs.get_or_init(|| loaded).clone())
    }

    /// The TLS certificate read again if its files changed (a renewal), and a warning when
    /// it expires soon; nothing before serving has read it.
    fn certificate_upkeep(&self, now: UnixSeconds) {
        let Some(certs) = self.certs.get() else {
            return;
        };
        match certs.reload_if_changed() {
            None => {}
            Some(Ok(changed)) => {
                tracing::info!(changed, "TLS certificate files changed: read again")
            }
            Some(Err(e)) => tracing::warn!(error = %kasane_os::report::Chain(&e),
                "TLS certificate files changed but do not load; the certificate in use stays"),
        }
        certs.warn_expiring(now);
    }

    /// `kasane_tls_certificate_expiry_seconds` for `/metrics` (nothing before serving).
    #[must_use]
    pub fn certificate_metrics(&self) -> String {
        self.certs
            .get()
            .map(|c| c.render(self.now()))
            .unwrap_or_default()
    }

    /// Deletes expired bundles, logins in flight and sessions from the store, signs a
    /// checkpoint of every audit chain that advanced since its last one, keeps the registry
    /// up ([`HostRegistry::maintain`]: re-signing, expiry warnings) and the TLS certificate
    /// (read again when its files change, a warning before it expires), and prunes the
    /// audit log when `[audit] retain_days` asks and a run is due
    /// ([`Host::prune_audit_if_due`]). `serve` runs it every minute.
    pub async fn housekeeping(&self) -> Result<crate::store::Purged, HostError> {
        let now = self.now();
        // First what reports its own failures: a store that keeps failing must not hold back
        // the registry's re-signing and a renewed certificate (each would then expire).
        self.registry.sync(now).await;
        self.registry.maintain(now);
        self.certificate_upkeep(now);
        let mut purged = self
            .store
            .purge_expired(now, self.config.session.idle_timeout_secs)
            .await?;
        purged.throttle = self
            .store
            .purge_throttle(now, &self.config.throttle.backoff())
            .await?;
        self.checkpoint_audit().await?;
        // Last: a chain it cannot prune (a broken one) must not hold up the rest.
        if let Some(pruned) = self.prune_audit_if_due().await? {
            purged.audit_chains = pruned.chains;
            purged.audit_records = pruned.records;
        }
        Ok(purged)
    }

    /// Signs a checkpoint of every audit chain whose head has none yet. Returns how many.
    pub async fn checkpoint_audit(&self) -> Result<u64, HostError> {
        let now = self.now();
        let mut n = 0;
        loop {
            let heads = self.store.unchecked_audit_heads(256).await?;
            let mut progressed = false;
            for (sid, seq, hash) in &heads {
                if self.sign_head(sid, *seq, hash, now).await? {
                    n += 1;
                    progressed = true;
                }
            }
            if heads.len() < 256 || !progressed {
                return Ok(n);
            }
        }
    }

    /// Signs the head of one session's audit chain, unless it has no records or that head
    /// is signed already (by this or another replica). True if a checkpoint was written.
    pub async fn checkpoint_session(&self, session_id: &[u8]) -> Result<bool, HostError> {
        let Some((seq, hash)) = self.store.audit_head(session_id).await? else {
            return Ok(false);
        };
        self.sign_head(session_id, seq, &hash, self.now()).await
    }

    /// Signs and stores a checkpoint of a chain head; false if another replica signed it
    /// first or the chain moved on meanwhile.
    async fn sign_head(
        &self,
        session_id: &[u8],
        seq: u64,
        hash: &[u8],
        now: UnixSeconds,
    ) -> Result<bool, HostError> {
        let c = sign_checkpoint(&self.host_key.load(), session_id, seq, hash, now);
        match self.store.put_audit_checkpoint(&c).await {
            Ok(()) => Ok(true),
            Err(StoreError::Duplicate | StoreError::AuditChainMismatch) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the host can serve logins now (`GET /readyz`): the store answers a trivial
    /// query, the registry is ready ([`HostRegistry::readiness`]) and the TLS certificate
    /// served has not expired.
    pub async fn readiness(&self) -> Result<(), NotReady> {
        if let Err(e) = self.store.ping().await {
            tracing::warn!(error = %e, "readiness: store unreachable");
            return Err(NotReady::StoreUnreachable);
        }
        self.registry.sync(self.now()).await;
        self.registry.readiness(self.now())?;
        match self.certs.get().and_then(|c| c.not_after()) {
            Some(at) if at <= self.now() => Err(NotReady::TlsCertificateExpired {
                since: crate::upkeep::rfc3339(at),
            }),
            _ => Ok(()),
        }
    }

    /// Counts a failed login in the metrics (the server calls this for every failure).
    pub fn count_failure(&self) {
        self.metrics.login(Outcome::Failure);
    }
}

fn random_key() -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut *k);
    k
}
