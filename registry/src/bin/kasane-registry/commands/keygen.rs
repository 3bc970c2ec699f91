//! `kasane-registry keygen`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::cli;

use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// The secret key file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

impl KeygenArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let r = cli::keygen(&self.out)?;
        println!("secret key  {} (mode 0600)", r.secret_path.display());
        println!("public key  {}", r.public_path.display());
        println!("public      {}", r.public.to_hex());
        println!("key id      {}", r.public.key_id());
        Ok(())
    }
}
