package ansible

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// Request is what a module's logic receives: validated parameters and the
// play's modes.
type Request struct {
	Params    Params
	CheckMode bool
	DiffMode  bool
	// Internal holds the _ansible_* keys ansible-core passed, unknown ones
	// included, without their prefix.
	Internal map[string]any
}

// Diff is a before/after pair shown by `ansible-playbook --diff`. Both
// sides are text, one item a line: Ansible's diff callback fails on a list,
// and renders any other structure its own way.
type Diff struct {
	Before       string `json:"before"`
	After        string `json:"after"`
	BeforeHeader string `json:"before_header,omitempty"`
	AfterHeader  string `json:"after_header,omitempty"`
}

// Result is a module's outcome. Data holds the module's own return values;
// they are merged at the top level of the JSON object.
type Result struct {
	Changed  bool
	Failed   bool
	Msg      string
	Warnings []string
	Diff     *Diff
	Data     map[string]any
}

// Set stores a return value and returns r for chaining.
func (r *Result) Set(key string, v any) *Result {
	if r.Data == nil {
		r.Data = map[string]any{}
	}
	r.Data[key] = v
	return r
}

// Warn appends a warning shown by ansible-playbook.
func (r *Result) Warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// Hinter is implemented by errors that carry advice for the operator.
type Hinter interface{ Hint() string }

// Func is a module's logic. A returned error fails the task; its message,
// followed by its hint when it has one, becomes msg. A Result may be
// returned together with an error to keep its return values.
type Func func(ctx context.Context, req *Request) (*Result, error)

// Module binds a name, a spec and logic.
type Module struct {
	Name string
	Spec Spec
	Run  Func
}

// Call validates raw arguments (module parameters and _ansible_* keys mixed,
// as in the args file) and runs the module's logic, returning the JSON-ready
// result. Tests use it to drive a module without a process.
func (m Module) Call(ctx context.Context, raw map[string]any) map[string]any {
	out, _ := m.call(ctx, raw)
	return out
}

func (m Module) call(ctx context.Context, raw map[string]any) (out map[string]any, failed bool) {
	secrets := collectSecrets(m.Spec, raw)
	defer func() {
		if p := recover(); p != nil {
			out = map[string]any{
				"failed":    true,
				"changed":   false,
				"msg":       fmt.Sprintf("module %s panicked: %v", m.Name, p),
				"exception": string(debug.Stack()),
			}
		}
		out = mask(out, secrets).(map[string]any)
		failed, _ = out["failed"].(bool)
	}()

	req := &Request{Internal: map[string]any{}}
	args := map[string]any{}
	for k, v := range raw {
		if name, ok := strings.CutPrefix(k, "_ansible_"); ok {
			req.Internal[name] = v
			continue
		}
		args[k] = v
	}
	req.CheckMode, _ = toBool(orFalse(req.Internal["check_mode"]))
	req.DiffMode, _ = toBool(orFalse(req.Internal["diff"]))

	params, err := Validate(m.Name, m.Spec, args)
	if err != nil {
		return map[string]any{"failed": true, "changed": false, "msg": err.Error()}, true
	}
	req.Params = params
	res, err := m.Run(ctx, req)
	if res == nil {
		res = &Result{}
	}
	if err != nil {
		res.Failed = true
		res.Msg = errorMessage(err)
	}
	out = res.toMap()
	out["invocation"] = map[string]any{"module_args": maskParams(m.Spec, params)}
	return out, res.Failed
}

func orFalse(v any) any {
	if v == nil {
		return false
	}
	return v
}

func errorMessage(err error) string {
	msg := err.Error()
	var h Hinter
	if errors.As(err, &h) {
		if hint := h.Hint(); hint != "" && !strings.Contains(msg, hint) {
			msg += ". " + hint
		}
	}
	return msg
}

func (r *Result) toMap() map[string]any {
	out := make(map[string]any, len(r.Data)+5)
	for k, v := range r.Data {
		out[k] = v
	}
	out["changed"] = r.Changed
	out["failed"] = r.Failed
	if r.Msg != "" {
		out["msg"] = r.Msg
	}
	if len(r.Warnings) > 0 {
		out["warnings"] = r.Warnings
	}
	if r.Diff != nil {
		out["diff"] = r.Diff
	}
	return out
}

// Execute is the whole protocol for one process: args holds os.Args, the
// result is written to w as one JSON object, and the returned code is the
// process's exit status (non-zero when the task failed).
func Execute(ctx context.Context, m Module, args []string, w io.Writer) int {
	return m.execute(ctx, args, os.Stdin, w)
}

func (m Module) execute(ctx context.Context, args []string, stdin io.Reader, w io.Writer) int {
	if os.Getenv("GOGC") == "" {
		// Modules hold per-file metadata of large instances; collecting
		// at 50% growth keeps their peak memory near a third lower for a
		// few percent of time.
		debug.SetGCPercent(50)
	}
	out, failed := m.load(ctx, args, stdin)
	return writeResult(w, m.Name, out, failed)
}

// writeResult writes out as one JSON line and returns the exit status.
func writeResult(w io.Writer, name string, out map[string]any, failed bool) int {
	buf, err := json.Marshal(out)
	if err != nil {
		buf, _ = json.Marshal(map[string]any{"failed": true, "changed": false,
			"msg": fmt.Sprintf("module %s: encode result: %v", name, err)})
		failed = true
	}
	buf = append(buf, '\n')
	_, _ = w.Write(buf)
	if failed {
		return 1
	}
	return 0
}

// writeFailure writes a failed result with msg and returns the exit status.
func writeFailure(w io.Writer, msg string) int {
	return writeResult(w, "", map[string]any{"failed": true, "changed": false, "msg": msg}, true)
}

func (m Module) load(ctx context.Context, args []string, stdin io.Reader) (map[string]any, bool) {
	fail := func(format string, a ...any) (map[string]any, bool) {
		return map[string]any{"failed": true, "changed": false, "msg": fmt.Sprintf(format, a...)}, true
	}
	if len(args) < 2 {
		return fail("module %s: expected the path of an args file as the only argument; it is meant to be run by ansible-core (a person runs `fleetsafe --help`)", m.Name)
	}
	data, err := readArgsFile(args[1], stdin)
	if err != nil {
		return fail("module %s: read args file: %v", m.Name, err)
	}
	raw, err := ParseArgs(data)
	if err != nil {
		return fail("module %s: args file %s: %v", m.Name, args[1], err)
	}
	return m.call(ctx, raw)
}

// ParseArgs decodes the JSON args file ansible-core writes for binary
// modules. Numbers stay json.Number so that large integers keep their value.
func ParseArgs(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if raw == nil {
		return nil, errors.New("not a JSON object: null")
	}
	if dec.More() {
		return nil, errors.New("not a JSON object: trailing data after the object")
	}
	// Older ansible-core versions wrapped the arguments as ANSIBLE_MODULE_ARGS.
	if inner, ok := raw["ANSIBLE_MODULE_ARGS"].(map[string]any); ok && len(raw) == 1 {
		raw = inner
	}
	return raw, nil
}

// Message is the text a failed task shows for err: its message, followed
// by its hint when it has one.
func Message(err error) string { return errorMessage(err) }
