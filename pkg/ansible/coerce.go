package ansible

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// coerce converts v to the declared type t the way ansible-core's
// AnsibleModule does, because `-a k=v` and Jinja templating hand modules
// strings ("yes", "30", "a,b").
func coerce(t Type, v any) (any, error) {
	switch t {
	case TypeStr, "":
		return toStr(v)
	case TypePath:
		s, err := toStr(v)
		if err != nil {
			return nil, err
		}
		return expandPath(s), nil
	case TypeBool:
		return toBool(v)
	case TypeInt:
		return toInt(v)
	case TypeFloat:
		return toFloat(v)
	case TypeList:
		return toList(v)
	case TypeDict:
		return toDict(v)
	case TypeRaw:
		return v, nil
	}
	return nil, fmt.Errorf("unknown parameter type %q", t)
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "str"
	case bool:
		return "bool"
	case float64, json.Number, int, int64:
		return "number"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	}
	return fmt.Sprintf("%T", v)
}

func toStr(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		if x {
			return "True", nil
		}
		return "False", nil
	case json.Number:
		return x.String(), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	}
	// Unlike AnsibleModule, which would turn a list into "['a', 'b']" with a
	// warning, a list or dict where a string is expected is refused: a list
	// given as an instance name must never become a name.
	return "", fmt.Errorf("is of type %s and a single string is required", typeName(v))
}

func expandPath(s string) string {
	if strings.HasPrefix(s, "~/") || s == "~" {
		if home, err := os.UserHomeDir(); err == nil {
			s = home + s[1:]
		}
	}
	return os.ExpandEnv(s)
}

var (
	trueStrings  = map[string]bool{"y": true, "yes": true, "on": true, "1": true, "true": true, "t": true, "1.0": true}
	falseStrings = map[string]bool{"n": true, "no": true, "off": true, "0": true, "false": true, "f": true, "0.0": true}
)

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		s := strings.ToLower(strings.TrimSpace(x))
		if trueStrings[s] {
			return true, nil
		}
		if falseStrings[s] {
			return false, nil
		}
	case json.Number, float64, int, int64:
		f, err := toFloat(x)
		if err == nil && f == 1 {
			return true, nil
		}
		if err == nil && f == 0 {
			return false, nil
		}
	}
	return false, fmt.Errorf("cannot be converted to a bool from %s %v (use yes/no, true/false, on/off, 1/0)", typeName(v), v)
}

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		f, err := x.Float64()
		if err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x), nil
		}
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return i, nil
		}
	}
	return 0, fmt.Errorf("cannot be converted to an int from %s %v", typeName(v), v)
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f, nil
		}
	case float64:
		return x, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
			return f, nil
		}
	}
	return 0, fmt.Errorf("cannot be converted to a float from %s %v", typeName(v), v)
}

func toList(v any) ([]any, error) {
	switch x := v.(type) {
	case []any:
		return x, nil
	case string:
		if x == "" {
			return []any{}, nil
		}
		parts := strings.Split(x, ",")
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	case json.Number, float64, int, int64, bool:
		s, _ := toStr(x)
		return []any{s}, nil
	}
	return nil, fmt.Errorf("cannot be converted to a list from %s", typeName(v))
}

func toDict(v any) (map[string]any, error) {
	switch x := v.(type) {
	case map[string]any:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		if strings.HasPrefix(s, "{") {
			var m map[string]any
			dec := json.NewDecoder(strings.NewReader(s))
			dec.UseNumber()
			if err := dec.Decode(&m); err != nil {
				return nil, fmt.Errorf("is a string that is not a JSON object: %v", err)
			}
			return m, nil
		}
		m := map[string]any{}
		if s == "" {
			return m, nil
		}
		for _, field := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			k, val, ok := strings.Cut(field, "=")
			if !ok {
				return nil, fmt.Errorf("cannot be converted to a dict: %q is not key=value", field)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(val)
		}
		return m, nil
	}
	return nil, fmt.Errorf("cannot be converted to a dict from %s", typeName(v))
}
