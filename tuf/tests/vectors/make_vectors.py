#!/usr/bin/env python3
"""Makes the test vectors kasane-tuf checks itself against (canonical.json, keys.json,
metadata/*.json), with securesystemslib and python-tuf as the reference.

Run with a Python that has securesystemslib[crypto] 1.x and tuf 7.x:
    python3 tuf/tests/vectors/make_vectors.py tuf/tests/vectors
"""

import json
import os
import sys
from datetime import datetime, timezone

from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

CANONICAL_INPUTS = [
    {},
    [],
    {"b": 1, "a": 2, "c": {"z": None, "y": True, "x": False}},
    {"quote": 'a"b', "backslash": "a\\b", "slash": "a/b"},
    {"control": "tab\there\nnewline\r\x01\x1f", "del": "\x7f"},
    {"unicode": "é日本\U0001f600", "é": 1, "e": 2, "z": 3, "日": 4},
    {"ints": [0, -1, 1, 2**53, -(2**53), 2**63 - 1]},
    {"nested": [[[]], {"": ""}, [{"k": [1, {"a": []}]}]]},
    "just a string",
    12345,
    None,
]


def canonical_vectors():
    return [
        {"input": json.dumps(v), "canonical": encode_canonical(v)}
        for v in CANONICAL_INPUTS
    ]


def key_vectors():
    out = []
    message = b"kasane-tuf test message"
    signers = [
        CryptoSigner.generate_ed25519(),
        CryptoSigner.generate_ecdsa(),
        CryptoSigner.generate_rsa(scheme="rsassa-pss-sha256"),
    ]
    # A few ECDSA signatures so that both low-S and high-S ones are covered.
    signers += [CryptoSigner.generate_ecdsa() for _ in range(5)]
    for signer in signers:
        key = signer.public_key
        sig = signer.sign(message)
        out.append(
            {
                "key": key.to_dict(),
                "keyid": key.keyid,
                "message": message.hex(),
                "sig": sig.signature,
            }
        )
    return out


def metadata_vectors(outdir):
    expires = datetime(2030, 1, 1, tzinfo=timezone.utc)
    root_signer = CryptoSigner.generate_ecdsa()
    online = CryptoSigner.generate_ed25519()
    delegate = CryptoSigner.generate_ed25519()

    root = Root(expires=expires, consistent_snapshot=True)
    root.add_key(root_signer.public_key, "root")
    for role in ("timestamp", "snapshot", "targets"):
        root.add_key(online.public_key, role)
    root.unrecognized_fields["x-custom"] = {"nested": [1, "two", None]}

    targets = Targets(expires=expires)
    targets.targets["a/file.txt"] = TargetFile.from_data(
        "a/file.txt", b"hello", ["sha256", "sha512"]
    )
    targets.targets["a/file.txt"].unrecognized_fields["custom"] = {"app": "x"}
    targets.delegations = Delegations(
        keys={delegate.public_key.keyid: delegate.public_key},
        roles={
            "team": DelegatedRole(
                "team", [delegate.public_key.keyid], 1, True, paths=["team/*"]
            )
        },
    )
    snapshot = Snapshot(expires=expires)
    snapshot.meta["targets.json"] = MetaFile(1)
    snapshot.meta["team.json"] = MetaFile(1)
    timestamp = Timestamp(expires=expires, snapshot_meta=MetaFile(1, 123, {"sha256": "00" * 32}))

    files = {}
    for name, signed, signer in [
        ("root", root, root_signer),
        ("targets", targets, online),
        ("snapshot", snapshot, online),
        ("timestamp", timestamp, online),
    ]:
        md = Metadata(signed)
        md.unrecognized_fields["x-envelope"] = "kept"
        md.sign(signer)
        data = md.to_bytes(JSONSerializer())
        files[name] = data
        with open(os.path.join(outdir, "metadata", f"{name}.json"), "wb") as f:
            f.write(data)
    return files


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(__file__)
    os.makedirs(os.path.join(outdir, "metadata"), exist_ok=True)
    with open(os.path.join(outdir, "canonical.json"), "w") as f:
        json.dump(canonical_vectors(), f, indent=1, ensure_ascii=True)
    with open(os.path.join(outdir, "keys.json"), "w") as f:
        json.dump(key_vectors(), f, indent=1)
    metadata_vectors(outdir)


if __name__ == "__main__":
    main()
