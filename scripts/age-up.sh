#!/bin/bash
# age's command line tool (filippo.io/age, the version in go.mod), built
# once from the Go module proxy into .cache/age-VERSION/bin, for the tests
# that run RESTORE.md's commands on encrypted archives by hand. Prints the
# binary's path.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$(cd "$here" && go list -m -f '{{.Version}}' filippo.io/age)
bin_dir=$here/.cache/age-$VERSION/bin
if [ ! -x "$bin_dir/age" ]; then
    echo "age-up: building age $VERSION into $bin_dir (once)" >&2
    GOBIN=$bin_dir CGO_ENABLED=0 GOFLAGS=-mod=mod go install "filippo.io/age/cmd/age@$VERSION" >&2
fi
echo "$bin_dir/age"
