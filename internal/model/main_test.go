package model

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/fleetsafe/fleetsafe/internal/fleettest"
	"github.com/fleetsafe/fleetsafe/pkg/mariadb"
	"github.com/fleetsafe/fleetsafe/pkg/pgdump"
)

// How long the machines run. In an ordinary `go test` run (make test) the
// tests of this package share defaultBudget of wall-clock time
// (FLEETSAFE_MODEL_BUDGET overrides it), each its share: every test runs
// sequences of random seeds, one after the other, and starts no new one
// once its share is spent (at least minMachineChecks sequences of a state
// machine, one of a directed property). FLEETSAFE_SOAK=10m shares that
// time the same way and repeats the sequences until it has passed (make
// soak). The rapid flags override both: -rapid.checks runs that many
// sequences, -rapid.seed replays one, -rapid.steps sets their length.
const (
	defaultBudget    = 60 * time.Second
	minMachineChecks = 2
	machineSteps     = 20
)

// Shares of the budget; they add up to 1.
const (
	shareFleet        = 0.36
	shareCrashRestore = 0.24
	shareDirected     = 0.06 // each of the six directed properties that run by default
	shareLayout       = 0.01 // each of the two layout properties
	sharePlanted      = 0.02 // TestModel_PlantedMySQLQuarantine
)

func TestMain(m *testing.M) {
	runHelper()
	flag.Parse()
	set := userFlags()
	// Fail files would land in the source tree; the seed printed on
	// failure replays the same sequence.
	if !set["rapid.nofailfile"] {
		_ = flag.Set("rapid.nofailfile", "true")
	}
	dropPools(pgdump.Conn{}, false)
	code := m.Run()
	dropPools(pgdump.Conn{}, true)
	removeModules()
	printTimings()
	os.Exit(code)
}

// runMachine runs a state machine for its share of the budget.
func runMachine(t *testing.T, share float64, prop func(*rapid.T)) {
	runChecks(t, minMachineChecks, 1, share, prop)
}

// runProperty runs a cheap property (no server, no files) in batches of
// 100 cases for its share of the budget, at least one batch.
func runProperty(t *testing.T, share float64, prop func(*rapid.T)) {
	runChecks(t, 1, 100, share, prop)
}

// runDirected runs a directed property (no state machine) for its share of
// the budget, at least minChecks times (1 when 0).
func runDirected(t *testing.T, minChecks int, share float64, prop func(*rapid.T)) {
	runChecks(t, max(minChecks, 1), 1, share, prop)
}

// userFlags are the flags given on the command line, read once before any
// test sets rapid's flags itself (flag.Visit would count those too, and
// every test after the first would run rapid's default of 100 checks).
var userFlags = sync.OnceValue(func() map[string]bool {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
})

func runChecks(t *testing.T, minChecks, batch int, share float64, prop func(*rapid.T)) {
	set := userFlags()
	if !set["rapid.steps"] {
		old := flag.Lookup("rapid.steps").Value.String()
		_ = flag.Set("rapid.steps", strconv.Itoa(machineSteps))
		defer flag.Set("rapid.steps", old)
	}
	if set["rapid.checks"] || set["rapid.seed"] {
		rapid.Check(t, prop)
		return
	}
	soak := os.Getenv("FLEETSAFE_SOAK")
	total := defaultBudget
	if v := os.Getenv("FLEETSAFE_MODEL_BUDGET"); v != "" && soak == "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("FLEETSAFE_MODEL_BUDGET=%q: %v", v, err)
		}
		total = d
	}
	if soak != "" {
		d, err := time.ParseDuration(soak)
		if err != nil {
			t.Fatalf("FLEETSAFE_SOAK=%q: %v", soak, err)
		}
		total = d
		// make soak runs with -timeout 0: a hang still ends the run,
		// with every goroutine's stack, as -timeout would.
		watchdog := time.AfterFunc(time.Duration(float64(d)*share)+15*time.Minute, func() {
			panic(fmt.Sprintf("FLEETSAFE_SOAK=%v: %s still running 15 minutes after its share: a hang", d, t.Name()))
		})
		defer watchdog.Stop()
	}
	budget := time.Duration(float64(total) * share)
	// One sequence (a random seed) at a time, until the budget is spent:
	// on a loaded machine a step can take seconds, and make test must
	// stay bounded.
	old := flag.Lookup("rapid.checks").Value.String()
	_ = flag.Set("rapid.checks", strconv.Itoa(batch))
	defer flag.Set("rapid.checks", old)
	start := time.Now()
	n := 0
	for ; n < minChecks || time.Since(start) < budget; n++ {
		if t.Failed() {
			break
		}
		rapid.Check(t, prop)
	}
	t.Logf("%d sequences in %v (budget %v)", n*batch, time.Since(start).Round(time.Millisecond), budget)
}

// newMachine generates a fleet of 2 to 5 instances, most of them complete,
// some partial, and a model that knows them.
func newMachine(t *rapid.T, env *machineEnv) *machine {
	defer timed("setup fleet", time.Now())
	f := newFleet(t, env.pg, env.my)
	m := &machine{ctx: context.Background(), f: f, archives: filepath.Join(f.root, "archives"),
		modules: env.modules, names: candidateNames, model: map[string]*state{}, lastDeletion: map[string]time.Time{}}
	mountArchives(t, m)
	live := rapid.SliceOfNDistinct(rapid.SampledFrom(candidateNames), 2, 5, rapid.ID[string]).Draw(t, "instances")
	for _, n := range candidateNames {
		m.model[n] = &state{digest: map[string]string{}}
	}
	for _, n := range live {
		comps := componentOrder
		if rapid.IntRange(0, 4).Draw(t, "partial") == 0 {
			comps = rapid.SliceOfNDistinct(rapid.SampledFrom(componentOrder), 1, 3, rapid.ID[string]).Draw(t, "components of "+n)
		}
		f.create(m.ctx, t, n, comps)
		m.model[n].digest = m.observe(t, n)
	}
	return m
}

type machineEnv struct {
	pg      pgdump.Conn
	my      mariadb.Conn
	modules string
}

// TestModel_Fleet is the state machine: delete, restore, purge, modify
// and discover through the library, the real instance_soft_delete binary
// killed at a random instant then re-run, two deletions at once, and a
// deletion onto a nearly full archive filesystem; after every step each
// instance, target or not, is exactly where the model says.
func TestModel_Fleet(t *testing.T) {
	env := &machineEnv{pg: fleettest.RequirePG(t), my: fleettest.RequireMariaDB(t), modules: modules(t, "instance_soft_delete")}
	runMachine(t, shareFleet, func(t *rapid.T) {
		m := newMachine(t, env)
		t.Repeat(timedActions(fleetActions(m)))
	})
}

// TestModel_CrashRestore is the same machine with one more action: the
// real instance_restore binary killed at a random instant, then re-run.
// Expected to FAIL until restores stage beside the destination and rename
// into place (invariant 10): today a component extracted in part is
// present, so the re-run skips it and it stays incomplete.
func TestModel_CrashRestore(t *testing.T) {
	env := &machineEnv{pg: fleettest.RequirePG(t), my: fleettest.RequireMariaDB(t), modules: modules(t, "instance_soft_delete", "instance_restore")}
	runMachine(t, shareCrashRestore, func(t *rapid.T) {
		m := newMachine(t, env)
		actions := fleetActions(m)
		actions["crashRestore"] = m.CrashRestore
		actions["crashRestore2"] = m.CrashRestore // twice as likely as the others
		t.Repeat(timedActions(actions))
	})
}

func fleetActions(m *machine) map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"":            m.Check,
		"discover":    m.Discover,
		"modify":      m.Modify,
		"delete":      m.Delete,
		"restore":     m.Restore,
		"purge":       m.Purge,
		"crashDelete": m.CrashDelete,
		"concurrent":  m.ConcurrentDelete,
		"crashPurge":  m.CrashPurge,
		"mixed":       m.ConcurrentMixed,
		"fullRestore": m.FullDiskRestore,
		"fullDisk":    m.FullDisk,
		"plant":       m.PlantInQuarantine,
		"squat":       m.SquatDatabase,
	}
}
