//! [`HostError`]: what can go wrong in the host library (never sent to a client as is).

/// An error of the host library. Network answers never carry it: a failed login is the one
/// uniform failure answer, and details go to the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The store failed.
    #[error("store")]
    Store(#[from] crate::store::StoreError),
    /// The registry could not be loaded or refused an operation.
    #[error("registry")]
    Registry(#[from] kasane_registry::RegistryError),
    /// The sandbox refused or failed a transform.
    #[error("sandbox")]
    Sandbox(#[from] kasane_sandbox::SandboxError),
    /// A protocol step failed.
    #[error("protocol")]
    Protocol(#[from] kasane_protocol::ProtocolError),
    /// An I/O error on `path`.
    #[error("I/O on {path}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The listen address could not be bound (or its bound address not read).
    #[error("listening on {addr}")]
    Listen {
        /// The address, as configured.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// TLS setup failed (certificate, key, rustls).
    #[error("TLS: {0}")]
    Tls(String),
    /// Password or verifier hashing failed.
    #[error("password hashing: {0}")]
    Hash(String),
    /// No active transform in the registry can be run by this client.
    #[error("no runnable transform for the client's profiles")]
    NoTransform,
    /// A module named by the registry is missing from the modules directory or does not
    /// match its entry.
    #[error("module {name} unavailable")]
    ModuleUnavailable {
        /// The registry name.
        name: String,
    },
}

impl HostError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// A failure to listen on `addr`.
    pub(crate) fn listen(addr: &str, source: std::io::Error) -> Self {
        Self::Listen {
            addr: addr.to_owned(),
            source,
        }
    }
}
