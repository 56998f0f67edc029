#!/usr/bin/env bash
# Runs galaxy-importer (what Galaxy and Automation Hub run on an upload) on
# the release tarball and fails unless the import succeeds and lists each of
# the collection's modules with its DOCUMENTATION, EXAMPLES and RETURN.
#
#   bash scripts/importer-check.sh build/fleetsafe-instances-0.1.0.tar.gz
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tarball=$(realpath "${1:?usage: importer-check.sh TARBALL}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# The importer runs ansible-doc and ansible-lint on the unpacked collection,
# with its own defaults, not this project's ansible.cfg.
if ! ANSIBLE_CONFIG= python -m galaxy_importer.main --print-result "$tarball" >"$work/out" 2>"$work/err"; then
  cat "$work/err" "$work/out" >&2
  echo "importer-check: galaxy-importer failed on $tarball" >&2
  exit 1
fi
modules=$(cd "$here/modules" && for m in *; do if [[ -f $m/$m.yml ]]; then echo "$m"; fi; done)
python - "$work/out" "$work/err" $modules <<'PY'
import json, sys
out, err, want = sys.argv[1], sys.argv[2], sorted(sys.argv[3:])
text = open(out).read()
result = json.loads(text[text.index("{"):])
got = sorted(c["name"] for c in result["contents"] if c["content_type"] == "module")
problems = []
if got != want:
    problems.append("the importer lists the modules %s, not %s" % (got, want))
for c in result["docs_blob"]["contents"]:
    if c["content_type"] != "module":
        continue
    doc = c.get("doc_strings") or {}
    missing = [k for k in ("doc", "examples", "return") if not doc.get(k)]
    if missing:
        problems.append("%s: the importer found no %s" % (c["content_name"], ", ".join(missing)))
for line in open(err):
    # The importer's one expected warning: the sanity ignore file exists
    # (each entry is one the certification policy allows; see its reasons).
    if "WARNING" in line.upper() and "Ignore files skip ansible-test sanity tests" not in line:
        problems.append("importer: " + line.strip())
    if "ERROR" in line.upper():
        problems.append("importer: " + line.strip())
if problems:
    sys.exit("importer-check: " + "\n  ".join(problems))
print("importer-check: galaxy-importer lists %d modules, each with DOCUMENTATION, EXAMPLES and RETURN: %s" % (len(got), ", ".join(got)))
PY
