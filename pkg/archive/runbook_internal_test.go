package archive

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"testing/quick"
)

// Every string without NUL (which no path or argument can hold) survives
// shellQuote and bash as exactly one word, byte for byte.
func TestShellQuote_OneWordExactly(t *testing.T) {
	check := func(raw []byte) bool {
		s := strings.ReplaceAll(string(raw), "\x00", "")
		for _, v := range []string{s, "\n" + s + "'`$(x)`\\", "```\n" + s} {
			out, err := exec.Command("/bin/bash", "-c", "printf '%s\\0' "+shellQuote(v)+" end").Output()
			if err != nil || !bytes.Equal(out, []byte(v+"\x00end\x00")) {
				t.Logf("%q quoted as %s gave %q (%v)", v, shellQuote(v), out, err)
				return false
			}
			if strings.Contains(shellQuote(v), "\n") {
				t.Logf("%q quoted over two lines", v)
				return false
			}
		}
		return true
	}
	if err := quick.Check(check, &quick.Config{MaxCount: 60}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "'", "\\", "$'x'", "a\x7fb", "\xff\xfe", "é\n"} {
		if !check([]byte(s)) {
			t.Fatalf("%q", s)
		}
	}
}

// For any manifest (components of every type, present or not, with odd
// names and paths), RESTORE.md has exactly one block to check the archive,
// one per component it can put back and one per present unit; every
// block is valid bash; no command has an empty argument; and free text
// never opens a block.
func TestRunbook_AnyManifest(t *testing.T) {
	types := []string{"dir", "file", "postgresql", "systemd_unit", "mysql"}
	check := func(seed []byte, reason, odd string) bool {
		m := &Manifest{ID: "20260101T000000Z-" + odd, Instance: odd, App: "app", Host: odd, Reason: reason + "\n```sh\nx\n```"}
		want := 1
		for i, s := range seed {
			c := ManifestComponent{Name: "c" + string(rune('a'+i%26)), Type: types[int(s)%len(types)], Present: s&0x10 != 0}
			c.Locator = "/srv/" + odd + "/" + c.Name
			if c.Type == "postgresql" || c.Type == "mysql" || c.Type == "systemd_unit" {
				c.Locator = odd + c.Name
			}
			if c.Type == "systemd_unit" && s&0x20 != 0 {
				c.Locator = ""
			}
			if c.Present && c.Type != "systemd_unit" && s&0x40 != 0 {
				c.ArchivePath = "components/" + c.Name
			}
			switch {
			case !c.Present:
			case c.Type == "systemd_unit" && c.Locator != "":
				want++
			case c.ArchivePath != "" && c.Type != "systemd_unit":
				want++
			}
			m.Components = append(m.Components, c)
		}
		md := string(Runbook(m, "/var/archives/"+odd+"/a.tar.zst"))
		blocks := fencedBlocks(md)
		if len(blocks) != want {
			t.Logf("%d blocks, want %d:\n%s", len(blocks), want, md)
			return false
		}
		for _, b := range blocks {
			if out, err := exec.Command("/bin/bash", "-n", "-c", b).CombinedOutput(); err != nil {
				t.Logf("bash -n: %v %s\n%s", err, out, b)
				return false
			}
			if strings.Contains(b, " '' ") || strings.Contains(b, " ''\n") || strings.Contains(b, " \n") || strings.Contains(b, "/path/to/") {
				t.Logf("empty argument or made-up path:\n%s", b)
				return false
			}
		}
		return true
	}
	if err := quick.Check(check, &quick.Config{MaxCount: 40}); err != nil {
		t.Fatal(err)
	}
}

func fencedBlocks(md string) []string {
	var blocks []string
	in := false
	var cur strings.Builder
	for _, line := range strings.SplitAfter(md, "\n") {
		switch strings.TrimSpace(line) {
		case "```sh":
			in = true
			cur.Reset()
		case "```":
			if in {
				blocks = append(blocks, cur.String())
			}
			in = false
		default:
			if in {
				cur.WriteString(line)
			}
		}
	}
	return blocks
}
