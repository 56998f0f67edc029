#!/usr/bin/env bash
# Runs `ansible-test sanity` on the release collection, as Automation Hub's
# certification does: the tarball (make collection) unpacked into
# ansible_collections/fleetsafe/instances/ and tested with one ansible-core
# series (the newest, 2.21 on Python 3.13, by default), every sanity test.
#
#   bash scripts/sanity.sh build/fleetsafe-instances-0.1.0.tar.gz [2.16]
#
# The only ignores are in the collection's tests/sanity/ignore-*.txt, each
# one that the certification policy allows, with its reason there.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tarball=$(realpath "${1:?usage: sanity.sh TARBALL [SERIES] (SERIES: 2.16, 2.19, 2.20 or 2.21; default 2.21)}")
series=${2:-2.21}
# ansible-test of that series, from its matrix venv (scripts/ansible-venv.sh).
venv=$(bash "$here/scripts/ansible-venv.sh" "$series")
pyver=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# ansible-test bootstraps pip in each sanity venv with a get-pip script it
# downloads from a host out of reach here; it uses a cached copy first.
pipver=$("$venv/bin/python" -c 'from ansible_test._internal.python_requirements import get_venv_packages as g
class P: version="'"$pyver"'"
print(g(P())["pip"])')
mkdir -p ~/.ansible/test/cache
cp "$here/scripts/sanity/get_pip.py" ~/.ansible/test/cache/get_pip_${pipver//./_}.py

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
coll=$work/ansible_collections/fleetsafe/instances
mkdir -p "$coll"
tar -C "$coll" -xzf "$tarball"
cd "$coll"
"$venv/bin/ansible-test" sanity --local --python "$pyver" --requirements --color no "${@:3}"
