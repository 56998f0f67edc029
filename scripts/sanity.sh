#!/usr/bin/env bash
# Runs `ansible-test sanity` on the release collection, as Automation Hub's
# certification does: the tarball (make collection) unpacked into
# ansible_collections/fleetsafe/instances/ and tested with the newest
# ansible-core (2.21) on Python 3.13, every sanity test.
#
#   bash scripts/sanity.sh build/fleetsafe-instances-0.1.0.tar.gz
#
# The only ignores are in the collection's tests/sanity/ignore-*.txt, each
# one that the certification policy allows, with its reason there.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tarball=$(realpath "${1:?usage: sanity.sh TARBALL}")
core=ansible-core==2.21.5
py=$(ls -d /root/.pyenv/versions/3.13.*/bin/python3.13 2>/dev/null | head -1 || true)
[[ -n $py ]] || py=$(command -v python3.13) || { echo "sanity: Python 3.13 is needed" >&2; exit 1; }
venv=$here/.cache/sanity
if [[ ! -x $venv/bin/ansible-test || $(cat "$venv/.stamp" 2>/dev/null) != "$core" ]]; then
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$core"
  echo "$core" > "$venv/.stamp"
fi
# ansible-test bootstraps pip in each sanity venv with a get-pip script it
# downloads from a host out of reach here; it uses a cached copy first.
pipver=$("$venv/bin/python" -c 'from ansible_test._internal.python_requirements import get_venv_packages as g
class P: version="3.13"
print(g(P())["pip"])')
mkdir -p ~/.ansible/test/cache
cp "$here/scripts/sanity/get_pip.py" ~/.ansible/test/cache/get_pip_${pipver//./_}.py

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
coll=$work/ansible_collections/fleetsafe/instances
mkdir -p "$coll"
tar -C "$coll" -xzf "$tarball"
cd "$coll"
"$venv/bin/ansible-test" sanity --local --python 3.13 --requirements --color no "${@:2}"
