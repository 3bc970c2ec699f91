"""The service behind a Kasane host in the gateway tests: Python's http.server serving the
files of a directory (GET, HEAD), echoing POST bodies at /echo, and checking every request's
X-Kasane-Assertion with the `cryptography` package against the host's JWKS.

    python3 gateway_upstream.py DIR JWKS_FILE LOG_FILE

Prints `listening on PORT` once bound. JWKS_FILE is read when the first request arrives (the
test writes it once the host, which probes this server at start-up, is up). Every request
but the start-up probe (`HEAD /`) appends one JSON line to LOG_FILE: method, path, the
X-Kasane-User seen, and what the assertion check found ("ok" or why not).
"""

import base64
import hashlib
import http.server
import json
import socketserver
import sys
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ROOT, JWKS_FILE, LOG_FILE = sys.argv[1], sys.argv[2], sys.argv[3]


def b64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check_assertion(token, user, method, target, body, audience):
    """"ok", or why the assertion is not acceptable."""
    if not token:
        return "missing"
    try:
        header_b64, claims_b64, sig_b64 = token.split(".")
        header, claims = json.loads(b64(header_b64)), json.loads(b64(claims_b64))
        with open(JWKS_FILE) as f:
            keys = {k["kid"]: k for k in json.load(f)["keys"]}
        jwk = keys[header["kid"]]
        if header["alg"] != "EdDSA" or jwk["crv"] != "Ed25519":
            return "algorithm"
        key = Ed25519PublicKey.from_public_bytes(b64(jwk["x"]))
        key.verify(b64(sig_b64), f"{header_b64}.{claims_b64}".encode())
    except InvalidSignature:
        return "signature"
    except (ValueError, KeyError, OSError) as e:
        return f"unreadable: {e!r}"
    now = time.time()
    want_hash = hashlib.sha256(f"{method}\n{target}\n".encode() + body).hexdigest()
    for ok, why in [
        (claims.get("sub") == user, "sub is not X-Kasane-User"),
        (claims.get("aud") == audience, f"aud {claims.get('aud')!r}"),
        (claims.get("iss") == "kasane-host", "iss"),
        (claims.get("iat", 1e18) <= now + 5 and claims.get("exp", 0) > now - 5, "expired"),
        (claims.get("kasane_request_sha256") == want_hash, "request hash"),
        (len(claims.get("kasane_transform_sha256", "")) == 64, "transform hash"),
    ]:
        if not ok:
            return why
    return "ok"


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=ROOT, **kwargs)

    def log_message(self, *args):
        pass

    def record(self, body):
        port = self.server.server_address[1]
        entry = {
            "method": self.command,
            "path": self.path,
            "user": self.headers.get("X-Kasane-User"),
            "users": self.headers.get_all("X-Kasane-User") or [],
            "assertion": check_assertion(
                self.headers.get("X-Kasane-Assertion"),
                self.headers.get("X-Kasane-User"),
                self.command,
                self.path,
                body,
                f"http://127.0.0.1:{port}",
            ),
            "length": len(body),
            # A header the request's Connection named: hop-by-hop, never forwarded.
            "secret": self.headers.get("X-Secret"),
        }
        with open(LOG_FILE, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def do_HEAD(self):
        if self.path != "/":
            self.record(b"")
        super().do_HEAD()

    def do_GET(self):
        self.record(b"")
        super().do_GET()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.record(body)
        self.send_response(200 if self.path == "/echo" else 404)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Echo-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


server = Server(("127.0.0.1", 0), Handler)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
