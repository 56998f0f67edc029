package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/stretchr/testify/require"
)

// The action plugin's cache on the target (collection/plugins/action/
// fleetsafe_binary.py), driven through ansible-playbook. The local
// connection runs the same shell the SSH connection does; bench/transfer
// runs it over SSH.

func sha256File(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	return fi.Sys().(*syscall.Stat_t).Ino
}

// cachePlay writes a playbook with one instance_info task per cache
// directory (given by fleetsafe_cache_dir), each registered and asserted
// to have found the instance, unless expectFail names the caches whose
// task must fail (its message is written to <cache>.msg).
func cachePlay(t *testing.T, layout string, caches []string, expectFail map[string]bool) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("- hosts: localhost\n  gather_facts: false\n  tasks:\n")
	for i, c := range caches {
		fmt.Fprintf(&b, "    - name: Run with cache %d\n      fleetsafe.instances.instance_info: {layout_file: %q, name: acme, sizes: false}\n", i, layout)
		fmt.Fprintf(&b, "      vars: {fleetsafe_cache_dir: %q}\n      register: r%d\n", c, i)
		if expectFail[c] {
			fmt.Fprintf(&b, "      ignore_errors: true\n")
			fmt.Fprintf(&b, "    - name: Keep its message\n      ansible.builtin.copy: {content: \"{{ r%d.msg }}\", dest: %q, mode: \"0600\"}\n", i, c+".msg")
			fmt.Fprintf(&b, "    - name: It failed\n      ansible.builtin.assert: {that: [r%d is failed]}\n", i)
			continue
		}
		fmt.Fprintf(&b, "    - name: The real module answered\n      ansible.builtin.assert:\n        that: [r%d.found, \"r%d.fingerprint != 'forged'\"]\n", i, i)
	}
	path := filepath.Join(t.TempDir(), "play.yml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	return path
}

func runPlay(t *testing.T, lib, play string) fleettest.Playbook {
	t.Helper()
	return fleettest.RunPlaybookArgs(t, lib, []string{"-i", filepath.Join(fleettest.RepoRoot(), "playbooks", "inventory", "localhost.yml"), play}, nil)
}

func TestCache_CopiesOnceAndChecksEveryRun(t *testing.T) {
	f := fleet(t, "acme")
	lib := fleettest.BuildModules(t, "instance_info")
	sum := sha256File(t, filepath.Join(lib, "fleetsafe"))
	root := t.TempDir()
	dir := func(n string) string { return filepath.Join(root, n) }
	bin := func(n string) string { return filepath.Join(root, n, sum, "fleetsafe") }

	// Cache "old" holds four other versions, installed an hour apart, and
	// a directory that is not a version.
	old := dir("old")
	var versions []string
	for i := 0; i < 4; i++ {
		v := strings.Repeat(fmt.Sprintf("%x", 10+i), 64)
		versions = append(versions, v)
		require.NoError(t, os.MkdirAll(filepath.Join(old, v), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(old, v, "fleetsafe"), []byte("old"), 0o755))
		at := time.Now().Add(time.Duration(i-4) * time.Hour)
		require.NoError(t, os.Chtimes(filepath.Join(old, v), at, at))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(old, "not-a-version"), 0o755))

	pb := runPlay(t, lib, cachePlay(t, f.LayoutFile, []string{old, dir("kept")}, nil))
	require.NoError(t, pb.Err, pb.Output)
	for _, n := range []string{"old", "kept"} {
		require.Equal(t, sum, sha256File(t, bin(n)), "cache %s holds the binary", n)
		fi, err := os.Lstat(bin(n))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o755), fi.Mode(), "cache %s", n)
		left, err := filepath.Glob(filepath.Join(dir(n), "*", ".fleetsafe.*"))
		require.NoError(t, err)
		require.Empty(t, left, "a temporary copy is left in %s", n)
	}
	// This version and the two others installed most recently are kept;
	// nothing that is not a version is removed.
	require.NoDirExists(t, filepath.Join(old, versions[0]))
	require.NoDirExists(t, filepath.Join(old, versions[1]))
	require.DirExists(t, filepath.Join(old, versions[2]))
	require.DirExists(t, filepath.Join(old, versions[3]))
	require.DirExists(t, filepath.Join(old, "not-a-version"))

	// Second run: "kept" is used as it is (no copy: same inode); a
	// tampered binary is never run and is replaced; a link in its place
	// (even to the right binary) is replaced by a file; a version
	// directory of another user is refused with words that say so.
	keptInode := inode(t, bin("kept"))
	mark := filepath.Join(root, "tampered-binary-ran")
	require.NoError(t, os.WriteFile(bin("old"), []byte("#!/bin/sh\ntouch "+mark+"\necho '{\"changed\": false, \"found\": true, \"fingerprint\": \"forged\"}'\n"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Dir(bin("link")), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(lib, "fleetsafe"), bin("link")))
	require.NoError(t, os.MkdirAll(filepath.Dir(bin("foreign")), 0o755))
	require.NoError(t, os.Link(filepath.Join(lib, "fleetsafe"), bin("foreign")))
	require.NoError(t, os.Lchown(filepath.Dir(bin("foreign")), 65534, 65534))
	require.NoError(t, os.Lchown(bin("foreign"), 65534, 65534))

	pb = runPlay(t, lib, cachePlay(t, f.LayoutFile, []string{dir("kept"), dir("old"), dir("link"), dir("foreign")}, map[string]bool{dir("foreign"): true}))
	require.NoError(t, pb.Err, pb.Output)
	require.Equal(t, keptInode, inode(t, bin("kept")), "a cached, intact binary was copied again")
	require.NoFileExists(t, mark, "the tampered binary ran")
	require.Equal(t, sum, sha256File(t, bin("old")), "the tampered binary was not replaced")
	fi, err := os.Lstat(bin("link"))
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular(), "the link was left in place: %v", fi.Mode())
	msg, err := os.ReadFile(dir("foreign") + ".msg")
	require.NoError(t, err)
	require.Contains(t, string(msg), "belongs to another user")
	require.Contains(t, string(msg), filepath.Dir(bin("foreign")))
}

// Jobs at once on an empty cache: each installs through its own temporary
// name and an atomic rename, so all of them run the real binary, and one
// whole binary is left.
func TestCache_ConcurrentJobs(t *testing.T) {
	f := fleet(t, "acme")
	lib := fleettest.BuildModules(t, "instance_info")
	sum := sha256File(t, filepath.Join(lib, "fleetsafe"))
	cache := filepath.Join(t.TempDir(), "cache")
	const jobs = 3
	play := cachePlay(t, f.LayoutFile, []string{cache, cache}, nil)
	var wg sync.WaitGroup
	results := make([]fleettest.Playbook, jobs)
	for i := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runPlay(t, lib, play)
		}()
	}
	wg.Wait()
	for i, r := range results {
		require.NoError(t, r.Err, "job %d:\n%s", i, r.Output)
	}
	entries, err := os.ReadDir(cache)
	require.NoError(t, err)
	require.Len(t, entries, 1, "one version in the cache")
	require.Equal(t, sum, sha256File(t, filepath.Join(cache, sum, "fleetsafe")))
	left, err := filepath.Glob(filepath.Join(cache, sum, ".fleetsafe.*"))
	require.NoError(t, err)
	require.Empty(t, left)
}
