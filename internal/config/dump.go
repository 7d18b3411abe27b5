package config

import (
	"bytes"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Dump returns the resolved configuration as YAML: defaults filled in,
// options merged into each destination, paths absolute. Every secret that
// is set prints as <secret>; an empty one prints as "", so the dump shows
// what is configured without showing any value.
func (c *Config) Dump() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	root := dumpNode(reflect.ValueOf(c))
	orderDestinations(root, c.Names)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("dump config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("dump config: %w", err)
	}
	return b.Bytes(), nil
}

// orderDestinations puts the destinations in file order, as a person who
// compares the dump with the file expects them.
func orderDestinations(root *yaml.Node, names []string) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "destinations" {
			continue
		}
		m := root.Content[i+1]
		pos := func(k int) int { return slices.Index(names, m.Content[k].Value) }
		pairs := make([]int, 0, len(m.Content)/2)
		for k := 0; k+1 < len(m.Content); k += 2 {
			pairs = append(pairs, k)
		}
		sort.SliceStable(pairs, func(a, b int) bool { return pos(pairs[a]) < pos(pairs[b]) })
		content := make([]*yaml.Node, 0, len(m.Content))
		for _, k := range pairs {
			content = append(content, m.Content[k], m.Content[k+1])
		}
		m.Content = content
	}
}

// dumpNode builds the YAML tree of v from its `yaml` tags. It exists
// instead of yaml.Marshal for two details: an empty secret.Secret prints
// as "" rather than <secret>, and durations print as "1h", not "1h0m0s".
func dumpNode(v reflect.Value) *yaml.Node {
	scalar := func(tag, value string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
	}
	switch x := v.Interface().(type) {
	case Destination:
		// The type block prints under its type's name, before the options.
		n := &yaml.Node{Kind: yaml.MappingNode}
		if x.Block != nil {
			n.Content = append(n.Content, scalar("!!str", x.Type), dumpNode(reflect.ValueOf(x.Block)))
		}
		dumpFields(n, v)
		return n
	case secret.Secret:
		if x == "" {
			return scalar("!!str", "")
		}
		return scalar("!!str", secret.Redacted)
	case time.Duration:
		return scalar("!!str", shortDuration(x))
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return scalar("!!null", "null")
		}
		return dumpNode(v.Elem())
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		dumpFields(n, v)
		return n
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		if len(keys) == 0 {
			n.Style = yaml.FlowStyle
		}
		for _, k := range keys {
			n.Content = append(n.Content, scalar("!!str", k.String()), dumpNode(v.MapIndex(k)))
		}
		return n
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		for i := 0; i < v.Len(); i++ {
			n.Content = append(n.Content, dumpNode(v.Index(i)))
		}
		return n
	case reflect.String:
		n := &yaml.Node{}
		n.SetString(hideUserinfo(v.String()))
		return n
	case reflect.Bool:
		return scalar("", strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int64:
		return scalar("", strconv.FormatInt(v.Int(), 10))
	case reflect.Float64:
		return scalar("", strconv.FormatFloat(v.Float(), 'g', -1, 64))
	default:
		panic(fmt.Sprintf("config: cannot dump %s", v.Type()))
	}
}

// dumpFields appends the keys of struct v to mapping n, in field order,
// flattening inline fields and leaving out empty omitempty ones.
func dumpFields(n *yaml.Node, v reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		fv := v.Field(i)
		if strings.Contains(opts, "inline") {
			dumpFields(n, fv)
			continue
		}
		if strings.Contains(opts, "omitempty") && isEmpty(fv) {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, dumpNode(fv))
	}
}

func isEmpty(v reflect.Value) bool {
	if z, ok := v.Interface().(interface{ IsZero() bool }); ok {
		return z.IsZero()
	}
	switch v.Kind() {
	case reflect.Map, reflect.Slice:
		return v.Len() == 0
	}
	return v.IsZero()
}

// hideUserinfo shows the credentials of a URL (a webhook url may carry
// https://user:pass@host/…) as <secret>, as the dispatch log does.
func hideUserinfo(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil || u.Host == "" {
		return s
	}
	return destinations.HideUserinfo(u)
}

// shortDuration drops zero units at the end: 1h, 72h, 1h30m, 90s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
