# -*- coding: utf-8 -*-
# Copyright: fleetsafe developers
# Apache License 2.0 (see the collection's galaxy.yml)
"""Run a fleetsafe binary module built for the target's system and architecture.

fleetsafe modules are Go programs. Binary modules are copied to the target
as they are, so the collection carries one build per platform:

  binaries/linux_amd64/<module>    linux/amd64
  binaries/linux_arm64/<module>    linux/arm64
  plugins/modules/<module>.py  the module's documentation only

The binaries stay out of plugins/modules/: every file there is read as
text by ansible-doc, ansible-test and galaxy-importer, and a subdirectory
there would be listed as modules of its own.

Every module of the collection is routed to this one action plugin by
meta/runtime.yml. It finds the target's platform (from gathered facts, or
`uname -sm` on the target) and runs the matching build.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_BIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "binaries")


def _binary(arch, leaf):
    """The path of the collection's linux/<arch> build of module leaf."""
    path = os.path.join(_BIN_DIR, "linux_%s" % arch, leaf)
    if not os.path.isfile(path):
        raise AnsibleActionFail(
            "fleetsafe: this build of the collection has no linux/%s binary of %s (%s); build it with `make collection`" % (arch, leaf, path))
    return path


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def _platform(self, task_vars):
        facts = (task_vars or {}).get("ansible_facts", {})
        system, machine = facts.get("system"), facts.get("architecture")
        if not system or not machine:
            res = self._low_level_execute_command("uname -sm", sudoable=False)
            if res.get("rc") != 0:
                raise AnsibleActionFail("fleetsafe: cannot tell the target's platform (uname -sm failed: %s)" % res.get("stderr", "").strip())
            parts = res.get("stdout", "").split()
            if len(parts) != 2:
                raise AnsibleActionFail("fleetsafe: cannot tell the target's platform from uname -sm: %r" % res.get("stdout"))
            system, machine = parts
        arch = _ARCHES.get(machine)
        if system.lower() != "linux" or arch is None:
            raise AnsibleActionFail(
                "fleetsafe.instances modules run on linux/amd64 and linux/arm64; %s is %s/%s. "
                "Run the task on a supported host or delegate it to one." % (task_vars.get("inventory_hostname", "this host"), system, machine)
            )
        return arch

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect

        # The task names the module; its resolved action is this plugin.
        action = self._task.action
        leaf = action.split(".")[-1]
        arch = self._platform(task_vars)
        # The binary is found by the module loader as a legacy module of the
        # directory of its platform, searched first by this worker alone.
        path = _binary(arch, leaf)
        self._shared_loader_obj.module_loader.add_directory(os.path.dirname(path))
        result.update(self._execute_module(module_name="ansible.legacy.%s" % leaf, module_args=self._task.args, task_vars=task_vars))
        return result
