// Package archive is the format of fleetsafe's archives: the manifest,
// the collector that walks an instance into entries and findings, the
// writer, the read-back verification, the by-hand runbook (RESTORE.md) and
// extraction. pkg/softdelete drives the lifecycle around it.
package archive

import (
	"encoding/base64"
	"time"
	"unicode/utf8"
)

// Format names the archive layout version in manifests.
const Format = "fleetsafe-archive-v1"

// Version is the tool version recorded in manifests and tombstones.
var Version = "0.1.0"

// Manifest is the first entry of every archive, manifest.json.
type Manifest struct {
	Format      string              `json:"format"`
	ID          string              `json:"id"`
	Instance    string              `json:"instance"`
	App         string              `json:"app"`
	Layout      string              `json:"layout"`
	Host        string              `json:"host"`
	Fingerprint string              `json:"fingerprint"`
	Components  []ManifestComponent `json:"components"`
	Files       []FileEntry         `json:"files"`
	Databases   []DumpEntry         `json:"databases"`
	Reason      string              `json:"reason"`
	RequestedBy string              `json:"requested_by"`
	JobID       string              `json:"job_id"`
	ToolVersion string              `json:"tool_version"`
	CreatedAt   time.Time           `json:"created_at"`
	// Losses lists what the operator accepted to lose (accept_losses):
	// special files skipped, ACLs, extended attributes, capabilities or
	// inode flags not carried. Empty when nothing was dropped.
	Losses []Finding `json:"losses,omitempty"`
	// AcceptLosses is the accept_losses the deletion ran with.
	AcceptLosses []string `json:"accept_losses,omitempty"`
	// RetentionRecords says the deletion's quarantine keeps its own
	// retention records (kind.Retention: a .fleetsafe-retention file in
	// each trash entry, a database's or schema's comment). Inside the
	// verified archive, it tells a quarantine of a release before records
	// from one whose records were removed, even when the tombstone's own
	// flag was dropped (FINDINGS-6 #2). False in archives of earlier
	// releases.
	RetentionRecords bool `json:"retention_records,omitempty"`
	// lossSeq, when set (Collector.Write), streams the losses list into
	// manifest.json in place of Losses (manifest_stream.go).
	lossSeq func(func(Finding) error) error
	// PurgeAfter and RetentionDays are the deletion's retention as it was
	// asked (PurgeAfter is CreatedAt plus RetentionDays days): purge never
	// removes the archive before PurgeAfter, whatever its tombstone says
	// (confirmArchiveRetention). Absent from archives of earlier releases;
	// the format is unchanged (readers ignore keys they do not know).
	PurgeAfter    *time.Time `json:"purge_after,omitempty"`
	RetentionDays *int       `json:"retention_days,omitempty"`
}

// ManifestComponent is one component as it was archived.
type ManifestComponent struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Locator string `json:"locator"`
	Present bool   `json:"present"`
	// ArchivePath is the entry (dir components: the directory) holding it.
	ArchivePath string `json:"archive_path,omitempty"`
}

// FileEntry is one filesystem entry of a component.
type FileEntry struct {
	Component string `json:"component"`
	Path      string `json:"path"` // name in the archive
	// PathBase64 holds the exact bytes of a name that is not valid UTF-8
	// (JSON would replace them); Path then shows it with U+FFFD.
	PathBase64 string `json:"path_base64,omitempty"`
	// Type is dir, file, symlink, or hardlink (a second name of a file
	// archived earlier, LinkTarget naming its first entry).
	Type       string    `json:"type"`
	Mode       uint32    `json:"mode"` // permission bits and setuid/setgid/sticky
	UID        int       `json:"uid"`
	GID        int       `json:"gid"`
	Owner      string    `json:"owner,omitempty"`
	Group      string    `json:"group,omitempty"`
	MTime      time.Time `json:"mtime"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256,omitempty"`
	LinkTarget string    `json:"link_target,omitempty"`
	// LinkTargetBase64 holds a link target that is not valid UTF-8.
	LinkTargetBase64 string `json:"link_target_base64,omitempty"`
	// SameFileAs, on a regular file, names the entry of another
	// component that was the same file (a hard link across components).
	// It is stored whole in each component so that each restores alone;
	// a restore gives back two files, no longer linked.
	SameFileAs string `json:"same_file_as,omitempty"`
}

// Name is the entry's exact name in the archive.
func (e FileEntry) Name() string { return rawOr(e.PathBase64, e.Path) }

// Target is the exact link target of a symlink or hard link entry.
func (e FileEntry) Target() string { return rawOr(e.LinkTargetBase64, e.LinkTarget) }

func rawOr(b64, s string) string {
	if b64 == "" {
		return s
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return s
	}
	return string(raw)
}

// setExact records name and target, keeping exact bytes where JSON
// cannot.
func (e *FileEntry) setExact(name, target string) {
	e.Path, e.LinkTarget = name, target
	if !utf8.ValidString(name) {
		e.PathBase64 = base64.StdEncoding.EncodeToString([]byte(name))
	}
	if !utf8.ValidString(target) {
		e.LinkTargetBase64 = base64.StdEncoding.EncodeToString([]byte(target))
	}
}

// DumpEntry is one database dump in the archive.
type DumpEntry struct {
	Component  string `json:"component"`
	Database   string `json:"database"`
	Path       string `json:"path"`
	Size       int64  `json:"size"`
	SHA256     string `json:"sha256"`
	TOCEntries int    `json:"toc_entries"`
	DataBlocks int    `json:"data_blocks"`
}
