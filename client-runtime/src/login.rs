//! [`Client::login`], step by step: start (OPAQUE KE1; KE2 signed by the host key) →
//! finish (KE3 from the password, one argon2id; the sealed challenge bundle) → admission
//! (ticket and module checked against the trusted registry) → answers and keyed verifiers →
//! compile in the sandbox and the auth transform (one blocking hand-off) → response and the
//! host's confirm.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use kasane_abi::DeriveInputBuf;
use kasane_protocol::login::{ClientAwaitAccept, ClientAwaitBundle, ClientChallenge};
use kasane_protocol::wire::{ChallengeBundle, Message, Profile, StartResponse};
use kasane_protocol::{ClientStart, Padding, ProtocolError, ResponseAccept};
use kasane_registry::RegistryError;
use kasane_registry::entry::TargetEntry;
use kasane_registry::prefetch::Prefetched;
use kasane_registry::trust::{Fetcher, SystemClock, TrustStore, check_module};
use kasane_sandbox::{CacheOutcome, Limits, Transform};
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::client::{Inner, decode};
use crate::error::ModuleRefused;
use crate::net::Conn;
use crate::{Client, ClientError, Responder, Session};

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

/// Most listed modules looked up in the compile cache beside one login's argon2id (a miss
/// costs a file lookup).
const MAX_LOOKED_UP: usize = 64;
/// Most of them loaded (cache hits).
const MAX_WARMED: usize = 4;

/// A module the trusted registry admitted for this login.
struct Admitted {
    entry: TargetEntry,
    /// The author whose file listed it (`None`: first party).
    author: Option<String>,
    bytes: Vec<u8>,
}

impl Client {
    /// Logs `user` in, with the password and answers from `responder`.
    ///
    /// The ticket and module are checked against the trusted registry before anything is
    /// compiled; the host's start response must be signed by a key of the registry's `host`
    /// role.
    pub async fn login(
        &self,
        user: &str,
        responder: &mut dyn Responder,
    ) -> Result<(Session, LoginReport), ClientError> {
        let inner = &self.inner;
        let (mut conn, finish_step, nonce, warming) = start(inner, user, responder).await?;
        let challenge = finish(&mut conn, finish_step).await?;
        let bundle = challenge.bundle().clone();
        let Admitted {
            entry,
            author,
            bytes,
        } = self.admit(&mut conn, &bundle, &nonce).await?;
        let input = auth_input(&challenge, responder)?;
        let warmed = warmed(warming).await;
        let derived = compile_and_derive(inner, bytes, &entry, input, warmed).await?;
        let (awaiting, request) = challenge.respond(&derived.t_auth)?;
        let (transform, outcome, fuel_used) =
            (derived.transform, derived.outcome, derived.fuel_used);
        if let CacheOutcome::Unusable(error) = outcome {
            tracing::warn!(dir = ?inner.cache.dir(), %error, "compile cache unusable: compiled for this login only");
        }
        let (token, proto) = confirm(&mut conn, awaiting, request, inner.config.padding).await?;
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
        let session = Session::new(user, token, proto, transform, inner.clone(), conn);
        Ok((session, report))
    }

    /// Checks the bundle's ticket and module against the trusted registry (refreshing it
    /// once if the ticket names a newer snapshot) and fetches the module bytes.
    async fn admit(
        &self,
        conn: &mut Conn,
        bundle: &ChallengeBundle,
        nonce: &[u8; 32],
    ) -> Result<Admitted, ClientError> {
        let (entry, role) = self.check_ticket(conn, &bundle.ticket, nonce).await?;
        // First-party transforms are listed by `targets` itself; any other role is an author.
        let author = (role != "targets").then_some(role);
        if bundle.module.sha256 != entry.sha256.0
            || bundle.module.length != entry.length
            || bundle.module.name != entry.name
            || bundle.module.profile != entry.profile
            || bundle.params != entry.params
        {
            return Err(ModuleRefused::BundleMismatch { name: entry.name }.into());
        }
        let bytes = self.module_bytes(conn, &entry).await?;
        // The bytes against the entry the ticket was just checked for (length, then
        // SHA-256), and the hash against the revocations again: another login on this client
        // may have updated the trust store meanwhile. (`TrustStore::admit` would verify the
        // ticket a second time as well.)
        check_module(&entry, &bytes).map_err(ClientError::admission)?;
        self.inner
            .trust
            .lock()
            .await
            .admit_cached(&entry.sha256)
            .map_err(ClientError::admission)?;
        Ok(Admitted {
            entry,
            author,
            bytes,
        })
    }

    /// The trusted entry (and the role that listed it) the ticket names for this login's
    /// `nonce`.
    async fn check_ticket(
        &self,
        conn: &mut Conn,
        ticket: &[u8],
        nonce: &[u8; 32],
    ) -> Result<(TargetEntry, String), ClientError> {
        let check = |trust: &mut TrustStore<SystemClock>, files: &dyn Fetcher| {
            trust.check_ticket(ticket, nonce, files)
        };
        let checked = match self.with_trust(conn, check).await? {
            Err(
                RegistryError::TicketVersions { .. }
                | RegistryError::Tuf(kasane_registry::TufError::Expired { .. }),
            ) => {
                self.inner.refresh_trust(conn).await?;
                self.with_trust(conn, check).await?
            }
            other => other,
        };
        let (_, entry, author) = checked.map_err(ClientError::admission)?;
        Ok((entry, author))
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
            return Err(ClientError::unexpected("module download", status));
        }
        if let Some(file) = &file {
            keep_module(file, &bytes);
        }
        Ok(bytes)
    }
}

/// Keeps a downloaded module in the module store (mode 0600, its directory 0700). Best
/// effort: the bytes are checked against the signed entry on every use.
fn keep_module(file: &Path, bytes: &[u8]) {
    let kept = file
        .parent()
        .map_or(Ok(()), kasane_os::fs::create_private_dir)
        .and_then(|()| kasane_os::fs::write_private(file, bytes));
    if let Err(e) = kept {
        tracing::debug!("module not kept in {}: {e}", file.display());
    }
}

/// Step 1: the start. Sends KE1, checks the host's signed KE2 and finishes OPAQUE with the
/// password (one argon2id, as blocking work: `kasane_os::blocking`). Returns the client with
/// its KE3 to send, and this login's nonce (what the session ticket must name). A password
/// OPAQUE refuses (wrong, or an unknown user, or a locked one) is
/// [`ClientError::PasswordRefused`] — after a random KE3 is sent, so the host counts it like
/// any failed login. The connection is chosen once the password is known (the spare one from
/// `connect`, if still open) and returned for the rest of the login, with the warming of the
/// listed modules (see [`warm`]) begun beside the argon2id.
#[allow(clippy::type_complexity, reason = "the four results of one step")]
async fn start(
    inner: &Arc<Inner>,
    user: &str,
    responder: &mut dyn Responder,
) -> Result<(Conn, (ClientAwaitBundle, Vec<u8>), [u8; 32], Warming), ClientError> {
    let mut profiles = vec![Profile::Pure];
    if kasane_sandbox::profile_available(kasane_sandbox::Profile::Wasi) {
        profiles.push(Profile::Wasi);
    }
    let password = responder.password(user)?;
    let client = ClientStart::new(&mut OsRng, user, password.as_bytes(), profiles)?;
    drop(password);
    let nonce = client.request().client_nonce;
    let mut conn = inner.conn().await?;
    let (status, body) = conn
        .request(
            "POST",
            "/v1/login/start",
            client.request_bytes().to_vec(),
            None,
            Duration::ZERO,
        )
        .await?;
    if status != StatusCode::OK {
        return Err(ClientError::unexpected("start", status));
    }
    let exporter = conn.exporter;
    let signer = StartResponse::decode(&body).ok().map(|r| r.host_public_key);
    let host_keys = inner.host_keys_for(&mut conn, signer).await?;
    let response = body.clone();
    // The warming first, on the blocking pool: the argon2id then runs in place
    // (`kasane_os::blocking`), and nothing else of this task runs meanwhile.
    let warming = warm(inner);
    let finishing = kasane_os::blocking::run(move || {
        client.receive(&mut OsRng, &response, &host_keys, Some(&exporter))
    });
    match finishing.await? {
        Ok(next) => Ok((conn, next, nonce, warming)),
        Err(ProtocolError::BadSignature | ProtocolError::HostKey) => Err(ClientError::HostKey),
        Err(ProtocolError::Opaque) => {
            if let Some(decoy) = kasane_protocol::decoy_finish(&mut OsRng, &body) {
                // The answer is the uniform failure; only the host's counting matters here.
                let _ = conn
                    .request("POST", "/v1/login/finish", decoy, None, Duration::ZERO)
                    .await;
            }
            Err(ClientError::PasswordRefused)
        }
        Err(other) => Err(other.into()),
    }
}

/// Step 2: the finish. Sends KE3; returns the opened challenge bundle.
async fn finish(
    conn: &mut Conn,
    (client, request): (ClientAwaitBundle, Vec<u8>),
) -> Result<ClientChallenge, ClientError> {
    let (status, body) = conn
        .request("POST", "/v1/login/finish", request, None, Duration::ZERO)
        .await?;
    match status {
        StatusCode::OK => {}
        StatusCode::UNAUTHORIZED => return Err(ClientError::PasswordRefused),
        s => return Err(ClientError::unexpected("finish", s)),
    }
    Ok(client.receive(&body)?)
}

/// Step 4: answers → keyed verifiers (HMAC under this login's response key) → the auth
/// transform's input.
fn auth_input(
    challenge: &ClientChallenge,
    responder: &mut dyn Responder,
) -> Result<DeriveInputBuf, ClientError> {
    let challenges = &challenge.bundle().challenges;
    let mut answers = Vec::with_capacity(challenges.len());
    for c in challenges {
        answers.push(responder.answer(&c.prompt)?);
    }
    let refs: Vec<&str> = answers.iter().map(|a| a.as_str()).collect();
    let verifiers = challenge.verifiers(&refs)?;
    drop(refs);
    drop(answers);
    Ok(challenge.auth_input(&verifiers)?)
}

/// What step 5 made: the loaded transform, whether it came from the compile cache, its auth
/// output and the fuel it used.
struct AuthDerived {
    transform: Transform,
    outcome: CacheOutcome,
    t_auth: Zeroizing<Vec<u8>>,
    fuel_used: u64,
}

/// A transform the compile cache held for a module the trust store lists, loaded (linked,
/// never run) before any ticket named a module.
struct Warmed {
    sha256: [u8; 32],
    profile: kasane_sandbox::Profile,
    limits: Limits,
    transform: Transform,
}

/// The warming begun at the start: see [`warm`].
type Warming = tokio::task::JoinHandle<Vec<Warmed>>;

/// Loads from the compile cache, on a blocking thread, the transforms of the first-party
/// modules the trust store lists (the first [`MAX_WARMED`] hits among the first
/// [`MAX_LOOKED_UP`] listed; nothing is validated, compiled, written or run). It runs beside
/// the password's argon2id, which keeps one core busy; the login's module is usually among
/// them, and step 5 then skips its load. With a single core it would slow the argon2id
/// instead, and nothing is warmed.
fn warm(inner: &Arc<Inner>) -> Warming {
    let inner = inner.clone();
    tokio::task::spawn_blocking(move || {
        if std::thread::available_parallelism().map_or(true, |n| n.get() < 2) {
            return Vec::new();
        }
        let listed = inner
            .trust
            .blocking_lock()
            .first_party_modules(&Prefetched::new());
        let listed = listed.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "no listed modules to warm");
            Vec::new()
        });
        let load = |e: &TargetEntry| {
            let (limits, len) = (e.limits(), usize::try_from(e.length).ok()?);
            let found = inner.sandbox.load_cached_by_hash(
                &e.sha256.0,
                len,
                e.profile,
                limits,
                &inner.cache,
            );
            Some(Warmed {
                sha256: e.sha256.0,
                profile: e.profile,
                limits,
                transform: found.ok()??,
            })
        };
        listed
            .iter()
            .take(MAX_LOOKED_UP)
            .filter_map(load)
            .take(MAX_WARMED)
            .collect()
    })
}

/// What the warming loaded, if it is done by the time the module is admitted (a warming
/// still running is left to finish on its own; the login loads as usual).
async fn warmed(warming: Warming) -> Vec<Warmed> {
    if !warming.is_finished() {
        return Vec::new();
    }
    warming.await.unwrap_or_default()
}

/// Step 5: compiles the admitted module (or loads it from the compile cache) with the entry's
/// limits and runs it on `input`, as one piece of blocking work. A warmed transform
/// is used instead when it is the admitted module: the same hash, profile and limits.
async fn compile_and_derive(
    inner: &Arc<Inner>,
    bytes: Vec<u8>,
    entry: &TargetEntry,
    input: DeriveInputBuf,
    warmed: Vec<Warmed>,
) -> Result<AuthDerived, ClientError> {
    let (limits, profile) = (entry.limits(), entry.profile);
    let warmed = warmed
        .into_iter()
        .find(|w| (w.sha256, w.profile, w.limits) == (entry.sha256.0, profile, limits));
    let inner = inner.clone();
    kasane_os::blocking::run(move || {
        let (transform, outcome) = match warmed {
            Some(w) => (w.transform, CacheOutcome::Hit),
            None => inner
                .sandbox
                .load_cached(&bytes, profile, limits, &inner.cache)?,
        };
        let derived = kasane_protocol::with_derive_input(&input, |v| transform.derive(v))??;
        Ok(AuthDerived {
            t_auth: Zeroizing::new(derived.key.as_bytes().to_vec()),
            fuel_used: derived.fuel_used,
            transform,
            outcome,
        })
    })
    .await?
}

/// Step 6: sends the response; checks the host's accept and its confirm. Returns the
/// session token and the open protocol session.
async fn confirm(
    conn: &mut Conn,
    awaiting: ClientAwaitAccept,
    request: Vec<u8>,
    padding: bool,
) -> Result<(Zeroizing<[u8; 32]>, kasane_protocol::Session), ClientError> {
    let (status, body) = conn
        .request("POST", "/v1/login/response", request, None, Duration::ZERO)
        .await?;
    match status {
        StatusCode::OK => {}
        StatusCode::UNAUTHORIZED => return Err(ClientError::LoginRefused),
        s => return Err(ClientError::unexpected("response", s)),
    }
    let token = Zeroizing::new(decode::<ResponseAccept>(&body)?.session_token);
    let mut proto = awaiting.receive(&body).map_err(|e| match e {
        ProtocolError::ConfirmMismatch => ClientError::Confirm,
        other => other.into(),
    })?;
    proto.set_padding(if padding {
        Padding::Buckets
    } else {
        Padding::None
    });
    Ok((token, proto))
}
