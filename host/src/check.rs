//! `kasane-host check`: loads everything `serve` loads, in the same way, and serves nothing.

use std::path::Path;

use anyhow::{Context, bail};
use kasane_host::config::Config;
use kasane_host::registry::HostRegistry;
use kasane_host::registry_db::DbRegistry;
use kasane_host::registry_source::{DbSource, RegistrySource};
use kasane_host::tls::CertResolver;
use kasane_host::upkeep::rfc3339;
use kasane_host::{messages, server, setup, store};

/// Runs the checks in the order `serve` needs them; prints `ok: …` for each, returns the
/// first failure (the binary prints it as `error: <what>: <causes>`).
pub(crate) async fn run(data: &Path) -> anyhow::Result<()> {
    let cfg = super::load_config(data)?;
    ok(format_args!(
        "configuration of {} (KASANE_* overrides applied)",
        data.display()
    ));
    listen_address(&cfg.listen).await?;
    certificate(&cfg)?;
    keys(&cfg)?;
    let scheme = cfg.database_url.split(':').next().unwrap_or_default();
    let store = store::open(&cfg.database_url)
        .await
        .with_context(|| format!("opening the store ({scheme})"))?;
    ok(format_args!("store opens ({scheme})"));
    queue_key_matches(&cfg, store.as_ref()).await?;
    opaque_key_matches(&cfg, store.as_ref()).await?;
    serve_prerequisites(&cfg)?;
    let registry = match store.postgres_pool() {
        Some(pool) => db_registry(&cfg, DbRegistry::new(pool.clone())).await?,
        None => registry(&cfg)?,
    };
    keys_listed(&cfg, &registry)?;
    active_transforms(&registry)?;
    gateway_upstream(&cfg).await
}

/// `listen` is an address `serve` can bind to (resolved, not bound: a host may be serving on
/// it now).
async fn listen_address(listen: &str) -> anyhow::Result<()> {
    let resolved: Vec<_> = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("the listen address {listen}"))?
        .collect();
    let list: Vec<String> = resolved.iter().map(ToString::to_string).collect();
    ok(format_args!(
        "listen address {listen} ({})",
        list.join(", ")
    ));
    Ok(())
}

/// The TLS pair loads as `serve` loads it, and the certificate has not expired (`/readyz`
/// would answer 503).
fn certificate(cfg: &Config) -> anyhow::Result<()> {
    let certs = CertResolver::load(&cfg.tls_cert, &cfg.tls_key).with_context(|| {
        format!(
            "loading the TLS certificate {} and key {}",
            cfg.tls_cert.display(),
            cfg.tls_key.display()
        )
    })?;
    let (not_after, now) = (certs.not_after(), now());
    server::reloadable_tls_config(std::sync::Arc::new(certs))?;
    match not_after {
        Some(at) if at <= now => bail!(
            "the TLS certificate {} expired at {}",
            cfg.tls_cert.display(),
            rfc3339(at)
        ),
        Some(at) if at <= now.saturating_add(kasane_host::upkeep::WARN_BEFORE) => ok(format_args!(
            "TLS certificate and key (valid until {}: expires in {} days, renew it)",
            rfc3339(at),
            (at - now) / 86_400
        )),
        Some(at) => ok(format_args!(
            "TLS certificate and key (valid until {})",
            rfc3339(at)
        )),
        None => ok(format_args!(
            "TLS certificate and key (its expiry could not be read)"
        )),
    }
    Ok(())
}

/// The transforms a login can be offered now, by name and rollout weight; none is a failure
/// (`/readyz` would answer 503 `registry: no active transform`).
fn active_transforms(registry: &HostRegistry) -> anyhow::Result<()> {
    let active = registry
        .active(now())
        .context("the registry's active transforms")?;
    if active.is_empty() {
        bail!("the registry has no active transform: no login can be served");
    }
    let list: Vec<String> = active
        .iter()
        .map(|e| format!("{} (weight {})", e.name, e.rollout_weight))
        .collect();
    ok(format_args!(
        "{} active transforms: {}",
        active.len(),
        list.join(", ")
    ));
    Ok(())
}

/// `[gateway] upstream`, if set, answers HTTP (`serve` refuses to start otherwise).
async fn gateway_upstream(cfg: &Config) -> anyhow::Result<()> {
    let upstream = &cfg.gateway.upstream;
    if upstream.is_empty() {
        ok(format_args!("no gateway upstream configured"));
        return Ok(());
    }
    kasane_host::gateway::probe(upstream).await?;
    ok(format_args!("gateway upstream {upstream} answers HTTP"));
    Ok(())
}

/// The queue key is the one the database's queued messages are sealed under (the first host
/// to use a database records its key's identifier; an unclaimed database is claimed here, as
/// `serve` would).
async fn queue_key_matches(cfg: &Config, store: &dyn store::Store) -> anyhow::Result<()> {
    let path = cfg.keys_dir.join(messages::QUEUE_KEY_FILE);
    if !path.exists() {
        return Ok(());
    }
    let key = messages::load_queue_key(&cfg.keys_dir)?;
    setup::check_queue_key(store, &key, &cfg.keys_dir)
        .await
        .with_context(|| format!("the queue key {} and the database", path.display()))?;
    ok(format_args!(
        "queue key {} matches the database",
        path.display()
    ));
    Ok(())
}

/// `keys/opaque.key`, where it exists, is the key the database's users were enrolled under
/// (`serve` refuses another).
async fn opaque_key_matches(cfg: &Config, store: &dyn store::Store) -> anyhow::Result<()> {
    let path = cfg.keys_dir.join(kasane_host::keyfile::OPAQUE_KEY_FILE);
    if !path.exists() {
        return Ok(());
    }
    let keys = kasane_host::keyfile::load_opaque_keys(&cfg.keys_dir)?;
    setup::check_opaque_key(store, &keys, &cfg.keys_dir)
        .await
        .with_context(|| format!("the OPAQUE keys {} and the database", path.display()))?;
    ok(format_args!(
        "OPAQUE keys {} match the database",
        path.display()
    ));
    Ok(())
}

/// What else `serve` refuses to start without: the metrics token as written, and the audit
/// archive directory when pruning keeps an archive.
fn serve_prerequisites(cfg: &Config) -> anyhow::Result<()> {
    let token = cfg.keys_dir.join(kasane_host::keyfile::METRICS_TOKEN_FILE);
    if token.exists() {
        kasane_host::keyfile::load_metrics_token(&cfg.keys_dir)
            .with_context(|| format!("the metrics token {}", token.display()))?;
        ok(format_args!("metrics token {}", token.display()));
    }
    if let Some(Some(dir)) = cfg.audit.pruning() {
        kasane_host::retention::check_archive_dir(dir)
            .with_context(|| format!("the audit archive directory {}", dir.display()))?;
        ok(format_args!("audit archive directory {}", dir.display()));
    }
    Ok(())
}

/// With PostgreSQL: the registry the database holds, opened and verified as `serve` opens it;
/// the data directory's while the database holds none yet (`serve` imports it then).
async fn db_registry(cfg: &Config, db: DbRegistry) -> anyhow::Result<HostRegistry> {
    if db
        .timestamp()
        .await
        .context("reading the registry in the database")?
        .is_none()
    {
        let registry = registry(cfg)?;
        ok(format_args!(
            "the database holds no registry yet: serve imports this one"
        ));
        return Ok(registry);
    }
    let source = DbSource::open(db)
        .await
        .context("reading the registry in the database")?;
    let registry = HostRegistry::open_source(
        RegistrySource::Database(source),
        &cfg.keys_dir,
        setup::host_sandbox().context("starting the sandbox")?,
        now(),
        kasane_host::upkeep::Upkeep::default(),
    )
    .context("loading the registry in the database")?;
    ok(format_args!("registry in the database"));
    Ok(registry)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn ok(what: std::fmt::Arguments<'_>) {
    println!("ok: {what}");
}

/// The host's signing key, the queue key and the OPAQUE keys (an absent queue or OPAQUE key
/// is fine: `serve` creates it; but users enrolled under an OPAQUE key that is now missing
/// can no longer log in).
fn keys(cfg: &Config) -> anyhow::Result<()> {
    let host_key = cfg.keys_dir.join(kasane_host::keyfile::IDENTITY_KEY_FILE);
    setup::read_signing_key(&host_key)
        .with_context(|| format!("loading the host key {}", host_key.display()))?;
    ok(format_args!("host key {}", host_key.display()));
    made_on_first_use(cfg, messages::QUEUE_KEY_FILE, "queue key", || {
        messages::load_queue_key(&cfg.keys_dir).map(|_| ())
    })?;
    made_on_first_use(
        cfg,
        kasane_host::keyfile::OPAQUE_KEY_FILE,
        "OPAQUE keys",
        || kasane_host::keyfile::load_opaque_keys(&cfg.keys_dir).map(|_| ()),
    )?;
    made_on_first_use(
        cfg,
        kasane_host::gateway::GATEWAY_KEY_FILE,
        "gateway assertion key",
        || kasane_host::gateway::AssertionKey::load(&cfg.keys_dir).map(|_| ()),
    )
}

/// Checks a key file `serve` makes when it is missing.
fn made_on_first_use(
    cfg: &Config,
    file: &str,
    what: &str,
    load: impl FnOnce() -> Result<(), kasane_host::HostError>,
) -> anyhow::Result<()> {
    let path = cfg.keys_dir.join(file);
    if path.exists() {
        load().with_context(|| format!("loading the {what} {}", path.display()))?;
        ok(format_args!("{what} {}", path.display()));
    } else {
        ok(format_args!(
            "{what} {} absent (serve creates it)",
            path.display()
        ));
    }
    Ok(())
}

/// The registry, opened and verified as `serve` opens it (ticket key, signed metadata checked
/// as a client would, modules).
fn registry(cfg: &Config) -> anyhow::Result<HostRegistry> {
    let registry = HostRegistry::open(
        &cfg.registry_dir,
        &cfg.keys_dir,
        setup::host_sandbox().context("starting the sandbox")?,
        now(),
    )
    .with_context(|| format!("loading the registry {}", cfg.registry_dir.display()))?;
    ok(format_args!("registry {}", cfg.registry_dir.display()));
    Ok(registry)
}

/// The registry lists the host's signing keys for their roles (clients refuse what an
/// unlisted key signs).
fn keys_listed(cfg: &Config, registry: &HostRegistry) -> anyhow::Result<()> {
    let repo = registry.repository(now())?;
    kasane_host::rekey::check_listed(&repo, &cfg.keys_dir)
        .context("the signing keys and the registry's lists")?;
    ok(format_args!(
        "host.key, ticket.pem and online.pem (if present) are listed in the registry"
    ));
    Ok(())
}
