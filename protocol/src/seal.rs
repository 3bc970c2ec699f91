//! Message sealing (DESIGN §4 "Messages"), the replay window and length-hiding padding.
//!
//! ```text
//! K ‖ nonce = HKDF-SHA256(salt = T_msg, ikm = session_secret,
//!                         info = "kasane/v1/msg" ‖ d ‖ u64_be(seq), 44 bytes)
//! AAD       = session_id (16) ‖ d (1) ‖ u64_be(seq) ‖ u32_be(len(recipient)) ‖ recipient
//! sealed    = AES-256-GCM(K, nonce, pad(plaintext), AAD)
//! ```
//! `T_msg` is the transform's output for purpose = message, that `seq` and direction `d`.
//! Key and nonce both change with every `(d, seq)`, and the [`Sequencer`] never lets a
//! `(d, seq)` be used twice.
//!
//! Length-hiding [`Padding`] ([`pad`], [`unpad`]) is defined in a leaf module and re-exported
//! here.

use zeroize::Zeroizing;

use crate::error::ProtocolError;
use crate::limits::{ID_LEN, is_recipient};
use crate::schedule::{AeadKey, SessionSecret};
use crate::wire::SealedMessage;
use kasane_abi::Direction;

pub use crate::limits::{MAX_BODY_LEN, MAX_PLAINTEXT_LEN};
pub use crate::padding::{MIN_BUCKET, Padding, pad, padded_len, unpad};

/// HKDF info prefix of a message key.
pub const INFO_MESSAGE: &[u8] = b"kasane/v1/msg";

/// The message key and nonce for `(direction, seq)`.
pub fn message_key(
    secret: &SessionSecret,
    t_msg: &[u8],
    direction: Direction,
    seq: u64,
) -> Result<AeadKey, ProtocolError> {
    transmission_key(INFO_MESSAGE, secret, t_msg, (direction, seq))
}

/// A per-transmission key and nonce: `HKDF(salt = t_msg, ikm = session secret, info = label
/// ‖ d ‖ u64_be(seq))`, for messages ([`INFO_MESSAGE`]) and gateway exchanges.
pub(crate) fn transmission_key(
    label: &[u8],
    secret: &SessionSecret,
    t_msg: &[u8],
    (direction, seq): (Direction, u64),
) -> Result<AeadKey, ProtocolError> {
    if !(kasane_abi::MIN_OUTPUT_LEN..=kasane_abi::MAX_OUTPUT_LEN).contains(&t_msg.len()) {
        return Err(ProtocolError::TransformOutput(t_msg.len()));
    }
    Ok(AeadKey::derive(
        t_msg,
        secret.expose_secret(),
        &[label, &[direction.as_u8()], &seq.to_be_bytes()],
    ))
}

/// The associated data of a sealed message.
pub fn message_aad(
    session_id: &[u8; ID_LEN],
    direction: Direction,
    seq: u64,
    recipient: &str,
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(ID_LEN + 1 + 8 + 4 + recipient.len());
    aad.extend_from_slice(session_id);
    aad.push(direction.as_u8());
    aad.extend_from_slice(&seq.to_be_bytes());
    // Recipients are capped at MAX_RECIPIENT_LEN, far below u32::MAX.
    aad.extend_from_slice(&(recipient.len() as u32).to_be_bytes());
    aad.extend_from_slice(recipient.as_bytes());
    aad
}

/// Everything that names one sealed message apart from its ciphertext.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageHeader<'a> {
    /// The session.
    pub session_id: &'a [u8; ID_LEN],
    /// The direction.
    pub direction: Direction,
    /// The sequence number (≥ 1).
    pub seq: u64,
    /// The final recipient (empty: the host).
    pub recipient: &'a str,
}

/// Seals `plaintext` (see the module doc). Does not check sequence numbers: see [`Sequencer`].
pub fn seal_message(
    secret: &SessionSecret,
    t_msg: &[u8],
    header: MessageHeader<'_>,
    plaintext: &[u8],
    padding: Padding,
) -> Result<SealedMessage, ProtocolError> {
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(ProtocolError::PlaintextTooLong {
            len: plaintext.len(),
            max: MAX_PLAINTEXT_LEN,
        });
    }
    if !is_recipient(header.recipient) {
        return Err(ProtocolError::FieldRange { field: "recipient" });
    }
    if header.seq == 0 {
        return Err(ProtocolError::FieldRange { field: "seq" });
    }
    let key = message_key(secret, t_msg, header.direction, header.seq)?;
    let aad = message_aad(
        header.session_id,
        header.direction,
        header.seq,
        header.recipient,
    );
    let ciphertext = key.seal(&aad, &pad(plaintext, padding))?;
    Ok(SealedMessage {
        session_id: *header.session_id,
        direction: header.direction,
        seq: header.seq,
        recipient: header.recipient.to_owned(),
        ciphertext,
    })
}

/// Opens a sealed message and removes its padding. Does not check sequence numbers.
pub fn open_message(
    secret: &SessionSecret,
    t_msg: &[u8],
    sealed: &SealedMessage,
) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    open_message_keyed(secret, t_msg, sealed).map(|(plaintext, _)| plaintext)
}

/// [`open_message`], also returning the message's key (the host keeps it, sealed at rest,
/// to open the message's audit record again for its recipient).
pub fn open_message_keyed(
    secret: &SessionSecret,
    t_msg: &[u8],
    sealed: &SealedMessage,
) -> Result<(Zeroizing<Vec<u8>>, AeadKey), ProtocolError> {
    let key = message_key(secret, t_msg, sealed.direction, sealed.seq)?;
    let aad = message_aad(
        &sealed.session_id,
        sealed.direction,
        sealed.seq,
        &sealed.recipient,
    );
    let plaintext = unpad(key.open(&aad, &sealed.ciphertext)?)?;
    Ok((plaintext, key))
}

/// Sequence numbers of one session: the next to send, and the last accepted per direction.
///
/// Sending numbers start at 1 and strictly increase. A received number must be greater than
/// the last accepted one (gaps are allowed: a lost message does not stall the session); equal
/// is [`ProtocolError::Replayed`], lower is [`ProtocolError::Reordered`]. Check before
/// decrypting, commit only after the message opened, so a forgery cannot move the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequencer {
    outgoing: Direction,
    last_sent: u64,
    last_received: u64,
}

impl Sequencer {
    /// A fresh window for the side that sends in direction `outgoing`.
    pub fn new(outgoing: Direction) -> Self {
        Self {
            outgoing,
            last_sent: 0,
            last_received: 0,
        }
    }

    /// A window restored from stored state (a host replica picking up a session).
    pub fn restore(outgoing: Direction, last_sent: u64, last_received: u64) -> Self {
        Self {
            outgoing,
            last_sent,
            last_received,
        }
    }

    /// The last sequence number reserved for sending (0: none yet).
    pub fn last_sent(&self) -> u64 {
        self.last_sent
    }

    /// The direction this side sends in.
    pub fn outgoing(&self) -> Direction {
        self.outgoing
    }

    /// The direction this side receives.
    pub fn incoming(&self) -> Direction {
        match self.outgoing {
            Direction::ClientToHost => Direction::HostToClient,
            Direction::HostToClient => Direction::ClientToHost,
        }
    }

    /// Reserves the next sending sequence number.
    pub fn next_outgoing(&mut self) -> Result<u64, ProtocolError> {
        let seq = self
            .last_sent
            .checked_add(1)
            .ok_or(ProtocolError::SequenceExhausted)?;
        self.last_sent = seq;
        Ok(seq)
    }

    /// Checks that `(direction, seq)` may be accepted, without recording it.
    pub fn check_incoming(&self, direction: Direction, seq: u64) -> Result<(), ProtocolError> {
        if direction != self.incoming() {
            return Err(ProtocolError::WrongDirection);
        }
        if seq == self.last_received && seq != 0 {
            return Err(ProtocolError::Replayed { seq });
        }
        if seq <= self.last_received {
            return Err(ProtocolError::Reordered {
                seq,
                last: self.last_received,
            });
        }
        Ok(())
    }

    /// Records `seq` as accepted (after the message opened).
    pub fn commit_incoming(&mut self, direction: Direction, seq: u64) -> Result<(), ProtocolError> {
        self.check_incoming(direction, seq)?;
        self.last_received = seq;
        Ok(())
    }

    /// The last accepted incoming sequence number (0: none yet).
    pub fn last_received(&self) -> u64 {
        self.last_received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_round_trips_and_fills_buckets() {
        for len in [0usize, 1, 62, 63, 64, 100, 16383, 16384, 20000] {
            let p: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let padded = pad(&p, Padding::Buckets);
            assert_eq!(padded.len(), padded_len(len, Padding::Buckets));
            assert!(padded.len() > len);
            assert_eq!(&**unpad(padded).unwrap(), p.as_slice());
            let plain = pad(&p, Padding::None);
            assert_eq!(plain.len(), len + 1);
            assert_eq!(&**unpad(plain).unwrap(), p.as_slice());
        }
        // Padmé of max(64, len + 1), worked by hand from the paper's definition.
        for (len, padded) in [
            (0, 64),
            (63, 64),
            (64, 72),
            (256, 272),
            (4096, 4352),
            (16384, 17408),
            (40000, 40960),
            (65536, 67584),
        ] {
            assert_eq!(padded_len(len, Padding::Buckets), padded, "len {len}");
        }
    }

    #[test]
    fn plaintext_ending_in_zeros_or_0x80_survives() {
        for p in [&[0u8, 0][..], &[0x80], &[0x80, 0], &[1, 0x80, 0x80]] {
            assert_eq!(&**unpad(pad(p, Padding::Buckets)).unwrap(), p);
        }
    }

    #[test]
    fn malformed_padding_is_refused() {
        for bad in [&[][..], &[0, 0], &[1, 2], &[0x80, 1]] {
            assert!(matches!(
                unpad(Zeroizing::new(bad.to_vec())),
                Err(ProtocolError::Padding)
            ));
        }
    }

    #[test]
    fn sequencer_refuses_replay_reorder_and_wrong_direction() {
        let mut s = Sequencer::new(Direction::HostToClient);
        assert_eq!(s.next_outgoing().unwrap(), 1);
        assert_eq!(s.next_outgoing().unwrap(), 2);
        let d = Direction::ClientToHost;
        assert!(matches!(
            s.check_incoming(d, 0),
            Err(ProtocolError::Reordered { .. })
        ));
        s.commit_incoming(d, 1).unwrap();
        assert!(matches!(
            s.check_incoming(d, 1),
            Err(ProtocolError::Replayed { seq: 1 })
        ));
        s.commit_incoming(d, 5).unwrap();
        assert!(matches!(
            s.check_incoming(d, 3),
            Err(ProtocolError::Reordered { seq: 3, last: 5 })
        ));
        assert!(matches!(
            s.check_incoming(Direction::HostToClient, 6),
            Err(ProtocolError::WrongDirection)
        ));
        assert!(s.check_incoming(d, 6).is_ok());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn unpad_inverts_pad(p in proptest::collection::vec(any::<u8>(), 0..3000), b in any::<bool>()) {
            let padding = if b { Padding::Buckets } else { Padding::None };
            let padded = pad(&p, padding);
            prop_assert_eq!(padded.len(), padded_len(p.len(), padding));
            prop_assert_eq!(&**unpad(padded).unwrap(), p.as_slice());
        }

        #[test]
        fn padme_buckets_cost_under_an_eighth_and_keep_few_bits(len in 0usize..=crate::seal::MAX_PLAINTEXT_LEN) {
            let n = (len + 1).max(MIN_BUCKET);
            let padded = padded_len(len, Padding::Buckets);
            prop_assert!(padded >= n);
            // Under 2^-S of n, S >= 3 from 64 bytes on.
            prop_assert!((padded - n) * 8 < n);
            // The padded length has at most S + 1 significant bits: its power of two and S more.
            let (e, s) = (n.ilog2(), n.ilog2().ilog2() + 1);
            prop_assert_eq!(padded % (1usize << (e - s)), 0);
            prop_assert!(padded_len(len + 1, Padding::Buckets) >= padded);
        }

        #[test]
        fn open_inverts_seal_and_any_bit_flip_is_refused(
            p in proptest::collection::vec(any::<u8>(), 0..300),
            t in proptest::collection::vec(any::<u8>(), 1..=64),
            seq in 1u64..,
            flip in any::<usize>(),
        ) {
            let secret = SessionSecret::from_bytes([3; 32]);
            let header = MessageHeader {
                session_id: &[1; 16],
                direction: Direction::HostToClient,
                seq,
                recipient: "bob",
            };
            let sealed = seal_message(&secret, &t, header, &p, Padding::Buckets).unwrap();
            prop_assert_eq!(&**open_message(&secret, &t, &sealed).unwrap(), p.as_slice());
            let mut bad = sealed.clone();
            let i = flip % bad.ciphertext.len();
            bad.ciphertext[i] ^= 1 << (flip % 8);
            prop_assert!(matches!(open_message(&secret, &t, &bad), Err(ProtocolError::Decrypt)));
        }
    }
}
