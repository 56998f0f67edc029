package ansible

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Masked replaces a no_log value wherever it appears in a result.
const Masked = "********"

// maskedParam replaces a no_log parameter's value in invocation.module_args,
// as ansible-core does.
const maskedParam = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"

// collectSecrets returns the string forms of every no_log parameter value
// found in raw, under its name or an alias, longest first so that a secret
// containing another is masked whole.
func collectSecrets(spec Spec, raw map[string]any) []string {
	var secrets []string
	for name, p := range spec.Params {
		if !p.NoLog {
			continue
		}
		for _, key := range append([]string{name}, p.Aliases...) {
			v, ok := raw[key]
			if !ok || v == nil {
				continue
			}
			secrets = appendSecret(secrets, v)
		}
	}
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	return secrets
}

func appendSecret(secrets []string, v any) []string {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			secrets = appendSecret(secrets, e)
		}
	case map[string]any:
		for _, e := range x {
			secrets = appendSecret(secrets, e)
		}
	default:
		s, err := toStr(x)
		// Ansible does not mask values of one character or booleans: they
		// would make every result unreadable.
		if err == nil && len(s) > 1 && s != "True" && s != "False" {
			secrets = append(secrets, s)
		}
	}
	return secrets
}

// mask returns v with every occurrence of a secret replaced, in strings and
// map keys, at any depth.
func mask(v any, secrets []string) any {
	if len(secrets) == 0 {
		return v
	}
	switch x := v.(type) {
	case string:
		return maskString(x, secrets)
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = maskString(e, secrets)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = mask(e, secrets)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[maskString(k, secrets)] = mask(e, secrets)
		}
		return out
	case nil, bool, int, int64, float64, json.Number:
		return x
	default:
		// Structured values (typed results, diffs) are reduced to plain JSON
		// first so that no field escapes masking.
		return mask(toPlain(x), secrets)
	}
}

func maskString(s string, secrets []string) string {
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Masked)
		}
	}
	return s
}

func maskParams(spec Spec, params Params) map[string]any {
	out := make(map[string]any, len(params))
	for k, v := range params {
		if spec.Params[k].NoLog && v != nil {
			out[k] = maskedParam
			continue
		}
		out[k] = v
	}
	return out
}

// toPlain turns any JSON-encodable value into maps, slices and scalars.
func toPlain(v any) any {
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("unencodable value: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return fmt.Sprintf("unencodable value: %v", err)
	}
	return out
}
