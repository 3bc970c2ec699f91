#!/usr/bin/env python3
"""Independent cross-check of tests/vectors/login_v2.json (Kasane protocol v2).

Recomputes, from the vector inputs and the recorded wire bytes, every step Kasane adds on top
of OPAQUE, with Python's `cryptography` package (Ed25519, HKDF, HMAC, AES-256-GCM) and
hashlib, sharing no code with the Rust implementation:

- the OPAQUE context (domain and TLS exporter) and where KE1, KE2 and KE3 sit in the messages;
- the start signature digest, the host key and its Ed25519 signature;
- the transcript hashes th_finish, th_bundle and th_response from the message bytes;
- the bundle key and nonce from OPAQUE's session key, and opening the sealed bundle;
- K_resp from OPAQUE's export key and each response verifier from its salt and response;
- the auth transform input and output (the tests' fake transform), the session secret from
  session_key || T_auth, K_receipt, K_confirm, the receipt and the confirm (th_response ||
  session token), the session id;
- per-message keys and the AES-GCM sealing of three messages.

OPAQUE itself (ristretto255, 3DH) is not recomputed here: `cryptography` has no ristretto255.
Its session_key and export_key are taken from the JSON; tests/opaque_rfc9807.rs checks the
OPAQUE implementation against RFC 9807's own vectors.

Run: python3 protocol/tests/vectors/crosscheck.py (needs `pip install cryptography`). Prints
one line per checked value and exits non-zero on any mismatch.
"""
import hashlib
import hmac
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

V = {k: bytes.fromhex(v) for k, v in json.loads(
    (Path(__file__).parent / "login_v2.json").read_text()).items()}
VERSION = 2
failures = 0


def check(name, got, want=None):
    global failures
    want = V[name] if want is None else want
    ok = got == want
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}")


def framed(label, data):
    return struct.pack(">I", len(label)) + label + struct.pack(">Q", len(data)) + data


def transcript(*appends):
    h = hashlib.sha256(framed(b"domain", b"kasane/v2/transcript"))
    for label, data in appends:
        h.update(framed(label, data))
    return h.digest()


def hkdf(salt, ikm, info, n):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)


def expand(prk, info, n):
    return HKDFExpand(algorithm=hashes.SHA256(), length=n, info=info).derive(prk)


def hmac256(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


class Reader:
    """postcard: unsigned varints, length-prefixed byte strings, fixed arrays as raw bytes."""

    def __init__(self, data, kind):
        check(f"header of kind {kind}", data[:2], bytes([VERSION, kind]))
        self.b, self.i = data, 2

    def varint(self):
        n = shift = 0
        while True:
            byte = self.b[self.i]
            self.i += 1
            n |= (byte & 0x7F) << shift
            if byte < 0x80:
                return n
            shift += 7

    def raw(self, n):
        out = self.b[self.i:self.i + n]
        self.i += n
        return out

    def bytes(self):
        return self.raw(self.varint())

    def end(self, name):
        check(f"{name}: no trailing bytes", self.i, len(self.b))


# OPAQUE's context: len(domain) || domain || 1 || exporter (channel binding on).
domain = b"kasane/v2/opaque"
check("opaque_context", bytes([len(domain)]) + domain + b"\x01" + V["in_tls_exporter"])

# Start request: user id, KE1, client nonce, profiles, can_bind (postcard bool: one byte).
start_req = V["msg_start_request"]
r = Reader(start_req, 1)
check("start_request.user_id", r.bytes(), V["in_user_id"])
check("start_request.ke1 (opaque_ke1)", r.bytes(), V["opaque_ke1"])
client_nonce = r.raw(32)
profiles = [r.varint() for _ in range(r.varint())]
check("start_request.profiles (pure, wasi)", profiles, [0, 1])
check("start_request.can_bind (true)", r.raw(1), b"\x01")
r.end("start_request")

# Start response: login id, KE2, server nonce, flag, host key, signature over the digest.
start_resp = V["msg_start_response"]
r = Reader(start_resp, 2)
login_id = r.raw(16)
check("start_response.login_id", login_id, V["in_login_id"])
ke2 = r.bytes()
check("start_response.ke2 (opaque_ke2)", ke2, V["opaque_ke2"])
server_nonce = r.raw(32)
check("start_response.server_nonce", server_nonce, V["in_server_nonce"])
cb_flag = r.raw(1)[0]
check("start_response.channel_binding", cb_flag, 1)
host_pub, sig = r.raw(32), r.raw(64)
r.end("start_response")
signer = Ed25519PrivateKey.from_private_bytes(V["in_host_signing_seed"])
raw_pub = signer.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
check("start_response.host_public_key", host_pub, raw_pub)
digest = hashlib.sha256(
    framed(b"domain", b"kasane/v2/start-signature") + framed(b"start-request", start_req)
    + login_id + framed(b"ke2", ke2) + server_nonce + bytes([cb_flag])).digest()
check("start_signature_digest", digest)
signer.public_key().verify(sig, digest)  # raises on a bad signature
check("start_response.signature (deterministic Ed25519)", sig, signer.sign(digest))

# Finish request: the same login id, KE3.
finish = V["msg_finish_request"]
r = Reader(finish, 3)
check("finish_request.login_id", r.raw(16), login_id)
check("finish_request.ke3 (opaque_ke3)", r.bytes(), V["opaque_ke3"])
r.end("finish_request")

# Transcript after the finish request; the bundle key; opening the sealed bundle.
cb = b"\x01" + V["in_tls_exporter"] if cb_flag else b"\x00"
finish_appends = [(b"start-request", start_req), (b"start-response", start_resp),
                  (b"channel-binding", cb), (b"finish-request", finish)]
th_finish = transcript(*finish_appends)
check("th_finish", th_finish)
okm = hkdf(th_finish, V["opaque_session_key"], b"kasane/v2/bundle", 44)
k_bundle, n_bundle = okm[:32], okm[32:]
check("k_bundle", k_bundle)
check("n_bundle", n_bundle)
r = Reader(V["msg_sealed_bundle"], 4)
sealed_bundle = r.bytes()
r.end("sealed_bundle")
plain = AESGCM(k_bundle).decrypt(n_bundle, sealed_bundle, th_finish)  # raises if it fails
check("sealed bundle opens to msg_challenge_bundle", plain, V["msg_challenge_bundle"])
check("sealed bundle (re-sealed)", AESGCM(k_bundle).encrypt(n_bundle, plain, th_finish),
      sealed_bundle)

# The bundle's id, prompts and salts (the rest of it is not needed here).
r = Reader(plain, 14)
bundle_id = r.raw(16)
challenges = [(r.bytes(), r.bytes()) for _ in range(r.varint())]
check("bundle has two challenges", len(challenges), 2)
th_bundle = transcript(*finish_appends, (b"challenge-bundle", plain))
check("th_bundle", th_bundle)

# K_resp and the verifiers: HMAC(K_resp, u8(len(salt)) || salt || normalize(response)).
k_resp = hkdf(b"", V["opaque_export_key"], b"kasane/v2/response-key", 32)
check("k_resp", k_resp)
verifiers = []
for n, (_, salt) in enumerate(challenges, 1):
    typed = V[f"in_response_{n}"].decode()
    # Rust's str::trim (Unicode white space), then ASCII-only upper case.
    normalized = "".join(c.upper() if c.isascii() else c for c in typed.strip()).encode()
    verifiers.append(hmac256(k_resp, bytes([len(salt)]) + salt + normalized))
    check(f"verifier_{n}", verifiers[-1])


def derive_input(data, purpose, direction, seq, th):
    """Checks a transform input (abi v1): header, nonces, transcript hash, lists."""
    name = f"derive input (purpose {purpose}, seq {seq})"
    check(f"{name} header", data[:4], bytes([1, purpose, direction, 0]))
    check(f"{name} seq", struct.unpack("<Q", data[20:28])[0], seq)
    check(f"{name} nonces", data[28:92], server_nonce + client_nonce)
    check(f"{name} transcript_hash", data[92:124], th)
    i, lists = 124, []
    for _ in range(2):
        (count,), i = struct.unpack("<I", data[i:i + 4]), i + 4
        items = []
        for _ in range(count):
            (n,), i = struct.unpack("<I", data[i:i + 4]), i + 4
            items.append(data[i:i + n])
            i += n
        lists.append(items)
    check(f"{name} challenges", lists[0], [p for p, _ in challenges])
    return lists[1]


# The auth transform (the tests' fake: SHA-256("fake-transform" || input)), session secret.
auth_input = V["auth_input"]
check("auth_input responses are the verifiers", derive_input(auth_input, 1, 0, 0, th_bundle),
      verifiers)
t_auth = hashlib.sha256(b"fake-transform" + auth_input).digest()
check("t_auth", t_auth)
ss = hkdf(th_bundle, V["opaque_session_key"] + t_auth, b"kasane/v2/session", 32)
check("session_secret", ss)
k_receipt = expand(ss, b"kasane/v2/receipt", 32)
k_confirm = expand(ss, b"kasane/v2/confirm", 32)
check("k_receipt", k_receipt)
check("k_confirm", k_confirm)

# Response request: the bundle id and the receipt; then the confirm over th_response || token.
rr = V["msg_response_request"]
r = Reader(rr, 5)
check("response_request.bundle_id", r.raw(16), bundle_id)
receipt = r.raw(32)
r.end("response_request")
check("receipt", receipt)
check("receipt = HMAC(K_receipt, th_bundle)", receipt, hmac256(k_receipt, th_bundle))
th_response = transcript(*finish_appends, (b"challenge-bundle", plain),
                         (b"response-request", rr))
check("th_response", th_response)
acc = V["msg_response_accept"]
r = Reader(acc, 6)
token = r.raw(32)
check("response_accept.session_token", token, V["in_session_token"])
confirm = r.raw(32)
r.end("response_accept")
check("confirm", confirm)
check("confirm = HMAC(K_confirm, th_response || token)", confirm,
      hmac256(k_confirm, th_response + token))
session_id = hashlib.sha256(b"kasane/v2/session-id" + token).digest()[:16]
check("session_id", session_id)

def padme(n):
    """Padmé (Nikitin et al., PETS 2019): n rounded up to a multiple of 2^(E - S),
    E = floor(log2 n), S = floor(log2 E) + 1."""
    e = n.bit_length() - 1
    mask = (1 << (e - e.bit_length())) - 1
    return (n + mask) & ~mask


# The worked examples of docs/PROTOCOL.md section 7.
check("padme examples", [padme(n) for n in (64, 65, 257, 4097, 16385, 65537)],
      [64, 72, 272, 4352, 17408, 67584])

# Sealed messages (the message key's info is still "kasane/v1/msg", as seal.rs has it).
for name, d, seq, bucket in [("c2h_1", 0, 1, False), ("c2h_2", 0, 2, True),
                             ("h2c_1", 1, 1, False)]:
    check(f"{name}_input carries no verifiers",
          derive_input(V[f"{name}_input"], 2, d, seq, th_response), [])
    t = hashlib.sha256(b"fake-transform" + V[f"{name}_input"]).digest()
    check(f"{name}_t", t)
    okm = hkdf(t, ss, b"kasane/v1/msg" + bytes([d]) + struct.pack(">Q", seq), 44)
    check(f"{name}_k", okm[:32])
    check(f"{name}_n", okm[32:])
    aad = session_id + bytes([d]) + struct.pack(">Q", seq) + struct.pack(">I", 3) + b"bob"
    check(f"{name}_aad", aad)
    p = V[f"{name}_plaintext"] + b"\x80"
    if bucket:
        p += b"\x00" * (padme(max(64, len(p))) - len(p))
    ct = AESGCM(okm[:32]).encrypt(okm[32:], p, aad)
    # postcard: header || session_id || d || varint seq || varint len || "bob" || varint len || ct
    expect = bytes([VERSION, 8]) + session_id + bytes([d, seq, 3]) + b"bob" + bytes([len(ct)]) + ct
    check(f"{name}_sealed", expect)
    # And the other way: parse the recorded message, open it, strip the padding.
    r = Reader(V[f"{name}_sealed"], 8)
    check(f"{name}_sealed header fields", (r.raw(16), r.raw(1)[0], r.varint(), r.bytes()),
          (session_id, d, seq, b"bob"))
    opened = AESGCM(okm[:32]).decrypt(okm[32:], r.bytes(), aad).rstrip(b"\x00")
    r.end(f"{name}_sealed")
    check(f"{name}_sealed opens to {name}_plaintext", opened, V[f"{name}_plaintext"] + b"\x80")

print(f"{'FAILED' if failures else 'all values match'} ({failures} failures)")
sys.exit(1 if failures else 0)
