//! The open session in the page: the session token (kept in this module's memory only,
//! never in a cookie or the browser's storage), sealing, the inbox and its
//! acknowledgement. Each message's key comes from the transform, which the page runs in
//! its Worker between [`WebSession::prepare_send`] and [`WebSession::seal`] (and between
//! [`WebSession::inbox_input`] and [`WebSession::open`]).

use kasane_protocol::wire::{Delivery, Inbox, InboxAck, Message as _, SealedMessage};
use kasane_protocol::{Padding, ResponseAccept};
use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

use crate::error::WebError;
use crate::login::encode_input;

/// Most message ids acknowledged in one request (the host's limit).
const MAX_ACK: usize = kasane_protocol::wire::MAX_ACK_IDS;

/// A logged-in session.
pub(crate) struct WebSession {
    user: String,
    token: Zeroizing<[u8; 32]>,
    proto: kasane_protocol::Session,
    /// The number [`WebSession::prepare_send`] reserved, until sealed.
    reserved: Option<u64>,
    inbox: Vec<SealedMessage>,
    opened: Vec<u64>,
}

/// A message opened from the inbox.
#[wasm_bindgen(getter_with_clone)]
#[derive(Clone, Debug)]
pub struct Opened {
    /// The host's id of the message.
    pub id: u64,
    /// The sender.
    pub from: String,
    /// When the host accepted it (unix seconds).
    #[wasm_bindgen(js_name = sentAt)]
    pub sent_at: u64,
    /// The body, as text (invalid UTF-8 replaced).
    pub body: String,
}

impl WebSession {
    /// The session `confirm` (the host's accept, `accept_bytes`) opened for `user`.
    pub(crate) fn new(
        user: &str,
        accept_bytes: &[u8],
        mut proto: kasane_protocol::Session,
    ) -> Result<Self, WebError> {
        let token = Zeroizing::new(ResponseAccept::decode(accept_bytes)?.session_token);
        // Length hiding on, as in the native client's default.
        proto.set_padding(Padding::Buckets);
        Ok(Self {
            user: user.to_owned(),
            token,
            proto,
            reserved: None,
            inbox: Vec::new(),
            opened: Vec::new(),
        })
    }

    /// The logged-in user.
    pub(crate) fn user(&self) -> &str {
        &self.user
    }

    /// `Bearer <token hex>`.
    pub(crate) fn authorization(&self) -> String {
        format!("Bearer {}", hex::encode(*self.token))
    }

    /// Reserves the next outgoing number; the transform input for it.
    pub(crate) fn prepare_send(&mut self) -> Result<Vec<u8>, WebError> {
        let (seq, input) = self.proto.prepare_seal()?;
        self.reserved = Some(seq);
        Ok(encode_input(&input)?.to_vec())
    }

    /// Seals `body` for `to` under the reserved number.
    pub(crate) fn seal(
        &mut self,
        t_msg: &[u8],
        to: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, WebError> {
        let seq = self
            .reserved
            .take()
            .ok_or(WebError::State("seal before prepareSend"))?;
        Ok(self.proto.seal(seq, t_msg, to, body)?.encode()?)
    }

    /// Keeps an inbox answer's messages; how many.
    pub(crate) fn inbox(&mut self, body: &[u8]) -> Result<u32, WebError> {
        self.inbox = Inbox::decode(body)?.messages;
        Ok(u32::try_from(self.inbox.len()).unwrap_or(u32::MAX))
    }

    fn sealed(&self, i: u32) -> Result<&SealedMessage, WebError> {
        let sealed = usize::try_from(i)
            .ok()
            .and_then(|i| self.inbox.get(i))
            .ok_or(WebError::State("no such inbox message"))?;
        if sealed.recipient != self.user {
            return Err(WebError::Protocol("a message for someone else".into()));
        }
        Ok(sealed)
    }

    /// The transform input for inbox message `i` (its session, direction and number
    /// checked first).
    pub(crate) fn inbox_input(&self, i: u32) -> Result<Vec<u8>, WebError> {
        let input = self.proto.prepare_open(self.sealed(i)?)?;
        Ok(encode_input(&input)?.to_vec())
    }

    /// Opens inbox message `i` with the transform's output.
    pub(crate) fn open(&mut self, i: u32, t_msg: &[u8]) -> Result<Opened, WebError> {
        let sealed = self.sealed(i)?.clone();
        let plaintext = self.proto.open(&sealed, t_msg)?;
        let d = Delivery::decode(&plaintext)?;
        self.opened.push(d.id);
        Ok(Opened {
            id: d.id,
            from: d.from.clone(),
            sent_at: d.sent_at,
            body: String::from_utf8_lossy(&d.body).into_owned(),
        })
    }

    /// The acknowledgement of the messages opened so far (at most [`MAX_ACK`] at a time).
    pub(crate) fn ack(&mut self) -> Result<Option<Vec<u8>>, WebError> {
        if self.opened.is_empty() {
            return Ok(None);
        }
        let n = self.opened.len().min(MAX_ACK);
        let ids: Vec<u64> = self.opened.drain(..n).collect();
        Ok(Some(InboxAck { ids }.encode()?))
    }
}
