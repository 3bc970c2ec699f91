//! The registry in PostgreSQL (`registry_files`): import, export, re-signing under the
//! advisory lock, and two replicas on one database served day after day.
//!
//! PostgreSQL at `KASANE_TEST_DATABASE_URL`, each test in a fresh schema dropped afterwards.
//! Without the variable the tests print "skipped: KASANE_TEST_DATABASE_URL not set" and pass,
//! unless `CI=true`, where they fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure is a test failure"
)]

mod common;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use common::{TestHost, file_config, login, serve_host};
use kasane_host::config::Config;
use kasane_host::registry::HostRegistry;
use kasane_host::registry_db::{DbRegistry, LOCK_CLASS, LOCK_KEYS_SQL, RegistryDbError};
use kasane_host::setup;
use kasane_host::store::{Clock, PgStore, Store, SystemClock};
use kasane_os::ManualClock;
use kasane_registry::repo::{Lifetimes, Repository, Resigned};
use kasane_registry::signing::{KeyFileSigner, TufSigner};
use kasane_registry::trust::{Fetcher, Pin, TrustStore};
use kasane_registry::{RegistryError, TufError};
use sqlx::postgres::PgConnectOptions;

const DAY: u64 = 86_400;

/// Runs `case` with connect options on a fresh schema, dropped afterwards (also when the
/// case panics).
async fn in_schema<F, Fut>(case: F)
where
    F: FnOnce(PgConnectOptions) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    in_schema_url(|options, _| case(options)).await;
}

/// [`in_schema`], also with a URL for the schema (for the binary).
async fn in_schema_url<F, Fut>(case: F)
where
    F: FnOnce(PgConnectOptions, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(schema) = common::PgSchema::create("kasane_test").await else {
        return;
    };
    let options = schema.options();
    let schema_url = schema.url();
    let outcome = tokio::spawn(case(options, schema_url)).await;
    schema.drop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A data directory made by `init` at `now`, and its configuration.
async fn data_dir(now: u64) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    setup::init(dir.path(), None, now).await.unwrap();
    let mut cfg = file_config(dir.path());
    cfg.throttle.free_failures = 1000;
    (dir, cfg)
}

fn signer(cfg: &Config, role: &str) -> KeyFileSigner {
    KeyFileSigner::open(&cfg.keys_dir.join(format!("{role}.pem")), None).unwrap()
}

/// The offline ceremony on an exported directory: re-signs `role` with its development key,
/// then snapshot and timestamp with the online key (`kasane-registry refresh --role`).
fn refresh_role(cfg: &Config, repo_dir: &Path, role: &str, now: u64) {
    let mut repo = Repository::load(repo_dir).unwrap();
    let life = Lifetimes::default();
    let key = signer(cfg, role);
    repo.refresh_role(role, &[&TufSigner(&key)], now, &life)
        .unwrap();
    let online = signer(cfg, "online");
    repo.snapshot(&[&TufSigner(&online)], now, &life).unwrap();
    repo.save(repo_dir).unwrap();
}

/// Every file under `dir/metadata` and `dir/targets`, by repository path.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, rel: &str, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(root.join(rel)).unwrap() {
            let e = e.unwrap();
            let child = format!("{rel}/{}", e.file_name().to_str().unwrap());
            if e.file_type().unwrap().is_dir() {
                walk(root, &child, out);
            } else {
                out.insert(child.clone(), std::fs::read(root.join(&child)).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, "metadata", &mut out);
    walk(dir, "targets", &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_export_round_trip_and_an_older_or_diverged_registry_is_refused() {
    in_schema(|options| async move {
        let now = SystemClock.now();
        let (_dir, cfg) = data_dir(now).await;
        let store = PgStore::open_with(options, 4).await.unwrap();
        let db = DbRegistry::new(store.pool().clone());
        assert!(db.timestamp().await.unwrap().is_none());
        assert!(matches!(db.mirror().await, Err(RegistryDbError::Empty)));

        // Import: every file of the directory, modules included; a second import is a no-op.
        let first = db.import_dir(&cfg.registry_dir, now).await.unwrap();
        let on_disk = tree(&cfg.registry_dir);
        assert_eq!(first.written, on_disk.len());
        assert_eq!(db.files().await.unwrap(), on_disk);
        assert_eq!(
            db.import_dir(&cfg.registry_dir, now).await.unwrap().written,
            0
        );
        assert!(!db.import_if_empty(&cfg.registry_dir, now).await.unwrap());

        // Export: the same files; a directory that is not empty is refused.
        let out = tempfile::tempdir().unwrap();
        let a = out.path().join("a");
        assert_eq!(db.export_dir(&a).await.unwrap(), on_disk.len());
        assert_eq!(tree(&a), on_disk);
        assert!(matches!(
            db.export_dir(&a).await,
            Err(RegistryDbError::NotEmpty { .. })
        ));
        let b = out.path().join("b");
        db.export_dir(&b).await.unwrap();

        // The operator's path: an edit on the export, imported; the mirror shows it.
        refresh_role(&cfg, &a, "revocations", now + 60);
        let done = db.import_dir(&a, now + 60).await.unwrap();
        assert_eq!(done.versions, (first.versions.0 + 1, first.versions.1 + 1));
        let mirror = Repository::load_files(&db.mirror().await.unwrap()).unwrap();
        assert_eq!(mirror.versions(), done.versions);

        // The directory first imported is older now: refused, nothing written.
        let before = db.files().await.unwrap();
        assert!(matches!(
            db.import_dir(&cfg.registry_dir, now + 60).await,
            Err(RegistryDbError::Rollback {
                role: "timestamp",
                ..
            })
        ));
        // An export taken before that edit and edited twice: newer versions, but its own
        // version of a stored snapshot file.
        refresh_role(&cfg, &b, "authors", now + 60);
        refresh_role(&cfg, &b, "authors", now + 61);
        assert!(matches!(
            db.import_dir(&b, now + 61).await,
            Err(RegistryDbError::Conflict { path }) if path.ends_with(".snapshot.json")
        ));
        assert_eq!(db.files().await.unwrap(), before);

        // A listed module whose bytes are missing is refused before anything is written.
        let c = out.path().join("c");
        db.export_dir(&c).await.unwrap();
        refresh_role(&cfg, &c, "revocations", now + 120);
        let module = tree(&c).into_keys().find(|p| p.ends_with(".ocra")).unwrap();
        // Truncated (carried to the signing machine and back): refused, since bytes stored
        // once can never be replaced.
        let bytes = std::fs::read(c.join(&module)).unwrap();
        std::fs::write(c.join(&module), &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(
            db.import_dir(&c, now + 120).await,
            Err(RegistryDbError::ModuleAltered { path }) if path == module
        ));
        std::fs::remove_file(c.join(&module)).unwrap();
        assert!(matches!(
            db.import_dir(&c, now + 120).await,
            Err(RegistryDbError::MissingModule { path }) if path == module
        ));
        // And so is a repository that does not verify as a client would (expired).
        assert!(matches!(
            db.import_dir(&a, now + 400 * DAY).await,
            Err(RegistryDbError::Registry(RegistryError::Tuf(
                TufError::Expired { .. }
            )))
        ));
        assert_eq!(db.files().await.unwrap(), before);
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_signing_in_the_database_happens_once_per_due_point_and_skips_a_held_lock() {
    in_schema(|options| async move {
        let now = SystemClock.now();
        let (_dir, cfg) = data_dir(now).await;
        let store = PgStore::open_with(options, 4).await.unwrap();
        let db = DbRegistry::new(store.pool().clone());
        let (ts, snap) = db
            .import_dir(&cfg.registry_dir, now)
            .await
            .unwrap()
            .versions;
        let online = signer(&cfg, "online");
        let life = Lifetimes::default();
        assert_eq!(
            db.resign_if_due(&online, now + DAY, &life).await.unwrap(),
            Resigned::NotDue
        );
        // Half of the 7 days left: due. Two replicas at the same moment: one re-signs.
        let at = now + 4 * DAY;
        let (one, two) = tokio::join!(
            db.resign_if_due(&online, at, &life),
            db.resign_if_due(&online, at, &life)
        );
        let mut outcomes = [one.unwrap(), two.unwrap()];
        outcomes.sort_by_key(|o| !matches!(o, Resigned::Done { .. }));
        assert_eq!(
            outcomes[0],
            Resigned::Done {
                timestamp: ts + 1,
                snapshot: snap + 1
            }
        );
        assert!(matches!(outcomes[1], Resigned::NotDue | Resigned::Busy));
        // Another writer holds the lock (an operator's import): the replica does not wait.
        let mut holder = store.pool().acquire().await.unwrap();
        sqlx::query(&format!("SELECT pg_advisory_lock({LOCK_KEYS_SQL})"))
            .bind(LOCK_CLASS)
            .execute(&mut *holder)
            .await
            .unwrap();
        let later = now + 8 * DAY;
        assert_eq!(
            db.resign_if_due(&online, later, &life).await.unwrap(),
            Resigned::Busy
        );
        sqlx::query(&format!("SELECT pg_advisory_unlock({LOCK_KEYS_SQL})"))
            .bind(LOCK_CLASS)
            .execute(&mut *holder)
            .await
            .unwrap();
        drop(holder);
        assert!(matches!(
            db.resign_if_due(&online, later, &life).await.unwrap(),
            Resigned::Done { timestamp, .. } if timestamp == ts + 2
        ));
        store.close().await;
    })
    .await;
}

/// What a client fetches from a replica: its registry files as `GET /v1/registry/<path>`
/// serves them.
struct Served<'a>(&'a HostRegistry);

impl Fetcher for Served<'_> {
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, TufError> {
        match self.0.file(path) {
            Some(b) if b.len() as u64 > max_len => Err(TufError::TooLarge {
                what: path.to_owned(),
                max: max_len,
            }),
            other => Ok(other),
        }
    }
}

/// The snapshot version a replica serves (`metadata/timestamp.json` over HTTP), asked by
/// eight clients at once: all get the same (the syncs they wait for answer them all).
async fn served_snapshot(th: &TestHost) -> u64 {
    let mut asks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (addr, cert) = (th.addr, th.cert_der.clone());
        asks.spawn(async move {
            let mut conn = common::connect(addr, &cert).await;
            let (status, body) = conn.get("/v1/registry/metadata/timestamp.json", None).await;
            assert_eq!(status, hyper::StatusCode::OK);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            v["signed"]["meta"]["snapshot.json"]["version"]
                .as_u64()
                .unwrap()
        });
    }
    let versions: Vec<u64> = asks.join_all().await;
    assert!(versions.windows(2).all(|w| w[0] == w[1]), "{versions:?}");
    versions[0]
}

fn resigned(th: &TestHost) -> u64 {
    let text = th.host.registry().upkeep().render(th.clock.now());
    text.lines()
        .find_map(|l| l.strip_prefix("kasane_registry_resigned_total{outcome=\"ok\"} "))
        .unwrap()
        .parse()
        .unwrap()
}

/// Replica B: a data directory of its own with the keys and TLS files but no registry (no
/// shared disk: B reads the registry from the database only).
fn replica_dir(cfg: &Config) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = cfg.clone();
    let files = [
        (&mut cfg.keys_dir, "keys"),
        (&mut cfg.tls_cert, "cert.pem"),
        (&mut cfg.tls_key, "key.pem"),
    ];
    for (from, to) in files {
        let dest = dir.path().join(to);
        if from.is_dir() {
            std::fs::create_dir(&dest).unwrap();
            for e in std::fs::read_dir(&*from).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), dest.join(e.file_name())).unwrap();
            }
        } else {
            std::fs::copy(&*from, &dest).unwrap();
        }
        *from = dest;
    }
    cfg.registry_dir = dir.path().join("no-registry-here");
    (dir, cfg)
}

async fn replica(
    cfg: Config,
    dir: tempfile::TempDir,
    options: &PgConnectOptions,
    now: u64,
) -> TestHost {
    let store: Arc<dyn Store> = Arc::new(PgStore::open_with(options.clone(), 8).await.unwrap());
    let clock = Arc::new(ManualClock::new(now));
    let host = setup::load_host_with_store(cfg.clone(), store, clock.clone())
        .await
        .unwrap();
    serve_host(host, clock, cfg, dir).await
}

/// Issue 13's acceptance: two replicas on one PostgreSQL, 40 simulated days. Every day a
/// full login through each replica succeeds, a client's trust store updates through each
/// (refusing any rollback or expired metadata), and the snapshot version each serves never
/// goes backwards; it rises over the 40 days, with exactly one re-signing per due point
/// (whichever replica a login reaches first), and the operator's refresh of `revocations`
/// (export, `refresh`, import) at day 25 reaches both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_serve_40_days_of_logins_and_never_go_backwards() {
    in_schema(|options| async move {
        let start = SystemClock.now();
        let (dir_a, cfg_a) = data_dir(start).await;
        let a = replica(cfg_a.clone(), dir_a, &options, start).await;
        // After A made keys/opaque.key: every replica shares it.
        let (dir_b, cfg_b) = replica_dir(&cfg_a);
        let b = replica(cfg_b, dir_b, &options, start).await;
        assert!(a.host.registry().dir().is_none() && b.host.registry().dir().is_none());
        a.add_user("alice").await;

        let client_clock = ManualClock::new(start);
        let root = a.host.registry().file("metadata/1.root.json").unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut trust =
            TrustStore::init(state.path(), &root, Pin::File, client_clock.clone()).unwrap();
        let db = DbRegistry::new(a.host.store().postgres_pool().unwrap().clone());
        let first = served_snapshot(&a).await;
        let mut last = (first, first);
        let mut bumps = 0;
        for day in 0..=40 {
            let now = start + day * DAY;
            for c in [&*a.clock, &*b.clock, &client_clock] {
                c.set(now);
            }
            if day == 25 {
                let export = tempfile::tempdir().unwrap();
                let repo = export.path().join("repo");
                db.export_dir(&repo).await.unwrap();
                refresh_role(&cfg_a, &repo, "revocations", now);
                db.import_dir(&repo, now).await.unwrap();
            }
            // Which replica a login reaches first alternates, so both re-sign some day.
            let [first, second] = if day % 3 == 0 { [&b, &a] } else { [&a, &b] };
            for th in [first, second] {
                let mut conn = th.connect().await;
                login(th, &mut conn, "alice").await;
                trust
                    .update(&Served(th.host.registry()))
                    .unwrap_or_else(|e| panic!("day {day}: trust update refused: {e}"));
                if std::ptr::eq(th, first) {
                    // Right after the first replica re-signed (on a due day), the other serves
                    // the new files already.
                    let seen = served_snapshot(first).await;
                    assert_eq!(served_snapshot(second).await, seen, "day {day}");
                }
            }
            let served = (served_snapshot(&a).await, served_snapshot(&b).await);
            assert!(
                served.0 >= last.0 && served.1 >= last.1,
                "day {day}: snapshot versions went backwards: {last:?} -> {served:?}"
            );
            assert_eq!(
                served.0, served.1,
                "day {day}: the replicas serve different snapshots"
            );
            assert!(
                served.0 - last.0 <= 1,
                "day {day}: {last:?} -> {served:?}: signed twice"
            );
            bumps += served.0 - last.0;
            last = served;
        }
        let (ra, rb) = (resigned(&a), resigned(&b));
        println!(
            "snapshot {first} -> {}: re-signed by A {ra}, by B {rb}",
            last.0
        );
        assert!(
            ra > 0 && rb > 0,
            "both replicas re-sign some day: {ra}, {rb}"
        );
        // Every bump of the snapshot version is one re-signing, or the operator's import.
        assert_eq!(
            ra + rb + 1,
            bumps,
            "re-signings {ra} + {rb}, versions {first} -> {}",
            last.0
        );
        assert!(bumps >= 9, "{bumps}");
    })
    .await;
}

/// `kasane-host registry export|import` and `check` through the binary, on PostgreSQL; with
/// SQLite the commands refuse and say where the registry is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_commands_export_and_import_through_the_binary() {
    in_schema_url(|_, url| async move {
        let now = SystemClock.now();
        let (dir, cfg) = data_dir(now).await;
        let data = dir.path().to_str().unwrap().to_owned();
        let run = |args: &[&str], db: bool| {
            let mut cmd = common::host_bin();
            cmd.args(["--data", data.as_str()]).args(args);
            if db {
                cmd.env("KASANE_DATABASE_URL", &url);
            }
            let out = cmd.output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            (out.status.success(), text)
        };
        let (ok, text) = run(&["registry", "export", "/nonexistent/x"], false);
        assert!(!ok && text.contains("only with PostgreSQL"), "{text}");
        let out = tempfile::tempdir().unwrap();
        let repo = out.path().join("repo");
        let repo_s = repo.to_str().unwrap();
        let (ok, text) = run(&["registry", "export", repo_s], true);
        assert!(!ok && text.contains("holds no registry"), "{text}");
        let (ok, text) = run(&["check"], true);
        assert!(ok && text.contains("no registry yet"), "{text}");

        let registry = cfg.registry_dir.to_str().unwrap();
        let (ok, text) = run(&["registry", "import", registry], true);
        let n = tree(&cfg.registry_dir).len();
        assert!(
            ok && text.contains(&format!("imported {n} files")),
            "{text}"
        );
        let (ok, text) = run(&["registry", "export", repo_s], true);
        assert!(ok, "{text}");
        assert_eq!(tree(&repo), tree(&cfg.registry_dir));
        refresh_role(&cfg, &repo, "revocations", SystemClock.now());
        let (ok, text) = run(&["registry", "import", repo_s], true);
        assert!(ok && text.contains("imported"), "{text}");
        let (ok, text) = run(&["registry", "import", registry], true);
        assert!(!ok && text.contains("is not above the stored"), "{text}");
        let (ok, text) = run(&["check"], true);
        assert!(
            ok && text.contains("ok: registry in the database"),
            "{text}"
        );
    })
    .await;
}
