# -*- coding: utf-8 -*-
# Copyright: fleetsafe developers
# Apache License 2.0 (see the collection's galaxy.yml)
"""Run a fleetsafe module with the binary cached on the target.

fleetsafe modules are one Go program, a multi-call binary that serves every
module. The collection carries one build per platform, outside plugins/:

  binaries/linux_amd64/fleetsafe         linux/amd64
  binaries/linux_arm64/fleetsafe         linux/arm64
  binaries/linux_<arch>/fleetsafe.sha256 its sha256 and size (`make collection`)
  plugins/modules/<module>.py            the module's documentation only

The binaries stay out of plugins/ (every file there is read as text by
ansible-doc, ansible-test and galaxy-importer) and out of bin/ (which
ansible-test compiles as Python scripts).

Every module of the collection is routed to this one action plugin by
meta/runtime.yml. ansible-core would copy a binary module (7-12 MB) to the
target for every task; this plugin copies it once per host and version into
a cache directory on the target and runs it from there:

  <cache>/<sha256>/fleetsafe

where <cache> is /var/cache/fleetsafe for root, $XDG_CACHE_HOME/fleetsafe
(~/.cache/fleetsafe) for any other user the module runs as, or the
fleetsafe_cache_dir variable (an absolute path, or ~/ for the home of the
user the module runs as). Before each run the target's shell checks the
platform (uname), that the cached file and its directories belong to the
user, and its sha256; only then is it executed, with the module's arguments
on stdin (no args file is written). On a miss the binary is transferred to
ansible's temporary directory, copied into the cache under a unique name,
checked again and renamed into place: two jobs at once each install a whole
file and the rename is atomic. The install removes other versions but the
two installed most recently. Nothing needs Python on the target: only sh,
uname, id, sha256sum, mktemp, cp, mv, ls and rm.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

try:
    from ansible.vars.clean import remove_internal_keys
except ImportError:  # ansible-core 2.21 no longer has it (ActionModule._parse uses the result's own method)

    def remove_internal_keys(data):
        """Drop the internal keys a module must not set, as ansible-core before 2.21 did."""
        for key in list(data):
            if key.startswith("_ansible_") and key != "_ansible_parsed":
                del data[key]
        for key in ("warnings", "deprecations"):
            if key in data and not data[key]:
                del data[key]


display = Display()

_COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BIN_DIR = os.path.join(_COLLECTION, "binaries")
_ARCHES = ("amd64", "arm64")
# Other versions an install keeps in the cache besides its own: a job still
# running an older collection keeps finding its binary.
_KEEP_OTHER = 2

# Exit statuses and stdout markers of the scripts run on the target.
_MISS = 97
_REFUSED = 96
_MISS_MARK = "FLEETSAFE-CACHE-MISS"
_REFUSED_MARK = "FLEETSAFE-CACHE-REFUSED"


def _local_binary(arch):
    """The path and sha256 of the collection's linux/<arch> binary, or (None, None)."""
    path = os.path.join(_BIN_DIR, "linux_%s" % arch, "fleetsafe")
    if not os.path.isfile(path):
        return None, None
    # The build writes "<sha256> <size>" beside the binary, so that a task
    # does not hash 12 MB on the controller; it is trusted only while it is
    # no older than the binary and the size matches.
    side = path + ".sha256"
    try:
        st, sst = os.stat(path), os.stat(side)
        with open(side) as f:
            digest, size = f.read().split()[:2]
        if sst.st_mtime >= st.st_mtime and int(size) == st.st_size and len(digest) == 64:
            return path, digest
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return path, h.hexdigest()


def _encode_args(args):
    """The module arguments as JSON, as ansible-core encodes them for binary modules."""
    try:  # ansible-core 2.19 and later: tagged values need the module encoder
        from ansible.module_utils.common.json import Direction, get_module_encoder

        return json.dumps(args, cls=get_module_encoder("legacy", Direction.CONTROLLER_TO_MODULE))
    except ImportError:
        return json.dumps(args)


def _cache_dir_shell(cache_dir):
    """Shell lines that set $d to the cache directory of the user the module runs as."""
    if cache_dir and cache_dir.startswith("~/"):
        return 'd="$HOME"/%s' % shlex.quote(cache_dir[2:])
    if cache_dir:
        return "d=%s" % shlex.quote(cache_dir)
    return 'if [ "$(id -u)" = 0 ]; then d=/var/cache/fleetsafe; else d="${XDG_CACHE_HOME:-$HOME/.cache}/fleetsafe"; fi'


def _platform_shell(shas):
    """Shell lines that set $a and $s to the target's platform and its binary's sha256."""
    return "\n".join([
        'set -- $(uname -sm)',
        'p="${1:-}/${2:-}"',
        'case "$p" in',
        '  Linux/x86_64|Linux/amd64) a=amd64 s=%s ;;' % (shas.get("amd64") or "none"),
        '  Linux/aarch64|Linux/arm64) a=arm64 s=%s ;;' % (shas.get("arm64") or "none"),
        '  *) echo "%s unsupported $p"; exit %d ;;' % (_REFUSED_MARK, _REFUSED),
        "esac",
    ])


class ActionModule(ActionBase):
    # The remote temporary directory is made only on a cache miss.
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect

        # The task names the module; its resolved action is this plugin.
        leaf = self._task.action.split(".")[-1]
        locals_ = {a: _local_binary(a) for a in _ARCHES}
        shas = {a: v[1] for a, v in locals_.items() if v[1]}
        cache_dir = task_vars.get("fleetsafe_cache_dir")
        if cache_dir is not None:
            cache_dir = self._templar.template(cache_dir)

        module_args = dict(self._task.args)
        self._update_module_args(leaf, module_args, task_vars)
        stdin = _encode_args(module_args).encode("utf-8")

        try:
            for attempt in range(3):
                res = self._low_level_execute_command(self._run_script(leaf, shas, cache_dir), sudoable=True, in_data=stdin)
                marker = self._marker(res)
                if marker is None:
                    break
                kind, words = marker
                if kind == _REFUSED_MARK:
                    raise AnsibleActionFail(self._refusal(words, task_vars))
                # A miss: the binary is absent, or not the one this
                # collection holds. Install it, then run again.
                arch, digest, where = words[0], words[1], " ".join(words[2:])
                path = locals_.get(arch, (None, None))[0]
                if path is None:
                    raise AnsibleActionFail(
                        "fleetsafe: this build of the collection has no linux/%s binary (binaries/linux_%s/fleetsafe under %s); "
                        "build it with `make collection`" % (arch, arch, _COLLECTION))
                display.vvv("fleetsafe: %s (sha256 %s) is not in the cache %s; copying it there (attempt %d)" % (path, digest, where, attempt + 1),
                            host=task_vars.get("inventory_hostname"))
                self._install(path, digest, cache_dir)
            else:
                raise AnsibleActionFail("fleetsafe: the binary was installed into the target's cache three times and was gone "
                                        "each time it was to run; another job is cleaning the cache (%s)" % (cache_dir or "default"))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

        result.update(self._parse(res))
        return result

    def _run_script(self, leaf, shas, cache_dir):
        env = self._compute_environment_string()
        return "\n".join([
            "umask 022",
            _platform_shell(shas),
            _cache_dir_shell(cache_dir),
            'b="$d/$s/fleetsafe"',
            # The cached binary runs only when it, its directory and the cache
            # belong to the user running it and its sha256 is the expected one.
            'if [ -f "$b" ] && [ ! -L "$b" ] && [ -O "$b" ] && [ -O "$d/$s" ] && [ -O "$d" ] && h=$(sha256sum "$b") && [ "${h%% *}" = "$s" ]; then',
            '  exec env %s "$b" module %s -' % (env, shlex.quote(leaf)),
            "fi",
            'echo "%s $a $s $d"' % _MISS_MARK,
            "exit %d" % _MISS,
        ])

    def _install(self, path, digest, cache_dir):
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        src = self._connection._shell.join_path(tmpdir, "fleetsafe")
        self._transfer_file(path, src)
        self._fixup_perms2([tmpdir, src], execute=False)
        script = "\n".join([
            "umask 022",
            "set -u",
            _cache_dir_shell(cache_dir),
            "s=%s src=%s" % (shlex.quote(digest), shlex.quote(src)),
            'fail() { echo "%s $*"; exit %d; }' % (_REFUSED_MARK, _REFUSED),
            'mkdir -p "$d" || fail "cannot create the cache directory $d"',
            '[ -O "$d" ] && [ ! -L "$d" ] || fail "the cache directory $d belongs to another user than $(id -un), or is a link"',
            'chmod 0755 "$d" && mkdir -p "$d/$s" || fail "cannot create $d/$s"',
            '[ -O "$d/$s" ] && [ ! -L "$d/$s" ] || fail "$d/$s belongs to another user than $(id -un), or is a link; remove it"',
            'chmod 0755 "$d/$s" || fail "cannot set the mode of $d/$s"',
            't=$(mktemp "$d/$s/.fleetsafe.XXXXXXXX") || fail "cannot create a file in $d/$s"',
            'cp "$src" "$t" && chmod 0755 "$t" || { rm -f "$t"; fail "cannot copy the binary to $t"; }',
            'h=$(sha256sum "$t") || { rm -f "$t"; fail "cannot hash $t"; }',
            '[ "${h%% *}" = "$s" ] || { rm -f "$t"; fail "the copy on the target has sha256 ${h%% *}, not $s: the transfer altered it"; }',
            'mv -f "$t" "$d/$s/fleetsafe" || { rm -f "$t"; fail "cannot rename $t into place"; }',
            # Old versions: keep this one and the two installed most recently
            # before it; only names that are a sha256 are ever removed, and
            # copies left by an interrupted install after an hour.
            'n=0',
            'for v in $(ls -1t "$d"); do',
            '  case "$v" in "$s") continue ;; esac',
            '  [ ${#v} -eq 64 ] || continue',
            '  case "$v" in *[!0-9a-f]*) continue ;; esac',
            '  n=$((n + 1))',
            '  [ $n -gt %d ] && rm -rf "$d/$v"' % _KEEP_OTHER,
            "done",
            'find "$d" -mindepth 2 -maxdepth 2 -name ".fleetsafe.*" -mmin +60 -exec rm -f {} + 2>/dev/null',
            "exit 0",
        ])
        res = self._low_level_execute_command(script, sudoable=True)
        marker = self._marker(res)
        if marker is not None or res.get("rc") != 0:
            what = " ".join(marker[1]) if marker else (res.get("stderr") or res.get("stdout") or "").strip()
            raise AnsibleActionFail("fleetsafe: cannot install the binary into the target's cache: %s" % what)

    @staticmethod
    def _marker(res):
        """The marker a script printed instead of running the module, as (kind, words)."""
        if res.get("rc") not in (_MISS, _REFUSED):
            return None
        for line in (res.get("stdout") or "").splitlines():
            words = line.split()
            if words and words[0] in (_MISS_MARK, _REFUSED_MARK):
                return words[0], words[1:]
        return None

    @staticmethod
    def _refusal(words, task_vars):
        if words and words[0] == "unsupported":
            return ("fleetsafe.instances modules run on linux/amd64 and linux/arm64; %s is %s. "
                    "Run the task on a supported host or delegate it to one."
                    % (task_vars.get("inventory_hostname", "this host"), " ".join(words[1:])))
        return "fleetsafe: " + " ".join(words)

    def _parse(self, res):
        """The module's result as a dict, internal keys removed, on every supported ansible-core."""
        try:
            data = self._parse_returned_data(res, "legacy")
        except TypeError:  # ansible-core before 2.19 takes no profile
            data = self._parse_returned_data(res)
        if hasattr(data, "as_result_dict"):  # ansible-core 2.21: a UnifiedTaskResult
            data.remove_internal_keys()
            return data.as_result_dict(for_round_trip=True)
        remove_internal_keys(data)
        return data
