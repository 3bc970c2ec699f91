//! Kasane's browser client: the project's own protocol (login v2 with OPAQUE, message
//! sealing), registry trust (TUF, tickets, revocations) and module checks, compiled to
//! wasm32 and driven by the page in `web/page/` through [`WebClient`]. The page fetches;
//! this crate decides. The transform itself runs in the page's Worker on the browser's own
//! WebAssembly engine, under a wall-clock limit (see docs/WEB.md and docs/SECURITY.md).
//!
//! `web/build.sh` builds it (Debian's `rustc-web`, `-Z build-std`, `wasm-bindgen`) into
//! `web/dist/`, committed with its checksums and rebuilt and compared in CI; the host embeds
//! `web/dist/` and `web/page/` and serves them at `/web/`.
//!
//! # Module map
//! - [`WebClient`] (this file): the wasm-bindgen API, one method per step.
//! - `trust`: the in-memory trust store pinned to the page's root hash; file-by-file update.
//! - `login`: the login's steps over `kasane_protocol::login`.
//! - `session`: sealing, the inbox, acknowledgements.
//! - `error`: [`WebError`], each refusal with the sentence the page shows.

mod error;
mod login;
mod session;
mod trust;

use kasane_abi::Profile;
use kasane_modcheck::StaticLimits;
use kasane_registry::RegistryError;
use kasane_registry::TufError;
use wasm_bindgen::prelude::*;

pub use error::WebError;
use login::Login;
use session::{Opened, WebSession};
use trust::Trust;

/// Largest module the page admits (the native sandbox's default).
const MAX_MODULE_BYTES: usize = 1 << 20;
/// Largest table a module may declare (the native sandbox's default).
const MAX_TABLE_ELEMENTS: u64 = 10_000;

/// The browser client: trust store, the login under way, the open session.
#[wasm_bindgen]
pub struct WebClient {
    trust: Trust,
    login: Option<Login>,
    /// The finish to send after OPAQUE refused the password here (so the host counts it).
    decoy: Option<Vec<u8>>,
    /// A stale ticket (a newer registry) makes the ticket check refresh the trust store
    /// first, once per login.
    refresh: Refresh,
    session: Option<WebSession>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Refresh {
    No,
    Running,
    Done,
}

fn js(e: WebError) -> JsValue {
    e.into()
}

#[wasm_bindgen]
impl WebClient {
    /// A client pinned to `root` (the registry's `1.root.json`), which must hash (SHA-256)
    /// to `pin_hex`, the value the host wrote into the page.
    #[wasm_bindgen(constructor)]
    pub fn new(root: &[u8], pin_hex: &str) -> Result<WebClient, JsValue> {
        Ok(Self {
            trust: Trust::pinned(root, pin_hex).map_err(js)?,
            login: None,
            decoy: None,
            refresh: Refresh::No,
            session: None,
        })
    }

    /// Hands over a fetched repository file (`undefined`: the host answered 404).
    pub fn provide(&mut self, path: String, bytes: Option<Vec<u8>>) {
        self.trust.provide(path, bytes);
    }

    /// Brings the trust store up to date: returns the next repository path to fetch and
    /// [`provide`](Self::provide), or `undefined` when done.
    pub fn update(&mut self) -> Result<Option<String>, JsValue> {
        match self.trust.run(|s, f| s.update(f)) {
            Ok(Ok(())) => Ok(None),
            Ok(Err(path)) => Ok(Some(path)),
            Err(e) => Err(js(WebError::registry(e))),
        }
    }

    /// Starts a login (ending any open session here): the start request's bytes, for
    /// `POST /v1/login/start` (they ask the host not to bind the channel: a page cannot read
    /// its TLS exporter).
    pub fn start(&mut self, user: &str, password: &str) -> Result<Vec<u8>, JsValue> {
        self.session = None;
        self.decoy = None;
        self.refresh = Refresh::No;
        let (login, bytes) = Login::start(user, password).map_err(js)?;
        self.login = Some(login);
        Ok(bytes)
    }

    /// Checks the host's start response and finishes OPAQUE: the finish request's bytes.
    /// A refused password throws, leaving the decoy finish in [`decoy`](Self::decoy).
    pub fn finish(&mut self, response: &[u8]) -> Result<Vec<u8>, JsValue> {
        let login = self.login.as_mut().ok_or_else(no_login)?;
        login.finish(response, &self.trust).map_err(|(e, decoy)| {
            self.decoy = decoy;
            js(e)
        })
    }

    /// The finish request to send after [`finish`](Self::finish) refused the password.
    pub fn decoy(&mut self) -> Option<Vec<u8>> {
        self.decoy.take()
    }

    /// Opens the sealed challenge bundle: its prompts, in order.
    pub fn bundle(&mut self, sealed: &[u8]) -> Result<Vec<String>, JsValue> {
        self.login_mut()?.open_bundle(sealed).map_err(js)
    }

    /// Checks the bundle's ticket against the trusted registry (refreshing it once if the
    /// ticket names a newer one): the next repository path to fetch, or `undefined` when
    /// the ticket and the bundle's module reference are accepted.
    #[wasm_bindgen(js_name = checkTicket)]
    pub fn check_ticket(&mut self) -> Result<Option<String>, JsValue> {
        loop {
            if self.refresh == Refresh::Running {
                match self.update()? {
                    Some(path) => return Ok(Some(path)),
                    None => self.refresh = Refresh::Done,
                }
            }
            match self.try_ticket() {
                Ok(next) => return Ok(next),
                Err(e) if stale(&e) && self.refresh == Refresh::No => {
                    self.refresh = Refresh::Running;
                }
                Err(e) => return Err(js(WebError::registry(e))),
            }
        }
    }

    /// The path of the module to fetch (`/v1/modules/<sha256>.wasm`), once the ticket is
    /// accepted.
    #[wasm_bindgen(js_name = modulePath)]
    pub fn module_path(&self) -> Result<String, JsValue> {
        let (entry, _) = self.entry()?;
        Ok(format!("/v1/modules/{}.wasm", entry.sha256.to_hex()))
    }

    /// Admits the module's bytes: length and SHA-256 against the signed entry, the ticket
    /// and revocations again, then the static checks (pure profile: no imports; the ABI
    /// exports; declared memory and tables within the entry's limits). Only bytes this
    /// accepted may be instantiated.
    pub fn admit(&mut self, module: &[u8]) -> Result<(), JsValue> {
        let login = self.login.as_ref().ok_or_else(no_login)?;
        let ticket = login.challenge().map_err(js)?.bundle().ticket.clone();
        let nonce = login.nonce;
        let admitted = self
            .trust
            .run(|s, f| s.admit(&ticket, &nonce, module, f).map(|a| a.entry))
            .map_err(|e| js(WebError::registry(e)))?
            .map_err(|path| js(WebError::Registry(format!("{path} is needed again"))))?;
        if admitted.profile != Profile::Pure {
            return Err(js(WebError::ModuleRejected(
                "it needs the wasi profile, which a browser does not run".into(),
            )));
        }
        let limits = StaticLimits {
            module_bytes: MAX_MODULE_BYTES,
            memory_bytes: admitted.memory,
            table_elements: MAX_TABLE_ELEMENTS,
        };
        kasane_modcheck::validate(module, Profile::Pure, &limits)
            .map_err(|e| js(WebError::module(e)))?;
        self.login_mut()?.admitted = true;
        Ok(())
    }

    /// How long the Worker may run one transform call, in milliseconds: the entry's fuel at
    /// 25 000 units per millisecond (50 M, the default, is 2 s), from 1 s to 30 s.
    #[wasm_bindgen(js_name = timeLimitMs)]
    pub fn time_limit_ms(&self) -> Result<u32, JsValue> {
        let (entry, _) = self.entry()?;
        Ok(u32::try_from((entry.fuel / 25_000).clamp(1_000, 30_000)).unwrap_or(30_000))
    }

    /// The entry's linear memory limit, bytes (the Worker refuses a call that grew past it).
    #[wasm_bindgen(js_name = memoryLimit)]
    pub fn memory_limit(&self) -> Result<f64, JsValue> {
        let (entry, _) = self.entry()?;
        // Exact: the registry caps memory far below 2^53.
        Ok(entry.memory as f64)
    }

    /// The auth transform's input for the user's answers (one per prompt, in order).
    #[wasm_bindgen(js_name = authInput)]
    pub fn auth_input(&self, answers: Vec<String>) -> Result<Vec<u8>, JsValue> {
        let login = self.login.as_ref().ok_or_else(no_login)?;
        login.auth_input(&answers).map_err(js)
    }

    /// The response request for the auth transform's output.
    pub fn respond(&mut self, t_auth: &[u8]) -> Result<Vec<u8>, JsValue> {
        self.login_mut()?.respond(t_auth).map_err(js)
    }

    /// Checks the host's confirm (answered with 200 to the response) and opens the session:
    /// what ran, for the page to show.
    pub fn confirm(&mut self, body: &[u8]) -> Result<LoginReport, JsValue> {
        let mut login = self.login.take().ok_or_else(no_login)?;
        let (entry, role) = login.entry.take().ok_or_else(no_login)?;
        let counter = login.challenge_counter;
        let proto = login.confirm(body).map_err(js)?;
        let session = WebSession::new(&login.user, body, proto).map_err(js)?;
        self.session = Some(session);
        Ok(LoginReport {
            user: login.user,
            transform: entry.name.clone(),
            sha256: entry.sha256.to_hex(),
            signed_by: if role == "targets" {
                role
            } else {
                format!("author:{role}")
            },
            counter,
        })
    }

    /// Whether a session is open.
    #[wasm_bindgen(js_name = hasSession)]
    pub fn has_session(&self) -> bool {
        self.session.is_some()
    }

    /// The logged-in user's name.
    pub fn user(&self) -> Result<String, JsValue> {
        Ok(self.session()?.user().to_owned())
    }

    /// The `Authorization` header value of the open session.
    pub fn authorization(&self) -> Result<String, JsValue> {
        Ok(self.session()?.authorization())
    }

    /// Reserves the next message number: the message transform's input for it.
    #[wasm_bindgen(js_name = prepareSend)]
    pub fn prepare_send(&mut self) -> Result<Vec<u8>, JsValue> {
        self.session_mut()?.prepare_send().map_err(js)
    }

    /// Seals `body` for `to` under the number [`prepare_send`](Self::prepare_send) reserved,
    /// with the transform's output `t_msg`: the bytes to post to `/v1/messages`.
    pub fn seal(&mut self, t_msg: &[u8], to: &str, body: &str) -> Result<Vec<u8>, JsValue> {
        self.session_mut()?
            .seal(t_msg, to, body.as_bytes())
            .map_err(js)
    }

    /// Takes an inbox answer (`GET /v1/inbox`): how many messages it holds.
    pub fn inbox(&mut self, body: &[u8]) -> Result<u32, JsValue> {
        self.session_mut()?.inbox(body).map_err(js)
    }

    /// The message transform's input for inbox message `i`.
    #[wasm_bindgen(js_name = inboxInput)]
    pub fn inbox_input(&self, i: u32) -> Result<Vec<u8>, JsValue> {
        self.session()?.inbox_input(i).map_err(js)
    }

    /// Opens inbox message `i` with the transform's output.
    pub fn open(&mut self, i: u32, t_msg: &[u8]) -> Result<Opened, JsValue> {
        self.session_mut()?.open(i, t_msg).map_err(js)
    }

    /// The acknowledgement of every message opened since the last inbox (`POST
    /// /v1/inbox/ack`), or `undefined` if none was.
    pub fn ack(&mut self) -> Result<Option<Vec<u8>>, JsValue> {
        self.session_mut()?.ack().map_err(js)
    }

    /// Forgets the session and any login under way (the page posts `/v1/logout` first).
    pub fn forget(&mut self) {
        self.session = None;
        self.login = None;
        self.decoy = None;
    }
}

/// What a login ran, for the page (as `kasane login` reports it).
#[wasm_bindgen(getter_with_clone)]
#[derive(Clone, Debug)]
pub struct LoginReport {
    /// The user logged in.
    pub user: String,
    /// The transform's name (from the trusted registry entry).
    pub transform: String,
    /// The module's SHA-256, hex.
    pub sha256: String,
    /// Who signed the module's entry: `targets` (first party) or `author:<id>`.
    #[wasm_bindgen(js_name = signedBy)]
    pub signed_by: String,
    /// The challenge bundle's access counter.
    pub counter: u64,
}

impl WebClient {
    fn login_mut(&mut self) -> Result<&mut Login, JsValue> {
        self.login.as_mut().ok_or_else(no_login)
    }

    fn session(&self) -> Result<&WebSession, JsValue> {
        self.session
            .as_ref()
            .ok_or_else(|| js(WebError::State("no session open")))
    }

    fn session_mut(&mut self) -> Result<&mut WebSession, JsValue> {
        self.session
            .as_mut()
            .ok_or_else(|| js(WebError::State("no session open")))
    }

    fn entry(&self) -> Result<&(kasane_registry::entry::TargetEntry, String), JsValue> {
        self.login
            .as_ref()
            .and_then(|l| l.entry.as_ref())
            .ok_or_else(|| js(WebError::State("no ticket accepted")))
    }

    /// One run of the ticket check: the next path, or `None` once the ticket is accepted
    /// and the bundle's module reference matches the entry it names.
    fn try_ticket(&mut self) -> Result<Option<String>, RegistryError> {
        let login = self.login.as_ref().ok_or(RegistryError::NotInitialized)?;
        let challenge = login
            .challenge()
            .map_err(|_| RegistryError::NotInitialized)?;
        let bundle = challenge.bundle().clone();
        let nonce = login.nonce;
        let (_, entry, role) = match self
            .trust
            .run(|s, f| s.check_ticket(&bundle.ticket, &nonce, f))?
        {
            Ok(checked) => checked,
            Err(path) => return Ok(Some(path)),
        };
        if bundle.module.sha256 != entry.sha256.0
            || bundle.module.length != entry.length
            || bundle.module.name != entry.name
            || bundle.module.profile != entry.profile
            || bundle.params != entry.params
        {
            return Err(RegistryError::TicketModule);
        }
        if let Some(login) = self.login.as_mut() {
            login.challenge_counter = bundle.counter;
            login.entry = Some((entry, role));
        }
        Ok(None)
    }
}

/// A ticket that names a newer registry than the one trusted here, or an expired trusted
/// one: the trust store is refreshed and the ticket checked again.
fn stale(e: &RegistryError) -> bool {
    matches!(
        e,
        RegistryError::TicketVersions { .. } | RegistryError::Tuf(TufError::Expired { .. })
    )
}

fn no_login() -> JsValue {
    js(WebError::State("no login under way"))
}
