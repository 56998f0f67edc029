#!/usr/bin/env bash
# Installs the built collection tarball into an empty collections path and
# uses it as a user would: ansible-doc and tasks by FQCN, from a directory
# without this project's ansible.cfg. Also checks that the action plugin
# picks the build for the target's platform and refuses unsupported ones
# (a fake uname stands in for other platforms, which this machine is not).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tarball=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '[defaults]\n' > "$work/empty.cfg"
export ANSIBLE_CONFIG=$work/empty.cfg ANSIBLE_COLLECTIONS_PATH=$work/collections ANSIBLE_NOCOLOR=1 \
  ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
cd "$work"
ansible-galaxy collection install "$tarball" -p "$work/collections" --force >/dev/null
fail() { echo "collection-test: $*" >&2; exit 1; }

for m in backup_verify instance_info instance_purge instance_restore instance_soft_delete; do
  ansible-doc "fleetsafe.instances.$m" | grep -q "fleetsafe.instances.$m" || fail "ansible-doc fleetsafe.instances.$m"
done
echo "collection-test: ansible-doc works for the five modules after install"

# The listing names exactly the five modules and says nothing else (no
# warning: no binary is read as a module file, nothing else looks like a
# module), and the metadata dump of the collection succeeds.
list=$(ansible-doc -l fleetsafe.instances 2>&1) || fail "ansible-doc -l: $list"
names=$(awk '{print $1}' <<<"$list" | sort | tr '\n' ' ')
[[ $names == "fleetsafe.instances.backup_verify fleetsafe.instances.instance_info fleetsafe.instances.instance_purge fleetsafe.instances.instance_restore fleetsafe.instances.instance_soft_delete " ]] \
  || fail "ansible-doc -l lists something else than the five modules, or warns: $list"
ansible-doc --metadata-dump fleetsafe.instances >"$work/dump.json" 2>"$work/dump.err" || fail "ansible-doc --metadata-dump exits non-zero: $(cat "$work/dump.err")"
[[ ! -s $work/dump.err ]] || fail "ansible-doc --metadata-dump warns: $(cat "$work/dump.err")"
echo "collection-test: ansible-doc -l lists the five modules without a warning; --metadata-dump exits 0"

out=$(ansible localhost -m fleetsafe.instances.instance_info -a "layout_file=$here/examples/layouts/nextcloud.yml name=acme" -e ansible_python_interpreter=auto_silent 2>&1) \
  || fail "instance_info by FQCN: $out"
grep -q '"found": false' <<<"$out" || fail "instance_info by FQCN gave: $out"
echo "collection-test: fleetsafe.instances.instance_info runs by FQCN"

mkdir -p fake
fake_uname() { printf '#!/bin/sh\necho "%s"\n' "$1" > fake/uname; chmod +x fake/uname; }
fake_uname "Darwin arm64"
out=$(PATH=$work/fake:$PATH ansible localhost -m fleetsafe.instances.instance_info -a "layout_file=/x.yml" 2>&1) && fail "Darwin accepted: $out"
grep -q "run on linux/amd64 and linux/arm64; localhost is Darwin/arm64" <<<"$out" || fail "unsupported platform message: $out"
echo "collection-test: an unsupported platform is refused with a clear error"

fake_uname "Linux aarch64"
# A cache of its own: the host's cache may already hold this arm64 build
# from an earlier run, and then no copy (naming its source) is made.
out=$(PATH=$work/fake:$PATH ansible localhost -vvv -m fleetsafe.instances.instance_info -a "layout_file=/x.yml" \
  -e "fleetsafe_cache_dir=$work/cache" 2>&1) && fail "arm64 binary ran on amd64?: $out"
grep -q "binaries/linux_arm64/fleetsafe" <<<"$out" || fail "arm64 build not chosen: $out"
echo "collection-test: a linux/arm64 target gets the linux/arm64 build"
