//! Per-login session tickets, signed by the `snapshot` (online) role.
//!
//! A ticket binds the host's choice of module to one login: the client's own nonce, the
//! snapshot the host used, and the module's name, hash and length. Freshness rests on the
//! client's nonce; the short expiry is a second line.

use serde::{Deserialize, Serialize};

use super::{MAX_TICKET_LEN, validate_name};
use crate::envelope::{Envelope, RoleKeys};
use crate::error::{RegistryError, Result};
use crate::hexfmt::Sha256Hash;
use crate::keys::SecretKey;

/// Longest lifetime (`expires - issued_at`) a client accepts, seconds.
pub const MAX_TICKET_LIFETIME: u64 = 300;

/// The module a ticket names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketModule {
    /// The module's name.
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
    /// The client's nonce for this login (32 bytes, lowercase hex).
    pub client_nonce: Sha256Hash,
    /// The snapshot version the host chose from.
    pub snapshot_version: u64,
    /// SHA-256 of that snapshot file.
    pub snapshot_sha256: Sha256Hash,
    /// The chosen module.
    pub module: TicketModule,
    /// Issue time, unix seconds (the host's clock).
    pub issued_at: u64,
    /// Expiry, unix seconds.
    pub expires: u64,
}

impl Ticket {
    /// The envelope payload type.
    pub const PAYLOAD_TYPE: &'static str = "application/vnd.kasane.ticket.v1+json";

    /// Checks the fields (name, lifetime).
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.module.name)?;
        if self.expires < self.issued_at || self.expires - self.issued_at > MAX_TICKET_LIFETIME {
            return Err(RegistryError::TicketExpired);
        }
        Ok(())
    }

    /// Signs the ticket with the online key(s); returns the ticket file's bytes.
    pub fn sign(&self, keys: &[&SecretKey]) -> Vec<u8> {
        let payload = serde_json::to_vec(self).unwrap_or_default();
        Envelope::sign(Self::PAYLOAD_TYPE, payload, keys).to_bytes()
    }

    /// Verifies a ticket against the snapshot role's keys and parses it.
    pub fn verify(bytes: &[u8], keys: &RoleKeys) -> Result<Self> {
        let env = Envelope::from_bytes(bytes, MAX_TICKET_LEN, "ticket")?;
        let payload = env.verify(Self::PAYLOAD_TYPE, keys)?;
        let t: Self = crate::json::from_slice_strict(payload, MAX_TICKET_LEN, "ticket")?;
        t.validate()?;
        Ok(t)
    }
}
