//! The `kasane-registry` binary, run for real in temporary directories: the publish flow, a
//! third-party author's flow, key file modes, no secret in any output, the `test` harness on
//! the built-in transforms and on the hostile corpus, `run`, and the exit codes.
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

fn dist(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-transforms/dist")
        .join(format!("{name}.wasm"))
}

/// Every output of one test, to check that no secret key ever appears in it.
#[derive(Default)]
struct Session {
    outputs: String,
}

impl Session {
    fn run(&mut self, cwd: &Path, args: &[&str]) -> Output {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(cwd)
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

    /// No secret key of any key file under `dir` appears in any output so far.
    fn assert_no_secret_printed(&self, dir: &Path) {
        let mut checked = 0;
        for path in key_files(dir) {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let secret = v["secret"].as_str().unwrap();
            assert_eq!(secret.len(), 64);
            assert!(
                !self.outputs.contains(secret),
                "secret of {} printed",
                path.display()
            );
            checked += 1;
        }
        assert!(checked > 0, "no key file found under {}", dir.display());
    }
}

/// Every secret key file (`*.key`) under `dir`, recursively.
fn key_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(key_files(&p));
        } else if p.extension().is_some_and(|e| e == "key") {
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

/// A fresh repository in `dir/repo` with keys in `dir/keys`.
fn init(s: &mut Session, dir: &Path) -> String {
    let out = s.ok(dir, &["init", "--repo", "repo", "--keys", "keys"]);
    for role in ["root", "targets", "snapshot", "revocations", "host"] {
        let p = dir.join(format!("keys/{role}.key"));
        assert_eq!(mode(&p), 0o600, "{role}.key");
        assert!(out.contains(&format!("keys/{role}.key")), "{out}");
    }
    let fp = sha256_hex(&dir.join("repo/1.root.json"));
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

#[test]
fn publish_flow_with_every_builtin() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    let fp = init(&mut s, dir);

    for (name, params) in BUILTINS {
        let out = add(&mut s, dir, name, params);
        assert!(
            out.contains(&format!("published {name} version 1")),
            "{out}"
        );
        assert!(out.contains(&sha256_hex(&dist(name))), "{out}");
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
    }
    // Publishing again bumps the entry's version.
    let out = add(&mut s, dir, "sha256-chain", "");
    assert!(out.contains("published sha256-chain version 2"), "{out}");

    let out = s.ok(dir, &["snapshot", "--repo", "repo", "--keys", "keys"]);
    assert!(out.contains("snapshot version 2"), "{out}");

    // The online key signs a ticket for a client's nonce.
    let nonce = "ab".repeat(32);
    let out = s.ok(
        dir,
        &[
            "sign-ticket",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--nonce",
            &nonce,
            "--name",
            "ocra",
            "--out",
            "ticket.json",
        ],
    );
    assert!(out.contains("ticket for ocra"), "{out}");
    let out = s.run(dir, &["inspect", "ticket.json"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&nonce) && text.contains(&sha256_hex(&dist("ocra"))));
    assert!(
        text.contains("application/vnd.kasane.ticket.v1+json"),
        "{text}"
    );
    // A ticket for a module that is not published is refused.
    let (_, err) = s.fails(
        dir,
        1,
        &[
            "sign-ticket",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--nonce",
            &nonce,
            "--name",
            "nope",
        ],
    );
    assert!(err.contains("nope"), "{err}");

    // A client pinned by fingerprint sees every module.
    let out = s.ok(
        dir,
        &[
            "verify",
            "--repo",
            "repo",
            "--state",
            "state",
            "--fingerprint",
            &fp,
            "--require",
            "ocra",
        ],
    );
    for (name, _) in BUILTINS {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name}  ")))
            .unwrap_or_else(|| panic!("{name} not listed: {out}"));
        assert!(line.contains(&sha256_hex(&dist(name))) && line.ends_with("first-party"));
    }
    assert!(out.contains("6 runnable modules"), "{out}");
    assert_eq!(mode(&dir.join("state/state.json")), 0o600);

    // A wrong fingerprint is refused.
    let (_, err) = s.fails(
        dir,
        1,
        &[
            "verify",
            "--repo",
            "repo",
            "--state",
            "state2",
            "--fingerprint",
            &"00".repeat(32),
        ],
    );
    assert!(err.contains("fingerprint"), "{err}");

    // inspect: readable JSON, and it says that nothing was verified.
    let out = s.run(dir, &["inspect", "repo/targets.json"]);
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("NOT verified"), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    assert_eq!(json["targets"].as_array().unwrap().len(), BUILTINS.len());
    assert_eq!(json["targets"][2]["name"], "ocra");
    assert_eq!(
        json["targets"][2]["params"],
        hex::encode("OCRA-1:HOTP-SHA256-8:C-QN08")
    );

    // Root rotation with a new snapshot key: the same client follows it.
    std::fs::create_dir(dir.join("new-keys")).unwrap();
    s.ok(dir, &["keygen", "--out", "new-keys/snapshot.key"]);
    let out = s.ok(
        dir,
        &[
            "rotate-root",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--new-keys",
            "new-keys",
        ],
    );
    assert!(
        out.contains("root version 2") && out.contains("snapshot"),
        "{out}"
    );
    let out = s.ok(dir, &["verify", "--repo", "repo", "--state", "state"]);
    assert!(out.contains("root version 2"), "{out}");
    assert!(out.contains("6 runnable modules"), "{out}");

    s.assert_no_secret_printed(dir);
}

#[test]
fn third_party_author_flow_then_revocations() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    let fp = init(&mut s, dir);

    // The author, on its own machine: a key, then its signed file.
    let out = s.ok(dir, &["keygen", "--out", "acme.key"]);
    assert_eq!(mode(&dir.join("acme.key")), 0o600);
    let public: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("acme.key.pub")).unwrap()).unwrap();
    assert!(out.contains(public["public"].as_str().unwrap()), "{out}");
    assert!(
        !std::fs::read_to_string(dir.join("acme.key.pub"))
            .unwrap()
            .contains("secret")
    );
    let hmac = dist("hmac-sha256");
    let chain = dist("sha256-chain");
    let out = s.ok(
        dir,
        &[
            "author-sign",
            "--author",
            "acme",
            "--key",
            "acme.key",
            "--out",
            "acme.json",
            hmac.to_str().unwrap(),
            "--name",
            "acme/hmac",
        ],
    );
    assert!(out.contains("listed acme/hmac version 1"), "{out}");

    // The registry: delegate, take the file in, snapshot.
    s.ok(
        dir,
        &[
            "delegate",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--author",
            "acme",
            "--prefix",
            "acme/",
            "--author-key",
            "acme.key.pub",
        ],
    );
    let out = s.ok(
        dir,
        &[
            "snapshot",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--author-file",
            "acme.json",
        ],
    );
    assert!(out.contains("accepted authors/acme"), "{out}");

    let verify = |s: &mut Session, pin: bool, require: &str| {
        let mut args = vec!["verify", "--repo", "repo", "--state", "state"];
        if pin {
            args.extend(["--fingerprint", fp.as_str()]);
        }
        args.extend(["--require", require]);
        s.run(dir, &args)
    };
    let out = verify(&mut s, true, "acme/hmac");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("acme/hmac") && text.contains("author acme"),
        "{text}"
    );

    // The author adds a second module to its file (version 2).
    s.ok(
        dir,
        &[
            "author-sign",
            "--author",
            "acme",
            "--key",
            "acme.key",
            "--previous",
            "repo/authors/acme.json",
            "--out",
            "acme2.json",
            chain.to_str().unwrap(),
            "--name",
            "acme/chain",
        ],
    );
    // An author file listing a name outside the prefix is refused by the registry.
    s.ok(
        dir,
        &[
            "author-sign",
            "--author",
            "acme",
            "--key",
            "acme.key",
            "--previous",
            "acme2.json",
            "--out",
            "evil.json",
            chain.to_str().unwrap(),
            "--name",
            "sha256-chain",
        ],
    );
    let (_, err) = s.fails(
        dir,
        1,
        &[
            "snapshot",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--author-file",
            "evil.json",
        ],
    );
    assert!(err.contains("evil.json") && err.contains("acme/"), "{err}");
    s.ok(
        dir,
        &[
            "snapshot",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--author-file",
            "acme2.json",
        ],
    );
    let out = verify(&mut s, false, "acme/chain");
    assert!(out.status.success(), "{out:?}");

    // Revoke one module's hash: the same trust store refuses it.
    s.ok(
        dir,
        &[
            "revoke",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--module",
            hmac.to_str().unwrap(),
        ],
    );
    s.ok(dir, &["snapshot", "--repo", "repo", "--keys", "keys"]);
    let (out, err) = s.fails(
        dir,
        1,
        &[
            "verify",
            "--repo",
            "repo",
            "--state",
            "state",
            "--require",
            "acme/hmac",
        ],
    );
    assert!(!out.contains("acme/hmac "), "{out}");
    assert!(out.contains("acme/chain"), "{out}");
    assert!(
        err.contains("not runnable") && err.contains("acme/hmac"),
        "{err}"
    );

    // Revoke the author's key: everything it signed is refused.
    s.ok(
        dir,
        &[
            "revoke",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--author-key",
            "acme.key.pub",
        ],
    );
    s.ok(dir, &["snapshot", "--repo", "repo", "--keys", "keys"]);
    let (out, _) = s.fails(
        dir,
        1,
        &[
            "verify",
            "--repo",
            "repo",
            "--state",
            "state",
            "--require",
            "acme/chain",
        ],
    );
    assert!(out.contains("0 runnable modules"), "{out}");

    s.assert_no_secret_printed(dir);
}

#[test]
fn keygen_writes_0600_and_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    let out = s.ok(dir, &["keygen", "--out", "k.key"]);
    assert_eq!(mode(&dir.join("k.key")), 0o600);
    assert_eq!(mode(&dir.join("k.key.pub")), 0o644);
    assert!(out.contains("key id"), "{out}");
    let before = std::fs::read(dir.join("k.key")).unwrap();
    let (_, err) = s.fails(dir, 1, &["keygen", "--out", "k.key"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(dir.join("k.key")).unwrap(), before);
    // Init refuses a directory that already holds a repository.
    init(&mut s, dir);
    let (_, err) = s.fails(dir, 1, &["init", "--repo", "repo", "--keys", "keys"]);
    assert!(err.contains("already holds a repository"), "{err}");
    // A secret key file handed to the wrong command is refused without echoing it.
    for args in [
        &["inspect", "k.key"][..],
        &[
            "verify", "--repo", "repo", "--state", "st", "--root", "k.key",
        ],
        &["test", "k.key"],
        &[
            "snapshot",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--author-file",
            "k.key",
        ],
        &["run", "k.key", "--input", "k.key"],
    ] {
        let out = s.run(dir, args);
        assert!(!out.status.success(), "{args:?}");
    }
    // One line, each cause said once.
    let (_, err) = s.fails(dir, 1, &["inspect", "k.key"]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("unknown field").count(), 1, "{err}");
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
fn add_validates_with_the_sandbox_before_publishing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    init(&mut s, dir);
    let targets_before = std::fs::read(dir.join("repo/targets.json")).unwrap();

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
        std::fs::read(dir.join("repo/targets.json")).unwrap(),
        targets_before,
        "nothing published"
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
fn bad_arguments_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    init(&mut s, dir);
    let chain = dist("sha256-chain");
    let chain = chain.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["frobnicate"], "frobnicate"),
        (
            vec![
                "add", "--repo", "repo", "--keys", "keys", chain, "--name", "x", "--params", "zz",
            ],
            "--params is not valid hex",
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
        (
            vec!["revoke", "--repo", "repo", "--keys", "keys"],
            "required",
        ),
        (
            vec![
                "revoke", "--repo", "repo", "--keys", "keys", "--hash", "00", "--module", chain,
            ],
            "cannot be used with",
        ),
        (vec!["test", chain, "--headroom", "0.5"], "--headroom"),
    ];
    for (args, needle) in cases {
        let (_, err) = s.fails(dir, 2, &args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // Failures that are not argument errors exit 1, naming the cause.
    let (_, err) = s.fails(dir, 1, &["verify", "--repo", "repo", "--state", "st"]);
    assert!(err.contains("--fingerprint"), "{err}");
    let (_, err) = s.fails(dir, 1, &["snapshot", "--repo", "repo", "--keys", "nokeys"]);
    assert!(
        err.contains("snapshot key") && err.contains("nokeys"),
        "{err}"
    );
    let (_, err) = s.fails(dir, 1, &["inspect", chain]);
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn every_command_has_help() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Session::default();
    let out = s.ok(tmp.path(), &["--help"]);
    for cmd in [
        "keygen",
        "init",
        "add",
        "revoke",
        "delegate",
        "author-sign",
        "rotate-root",
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
}

#[test]
fn init_with_two_of_three_root_holders() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    for h in ["h1", "h2", "h3", "host"] {
        s.ok(dir, &["keygen", "--out", &format!("{h}.key")]);
    }
    // One signature cannot meet a threshold of 2.
    let (_, err) = s.fails(
        dir,
        1,
        &[
            "init",
            "--repo",
            "repo1",
            "--keys",
            "keys",
            "--host-public-key",
            "host.key.pub",
            "--root-key",
            "h1.key",
            "--root-public-key",
            "h2.key.pub",
            "--root-public-key",
            "h3.key.pub",
            "--root-threshold",
            "2",
        ],
    );
    assert!(err.contains("creating the repository"), "{err}");
    assert!(!dir.join("repo1/1.root.json").exists());
    let out = s.ok(
        dir,
        &[
            "init",
            "--repo",
            "repo",
            "--keys",
            "keys",
            "--root-key",
            "h1.key",
            "--root-key",
            "h2.key",
            "--root-public-key",
            "h3.key.pub",
            "--root-threshold",
            "2",
            "--host-public-key",
            "host.key.pub",
        ],
    );
    assert!(out.contains("2 of 3 root keys"), "{out}");
    assert!(!dir.join("keys/root.key").exists(), "no dev root key");
    assert!(!dir.join("keys/host.key").exists(), "no dev host key");
    let host: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("host.key.pub")).unwrap()).unwrap();
    let out = s.ok(dir, &["inspect", "repo/1.root.json"]);
    assert!(out.contains(host["public"].as_str().unwrap()), "{out}");
    let out = s.ok(
        dir,
        &[
            "verify",
            "--repo",
            "repo",
            "--state",
            "state",
            "--root",
            "repo/1.root.json",
        ],
    );
    assert!(out.contains("root version 1"), "{out}");
    let root = std::fs::read_to_string(dir.join("repo/1.root.json")).unwrap();
    let sigs: serde_json::Value = serde_json::from_str(&root).unwrap();
    assert_eq!(sigs["signatures"].as_array().unwrap().len(), 2);

    // Rotation: one holder alone cannot sign root 2; two can, with a new online key.
    std::fs::create_dir(dir.join("new")).unwrap();
    s.ok(dir, &["keygen", "--out", "new/snapshot.key"]);
    let rotate = [
        "rotate-root",
        "--repo",
        "repo",
        "--keys",
        "keys",
        "--new-keys",
        "new",
    ];
    let (_, err) = s.fails(dir, 1, &[&rotate[..], &["--root-key", "h1.key"]].concat());
    assert!(err.contains("2 needed"), "{err}");
    let out = s.ok(
        dir,
        &[
            &rotate[..],
            &["--root-key", "h1.key", "--root-key", "h3.key"],
        ]
        .concat(),
    );
    assert!(out.contains("root version 2"), "{out}");
    let out = s.ok(dir, &["verify", "--repo", "repo", "--state", "state"]);
    assert!(out.contains("root version 2"), "{out}");
    s.assert_no_secret_printed(dir);
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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn verify_refuses_tampering_and_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = Session::default();
    let fp = init(&mut s, dir);
    add(&mut s, dir, "sha256-chain", "");
    s.ok(dir, &["snapshot", "--repo", "repo", "--keys", "keys"]);
    let verify = ["verify", "--repo", "repo", "--state", "state"];
    s.ok(dir, &[&verify[..], &["--fingerprint", &fp]].concat());
    copy_dir(&dir.join("repo"), &dir.join("old"));

    add(&mut s, dir, "hmac-sha256", "");
    s.ok(dir, &["snapshot", "--repo", "repo", "--keys", "keys"]);
    let out = s.ok(dir, &verify);
    assert!(out.contains("2 runnable modules"), "{out}");

    // One byte changed in targets.json: the snapshot no longer matches it.
    let targets = dir.join("repo/targets.json");
    let good = std::fs::read(&targets).unwrap();
    let mut bad = good.clone();
    let i = bad.iter().rposition(|b| b.is_ascii_digit()).unwrap();
    bad[i] = if bad[i] == b'0' { b'1' } else { b'0' };
    std::fs::write(&targets, &bad).unwrap();
    let (_, err) = s.fails(dir, 1, &verify);
    assert!(err.contains("targets"), "{err}");
    std::fs::write(&targets, &good).unwrap();

    // The older, validly signed repository: refused by the same trust store.
    let (_, err) = s.fails(dir, 1, &["verify", "--repo", "old", "--state", "state"]);
    assert!(err.contains("rollback") || err.contains("older"), "{err}");
    let out = s.ok(dir, &verify);
    assert!(out.contains("2 runnable modules"), "{out}");
}
