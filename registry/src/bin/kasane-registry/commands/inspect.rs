//! `kasane-registry inspect`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::cli;

use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// The file (N.root.json, targets.json, authors/<ID>.json, snapshot.json, a ticket, ...).
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
