package discord

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"

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

// Validate checks the block: a webhook URL of Discord's shape and a template
// that renders valid embeds for every sample event. Each joined error starts
// with the key it is about; none quotes the URL.
func (c Config) Validate() error {
	var errs []error
	switch u, err := url.Parse(c.WebhookURL.Value()); {
	case c.WebhookURL.Value() == "":
		errs = append(errs, errors.New("webhook_url: required (the channel's webhook URL from Discord's Integrations settings)"))
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil:
		errs = append(errs, errors.New("webhook_url: is not an http(s) URL"))
	case !webhookPath.MatchString(u.Path):
		errs = append(errs, errors.New("webhook_url: is not a Discord webhook URL (https://discord.com/api/webhooks/<id>/<token>)"))
	}
	if c.Template != "" {
		if _, err := parseTemplate(c.Template); err != nil {
			errs = append(errs, fmt.Errorf("template: %w", err))
		}
	}
	return errors.Join(errs...)
}
