package attack6

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	instancerestore "github.com/fleetsafe/fleetsafe/modules/instance_restore"
)

// TestAttack6_RelocateOntoATakenPlace: promise 4. acme is soft deleted
// (into quarantine); the layout then moves the data component from
// srv/ to srv2/. Before restore with relocate, the new place is taken:
// a stranger's directory, an empty directory, a link to globex's data,
// and a copy of exactly the archived content one of whose files is a
// hard link to globex's file (same bytes, mode and mtime), an empty tmpfs
// mount point. Each must be refused with nothing moved (the quarantine whole, nothing restored
// elsewhere); the hard link's refusal names the file and its link count. An empty directory (a placeholder) may be moved
// aside into quarantine, but a note must say so. A plain copy of exactly the archived content is
// the control: it is taken as the relocation's own (restore succeeds).
func TestAttack6_RelocateOntoATakenPlace(t *testing.T) {
	cases := []string{"stranger", "empty", "empty-mountpoint", "link-to-globex", "hardlink-to-globex", "exact-copy"}
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme", "globex"}})
			arch := filepath.Join(f.Root, "archives")
			out := localDelete(t, f, arch, "acme", 30)
			var qdata string
			for _, q := range out["quarantined"].([]any) {
				if m := q.(map[string]any); m["component"] == "data" {
					qdata = m["to"].(string)
				}
			}
			before := fleettest.Tree(t, qdata)
			y, err := os.ReadFile(f.LayoutFile)
			fleettest.Must(t, err)
			old := filepath.Join(f.Root, "srv", f.App)
			fleettest.Must(t, os.WriteFile(f.LayoutFile, []byte(strings.Replace(string(y), old+"/", filepath.Join(f.Root, "srv2", f.App)+"/", 1)), 0o644))
			newData := filepath.Join(f.Root, "srv2", f.App, "acme", "data")
			globex := filepath.Join(old, "globex", "data")
			fleettest.Must(t, os.MkdirAll(filepath.Dir(newData), 0o755))
			var victim string
			switch c {
			case "stranger":
				fleettest.Must(t, os.MkdirAll(newData, 0o755))
				fleettest.Must(t, os.WriteFile(filepath.Join(newData, "stranger.txt"), []byte("not acme's\n"), 0o644))
			case "empty":
				fleettest.Must(t, os.MkdirAll(newData, 0o755))
			case "empty-mountpoint":
				fleettest.Must(t, os.MkdirAll(newData, 0o755))
				if b, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", newData).CombinedOutput(); err != nil {
					t.Fatalf("mount: %v: %s", err, b)
				}
				t.Cleanup(func() { _ = exec.Command("umount", "-l", newData).Run() })
			case "link-to-globex":
				fleettest.Must(t, os.Symlink(globex, newData))
			case "hardlink-to-globex", "exact-copy":
				if b, err := exec.Command("cp", "-a", qdata, newData).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v: %s", err, b)
				}
				if c == "hardlink-to-globex" {
					victim = hardLinkOneFile(t, newData, globex)
					// the parent directory's mtime as archived
					qi, err := os.Stat(filepath.Join(qdata, filepath.Dir(victim)))
					fleettest.Must(t, err)
					fleettest.Must(t, os.Chtimes(filepath.Join(newData, filepath.Dir(victim)), qi.ModTime(), qi.ModTime()))
				}
			}
			res := f.CallModule(t, instancerestore.Module, "name", "acme", "archive_dir", arch, "relocate", true)
			t.Logf("restore: failed=%v changed=%v msg=%.600v", res["failed"], res["changed"], res["msg"])
			switch {
			case c == "exact-copy":
				if res["failed"] == true {
					t.Fatalf("the exact archived content at the new place is refused: %v", res["msg"])
				}
			case c == "hardlink-to-globex" && res["failed"] != true:
				var st, gst syscall.Stat_t
				fleettest.Must(t, syscall.Lstat(filepath.Join(newData, victim), &st))
				fleettest.Must(t, syscall.Lstat(filepath.Join(globex, victim), &gst))
				t.Fatalf("a new place holding a file hard-linked to globex's was taken as acme's (shares globex's inode: %v): %v", st.Ino == gst.Ino, res["msg"])
			case c == "empty" && res["failed"] != true:
				// An empty placeholder may be taken over, but never silently:
				// it is moved aside into quarantine, and a note says so.
				if n := toString(res["notes"]); !strings.Contains(n, "empty directory") || !strings.Contains(n, "moved aside") {
					t.Errorf("an empty directory at the new place was replaced without a note: %v", res["notes"])
				}
			default:
				if res["failed"] != true {
					t.Fatalf("restore onto a new place taken by %s succeeded: %v", c, res)
				}
				if c == "hardlink-to-globex" && (!strings.Contains(toString(res["msg"]), "link count 2") || !strings.Contains(toString(res["msg"]), victim)) {
					t.Errorf("the refusal does not name the file and its link count: %v", res["msg"])
				}
				if after := fleettest.Tree(t, qdata); len(after) != len(before) {
					t.Errorf("the quarantine changed after a refused relocation")
				}
				if _, err := os.Lstat(f.Path("config", "acme")); err == nil {
					t.Errorf("config came back although the whole restore was refused")
				}
			}
		})
	}
}

// hardLinkOneFile makes the first regular file of dir a hard link to a
// file of other holding the same bytes, mode and mtime (other's file is
// rewritten to match), and returns its relative name.
func hardLinkOneFile(t *testing.T, dir, other string) string {
	t.Helper()
	var rel string
	fleettest.Must(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && rel == "" && fi.Mode().IsRegular() {
			rel, _ = filepath.Rel(dir, p)
		}
		return err
	}))
	if rel == "" {
		t.Fatal("no regular file in " + dir)
	}
	src := filepath.Join(dir, rel)
	fi, err := os.Stat(src)
	fleettest.Must(t, err)
	data, err := os.ReadFile(src)
	fleettest.Must(t, err)
	dst := filepath.Join(other, rel)
	fleettest.Must(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	fleettest.Must(t, os.WriteFile(dst, data, fi.Mode().Perm()))
	fleettest.Must(t, os.Chmod(dst, fi.Mode().Perm()))
	fleettest.Must(t, os.Chtimes(dst, fi.ModTime(), fi.ModTime()))
	fleettest.Must(t, os.Remove(src))
	fleettest.Must(t, os.Link(dst, src))
	return rel
}

// TestAttack6_QuarantineFileHardLinkedToAnotherInstance: hole 3's class
// without relocate. acme is soft deleted into quarantine; by hand one
// file of its quarantined data becomes a hard link to a file of the live
// globex rewritten to the same bytes, mode and mtime (the parent's mtime
// put back). A restore from quarantine must not rename it back as acme's
// own: the quarantined copy is passed over, with a note naming the file
// and its link count, and acme comes back from its verified archive, its
// file no longer globex's inode.
func TestAttack6_QuarantineFileHardLinkedToAnotherInstance(t *testing.T) {
	f := fleettest.NewSpec(t, fleettest.Spec{Names: []string{"acme", "globex"}})
	arch := filepath.Join(f.Root, "archives")
	out := localDelete(t, f, arch, "acme", 30)
	var qdata string
	for _, q := range out["quarantined"].([]any) {
		if m := q.(map[string]any); m["component"] == "data" {
			qdata = m["to"].(string)
		}
	}
	globex := f.Path("data", "globex")
	dirTimes := map[string]time.Time{}
	fleettest.Must(t, filepath.Walk(qdata, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			dirTimes[p] = fi.ModTime()
		}
		return err
	}))
	victim := hardLinkOneFile(t, qdata, globex)
	for p, mt := range dirTimes { // put back what the link changed
		fleettest.Must(t, os.Chtimes(p, mt, mt))
	}
	res := f.CallModule(t, instancerestore.Module, "name", "acme", "archive_dir", arch)
	t.Logf("restore: failed=%v msg=%.400v notes=%.600v", res["failed"], res["msg"], res["notes"])
	if res["failed"] == true {
		t.Fatalf("restore failed although the verified archive holds acme: %v", res["msg"])
	}
	if n := toString(res["notes"]); !strings.Contains(n, "link count 2") || !strings.Contains(n, "from the archive instead") {
		t.Errorf("restore does not say the quarantined copy was passed over for its hard link: %v", res["notes"])
	}
	var st, gst syscall.Stat_t
	fleettest.Must(t, syscall.Lstat(filepath.Join(f.Path("data", "acme"), victim), &st))
	fleettest.Must(t, syscall.Lstat(filepath.Join(globex, victim), &gst))
	if st.Ino == gst.Ino || st.Nlink != 1 {
		t.Fatalf("restored %s shares its inode with globex's %s (link count %d)", filepath.Join(f.Path("data", "acme"), victim), filepath.Join(globex, victim), st.Nlink)
	}
}
