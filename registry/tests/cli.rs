//! The `kasane-registry` binary, run for real in temporary directories: the publish flow, a
//! third-party author's flow, key files (modes, encryption, never overwritten, never
//! printed), role keys on a PKCS#11 token (SoftHSM2), a repository python-tuf's client
//! refreshes, the `test` harness on the built-in transforms and on the hostile corpus, `run`,
//! and the exit codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_kasane-registry");

/// The built-in transforms, with the params each is published with.
const BUILTINS: [(&str, &str); 6] = [
    ("blake2s-keyed", ""),
    ("hmac-sha256", ""),
    ("ocra", "OCRA-1:HOTP-SHA256-8:C-QN08"),
    ("pbkdf2-sha256", "1000"),
    ("sha256-chain", ""),
    ("sha256-wasi-c", ""),
];

/// The key files `init --dev` writes.
const DEV_KEYS: [&str; 7] = [
    "root.pem",
    "targets.pem",
    "online.pem",
    "revocations.pem",
    "authors.pem",
    "ticket.pem",
    "host.key",
];

fn dist(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-transforms/dist")
        .join(format!("{name}.wasm"))
}

/// A prerequisite of an optional test is missing: say why and skip, except under env `CI`,
/// where the test must run.
fn skip_or_fail(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI: {why}");
    eprintln!("SKIPPED: {why}");
}

/// Every output of one test, to check that no secret key ever appears in it.
#[derive(Default)]
struct Session {
    outputs: String,
    env: Vec<(String, String)>,
}

impl Session {
    fn run(&mut self, cwd: &Path, args: &[&str]) -> Output {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        self.outputs.push_str(&String::from_utf8_lossy(&out.stdout));
        self.outputs.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    }

    /// Runs and requires exit 0; returns stdout.
    fn ok(&mut self, cwd: &Path, args: &[&str]) -> String {
        let out = self.run(cwd, args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and requires exit `code`; returns (stdout, stderr).
    fn fails(&mut self, cwd: &Path, code: i32, args: &[&str]) -> (String, String) {
        let out = self.run(cwd, args);
        let (stdout, stderr) = (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: expected exit {code}\n{stdout}\n{stderr}"
        );
        (stdout, stderr)
    }

    /// No secret of any key file under `dir` (a PEM private key's base64 lines, a host key's
    /// `secret`) appears in any output so far, nor any PEM private key.
    fn assert_no_secret_printed(&self, dir: &Path) {
        assert!(!self.outputs.contains("PRIVATE KEY"), "{}", self.outputs);
        let mut checked = 0;
        for path in files_under(dir) {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            let secrets: Vec<String> = if text.contains("PRIVATE KEY-----") {
                text.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                    .map(str::to_owned)
                    .collect()
            } else if path.extension().is_some_and(|e| e == "key") {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                vec![v["secret"].as_str().unwrap().to_owned()]
            } else {
                continue;
            };
            assert!(!secrets.is_empty(), "{}", path.display());
            for s in secrets {
                assert!(
                    !self.outputs.contains(&s),
                    "secret of {} printed",
                    path.display()
                );
            }
            checked += 1;
        }
        assert!(checked > 0, "no key file found under {}", dir.display());
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// The metadata file of `role` at its highest version (`repo/metadata/N.<role>.json`).
fn latest(dir: &Path, role: &str) -> PathBuf {
    let meta = dir.join("repo/metadata");
    (1..1000)
        .map(|v| meta.join(format!("{v}.{role}.json")))
        .take_while(|p| p.exists())
        .last()
        .unwrap_or_else(|| panic!("no {role} metadata"))
}

/// A fresh development repository in `dir/repo` with keys in `dir/keys`; its fingerprint.
fn init(s: &mut Session, dir: &Path) -> String {
    let out = s.ok(dir, &["init", "--dev", "--repo", "repo", "--keys", "keys"]);
    for f in DEV_KEYS {
        assert_eq!(mode(&dir.join("keys").join(f)), 0o600, "{f}");
        assert!(out.contains(&format!("keys/{f}")), "{out}");
    }
    let fp = sha256_hex(&dir.join("repo/metadata/1.root.json"));
    assert!(out.contains(&fp), "init prints the root fingerprint: {out}");
    fp
}

fn add(s: &mut Session, dir: &Path, name: &str, params: &str) -> String {
    let module = dist(name);
    let module = module.to_str().unwrap();
    let mut args = vec![
        "add", "--repo", "repo", "--keys", "keys", module, "--name", name,
    ];
    if !params.is_empty() {
        args.extend(["--params-text", params]);
    }
    s.ok(dir, &args)
}

fn verify_args<'a>(fp: &'a str, state: &'a str) -> Vec<&'a str> {
    vec![
        "verify",
        "--repo",
        "repo",
        "--state",
        state,
        "--fingerprint",
        fp,
    ]
}

#[test]
fn publish_flow_with_every_builtin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    let fp = init(&mut s, dir);

    for (name, params) in BUILTINS {
        let out = add(&mut s, dir, name, params);
        assert!(out.contains(&format!("published {name}\n")), "{out}");
        let sha = sha256_hex(&dist(name));
        assert!(out.contains(&sha), "{out}");
        let len = std::fs::metadata(dist(name)).unwrap().len();
        assert!(out.contains(&format!("length  {len} bytes")), "{out}");
        let profile = if name == "sha256-wasi-c" {
            "wasi"
        } else {
            "pure"
        };
        assert!(out.contains(&format!("profile {profile}")), "{out}");
        assert!(out.contains("fuel    50000000 (tested: at most "), "{out}");
        assert!(
            out.contains(&format!("params  {}", hex::encode(params))),
            "{out}"
        );
        // The module itself, under its consistent-snapshot name.
        let file = dir.join(format!("repo/targets/{sha}.{name}"));
        assert_eq!(
            std::fs::read(&file).unwrap(),
            std::fs::read(dist(name)).unwrap()
        );
        assert_eq!(mode(&file), 0o644);
    }
    // Publishing again: targets 8, snapshot 8 (init made version 1 of each).
    let out = add(&mut s, dir, "sha256-chain", "");
    assert!(out.contains("role    targets version 8"), "{out}");
    assert!(out.contains("snapshot version 8"), "{out}");
    let out = s.ok(dir, &["snapshot", "--repo", "repo", "--keys", "keys"]);
    assert!(out.contains("snapshot version 9"), "{out}");

    ticket_for_a_published_module(&mut s, dir);
    verify_and_inspect(&mut s, dir, &fp);
    rotate_online_key(&mut s, dir, &fp);
    s.assert_no_secret_printed(dir);
}

/// `sign-ticket` for a published module (and `inspect` of the ticket); refused for another.
fn ticket_for_a_published_module(s: &mut Session, dir: &Path) {
    let nonce = "ab".repeat(32);
    let ticket = [
        "sign-ticket",
        "--repo",
        "repo",
        "--keys",
        "keys",
        "--nonce",
        &nonce,
    ];
    let out = s.ok(
        dir,
        &[&ticket[..], &["--name", "ocra", "--out", "ticket.json"]].concat(),
    );
    assert!(out.contains("ticket for ocra"), "{out}");
    let out = s.run(dir, &["inspect", "ticket.json"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&nonce) && text.contains(&sha256_hex(&dist("ocra"))));
    assert!(text.contains("kasane-ticket"), "{text}");
    // A ticket for a module that is not published is refused.
    let (_, err) = s.fails(dir, 1, &[&ticket[..], &["--name", "nope"]].concat());
    assert!(err.contains("nope"), "{err}");
}

/// A client pinned by fingerprint sees every module; `inspect` shows the targets role.
fn verify_and_inspect(s: &mut Session, dir: &Path, fp: &str) {
    let mut args = verify_args(fp, "state");
    args.extend(["--require", "ocra"]);
    let out = s.ok(dir, &args);
    for (name, _) in BUILTINS {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name}  ")))
            .unwrap_or_else(|| panic!("{name} not listed: {out}"));
        assert!(line.contains(&sha256_hex(&dist(name))) && line.ends_with("role targets"));
    }
    assert!(out.contains("6 runnable modules"), "{out}");
    assert_eq!(mode(&dir.join("state/state.json")), 0o600);

    // A wrong fingerprint is refused.
    let zero = "00".repeat(32);
    let (_, err) = s.fails(dir, 1, &verify_args(&zero, "state2"));
    assert!(err.contains("fingerprint"), "{err}");

    // inspect: readable JSON, and it says that nothing was verified.
    let targets = latest(dir, "targets");
    let out = s.run(dir, &["inspect", targets.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("NOT verified"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["type"], "targets");
    let listed = json["signed"]["targets"].as_object().unwrap();
    assert_eq!(
        listed.len(),
        BUILTINS.len() + 1,
        "modules and kasane/host-keys.json"
    );
    assert_eq!(
        listed["ocra"]["custom"]["kasane"]["params"],
        hex::encode("OCRA-1:HOTP-SHA256-8:C-QN08")
    );
}

/// Root rotation with a new online key.
fn rotate_online_key(s: &mut Session, dir: &Path, fp: &str) {
    // Root rotation with a new online key: a client pinned to root 1 follows it, and the old
    // online key can no longer publish.
    std::fs::create_dir(dir.join("new-keys")).unwrap();
    s.ok(dir, &["keygen", "--out", "new-keys/online.pem"]);
    let out = s.ok(
        dir,
        &[
            "rotate-root",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--new-online-key",
            "new-keys/online.pem",
        ],
    );
    assert!(
        out.contains("root version 2") && out.contains("online"),
        "{out}"
    );
    let out = s.ok(dir, &verify_args(fp, "state"));
    assert!(out.contains("root version 2"), "{out}");
    assert!(out.contains("6 runnable modules"), "{out}");
    let (_, err) = s.fails(dir, 1, &["snapshot", "--repo", "repo", "--keys", "keys"]);
    assert!(err.contains("does not verify"), "{err}");
    let snap = ["snapshot", "--repo", "repo", "--keys", "keys"];
    s.ok(
        dir,
        &[&snap[..], &["--online-key", "new-keys/online.pem"]].concat(),
    );
    s.ok(dir, &verify_args(fp, "state"));
}

/// `host-keys`: a new ticket key and a new identity key listed beside the old ones, the old
/// ones removed; tickets are refused under a key not listed and accepted once it is; a
/// client pinned to root 1 verifies every step; the last key of a list stays.
#[test]
fn host_keys_rotate_ticket_and_identity_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    let fp = init(&mut s, dir);
    add(&mut s, dir, "sha256-chain", "");
    let listed = |s: &mut Session, kind: &str| -> Vec<String> {
        let out = s.ok(dir, &["host-keys", "--repo", "repo"]);
        let prefix = format!("{kind:8}  ");
        out.lines()
            .filter_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    };
    let base = ["host-keys", "--repo", "repo", "--keys", "keys"];
    let change =
        |s: &mut Session, flag: &str, key: &str| s.ok(dir, &[&base[..], &[flag, key]].concat());
    // A change refused with exit `code`: its error message.
    let refused = |s: &mut Session, code: i32, flag: &str, key: &str| {
        s.fails(dir, code, &[&base[..], &[flag, key]].concat()).1
    };
    let (old_ticket, old_identity) = (listed(&mut s, "ticket"), listed(&mut s, "identity"));
    assert_eq!((old_ticket.len(), old_identity.len()), (1, 1));

    // A new ticket key: refused until listed, accepted after.
    let nonce = "cd".repeat(32);
    let ticket = [
        "sign-ticket",
        "--repo",
        "repo",
        "--nonce",
        &nonce,
        "--name",
        "sha256-chain",
        "--ticket-key",
        "ticket2.pem",
    ];
    s.ok(dir, &["keygen", "--out", "ticket2.pem"]);
    let (_, err) = s.fails(dir, 1, &ticket);
    assert!(err.contains("is not a ticket key"), "{err}");
    let out = change(&mut s, "--add-ticket", "ticket2.pem.pub");
    assert!(
        out.contains("added ticket key") && out.contains("targets version 3"),
        "{out}"
    );
    assert_eq!(listed(&mut s, "ticket").len(), 2);
    s.ok(dir, &ticket);
    let err = refused(&mut s, 1, "--add-ticket", "ticket2.pem.pub");
    assert!(err.contains("already one of the ticket keys"), "{err}");
    let out = change(&mut s, "--remove-ticket", &old_ticket[0]);
    assert!(out.contains("removed ticket key"), "{out}");
    assert_ne!(listed(&mut s, "ticket"), old_ticket);

    // A new identity key, then the old one removed (named by the host's own key file).
    let err = refused(&mut s, 1, "--add-identity", "keys/host.key");
    assert!(err.contains("already one of the identity keys"), "{err}");
    let err = refused(&mut s, 1, "--remove-identity", &old_identity[0]);
    assert!(err.contains("the last identity key"), "{err}");
    let err = refused(&mut s, 1, "--add-identity", &"00".repeat(32));
    assert!(err.contains("not a usable Ed25519 public key"), "{err}");
    s.ok(dir, &["keygen", "--out", "identity3.pem"]);
    let new_identity = change(&mut s, "--add-identity", "identity3.pem.pub")
        .lines()
        .find_map(|l| l.strip_prefix("added identity key "))
        .and_then(|l| l.split(';').next())
        .unwrap()
        .to_owned();
    change(&mut s, "--remove-identity", "keys/host.key");
    assert_eq!(listed(&mut s, "identity"), [new_identity]);

    // Bad input: not a key, two changes at once.
    let err = refused(&mut s, 2, "--add-ticket", "no-such-file");
    assert!(err.contains("no-such-file"), "{err}");
    s.fails(
        dir,
        2,
        &[&base[..], &["--add-ticket", "a", "--remove-ticket", "b"]].concat(),
    );
    let out = s.ok(dir, &verify_args(&fp, "state"));
    assert!(out.contains("1 runnable module"), "{out}");
    s.assert_no_secret_printed(dir);
}

#[test]
fn third_party_author_flow_then_revocations() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    let fp = init(&mut s, dir);

    // The author, on its own machine: a key (ECDSA P-256 here), then its signed role file.
    let out = s.ok(dir, &["keygen", "--ecdsa", "--out", "acme.pem"]);
    assert_eq!(mode(&dir.join("acme.pem")), 0o600);
    assert!(
        out.contains("ecdsa-sha2-nistp256") && out.contains("key id"),
        "{out}"
    );
    let public = std::fs::read_to_string(dir.join("acme.pem.pub")).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
    delegate_and_take_in(&mut s, dir, &fp);
    apply_and_refuse(&mut s, dir);
    revoke_hash_then_author(&mut s, dir, &fp);
    s.assert_no_secret_printed(dir);
}

/// The registry delegates acme/* to the author's key and takes in its signed role file.
fn delegate_and_take_in(s: &mut Session, dir: &Path, fp: &str) {
    let hmac = dist("hmac-sha256");
    let hmac = hmac.to_str().unwrap();
    let keys = ["--repo", "repo", "--keys", "keys"];

    // The registry delegates acme/* to that key.
    let out = s.ok(
        dir,
        &[
            &["delegate"][..],
            &keys,
            &["--author", "acme", "--author-key", "acme.pem.pub"],
        ]
        .concat(),
    );
    assert!(out.contains("delegated acme/* to author acme"), "{out}");

    let sign = ["author-sign", "--author", "acme", "--repo", "repo"];
    let out = s.ok(
        dir,
        &[
            &sign[..],
            &[
                "--key",
                "acme.pem",
                "--out",
                "acme.json",
                hmac,
                "--name",
                "acme/hmac",
            ],
        ]
        .concat(),
    );
    assert!(out.contains("listed acme/hmac"), "{out}");
    // The registry takes the file in; the module must come with it.
    let import = [
        "snapshot", "--repo", "repo", "--keys", "keys", "--author", "acme",
    ];
    let (_, err) = s.fails(
        dir,
        1,
        &[&import[..], &["--author-file", "acme.json"]].concat(),
    );
    assert!(
        err.contains("--module") && err.contains("acme/hmac"),
        "{err}"
    );
    let out = s.ok(
        dir,
        &[
            &import[..],
            &["--author-file", "acme.json", "--module", hmac],
        ]
        .concat(),
    );
    assert!(
        out.contains("accepted the role file of author acme: acme/hmac"),
        "{out}"
    );
    let mut args = verify_args(fp, "state");
    args.extend(["--require", "acme/hmac"]);
    let out = s.ok(dir, &args);
    assert!(
        out.contains("acme/hmac") && out.contains("role acme"),
        "{out}"
    );
}

/// `author-sign --apply`; a name outside the author's and a file signed by another key are
/// refused.
fn apply_and_refuse(s: &mut Session, dir: &Path) {
    let chain = dist("sha256-chain");
    let chain = chain.to_str().unwrap();
    let sign = ["author-sign", "--author", "acme", "--repo", "repo"];
    let import = [
        "snapshot", "--repo", "repo", "--keys", "keys", "--author", "acme",
    ];
    // The operator's shortcut: author-sign --apply adds a second module (role version 2).
    let out = s.ok(
        dir,
        &[
            &sign[..],
            &[
                "--key",
                "acme.pem",
                "--apply",
                "--keys-dir",
                "keys",
                chain,
                "--name",
                "acme/chain",
            ],
        ]
        .concat(),
    );
    assert!(out.contains("role    acme version 2"), "{out}");
    // A name outside acme/ is refused before signing; a file signed by another key is
    // refused by the registry.
    let (_, err) = s.fails(
        dir,
        1,
        &[
            &sign[..],
            &[
                "--key",
                "acme.pem",
                "--out",
                "x.json",
                chain,
                "--name",
                "sha256-chain",
            ],
        ]
        .concat(),
    );
    assert!(err.contains("outside the author's names"), "{err}");
    s.ok(dir, &["keygen", "--out", "mallory.pem"]);
    s.ok(
        dir,
        &[
            &sign[..],
            &[
                "--key",
                "mallory.pem",
                "--out",
                "evil.json",
                chain,
                "--name",
                "acme/x",
            ],
        ]
        .concat(),
    );
    let (_, err) = s.fails(
        dir,
        1,
        &[&import[..], &["--author-file", "evil.json"]].concat(),
    );
    assert!(err.contains("evil.json") && err.contains("acme"), "{err}");
}

/// Revoking a module's hash, then the author.
fn revoke_hash_then_author(s: &mut Session, dir: &Path, fp: &str) {
    let hmac = dist("hmac-sha256");
    let hmac = hmac.to_str().unwrap();
    let keys = ["--repo", "repo", "--keys", "keys"];
    // Revoke one module's hash: no longer runnable.
    s.ok(dir, &[&["revoke"][..], &keys, &["--module", hmac]].concat());
    let mut args = verify_args(fp, "state");
    args.extend(["--require", "acme/hmac"]);
    let (out, err) = s.fails(dir, 1, &args);
    assert!(!out.contains("acme/hmac "), "{out}");
    assert!(out.contains("acme/chain"), "{out}");
    assert!(
        err.contains("not runnable") && err.contains("acme/hmac"),
        "{err}"
    );

    // Revoke the author: nothing it signed resolves.
    let out = s.ok(
        dir,
        &[&["revoke"][..], &keys, &["--author", "acme"]].concat(),
    );
    assert!(out.contains("revoked author acme"), "{out}");
    let mut args = verify_args(fp, "state");
    args.extend(["--require", "acme/chain"]);
    let (out, _) = s.fails(dir, 1, &args);
    assert!(out.contains("0 runnable modules"), "{out}");
}

#[test]
fn keygen_writes_0600_encrypts_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    let out = s.ok(dir, &["keygen", "--out", "k.pem"]);
    assert_eq!(mode(&dir.join("k.pem")), 0o600);
    assert_eq!(mode(&dir.join("k.pem.pub")), 0o644);
    assert!(out.contains("key id") && out.contains("ed25519"), "{out}");
    let before = std::fs::read(dir.join("k.pem")).unwrap();
    assert!(String::from_utf8_lossy(&before).starts_with("-----BEGIN PRIVATE KEY-----"));
    let (_, err) = s.fails(dir, 1, &["keygen", "--out", "k.pem"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(dir.join("k.pem")).unwrap(), before);

    encrypted_key_needs_its_passphrase(&mut s, dir);
    secret_files_refused(&mut s, dir);
}

/// Encrypted under the passphrase in an env variable; unusable without it.
fn encrypted_key_needs_its_passphrase(s: &mut Session, dir: &Path) {
    s.env
        .push(("KASANE_TEST_PASS".into(), "correct horse battery".into()));
    s.ok(
        dir,
        &[
            "keygen",
            "--out",
            "e.pem",
            "--passphrase-env",
            "KASANE_TEST_PASS",
        ],
    );
    let text = std::fs::read_to_string(dir.join("e.pem")).unwrap();
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{text}"
    );
    init(s, dir);
    let tick = [
        "sign-ticket",
        "--repo",
        "repo",
        "--nonce",
        &"11".repeat(32),
        "--name",
        "x",
    ];
    let (_, err) = s.fails(dir, 1, &[&tick[..], &["--ticket-key", "e.pem"]].concat());
    assert!(
        err.contains("is encrypted") && err.contains("--passphrase-env"),
        "{err}"
    );
    s.env.push(("KASANE_TEST_WRONG".into(), "wrong".into()));
    let (_, err) = s.fails(
        dir,
        1,
        &[
            &tick[..],
            &[
                "--ticket-key",
                "e.pem",
                "--passphrase-env",
                "KASANE_TEST_WRONG",
            ],
        ]
        .concat(),
    );
    assert!(err.contains("wrong passphrase"), "{err}");
}

/// A second `init` and secret key files handed to the wrong command are refused.
fn secret_files_refused(s: &mut Session, dir: &Path) {
    // Init refuses a directory that already holds a repository.
    let (_, err) = s.fails(dir, 1, &["init", "--dev", "--repo", "repo", "--keys", "k2"]);
    assert!(err.contains("already holds a repository"), "{err}");
    // A secret key file handed to the wrong command is refused without echoing it.
    for args in [
        &["inspect", "k.pem"][..],
        &[
            "verify", "--repo", "repo", "--state", "st", "--root", "k.pem",
        ],
        &["test", "k.pem"],
        &[
            "snapshot",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--author",
            "a",
            "--author-file",
            "k.pem",
        ],
        &["run", "k.pem", "--input", "k.pem"],
    ] {
        let out = s.run(dir, args);
        assert!(!out.status.success(), "{args:?}");
    }
    // One line.
    let (_, err) = s.fails(dir, 1, &["inspect", "k.pem"]);
    assert_eq!(err.lines().count(), 1, "{err}");
    s.assert_no_secret_printed(dir);
}

#[test]
fn test_passes_on_each_builtin_and_reports_fuel() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Session::default();
    for (name, params) in BUILTINS {
        let module = dist(name);
        let mut args = vec!["test", module.to_str().unwrap()];
        if !params.is_empty() {
            args.extend(["--params-text", params]);
        }
        let out = s.ok(tmp.path(), &args);
        let last = out.lines().last().unwrap();
        let used: u64 = last
            .strip_prefix("passed: fuel used at most ")
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {out}"));
        assert!(used > 0, "{name}: {out}");
        for check in ["abi", "compile", "derive", "determinism", "fuel", "output"] {
            assert!(
                out.lines().any(|l| l.starts_with(&format!("ok   {check}"))),
                "{name}: {check}: {out}"
            );
        }
    }
    // Without its params, pbkdf2 fails and says why.
    let module = dist("pbkdf2-sha256");
    let (out, err) = s.fails(tmp.path(), 1, &["test", module.to_str().unwrap()]);
    assert!(
        out.contains("FAIL derive") && out.contains("params"),
        "{out}"
    );
    assert!(err.contains("module failed: derive"), "{err}");
}

/// An ABI v1 module whose `kasane_derive` body is `derive`, with `extra` fields.
fn abi_module_with(alloc: &str, derive: &str, extra: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module
  {extra}
  (memory (export "memory") 1)
  (func (export "kasane_abi_v1"))
  {alloc}
  (func (export "kasane_derive") (param $in i32) (param $in_len i32) (param $out i32) (param $cap i32) (result i32)
    {derive}))"#
    ))
    .unwrap()
}

const BUMP_ALLOC: &str = r#"
  (global $next (mut i32) (i32.const 1024))
  (func (export "kasane_alloc") (param $len i32) (result i32)
    (global.get $next)
    (global.set $next (i32.add (global.get $next) (local.get $len))))"#;

fn abi_module(derive: &str, extra: &str) -> Vec<u8> {
    abi_module_with(BUMP_ALLOC, derive, extra)
}

const FULL_ABI: &str = r#"(func (export "kasane_abi_v1"))
  (func (export "kasane_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "kasane_derive") (param i32 i32 i32 i32) (result i32) (i32.const 1))"#;

/// The hostile corpus of the foundation issue: (case, module, profile, words the failure must
/// name).
fn hostile() -> Vec<(&'static str, Vec<u8>, &'static str, Vec<&'static str>)> {
    let alloc_huge_out = r#"
  (func (export "kasane_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.eq (local.get $len) (i32.const 64))
      (then (i32.const -65536))
      (else (i32.const 1024))))"#;
    let module = |body: &str| wat::parse_str(format!("(module {body})")).unwrap();
    vec![
        (
            "infinite loop in derive",
            abi_module("(loop $l (br $l)) (i32.const 0)", ""),
            "auto",
            vec!["FAIL derive", "ran out of fuel"],
        ),
        (
            "infinite loop in start",
            abi_module("(i32.const 1)", "(func $s (loop $l (br $l))) (start $s)"),
            "auto",
            vec!["FAIL derive", "ran out of fuel"],
        ),
        (
            "memory.grow bomb",
            abi_module(
                "(loop $g (br_if $g (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) (loop $l (br $l)) (i32.const 0)",
                "",
            ),
            "auto",
            vec!["FAIL derive", "linear memory limit"],
        ),
        (
            "table.grow bomb",
            abi_module(
                "(loop $g (br_if $g (i32.ne (table.grow $t (ref.null func) (i32.const 100)) (i32.const -1)))) (unreachable)",
                "(table $t 1 funcref)",
            ),
            "auto",
            vec!["FAIL derive", "table size limit"],
        ),
        (
            "deep recursion",
            abi_module(
                "(call $r (i32.const 0))",
                "(func $r (param i32) (result i32) (call $r (i32.add (local.get 0) (i32.const 1))))",
            ),
            "auto",
            vec!["FAIL derive", "overflowed its wasm stack"],
        ),
        (
            "unreachable",
            abi_module("(unreachable)", ""),
            "auto",
            vec!["FAIL derive", "trapped", "unreachable"],
        ),
        (
            "out-of-bounds output pointer",
            abi_module_with(alloc_huge_out, "(i32.const 32)", ""),
            "auto",
            vec!["FAIL derive", "bad output", "outside memory"],
        ),
        (
            "returned length 0",
            abi_module("(i32.const 0)", ""),
            "auto",
            vec!["FAIL derive", "bad output", "length 0"],
        ),
        (
            "returned length 65",
            abi_module("(i32.const 65)", ""),
            "auto",
            vec!["FAIL derive", "bad output", "length 65"],
        ),
        (
            "import in the pure profile",
            abi_module("(i32.const 1)", r#"(import "env" "f" (func))"#),
            "pure",
            vec!["FAIL abi", "forbidden import env::f"],
        ),
        (
            "import in the pure profile, auto-detected",
            abi_module("(i32.const 1)", r#"(import "env" "f" (func))"#),
            "auto",
            vec!["FAIL abi", "forbidden import env::f"],
        ),
        (
            "non-WASI import in the wasi profile",
            abi_module("(i32.const 1)", r#"(import "env" "g" (func))"#),
            "wasi",
            vec!["FAIL abi", "forbidden import env::g"],
        ),
        (
            "threads: shared memory",
            module(&format!(
                r#"(memory (export "memory") 1 1 shared) {FULL_ABI}"#
            )),
            "auto",
            vec!["FAIL abi", "unsupported wasm feature", "threads"],
        ),
        (
            "memory64",
            module(&format!(r#"(memory (export "memory") i64 1) {FULL_ABI}"#)),
            "auto",
            vec!["FAIL abi", "unsupported wasm feature", "memory64"],
        ),
        (
            "relaxed SIMD",
            abi_module(
                "(i32.const 1)",
                "(func (result v128) (i32x4.relaxed_trunc_f32x4_s (v128.const i32x4 0 0 0 0)))",
            ),
            "auto",
            vec!["FAIL abi", "unsupported wasm feature", "relaxed"],
        ),
        (
            "missing export",
            module(
                r#"(memory (export "memory") 1) (func (export "kasane_abi_v1"))
                 (func (export "kasane_alloc") (param i32) (result i32) (i32.const 1024))"#,
            ),
            "auto",
            vec!["FAIL abi", "missing export kasane_derive"],
        ),
        (
            "missing ABI marker",
            module(
                r#"(memory (export "memory") 1)
                 (func (export "kasane_alloc") (param i32) (result i32) (i32.const 1024))
                 (func (export "kasane_derive") (param i32 i32 i32 i32) (result i32) (i32.const 1))"#,
            ),
            "auto",
            vec!["FAIL abi", "missing export kasane_abi_v1"],
        ),
        (
            "over the size cap",
            vec![0u8; (1 << 20) + 1],
            "auto",
            vec!["FAIL abi", "larger than the limit"],
        ),
        (
            "not wasm",
            b"(module)".to_vec(),
            "auto",
            vec!["FAIL abi", "invalid wasm module"],
        ),
    ]
}

#[test]
fn test_fails_on_each_hostile_module_naming_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Session::default();
    for (i, (case, wasm, profile, words)) in hostile().into_iter().enumerate() {
        let path = tmp.path().join(format!("hostile-{i}.wasm"));
        std::fs::write(&path, &wasm).unwrap();
        let (out, err) = s.fails(
            tmp.path(),
            1,
            &[
                "test",
                path.to_str().unwrap(),
                "--fuel",
                "1000000",
                "--profile",
                profile,
            ],
        );
        for w in words {
            assert!(out.contains(w), "{case}: {w:?} not in\n{out}");
        }
        assert!(err.contains("module failed"), "{case}: {err}");
    }
}

#[test]
fn run_prints_hex_and_fuel_with_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    std::fs::write(
        dir.join("input.json"),
        r#"{"purpose":"auth","challenges":["3132"],"responses":["00ff"],"counter":1}"#,
    )
    .unwrap();
    let chain = dist("sha256-chain");
    let out = s.ok(
        dir,
        &["run", chain.to_str().unwrap(), "--input", "input.json"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0].len(), 64);
    assert!(lines[0].bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(lines[1].parse::<u64>().unwrap() > 0);

    // What a WASI module writes is shown, its escape sequences made inert.
    let noisy = abi_module(
        r#"(i32.store (i32.const 200) (i32.const 100))
    (i32.store (i32.const 204) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 200) (i32.const 1) (i32.const 300)))
    (i32.store (local.get $out) (i32.const 7))
    (i32.const 8)"#,
        r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (data (i32.const 100) "\1b[2Jhi")"#,
    );
    std::fs::write(dir.join("noisy.wasm"), noisy).unwrap();
    let out = s.run(dir, &["run", "noisy.wasm", "--input", "input.json"]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("module output: \\u{1b}[2Jhi"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    // The module fails: exit 1, the typed error named.
    std::fs::write(dir.join("trap.wasm"), abi_module("(unreachable)", "")).unwrap();
    let (_, err) = s.fails(dir, 1, &["run", "trap.wasm", "--input", "input.json"]);
    assert!(err.contains("unreachable"), "{err}");
    // Out of fuel: exit 1.
    let (_, err) = s.fails(
        dir,
        1,
        &[
            "run",
            chain.to_str().unwrap(),
            "--input",
            "input.json",
            "--fuel",
            "10",
        ],
    );
    assert!(err.contains("out of fuel"), "{err}");
    // Bad input: exit 2.
    std::fs::write(dir.join("bad.json"), r#"{"countr":1}"#).unwrap();
    let (_, err) = s.fails(
        dir,
        2,
        &["run", chain.to_str().unwrap(), "--input", "bad.json"],
    );
    assert!(err.contains("unknown field"), "{err}");
    s.fails(dir, 2, &["run", chain.to_str().unwrap()]);
    s.fails(dir, 2, &["run", "missing.wasm", "--input", "input.json"]);
}

#[test]
fn test_checks_known_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    let input = r#"{"purpose":"auth","challenges":["3132"],"responses":["00ff"],"counter":1}"#;
    std::fs::write(dir.join("input.json"), input).unwrap();
    let chain = dist("sha256-chain");
    let chain = chain.to_str().unwrap();
    let out = s.ok(dir, &["run", chain, "--input", "input.json"]);
    let key = out.lines().next().unwrap();
    std::fs::write(
        dir.join("good.json"),
        format!(r#"[{{"input":{input},"output":"{key}"}}]"#),
    )
    .unwrap();
    let out = s.ok(dir, &["test", chain, "--vectors", "good.json"]);
    assert!(out.contains("ok   vectors"), "{out}");
    std::fs::write(
        dir.join("bad.json"),
        format!(r#"[{{"input":{input},"output":"{}"}}]"#, "00".repeat(32)),
    )
    .unwrap();
    let (out, err) = s.fails(dir, 1, &["test", chain, "--vectors", "bad.json"]);
    assert!(out.contains("FAIL vectors"), "{out}");
    assert!(err.contains("vectors"), "{err}");
}

#[test]
fn add_validates_with_the_sandbox_before_publishing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    init(&mut s, dir);
    let files_before = files_under(&dir.join("repo"));

    // A module with a forbidden import is refused, --force or not.
    let bad = dir.join("bad.wasm");
    std::fs::write(
        &bad,
        abi_module("(i32.const 1)", r#"(import "env" "f" (func))"#),
    )
    .unwrap();
    for force in [false, true] {
        let mut args = vec![
            "add",
            "--repo",
            "repo",
            "--keys",
            "keys",
            bad.to_str().unwrap(),
            "--name",
            "bad",
        ];
        if force {
            args.push("--force");
        }
        let (_, err) = s.fails(dir, 1, &args);
        assert!(
            err.contains("refused by the sandbox") && err.contains("forbidden import env::f"),
            "{err}"
        );
    }
    // A module failing the harness (ocra without a suite) is refused, unless --force.
    let ocra = dist("ocra");
    let args = [
        "add",
        "--repo",
        "repo",
        "--keys",
        "keys",
        ocra.to_str().unwrap(),
        "--name",
        "ocra",
    ];
    let (_, err) = s.fails(dir, 1, &args);
    assert!(err.contains("--force") && err.contains("params"), "{err}");
    assert_eq!(
        files_under(&dir.join("repo")),
        files_before,
        "nothing written"
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    let out = s.ok(dir, &forced);
    assert!(
        out.contains("published ocra") && out.contains("forced past failed check derive"),
        "{out}"
    );
    // A bad name is refused with the rule it breaks.
    let chain = dist("sha256-chain");
    let (_, err) = s.fails(
        dir,
        1,
        &[
            "add",
            "--repo",
            "repo",
            "--keys",
            "keys",
            chain.to_str().unwrap(),
            "--name",
            "../etc",
        ],
    );
    assert!(err.contains("bad name"), "{err}");
    s.assert_no_secret_printed(dir);
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    init(&mut s, dir);
    let chain = dist("sha256-chain");
    let chain = chain.to_str().unwrap();
    let add = [
        "add", "--repo", "repo", "--keys", "keys", chain, "--name", "x",
    ];
    let revoke = ["revoke", "--repo", "repo", "--keys", "keys"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["frobnicate"], "frobnicate"),
        (
            [&add[..], &["--params", "zz"]].concat(),
            "--params is not valid hex",
        ),
        (
            [
                &add[..],
                &["--targets-key", "pkcs11:token=t;object=o?pin-value=1234"],
            ]
            .concat(),
            "KASANE_PKCS11_PIN",
        ),
        (
            [&add[..], &["--targets-key", "pkcs11:object=o"]].concat(),
            "token=<label> missing",
        ),
        (
            vec![
                "sign-ticket",
                "--repo",
                "repo",
                "--keys",
                "keys",
                "--nonce",
                "00",
                "--name",
                "x",
            ],
            "--nonce must be 32 bytes",
        ),
        (revoke.to_vec(), "required"),
        (
            [&revoke[..], &["--hash", "00", "--module", chain]].concat(),
            "cannot be used with",
        ),
        (
            vec!["verify", "--repo", "repo", "--state", "st"],
            "--fingerprint",
        ),
        (vec!["test", chain, "--headroom", "0.5"], "--headroom"),
    ];
    for (args, needle) in cases {
        let (_, err) = s.fails(dir, 2, &args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // Failures that are not argument errors exit 1, naming the cause.
    let (_, err) = s.fails(dir, 1, &["snapshot", "--repo", "repo", "--keys", "nokeys"]);
    assert!(
        err.contains("online key") && err.contains("nokeys"),
        "{err}"
    );
    let (_, err) = s.fails(dir, 1, &["snapshot", "--repo", "repo"]);
    assert!(err.contains("--online-key KEY or --keys DIR"), "{err}");
    let (_, err) = s.fails(
        dir,
        1,
        &[
            &add[..],
            &[
                "--targets-key",
                "pkcs11:token=t;object=o",
                "--pkcs11-module",
                "/nonexistent.so",
            ],
        ]
        .concat(),
    );
    assert!(err.contains("pkcs11:token=t;object=o"), "{err}");
    let (_, err) = s.fails(dir, 1, &["inspect", chain]);
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
}

/// `refresh --role R`: R gets the next version, a later expiry and the same content; the
/// repository verifies afterwards; a role that is not offline is refused as a usage error.
#[test]
fn refresh_re_signs_each_offline_role_with_unchanged_content() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    let fp = init(&mut s, dir);
    let signed = |p: &Path| -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()).unwrap()["signed"]
            .clone()
    };
    for role in ["targets", "revocations", "authors", "root"] {
        let before = signed(&latest(dir, role));
        let snap = signed(&latest(dir, "snapshot"))["version"]
            .as_u64()
            .unwrap();
        let out = s.ok(
            dir,
            &[
                "refresh", "--repo", "repo", "--keys", "keys", "--role", role,
            ],
        );
        let after = signed(&latest(dir, role));
        let v = before["version"].as_u64().unwrap();
        assert_eq!(after["version"].as_u64(), Some(v + 1), "{role}");
        assert!(
            out.contains(&format!("re-signed {role} version {}", v + 1)),
            "{out}"
        );
        assert!(
            after["expires"].as_str() >= before["expires"].as_str(),
            "{role}"
        );
        let body = |mut v: serde_json::Value| {
            let o = v.as_object_mut().unwrap();
            o.remove("version");
            o.remove("expires");
            v
        };
        assert_eq!(body(after), body(before), "{role}: content changed");
        let snap_after = signed(&latest(dir, "snapshot"))["version"]
            .as_u64()
            .unwrap();
        assert_eq!(snap_after, snap + 1, "{role}: snapshot re-signed");
        s.ok(dir, &verify_args(&fp, "state"));
    }
    let (_, err) = s.fails(
        dir,
        2,
        &["refresh", "--repo", "repo", "--role", "timestamp"],
    );
    assert!(err.contains("timestamp"), "{err}");
    // The lock file is never served (outside metadata/ and targets/) and holds nothing.
    assert_eq!(std::fs::read(dir.join("repo/.lock")).unwrap(), b"");
}

#[test]
fn every_command_has_help() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Session::default();
    let out = s.ok(tmp.path(), &["--help"]);
    assert!(
        out.contains("KASANE_PKCS11_PIN") && out.contains("online"),
        "{out}"
    );
    for cmd in [
        "keygen",
        "init",
        "add",
        "revoke",
        "delegate",
        "author-sign",
        "rotate-root",
        "refresh",
        "snapshot",
        "sign-ticket",
        "verify",
        "inspect",
        "run",
        "test",
    ] {
        assert!(out.contains(cmd), "{cmd} missing from --help");
        let help = s.ok(tmp.path(), &[cmd, "--help"]);
        assert!(help.contains("Usage: kasane-registry"), "{cmd}: {help}");
    }
    let help = s.ok(tmp.path(), &["inspect", "--help"]);
    assert!(help.contains("WITHOUT verifying"), "{help}");
    let help = s.ok(tmp.path(), &["keygen", "--help"]);
    for flag in ["--ecdsa", "--passphrase-env", "--pkcs11", "--pkcs11-module"] {
        assert!(help.contains(flag), "keygen {flag}: {help}");
    }
    let help = s.ok(tmp.path(), &["add", "--help"]);
    for flag in [
        "--targets-key",
        "--online-key",
        "--keys",
        "KASANE_PKCS11_MODULE",
    ] {
        assert!(help.contains(flag), "add {flag}: {help}");
    }
}

#[test]
fn init_with_two_of_three_root_holders_and_existing_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    existing_keys(&mut s, dir);
    // The host hands over only its identity's public half.
    let host = kasane_registry::keys::SecretKey::generate();
    kasane_registry::keys::write_public_key_file(&dir.join("host.pub"), &host.public()).unwrap();
    init_two_of_three(&mut s, dir, &host);
    rotate_with_two_of_three(&mut s, dir);
}

/// Three root holders' keys (h1, h2, h3) and every other role's key in keys/ (targets
/// encrypted under env KASANE_TEST_PASS).
fn existing_keys(s: &mut Session, dir: &Path) {
    s.env
        .push(("KASANE_TEST_PASS".into(), "targets passphrase".into()));
    s.ok(dir, &["keygen", "--out", "h1.pem"]);
    s.ok(dir, &["keygen", "--out", "h2.pem"]);
    s.ok(dir, &["keygen", "--ecdsa", "--out", "h3.pem"]);
    std::fs::create_dir(dir.join("keys")).unwrap();
    let enc = ["--passphrase-env", "KASANE_TEST_PASS"];
    s.ok(
        dir,
        &[&["keygen", "--out", "keys/targets.pem"][..], &enc].concat(),
    );
    for role in ["online", "revocations", "authors", "ticket"] {
        s.ok(dir, &["keygen", "--out", &format!("keys/{role}.pem")]);
    }
}

/// `init` with 2 of 3 root holders, existing role keys and the host's public key.
fn init_two_of_three(s: &mut Session, dir: &Path, host: &kasane_registry::keys::SecretKey) {
    let enc = ["--passphrase-env", "KASANE_TEST_PASS"];
    let init = |repo: &'static str| {
        vec![
            "init",
            "--repo",
            repo,
            "--keys",
            "keys",
            "--host-public-key",
            "host.pub",
            "--root-key",
            "h1.pem",
            "--root-public-key",
            "h3.pem.pub",
            "--root-threshold",
            "2",
        ]
    };
    // One signature cannot meet a threshold of 2; an encrypted key needs its passphrase.
    let (_, err) = s.fails(
        dir,
        1,
        &[
            &init("repo1")[..],
            &["--root-public-key", "h2.pem.pub"],
            &enc,
        ]
        .concat(),
    );
    assert!(err.contains("does not verify"), "{err}");
    assert!(!dir.join("repo1/metadata/1.root.json").exists());
    let (_, err) = s.fails(
        dir,
        1,
        &[&init("repo1")[..], &["--root-key", "h2.pem"]].concat(),
    );
    assert!(
        err.contains("targets key") && err.contains("is encrypted"),
        "{err}"
    );
    let out = s.ok(
        dir,
        &[&init("repo")[..], &["--root-key", "h2.pem"], &enc].concat(),
    );
    assert!(out.contains("2 of 3 root keys"), "{out}");
    assert!(!dir.join("keys/root.pem").exists(), "no dev root key");
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("repo/metadata/1.root.json")).unwrap())
            .unwrap();
    assert_eq!(root["signatures"].as_array().unwrap().len(), 2);
    let out = s.ok(
        dir,
        &[
            "verify",
            "--repo",
            "repo",
            "--state",
            "state",
            "--root",
            "repo/metadata/1.root.json",
        ],
    );
    assert!(out.contains("root version 1"), "{out}");
    let hk = files_under(&dir.join("repo/targets/kasane"))
        .into_iter()
        .find(|p| p.to_str().unwrap().ends_with("host-keys.json"))
        .unwrap();
    let hk = std::fs::read_to_string(hk).unwrap();
    assert!(hk.contains(&host.public().to_hex()), "{hk}");
}

/// Rotation: one holder alone cannot sign root 2; two can, with a new online key.
fn rotate_with_two_of_three(s: &mut Session, dir: &Path) {
    s.ok(dir, &["keygen", "--out", "online2.pem"]);
    let rotate = [
        "rotate-root",
        "--repo",
        "repo",
        "--keys",
        "keys",
        "--new-online-key",
        "online2.pem",
    ];
    let (_, err) = s.fails(dir, 1, &[&rotate[..], &["--root-key", "h1.pem"]].concat());
    assert!(err.contains("signing root version 2"), "{err}");
    // A new root key would make the 2-of-3 root 1 of 1: refused, nothing written.
    s.ok(dir, &["keygen", "--out", "h4.pem"]);
    let (_, err) = s.fails(
        dir,
        1,
        &[
            &rotate[..3],
            &["--keys", "keys", "--new-root-key", "h4.pem"],
            &["--root-key", "h1.pem", "--root-key", "h3.pem"],
        ]
        .concat(),
    );
    assert!(err.contains("held by 3 keys (threshold 2)"), "{err}");
    assert!(!dir.join("repo/metadata/2.root.json").exists());
    let out = s.ok(
        dir,
        &[
            &rotate[..],
            &["--root-key", "h1.pem", "--root-key", "h3.pem"],
        ]
        .concat(),
    );
    assert!(out.contains("root version 2"), "{out}");
    let fp = sha256_hex(&dir.join("repo/metadata/1.root.json"));
    let out = s.ok(dir, &verify_args(&fp, "state"));
    assert!(out.contains("root version 2"), "{out}");
    s.assert_no_secret_printed(dir);
}

#[test]
fn verify_refuses_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    let fp = init(&mut s, dir);
    add(&mut s, dir, "sha256-chain", "");
    add(&mut s, dir, "hmac-sha256", "");
    let out = s.ok(dir, &verify_args(&fp, "state"));
    assert!(out.contains("2 runnable modules"), "{out}");

    // One byte changed in the current targets metadata: the snapshot no longer matches it.
    let targets = latest(dir, "targets");
    let good = std::fs::read(&targets).unwrap();
    let mut bad = good.clone();
    let i = bad.iter().rposition(|b| b.is_ascii_digit()).unwrap();
    bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
    std::fs::write(&targets, &bad).unwrap();
    let (_, err) = s.fails(dir, 1, &verify_args(&fp, "state"));
    assert!(err.contains("targets"), "{err}");
    std::fs::write(&targets, &good).unwrap();

    // A timestamp signed by a key root does not name is refused.
    let ts = dir.join("repo/metadata/timestamp.json");
    let good = std::fs::read(&ts).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v["signed"]["version"] = serde_json::json!(99);
    std::fs::write(&ts, serde_json::to_vec(&v).unwrap()).unwrap();
    let (_, err) = s.fails(dir, 1, &verify_args(&fp, "state"));
    assert!(err.contains("timestamp"), "{err}");
    std::fs::write(&ts, &good).unwrap();
    let out = s.ok(dir, &verify_args(&fp, "state"));
    assert!(out.contains("2 runnable modules"), "{out}");
}

/// The PKCS#11 tests: the binary must be built with `pkcs11`
/// (CI: `cargo test -p kasane-registry --features cli,pkcs11 --test cli`).
#[cfg(feature = "pkcs11")]
mod softhsm {
    use super::*;

    const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
    const TOKEN: &str = "kasane-cli";
    const USER_PIN: &str = "user-pin-4321";

    /// A private SoftHSM2 token directory under `dir` with token [`TOKEN`] initialized; the
    /// environment the binary needs to use it. `None` (after saying why) when SoftHSM is missing.
    fn softhsm_token(dir: &Path) -> Option<Vec<(String, String)>> {
        let module =
            std::env::var("KASANE_PKCS11_MODULE").unwrap_or_else(|_| SOFTHSM_MODULE.into());
        if !Path::new(&module).is_file() {
            skip_or_fail(&format!("no PKCS#11 module at {module} (install softhsm2)"));
            return None;
        }
        std::fs::create_dir(dir.join("tokens")).unwrap();
        let conf = dir.join("softhsm2.conf");
        let text = format!(
            "directories.tokendir = {}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.display()
        );
        std::fs::write(&conf, text).unwrap();
        let conf = conf.to_str().unwrap().to_owned();
        let init = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", TOKEN])
            .args(["--so-pin", "so-pin-8765", "--pin", USER_PIN])
            .env("SOFTHSM2_CONF", &conf)
            .output();
        match init {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!("softhsm2-util: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => {
                skip_or_fail(&format!("softhsm2-util cannot run: {e}"));
                return None;
            }
        }
        Some(vec![
            ("SOFTHSM2_CONF".into(), conf),
            ("KASANE_PKCS11_MODULE".into(), module),
            ("KASANE_PKCS11_PIN".into(), USER_PIN.into()),
        ])
    }

    /// Every role key on a SoftHSM2 token: the repository is made and `targets` signed through
    /// PKCS#11, a pinned client verifies it, and no file anywhere holds a private key. Needs the
    /// binary built with `pkcs11` (CI: `cargo test -p kasane-registry --features cli,pkcs11 --test cli`).
    #[test]
    fn role_keys_on_softhsm_sign_a_repository_that_verifies() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let Some(env) = softhsm_token(dir) else {
            return;
        };
        let mut s = Session {
            env,
            ..Session::default()
        };
        let uri = |role: &str| format!("pkcs11:token={TOKEN};object=kasane-{role}");
        let targets_key_id = keys_on_token(&mut s, dir, &uri);
        let host = kasane_registry::keys::SecretKey::generate();
        kasane_registry::keys::write_public_key_file(&dir.join("host.pub"), &host.public())
            .unwrap();
        let (r, t, o) = (uri("root"), uri("targets"), uri("online"));
        let (v, a, k) = (uri("revocations"), uri("authors"), uri("ticket"));
        let out = s.ok(
            dir,
            &[
                "init",
                "--repo",
                "repo",
                "--host-public-key",
                "host.pub",
                "--root-key",
                &r,
                "--targets-key",
                &t,
                "--online-key",
                &o,
                "--revocations-key",
                &v,
                "--authors-key",
                &a,
                "--ticket-key",
                &k,
            ],
        );
        assert!(out.contains("1 of 1 root keys"), "{out}");
        let chain = dist("sha256-chain");
        s.ok(
            dir,
            &[
                "add",
                "--repo",
                "repo",
                "--targets-key",
                &t,
                "--online-key",
                &o,
                chain.to_str().unwrap(),
                "--name",
                "sha256-chain",
            ],
        );
        let fp = sha256_hex(&dir.join("repo/metadata/1.root.json"));
        let mut args = verify_args(&fp, "state");
        args.extend(["--require", "sha256-chain"]);
        let out = s.ok(dir, &args);
        assert!(out.contains("1 runnable modules"), "{out}");
        // targets version 2 was signed by the token's ECDSA key.
        let out = s.ok(dir, &["inspect", "repo/metadata/2.targets.json"]);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["signed_by"], serde_json::json!([targets_key_id]));
        s.ok(
            dir,
            &[
                "sign-ticket",
                "--repo",
                "repo",
                "--ticket-key",
                &k,
                "--nonce",
                &"42".repeat(32),
                "--name",
                "sha256-chain",
                "--out",
                "ticket.json",
            ],
        );
        // A wrong PIN is refused, and the PIN is not printed.
        s.env.retain(|(n, _)| n != "KASANE_PKCS11_PIN");
        s.env
            .push(("KASANE_PKCS11_PIN".into(), "wrong-pin-000".into()));
        let (_, err) = s.fails(dir, 1, &["snapshot", "--repo", "repo", "--online-key", &o]);
        assert!(
            err.contains("PIN") && !err.contains("wrong-pin-000"),
            "{err}"
        );

        assert_no_private_key_anywhere(&s, dir);
    }

    /// `keygen --pkcs11` for every role on the token (targets ECDSA); the targets key's id.
    fn keys_on_token(s: &mut Session, dir: &Path, uri: &dyn Fn(&str) -> String) -> String {
        let mut targets_key_id = String::new();
        for role in [
            "root",
            "targets",
            "online",
            "revocations",
            "authors",
            "ticket",
        ] {
            let u = uri(role);
            let mut args = vec!["keygen", "--pkcs11", &u];
            let out_file = format!("{role}.pub");
            args.extend(["--out", &out_file]);
            if role == "targets" {
                args.push("--ecdsa");
            }
            let out = s.ok(dir, &args);
            assert!(out.contains("(on the token)"), "{out}");
            if role == "targets" {
                targets_key_id = out
                    .lines()
                    .find_map(|l| l.strip_prefix("key id      "))
                    .unwrap()
                    .to_owned();
            }
        }
        targets_key_id
    }

    /// No file under `dir` holds a private key, and no output showed one or the PIN.
    fn assert_no_private_key_anywhere(s: &Session, dir: &Path) {
        let files = files_under(dir);
        assert!(files.len() > 10, "{files:?}");
        for f in files {
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            assert!(
                !text.contains("PRIVATE KEY"),
                "private key in {}",
                f.display()
            );
        }
        assert!(!s.outputs.contains("PRIVATE KEY") && !s.outputs.contains(USER_PIN));
    }
}

/// Stops the child (an HTTP server) when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `python -m http.server` serving `dir` on a free loopback port; the port.
fn serve(python: &str, dir: &Path) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(python)
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (server, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("http.server did not start on port {port}");
}

/// A development repository with a first-party module (ocra) and an author's (acme/chain,
/// through `author-sign --apply`).
fn interop_repository(s: &mut Session, dir: &Path) {
    init(s, dir);
    add(s, dir, "ocra", "OCRA-1:HOTP-SHA256-8:C-QN08");
    s.ok(dir, &["keygen", "--out", "acme.pem"]);
    let keys = ["--repo", "repo", "--keys", "keys"];
    s.ok(
        dir,
        &[
            &["delegate"][..],
            &keys,
            &["--author", "acme", "--author-key", "acme.pem.pub"],
        ]
        .concat(),
    );
    let chain = dist("sha256-chain");
    s.ok(
        dir,
        &[
            "author-sign",
            "--author",
            "acme",
            "--repo",
            "repo",
            "--key",
            "acme.pem",
            "--apply",
            "--keys-dir",
            "keys",
            chain.to_str().unwrap(),
            "--name",
            "acme/chain",
        ],
    );
}

/// A repository the CLI made (first-party and author modules) is refreshed by python-tuf's
/// ngclient (tests/tuf-interop/refresh.py) over HTTP: every target found through the right
/// delegation, with Kasane's `custom` block, and downloaded with the right bytes.
#[test]
fn python_tuf_refreshes_a_repository_the_cli_made() {
    let python = std::env::var("KASANE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let refresh = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/tuf-interop/refresh.py");
    let has_tuf = Command::new(&python)
        .args(["-c", "import tuf"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tuf {
        skip_or_fail(&format!(
            "{python} cannot import tuf (set KASANE_TEST_PYTHON to a venv with tests/tuf-interop/requirements.txt)"
        ));
        return;
    }
    assert!(refresh.is_file(), "{} missing", refresh.display());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    interop_repository(&mut s, dir);
    let chain = dist("sha256-chain");
    let (_server, port) = serve(&python, &dir.join("repo"));
    let base = format!("http://127.0.0.1:{port}");
    let out = Command::new(&python)
        .arg(&refresh)
        .args(["--metadata-url", &format!("{base}/metadata/")])
        .args(["--targets-url", &format!("{base}/targets/")])
        .args([
            "--root",
            dir.join("repo/metadata/1.root.json").to_str().unwrap(),
        ])
        .args(["--dir", dir.join("client").to_str().unwrap()])
        .args(["--target", "ocra", "--target", "acme/chain"])
        .args(["--target", "kasane/revocations.json"])
        .args(["--expect-sha256", &sha256_hex(&dist("ocra"))])
        .args(["--expect-sha256", &sha256_hex(&chain)])
        .args([
            "--expect-sha256",
            &sha256_hex(
                &files_under(&dir.join("repo/targets/kasane"))
                    .into_iter()
                    .find(|p| p.to_str().unwrap().ends_with("revocations.json"))
                    .unwrap(),
            ),
        ])
        .env("no_proxy", "127.0.0.1,localhost")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "refresh.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, module, path) in [
        (&lines[0], dist("ocra"), vec!["targets"]),
        (&lines[1], chain.clone(), vec!["targets", "authors", "acme"]),
    ] {
        let file = PathBuf::from(line["file"].as_str().unwrap());
        assert_eq!(
            std::fs::read(file).unwrap(),
            std::fs::read(&module).unwrap()
        );
        assert_eq!(line["delegation_path"], serde_json::json!(path), "{line}");
        assert_eq!(line["custom"]["kasane"]["fuel"], 50_000_000, "{line}");
    }
    assert_eq!(
        lines[0]["custom"]["kasane"]["params"],
        hex::encode("OCRA-1:HOTP-SHA256-8:C-QN08")
    );
    assert_eq!(
        lines[2]["delegation_path"],
        serde_json::json!(["targets", "revocations"])
    );
}

/// A module whose auth output is the same 32 bytes whatever the input: with it in front of a
/// login, the password alone would log in (issue 14 item 7).
fn constant_output_module() -> Vec<u8> {
    abi_module(
        "(i64.store (local.get $out) (i64.const 7))
         (i64.store offset=8 (local.get $out) (i64.const 7))
         (i64.store offset=16 (local.get $out) (i64.const 7))
         (i64.store offset=24 (local.get $out) (i64.const 7))
         (i32.const 32)",
        "",
    )
}

#[test]
fn a_constant_output_module_is_refused_by_test_add_and_author_sign_even_with_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    init(&mut s, dir);
    let files_before = files_under(&dir.join("repo"));
    let module = dir.join("constant.wasm");
    std::fs::write(&module, constant_output_module()).unwrap();
    let module = module.to_str().unwrap();

    let (out, err) = s.fails(dir, 1, &["test", module]);
    assert!(
        out.contains("ok   derive") && out.contains("ok   determinism"),
        "{out}"
    );
    assert!(
        out.contains("FAIL inputs") && out.contains("ignores response 0"),
        "{out}"
    );
    assert!(err.contains("inputs"), "{err}");

    let add = ["add", "--repo", "repo", "--keys", "keys", module];
    for force in [&[][..], &["--force"][..]] {
        let args = [&add[..], &["--name", "constant"], force].concat();
        let (_, err) = s.fails(dir, 1, &args);
        assert!(
            err.contains("whatever --force says") && err.contains("ignores response 0"),
            "{err}"
        );
    }
    s.ok(dir, &["keygen", "--out", "acme.pem"]);
    let sign = [
        "author-sign",
        "--author",
        "acme",
        "--repo",
        "repo",
        "--key",
        "acme.pem",
        "--out",
        "acme.json",
        module,
        "--name",
        "acme/constant",
        "--force",
    ];
    let (_, err) = s.fails(dir, 1, &sign);
    assert!(err.contains("ignores response 0"), "{err}");
    assert!(!dir.join("acme.json").exists());
    assert_eq!(
        files_under(&dir.join("repo")),
        files_before,
        "nothing published"
    );
}

#[test]
fn delegate_max_weight_caps_what_the_author_signs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    let fp = init(&mut s, dir);
    let help = s.ok(dir, &["delegate", "--help"]);
    assert!(
        help.contains("--max-weight") && help.contains("x-kasane-max-weight"),
        "{help}"
    );
    s.ok(dir, &["keygen", "--out", "acme.pem"]);
    let keys = ["--repo", "repo", "--keys", "keys"];
    let delegate = [
        "delegate",
        "--author",
        "acme",
        "--author-key",
        "acme.pem.pub",
    ];
    let out = s.ok(
        dir,
        &[&delegate[..], &keys, &["--max-weight", "3"]].concat(),
    );
    assert!(out.contains("weight capped at 3"), "{out}");
    let hmac = dist("hmac-sha256");
    let hmac = hmac.to_str().unwrap();
    let sign = [
        "author-sign",
        "--author",
        "acme",
        "--repo",
        "repo",
        "--key",
        "acme.pem",
        "--out",
        "acme.json",
        hmac,
        "--name",
        "acme/hmac",
        "--weight",
        "4294967295",
    ];
    let out = s.ok(dir, &sign);
    assert!(out.contains("weight  4294967295"), "{out}");
    let import = [
        "snapshot",
        "--author",
        "acme",
        "--author-file",
        "acme.json",
        "--module",
        hmac,
    ];
    s.ok(dir, &[&import[..], &keys].concat());
    let out = s.ok(dir, &verify_args(&fp, "state"));
    let line = out.lines().find(|l| l.contains("acme/hmac")).unwrap();
    assert!(line.contains("weight 3  role acme"), "{out}");
}
