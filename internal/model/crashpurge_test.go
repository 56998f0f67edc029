package model

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
	"github.com/fleetsafe/fleetsafe/pkg/softdelete"
)

// The purge helper: this test binary, run again with FLEETSAFE_MODEL_HELPER
// set, runs one softdelete.Purge (the request as JSON in the file named by
// FLEETSAFE_MODEL_HELPER_ARGS) and exits, so that CrashPurge can kill a
// purge with SIGKILL at a random instant. The instance_purge module cannot
// serve: its clock cannot be moved forward past a retention.
const helperEnv = "FLEETSAFE_MODEL_HELPER"

// purgeArgs is what the helper needs of a softdelete.PurgeRequest.
type purgeArgs struct {
	LayoutFile       string
	ArchiveDir, Name string
	KeepLast         int
	Now              time.Time
	PG               pgdump.Conn
}

// runHelper runs the helper when this process is one; it never returns then.
func runHelper() {
	if os.Getenv(helperEnv) != "purge" {
		return
	}
	data, err := os.ReadFile(os.Getenv(helperEnv + "_ARGS"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var h purgeArgs
	if err := json.Unmarshal(data, &h); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	layout, err := instance.LoadLayoutFile(h.LayoutFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	req := softdelete.PurgeRequest{Layouts: []*instance.Layout{layout}, ArchiveDir: h.ArchiveDir, Name: h.Name, KeepLast: h.KeepLast, Now: h.Now, PG: h.PG}
	if _, err := softdelete.Purge(context.Background(), req); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// CrashPurge runs a purge in a separate process, kills it with SIGKILL at
// a random instant, then runs the same purge (same clock) to completion:
// the end state must be the one of an uninterrupted purge (Check compares
// it after the step), and the re-run reports nothing the model keeps.
func (m *machine) CrashPurge(t *rapid.T) {
	req := m.drawPurge(t)
	if req.KeepLast < 1 && req.Name == "" {
		req.KeepLast = 1 // the refusal is Purge's business
	}
	kill := killInstant(t, "purge")
	data, err := json.Marshal(purgeArgs{LayoutFile: m.f.layoutFile, ArchiveDir: req.ArchiveDir, Name: req.Name, KeepLast: req.KeepLast, Now: req.Now, PG: req.PG})
	if err != nil {
		t.Fatal(err)
	}
	args, err := os.CreateTemp(m.f.root, "purge-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(args.Name())
	if _, err := args.Write(data); err != nil {
		t.Fatal(err)
	}
	args.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=purge", helperEnv+"_ARGS="+args.Name())
	out := &safeBuffer{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	timer := time.AfterFunc(kill, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
	werr := cmd.Wait()
	if timer.Stop() {
		runTimes.add("purge", time.Since(started))
		timed("SIGKILL too late: purge", time.Now())
		if werr != nil {
			t.Fatalf("purge %+v in a separate process: %v: %s", req, werr, out.Bytes())
		}
	} else {
		timed("SIGKILL landed: purge", time.Now())
	}
	purged, err := softdelete.Purge(m.ctx, req)
	m.expectPurge(t, req, purged, err, true)
}
