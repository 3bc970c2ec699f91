//! `kasane-registry host-keys`.

use clap::Args;
use kasane_registry::cli::{self, HostKeyChange, HostKeyKind, Role};

use super::{OnlineKey, RepoKeys, TargetsKey};
use crate::failure::{Failure, usage};

#[derive(Args)]
pub(crate) struct HostKeysArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    #[command(flatten)]
    targets: TargetsKey,
    #[command(flatten)]
    online: OnlineKey,
    #[command(flatten)]
    change: ChangeArgs,
}

/// What `host-keys` changes: at most one of these (none: it only lists).
#[derive(Args)]
#[group(required = false, multiple = false)]
struct ChangeArgs {
    /// List an identity key: a public key file (PEM or JSON), a host key file (its public
    /// half), or 64 hex digits.
    #[arg(long, value_name = "KEY")]
    add_identity: Option<String>,
    /// Stop listing an identity key (as for --add-identity).
    #[arg(long, value_name = "KEY")]
    remove_identity: Option<String>,
    /// List a ticket key (as for --add-identity).
    #[arg(long, value_name = "KEY")]
    add_ticket: Option<String>,
    /// Stop listing a ticket key (as for --add-identity).
    #[arg(long, value_name = "KEY")]
    remove_ticket: Option<String>,
}

impl ChangeArgs {
    fn change(self) -> Result<Option<HostKeyChange>, Failure> {
        use HostKeyKind::{Identity, Ticket};
        let (kind, add, arg) = match self {
            Self {
                add_identity: Some(a),
                ..
            } => (Identity, true, a),
            Self {
                remove_identity: Some(a),
                ..
            } => (Identity, false, a),
            Self {
                add_ticket: Some(a),
                ..
            } => (Ticket, true, a),
            Self {
                remove_ticket: Some(a),
                ..
            } => (Ticket, false, a),
            _ => return Ok(None),
        };
        let key = kasane_registry::keys::read_host_public_key(&arg)
            .map_err(|e| usage(anyhow::anyhow!("{arg}: {e}")))?;
        Ok(Some(HostKeyChange { kind, key, add }))
    }
}

impl HostKeysArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let keys = self.dirs.keys(&[
            (Role::Targets, &self.targets.targets_key),
            (Role::Online, &self.online.online_key),
        ]);
        let host = match self.change.change()? {
            None => cli::host_keys(&self.dirs.repo)?,
            Some(change) => {
                let (host, p) = cli::change_host_keys(&self.dirs.repo, &keys, &change)?;
                let verb = if change.add { "added" } else { "removed" };
                println!(
                    "{verb} {} key {}; targets version {}, snapshot version {}",
                    change.kind,
                    hex::encode(change.key),
                    p.role.1,
                    p.snapshot
                );
                host
            }
        };
        for (kind, list) in [("identity", &host.identity), ("ticket", &host.tickets)] {
            for k in list {
                println!("{kind:8}  {}", k.keyval.public);
            }
        }
        Ok(())
    }
}
