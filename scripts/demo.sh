#!/usr/bin/env bash
# make demo: the 2022-09-29 incident, replayed on a sandbox fleet of 16
# Tracim-like instances spread over 4 inventory hosts (all this machine,
# with real PostgreSQL databases), driven through ansible-playbook exactly
# as AWX would drive a real fleet; then (acts 12-17) an instance
# soft-deleted to the local S3 server (scripts/s3-up.sh) under a governance
# lock, age-encrypted, and restored on another host from the bucket alone.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${FLEETSAFE_DEMO_ROOT:-/tmp/fleetsafe-demo}
export ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_NOCOLOR=1
INV=$ROOT/inventory.yml
TARGET=hooli
LOG=$ROOT/demo.log
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
summary=()
note() { summary+=("$*"); printf '   -> %s\n' "$*"; }
playbook() { ansible-playbook -i "$INV" "$@" >>"$LOG" 2>&1; }

digest() { scripts/instance-digest.sh "$ROOT" "$1" "$2" fsdemo; }
# digests of every instance of the first fleet report, one "host/name digest" a line
fleet_digests() {
  python3 -c "import json;[print(r['host'], r['name']) for r in json.load(open('$ROOT/before.json'))]" |
    while read -r host name; do echo "$host/$name $(digest "$host" "$name")"; done | sort
}

step "1. A sandbox fleet: 16 instances on 4 hosts ($ROOT)"
go run ./cmd/fleetsafe-sandbox -root "$ROOT" -hosts 4 -instances 16
: >"$LOG"
# As in the incident, one instance was only partly destroyed.
rm -rf "$ROOT/tracim-03/etc/tracim/wayne"

step "2. Discovery on every host: the fleet as it is (playbooks/fleet_report.yml)"
playbook playbooks/fleet_report.yml -e fleetsafe_report_file="$ROOT/before.json"
python3 - "$ROOT/before.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
print(f"   {'host':<10} {'instance':<11} {'status':<9} missing")
for r in rows:
    print(f"   {r['host']:<10} {r['name']:<11} {r['status']:<9} {','.join(r['missing']) or '-'}")
PY
note "discovery: $(python3 -c "import json;r=json.load(open('$ROOT/before.json'));print(len(r),'instances,',sum(x['status']=='partial' for x in r),'partial (wayne: config missing)')")"
before_target=$(digest tracim-01 $TARGET)
fleet_digests >"$ROOT/digests-before.txt"

step "3. Nightly backups: are they really there? (playbooks/verify_backups.yml)"
if playbook playbooks/verify_backups.yml -e restore_test=1; then
  echo "   !! verify_backups.yml passed on silently broken backups"; exit 1
fi
grep -o '"msg": "backups broken[^"]*' "$LOG" | tail -1 | cut -c9- | sed 's/ | /\n/g; s/: tracim/:\ntracim/' | sed 's/^/   /'
dump=$(ls "$ROOT"/tracim-04/backups/wonka/db-*.dump | sort | tail -1)
if pg_restore --list "$dump" >/dev/null 2>&1; then
  echo "   (pg_restore --list accepts wonka's truncated dump; fleetsafe reads every data block)"
fi
grep -c '^fleetsafe_backup_status.* 2$' "$ROOT"/tracim-0*/fleetsafe.prom | awk -F: '{n+=$2} END {print "   metrics files: " n " component(s) at fleetsafe_backup_status 2 for the alerts"}'
note "verify_backups.yml failed the job and named the 2 silently broken backups (stark: stale dump, wonka: truncated dump)"

step "4. The dangerous variants are refused, with nothing touched"
refuse() {
  local label=$1; shift
  if playbook playbooks/delete_instance.yml "$@"; then
    echo "   !! NOT refused: $label"; exit 1
  fi
  local why
  why=$(grep -o '"msg": "\([^"\\]\|\\.\)*"' "$LOG" | tail -1 | python3 -c 'import json,sys; print(json.loads("{"+sys.stdin.read()+"}")["msg"])')
  printf '   refused %-34s %s\n' "$label:" "$why"
}
refuse "a glob" -e instance_name='*' -e reason=cleanup
refuse "an empty name" -e instance_name= -e reason=cleanup
refuse "no reason" -e instance_name=$TARGET
refuse "a name on no host" -e instance_name=hoolie -e reason=cleanup
refuse "a limit that excludes the instance" -e instance_name=$TARGET -e reason=cleanup --limit tracim-02
refuse "a stale fingerprint" -e instance_name=$TARGET -e reason=cleanup -e fingerprint=0000
fleet_digests >"$ROOT/digests-after-refusals.txt"
cmp -s "$ROOT/digests-before.txt" "$ROOT/digests-after-refusals.txt" || { echo "   !! a refusal changed something"; exit 1; }
note "6 dangerous requests refused; all 16 instances byte-identical afterwards"

step "5. Delete ONE instance, the job running on EVERY host (the dropped limit)"
playbook playbooks/delete_instance.yml -e instance_name=$TARGET -e reason="customer left, ticket 4711" \
  -e fleetsafe_fetch_archive=true -e fleetsafe_fetch_dir="$ROOT/controller-archives"
grep -o '"msg": "hooli on [^"]*' "$LOG" | tail -1 | cut -c9- | sed 's/^/   /'
playbook playbooks/fleet_report.yml -e fleetsafe_report_file="$ROOT/after-delete.json"
fleet_digests | grep -v "^tracim-01/$TARGET " >"$ROOT/digests-after-delete.txt"
python3 - "$ROOT/before.json" "$ROOT/after-delete.json" "$TARGET" "$ROOT/digests-before.txt" "$ROOT/digests-after-delete.txt" <<'PY'
import json, sys
before = {r['name'] for r in json.load(open(sys.argv[1]))}
after = {r['name'] for r in json.load(open(sys.argv[2]))}
gone = sorted(before - after)
assert gone == [sys.argv[3]], gone
was = dict(l.split() for l in open(sys.argv[4]))
now = dict(l.split() for l in open(sys.argv[5]))
same = [k for k in now if now[k] == was.get(k)]
assert len(same) == 15, sorted(set(now) - set(same))
print(f"   gone from discovery: {gone}; byte-identical: {len(same)} of the 15 others")
PY
note "delete_instance.yml on all 4 hosts: exactly 1 instance archived and quarantined, 15 untouched"
ls "$ROOT"/controller-archives/tracim-01/$TARGET/ | sed 's/^/   copied to the controller: /'

step "6. Restore it (playbooks/restore_instance.yml)"
start=$(date +%s.%N)
playbook playbooks/restore_instance.yml -e instance_name=$TARGET
end=$(date +%s.%N)
after_target=$(digest tracim-01 $TARGET)
[ "$before_target" = "$after_target" ] || { echo "   !! restored instance differs"; exit 1; }
note "restored $TARGET from quarantine in $(printf '%.1f' "$(echo "$end - $start" | bc)") s, identical (digest $after_target)"

step "7. Delete again and restore from the archive alone (quarantine purged)"
playbook playbooks/delete_instance.yml -e instance_name=$TARGET -e reason="second pass" -e fleetsafe_fetch_archive=false
rm -rf "$ROOT"/tracim-01/*/tracim/.fleetsafe-trash "$ROOT"/tracim-01/srv/tracim/$TARGET/.fleetsafe-trash \
  "$ROOT"/tracim-01/systemd/multi-user.target.wants/.fleetsafe-trash
psql -h /var/run/postgresql -d postgres -Atqc "select datname from pg_database where datname like 'fstrash_%fsdemo_01_$TARGET'" |
  while read -r db; do psql -h /var/run/postgresql -d postgres -qc "drop database \"$db\" with (force)"; done
start=$(date +%s.%N)
playbook playbooks/restore_instance.yml -e instance_name=$TARGET -e source=archive
end=$(date +%s.%N)
after_archive=$(digest tracim-01 $TARGET)
[ "$before_target" = "$after_archive" ] || { echo "   !! instance restored from the archive differs"; exit 1; }
note "restored $TARGET from its verified archive in $(printf '%.1f' "$(echo "$end - $start" | bc)") s, identical"

step "8. The incident without fleetsafe: an old playbook, its limit dropped, deletes all 16 instances"
# scripts/demo/old_delete_instance.yml is a plain shell playbook, as in 2022:
# meant for one instance with --limit; launched on every host with the
# name empty, its globs match every instance and its query every database.
playbook scripts/demo/old_delete_instance.yml -e instance_name=
gone=0
while read -r host name; do
  [ -d "$ROOT/$host/srv/tracim/$name" ] || [ -d "$ROOT/$host/etc/tracim/$name" ] || gone=$((gone + 1))
done < <(python3 -c "import json;[print(r['host'], r['name']) for r in json.load(open('$ROOT/before.json'))]")
dbs=$(psql -h /var/run/postgresql -d postgres -Atqc "select count(*) from pg_database where datname like 'fsdemo\_0%'")
echo "   rm -rf and DROP DATABASE ran on every host: $gone of 16 instances have no directory left, $dbs sandbox databases left"
[ "$gone" = 16 ] && [ "$dbs" = 0 ] || { echo "   !! the disaster did not happen as staged"; exit 1; }

step "9. The plan (playbooks/recover_fleet.yml, without confirm): the damage and the backups that would be used"
playbook playbooks/recover_fleet.yml
python3 - "$LOG" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = text[text.rfind('PLAY [Plan the recovery]'):]
for m in re.finditer(r'ok: \[(tracim-\d+)\] => \{\s*"msg": \[(.*?)\]\s*\}', text, re.S):
    for line in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2)):
        line = re.sub(r'/\S*/backups/\S*/', '', line)
        print(f"   {m.group(1)}: {line}")
PY
note "recover_fleet.yml without confirm showed the plan and changed nothing"

step "10. Recover: recover_fleet.yml -e confirm=true, priority names first"
start=$(date +%s.%N)
playbook playbooks/recover_fleet.yml -e confirm=true -e '{"priority": ["acme", "wonka"]}' \
  -e fleetsafe_recover_report_file="$ROOT/recovered.json"
end=$(date +%s.%N)
python3 - "$LOG" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
text = text[text.rfind('TASK [Table of the recovery'):]
m = re.search(r'"msg": (\[.*?\])\s*\}', text, re.S)
for line in json.loads(m.group(1)):
    print('   ' + line)
PY
python3 - "$ROOT/recovered.json" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1])):
    for c in r['recovery']:
        if c['status'] == 'restored' and (c['refused'] or c['backup']['age_seconds'] > 26 * 3600):
            why = (f"{len(c['refused'])} newer refused: {'; '.join(x['reason'] for x in c['refused'])[:110]}"
                   if c['refused'] else 'no newer backup was written')
            print(f"   {r['instance']}: {c['component']} from {c['backup']['path'].rsplit('/', 1)[1]}, "
                  f"{c['backup']['age']} old: {c['backup']['age']} of data lost ({why})")
PY
note "recover_fleet.yml brought $(python3 -c "import json;print(len(json.load(open('$ROOT/recovered.json'))))") of 16 back from their nightly backups in $(printf '%.0f' "$(echo "$end - $start" | bc)") s (the incident: 8 h 35 min)"

# An instance the inventory takes for soft-deleted on purpose (a tombstone of
# its own that no restore came back from) is left out of the plan. None
# should be here (hooli, restored from its archive in act 7, keeps a
# tombstone in state quarantined until purge, with restored_at): any
# instance the plan skipped is flagged loudly and restored by name.
python3 - "$ROOT/before.json" "$ROOT/recovered.json" <<'PY' >"$ROOT/skipped.txt"
import json, sys
done = {(r['host'], r['instance']) for r in json.load(open(sys.argv[2]))}
for r in json.load(open(sys.argv[1])):
    if (r['host'], r['name']) not in done:
        print(r['host'], r['name'])
PY
while read -r host name; do
  echo "   !! $name on $host was not in the plan: its archive_dir holds a tombstone that no restore came back from, so the inventory took it for soft-deleted on purpose; restoring it by name: fleetsafe recover $name --confirm"
  FLEETSAFE_SYSTEMD_DIR="$ROOT/$host/systemd" build/library/fleetsafe recover "$name" --confirm --json \
    --layout-file "$ROOT/$host/layout.yml" --archive-dir "$ROOT/$host/archives" >"$ROOT/recover-$name.json"
  python3 - "$ROOT/recovered.json" "$ROOT/recover-$name.json" "$host" "$name" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
r = json.load(open(sys.argv[2]))
rows.append({'instance': sys.argv[4], 'host': sys.argv[3], 'failed': bool(r.get('failed')), 'msg': r.get('msg', ''),
             'restored': r.get('restored', []), 'recovery': r.get('recovery', [])})
json.dump(rows, open(sys.argv[1], 'w'), indent=1)
print(f"   {sys.argv[4]}: {r.get('msg')}")
PY
done <"$ROOT/skipped.txt"
[ -s "$ROOT/skipped.txt" ] && note "$(wc -l <"$ROOT/skipped.txt") instance(s) left out of the plan as soft-deleted (a stale tombstone: open finding), restored by name with fleetsafe recover"

step "11. Every instance back, byte-identical to the backup it came from"
python3 scripts/demo/verify_recovered.py "$ROOT/recovered.json" 16 || { echo "   !! a recovered instance differs from its backup"; exit 1; }
note "all 16 recovered instances byte-identical to their backups (files compared entry by entry, databases by dump)"

# Acts 12-17: archives off the host. The fleet's archives now go to the
# local S3 server (scripts/s3-up.sh: Versity's gateway) in a bucket with
# Object Lock, encrypted with age; one host loses an instance, directories,
# quarantine, backups and database, and another host brings it back from
# the bucket alone.
S3_INST=globex S3_FROM=tracim-02 S3_TO=tracim-03
BUCKET=fleetsafe-demo-locked-archives
S3_PREFIX=fleet/$S3_FROM/$S3_INST/
s3env=$(bash scripts/s3-up.sh 2>>"$LOG")
s3var() { sed -n "s/^export $1=//p" <<<"$s3env"; }
# Kept in shell variables, never exported: the modules get the keys as
# parameters (no_log), from an extra-vars file as an AWX credential would
# inject them, not from AWS_* variables.
S3_ENDPOINT=$(s3var FLEETSAFE_S3_ENDPOINT) S3_REGION=$(s3var AWS_REGION)
S3_ACCESS=$(s3var AWS_ACCESS_KEY_ID) S3_SECRET=$(s3var AWS_SECRET_ACCESS_KEY)
[ -n "$S3_ENDPOINT" ] && [ -n "$S3_SECRET" ] || { echo "   !! scripts/s3-up.sh gave no endpoint or credentials"; exit 1; }
AGE=$(bash scripts/age-up.sh 2>>"$LOG")
# s3 METHOD KEY [curl args...]: a signed request by hand, as an operator
# with an S3 client would make it; the body on stdout, the HTTP code in
# $ROOT/s3.code. The credentials go to curl on stdin, not on its command line.
s3() {
  local method=$1 key=$2
  shift 2
  printf 'user = "%s:%s"\n' "$S3_ACCESS" "$S3_SECRET" |
    curl -sS --max-time 60 -K - --aws-sigv4 "aws:amz:$S3_REGION:s3" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
      -w '%{stderr}%{http_code}' -X "$method" "$@" "$S3_ENDPOINT/$BUCKET$key" 2>"$ROOT/s3.code"
}
# versions PREFIX: "key version-id size latest" of every version (and
# delete marker) under PREFIX
versions() {
  # (query parameters in sorted order, each with its "=": curl signs them as written)
  s3 GET "/?prefix=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")&versions=" | python3 -c '
import sys, xml.etree.ElementTree as ET
ns = {"s": "http://s3.amazonaws.com/doc/2006-03-01/"}
for v in ET.parse(sys.stdin).getroot():
    if v.tag in ("{%s}Version" % ns["s"], "{%s}DeleteMarker" % ns["s"]):
        print(v.findtext("s:Key", namespaces=ns), v.findtext("s:VersionId", namespaces=ns), v.findtext("s:Size", default="-", namespaces=ns), v.findtext("s:IsLatest", namespaces=ns))'
}
# empty_bucket: every version removed with the governance bypass (what a
# principal allowed to bypass governance retention can do), then the bucket.
empty_bucket() {
  [ "$(s3 HEAD / -I >/dev/null; cat "$ROOT/s3.code")" = 200 ] || return 0
  versions "" | while read -r key version _; do
    s3 DELETE "/$key?versionId=$version" -H 'x-amz-bypass-governance-retention: true' >/dev/null
  done
  s3 DELETE / >/dev/null
  [ "$(cat "$ROOT/s3.code")" = 204 ] || { echo "   !! bucket $BUCKET not removed: HTTP $(cat "$ROOT/s3.code")"; return 1; }
}
INV_S3=$ROOT/inventory-s3.yml
S3_CRED=$ROOT/s3-credential.yml
playbook_s3() { ansible-playbook -v -i "$INV_S3" -e @"$S3_CRED" "$@" >>"$LOG" 2>&1; }
# last_result TASK [HOST]: the JSON result printed (-v) by the last run of
# TASK, on HOST (default: the first host it ran on, not skipped)
last_result() {
  python3 - "$LOG" "$1" "${2:-}" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
text = text[text.rfind('TASK [' + sys.argv[2]):]
host = re.escape(sys.argv[3]) if sys.argv[3] else r'[^\]\n]+'
m = re.search(r'^(?:changed|ok|fatal|failed): \[' + host + r'\][^{\n]*=> \{', text, re.M)
print(json.dumps(json.JSONDecoder().raw_decode(text, m.end() - 1)[0]))
PY
}
# jget PATH: a value of the JSON on stdin (PATH: keys and list indexes, dotted)
jget() {
  python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if k.isdigit() else v[k]
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

step "12. Archives off the host: $S3_INST soft-deleted to the local S3 server, locked and age-encrypted"
empty_bucket # a bucket left by an interrupted run
s3 PUT / -H 'x-amz-bucket-object-lock-enabled: true' >/dev/null
[ "$(cat "$ROOT/s3.code")" = 200 ] || { echo "   !! creating bucket $BUCKET with Object Lock: HTTP $(cat "$ROOT/s3.code")"; exit 1; }
"$(dirname "$AGE")/age-keygen" -o "$ROOT/age-identity.txt" 2>/dev/null
"$(dirname "$AGE")/age-keygen" -o "$ROOT/other-identity.txt" 2>/dev/null
recipient=$("$(dirname "$AGE")/age-keygen" -y "$ROOT/age-identity.txt")
# The fleet's inventory with one prefix per host in the bucket instead of
# the local archive directories; the keys in a 0600 extra-vars file.
sed -E "s#^( +)fleetsafe_archive_dir: .*/(tracim-[0-9]+)/archives\$#\1fleetsafe_archive_store: s3://$BUCKET/fleet/\2#" "$INV" |
  sed "s#^all:\$#all:\n  vars:\n    fleetsafe_s3_endpoint: $S3_ENDPOINT\n    fleetsafe_s3_region: $S3_REGION\n    fleetsafe_s3_path_style: true#" >"$INV_S3"
(umask 077 && printf 'fleetsafe_s3_access_key: "%s"\nfleetsafe_s3_secret_key: "%s"\n' "$S3_ACCESS" "$S3_SECRET" >"$S3_CRED")
before_s3=$(digest $S3_FROM $S3_INST)
playbook_s3 playbooks/delete_instance.yml -e instance_name=$S3_INST -e reason="host retired, ticket 4712" \
  -e fleetsafe_object_lock=governance -e "{\"fleetsafe_encrypt_to\": [\"$recipient\"]}"
del=$(last_result "Archive, verify, tombstone and quarantine")
archive=$(jget archive.path <<<"$del")
until=$(jget archive_lock.until <<<"$del")
echo "   bucket $BUCKET (Object Lock enabled); $S3_INST on $S3_FROM archived to $archive"
note "delete_instance.yml with fleetsafe_archive_store: $S3_INST archived (age-encrypted) to s3://$BUCKET/$S3_PREFIX, governance lock until $until, quarantined on $S3_FROM"

step "13. In the bucket: the objects, locked; a delete by hand refused; purge keeps them"
versions "$S3_PREFIX" >"$ROOT/s3-objects.txt"
while read -r key version size _; do
  n=$(awk -v k="$key" '$1 == k' "$ROOT/s3-objects.txt" | wc -l)
  s3 HEAD "/$key?versionId=$version" -I | tr -d '\r' >"$ROOT/s3-head.txt"
  lock=$(awk -F': ' 'tolower($1)=="x-amz-object-lock-mode" {m=$2} tolower($1)=="x-amz-object-lock-retain-until-date" {u=$2} END {print (m ? m " until " u : "not locked")}' "$ROOT/s3-head.txt")
  printf '   %-50s %6s bytes, %s version(s), %s\n' "${key#"$S3_PREFIX"}" "$size" "$n" "$lock"
done < <(grep -v '/\.lock ' "$ROOT/s3-objects.txt" | grep ' true$')
for suffix in .tar.zst .tar.zst.sha256 .tar.zst.RESTORE.md .tombstone.json; do
  grep -q "^[^ ]*$suffix " "$ROOT/s3-objects.txt" || { echo "   !! no *$suffix object in the bucket"; exit 1; }
done
akey=${archive#"s3://$BUCKET/"}
aversion=$(awk -v k="$akey" '$1 == k {print $2}' "$ROOT/s3-objects.txt")
refusal=$(s3 DELETE "/$akey?versionId=$aversion" | python3 -c 'import sys, xml.etree.ElementTree as ET; print(ET.parse(sys.stdin).getroot().findtext("Code"))' 2>/dev/null || true)
code=$(cat "$ROOT/s3.code")
[ "$code" = 403 ] && [ "$refusal" = AccessDenied ] || { echo "   !! the server did not refuse the DELETE of the locked archive (HTTP $code $refusal)"; exit 1; }
echo "   DELETE of the archive's version by hand: HTTP $code $refusal"
playbook_s3 playbooks/purge_instances.yml -e instance_name=$S3_INST -e keep_last=0
purge=$(last_result "Purge quarantined data and old archives" $S3_FROM)
PURGE=$purge python3 - "$archive" <<'PY'
import json, os, sys
r = json.loads(os.environ['PURGE'])
assert not r['purged'] and not r['refused'], r
kept = [k for k in r['kept'] if k['path'] == sys.argv[1]]
assert kept and kept[0].get('until'), r['kept']
q = [k for k in r['kept'] if k['kind'] != 'archive']
if q:
    print(f"   purge kept the quarantine ({len(q)} item(s): {', '.join(sorted(set(k['kind'] for k in q)))}): {q[0]['reason']}")
for k in r['kept']:
    if k['kind'] == 'archive':
        print(f"   purge kept the archive: {k['reason']}")
        assert 'locked by the store (Object Lock): governance retention until' in k['reason'], k
PY
versions "$S3_PREFIX" | cmp -s - "$ROOT/s3-objects.txt" || { echo "   !! the bucket changed after the refused delete and the purge"; exit 1; }
note "the server refused a by-hand DELETE of the locked archive (HTTP 403 AccessDenied); purge_instances.yml (keep_last 0) removed nothing and reported the archive kept until $until"

step "14. $S3_FROM loses $S3_INST: directories, quarantine, backups and database wiped"
# As a dead disk would: everything of the instance on the host, its
# quarantine and its nightly backups included, and its database (the
# quarantined one): the archive in the bucket holds its full dump.
find "$ROOT/$S3_FROM" -depth -name "*$S3_INST*" -exec rm -rf {} +
psql -h /var/run/postgresql -d postgres -Atqc "select datname from pg_database where datname like '%fsdemo\_${S3_FROM#tracim-}\_$S3_INST'" |
  while read -r db; do psql -h /var/run/postgresql -d postgres -qc "drop database \"$db\" with (force)"; done
left=$(find "$ROOT/$S3_FROM" -name "*$S3_INST*" | wc -l)
dbs=$(psql -h /var/run/postgresql -d postgres -Atqc "select count(*) from pg_database where datname like '%fsdemo\_%\_$S3_INST'")
[ "$left" = 0 ] && [ "$dbs" = 0 ] || { echo "   !! $S3_INST not wiped ($left paths, $dbs databases left)"; exit 1; }
echo "   on $S3_FROM: 0 paths named $S3_INST (quarantine and backups included), 0 databases of it on the server"
note "$S3_FROM lost $S3_INST: its directories, quarantine, backups and database (the bucket's archive holds its dump)"

step "15. Restore it on $S3_TO from the bucket alone (restore_instance.yml restore_on, relocate)"
if playbook_s3 playbooks/restore_instance.yml -e instance_name=$S3_INST -e restore_on=$S3_TO -e relocate=true; then
  echo "   !! an encrypted archive was restored without the identity"; exit 1
fi
why=$(last_result "Bring the instance back" | jget msg | grep -o 'is encrypted with age[^.;]*' | head -1)
[ -n "$why" ] || { echo "   !! the restore without the identity failed for another reason"; exit 1; }
if [ -n "$(find "$ROOT/$S3_TO" -name "*$S3_INST*")" ] ||
  [ "$(psql -h /var/run/postgresql -d postgres -Atqc "select count(*) from pg_database where datname like '%fsdemo\_%\_$S3_INST'")" != 0 ]; then
  echo "   !! the refused restore wrote something on $S3_TO"; exit 1
fi
echo "   without the age identity: refused, nothing written on $S3_TO (the archive $why)"
start=$(date +%s.%N)
playbook_s3 playbooks/restore_instance.yml -e instance_name=$S3_INST -e restore_on=$S3_TO -e relocate=true \
  -e fleetsafe_decrypt_identity_file="$ROOT/age-identity.txt"
end=$(date +%s.%N)
restored=$(last_result "Bring the instance back")
RESTORED=$restored python3 - "$ROOT/" <<'PY'
import json, os, sys
for m in json.loads(os.environ["RESTORED"])["relocated"]:
    print(f"   relocated {m['component']}: {m['from'].replace(sys.argv[1], '')} -> {m['to'].replace(sys.argv[1], '')}")
PY
after_s3=$(digest $S3_TO $S3_INST)
[ "$before_s3" = "$after_s3" ] || { echo "   !! $S3_INST restored on $S3_TO differs from $S3_INST on $S3_FROM before the delete"; exit 1; }
echo "   digest of $S3_INST on $S3_FROM before the delete: $before_s3; on $S3_TO after the restore: $after_s3"
note "restored $S3_INST on $S3_TO from the bucket alone in $(printf '%.1f' "$(echo "$end - $start" | bc)") s (relocate: every place from $S3_TO's layout), byte-identical (digest $after_s3)"

step "16. The archive cannot be read without the identity"
s3 GET "/$akey" -o "$ROOT/archive.age"
[ "$(head -c 21 "$ROOT/archive.age")" = "age-encryption.org/v1" ] || { echo "   !! the archive in the bucket is not age ciphertext"; exit 1; }
zstd -dc <"$ROOT/archive.age" >/dev/null 2>&1 && { echo "   !! zstd decompressed the encrypted archive"; exit 1; }
"$AGE" -d -i "$ROOT/other-identity.txt" "$ROOT/archive.age" >/dev/null 2>"$ROOT/age.err" && { echo "   !! another identity decrypted the archive"; exit 1; }
echo "   zstd -d: not zstd (age ciphertext); age -d with another identity: $(head -1 "$ROOT/age.err" | sed 's/^age: //')"
entries=$("$AGE" -d -i "$ROOT/age-identity.txt" "$ROOT/archive.age" | zstd -dc | tar -tf - | wc -l)
echo "   age -d with the identity | zstd -d | tar -t: $entries entries (as RESTORE.md says)"
rm -f "$ROOT/archive.age"
note "the archive is age ciphertext: unreadable with zstd or another identity, $entries tar entries with the demo's identity"

step "17. No credential in the log, the results, the tombstone or RESTORE.md"
for suffix in .tombstone.json .tar.zst.RESTORE.md .tar.zst.sha256; do
  key=$(awk -v s="$suffix" 'substr($1, length($1) - length(s) + 1) == s {print $1}' "$ROOT/s3-objects.txt" | head -1)
  s3 GET "/$key" -o "$ROOT/object$suffix"
done
secret_id=$(grep '^AGE-SECRET-KEY-' "$ROOT/age-identity.txt")
found=0
for f in "$LOG" "$ROOT/object.tombstone.json" "$ROOT/object.tar.zst.RESTORE.md" "$ROOT/object.tar.zst.sha256"; do
  if grep -qF -e "$S3_SECRET" -e "$secret_id" "$f"; then echo "   !! a secret in $f"; found=1; fi
done
if grep -qF -e "$S3_SECRET" -e "$secret_id" <<<"$del$purge$restored"; then echo "   !! a secret in a module result"; found=1; fi
[ "$found" = 0 ] || exit 1
grep -q "relocated" "$ROOT/object.tombstone.json" || { echo "   !! the tombstone does not record the relocation"; exit 1; }
echo "   the S3 secret key and the age identity: in none of the demo log ($(wc -l <"$LOG") lines, module results at -v), the tombstone, RESTORE.md, the sidecar"
note "no S3 secret key nor age identity in the demo log, the module results, the tombstone (which records the relocation) or RESTORE.md"

step "Summary"
for s in "${summary[@]}"; do printf '  * %s\n' "$s"; done
printf '  (full ansible output: %s)\n' "$LOG"

step "Cleaning up"
cp "$LOG" /tmp/fleetsafe-demo.log
# The locked archive goes with the governance bypass, which a principal
# allowed to bypass governance retention (here the server's root) has.
empty_bucket && echo "   bucket $BUCKET emptied with x-amz-bypass-governance-retention and removed"
go run ./cmd/fleetsafe-sandbox -root "$ROOT" -clean
echo "   ansible output kept in /tmp/fleetsafe-demo.log"
