package teams

import (
	"net/url"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Config is the `teams:` block of a destination.
type Config struct {
	// WebhookURL is a Teams Workflows webhook ("When a Teams webhook request
	// is received": …/workflows/<id>/triggers/manual/paths/invoke?…&sig=…)
	// or a legacy incoming-webhook URL. It is the credential: it is shown as
	// scheme://host/<secret>.
	WebhookURL secret.Secret `yaml:"webhook_url"`
	// Template overrides the default card: Go text/template rendering the
	// JSON of one Adaptive Card from the normalized event.
	Template string `yaml:"template"`
}

var _ destinations.Block = (*Config)(nil)

// Validate checks the block: an http(s) webhook URL, and a template that
// renders a valid card for every sample event (checked once the URL is
// right). No message quotes the URL.
func (c *Config) Validate() destinations.Problems {
	var p destinations.Problems
	switch u, err := url.Parse(c.WebhookURL.Value()); {
	case c.WebhookURL == "":
		p.Add("webhook_url", "required (the HTTP URL of a Teams Workflows webhook trigger)")
	case err != nil || destinations.CheckURL(c.WebhookURL.Value(), false) != "" || u.User != nil:
		p.Add("webhook_url", "must be an absolute http(s) URL")
	}
	if c.Template != "" && len(p) == 0 {
		if _, err := parseTemplate(c.Template); err != nil {
			p.Add("template", "%v", err)
		}
	}
	return p
}
