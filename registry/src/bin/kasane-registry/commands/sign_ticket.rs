//! `kasane-registry sign-ticket`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use kasane_registry::cli::{self, KeyLocation, Role};

use super::{RepoKeys, parse_hex32};
use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct SignTicketArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    /// The ticket key: PKCS#8 PEM file or pkcs11: URI (default <keys>/ticket.pem).
    #[arg(long, value_name = "KEY")]
    ticket_key: Option<KeyLocation>,
    /// The client's nonce for this login (64 hex digits).
    #[arg(long, value_name = "HEX")]
    nonce: String,
    /// The module the ticket names.
    #[arg(long, value_name = "NAME")]
    name: String,
    /// Where to write the ticket (default: standard output).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

impl SignTicketArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let nonce = parse_hex32(&self.nonce, "--nonce")?;
        let keys = self.dirs.keys(&[(Role::Ticket, &self.ticket_key)]);
        let ticket = cli::sign_ticket(&self.dirs.repo, &keys, nonce, &self.name)?;
        match self.out {
            Some(p) => {
                kasane_registry::files::write_public(&p, &ticket)
                    .with_context(|| format!("writing {}", p.display()))?;
                println!("wrote ticket for {} to {}", self.name, p.display());
            }
            None => println!("{}", String::from_utf8_lossy(&ticket)),
        }
        Ok(())
    }
}
