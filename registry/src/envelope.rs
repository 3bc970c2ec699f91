//! DSSE-style envelopes: a payload type, the payload bytes and signatures over
//! `PAE(type, payload)`; [`RoleKeys`] and the threshold rule (distinct public keys only).
//!
//! Wire form (JSON): `{"payloadType": "...", "payload": "<hex>", "signatures": [{"keyid":
//! "<hex>", "sig": "<hex>"}]}`. DSSE proper uses base64; Kasane uses lowercase hex like every
//! other byte field here (one spelling per value). The payload is parsed only after
//! [`Envelope::verify`] has counted enough signatures.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result, RoleName};
use crate::hexfmt::{hex_bytes, hex_sig};
use crate::keys::{KeyId, PublicKey, SecretKey};

/// Most signatures one envelope may carry (bounds the work a hostile file can cause).
pub const MAX_SIGNATURES: usize = 32;

/// The DSSE pre-authentication encoding:
/// `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths in ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// One signature of an envelope. `keyid` is a hint: the key is looked up by it, and the
/// signature counts for that key only if it verifies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// Which key signed.
    pub keyid: KeyId,
    /// The Ed25519 signature over the PAE.
    #[serde(with = "hex_sig")]
    pub sig: [u8; 64],
}

/// A signed envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The payload type, e.g. `application/vnd.kasane.targets.v1+json`.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The payload bytes (JSON for every Kasane type).
    #[serde(with = "hex_bytes")]
    pub payload: Vec<u8>,
    /// The signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

impl Envelope {
    /// Signs `payload` with every key of `keys`.
    pub fn sign(payload_type: &str, payload: Vec<u8>, keys: &[&SecretKey]) -> Self {
        let mut env = Self {
            payload_type: payload_type.to_owned(),
            payload,
            signatures: Vec::new(),
        };
        for k in keys {
            env.add_signature(k);
        }
        env
    }

    /// Adds one more signature (e.g. the second key holder of a threshold-2 role).
    pub fn add_signature(&mut self, key: &SecretKey) {
        let sig = key.sign(&pae(&self.payload_type, &self.payload));
        self.signatures.push(EnvelopeSignature {
            keyid: key.key_id(),
            sig,
        });
    }

    /// The envelope's JSON bytes (what is stored, fetched and hashed by the snapshot).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and vectors cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses an envelope file, refusing one over `max` bytes, duplicate keys and more than
    /// [`MAX_SIGNATURES`] signatures. Checks nothing about the signatures themselves.
    pub fn from_bytes(bytes: &[u8], max: u64, what: &str) -> Result<Self> {
        // Hex doubles the payload: the cap applies to the file as stored.
        let env: Self = crate::json::from_slice_strict(bytes, max, what)?;
        if env.signatures.len() > MAX_SIGNATURES {
            return Err(RegistryError::Invalid {
                field: "signatures",
                reason: "too many signatures",
            });
        }
        Ok(env)
    }

    /// Checks the payload type and that at least `keys.threshold` distinct public keys of
    /// `keys` signed; returns the payload, which may now be parsed.
    pub fn verify(&self, expected_type: &'static str, keys: &RoleKeys) -> Result<&[u8]> {
        if self.payload_type != expected_type {
            return Err(RegistryError::WrongPayloadType {
                expected: expected_type,
                got: self.payload_type.chars().take(200).collect(),
            });
        }
        let have = keys.count_valid(&pae(&self.payload_type, &self.payload), &self.signatures);
        if have < keys.threshold {
            return Err(RegistryError::Threshold {
                role: keys.role.clone(),
                have,
                need: keys.threshold,
            });
        }
        Ok(&self.payload)
    }
}

/// The keys and threshold of one role (or one delegation), checked: threshold at least 1 and
/// at most the number of keys, no public key twice.
#[derive(Clone, Debug)]
pub struct RoleKeys {
    role: RoleName,
    keys: Vec<PublicKey>,
    threshold: u32,
}

impl RoleKeys {
    /// Checks and builds a role's key set.
    pub fn new(role: RoleName, keys: Vec<PublicKey>, threshold: u32) -> Result<Self> {
        if threshold == 0 {
            return Err(RegistryError::ZeroThreshold { role });
        }
        let mut seen = HashSet::new();
        for k in &keys {
            if !seen.insert(k.to_bytes()) {
                return Err(RegistryError::DuplicatePublicKey { role });
            }
        }
        if threshold as usize > keys.len() {
            return Err(RegistryError::UnreachableThreshold {
                role,
                threshold,
                keys: keys.len(),
            });
        }
        Ok(Self {
            role,
            keys,
            threshold,
        })
    }

    /// The role these keys belong to.
    pub fn role(&self) -> &RoleName {
        &self.role
    }

    /// The keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The threshold.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// The same role without the keys whose id is in `revoked` (the threshold is unchanged,
    /// so revoking keys can only make a role harder to satisfy).
    pub fn without(&self, revoked: &HashSet<KeyId>) -> Self {
        Self {
            role: self.role.clone(),
            keys: self
                .keys
                .iter()
                .filter(|k| !revoked.contains(&k.key_id()))
                .copied()
                .collect(),
            threshold: self.threshold,
        }
    }

    /// How many distinct keys of this set produced a valid signature of `msg`. A key counts
    /// once however many signatures name it, and key ids are only used to find the key.
    fn count_valid(&self, msg: &[u8], sigs: &[EnvelopeSignature]) -> u32 {
        let mut signed: HashSet<[u8; 32]> = HashSet::new();
        for s in sigs {
            for k in self.keys.iter().filter(|k| k.key_id() == s.keyid) {
                if !signed.contains(&k.to_bytes()) && k.verify(msg, &s.sig) {
                    signed.insert(k.to_bytes());
                }
            }
        }
        u32::try_from(signed.len()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn threshold_counts_distinct_keys() {
        let a = SecretKey::from_seed(&[1; 32]);
        let b = SecretKey::from_seed(&[2; 32]);
        let keys = RoleKeys::new(RoleName::Targets, vec![a.public(), b.public()], 2).unwrap();
        let mut env = Envelope::sign("t", b"{}".to_vec(), &[&a, &a]);
        assert!(matches!(
            env.verify("t", &keys),
            Err(RegistryError::Threshold {
                have: 1,
                need: 2,
                ..
            })
        ));
        env.add_signature(&b);
        assert!(env.verify("t", &keys).is_ok());
        // The type is signed too.
        env.payload_type = "u".into();
        assert!(env.verify("t", &keys).is_err());
        let bytes = env.to_bytes();
        assert_eq!(Envelope::from_bytes(&bytes, 1 << 16, "e").unwrap(), env);
    }
}
