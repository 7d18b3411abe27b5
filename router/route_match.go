package router

import (
	"slices"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/rcrouter/rcrouter/internal/config"
	"github.com/rcrouter/rcrouter/internal/event"
)

// matchKey is one key of `match:` / `exclude:`.
type matchKey uint8

// The keys, in the order they are checked and named in reasons (DESIGN §4).
const (
	keyType matchKey = iota
	keyLifecycle
	keyEntitlement
	keyEnvironment
	keyStore
	keyProduct
	keyAppID
	keyCountry
	keyPeriodType
)

func (k matchKey) String() string {
	switch k {
	case keyType:
		return "type"
	case keyLifecycle:
		return "lifecycle"
	case keyEntitlement:
		return "entitlement"
	case keyEnvironment:
		return "environment"
	case keyStore:
		return "store"
	case keyProduct:
		return "product"
	case keyAppID:
		return "app_id"
	case keyCountry:
		return "country"
	default:
		return "period_type"
	}
}

// matcher is one key with its any-of values and the fixed parts of its
// reasons, built once so that a miss costs one string concatenation.
type matcher struct {
	key    matchKey
	values []string
	globs  []routeGlob // type and product only
	list   string      // "[INITIAL_PURCHASE, RENEWAL]"
	notIn  string      // " not in [INITIAL_PURCHASE, RENEWAL]"
	none   string      // "no country, need one of [US]"
	// misses and hits remember the reasons built per event value.
	misses, hits *reasonCache
}

func compileMatchers(m config.Matchers) []matcher {
	var out []matcher
	for _, k := range []struct {
		key  matchKey
		vals []string
	}{
		{keyType, m.Type}, {keyLifecycle, m.Lifecycle}, {keyEntitlement, m.Entitlement},
		{keyEnvironment, m.Environment}, {keyStore, m.Store}, {keyProduct, m.Product},
		{keyAppID, m.AppID}, {keyCountry, m.Country}, {keyPeriodType, m.PeriodType},
	} {
		if len(k.vals) == 0 {
			continue
		}
		list := "[" + strings.Join(k.vals, ", ") + "]"
		mt := matcher{
			key:    k.key,
			values: slices.Clone(k.vals),
			list:   list,
			notIn:  " not in " + list,
			none:   "no " + k.key.String() + ", need one of " + list,
			misses: new(reasonCache),
			hits:   new(reasonCache),
		}
		if k.key == keyType || k.key == keyProduct {
			for _, v := range k.vals {
				mt.globs = append(mt.globs, newRouteGlob(v))
			}
		}
		out = append(out, mt)
	}
	return out
}

// value is the event's value for a single-valued key.
func (m *matcher) value(e *event.Event) string {
	switch m.key {
	case keyType:
		return e.Type
	case keyLifecycle:
		return string(e.Lifecycle)
	case keyEnvironment:
		return e.Environment
	case keyStore:
		return e.Store
	case keyProduct:
		return e.ProductID
	case keyAppID:
		return e.AppID
	case keyCountry:
		return e.CountryCode
	case keyPeriodType:
		return e.PeriodType
	}
	return ""
}

// matches reports whether e has any of the values.
func (m *matcher) matches(e *event.Event) bool {
	switch m.key {
	case keyEntitlement:
		for _, have := range e.Entitlements {
			for _, want := range m.values {
				if have == want {
					return true
				}
			}
		}
		return false
	case keyType:
		for i := range m.globs {
			if m.globs[i].match(e.Type) {
				return true
			}
		}
		return false
	case keyProduct:
		for i := range m.globs {
			if m.globs[i].matchProduct(e.ProductID) {
				return true
			}
		}
		return false
	}
	v := m.value(e)
	for _, want := range m.values {
		if v == want {
			return true
		}
	}
	return false
}

// miss explains why a `match` key failed: "type RENEWAL not in
// [INITIAL_PURCHASE]", "entitlement [premium] has none of [pro]".
func (m *matcher) miss(e *event.Event) string {
	v, ok := m.cacheKey(e)
	if !ok {
		return "entitlement [" + strings.Join(e.Entitlements, ", ") + "] has none of " + m.list
	}
	if v == "" {
		return m.none
	}
	if r, ok := m.misses.lookup(v); ok {
		return r
	}
	var r string
	if m.key == keyEntitlement {
		r = "entitlement [" + v + "] has none of " + m.list
	} else {
		r = m.key.String() + " " + v + m.notIn
	}
	m.misses.store(v, r)
	return r
}

// hit explains why an `exclude` key matched: "store PROMOTIONAL in
// [PROMOTIONAL]", after prefix (the same for every call on one matcher).
func (m *matcher) hit(e *event.Event, prefix string) string {
	v, ok := m.cacheKey(e)
	if !ok {
		return prefix + "entitlement [" + strings.Join(e.Entitlements, ", ") + "] has one of " + m.list
	}
	if r, ok := m.hits.lookup(v); ok {
		return r
	}
	var r string
	if m.key == keyEntitlement {
		r = prefix + "entitlement [" + v + "] has one of " + m.list
	} else {
		r = prefix + m.key.String() + " " + v + " in " + m.list
	}
	m.hits.store(v, r)
	return r
}

// cacheKey is the event value a reason depends on; false for several
// entitlements, whose reasons are built each time (they are rare).
func (m *matcher) cacheKey(e *event.Event) (string, bool) {
	if m.key != keyEntitlement {
		return m.value(e), true
	}
	switch len(e.Entitlements) {
	case 0:
		return "", true
	case 1:
		return e.Entitlements[0], true
	}
	return "", false
}

// reasonCacheLimit bounds the values a reasonCache remembers, so unusual
// values (every country, every product) cannot grow it without end; past
// it, reasons are built per event.
const reasonCacheLimit = 64

// reasonCache maps an event value to the reason text built for it, so the
// thousandth RENEWAL passing a route for INITIAL_PURCHASE costs a lookup,
// not a new string. Copy-on-write: readers never lock. last short-cuts the
// map during a run of equal values (a renewal wave).
type reasonCache struct {
	m    atomic.Pointer[map[string]*reasonEntry]
	last atomic.Pointer[reasonEntry]
}

type reasonEntry struct{ value, reason string }

func (c *reasonCache) lookup(v string) (string, bool) {
	if l := c.last.Load(); l != nil && l.value == v {
		return l.reason, true
	}
	if m := c.m.Load(); m != nil {
		if e, ok := (*m)[v]; ok {
			c.last.Store(e)
			return e.reason, true
		}
	}
	return "", false
}

func (c *reasonCache) store(v, reason string) {
	e := &reasonEntry{value: v, reason: reason}
	c.last.Store(e)
	for {
		old := c.m.Load()
		var n map[string]*reasonEntry
		if old == nil {
			n = map[string]*reasonEntry{v: e}
		} else {
			if len(*old) >= reasonCacheLimit {
				return
			}
			n = make(map[string]*reasonEntry, len(*old)+1)
			for k, r := range *old {
				n[k] = r
			}
			n[v] = e
		}
		if c.m.CompareAndSwap(old, &n) {
			return
		}
	}
}

// routeGlob is a pattern where "*" stands for any run of characters
// (":" and "." included) and "?" for exactly one.
type routeGlob struct {
	pattern string
	kind    globKind
	lit     string // the literal part, for the kinds other than globGeneral
	colon   bool   // the pattern names a Play base plan ("premium:*")
}

// globKind sorts patterns by shape so that the common ones ("RENEWAL",
// "PAYWALL_*", "*_PURCHASE", "*monthly*") are one strings call.
type globKind uint8

const (
	globLiteral  globKind = iota // RENEWAL
	globPrefix                   // PAYWALL_*
	globSuffix                   // *_PURCHASE
	globContains                 // *monthly*
	globGeneral                  // anything else, matched by wildcard
)

func newRouteGlob(p string) routeGlob {
	g := routeGlob{pattern: p, kind: globGeneral, colon: strings.Contains(p, ":")}
	rest := strings.TrimLeft(p, "*")
	lead := len(p) - len(rest)
	g.lit = strings.TrimRight(rest, "*")
	trail := len(rest) - len(g.lit)
	switch {
	case strings.ContainsAny(g.lit, "*?"):
	case lead == 0 && trail == 0:
		g.kind = globLiteral
	case lead == 0:
		g.kind = globPrefix
	case trail == 0:
		g.kind = globSuffix
	default:
		g.kind = globContains
	}
	return g
}

func (g *routeGlob) match(s string) bool {
	switch g.kind {
	case globLiteral:
		return s == g.lit
	case globPrefix:
		return strings.HasPrefix(s, g.lit)
	case globSuffix:
		return strings.HasSuffix(s, g.lit)
	case globContains:
		return strings.Contains(s, g.lit)
	}
	return wildcard(g.pattern, s)
}

// matchProduct also matches a Play Store id ("premium:monthly-autorenew",
// subscription id and base plan) by its subscription id, unless the pattern
// itself names a base plan: `product: premium` means every plan of premium.
func (g *routeGlob) matchProduct(id string) bool {
	if g.match(id) {
		return true
	}
	if g.colon {
		return false
	}
	if i := strings.IndexByte(id, ':'); i >= 0 {
		return g.match(id[:i])
	}
	return false
}

// wildcard matches s against a pattern of literals, "*" and "?", without
// allocating: on a mismatch it backtracks to the last "*" and lets it take
// one more character.
func wildcard(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == '?':
			_, n := utf8.DecodeRuneInString(s[si:])
			pi, si = pi+1, si+n
		case pi < len(p) && p[pi] == s[si]:
			pi, si = pi+1, si+1
		case star >= 0:
			_, n := utf8.DecodeRuneInString(s[mark:])
			mark += n
			pi, si = star+1, mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
