package webhook

import (
	"encoding/base64"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Config is the `webhook:` block of a destination.
//
// Body modes:
//   - raw: the exact bytes RevenueCat posted (the {"api_version","event"} envelope).
//   - normalized: the normalized event (event.Event) as JSON.
//   - template: Template, a Go text/template, rendered and sent as JSON.
//
// Template data is the normalized event decoded from its JSON into a map, so
// fields are addressed by their JSON names ({{.app_user_id}}, {{.price}},
// {{.entitlements}}, {{.extra.paywall_id}}); numbers keep their exact text.
// One key is added: .raw, RevenueCat's envelope decoded the same way
// ({{.raw.api_version}}, {{.raw.event.offer_code}}). A missing key yields the
// zero value (missingkey=zero), which prints as "<no value>"; use toJson or
// default for fields that may be absent. Functions: toJson (JSON of any
// value, the safe way to insert strings), default (`.x | default "y"`),
// upper, lower, join (`.entitlements | join ","`). The output must be valid
// JSON; Validate renders the template against sample events to prove it.
//
// Method defaults to POST; the body is sent with every method. Redirects are
// not followed (a 3xx is a permanent failure), so header values never reach
// another host.
//
// SigningSecret turns on Standard Webhooks signing (webhook-id,
// webhook-timestamp, webhook-signature headers). A value starting with
// "whsec_" is the base64 (standard encoding) of the key, as the Standard
// Webhooks libraries generate it; any other value is used as the key bytes
// as they are.
type Config struct {
	URL     string                   `yaml:"url"`
	Method  string                   `yaml:"method"`  // default POST
	Headers map[string]secret.Secret `yaml:"headers"` // values are secrets
	// Body is raw (RevenueCat's bytes), normalized (the normalized event as
	// JSON) or template (Template rendered as JSON). Default raw.
	Body     string `yaml:"body"`
	Template string `yaml:"template"`
	// SigningSecret enables Standard Webhooks signing (whsec_<base64> or raw).
	SigningSecret secret.Secret `yaml:"signing_secret"`
}

// The body modes.
const (
	BodyRaw        = "raw"
	BodyNormalized = "normalized"
	BodyTemplate   = "template"
)

// Methods are the accepted HTTP methods.
var Methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// whsecPrefix marks a Standard Webhooks secret whose key is base64.
const whsecPrefix = "whsec_"

var _ destinations.Block = (*Config)(nil)

// Validate checks the block and returns every problem. No message quotes a
// secret or the URL (it may hold credentials).
func (c *Config) Validate() destinations.Problems {
	var p destinations.Problems
	switch {
	case c.URL == "":
		p.Add("url", "required")
	case destinations.CheckURL(c.URL, false) != "":
		// Not quoted: a URL may carry credentials.
		p.Add("url", "must be an absolute http(s) URL")
	}
	if c.Method != "" && !validMethod(c.Method) {
		p.Add("method", "must be GET, POST, PUT, PATCH or DELETE, got %q", c.Method)
	}
	switch c.Body {
	case "", BodyRaw, BodyNormalized:
		if c.Template != "" {
			p.Add("template", "only used with body: template")
		}
	case BodyTemplate:
		if c.Template == "" {
			p.Add("template", "required with body: template")
		} else if err := checkTemplate(c.Template); err != nil {
			p.Add("template", "%v", err)
		}
	default:
		p.Add("body", "must be raw, normalized or template, got %q", c.Body)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Headers)) {
		switch {
		case name == "" || strings.ContainsAny(name, " \t\r\n:"):
			p.Add("headers", "%q is not a valid header name", name)
		case destinations.HasLineBreak(c.Headers[name].Value()):
			// A line break would end the header and start another one;
			// net/http refuses such a value at every request, so say it now.
			p.Add("headers."+name, "must be one line (the value contains CR or LF)")
		}
	}
	if c.SigningSecret != "" {
		if _, err := signingKey(c.SigningSecret); err != nil {
			p.Add("signing_secret", "%v", err)
		}
	}
	return p
}

// Type is the `webhook:` destination type.
func Type() destinations.Type {
	return destinations.Type{
		Name:   "webhook",
		Config: func() destinations.Block { return &Config{} },
		New: func(name string, b destinations.Block, o destinations.Options) (destinations.Destination, error) {
			return New(name, *b.(*Config), Options{Options: o})
		},
	}
}

// body returns the body mode with its default.
func (c Config) body() string {
	if c.Body == "" {
		return BodyRaw
	}
	return c.Body
}

// method returns the upper-case method with its default.
func (c Config) method() string {
	if c.Method == "" {
		return "POST"
	}
	return strings.ToUpper(c.Method)
}

// validMethod accepts the methods in any case ("post" is a plausible YAML).
func validMethod(m string) bool {
	for _, v := range Methods {
		if strings.EqualFold(m, v) {
			return true
		}
	}
	return false
}

// signingKey returns the HMAC key of a signing secret: the base64-decoded
// part after "whsec_", or the secret's bytes when there is no prefix.
func signingKey(s secret.Secret) ([]byte, error) {
	v := s.Value()
	if !strings.HasPrefix(v, whsecPrefix) {
		return []byte(v), nil
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, whsecPrefix))
	if err != nil {
		// The decoder's error quotes an offset only, but say it plainly.
		return nil, errors.New("the part after whsec_ is not valid base64")
	}
	if len(key) == 0 {
		return nil, errors.New("the key after whsec_ is empty")
	}
	return key, nil
}
