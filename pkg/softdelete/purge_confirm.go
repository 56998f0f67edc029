package softdelete

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// An archive is removed for retention only when the manifest inside it,
// verified, says its retention is over: a tombstone is a file anyone
// allowed on the host can edit, and one whose state says purged and whose
// purge_after is in the past would otherwise remove the deletion's last
// verified copy before its time. The later of the tombstone's purge_after
// and the manifest's wins (a tombstone may lengthen a retention, never
// shorten it), as for the versions of a bucket (versions.go) and the
// quarantine's own records (retention.go).
//
// What the manifest records of the retention:
//
//   - an archive of this release records purge_after and retention_days
//     (Manifest.PurgeAfter): that end is the archive's, whatever its
//     tombstone says, or whether it has one at all (an archive whose
//     tombstone was removed, or whose id or archive_path were edited, is
//     no spare copy to remove at once);
//   - an archive of an earlier release records only its deletion date
//     (created_at, the deletion's deleted_at) and whether it kept records.
//     Its retention is then created_at plus the retention_days of the
//     tombstone of that same deletion (same id, same sha256), or the
//     tombstone's purge_after when later: an edit of purge_after or
//     deleted_at alone no longer shortens it, but one that also lowers
//     retention_days still does (said in the reason of every archive
//     removed so). Such an archive without a tombstone of its deletion
//     goes as a spare copy did before this check (at once): nothing
//     records a retention for it. Keeping every archive of an earlier
//     release forever instead would stop purge from reclaiming any space
//     on a host that upgrades, which is not what an operator expects of
//     a retention they set; the reason names the weaker ground instead.
//
//   - an archive encrypted with age, which purge cannot decrypt (it is
//     given no identity, and a host that only encrypts to an operator's
//     key has none): its manifest cannot be read. Its sha256 as stored
//     must be its sidecar's and its tombstone's; its deletion date is the
//     one its name records (the deletion's id starts with it, and no
//     tombstone edit renames the archive), its retention_days those of
//     the tombstone of that deletion (sealedRetention). As weak as an
//     earlier release's archive against an edit of retention_days, and
//     said so; without a tombstone of its deletion it is kept.
//
// An archive that cannot be read or checked (no sidecar, a sha256 that
// differs from its sidecar or from its tombstone's, a manifest of
// another deletion or instance, a store error) is kept, and the reason is
// named in the result: purge removes nothing it could not confirm.

// archiveRetention is what confirmArchiveRetention found.
type archiveRetention struct {
	// until is when the archive's retention ends by its manifest (the
	// later of it and the tombstone's purge_after); zero when nothing
	// records one.
	until time.Time
	// said describes it, for the reasons of the result.
	said string
	// weak says the retention rests partly on the tombstone (an archive
	// of an earlier release).
	weak bool
}

// ArchiveUnconfirmedError is an archive due for removal whose own
// manifest could not confirm that its retention is over.
type ArchiveUnconfirmedError struct {
	Archive string
	Err     error
}

func (e *ArchiveUnconfirmedError) Error() string {
	return fmt.Sprintf("its retention could not be confirmed by the manifest inside it (%v): kept; purge removes an archive only when its own verified manifest says its retention is over, never on the word of its tombstone alone", e.Err)
}

func (e *ArchiveUnconfirmedError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *ArchiveUnconfirmedError) Hint() string {
	return "check the archive " + e.Archive + " by hand (instance_verify_backup or sha256sum against its .sha256 sidecar and its tombstone's archive_sha256); once it reads and matches, the next purge decides by its manifest; if it is damaged for good, remove it by hand once you are sure its retention is over"
}

// confirmArchiveRetention reads the archive file of sh, verified against
// its sidecar (and, when ts records one, ts's archive_sha256, reading in
// a versioned bucket the version ts recorded), and returns its retention
// by its manifest. ts is the tombstone that owns the archive, nil when
// none does. An error means it could not be confirmed.
func confirmArchiveRetention(ctx context.Context, sh shelf, file string, ts *Tombstone) (archiveRetention, *ArchiveUnconfirmedError) {
	var r archiveRetention
	ref := archRef{st: sh.st, key: sh.key(file)}
	unconfirmed := func(err error) (archiveRetention, *ArchiveUnconfirmedError) {
		return r, &ArchiveUnconfirmedError{Archive: ref.loc(), Err: err}
	}
	if ts != nil && ts.ArchiveSHA256 != "" {
		pinned, _, err := recordedVersion(ctx, ref, ts.ArchiveSHA256, ts.Path)
		if err != nil {
			return unconfirmed(err)
		}
		ref = pinned
	}
	id := strings.TrimSuffix(file, archiveExt)
	m, sum, err := archive.Check(ctx, ref.st, ref.key)
	if err != nil {
		if sealed, raw, serr := sealedSHA256(ctx, ref); sealed {
			return sealedRetention(ctx, ref, id, ts, raw, serr)
		}
		return unconfirmed(err)
	}
	if m.ID != id {
		return unconfirmed(fmt.Errorf("archive %s holds the manifest of deletion %q, not of %s (renamed or copied)", ref.loc(), m.ID, id))
	}
	if m.Instance != sh.name {
		return unconfirmed(fmt.Errorf("archive %s is of instance %q, filed under %s", ref.loc(), m.Instance, sh.where()))
	}
	// A tombstone owns an archive by its archive_path or its id; either
	// may have been edited. Only the tombstone of this deletion, with the
	// sha256 of this archive, says anything of it.
	own := ts != nil && ts.ID == m.ID && (ts.ArchiveSHA256 == "" || ts.ArchiveSHA256 == sum)
	if ts != nil && ts.ArchiveSHA256 != "" && ts.ArchiveSHA256 != sum {
		return unconfirmed(fmt.Errorf("archive %s has sha256 %s, its tombstone %s says %s", ref.loc(), sum, ts.Path, ts.ArchiveSHA256))
	}
	deleted := m.CreatedAt.UTC().Format(time.RFC3339)
	switch {
	case m.PurgeAfter != nil:
		r.until = m.PurgeAfter.UTC()
		days := ""
		if m.RetentionDays != nil {
			days = fmt.Sprintf(", retention_days %d", *m.RetentionDays)
		}
		r.said = fmt.Sprintf("its manifest says deleted %s%s, purge after %s", deleted, days, r.until.Format(time.RFC3339))
	case own:
		r.until, r.weak = m.CreatedAt.UTC().Add(time.Duration(ts.RetentionDays)*24*time.Hour), true
		r.said = fmt.Sprintf("its manifest (of a release that recorded no retention in it) says deleted %s; with the retention_days %d of its tombstone, purge after %s", deleted, ts.RetentionDays, r.until.Format(time.RFC3339))
	default:
		r.weak = true
		r.said = fmt.Sprintf("its manifest (of a release that recorded no retention in it) says deleted %s, and no tombstone of deletion %s records a retention for it", deleted, m.ID)
	}
	if ts != nil && own && ts.PurgeAfter.After(r.until) {
		r.until = ts.PurgeAfter.UTC()
		r.said += fmt.Sprintf("; its tombstone's later purge_after %s wins", r.until.Format(time.RFC3339))
	}
	return r, nil
}

// ageMagic begins every archive pkg/store/encrypted wrote.
const ageMagic = "age-encryption.org/v1\n"

// sealedSHA256 reports whether the archive of ref is encrypted with age
// and read as stored (purge is given no identity: its manifest cannot be
// read), and then its sha256 as stored, which its sidecar records.
func sealedSHA256(ctx context.Context, ref archRef) (sealed bool, sum string, err error) {
	rc, err := ref.st.Open(ctx, ref.key)
	if err != nil {
		return false, "", err
	}
	defer rc.Close()
	head := make([]byte, len(ageMagic))
	if n, _ := io.ReadFull(rc, head); n < len(head) || string(head) != ageMagic {
		return false, "", nil
	}
	h := sha256.New()
	h.Write(head)
	if _, err := io.Copy(h, rc); err != nil {
		return true, "", fmt.Errorf("read %s: %w", ref.loc(), err)
	}
	return true, hex.EncodeToString(h.Sum(nil)), nil
}

// idLayouts are the forms of the UTC timestamp a deletion's id (and so
// its archive's name) starts with.
var idLayouts = []string{"20060102T150405.000000Z", "20060102T150405Z"}

// idTime is the instant a deletion's id records (newID).
func idTime(id string) (time.Time, bool) {
	stamp, _, _ := strings.Cut(id, "-")
	for _, l := range idLayouts {
		if t, err := time.Parse(l, stamp); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// sealedRetention is the retention of an encrypted archive purge cannot
// decrypt: its sha256 as stored must be its sidecar's and its tombstone's;
// the deletion date is the one its name (the deletion's id) records, which
// no tombstone edit changes; the retention_days are those of the tombstone
// of that deletion, or its purge_after when later. Weaker than a manifest,
// and said so; without a tombstone of its deletion nothing records a
// retention, and it is kept.
func sealedRetention(ctx context.Context, ref archRef, id string, ts *Tombstone, raw string, rerr error) (archiveRetention, *ArchiveUnconfirmedError) {
	r := archiveRetention{weak: true}
	unconfirmed := func(err error) (archiveRetention, *ArchiveUnconfirmedError) {
		return r, &ArchiveUnconfirmedError{Archive: ref.loc(), Err: fmt.Errorf("it is encrypted (age) and purge has no identity to read its manifest: %w", err)}
	}
	if rerr != nil {
		return unconfirmed(rerr)
	}
	want, err := readSidecarOf(ctx, ref)
	if err != nil {
		return unconfirmed(err)
	}
	if raw != want {
		return unconfirmed(fmt.Errorf("its sha256 as stored is %s, its sidecar says %s", raw, want))
	}
	if ts == nil || ts.ID != id {
		return unconfirmed(fmt.Errorf("no tombstone of deletion %s records its retention", id))
	}
	if ts.ArchiveSHA256 != "" && ts.ArchiveSHA256 != raw {
		return unconfirmed(fmt.Errorf("its sha256 as stored is %s, its tombstone %s says %s", raw, ts.Path, ts.ArchiveSHA256))
	}
	at, ok := idTime(id)
	if !ok {
		return unconfirmed(fmt.Errorf("its name %s records no deletion date", id))
	}
	r.until = at.Add(time.Duration(ts.RetentionDays) * 24 * time.Hour)
	r.said = fmt.Sprintf("it is encrypted (age) and purge has no identity to read its manifest; its name says deleted %s; with the retention_days %d of its tombstone, purge after %s",
		at.Format(time.RFC3339), ts.RetentionDays, r.until.Format(time.RFC3339))
	if ts.PurgeAfter.After(r.until) {
		r.until = ts.PurgeAfter.UTC()
		r.said += fmt.Sprintf("; its tombstone's later purge_after %s wins", r.until.Format(time.RFC3339))
	}
	return r, nil
}

// readSidecarOf reads the sha256 the sidecar of ref records.
func readSidecarOf(ctx context.Context, ref archRef) (string, error) {
	rc, err := ref.st.Open(ctx, ref.key+sidecar.Suffix)
	if err != nil {
		return "", fmt.Errorf("no readable sidecar %s%s: %w", ref.loc(), sidecar.Suffix, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return "", fmt.Errorf("no readable sidecar %s%s: %w", ref.loc(), sidecar.Suffix, err)
	}
	return sidecar.Parse(data, ref.loc())
}

// keptNote is the part of a kept archive's reason that says what its
// tombstone says against its manifest.
func (r archiveRetention) keptNote(ts *Tombstone) string {
	if ts == nil {
		return "; it has no tombstone (removed, or its id and archive_path edited): it is no spare copy to remove at once"
	}
	if ts.PurgeAfter.IsZero() {
		return fmt.Sprintf("; its tombstone %s (state %s) records no retention (an archive recorded after it was found without its tombstone, or an edited one): that is no retention over", ts.Path, ts.State)
	}
	return fmt.Sprintf("; its tombstone %s (state %s) says purge_after %s: edited, or an older copy of it", ts.Path, ts.State, ts.PurgeAfter.UTC().Format(time.RFC3339))
}

// purgedNote is the part of a removed archive's reason that says what
// confirmed it.
func (r archiveRetention) purgedNote() string {
	note := "; confirmed by the archive: " + r.said
	if r.weak {
		note += " (an archive of an earlier release: its retention rests partly on its tombstone)"
	}
	return note
}

// BareRetentionError is a quarantine with parts whose kind keeps no
// retention record of its own, whose tombstone says its retention is over
// while the manifest inside its archive does not say so (or cannot be
// checked).
type BareRetentionError struct {
	Deletion       string
	TombstonePath  string
	TombstoneAfter time.Time
	Bare           []string
	// Until is when the archive's manifest says the retention ends; zero
	// when it could not be checked (Err).
	Until time.Time
	Said  string
	Err   error
}

func (e *BareRetentionError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s keep(s) no retention record of their own (their kind keeps none), and the archive of deletion %s, which would confirm the purge_after %s of the tombstone %s, cannot be checked: %v; nothing of the quarantine was removed",
			strings.Join(e.Bare, ", "), e.Deletion, e.TombstoneAfter.UTC().Format(time.RFC3339), e.TombstonePath, e.Err)
	}
	return fmt.Sprintf("%s keep(s) no retention record of their own (their kind keeps none); the tombstone %s says deletion %s may be purged after %s, but %s: they disagree, and purge removes such a quarantine only when the archive's manifest says its retention is over too; nothing of it was removed",
		strings.Join(e.Bare, ", "), e.TombstonePath, e.Deletion, e.TombstoneAfter.UTC().Format(time.RFC3339), e.Said)
}

func (e *BareRetentionError) Unwrap() error { return e.Err }

// Hint tells the operator what to do.
func (e *BareRetentionError) Hint() string {
	if e.Err != nil {
		return "make the deletion's archive readable again, then run the purge again; if it is lost for good, remove the quarantine by hand once you are sure its retention is over"
	}
	return fmt.Sprintf("the tombstone was edited (or an older copy of it put back): wait until %s, when purge removes the quarantine by itself", e.Until.UTC().Format(time.RFC3339))
}

// confirmBare confirms, by the manifest inside deletion ts's archive
// (found by the deletion's id, as the archive is named), the retention of
// the quarantine parts bare, whose kind keeps no record of its own: the
// tombstone alone never purges them. A deletion that has no archive and
// names none (a forced restore's moves aside) has nothing else to say it:
// its tombstone's word stands, as before.
func confirmBare(ctx context.Context, now time.Time, ts *Tombstone, bare []string) error {
	e := &BareRetentionError{Deletion: ts.ID, TombstonePath: ts.Path, TombstoneAfter: ts.PurgeAfter, Bare: bare}
	if ts.st == nil {
		e.Err = fmt.Errorf("tombstone %s: not bound to a store", ts.Path)
		return e
	}
	sh := ts.shelf()
	file := ts.ID + archiveExt
	if _, err := sh.st.Stat(ctx, sh.key(file)); err != nil {
		if ts.ArchivePath == "" && (errors.Is(err, store.ErrNotExist) || errors.Is(err, fs.ErrNotExist)) {
			return nil
		}
		e.Err = fmt.Errorf("archive %s: %w", sh.loc(file), err)
		return e
	}
	conf, uerr := confirmArchiveRetention(ctx, sh, file, ts)
	if uerr != nil {
		e.Err = uerr.Err
		return e
	}
	if now.Before(conf.until) {
		e.Until, e.Said = conf.until, "the archive says: "+conf.said
		return e
	}
	return nil
}
