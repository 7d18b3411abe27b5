package config

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a configuration file, at a line and a YAML path
// such as "routes[1].to[0]".
type Error struct {
	File    string
	Line    int
	Path    string
	Message string
}

// Error formats the problem as "<file>:<line>: <path>: <message>".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Errors is every problem found in one configuration file, sorted by line.
// Load and Parse return it as a *Errors.
type Errors []*Error

// Error prints one problem per line.
func (es *Errors) Error() string {
	lines := make([]string, len(*es))
	for i, e := range *es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each problem to errors.Is and errors.As.
func (es *Errors) Unwrap() []error {
	out := make([]error, len(*es))
	for i, e := range *es {
		out[i] = e
	}
	return out
}

// problems collects errors while a file is decoded and validated. It knows
// the line of every YAML path seen, so validation can name lines without
// holding on to nodes.
type problems struct {
	file string
	list Errors
	// lines maps a YAML path ("destinations.x.retry") to the line of its key.
	lines map[string]int
	// unset holds paths whose value had an expansion error: later complaints
	// about the same value (now empty) would only repeat that error.
	unset map[string]bool
	// bad holds paths whose value had a type error: a check of that value
	// would only add noise.
	bad map[string]bool
	// blocks maps the path of a literal block scalar (|) to the line of its
	// first content line.
	blocks map[string]int
}

func newProblems(file string) *problems {
	return &problems{file: file, lines: map[string]int{"": 1}, unset: map[string]bool{}, bad: map[string]bool{}, blocks: map[string]int{}}
}

// at records a problem at an explicit line.
func (p *problems) at(line int, path, format string, args ...any) {
	p.list = append(p.list, &Error{File: p.file, Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

// add records a problem at the line of path, or of its nearest ancestor
// that is in the file (a missing key is reported where its parent is).
// It stays quiet about a value that was already reported (it failed to
// expand or to decode): the second message would only repeat the first.
func (p *problems) add(path, format string, args ...any) {
	if p.bad[path] || p.unset[path] {
		return
	}
	p.at(p.lineOf(path), path, format, args...)
}

// addUnlessUnset is add for a check that reads the values under path
// ("no authorization value", "set webhook_url or token"): it stays quiet
// when any of them failed to expand.
func (p *problems) addUnlessUnset(path, format string, args ...any) {
	if p.coveredByUnset(path) {
		return
	}
	p.add(path, format, args...)
}

// badValue records a problem with the value at path and keeps later checks
// of the same value quiet.
func (p *problems) badValue(path, format string, args ...any) {
	p.add(path, format, args...)
	p.bad[path] = true
}

func (p *problems) lineOf(path string) int {
	for {
		if l, ok := p.lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
}

// has reports whether path appears in the file.
func (p *problems) has(path string) bool {
	_, ok := p.lines[path]
	return ok
}

func (p *problems) coveredByUnset(path string) bool {
	for u := range p.unset {
		if u == path || strings.HasPrefix(u, path+".") || strings.HasPrefix(u, path+"[") {
			return true
		}
	}
	return false
}

// err returns the sorted problems as an error, or nil when there are none.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	out := p.list
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return &out
}

// parentPath strips the last ".key" or "[i]" of a YAML path; the root is "".
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

func joinPath(parent, key string) string {
	if key == "" {
		key = `""`
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func indexPath(parent string, i int) string {
	return fmt.Sprintf("%s[%d]", parent, i)
}
