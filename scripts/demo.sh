#!/usr/bin/env bash
# make demo: a sandbox fleet of 16 Tracim-like instances on 4 inventory
# hosts (all this machine, with real PostgreSQL databases), driven through
# ansible-playbook exactly as AWX would drive a real fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${FLEETSAFE_DEMO_ROOT:-/tmp/fleetsafe-demo}
export ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_LIBRARY=$PWD/build/library
INV=$ROOT/inventory.yml
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Generating the sandbox fleet in $ROOT"
go run ./cmd/fleetsafe-sandbox -root "$ROOT" -hosts 4 -instances 16

# As in the incident, one instance was only partly destroyed.
rm -rf "$ROOT/tracim-03/etc/tracim/wayne"

step "2. Discovery on every host (playbooks/fleet_report.yml)"
ansible-playbook -i "$INV" playbooks/fleet_report.yml -e fleetsafe_report_file="$ROOT/report.json"

step "Summary"
python3 - "$ROOT/report.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
print(f"{'host':<10} {'instance':<11} {'status':<9} {'missing':<12} last activity")
for r in rows:
    print(f"{r['host']:<10} {r['name']:<11} {r['status']:<9} {','.join(r['missing']) or '-':<12} {r['last_activity']}")
print(f"\n{len(rows)} instances, {sum(r['status']=='partial' for r in rows)} partial")
PY
step "Cleaning up"
go run ./cmd/fleetsafe-sandbox -root "$ROOT" -clean
