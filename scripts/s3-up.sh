#!/usr/bin/env bash
# Starts a local S3 server with Object Lock for the tests and the demo:
# Versity's S3 gateway (github.com/versity/versitygw, Apache-2.0), built
# from the Go module proxy into .cache/ the first time, serving its posix
# backend over a local directory, with a versioning directory (Object Lock
# needs versioned buckets), on the loopback only. Idempotent: a second run
# finds it running and only checks it.
#
# Every run then checks on the real server what the archive store relies
# on, and fails loudly when one is missing:
#   - a bucket created with Object Lock enabled;
#   - an object stored with a GOVERNANCE retention, whose DELETE of that
#     version is refused (403 AccessDenied) until the date, and removed
#     only with x-amz-bypass-governance-retention (which cleans it up);
#   - a conditional PUT (If-None-Match: *) refused over an existing
#     object (412), which the store's lock and Create rely on.
#
# It prints the endpoint and credentials as shell exports on stdout:
#   eval "$(bash scripts/s3-up.sh)"
# and keeps them in $FLEETSAFE_S3_DIR/env (mode 0600), where the tests find
# them (pkg/store/s3/s3test). The credentials are made at random on the
# first start and never put on a command line (ps would show them).
#
# Settings (environment):
#   FLEETSAFE_S3_DIR   state: data/, versions/, env, versitygw.log
#                      (default /var/lib/fleetsafe-s3 as root, else
#                      ${XDG_STATE_HOME:-~/.local/state}/fleetsafe-s3)
#   FLEETSAFE_S3_PORT  port on 127.0.0.1 (default 7070)
set -euo pipefail

VERSION=v1.8.0
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin_dir=$here/.cache/versitygw-$VERSION/bin
bin=$bin_dir/versitygw
if [ "$(id -u)" = 0 ]; then
  default_dir=/var/lib/fleetsafe-s3
else
  default_dir=${XDG_STATE_HOME:-$HOME/.local/state}/fleetsafe-s3
fi
state=${FLEETSAFE_S3_DIR:-$default_dir}
port=${FLEETSAFE_S3_PORT:-7070}
endpoint=http://127.0.0.1:$port
region=us-east-1
envfile=$state/env

say() { echo "s3-up: $*" >&2; }
die() { say "$*"; exit 1; }

command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
command -v openssl >/dev/null || die "openssl is needed (apt-get install openssl)"

# The gateway, built once from the Go module proxy (only when the server
# must be started: a running one is used as it is).
build_gateway() {
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null || die "go is needed to build versitygw $VERSION"
    say "building versitygw $VERSION from the Go module proxy (about 90 s, once; cached in $bin_dir)"
    mkdir -p "$bin_dir"
    GOBIN=$bin_dir CGO_ENABLED=0 GOFLAGS=-mod=mod go install "github.com/versity/versitygw/cmd/versitygw@$VERSION" >&2
  fi
}

# 1. The state directory and the credentials (made once).
install -d -m 0700 "$state" "$state/data" "$state/versions"
if [ ! -s "$envfile" ]; then
  access=fleetsafe$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')
  secret=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
  umask 077
  cat >"$envfile.tmp" <<EOF
export FLEETSAFE_S3_ENDPOINT=$endpoint
export AWS_ENDPOINT_URL_S3=$endpoint
export AWS_ACCESS_KEY_ID=$access
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_REGION=$region
EOF
  mv "$envfile.tmp" "$envfile"
fi
chmod 0600 "$envfile"
# shellcheck disable=SC1090
. "$envfile"
if [ "$FLEETSAFE_S3_ENDPOINT" != "$endpoint" ]; then
  # The port changed: keep the credentials, record the new endpoint.
  sed -i "s#=http://127.0.0.1:[0-9]*#=$endpoint#" "$envfile"
  . "$envfile"
fi

s3() { # s3 METHOD PATH [curl args...]: a request signed with SigV4
  local method=$1 path=$2
  shift 2
  curl -sS -o /dev/stderr -w '%{http_code}' --max-time 20 \
    --aws-sigv4 "aws:amz:$region:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -X "$method" "$@" "$endpoint$path" 2>/dev/null || echo 000
}
s3_quiet() { s3 "$@" 2>/dev/null; }
reachable() { [ "$(s3_quiet GET / -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD')" = 200 ]; }

# 2. The server, started when it does not answer.
if ! reachable; then
  build_gateway
  if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    die "127.0.0.1:$port is taken by a process that does not accept the credentials of $envfile; stop it or set FLEETSAFE_S3_PORT"
  fi
  say "starting versitygw $VERSION on $endpoint (posix backend in $state/data, log $state/versitygw.log)"
  # The credentials go by environment, not argv. setsid detaches the
  # server from this shell.
  ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY VGW_REGION=$region \
    setsid "$bin" --port "127.0.0.1:$port" posix --versioning-dir "$state/versions" "$state/data" \
    </dev/null >>"$state/versitygw.log" 2>&1 &
  echo $! >"$state/pid"
  # Up to a minute on a loaded machine (the loop ends as soon as the
  # gateway answers).
  for _ in $(seq 1 240); do
    reachable && break
    sleep 0.25
  done
  reachable || die "versitygw did not answer on $endpoint; see $state/versitygw.log"
fi

# 3. Object Lock and conditional writes, checked on the real server.
bucket=fleetsafe-s3-up-check
nohash=(-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD')
code=$(s3_quiet HEAD "/$bucket" "${nohash[@]}" -I)
if [ "$code" = 404 ]; then
  code=$(s3_quiet PUT "/$bucket" "${nohash[@]}" -H 'x-amz-bucket-object-lock-enabled: true')
  [ "$code" = 200 ] || die "creating bucket $bucket with Object Lock enabled: HTTP $code"
elif [ "$code" != 200 ]; then
  die "bucket $bucket: HTTP $code"
fi

body="fleetsafe object lock probe $(date -u +%s)"
md5=$(printf %s "$body" | openssl md5 -binary | base64)
sha=$(printf %s "$body" | sha256sum | cut -d' ' -f1)
until=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
headers=$(mktemp)
trap 'rm -f "$headers"' EXIT
code=$(curl -sS -o /dev/null -D "$headers" -w '%{http_code}' --max-time 20 --aws-sigv4 "aws:amz:$region:s3" \
  --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -X PUT -H "x-amz-content-sha256: $sha" -H "Content-MD5: $md5" \
  -H 'x-amz-object-lock-mode: GOVERNANCE' -H "x-amz-object-lock-retain-until-date: $until" \
  --data-binary "$body" "$endpoint/$bucket/probe" || echo 000)
[ "$code" = 200 ] || die "PUT of an object with a GOVERNANCE retention: HTTP $code"
version=$(tr -d '\r' <"$headers" | awk -F': ' 'tolower($1)=="x-amz-version-id" {print $2}')
[ -n "$version" ] || die "the locked object got no version id (versioning is off?)"
code=$(s3_quiet DELETE "/$bucket/probe?versionId=$version" "${nohash[@]}")
[ "$code" = 403 ] || die "the DELETE of a version under GOVERNANCE retention until $until was not refused (HTTP $code): Object Lock does not work here"
code=$(s3_quiet DELETE "/$bucket/probe?versionId=$version" "${nohash[@]}" -H 'x-amz-bypass-governance-retention: true')
[ "$code" = 204 ] || die "the DELETE with x-amz-bypass-governance-retention of a GOVERNANCE version: HTTP $code"

code=$(s3_quiet PUT "/$bucket/cond" "${nohash[@]}" --data-binary x)
[ "$code" = 200 ] || die "PUT: HTTP $code"
code=$(s3_quiet PUT "/$bucket/cond" "${nohash[@]}" -H 'If-None-Match: *' --data-binary y)
[ "$code" = 412 ] || die "a PUT with If-None-Match: * over an existing object was not refused (HTTP $code)"

say "versitygw $VERSION on $endpoint: Object Lock (governance retention refuses a DELETE) and If-None-Match work; credentials in $envfile"
cat "$envfile"
