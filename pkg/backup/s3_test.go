package backup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/recovery"
	"github.com/fleetsafe/fleetsafe/pkg/store/s3/s3test"
)

// s3Fleet is a fleet whose backups live in a fresh bucket of the local S3
// server (scripts/s3-up.sh): the real backups of backedUp, uploaded under
// backups/<name>/<file> (older nights first, so that LastModified keeps
// their order), and the layout's rules rewritten to
// s3://bucket/backups/{name}/... .
type s3Fleet struct {
	f      *fleettest.Fleet
	bucket string
	c      *minio.Client
	latest map[string]map[string]string // local paths of the newest backups
}

func newS3Fleet(t *testing.T, names ...string) *s3Fleet {
	t.Helper()
	c := s3test.Client(t)
	bucket := s3test.Bucket(t, false)
	f, latest := backedUp(t, names...)
	x := &s3Fleet{f: f, bucket: bucket, c: c, latest: latest}
	for _, n := range names {
		ents, err := os.ReadDir(f.BackupDir(n))
		require.NoError(t, err)
		// Oldest first: the night's stamp orders the names.
		for _, e := range ents {
			x.upload(t, "backups/"+n+"/"+e.Name(), filepath.Join(f.BackupDir(n), e.Name()))
		}
		require.NoError(t, os.RemoveAll(f.BackupDir(n)))
	}
	x.rewrite(t, "s3://"+bucket+"/backups/")
	return x
}

// rewrite points the layout's rules at the bucket.
func (x *s3Fleet) rewrite(t *testing.T, to string) {
	t.Helper()
	data, err := os.ReadFile(x.f.LayoutFile)
	require.NoError(t, err)
	y := strings.ReplaceAll(string(data), x.f.Root+"/backups/", to)
	require.NoError(t, os.WriteFile(x.f.LayoutFile, []byte(y), 0o644))
	l, err := instance.LoadLayoutFile(x.f.LayoutFile)
	require.NoError(t, err)
	x.f.Layout = l
}

func (x *s3Fleet) upload(t *testing.T, key, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	x.put(t, key, data)
}

func (x *s3Fleet) put(t *testing.T, key string, data []byte) {
	t.Helper()
	_, err := x.c.PutObject(context.Background(), x.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	require.NoError(t, err)
}

func (x *s3Fleet) get(t *testing.T, key string) []byte {
	t.Helper()
	o, err := x.c.GetObject(context.Background(), x.bucket, key, minio.GetObjectOptions{})
	require.NoError(t, err)
	defer o.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(o)
	require.NoError(t, err)
	return b.Bytes()
}

// key is the object of the newest local backup of name and component.
func (x *s3Fleet) key(name, component string) string {
	return "backups/" + name + "/" + filepath.Base(x.latest[name][component])
}

func (x *s3Fleet) url(name, component string) string {
	return "s3://" + x.bucket + "/" + x.key(name, component)
}

func (x *s3Fleet) verify(t *testing.T, at time.Time) *backup.Report {
	t.Helper()
	rep, err := backup.Verify(context.Background(), x.f.Layout, backup.Options{Now: at, Discovery: x.f.Options(), S3: s3test.Settings(t)})
	require.NoError(t, err)
	return rep
}

func sidecarOf(key string, data []byte) []byte {
	sum := sha256.Sum256(data)
	return []byte(hex.EncodeToString(sum[:]) + "  " + filepath.Base(key) + "\n")
}

// tarZst is a valid tar.zst of one entry of size bytes (random, so that
// it does not compress).
func tarZst(t *testing.T, size int) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out)
	require.NoError(t, err)
	tw := tar.NewWriter(zw)
	body := make([]byte, size)
	rand.Read(body)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "data/f", Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}))
	_, err = tw.Write(body)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return out.Bytes()
}

// TestVerifyS3_GoodBackupsPass: backups in a bucket pass every check a
// local file passes, each read from the object (listing, newest by
// LastModified, size, shrink, sidecar object, format read to its end,
// the dump's database, its data); no credential is in the report.
func TestVerifyS3_GoodBackupsPass(t *testing.T) {
	x := newS3Fleet(t, "acme", "globex")
	rep := x.verify(t, time.Now())
	require.Equal(t, backup.Summary{Instances: 2, OK: 2}, rep.Summary, "%+v", rep.Instances)
	for _, c := range []string{backup.CheckOwner, backup.CheckPresent, backup.CheckFresh, backup.CheckSize, backup.CheckShrink,
		backup.CheckChecksum, backup.CheckFormat, backup.CheckData} {
		r := check(t, rep, "acme", "database", c)
		assert.Equal(t, backup.StatusOK, r.Status, "%s: %+v", c, r)
	}
	assert.Equal(t, x.url("acme", "database"), check(t, rep, "acme", "database", backup.CheckFormat).File)
	assert.Equal(t, x.url("acme", "data"), check(t, rep, "acme", "data", backup.CheckFormat).File)
	assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "data", backup.CheckShrink).Status)
	out, err := json.Marshal(rep)
	require.NoError(t, err)
	s := s3test.Settings(t)
	assert.NotContains(t, string(out), s.SecretKey)
	assert.NotContains(t, string(out), s.AccessKey)
	assert.NotContains(t, rep.Metrics(nil), s.SecretKey)
}

// TestVerifyS3_FindsEachBadBackup: a truncated dump (with a sidecar over
// its truncated bytes), a sidecar that does not match, a data backup
// shrunk to a fraction of the previous one, backups older than max_age,
// and another instance's dump under this instance's prefix are each
// found, from the objects.
func TestVerifyS3_FindsEachBadBackup(t *testing.T) {
	x := newS3Fleet(t, "acme", "globex", "initech")
	// acme: the newest dump truncated, its sidecar over what is left.
	dump := x.get(t, x.key("acme", "database"))
	cut := dump[:len(dump)*2/3]
	x.put(t, x.key("acme", "database"), cut)
	x.put(t, x.key("acme", "database")+".sha256", sidecarOf(x.key("acme", "database"), cut))
	// globex: the sidecar of its newest dump is wrong; its data backup
	// shrinks from 256 KiB to 1 KiB (both complete tar.zst).
	x.put(t, x.key("globex", "database")+".sha256", sidecarOf(x.key("globex", "database"), []byte("other bytes")))
	time.Sleep(1100 * time.Millisecond) // LastModified has seconds
	x.put(t, "backups/globex/data-20000101T000000.tar.zst", tarZst(t, 256<<10))
	time.Sleep(1100 * time.Millisecond)
	x.put(t, "backups/globex/data-29990101T000000.tar.zst", tarZst(t, 1<<10))
	// initech: globex's newest dump copied under initech's prefix, newer.
	gdump := x.get(t, x.key("globex", "database"))
	foreign := "backups/initech/db-29990101T000000.dump"
	x.put(t, foreign, gdump)
	x.put(t, foreign+".sha256", sidecarOf(foreign, gdump))

	rep := x.verify(t, time.Now())
	f := check(t, rep, "acme", "database", backup.CheckFormat)
	assert.Equal(t, backup.StatusFailed, f.Status, "%+v", f)
	assert.Equal(t, x.url("acme", "database"), f.File)
	assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "database", backup.CheckChecksum).Status)

	c := check(t, rep, "globex", "database", backup.CheckChecksum)
	assert.Equal(t, backup.StatusFailed, c.Status, "%+v", c)
	assert.Contains(t, c.Detail, "its sidecar says")
	assert.Equal(t, backup.StatusOK, check(t, rep, "globex", "database", backup.CheckFormat).Status)
	s := check(t, rep, "globex", "data", backup.CheckShrink)
	assert.Equal(t, backup.StatusFailed, s.Status, "%+v", s)
	assert.Equal(t, "s3://"+x.bucket+"/backups/globex/data-29990101T000000.tar.zst", s.File)

	var owner []backup.CheckResult
	for _, i := range rep.Instances {
		for _, c := range i.Checks {
			if i.Name == "initech" && c.Component == "database" && c.Check == backup.CheckOwner && c.Status == backup.StatusFailed {
				owner = append(owner, c)
			}
		}
	}
	require.Len(t, owner, 1, "globex's dump under initech's prefix: %+v", rep.Instances)
	assert.Equal(t, "s3://"+x.bucket+"/"+foreign, owner[0].File)
	assert.Contains(t, owner[0].Detail, x.f.Database("globex"))
	// The foreign dump is not initech's newest: its own still is.
	assert.Equal(t, x.url("initech", "database"), check(t, rep, "initech", "database", backup.CheckFormat).File)

	// Two days later, every newest backup is older than max_age 26h.
	late := x.verify(t, time.Now().Add(48*time.Hour))
	st := check(t, late, "initech", "config", backup.CheckFresh)
	assert.Equal(t, backup.StatusFailed, st.Status, "%+v", st)
	assert.Contains(t, st.Detail, x.url("initech", "config"))
}

// TestVerifyS3_AmbiguousKeysCreditedToNone: under
// s3://bucket/flat/data-{name}-*.tar.zst the object
// data-a-b-1.tar.zst can be a's or a-b's backup: with both present it is
// credited to neither, each gets a failed owner check, as for files.
func TestVerifyS3_AmbiguousKeysCreditedToNone(t *testing.T) {
	x := newS3Fleet(t, "a", "a-b")
	data, err := os.ReadFile(x.f.LayoutFile)
	require.NoError(t, err)
	flat := strings.ReplaceAll(string(data), "s3://"+x.bucket+"/backups/{name}/data-*.tar.zst", "s3://"+x.bucket+"/flat/data-{name}-*.tar.zst")
	require.NotEqual(t, string(data), flat)
	require.NoError(t, os.WriteFile(x.f.LayoutFile, []byte(flat), 0o644))
	x.f.Layout, err = instance.LoadLayoutFile(x.f.LayoutFile)
	require.NoError(t, err)
	x.put(t, "flat/data-a-1.tar.zst", tarZst(t, 2048))
	x.put(t, "flat/data-a-b-1.tar.zst", tarZst(t, 2048))
	rep := x.verify(t, time.Now())
	for _, n := range []string{"a", "a-b"} {
		var found bool
		for _, i := range rep.Instances {
			for _, c := range i.Checks {
				if i.Name == n && c.Component == "data" && c.Check == backup.CheckOwner && c.Status == backup.StatusFailed {
					found = true
					assert.Equal(t, "s3://"+x.bucket+"/flat/data-a-b-1.tar.zst", c.File)
				}
			}
		}
		assert.True(t, found, "%s: no failed owner check", n)
	}
	// a's own object is still a's newest; a-b has none of its own.
	assert.Equal(t, "s3://"+x.bucket+"/flat/data-a-1.tar.zst", check(t, rep, "a", "data", backup.CheckFormat).File)
	assert.Equal(t, backup.StatusFailed, check(t, rep, "a-b", "data", backup.CheckPresent).Status)
}

// TestVerifyS3_CredentialsNeverShown: a wrong secret key fails the
// listing (a failed present check naming the bucket) and neither the
// secret nor the access key appears in the report or its metrics.
func TestVerifyS3_CredentialsNeverShown(t *testing.T) {
	x := newS3Fleet(t, "acme")
	set := s3test.Settings(t)
	set.SecretKey = "wrong-secret-" + set.SecretKey
	rep, err := backup.Verify(context.Background(), x.f.Layout, backup.Options{Now: time.Now(), Discovery: x.f.Options(), S3: set})
	require.NoError(t, err)
	p := check(t, rep, "acme", "database", backup.CheckPresent)
	assert.Equal(t, backup.StatusFailed, p.Status, "%+v", p)
	assert.Contains(t, p.Detail, x.bucket)
	out, err := json.Marshal(rep)
	require.NoError(t, err)
	for _, secret := range []string{set.SecretKey, set.AccessKey} {
		assert.NotContains(t, string(out), secret)
		assert.NotContains(t, rep.Metrics(nil), secret)
	}
}

// TestDrillS3_RestoresFromObjectsAndCatchesABrokenDump: a restore drill
// of an instance whose backups are objects restores each of them (tree
// extraction, pg_restore) into scratch; a truncated newest dump fails it.
func TestDrillS3_RestoresFromObjectsAndCatchesABrokenDump(t *testing.T) {
	x := newS3Fleet(t, "acme")
	scratch := scratchCopies(t)
	res, err := recovery.DrillWith(context.Background(), x.f.Layout, "acme", x.f.Options(), time.Now(), s3test.Settings(t))
	require.NoError(t, err)
	require.True(t, res.OK, "%+v", res)
	got := map[string]recovery.DrillComponent{}
	for _, c := range res.Components {
		got[c.Component] = c
	}
	require.Len(t, got, 3)
	assert.Equal(t, x.url("acme", "database"), got["database"].Backup.Path)
	assert.Equal(t, 2, got["database"].Tables)
	assert.Positive(t, got["data"].Files)

	dump := x.get(t, x.key("acme", "database"))
	cut := dump[:len(dump)-200]
	x.put(t, x.key("acme", "database"), cut)
	x.put(t, x.key("acme", "database")+".sha256", sidecarOf(x.key("acme", "database"), cut))
	res, err = recovery.DrillWith(context.Background(), x.f.Layout, "acme", x.f.Options(), time.Now(), s3test.Settings(t))
	require.NoError(t, err)
	assert.False(t, res.OK)
	for _, c := range res.Components {
		if c.Component == "database" {
			assert.Equal(t, recovery.DrillFailed, c.Status)
			assert.Contains(t, c.Reason, x.url("acme", "database"))
		}
	}
	assert.Equal(t, scratch, scratchCopies(t), "no scratch copy of an object left")
}

// scratchCopies lists the scratch copies of objects in the temporary
// directory.
func scratchCopies(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(os.TempDir(), ".fleetsafe-s3-backup-*"))
	require.NoError(t, err)
	return m
}

// TestRestoreS3_FromObjects: instance_restore source=backup takes the
// backups of s3:// rules too: data and database destroyed come back from
// the objects, the data tree byte for byte, the database's rows.
func TestRestoreS3_FromObjects(t *testing.T) {
	x := newS3Fleet(t, "acme")
	scratch := scratchCopies(t)
	want := x.f.Snapshot(t, "acme")
	tree := fleettest.Tree(t, x.f.Path("data", "acme"))
	require.NoError(t, os.RemoveAll(x.f.Path("data", "acme")))
	require.NoError(t, fleettest.DropDatabasesLike(context.Background(), x.f.PG, x.f.Database("acme")))
	res, err := recovery.Restore(context.Background(), x.f.Layout, recovery.Request{Name: "acme", Options: x.f.Options(), S3: s3test.Settings(t)})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"data", "database"}, res.Restored)
	for _, c := range res.Components {
		if c.Component == "data" || c.Component == "database" {
			require.NotNil(t, c.Backup, c.Component)
			assert.Equal(t, x.url("acme", c.Component), c.Backup.Path)
		}
	}
	// tar keeps whole seconds.
	frac := regexp.MustCompile(`\.[0-9]+ \+0000`)
	for k, v := range tree {
		tree[k] = frac.ReplaceAllString(v, " +0000")
	}
	assert.Equal(t, tree, fleettest.Tree(t, x.f.Path("data", "acme")))
	assert.Equal(t, want.Rows, x.f.Snapshot(t, "acme").Rows)
	assert.Equal(t, scratch, scratchCopies(t), "no scratch copy of an object left")
}

// patterned is n bytes of a repeating pattern, generated as read.
type patterned struct{ n int64 }

func (p *patterned) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	p.n -= int64(len(b))
	return len(b), nil
}

// TestVerifyS3_StreamsWithFlatMemory: the checksum and format checks of a
// 64 MiB object read it as a stream: what the run allocates in all stays
// far below the object's size (a copy in memory, or a read of it whole,
// would allocate at least that much).
func TestVerifyS3_StreamsWithFlatMemory(t *testing.T) {
	c := s3test.Client(t)
	bucket := s3test.Bucket(t, false)
	const size = 64 << 20
	pr, pw := io.Pipe()
	h := sha256.New()
	go func() {
		tw := tar.NewWriter(io.MultiWriter(pw, h))
		err := tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
		if err == nil {
			_, err = io.Copy(tw, &patterned{n: size})
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	_, err := c.PutObject(context.Background(), bucket, "b/acme/data-1.tar", pr, -1, minio.PutObjectOptions{PartSize: 16 << 20})
	require.NoError(t, err)
	side := hex.EncodeToString(h.Sum(nil)) + "  data-1.tar\n"
	_, err = c.PutObject(context.Background(), bucket, "b/acme/data-1.tar.sha256", strings.NewReader(side), int64(len(side)), minio.PutObjectOptions{})
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(dir+"/srv/acme", 0o755))
	y := "app: memx\ncomponents:\n  - name: data\n    type: dir\n    path: " + dir + "/srv/{name}\nbackups:\n" +
		"  - component: data\n    path: s3://" + bucket + "/b/{name}/data-*.tar\n    format: tar\n    checksum: sha256_sidecar\n"
	l, err := instance.ParseLayout([]byte(y), "memx.yml")
	require.NoError(t, err)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rep, err := backup.Verify(context.Background(), l, backup.Options{S3: s3test.Settings(t)})
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	require.Equal(t, backup.Summary{Instances: 1, OK: 1}, rep.Summary, "%+v", rep.Instances)
	assert.Equal(t, backup.StatusOK, check(t, rep, "acme", "data", backup.CheckChecksum).Status)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("verify of a %d MiB object allocated %d KiB in all", size>>20, alloc>>10)
	assert.Less(t, alloc, uint64(size/4), "the object is streamed, not held")
}

// TestVerifyS3_FormatsFromObjects: a zip (read by ranged GETs, its
// directory at its end), a plain SQL dump and a gzip tar are checked from
// objects to their end, each with its sidecar object; the same objects
// cut short fail their format check.
func TestVerifyS3_FormatsFromObjects(t *testing.T) {
	c := s3test.Client(t)
	bucket := s3test.Bucket(t, false)
	dir := t.TempDir()
	y := "app: fmtx\ncomponents:\n"
	var rules string
	for i, f := range []struct{ file, format string }{{"small.zip", "zip"}, {"small.sql", "pg_plain"}, {"small.tar.gz", "tar_gz"}, {"small.zip", "any"}} {
		comp := fmt.Sprintf("c%d", i)
		y += fmt.Sprintf("  - name: %s\n    type: dir\n    path: %s/%s/{name}\n", comp, dir, comp)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, comp, "acme"), 0o755))
		rules += fmt.Sprintf("  - component: %s\n    path: s3://%s/%s/{name}/b-*\n    format: %s\n    checksum: sha256_sidecar\n", comp, bucket, comp, f.format)
		data, err := os.ReadFile(filepath.Join("testdata", f.file))
		require.NoError(t, err)
		for _, obj := range []struct {
			name string
			data []byte
		}{{"good/b-1", data}, {"cut/b-1", data[:len(data)*3/4]}} {
			key := comp + "/" + obj.name
			side := sidecarOf(key, obj.data)
			_, err = c.PutObject(context.Background(), bucket, key, bytes.NewReader(obj.data), int64(len(obj.data)), minio.PutObjectOptions{})
			require.NoError(t, err)
			_, err = c.PutObject(context.Background(), bucket, key+".sha256", bytes.NewReader(side), int64(len(side)), minio.PutObjectOptions{})
			require.NoError(t, err)
		}
		require.NoError(t, os.MkdirAll(filepath.Join(dir, comp, "good"), 0o755))
		require.NoError(t, os.MkdirAll(filepath.Join(dir, comp, "cut"), 0o755))
	}
	l, err := instance.ParseLayout([]byte(y+"backups:\n"+rules), "fmtx.yml")
	require.NoError(t, err)
	rep, err := backup.Verify(context.Background(), l, backup.Options{S3: s3test.Settings(t), Now: time.Now()})
	require.NoError(t, err)
	for i := range 4 {
		comp := fmt.Sprintf("c%d", i)
		g := check(t, rep, "good", comp, backup.CheckFormat)
		assert.Equal(t, backup.StatusOK, g.Status, "%s good: %+v", comp, g)
		assert.Equal(t, backup.StatusOK, check(t, rep, "good", comp, backup.CheckChecksum).Status, comp)
		b := check(t, rep, "cut", comp, backup.CheckFormat)
		assert.Equal(t, backup.StatusFailed, b.Status, "%s cut: %+v", comp, b)
	}
}
