package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rcrouter/rcrouter/destinations"
)

// decoder fills Go values from a yaml.Node tree strictly: an unknown key, a
// duplicate key or a value of the wrong type is a problem with its line and
// path. yaml.v3's own Node.Decode cannot do this (it ignores KnownFields), so
// the tree is walked against the target types by reflection over `yaml` tags.
//
// Only keys present in the file are set, so decoding into a value that
// already holds the defaults leaves every absent key at its default.
type decoder struct {
	p     *problems
	x     *expander
	types destinations.Types // the keys a destination's type block may have
	// spent counts the nodes decoded and mappings merged: aliases and "<<"
	// reuse nodes, so nesting them multiplies the work (8 levels of 10
	// merges are 10^8 visits). Past MaxDecodeWork decoding stops.
	spent int
	over  bool
}

// MaxDecodeWork bounds the nodes one config file may expand to through
// aliases and merge keys; real files are a few thousand.
const MaxDecodeWork = 200_000

// spend counts one unit of work and reports whether decoding may go on.
func (d *decoder) spend(line int, path string) bool {
	if d.over {
		return false
	}
	if d.spent++; d.spent > MaxDecodeWork {
		d.over = true
		d.p.at(line, path, "anchors, aliases and merge keys (<<) expand to more than %d values; flatten the nesting", MaxDecodeWork)
		return false
	}
	return true
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.spend(n.Line, path) {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) > 0 {
			d.decode(n.Content[0], v, path)
		}
		return
	case yaml.AliasNode:
		d.decode(n.Alias, v, path)
		return
	}
	if n.Kind == yaml.ScalarNode {
		d.x.scalar(n, path)
	}
	if isNull(n) {
		// An empty block ("retry:") sets nothing; an empty type block
		// ("slack:") is still there, so it gets a zero struct to validate.
		if v.Kind() == reflect.Pointer && v.IsNil() && v.Type().Elem().Kind() == reflect.Struct {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return
	}
	if v.Type() == reflect.TypeFor[time.Duration]() {
		d.duration(n, v, path)
		return
	}
	if v.Type() == reflect.TypeFor[destination]() {
		d.destination(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	case reflect.String:
		if d.scalar(n, path, "a string") {
			v.SetString(n.Value)
			if n.Style&yaml.LiteralStyle != 0 {
				d.p.blocks[path] = n.Line + 1
			}
		}
	case reflect.Bool:
		if !d.scalar(n, path, "true or false") {
			return
		}
		switch strings.ToLower(n.Value) {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.p.badValue(path, "expected true or false, got %s", d.x.describe(n))
		}
	case reflect.Int, reflect.Int64:
		if !d.scalar(n, path, "an integer") {
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.p.badValue(path, "expected an integer, got %s", d.x.describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if !d.scalar(n, path, "a number") {
			return
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.p.badValue(path, "expected a number, got %s", d.x.describe(n))
			return
		}
		v.SetFloat(f)
	default:
		// A programming error in the schema, not in the file.
		panic(fmt.Sprintf("config: cannot decode into %s", v.Type()))
	}
}

// scalar reports whether n is a scalar, recording a problem if it is not.
func (d *decoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind == yaml.ScalarNode {
		return true
	}
	d.p.badValue(path, "expected %s, got %s", want, d.kindName(n))
	return false
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	if !d.scalar(n, path, "a duration") {
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.p.badValue(path, "invalid duration %s (use a number and a unit: 500ms, 10s, 5m, 1h)", d.x.describe(n))
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.p.badValue(path, "expected a mapping, got %s", d.kindName(n))
		return
	}
	fields := yamlFields(v.Type())
	d.entries(n, path, func(key, val *yaml.Node, kpath string) {
		idx, ok := fields[key.Value]
		if !ok {
			d.p.add(kpath, "unknown key")
			return
		}
		d.decode(val, v.FieldByIndex(idx), kpath)
	})
}

// destination decodes one entry of `destinations:`: a key naming a
// registered type is that type's block, decoded strictly into the type's
// Config; the other keys are the common options.
func (d *decoder) destination(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.p.badValue(path, "expected a mapping, got %s", d.kindName(n))
		return
	}
	dst := v.Addr().Interface().(*destination)
	fields := yamlFields(v.Type())
	d.entries(n, path, func(key, val *yaml.Node, kpath string) {
		if t, ok := d.types.Lookup(key.Value); ok {
			// An empty block ("file:") is still there, with its defaults, to validate.
			d.decode(val, reflect.ValueOf(dst.block(t)).Elem(), kpath)
			return
		}
		idx, ok := fields[key.Value]
		if !ok {
			d.p.add(kpath, "unknown key")
			return
		}
		d.decode(val, v.FieldByIndex(idx), kpath)
	})
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.p.badValue(path, "expected a mapping, got %s", d.kindName(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	kt, et := v.Type().Key(), v.Type().Elem()
	d.entries(n, path, func(key, val *yaml.Node, kpath string) {
		k := reflect.New(kt).Elem()
		k.SetString(key.Value)
		// A key seen before through a merge ("<<") is decoded over its
		// merged value, so explicit keys override field by field.
		e := reflect.New(et).Elem()
		if old := v.MapIndex(k); old.IsValid() {
			e.Set(old)
		}
		d.decode(val, e, kpath)
		v.SetMapIndex(k, e)
	})
}

// entries calls f for each key of a mapping in file order, after the keys
// it merges ("<<: *anchor"), and reports duplicate and non-scalar keys.
func (d *decoder) entries(n *yaml.Node, path string, f func(key, val *yaml.Node, kpath string)) {
	if !d.spend(n.Line, path) {
		return
	}
	seen := map[string]int{}
	var explicit [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Kind != yaml.ScalarNode {
			d.p.at(key.Line, path, "keys must be plain strings, got %s", d.kindName(key))
			continue
		}
		if key.Tag == "!!merge" {
			d.merge(val, path, f)
			if d.over {
				return
			}
			continue
		}
		kpath := joinPath(path, key.Value)
		if first, dup := seen[key.Value]; dup {
			d.p.at(key.Line, kpath, "duplicate key (first at line %d)", first)
			continue
		}
		seen[key.Value] = key.Line
		explicit = append(explicit, [2]*yaml.Node{key, val})
	}
	for _, kv := range explicit {
		kpath := joinPath(path, kv[0].Value)
		d.p.lines[kpath] = kv[0].Line
		f(kv[0], kv[1], kpath)
	}
}

// merge applies a "<<" value: one mapping or a list of them, each usually
// an alias of an anchored mapping.
func (d *decoder) merge(val *yaml.Node, path string, f func(key, val *yaml.Node, kpath string)) {
	if val.Kind == yaml.AliasNode {
		val = val.Alias
	}
	switch val.Kind {
	case yaml.MappingNode:
		d.entries(val, path, f)
	case yaml.SequenceNode:
		for _, m := range val.Content {
			if d.over {
				return
			}
			d.merge(m, path, f)
		}
	default:
		d.p.at(val.Line, path, "<< must merge a mapping, got %s", d.kindName(val))
	}
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	et := v.Type().Elem()
	if n.Kind == yaml.ScalarNode && et.Kind() == reflect.String {
		// A single string stands for a list of one: `to: archive`.
		e := reflect.New(et).Elem()
		ipath := indexPath(path, 0)
		d.p.lines[ipath] = n.Line
		d.decode(n, e, ipath)
		v.Set(reflect.Append(reflect.MakeSlice(v.Type(), 0, 1), e))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.p.badValue(path, "expected a list, got %s", d.kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, c := range n.Content {
		ipath := indexPath(path, i)
		d.p.lines[ipath] = c.Line
		e := reflect.New(et).Elem()
		d.decode(c, e, ipath)
		s = reflect.Append(s, e)
	}
	v.Set(s)
}

// yamlFields maps each key of a struct type to its field index, following
// `yaml:",inline"` structs; fields tagged "-" have no key.
func yamlFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, idx := range yamlFields(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = []int{i}
	}
	return out
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// kindName names what a node is, for "expected …, got …" messages.
func (d *decoder) kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	default:
		return d.x.describe(n)
	}
}
