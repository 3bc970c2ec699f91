#!/usr/bin/env bash
# Proves make_repo.py and refresh.py agree with each other (python-tuf on both
# sides), before the Rust tests rely on either of them.
#
# Usage: tests/tuf-interop/selftest.sh
#   PYTHON=/path/to/python   a Python with requirements.txt installed; without
#                            it a venv is made in the scratch dir and pip
#                            installs requirements.txt from PyPI.
#   KEEP=1                   keep the scratch dir (its path is printed).
#
# Exits non-zero on the first failed check.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tuf-interop-selftest.XXXXXX")
SERVER_PIDS=()

cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]+"${SERVER_PIDS[@]}"}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "${KEEP:-}" = 1 ]; then
        echo "selftest: scratch dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

fail() { echo "selftest: FAIL: $*" >&2; exit 1; }
ok() { echo "selftest: ok: $*"; }

# Loopback servers must not go through a proxy from the environment.
export no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
export NO_PROXY="$no_proxy"

if [ -z "${PYTHON:-}" ]; then
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install --quiet -r "$HERE/requirements.txt"
    PYTHON="$WORK/venv/bin/python"
fi
"$PYTHON" -c 'import tuf, securesystemslib; print("selftest: python-tuf", tuf.__version__, "securesystemslib", securesystemslib.__version__)'

MAKE_REPO=("$PYTHON" "$HERE/make_repo.py")
REFRESH=("$PYTHON" "$HERE/refresh.py")

# ------------------------------------------------------------ the repository
SRC="$WORK/src"
WWW="$WORK/www"
REPO="$WWW/repo"
mkdir -p "$SRC" "$WWW"
for m in sha256-chain hmac-kdf ocra-v2 hotp stray; do
    head -c $((1000 + RANDOM)) /dev/urandom > "$SRC/$m.wasm"
done
sha() { "$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }
rand32() { "$PYTHON" -c 'import os; print(os.urandom(32).hex())'; }
HOST_ID=$(rand32)
HOST_TICKET=$(rand32)
REVOKED=$(sha "$SRC/hotp.wasm")

"${MAKE_REPO[@]}" "$REPO" \
    --module "sha256-chain=$SRC/sha256-chain.wasm:fuel=1000000,memory=65536,weight=3,params=00ff,profile=pure" \
    --module "hmac-kdf=$SRC/hmac-kdf.wasm:fuel=2000000,memory=131072,weight=1,params=,profile=pure" \
    --author-module "acme/ocra-v2=$SRC/ocra-v2.wasm:fuel=500000,memory=65536,weight=2,params=0102,profile=pure" \
    --author-module "beta/hotp=$SRC/hotp.wasm:fuel=400000,memory=65536,weight=0,params=,profile=pure" \
    --stray-module "acme@evil/x=$SRC/stray.wasm:fuel=1,memory=65536,weight=1,profile=pure" \
    --host-identity "$HOST_ID" --host-ticket "$HOST_TICKET" \
    --revoke "$REVOKED" \
    --expires-days 30 > "$WORK/make_repo.json" || fail "make_repo.py exited $?"
ok "make_repo.py built $REPO"

# The layout make_repo.py promises (README.md), checked from the files.
"$PYTHON" - "$REPO" <<'EOF' || fail "repository layout"
import json, os, stat, sys
repo = sys.argv[1]
md = lambda name: json.load(open(f"{repo}/metadata/{name}"))["signed"]
have = sorted(os.listdir(f"{repo}/metadata"))
want = sorted(["1.root.json", "timestamp.json"] + [f"1.{r}.json" for r in
              ("snapshot", "targets", "revocations", "authors", "acme", "beta")])
assert have == want, f"metadata files {have} != {want}"
root = md("1.root.json")
assert root["consistent_snapshot"] is True
kind = lambda keys, kid: (keys[kid]["keytype"], keys[kid]["scheme"])
roles = {r: root["roles"][r]["keyids"] for r in root["roles"]}
assert all(root["roles"][r]["threshold"] == 1 for r in roles)
assert kind(root["keys"], roles["root"][0]) == ("ecdsa", "ecdsa-sha2-nistp256")
assert kind(root["keys"], roles["targets"][0]) == ("ecdsa", "ecdsa-sha2-nistp256")
assert roles["timestamp"] == roles["snapshot"], "timestamp and snapshot share one key"
assert kind(root["keys"], roles["timestamp"][0]) == ("ed25519", "ed25519")
targets = md("1.targets.json")
d = [(r["name"], r["paths"], r["terminating"]) for r in targets["delegations"]["roles"]]
assert d == [("revocations", ["kasane/revocations.json"], True), ("authors", ["*/*"], False)], d
authors = md("1.authors.json")
d = [(r["name"], r["paths"], r["terminating"]) for r in authors["delegations"]["roles"]]
assert d == [("acme", ["acme/*"], True), ("beta", ["beta/*"], True)], d
k = authors["delegations"]["keys"]
ids = {r["name"]: r["keyids"][0] for r in authors["delegations"]["roles"]}
assert kind(k, ids["acme"]) == ("ed25519", "ed25519") and kind(k, ids["beta"]) == ("ecdsa", "ecdsa-sha2-nistp256")
snap = md("1.snapshot.json")["meta"]
assert sorted(snap) == sorted(f"{r}.json" for r in ("targets", "revocations", "authors", "acme", "beta")), snap
for name, info in list(targets["targets"].items()) + list(md("1.acme.json")["targets"].items()):
    d, _, base = name.rpartition("/")
    assert os.path.isfile(f"{repo}/targets/{d + '/' if d else ''}{info['hashes']['sha256']}.{base}"), name
assert set(targets["targets"]["sha256-chain"]["custom"]["kasane"]) == {"profile", "fuel", "memory", "params", "rollout_weight"}
for f in os.listdir(f"{repo}/keys"):
    if f.endswith(".pem"):
        assert stat.S_IMODE(os.stat(f"{repo}/keys/{f}").st_mode) == 0o600, f
EOF
ok "layout: roles, key types, delegation order, paths, hash-prefixed targets, 0600 keys"

# A copy whose timestamp signature is broken, for the bad-signature check.
cp -r "$REPO" "$WWW/tampered"
"$PYTHON" - "$WWW/tampered/metadata/timestamp.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
sig = d["signatures"][0]["sig"]
d["signatures"][0]["sig"] = ("0" if sig[0] != "0" else "1") + sig[1:]
json.dump(d, open(sys.argv[1], "w"))
EOF

# ---------------------------------------------------------------- servers
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_for URL PID [CA]: until URL answers (any HTTP status) or PID dies.
wait_for() {
    "$PYTHON" - "$@" <<'EOF'
import os, ssl, sys, time, urllib.error, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(cafile=sys.argv[3]) if len(sys.argv) > 3 else None
for _ in range(100):
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(f"server {pid} for {url} exited")
    try:
        urllib.request.urlopen(url, timeout=1, context=ctx).close()
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(f"server for {url} did not answer")
EOF
}

HTTP_PORT=$(free_port)
"$PYTHON" -m http.server --bind 127.0.0.1 --directory "$WWW" "$HTTP_PORT" > "$WORK/http.log" 2>&1 &
SERVER_PIDS+=($!)
wait_for "http://127.0.0.1:$HTTP_PORT/" "$!" || fail "http server did not start (see $WORK/http.log)"
BASE="http://127.0.0.1:$HTTP_PORT/repo"
ok "serving $WWW on $BASE"

# ------------------------------------------------------------------ fetches
# run_refresh NAME BASE_URL EXTRA_ARGS...: refresh.py with a fresh client dir;
# stdout to $WORK/NAME.out, stderr to $WORK/NAME.err, returns its status.
run_refresh() {
    local name=$1 base=$2
    shift 2
    "${REFRESH[@]}" --metadata-url "$base/metadata/" --targets-url "$base/targets/" \
        --root "$REPO/metadata/1.root.json" --dir "$WORK/client-$name" "$@" \
        > "$WORK/$name.out" 2> "$WORK/$name.err"
}

run_refresh fetch "$BASE" \
    --target sha256-chain --expect-sha256 "$(sha "$SRC/sha256-chain.wasm")" \
    --target acme/ocra-v2 --expect-sha256 "$(sha "$SRC/ocra-v2.wasm")" \
    --target beta/hotp --expect-sha256 "$(sha "$SRC/hotp.wasm")" \
    --target kasane/host-keys.json --expect-sha256 "$(sha "$REPO/targets/kasane/"*.host-keys.json)" \
    --target kasane/revocations.json --expect-sha256 "$(sha "$REPO/targets/kasane/"*.revocations.json)" \
    || fail "refresh.py exited $?: $(cat "$WORK/fetch.err")"

"$PYTHON" - "$WORK/fetch.out" "$SRC" "$HOST_ID" "$HOST_TICKET" "$REVOKED" <<'EOF' || fail "fetched targets"
import json, sys
out, src, host_id, host_ticket, revoked = sys.argv[1:]
lines = [json.loads(l) for l in open(out)]
got = {l["path"]: l for l in lines}
assert list(got) == ["sha256-chain", "acme/ocra-v2", "beta/hotp", "kasane/host-keys.json", "kasane/revocations.json"], list(got)
want_chain = {
    "sha256-chain": ["targets"],
    "acme/ocra-v2": ["targets", "authors", "acme"],
    "beta/hotp": ["targets", "authors", "beta"],
    "kasane/host-keys.json": ["targets"],
    "kasane/revocations.json": ["targets", "revocations"],
}
for path, chain in want_chain.items():
    assert got[path]["delegation_path"] == chain, (path, got[path]["delegation_path"])
    assert got[path]["role"] == chain[-1]
    data = open(got[path]["file"], "rb").read()
    assert len(data) == got[path]["length"], path
for path, source in [("sha256-chain", "sha256-chain"), ("acme/ocra-v2", "ocra-v2"), ("beta/hotp", "hotp")]:
    assert open(got[path]["file"], "rb").read() == open(f"{src}/{source}.wasm", "rb").read(), path
assert got["sha256-chain"]["custom"] == {"kasane": {"profile": "pure", "fuel": 1000000, "memory": 65536, "params": "00ff", "rollout_weight": 3}}
assert got["acme/ocra-v2"]["custom"]["kasane"]["params"] == "0102"
key = lambda h: {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": h}}
host_keys = json.load(open(got["kasane/host-keys.json"]["file"]))
assert host_keys == {"identity": [key(host_id)], "tickets": [key(host_ticket)]}, host_keys
revocations = json.load(open(got["kasane/revocations.json"]["file"]))
assert revocations == {"modules": [revoked]}, revocations
EOF
ok "ngclient fetched sha256-chain (targets), acme/ocra-v2 (targets>authors>acme, Ed25519), beta/hotp (targets>authors>beta, ECDSA), kasane/host-keys.json, kasane/revocations.json (targets>revocations); bytes equal the sources"

# ---------------------------------------------------------- negative checks
set +e
run_refresh stray "$BASE" --target evil/x
status=$?
set -e
[ "$status" = 3 ] || fail "evil/x (signed by acme outside acme/*): expected exit 3, got $status: $(cat "$WORK/stray.err")"
grep -q "evil/x: target not found" "$WORK/stray.err" || fail "evil/x: unexpected message: $(cat "$WORK/stray.err")"
ok "evil/x, signed by acme outside acme/*, is not found (exit 3)"

set +e
run_refresh tampered "http://127.0.0.1:$HTTP_PORT/tampered" --target sha256-chain
status=$?
set -e
[ "$status" = 1 ] || fail "tampered timestamp: expected exit 1, got $status"
grep -q "UnsignedMetadataError" "$WORK/tampered.err" || fail "tampered timestamp: unexpected message: $(cat "$WORK/tampered.err")"
ok "a broken timestamp signature is refused (exit 1: $(cat "$WORK/tampered.err"))"

# ------------------------------------------------------- https, custom CA
"$PYTHON" - "$WORK/tls" <<'EOF' || fail "making test certificates"
import datetime, ipaddress, os, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

out = sys.argv[1]
os.makedirs(out)
now = datetime.datetime.now(datetime.timezone.utc)
name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

def cert(subject, key, issuer, issuer_key, ca):
    b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())

def write(path, data):
    with open(f"{out}/{path}", "wb") as f:
        f.write(data)

pem = lambda c: c.public_bytes(serialization.Encoding.PEM)
ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
write("ca.pem", pem(cert("interop test CA", ca_key, "interop test CA", ca_key, True)))
write("other-ca.pem", pem(cert("unrelated CA", other_key, "unrelated CA", other_key, True)))
write("server.pem", pem(cert("127.0.0.1", server_key, "interop test CA", ca_key, False)))
write("server.key", server_key.private_bytes(serialization.Encoding.PEM,
      serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
EOF

HTTPS_PORT=$(free_port)
"$PYTHON" - "$WWW" "$HTTPS_PORT" "$WORK/tls" > "$WORK/https.log" 2>&1 <<'EOF' &
import functools, http.server, ssl, sys
root, port, tls = sys.argv[1], int(sys.argv[2]), sys.argv[3]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(f"{tls}/server.pem", f"{tls}/server.key")
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
EOF
SERVER_PIDS+=($!)
wait_for "https://127.0.0.1:$HTTPS_PORT/" "$!" "$WORK/tls/ca.pem" || fail "https server did not start (see $WORK/https.log)"
HTTPS_BASE="https://127.0.0.1:$HTTPS_PORT/repo"

run_refresh https "$HTTPS_BASE" --ca-file "$WORK/tls/ca.pem" \
    --target acme/ocra-v2 --expect-sha256 "$(sha "$SRC/ocra-v2.wasm")" \
    || fail "refresh.py over https exited $?: $(cat "$WORK/https.err")"
ok "https with --ca-file: acme/ocra-v2 fetched and verified"

set +e
run_refresh wrong-ca "$HTTPS_BASE" --ca-file "$WORK/tls/other-ca.pem" --target acme/ocra-v2
status=$?
set -e
[ "$status" = 1 ] || fail "https with an unrelated CA: expected exit 1, got $status"
grep -q "CERTIFICATE_VERIFY_FAILED" "$WORK/wrong-ca.err" || fail "https with an unrelated CA: unexpected message: $(cat "$WORK/wrong-ca.err")"
ok "https with an unrelated CA is refused (exit 1, certificate verify failed)"

echo "selftest: PASS"
