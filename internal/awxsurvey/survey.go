// Package awxsurvey applies AWX's survey rules to a survey spec, so that a
// test can tell, without an AWX, whether AWX would accept it.
//
// The rules are ported from AWX's source (ansible/awx, commit
// e21dd0a0933fd544d1fe2513c54fe41203775eb5):
//
//   - ValidateSpec is JobTemplateSurveySpec._validate_spec_data in
//     awx/api/views/__init__.py: what AWX checks when a survey is saved
//     (POST .../survey_spec/, which awx.awx.job_template calls). A spec it
//     rejects makes the saving task fail.
//   - ValidateAnswer is SurveyJobTemplateMixin._survey_element_validation
//     in awx/main/models/mixins.py: what AWX checks for each answer at
//     launch, and for each default when it fills in the defaults
//     (_update_unified_job_kwargs): a default that fails it is dropped
//     silently, so a scheduled launch, which answers nothing, then misses
//     the variable.
//   - The question types are SURVEY_TYPE_MAPPING in awx/main/constants.py.
//
// Python's quirks are kept where they decide the outcome: a JSON boolean is
// an int to isinstance (so true passes as an integer default or a min), and
// "default in choices" is a substring test when choices is a string.
package awxsurvey

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Spec is a decoded survey spec, with numbers kept as json.Number so that
// integers and floats stay apart as they do in Python.
type Spec map[string]any

// Decode reads a survey spec as AWX's JSON parser would.
func Decode(data []byte) (Spec, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var s Spec
	if err := d.Decode(&s); err != nil {
		return nil, fmt.Errorf("survey spec: %w", err)
	}
	return s, nil
}

// Error is AWX's answer to a spec it rejects: the text AWX returns in the
// "error" key of its 400 response.
type Error struct{ Msg string }

func (e *Error) Error() string { return "AWX rejects the survey spec: " + e.Msg }

// Hint says what to do about it.
func (e *Error) Hint() string {
	return "fix the survey file; AWX would refuse to save it and the job template's task would fail"
}

// surveyTypes is SURVEY_TYPE_MAPPING: question type -> accepted default.
var surveyTypes = map[string]func(any) bool{
	"text":           isStr,
	"textarea":       isStr,
	"password":       isStr,
	"multiplechoice": isStr,
	"multiselect":    isStr,
	"integer":        isPyInt,
	"float":          func(v any) bool { return isPyInt(v) || isPyFloat(v) },
}

// allowedTypes is ', '.join(SURVEY_TYPE_MAPPING.keys()) in AWX's order.
const allowedTypes = "text, textarea, password, multiplechoice, multiselect, integer, float"

func isStr(v any) bool { _, ok := v.(string); return ok }

// isPyInt is isinstance(v, int): integers and booleans.
func isPyInt(v any) bool {
	switch n := v.(type) {
	case bool:
		return true
	case json.Number:
		return !strings.ContainsAny(string(n), ".eE")
	}
	return false
}

func isPyFloat(v any) bool {
	n, ok := v.(json.Number)
	return ok && strings.ContainsAny(string(n), ".eE")
}

func pyType(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case string:
		return "str"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	case json.Number:
		if isPyFloat(v) {
			return "float"
		}
		return "int"
	}
	return fmt.Sprintf("%T", v)
}

func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	}
	return fmt.Sprint(v)
}

// nonBlankLines is [c for c in s.splitlines() if c.strip() != ”].
func nonBlankLines(s string) []string {
	var out []string
	for _, l := range splitLines(s) {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func splitLines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// ValidateSpec is _validate_spec_data(new_spec, {}) for a new survey (no
// encrypted defaults kept from an old one). It returns nil when AWX saves
// the spec, or the *Error AWX answers with. Like AWX it normalises the
// choices and defaults of choice questions in place.
func ValidateSpec(spec Spec) error {
	schemaErr := ""
	for _, f := range []struct{ field, label string }{{"name", "string"}, {"description", "string"}, {"spec", "list of items"}} {
		v, ok := spec[f.field]
		switch {
		case !ok:
			schemaErr = fmt.Sprintf("Field '%s' is missing from survey spec.", f.field)
		case f.field == "spec" && !isList(v), f.field != "spec" && !isStr(v):
			schemaErr = fmt.Sprintf("Expected %s for field '%s', received %s type.", f.label, f.field, pyType(v))
		}
	}
	if l, ok := spec["spec"].([]any); ok && len(l) < 1 {
		schemaErr = "'spec' doesn't contain any items."
	}
	if schemaErr != "" {
		return &Error{schemaErr}
	}
	variables := map[string]bool{}
	for idx, raw := range spec["spec"].([]any) {
		item, ok := raw.(map[string]any)
		if !ok {
			return &Error{fmt.Sprintf("Survey question %d is not a json object.", idx)}
		}
		for _, field := range []string{"type", "question_name", "variable", "required"} {
			v, ok := item[field]
			if !ok {
				return &Error{fmt.Sprintf("'%s' missing from survey question %d", field, idx)}
			}
			good, label := isStr(v), "string"
			if field == "required" {
				_, good = v.(bool)
				label = "boolean"
			}
			if !good {
				return &Error{fmt.Sprintf("'%s' in survey question %d expected to be %s.", field, idx, label)}
			}
		}
		variable := item["variable"].(string)
		if variables[variable] {
			return &Error{fmt.Sprintf("'variable' '%s' duplicated in survey question %d.", variable, idx)}
		}
		variables[variable] = true

		qtype := item["type"].(string)
		accepts, ok := surveyTypes[qtype]
		if !ok {
			return &Error{fmt.Sprintf("'%s' in survey question %d is not one of '%s' allowed question types.", qtype, idx, allowedTypes)}
		}
		if d, ok := item["default"]; ok && d != "" && !accepts(d) {
			label := "string"
			if qtype == "integer" || qtype == "float" {
				label = qtype
			}
			return &Error{fmt.Sprintf("Default value %s in survey question %d expected to be %s.", pyStr(d), idx, label)}
		}
		for _, key := range []string{"min", "max"} {
			if v, ok := item[key]; ok && v != nil && !isPyInt(v) {
				return &Error{fmt.Sprintf("The %s limit in survey question %d expected to be integer.", key, idx)}
			}
		}
		if qtype == "multiselect" || qtype == "multiplechoice" {
			choices, ok := item["choices"]
			if !ok {
				return &Error{fmt.Sprintf("Survey question %d of type %s must specify choices.", idx, qtype)}
			}
			if s, ok := choices.(string); ok {
				choices = strings.Join(nonBlankLines(s), "\n")
				item["choices"] = choices
			}
			if d, ok := item["default"]; ok {
				var defaults []any
				switch x := d.(type) {
				case string:
					norm := strings.Join(nonBlankLines(x), "\n")
					item["default"] = norm
					for _, l := range splitLines(norm) {
						defaults = append(defaults, l)
					}
				case []any:
					defaults = x
				default:
					// len() of a number or a boolean raises in AWX: a
					// server error, the spec is not saved.
					return &Error{fmt.Sprintf("default of survey question %d is a %s: AWX fails with a TypeError (server error)", idx, pyType(d))}
				}
				if qtype == "multiplechoice" && len(defaults) > 1 {
					return &Error{"Multiple Choice (Single Select) can only have one default value."}
				}
				for _, def := range defaults {
					if !pyIn(def, choices) {
						return &Error{"Default choice must be answered from the choices listed."}
					}
				}
			}
		}
		if d, ok := item["default"].(string); ok && strings.HasPrefix(d, "$encrypted$") {
			if qtype != "password" {
				return &Error{fmt.Sprintf("$encrypted$ is a reserved keyword for password question defaults, survey question %d is type %s.", idx, qtype)}
			}
			// A new survey has no old default to keep.
			return &Error{fmt.Sprintf("$encrypted$ is a reserved keyword, may not be used for new default in position %d.", idx)}
		}
	}
	return nil
}

func isList(v any) bool { _, ok := v.([]any); return ok }

// pyIn is Python's `item in container`: a substring test for a string
// container (item must then be a string), membership for a list.
func pyIn(item, container any) bool {
	switch c := container.(type) {
	case string:
		s, ok := item.(string)
		return ok && strings.Contains(c, s)
	case []any:
		for _, x := range c {
			if x == item {
				return true
			}
		}
	}
	return false
}

// Choices returns a choice question's choices as AWX lists them at launch.
func Choices(item map[string]any) []string {
	switch c := item["choices"].(type) {
	case string:
		return nonBlankLines(c)
	case []any:
		out := make([]string, 0, len(c))
		for _, x := range c {
			out = append(out, pyStr(x))
		}
		return out
	}
	return nil
}

// ValidateAnswer is _survey_element_validation(item, data): the errors AWX
// gives for the answers in data (the value of each variable, or none).
func ValidateAnswer(item map[string]any, data map[string]any) []string {
	var errs []string
	variable, _ := item["variable"].(string)
	required, _ := item["required"].(bool)
	val, present := data[variable]
	qtype, _ := item["type"].(string)
	if qtype == "password" {
		if s, ok := val.(string); ok && s == "$encrypted$" {
			if item["default"] == nil && required {
				errs = append(errs, fmt.Sprintf("'%s' value missing", variable))
			}
			return errs
		}
	}
	limit := func(key string) (json.Number, bool) {
		v, ok := item[key]
		if !ok || v == nil || v == "" {
			return "", false
		}
		switch x := v.(type) {
		case json.Number:
			return x, true
		case bool:
			if x {
				return "1", true
			}
			return "0", true
		}
		return json.Number(pyStr(v)), true
	}
	switch {
	case !present && required:
		errs = append(errs, fmt.Sprintf("'%s' value missing", variable))
	case !present:
	case qtype == "textarea" || qtype == "text" || qtype == "password":
		s, ok := val.(string)
		if !ok {
			return append(errs, fmt.Sprintf("Value %s for '%s' expected to be a string.", pyStr(val), variable))
		}
		n := int64(len([]rune(s)))
		if m, ok := limit("min"); ok {
			if lo, _ := m.Int64(); n < lo {
				errs = append(errs, fmt.Sprintf("'%s' value %s is too small (length is %d must be at least %s).", variable, s, n, m))
			}
		}
		if m, ok := limit("max"); ok {
			if hi, _ := m.Int64(); n > hi {
				errs = append(errs, fmt.Sprintf("'%s' value %s is too large (must be no more than %s).", variable, s, m))
			}
		}
	case qtype == "integer":
		// type(v) != int: a boolean is refused here.
		num, ok := val.(json.Number)
		if !ok || isPyFloat(num) {
			return append(errs, fmt.Sprintf("Value %s for '%s' expected to be an integer.", pyStr(val), variable))
		}
		v, _ := num.Int64()
		if m, ok := limit("min"); ok {
			if lo, _ := m.Int64(); v < lo {
				errs = append(errs, fmt.Sprintf("'%s' value %s is too small (must be at least %s).", variable, num, m))
			}
		}
		if m, ok := limit("max"); ok {
			if hi, _ := m.Int64(); v > hi {
				errs = append(errs, fmt.Sprintf("'%s' value %s is too large (must be no more than %s).", variable, num, m))
			}
		}
	case qtype == "float":
		num, ok := val.(json.Number)
		if !ok {
			return append(errs, fmt.Sprintf("Value %s for '%s' expected to be a numeric type.", pyStr(val), variable))
		}
		v, _ := num.Float64()
		if m, ok := limit("min"); ok {
			if lo, _ := m.Float64(); v < lo {
				errs = append(errs, fmt.Sprintf("'%s' value %s is too small (must be at least %s).", variable, num, m))
			}
		}
		if m, ok := limit("max"); ok {
			if hi, _ := m.Float64(); v > hi {
				errs = append(errs, fmt.Sprintf("'%s' value %s is too large (must be no more than %s).", variable, num, m))
			}
		}
	case qtype == "multiselect":
		list, ok := val.([]any)
		if !ok {
			return append(errs, fmt.Sprintf("'%s' value is expected to be a list.", variable))
		}
		choices := Choices(item)
		for _, v := range list {
			if !contains(choices, v) {
				errs = append(errs, fmt.Sprintf("Value %s for '%s' expected to be one of %s.", pyStr(v), variable, pyList(choices)))
			}
		}
	case qtype == "multiplechoice":
		choices := Choices(item)
		if !contains(choices, val) {
			errs = append(errs, fmt.Sprintf("Value %s for '%s' expected to be one of %s.", pyStr(val), variable, pyList(choices)))
		}
	}
	return errs
}

func contains(list []string, v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	for _, c := range list {
		if c == s {
			return true
		}
	}
	return false
}

func pyList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = "'" + s + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// DroppedDefaults lists the questions whose default AWX would drop
// silently at launch (_update_unified_job_kwargs keeps a default only when
// it passes ValidateAnswer), with AWX's reason, sorted by variable.
func DroppedDefaults(spec Spec) map[string][]string {
	out := map[string][]string{}
	items, _ := spec["spec"].([]any)
	for _, raw := range items {
		item, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		d, ok := item["default"]
		if !ok || d == nil {
			continue
		}
		variable, _ := item["variable"].(string)
		// Defaults of multiselect questions are newline-separated text in
		// the spec; AWX hands the text itself to the validation.
		if errs := ValidateAnswer(item, map[string]any{variable: d}); len(errs) > 0 {
			sort.Strings(errs)
			out[variable] = errs
		}
	}
	return out
}
