//! Step 1: the start. Answers OPAQUE's KE2, signed by the host key — from the user's record,
//! or from OPAQUE's fake record for an unknown name or a locked user or source, so all three
//! look the same and fail at the finish step.

use std::net::IpAddr;

use kasane_protocol::wire::Message;
use kasane_protocol::{HostStart, HostStartParams, StartRequest};
use rand::RngCore;
use rand_core::OsRng;

use super::state::{DrawnCounter, StoredLogin};
use super::{Failure, LoginError, random_id};
use crate::host::Host;
use crate::store::LoginStage;

impl Host {
    /// Step 1: answers a start request with KE2, signed by the host key. `channel_binding`
    /// is the connection's RFC 9266 exporter value (used only when the configuration turns
    /// binding on). Each start counts as a failed attempt of the user and the source until
    /// its finish proves the password (with KE2 alone a client can test one password guess).
    pub async fn start(
        &self,
        request: &[u8],
        source: IpAddr,
        channel_binding: Option<&[u8; 32]>,
    ) -> Result<Vec<u8>, LoginError> {
        let req = StartRequest::decode(request).map_err(LoginError::Malformed)?;
        // A client that cannot bind (a browser) says so in the signed request.
        let binding = if self.config.channel_binding && req.can_bind {
            Some(channel_binding.ok_or(Failure::NoChannelBinding)?)
        } else {
            None
        };
        let now = self.now();
        // The user's record with the counter drawn for this login, or `None` (OPAQUE's fake
        // record) for an unknown name, a user not enrolled for v2, or a locked user or
        // source; nothing is counted while locked.
        let (count, login) = match self.count_start(&req.user_id, source, now).await? {
            Some((count, login)) => (Some(count), login),
            None => (None, None),
        };
        let mut server_nonce = [0u8; 32];
        OsRng.fill_bytes(&mut server_nonce);
        let login_id = random_id();
        let (state, bytes) = HostStart::respond(
            &mut OsRng,
            request,
            HostStartParams {
                keys: &self.opaque_keys,
                record: login.as_ref().map(|l| l.opaque_record.as_slice()),
                server_nonce,
                login_id,
                host_key: &self.host_key,
                channel_binding: binding,
            },
        )
        .map_err(|e| {
            tracing::debug!(error = %e, "start refused");
            Failure::StartRefused
        })?;
        let mut stored = StoredLogin::new(state.into_parts(), req.user_id, login.is_some());
        stored.count = count;
        // The counter is on disk before a finish answers it: the durable write begins once
        // this step's own writes are done, and runs while the client computes its argon2id.
        stored.counter = login.map(|l| DrawnCounter {
            value: l.counter,
            durable: self.barrier.reserve(),
        });
        let expires = now.saturating_add(self.config.login.hello_ttl_secs);
        let put = self
            .put_pending(login_id, LoginStage::Start, &stored, source, (now, expires))
            .await;
        if stored.counter.is_some() {
            self.barrier.write_soon();
        }
        put?;
        Ok(bytes)
    }
}
