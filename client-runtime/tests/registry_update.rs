//! The non-blocking registry update loop ([`kasane_client::registry::update`]) against the
//! registry's repository simulator.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a failure is a test failure"
)]

use kasane_client::registry::{Prefetched, Source, resume, update};
use kasane_client::{ClientError, ConnectError};
use kasane_registry::RegistryError;
use kasane_registry::simulator::RepositorySimulator;
use kasane_registry::trust::{Fetcher, TrustStore};

/// Serves the simulator's files "asynchronously", counting requests.
struct Sim<'a> {
    repo: &'a RepositorySimulator,
    requests: Vec<String>,
    fail: bool,
}

impl Source for Sim<'_> {
    async fn fetch(&mut self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, ClientError> {
        self.requests.push(path.to_owned());
        if self.fail {
            return Err(ConnectError::Tcp {
                addr: "simulator".into(),
                source: std::io::Error::other("down"),
            }
            .into());
        }
        tokio::task::yield_now().await;
        self.repo
            .fetch(path, max_len)
            .map_err(|e| ClientError::Registry(RegistryError::from(e).into()))
    }
}

const MODULE: &[u8] = b"\0asm\x01\0\0\0 a transform";

#[tokio::test]
async fn update_fetches_each_missing_file_once_then_admits() {
    let mut repo = RepositorySimulator::new();
    repo.publish("sha256-chain", MODULE).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = repo.client(dir.path()).unwrap();
    let mut sim = Sim {
        repo: &repo,
        requests: Vec::new(),
        fail: false,
    };
    update(&mut store, &mut sim).await.unwrap();
    for file in [
        "metadata/timestamp.json",
        "metadata/2.snapshot.json",
        "metadata/2.targets.json",
        "metadata/1.revocations.json",
    ] {
        assert!(
            sim.requests.contains(&file.to_owned()),
            "{file} not in {:?}",
            sim.requests
        );
    }
    // Each file once.
    let mut dedup = sim.requests.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), sim.requests.len(), "{:?}", sim.requests);

    let nonce = [7u8; 32];
    let ticket = repo.ticket(nonce, "sha256-chain").unwrap();
    let admitted = store.admit(&ticket, &nonce, MODULE, &repo).unwrap();
    assert_eq!(admitted.entry.name, "sha256-chain");
    assert_eq!(store.host_identity_keys().unwrap().len(), 1);
}

/// What `connect` does with a state directory an earlier update filled: it takes that up
/// without a download while it is unexpired; a login's ticket naming newer versions is then
/// refused with `TicketVersions` (the login updates and checks it again); expired metadata
/// is not taken up.
#[tokio::test]
async fn resume_takes_up_an_earlier_update_without_a_download() {
    let mut repo = RepositorySimulator::new();
    repo.publish("sha256-chain", MODULE).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Sim {
        repo: &repo,
        requests: Vec::new(),
        fail: false,
    };
    let mut store = repo.client(dir.path()).unwrap();
    assert!(
        !resume(&mut store, &mut sim).await,
        "nothing to take up yet"
    );
    update(&mut store, &mut sim).await.unwrap();
    let versions = store.versions();
    drop(store);

    sim.requests.clear();
    let mut store = TrustStore::open(dir.path(), repo.clock.clone()).unwrap();
    assert!(resume(&mut store, &mut sim).await);
    assert_eq!(sim.requests, Vec::<String>::new(), "downloaded");
    assert_eq!(store.versions(), versions);
    assert_eq!(store.host_identity_keys().unwrap().len(), 1);
    let nonce = [7u8; 32];
    let ticket = repo.ticket(nonce, "sha256-chain").unwrap();
    store.admit(&ticket, &nonce, MODULE, &repo).unwrap();

    // The registry moves on: the ticket names its new versions, which the resumed store
    // does not hold.
    let mut repo = repo;
    repo.publish("another", b"\0asm\x01\0\0\0 another").unwrap();
    let ticket = repo.ticket(nonce, "sha256-chain").unwrap();
    let stale = store.check_ticket(&ticket, &nonce, &repo).unwrap_err();
    assert!(
        matches!(stale, RegistryError::TicketVersions { .. }),
        "{stale}"
    );

    // Expired metadata is not taken up.
    repo.clock.advance(400 * 86_400);
    let mut store = TrustStore::open(dir.path(), repo.clock.clone()).unwrap();
    let mut sim = Sim {
        repo: &repo,
        requests: Vec::new(),
        fail: false,
    };
    assert!(
        !resume(&mut store, &mut sim).await,
        "expired metadata taken up"
    );
}

#[tokio::test]
async fn update_walks_a_new_root_and_sees_a_revocation() {
    let mut repo = RepositorySimulator::new();
    let entry = repo.publish("sha256-chain", MODULE).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = repo.client(dir.path()).unwrap();
    update(
        &mut store,
        &mut Sim {
            repo: &repo,
            requests: Vec::new(),
            fail: false,
        },
    )
    .await
    .unwrap();

    repo.bump_root().unwrap();
    repo.revoke(entry.sha256).unwrap();
    let mut sim = Sim {
        repo: &repo,
        requests: Vec::new(),
        fail: false,
    };
    update(&mut store, &mut sim).await.unwrap();
    assert!(
        sim.requests.contains(&"metadata/2.root.json".to_owned()),
        "{:?}",
        sim.requests
    );
    assert_eq!(store.root_version().unwrap(), 2);
    // Revoked: refused even for a module already held locally, as revoked (not any error).
    let refused = store.admit_cached(&entry.sha256);
    assert!(
        matches!(&refused, Err(RegistryError::Revoked { sha256 }) if *sha256 == entry.sha256.to_hex()),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_source_failure_is_the_error() {
    let repo = RepositorySimulator::new();
    let dir = tempfile::tempdir().unwrap();
    let mut store = repo.client(dir.path()).unwrap();
    let mut sim = Sim {
        repo: &repo,
        requests: Vec::new(),
        fail: true,
    };
    let err = update(&mut store, &mut sim).await.unwrap_err();
    assert!(matches!(err, ClientError::Connect(_)), "{err}");
    assert_eq!(sim.requests.len(), 1);
}

#[tokio::test]
async fn a_bad_file_is_a_registry_error() {
    let mut repo = RepositorySimulator::new();
    repo.publish("sha256-chain", MODULE).unwrap();
    repo.serve("metadata/timestamp.json", b"{not json".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let mut store = repo.client(dir.path()).unwrap();
    let err = update(
        &mut store,
        &mut Sim {
            repo: &repo,
            requests: Vec::new(),
            fail: false,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Registry(_)), "{err}");
}

#[test]
fn prefetched_records_the_missing_path_and_caps_length() {
    let mut files = Prefetched::new();
    assert!(files.fetch("metadata/timestamp.json", 10).is_err());
    assert_eq!(
        files.take_missing(),
        Some(("metadata/timestamp.json".to_owned(), 10))
    );
    assert_eq!(files.take_missing(), None);
    files.insert("metadata/timestamp.json".into(), Some(vec![1; 100]));
    files.insert("metadata/2.root.json".into(), None);
    assert!(matches!(
        files.fetch("metadata/timestamp.json", 10),
        Err(kasane_registry::TufError::TooLarge { max: 10, .. })
    ));
    assert_eq!(
        files
            .fetch("metadata/timestamp.json", 100)
            .unwrap()
            .map(|b| b.len()),
        Some(100)
    );
    assert_eq!(files.fetch("metadata/2.root.json", 10).unwrap(), None);
}
