package webhook

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
)

func TestValidate(t *testing.T) {
	const u = "https://example.internal/hooks/revenuecat"
	tests := []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"minimal", Config{URL: u}, ""},
		{"every field", Config{URL: "http://127.0.0.1:9000/x", Method: "PATCH", Body: BodyTemplate,
			Template: `{"id": {{toJson .id}}, "price": {{toJson .price}}}`,
			Headers:  map[string]secret.Secret{"X-Api-Key": "k"}, SigningSecret: secret.Secret("whsec_" + b64("key"))}, ""},
		{"lower-case method", Config{URL: u, Method: "delete"}, ""},
		{"normalized", Config{URL: u, Body: BodyNormalized}, ""},
		{"raw signing secret", Config{URL: u, SigningSecret: "not-prefixed"}, ""},
		{"template over the TRANSFER sample", Config{URL: u, Body: BodyTemplate,
			Template: `{"product": {{.product_id | default "none" | toJson}}, "to": {{toJson .transferred_to}}}`}, ""},

		{"no url", Config{}, "url: required"},
		{"relative url", Config{URL: "/hooks"}, "url: must be an absolute http(s) URL"},
		{"other scheme", Config{URL: "ftp://example.com/x"}, "url: must be an absolute http(s) URL"},
		{"no host", Config{URL: "https:///path"}, "url: must be an absolute http(s) URL"},
		{"unparsable url, credentials not echoed", Config{URL: "https://user:s3cr3t@[::1/x"}, "url: must be an absolute http(s) URL"},
		{"bad method", Config{URL: u, Method: "TRACE"}, `method: must be GET, POST, PUT, PATCH or DELETE, got "TRACE"`},
		{"bad body", Config{URL: u, Body: "xml"}, `body: must be raw, normalized or template, got "xml"`},
		{"template without body template", Config{URL: u, Template: `{}`}, "template: only used with body: template"},
		{"body template without template", Config{URL: u, Body: BodyTemplate}, "template: required with body: template"},
		{"template syntax", Config{URL: u, Body: BodyTemplate, Template: `{"a": {{.id}`},
			`template: template: body:1: bad character U+007D '}'`},
		{"unknown function", Config{URL: u, Body: BodyTemplate, Template: `{{env "HOME"}}`},
			`template: template: body:1: function "env" not defined`},
		{"template output not JSON", Config{URL: u, Body: BodyTemplate, Template: `{"user": {{.app_user_id}}`},
			"template: rendering a sample RENEWAL event: output is not valid JSON: unexpected end of JSON input"},
		{"template breaks on the TRANSFER sample", Config{URL: u, Body: BodyTemplate, Template: `{"price": {{.price}}}`},
			"template: rendering a sample TRANSFER event: output is not valid JSON: invalid character '<' looking for beginning of value"},
		{"template execution error", Config{URL: u, Body: BodyTemplate, Template: `{{join "," .type}}`},
			`template: rendering a sample RENEWAL event: template: body:1:2: executing "body" at <join "," .type>: error calling join: join: string is not a list`},
		{"bad header name", Config{URL: u, Headers: map[string]secret.Secret{"X Bad": "v"}}, `headers: "X Bad" is not a valid header name`},
		// Issue #16: a value that would split the header fails validate.
		{"header value with LF", Config{URL: u, Headers: map[string]secret.Secret{"X-Api-Key": "k\nX-Injected: 1"}}, "headers.X-Api-Key: must be one line (the value contains CR or LF)"},
		{"header value with CR", Config{URL: u, Headers: map[string]secret.Secret{"X-Api-Key": "k\r"}}, "headers.X-Api-Key: must be one line (the value contains CR or LF)"},
		{"whsec not base64", Config{URL: u, SigningSecret: "whsec_***"}, "signing_secret: the part after whsec_ is not valid base64"},
		{"whsec empty key", Config{URL: u, SigningSecret: "whsec_"}, "signing_secret: the key after whsec_ is empty"},
		{"every problem at once", Config{URL: "x", Method: "GOT", Body: "yaml", SigningSecret: "whsec_!"},
			"url: must be an absolute http(s) URL\n" +
				`method: must be GET, POST, PUT, PATCH or DELETE, got "GOT"` + "\n" +
				`body: must be raw, normalized or template, got "yaml"` + "\n" +
				"signing_secret: the part after whsec_ is not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate().Err()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	_, err := New("warehouse", Config{URL: "ftp://x"}, Options{})
	if err == nil || err.Error() != `webhook: url: must be an absolute http(s) URL` {
		t.Errorf("New error = %v", err)
	}
}

func TestNewDefaults(t *testing.T) {
	d, err := New("w", Config{URL: "https://example.com/"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.method != "POST" || d.mode != BodyRaw || d.timeout != destinations.DefaultTimeout || d.userAgent != "rcrouter/dev" {
		t.Errorf("method %s mode %s timeout %v ua %s", d.method, d.mode, d.timeout, d.userAgent)
	}
	c := d.client
	if c.RetryMax != 2 || c.RetryWaitMin != 250*time.Millisecond || c.RetryWaitMax != 2*time.Second {
		t.Errorf("retry %d wait %v–%v", c.RetryMax, c.RetryWaitMin, c.RetryWaitMax)
	}
	// Never the library's default stderr logger: ours, discarding by default.
	if _, ok := c.Logger.(leveledLogger); !ok {
		t.Errorf("logger = %T, want leveledLogger", c.Logger)
	}
	if d.ownBase == nil || d.ownBase.MaxIdleConnsPerHost != 64 || d.ownBase == http.DefaultTransport {
		t.Errorf("base transport = %+v", d.ownBase)
	}
	if c.HTTPClient.Timeout != destinations.DefaultTimeout {
		t.Errorf("http timeout = %v", c.HTTPClient.Timeout)
	}
	if err := c.HTTPClient.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Errorf("CheckRedirect = %v, want ErrUseLastResponse", err)
	}
}
