package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

// testSpool makes the unlinked files a collector's records spill into.
func testSpool(t *testing.T) func() (*os.File, error) {
	dir := t.TempDir()
	return func() (*os.File, error) {
		f, err := os.CreateTemp(dir, "files-*.spool")
		if err != nil {
			return nil, err
		}
		return f, os.Remove(f.Name())
	}
}

// TestSpool_RoundTrip is the spool's promise: every record comes back as
// it was collected, in order, whether the spool stayed in memory or
// spilled into a file midway, with the digests hashAll writes in place;
// names and link targets of any bytes (not UTF-8 too), any owner, mode,
// mtime (before 1678 and after 2262 included), size and stat stamp.
func TestSpool_RoundTrip(t *testing.T) {
	roots := []*os.Root{openRoot(t), openRoot(t), openRoot(t)}
	comps := []string{"data", "conf", "logs"}
	rapid.Check(t, func(t *rapid.T) {
		defer func(m int) { spoolMemMax = m }(spoolMemMax)
		spoolMemMax = rapid.IntRange(0, 2000).Draw(t, "memMax")
		dir, err := os.MkdirTemp("", "spool-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		c := NewCollector(nil)
		c.roots, c.comps = roots, comps
		c.KeepRecords(func() (*os.File, error) { return os.CreateTemp(dir, "s") })
		defer func() { c.roots = nil; c.Close() }()
		str := rapid.StringN(0, 40, -1)
		n := rapid.IntRange(0, 60).Draw(t, "n")
		var want []*source
		var idx []int
		var rec []byte
		for i := range n {
			root := rapid.IntRange(0, len(roots)-1).Draw(t, "root")
			s := &source{root: roots[root], rel: string(rapid.SliceOf(rapid.Byte()).Draw(t, "rel")),
				mode: fs.FileMode(rapid.Uint32().Draw(t, "mode")),
				seen: stamp{size: rapid.Int64().Draw(t, "ssize"), mtime: rapid.Int64().Draw(t, "smtime"),
					ctime: rapid.Int64().Draw(t, "sctime"), ino: rapid.Uint64().Draw(t, "ino")}}
			e := &s.entry
			e.Component = comps[root]
			e.Type = rapid.SampledFrom(recTypes).Draw(t, "type")
			e.setExact(string(rapid.SliceOf(rapid.Byte()).Draw(t, "name")), string(rapid.SliceOf(rapid.Byte()).Draw(t, "target")))
			e.SameFileAs, e.Owner, e.Group = str.Draw(t, "same"), str.Draw(t, "owner"), str.Draw(t, "group")
			e.Mode = rapid.Uint32().Draw(t, "emode")
			e.UID, e.GID = rapid.Int().Draw(t, "uid"), rapid.Int().Draw(t, "gid")
			e.MTime = time.Unix(rapid.Int64Range(-1<<40, 1<<40).Draw(t, "sec"), rapid.Int64Range(0, 999999999).Draw(t, "nsec")).UTC()
			e.Size = rapid.Int64().Draw(t, "size")
			if rapid.Bool().Draw(t, "hashed") {
				e.SHA256 = hex.EncodeToString(rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(t, "sum"))
			}
			rec = encodeRecord(rec[:0], s, root)
			if err := c.spool.add(rec); err != nil {
				t.Fatal(err)
			}
			want = append(want, s)
			if e.SHA256 == "" && rapid.Bool().Draw(t, "hashLater") {
				idx = append(idx, i)
			}
		}
		// The digests hashAll would write, in place.
		sums := map[int]string{}
		i := 0
		if err := c.each(func(s *source, off int64) error {
			if slices.Contains(idx, i) {
				sum := sha256.Sum256([]byte{byte(i)})
				sums[i] = hex.EncodeToString(sum[:])
				if err := c.spool.setDigest(off, sums[i]); err != nil {
					return err
				}
			}
			i++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for i, sum := range sums {
			want[i].entry.SHA256 = sum
		}
		var got []*source
		if err := c.each(func(s *source, _ int64) error { got = append(got, s); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d records back, want %d", len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
			}
		}
		if (c.spool.f != nil) != (c.spool.size > int64(spoolMemMax)) {
			t.Fatalf("spilled %v with %d bytes of records, limit %d", c.spool.f != nil, c.spool.size, spoolMemMax)
		}
	})
}

// A damaged spool is an error, never records made up.
func TestSpool_Damaged(t *testing.T) {
	c := NewCollector(nil)
	c.roots, c.comps = []*os.Root{openRoot(t)}, []string{"data"}
	c.KeepRecords(testSpool(t))
	defer c.Close()
	s := &source{rel: "a", entry: FileEntry{Component: "data", Type: "file", Path: "components/data/a"}}
	rec := encodeRecord(nil, s, 0)
	for cut := 1; cut < len(rec); cut++ {
		c.spool.mem = append([]byte(nil), rec[:cut]...)
		err := c.each(func(*source, int64) error { return nil })
		if err == nil {
			t.Fatalf("a record cut at %d of %d bytes read back without error", cut, len(rec))
		}
	}
	bad := append([]byte(nil), rec...)
	bad[recFixed] = 9 // no such kind
	c.spool.mem = bad
	if err := c.each(func(*source, int64) error { return nil }); err == nil {
		t.Fatal("a record of an unknown kind read back without error")
	}
}

func openRoot(t *testing.T) *os.Root {
	r, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// targetOf resolves component i of l for instance name, as soft delete
// does before it hands a component to the collector.
func targetOf(t *testing.T, l *instance.Layout, i int, name string) kind.Target {
	t.Helper()
	c := l.Components[i]
	_, _, full, err := instance.Locate(c, name)
	require.NoError(t, err)
	return kind.Target{App: l.App, Instance: name, Component: c, Locator: full}
}
