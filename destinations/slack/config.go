package slack

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/rcrouter/rcrouter/internal/secret"
)

// Config is the `slack:` block of a destination: either WebhookURL
// (incoming webhook) or Token and Channel (bot, chat.postMessage).
type Config struct {
	WebhookURL secret.Secret `yaml:"webhook_url"`
	Token      secret.Secret `yaml:"token"`
	Channel    string        `yaml:"channel"`
	APIURL     string        `yaml:"api_url"` // default https://slack.com/api/ (tests point it at httptest)
	// ProjectID, when set, links customers to the RevenueCat dashboard.
	ProjectID string `yaml:"project_id"`
	// Template overrides the default message: Go text/template rendering
	// Block Kit JSON (an array of blocks) from the normalized event.
	Template string `yaml:"template"`
}

// DefaultAPIURL is Slack's Web API.
const DefaultAPIURL = "https://slack.com/api/"

// Validate checks the block: exactly one mode, URLs that parse, and a
// template that renders valid Block Kit for every sample event. Each joined
// error starts with the key it is about; none quotes a secret.
func (c Config) Validate() error {
	var errs []error
	webhook, token := c.WebhookURL.Value() != "", c.Token.Value() != ""
	switch {
	case webhook && (token || c.Channel != ""):
		errs = append(errs, errors.New("webhook_url: set either webhook_url, or token and channel, not both"))
	case !webhook && !token:
		errs = append(errs, errors.New("webhook_url: set webhook_url (incoming webhook) or token and channel (bot)"))
	case token && c.Channel == "":
		errs = append(errs, errors.New("channel: is required with token"))
	}
	if webhook && !isHTTPURL(c.WebhookURL.Value()) {
		errs = append(errs, errors.New("webhook_url: is not an http(s) URL"))
	}
	if c.APIURL != "" && !isHTTPURL(c.APIURL) {
		errs = append(errs, fmt.Errorf("api_url: %q is not an http(s) URL", c.APIURL))
	}
	if c.Template != "" {
		if _, err := parseTemplate(c.Template); err != nil {
			errs = append(errs, fmt.Errorf("template: %w", err))
		}
	}
	return errors.Join(errs...)
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
}
