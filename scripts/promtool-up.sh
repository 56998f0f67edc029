#!/usr/bin/env bash
# Installs promtool (shipped by Debian's prometheus package) when it is
# missing, for `promtool check rules` and `promtool test rules` on
# monitoring/. Idempotent; other jobs may hold the dpkg lock, so apt waits
# for it. The server that comes with the package is not started (no
# service is started by this script; containers' policy-rc.d forbids it
# anyway).
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "promtool-up: promtool is missing and installing Debian's prometheus package needs root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt_install() {
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends prometheus
}
if ! apt_install; then
  # The package lists may be missing or stale on a fresh machine.
  apt-get -o DPkg::Lock::Timeout=600 update -q
  apt_install
fi
command -v promtool >/dev/null
echo "promtool-up: $(promtool --version 2>&1 | head -1)"
