package slack

import "github.com/rcrouter/rcrouter/internal/secret"

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
