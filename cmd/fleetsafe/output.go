package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// report writes a result: the module's JSON object, as Ansible receives
// it, with --json; else a status line (ok, changed or FAILED, and msg), the
// return values as YAML, the diff, and warnings on stderr.
func report(stdout, stderr io.Writer, out map[string]any, asJSON bool) error {
	if asJSON {
		buf, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
		_, err = fmt.Fprintf(stdout, "%s\n", buf)
		return err
	}
	plain, err := plainValue(out)
	if err != nil {
		return err
	}
	res := plain.(map[string]any)
	fmt.Fprintln(stdout, statusLine(res))
	if ws, ok := res["warnings"].([]any); ok {
		for _, w := range ws {
			fmt.Fprintf(stderr, "warning: %v\n", w)
		}
	}
	diff := res["diff"]
	for _, k := range []string{"changed", "failed", "msg", "warnings", "diff", "invocation"} {
		delete(res, k)
	}
	if len(res) > 0 {
		if err := writeYAML(stdout, res); err != nil {
			return err
		}
	}
	if diff != nil {
		fmt.Fprintln(stdout, "diff:")
		return writeYAML(stdout, diff)
	}
	return nil
}

// statusLine is the first line of a result for people: ok, changed or
// FAILED (failed wins over changed), then ": msg" when msg is set.
func statusLine(res map[string]any) string {
	status := "ok"
	if b, _ := res["changed"].(bool); b {
		status = "changed"
	}
	if b, _ := res["failed"].(bool); b {
		status = "FAILED"
	}
	if msg, _ := res["msg"].(string); msg != "" {
		return status + ": " + msg
	}
	return status
}

func writeYAML(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	for _, l := range strings.SplitAfter(strings.TrimRight(buf.String(), "\n"), "\n") {
		if _, err := io.WriteString(w, "  "+l); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// plainValue returns v as JSON sees it (json tags, not Go field names):
// maps, lists, strings, booleans, and numbers as int64 where they are
// whole, so that YAML shows sizes as they are.
func plainValue(v any) (any, error) {
	buf, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("decode result: %w", err)
	}
	return numbers(out), nil
}

func numbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = numbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = numbers(e)
		}
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	}
	return v
}
