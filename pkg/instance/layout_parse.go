package instance

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/fleetsafe/fleetsafe/pkg/kind"
	"github.com/fleetsafe/fleetsafe/pkg/kinds/postgresql"
)

// ParamSource is the Source of a layout given as a module parameter.
const ParamSource = "<layout parameter>"

// BackupFormats are the formats a backup rule may name.
var BackupFormats = []string{"pg_custom", "pg_plain", "mysql_dump", "sqlite", "tar", "tar_gz", "tar_zst", "zip", "any"}

// LoadLayoutFile reads and parses a layout file.
func LoadLayoutFile(file string) (*Layout, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read layout file: %w", err)
	}
	return ParseLayout(data, file)
}

// LayoutFromMap parses a layout given as a decoded dict (a module's layout
// parameter). Errors name keys but no lines.
func LayoutFromMap(m map[string]any) (*Layout, error) {
	var n yaml.Node
	if err := n.Encode(plainYAML(m)); err != nil {
		return nil, &LayoutError{File: ParamSource, Msg: fmt.Sprintf("cannot read the layout dict: %v", err)}
	}
	clearLines(&n)
	return parseNode(&n, ParamSource)
}

// plainYAML turns json.Number values into numbers yaml can encode.
func plainYAML(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plainYAML(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainYAML(e)
		}
		return out
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

func clearLines(n *yaml.Node) {
	n.Line = 0
	for _, c := range n.Content {
		clearLines(c)
	}
}

// ParseLayout parses a layout strictly: unknown keys, wrong types, unsafe
// paths and malformed rules are errors naming source, line, key and value.
func ParseLayout(data []byte, source string) (*Layout, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := fmt.Sprintf("not valid YAML: %v", err)
		if strings.Contains(string(data), "{name}") {
			msg += " (write layouts in block style and quote values that start with {name}: in a YAML flow mapping such as {name: x, path: /srv/{name}} the braces of {name} are flow indicators)"
		}
		return nil, &LayoutError{File: source, Line: yamlErrorLine(err), Msg: msg}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, &LayoutError{File: source, Msg: "empty layout: expected a mapping with app and components"}
	}
	return parseNode(doc.Content[0], source)
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrorLine(err error) int {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

type layoutParser struct{ source string }

func (p *layoutParser) errorf(n *yaml.Node, key, value, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &LayoutError{File: p.source, Line: line, Key: key, Value: value, Msg: fmt.Sprintf(format, args...)}
}

// mapping returns the entries of a mapping node, refusing unknown and
// duplicate keys.
func (p *layoutParser) mapping(n *yaml.Node, key string, allowed ...string) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.errorf(n, key, n.Value, "expected a mapping, got %s", kindName(n))
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := joinKey(key, k.Value)
		if k.Kind != yaml.ScalarNode {
			return nil, p.errorf(k, key, "", "keys must be plain strings")
		}
		if !slices.Contains(allowed, k.Value) {
			return nil, p.errorf(k, name, "", "unknown key (known keys: %s)", strings.Join(allowed, ", "))
		}
		if _, dup := out[k.Value]; dup {
			return nil, p.errorf(k, name, "", "duplicate key")
		}
		out[k.Value] = v
	}
	return out, nil
}

func joinKey(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		if n.Style&yaml.FlowStyle != 0 {
			return "a flow mapping (an unquoted value starting with { is read as one: quote it, e.g. '{name}_db')"
		}
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return "the scalar " + strconv.Quote(n.Value)
	}
	return "an unexpected node"
}

func (p *layoutParser) str(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errorf(n, key, "", "expected a string, got %s", kindName(n))
	}
	if n.Tag != "!!str" && n.Style == 0 {
		return "", p.errorf(n, key, n.Value, "expected a string, got a %s; quote it", strings.TrimPrefix(n.Tag, "!!"))
	}
	return n.Value, nil
}

func (p *layoutParser) boolean(n *yaml.Node, key string) (bool, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, p.errorf(n, key, n.Value, "expected true or false, got %s", kindName(n))
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		return false, p.errorf(n, key, n.Value, "expected true or false")
	}
	return b, nil
}

// scalar reads a string, number or other scalar as its text (sizes such
// as 1024 may be written unquoted).
func (p *layoutParser) scalar(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errorf(n, key, "", "expected a value, got %s", kindName(n))
	}
	return n.Value, nil
}

func parseNode(root *yaml.Node, source string) (*Layout, error) {
	p := &layoutParser{source: source}
	top, err := p.mapping(root, "", "app", "name_pattern", "components", "backups")
	if err != nil {
		return nil, err
	}
	l := &Layout{Source: source}

	appNode, ok := top["app"]
	if !ok {
		return nil, p.errorf(root, "app", "", "missing required key")
	}
	if l.App, err = p.str(appNode, "app"); err != nil {
		return nil, err
	}
	if !componentNameRE.MatchString(l.App) {
		return nil, p.errorf(appNode, "app", l.App, "app must match %s", componentNameRE)
	}

	pattern := DefaultNamePattern
	if n, ok := top["name_pattern"]; ok {
		if pattern, err = p.str(n, "name_pattern"); err != nil {
			return nil, err
		}
		if _, err := regexp.Compile(pattern); err != nil {
			return nil, p.errorf(n, "name_pattern", pattern, "not a valid regular expression: %v", err)
		}
	}
	// The pattern always matches the whole name, anchored or not.
	l.NamePattern = regexp.MustCompile(`^(?:` + pattern + `)$`)

	compsNode, ok := top["components"]
	if !ok {
		return nil, p.errorf(root, "components", "", "missing required key")
	}
	if compsNode.Kind != yaml.SequenceNode || len(compsNode.Content) == 0 {
		return nil, p.errorf(compsNode, "components", "", "expected a non-empty list of components, got %s", kindName(compsNode))
	}
	for i, cn := range compsNode.Content {
		c, err := p.component(cn, fmt.Sprintf("components[%d]", i))
		if err != nil {
			return nil, err
		}
		if _, dup := l.Component(c.Name); dup {
			return nil, p.errorf(cn, fmt.Sprintf("components[%d].name", i), c.Name, "duplicate component name")
		}
		l.Components = append(l.Components, c)
	}
	if bn, ok := top["backups"]; ok && bn.Tag != "!!null" {
		if bn.Kind != yaml.SequenceNode {
			return nil, p.errorf(bn, "backups", "", "expected a list of rules, got %s", kindName(bn))
		}
		for i, rn := range bn.Content {
			r, err := p.rule(rn, fmt.Sprintf("backups[%d]", i), l)
			if err != nil {
				return nil, err
			}
			l.Backups = append(l.Backups, r)
		}
	}
	if err := CheckLayouts(l); err != nil {
		return nil, err
	}
	return l, nil
}

var componentNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (p *layoutParser) component(n *yaml.Node, key string) (Component, error) {
	m, err := p.mapping(n, key, append([]string{"name", "type"}, append(templateKeys(), "owner", "optional", "backup")...)...)
	if err != nil {
		return Component{}, err
	}
	c := Component{Line: n.Line}
	nameNode, ok := m["name"]
	if !ok {
		return c, p.errorf(n, key+".name", "", "missing required key")
	}
	if c.Name, err = p.str(nameNode, key+".name"); err != nil {
		return c, err
	}
	if !componentNameRE.MatchString(c.Name) {
		return c, p.errorf(nameNode, key+".name", c.Name, "component names must match %s (they become archive paths)", componentNameRE)
	}
	typeNode, ok := m["type"]
	if !ok {
		return c, p.errorf(n, key+".type", "", "missing required key (%s)", kind.TypeList())
	}
	if c.Type, err = p.str(typeNode, key+".type"); err != nil {
		return c, err
	}
	k, known := kind.Lookup(c.Type)
	if !known {
		return c, p.errorf(typeNode, key+".type", c.Type, "unknown component type (%s)", kind.TypeList())
	}
	field := k.Key()
	for _, f := range templateKeys() {
		if fn, present := m[f]; present && f != field {
			return c, p.errorf(fn, key+"."+f, fn.Value, "a %s component takes %s, not %s", c.Type, field, f)
		}
	}
	tn, ok := m[field]
	if !ok {
		return c, p.errorf(n, key+"."+field, "", "missing required key for a %s component", c.Type)
	}
	raw, err := p.str(tn, key+"."+field)
	if err != nil {
		return c, err
	}
	c.Key, c.KeyLine = key+"."+field, tn.Line
	if reason := k.CheckTemplate(raw); reason != "" {
		return c, p.errorf(tn, c.Key, raw, "%s", reason)
	}
	c.Template = kind.NewTemplate(raw)
	if on, ok := m["owner"]; ok {
		if c.Type != postgresql.Type {
			return c, p.errorf(on, key+".owner", on.Value, "only a %s component takes owner (the role its database must belong to)", postgresql.Type)
		}
		o, err := p.str(on, key+".owner")
		if err != nil {
			return c, err
		}
		if reason := postgresql.CheckOwnerTemplate(o); reason != "" {
			return c, p.errorf(on, key+".owner", o, "%s", reason)
		}
		c.Owner = o
	}

	if on, ok := m["optional"]; ok {
		if c.Optional, err = p.boolean(on, key+".optional"); err != nil {
			return c, err
		}
	}
	if bn, ok := m["backup"]; ok {
		b, err := p.boolean(bn, key+".backup")
		if err != nil {
			return c, err
		}
		c.Backup = &b
	}
	return c, nil
}

// templateKeys are the layout keys that hold a component's template, one
// per kind (path, unit, database), in the order known keys are listed.
func templateKeys() []string {
	var out []string
	for _, t := range kind.Types() {
		k, _ := kind.Lookup(t)
		if !slices.Contains(out, k.Key()) {
			out = append(out, k.Key())
		}
	}
	order := map[string]int{"path": 0, "unit": 1, "database": 2}
	slices.SortStableFunc(out, func(a, b string) int {
		oa, ka := order[a]
		ob, kb := order[b]
		switch {
		case ka && kb:
			return oa - ob
		case ka:
			return -1
		case kb:
			return 1
		}
		return strings.Compare(a, b)
	})
	return out
}

// QuarantineDBPrefix starts the names of quarantined databases
// (softdelete renames a database to fstrash_<id>_<name>); no layout may
// claim that namespace.
const QuarantineDBPrefix = postgresql.QuarantinePrefix

// ReservedDBPrefixes start the names of the databases fleetsafe creates or
// renames (see postgresql.ReservedPrefixes). A layout may claim none of
// them: fleetsafe drops such databases as its own leftovers.
var ReservedDBPrefixes = postgresql.ReservedPrefixes

// ReservedDirPrefix starts the names of the directories fleetsafe creates
// beside components (.fleetsafe-trash, .fleetsafe-restore-<id>-<component>).
const ReservedDirPrefix = kind.ReservedDirPrefix

// QuarantineDirName is the hidden directory where soft delete quarantines
// path components, in each component's parent (softdelete.TrashDir); no
// layout may claim it.
const QuarantineDirName = kind.TrashDirName

func (p *layoutParser) rule(n *yaml.Node, key string, l *Layout) (BackupRule, error) {
	m, err := p.mapping(n, key, "component", "path", "format", "max_age", "min_size", "max_shrink", "checksum")
	if err != nil {
		return BackupRule{}, err
	}
	r := BackupRule{Line: n.Line}
	for _, req := range []string{"component", "path", "format"} {
		if _, ok := m[req]; !ok {
			return r, p.errorf(n, key+"."+req, "", "missing required key")
		}
	}
	if r.Component, err = p.str(m["component"], key+".component"); err != nil {
		return r, err
	}
	if _, ok := l.Component(r.Component); !ok {
		return r, p.errorf(m["component"], key+".component", r.Component, "no component of that name in this layout")
	}
	if r.Path, err = p.str(m["path"], key+".path"); err != nil {
		return r, err
	}
	r.Key, r.KeyLine = key+".path", m["path"].Line
	if why := remoteRulePath(r.Path); why != "" {
		return r, p.errorf(m["path"], key+".path", r.Path, "%s", why)
	}
	switch {
	case !strings.HasPrefix(r.Path, "/") && !strings.HasPrefix(r.Path, RemoteRulePrefix):
		return r, p.errorf(m["path"], key+".path", r.Path, "path must be absolute (or s3://bucket/key-glob)")
	case strings.Count(r.Path, Placeholder) != 1:
		return r, p.errorf(m["path"], key+".path", r.Path, "path must contain {name} exactly once")
	case slices.Contains(strings.Split(r.Path, "/"), ".."):
		return r, p.errorf(m["path"], key+".path", r.Path, "path must not contain '..'")
	}
	if _, err := path.Match(strings.Replace(r.Path, Placeholder, "x", 1), ""); err != nil {
		return r, p.errorf(m["path"], key+".path", r.Path, "malformed glob: %v", err)
	}
	if r.Format, err = p.str(m["format"], key+".format"); err != nil {
		return r, err
	}
	if !slices.Contains(BackupFormats, r.Format) {
		return r, p.errorf(m["format"], key+".format", r.Format, "unknown format (%s)", strings.Join(BackupFormats, ", "))
	}
	if v, ok := m["max_age"]; ok {
		s, err := p.scalar(v, key+".max_age")
		if err != nil {
			return r, err
		}
		if r.MaxAge, err = ParseDuration(s); err != nil {
			return r, p.errorf(v, key+".max_age", s, "%v", err)
		}
	}
	if v, ok := m["min_size"]; ok {
		s, err := p.scalar(v, key+".min_size")
		if err != nil {
			return r, err
		}
		if r.MinSize, err = ParseSize(s); err != nil {
			return r, p.errorf(v, key+".min_size", s, "%v", err)
		}
	}
	if v, ok := m["max_shrink"]; ok {
		s, err := p.scalar(v, key+".max_shrink")
		if err != nil {
			return r, err
		}
		if r.MaxShrink, err = ParsePercent(s); err != nil {
			return r, p.errorf(v, key+".max_shrink", s, "%v", err)
		}
	}
	if v, ok := m["checksum"]; ok {
		if r.Checksum, err = p.str(v, key+".checksum"); err != nil {
			return r, err
		}
		if r.Checksum != "sha256_sidecar" {
			return r, p.errorf(v, key+".checksum", r.Checksum, "unknown checksum kind (sha256_sidecar)")
		}
	}
	return r, nil
}

// RemoteRulePrefix starts a backup rule path that names objects in an S3
// bucket: s3://bucket/prefix/{name}/db-*.dump, the key a glob with the
// same syntax and {name} rules as a local path.
const RemoteRulePrefix = "s3://"

// remoteRulePath returns why an s3:// rule path is malformed, "" when it
// is not one or is sound: a bucket without wildcard or {name}, then a
// key glob whose elements are not empty.
func remoteRulePath(p string) string {
	rest, ok := strings.CutPrefix(p, RemoteRulePrefix)
	if !ok {
		return ""
	}
	bucket, keyGlob, _ := strings.Cut(rest, "/")
	switch {
	case bucket == "":
		return "an s3:// path names its bucket: s3://bucket/prefix/{name}/..."
	case strings.ContainsAny(bucket, `*?[\{}:@`):
		return fmt.Sprintf("bucket %q: a bucket is named literally (no wildcard, no {name}, no credentials or port)", bucket)
	case keyGlob == "":
		return "an s3:// path needs a key after its bucket: s3://bucket/prefix/{name}/..."
	case slices.Contains(strings.Split(keyGlob, "/"), ""):
		return "an S3 key glob has no empty element (no leading, trailing or doubled '/')"
	case !strings.Contains(keyGlob, Placeholder):
		return "{name} must be in the key, not in the bucket"
	}
	return ""
}
