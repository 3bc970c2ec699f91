//! Step 1: the start. Answers OPAQUE's KE2, signed by the host key — from the user's record,
//! or from OPAQUE's fake record for an unknown name or a locked user or source, so all three
//! look the same and fail at the finish step.

use std::net::IpAddr;

use kasane_protocol::wire::{ID_LEN, Message};
use kasane_protocol::{HostAwaitFinish, HostStart, HostStartParams, StartRequest};
use rand::RngCore;
use rand_core::OsRng;

use super::state::{DrawnCounter, StoredLogin};
use super::throttle::{StartCount, StartFacts};
use super::{Failure, LoginError, random_id};
use crate::host::Host;
use crate::metrics::Outcome;
use crate::store::{LoginRecord, LoginStage, UnixSeconds};

/// What identifies one start's answer: fresh per start.
#[derive(Debug, Clone, Copy)]
struct StartIds {
    login_id: [u8; ID_LEN],
    server_nonce: [u8; 32],
    /// The TLS exporter value, when binding is on for this login.
    binding: Option<[u8; 32]>,
}

/// The start's state to store, and KE2 to send.
type Answered = (HostAwaitFinish, Vec<u8>);

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
            Some(*channel_binding.ok_or(Failure::NoChannelBinding)?)
        } else {
            None
        };
        let mut server_nonce = [0u8; 32];
        OsRng.fill_bytes(&mut server_nonce);
        let ids = StartIds {
            login_id: random_id(),
            server_nonce,
            binding,
        };
        let now = self.now();
        let (count, login, (state, bytes)) = self
            .count_and_answer(request, &req.user_id, source, now, ids)
            .await?;
        let mut stored = StoredLogin::new(state.into_parts(), req.user_id, login.is_some(), source);
        stored.count = count;
        // The counter is on disk before a finish answers it: the durable write begins once
        // this step's own writes are done, and runs while the client computes its argon2id.
        stored.counter = login.map(|l| DrawnCounter {
            value: l.counter,
            durable: self.barrier.reserve(),
        });
        let expires = now.saturating_add(self.config.login.hello_ttl_secs);
        let put = self
            .put_pending(
                ids.login_id,
                LoginStage::Start,
                &stored,
                source,
                (now, expires),
            )
            .await;
        if stored.counter.is_some() {
            self.barrier.write_soon();
        }
        put?;
        Ok(bytes)
    }

    /// Counts the start and makes KE2 from the record the lookup read: the store counts the
    /// attempt and draws the counter, and OPAQUE runs. On a SQLite file both are blocking
    /// work in place (`kasane_os::blocking`), one after the other: measured faster here than
    /// overlapping them through the blocking pool, whose hand-offs cost more than the count;
    /// on PostgreSQL the count's query is under way while OPAQUE runs. A locked user or source is
    /// answered from the fake record and counts nothing. Should the count find otherwise
    /// than the lookup (a lock engaged, or the user enrolled again or removed, in between),
    /// KE2 is made again from what the count found, and the first one is dropped unsent.
    async fn count_and_answer(
        &self,
        request: &[u8],
        user: &str,
        source: IpAddr,
        now: UnixSeconds,
        ids: StartIds,
    ) -> Result<(Option<StartCount>, Option<LoginRecord>, Answered), LoginError> {
        let facts: StartFacts = self.look_up_start(user, source, now).await?;
        if facts.locked {
            self.metrics.login(Outcome::Throttled);
            return Ok((None, None, self.answer_start(request, None, ids).await?));
        }
        let answering = self.answer_start(request, facts.record.clone(), ids);
        let (counted, answered) =
            tokio::join!(self.count_start(user, source, now, &facts), answering);
        let (count, login) = match counted? {
            Some((count, login)) => (Some(count), login),
            None => (None, None),
        };
        let record = login.as_ref().map(|l| &l.opaque_record);
        if record == facts.record.as_ref() {
            return Ok((count, login, answered?));
        }
        let again = self.answer_start(request, record.cloned(), ids).await?;
        Ok((count, login, again))
    }

    /// KE2 from `record` (`None`: OPAQUE's fake record), signed by the host key, made as
    /// blocking work (a few hundred microseconds of curve arithmetic).
    async fn answer_start(
        &self,
        request: &[u8],
        record: Option<Vec<u8>>,
        ids: StartIds,
    ) -> Result<Answered, LoginError> {
        let keys = self.opaque_keys.clone();
        let host_key = self.host_key.load_full();
        let request = request.to_vec();
        let answered = kasane_os::blocking::run(move || {
            HostStart::respond(
                &mut OsRng,
                &request,
                HostStartParams {
                    keys: &keys,
                    record: record.as_deref(),
                    server_nonce: ids.server_nonce,
                    login_id: ids.login_id,
                    host_key: &host_key,
                    channel_binding: ids.binding.as_ref(),
                },
            )
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "start aborted");
            Failure::StartRefused
        })?;
        answered.map_err(|e| {
            tracing::debug!(error = %e, "start refused");
            Failure::StartRefused.into()
        })
    }
}
