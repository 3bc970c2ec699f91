//! The host's store on PostgreSQL over TLS, with the URL's standard parameters:
//! `sslmode=require` (encrypted, not verified) and `sslmode=verify-full&sslrootcert=…`.
//!
//! Runs against the local test server (127.0.0.1:5432, database `test`, TLS turned on by
//! `.ci/postgres-tls.sh`), whose CA is at `KASANE_TEST_PG_TLS_CA`. Without that variable the
//! tests print "skipped: KASANE_TEST_PG_TLS_CA not set" and pass — unless `CI=true`, where
//! they fail. The refusal of a plaintext-only server needs no database and always runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kasane_host::store::{self, NewUser, PgStore, Store as _, StoreError};
use kasane_os::report::Chain;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The test server, without TLS parameters (pg_hba trusts loopback for `postgres`).
const SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test CA's path, or `None` (after saying so) when the tests are to be skipped.
fn tls_ca() -> Option<PathBuf> {
    match std::env::var("KASANE_TEST_PG_TLS_CA") {
        Ok(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "KASANE_TEST_PG_TLS_CA must be set when CI=true (see .ci/postgres-tls.sh)"
            );
            println!("skipped: KASANE_TEST_PG_TLS_CA not set");
            None
        }
    }
}

/// `base` + `params` + a fresh schema as the search path, so tests do not share tables.
fn url_in_fresh_schema(base: &str, params: &str) -> String {
    let schema = format!("kasane_tls_{:016x}", rand::random::<u64>());
    format!("{base}?{params}&options=-c%20search_path%3D{schema}")
}

/// Creates the schema the URL's search path names (plain connection: that keeps working).
async fn create_schema_of(url: &str) -> String {
    let schema = url.rsplit("%3D").next().unwrap().to_owned();
    let admin = sqlx::PgPool::connect(SERVER).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    schema
}

async fn drop_schema(schema: &str) {
    let admin = sqlx::PgPool::connect(SERVER).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
}

/// Whether the store's own connection is encrypted, as the server sees it.
async fn server_says_encrypted(store: &PgStore) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn user(name: &str) -> NewUser {
    NewUser {
        name: name.to_owned(),
        opaque_record: name.as_bytes().to_vec(),
        pairs: Vec::new(),
    }
}

/// Opens the store at `url` both ways (`store::open` and `PgStore::open`), checks a user
/// round-trips, and that the connection is encrypted.
async fn store_works_encrypted(url: &str) {
    let schema = create_schema_of(url).await;
    let store = store::open(url).await.unwrap();
    assert_eq!(store.backend(), "postgres");
    store.create_user(&user("alice"), 100).await.unwrap();
    let alice = store.get_user("alice").await.unwrap().unwrap();
    assert_eq!((alice.name.as_str(), alice.created), ("alice", 100));

    let pg = PgStore::open(url).await.unwrap();
    assert!(
        server_says_encrypted(&pg).await,
        "the connection is not TLS"
    );
    assert_eq!(pg.list_users().await.unwrap().len(), 1);
    pg.close().await;
    drop(store);
    drop_schema(&schema).await;
}

#[tokio::test]
async fn sslmode_require_encrypts() {
    let Some(_ca) = tls_ca() else { return };
    store_works_encrypted(&url_in_fresh_schema(SERVER, "sslmode=require")).await;
}

#[tokio::test]
async fn plain_connection_is_not_encrypted() {
    // The check above can fail: without TLS the server says so.
    let Some(_ca) = tls_ca() else { return };
    let url = url_in_fresh_schema(SERVER, "sslmode=disable");
    let schema = create_schema_of(&url).await;
    let pg = PgStore::open(&url).await.unwrap();
    assert!(!server_says_encrypted(&pg).await);
    pg.close().await;
    drop_schema(&schema).await;
}

#[tokio::test]
async fn sslmode_verify_full_with_the_ca() {
    let Some(ca) = tls_ca() else { return };
    let params = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    store_works_encrypted(&url_in_fresh_schema(SERVER, &params)).await;
}

/// Makes a self-signed certificate unrelated to the server's, in `dir`.
fn unrelated_ca(dir: &Path) -> PathBuf {
    let cert = dir.join("other-ca.pem");
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=Unrelated test CA", "-keyout"])
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl failed");
    cert
}

#[tokio::test]
async fn sslmode_verify_full_with_a_wrong_ca_is_refused() {
    let Some(_ca) = tls_ca() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wrong = unrelated_ca(dir.path());
    let url = format!(
        "{SERVER}?sslmode=verify-full&sslrootcert={}",
        wrong.display()
    );
    let Err(err) = store::open(&url).await else {
        panic!("opened with a wrong CA")
    };
    let text = Chain(&err).to_string();
    assert!(matches!(err, StoreError::Tls(_)), "{text}");
    assert!(text.contains("certificate"), "{text}");
}

/// A server that answers PostgreSQL's SSLRequest with `N` (no TLS), once. Returns its port
/// and what the client sent after the `N` (a plaintext startup message, if it fell back).
async fn plaintext_only_server() -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 8];
        socket.read_exact(&mut request).await.unwrap();
        // Length 8, then the SSLRequest code 80877103.
        assert_eq!(request, [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
        socket.write_all(b"N").await.unwrap();
        // The client's next bytes, or none when it hangs up; then hang up too.
        let mut after = Vec::new();
        let _ = socket.read_buf(&mut after).await;
        after
    });
    (port, task)
}

#[tokio::test]
async fn sslmode_require_refuses_a_plaintext_only_server() {
    let (port, server) = plaintext_only_server().await;
    let url = format!("postgres://postgres@127.0.0.1:{port}/test?sslmode=require");
    let Err(err) = store::open(&url).await else {
        panic!("opened without TLS")
    };
    let text = Chain(&err).to_string();
    assert!(matches!(err, StoreError::Tls(_)), "{text}");
    let after = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the client kept the connection open")
        .unwrap();
    assert!(
        after.is_empty(),
        "the client went on in plaintext: {after:?}"
    );
}

#[tokio::test]
async fn sslmode_prefer_falls_back_to_plaintext() {
    // The counterpart that shows the server above can tell: `prefer` goes on in plaintext.
    let (port, server) = plaintext_only_server().await;
    let url = format!("postgres://postgres@127.0.0.1:{port}/test?sslmode=prefer");
    let open = tokio::spawn(async move { store::open(&url).await.map(|_| ()) });
    let after = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the client kept the connection open")
        .unwrap();
    assert!(!after.is_empty(), "no plaintext startup message");
    assert!(open.await.unwrap().is_err());
}
