//! Message throughput and acknowledgement latency over loopback: sealed relay messages beside
//! two HTTPS POST baselines, in the same run, on the same axum + rustls stack (the host's own
//! transport, `server::serve_tls`, TLS 1.3, HTTP/1.1 connections).
//!
//! - **plain POST** (`POST /plain`): the handler reads the body and answers 204. The ceiling.
//! - **durable POST** (`POST /durable`): the handler hands the body to a
//!   [`GroupCommit`](kasane_host::group_commit::GroupCommit) with the host's own limits
//!   (`Config::default().messages.commit_limits()`), whose commit inserts one row per body
//!   (`id, body, created_at`) in one transaction, and answers 204 once that commit returned.
//!   SQLite in WAL mode with `synchronous = FULL` (the host's durable pool), in a file beside
//!   the host's data directory, committed as the host commits messages (a thread of its own
//!   owning a rusqlite connection); or a table on the host's PostgreSQL, through sqlx. What
//!   any durable relay pays.
//! - **kasane**: `Session::send` from alice's sessions to bob (who never reads). Per message
//!   the client runs the transform (forced to `sha256-chain`) and seals; the host checks the
//!   sequence number, runs the transform, opens, and queues the message through its group
//!   commit (sequence, audit record, encrypted queue entry), then acknowledges. The queue
//!   quota is off (bob would fill it), and bob's queue is emptied in the host's database after
//!   each cell, so every cell starts from an empty queue and the disk is not filled (before
//!   the host kept queue usage as counters, its quota check read the whole queue).
//!
//! Matrix: bodies of 256 B, 4 KiB and 64 KiB; 1, 16 and 64 sessions (baselines: as many
//! connections); `serial` (one request in flight per session) and `pipelined` (4 in flight
//! per session: 4 concurrent `send` calls on one `Arc<Session>`, or 4 connections per
//! simulated session for the baselines). Before the matrix, the disk's fsync: 2,000 × (append
//! 4 KiB to a file + `sync_data`) in the same temporary directory. Each variant also reports
//! its CPU per message: the whole process's user + system time during the window (client,
//! host and baselines all run in it), over the messages completed.
//!
//! With `KASANE_BENCH_PG_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test?sslmode=require`)
//! the 4 KiB and 64 KiB × 16 and 64 sessions rows run again on PostgreSQL: a host whose
//! `database_url` is a fresh schema of that database, and a durable baseline inserting into a
//! table of the same schema. Knobs: `KASANE_BENCH_SECS` (measured seconds per cell, default
//! 3, after 0.5 s of warm-up), `KASANE_BENCH_FILTER` (run only the rows whose name contains
//! it, e.g. `sqlite 4KiB s16`), `KASANE_BENCH_VARIANTS` (comma-separated subset of
//! `plain,durable,kasane`; default all), `KASANE_BENCH_PADDING` (`on`, the client's default,
//! or `off`: the client's length-hiding padding), `KASANE_BENCH_PACE_MS` (each sender starts
//! a message at most once per this interval: latency at a load below saturation). Run:
//! `cargo bench -p kasane-bench --bench messages`.
//! BENCHMARKS.md records the figures.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use kasane_bench::load::{Stats, WARMUP, drive_paced};
use kasane_bench::percentile;
use kasane_client::{Client, ClientError, Session};
use kasane_host::config::Config;
use kasane_host::group_commit::GroupCommit;
use kasane_host::setup::CodeCard;
use kasane_protocol::RefusalReason;
use kasane_tests::{TestHost, responder, start_with};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

const SIZES: [usize; 3] = [256, 4096, 65536];
const SESSIONS: [usize; 3] = [1, 16, 64];
const PG_SIZES: [usize; 2] = [4096, 65536];
const PG_SESSIONS: [usize; 2] = [16, 64];
/// Requests in flight per session when pipelined.
const DEPTH: usize = 4;
const FSYNC_ROUNDS: usize = 2000;

fn main() {
    let knobs = Knobs::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(knobs));
}

/// What the environment asks for.
struct Knobs {
    window: Duration,
    filter: String,
    pg_url: Option<String>,
    variants: Vec<Variant>,
    /// `KASANE_BENCH_PACE_MS`: each sender (a session's, or a baseline connection's) starts
    /// a message at most once per this interval (fractions of a millisecond allowed), for
    /// latencies at an offered load below saturation; unset, each sends as fast as it is
    /// answered.
    pace: Option<Duration>,
    /// `KASANE_BENCH_PADDING`: `on` (the client's default: Padmé bucket padding, which pads a
    /// 4 KiB body to 4,352 bytes and a 64 KiB one to 67,584) or `off` (the body's own
    /// length).
    padding: bool,
}

impl Knobs {
    fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let secs: f64 = var("KASANE_BENCH_SECS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3.0);
        let variants = var("KASANE_BENCH_VARIANTS").map_or_else(
            || vec![Variant::Plain, Variant::Durable, Variant::Kasane],
            |v| v.split(',').map(Variant::parse).collect(),
        );
        Self {
            window: Duration::from_secs_f64(secs),
            filter: var("KASANE_BENCH_FILTER").unwrap_or_default(),
            pg_url: var("KASANE_BENCH_PG_URL"),
            variants,
            pace: var("KASANE_BENCH_PACE_MS").and_then(|v| pace_ms(&v)),
            padding: var("KASANE_BENCH_PADDING").is_none_or(|v| padding(&v)),
        }
    }
}

/// One of the three things measured in each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    Durable,
    Kasane,
}

impl Variant {
    fn parse(s: &str) -> Self {
        match s.trim() {
            "plain" => Self::Plain,
            "durable" => Self::Durable,
            "kasane" => Self::Kasane,
            other => panic!("KASANE_BENCH_VARIANTS: unknown variant {other:?}"),
        }
    }
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy)]
struct Cell {
    backend: &'static str,
    size: usize,
    sessions: usize,
    pipelined: bool,
}

impl Cell {
    fn name(&self) -> String {
        let size = match self.size {
            s if s >= 1024 => format!("{}KiB", s / 1024),
            s => format!("{s}B"),
        };
        let mode = if self.pipelined {
            "pipelined"
        } else {
            "serial"
        };
        format!("{} {size} s{} {mode}", self.backend, self.sessions)
    }

    fn depth(&self) -> usize {
        if self.pipelined { DEPTH } else { 1 }
    }
}

/// A measured row.
struct Row {
    cell: Cell,
    plain: Option<Stats>,
    durable: Option<Stats>,
    kasane: Option<Stats>,
    /// Kasane messages per group commit of the host during the kasane cell.
    per_commit: Option<f64>,
}

/// The database a durable baseline writes to (emptied between cells).
#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

/// One backend under test: a host, its users, and the baseline server writing to the same
/// kind of database.
struct Target {
    th: TestHost,
    client: Client,
    alice: CodeCard,
    baseline: SocketAddr,
    ca: Vec<u8>,
    db: Db,
    /// The host's own database, to empty bob's queue between cells.
    host_db: Db,
    /// Dropped with the target: the baseline server stops.
    _stop: tokio::sync::oneshot::Sender<()>,
    _state: tempfile::TempDir,
}

async fn run(knobs: Knobs) {
    println!("load average at start: {}", loadavg());
    let work = tempfile::tempdir().unwrap();
    let fsync = fsync_probe(work.path()).await;
    println!(
        "fsync (append 4 KiB + sync_data, {FSYNC_ROUNDS} rounds, {}): p50 {:.3} ms, p99 {:.3} ms",
        work.path().display(),
        ms(fsync.0),
        ms(fsync.1)
    );
    println!(
        "transform sha256-chain, {:.1} s per cell after {:.1} s warm-up, group commit {:?}",
        knobs.window.as_secs_f64(),
        WARMUP.as_secs_f64(),
        Config::default().messages.commit_limits()
    );
    let mut rows = Vec::new();
    let cells = matrix(&SIZES, &SESSIONS, "sqlite");
    if cells.iter().any(|c| c.name().contains(&knobs.filter)) {
        let db = sqlite_db(&work.path().join("baseline.db")).await;
        let target = Target::start(db, knobs.padding, |_| {}).await;
        rows.extend(run_cells(&target, &cells, &knobs).await);
    }
    if let Some(url) = &knobs.pg_url {
        let cells = matrix(&PG_SIZES, &PG_SESSIONS, "postgres");
        if cells.iter().any(|c| c.name().contains(&knobs.filter)) {
            let schema = PgSchema::create(url).await;
            let db = pg_db(&schema.url()).await;
            let schema_url = schema.url();
            let target =
                Target::start(db, knobs.padding, move |c| c.database_url = schema_url).await;
            rows.extend(run_cells(&target, &cells, &knobs).await);
            drop(target);
            schema.remove().await;
        }
    }
    println!("load average at end: {}", loadavg());
    print_markdown(&rows, fsync);
}

/// Every combination, serial before pipelined.
fn matrix(sizes: &[usize], sessions: &[usize], backend: &'static str) -> Vec<Cell> {
    let mut cells = Vec::new();
    for &size in sizes {
        for &sessions in sessions {
            for pipelined in [false, true] {
                cells.push(Cell {
                    backend,
                    size,
                    sessions,
                    pipelined,
                });
            }
        }
    }
    cells
}

/// Measures the cells that pass the filter, printing each row as it completes.
async fn run_cells(target: &Target, cells: &[Cell], knobs: &Knobs) -> Vec<Row> {
    println!(
        "{:<28} {:>20} {:>20} {:>20} {:>7} {:>7}",
        "row (msg/s, p50/p99 ms)", "plain", "durable", "kasane", "k/dur", "k/plain"
    );
    let mut rows = Vec::new();
    for cell in cells.iter().filter(|c| c.name().contains(&knobs.filter)) {
        let body = Bytes::from(vec![0x5a; cell.size]);
        let on = |v| knobs.variants.contains(&v);
        let mut row = Row {
            cell: *cell,
            plain: None,
            durable: None,
            kasane: None,
            per_commit: None,
        };
        if on(Variant::Plain) {
            row.plain = Some(target.baseline(cell, "/plain", &body, knobs).await);
        }
        if on(Variant::Durable) {
            row.durable = Some(target.baseline(cell, "/durable", &body, knobs).await);
            target.db.clear().await;
        }
        if on(Variant::Kasane) {
            let commits = target.th.host.commit_stats();
            let before = (commits.commits(), commits.jobs());
            row.kasane = Some(target.kasane(cell, &body, knobs).await);
            let (n, jobs) = (commits.commits() - before.0, commits.jobs() - before.1);
            row.per_commit = (n > 0).then(|| jobs as f64 / n as f64);
            // Each cell starts from an empty queue (the host's usage counters follow, by
            // trigger), and bob's unread messages do not fill the disk.
            target.host_db.exec("DELETE FROM relay_queue").await;
        }
        println!("{}", console_line(&row));
        rows.push(row);
    }
    rows
}

impl Target {
    /// A host (quotas off, transform forced, `tweak` applied), alice and bob (her client
    /// padding as `padding` says), and the baseline server whose durable route commits to
    /// `db`.
    async fn start(db: Db, padding: bool, tweak: impl FnOnce(&mut Config)) -> Self {
        // bob never reads: the per-recipient queue quota would refuse the senders long
        // before a window ends, and alice sends more than a day's budget. Throughput is
        // measured, not the quota (its reads and writes still run).
        let th = start_with(|c| {
            c.messages.max_queue_messages = u64::MAX;
            c.messages.max_queue_bytes = u64::MAX;
            c.messages.max_user_bytes_per_day = u64::MAX;
            // Before the host loads it: on PostgreSQL the host imports the registry into
            // the database at its first start, and reads it from there.
            kasane_tests::force_registry(c, "sha256-chain");
            tweak(c);
        })
        .await;
        let alice = th.add_user("alice").await;
        th.add_user("bob").await;
        let tls = kasane_host::server::tls_config(&th.cfg.tls_cert, &th.cfg.tls_key).unwrap();
        let (baseline, stop) = spawn_baseline(tls, durable_commit(db.clone())).await;
        let ca = std::fs::read(&th.cfg.tls_cert).unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut config = th.client_config(Some(state.path().to_owned()));
        config.padding = padding;
        let client = Client::connect(config).await.unwrap();
        let host_db = Db::connect(&th.cfg.database_url).await;
        Self {
            th,
            client,
            alice,
            baseline,
            ca,
            db,
            host_db,
            _stop: stop,
            _state: state,
        }
    }

    /// `sessions × depth` connections posting `body` to `path`, one request in flight each.
    async fn baseline(&self, cell: &Cell, path: &'static str, body: &Bytes, k: &Knobs) -> Stats {
        let mut ops = Vec::new();
        for _ in 0..cell.sessions * cell.depth() {
            let conn = Arc::new(tokio::sync::Mutex::new(
                connect(self.baseline, &self.ca).await,
            ));
            let body = body.clone();
            ops.push(move || {
                let (conn, body) = (conn.clone(), body.clone());
                async move {
                    post_body(&mut *conn.lock().await, path, body).await;
                    true
                }
            });
        }
        drive_paced(k.window, ops, k.pace).await
    }

    /// `sessions` fresh sessions of alice, each with `depth` concurrent senders to bob.
    async fn kasane(&self, cell: &Cell, body: &Bytes, k: &Knobs) -> Stats {
        let mut sessions = Vec::new();
        for _ in 0..cell.sessions {
            let (s, _) = self
                .client
                .login("alice", &mut responder(&self.alice))
                .await
                .unwrap();
            sessions.push(Arc::new(s));
        }
        let mut ops = Vec::new();
        for s in &sessions {
            for _ in 0..cell.depth() {
                let (s, body) = (s.clone(), body.clone());
                ops.push(move || {
                    let (s, body) = (s.clone(), body.clone());
                    async move {
                        match s.send("bob", &body).await {
                            Ok(_) => true,
                            // The one refusal seen under load: a message whose sequence
                            // number fell out of the host's replay window while its
                            // session's other senders went on. Counted, not fatal.
                            Err(ClientError::Refused(RefusalReason::Reordered)) => false,
                            Err(e) => panic!("send: {e}"),
                        }
                    }
                });
            }
        }
        let stats = drive_paced(k.window, ops, k.pace).await;
        for s in sessions {
            close(s).await;
        }
        stats
    }
}

/// [`Knobs::pace`] from `KASANE_BENCH_PACE_MS`'s value (zero: none).
fn pace_ms(value: &str) -> Option<Duration> {
    let ms: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("KASANE_BENCH_PACE_MS: not a number of milliseconds: {value}"));
    (ms > 0.0).then(|| Duration::from_secs_f64(ms / 1e3))
}

/// [`Knobs::padding`] from `KASANE_BENCH_PADDING`'s value.
fn padding(value: &str) -> bool {
    match value {
        "on" => true,
        "off" => false,
        other => panic!("KASANE_BENCH_PADDING: {other:?} is neither on nor off"),
    }
}

/// Logs a session out once nothing else holds it.
async fn close(s: Arc<Session>) {
    if let Ok(s) = Arc::try_unwrap(s) {
        s.close().await.unwrap();
    }
}

/// The baseline server on `127.0.0.1:0`: the host's TLS config and transport, two routes.
async fn spawn_baseline(
    tls: Arc<rustls::ServerConfig>,
    durable: Arc<GroupCommit<Bytes, ()>>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/plain",
            post(|body: Bytes| async move {
                std::hint::black_box(body.len());
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/durable",
            post(
                |State(gc): State<Arc<GroupCommit<Bytes, ()>>>, body: Bytes| async move {
                    match gc.submit(body).await {
                        Ok(()) => StatusCode::NO_CONTENT,
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    }
                },
            ),
        )
        .with_state(durable)
        .layer(axum::extract::DefaultBodyLimit::max(2 << 20));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(kasane_host::server::serve_tls(
        listener,
        tls,
        app,
        async move {
            let _ = stopped.await;
        },
        kasane_host::server::SHUTDOWN_GRACE,
        kasane_host::config::HttpConfig::default(),
    ));
    (addr, stop)
}

/// The durable baseline's group commit: the host's limits, one row per body. On SQLite
/// the same access path as the host's message committer: a thread of its own with its own
/// connection (rusqlite, the host's durable settings), running each batch's transaction.
fn durable_commit(db: Db) -> Arc<GroupCommit<Bytes, ()>> {
    let limits = Config::default().messages.commit_limits();
    let gc = match db {
        Db::Sqlite(pool) => {
            let mut conn = sqlite_committer(pool.connect_options().get_filename());
            let commit = move |bodies: Vec<Bytes>| {
                insert_sqlite(&mut conn, &bodies).map_err(|e| e.to_string())?;
                Ok(vec![(); bodies.len()])
            };
            GroupCommit::spawn_thread(limits, "bench-durable", commit).unwrap()
        }
        Db::Pg(pool) => GroupCommit::spawn(limits, move |bodies: Vec<Bytes>| {
            let pool = pool.clone();
            async move {
                let n = bodies.len();
                insert_pg(&pool, bodies).await.map_err(|e| e.to_string())?;
                Ok::<_, String>(vec![(); n])
            }
        }),
    };
    Arc::new(gc)
}

/// A connection to the baseline's SQLite file with the host's durable settings (WAL is the
/// file's already).
fn sqlite_committer(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn
}

/// Inserts one row per body in one transaction; returns once it is committed.
fn insert_sqlite(conn: &mut rusqlite::Connection, bodies: &[Bytes]) -> rusqlite::Result<()> {
    let now = unix_now();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for b in bodies {
        tx.prepare_cached("INSERT INTO bodies (body, created_at) VALUES (?, ?)")?
            .execute(rusqlite::params![&b[..], now])?;
    }
    tx.commit()
}

/// Inserts one row per body in one transaction; returns once it is committed.
async fn insert_pg(pool: &PgPool, bodies: Vec<Bytes>) -> Result<(), sqlx::Error> {
    let now = unix_now();
    let mut tx = pool.begin().await?;
    for b in &bodies {
        sqlx::query("INSERT INTO bodies (body, created_at) VALUES ($1, $2)")
            .bind(&b[..])
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

impl Db {
    /// A pool on the database at `url` (`sqlite:` or `postgres:`).
    async fn connect(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::Sqlite(SqlitePool::connect(url).await.unwrap())
        } else {
            Self::Pg(PgPool::connect(url).await.unwrap())
        }
    }

    /// Runs one statement.
    async fn exec(&self, sql: &str) {
        match self {
            Self::Sqlite(pool) => {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
            Self::Pg(pool) => {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
        }
    }

    /// Empties the table (between cells: the disk is not filled by the baseline).
    async fn clear(&self) {
        match self {
            Self::Sqlite(pool) => {
                sqlx::query("DELETE FROM bodies")
                    .execute(pool)
                    .await
                    .unwrap();
            }
            Self::Pg(pool) => {
                sqlx::query("TRUNCATE bodies").execute(pool).await.unwrap();
            }
        }
    }
}

/// The durable baseline's SQLite database: the host's durable pool's settings (WAL,
/// `synchronous = FULL`, foreign keys, 30 s busy timeout), eight connections.
async fn sqlite_db(path: &Path) -> Db {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL, \
         created_at INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    Db::Sqlite(pool)
}

/// The durable baseline's PostgreSQL table, in the schema `url` selects.
async fn pg_db(url: &str) -> Db {
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE bodies (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
         body BYTEA NOT NULL, created_at BIGINT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    Db::Pg(pool)
}

/// A throwaway schema on the PostgreSQL at `url` (as the host's tests make them).
struct PgSchema {
    admin: PgPool,
    url: String,
    name: String,
}

impl PgSchema {
    async fn create(url: &str) -> Self {
        let name = format!(
            "kasane_bench_{:016x}",
            rand_core::RngCore::next_u64(&mut rand_core::OsRng)
        );
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&admin)
            .await
            .unwrap();
        Self {
            admin,
            url: url.to_owned(),
            name,
        }
    }

    /// A URL with the schema as the search path.
    fn url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.url, self.name)
    }

    async fn remove(self) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&self.admin)
            .await
            .unwrap();
        self.admin.close().await;
    }
}

/// The disk's fsync: `FSYNC_ROUNDS` × (append 4 KiB, `sync_data`) in `dir`; p50 and p99.
async fn fsync_probe(dir: &Path) -> (Duration, Duration) {
    let path = dir.join("fsync-probe");
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&path).unwrap();
        let block = [0x5au8; 4096];
        let mut samples = Vec::with_capacity(FSYNC_ROUNDS);
        for _ in 0..FSYNC_ROUNDS {
            let t = Instant::now();
            f.write_all(&block).unwrap();
            f.sync_data().unwrap();
            samples.push(t.elapsed());
        }
        drop(f);
        std::fs::remove_file(&path).unwrap();
        (
            percentile(&mut samples, 50.0),
            percentile(&mut samples, 99.0),
        )
    })
    .await
    .unwrap()
}

/// One HTTP/1.1 connection to the baseline server over TLS 1.3.
async fn connect(
    addr: SocketAddr,
    ca_pem: &[u8],
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let cfg = kasane_tests::client_tls(ca_pem, &[b"http/1.1"]);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// Posts `body` to `path`; expects 204.
async fn post_body(
    send: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    path: &str,
    body: Bytes,
) {
    let req = hyper::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(body))
        .unwrap();
    send.ready().await.unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    resp.into_body().collect().await.unwrap();
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `a / b` as a percentage, when both were measured.
fn ratio(a: Option<Stats>, b: Option<Stats>) -> Option<f64> {
    Some(100.0 * a?.rate() / b?.rate())
}

fn console_line(row: &Row) -> String {
    let cell = |s: Option<Stats>| {
        s.map_or_else(
            || "-".to_owned(),
            |s| format!("{:.0} {:.2}/{:.2}", s.rate(), ms(s.p50), ms(s.p99)),
        )
    };
    let pct = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}%"));
    let mut notes = match row.kasane {
        Some(k) if k.failed > 0 => format!(" ({} refused)", k.failed),
        _ => String::new(),
    };
    if let Some(b) = row.per_commit {
        notes.push_str(&format!(" ({b:.1} per commit)"));
    }
    format!(
        "{:<28} {:>20} {:>20} {:>20} {:>7} {:>7}{notes}",
        row.cell.name(),
        cell(row.plain),
        cell(row.durable),
        cell(row.kasane),
        pct(ratio(row.kasane, row.durable)),
        pct(ratio(row.kasane, row.plain)),
    )
}

/// CPU per message of each variant, as a Markdown table: the whole process's user + system
/// time in the window (client and host run in it), over the messages, and the cores busy.
fn print_cpu(rows: &[Row]) {
    println!();
    println!(
        "| row | plain µs CPU/msg (cores) | durable µs CPU/msg (cores) | kasane µs CPU/msg (cores) |"
    );
    println!("|---|---:|---:|---:|");
    let col = |s: Option<Stats>| {
        s.map_or_else(
            || "—".to_owned(),
            |s| {
                let us = s.cpu_per_op().as_secs_f64() * 1e6;
                format!("{us:.0} ({:.2})", s.cores())
            },
        )
    };
    for row in rows {
        println!(
            "| {} | {} | {} | {} |",
            row.cell.name(),
            col(row.plain),
            col(row.durable),
            col(row.kasane)
        );
    }
}

/// The results as a Markdown table (for BENCHMARKS.md), and ack p99 against fsync p99.
fn print_markdown(rows: &[Row], fsync: (Duration, Duration)) {
    println!();
    println!(
        "fsync p50 {:.3} ms, p99 {:.3} ms (append 4 KiB + sync_data, {FSYNC_ROUNDS} rounds)",
        ms(fsync.0),
        ms(fsync.1)
    );
    println!();
    println!(
        "| row | plain msg/s | MB/s | p50 / p99 ms | durable msg/s | MB/s | p50 / p99 ms \
         | kasane msg/s | MB/s | p50 / p99 ms | kasane / durable | kasane / plain |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let size = row.cell.size as f64;
        let cols = |s: Option<Stats>| {
            s.map_or_else(
                || "— | — | —".to_owned(),
                |s| {
                    format!(
                        "{:.0} | {:.2} | {:.2} / {:.2}",
                        s.rate(),
                        s.rate() * size / 1e6,
                        ms(s.p50),
                        ms(s.p99)
                    )
                },
            )
        };
        let pct = |r: Option<f64>| r.map_or_else(|| "—".to_owned(), |r| format!("{r:.1} %"));
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.cell.name(),
            cols(row.plain),
            cols(row.durable),
            cols(row.kasane),
            pct(ratio(row.kasane, row.durable)),
            pct(ratio(row.kasane, row.plain)),
        );
    }
    print_cpu(rows);
    println!();
    for row in rows {
        match row.kasane {
            Some(k) if k.failed > 0 => {
                println!(
                    "{}: {} kasane sends refused (reordered)",
                    row.cell.name(),
                    k.failed
                );
            }
            _ => {}
        }
    }
    for row in rows {
        if let Some(b) = row.per_commit {
            println!(
                "{}: {b:.1} kasane messages per group commit",
                row.cell.name()
            );
        }
    }
    for row in rows.iter().filter(|r| r.cell.sessions == 16) {
        if let Some(k) = row.kasane {
            let x = k.p99.as_secs_f64() / fsync.1.as_secs_f64();
            println!("{}: kasane ack p99 = {x:.2} × fsync p99", row.cell.name());
        }
    }
}
