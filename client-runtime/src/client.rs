//! [`Client`], [`Session`]: connecting, logging in, sending and receiving sealed messages.

use zeroize::Zeroizing;

use crate::{ClientConfig, ClientError, Responder};

/// A connection-ready client: TLS settings checked and the registry trust updated.
pub struct Client {
    config: ClientConfig,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .finish()
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
    /// Which registry role signed the module's entry.
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

/// A logged-in session: send and receive sealed messages.
pub struct Session {
    user: String,
    session_id: [u8; 16],
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// One opened message from the inbox.
#[derive(Debug)]
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

impl Client {
    /// Checks the configuration and updates the registry trust from the host.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        Err(ClientError::Config(format!(
            "not implemented yet ({})",
            config.server
        )))
    }

    /// Logs `user` in, with the password and answers from `responder`.
    pub async fn login(
        &self,
        user: &str,
        responder: &mut dyn Responder,
    ) -> Result<(Session, LoginReport), ClientError> {
        let _ = responder;
        Err(ClientError::Config(format!(
            "login of {user}: not implemented yet"
        )))
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

    /// Seals `body` for `to` and posts it.
    pub async fn send(
        &mut self,
        to: &str,
        body: &[u8],
    ) -> Result<kasane_protocol::MessageAccepted, ClientError> {
        let _ = (to, body);
        Err(ClientError::Config("send: not implemented yet".into()))
    }

    /// Fetches the inbox (waiting up to `wait_secs`), opens each message and acks the opened ones.
    pub async fn inbox(&mut self, wait_secs: u32) -> Result<Vec<Received>, ClientError> {
        let _ = wait_secs;
        Err(ClientError::Config("inbox: not implemented yet".into()))
    }

    /// Logs out.
    pub async fn close(self) -> Result<(), ClientError> {
        Err(ClientError::Config("close: not implemented yet".into()))
    }
}
