package softdelete

import (
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/store"
)

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
	// object (archive.Info.StoreChecksum), when the store has one.
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

// moved maps each component the deletion quarantined to where it went.
func (t *Tombstone) moved() map[string]string {
	out := make(map[string]string, len(t.Components))
	for _, m := range t.Components {
		out[m.Component] = m.To
	}
	return out
}
