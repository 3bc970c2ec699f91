//! `kasane-registry keygen`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use kasane_registry::cli::{self, KeygenReport};
use kasane_signer::KeyKind;
use zeroize::Zeroizing;

use super::AccessArgs;
use crate::failure::{Failure, usage};

#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// The key file to write (with --pkcs11: the public key file to write).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// An ECDSA P-256 key instead of Ed25519.
    #[arg(long)]
    ecdsa: bool,
    /// Generate the key pair on a PKCS#11 token, at this URI (pkcs11:token=...;object=...).
    #[arg(long, value_name = "URI", conflicts_with = "passphrase_env")]
    pkcs11: Option<String>,
    #[command(flatten)]
    access: AccessArgs,
}

impl KeygenArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let kind = if self.ecdsa {
            KeyKind::EcdsaP256
        } else {
            KeyKind::Ed25519
        };
        let r = match &self.pkcs11 {
            Some(uri) => self.on_token(uri, kind)?,
            None => {
                let pass = match &self.access.passphrase_env {
                    Some(var) => Some(Zeroizing::new(
                        std::env::var(var)
                            .with_context(|| {
                                format!("--passphrase-env {var}: the variable is not set")
                            })
                            .map_err(usage)?,
                    )),
                    None => None,
                };
                cli::keygen(&self.out, kind, pass.as_ref().map(|p| p.as_bytes()))?
            }
        };
        println!("secret key  {}", r.secret);
        println!("public key  {}", r.public_path.display());
        println!(
            "type        {} ({})",
            r.public.tuf_keytype(),
            r.public.tuf_scheme()
        );
        println!("key id      {}", cli::key_id(&r.public));
        Ok(())
    }

    #[cfg(feature = "pkcs11")]
    fn on_token(&self, uri: &str, kind: KeyKind) -> Result<KeygenReport, Failure> {
        let uri = uri.parse().map_err(usage)?;
        Ok(cli::keygen_pkcs11(
            &uri,
            kind,
            &self.access.access(),
            &self.out,
        )?)
    }

    #[cfg(not(feature = "pkcs11"))]
    fn on_token(&self, uri: &str, _kind: KeyKind) -> Result<KeygenReport, Failure> {
        Err(usage(anyhow::anyhow!(
            "--pkcs11 {uri}: this kasane-registry was built without PKCS#11 support (feature pkcs11)"
        )))
    }
}
