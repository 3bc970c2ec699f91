//! The host's configuration: a TOML file (`kasane.toml` in the data directory), then
//! `KASANE_*` environment overrides, then command-line flags (applied by the binary).
//!
//! Relative paths are resolved against the data directory, so a data directory can move.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::HostError;

pub use crate::error::ConfigError;

/// The configuration file's name inside a data directory.
pub const CONFIG_FILE: &str = "kasane.toml";

/// The whole host configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`host:port`).
    pub listen: String,
    /// Store URL; empty: `kasane.db` (SQLite) in the data directory.
    pub database_url: String,
    /// PEM certificate chain for TLS.
    pub tls_cert: PathBuf,
    /// PEM private key for TLS.
    pub tls_key: PathBuf,
    /// The registry: a TUF repository (`metadata/`, and `targets/` with the module files),
    /// what clients fetch.
    pub registry_dir: PathBuf,
    /// Secret keys: `host.key` (signs the start response), `ticket.pem` (signs tickets),
    /// `opaque.key` (OPAQUE's OPRF seed and key pair) and `queue.key` (the relay queue at rest).
    pub keys_dir: PathBuf,
    /// Put the TLS exporter value (RFC 9266) into the transcript. Turn off only behind a
    /// TLS-terminating proxy: the signed ephemeral keys still authenticate the layer.
    pub channel_binding: bool,
    /// Largest request body, bytes (larger ones get 413).
    pub max_body_bytes: usize,
    /// The login flow.
    pub login: LoginConfig,
    /// Session lifetimes.
    pub session: SessionConfig,
    /// Throttling of failed logins.
    pub throttle: ThrottleConfig,
    /// Sealed messages and the relay (`[messages]`).
    pub messages: MessagesConfig,
    /// What one connection may hold of the server (`[http]`): timeouts and caps that bound
    /// every resource an unauthenticated client can touch at the transport.
    pub http: HttpConfig,
    /// The sealed gateway and forward-auth (`[gateway]`; docs/GATEWAY.md).
    pub gateway: GatewayConfig,
    /// The browser client at `/web/` (`[web]`; docs/WEB.md).
    pub web: WebConfig,
    /// Retention of the audit log (`[audit]`; docs/OPERATIONS.md, "Disk").
    pub audit: AuditConfig,
}

/// `[audit]`: the host prunes the audit log itself, once a day, as `kasane-host audit prune`
/// would (off by default: the log keeps everything).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Prune the chains of ended sessions whose last record is at least this many days old
    /// and whose messages every recipient has fetched; 0 (the default): never.
    pub retain_days: u64,
    /// Where each day's pruned chains are written first, as `audit export` lines each closed
    /// by its marker (`audit-<unix time>-<random>.jsonl`, mode 0600; check one with
    /// `audit verify --archive`). Relative to the data directory. Needed when pruning,
    /// unless `archive` is false.
    pub archive_dir: PathBuf,
    /// False: prune without a copy (as `--no-archive`).
    pub archive: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retain_days: 0,
            archive_dir: PathBuf::new(),
            archive: true,
        }
    }
}

/// The largest `audit.retain_days` (a hundred years).
const MAX_RETAIN_DAYS: u64 = 36_500;

impl AuditConfig {
    /// Whether the host prunes, and where it archives (`None`: without a copy).
    pub fn pruning(&self) -> Option<Option<&Path>> {
        (self.retain_days > 0).then(|| self.archive.then_some(self.archive_dir.as_path()))
    }

    fn check(&self) -> Result<(), ConfigError> {
        let no_dir = self.archive && self.archive_dir.as_os_str().is_empty();
        if self.retain_days > MAX_RETAIN_DAYS || (self.retain_days > 0 && no_dir) {
            return Err(ConfigError::AuditRetention);
        }
        Ok(())
    }
}

/// `[web]`: the browser client the host serves at `/web/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the page and its files (`KASANE_WEB`). Off: `/web/` answers 404. A browser
    /// login is not bound to the TLS channel and trusts the page the host serves
    /// (docs/SECURITY.md); a deployment that needs neither turns it off.
    pub enabled: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// A boolean variable's value: `1`/`true`/`on`/`yes` or `0`/`false`/`off`/`no`.
fn boolean(var: String, v: &str) -> Result<bool, ConfigError> {
    match v.trim() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(ConfigError::NotABool { var }),
    }
}

/// The upstream's `host:port` if `url` is `http://host:port` (or `http://host`), with at
/// most a trailing `/`.
#[must_use]
pub fn upstream_authority(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let parsed: hyper::http::uri::Authority = authority.parse().ok()?;
    (!authority.is_empty() && !authority.contains(['/', '?', '#', '@']))
        .then(|| parsed.as_str().to_owned())
}

/// `[gateway]`: the HTTP service behind the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// The service's base URL, `http://HOST:PORT` (empty: no sealed gateway; `POST
    /// /v1/gateway` answers 503). The host refuses to start when it does not answer HTTP.
    pub upstream: String,
    /// Only request targets under this path are forwarded (`/` : all).
    pub path_prefix: String,
    /// The methods forwarded; others are refused before the service sees them.
    pub methods: Vec<String>,
    /// Largest request or response body, bytes (buffered whole; at most 64 MiB).
    pub max_body_bytes: usize,
    /// How long the service may take to answer one request, seconds.
    pub timeout_secs: u64,
    /// Lifetime of an `X-Kasane-Assertion`, seconds.
    pub assertion_ttl_secs: u64,
    /// The assertion's audience (`aud`); empty: the upstream URL (or `kasane` without one).
    pub audience: String,
}

impl GatewayConfig {
    /// The audience of this host's assertions.
    #[must_use]
    pub fn audience(&self) -> &str {
        match (self.audience.as_str(), self.upstream.as_str()) {
            ("", "") => "kasane",
            ("", upstream) => upstream,
            (aud, _) => aud,
        }
    }
}

impl GatewayConfig {
    /// Refuses values the gateway cannot use (the upstream's reachability is checked when
    /// the host starts: [`crate::gateway::probe`]).
    pub fn check(&self) -> Result<(), HostError> {
        let bad = |what| Err(ConfigError::Gateway { what }.into());
        if !self.upstream.is_empty() && upstream_authority(&self.upstream).is_none() {
            return bad("upstream must be http://HOST:PORT (no path, query or https)");
        }
        if !self.path_prefix.starts_with('/') {
            return bad("path_prefix must start with /");
        }
        let token = |m: &String| {
            !m.is_empty() && m.len() <= 16 && m.bytes().all(|b| b.is_ascii_uppercase())
        };
        if self.methods.is_empty() || !self.methods.iter().all(token) {
            return bad("methods must be upper-case HTTP methods, at least one");
        }
        if !(1..=kasane_protocol::gateway::MAX_GATEWAY_BODY).contains(&self.max_body_bytes) {
            return bad("max_body_bytes must be 1 to 67108864");
        }
        if !(1..=3600).contains(&self.timeout_secs)
            || !(1..=3600).contains(&self.assertion_ttl_secs)
        {
            return bad("timeout_secs and assertion_ttl_secs must be 1 to 3600");
        }
        Ok(())
    }
}

impl GatewayConfig {
    /// The room a gateway request holds against its user's daily byte budget for its
    /// response's audit record (`crate::budget_holds`): the largest response body, its
    /// head, and the record's own fields (exchanges are not padded).
    #[must_use]
    pub fn response_reserve(&self) -> u64 {
        let head = kasane_protocol::gateway::MAX_GATEWAY_HEAD as u64;
        (self.max_body_bytes as u64)
            .saturating_add(head)
            .saturating_add(RECORD_FIELDS)
    }

    /// The largest request record (body, target and head, fields) with the room it holds.
    #[must_use]
    pub fn request_and_room(&self) -> u64 {
        let head = kasane_protocol::gateway::MAX_GATEWAY_HEAD as u64;
        let request = (self.max_body_bytes as u64)
            .saturating_add(2 * head)
            .saturating_add(RECORD_FIELDS);
        request.saturating_add(self.response_reserve())
    }
}

/// An exchange record's fields beyond body and head (postcard lengths, AAD, hash, names).
const RECORD_FIELDS: u64 = 4096;

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            upstream: String::new(),
            path_prefix: "/".to_owned(),
            methods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
                .map(str::to_owned)
                .to_vec(),
            max_body_bytes: 8 * 1024 * 1024,
            timeout_secs: 30,
            assertion_ttl_secs: 60,
            audience: String::new(),
        }
    }
}

/// The longest an inbox long-poll waits, seconds (`GET /v1/inbox?wait=N`, `N` at most this).
pub const MAX_INBOX_WAIT_SECS: u64 = 30;

/// `[http]`: connection limits and timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Most connections open at once; beyond it new ones wait in the kernel's backlog until
    /// one closes.
    pub max_connections: usize,
    /// A TLS handshake must finish within this, seconds.
    pub handshake_timeout_secs: u64,
    /// HTTP/1.1: a request's headers must arrive within this after the connection is ready
    /// for them, seconds; this also closes a keep-alive connection idle that long. The
    /// default outlasts a challenge bundle (`login.bundle_ttl_secs`): a person answering the
    /// challenges keeps the login's connection, whose exporter value is in its transcript.
    pub header_timeout_secs: u64,
    /// A request body must arrive whole within this from when the host begins to read it,
    /// seconds (then the request is refused): one deadline, not a limit on each gap, so the
    /// largest body allowed must fit in it at the slowest client link served (an 8 MiB
    /// gateway body in the default 30 s needs about 280 KB/s).
    pub body_timeout_secs: u64,
    /// A connection from which nothing arrives this long is closed, seconds. Longer than the
    /// longest inbox long-poll (30 s), so a waiting client is not cut off, and by default
    /// than a challenge bundle, as above.
    pub idle_timeout_secs: u64,
    /// HTTP/2: most requests in flight on one connection.
    pub max_streams: u32,
    /// Proxies whose `X-Forwarded-For` is believed, as CIDRs (e.g. `["10.0.0.0/8",
    /// "::1/128"]`; default none). From one of them, the client's address — what throttling
    /// and logins in flight are keyed by — is the rightmost `X-Forwarded-For` entry that is
    /// not itself a trusted proxy (nothing left of it is read); from anyone else the header
    /// is ignored. IPv4 clients of a dual-stack `[::]` listener, and IPv4-mapped entries, are
    /// IPv4 addresses here: list IPv4 proxies in IPv4 form.
    pub trusted_proxies: Vec<String>,
    /// Connections from `trusted_proxies` begin with a PROXY protocol v2 header (a TCP load
    /// balancer passing TLS through, e.g. HAProxy `send-proxy-v2`, AWS NLB): its source
    /// address is the client's. Connections from anyone else are plain TLS. Default off.
    pub proxy_protocol: bool,
}

impl HttpConfig {
    /// The trusted proxies' networks (entries that do not parse are refused by
    /// [`Config::check`] and skipped here).
    #[must_use]
    pub fn trusted_proxy_nets(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect()
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout_secs: 10,
            header_timeout_secs: 125,
            body_timeout_secs: 30,
            idle_timeout_secs: 125,
            max_streams: 32,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
        }
    }
}

/// Login parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    /// Fewest challenges in a bundle.
    pub challenges_min: u32,
    /// Most challenges in a bundle (the number is random in `min..=max`).
    pub challenges_max: u32,
    /// How long a start waits for its finish request, seconds (kept under its v1 name).
    pub hello_ttl_secs: u64,
    /// How long a challenge bundle may be answered, seconds.
    pub bundle_ttl_secs: u64,
    /// Most logins waiting between steps (beyond it the oldest are evicted).
    pub max_pending: usize,
    /// Most starts waiting for their finish from one source network (beyond it that
    /// network's oldest are evicted).
    pub max_pending_per_source: usize,
}

/// Session timeouts and the per-user cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// A session unused this long ends, seconds (default 15 min).
    pub idle_timeout_secs: u64,
    /// A session ends this long after login whatever its use, seconds (default 12 h).
    pub absolute_timeout_secs: u64,
    /// Most sessions one user holds (default 128, at least 2): a login beyond it ends the
    /// user's least recently used sessions.
    pub max_per_user: u32,
}

/// Backoff after failed logins, per user and per source address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Failures allowed before any lock.
    pub free_failures: u32,
    /// First lock, seconds (doubles with each further failure).
    pub base_secs: u64,
    /// Longest lock, seconds.
    pub max_secs: u64,
    /// Decay: one counted failure is forgotten for every this many seconds without a new one
    /// (the count is also capped where the lock reaches `max_secs`), so no lock outlives a
    /// flood by more than the time the capped count takes to leak away.
    pub decay_secs: u64,
    /// Source addresses are throttled by network: IPv6 addresses by this prefix (default
    /// /64, what one host or customer usually holds)…
    pub ipv6_prefix: u8,
    /// … and IPv4 addresses by this one (default /32: one address).
    pub ipv4_prefix: u8,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".into(),
            database_url: String::new(),
            tls_cert: "tls/cert.pem".into(),
            tls_key: "tls/key.pem".into(),
            registry_dir: "registry".into(),
            keys_dir: "keys".into(),
            channel_binding: true,
            max_body_bytes: 64 * 1024,
            login: LoginConfig::default(),
            session: SessionConfig::default(),
            throttle: ThrottleConfig::default(),
            messages: MessagesConfig::default(),
            http: HttpConfig::default(),
            gateway: GatewayConfig::default(),
            web: WebConfig::default(),
            audit: AuditConfig::default(),
        }
    }
}

/// `[messages]`: sealed messages, relay and inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagesConfig {
    /// Largest message body (plaintext) accepted, in bytes (at most 1 MiB, the protocol's
    /// `MAX_BODY_LEN`).
    pub max_body_bytes: usize,
    /// Length hiding: pad what the host seals (inbox deliveries) to Padmé size buckets
    /// (default on; at most 12.5 % more bytes; docs/SECURITY.md).
    pub pad: bool,
    /// How often a waiting inbox long-poll re-reads the store, seconds. A message accepted
    /// by this process wakes its recipient's long-polls at once; one accepted by another
    /// replica sharing the database is found at the next re-read.
    pub inbox_recheck_secs: u64,
    /// Most inbox reads one session may have in progress at once on one host process
    /// (each may hold up to an inbox of bodies); beyond it a read is answered 503.
    pub max_inbox_reads_per_session: usize,
    /// Most message bodies one session may have being read at once on one host process
    /// (each up to a sealed message, 1 MiB); beyond it a send is answered 503 before its
    /// body is read.
    pub max_sends_per_session: usize,
    /// Most messages one recipient's queue may hold; beyond it a sender is refused with
    /// `queue-full` until the recipient acknowledges some (docs/SECURITY.md).
    pub max_queue_messages: u64,
    /// Most bytes one recipient's queue may hold, each message counted at its length as
    /// received (its ciphertext); at least `max_body_bytes`.
    pub max_queue_bytes: u64,
    /// Most bytes of audit records one user's sessions may add per UTC day: its messages
    /// (to anyone, the host included) and its gateway requests and their responses, each
    /// counted at its audit record's length. Beyond it the user's messages and gateway
    /// requests are refused with `budget-spent` (429) until midnight UTC; a response is
    /// counted but never refused (its request held room for it). Default 1 GiB; at least
    /// the largest message's record and, with a gateway, the largest request's with that
    /// room (docs/SECURITY.md).
    pub max_user_bytes_per_day: u64,
    /// Group commit: most messages accepted in one store transaction (one fsync), 1 to
    /// 4096. Messages that arrive while a commit runs wait for the next one; each is
    /// acknowledged only once its commit is durable.
    pub commit_max_batch: usize,
    /// Group commit: how long, in microseconds, a batch waits for more messages after its
    /// first before committing (0 to 100000). The default 0 commits at once with whatever
    /// is waiting, which already groups every message that arrived during the previous
    /// commit. The wait runs on tokio's millisecond timer, so anything above 0 lingers at
    /// least about a millisecond per commit: measured, 300 cut the gateway bench's
    /// throughput more than tenfold (BENCHMARKS.md "Gateway throughput").
    pub commit_max_wait_us: u64,
}

/// The largest `messages.commit_max_batch`.
pub const MAX_COMMIT_BATCH: usize = 4096;

/// The longest `messages.commit_max_wait_us` (100 ms).
pub const MAX_COMMIT_WAIT_US: u64 = 100_000;

/// The longest duration any `*_secs` lifetime of `[session]`, `[login]` and `[throttle]` may
/// have: a hundred years. The store keeps times as signed 64-bit seconds, and a larger value
/// would fail every store call that adds it to the clock.
pub const MAX_CONFIG_SECS: u64 = 100 * 365 * 86_400;

impl MessagesConfig {
    /// The group commit's limits for the message path.
    pub fn commit_limits(&self) -> crate::group_commit::BatchLimits {
        crate::group_commit::BatchLimits {
            max_batch: self.commit_max_batch,
            max_wait: std::time::Duration::from_micros(self.commit_max_wait_us),
            queue: self.commit_max_batch.saturating_mul(8),
        }
    }
}

impl Default for MessagesConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: kasane_protocol::seal::MAX_BODY_LEN,
            pad: true,
            inbox_recheck_secs: 1,
            max_inbox_reads_per_session: 4,
            max_sends_per_session: 16,
            max_queue_messages: 1_000,
            max_queue_bytes: 64 * 1024 * 1024,
            max_user_bytes_per_day: 1024 * 1024 * 1024,
            commit_max_batch: 128,
            commit_max_wait_us: 0,
        }
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            challenges_min: 2,
            challenges_max: 3,
            hello_ttl_secs: 60,
            bundle_ttl_secs: 120,
            max_pending: 10_000,
            max_pending_per_source: 64,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout_secs: 15 * 60,
            absolute_timeout_secs: 12 * 60 * 60,
            max_per_user: 128,
        }
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            free_failures: 5,
            base_secs: 2,
            max_secs: 15 * 60,
            decay_secs: 5 * 60,
            ipv6_prefix: 64,
            ipv4_prefix: 32,
        }
    }
}

impl ThrottleConfig {
    /// The store's backoff rule.
    #[must_use]
    pub fn backoff(&self) -> crate::store::Backoff {
        crate::store::Backoff {
            free_failures: self.free_failures,
            base_secs: self.base_secs,
            max_secs: self.max_secs,
            decay_secs: self.decay_secs,
        }
    }

    /// The throttle key of a source address: its network under the configured prefix.
    #[must_use]
    pub fn source_key(&self, source: std::net::IpAddr) -> crate::store::ThrottleKey<'static> {
        let prefix = match source {
            std::net::IpAddr::V4(_) => self.ipv4_prefix,
            std::net::IpAddr::V6(_) => self.ipv6_prefix,
        };
        crate::store::ThrottleKey::network(source, prefix)
    }
}

/// The `KASANE_*` variables the `kasane-host` binary reads itself (log filter, log format,
/// data directory): not configuration overrides, and not unknown either.
pub const PROCESS_VARIABLES: [&str; 3] = ["KASANE_LOG", "KASANE_LOG_FORMAT", "KASANE_DATA"];

impl Config {
    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, HostError> {
        Ok(toml::from_str(text).map_err(ConfigError::from)?)
    }

    /// The TOML text of this configuration.
    pub fn to_toml(&self) -> Result<String, HostError> {
        Ok(toml::to_string_pretty(self).map_err(ConfigError::from)?)
    }

    /// Reads `<data_dir>/kasane.toml` (defaults if it does not exist), applies `KASANE_*`
    /// overrides from the process environment and resolves paths against `data_dir`.
    pub fn load(data_dir: &Path) -> Result<Self, HostError> {
        Self::load_with_env(data_dir, std::env::vars())
    }

    /// Like [`Config::load`], but the file alone: no `KASANE_*` variable of this process
    /// applies. For hosts embedded in a program (the demo, tests) that must not pick up an
    /// operator's environment.
    pub fn load_file(data_dir: &Path) -> Result<Self, HostError> {
        Self::load_with_env(data_dir, std::iter::empty())
    }

    fn load_with_env(
        data_dir: &Path,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Self, HostError> {
        let path = data_dir.join(CONFIG_FILE);
        let mut cfg = match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_toml(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => return Err(HostError::io(&path, e)),
        };
        cfg.apply_env(env)?;
        cfg.resolve(data_dir);
        cfg.check()?;
        Ok(cfg)
    }

    /// Applies `KASANE_LISTEN`, `KASANE_DATABASE_URL`, `KASANE_CHANNEL_BINDING`,
    /// `KASANE_MAX_BODY_BYTES`, `KASANE_IDLE_TIMEOUT_SECS`, `KASANE_ABSOLUTE_TIMEOUT_SECS`,
    /// `KASANE_CHALLENGES_MIN`, `KASANE_CHALLENGES_MAX`, `KASANE_TLS_CERT`, `KASANE_TLS_KEY`,
    /// `KASANE_GATEWAY_UPSTREAM`, `KASANE_WEB`.
    /// Any other `KASANE_*` variable, except [`PROCESS_VARIABLES`], is refused
    /// ([`ConfigError::UnknownVariable`]); variables without the prefix are ignored.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), HostError> {
        fn num<T>(k: &str, v: &str) -> Result<T, ConfigError>
        where
            T: std::str::FromStr<Err = std::num::ParseIntError>,
        {
            v.trim().parse().map_err(|source| ConfigError::NotANumber {
                var: k.to_owned(),
                source,
            })
        }
        for (k, v) in vars {
            match k.as_str() {
                "KASANE_LISTEN" => self.listen = v,
                "KASANE_DATABASE_URL" => self.database_url = v,
                "KASANE_TLS_CERT" => self.tls_cert = v.into(),
                "KASANE_TLS_KEY" => self.tls_key = v.into(),
                "KASANE_CHANNEL_BINDING" => self.channel_binding = boolean(k, &v)?,
                "KASANE_WEB" => self.web.enabled = boolean(k, &v)?,
                "KASANE_MAX_BODY_BYTES" => self.max_body_bytes = num(&k, &v)?,
                "KASANE_IDLE_TIMEOUT_SECS" => self.session.idle_timeout_secs = num(&k, &v)?,
                "KASANE_ABSOLUTE_TIMEOUT_SECS" => {
                    self.session.absolute_timeout_secs = num(&k, &v)?;
                }
                "KASANE_CHALLENGES_MIN" => self.login.challenges_min = num(&k, &v)?,
                "KASANE_CHALLENGES_MAX" => self.login.challenges_max = num(&k, &v)?,
                "KASANE_GATEWAY_UPSTREAM" => self.gateway.upstream = v,
                k if PROCESS_VARIABLES.contains(&k) || !k.starts_with("KASANE_") => {}
                _ => return Err(ConfigError::UnknownVariable { name: k }.into()),
            }
        }
        Ok(())
    }

    /// Makes relative paths relative to `data_dir`; an empty database URL becomes the
    /// data directory's SQLite file.
    pub fn resolve(&mut self, data_dir: &Path) {
        let archive = &mut self.audit.archive_dir;
        if archive.is_relative() && !archive.as_os_str().is_empty() {
            *archive = data_dir.join(&*archive);
        }
        for p in [
            &mut self.tls_cert,
            &mut self.tls_key,
            &mut self.registry_dir,
            &mut self.keys_dir,
        ] {
            if p.is_relative() {
                *p = data_dir.join(&*p);
            }
        }
        if self.database_url.is_empty() {
            self.database_url =
                format!("sqlite://{}?mode=rwc", data_dir.join("kasane.db").display());
        }
    }

    /// Refuses inconsistent values.
    pub fn check(&self) -> Result<(), HostError> {
        let l = &self.login;
        if l.challenges_min == 0
            || l.challenges_min > l.challenges_max
            || l.challenges_max as usize > kasane_protocol::wire::MAX_CHALLENGES
        {
            return Err(ConfigError::ChallengeRange {
                min: l.challenges_min,
                max: l.challenges_max,
            }
            .into());
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::BodyLimit(self.max_body_bytes).into());
        }
        if self.messages.max_body_bytes == 0
            || self.messages.max_body_bytes > kasane_protocol::seal::MAX_BODY_LEN
        {
            return Err(ConfigError::MessageBodyLimit(self.messages.max_body_bytes).into());
        }
        self.check_lifetimes()?;
        if self.messages.inbox_recheck_secs == 0
            || self.messages.max_inbox_reads_per_session == 0
            || self.messages.max_sends_per_session == 0
        {
            return Err(ConfigError::InboxRecheck.into());
        }
        let m = &self.messages;
        let body = m.max_body_bytes as u64;
        if m.max_queue_messages == 0 || m.max_queue_bytes < body {
            return Err(ConfigError::QueueQuota.into());
        }
        if !(1..=MAX_COMMIT_BATCH).contains(&m.commit_max_batch)
            || m.commit_max_wait_us > MAX_COMMIT_WAIT_US
        {
            return Err(ConfigError::GroupCommit.into());
        }
        self.check_http()?;
        self.audit.check()?;
        self.gateway.check()?;
        self.check_budget()?;
        // The idle rule counts bytes received, and a client waiting for the service's answer
        // sends none: the connection must outlive the longest wait.
        if !self.gateway.upstream.is_empty()
            && self.gateway.timeout_secs >= self.http.idle_timeout_secs
        {
            return Err(ConfigError::Gateway {
                what: "timeout_secs must be below [http] idle_timeout_secs (the client's connection would be closed while the service answers)",
            }
            .into());
        }
        Ok(())
    }

    /// `messages.max_user_bytes_per_day`: at least the largest record a message may need
    /// (its body padded, at most an eighth more, and its fields) and, with a gateway, the
    /// largest request record with the room it holds for its response, so that the largest
    /// of either can be sent every day.
    fn check_budget(&self) -> Result<(), HostError> {
        const FIELDS: u64 = 64 * 1024;
        let body = self.messages.max_body_bytes as u64;
        let message = body.saturating_add(body / 8).saturating_add(FIELDS);
        let least = if self.gateway.upstream.is_empty() {
            message
        } else {
            message.max(self.gateway.request_and_room())
        };
        if self.messages.max_user_bytes_per_day < least {
            return Err(ConfigError::Budget { least }.into());
        }
        Ok(())
    }

    /// `[throttle]` and the `[session]` and `[login]` lifetimes.
    fn check_lifetimes(&self) -> Result<(), HostError> {
        let l = &self.login;
        let t = &self.throttle;
        let secs = 1..=MAX_CONFIG_SECS;
        if !secs.contains(&t.decay_secs)
            || !secs.contains(&t.base_secs)
            || !(t.base_secs..=MAX_CONFIG_SECS).contains(&t.max_secs)
            || !(1..=128).contains(&t.ipv6_prefix)
            || !(1..=32).contains(&t.ipv4_prefix)
        {
            return Err(ConfigError::Throttle.into());
        }
        let lifetimes = [
            self.session.idle_timeout_secs,
            self.session.absolute_timeout_secs,
            l.hello_ttl_secs,
            l.bundle_ttl_secs,
        ];
        // A cap of one would let two logins at once on two replicas end each other's session.
        let no_cap = l.max_pending == 0 || self.session.max_per_user < 2;
        if !lifetimes.iter().all(|s| secs.contains(s)) || no_cap {
            return Err(ConfigError::Lifetimes.into());
        }
        Ok(())
    }

    /// `[http]`: trusted proxies, the PROXY protocol, limits and timeouts.
    fn check_http(&self) -> Result<(), HostError> {
        let h = &self.http;
        if let Some(bad) = h
            .trusted_proxies
            .iter()
            .find(|c| c.parse::<ipnet::IpNet>().is_err())
        {
            return Err(ConfigError::TrustedProxy(bad.clone()).into());
        }
        if h.proxy_protocol && h.trusted_proxies.is_empty() {
            return Err(ConfigError::ProxyProtocolWithoutProxies.into());
        }
        let long_poll = MAX_INBOX_WAIT_SECS;
        if h.max_connections == 0
            || h.max_streams == 0
            || [
                h.handshake_timeout_secs,
                h.header_timeout_secs,
                h.body_timeout_secs,
            ]
            .contains(&0)
            || h.idle_timeout_secs <= long_poll
        {
            return Err(ConfigError::Http { long_poll }.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_that_would_end_every_session_or_overflow_the_store_are_refused() {
        let checked = |text: &str| Config::from_toml(text).unwrap().check();
        for text in [
            "[session]\nidle_timeout_secs = 0",
            "[session]\nabsolute_timeout_secs = 0",
            "[session]\nidle_timeout_secs = 9223372036854775807",
            "[login]\nhello_ttl_secs = 0",
            "[login]\nbundle_ttl_secs = 0",
            "[login]\nmax_pending = 0",
            "[session]\nmax_per_user = 1",
        ] {
            assert!(
                matches!(
                    checked(text),
                    Err(HostError::Config(ConfigError::Lifetimes))
                ),
                "{text}"
            );
        }
        for text in [
            "[throttle]\nbase_secs = 10\nmax_secs = 5",
            "[throttle]\nmax_secs = 9223372036854775807",
        ] {
            assert!(
                matches!(checked(text), Err(HostError::Config(ConfigError::Throttle))),
                "{text}"
            );
        }
        assert!(checked("[session]\nidle_timeout_secs = 1").is_ok());
    }

    #[test]
    fn a_daily_budget_must_hold_the_largest_message_and_exchange() {
        let checked = |text: &str| Config::from_toml(text).unwrap().check();
        let message = (1 << 20) + (1 << 17) + 64 * 1024;
        let gateway = "[gateway]\nupstream = \"http://127.0.0.1:8000\"\n";
        let exchange = GatewayConfig::default().request_and_room();
        for (text, ok) in [
            (
                format!("[messages]\nmax_user_bytes_per_day = {message}"),
                true,
            ),
            (
                format!("[messages]\nmax_user_bytes_per_day = {}", message - 1),
                false,
            ),
            (
                format!("[messages]\nmax_user_bytes_per_day = {message}\n{gateway}"),
                false,
            ),
            (
                format!("[messages]\nmax_user_bytes_per_day = {exchange}\n{gateway}"),
                true,
            ),
        ] {
            let got = checked(&text);
            let refused = matches!(got, Err(HostError::Config(ConfigError::Budget { .. })));
            assert_eq!(refused, !ok, "{text}: {got:?}");
        }
    }

    #[test]
    fn a_gateway_wait_must_end_before_the_idle_rule_closes_the_connection() {
        let checked = |text: &str| Config::from_toml(text).unwrap().check();
        let gateway = "[gateway]\nupstream = \"http://127.0.0.1:8000\"\ntimeout_secs = 60\n";
        assert!(checked(gateway).is_ok());
        let refused = checked(&format!("{gateway}[http]\nidle_timeout_secs = 60"));
        assert!(
            matches!(refused, Err(HostError::Config(ConfigError::Gateway { .. }))),
            "{refused:?}"
        );
    }

    #[test]
    fn audit_pruning_needs_an_archive_or_a_plain_no() {
        let refused = |text: &str| {
            let c = Config::from_toml(text).unwrap();
            matches!(
                c.check(),
                Err(HostError::Config(ConfigError::AuditRetention))
            )
        };
        assert!(refused("[audit]\nretain_days = 30\n"), "no archive_dir");
        assert!(refused("[audit]\nretain_days = 36501\narchive = false\n"));
        let mut c = Config::from_toml("[audit]\nretain_days = 30\narchive_dir = \"a\"\n").unwrap();
        c.resolve(Path::new("/data"));
        c.check().unwrap();
        assert_eq!(c.audit.pruning(), Some(Some(Path::new("/data/a"))));
        let c = Config::from_toml("[audit]\nretain_days = 30\narchive = false\n").unwrap();
        c.check().unwrap();
        assert_eq!(c.audit.pruning(), Some(None));
        assert_eq!(Config::default().audit.pruning(), None, "off by default");
    }

    #[test]
    fn defaults_round_trip_and_env_overrides() {
        let c = Config::default();
        assert_eq!(Config::from_toml(&c.to_toml().unwrap()).unwrap(), c);
        assert_eq!(c.session.idle_timeout_secs, 900);
        assert_eq!(c.session.absolute_timeout_secs, 43_200);
        assert!(c.messages.pad, "deliveries are padded by default");
        let off = Config::from_toml("[messages]\npad = false\n").unwrap();
        assert!(!off.messages.pad);
        let mut c = Config::default();
        c.apply_env([
            ("KASANE_CHANNEL_BINDING".to_owned(), "off".to_owned()),
            ("KASANE_LISTEN".to_owned(), "0.0.0.0:1".to_owned()),
            ("OTHER".to_owned(), "x".to_owned()),
        ])
        .unwrap();
        assert!(!c.channel_binding);
        assert_eq!(c.listen, "0.0.0.0:1");
        assert!(c.web.enabled, "the browser client is served by default");
        c.apply_env([("KASANE_WEB".to_owned(), "off".to_owned())])
            .unwrap();
        assert!(!c.web.enabled);
        assert!(
            c.apply_env([("KASANE_WEB".to_owned(), "maybe".to_owned())])
                .is_err()
        );
        assert!(
            c.apply_env([("KASANE_MAX_BODY_BYTES".to_owned(), "lots".to_owned())])
                .is_err()
        );
        assert!(Config::from_toml("nonsense = 1").is_err());
    }

    #[test]
    fn unknown_kasane_variables_are_refused_by_name() {
        let mut c = Config::default();
        let e = c
            .apply_env([("KASANE_LISTNE".to_owned(), "0.0.0.0:1".to_owned())])
            .unwrap_err();
        assert!(
            matches!(
                &e,
                HostError::Config(ConfigError::UnknownVariable { name }) if name == "KASANE_LISTNE"
            ),
            "{e:?}"
        );
        // The binary's own variables and other programs' variables pass.
        let vars = PROCESS_VARIABLES.map(|k| (k.to_owned(), "x".to_owned()));
        c.apply_env(vars).unwrap();
        c.apply_env([("PATH".to_owned(), "/bin".to_owned())])
            .unwrap();
        assert_eq!(c, Config::default());
        // The client's config variable, set in the same shell, is named for what it is.
        let e = c
            .apply_env([("KASANE_CONFIG".to_owned(), "/x.toml".to_owned())])
            .unwrap_err();
        let HostError::Config(e) = e else {
            panic!("{e:?}")
        };
        assert!(e.to_string().contains("the kasane client's"), "{e}");
    }
}
