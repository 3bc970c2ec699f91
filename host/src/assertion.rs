//! `X-Kasane-Assertion`: a short-lived JWT (RFC 7519, JWS compact form, `alg` EdDSA over
//! Ed25519, RFC 8037) that tells the service behind the host who is calling, and the key
//! set that verifies it (`GET /.well-known/jwks.json`, RFC 7517, `kid` the RFC 7638
//! thumbprint).
//!
//! The compact form is assembled here rather than with `jsonwebtoken`: that crate wants the
//! private key as PKCS#8 DER and signs with ring itself, where the host keeps its key as an
//! Ed25519 seed in `keys/gateway.key` (0600) and signs with ed25519-dalek like its other
//! keys. It is three base64url parts and one signature; the tests verify the result with
//! `jsonwebtoken` from the JWKS, an implementation that shares no code with this one.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::HostError;

/// The assertion key's file in the keys directory (a 32-byte Ed25519 seed).
pub const GATEWAY_KEY_FILE: &str = "gateway.key";

/// The `iss` of every assertion.
pub const ISSUER: &str = "kasane-host";

/// The key that signs assertions, and its key id.
pub struct AssertionKey {
    key: SigningKey,
    kid: String,
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// What an assertion says (the registered claims and Kasane's own).
#[derive(Debug, Serialize)]
pub struct Claims<'a> {
    /// [`ISSUER`].
    pub iss: &'static str,
    /// The user.
    pub sub: &'a str,
    /// The service (`[gateway] audience`).
    pub aud: &'a str,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// A random id (16 bytes, hex).
    pub jti: String,
    /// The session id (hex).
    pub sid: String,
    /// The session's transform: its registry name.
    pub kasane_transform: &'a str,
    /// The session's transform: SHA-256 of its module (hex).
    pub kasane_transform_sha256: String,
    /// SHA-256 (hex) of `method ‖ "\n" ‖ target ‖ "\n" ‖ body` of the request it came with
    /// (absent for forward-auth, which sees no request body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kasane_request_sha256: Option<String>,
}

/// The request hash of [`Claims::kasane_request_sha256`].
#[must_use]
pub fn request_hash(method: &str, target: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(target.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

impl AssertionKey {
    /// The key from a 32-byte seed.
    #[must_use]
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let kid = thumbprint(&key);
        Self { key, kid }
    }

    /// A fresh random key (a host without a data directory).
    #[must_use]
    pub fn random() -> Self {
        let seed = crate::keyfile::random_bytes(32);
        let mut s = zeroize::Zeroizing::new([0u8; 32]);
        s.copy_from_slice(&seed);
        Self::from_seed(&s)
    }

    /// `keys_dir/gateway.key`, made (0600) on first use. Replicas that share a database
    /// should share this file, as they share `queue.key`.
    pub fn load(keys_dir: &Path) -> Result<Self, HostError> {
        let seed = crate::keyfile::load_or_create(keys_dir, GATEWAY_KEY_FILE, 32, || {
            crate::keyfile::random_bytes(32)
        })?;
        let mut s = zeroize::Zeroizing::new([0u8; 32]);
        s.copy_from_slice(&seed);
        Ok(Self::from_seed(&s))
    }

    /// The key id (RFC 7638 thumbprint of the public key).
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signed compact JWT of `claims`.
    pub fn sign(&self, claims: &Claims<'_>) -> Result<String, serde_json::Error> {
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid});
        let mut jwt = B64.encode(serde_json::to_vec(&header)?);
        jwt.push('.');
        jwt.push_str(&B64.encode(serde_json::to_vec(claims)?));
        let sig = self.key.sign(jwt.as_bytes());
        jwt.push('.');
        jwt.push_str(&B64.encode(sig.to_bytes()));
        Ok(jwt)
    }

    /// `GET /.well-known/jwks.json`: the public key as a JWK set.
    #[must_use]
    pub fn jwks(&self) -> String {
        let x = B64.encode(self.key.verifying_key().as_bytes());
        serde_json::json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "x": x,
            "kid": self.kid, "alg": "EdDSA", "use": "sig"
        }]})
        .to_string()
    }
}

/// RFC 7638: base64url(SHA-256 of the required members in lexicographic order).
fn thumbprint(key: &SigningKey) -> String {
    let x = B64.encode(key.verifying_key().as_bytes());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier as _;

    #[test]
    fn a_token_verifies_under_the_published_key_and_names_it() {
        let k = AssertionKey::from_seed(&[7; 32]);
        let claims = Claims {
            iss: ISSUER,
            sub: "alice",
            aud: "http://127.0.0.1:1",
            iat: 10,
            exp: 70,
            jti: "00".into(),
            sid: "ab".into(),
            kasane_transform: "t",
            kasane_transform_sha256: "cd".into(),
            kasane_request_sha256: None,
        };
        let jwt = k.sign(&claims).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["kid"], k.kid());
        let body: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(body["sub"], "alice");
        assert!(body.get("kasane_request_sha256").is_none());
        let jwks: serde_json::Value = serde_json::from_str(&k.jwks()).unwrap();
        let x = B64.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&B64.decode(parts[2]).unwrap()).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        assert!(vk.verify(signed.as_bytes(), &sig).is_ok());
        assert!(vk.verify(b"other", &sig).is_err());
    }
}
