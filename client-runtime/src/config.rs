//! [`ClientConfig`]: where the host is, what to trust, and where (if anywhere) to keep state.

use std::path::PathBuf;
use std::time::Duration;

/// How to reach and trust a host.
#[derive(Clone)]
pub struct ClientConfig {
    /// The host's base URL, `https://` only (for example `https://127.0.0.1:8443`).
    pub server: String,
    /// TLS name to check in the host's certificate; `None`: the URL's host.
    pub server_name: Option<String>,
    /// PEM: the host's CA certificate or its self-signed certificate (the only trust anchor).
    pub ca_pem: Vec<u8>,
    /// The pinned registry root (bytes of the registry's `metadata/1.root.json`).
    pub root_json: Vec<u8>,
    /// Trust state, compile cache and fetched modules (directories 0700, files 0600);
    /// `None` = no-cache mode: nothing is kept on disk.
    pub state_dir: Option<PathBuf>,
    /// Per-request timeout (default 30 s).
    pub timeout: Duration,
    /// Length hiding (bucket padding) for messages this client sends.
    pub padding: bool,
}

impl ClientConfig {
    /// A configuration in no-cache mode with a 30 s timeout and padding on.
    pub fn new(server: impl Into<String>, ca_pem: Vec<u8>, root_json: Vec<u8>) -> Self {
        Self {
            server: server.into(),
            server_name: None,
            ca_pem,
            root_json,
            state_dir: None,
            timeout: Duration::from_secs(30),
            padding: true,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("server_name", &self.server_name)
            .field("state_dir", &self.state_dir)
            .field("timeout", &self.timeout)
            .field("padding", &self.padding)
            .finish_non_exhaustive()
    }
}
