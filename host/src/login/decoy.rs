//! What a decoy bundle is made of: for an unknown user, salts and a counter that stay the
//! same from one attempt to the next (keyed by the host's decoy key), so a decoy cannot be
//! told from a real bundle by asking twice.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::LoginError;
use crate::HostError;
use crate::host::Host;

impl Host {
    fn decoy_mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&*self.decoy_key)
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()))
    }

    /// The stable made-up salt of `prompt` for an unknown `user`.
    pub(super) fn decoy_salt(&self, user: &str, prompt: &str) -> Vec<u8> {
        let mut mac = self.decoy_mac();
        mac.update(b"salt\0");
        mac.update(user.as_bytes());
        mac.update(b"\0");
        mac.update(prompt.as_bytes());
        mac.finalize().into_bytes()[..crate::crypto::SALT_LEN].to_vec()
    }

    /// The next made-up counter of an unknown `user`: a stable start below 500, then
    /// increasing like a real one (in this process).
    pub(super) fn decoy_counter(&self, user: &str) -> Result<u64, LoginError> {
        let mut map = self
            .decoy_counters
            .lock()
            .map_err(|_| HostError::Poisoned {
                what: "decoy counters",
            })?;
        if map.len() > self.config.login.max_pending {
            map.clear();
        }
        let start = || {
            let mut mac = self.decoy_mac();
            mac.update(b"counter\0");
            mac.update(user.as_bytes());
            let b = mac.finalize().into_bytes();
            u64::from(u16::from_le_bytes([b[0], b[1]]) % 500)
        };
        let c = map.entry(user.to_owned()).or_insert_with(start);
        *c += 1;
        Ok(*c)
    }
}
