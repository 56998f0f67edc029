package softdelete

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Launch records who and what launched the job that asked for a deletion:
// AWX's injected variables (awx_user_name, awx_job_template_name, …), the
// inventory host the job addressed (beside the OS hostname in Host), and
// the hosts the operator declared decommissioned, which the fleet-wide
// count did not cover. Every field is optional: a deletion from the command
// line has none of AWX's.
type Launch struct {
	UserName        string   `json:"awx_user_name,omitempty"`
	UserEmail       string   `json:"awx_user_email,omitempty"`
	JobID           string   `json:"awx_job_id,omitempty"`
	JobTemplateName string   `json:"awx_job_template_name,omitempty"`
	WorkflowJobID   string   `json:"awx_workflow_job_id,omitempty"`
	WorkflowJobName string   `json:"awx_workflow_job_name,omitempty"`
	ScheduleName    string   `json:"awx_schedule_name,omitempty"`
	InventoryName   string   `json:"awx_inventory_name,omitempty"`
	LaunchType      string   `json:"awx_job_launch_type,omitempty"`
	InventoryHost   string   `json:"inventory_host,omitempty"`
	GoneHosts       []string `json:"gone_hosts,omitempty"`
}

// LaunchKeys are the keys ParseLaunch accepts, in the order of Launch.
var LaunchKeys = []string{"awx_user_name", "awx_user_email", "awx_job_id", "awx_job_template_name",
	"awx_workflow_job_id", "awx_workflow_job_name", "awx_schedule_name", "awx_inventory_name",
	"awx_job_launch_type", "inventory_host", "gone_hosts"}

// LaunchError is a launch record that cannot be stored as given.
type LaunchError struct {
	Key    string
	Value  any
	Reason string
}

func (e *LaunchError) Error() string {
	return fmt.Sprintf("launch.%s (%v): %s", e.Key, e.Value, e.Reason)
}

// Hint says what to do.
func (e *LaunchError) Hint() string {
	return "pass launch as a dict of " + strings.Join(LaunchKeys, ", ") + "; nothing was changed"
}

// ParseLaunch reads a launch record from a module parameter. Ids may come
// as numbers (AWX injects awx_job_id as an integer); an unknown key, a
// nested value or a non-list gone_hosts is refused, so that nothing the
// caller meant to record is dropped. nil or empty gives nil.
func ParseLaunch(m map[string]any) (*Launch, error) {
	if len(m) == 0 {
		return nil, nil
	}
	l := &Launch{}
	fields := map[string]*string{
		"awx_user_name": &l.UserName, "awx_user_email": &l.UserEmail, "awx_job_id": &l.JobID,
		"awx_job_template_name": &l.JobTemplateName, "awx_workflow_job_id": &l.WorkflowJobID,
		"awx_workflow_job_name": &l.WorkflowJobName, "awx_schedule_name": &l.ScheduleName,
		"awx_inventory_name": &l.InventoryName, "awx_job_launch_type": &l.LaunchType,
		"inventory_host": &l.InventoryHost,
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		if k == "gone_hosts" {
			hosts, err := launchList(v)
			if err != nil {
				return nil, &LaunchError{Key: k, Value: v, Reason: err.Error()}
			}
			l.GoneHosts = hosts
			continue
		}
		dst, ok := fields[k]
		if !ok {
			return nil, &LaunchError{Key: k, Value: v, Reason: "unknown key"}
		}
		s, err := launchScalar(v)
		if err != nil {
			return nil, &LaunchError{Key: k, Value: v, Reason: err.Error()}
		}
		*dst = s
	}
	return l, nil
}

func launchScalar(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case json.Number:
		return x.String(), nil
	}
	return "", fmt.Errorf("want a string or a number, got %T", v)
}

func launchList(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []string:
		return x, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok || strings.TrimSpace(s) == "" {
				return nil, fmt.Errorf("element %d (%v) is not a host name", i, e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a list of host names, got %T", v)
}
