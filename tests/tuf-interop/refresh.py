#!/usr/bin/env python3
"""Fetch targets from a TUF 1.0 repository with python-tuf's ngclient.

This is the independent (python-tuf) client peer of Kasane's Rust TUF code:
the Rust interop tests serve a repository Kasane wrote and run this script
against it. For each --target it runs the standard client workflow
(tuf.ngclient.Updater: refresh, get_targetinfo, download_target) and prints
one JSON line on stdout:

  {"path": ..., "length": ..., "hashes": {...}, "custom": ...,
   "role": ..., "delegation_path": [...], "file": ...}

`role` is the role whose metadata listed the target and `delegation_path`
the chain of roles from `targets` to it, as ngclient's pre-order walk found
it. Exit status: 0 all targets fetched and verified; 1 a TUF or download
failure (bad signature, expired or rolled-back metadata, HTTP error, hash
mismatch, TLS failure, ...); 2 usage; 3 a target not found; 4 a downloaded
target's SHA-256 differs from --expect-sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from urllib.parse import quote

import tuf
import urllib3
from tuf.api import exceptions
from tuf.api.metadata import Metadata, Targets
from tuf.ngclient import Updater, Urllib3Fetcher

# Internal to python-tuf, but what Urllib3Fetcher itself uses; requirements.txt
# pins tuf==7.0.0, whose source this follows.
from tuf.ngclient._internal.proxy import ProxyEnvironment

EXIT_TUF = 1
EXIT_NOT_FOUND = 3
EXIT_HASH = 4


class Failure(Exception):
    """A failure to report on stderr and exit with `code`."""

    def __init__(self, message: str, code: int = EXIT_TUF) -> None:
        super().__init__(message)
        self.code = code


class KasaneFetcher(Urllib3Fetcher):
    """python-tuf's Urllib3Fetcher with two changes.

    * `ca_file`: TLS server certificates are verified against this CA bundle
      instead of the system store. Urllib3Fetcher sends every request through
      `self._proxy_env`, a ProxyEnvironment whose keyword arguments go to each
      urllib3 PoolManager, so it is rebuilt with `ca_certs=ca_file` (proxy
      environment variables keep working as in the stock fetcher).
    * A connection failure that is not a timeout (refused, TLS handshake
      failed, ...) is raised as DownloadError naming the cause; the stock
      7.0.0 `_fetch` falls through to an UnboundLocalError there.
    """

    def __init__(self, ca_file: str | None = None) -> None:
        super().__init__(app_user_agent="kasane-tuf-interop")
        if ca_file is not None:
            headers = {"User-Agent": f"kasane-tuf-interop python-tuf/{tuf.__version__}"}
            self._proxy_env = ProxyEnvironment(headers=headers, ca_certs=ca_file)

    def _fetch(self, url: str):  # noqa: ANN202 (same signature as the parent)
        try:
            response = self._proxy_env.request(
                "GET",
                url,
                preload_content=False,
                timeout=urllib3.Timeout(self.socket_timeout),
            )
        except urllib3.exceptions.MaxRetryError as e:
            if isinstance(e.reason, urllib3.exceptions.TimeoutError):
                raise exceptions.SlowRetrievalError from e
            raise exceptions.DownloadError(f"GET {url}: {e.reason}") from e

        if response.status >= 400:
            response.close()
            raise exceptions.DownloadHTTPError(
                f"GET {url}: HTTP status {response.status}", response.status
            )
        return self._chunks(response)


def delegation_path(metadata_dir: str, target_path: str) -> list[str]:
    """The chain of roles from `targets` to the role listing `target_path`.

    Repeats ngclient's pre-order depth-first walk (Updater's
    `_preorder_depth_first_walk`) over the metadata the Updater has just
    verified and saved as `<role>.json` in `metadata_dir`.
    """
    stack = [["targets"]]
    visited: set[str] = set()
    while stack:
        chain = stack.pop()
        role = chain[-1]
        if role in visited:
            continue
        path = os.path.join(metadata_dir, f"{quote(role, '')}.json")
        signed = Metadata[Targets].from_file(path).signed
        if target_path in signed.targets:
            return chain
        visited.add(role)
        children = []
        if signed.delegations is not None:
            for child, terminating in signed.delegations.get_roles_for_target(target_path):
                children.append(chain + [child])
                if terminating:
                    stack = []
                    break
        stack.extend(reversed(children))
    raise Failure(f"{target_path}: found by ngclient but not in its saved metadata")


def describe(e: BaseException) -> str:
    """`Type: message`, followed by the underlying cause when there is one
    (python-tuf's download errors often carry the useful part there)."""
    text = f"{type(e).__name__}: {e}".rstrip(": ")
    if e.__cause__ is not None:
        text += f" (caused by {describe(e.__cause__)})"
    return text


def metadata_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir) / "metadata"


def make_updater(args: argparse.Namespace) -> Updater:
    targets_dir = Path(args.dir) / "targets"
    metadata_dir(args).mkdir(parents=True, exist_ok=True)
    targets_dir.mkdir(parents=True, exist_ok=True)
    try:
        root = Path(args.root).read_bytes()
    except OSError as e:
        raise Failure(f"cannot read trusted root {args.root}: {e}") from None
    try:
        return Updater(
            metadata_dir=str(metadata_dir(args)),
            metadata_base_url=args.metadata_url,
            target_dir=str(targets_dir),
            target_base_url=args.targets_url,
            fetcher=KasaneFetcher(args.ca_file),
            bootstrap=root,
        )
    except Exception as e:  # noqa: BLE001 (any failure here is reported)
        raise Failure(f"trusted root {args.root} rejected: {describe(e)}") from e


def fetch_target(updater: Updater, metadata_dir: str, target: str, expect_sha256: str | None) -> dict:
    """get_targetinfo + download_target for one target; its JSON record."""
    try:
        info = updater.get_targetinfo(target)
    except Exception as e:  # noqa: BLE001
        raise Failure(f"{target}: lookup failed: {describe(e)}") from e
    if info is None:
        raise Failure(f"{target}: target not found in the repository", EXIT_NOT_FOUND)
    try:
        local = updater.download_target(info)
    except Exception as e:  # noqa: BLE001
        raise Failure(f"{target}: download failed: {describe(e)}") from e

    digest = hashlib.sha256(Path(local).read_bytes()).hexdigest()
    if expect_sha256 is not None and digest != expect_sha256.lower():
        raise Failure(
            f"{target}: sha256 {digest} differs from --expect-sha256 {expect_sha256}",
            EXIT_HASH,
        )
    chain = delegation_path(metadata_dir, target)
    return {
        "path": info.path,
        "length": info.length,
        "hashes": info.hashes,
        "custom": info.custom,
        "role": chain[-1],
        "delegation_path": chain,
        "file": os.path.abspath(local),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=(
            "Fetch and verify targets from a TUF 1.0 repository with python-tuf's "
            "tuf.ngclient.Updater (refresh, get_targetinfo, download_target). Prints "
            "one JSON line per target: path, length, hashes, custom, role, "
            "delegation_path, file. Exit status: 0 ok, 1 TUF/download failure, "
            "2 usage, 3 target not found, 4 --expect-sha256 mismatch."
        )
    )
    p.add_argument("--metadata-url", required=True, metavar="URL", help="base URL of the metadata (e.g. http://127.0.0.1:8000/metadata/)")
    p.add_argument("--targets-url", required=True, metavar="URL", help="base URL of the targets (e.g. http://127.0.0.1:8000/targets/)")
    p.add_argument("--root", required=True, metavar="PATH", help="trusted root metadata to start from (e.g. OUT_DIR/metadata/1.root.json)")
    p.add_argument(
        "--dir", required=True, metavar="WORKDIR",
        help="client state: WORKDIR/metadata (trusted metadata, kept between runs, so a "
        "second run against the same WORKDIR checks for rollback) and WORKDIR/targets (downloads)",
    )
    p.add_argument("--target", action="append", required=True, metavar="NAME", help="target path to fetch, e.g. sha256-chain or acme/ocra-v2 (repeatable)")
    p.add_argument(
        "--expect-sha256", action="append", default=[], metavar="HEX",
        help="expected SHA-256 of the downloaded target; give none, or one per --target in the same order",
    )
    p.add_argument("--ca-file", metavar="PATH", help="PEM CA bundle to verify https servers with, instead of the system store")
    p.add_argument("-v", "--verbose", action="store_true", help="log python-tuf's debug messages to stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.expect_sha256 and len(args.expect_sha256) != len(args.target):
        parser.error("give --expect-sha256 once per --target, or not at all")
    if args.ca_file is not None and not os.path.isfile(args.ca_file):
        parser.error(f"--ca-file {args.ca_file}: no such file")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)

    expected = args.expect_sha256 or [None] * len(args.target)
    try:
        updater = make_updater(args)
        try:
            updater.refresh()
        except Exception as e:  # noqa: BLE001
            raise Failure(f"refresh failed: {describe(e)}") from e
        for target, expect in zip(args.target, expected):
            print(json.dumps(fetch_target(updater, str(metadata_dir(args)), target, expect), sort_keys=True), flush=True)
    except Failure as e:
        print(f"refresh.py: error: {e}", file=sys.stderr)
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(main())
