package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/event"
)

// validator checks a decoded file in one pass and records every problem.
type validator struct {
	p     *problems
	x     *expander
	doc   *document
	cfg   *Config
	types destinations.Types
}

func (v *validator) validate() {
	v.server()
	v.inbound()
	v.storage()
	v.options("defaults", v.cfg.Defaults, func(string) bool { return true })
	for _, name := range v.cfg.Names {
		v.destination(name, v.doc.Destinations[name])
	}
	v.routes()
}

// reserved are the paths rcrouter serves itself (DESIGN §6).
func reserved() []string { return []string{"/api", "/ui", "/healthz", "/readyz", "/metrics"} }

func (v *validator) server() {
	s := v.cfg.Server
	if _, port, err := net.SplitHostPort(s.Listen); err != nil || !validPort(port) {
		v.p.add("server.listen", "must be host:port (127.0.0.1:8080, :8080), got %q", s.Listen)
	}
	switch wp := s.WebhookPath; {
	case !strings.HasPrefix(wp, "/"):
		v.p.add("server.webhook_path", `must start with "/", got %q`, wp)
	case strings.ContainsAny(wp, "?# \t"):
		v.p.add("server.webhook_path", "must be a plain path without query, fragment or spaces, got %q", wp)
	default:
		for _, r := range reserved() {
			if wp == r || strings.HasPrefix(wp, r+"/") {
				v.p.add("server.webhook_path", "%q is under %s, which rcrouter serves itself; choose another path", wp, r)
			}
		}
	}
	if s.MaxBodyBytes <= 0 {
		v.p.add("server.max_body_bytes", "must be greater than 0, got %d", s.MaxBodyBytes)
	}
	if s.MaxConnections != 0 && s.MaxConnections < MinConnections {
		v.p.add("server.max_connections", "must be 0 (derived from the file descriptor limit) or at least %d, got %d", MinConnections, s.MaxConnections)
	}
	for i, p := range s.TrustedProxies {
		if _, err := ParseProxy(p); err != nil {
			v.p.add(fmt.Sprintf("server.trusted_proxies[%d]", i), "must be an IP address or CIDR (10.0.0.0/8), got %q", p)
		}
	}
	// A replica name is a label in the dispatch log, the UI and lease rows.
	if len(s.Replica) > 100 || strings.IndexFunc(s.Replica, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		v.p.add("server.replica", "must be at most 100 characters without spaces or control characters, got %q", s.Replica)
	}
}

// MinConnections is the smallest server.max_connections: below it the
// reserve for RevenueCat and health checks leaves nothing for the rest.
const MinConnections = 16

// MinAdminToken is the shortest admin.token validate accepts: the token
// guards replay, pause and reload, and the login throttle only slows
// guessing down.
const MinAdminToken = 16

// ParseProxy reads one server.trusted_proxies entry: an address is a
// prefix of its full length.
func ParseProxy(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

func (v *validator) inbound() {
	in := v.cfg.Inbound
	if !in.AllowUnauthenticated && len(nonEmpty(in.Authorization)) == 0 {
		if vars := v.varsUnder("inbound.authorization"); len(vars) > 0 {
			v.p.addUnlessUnset("inbound.authorization", "no value set; set %s or allow_unauthenticated: true", strings.Join(vars, " or "))
		} else {
			v.p.addUnlessUnset("inbound.authorization", `no value set; add the Authorization header value RevenueCat sends (e.g. "${RC_WEBHOOK_AUTH}") or set allow_unauthenticated: true`)
		}
	}
	if v.cfg.Admin.Token == "" {
		if vars := v.varsUnder("admin.token"); len(vars) > 0 {
			v.p.add("admin.token", "no token set; set %s (the admin API and UI need a bearer token)", strings.Join(vars, " or "))
		} else {
			v.p.add("admin.token", `no token set; the admin API and UI need a bearer token (e.g. token: "${RCROUTER_ADMIN_TOKEN}")`)
		}
	} else if n := utf8.RuneCountInString(v.cfg.Admin.Token.Value()); n < MinAdminToken {
		v.p.add("admin.token", "has %d characters, too short to resist guessing; use at least %d (for example the output of `openssl rand -hex 16`)", n, MinAdminToken)
	}
}

// varsUnder lists the environment variables referenced at or under path.
func (v *validator) varsUnder(path string) []string {
	var out []string
	for p, vars := range v.x.vars {
		if p == path || strings.HasPrefix(p, path+"[") || strings.HasPrefix(p, path+".") {
			for _, name := range vars {
				if !slices.Contains(out, name) {
					out = append(out, name)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func (v *validator) storage() {
	s := v.cfg.Storage
	switch s.Driver {
	case "sqlite":
		if s.Path == "" {
			v.p.add("storage.path", "required for driver sqlite")
		}
	case "postgres":
		if s.DSN == "" {
			v.p.add("storage.dsn", "required for driver postgres")
		}
	default:
		v.p.add("storage.driver", "must be sqlite or postgres, got %q", s.Driver)
	}
	if s.MaxConns < 0 || s.MaxConns > 10000 {
		v.p.add("storage.max_conns", "must be from 0 (the default, 16) to 10000, got %d", s.MaxConns)
	}
	if s.Retention < 0 {
		v.p.add("storage.retention", "must not be negative, got %s", s.Retention)
	}
	if s.DispatchBodyBytes < 0 {
		v.p.add("storage.dispatch_body_bytes", "must not be negative, got %d", s.DispatchBodyBytes)
	}
}

// options checks the delivery options at path; has says which keys path
// sets itself (a destination is only blamed for its own overrides).
func (v *validator) options(path string, o Options, has func(key string) bool) {
	at := func(key string) string { return path + "." + key }
	if has("timeout") && o.Timeout <= 0 {
		v.p.add(at("timeout"), "must be greater than 0, got %s", o.Timeout)
	}
	if has("concurrency") && (o.Concurrency < 1 || o.Concurrency > 1000) {
		v.p.add(at("concurrency"), "must be between 1 and 1000, got %d", o.Concurrency)
	}
	if has("rate_limit") && o.RateLimit < 0 {
		v.p.add(at("rate_limit"), "must not be negative (0 means unlimited), got %g", o.RateLimit)
	}
	r := o.Retry
	if has("retry.max_attempts") && r.MaxAttempts < 1 {
		v.p.add(at("retry.max_attempts"), "must be at least 1, got %d", r.MaxAttempts)
	}
	for _, d := range []struct {
		key string
		val int64
	}{
		{"retry.initial_interval", int64(r.InitialInterval)},
		{"retry.max_interval", int64(r.MaxInterval)},
		{"retry.max_elapsed_time", int64(r.MaxElapsedTime)},
		{"circuit_breaker.open_for", int64(o.CircuitBreaker.OpenFor)},
	} {
		if has(d.key) && d.val <= 0 {
			v.p.add(at(d.key), "must be greater than 0, got %s", durationString(d.val))
		}
	}
	if (has("retry.initial_interval") || has("retry.max_interval")) &&
		r.InitialInterval > 0 && r.MaxInterval > 0 && r.InitialInterval > r.MaxInterval {
		key := "retry.initial_interval"
		if !has(key) {
			key = "retry.max_interval"
		}
		v.p.add(at(key), "initial_interval %s is greater than max_interval %s", r.InitialInterval, r.MaxInterval)
	}
	if has("circuit_breaker.failure_threshold") && o.CircuitBreaker.FailureThreshold < 1 {
		v.p.add(at("circuit_breaker.failure_threshold"), "must be at least 1, got %d", o.CircuitBreaker.FailureThreshold)
	}
}

func (v *validator) destination(name string, d *destination) {
	path := joinPath("destinations", name)
	if !validName(name) {
		v.p.add(path, "invalid destination name %q: use letters, digits, \"_\", \".\" and \"-\"", name)
	}
	noType := "no type block; add one of " + strings.Join(v.types.Names(), ", ")
	if d == nil {
		v.p.add(path, "%s", noType)
		return
	}
	blocks := slices.Clone(d.blocks)
	at := func(b typeBlock) string { return path + "." + b.typ.Name }
	sort.SliceStable(blocks, func(i, j int) bool { return v.p.lineOf(at(blocks[i])) < v.p.lineOf(at(blocks[j])) })
	switch {
	case len(blocks) == 0:
		v.p.add(path, "%s", noType)
	case len(blocks) > 1:
		for _, b := range blocks[1:] {
			v.p.add(at(b), "a destination has exactly one type block, and this one already has %s", blocks[0].typ.Name)
		}
	}
	for _, b := range blocks {
		v.block(at(b), b.block)
	}
	v.options(path, v.cfg.Destinations[name].Options, func(key string) bool { return v.p.has(path + "." + key) })
}

// block places the problems a type block reports under its path. A block
// that is not even a mapping was reported as such; checking its (empty)
// keys would only add noise. A problem about the block as a whole ("set
// webhook_url, or token and channel") stays quiet when a value in it failed
// to expand: that failure is the real problem.
func (v *validator) block(path string, b destinations.Block) {
	if v.p.bad[path] {
		return
	}
	for _, pr := range b.Validate() {
		if pr.Key == "" {
			v.p.addUnlessUnset(path, "%s", pr.Message)
			continue
		}
		v.p.add(path+"."+pr.Key, "%s", pr.Message)
	}
}

func (v *validator) routes() {
	first := map[string]int{}
	for i, r := range v.cfg.Routes {
		path := indexPath("routes", i)
		switch j, dup := first[r.Name]; {
		case strings.TrimSpace(r.Name) == "":
			v.p.add(path+".name", "required")
		case dup:
			v.p.add(path+".name", "duplicate route name %q (first at line %d)", r.Name, v.p.lineOf(indexPath("routes", j)+".name"))
		default:
			first[r.Name] = i
		}
		if len(r.To) == 0 {
			v.p.add(path+".to", "required: list the destinations this route sends to")
		}
		for j, to := range r.To {
			if _, ok := v.cfg.Destinations[to]; !ok {
				v.p.add(indexPath(path+".to", j), "unknown destination %q", to)
			}
		}
		v.matchers(path+".match", r.Match)
		v.matchers(path+".exclude", r.Exclude)
		if r.When != "" {
			v.when(path+".when", r.When)
		}
	}
}

func (v *validator) when(path, src string) {
	_, err := CompileWhen(src)
	if err == nil || v.p.coveredByUnset(path) {
		return
	}
	line := v.p.lineOf(path)
	// In a literal block (when: |) expr's line counts from the block's
	// first line, so the problem can be placed on its own line.
	if first, ok := v.p.blocks[path]; ok {
		if l := exprLine(err); l > 0 {
			line = first + l - 1
		}
	}
	v.p.at(line, path, "%s", ExprMessage(err))
}

func (v *validator) matchers(path string, m Matchers) {
	for _, k := range []struct {
		key   string
		vals  []string
		upper bool // RevenueCat sends these in upper case
	}{
		{"type", m.Type, true},
		{"lifecycle", m.Lifecycle, false},
		{"entitlement", m.Entitlement, false},
		{"environment", m.Environment, true},
		{"store", m.Store, true},
		{"product", m.Product, false},
		{"app_id", m.AppID, false},
		{"country", m.Country, true},
		{"period_type", m.PeriodType, true},
	} {
		for j, s := range k.vals {
			at := indexPath(path+"."+k.key, j)
			switch {
			case s == "":
				v.p.add(at, "must not be empty")
			case k.key == "lifecycle" && !isLifecycle(s):
				v.p.add(at, "unknown lifecycle %q; one of %s", s, lifecycleList())
			case k.upper && s != strings.ToUpper(s):
				v.p.add(at, "%q never matches: RevenueCat sends %s values in upper case (%q)", s, k.key, strings.ToUpper(s))
			}
		}
	}
}

// validName: destination names appear in URLs, metrics labels and logs.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func isLifecycle(s string) bool {
	return slices.Contains(event.Lifecycles, event.Lifecycle(s))
}

func lifecycleList() string {
	names := make([]string, len(event.Lifecycles))
	for i, l := range event.Lifecycles {
		names[i] = string(l)
	}
	return strings.Join(names, ", ")
}
