package destinations

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/internal/secret"
)

// Type is one kind of destination: the name of its config block, how to
// decode and check that block, and how to build an adapter from it. Each
// adapter package exports a Type() function; the app lists them once
// (internal/app), and config, `validate`, the config dump and the docs learn
// the types from that list. There is no init() registration.
type Type struct {
	// Name is the key of the type block in a destination ("segment").
	Name string
	// Config returns a new, empty block (a pointer to the adapter's Config
	// struct) holding the block's defaults. The config loader fills it from
	// the file by its `yaml` tags, strictly: an unknown key is an error.
	Config func() Block
	// RateLimit is the rate_limit (requests per second) a destination of
	// this type gets unless it sets its own; 0 inherits `defaults:`. Slack
	// allows about one message per second per webhook or channel.
	RateLimit float64
	// New builds a destination from a block that passed Validate. Its
	// errors do not name the destination: the caller does.
	New func(name string, b Block, opts Options) (Destination, error)
}

// Types is the list of known destination types, in the order they are
// offered in messages ("add one of segment, slack, webhook, file").
type Types []Type

// Lookup returns the type whose block is named name.
func (ts Types) Lookup(name string) (Type, bool) {
	for _, t := range ts {
		if t.Name == name {
			return t, true
		}
	}
	return Type{}, false
}

// Names lists the block names.
func (ts Types) Names() []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// Block is a decoded type block.
type Block interface {
	// Validate reports every problem of the block; none quotes a secret or
	// URL credentials.
	Validate() Problems
}

// PathBlock is a Block with file paths, which the config loader makes
// absolute against the config file's directory (resolve) before Validate.
type PathBlock interface {
	Block
	ResolvePaths(resolve func(path string) string)
}

// Problem is one problem of a type block. Key is the YAML path below the
// block ("endpoint", "events.renewd", "headers.X-Api-Key"), or "" for the
// block as a whole; the config loader prefixes the destination's path and
// the line: `config.yaml:14: destinations.seg.segment.endpoint: …`.
type Problem struct {
	Key     string
	Message string
}

// Problems is every problem of one block.
type Problems []Problem

// Add records a problem at key.
func (ps *Problems) Add(key, format string, args ...any) {
	*ps = append(*ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

// Err joins the problems as "key: message" lines, or is nil without any.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	errs := make([]error, len(ps))
	for i, p := range ps {
		if p.Key == "" {
			errs[i] = errors.New(p.Message)
		} else {
			errs[i] = errors.New(p.Key + ": " + p.Message)
		}
	}
	return errors.Join(errs...)
}

// Capabilities are what the scheduler must allow for when it runs one
// destination. The zero value asks for nothing.
type Capabilities struct {
	// Batch is how many Sends the adapter gathers into one request: the
	// scheduler runs at least this many at once, or batches never fill.
	Batch int
	// MaxWait is the longest one Send can take when its context has no
	// earlier deadline (a library's own retries included); a delivery lease
	// must be longer. Zero: the request timeout bounds a Send.
	MaxWait time.Duration
}

// Capable is implemented by adapters whose Capabilities are not zero.
type Capable interface {
	Capabilities() Capabilities
}

// CapabilitiesOf returns what d declares, or the zero Capabilities.
func CapabilitiesOf(d Destination) Capabilities {
	if c, ok := d.(Capable); ok {
		return c.Capabilities()
	}
	return Capabilities{}
}

// DefaultTimeout bounds one HTTP request when Options.Timeout is not set.
const DefaultTimeout = 10 * time.Second

// Options are the runtime settings every adapter gets from the app rather
// than from its config block.
type Options struct {
	Timeout time.Duration // per HTTP request; default DefaultTimeout
	MaxBody int           // bytes of request and response bodies kept per exchange; default DefaultMaxBody
	// Logger receives the adapter's own log lines; the adapter adds the
	// "destination" attribute. Default: a logger that discards everything,
	// so an adapter built without one (tests, tools) stays silent; the app
	// always passes its own.
	Logger  *slog.Logger
	Version string // rcrouter's version, in User-Agent and library info; default "dev"
	// Base sends the HTTP requests; nil means a transport of the adapter's
	// own, closed by its Close.
	Base http.RoundTripper
	// Now is the clock of signing timestamps and Retry-After dates; default time.Now.
	Now func() time.Time
}

// WithDefaults returns o with every unset field at its default.
func (o Options) WithDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// CheckURL returns a problem message for a value that must be an absolute
// http(s) URL, or "". With quote the value is shown ("got …") with anything
// that may be credentials (up to the last "@") as <secret>.
func CheckURL(raw string, quote bool) string {
	u, err := url.Parse(raw)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return ""
	}
	const msg = "must be an absolute http(s) URL"
	if !quote {
		return msg
	}
	return fmt.Sprintf("%s, got %q", msg, hideCredentials(raw))
}

// hideCredentials replaces what stands between the scheme (or the start) and
// the last "@" of a value that is not a valid URL: it does not parse, so its
// user:password@ cannot be told apart any better. It may hide more than the
// credentials, never less.
func hideCredentials(raw string) string {
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return raw
	}
	start := 0
	if i := strings.Index(raw, "//"); i >= 0 && i < at {
		start = i + 2
	}
	return raw[:start] + secret.Redacted + raw[at:]
}

// HideUserinfo prints u with its user:password@ as <secret>@.
func HideUserinfo(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	// url.User would escape the marker as %3Csecret%3E; put it back by hand.
	c.User = url.User("userinfo")
	return strings.Replace(c.String(), "userinfo@", secret.Redacted+"@", 1)
}

// HasLineBreak reports whether s holds CR or LF: such a value cannot be an
// HTTP header value (and would split the header if it could).
func HasLineBreak(s string) bool { return strings.ContainsAny(s, "\r\n") }
