package main

import (
	"github.com/fleetsafe/fleetsafe/modules/backup_verify"
	"github.com/fleetsafe/fleetsafe/modules/instance_info"
	"github.com/fleetsafe/fleetsafe/modules/instance_purge"
	"github.com/fleetsafe/fleetsafe/modules/instance_restore"
	"github.com/fleetsafe/fleetsafe/modules/instance_soft_delete"
	"github.com/fleetsafe/fleetsafe/pkg/ansible"
)

// modules are the Ansible modules this binary serves.
var modules = ansible.Modules{
	backupverify.Module, instanceinfo.Module, instancepurge.Module, instancerestore.Module, instancesoftdelete.Module,
}

// command is one subcommand of the command line: a module run with
// parameters from flags, or (module empty) a command of its own.
type command struct {
	name    string
	module  ansible.Module
	doc     []byte
	summary string
	// positional is the parameter a bare argument sets (`fleetsafe info acme`).
	positional string
	// progress: the command shows a progress bar on a terminal.
	progress bool
}

var commands = []command{
	{name: "info", module: instanceinfo.Module, doc: instanceinfo.Doc, positional: "name"},
	{name: "soft-delete", module: instancesoftdelete.Module, doc: instancesoftdelete.Doc, positional: "name", progress: true},
	{name: "restore", module: instancerestore.Module, doc: instancerestore.Doc, positional: "name", progress: true},
	{name: "purge", module: instancepurge.Module, doc: instancepurge.Doc, positional: "name"},
	{name: "verify-backups", module: backupverify.Module, doc: backupverify.Doc, positional: "names"},
	{name: "recover", module: recoverCommand, doc: recoverDoc, positional: "name"},
	{name: "verify-archive", progress: true, summary: "Check a soft delete's archive: its manifest, and every file and dump against their sha256"},
}

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}
