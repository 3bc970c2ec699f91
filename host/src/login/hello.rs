//! Step 1: the hello, signed by the host key.

use kasane_protocol::wire::Message;
use kasane_protocol::{EphemeralSecret, HostHello, HostHelloParams};
use rand::RngCore;
use rand_core::OsRng;

use super::state::StoredLogin;
use super::{Failure, LoginError, random_id};
use crate::host::Host;
use crate::store::LoginStage;

impl Host {
    /// Step 1: answers a hello, signed by the host key. `channel_binding` is the connection's
    /// RFC 9266 exporter value (used only when the configuration turns binding on).
    pub async fn hello(
        &self,
        request: &[u8],
        channel_binding: Option<&[u8; 32]>,
    ) -> Result<Vec<u8>, LoginError> {
        kasane_protocol::HelloRequest::decode(request).map_err(LoginError::Malformed)?;
        let binding = if self.config.channel_binding {
            Some(channel_binding.ok_or(Failure::NoChannelBinding)?)
        } else {
            None
        };
        let mut server_nonce = [0u8; 32];
        OsRng.fill_bytes(&mut server_nonce);
        let login_id = random_id();
        let (state, bytes) = HostHello::respond(
            request,
            HostHelloParams {
                ephemeral: EphemeralSecret::random(&mut OsRng),
                server_nonce,
                login_id,
                host_key: &self.host_key,
                channel_binding: binding,
            },
        )
        .map_err(|e| {
            tracing::debug!(error = %e, "hello refused");
            Failure::HelloRefused
        })?;
        let now = self.now();
        let stored = StoredLogin::new(state.into_parts());
        self.put_pending(
            login_id,
            LoginStage::Hello,
            &stored,
            now,
            now.saturating_add(self.config.login.hello_ttl_secs),
        )
        .await?;
        Ok(bytes)
    }
}
