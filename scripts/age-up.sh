#!/bin/bash
# age's command line tool (filippo.io/age, the version in go.mod), built
# once from the Go module proxy into .cache/age-VERSION/bin, for the tests
# that run RESTORE.md's commands on encrypted archives by hand, and
# age-keygen beside it, for the demo's identity. Prints age's path.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$(cd "$here" && go list -m -f '{{.Version}}' filippo.io/age)
bin_dir=$here/.cache/age-$VERSION/bin
if [ ! -x "$bin_dir/age" ] || [ ! -x "$bin_dir/age-keygen" ]; then
    echo "age-up: building age and age-keygen $VERSION into $bin_dir (once)" >&2
    GOBIN=$bin_dir CGO_ENABLED=0 GOFLAGS=-mod=mod go install "filippo.io/age/cmd/age@$VERSION" "filippo.io/age/cmd/age-keygen@$VERSION" >&2
fi
echo "$bin_dir/age"
