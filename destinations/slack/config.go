package slack

import (
	"net/url"

	"github.com/rcrouter/rcrouter/destinations"
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

var _ destinations.Block = (*Config)(nil)

// Validate checks the block: exactly one mode, URLs that parse, a token that
// fits a header, and a template that renders valid Block Kit for every
// sample event. No message quotes a secret
// or URL credentials.
func (c *Config) Validate() destinations.Problems {
	var p destinations.Problems
	hasURL, hasBot := c.WebhookURL != "", c.Token != "" || c.Channel != ""
	switch {
	case hasURL && hasBot:
		p.Add("", "set either webhook_url, or token and channel, not both")
	case !hasURL && !hasBot:
		p.Add("", "set webhook_url (incoming webhook), or token and channel (bot)")
	case hasBot && c.Token == "":
		p.Add("token", "required with channel")
	case hasBot && c.Channel == "":
		p.Add("channel", "required with token")
	}
	if hasURL {
		// The URL is the credential: never quote it.
		if u, err := url.Parse(c.WebhookURL.Value()); destinations.CheckURL(c.WebhookURL.Value(), false) != "" || err != nil || u.User != nil {
			p.Add("webhook_url", "must be an absolute http(s) URL")
		}
	}
	if destinations.HasLineBreak(c.Token.Value()) {
		p.Add("token", "must be one line (it contains CR or LF)") // it travels in the Authorization header
	}
	if c.APIURL != "" {
		if msg := destinations.CheckURL(c.APIURL, true); msg != "" {
			p.Add("api_url", "%s", msg)
		} else if u, _ := url.Parse(c.APIURL); u.User != nil {
			p.Add("api_url", "must not hold credentials (user:password@); the bot authenticates with token")
		}
	}
	if c.Template != "" {
		if _, err := parseTemplate(c.Template); err != nil {
			p.Add("template", "%v", err)
		}
	}
	return p
}

// Type is the `slack:` destination type. Slack allows about one message
// per second per webhook or channel, hence rate_limit 1 by default.
func Type() destinations.Type {
	return destinations.Type{
		Name:      "slack",
		Config:    func() destinations.Block { return &Config{} },
		RateLimit: 1,
		New: func(name string, b destinations.Block, o destinations.Options) (destinations.Destination, error) {
			return New(name, *b.(*Config), o)
		},
	}
}
