package main

import (
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

func usage(w io.Writer) {
	fmt.Fprintf(w, `fleetsafe %s: the fleetsafe.instances modules in one binary, and their
command line on this host for the day AWX is down.

Usage:
  fleetsafe <command> [options]   run a command on this host
  fleetsafe <command> --help      its options
  fleetsafe version

Commands:
`, versionString())
	for _, c := range commands {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.short())
	}
	fmt.Fprintf(w, `
Every command but verify-archive is the module of the same job, with one
option per module parameter (--archive-dir or --archive_dir). --check
changes nothing and says what would change; --diff shows before and after.
Output is for people; --json prints the module's result as Ansible gets it.
soft-delete, restore and verify-archive show a progress bar on stderr when
it is a terminal (not with --json).
Exit status: 0 done, 1 failed (the message says what state it left), 2 a
usage error.

As an Ansible module it runs when invoked under a module's name, or as
fleetsafe module <name> <args-file>|-. Modules: %s.
`, strings.Join(modules.Names(), ", "))
}

// moduleDoc is the part of a module's ansible-doc sidecar --help shows.
type moduleDoc struct {
	Documentation struct {
		Module           string               `yaml:"module"`
		ShortDescription string               `yaml:"short_description"`
		Description      textList             `yaml:"description"`
		Options          map[string]optionDoc `yaml:"options"`
	} `yaml:"DOCUMENTATION"`
}

type optionDoc struct {
	Description textList `yaml:"description"`
	Type        string   `yaml:"type"`
	Elements    string   `yaml:"elements"`
	Required    bool     `yaml:"required"`
	Default     any      `yaml:"default"`
	Choices     []any    `yaml:"choices"`
	Aliases     []string `yaml:"aliases"`
}

// textList is a description: one string or a list of them.
type textList []string

func (t *textList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*t = textList{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*t = l
	return nil
}

func (c command) parsedDoc() (*moduleDoc, error) {
	var d moduleDoc
	if err := yaml.Unmarshal(c.doc, &d); err != nil {
		return nil, fmt.Errorf("documentation of %s: %w", c.module.Name, err)
	}
	return &d, nil
}

func (c command) short() string {
	if c.summary != "" {
		return c.summary
	}
	if d, err := c.parsedDoc(); err == nil {
		return markup(d.Documentation.ShortDescription)
	}
	return "the " + c.module.Name + " module"
}

var markupRE = regexp.MustCompile(`\b(O|RV|C|V|E|I|M|B|U|L|P)\(([^()]*)\)`)

// markup turns ansible-doc markup into plain text; an option O(x) becomes
// its flag.
func markup(s string) string {
	return markupRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := markupRE.FindStringSubmatch(m)
		if sub[1] == "O" {
			name, _, _ := strings.Cut(sub[2], "=")
			return flag(strings.TrimSpace(name))
		}
		return sub[2]
	})
}

// wrap fills text to width with every line indented.
func wrap(w io.Writer, text, indent string) {
	const width = 78
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	if len(line) > len(indent) {
		fmt.Fprintln(w, line)
	}
}

func commandHelp(w io.Writer, c command) {
	if c.name == "verify-archive" {
		fmt.Fprintf(w, "Usage: fleetsafe verify-archive [--json] <archive>\n\n")
		wrap(w, c.summary+": the checks a soft delete makes before it moves anything, and restore before it uses the archive. Nothing is changed.", "")
		return
	}
	fmt.Fprintf(w, "Usage: fleetsafe %s [options]", c.name)
	if c.positional != "" {
		fmt.Fprintf(w, " [%s]", c.positional)
	}
	fmt.Fprintf(w, "\n\n")
	d, err := c.parsedDoc()
	if err != nil {
		fmt.Fprintf(w, "(%v)\n", err)
		return
	}
	if _, isModule := modules.Get(c.module.Name); isModule {
		wrap(w, markup(d.Documentation.ShortDescription)+" (the fleetsafe.instances."+c.module.Name+" module).", "")
	} else {
		wrap(w, markup(d.Documentation.ShortDescription)+".", "")
	}
	for _, p := range d.Documentation.Description {
		fmt.Fprintln(w)
		wrap(w, markup(p), "")
	}
	fmt.Fprintf(w, "\nOptions:\n")
	names := make([]string, 0, len(c.module.Spec.Params))
	for name := range c.module.Spec.Params {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := c.module.Spec.Params[name]
		o := d.Documentation.Options[name]
		head := "  " + flag(name) + " " + strings.ToUpper(string(p.Type))
		if p.Type == "bool" {
			head = "  " + flag(name) + ", --no-" + strings.TrimPrefix(flag(name), "--")
		}
		var notes []string
		if p.Required {
			notes = append(notes, "required")
		}
		if p.Default != nil {
			notes = append(notes, fmt.Sprintf("default %v", p.Default))
		}
		if len(p.Choices) > 0 {
			notes = append(notes, "one of "+strings.Join(p.Choices, ", "))
		}
		if p.Type == "list" {
			notes = append(notes, "repeat it or separate with commas")
		}
		for _, a := range p.Aliases {
			notes = append(notes, "or "+flag(a))
		}
		if name == c.positional {
			notes = append(notes, "or a bare argument")
		}
		if len(notes) > 0 {
			head += "  (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintln(w, head)
		for _, t := range o.Description {
			wrap(w, markup(t), "      ")
		}
	}
	fmt.Fprintf(w, "  --check   change nothing; report what would change (Ansible's check mode)\n")
	fmt.Fprintf(w, "  --diff    show what changes, before and after\n")
	fmt.Fprintf(w, "  --json    print the module's result as JSON, as Ansible gets it\n")
}
