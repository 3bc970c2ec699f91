//! [`WebError`]: every refusal the browser client can meet, each with the sentence the page
//! shows in its `error` element (the test contract matches on these words: "altered",
//! "revoked", "expired", "password", "time limit").

use kasane_modcheck::ModuleError;
use kasane_protocol::ProtocolError;
use kasane_registry::{RegistryError, TufError};
use wasm_bindgen::JsValue;

/// Why a step of the browser client failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebError {
    /// OPAQUE refused the password (a wrong password, or an unknown name: the same answer).
    PasswordRefused,
    /// The host refused the challenge answers or the transform's proof.
    LoginRefused,
    /// The module's bytes do not match the registry's signed entry.
    ModuleAltered,
    /// The module's hash is revoked in the registry.
    Revoked,
    /// The registry's signed metadata (or the session ticket) has expired.
    Expired(String),
    /// The module's bytes break the transform rules (imports, exports, memory).
    ModuleRejected(String),
    /// The host's start was not signed by a host key of the registry.
    HostKey,
    /// Any other registry-trust failure.
    Registry(String),
    /// Any other protocol failure (malformed answer, confirm mismatch, …).
    Protocol(String),
    /// A call out of order (the page's own bug).
    State(&'static str),
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PasswordRefused => f.write_str("Login refused: wrong user name or password."),
            Self::LoginRefused => f.write_str("Login refused: a challenge answer is wrong."),
            Self::ModuleAltered => f.write_str(
                "Module refused: its bytes do not match the registry's signed entry (altered in transit?). Nothing was run.",
            ),
            Self::Revoked => {
                f.write_str("Module refused: it is revoked in the registry. Nothing was run.")
            }
            Self::Expired(what) => write!(
                f,
                "Registry refused: its signed metadata has expired ({what}). Nothing was run."
            ),
            Self::ModuleRejected(why) => write!(f, "Module refused: {why}. Nothing was run."),
            Self::HostKey => f.write_str(
                "Host refused: its answer is not signed by a host key of the pinned registry.",
            ),
            Self::Registry(why) => write!(f, "Registry refused: {why}."),
            Self::Protocol(why) => write!(f, "Protocol error: {why}."),
            Self::State(what) => write!(f, "Out of order: {what}."),
        }
    }
}

impl std::error::Error for WebError {}

impl WebError {
    /// The refusal for a registry failure.
    pub(crate) fn registry(e: RegistryError) -> Self {
        match e {
            RegistryError::HashMismatch | RegistryError::LengthMismatch { .. } => {
                Self::ModuleAltered
            }
            RegistryError::Revoked { .. } => Self::Revoked,
            RegistryError::Expired { role } => Self::Expired(format!("{role}")),
            RegistryError::Tuf(TufError::Expired { .. }) | RegistryError::TicketExpired => {
                Self::Expired(e.to_string())
            }
            other => Self::Registry(other.to_string()),
        }
    }

    /// The refusal for a module the static checks turn down.
    pub(crate) fn module(e: ModuleError) -> Self {
        Self::ModuleRejected(e.to_string())
    }
}

impl From<ProtocolError> for WebError {
    fn from(e: ProtocolError) -> Self {
        match e {
            ProtocolError::Opaque => Self::PasswordRefused,
            ProtocolError::BadSignature | ProtocolError::HostKey => Self::HostKey,
            other => Self::Protocol(other.to_string()),
        }
    }
}

impl From<WebError> for JsValue {
    fn from(e: WebError) -> Self {
        js_sys::Error::new(&e.to_string()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_says_what_the_page_contract_promises() {
        let altered = WebError::registry(RegistryError::HashMismatch).to_string();
        assert!(altered.contains("altered") && altered.contains("Nothing was run"));
        let revoked = WebError::registry(RegistryError::Revoked {
            sha256: "00".into(),
        });
        assert!(revoked.to_string().contains("revoked"));
        assert!(
            WebError::registry(RegistryError::TicketExpired)
                .to_string()
                .contains("expired")
        );
        assert!(
            WebError::from(ProtocolError::Opaque)
                .to_string()
                .contains("password")
        );
        assert!(matches!(
            WebError::from(ProtocolError::BadSignature),
            WebError::HostKey
        ));
    }
}
