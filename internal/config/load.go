package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// document is the file as written: Config's keys, except that destinations
// keep their overrides as pointers, to tell "not set" from "set to zero".
type document struct {
	Server       Server                  `yaml:"server"`
	Inbound      Inbound                 `yaml:"inbound"`
	Admin        Admin                   `yaml:"admin"`
	Storage      Storage                 `yaml:"storage"`
	Defaults     Options                 `yaml:"defaults"`
	Destinations map[string]*destination `yaml:"destinations"`
	Routes       []Route                 `yaml:"routes"`
}

// destination is one entry of `destinations:` as written. Its type blocks
// are keyed by the names of the registered types; the decoder fills blocks
// (in file order) and the option overrides below.
type destination struct {
	blocks         []typeBlock
	Timeout        *time.Duration   `yaml:"timeout"`
	Concurrency    *int             `yaml:"concurrency"`
	RateLimit      *float64         `yaml:"rate_limit"`
	Retry          *retryOverride   `yaml:"retry"`
	CircuitBreaker *breakerOverride `yaml:"circuit_breaker"`
}

// typeBlock is one type block of a destination.
type typeBlock struct {
	typ   destinations.Type
	block destinations.Block
}

// block returns the destination's block of type t, creating it (with the
// type's defaults) the first time; a block merged in with "<<" and written
// again is decoded over, key by key.
func (d *destination) block(t destinations.Type) destinations.Block {
	for _, b := range d.blocks {
		if b.typ.Name == t.Name {
			return b.block
		}
	}
	b := t.Config()
	d.blocks = append(d.blocks, typeBlock{typ: t, block: b})
	return b
}

type retryOverride struct {
	MaxAttempts     *int           `yaml:"max_attempts"`
	InitialInterval *time.Duration `yaml:"initial_interval"`
	MaxInterval     *time.Duration `yaml:"max_interval"`
	MaxElapsedTime  *time.Duration `yaml:"max_elapsed_time"`
}

type breakerOverride struct {
	FailureThreshold *int           `yaml:"failure_threshold"`
	OpenFor          *time.Duration `yaml:"open_for"`
}

// Load reads, expands, decodes, defaults and validates the file at path.
// getenv looks up ${VAR} references (os.LookupEnv when nil); types are the
// destination types a destination may have (the app's list). Problems in
// the file come back together as a *Errors; a file that cannot be read is a
// plain error.
func Load(path string, getenv func(string) (string, bool), types destinations.Types) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path, getenv, types)
}

// Parse is Load for a file already read; path names it in messages and
// anchors its relative paths.
func Parse(data []byte, path string, getenv func(string) (string, bool), types destinations.Types) (*Config, error) {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	p := newProblems(path)
	root, err := parseYAML(data, p)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config directory: %w", err)
	}

	x := &expander{getenv: getenv, p: p, source: map[*yaml.Node]string{}, vars: map[string][]string{}}

	doc := document{
		Server:   Server{Listen: "127.0.0.1:8080", WebhookPath: "/webhooks/revenuecat", MaxBodyBytes: 1 << 20},
		Storage:  Storage{Driver: "sqlite", Path: "data/rcrouter.db", Retention: 168 * time.Hour, DispatchBodyBytes: 4096},
		Defaults: DefaultOptions(),
	}
	d := &decoder{p: p, x: x, types: types}
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 && root.Content[0].Kind != yaml.MappingNode && !isNull(root.Content[0]) {
		p.at(root.Content[0].Line, "", "expected a mapping of sections (server, inbound, admin, storage, defaults, destinations, routes), got %s", d.kindName(root.Content[0]))
		return nil, p.err()
	}
	d.decode(root, reflect.ValueOf(&doc).Elem(), "")
	if d.over {
		// What was decoded is partial; validating it would only add noise.
		return nil, p.err()
	}

	cfg := build(&doc, root, dir, path)
	v := &validator{p: p, x: x, doc: &doc, cfg: cfg, types: types}
	v.validate()
	if err := p.err(); err != nil {
		return nil, err
	}
	cfg.Inbound.Authorization = nonEmpty(cfg.Inbound.Authorization)
	sum := sha256.Sum256(data)
	cfg.SHA256 = hex.EncodeToString(sum[:])
	return cfg, nil
}

// parseYAML parses exactly one YAML document; syntax errors become
// problems with the line yaml.v3 names.
func parseYAML(data []byte, p *problems) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return &yaml.Node{Kind: yaml.DocumentNode}, nil // an empty file: all defaults
		}
		line, msg := syntaxError(err, data)
		p.at(line, "", "%s", msg)
		return nil, p.err()
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		p.at(next.Line, "", "a config file holds one YAML document; remove this second one")
		return nil, p.err()
	} else if !errors.Is(err, io.EOF) {
		line, msg := syntaxError(err, data)
		p.at(line, "", "%s", msg)
		return nil, p.err()
	}
	return &root, nil
}

// syntaxError splits yaml.v3's "yaml: line 3: mapping values are not
// allowed in this context" into a line and a message. yaml.v3 names no line
// for a problem on the first line (it counts from 0 and takes 0 for unknown)
// nor for bytes it cannot read (bad UTF-8, control characters); the line is
// then found here, because every problem must point into the file.
func syntaxError(err error, data []byte) (int, string) {
	m := regexp.MustCompile(`^yaml: line (\d+): (.*)$`).FindStringSubmatch(err.Error())
	if m == nil {
		return unreadableLine(data), strings.TrimPrefix(err.Error(), "yaml: ")
	}
	line, _ := strconv.Atoi(m[1])
	return line, m[2]
}

// unreadableLine is the line of the first byte YAML does not accept (invalid
// UTF-8, or a character outside YAML's printable set), else 1, counting line
// breaks as yaml.v3 does. UTF-16 input (a byte-order mark) is not searched:
// its problems are put on line 1.
func unreadableLine(data []byte) int {
	if bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE}) {
		return 1
	}
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return line
		case r == '\n' || r == 0x85 || r == 0x2028 || r == 0x2029 || (r == '\r' && !bytes.HasPrefix(data[i+1:], []byte("\n"))):
			line++ // the line breaks yaml.v3 counts; CR LF is one
		case r == '\t' || r == '\r' || (r >= 0x20 && r <= 0x7E) ||
			(r >= 0xA0 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || r >= 0x10000:
		default:
			return line
		}
		i += size
	}
	return 1
}

// build turns the decoded document into a Config: destinations get their
// type, their options merged over the defaults, and absolute paths.
func build(doc *document, root *yaml.Node, dir, path string) *Config {
	cfg := &Config{
		Server:       doc.Server,
		Inbound:      doc.Inbound,
		Admin:        doc.Admin,
		Storage:      doc.Storage,
		Defaults:     doc.Defaults,
		Destinations: make(map[string]*Destination, len(doc.Destinations)),
		Routes:       doc.Routes,
		Path:         path,
		Dir:          dir,
		Names:        destinationNames(root),
	}
	if cfg.Storage.Driver == "sqlite" {
		cfg.Storage.Path = resolve(dir, cfg.Storage.Path)
	}
	for name, src := range doc.Destinations {
		dst := &Destination{Name: name, Options: src.merge(doc.Defaults)}
		for _, b := range src.blocks {
			if pb, ok := b.block.(destinations.PathBlock); ok {
				pb.ResolvePaths(func(p string) string { return resolve(dir, p) })
			}
		}
		if len(src.blocks) == 1 {
			dst.Type, dst.Block = src.blocks[0].typ.Name, src.blocks[0].block
		}
		cfg.Destinations[name] = dst
	}
	// Names merged in with "<<" are not keys of the mapping itself.
	var merged []string
	for name := range cfg.Destinations {
		if !slices.Contains(cfg.Names, name) {
			merged = append(merged, name)
		}
	}
	slices.Sort(merged)
	cfg.Names = append(cfg.Names, merged...)
	return cfg
}

// merge applies the destination's overrides field by field over defaults.
func (d *destination) merge(defaults Options) Options {
	o := defaults
	for _, b := range d.blocks {
		if b.typ.RateLimit > 0 {
			o.RateLimit = b.typ.RateLimit // the type's own default (Slack: 1)
		}
	}
	set(&o.Timeout, d.Timeout)
	set(&o.Concurrency, d.Concurrency)
	set(&o.RateLimit, d.RateLimit)
	if r := d.Retry; r != nil {
		set(&o.Retry.MaxAttempts, r.MaxAttempts)
		set(&o.Retry.InitialInterval, r.InitialInterval)
		set(&o.Retry.MaxInterval, r.MaxInterval)
		set(&o.Retry.MaxElapsedTime, r.MaxElapsedTime)
	}
	if b := d.CircuitBreaker; b != nil {
		set(&o.CircuitBreaker.FailureThreshold, b.FailureThreshold)
		set(&o.CircuitBreaker.OpenFor, b.OpenFor)
	}
	return o
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// destinationNames lists the keys of `destinations:` in file order.
func destinationNames(root *yaml.Node) []string {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	top := root.Content[0]
	var names []string
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != "destinations" {
			continue
		}
		m := top.Content[i+1]
		if m.Kind == yaml.AliasNode {
			m = m.Alias
		}
		if m.Kind != yaml.MappingNode {
			continue // reported by the decoder
		}
		seen := map[string]bool{}
		for j := 0; j+1 < len(m.Content); j += 2 {
			if k := m.Content[j].Value; m.Content[j].Tag != "!!merge" && !seen[k] {
				seen[k] = true
				names = append(names, k)
			}
		}
	}
	return names
}

// resolve makes a relative path relative to the config file's directory.
// SQLite's ":memory:" and "file:" URIs are left alone.
func resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) || p == ":memory:" || strings.HasPrefix(p, "file:") {
		return p
	}
	return filepath.Join(dir, p)
}

// DefaultOptions are the delivery options of DESIGN §4, used where the
// `defaults:` block does not set a key.
func DefaultOptions() Options {
	return Options{
		Timeout:     10 * time.Second,
		Concurrency: 4,
		RateLimit:   0,
		Retry: Retry{
			MaxAttempts:     12,
			InitialInterval: 5 * time.Second,
			MaxInterval:     time.Hour,
			MaxElapsedTime:  72 * time.Hour,
		},
		CircuitBreaker: CircuitBreaker{FailureThreshold: 10, OpenFor: 30 * time.Second},
	}
}

// nonEmpty drops empty values, so that an unset optional value in a
// rotation list ("${RC_WEBHOOK_AUTH_NEXT:-}") can never match a request
// that has no Authorization header.
func nonEmpty(in []secret.Secret) []secret.Secret {
	var out []secret.Secret
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
