#!/usr/bin/env python3
"""Build and sign a Kasane registry as a standard TUF 1.0 repository.

This is the independent (python-tuf) peer of Kasane's Rust TUF code: the Rust
interop tests run it to get a repository written by someone else, then read
it with Kasane's client. See README.md in this folder for the layout.

Roles and keys (all thresholds 1):

  root         ECDSA P-256 (keytype "ecdsa", scheme "ecdsa-sha2-nistp256")
  timestamp    \\ one Ed25519 key shared by both (the "online" key)
  snapshot     /
  targets      ECDSA P-256
  revocations  Ed25519, delegated by targets, paths ["kasane/revocations.json"],
               terminating
  authors      Ed25519, delegated by targets after revocations, paths ["*/*"],
               not terminating
  <author>     delegated by authors, paths ["<author>/*"], terminating;
               authors alternate Ed25519, ECDSA P-256, Ed25519, ... in the
               order they first appear on the command line

Everything is version 1; consistent_snapshot is true.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

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

HOST_KEYS_TARGET = "kasane/host-keys.json"
REVOCATIONS_TARGET = "kasane/revocations.json"
REVOCATIONS_ROLE = "revocations"
AUTHORS_ROLE = "authors"
# Names an author may not take: TUF's top-level roles, Kasane's own delegated
# roles, and "kasane" (its targets live under kasane/, which "*/*" would hand
# to that author's role).
RESERVED_AUTHORS = {
    "root",
    "timestamp",
    "snapshot",
    "targets",
    REVOCATIONS_ROLE,
    AUTHORS_ROLE,
    "kasane",
}
PROFILES = ("pure", "wasi")
# Kasane's rules (docs/REGISTRY.md): author ids [a-z0-9-] up to 64; a module
# name here is one path component of [a-z0-9._-].
AUTHOR_RE = re.compile(r"^[a-z0-9-]{1,64}$")
MODULE_RE = re.compile(r"^(?!\.\.?$)[a-z0-9._-]{1,64}$")
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1

SERIALIZER = JSONSerializer(compact=False)


class UsageError(Exception):
    """A command-line value that cannot be used; reported without a trace."""


# ---------------------------------------------------------------- parsing --


@dataclass
class Module:
    """One target to publish: where it comes from and what it says."""

    target_path: str
    source: Path
    custom: dict
    data: bytes = field(default=b"", repr=False)


def parse_hex(text: str, what: str, length: int | None = None) -> str:
    """Return `text` as lowercase hex, checking it decodes (to `length` bytes)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{what}: not hex: {text!r}") from None
    if length is not None and len(raw) != length:
        raise UsageError(f"{what}: expected {length} bytes, got {len(raw)}")
    return raw.hex()


def parse_int(text: str, what: str, maximum: int) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise UsageError(f"{what}: not a decimal integer: {text!r}") from None
    if not 0 <= value <= maximum:
        raise UsageError(f"{what}: {value} is outside 0..={maximum}")
    return value


def parse_kasane_options(text: str, what: str) -> dict:
    """Parse `fuel=..,memory=..,weight=..,params=HEX,profile=pure` into the
    target's `custom.kasane` object."""
    options: dict[str, str] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{what}: option {item!r} is not KEY=VALUE")
        if key in options:
            raise UsageError(f"{what}: option {key!r} given twice")
        options[key] = value
    unknown = set(options) - {"fuel", "memory", "weight", "params", "profile"}
    if unknown:
        raise UsageError(f"{what}: unknown option(s) {sorted(unknown)}")
    for required in ("fuel", "memory", "weight"):
        if required not in options:
            raise UsageError(f"{what}: missing {required}=")
    profile = options.get("profile", "pure")
    if profile not in PROFILES:
        raise UsageError(f"{what}: profile must be one of {PROFILES}")
    return {
        "profile": profile,
        "fuel": parse_int(options["fuel"], f"{what} fuel", U64_MAX),
        "memory": parse_int(options["memory"], f"{what} memory", U64_MAX),
        "params": parse_hex(options.get("params", ""), f"{what} params"),
        "rollout_weight": parse_int(options["weight"], f"{what} weight", U32_MAX),
    }


def parse_module_spec(spec: str, what: str) -> tuple[str, Path, dict]:
    """Split `TARGET=PATH:OPTIONS` (PATH may not contain ':')."""
    target, sep, rest = spec.partition("=")
    if not sep:
        raise UsageError(f"{what} {spec!r}: expected TARGET=PATH:OPTIONS")
    path, sep, options = rest.rpartition(":")
    if not sep or not path:
        raise UsageError(f"{what} {spec!r}: expected TARGET=PATH:OPTIONS")
    custom = parse_kasane_options(options, f"{what} {target}")
    return target, Path(path), custom


def split_author_target(target: str, what: str) -> tuple[str, str]:
    author, sep, name = target.partition("/")
    if not sep:
        raise UsageError(f"{what} {target!r}: expected AUTHOR/NAME")
    check_author(author, what)
    if not MODULE_RE.match(name):
        raise UsageError(f"{what} {target!r}: module name must match {MODULE_RE.pattern}")
    return author, name


def check_author(author: str, what: str) -> None:
    if not AUTHOR_RE.match(author):
        raise UsageError(f"{what}: author {author!r} must match {AUTHOR_RE.pattern}")
    if author in RESERVED_AUTHORS:
        raise UsageError(f"{what}: author name {author!r} is reserved")


def load_module(target_path: str, source: Path, custom: dict) -> Module:
    try:
        data = source.read_bytes()
    except OSError as e:
        raise UsageError(f"{target_path}: cannot read {source}: {e}") from None
    if not data:
        raise UsageError(f"{target_path}: {source} is empty")
    return Module(target_path, source, {"kasane": custom}, data)


# ------------------------------------------------------------------- keys --


def ed25519_key_object(public_hex: str) -> dict:
    """A TUF key object for a raw Ed25519 public key (no keyid)."""
    return {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": public_hex}}


class KeyStore:
    """Generates signers and writes their private keys under OUT_DIR/keys."""

    def __init__(self, keys_dir: Path) -> None:
        self.dir = keys_dir
        self.index: dict[str, dict] = {}

    def new(self, name: str, kind: str, roles: list[str]) -> CryptoSigner:
        if kind == "ed25519":
            signer = CryptoSigner.generate_ed25519()
        elif kind == "ecdsa":
            signer = CryptoSigner.generate_ecdsa()
        else:
            raise ValueError(f"unknown key kind {kind!r}")
        path = self.dir / f"{name}.pem"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(signer.private_bytes)
        os.chmod(path, 0o600)
        key = signer.public_key
        self.index[name] = {
            "roles": roles,
            "keyid": key.keyid,
            "keytype": key.keytype,
            "scheme": key.scheme,
            "public": key.keyval["public"],
            "private_pkcs8_pem": str(path.relative_to(self.dir)),
        }
        return signer

    def write_index(self) -> None:
        text = json.dumps(self.index, indent=2, sort_keys=True) + "\n"
        (self.dir / "index.json").write_text(text)


# ------------------------------------------------------------- repository --


class RepoWriter:
    """Writes consistent-snapshot metadata and hash-prefixed target files,
    remembering each metadata file's length and hash for the snapshot."""

    def __init__(self, out_dir: Path) -> None:
        self.metadata_dir = out_dir / "metadata"
        self.targets_dir = out_dir / "targets"
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.meta: dict[str, MetaFile] = {}

    def add_target(self, role: Targets, target_path: str, data: bytes, custom: dict | None) -> None:
        """Record `data` as `target_path` in `role` and write
        targets/<dir>/<sha256>.<basename>."""
        if target_path in role.targets:
            raise UsageError(f"target {target_path!r} given twice")
        info = TargetFile.from_data(target_path, data, ["sha256"])
        if custom is not None:
            info.unrecognized_fields["custom"] = custom
        role.targets[target_path] = info
        dirname, sep, basename = target_path.rpartition("/")
        out = self.targets_dir / dirname / f"{info.hashes['sha256']}.{basename}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)

    def write_metadata(self, md: Metadata, signer: CryptoSigner, filename: str) -> bytes:
        md.sign(signer)
        data = md.to_bytes(SERIALIZER)
        (self.metadata_dir / filename).write_bytes(data)
        return data

    def write_versioned(self, role: str, md: Metadata, signer: CryptoSigner) -> None:
        data = self.write_metadata(md, signer, f"{md.signed.version}.{role}.json")
        self.meta[f"{role}.json"] = MetaFile(
            version=md.signed.version,
            length=len(data),
            hashes={"sha256": hashlib.sha256(data).hexdigest()},
        )


def delegated(name: str, signer: CryptoSigner, paths: list[str], terminating: bool) -> DelegatedRole:
    return DelegatedRole(
        name=name,
        keyids=[signer.public_key.keyid],
        threshold=1,
        terminating=terminating,
        paths=paths,
    )


def delegations(roles: list[tuple[DelegatedRole, CryptoSigner]]) -> Delegations:
    """Delegations in the given order, with each role's key."""
    return Delegations(
        keys={s.public_key.keyid: s.public_key for _, s in roles},
        roles={r.name: r for r, _ in roles},
    )


def json_file_bytes(obj: dict) -> bytes:
    """A Kasane JSON target file: sorted keys, 2-space indent, final newline."""
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


@dataclass
class RepoSpec:
    first_party: list[Module]
    # author -> modules (author order = first appearance on the command line)
    authors: dict[str, list[Module]]
    # author -> modules signed by that author outside its paths
    stray: dict[str, list[Module]]
    host_identity: list[str]
    host_ticket: list[str]
    revoked: list[str]
    expires: datetime


def build_repo(spec: RepoSpec, out_dir: Path) -> dict:
    keys = KeyStore(out_dir / "keys")
    writer = RepoWriter(out_dir)

    root_signer = keys.new("root", "ecdsa", ["root"])
    online_signer = keys.new("online", "ed25519", ["timestamp", "snapshot"])
    targets_signer = keys.new("targets", "ecdsa", ["targets"])
    revocations_signer = keys.new(REVOCATIONS_ROLE, "ed25519", [REVOCATIONS_ROLE])
    authors_signer = keys.new(AUTHORS_ROLE, "ed25519", [AUTHORS_ROLE])
    author_signers = {
        author: keys.new(f"author-{author}", "ed25519" if i % 2 == 0 else "ecdsa", [author])
        for i, author in enumerate(spec.authors)
    }
    keys.write_index()

    # Author roles: their modules (and, for negative tests, stray targets).
    for author, signer in author_signers.items():
        role = Targets(expires=spec.expires)
        for module in spec.authors[author] + spec.stray.get(author, []):
            writer.add_target(role, module.target_path, module.data, module.custom)
        writer.write_versioned(author, Metadata(role), signer)

    # authors: delegates each author its own prefix, terminating.
    authors = Targets(expires=spec.expires)
    if author_signers:
        authors.delegations = delegations(
            [(delegated(a, s, [f"{a}/*"], True), s) for a, s in author_signers.items()]
        )
    writer.write_versioned(AUTHORS_ROLE, Metadata(authors), authors_signer)

    # revocations: the revoked module hashes.
    revocations = Targets(expires=spec.expires)
    writer.add_target(
        revocations, REVOCATIONS_TARGET, json_file_bytes({"modules": spec.revoked}), None
    )
    writer.write_versioned(REVOCATIONS_ROLE, Metadata(revocations), revocations_signer)

    # targets: first-party modules, the host keys, two delegations in order.
    targets = Targets(expires=spec.expires)
    for module in spec.first_party:
        writer.add_target(targets, module.target_path, module.data, module.custom)
    host_keys = {
        "identity": [ed25519_key_object(k) for k in spec.host_identity],
        "tickets": [ed25519_key_object(k) for k in spec.host_ticket],
    }
    writer.add_target(targets, HOST_KEYS_TARGET, json_file_bytes(host_keys), None)
    targets.delegations = delegations(
        [
            (delegated(REVOCATIONS_ROLE, revocations_signer, [REVOCATIONS_TARGET], True), revocations_signer),
            (delegated(AUTHORS_ROLE, authors_signer, ["*/*"], False), authors_signer),
        ]
    )
    writer.write_versioned("targets", Metadata(targets), targets_signer)

    # snapshot lists every targets-type file (version, length, sha256).
    snapshot = Snapshot(expires=spec.expires, meta=dict(sorted(writer.meta.items())))
    writer.write_versioned("snapshot", Metadata(snapshot), online_signer)

    timestamp = Timestamp(expires=spec.expires, snapshot_meta=writer.meta["snapshot.json"])
    writer.write_metadata(Metadata(timestamp), online_signer, "timestamp.json")

    root = Root(expires=spec.expires, consistent_snapshot=True)
    root.add_key(root_signer.public_key, "root")
    root.add_key(online_signer.public_key, "timestamp")
    root.add_key(online_signer.public_key, "snapshot")
    root.add_key(targets_signer.public_key, "targets")
    writer.write_metadata(Metadata(root), root_signer, "1.root.json")

    return {
        "metadata": str(writer.metadata_dir),
        "targets": str(writer.targets_dir),
        "keys": str(keys.dir),
        "root": str(writer.metadata_dir / "1.root.json"),
        "roles": ["root", "timestamp", "snapshot", "targets", REVOCATIONS_ROLE, AUTHORS_ROLE]
        + list(author_signers),
        "modules": {
            m.target_path: hashlib.sha256(m.data).hexdigest()
            for m in spec.first_party + [m for ms in spec.authors.values() for m in ms]
        },
    }


# -------------------------------------------------------------------- CLI --


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Build and sign a Kasane registry as a standard TUF 1.0 repository (python-tuf
Metadata API). Writes OUT_DIR/metadata/ (1.root.json, 1.<role>.json,
timestamp.json), OUT_DIR/targets/ (<dir>/<sha256>.<basename>) and OUT_DIR/keys/
(PKCS#8 PEM private keys, mode 0600, and index.json naming each key's roles,
keyid and public key). Prints a JSON summary on stdout. Keys are freshly random
on every run; OUT_DIR/metadata/1.root.json is the client's initial trusted root.""",
        epilog="""\
OPTIONS is a comma-separated list:
  fuel=INT,memory=INT,weight=INT   required (weight is custom.kasane.rollout_weight)
  params=HEX                       default empty
  profile=pure|wasi                default pure
PATH may not contain ':'. Example:
  --module sha256-chain=build/sha256_chain.wasm:fuel=1000000,memory=65536,weight=1,params=00ff,profile=pure""",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="output directory (created; must be empty if it exists)")
    p.add_argument(
        "--module", action="append", default=[], metavar="NAME=PATH:OPTIONS",
        help="first-party module signed by targets; target path NAME (repeatable)",
    )
    p.add_argument(
        "--author-module", action="append", default=[], metavar="AUTHOR/NAME=PATH:OPTIONS",
        help="third-party module signed by role AUTHOR (delegated by authors with "
        "paths [AUTHOR/*]); target path AUTHOR/NAME (repeatable). The first author "
        "named gets an Ed25519 key, the second ECDSA P-256, and so on alternately",
    )
    p.add_argument(
        "--stray-module", action="append", default=[], metavar="AUTHOR@TARGET=PATH:OPTIONS",
        help="NEGATIVE TESTS ONLY: make role AUTHOR (which must also have an "
        "--author-module) sign TARGET although it lies outside AUTHOR/*; "
        "a conforming client must not find it (repeatable)",
    )
    p.add_argument(
        "--host-identity", action="append", required=True, metavar="HEX",
        help="host identity Ed25519 public key, 32 bytes hex (required, repeatable)",
    )
    p.add_argument(
        "--host-ticket", action="append", required=True, metavar="HEX",
        help="host session-ticket Ed25519 public key, 32 bytes hex (required, repeatable)",
    )
    p.add_argument(
        "--revoke", action="append", default=[], metavar="SHA256",
        help="module SHA-256 (hex) to list in kasane/revocations.json (repeatable)",
    )
    p.add_argument(
        "--expires-days", type=int, default=365, metavar="N",
        help="every role expires N days from now (default 365; negative gives "
        "already-expired metadata)",
    )
    return p


def spec_from_args(args: argparse.Namespace) -> RepoSpec:
    first_party: list[Module] = []
    for spec in args.module:
        name, path, custom = parse_module_spec(spec, "--module")
        if not MODULE_RE.match(name):
            raise UsageError(f"--module {name!r}: name must match {MODULE_RE.pattern}")
        first_party.append(load_module(name, path, custom))

    authors: dict[str, list[Module]] = {}
    for spec in args.author_module:
        target, path, custom = parse_module_spec(spec, "--author-module")
        author, _ = split_author_target(target, "--author-module")
        authors.setdefault(author, []).append(load_module(target, path, custom))

    stray: dict[str, list[Module]] = {}
    for spec in args.stray_module:
        author, sep, rest = spec.partition("@")
        if not sep:
            raise UsageError(f"--stray-module {spec!r}: expected AUTHOR@TARGET=PATH:OPTIONS")
        if author not in authors:
            raise UsageError(f"--stray-module: author {author!r} has no --author-module")
        target, path, custom = parse_module_spec(rest, "--stray-module")
        stray.setdefault(author, []).append(load_module(target, path, custom))

    every = [m.target_path for m in first_party]
    every += [m.target_path for ms in list(authors.values()) + list(stray.values()) for m in ms]
    duplicates = sorted({t for t in every if every.count(t) > 1})
    if duplicates:
        raise UsageError(f"target(s) given twice: {duplicates}")

    revoked = sorted({parse_hex(h, "--revoke", 32) for h in args.revoke})
    return RepoSpec(
        first_party=first_party,
        authors=authors,
        stray=stray,
        host_identity=[parse_hex(h, "--host-identity", 32) for h in args.host_identity],
        host_ticket=[parse_hex(h, "--host-ticket", 32) for h in args.host_ticket],
        revoked=revoked,
        expires=datetime.now(timezone.utc).replace(microsecond=0)
        + timedelta(days=args.expires_days),
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        spec = spec_from_args(args)
        if args.out_dir.exists() and any(args.out_dir.iterdir()):
            raise UsageError(f"{args.out_dir} exists and is not empty")
        summary = build_repo(spec, args.out_dir)
    except UsageError as e:
        parser.error(str(e))
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
