//! Step 1: the start. Answers OPAQUE's KE2, signed by the host key — from the user's record,
//! or from OPAQUE's fake record for an unknown name or a locked user or source, so all three
//! look the same and fail at the finish step.

use std::net::IpAddr;

use kasane_protocol::wire::Message;
use kasane_protocol::{HostStart, HostStartParams, StartRequest};
use rand::RngCore;
use rand_core::OsRng;

use super::state::StoredLogin;
use super::throttle::StartCount;
use super::{Failure, LoginError, random_id};
use crate::HostError;
use crate::host::Host;
use crate::store::{LoginStage, UnixSeconds};

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
        let (record, count) = self.start_record(&req.user_id, source, now).await?;
        let mut server_nonce = [0u8; 32];
        OsRng.fill_bytes(&mut server_nonce);
        let login_id = random_id();
        let (state, bytes) = HostStart::respond(
            &mut OsRng,
            request,
            HostStartParams {
                keys: &self.opaque_keys,
                record: record.as_deref(),
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
        let mut stored = StoredLogin::new(state.into_parts(), req.user_id, record.is_some());
        stored.count = count;
        let expires = now.saturating_add(self.config.login.hello_ttl_secs);
        self.put_pending(login_id, LoginStage::Start, &stored, source, (now, expires))
            .await?;
        Ok(bytes)
    }

    /// The record to answer from: the user's own, or `None` (OPAQUE's fake record) for an
    /// unknown name, a user not enrolled for v2, or a locked user or source. Counts the
    /// attempt unless locked.
    async fn start_record(
        &self,
        user: &str,
        source: IpAddr,
        now: UnixSeconds,
    ) -> Result<(Option<Vec<u8>>, Option<StartCount>), LoginError> {
        let Some(count) = self.count_start(user, source, now).await? else {
            return Ok((None, None));
        };
        let record = self
            .store
            .login_record(user)
            .await
            .map_err(HostError::from)?;
        Ok((record, Some(count)))
    }
}
