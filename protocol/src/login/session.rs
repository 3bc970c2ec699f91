//! The established [`Session`] and its storable [`SessionParts`].

use zeroize::Zeroizing;

use crate::derive::DeriveContext;
use crate::error::ProtocolError;
use crate::gateway::SealedExchange;
use crate::schedule::{AeadKey, SessionSecret};
use crate::seal::{
    MessageHeader, Padding, Sequencer, open_message, open_message_keyed, seal_message,
};
use crate::window::ReplayWindow;
use crate::wire::{EnrolledPair, ID_LEN, Message, PasswdFinish, SealedMessage};
use kasane_abi::{DeriveInputBuf, Direction};

/// Everything that makes up a [`Session`], for a host that stores sessions (and restores them
/// on any replica). `Debug` prints no secret.
///
/// Restoring the same parts twice and sealing from both copies would reuse a `(key, nonce)`
/// pair: a store must hand out sending sequence numbers atomically (e.g. with
/// `UPDATE … SET last_sent = last_sent + 1 RETURNING last_sent`) and restore with that value.
#[derive(Debug)]
pub struct SessionParts {
    /// The session id.
    pub session_id: [u8; ID_LEN],
    /// The session secret.
    pub secret: SessionSecret,
    /// The final transcript hash.
    pub transcript_hash: [u8; 32],
    /// The public transform context.
    pub context: DeriveContext,
    /// The direction this side sends in (host: host to client).
    pub outgoing: Direction,
    /// The last sequence number reserved for sending.
    pub last_sent: u64,
    /// The last incoming sequence number accepted.
    pub last_received: u64,
}

/// Which number an incoming gateway exchange may have ([`Session::open_exchange`]).
#[derive(Clone, Copy, Debug)]
pub enum Expect<'a> {
    /// A request: any number this replay window has not seen.
    InWindow(&'a ReplayWindow),
    /// The response to the request sent as this number.
    Answer(u64),
}

/// An established session: seals and opens messages through the per-message transform.
///
/// Deliberately not `Clone`: two copies sealing with the same sequence number would reuse a
/// key and nonce. See [`SessionParts`] for storing one.
///
/// Sending: [`Session::prepare_seal`] reserves a sequence number and gives the transform's
/// input; [`Session::seal`] seals with its output. Receiving: [`Session::prepare_open`]
/// checks session, direction and sequence number and gives the input; [`Session::open`]
/// opens and only then records the sequence number.
#[derive(Debug)]
pub struct Session {
    pub(super) session_id: [u8; ID_LEN],
    pub(super) secret: SessionSecret,
    pub(super) th_final: [u8; 32],
    pub(super) ctx: DeriveContext,
    pub(super) seq: Sequencer,
    pub(super) padding: Padding,
}

impl Session {
    /// Takes the session apart for storage.
    pub fn into_parts(self) -> SessionParts {
        SessionParts {
            session_id: self.session_id,
            secret: self.secret,
            transcript_hash: self.th_final,
            context: self.ctx,
            outgoing: self.seq.outgoing(),
            last_sent: self.seq.last_sent(),
            last_received: self.seq.last_received(),
        }
    }

    /// Restores a stored session (padding off; set it again if wanted).
    pub fn from_parts(parts: SessionParts) -> Self {
        Self {
            session_id: parts.session_id,
            secret: parts.secret,
            th_final: parts.transcript_hash,
            ctx: parts.context,
            seq: Sequencer::restore(parts.outgoing, parts.last_sent, parts.last_received),
            padding: Padding::None,
        }
    }

    /// The session id (public; derived from the token).
    pub fn session_id(&self) -> &[u8; ID_LEN] {
        &self.session_id
    }

    /// The final transcript hash (after the response request).
    pub fn transcript_hash(&self) -> &[u8; 32] {
        &self.th_final
    }

    /// The session secret (for test vectors and agreement checks).
    pub fn secret(&self) -> &SessionSecret {
        &self.secret
    }

    /// The sequence state.
    pub fn sequencer(&self) -> &Sequencer {
        &self.seq
    }

    /// Encodes a re-enrollment (`kasane passwd`, step 2) authenticated by this session, for
    /// the record `replaces` names (step 1's [`PasswdChallenge::replaces`](crate::wire::PasswdChallenge)).
    pub fn seal_passwd(
        &self,
        upload: Vec<u8>,
        pairs: Vec<EnrolledPair>,
        replaces: [u8; 32],
    ) -> Result<Vec<u8>, ProtocolError> {
        let mut msg = PasswdFinish {
            upload,
            pairs,
            replaces,
            mac: [0; 32],
        };
        let unsigned = msg.encode()?;
        msg.mac = self.secret.passwd_mac(&self.th_final, &unsigned);
        msg.encode()
    }

    /// Decodes a re-enrollment and checks that this session sent it.
    pub fn open_passwd(&self, bytes: &[u8]) -> Result<PasswdFinish, ProtocolError> {
        let mut msg = PasswdFinish::decode(bytes)?;
        let mac = std::mem::take(&mut msg.mac);
        let unsigned = msg.encode()?;
        self.secret
            .verify_passwd_mac(&self.th_final, &unsigned, &mac)?;
        msg.mac = mac;
        Ok(msg)
    }

    /// Turns length-hiding padding on or off for messages this side sends.
    pub fn set_padding(&mut self, padding: Padding) {
        self.padding = padding;
    }

    /// Reserves the next outgoing sequence number; returns it and the transform input.
    pub fn prepare_seal(&mut self) -> Result<(u64, DeriveInputBuf), ProtocolError> {
        let seq = self.seq.next_outgoing()?;
        Ok((
            seq,
            self.ctx
                .message_input(&self.th_final, self.seq.outgoing(), seq),
        ))
    }

    /// Seals `plaintext` as message `seq` (from [`Session::prepare_seal`]) for `recipient`.
    pub fn seal(
        &self,
        seq: u64,
        t_msg: &[u8],
        recipient: &str,
        plaintext: &[u8],
    ) -> Result<SealedMessage, ProtocolError> {
        seal_message(
            &self.secret,
            t_msg,
            MessageHeader {
                session_id: &self.session_id,
                direction: self.seq.outgoing(),
                seq,
                recipient,
            },
            plaintext,
            self.padding,
        )
    }

    /// Checks a received message's session, direction and sequence number; returns the
    /// transform input for it.
    pub fn prepare_open(&self, sealed: &SealedMessage) -> Result<DeriveInputBuf, ProtocolError> {
        if sealed.session_id != self.session_id {
            return Err(ProtocolError::WrongSession);
        }
        self.seq.check_incoming(sealed.direction, sealed.seq)?;
        Ok(self
            .ctx
            .message_input(&self.th_final, sealed.direction, sealed.seq))
    }

    /// [`prepare_open`](Self::prepare_open) for a side that accepts messages out of order
    /// (the host, several messages in flight): the sequence number is checked against
    /// `window` instead of the last one received.
    pub fn prepare_open_in(
        &self,
        sealed: &SealedMessage,
        window: &ReplayWindow,
    ) -> Result<DeriveInputBuf, ProtocolError> {
        self.check_windowed(sealed, window)?;
        Ok(self
            .ctx
            .message_input(&self.th_final, sealed.direction, sealed.seq))
    }

    /// [`open`](Self::open) against `window`, also returning the message's key; records
    /// nothing: the caller accepts the number into its window where it keeps it (the host: in
    /// the same commit as the message).
    pub fn open_in(
        &self,
        sealed: &SealedMessage,
        t_msg: &[u8],
        window: &ReplayWindow,
    ) -> Result<(Zeroizing<Vec<u8>>, AeadKey), ProtocolError> {
        self.check_windowed(sealed, window)?;
        open_message_keyed(&self.secret, t_msg, sealed)
    }

    fn check_windowed(
        &self,
        sealed: &SealedMessage,
        window: &ReplayWindow,
    ) -> Result<(), ProtocolError> {
        if sealed.session_id != self.session_id {
            return Err(ProtocolError::WrongSession);
        }
        if sealed.direction == self.seq.outgoing() {
            return Err(ProtocolError::WrongDirection);
        }
        window.check(sealed.seq)
    }

    /// The transform's input for gateway exchange `seq` in `direction` (a request: the
    /// client-to-host number [`prepare_seal`](Self::prepare_seal) reserved; its response:
    /// the same number, host to client).
    pub fn exchange_input(&self, direction: Direction, seq: u64) -> DeriveInputBuf {
        self.ctx.message_input(&self.th_final, direction, seq)
    }

    /// Seals an encoded gateway request or response as exchange `seq` in the direction this
    /// side sends (see [`crate::gateway`]): the client seals a request under a number from
    /// [`prepare_seal`](Self::prepare_seal); the host seals the response to request `seq`.
    pub fn seal_exchange(
        &self,
        seq: u64,
        t_msg: &[u8],
        plaintext: &[u8],
    ) -> Result<SealedExchange, ProtocolError> {
        crate::gateway::seal_exchange(
            &self.secret,
            &self.session_id,
            t_msg,
            (self.seq.outgoing(), seq),
            plaintext,
        )
    }

    /// Opens a gateway request (the host; its number checked against `window`, recorded
    /// by the caller) or the response to the request this side sent as `expect` (the
    /// client: any other number is refused, so a response is never replayed or swapped).
    pub fn open_exchange(
        &self,
        sealed: &SealedExchange,
        t_msg: &[u8],
        expect: Expect<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
        match expect {
            Expect::InWindow(window) => window.check(sealed.seq)?,
            Expect::Answer(seq) if sealed.seq != seq => {
                return Err(ProtocolError::Reordered {
                    seq: sealed.seq,
                    last: seq,
                });
            }
            Expect::Answer(_) => {}
        }
        let incoming = match self.seq.outgoing() {
            Direction::ClientToHost => Direction::HostToClient,
            Direction::HostToClient => Direction::ClientToHost,
        };
        crate::gateway::open_exchange(&self.secret, &self.session_id, t_msg, incoming, sealed)
    }

    /// Opens a received message with the transform's output and records its sequence number.
    pub fn open(
        &mut self,
        sealed: &SealedMessage,
        t_msg: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
        if sealed.session_id != self.session_id {
            return Err(ProtocolError::WrongSession);
        }
        self.seq.check_incoming(sealed.direction, sealed.seq)?;
        let plaintext = open_message(&self.secret, t_msg, sealed)?;
        self.seq.commit_incoming(sealed.direction, sealed.seq)?;
        Ok(plaintext)
    }
}
