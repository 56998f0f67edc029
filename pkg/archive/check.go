package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/mholt/archives"

	"github.com/fleetsafe/fleetsafe/pkg/asynchash"
	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/store"
)

// Check is the one check of an archive, shared by the soft delete's
// verification after writing (VerifyArchive) and by restore before it
// writes anything, so that "verified" means "restorable". It returns the
// manifest and the archive's sha256 (equal to its sidecar). The archive
// and its sidecar are read from the store, streaming.
func Check(ctx context.Context, st store.Store, key string) (*Manifest, string, error) {
	path := st.Location(key)
	want, err := ReadSidecar(ctx, st, key)
	if err != nil {
		return nil, "", &VerifyError{Archive: path, Msg: err.Error()}
	}
	f, err := OpenMetered(ctx, PhaseVerify, st, key)
	if err != nil {
		return nil, "", fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	// A plain archive is hashed here as it is read; an encrypted one's
	// sidecar is over its ciphertext, which the store hashes as it
	// decrypts (rawSummer).
	rs := RawSumOf(f)
	var whole io.Writer = io.Discard
	var plainSum *asynchash.Hash
	if rs == nil {
		plainSum = asynchash.New()
		whole = plainSum
	}
	var m *Manifest
	var plan *entryPlan
	seen := map[string]bool{}
	fail := func(format string, args ...any) error {
		return &VerifyError{Archive: path, Msg: fmt.Sprintf(format, args...)}
	}
	buf := make([]byte, 256<<10)
	err = Codec.Extract(ctx, io.TeeReader(f, whole), func(ctx context.Context, fi archives.FileInfo) error {
		name := fi.NameInArchive
		hdr, _ := fi.Header.(*tar.Header)
		if hdr == nil {
			return fail("entry %s: not a tar entry", name)
		}
		if m == nil {
			if name != "manifest.json" || hdr.Typeflag != tar.TypeReg {
				return fail("first entry is %q, not manifest.json", name)
			}
			rc, err := fi.Open()
			if err != nil {
				return err
			}
			defer rc.Close()
			if m, err = DecodeManifest(rc); err != nil {
				return fail("manifest.json: %v", err)
			}
			if plan, err = planManifest(m); err != nil {
				return fail("manifest.json: %v", err)
			}
			return nil
		}
		if name == "RESTORE.md" && hdr.Typeflag == tar.TypeReg && !seen[name] {
			seen[name] = true
			return nil
		}
		if err := CheckEntry(hdr); err != nil {
			return fail("%v", err)
		}
		if seen[name] {
			return fail("entry %s appears twice", name)
		}
		seen[name] = true
		if d, ok := plan.dumps[name]; ok {
			if hdr.Typeflag != tar.TypeReg {
				return fail("dump %s is not a regular file", name)
			}
			rc, err := fi.Open()
			if err != nil {
				return err
			}
			defer rc.Close()
			h := sha256.New()
			if _, err := plan.kinds[d.Component].VerifyDump(io.TeeReader(rc, h)); err != nil {
				return fail("dump %s: %v", name, err)
			}
			if _, err := io.CopyBuffer(h, rc, buf); err != nil {
				return err
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != d.SHA256 {
				return &VerifyError{Archive: path, Entry: name, Msg: fmt.Sprintf("dump %s: sha256 %s, manifest says %s", name, got, d.SHA256)}
			}
			return nil
		}
		e, ok := plan.files[name]
		if !ok {
			return fail("entry %s is not in the manifest", name)
		}
		if err := sameKind(*e, fi); err != nil {
			return fail("entry %s: %v", name, err)
		}
		if e.Type == "hardlink" {
			// planManifest checked the target is an earlier file of the
			// same component; the archive must hold it before the link.
			if !seen[e.Target()] {
				return fail("hard link %s comes before its target %s", name, e.Target())
			}
			return nil
		}
		if err := sameMeta(*e, hdr); err != nil {
			return fail("entry %s: %v", name, err)
		}
		if e.Type != "file" {
			return nil
		}
		rc, err := fi.Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		h := sha256.New()
		n, err := io.CopyBuffer(h, rc, buf)
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 || n != e.Size {
			return &VerifyError{Archive: path, Entry: name, Msg: fmt.Sprintf("file %s: sha256 %s (%d bytes), manifest says %s (%d bytes): the file changed while it was archived, or the archive is corrupted", name, got, n, e.SHA256, e.Size)}
		}
		return nil
	})
	if err == nil {
		// To its end: age authenticates its last chunk there.
		_, err = io.Copy(whole, f)
	}
	var got string
	if plainSum != nil {
		got = plainSum.Sum()
	}
	if err != nil {
		var ve *VerifyError
		if errors.As(err, &ve) {
			return nil, "", ve
		}
		return nil, "", fail("unreadable: %v", err)
	}
	digest := got
	if rs != nil {
		// An encrypted archive: its sidecar is over the ciphertext.
		raw, err := rs.RawSHA256()
		if err != nil {
			return nil, "", fail("unreadable: %v", err)
		}
		digest = raw
		if raw != want {
			// Written before the sidecar of an encrypted archive was over
			// its ciphertext, it is over the plaintext (which age
			// authenticates chunk by chunk): still sound, its tombstone
			// recorded the same digest. Only then is the plaintext hashed,
			// in a second read.
			plain, perr := plainSHA256(ctx, st, key)
			if perr != nil {
				return nil, "", fail("unreadable: %v", perr)
			}
			if plain != want {
				return nil, "", fail("sha256 %s of the encrypted archive as stored does not match its sidecar %s "+
					"(nor does the decrypted archive's, %s, as sidecars of encrypted archives written by earlier releases recorded)", raw, want, plain)
			}
			digest = plain
		}
	} else if got != want {
		return nil, "", fail("sha256 %s does not match its sidecar %s", got, want)
	}
	if m == nil {
		return nil, "", fail("empty archive")
	}
	// In the manifest's order: the first one missing is named.
	for _, e := range m.Files {
		if !seen[e.Name()] {
			return nil, "", fail("manifest entry %s is missing from the archive", e.Name())
		}
	}
	for _, d := range m.Databases {
		if !seen[d.Path] {
			return nil, "", fail("dump %s is missing from the archive", d.Path)
		}
	}
	return m, digest, nil
}

// entryPlan indexes a manifest: each file entry and dump by archive name.
type entryPlan struct {
	files map[string]*FileEntry
	dumps map[string]DumpEntry
	// kinds is each component's kind, by component name.
	kinds map[string]kind.Kind
}

// planManifest checks that a manifest describes something restore can
// write, component by component, without leaving a component: unique
// component names of known types, every file entry under its own
// component's archive path with a safe name, one top entry per component
// (a directory for dir components, one file for file components), hard
// links only to an earlier file of the same component, every dump under
// its postgresql component.
func planManifest(m *Manifest) (*entryPlan, error) {
	p := &entryPlan{files: map[string]*FileEntry{}, dumps: map[string]DumpEntry{}, kinds: map[string]kind.Kind{}}
	comps := map[string]ManifestComponent{}
	for _, c := range m.Components {
		if c.Name == "" || strings.ContainsAny(c.Name, "/\x00") || c.Name == "." || c.Name == ".." {
			return nil, fmt.Errorf("component name %q is not a safe name", c.Name)
		}
		if _, dup := comps[c.Name]; dup {
			return nil, fmt.Errorf("component %s appears twice", c.Name)
		}
		k, known := kind.Lookup(c.Type)
		if !known {
			return nil, fmt.Errorf("component %s: unknown type %q", c.Name, c.Type)
		}
		p.kinds[c.Name] = k
		want := ""
		if c.Present {
			switch k.Shape() {
			case kind.TreeDir, kind.TreeFile:
				want = "components/" + c.Name
			case kind.Dump:
				want = "components/" + c.Name + k.DumpExt()
			}
		}
		if c.ArchivePath != want {
			return nil, fmt.Errorf("component %s: archive_path %q, expected %q", c.Name, c.ArchivePath, want)
		}
		comps[c.Name] = c
	}
	tops := map[string]int{}
	for i := range m.Files {
		e := &m.Files[i]
		name := e.Name()
		if why := CheckName(name); why != "" {
			return nil, fmt.Errorf("files[%d] %q: %s", i, name, why)
		}
		c, ok := comps[e.Component]
		if !ok || c.ArchivePath == "" || !ShapeOf(c.Type).IsTree() {
			return nil, fmt.Errorf("files[%d] %q: component %q has no files in this archive", i, name, e.Component)
		}
		prefix := c.ArchivePath
		rest, under := strings.CutPrefix(name, prefix+"/")
		switch {
		case name == prefix:
			if ShapeOf(c.Type) != kind.TreeDir || e.Type != "dir" {
				return nil, fmt.Errorf("files[%d] %q: the top of component %s must be a directory", i, name, c.Name)
			}
			tops[c.Name]++
		case !under || rest == "":
			return nil, fmt.Errorf("files[%d] %q: not under %s, the archive path of its component %s", i, name, prefix, c.Name)
		case ShapeOf(c.Type) == kind.TreeFile:
			if strings.Contains(rest, "/") || e.Type != "file" {
				return nil, fmt.Errorf("files[%d] %q: file component %s holds exactly one regular file", i, name, c.Name)
			}
			tops[c.Name]++
		default:
			// A complete tree, parents first: nothing is ever written
			// through a link or under a file.
			parent := path.Dir(name)
			if d, ok := p.files[parent]; !ok || d.Type != "dir" || d.Component != e.Component {
				return nil, fmt.Errorf("files[%d] %q: its parent %q is not an earlier directory entry of component %s", i, name, parent, c.Name)
			}
		}
		if _, dup := p.files[name]; dup {
			return nil, fmt.Errorf("files[%d] %q appears twice", i, name)
		}
		switch e.Type {
		case "dir", "file", "symlink":
		case "hardlink":
			t, ok := p.files[e.Target()]
			if !ok || t.Type != "file" || t.Component != e.Component {
				return nil, fmt.Errorf("files[%d] %q: hard link to %q, which is not an earlier regular file of component %s", i, name, e.Target(), e.Component)
			}
		default:
			return nil, fmt.Errorf("files[%d] %q: unknown type %q", i, name, e.Type)
		}
		p.files[name] = e
	}
	for _, c := range m.Components {
		if ShapeOf(c.Type).IsTree() && c.ArchivePath != "" && tops[c.Name] != 1 {
			return nil, fmt.Errorf("component %s: %d top entries under %s, expected one", c.Name, tops[c.Name], c.ArchivePath)
		}
	}
	for _, d := range m.Databases {
		c, ok := comps[d.Component]
		if !ok || ShapeOf(c.Type) != kind.Dump || c.ArchivePath != d.Path {
			return nil, fmt.Errorf("dump %q: not the archive path of a postgresql component", d.Path)
		}
		if _, dup := p.dumps[d.Path]; dup {
			return nil, fmt.Errorf("dump %q appears twice", d.Path)
		}
		if _, clash := p.files[d.Path]; clash {
			return nil, fmt.Errorf("dump %q is also a file entry", d.Path)
		}
		p.dumps[d.Path] = d
	}
	for _, c := range m.Components {
		if ShapeOf(c.Type) == kind.Dump && c.ArchivePath != "" {
			if _, ok := p.dumps[c.ArchivePath]; !ok {
				return nil, fmt.Errorf("component %s: no dump %s in the manifest", c.Name, c.ArchivePath)
			}
		}
	}
	return p, nil
}

// sameMeta checks an entry's header against the manifest: what restore
// will apply is what the manifest promises.
func sameMeta(e FileEntry, hdr *tar.Header) error {
	if hdr.Uid != e.UID || hdr.Gid != e.GID {
		return fmt.Errorf("owner %d:%d in the archive, the manifest says %d:%d", hdr.Uid, hdr.Gid, e.UID, e.GID)
	}
	if !hdr.ModTime.Equal(e.MTime) {
		return fmt.Errorf("mtime %s in the archive, the manifest says %s", hdr.ModTime.UTC(), e.MTime.UTC())
	}
	if e.Type == "symlink" {
		return nil // a link has no mode of its own
	}
	got := hdr.FileInfo().Mode()
	got = got.Perm() | got&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
	if uint32(got) != e.Mode {
		return fmt.Errorf("mode %v in the archive, the manifest says %v", got, fs.FileMode(e.Mode))
	}
	if e.Type == "file" && hdr.Size != e.Size {
		return fmt.Errorf("size %d in the archive, the manifest says %d", hdr.Size, e.Size)
	}
	return nil
}

// sameKind checks that an entry is what the manifest says it is.
func sameKind(e FileEntry, fi archives.FileInfo) error {
	hdr, _ := fi.Header.(*tar.Header)
	if hdr == nil {
		return errors.New("not a tar entry")
	}
	want := map[string]byte{"file": tar.TypeReg, "dir": tar.TypeDir, "symlink": tar.TypeSymlink, "hardlink": tar.TypeLink}[e.Type]
	if hdr.Typeflag != want {
		return fmt.Errorf("type %q in the archive, the manifest says %s", hdr.Typeflag, e.Type)
	}
	if (e.Type == "symlink" || e.Type == "hardlink") && hdr.Linkname != e.Target() {
		return fmt.Errorf("links to %q, the manifest says %q", hdr.Linkname, e.Target())
	}
	return nil
}

// rawSummer is an archive read decrypted (pkg/store/encrypted) whose
// stored bytes, the ciphertext, are hashed as they are read.
type rawSummer interface{ RawSHA256() (string, error) }

// RawSumOf finds the rawSummer under r's wrappers, nil when r reads a
// plain archive.
func RawSumOf(r io.Reader) rawSummer {
	for {
		if s, ok := r.(rawSummer); ok {
			return s
		}
		u, ok := r.(interface{ Unwrap() io.ReadCloser })
		if !ok {
			return nil
		}
		r = u.Unwrap()
	}
}

// plainSHA256 reads the archive under key decrypted, to its end, and
// returns the sha256 of the plaintext.
func plainSHA256(ctx context.Context, st store.Store, key string) (string, error) {
	rc, err := st.Open(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
