// Package softdelete removes an instance without ever losing it: a
// verified archive first (pkg/archive: files, database dumps, manifest, a
// by-hand runbook), then a tombstone, then quarantine by rename; restore
// from quarantine or archive; permanent deletion only by purge after
// retention. It holds the lifecycle: the journal (tombstones), the
// archive stores' shelves, quarantine, restore and purge.
package softdelete
