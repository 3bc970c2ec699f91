//! [`Session::exchange`]: one HTTP request to the service behind the host, sealed as a
//! gateway exchange of the session (`POST /v1/gateway`; docs/GATEWAY.md), and its sealed
//! answer opened.

use std::time::Duration;

use hyper::StatusCode;
use kasane_abi::Direction;
use kasane_protocol::gateway::{GatewayRequest, GatewayResponse, SealedExchange};
use kasane_protocol::{Expect, Message, RefusalReason};

use crate::ClientError;
use crate::client::{decode, derive_message};
use crate::session::Session;

/// How much longer than the client's own time-out an exchange may take: the service's own
/// time (the host's `[gateway] timeout_secs`, 30 s by default), so that a slow service
/// comes back as the host's sealed 504 rather than as a client-side time-out.
pub const GATEWAY_EXTRA_WAIT: Duration = Duration::from_secs(30);

/// The refusal of an answer that does not open as the response to our request.
fn incoming(e: &kasane_protocol::ProtocolError) -> ClientError {
    tracing::warn!("gateway response refused: {e}");
    ClientError::Incoming(RefusalReason::Altered)
}

impl Session {
    /// Sends `request` through the host's gateway and returns the service's answer (a 502
    /// or 504 from the host when the service gave none). Pipelines like
    /// [`Session::send`]: up to [`crate::MAX_IN_FLIGHT`] at once per session; a request the
    /// host refused as `reordered` (it never reached the service) is sealed again under a
    /// new number, up to [`REORDERED_RETRIES`] times.
    pub async fn exchange(&self, request: &GatewayRequest) -> Result<GatewayResponse, ClientError> {
        let plain = zeroize::Zeroizing::new(request.encode()?);
        self.pipelined(|| self.exchange_once(&plain)).await
    }

    /// One try of [`Session::exchange`].
    async fn exchange_once(&self, plain: &[u8]) -> Result<GatewayResponse, ClientError> {
        let conn = self.take_conn().await?;
        let (seq, input) = self.proto().prepare_seal()?;
        let t_msg = derive_message(&self.transform, input).await?;
        let sealed = self.proto().seal_exchange(seq, &t_msg, plain)?;
        drop(t_msg);
        let body = sealed.encode()?;
        let (status, answer) = self
            .post_up_to(
                conn,
                ("POST", "/v1/gateway"),
                body,
                GATEWAY_EXTRA_WAIT,
                SealedExchange::MAX_LEN,
            )
            .await?;
        if status != StatusCode::OK {
            return Err(Self::refusal("gateway", status, &answer));
        }
        let answer = decode::<SealedExchange>(&answer)?;
        let input = self.proto().exchange_input(Direction::HostToClient, seq);
        let t_msg = derive_message(&self.transform, input).await?;
        let opened = self
            .proto()
            .open_exchange(&answer, &t_msg, Expect::Answer(seq))
            .map_err(|e| incoming(&e))?;
        GatewayResponse::decode(&opened)
            .map_err(|_| ClientError::Incoming(RefusalReason::Malformed))
    }
}
