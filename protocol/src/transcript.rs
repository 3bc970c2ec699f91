//! The running SHA-256 transcript of a login, and the digest the host key signs.
//!
//! Every append is domain-separated and length-prefixed:
//! `u32_be(len(label)) ‖ label ‖ u64_be(len(bytes)) ‖ bytes`, after an opening append of the
//! domain [`TRANSCRIPT_DOMAIN`]. Messages enter as their exact wire bytes under their
//! [`Message::LABEL`], in the order they were sent. The TLS
//! channel-binding value enters right after the start response as `[0]` (absent) or
//! `[1] ‖ value` (present), so its absence is bound too.

use sha2::{Digest, Sha256};

use crate::wire::Message;

/// The domain that opens every transcript.
pub const TRANSCRIPT_DOMAIN: &[u8] = b"kasane/v2/transcript";
/// The domain of the digest the host key signs.
pub const START_SIGNATURE_DOMAIN: &[u8] = b"kasane/v2/start-signature";
/// The transcript label of the channel-binding append.
pub const CHANNEL_BINDING_LABEL: &[u8] = b"channel-binding";
/// Length of an RFC 9266 `tls-exporter` value (label `EXPORTER-Channel-Binding`).
pub const CHANNEL_BINDING_LEN: usize = 32;

/// A running transcript hash. Cloning forks it.
#[derive(Clone)]
pub struct Transcript {
    hasher: Sha256,
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Transcript")
            .field(&hex32(&self.hash()))
            .finish()
    }
}

fn hex32(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

impl Default for Transcript {
    fn default() -> Self {
        Self::new()
    }
}

fn framed(hasher: &mut Sha256, label: &[u8], bytes: &[u8]) {
    // Labels are short constants and messages are capped far below these widths.
    hasher.update((label.len() as u32).to_be_bytes());
    hasher.update(label);
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

impl Transcript {
    /// A transcript holding only the domain append.
    pub fn new() -> Self {
        let mut hasher = Sha256::new();
        framed(&mut hasher, b"domain", TRANSCRIPT_DOMAIN);
        Self { hasher }
    }

    /// Appends `bytes` under `label`.
    pub fn append(&mut self, label: &[u8], bytes: &[u8]) {
        framed(&mut self.hasher, label, bytes);
    }

    /// Appends the exact wire bytes of a message of kind `M`.
    pub fn append_message<M: Message>(&mut self, encoded: &[u8]) {
        self.append(M::LABEL, encoded);
    }

    /// Appends the channel-binding value, or the fact that there is none.
    pub fn append_channel_binding(&mut self, value: Option<&[u8; CHANNEL_BINDING_LEN]>) {
        match value {
            None => self.append(CHANNEL_BINDING_LABEL, &[0]),
            Some(v) => {
                let mut b = [0u8; 1 + CHANNEL_BINDING_LEN];
                b[0] = 1;
                b[1..].copy_from_slice(v);
                self.append(CHANNEL_BINDING_LABEL, &b);
            }
        }
    }

    /// The hash of everything appended so far (the transcript goes on).
    pub fn hash(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }
}

/// The digest the host key signs in the start response:
/// `SHA-256(framed("domain", START_SIGNATURE_DOMAIN) ‖ framed("start-request", request) ‖
/// login_id ‖ framed("ke2", ke2) ‖ server_nonce ‖ channel_binding flag)`.
pub fn start_signature_digest(
    start_request: &[u8],
    login_id: &[u8; crate::wire::ID_LEN],
    ke2: &[u8],
    server_nonce: &[u8; 32],
    channel_binding: bool,
) -> [u8; 32] {
    let mut h = Sha256::new();
    framed(&mut h, b"domain", START_SIGNATURE_DOMAIN);
    framed(&mut h, crate::wire::StartRequest::LABEL, start_request);
    h.update(login_id);
    framed(&mut h, b"ke2", ke2);
    h.update(server_nonce);
    h.update([u8::from(channel_binding)]);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_present_channel_binding_differ() {
        let mut a = Transcript::new();
        let mut b = Transcript::new();
        a.append_channel_binding(None);
        b.append_channel_binding(Some(&[0; 32]));
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn appends_are_length_prefixed() {
        let mut a = Transcript::new();
        a.append(b"x", b"ab");
        a.append(b"x", b"c");
        let mut b = Transcript::new();
        b.append(b"x", b"a");
        b.append(b"x", b"bc");
        assert_ne!(a.hash(), b.hash());
        let mut c = Transcript::new();
        c.append(b"xa", b"b");
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn hash_does_not_consume() {
        let mut a = Transcript::new();
        a.append(b"x", b"1");
        let h1 = a.hash();
        assert_eq!(h1, a.hash());
        a.append(b"x", b"2");
        assert_ne!(h1, a.hash());
    }
}
