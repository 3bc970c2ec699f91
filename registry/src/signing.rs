//! Every registry signature goes through a [`kasane_signer::Signer`] (a key file, a PKCS#11
//! token); [`TufSigner`] presents one to `kasane-tuf`, which signs metadata and tickets.

use kasane_tuf::keys::{Key, KeyVal};
use kasane_tuf::{SignError, metadata};

pub use kasane_signer::{KeyFileSigner, KeyKind, PublicKey, Signer};

use crate::error::{RegistryError, Result};

/// A [`kasane_signer::Signer`] as `kasane-tuf` signs with it.
pub struct TufSigner<'a>(pub &'a dyn Signer);

impl std::fmt::Debug for TufSigner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TufSigner")
            .field(&metadata::Signer::key(self).key_id())
            .finish()
    }
}

/// The TUF key object of a public key (`{keytype, scheme, keyval: {public}}`).
pub fn tuf_key(public: &PublicKey) -> Key {
    Key {
        keytype: public.tuf_keytype().to_owned(),
        scheme: public.tuf_scheme().to_owned(),
        keyval: KeyVal {
            public: public.tuf_public(),
            unrecognized: Default::default(),
        },
        unrecognized: Default::default(),
    }
}

impl TufSigner<'_> {
    /// The raw Ed25519 public key, for documents that need one (the ticket key in
    /// `kasane/host-keys.json`).
    pub fn ed25519_public(&self) -> Result<[u8; 32]> {
        match self.0.public_key() {
            PublicKey::Ed25519(k) => Ok(*k),
            _ => Err(RegistryError::Invalid {
                field: "key",
                reason: "an Ed25519 key is needed here",
            }),
        }
    }
}

impl metadata::Signer for TufSigner<'_> {
    fn key(&self) -> Key {
        tuf_key(self.0.public_key())
    }

    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, SignError> {
        self.0.sign(msg).map_err(|e| SignError {
            reason: e.to_string(),
        })
    }
}
