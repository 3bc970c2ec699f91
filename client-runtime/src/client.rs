//! [`Client`], [`Session`]: connecting, logging in, sending and receiving sealed messages.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use hyper::StatusCode;
use kasane_protocol::wire::{Message, Profile};
use kasane_protocol::{
    ClientHello, Delivery, Inbox, InboxAck, MessageAccepted, MessageRefused, Padding,
    ProtocolError, RefusalReason, ResponseAccept, SealedMessage,
};
use kasane_registry::RoleName;
use kasane_registry::metadata::targets::TargetEntry;
use kasane_registry::trust::{Pin, STATE_FILE, SystemClock, TrustStore};
use kasane_sandbox::{
    Allocator, CacheOutcome, CompileCache, Limits, Sandbox, SandboxConfig, Transform,
};
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::net::{Conn, Endpoint};
use crate::registry::registry_error;
use crate::{ClientConfig, ClientError, Responder};

/// Fuel cap for any transform (the host uses the same): a registry entry may ask for less.
const MAX_FUEL: u64 = 2_000_000_000;
/// Most distinct delivery ids remembered for de-duplication.
const SEEN_CAP: usize = 65_536;

/// A connection-ready client: TLS settings checked and the registry trust updated.
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
    trust: tokio::sync::Mutex<TrustStore<SystemClock>>,
    /// No-cache mode: the (removed) directory the trust store was created in; recreated
    /// privately for the length of a refresh only.
    temp_trust_dir: Option<PathBuf>,
    host_keys: Vec<VerifyingKey>,
    sandbox: Sandbox,
    cache: CompileCache,
    /// Where fetched modules are kept (cache mode only).
    modules_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// What a successful login ran and saw.
#[derive(Debug, Clone)]
pub struct LoginReport {
    /// The user logged in.
    pub user: String,
    /// The transform module's name (from the trusted registry entry).
    pub transform: String,
    /// The module's SHA-256.
    pub sha256: [u8; 32],
    /// Who signed the module's entry: `targets` (first party) or `author:<id>`.
    pub signed_by: String,
    /// Whether the compiled module came from the local compile cache.
    pub from_cache: bool,
    /// The challenge bundle's counter.
    pub counter: u64,
    /// The prompts answered.
    pub prompts: Vec<String>,
    /// Fuel the authentication transform used.
    pub fuel_used: u64,
}

/// A logged-in session: send and receive sealed messages. One request is in flight at a
/// time (`&mut self`), so sequence numbers reach the host in order.
pub struct Session {
    user: String,
    session_id: [u8; 16],
    token: Zeroizing<[u8; 32]>,
    proto: kasane_protocol::Session,
    transform: Transform,
    client: Arc<Inner>,
    conn: Option<Conn>,
    seen: HashSet<u64>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// One opened message from the inbox. `Debug` shows the body's length, not its bytes.
pub struct Received {
    /// The host's delivery id.
    pub id: u64,
    /// The sender's user name.
    pub from: String,
    /// When the host accepted it (Unix seconds).
    pub sent_at: u64,
    /// The plaintext.
    pub body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("id", &self.id)
            .field("from", &self.from)
            .field("sent_at", &self.sent_at)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// One inbox fetch: the messages opened (and acked) and those refused (not acked).
#[derive(Debug, Default)]
pub struct InboxReport {
    /// Opened, new messages (acked).
    pub received: Vec<Received>,
    /// Messages that did not open, each as [`ClientError::Incoming`] (not acked).
    pub refused: Vec<ClientError>,
    /// The host has more messages waiting.
    pub more: bool,
}

fn blocking_err(e: tokio::task::JoinError) -> ClientError {
    ClientError::Sandbox(format!("transform task failed: {e}"))
}

/// Runs `transform` on `input` on a blocking thread: the key and the fuel used.
async fn derive(
    transform: &Transform,
    input: kasane_abi::DeriveInputBuf,
) -> Result<(Zeroizing<Vec<u8>>, u64), ClientError> {
    let transform = transform.clone();
    tokio::task::spawn_blocking(move || {
        let derived = kasane_protocol::with_derive_input(&input, |v| transform.derive(v))
            .map_err(|e| ClientError::Protocol(e.to_string()))?
            .map_err(|e| ClientError::Sandbox(e.to_string()))?;
        Ok((
            Zeroizing::new(derived.key.as_bytes().to_vec()),
            derived.fuel_used,
        ))
    })
    .await
    .map_err(blocking_err)?
}

fn decode<M: Message>(body: &[u8]) -> Result<M, ClientError> {
    M::decode(body).map_err(|e| ClientError::Protocol(e.to_string()))
}

fn unexpected(step: &str, status: StatusCode) -> ClientError {
    ClientError::Protocol(format!("{step}: unexpected HTTP status {status}"))
}

/// The refusal a received message earns for a protocol error.
fn incoming_reason(e: &ProtocolError) -> RefusalReason {
    match e {
        ProtocolError::Replayed { .. } => RefusalReason::Replayed,
        ProtocolError::Reordered { .. } => RefusalReason::Reordered,
        ProtocolError::WrongSession => RefusalReason::WrongSession,
        ProtocolError::WrongDirection => RefusalReason::WrongDirection,
        ProtocolError::Decrypt | ProtocolError::Padding => RefusalReason::Altered,
        _ => RefusalReason::Malformed,
    }
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
                    return Err(ClientError::Registry(format!("{path} is too large")));
                }
                Ok(Some(body))
            }
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(ClientError::Registry(format!("GET {path}: HTTP {s}"))),
        }
    }
}

impl Client {
    /// Checks the configuration, opens the trust store (in a temporary directory removed
    /// before this returns, in no-cache mode) and updates it from the host.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let endpoint = Endpoint::parse(&config.server, config.server_name.as_deref())?;
        let tls = crate::net::tls_config(&config.ca_pem)?;
        let mut conn = Conn::open(&endpoint, &tls, config.timeout).await?;

        // The trust store always persists; with no state dir it lives in a temporary
        // directory for the length of this call (`admit` and `check_ticket` only read memory).
        let (mut store, temp) = match &config.state_dir {
            Some(dir) => {
                let trust_dir = dir.join("trust");
                let store = if trust_dir.join(STATE_FILE).exists() {
                    TrustStore::open(&trust_dir, SystemClock)
                } else {
                    TrustStore::init(&trust_dir, &config.root_json, Pin::File, SystemClock)
                }
                .map_err(registry_error)?;
                (store, None)
            }
            None => {
                let temp = tempfile::tempdir()
                    .map_err(|e| ClientError::Io(format!("temporary trust directory: {e}")))?;
                let store =
                    TrustStore::init(temp.path(), &config.root_json, Pin::File, SystemClock)
                        .map_err(registry_error)?;
                (store, Some(temp))
            }
        };
        let result = crate::registry::update(&mut store, &mut HostRegistry(&mut conn)).await;
        let temp_trust_dir = temp.as_ref().map(|t| t.path().to_owned());
        if let Some(temp) = temp {
            temp.close()
                .map_err(|e| ClientError::Io(format!("removing temporary trust dir: {e}")))?;
        }
        result?;

        let host_keys = store
            .role_keys(RoleName::Host)
            .map_err(registry_error)?
            .keys()
            .iter()
            .filter_map(|k| VerifyingKey::from_bytes(&k.to_bytes()).ok())
            .collect::<Vec<_>>();
        if host_keys.is_empty() {
            return Err(ClientError::HostKey);
        }

        let sandbox = Sandbox::new(SandboxConfig {
            allocator: Allocator::OnDemand,
            max_limits: Limits {
                fuel: MAX_FUEL,
                ..Limits::default()
            },
            ..SandboxConfig::default()
        })
        .map_err(|e| ClientError::Sandbox(e.to_string()))?;
        let (cache, modules_dir) = match &config.state_dir {
            Some(dir) => (
                CompileCache::open(dir.join("cache"))
                    .map_err(|e| ClientError::Io(format!("compile cache: {e}")))?,
                Some(dir.join("modules")),
            ),
            None => (CompileCache::disabled(), None),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                endpoint,
                tls,
                trust: tokio::sync::Mutex::new(store),
                temp_trust_dir,
                host_keys,
                sandbox,
                cache,
                modules_dir,
            }),
        })
    }

    /// Updates the trust store from the host on `conn` (a ticket named a newer snapshot, or
    /// the trusted metadata expired since `connect`).
    async fn refresh_trust(&self, conn: &mut Conn) -> Result<(), ClientError> {
        let mut store = self.inner.trust.lock().await;
        let Some(dir) = &self.inner.temp_trust_dir else {
            return crate::registry::update(&mut store, &mut HostRegistry(conn)).await;
        };
        // `create` (not `create_all`) refuses a path someone else made meanwhile.
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| ClientError::Io(format!("temporary trust directory: {e}")))?;
        let result = crate::registry::update(&mut store, &mut HostRegistry(conn)).await;
        let removed = std::fs::remove_dir_all(dir)
            .map_err(|e| ClientError::Io(format!("removing temporary trust dir: {e}")));
        result.and(removed)
    }

    /// The module bytes for `entry`: from the local module store, else from the host.
    async fn module_bytes(
        &self,
        conn: &mut Conn,
        entry: &TargetEntry,
    ) -> Result<Vec<u8>, ClientError> {
        let hex = entry.sha256.to_hex();
        let file = self
            .inner
            .modules_dir
            .as_ref()
            .map(|d| d.join(format!("{hex}.wasm")));
        // A local copy that no longer matches (truncated, replaced) is ignored, not an error:
        // the host's copy is fetched instead, and `admit` checks whichever is used.
        if let Some(file) = &file
            && let Ok(bytes) = std::fs::read(file)
            && bytes.len() as u64 == entry.length
            && <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(&bytes)) == entry.sha256.0
        {
            return Ok(bytes);
        }
        let (status, bytes) = conn
            .request(
                "GET",
                &format!("/v1/modules/{hex}.wasm"),
                Vec::new(),
                None,
                Duration::ZERO,
            )
            .await?;
        if status != StatusCode::OK {
            return Err(unexpected("module download", status));
        }
        if let Some(file) = &file
            && let Some(dir) = file.parent()
        {
            // Best effort: the bytes are checked against the signed entry on every use.
            if std::fs::create_dir_all(dir).is_ok() {
                let _ = std::fs::write(file, &bytes);
            }
        }
        Ok(bytes)
    }

    /// Logs `user` in, with the password and answers from `responder`.
    ///
    /// The ticket and module are checked against the trusted registry before anything is
    /// compiled; the host's hello must be signed by a key of the registry's `host` role.
    pub async fn login(
        &self,
        user: &str,
        responder: &mut dyn Responder,
    ) -> Result<(Session, LoginReport), ClientError> {
        let inner = &self.inner;
        let mut conn = Conn::open(&inner.endpoint, &inner.tls, inner.config.timeout).await?;

        // 1. hello
        let mut profiles = vec![Profile::Pure];
        if kasane_sandbox::profile_available(kasane_sandbox::Profile::Wasi) {
            profiles.push(Profile::Wasi);
        }
        let hello = ClientHello::new(&mut OsRng, profiles)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let nonce = hello.request().client_nonce;
        let (status, body) = conn
            .request(
                "POST",
                "/v1/login/hello",
                hello.request_bytes().to_vec(),
                None,
                Duration::ZERO,
            )
            .await?;
        if status != StatusCode::OK {
            return Err(unexpected("hello", status));
        }
        let exporter = conn.exporter;
        let client = hello
            .receive(&body, &inner.host_keys, Some(&exporter))
            .map_err(|e| match e {
                ProtocolError::BadSignature | ProtocolError::HostKey => ClientError::HostKey,
                other => ClientError::Protocol(other.to_string()),
            })?;

        // 2. password → the challenge bundle
        let password = responder.password(user)?;
        let (awaiting, request) = client
            .request(user, password.as_bytes())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        drop(password);
        let (status, body) = conn
            .request("POST", "/v1/login/password", request, None, Duration::ZERO)
            .await?;
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => return Err(ClientError::Throttled),
            s => return Err(unexpected("password", s)),
        }
        let challenge = awaiting
            .receive(&body)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let bundle = challenge.bundle().clone();

        // 3. the ticket and the module, checked before anything compiles
        let untrusted = |e: kasane_registry::RegistryError| match registry_error(e) {
            ClientError::Registry(s) => ClientError::UntrustedModule(s),
            other => other,
        };
        let checked = self
            .inner
            .trust
            .lock()
            .await
            .check_ticket(&bundle.ticket, &nonce);
        let (_, entry, author) = match checked {
            Err(
                kasane_registry::RegistryError::SnapshotMismatch { .. }
                | kasane_registry::RegistryError::Expired { .. },
            ) => {
                self.refresh_trust(&mut conn).await?;
                self.inner
                    .trust
                    .lock()
                    .await
                    .check_ticket(&bundle.ticket, &nonce)
                    .map_err(untrusted)?
            }
            other => other.map_err(untrusted)?,
        };
        let profile = entry.profile;
        if bundle.module.sha256 != entry.sha256.0
            || bundle.module.length != entry.length
            || bundle.module.name != entry.name
            || bundle.module.profile != profile
            || bundle.params != entry.params
        {
            return Err(ClientError::UntrustedModule(format!(
                "the bundle's module does not match the trusted entry for {}",
                entry.name
            )));
        }
        let bytes = self.module_bytes(&mut conn, &entry).await?;
        self.inner
            .trust
            .lock()
            .await
            .admit(&bundle.ticket, &nonce, &bytes)
            .map_err(untrusted)?;
        let limits = Limits {
            fuel: entry.fuel,
            memory_bytes: entry.memory,
            ..Limits::default()
        };
        let sandbox = inner.sandbox.clone();
        let (transform, outcome) = {
            let cache = self.inner.clone();
            tokio::task::spawn_blocking(move || {
                sandbox.load_cached(&bytes, profile, limits, &cache.cache)
            })
            .await
            .map_err(blocking_err)?
            .map_err(|e| ClientError::Sandbox(e.to_string()))?
        };

        // 4. answers → verifiers (argon2id, off the async workers) → the auth transform
        let mut answers = Vec::with_capacity(bundle.challenges.len());
        for c in &bundle.challenges {
            answers.push((responder.answer(&c.prompt)?, c.salt.clone()));
        }
        let verifiers = tokio::task::spawn_blocking(move || {
            answers
                .iter()
                .map(|(a, salt)| kasane_protocol::verifier::response_verifier(a, salt))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(blocking_err)?
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let input = challenge
            .auth_input(&verifiers)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        drop(verifiers);
        let (t_auth, fuel_used) = derive(&transform, input).await?;
        let (awaiting, request) = challenge
            .respond(&t_auth)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        drop(t_auth);

        // 5. response → accept and confirm
        let (status, body) = conn
            .request("POST", "/v1/login/response", request, None, Duration::ZERO)
            .await?;
        match status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => return Err(ClientError::LoginRefused),
            s => return Err(unexpected("response", s)),
        }
        let token = Zeroizing::new(decode::<ResponseAccept>(&body)?.session_token);
        let mut proto = awaiting.receive(&body).map_err(|e| match e {
            ProtocolError::ConfirmMismatch => ClientError::Confirm,
            other => ClientError::Protocol(other.to_string()),
        })?;
        proto.set_padding(if inner.config.padding {
            Padding::Buckets
        } else {
            Padding::None
        });
        let report = LoginReport {
            user: user.to_owned(),
            transform: entry.name.clone(),
            sha256: entry.sha256.0,
            signed_by: author.map_or_else(|| "targets".to_owned(), |a| format!("author:{a}")),
            from_cache: outcome == CacheOutcome::Hit,
            counter: bundle.counter,
            prompts: bundle.challenges.iter().map(|c| c.prompt.clone()).collect(),
            fuel_used,
        };
        let session = Session {
            user: user.to_owned(),
            session_id: *proto.session_id(),
            token,
            proto,
            transform,
            client: self.inner.clone(),
            conn: Some(conn),
            seen: HashSet::new(),
        };
        Ok((session, report))
    }
}

impl Session {
    /// The logged-in user.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The session id.
    pub fn session_id(&self) -> [u8; 16] {
        self.session_id
    }

    /// One authenticated request on the session's connection (reopened if it closed).
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        extra_wait: Duration,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut conn = match self.conn.take() {
            Some(c) if c.is_open() => c,
            _ => {
                let inner = &self.client;
                Conn::open(&inner.endpoint, &inner.tls, inner.config.timeout).await?
            }
        };
        let result = conn
            .request(method, path, body, Some(&self.token), extra_wait)
            .await;
        if result.is_ok() {
            self.conn = Some(conn);
        }
        result
    }

    /// A refusal body (`MessageRefused`) or an unexpected status.
    fn refusal(step: &str, status: StatusCode, body: &[u8]) -> ClientError {
        match MessageRefused::decode(body) {
            Ok(r) => ClientError::Refused(r.reason),
            Err(_) if status == StatusCode::UNAUTHORIZED => {
                ClientError::Refused(RefusalReason::SessionEnded)
            }
            Err(_) => unexpected(step, status),
        }
    }

    /// Seals `body` for `to` and posts it.
    pub async fn send(&mut self, to: &str, body: &[u8]) -> Result<MessageAccepted, ClientError> {
        let (seq, input) = self
            .proto
            .prepare_seal()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (t_msg, _) = derive(&self.transform, input).await?;
        let sealed = self
            .proto
            .seal(seq, &t_msg, to, body)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        drop(t_msg);
        let bytes = sealed
            .encode()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (status, resp) = self
            .request("POST", "/v1/messages", bytes, Duration::ZERO)
            .await?;
        if status == StatusCode::OK {
            decode::<MessageAccepted>(&resp)
        } else {
            Err(Self::refusal("send", status, &resp))
        }
    }

    /// Opens one received message.
    async fn open(&mut self, sealed: &SealedMessage) -> Result<Delivery, ClientError> {
        if sealed.recipient != self.user {
            return Err(ClientError::Incoming(RefusalReason::Altered));
        }
        let input = self
            .proto
            .prepare_open(sealed)
            .map_err(|e| ClientError::Incoming(incoming_reason(&e)))?;
        let (t_msg, _) = derive(&self.transform, input).await?;
        let plaintext = self
            .proto
            .open(sealed, &t_msg)
            .map_err(|e| ClientError::Incoming(incoming_reason(&e)))?;
        Delivery::decode(&plaintext).map_err(|_| ClientError::Incoming(RefusalReason::Malformed))
    }

    /// Fetches the inbox (waiting up to `wait_secs`), opens each message and acks the
    /// opened ones; reports the refused ones separately (they are not acked).
    pub async fn inbox_report(&mut self, wait_secs: u32) -> Result<InboxReport, ClientError> {
        let (status, body) = self
            .request(
                "GET",
                &format!("/v1/inbox?wait={wait_secs}"),
                Vec::new(),
                Duration::from_secs(u64::from(wait_secs)),
            )
            .await?;
        if status != StatusCode::OK {
            return Err(Self::refusal("inbox", status, &body));
        }
        let inbox = decode::<Inbox>(&body)?;
        let mut report = InboxReport {
            more: inbox.more,
            ..InboxReport::default()
        };
        let mut ack = Vec::new();
        for sealed in &inbox.messages {
            match self.open(sealed).await {
                Ok(d) => {
                    ack.push(d.id);
                    if self.seen.len() >= SEEN_CAP {
                        self.seen.clear();
                    }
                    if self.seen.insert(d.id) {
                        report.received.push(Received {
                            id: d.id,
                            from: d.from.clone(),
                            sent_at: d.sent_at,
                            body: Zeroizing::new(d.body.clone()),
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(seq = sealed.seq, "received message refused: {e}");
                    report.refused.push(e);
                }
            }
        }
        for ids in ack.chunks(1024) {
            let bytes = InboxAck { ids: ids.to_vec() }
                .encode()
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            let (status, body) = self
                .request("POST", "/v1/inbox/ack", bytes, Duration::ZERO)
                .await?;
            if !status.is_success() {
                return Err(Self::refusal("ack", status, &body));
            }
        }
        Ok(report)
    }

    /// Fetches the inbox (waiting up to `wait_secs`), opens each message and acks the opened
    /// ones. A message that does not open is not acked; when nothing opened, the first
    /// refusal is the error (see [`Session::inbox_report`] for both at once).
    pub async fn inbox(&mut self, wait_secs: u32) -> Result<Vec<Received>, ClientError> {
        let mut report = self.inbox_report(wait_secs).await?;
        if report.received.is_empty() && !report.refused.is_empty() {
            return Err(report.refused.swap_remove(0));
        }
        Ok(report.received)
    }

    /// Logs out.
    pub async fn close(mut self) -> Result<(), ClientError> {
        let (status, body) = self
            .request("POST", "/v1/logout", Vec::new(), Duration::ZERO)
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Self::refusal("logout", status, &body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_protocol_errors_map_to_their_refusal() {
        let cases = [
            (ProtocolError::Replayed { seq: 3 }, RefusalReason::Replayed),
            (
                ProtocolError::Reordered { seq: 2, last: 3 },
                RefusalReason::Reordered,
            ),
            (ProtocolError::WrongSession, RefusalReason::WrongSession),
            (ProtocolError::WrongDirection, RefusalReason::WrongDirection),
            (ProtocolError::Decrypt, RefusalReason::Altered),
            (ProtocolError::Padding, RefusalReason::Altered),
            (ProtocolError::Truncated, RefusalReason::Malformed),
        ];
        for (e, want) in cases {
            assert_eq!(incoming_reason(&e), want, "{e}");
        }
    }

    #[test]
    fn a_refusal_body_is_its_reason_and_a_bare_401_ends_the_session() {
        let body = MessageRefused {
            reason: RefusalReason::TooLarge,
        }
        .encode()
        .unwrap_or_default();
        assert!(matches!(
            Session::refusal("send", StatusCode::PAYLOAD_TOO_LARGE, &body),
            ClientError::Refused(RefusalReason::TooLarge)
        ));
        assert!(matches!(
            Session::refusal("send", StatusCode::UNAUTHORIZED, b"\x01\x07"),
            ClientError::Refused(RefusalReason::SessionEnded)
        ));
        assert!(matches!(
            Session::refusal("send", StatusCode::INTERNAL_SERVER_ERROR, b""),
            ClientError::Protocol(_)
        ));
    }
}
