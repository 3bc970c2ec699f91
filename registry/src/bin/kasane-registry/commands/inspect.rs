//! `kasane-registry inspect`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::cli;

use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// The file (metadata/N.root.json, metadata/timestamp.json, metadata/N.<role>.json, an
    /// author role file, a ticket, ...).
    file: PathBuf,
}

impl InspectArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let text = cli::inspect(&self.file)?;
        eprintln!("note: signatures NOT verified (inspect is for reading only; use `verify`)");
        print!("{text}");
        Ok(())
    }
}
