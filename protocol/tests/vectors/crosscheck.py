#!/usr/bin/env python3
"""Independent cross-check of tests/vectors/login_v1.json.

Recomputes every key-schedule value from the vector inputs and the recorded wire bytes with
Python's `cryptography` package (X25519, Ed25519, HKDF, HMAC, AES-256-GCM) and hashlib, sharing
no code with the Rust implementation. Run: python3 tests/vectors/crosscheck.py
(needs `pip install cryptography`). Prints one line per checked value and exits non-zero on any
mismatch.
"""
import hashlib
import hmac
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from cryptography.hazmat.primitives import serialization

V = {k: bytes.fromhex(v) for k, v in json.loads(
    (Path(__file__).parent / "login_v1.json").read_text()).items()}
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
    h = hashlib.sha256(framed(b"domain", b"kasane/v1/transcript"))
    for label, data in appends:
        h.update(framed(label, data))
    return h.digest()


def hkdf(salt, ikm, info, n):
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)


def varint(b, i):
    n = shift = 0
    while True:
        n |= (b[i] & 0x7F) << shift
        i += 1
        if b[i - 1] < 0x80:
            return n, i
        shift += 7


def raw(pub):
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# Hello: X25519 public keys in the messages, the shared secret, the host signature.
req, resp = V["msg_hello_request"], V["msg_hello_response"]
c_sk = X25519PrivateKey.from_private_bytes(V["in_client_ephemeral_secret"])
h_sk = X25519PrivateKey.from_private_bytes(V["in_host_ephemeral_secret"])
check("hello_request.client_ephemeral", req[2:34], raw(c_sk.public_key()))
check("hello_request.client_nonce", req[34:66], V["in_client_nonce"])
login_id, s_eph, s_nonce = resp[2:18], resp[18:50], resp[50:82]
cb_flag, host_pub, sig = resp[82], resp[83:115], resp[115:179]
check("hello_response.server_ephemeral", s_eph, raw(h_sk.public_key()))
check("dh", c_sk.exchange(X25519PublicKey.from_public_bytes(s_eph)))
signer = Ed25519PrivateKey.from_private_bytes(V["in_host_signing_seed"])
check("hello_response.host_public_key", host_pub, raw(signer.public_key()))
digest = hashlib.sha256(
    framed(b"domain", b"kasane/v1/hello-signature") + framed(b"hello-request", req)
    + login_id + s_eph + s_nonce + bytes([cb_flag])).digest()
signer.public_key().verify(sig, digest)  # raises on a bad signature
check("hello_response.signature (deterministic Ed25519)", sig, signer.sign(digest))

# Transcript after hello, password key, sealed password.
cb = b"\x01" + V["in_tls_exporter"] if cb_flag else b"\x00"
hello_appends = [(b"hello-request", req), (b"hello-response", resp), (b"channel-binding", cb)]
th_hello = transcript(*hello_appends)
check("th_hello", th_hello)
okm = hkdf(th_hello, V["dh"], b"kasane/v1/password", 44)
check("k_password", okm[:32])
check("n_password", okm[32:])
aad = th_hello + login_id + V["in_user_id"]
check("aad_password", aad)
pw = V["msg_password_request"]
i = 2 + 16
ulen, i = varint(pw, i)
i += ulen
slen, i = varint(pw, i)
sealed_pw = pw[i:i + slen]
padded = V["in_password"] + b"\x80"
padded += b"\x00" * (max(64, 1 << (len(padded) - 1).bit_length()) - len(padded))
check("password ciphertext", sealed_pw, AESGCM(okm[:32]).encrypt(okm[32:], padded, aad))

# Bundle, auth transform (the tests' fake: SHA-256("fake-transform" ‖ input)), session secret.
bundle_appends = hello_appends + [(b"password-request", pw),
                                  (b"challenge-bundle", V["msg_challenge_bundle"])]
th_bundle = transcript(*bundle_appends)
check("th_bundle", th_bundle)
check("auth_input.transcript_hash", V["auth_input"][92:124], th_bundle)
check("t_auth", hashlib.sha256(b"fake-transform" + V["auth_input"]).digest())
ss = hkdf(th_bundle, V["dh"] + V["t_auth"], b"kasane/v1/session", 32)
check("session_secret", ss)
k_receipt = HKDFExpand(algorithm=hashes.SHA256(), length=32, info=b"kasane/v1/receipt").derive(ss)
k_confirm = HKDFExpand(algorithm=hashes.SHA256(), length=32, info=b"kasane/v1/confirm").derive(ss)
check("k_receipt", k_receipt)
check("k_confirm", k_confirm)
rr = V["msg_response_request"]
check("receipt (in msg_response_request)", rr[18:50],
      hmac.new(k_receipt, th_bundle, hashlib.sha256).digest())
th_final = transcript(*bundle_appends, (b"response-request", rr))
check("th_final", th_final)
acc = V["msg_response_accept"]
check("session_token (in msg_response_accept)", acc[2:34], V["in_session_token"])
check("confirm (in msg_response_accept)", acc[34:66],
      hmac.new(k_confirm, th_final, hashlib.sha256).digest())
check("session_id", hashlib.sha256(b"kasane/v1/session-id" + V["in_session_token"]).digest()[:16])

# Sealed messages.
for name, d, seq, bucket in [("c2h_1", 0, 1, False), ("c2h_2", 0, 2, True), ("h2c_1", 1, 1, False)]:
    check(f"{name}_input.transcript_hash", V[f"{name}_input"][92:124], th_final)
    t = hashlib.sha256(b"fake-transform" + V[f"{name}_input"]).digest()
    check(f"{name}_t", t)
    okm = hkdf(t, ss, b"kasane/v1/msg" + bytes([d]) + struct.pack(">Q", seq), 44)
    check(f"{name}_k", okm[:32])
    check(f"{name}_n", okm[32:])
    aad = V["session_id"] + bytes([d]) + struct.pack(">Q", seq) + struct.pack(">I", 3) + b"bob"
    check(f"{name}_aad", aad)
    p = V[f"{name}_plaintext"] + b"\x80"
    if bucket:
        p += b"\x00" * (max(64, 1 << (len(p) - 1).bit_length()) - len(p))
    ct = AESGCM(okm[:32]).encrypt(okm[32:], p, aad)
    # postcard: [1, 8] ‖ session_id ‖ d ‖ varint seq ‖ varint len ‖ "bob" ‖ varint len ‖ ct
    expect = bytes([1, 8]) + V["session_id"] + bytes([d, seq, 3]) + b"bob" + bytes([len(ct)]) + ct
    check(f"{name}_sealed", expect)

print(f"{'FAILED' if failures else 'all values match'} ({failures} failures)")
sys.exit(1 if failures else 0)
