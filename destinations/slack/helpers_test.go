package slack

import (
	"flag"
	"io"
	"log/slog"
	"testing"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/secret"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// webhookPath is the secret part of the test webhook URL.
const webhookPath = "/services/T0TEST/B0TEST/s3cr3tWebhookToken"

const testToken = "xoxb-test-1234567890-abcdef"

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newWebhookDestination(t *testing.T, base string, cfg Config) *Destination {
	t.Helper()
	cfg.WebhookURL = secret.Secret(base + webhookPath)
	d, err := New("slack-test", cfg, destinations.Options{Logger: quietLogger(), Version: "test", MaxBody: 1 << 16})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

func newBotDestination(t *testing.T, base string, cfg Config) *Destination {
	t.Helper()
	cfg.Token = secret.Secret(testToken)
	cfg.Channel = "C0SALES"
	cfg.APIURL = base + "/api" // without the trailing slash on purpose
	d, err := New("slack-bot", cfg, destinations.Options{Logger: quietLogger(), Version: "test", MaxBody: 1 << 16})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// purchase is a paid EUR Play purchase built in code, normalized as ingest would.
func purchase(user string) *event.Event {
	price, local := 10.84, 9.99
	e := &event.Event{
		ID:                       "6F1C2A9E-0000-4E21-9C3A-0D5E8F7A1B22",
		Type:                     event.TypeInitialPurchase,
		AppID:                    "app7c41e09ab2",
		EventTimestampMs:         1767225603000,
		AppUserID:                user,
		ProductID:                "pro_monthly:monthly-autorenew",
		EntitlementIDs:           []string{"pro"},
		PeriodType:               "NORMAL",
		Store:                    "PLAY_STORE",
		Environment:              "PRODUCTION",
		Currency:                 "EUR",
		Price:                    &price,
		PriceInPurchasedCurrency: &local,
		SubscriberAttributes:     map[string]event.Attribute{},
	}
	revenuecat.Normalize(e)
	return e
}
