// Package softdelete removes an instance without ever losing it: a verified
// archive first (files, database dumps, manifest, a by-hand runbook), then a
// tombstone, then quarantine by rename; restore from quarantine or archive;
// permanent deletion only by purge after retention.
package softdelete

import (
	"encoding/base64"
	"time"
	"unicode/utf8"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// ArchiveFormat names the archive layout version in manifests.
const ArchiveFormat = "fleetsafe-archive-v1"

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

// Tombstone records one deletion, next to its archive.
type Tombstone struct {
	ID            string           `json:"id"`
	Instance      string           `json:"instance"`
	App           string           `json:"app"`
	Host          string           `json:"host"`
	Components    []QuarantineMove `json:"components"`
	ArchivePath   string           `json:"archive_path"`
	ArchiveSHA256 string           `json:"archive_sha256"`
	// ArchiveStoreChecksum is the store's own checksum of the archive
	// object (ArchiveInfo.StoreChecksum), when the store has one.
	ArchiveStoreChecksum string `json:"archive_store_checksum_sha256,omitempty"`
	// Relocated records the components a restore (relocate) put
	// elsewhere than where they were archived from.
	Relocated   []Relocation `json:"relocated,omitempty"`
	Reason      string       `json:"reason"`
	RequestedBy string       `json:"requested_by"`
	JobID       string       `json:"job_id"`
	// Launch is who and what launched the job (AWX's variables, the
	// inventory host, the hosts declared gone); absent from tombstones
	// written before it existed.
	Launch     *Launch   `json:"launch,omitempty"`
	DeletedAt  time.Time `json:"deleted_at"`
	PurgeAfter time.Time `json:"purge_after"`
	// RetentionDays is the retention asked for; 0 means purge may remove
	// the quarantined copy at once.
	RetentionDays int `json:"retention_days"`
	// State is the journal of the deletion, written before each state is
	// entered: archiving (before the archive is written), quarantining
	// (archive verified, before the first move), quarantined, rolling_back
	// (a late change was found after moves: moving back), abandoned
	// (nothing left moved; Note says why), restored or purged.
	State string `json:"state"`
	// RestoredAt is when a restore last brought a component back from
	// this deletion (from its quarantine or its archive); the state may
	// stay quarantined while leftovers there wait for purge, but the
	// deletion is no longer in effect.
	RestoredAt *time.Time `json:"restored_at,omitempty"`
	// Note explains an abandoned or rolled back deletion.
	Note        string `json:"note,omitempty"`
	ToolVersion string `json:"tool_version"`
	// RetentionRecords says each part of the quarantine keeps its own
	// record of the retention (written by this release): purge then takes
	// a missing record for a disagreement, not for a quarantine of a
	// release before records (FINDINGS-6 #2).
	RetentionRecords bool `json:"retention_records,omitempty"`
	// Path is where the tombstone lives; not stored.
	Path string `json:"-"`
	// st and key are the tombstone's store and key there.
	st  store.Store
	key string
	// overruled says what a newer version of the tombstone changed of
	// the fields the deletion fixed, overruled by its own record
	// (checkHistory); not stored.
	overruled string
}

// Tombstone states.
const (
	StateArchiving    = "archiving"
	StateQuarantining = "quarantining"
	StateRollingBack  = "rolling_back"
	StateAbandoned    = "abandoned"
	StateQuarantined  = "quarantined"
	StateRestored     = "restored"
	StatePurged       = "purged"
)

// QuarantineMove is one component moved into quarantine.
type QuarantineMove struct {
	Component string `json:"component"`
	Type      string `json:"type"`
	From      string `json:"from"`
	To        string `json:"to"`
}
