package webhook

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

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

// Validate checks the block and returns every problem, joined
// (errors.Join); each one starts with the YAML key it is about ("url: …").
// No message quotes a secret or the URL (it may hold credentials).
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.URL == "" {
		add("url: is required")
	} else if u, err := url.Parse(c.URL); err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the URL, which may hold credentials
		}
		add("url: %w", err)
	} else if u.Scheme != "http" && u.Scheme != "https" {
		add("url: must be an absolute http or https URL")
	} else if u.Host == "" {
		add("url: has no host")
	}

	if c.Method != "" && !validMethod(c.Method) {
		add("method: %q is not one of %s", c.Method, strings.Join(Methods, ", "))
	}

	switch c.body() {
	case BodyRaw, BodyNormalized:
		if c.Template != "" {
			add("template: is only used with body: template (body is %s)", c.body())
		}
	case BodyTemplate:
		if c.Template == "" {
			add("template: is required when body is template")
		} else if err := checkTemplate(c.Template); err != nil {
			add("template: %w", err)
		}
	default:
		add("body: %q is not one of raw, normalized, template", c.Body)
	}

	for name := range c.Headers {
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			add("headers: %q is not a valid header name", name)
		}
	}

	if c.SigningSecret != "" {
		if _, err := signingKey(c.SigningSecret); err != nil {
			add("signing_secret: %w", err)
		}
	}
	return errors.Join(errs...)
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
