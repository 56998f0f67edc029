package backupverify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fleetsafe/fleetsafe/pkg/atomicfile"
	"github.com/fleetsafe/fleetsafe/pkg/backup"
	"github.com/fleetsafe/fleetsafe/pkg/instance"
	"github.com/fleetsafe/fleetsafe/pkg/recovery"
	s3store "github.com/fleetsafe/fleetsafe/pkg/store/s3"
)

// drillState is the drill rotation of an app, kept beside the restore
// rotation (state_file with -drill before its extension): the instance
// drilled last, and the last successful drill of each instance (for the
// metric, which every run rewrites).
type drillState struct {
	Last    string           `json:"last"`
	Success map[string]int64 `json:"success"`
}

func drillStatePath(state string) string {
	ext := filepath.Ext(state)
	return strings.TrimSuffix(state, ext) + "-drill" + ext
}

func loadDrillState(path string) (*drillState, error) {
	s := &drillState{Success: map[string]int64{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("drill state %s: %w", path, err)
	}
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("drill state %s: %w (remove it to start the rotation again)", path, err)
	}
	if s.Success == nil {
		s.Success = map[string]int64{}
	}
	return s, nil
}

// next is the instance after Last in name order, the first after the end.
func (s *drillState) next(names []string) string {
	slices.Sort(names)
	for _, n := range names {
		if n > s.Last {
			return n
		}
	}
	return names[0]
}

// drill runs the full restore drill of one instance of the report, the
// next in rotation, and returns its result and the last success of every
// instance still reported (for the metrics).
func drill(ctx context.Context, l *instance.Layout, rep *backup.Report, state string, opts instance.Options, s3 s3store.Settings, now time.Time) (*recovery.DrillResult, map[string]time.Time, error) {
	path := drillStatePath(state)
	s, err := loadDrillState(path)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for _, inst := range rep.Instances {
		names = append(names, inst.Name)
	}
	success := func() map[string]time.Time {
		out := map[string]time.Time{}
		for _, n := range names {
			if t, ok := s.Success[n]; ok {
				out[n] = time.Unix(t, 0)
			}
		}
		return out
	}
	if len(names) == 0 {
		return nil, success(), nil
	}
	name := s.next(names)
	res, derr := recovery.DrillWith(ctx, l, name, opts, now, s3)
	s.Last = name
	if derr == nil && res.OK {
		s.Success[name] = now.Unix()
	}
	data, err := json.Marshal(s)
	if err != nil {
		return res, success(), err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return res, success(), fmt.Errorf("drill state %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, data, 0o640); err != nil {
		return res, success(), fmt.Errorf("drill state %s: %w", path, err)
	}
	if derr != nil {
		return res, success(), fmt.Errorf("restore drill of %s: %w", name, derr)
	}
	return res, success(), nil
}

// drillFinding says what a failed drill found, "" when it passed.
func drillFinding(res *recovery.DrillResult) string {
	if res == nil || res.OK {
		return ""
	}
	var why []string
	for _, c := range res.Components {
		if c.Status != recovery.DrillOK {
			why = append(why, fmt.Sprintf("%s: %s", c.Component, c.Reason))
		}
	}
	return fmt.Sprintf("restore drill of %s failed (%s)", res.Name, strings.Join(why, "; "))
}
