package softdelete

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// AWX injects ids as integers and names as strings; both are recorded as
// text, and the record survives the tombstone's JSON round trip whole.
func TestParseLaunch_AWXVariables(t *testing.T) {
	l, err := ParseLaunch(map[string]any{
		"awx_user_name": "alice", "awx_user_email": "alice@example.com", "awx_job_id": float64(4711),
		"awx_job_template_name": "fleetsafe - delete one instance", "awx_workflow_job_id": json.Number("12"),
		"awx_workflow_job_name": "Delete instance", "awx_schedule_name": "", "awx_inventory_name": "fleet",
		"awx_job_launch_type": "workflow", "inventory_host": "web-a", "gone_hosts": []any{"web-old"},
	})
	require.NoError(t, err)
	assert.Equal(t, &Launch{UserName: "alice", UserEmail: "alice@example.com", JobID: "4711",
		JobTemplateName: "fleetsafe - delete one instance", WorkflowJobID: "12", WorkflowJobName: "Delete instance",
		InventoryName: "fleet", LaunchType: "workflow", InventoryHost: "web-a", GoneHosts: []string{"web-old"}}, l)
	data, err := json.Marshal(Tombstone{Launch: l})
	require.NoError(t, err)
	var back Tombstone
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, l, back.Launch)
	for _, k := range LaunchKeys {
		if k != "awx_schedule_name" {
			assert.Contains(t, string(data), `"`+k+`"`)
		}
	}
}

// Nothing given is recorded as nothing; what cannot be stored as given is
// refused with the key named, never dropped.
func TestParseLaunch_Refusals(t *testing.T) {
	l, err := ParseLaunch(nil)
	require.NoError(t, err)
	assert.Nil(t, l)
	for name, c := range map[string]struct {
		in  map[string]any
		key string
	}{
		"unknown key":         {map[string]any{"awx_user": "alice"}, "awx_user"},
		"nested value":        {map[string]any{"awx_user_name": map[string]any{"a": 1}}, "awx_user_name"},
		"gone_hosts a string": {map[string]any{"gone_hosts": "web-old"}, "gone_hosts"},
		"gone_hosts blank":    {map[string]any{"gone_hosts": []any{" "}}, "gone_hosts"},
		"gone_hosts a number": {map[string]any{"gone_hosts": []any{1}}, "gone_hosts"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseLaunch(c.in)
			var le *LaunchError
			require.True(t, errors.As(err, &le), "%v", err)
			assert.Equal(t, c.key, le.Key)
			assert.Contains(t, le.Hint(), "nothing was changed")
		})
	}
}
