package webhook

import (
	"errors"
	"net/http"
	"testing"
	"time"

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

		{"no url", Config{}, "url: is required"},
		{"relative url", Config{URL: "/hooks"}, "url: must be an absolute http or https URL"},
		{"other scheme", Config{URL: "ftp://example.com/x"}, "url: must be an absolute http or https URL"},
		{"no host", Config{URL: "https:///path"}, "url: has no host"},
		{"unparsable url, credentials not echoed", Config{URL: "https://user:s3cr3t@[::1/x"}, "url: missing ']' in host"},
		{"bad method", Config{URL: u, Method: "TRACE"}, `method: "TRACE" is not one of GET, POST, PUT, PATCH, DELETE`},
		{"bad body", Config{URL: u, Body: "xml"}, `body: "xml" is not one of raw, normalized, template`},
		{"template without body template", Config{URL: u, Template: `{}`}, "template: is only used with body: template (body is raw)"},
		{"body template without template", Config{URL: u, Body: BodyTemplate}, "template: is required when body is template"},
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
		{"whsec not base64", Config{URL: u, SigningSecret: "whsec_***"}, "signing_secret: the part after whsec_ is not valid base64"},
		{"whsec empty key", Config{URL: u, SigningSecret: "whsec_"}, "signing_secret: the key after whsec_ is empty"},
		{"every problem at once", Config{URL: "x", Method: "GOT", Body: "yaml", SigningSecret: "whsec_!"},
			"url: must be an absolute http or https URL\n" +
				`method: "GOT" is not one of GET, POST, PUT, PATCH, DELETE` + "\n" +
				`body: "yaml" is not one of raw, normalized, template` + "\n" +
				"signing_secret: the part after whsec_ is not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
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
	if err == nil || err.Error() != `webhook "warehouse": url: must be an absolute http or https URL` {
		t.Errorf("New error = %v", err)
	}
}

func TestNewDefaults(t *testing.T) {
	d, err := New("w", Config{URL: "https://example.com/"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.method != "POST" || d.mode != BodyRaw || d.timeout != DefaultTimeout || d.userAgent != "rcrouter/dev" {
		t.Errorf("method %s mode %s timeout %v ua %s", d.method, d.mode, d.timeout, d.userAgent)
	}
	c := d.client
	if c.RetryMax != 2 || c.RetryWaitMin != 250*time.Millisecond || c.RetryWaitMax != 2*time.Second || c.Logger != nil {
		t.Errorf("retry %d wait %v–%v logger %v", c.RetryMax, c.RetryWaitMin, c.RetryWaitMax, c.Logger)
	}
	if d.ownBase == nil || d.ownBase.MaxIdleConnsPerHost != 64 || d.ownBase == http.DefaultTransport {
		t.Errorf("base transport = %+v", d.ownBase)
	}
	if c.HTTPClient.Timeout != DefaultTimeout {
		t.Errorf("http timeout = %v", c.HTTPClient.Timeout)
	}
	if err := c.HTTPClient.CheckRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Errorf("CheckRedirect = %v, want ErrUseLastResponse", err)
	}
}
