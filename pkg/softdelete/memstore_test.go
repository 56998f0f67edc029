package softdelete_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/archive"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
	"github.com/fleetsafe/fleetsafe/pkg/store"
	"github.com/fleetsafe/fleetsafe/pkg/store/storetest"
)

// memStore is a store that is not a directory: objects live in a map,
// locations are mem:// URLs that name no file. It has none of the file
// store's optional interfaces (store.Local, store.LockInspector), so a
// lifecycle that still assumed a local path would fail against it.
type memStore struct {
	mu     sync.Mutex
	objs   map[string][]byte
	mtimes map[string]time.Time
	locks  map[string]bool
	// opened counts the Opens of each key (tests check that what is
	// verified is read back from the store).
	opened map[string]int
}

var _ store.Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{objs: map[string][]byte{}, mtimes: map[string]time.Time{}, locks: map[string]bool{}, opened: map[string]int{}}
}

func (s *memStore) Location(key string) string { return "mem://test/" + key }

type memWriter struct {
	s        *memStore
	key      string
	buf      bytes.Buffer
	finished bool
}

func (w *memWriter) Write(p []byte) (int, error) {
	if w.finished {
		return 0, fmt.Errorf("write %s: finished", w.key)
	}
	return w.buf.Write(p)
}

func (w *memWriter) Commit(ctx context.Context) error {
	if w.finished {
		return fmt.Errorf("commit %s: already finished", w.key)
	}
	w.finished = true
	if err := ctx.Err(); err != nil {
		return err
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if _, ok := w.s.objs[w.key]; ok {
		return fmt.Errorf("create %s: %w", w.s.Location(w.key), store.ErrExists)
	}
	w.s.objs[w.key] = bytes.Clone(w.buf.Bytes())
	w.s.mtimes[w.key] = time.Now()
	return nil
}

func (w *memWriter) Abort() error { w.finished = true; return nil }

func (s *memStore) Create(_ context.Context, key string) (store.Writer, error) {
	if err := store.CheckKey(key); err != nil {
		return nil, err
	}
	return &memWriter{s: s, key: key}, nil
}

func (s *memStore) Put(ctx context.Context, key string, data []byte) error {
	if err := store.CheckKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[key] = bytes.Clone(data)
	s.mtimes[key] = time.Now()
	return nil
}

func (s *memStore) Open(_ context.Context, key string) (io.ReadCloser, error) {
	if err := store.CheckKey(key); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.objs[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", s.Location(key), store.ErrNotExist)
	}
	s.opened[key]++
	return io.NopCloser(bytes.NewReader(d)), nil
}

func (s *memStore) Stat(_ context.Context, key string) (store.Info, error) {
	if err := store.CheckKey(key); err != nil {
		return store.Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.objs[key]
	if !ok {
		return store.Info{}, fmt.Errorf("%s: %w", s.Location(key), store.ErrNotExist)
	}
	return store.Info{Key: key, Size: int64(len(d)), ModTime: s.mtimes[key]}, nil
}

func (s *memStore) List(_ context.Context, prefix string) ([]store.Info, error) {
	if p := strings.TrimSuffix(prefix, "/"); p != "" {
		if err := store.CheckKey(p); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Info
	for k, d := range s.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, store.Info{Key: k, Size: int64(len(d)), ModTime: s.mtimes[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *memStore) Remove(_ context.Context, key string) error {
	if err := store.CheckKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objs[key]; !ok {
		return fmt.Errorf("%s: %w", s.Location(key), store.ErrNotExist)
	}
	delete(s.objs, key)
	delete(s.mtimes, key)
	return nil
}

func (s *memStore) Lock(_ context.Context, name string) (func(), error) {
	if err := store.CheckKey(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks[name] {
		return nil, fmt.Errorf("lock %s: %w", s.Location(name), store.ErrLocked)
	}
	s.locks[name] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.locks, name)
			s.mu.Unlock()
		})
	}, nil
}

func (s *memStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.objs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestMemStore_KeepsTheContract: the in-memory store the lifecycle test
// below uses keeps the contract of every store.
func TestMemStore_KeepsTheContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newMemStore() })
}

// TestLifecycle_StoreThatIsNotADirectory: soft delete, restore from
// quarantine, a second soft delete, purge and restore from the archive,
// with every archive, sidecar and tombstone in a store that is not a
// directory. No archive_dir is given: nothing may be written to, or read
// from, a local path of the store; the database dump waits in a work
// directory of the system's temporary directory, removed afterwards.
func TestLifecycle_StoreThatIsNotADirectory(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	f := fleettest.New(t, true, "acme", "globex")
	ctx := context.Background()
	st := newMemStore()
	before := f.Snapshot(t, "acme")
	other := f.Snapshot(t, "globex")
	req := softdelete.Request{Name: "acme", Store: st, Reason: "customer left", RequestedBy: "alice",
		JobID: "42", RetentionDays: 30, Options: f.Options()}

	// A lock held in the store refuses the deletion, with nothing changed.
	unlock, err := st.Lock(ctx, "acme")
	require.NoError(t, err)
	_, err = softdelete.Delete(ctx, f.Layout, req)
	require.ErrorContains(t, err, "another fleetsafe run holds the lock")
	assert.Equal(t, before, f.Snapshot(t, "acme"))
	assert.Empty(t, st.keys(), "a refused deletion writes nothing")
	unlock()

	res, err := softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	require.NotNil(t, res.Archive)
	assert.True(t, res.Archive.Verified)
	id := res.Tombstone.ID
	archive := "acme/" + id + ".tar.zst"
	assert.Equal(t, []string{archive, archive + ".sha256", "acme/" + id + ".tombstone.json"}, st.keys())
	assert.Equal(t, st.Location(archive), res.Archive.Path, "results name the store's locations")
	assert.Equal(t, st.Location("acme/"+id+".tombstone.json"), res.Tombstone.Path)
	assert.Positive(t, st.opened[archive], "the archive was verified by reading it back from the store")
	sc, err := st.Open(ctx, archive+".sha256")
	require.NoError(t, err)
	line, _ := io.ReadAll(sc)
	assert.Equal(t, res.Archive.SHA256+"  "+id+".tar.zst\n", string(line))
	assert.Len(t, res.Quarantined, 5)
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, left, "the dump's work directory is removed")

	q, err := softdelete.ListQuarantineIn(ctx, st, f.App, time.Now())
	require.NoError(t, err)
	require.Len(t, q, 1)
	assert.Equal(t, id, q[0].ID)

	rr, err := softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", Store: st, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, softdelete.SourceQuarantine, rr.Source)
	assert.Equal(t, before, f.Snapshot(t, "acme"))
	ts, err := st.Open(ctx, "acme/"+id+".tombstone.json")
	require.NoError(t, err)
	body, _ := io.ReadAll(ts)
	assert.Contains(t, string(body), `"state": "restored"`, "the tombstone changed state in place")

	// Delete again; purge once retention has passed removes the
	// quarantine and the older archive, from the store.
	res, err = softdelete.Delete(ctx, f.Layout, req)
	require.NoError(t, err)
	second := "acme/" + res.Tombstone.ID + ".tar.zst"
	pr, err := softdelete.PurgeReport(ctx, softdelete.PurgeRequest{Layouts: []*instance.Layout{f.Layout}, Store: st, KeepLast: 1, PG: f.PG,
		Now: res.Tombstone.PurgeAfter.Add(time.Minute)})
	require.NoError(t, err)
	assert.Len(t, pr.Purged, 6, "5 quarantined components and the older archive: %+v", pr.Purged)
	_, err = st.Stat(ctx, archive)
	assert.ErrorIs(t, err, store.ErrNotExist, "the older archive is removed")
	_, err = st.Stat(ctx, archive+".sha256")
	assert.ErrorIs(t, err, store.ErrNotExist, "with its sidecar")
	_, err = st.Stat(ctx, second)
	assert.NoError(t, err, "keep_last keeps the newest deletion's archive")

	rr, err = softdelete.Restore(ctx, f.Layout, softdelete.RestoreRequest{Name: "acme", Store: st,
		Source: softdelete.SourceArchive, Options: f.Options()})
	require.NoError(t, err)
	assert.Equal(t, softdelete.SourceArchive, rr.Source)
	assert.Equal(t, []string{st.Location(second)}, rr.Archives)
	assert.ElementsMatch(t, []string{"config", "data", "logs", "database"}, rr.Restored)
	assert.Equal(t, before, f.Snapshot(t, "acme"))
	assert.Equal(t, other, f.Snapshot(t, "globex"), "the other instance is untouched")
	left, err = os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, left, "no work directory is left")
}

// TestVerifyArchive_PathOutsideAnInstanceFolder: the path-taking entry
// points (the command line's verify-archive) read an archive wherever it
// lies, also in a directory whose name a store key could not have.
func TestVerifyArchive_PathOutsideAnInstanceFolder(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "archives")
	res, err := softdelete.Delete(ctx, f.Layout, request(f, archives, "acme"))
	require.NoError(t, err)
	hidden := filepath.Join(t.TempDir(), ".copies")
	require.NoError(t, os.Mkdir(hidden, 0o700))
	for _, ext := range []string{"", ".sha256"} {
		data, err := os.ReadFile(res.Archive.Path + ext)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(hidden, filepath.Base(res.Archive.Path)+ext), data, 0o600))
	}
	m, err := archive.VerifyArchive(ctx, filepath.Join(hidden, filepath.Base(res.Archive.Path)))
	require.NoError(t, err)
	assert.Equal(t, "acme", m.Instance)
}

// TestLifecycle_StoreThatIsNotADirectory_Interrupted: the paths that
// finish an interrupted deletion read and write the store only. A run
// stopped after its archive was written (before the tombstone said
// quarantining) is recorded as abandoned by the next run, which verifies
// that archive from the store; a run stopped after the tombstone said
// quarantining is finished by the next; an archive found without a
// tombstone is recorded with one.
func TestLifecycle_StoreThatIsNotADirectory_Interrupted(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	st := newMemStore()
	before := f.Snapshot(t, "acme")
	stopAt := func(step string) func(string) {
		return func(s string) {
			if s == step {
				panic("stopped at " + s)
			}
		}
	}
	run := func(after func(string)) (res *softdelete.Result, err error, stopped any) {
		defer func() { stopped = recover() }()
		req := softdelete.Request{Name: "acme", Store: st, Reason: "customer left", RetentionDays: 1, Options: f.Options(), AfterStep: after}
		res, err = softdelete.Delete(ctx, f.Layout, req)
		return res, err, nil
	}
	tombstone := func(id string) string {
		rc, err := st.Open(ctx, "acme/"+id+".tombstone.json")
		require.NoError(t, err)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		return string(b)
	}

	_, _, stopped := run(stopAt("archive"))
	require.NotNil(t, stopped)
	assert.Equal(t, before, f.Snapshot(t, "acme"), "nothing moved")
	keys := st.keys()
	require.Len(t, keys, 3, "archive, sidecar and journal: %v", keys)
	first := strings.TrimSuffix(strings.TrimPrefix(keys[0], "acme/"), ".tar.zst")

	_, _, stopped = run(stopAt("tombstone"))
	require.NotNil(t, stopped)
	assert.Contains(t, tombstone(first), `"state": "abandoned"`)
	assert.Contains(t, tombstone(first), "was written and verified", "the next run verified the earlier archive from the store")

	res, err, stopped := run(nil)
	require.Nil(t, stopped)
	require.NoError(t, err)
	assert.Equal(t, "completed an interrupted deletion", res.Msg)
	assert.Contains(t, tombstone(res.Tombstone.ID), `"state": "quarantined"`)

	// An archive without a tombstone: recorded by the next run.
	require.NoError(t, st.Remove(ctx, "acme/"+first+".tombstone.json"))
	res, err, _ = run(nil)
	require.NoError(t, err)
	require.NotEmpty(t, res.Warnings)
	assert.Contains(t, strings.Join(res.Warnings, "\n"), st.Location("acme/"+first+".tar.zst")+" had no tombstone")
	assert.Contains(t, tombstone(first), `"state": "abandoned"`)
}

// TestRefusedAfterTheLock_LeavesNothing: a deletion refused once it holds
// the instance's lock (a fingerprint that no longer matches) leaves no
// archive directory it created (the file store removes its lock and the
// directories it made), and writes nothing to a store that is not a
// directory.
func TestRefusedAfterTheLock_LeavesNothing(t *testing.T) {
	f := fleettest.New(t, false, "acme")
	ctx := context.Background()
	archives := filepath.Join(t.TempDir(), "deep", "archives")
	req := request(f, archives, "acme")
	req.Fingerprint = "sha256:0000"
	_, err := softdelete.Delete(ctx, f.Layout, req)
	require.ErrorContains(t, err, "no longer matches the approved fingerprint")
	assert.NoDirExists(t, filepath.Dir(archives), "every directory the refused run created is gone")

	// A directory that was there stays, and so does what it holds.
	require.NoError(t, os.MkdirAll(filepath.Join(archives, "acme"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(archives, "acme", ".acme.tombstone.json.tmp-0a"), nil, 0o600))
	_, err = softdelete.Delete(ctx, f.Layout, req)
	require.Error(t, err)
	assert.DirExists(t, filepath.Join(archives, "acme"))
	assert.NoFileExists(t, filepath.Join(archives, "acme", ".acme.tombstone.json.tmp-0a"), "the stale temporary of a killed run is removed under the lock")

	st := newMemStore()
	req.ArchiveDir, req.Store = "", st
	_, err = softdelete.Delete(ctx, f.Layout, req)
	require.ErrorContains(t, err, "no longer matches the approved fingerprint")
	assert.Empty(t, st.keys())
	unlock, err := st.Lock(ctx, "acme")
	require.NoError(t, err, "the refused run released the store's lock")
	unlock()
}
