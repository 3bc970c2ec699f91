#!/usr/bin/env python3
"""Fails if a module of a crate imports, directly or through others, a module that imports it.

Reads each crate's src/ as text (comments and `#[cfg(test)]` tails left out), takes every
`crate::x` path and every `use crate::{x, ...}` name, maps names the crate root re-exports back
to the module that defines them, and looks for cycles between top-level modules. A heuristic
reader, not a compiler: it errs towards reporting. Usage: module-cycles.py CRATE_DIR...
"""
import os
import re
import sys


def top_modules(src):
    mods = {}
    for root, _dirs, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[0] == "bin":
                continue
            top = "<root>" if parts[0] in ("lib", "main", "mod") else parts[0]
            mods.setdefault(top, []).append(path)
    return mods


def code_of(path):
    text = open(path, encoding="utf-8").read()
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    return "\n".join(l for l in text.split("\n") if not l.strip().startswith("//"))


def graph_of(crate):
    mods = top_modules(os.path.join(crate, "src"))
    root = "".join(code_of(p) for p in mods.get("<root>", []))
    reexported = {}
    for m in re.finditer(r"pub use (\w+)::\{?([^;]+)\}?;", root):
        for name in re.findall(r"\b(\w+)\b", m.group(2)):
            reexported[name] = m.group(1)

    def owner(name, me):
        target = name if name in mods else reexported.get(name)
        return target if target in mods and target not in (me, "<root>") else None

    graph = {}
    for top, files in mods.items():
        if top == "<root>":
            continue
        deps = set()
        for path in files:
            code = code_of(path)
            names = re.findall(r"crate::(\w+)", code)
            for group in re.findall(r"use crate::\{([^}]*)\}", code):
                names += re.findall(r"\b(\w+)\b", group)
            deps |= {o for o in (owner(n, top) for n in names) if o}
        graph[top] = deps
    return graph


def a_cycle(graph):
    state = {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep, path + [dep])
                if found:
                    return found
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


failed = False
for crate in sys.argv[1:]:
    cycle = a_cycle(graph_of(crate))
    if cycle:
        failed = True
        print(f"{crate}: module cycle {' -> '.join(cycle)}")
    else:
        print(f"{crate}: no module cycle")
sys.exit(1 if failed else 0)
