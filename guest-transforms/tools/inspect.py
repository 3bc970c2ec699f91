#!/usr/bin/env python3
"""Checks built modules against the Kasane ABI v1 without any wasm tooling.

For each module: parses the import, memory and export sections by hand, prints them, and
fails (exit 1) when a pure module has any import, a wasi module imports from anything but
`wasi_snapshot_preview1`, an ABI export is missing or has the wrong kind, the memory is
shared or 64-bit, or the bytes contain an absolute path prefix (`/work/`, `/root/`, `/home/`,
`/usr/`, `/tmp/`), which would break reproducibility across checkouts.

Usage: tools/inspect.py [--wasi NAME]... MODULE.wasm...
"""
import sys

KIND = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}
REQUIRED = {"memory": "memory", "kasane_abi_v1": "func", "kasane_alloc": "func", "kasane_derive": "func"}
PATH_PREFIXES = [b"/work/", b"/root/", b"/home/", b"/usr/", b"/tmp/"]


def leb(b, i):
    result = shift = 0
    while True:
        byte = b[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def name(b, i):
    n, i = leb(b, i)
    return b[i:i + n].decode("utf-8"), i + n


def limits(b, i):
    flags = b[i]
    i += 1
    lo, i = leb(b, i)
    hi = None
    if flags & 1:
        hi, i = leb(b, i)
    return (flags, lo, hi), i


def parse(b):
    assert b[:8] == b"\0asm\x01\0\0\0", "not a wasm core module v1"
    i = 8
    imports, exports, memories, sections = [], [], [], []
    while i < len(b):
        sid = b[i]
        size, j = leb(b, i + 1)
        end = j + size
        sections.append(sid)
        if sid == 2:
            n, j = leb(b, j)
            for _ in range(n):
                mod, j = name(b, j)
                fld, j = name(b, j)
                kind = b[j]
                j += 1
                if kind == 0:
                    _, j = leb(b, j)
                elif kind == 1:
                    j += 1
                    _, j = limits(b, j)
                elif kind == 2:
                    lim, j = limits(b, j)
                    memories.append(("imported",) + lim)
                elif kind == 3:
                    j += 2
                imports.append((mod, fld, KIND.get(kind, kind)))
        elif sid == 5:
            n, j = leb(b, j)
            for _ in range(n):
                lim, j = limits(b, j)
                memories.append(("defined",) + lim)
        elif sid == 7:
            n, j = leb(b, j)
            for _ in range(n):
                fld, j = name(b, j)
                kind = b[j]
                idx, j = leb(b, j + 1)
                exports.append((fld, KIND.get(kind, kind)))
        i = end
    return imports, exports, memories, sections


def check(path, wasi):
    b = open(path, "rb").read()
    imports, exports, memories, sections = parse(b)
    problems = []
    for mod, fld, kind in imports:
        if not wasi:
            problems.append(f"import {mod}.{fld} in a pure module")
        elif mod != "wasi_snapshot_preview1":
            problems.append(f"import {mod}.{fld} is not from wasi_snapshot_preview1")
    ex = dict(exports)
    for n, kind in REQUIRED.items():
        if ex.get(n) != kind:
            problems.append(f"export {n} ({kind}) missing")
    for origin, flags, lo, hi in memories:
        if flags & 2:
            problems.append("shared memory")
        if flags & 4:
            problems.append("memory64")
    for p in PATH_PREFIXES:
        if p in b:
            k = b.index(p)
            problems.append(f"absolute path in bytes: {b[k:k + 60]!r}")
    mem = ", ".join(f"{o} {lo} pages (max {hi})" for o, _, lo, hi in memories)
    print(f"{path}: {len(b)} bytes; memory: {mem}")
    print(f"  exports: {', '.join(f'{n}:{k}' for n, k in exports)}")
    print(f"  imports: {', '.join(f'{m}.{f}' for m, f, _ in imports) or '(none)'}")
    for p in problems:
        print(f"  PROBLEM: {p}")
    return not problems


def main(argv):
    wasi, files = set(), []
    it = iter(argv)
    for a in it:
        if a == "--wasi":
            wasi.add(next(it))
        else:
            files.append(a)
    ok = True
    for f in files:
        stem = f.rsplit("/", 1)[-1].removesuffix(".wasm")
        ok &= check(f, stem in wasi)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
