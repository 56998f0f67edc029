#!/usr/bin/env bash
# Makes (once) the virtualenv of one supported ansible-core series for the
# test matrix, and prints its directory:
#
#   scripts/ansible-venv.sh 2.16     # .cache/ansible-2.16
#
# Each series is pinned to its newest release and run on a Python it
# supports (2.16 and 2.19 on 3.11; 2.20 and 2.21 need 3.12 or later and get
# 3.13 from pyenv). The venv holds ansible-core and molecule, nothing else.
# Idempotent: a venv whose stamp matches the pins is kept as it is; a
# partial or outdated one is made again.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
series=${1:?usage: ansible-venv.sh SERIES (2.16, 2.19, 2.20 or 2.21)}
molecule=molecule==26.10.0
case $series in
  2.16) core=ansible-core==2.16.19; py=3.11 ;;
  2.19) core=ansible-core==2.19.14; py=3.11 ;;
  2.20) core=ansible-core==2.20.10; py=3.13 ;;
  2.21) core=ansible-core==2.21.5;  py=3.13 ;;
  *) echo "ansible-venv: unsupported series $series (2.16, 2.19, 2.20 or 2.21)" >&2; exit 2 ;;
esac
python=
for p in "python$py" /root/.pyenv/versions/"$py".*/bin/python"$py"; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import ensurepip' 2>/dev/null; then python=$(command -v "$p"); break; fi
done
[[ -n $python ]] || { echo "ansible-venv: no Python $py with venv support for ansible-core $series (pyenv: /root/.pyenv/versions/$py.*)" >&2; exit 1; }
venv=$here/.cache/ansible-$series
stamp="$core $molecule $("$python" -c 'import sys; print(sys.version.split()[0])')"
if [[ -f $venv/.stamp && $(cat "$venv/.stamp") == "$stamp" ]]; then
  echo "$venv"; exit 0
fi
rm -rf "$venv"
"$python" -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "$core" "$molecule" >&2
version=$("$venv/bin/ansible-playbook" --version)
[[ $version == *"core ${core#ansible-core==}]"* ]] || { echo "ansible-venv: $venv does not run $core: $version" >&2; exit 1; }
echo "$stamp" > "$venv/.stamp"
echo "$venv"
