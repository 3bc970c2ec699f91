//! `kasane-registry run`: one module, one input, the output and the fuel it used.
//!
//! The input is one JSON object (see [`parse_input`]); every field may be left out and is then
//! zero or empty. Unknown fields are refused, so a typo never silently becomes a zero.

use kasane_abi::{DeriveInputBuf, Direction, Purpose};
use kasane_sandbox::{Derived, Limits, Profile, Sandbox, SandboxConfig, SandboxError};
use serde::Deserialize;
use zeroize::Zeroizing;

/// Why an input file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// Not JSON of the expected shape (unknown field, wrong type, duplicate key, …).
    #[error("input is not a valid derive input")]
    Json(#[from] serde_json::Error),
    /// A field that must be hex is not.
    #[error("field `{field}` is not valid hex")]
    Hex {
        /// The field name.
        field: &'static str,
        /// The decoding error.
        source: hex::FromHexError,
    },
    /// A 32-byte field has another length.
    #[error("field `{field}` must be 32 bytes (64 hex digits), got {len} bytes")]
    Length {
        /// The field name.
        field: &'static str,
        /// The decoded length.
        len: usize,
    },
    /// `purpose` is neither `auth` nor `message`.
    #[error("field `purpose` must be \"auth\" or \"message\", got {0:?}")]
    Purpose(String),
    /// `direction` is neither 0 nor 1.
    #[error("field `direction` must be 0 (client to host) or 1 (host to client), got {0}")]
    Direction(u64),
    /// The input breaks an ABI limit (too many items, an item too long, …).
    #[error("input exceeds an ABI limit")]
    Limit(#[from] kasane_abi::EncodeError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    challenges: Vec<String>,
    #[serde(default)]
    responses: Vec<String>,
    #[serde(default)]
    counter: u64,
    #[serde(default)]
    timestamp: u64,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    direction: u64,
    #[serde(default)]
    server_nonce: Option<String>,
    #[serde(default)]
    client_nonce: Option<String>,
    #[serde(default)]
    transcript_hash: Option<String>,
    #[serde(default)]
    params: Option<String>,
}

fn unhex(field: &'static str, s: &str) -> Result<Vec<u8>, InputError> {
    hex::decode(s).map_err(|source| InputError::Hex { field, source })
}

fn unhex32(field: &'static str, s: Option<&str>) -> Result<[u8; 32], InputError> {
    let Some(s) = s else { return Ok([0; 32]) };
    let v = unhex(field, s)?;
    v.as_slice().try_into().map_err(|_| InputError::Length {
        field,
        len: v.len(),
    })
}

/// Parses the JSON input format of `kasane-registry run`:
///
/// ```json
/// { "purpose": "auth", "challenges": ["4137"], "responses": ["00ff"],
///   "counter": 1, "timestamp": 1700000000, "seq": 0, "direction": 0,
///   "server_nonce": "<64 hex>", "client_nonce": "<64 hex>", "transcript_hash": "<64 hex>",
///   "params": "" }
/// ```
///
/// `purpose` is `"auth"` or `"message"`; challenges, responses, nonces, the transcript hash and
/// params are hex strings; missing fields are zero or empty. The result is checked against the
/// ABI limits, so anything accepted here can be encoded.
pub fn parse_input(json: &str) -> Result<DeriveInputBuf, InputError> {
    let raw: RawInput = serde_json::from_str(json)?;
    let purpose = match raw.purpose.as_deref() {
        None | Some("auth") => Purpose::Auth,
        Some("message") => Purpose::Message,
        Some(other) => return Err(InputError::Purpose(other.to_owned())),
    };
    let direction = u8::try_from(raw.direction)
        .ok()
        .and_then(Direction::from_u8)
        .ok_or(InputError::Direction(raw.direction))?;
    let input = DeriveInputBuf {
        purpose,
        challenges: raw
            .challenges
            .iter()
            .map(|c| unhex("challenges", c))
            .collect::<Result<_, _>>()?,
        responses: raw
            .responses
            .iter()
            .map(|r| unhex("responses", r).map(Zeroizing::new))
            .collect::<Result<_, _>>()?,
        counter: raw.counter,
        timestamp: raw.timestamp,
        seq: raw.seq,
        direction,
        server_nonce: unhex32("server_nonce", raw.server_nonce.as_deref())?,
        client_nonce: unhex32("client_nonce", raw.client_nonce.as_deref())?,
        transcript_hash: unhex32("transcript_hash", raw.transcript_hash.as_deref())?,
        params: raw
            .params
            .as_deref()
            .map(|p| unhex("params", p))
            .transpose()?
            .unwrap_or_default(),
    };
    input.encode()?;
    Ok(input)
}

/// Which profile to run a module under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileChoice {
    /// `pure`, unless the module imports from `wasi_snapshot_preview1`; then `wasi`.
    Auto,
    /// Exactly this profile.
    Fixed(Profile),
}

impl ProfileChoice {
    /// The names a command line takes: `auto`, then each profile's.
    pub const NAMES: [&'static str; 3] = ["auto", Profile::Pure.as_str(), Profile::Wasi.as_str()];
}

impl std::str::FromStr for ProfileChoice {
    type Err = UnknownProfile;

    fn from_str(name: &str) -> Result<Self, UnknownProfile> {
        match name {
            "auto" => Ok(Self::Auto),
            _ => Profile::from_name(name)
                .map(Self::Fixed)
                .ok_or_else(|| UnknownProfile(name.to_owned())),
        }
    }
}

/// A profile name that is neither `auto` nor a profile's.
#[derive(Debug, thiserror::Error)]
#[error("unknown profile {0:?} (auto, pure or wasi)")]
pub struct UnknownProfile(pub String);

/// Loads `wasm` into a fresh sandbox with the default limits (fuel replaced by `fuel` when
/// given) and runs it once on `input`.
pub fn run_module(
    wasm: &[u8],
    input: &DeriveInputBuf,
    fuel: Option<u64>,
    profile: ProfileChoice,
) -> Result<(Profile, Derived), SandboxError> {
    let mut limits = Limits::default();
    if let Some(fuel) = fuel {
        limits.fuel = fuel;
    }
    let mut config = SandboxConfig::default();
    config.max_limits.fuel = config.max_limits.fuel.max(limits.fuel);
    let sandbox = Sandbox::new(config)?;
    let (profile, transform) = match profile {
        ProfileChoice::Fixed(p) => (p, sandbox.load(wasm, p, limits)?),
        ProfileChoice::Auto => match sandbox.load(wasm, Profile::Pure, limits) {
            Err(SandboxError::ForbiddenImport { module, .. })
                if module == "wasi_snapshot_preview1" =>
            {
                (Profile::Wasi, sandbox.load(wasm, Profile::Wasi, limits)?)
            }
            other => (Profile::Pure, other?),
        },
    };
    let bytes = input.encode().map_err(SandboxError::Input)?;
    let decoded = kasane_abi::DeriveInput::decode(&bytes)
        .map_err(|e| SandboxError::BadAbi(format!("input re-decode failed: {e}")))?;
    Ok((profile, transform.derive(&decoded)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_are_zero_or_empty() {
        let i = parse_input("{}").unwrap();
        assert!(i == DeriveInputBuf::default());
    }

    #[test]
    fn every_field_is_read() {
        let json = format!(
            r#"{{"purpose":"message","challenges":["41","4243"],"responses":["ff"],
               "counter":18446744073709551615,"timestamp":5,"seq":6,"direction":1,
               "server_nonce":"{s}","client_nonce":"{c}","transcript_hash":"{t}","params":"7071"}}"#,
            s = "11".repeat(32),
            c = "22".repeat(32),
            t = "33".repeat(32)
        );
        let i = parse_input(&json).unwrap();
        assert_eq!(i.purpose, Purpose::Message);
        assert_eq!(i.challenges, vec![b"A".to_vec(), b"BC".to_vec()]);
        assert_eq!(i.responses[0].as_slice(), &[0xff]);
        assert_eq!(i.counter, u64::MAX);
        assert_eq!((i.timestamp, i.seq), (5, 6));
        assert_eq!(i.direction, Direction::HostToClient);
        assert_eq!(i.server_nonce, [0x11; 32]);
        assert_eq!(i.client_nonce, [0x22; 32]);
        assert_eq!(i.transcript_hash, [0x33; 32]);
        assert_eq!(i.params, b"pq");
    }

    #[test]
    fn bad_inputs_name_their_cause() {
        let cases = [
            (r#"{"purpose":"login"}"#, "purpose"),
            (r#"{"direction":2}"#, "direction"),
            (r#"{"challenges":["zz"]}"#, "challenges"),
            (r#"{"server_nonce":"00"}"#, "server_nonce"),
            (r#"{"countr":1}"#, "unknown field"),
            (r#"{"counter":1,"counter":2}"#, "duplicate field"),
            (r#"{"counter":-1}"#, "invalid value"),
            ("[", "EOF"),
        ];
        for (json, needle) in cases {
            let err = parse_input(json).unwrap_err();
            let err = kasane_os::report::Chain(&err).to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
        let many = format!(r#"{{"responses":[{}]}}"#, vec!["\"00\""; 17].join(","));
        assert!(matches!(parse_input(&many), Err(InputError::Limit(_))));
    }
}
