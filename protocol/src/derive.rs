//! The transform inputs both sides build from protocol state, so host and client run the
//! transform on the same bytes.
//!
//! | field | auth | message |
//! |---|---|---|
//! | purpose | 1 (auth) | 2 (message) |
//! | challenges | prompts of the bundle, in order, as UTF-8 bytes | same |
//! | responses | the response verifiers, one per challenge, in order | empty |
//! | counter, timestamp | from the bundle | same |
//! | seq, direction | 0, client to host | the message's |
//! | server_nonce, client_nonce | from the start request and response | same |
//! | transcript_hash | after the challenge bundle | after the response request (final) |
//! | params | from the bundle | same |
//!
//! Message inputs carry no verifiers: the session secret already depends on them, and
//! neither side has to keep them for the life of the session. The secrecy of a message key
//! rests on the session secret; `T_msg` makes it per transmission, as the patent asks.

use zeroize::Zeroizing;

use crate::error::ProtocolError;
use crate::wire::ChallengeBundle;
use kasane_abi::{DeriveInput, DeriveInputBuf, Direction, Purpose};

/// Runs `f` on the borrowed view of `input`, the form `kasane_sandbox::Transform::derive`
/// takes. The intermediate encoding (it holds the verifiers) is zeroized afterwards.
pub fn with_derive_input<R>(
    input: &DeriveInputBuf,
    f: impl FnOnce(&DeriveInput<'_>) -> R,
) -> Result<R, ProtocolError> {
    let bytes = Zeroizing::new(input.encode()?);
    let view = DeriveInput::decode(&bytes).map_err(|_| ProtocolError::FieldRange {
        field: "derive input",
    })?;
    Ok(f(&view))
}

/// The public inputs of a login that every transform call shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeriveContext {
    /// The challenge prompts shown, in bundle order.
    pub challenges: Vec<Vec<u8>>,
    /// The access counter.
    pub counter: u64,
    /// The host's timestamp.
    pub timestamp: u64,
    /// The host's nonce.
    pub server_nonce: [u8; 32],
    /// The client's nonce.
    pub client_nonce: [u8; 32],
    /// The module's params.
    pub params: Vec<u8>,
}

impl DeriveContext {
    /// The context of a bundle and the two nonces.
    pub fn new(bundle: &ChallengeBundle, server_nonce: [u8; 32], client_nonce: [u8; 32]) -> Self {
        Self {
            challenges: bundle
                .challenges
                .iter()
                .map(|c| c.prompt.as_bytes().to_vec())
                .collect(),
            counter: bundle.counter,
            timestamp: bundle.timestamp,
            server_nonce,
            client_nonce,
            params: bundle.params.clone(),
        }
    }

    fn base(&self, purpose: Purpose, transcript_hash: [u8; 32]) -> DeriveInputBuf {
        DeriveInputBuf {
            purpose,
            challenges: self.challenges.clone(),
            responses: Vec::new(),
            counter: self.counter,
            timestamp: self.timestamp,
            seq: 0,
            direction: Direction::ClientToHost,
            server_nonce: self.server_nonce,
            client_nonce: self.client_nonce,
            transcript_hash,
            params: self.params.clone(),
        }
    }

    /// The auth input: one verifier per challenge, in order.
    pub fn auth_input(
        &self,
        th_bundle: &[u8; 32],
        verifiers: &[Zeroizing<Vec<u8>>],
    ) -> Result<DeriveInputBuf, ProtocolError> {
        if verifiers.len() != self.challenges.len() {
            return Err(ProtocolError::FieldRange { field: "verifiers" });
        }
        let mut input = self.base(Purpose::Auth, *th_bundle);
        input.responses = verifiers.to_vec();
        // Checks the abi's limits now rather than inside the sandbox.
        drop(Zeroizing::new(input.encode()?));
        Ok(input)
    }

    /// The input for message `seq` in `direction`.
    pub fn message_input(
        &self,
        th_final: &[u8; 32],
        direction: Direction,
        seq: u64,
    ) -> DeriveInputBuf {
        let mut input = self.base(Purpose::Message, *th_final);
        input.direction = direction;
        input.seq = seq;
        input
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Challenge, ModuleRef, Profile};

    fn bundle() -> ChallengeBundle {
        ChallengeBundle {
            bundle_id: [3; 16],
            challenges: vec![
                Challenge {
                    prompt: "A7".into(),
                    salt: vec![1; 16],
                },
                Challenge {
                    prompt: "C3".into(),
                    salt: vec![2; 16],
                },
            ],
            counter: 9,
            timestamp: 1_700_000_000,
            ticket: vec![],
            module: ModuleRef {
                name: "sha256-chain".into(),
                sha256: [0; 32],
                length: 1,
                profile: Profile::Pure,
                fuel: 1,
                memory: 1,
            },
            params: b"p".to_vec(),
            expires: 1_700_000_060,
        }
    }

    #[test]
    fn auth_input_carries_everything_in_order() {
        let ctx = DeriveContext::new(&bundle(), [1; 32], [2; 32]);
        let v = vec![
            Zeroizing::new(b"v1".to_vec()),
            Zeroizing::new(b"v2".to_vec()),
        ];
        let i = ctx.auth_input(&[5; 32], &v).unwrap();
        assert_eq!(i.purpose, Purpose::Auth);
        assert_eq!(i.challenges, vec![b"A7".to_vec(), b"C3".to_vec()]);
        assert_eq!(i.responses, v);
        assert_eq!((i.counter, i.timestamp, i.seq), (9, 1_700_000_000, 0));
        assert_eq!(i.transcript_hash, [5; 32]);
        assert_eq!(i.params, b"p");
        assert!(ctx.auth_input(&[5; 32], &v[..1]).is_err());
    }

    #[test]
    fn the_borrowed_view_matches_the_owned_input() {
        let ctx = DeriveContext::new(&bundle(), [1; 32], [2; 32]);
        let v = vec![
            Zeroizing::new(b"v1".to_vec()),
            Zeroizing::new(b"v2".to_vec()),
        ];
        let owned = ctx.auth_input(&[5; 32], &v).unwrap();
        let back = with_derive_input(&owned, |i| DeriveInputBuf::from(i)).unwrap();
        assert_eq!(back, owned);
    }

    #[test]
    fn message_input_has_seq_direction_and_no_verifiers() {
        let ctx = DeriveContext::new(&bundle(), [1; 32], [2; 32]);
        let i = ctx.message_input(&[6; 32], Direction::HostToClient, 7);
        assert_eq!(i.purpose, Purpose::Message);
        assert_eq!((i.seq, i.direction), (7, Direction::HostToClient));
        assert!(i.responses.is_empty());
        assert_eq!(i.transcript_hash, [6; 32]);
    }
}
