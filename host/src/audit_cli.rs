//! `kasane-host audit …` and `kasane-host dead-letters …`: the audit log (verify, export,
//! prune, an archive's check) and the queued messages the inbox set aside.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use kasane_host::config::Config;
use kasane_host::store::{Clock, Store, SystemClock};
use kasane_host::{audit, audit_archive, audit_prune, upkeep};

use crate::{load_config, open_store};

#[derive(Subcommand, Debug)]
pub(crate) enum DeadLetterCommand {
    /// Lists them, one per line: id, recipient, bytes, when queued and moved, and the audit
    /// record (session id, seq) that holds the message as received, if it names one.
    List,
    /// Removes dead letters by id (an audit chain a dead letter names is not pruned while
    /// it is kept).
    Remove {
        /// The ids, as `list` prints them.
        #[arg(required = true)]
        ids: Vec<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AuditCommand {
    /// Checks every chain (sequence numbers from 1, hash links, record hashes, payloads)
    /// and every checkpoint (host-key signature, matching record). Prints a summary; on a
    /// broken log names the first broken record and exits non-zero.
    Verify {
        /// Also accept checkpoints signed by this earlier identity key (repeatable): its
        /// key file, a public key file, or 64 hex digits. keys/host.key is always accepted.
        #[arg(long = "key", value_name = "KEY")]
        keys: Vec<String>,
        /// Check this archive of `audit prune` instead of the database: each chain whole
        /// from record 1 and closed by its marker, signed by the host key (or a --key; the
        /// data directory's keys/host.key is accepted when it is there).
        #[arg(long, value_name = "FILE")]
        archive: Option<PathBuf>,
    },
    /// Writes the log as JSON lines, one per record (byte fields hex).
    Export {
        /// Output file (default: standard output): created with mode 0600; an existing file
        /// is refused, not overwritten.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Removes the chains of ended sessions whose last record is older than --older-than
    /// days, and whose messages no recipient is still to fetch. Each chain is checked first
    /// (a broken one is kept), written to the archive, the archive synced, then deleted,
    /// leaving a marker signed by the host key that `audit verify` checks. Safe while the
    /// host serves.
    #[command(group(clap::ArgGroup::new("keep").required(true).args(["archive", "no_archive"])))]
    Prune {
        /// Age in days of a chain's last record (0: every ended session's chain).
        #[arg(long, value_name = "DAYS")]
        older_than: u32,
        /// Write the pruned chains here first, as `audit export` lines each followed by its
        /// signed marker: created with mode 0600; an existing file is refused.
        #[arg(long, value_name = "FILE")]
        archive: Option<PathBuf>,
        /// Delete without keeping a copy.
        #[arg(long)]
        no_archive: bool,
    },
}

pub(crate) async fn audit(data: &Path, command: AuditCommand) -> anyhow::Result<()> {
    if let AuditCommand::Verify {
        keys,
        archive: Some(path),
    } = &command
    {
        return audit_verify_archive(data, keys, path);
    }
    let (cfg, st) = open_store(data).await?;
    match command {
        AuditCommand::Verify { keys, .. } => {
            let mut accepted =
                vec![kasane_host::keyfile::load_identity_key(&cfg.keys_dir)?.verifying_key()];
            accepted.extend(earlier_keys(&keys)?);
            match audit::verify_any(st.as_ref(), &accepted).await {
                Ok(s) => {
                    println!(
                        "audit log ok: {} chains, {} records, {} signed checkpoints, \
                         {} pruned chains",
                        s.chains, s.records, s.checkpoints, s.pruned
                    );
                    Ok(())
                }
                Err(audit::VerifyError::Broken(b)) => {
                    println!("audit log BROKEN: {b}");
                    bail!("audit log broken at {b}")
                }
                Err(e) => Err(e).context("reading the audit log"),
            }
        }
        AuditCommand::Export { out } => {
            let n = match &out {
                Some(path) => {
                    let file = kasane_os::fs::create_private_file(path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let mut f = std::io::BufWriter::new(file);
                    let n = audit::export(st.as_ref(), &mut f)
                        .await
                        .map_err(|e| anyhow::anyhow!("exporting: {e}"))?;
                    let file = f.into_inner().context("writing the export")?;
                    file.sync_all().context("writing the export")?;
                    n
                }
                None => audit::export(st.as_ref(), &mut std::io::stdout().lock())
                    .await
                    .map_err(|e| anyhow::anyhow!("exporting: {e}"))?,
            };
            eprintln!("exported {n} records");
            Ok(())
        }
        AuditCommand::Prune {
            older_than,
            archive,
            no_archive: _,
        } => audit_prune(&cfg, st.as_ref(), older_than, archive.as_deref()).await,
    }
}

/// The public keys `--key` names.
fn earlier_keys(keys: &[String]) -> anyhow::Result<Vec<ed25519_dalek::VerifyingKey>> {
    keys.iter()
        .map(|k| {
            let public = kasane_registry::keys::read_host_public_key(k)
                .with_context(|| format!("--key {k}"))?;
            ed25519_dalek::VerifyingKey::from_bytes(&public)
                .with_context(|| format!("--key {k}: not an Ed25519 public key"))
        })
        .collect()
}

/// `audit verify --archive FILE`: the file and the keys only, no database.
fn audit_verify_archive(data: &Path, keys: &[String], path: &Path) -> anyhow::Result<()> {
    let mut accepted = earlier_keys(keys)?;
    let own = load_config(data).and_then(|cfg| {
        Ok(kasane_host::keyfile::load_identity_key(&cfg.keys_dir)?.verifying_key())
    });
    match own {
        Ok(key) => accepted.push(key),
        Err(e) if !accepted.is_empty() => eprintln!(
            "(not using the host key: {})",
            kasane_os::report::Chain(&*e)
        ),
        Err(e) => return Err(e.context("no key to check the archive with (give --key)")),
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    match audit_archive::verify_archive(std::io::BufReader::new(file), &accepted) {
        Ok(s) => {
            println!(
                "archive ok: {} chains, {} records, each chain's marker signed",
                s.chains, s.records
            );
            Ok(())
        }
        Err(audit_archive::ArchiveError::Broken { line, what }) => {
            println!("archive BROKEN: line {line}: {what}");
            bail!("archive broken at line {line}: {what}")
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `audit prune`.
async fn audit_prune(
    cfg: &Config,
    st: &dyn Store,
    older_than_days: u32,
    archive: Option<&Path>,
) -> anyhow::Result<()> {
    let key = kasane_host::keyfile::load_identity_key(&cfg.keys_dir)?;
    let now = SystemClock.now();
    let cutoff = now.saturating_sub(u64::from(older_than_days) * audit_prune::DAY);
    let mut file = match archive {
        Some(path) => Some(std::io::BufWriter::new(
            kasane_os::fs::create_private_file(path)
                .with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let sink = file
        .as_mut()
        .map(|f| f as &mut (dyn audit_prune::Archive + Send));
    let pruned = audit_prune::prune(st, &key, cutoff, now, sink).await;
    if let Some(path) = archive {
        kasane_os::fs::sync_parent(path)
            .with_context(|| format!("syncing the directory of {}", path.display()))?;
    }
    let pruned = pruned?;
    let kept = match archive {
        Some(path) => format!("archived in {}", path.display()),
        None => "not archived".to_owned(),
    };
    let skipped = match pruned.skipped {
        0 => String::new(),
        n => format!(" ({n} more pruned by another process meanwhile)"),
    };
    println!(
        "pruned {} chains ({} records) of ended sessions whose last record is at least {} \
         days old{skipped}; {kept}",
        pruned.chains, pruned.records, older_than_days
    );
    Ok(())
}

/// `dead-letters list|remove`.
pub(crate) async fn dead_letters(data: &Path, command: DeadLetterCommand) -> anyhow::Result<()> {
    let (_, st) = open_store(data).await?;
    match command {
        DeadLetterCommand::List => {
            let (mut after, mut n) = (0, 0);
            loop {
                let page = st.dead_letters(after, 256).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for d in &page {
                    let audit = d.audit.as_ref().map_or_else(
                        || "-".to_owned(),
                        |a| format!("{}/{}", hex::encode(&a.session_id), a.seq),
                    );
                    println!(
                        "{}\t{}\tbytes={}\tqueued={}\tmoved={}\taudit={audit}",
                        d.id,
                        kasane_protocol::wire::Shown(&d.recipient),
                        d.bytes,
                        upkeep::rfc3339(d.created),
                        upkeep::rfc3339(d.moved)
                    );
                }
                n += page.len();
            }
            eprintln!("{n} dead letters");
            Ok(())
        }
        DeadLetterCommand::Remove { ids } => {
            for id in ids {
                if !st.remove_dead_letter(id).await? {
                    bail!("no dead letter {id} (the ones before it were removed)");
                }
                println!("removed dead letter {id}");
            }
            Ok(())
        }
    }
}
