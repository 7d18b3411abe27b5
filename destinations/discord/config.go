package discord

import (
	"net/url"
	"regexp"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// Config is the `discord:` block of a destination.
type Config struct {
	// WebhookURL is the channel webhook, https://discord.com/api/webhooks/<id>/<token>.
	// The token in it is the credential: it is shown as scheme://host/<secret>.
	WebhookURL secret.Secret `yaml:"webhook_url"`
	// Template overrides the default embed: Go text/template rendering a JSON
	// array of Discord embeds from the normalized event.
	Template string `yaml:"template"`
}

// webhookPath is the path of an execute-webhook URL, with or without an API
// version: /api/webhooks/<id>/<token> or /api/v10/webhooks/<id>/<token>.
var webhookPath = regexp.MustCompile(`^/api(/v[0-9]+)?/webhooks/[0-9]+/[^/]+/?$`)

var _ destinations.Block = (*Config)(nil)

// Validate checks the block: a webhook URL of Discord's shape, and a
// template that renders valid embeds for every sample event (checked once
// the URL is right). No message quotes the URL.
func (c *Config) Validate() destinations.Problems {
	var p destinations.Problems
	switch u, err := url.Parse(c.WebhookURL.Value()); {
	case c.WebhookURL == "":
		p.Add("webhook_url", "required (the channel's webhook URL from Discord's Integrations settings)")
	case err != nil || destinations.CheckURL(c.WebhookURL.Value(), false) != "" || u.User != nil:
		p.Add("webhook_url", "must be an absolute http(s) URL")
	case !webhookPath.MatchString(u.Path):
		p.Add("webhook_url", "is not a Discord webhook URL (https://discord.com/api/webhooks/<id>/<token>)")
	}
	if c.Template != "" && len(p) == 0 {
		if _, err := parseTemplate(c.Template); err != nil {
			p.Add("template", "%v", err)
		}
	}
	return p
}
