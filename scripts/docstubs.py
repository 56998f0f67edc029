#!/usr/bin/env python3
"""Write the documentation stubs of the collection's modules.

    python3 scripts/docstubs.py modules/ DEST/plugins/modules/

The modules are Go binaries run by the collection's action plugin; their
documentation lives in the sidecar modules/<name>/<name>.yml (DOCUMENTATION,
EXAMPLES, RETURN). In the collection, each module is a Python file that
holds only that documentation (as ansible-core's own action-backed modules
such as ansible.builtin.debug do): ansible-doc, ansible-test's
validate-modules and galaxy-importer read Python module files as text, and
read no binary. The binaries live outside plugins/modules/ (see the action
plugin), so nothing there is a file these tools cannot read.

Each block is copied as its text (comments and wrapping kept) and the stub
is checked to parse back to exactly what the sidecar says.
"""

from __future__ import annotations

import ast
import os
import sys
import textwrap

import yaml

KEYS = ("DOCUMENTATION", "EXAMPLES", "RETURN")

HEADER = """\
# -*- coding: utf-8 -*-
# Copyright: fleetsafe developers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
#
# Generated from modules/{name}/{name}.yml by scripts/docstubs.py: edit that
# file, not this one. The module is a Go binary that the action plugin
# fleetsafe.instances.fleetsafe_binary runs; this file only documents it.

from __future__ import absolute_import, division, print_function
__metaclass__ = type
"""


class StubError(Exception):
    pass


def blocks(path: str, text: str) -> dict[str, str]:
    """Split the sidecar into its top-level blocks, as text, dedented."""
    starts = []
    for i, line in enumerate(text.splitlines(keepends=True)):
        if line[:1] not in ("", " ", "#", "\n"):
            key, sep, rest = line.partition(":")
            if not sep:
                raise StubError("%s:%d: top-level line %r is not a key" % (path, i + 1, line.rstrip()))
            starts.append((i, key.strip(), rest.strip()))
    lines = text.splitlines(keepends=True)
    out = {}
    for n, (i, key, rest) in enumerate(starts):
        if key not in KEYS:
            raise StubError("%s:%d: top-level key %s is not one of %s" % (path, i + 1, key, ", ".join(KEYS)))
        if rest not in ("", "|"):
            raise StubError("%s:%d: %s must be a block (a mapping, or | for EXAMPLES), not %r" % (path, i + 1, key, rest))
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        body = textwrap.dedent("".join(lines[i + 1:end])).strip("\n") + "\n"
        if "'''" in body:
            raise StubError("%s: %s holds ''', which the stub's string cannot carry" % (path, key))
        out[key] = body
    missing = [k for k in KEYS if k not in out]
    if missing:
        raise StubError("%s: missing %s" % (path, ", ".join(missing)))
    return out


def stub(name: str, path: str) -> str:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    want = yaml.safe_load(text)
    parts = blocks(path, text)
    src = HEADER.format(name=name)
    for key in KEYS:
        src += "\n%s = r'''\n%s'''\n" % (key, parts[key])
    # The stub must say exactly what the sidecar says.
    tree = ast.parse(src)
    got = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id in KEYS:
            value = node.value.value[1:]  # the newline after the opening quotes
            got[node.targets[0].id] = value if node.targets[0].id == "EXAMPLES" else yaml.safe_load(value)
    if got != want:
        raise StubError("%s: the generated stub does not parse back to the sidecar's content" % path)
    if want["DOCUMENTATION"].get("module") != name:
        raise StubError("%s: DOCUMENTATION.module is %r, not %r" % (path, want["DOCUMENTATION"].get("module"), name))
    return src


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    src_dir, dest = argv[1], argv[2]
    os.makedirs(dest, exist_ok=True)
    names = sorted(n for n in os.listdir(src_dir) if os.path.isfile(os.path.join(src_dir, n, n + ".yml")))
    if not names:
        print("docstubs: no modules/<name>/<name>.yml under %s" % src_dir, file=sys.stderr)
        return 1
    try:
        for name in names:
            out = stub(name, os.path.join(src_dir, name, name + ".yml"))
            with open(os.path.join(dest, name + ".py"), "w", encoding="utf-8") as f:
                f.write(out)
    except (StubError, yaml.YAMLError, OSError) as e:
        print("docstubs: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
