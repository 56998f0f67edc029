#!/usr/bin/env bash
# Starts a private sshd on the loopback for benchmarks and tests over a real
# SSH connection; idempotent. Debian's openssh-server is installed when
# missing; host and client keys, config, pid file and log are generated in
# DIR (default build/ssh), never in /etc/ssh. It listens on 127.0.0.1:PORT
# (FLEETSAFE_SSHD_PORT, default 22022), lets root in with DIR/client_ed25519
# only, and writes DIR/known_hosts and DIR/env (SSHD_DIR, SSHD_PORT,
# SSHD_PID) for callers.
#
#   bash scripts/sshd-up.sh [DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mkdir -p "${1:-$here/build/ssh}" && cd "${1:-$here/build/ssh}" && pwd)
port=${FLEETSAFE_SSHD_PORT:-22022}

if [[ ! -x /usr/sbin/sshd ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends openssh-server >/dev/null \
    || { apt-get -o DPkg::Lock::Timeout=600 update >/dev/null \
         && apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends openssh-server >/dev/null; }
fi
command -v ssh >/dev/null || { echo "sshd-up: no ssh client (openssh-client)" >&2; exit 1; }

chmod 0700 "$dir"
mkdir -p /run/sshd
[[ -f $dir/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C fleetsafe-bench-host -f "$dir/host_ed25519"
[[ -f $dir/client_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C fleetsafe-bench-client -f "$dir/client_ed25519"
cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" > "$dir/known_hosts"
cat > "$dir/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
MaxStartups 200:30:400
MaxSessions 200
LogLevel ERROR
CFG

pid=$(cat "$dir/sshd.pid" 2>/dev/null || true)
if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && grep -q sshd "/proc/$pid/cmdline" 2>/dev/null; then
  kill -HUP "$pid"   # re-read the config written above
else
  /usr/sbin/sshd -t -f "$dir/sshd_config"
  /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
fi
for _ in $(seq 50); do
  if ssh -F none -p "$port" -i "$dir/client_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
       -o UserKnownHostsFile="$dir/known_hosts" -o StrictHostKeyChecking=yes root@127.0.0.1 true 2>/dev/null; then
    printf 'SSHD_DIR=%s\nSSHD_PORT=%s\nSSHD_PID=%s\n' "$dir" "$port" "$(cat "$dir/sshd.pid")" > "$dir/env"
    exit 0
  fi
  sleep 0.2
done
echo "sshd-up: sshd on 127.0.0.1:$port does not let root in with $dir/client_ed25519; see $dir/sshd.log" >&2
exit 1
