//! Per-login session tickets, signed by a ticket key listed in `kasane/host-keys.json`.
//!
//! A ticket binds the host's choice of module to one login: the client's own nonce, the
//! timestamp and snapshot versions the host chose from, and the module's name, hash and length.
//! Freshness rests on the client's nonce; the short expiry is a second line. The envelope is
//! TUF's (`{"signed", "signatures"}`, signatures over canonical JSON), so the same key code
//! checks it.
//!
//! ```json
//! {"signed": {"_type": "kasane-ticket", "client_nonce": "…", "timestamp_version": 12,
//!             "snapshot_version": 9, "module": {"name": "sha256-chain", "sha256": "…",
//!             "length": 4211}, "issued_at": 1764000000, "expires": 1764000120},
//!  "signatures": [{"keyid": "…", "sig": "…"}]}
//! ```

use kasane_tuf::canonical::to_canonical;
use kasane_tuf::keys::Key;
use kasane_tuf::metadata::Signer;
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};
use crate::hexfmt::Sha256Hash;
use crate::layout::validate_module_name;

/// Cap on a session ticket.
pub const MAX_TICKET_LEN: u64 = 4 * 1024;
/// Longest lifetime (`expires - issued_at`) a client accepts, seconds.
pub const MAX_TICKET_LIFETIME: u64 = 300;
/// The ticket's `_type`.
const TICKET_TYPE: &str = "kasane-ticket";

/// The module a ticket names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketModule {
    /// The module's target path.
    pub name: String,
    /// Its SHA-256.
    pub sha256: Sha256Hash,
    /// Its length.
    pub length: u64,
}

/// A session ticket's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    /// Always `kasane-ticket`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The client's nonce for this login (32 bytes, lowercase hex).
    pub client_nonce: Sha256Hash,
    /// The timestamp version the host chose from.
    pub timestamp_version: u64,
    /// The snapshot version the host chose from.
    pub snapshot_version: u64,
    /// The chosen module.
    pub module: TicketModule,
    /// Issue time, unix seconds (the host's clock).
    pub issued_at: u64,
    /// Expiry, unix seconds.
    pub expires: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    signed: serde_json::Value,
    signatures: Vec<Sig>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sig {
    keyid: String,
    sig: String,
}

impl Ticket {
    /// A ticket for `client_nonce` naming `module`, valid `lifetime` seconds from `now`.
    pub fn new(
        client_nonce: [u8; 32],
        versions: (u64, u64),
        module: TicketModule,
        now: u64,
        lifetime: u64,
    ) -> Self {
        Self {
            type_: TICKET_TYPE.to_owned(),
            client_nonce: Sha256Hash(client_nonce),
            timestamp_version: versions.0,
            snapshot_version: versions.1,
            module,
            issued_at: now,
            expires: now.saturating_add(lifetime),
        }
    }

    /// Checks the fields (type, name, lifetime).
    pub fn validate(&self) -> Result<()> {
        if self.type_ != TICKET_TYPE {
            return Err(RegistryError::Invalid {
                field: "_type",
                reason: "not a kasane-ticket",
            });
        }
        validate_module_name(&self.module.name)?;
        if self.expires < self.issued_at || self.expires - self.issued_at > MAX_TICKET_LIFETIME {
            return Err(RegistryError::TicketExpired);
        }
        Ok(())
    }

    /// Signs the ticket with `signer` (a ticket key); returns the ticket file's bytes.
    pub fn sign(&self, signer: &dyn Signer) -> Result<Vec<u8>> {
        self.validate()?;
        let msg = to_canonical(self)?;
        let sig = signer.sign(&msg)?;
        let env = Envelope {
            signed: serde_json::to_value(self)?,
            signatures: vec![Sig {
                keyid: signer.key().key_id().as_str().to_owned(),
                sig: hex::encode(sig),
            }],
        };
        Ok(serde_json::to_vec(&env)?)
    }

    /// The timestamp and snapshot versions a ticket says it was issued under, **unverified**
    /// (`None` if it does not parse that far): what decides whether a ticket that no trusted
    /// key signed is worth updating the trust store for. Never a reason to accept anything.
    #[must_use]
    pub fn claimed_versions(bytes: &[u8]) -> Option<(u64, u64)> {
        let env: Envelope = crate::json::from_slice_strict(bytes, MAX_TICKET_LEN, "ticket").ok()?;
        let version = |field: &str| env.signed.get(field)?.as_u64();
        Some((version("timestamp_version")?, version("snapshot_version")?))
    }

    /// Verifies a ticket against the ticket keys of `kasane/host-keys.json` and parses it.
    /// One valid signature by one of `keys` is enough (a ticket authorises one login).
    pub fn verify(bytes: &[u8], keys: &[Key]) -> Result<Self> {
        let env: Envelope = crate::json::from_slice_strict(bytes, MAX_TICKET_LEN, "ticket")?;
        let msg = kasane_tuf::canonical::canonical_json(&env.signed)?;
        let signed_by_a_ticket_key = env.signatures.iter().any(|s| {
            keys.iter().any(|k| {
                k.key_id().as_str() == s.keyid
                    && hex::decode(&s.sig).is_ok_and(|sig| k.verify(&msg, &sig).is_ok())
            })
        });
        if !signed_by_a_ticket_key {
            return Err(RegistryError::TicketSignature);
        }
        let t: Self = serde_json::from_value(env.signed)?;
        t.validate()?;
        Ok(t)
    }
}
