package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// expander replaces ${VAR} and ${VAR:-default} in scalar values of a parsed
// YAML tree. Working on nodes rather than on the file's text keeps every
// line number right and never lets a value's content change the YAML
// structure (a password with ": " in it stays one string).
// A "$" not followed by "{" or "$" is literal ("$RCAnonymousID").
type expander struct {
	getenv func(string) (string, bool)
	p      *problems
	// source keeps the text of every changed scalar as written in the file,
	// for messages: a value that came from the environment may be a secret.
	source map[*yaml.Node]string
	// vars records which variables each path referenced, so a message about
	// an empty value can say which variable to set.
	vars map[string][]string
}

// scalar expands the value of one scalar node, once: the decoder calls it
// for every value it decodes, so values under unknown keys (already an
// error) are left alone, and a node reached again through an alias is not
// expanded twice. Keys are never expanded.
func (x *expander) scalar(n *yaml.Node, path string) {
	if _, done := x.source[n]; done || !strings.Contains(n.Value, "$") {
		return
	}
	x.source[n] = n.Value
	var b strings.Builder
	s := n.Value
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
		default:
			b.WriteByte(c) // a lone "$" is literal ("$RCAnonymousID")
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		line := scalarLine(n, s, i)
		if end < 0 {
			x.fail(line, path, `unterminated "${": missing "}"`)
			return
		}
		ref := s[i+2 : i+2+end]
		i += 2 + end
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validVarName(name) {
			x.fail(line, path, "invalid variable reference ${%s}: use ${NAME} or ${NAME:-default}", ref)
			continue
		}
		x.vars[path] = append(x.vars[path], name)
		v, ok := x.getenv(name)
		switch {
		case hasDef && (!ok || v == ""):
			// As in the shell, ":-" also replaces a variable that is set but empty.
			b.WriteString(def)
		case !ok:
			x.fail(line, path, "environment variable %s is not set", name)
		default:
			b.WriteString(v)
		}
	}
	n.Value = b.String()
}

func (x *expander) fail(line int, path, format string, args ...any) {
	x.p.at(line, path, format, args...)
	x.p.unset[path] = true
}

// scalarLine is the file line of byte offset i of a scalar's value. Only a
// literal block (|) keeps its line breaks as they are in the file; other
// styles fold lines, so they report the scalar's first line.
func scalarLine(n *yaml.Node, s string, i int) int {
	if n.Style&yaml.LiteralStyle == 0 {
		return n.Line
	}
	return n.Line + 1 + strings.Count(s[:i], "\n")
}

// validVarName accepts shell-style names: a letter or "_", then letters,
// digits and "_".
func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// describe is how a message quotes a scalar: as written in the file, so a
// value that came from the environment is never printed.
func (x *expander) describe(n *yaml.Node) string {
	if src, ok := x.source[n]; ok {
		return fmt.Sprintf("%q", src)
	}
	return fmt.Sprintf("%q", n.Value)
}
