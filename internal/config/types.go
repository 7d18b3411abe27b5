// Package config loads, expands, strictly decodes, defaults and validates the
// YAML configuration (DESIGN §4). Load reports every problem at once as
// "<file>:<line>: <yaml.path>: <message>".
package config

import (
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Config is the whole configuration file, after defaults.
type Config struct {
	Server       Server                  `yaml:"server"`
	Inbound      Inbound                 `yaml:"inbound"`
	Admin        Admin                   `yaml:"admin"`
	Storage      Storage                 `yaml:"storage"`
	Defaults     Options                 `yaml:"defaults"`
	Destinations map[string]*Destination `yaml:"destinations"`
	Routes       []Route                 `yaml:"routes"`

	// Path is the file it was loaded from; Dir its directory (relative paths
	// in the file are resolved against Dir).
	Path string `yaml:"-"`
	Dir  string `yaml:"-"`
	// Names lists destination names in file order.
	Names []string `yaml:"-"`
	// SHA256 is the hex SHA-256 of the file's bytes as read, before ${VAR}
	// expansion: replicas sharing one file with per-replica environments
	// agree on it (config_sha256 of GET /api/v1/replicas).
	SHA256 string `yaml:"-"`
}

// Server is the `server:` block.
type Server struct {
	Listen       string `yaml:"listen"`         // default 127.0.0.1:8080
	WebhookPath  string `yaml:"webhook_path"`   // default /webhooks/revenuecat
	MaxBodyBytes int64  `yaml:"max_body_bytes"` // default 1048576
	// MaxConnections caps concurrent client connections; 0 means the
	// default, derived from the process's file descriptor limit.
	MaxConnections int `yaml:"max_connections"`
	// TrustedProxies are the addresses or CIDRs of reverse proxies whose
	// X-Forwarded-Proto (Secure cookies) and X-Forwarded-For (login
	// throttle) are believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Replica names this process in the dispatch log, its leases and
	// /api/v1/replicas; empty means <hostname>-<pid>.
	Replica string `yaml:"replica"`
}

// Inbound is the `inbound:` block: how RevenueCat's requests are checked.
type Inbound struct {
	Authorization        []secret.Secret `yaml:"authorization"`
	SigningSecret        secret.Secret   `yaml:"signing_secret"`
	AllowUnauthenticated bool            `yaml:"allow_unauthenticated"`
}

// Admin is the `admin:` block.
type Admin struct {
	Token secret.Secret `yaml:"token"`
}

// Storage is the `storage:` block.
type Storage struct {
	Driver    string        `yaml:"driver"`    // sqlite (default) | postgres
	Path      string        `yaml:"path"`      // sqlite; default data/rcrouter.db, relative to Dir
	DSN       secret.Secret `yaml:"dsn"`       // postgres
	MaxConns  int           `yaml:"max_conns"` // postgres: pool size per replica; 0 means 16
	Retention time.Duration `yaml:"retention"`
	// DispatchBodyBytes truncates request and response bodies kept in the
	// dispatch log (default 4096).
	DispatchBodyBytes int `yaml:"dispatch_body_bytes"`
}

// Options are the delivery options every destination inherits from
// `defaults:` and may override field by field.
type Options struct {
	Timeout        time.Duration  `yaml:"timeout"`     // default 10s
	Concurrency    int            `yaml:"concurrency"` // default 4
	RateLimit      float64        `yaml:"rate_limit"`  // requests per second, 0 = unlimited (Slack: 1)
	Retry          Retry          `yaml:"retry"`
	CircuitBreaker CircuitBreaker `yaml:"circuit_breaker"`
}

// Retry is the retry policy.
type Retry struct {
	MaxAttempts     int           `yaml:"max_attempts"`     // default 12
	InitialInterval time.Duration `yaml:"initial_interval"` // default 5s
	MaxInterval     time.Duration `yaml:"max_interval"`     // default 1h
	MaxElapsedTime  time.Duration `yaml:"max_elapsed_time"` // default 72h
}

// CircuitBreaker is the breaker policy.
type CircuitBreaker struct {
	FailureThreshold int           `yaml:"failure_threshold"` // default 10
	OpenFor          time.Duration `yaml:"open_for"`          // default 30s
}

// Destination is one entry of `destinations:`: exactly one type block, plus
// the resolved Options (defaults merged with this destination's overrides).
type Destination struct {
	Name string `yaml:"-"`
	Type string `yaml:"-"` // the name of its destinations.Type ("segment")
	// Block is the decoded type block, a pointer to the adapter's Config
	// (*segment.Config for type segment); Dump prints it under Type.
	Block destinations.Block `yaml:"-"`
	// Options are inline so that Dump prints them where the file has them.
	Options Options `yaml:",inline"`
}

// Route is one entry of `routes:`.
type Route struct {
	Name    string   `yaml:"name"`
	Match   Matchers `yaml:"match,omitempty"`
	Exclude Matchers `yaml:"exclude,omitempty"`
	When    string   `yaml:"when,omitempty"`
	To      []string `yaml:"to"`
	Stop    bool     `yaml:"stop,omitempty"`
}

// Matchers are the keys of `match:` and `exclude:`. Each is any-of; keys are
// all-of. A string in YAML is a one-element list.
type Matchers struct {
	Type        []string `yaml:"type,omitempty"` // glob
	Lifecycle   []string `yaml:"lifecycle,omitempty"`
	Entitlement []string `yaml:"entitlement,omitempty"`
	Environment []string `yaml:"environment,omitempty"`
	Store       []string `yaml:"store,omitempty"`
	Product     []string `yaml:"product,omitempty"` // glob
	AppID       []string `yaml:"app_id,omitempty"`
	Country     []string `yaml:"country,omitempty"`
	PeriodType  []string `yaml:"period_type,omitempty"`
}

// IsZero reports whether no key is set. An empty `match` matches every
// event; an empty `exclude` excludes none.
func (m Matchers) IsZero() bool {
	return len(m.Type)+len(m.Lifecycle)+len(m.Entitlement)+len(m.Environment)+len(m.Store)+
		len(m.Product)+len(m.AppID)+len(m.Country)+len(m.PeriodType) == 0
}
