package softdelete

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/sidecar"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// In a versioned bucket nothing is ever replaced: a PUT adds a version
// over the one there, and Object Lock, which keeps versions from
// removal, never refuses it. Anyone allowed a PUT can so put a forged
// archive, sidecar or tombstone over a deletion's own, while the
// versions fleetsafe wrote stay in the bucket, intact (and locked). What
// restore and purge trust is what the deletion wrote:
//
//   - a tombstone's fields fixed at the deletion (id, instance, app,
//     archive_path, deleted_at, retention) are those of its oldest
//     version, written by the soft delete before the archive; its
//     archive_sha256 that of the oldest version recording one, written
//     right after the archive was verified (and locked). A newer version
//     that says otherwise was not written by fleetsafe, which never
//     changes them: it is overruled, and named. Its purge_after is kept
//     only when it is later (a retention is never shortened by it);
//   - the archive read is the version whose sha256 is the one the
//     tombstone recorded, and its sidecar the version that records that
//     sha256: the newest such, any newer version being passed over and
//     named. When no version matches, restore refuses, naming the
//     versions tried.
//
// A store that keeps no versions (a directory) is read as before.

// pinned reads the keys it pins at one version each, and every other key
// as its store does.
type pinned struct {
	store.Store
	v    store.Versioner
	pins map[string]store.Version
	// hidden: the key's current version is a delete marker.
	hidden map[string]bool
}

// Open reads the pinned version of key.
func (p *pinned) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if v, ok := p.pins[key]; ok {
		return p.v.OpenVersion(ctx, key, v.ID)
	}
	return p.Store.Open(ctx, key)
}

// Stat describes the pinned version of key.
func (p *pinned) Stat(ctx context.Context, key string) (store.Info, error) {
	if v, ok := p.pins[key]; ok {
		return store.Info{Key: key, Size: v.Size, ModTime: v.ModTime, Hidden: p.hidden[key]}, nil
	}
	return p.Store.Stat(ctx, key)
}

// describeVersion names a version for people.
func describeVersion(v store.Version) string {
	return fmt.Sprintf("version %s (written %s, %d bytes)", v.ID, v.ModTime.UTC().Format(time.RFC3339), v.Size)
}

// NoRecordedVersionError is an archive none of whose versions in the
// bucket (or none of whose sidecar's) is the one its tombstone recorded.
type NoRecordedVersionError struct {
	Archive string
	Msg     string
}

func (e *NoRecordedVersionError) Error() string {
	return fmt.Sprintf("archive %s: %s", e.Archive, e.Msg)
}

// Hint tells the operator what to do.
func (e *NoRecordedVersionError) Hint() string {
	return "do not rely on this archive: the version its tombstone recorded is not in the bucket (aws s3api list-object-versions lists what is); name an older archive explicitly with archive: if this one is lost"
}

// recordedVersion returns ref reading, by version id, the version of
// the archive whose sha256 is want (what tombstone, named for messages,
// recorded) and the version of its sidecar that records want, when
// either key has more than one version holding data; ref itself when
// each has one (archive.Check and the tombstone's sha256 check it), or
// when the store keeps no versions. notes say what was passed over. A *VerifyError names the
// versions tried when none matches.
func recordedVersion(ctx context.Context, ref archRef, want, tombstone string) (archRef, []string, error) {
	v, ok := ref.st.(store.Versioner)
	if !ok || want == "" {
		return ref, nil, nil
	}
	all, err := v.Versions(ctx, ref.key)
	if err != nil {
		return ref, nil, err
	}
	sideKey := ref.key + sidecar.Suffix
	sideAll, err := v.Versions(ctx, sideKey)
	if err != nil {
		return ref, nil, err
	}
	avs, svs := store.DataVersions(all), store.DataVersions(sideAll)
	if len(avs) <= 1 && len(svs) <= 1 {
		return ref, nil, nil // as written: archive.Check checks it
	}
	loc := ref.loc()
	pins := map[string]store.Version{}
	var notes []string
	if len(svs) > 1 {
		var tried []string
		found := false
		for i, sv := range svs {
			got, err := readSidecarVersion(ctx, v, sideKey, sv.ID, loc)
			if err == nil && got == want {
				found = true
				pins[sideKey] = sv // read by its id, whatever is PUT after this
				if i > 0 {
					notes = append(notes, fmt.Sprintf("sidecar %s%s: newer versions put over it in the bucket were passed over, none recording the sha256 %s tombstone %s recorded (%s); its %s, which records it, was read",
						loc, sidecar.Suffix, want, tombstone, strings.Join(tried, "; "), describeVersion(sv)))
				}
				break
			}
			if err != nil {
				tried = append(tried, fmt.Sprintf("%s: %v", describeVersion(sv), err))
			} else {
				tried = append(tried, fmt.Sprintf("%s: sha256 %s", describeVersion(sv), got))
			}
		}
		if !found {
			return ref, nil, &NoRecordedVersionError{Archive: loc, Msg: fmt.Sprintf("no version of its sidecar %s%s records the sha256 %s tombstone %s recorded (versions tried, newest first: %s)",
				loc, sidecar.Suffix, want, tombstone, strings.Join(tried, "; "))}
		}
	}
	if len(avs) > 1 {
		var tried []string
		found := false
		for i, av := range avs {
			got, err := versionSHA256(ctx, v, ref.key, av.ID, want)
			if err == nil && got == want {
				found = true
				pins[ref.key] = av
				if i > 0 {
					notes = append(notes, fmt.Sprintf("archive %s: newer versions put over it in the bucket were passed over, none having the sha256 %s tombstone %s recorded (%s); its %s, which has it, was read and checked",
						loc, want, tombstone, strings.Join(tried, "; "), describeVersion(av)))
				}
				break
			}
			if err != nil {
				tried = append(tried, fmt.Sprintf("%s: unreadable: %v", describeVersion(av), err))
			} else {
				tried = append(tried, fmt.Sprintf("%s: sha256 %s", describeVersion(av), got))
			}
		}
		if !found {
			return ref, nil, &NoRecordedVersionError{Archive: loc, Msg: fmt.Sprintf("no version of it has the sha256 %s tombstone %s recorded: it was replaced or tampered with (versions tried, newest first: %s)",
				want, tombstone, strings.Join(tried, "; "))}
		}
	}
	return archRef{st: &pinned{Store: ref.st, v: v, pins: pins, hidden: map[string]bool{ref.key: markerOnTop(all), sideKey: markerOnTop(sideAll)}}, key: ref.key}, notes, nil
}

// markerOnTop reports whether the current version of a key is a delete
// marker.
func markerOnTop(vs []store.Version) bool {
	for _, v := range vs {
		if v.Latest {
			return v.DeleteMarker
		}
	}
	return false
}

// readSidecarVersion returns the digest one version of a sidecar records.
func readSidecarVersion(ctx context.Context, v store.Versioner, key, id, archive string) (string, error) {
	rc, err := v.OpenVersion(ctx, key, id)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return "", err
	}
	return sidecar.Parse(data, archive)
}

// versionSHA256 reads one version of an archive to its end and returns
// its sha256 as a sidecar records it: of the object as stored (the
// ciphertext of an encrypted archive), or, for an encrypted archive of an
// earlier release whose digest is over its plaintext, of the plaintext
// when that is want.
func versionSHA256(ctx context.Context, v store.Versioner, key, id, want string) (string, error) {
	rc, err := v.OpenVersion(ctx, key, id)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	plain := hex.EncodeToString(h.Sum(nil))
	rs := archive.RawSumOf(rc)
	if rs == nil {
		return plain, nil
	}
	raw, err := rs.RawSHA256()
	if err != nil {
		return "", err
	}
	if raw != want && plain == want {
		return plain, nil
	}
	return raw, nil
}

// tombstoneHistoryReads bounds the older versions of a tombstone read to
// find its first record (a soft delete writes two before its first
// move: archiving, then quarantining with the archive's sha256).
const tombstoneHistoryReads = 16

// checkHistory overrules, in t (the tombstone read under key, its
// newest version), what a newer version changed of the fields the
// deletion fixed, from the oldest versions of the key (see the top of
// this file), and records why in t.overruled. When t is nil (perr: the
// newest version is no tombstone), the newest version that is one is
// read in its place; perr is returned when none is, or when the store
// keeps no versions.
func checkHistory(ctx context.Context, st store.Store, key, loc string, t *Tombstone, perr error) (*Tombstone, error) {
	v, ok := st.(store.Versioner)
	if !ok {
		return t, perr
	}
	all, err := v.Versions(ctx, key)
	if err != nil {
		return nil, errors.Join(perr, fmt.Errorf("versions of tombstone %s: %w", loc, err))
	}
	vs := store.DataVersions(all)
	if len(vs) <= 1 {
		return t, perr
	}
	cur := 0
	var notes []string
	if t == nil {
		for i := 1; i < len(vs) && i <= tombstoneHistoryReads; i++ {
			if old, err := readTombstoneVersion(ctx, v, key, vs[i].ID); err == nil {
				t, cur = old, i
				break
			}
		}
		if t == nil {
			return nil, perr
		}
		notes = append(notes, fmt.Sprintf("tombstone %s: its newest %s is not a tombstone (%v): put over it by hand, passed over; its %s was read",
			loc, describeVersion(vs[0]), perr, describeVersion(vs[cur])))
	}
	var first, recorded *Tombstone
	var firstV, recordedV store.Version
	for i := len(vs) - 1; i > cur && i >= len(vs)-tombstoneHistoryReads; i-- {
		old, err := readTombstoneVersion(ctx, v, key, vs[i].ID)
		if err != nil {
			// Not one fleetsafe wrote (it writes JSON): no record.
			continue
		}
		if first == nil {
			first, firstV = old, vs[i]
		}
		if old.ArchiveSHA256 != "" {
			recorded, recordedV = old, vs[i]
			break
		}
	}
	if first != nil {
		if d := overrule(t, first, firstV, recorded, recordedV); d != "" {
			notes = append(notes, fmt.Sprintf("tombstone %s: its %s says %s: fleetsafe never changes these fields, so that version was put over it by hand; the deletion's own record is used",
				loc, describeVersion(vs[cur]), d))
		}
	}
	if early(t.State) {
		// A deletion that reached quarantined never goes back to a state
		// of a deletion that did not complete (which restore would pass
		// over for older data, and keep_last not count).
		for i := cur + 1; i < len(vs) && i <= cur+tombstoneHistoryReads; i++ {
			old, err := readTombstoneVersion(ctx, v, key, vs[i].ID)
			if err != nil || old.ID != t.ID || early(old.State) {
				continue
			}
			notes = append(notes, fmt.Sprintf("tombstone %s: its %s says state %s where its older %s says %s: a deletion that completed never goes back to %s, so that version was put over it by hand; state %s is used",
				loc, describeVersion(vs[cur]), t.State, describeVersion(vs[i]), old.State, t.State, old.State))
			t.State = old.State
			break
		}
	}
	t.overruled = strings.Join(notes, "; ")
	return t, nil
}

// early reports whether state is one of a deletion that did not
// complete (yet): every state a tombstone has before quarantined.
func early(state string) bool {
	switch state {
	case StateArchiving, StateQuarantining, StateRollingBack, StateAbandoned:
		return true
	}
	return false
}

// overrule puts back in t the fields first (the oldest version) and
// recorded (the oldest recording the archive's sha256) fixed, and says
// what differed ("" when nothing did).
func overrule(t, first *Tombstone, firstV store.Version, recorded *Tombstone, recordedV store.Version) string {
	var diffs []string
	differs := func(field, newer, older string) bool {
		if newer == older {
			return false
		}
		diffs = append(diffs, fmt.Sprintf("%s %q where its %s says %q", field, newer, describeVersion(firstV), older))
		return true
	}
	if differs("id", t.ID, first.ID) {
		t.ID = first.ID
	}
	if differs("instance", t.Instance, first.Instance) {
		t.Instance = first.Instance
	}
	if differs("app", t.App, first.App) {
		t.App = first.App
	}
	if differs("archive_path", t.ArchivePath, first.ArchivePath) {
		t.ArchivePath = first.ArchivePath
	}
	if !t.DeletedAt.Equal(first.DeletedAt) {
		differs("deleted_at", t.DeletedAt.UTC().Format(time.RFC3339), first.DeletedAt.UTC().Format(time.RFC3339))
		t.DeletedAt = first.DeletedAt
	}
	if t.PurgeAfter.Before(first.PurgeAfter) {
		// Never shortened by a newer version; a later one is kept.
		differs("purge_after", t.PurgeAfter.UTC().Format(time.RFC3339), first.PurgeAfter.UTC().Format(time.RFC3339))
		t.PurgeAfter, t.RetentionDays = first.PurgeAfter, first.RetentionDays
	}
	if recorded != nil && t.ArchiveSHA256 != recorded.ArchiveSHA256 {
		diffs = append(diffs, fmt.Sprintf("archive_sha256 %q where its %s, written when the archive was verified, says %q", t.ArchiveSHA256, describeVersion(recordedV), recorded.ArchiveSHA256))
		t.ArchiveSHA256 = recorded.ArchiveSHA256
		t.ArchiveStoreChecksum = recorded.ArchiveStoreChecksum
	}
	return strings.Join(diffs, ", ")
}

// overruledNote is "; " and t.overruled, or "".
func (t *Tombstone) overruledNote() string {
	if t.overruled == "" {
		return ""
	}
	return "; " + t.overruled
}

// readTombstoneVersion reads one version of a tombstone.
func readTombstoneVersion(ctx context.Context, v store.Versioner, key, id string) (*Tombstone, error) {
	rc, err := v.OpenVersion(ctx, key, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		return nil, err
	}
	t := &Tombstone{}
	if err := json.Unmarshal(data, t); err != nil {
		return nil, err
	}
	if t.ID == "" || t.Instance == "" {
		return nil, errors.New("missing id or instance")
	}
	return t, nil
}
