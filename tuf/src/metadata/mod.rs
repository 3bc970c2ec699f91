//! Signed metadata: the envelope ([`Metadata`]), signatures, the four role payloads, and the
//! publisher side (signing, writing).

mod roles;
mod strict;
mod targets;

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::canonical::{canonical_json, to_canonical};
use crate::error::{Result, SignError, TufError};
use crate::keys::{Key, KeyId};

pub use roles::{MetaFile, Role, Root, Snapshot, Timestamp};
pub use strict::first_duplicate_key;
pub use targets::{DelegatedRole, Delegations, TargetFile, Targets, path_matches};

/// The names of the four top-level roles.
pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

/// The TUF specification version this crate writes into new metadata.
pub const SPEC_VERSION: &str = "1.0.31";

/// One signature in a metadata envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// The id of the signing key, as the delegator lists it.
    pub keyid: KeyId,
    /// The signature bytes, hex.
    pub sig: String,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

/// What every role payload (`signed` object) has; implemented by [`Root`], [`Timestamp`],
/// [`Snapshot`] and [`Targets`].
pub trait SignedRole: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The `_type` value of this role.
    const TYPE: &'static str;
    /// The `_type` field as received.
    fn type_field(&self) -> &str;
    /// The `spec_version` field.
    fn spec_version(&self) -> &str;
    /// The `version` field.
    fn version(&self) -> u64;
    /// The `expires` field.
    fn expires(&self) -> OffsetDateTime;
    /// Checks the role-specific rules serde cannot express (non-empty hashes, unique key ids, ...).
    fn validate(&self) -> Result<()>;
    /// Whether the metadata has expired at `now` (unix seconds): `now >= expires`.
    fn is_expired(&self, now: i64) -> bool {
        now >= self.expires().unix_timestamp()
    }
}

/// Signs bytes with one key; kept tiny so HSMs, remote signers and tests can implement it.
pub trait Signer {
    /// The public key whose id goes into the signature.
    fn key(&self) -> Key;
    /// Signs `msg` (the canonical JSON of a `signed` object), in the key scheme's format.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// An in-memory ed25519 signer.
pub struct Ed25519Signer {
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Signer")
            .field("public", &hex::encode(self.key.verifying_key().as_bytes()))
            .finish_non_exhaustive()
    }
}

impl Ed25519Signer {
    /// A signer from a 32-byte ed25519 secret key.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(secret),
        }
    }
}

impl Signer for Ed25519Signer {
    fn key(&self) -> Key {
        Key::ed25519(self.key.verifying_key().as_bytes())
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        use ed25519_dalek::Signer as _;
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// A metadata file: the role's `signed` payload and its signatures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metadata<T> {
    /// The payload.
    pub signed: T,
    /// Signatures over the canonical JSON of `signed`; one per key id.
    pub signatures: Vec<Signature>,
    /// Envelope fields this crate does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct RawMetadata {
    signed: Value,
    signatures: Vec<Signature>,
    #[serde(flatten)]
    unrecognized: BTreeMap<String, Value>,
}

impl<T: SignedRole> Metadata<T> {
    /// Unsigned metadata for `signed`.
    pub fn new(signed: T) -> Self {
        Self {
            signed,
            signatures: Vec::new(),
            unrecognized: BTreeMap::new(),
        }
    }

    /// The bytes signatures are made over: the canonical JSON of `signed`.
    pub fn signed_bytes(&self) -> Result<Vec<u8>> {
        to_canonical(&self.signed)
    }

    /// Adds (or replaces) the signature of `keyid`.
    pub fn add_signature(&mut self, keyid: KeyId, sig: &[u8]) {
        self.signatures.retain(|s| s.keyid != keyid);
        self.signatures.push(Signature {
            keyid,
            sig: hex::encode(sig),
            unrecognized: BTreeMap::new(),
        });
    }

    /// Signs the canonical JSON of `signed` with `signer`, replacing that key's signature.
    pub fn sign(&mut self, signer: &dyn Signer) -> Result<()> {
        let msg = self.signed_bytes()?;
        let sig = signer.sign(&msg)?;
        self.add_signature(signer.key().key_id(), &sig);
        Ok(())
    }

    /// The file to publish (indented JSON, keys sorted).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let value = serde_json::to_value(self).map_err(|e| TufError::malformed(T::TYPE, e))?;
        serde_json::to_vec_pretty(&value).map_err(|e| TufError::malformed(T::TYPE, e))
    }

    /// Parses and checks the form of a metadata file (no signature is verified here).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(Self::from_bytes_with_signed(bytes)?.0)
    }

    /// Like [`Metadata::from_bytes`], also returning the canonical JSON of the `signed`
    /// object exactly as received: the bytes its signatures must verify over. An object
    /// that repeats a key anywhere is refused ([`TufError::DuplicateKey`]).
    /// Remembered per bytes ([`crate::memo`]).
    pub fn from_bytes_with_signed(bytes: &[u8]) -> Result<(Self, Vec<u8>)> {
        crate::memo::parsed(bytes, Self::parse_with_signed)
    }

    fn parse_with_signed(bytes: &[u8]) -> Result<(Self, Vec<u8>)> {
        strict::check_no_duplicate_keys(T::TYPE, bytes)?;
        let raw: RawMetadata =
            serde_json::from_slice(bytes).map_err(|e| TufError::malformed(T::TYPE, e))?;
        let mut seen = BTreeSet::new();
        for s in &raw.signatures {
            if !seen.insert(&s.keyid) {
                return Err(TufError::malformed(
                    T::TYPE,
                    format!("more than one signature by key {}", s.keyid),
                ));
            }
        }
        let got = raw
            .signed
            .get("_type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if got != T::TYPE {
            return Err(TufError::WrongType {
                role: T::TYPE.to_owned(),
                expected: T::TYPE.to_owned(),
                got: got.to_owned(),
            });
        }
        let signed_bytes = canonical_json(&raw.signed)?;
        let signed: T =
            serde_json::from_value(raw.signed).map_err(|e| TufError::malformed(T::TYPE, e))?;
        check_common(&signed)?;
        signed.validate()?;
        let metadata = Self {
            signed,
            signatures: raw.signatures,
            unrecognized: raw.unrecognized,
        };
        Ok((metadata, signed_bytes))
    }
}

fn check_common<T: SignedRole>(signed: &T) -> Result<()> {
    let spec = signed.spec_version();
    let parts: Vec<&str> = spec.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !(2..=3).contains(&parts.len()) || !numeric || parts[0] != "1" {
        return Err(TufError::UnsupportedSpecVersion {
            role: T::TYPE.to_owned(),
            spec_version: spec.to_owned(),
        });
    }
    if signed.version() == 0 {
        return Err(TufError::malformed(T::TYPE, "version must be > 0"));
    }
    Ok(())
}

/// Fails if `keyids` lists one id twice.
pub(crate) fn check_unique_keyids(what: &str, keyids: &[KeyId]) -> Result<()> {
    let set: BTreeSet<&KeyId> = keyids.iter().collect();
    if set.len() != keyids.len() {
        return Err(TufError::malformed(what, "key ids are not unique"));
    }
    Ok(())
}

/// `expires` in the one form TUF uses: `2030-01-01T00:00:00Z`.
pub mod expires_format {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::FormatItem;
    use time::macros::format_description;

    const FORMAT: &[FormatItem<'static>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

    /// Parses `2030-01-01T00:00:00Z` (UTC).
    pub fn parse(s: &str) -> Option<OffsetDateTime> {
        time::PrimitiveDateTime::parse(s, FORMAT)
            .ok()
            .map(|t| t.assume_utc())
    }

    /// Formats as `2030-01-01T00:00:00Z` (the time is taken as UTC).
    pub fn format(t: OffsetDateTime) -> String {
        let t = t.to_offset(time::UtcOffset::UTC);
        t.format(FORMAT).unwrap_or_default()
    }

    /// serde: writes [`format()`].
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    /// serde: reads [`parse()`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| serde::de::Error::custom(format!("bad expires {s:?}")))
    }
}
