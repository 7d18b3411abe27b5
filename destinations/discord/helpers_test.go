package discord

import (
	"flag"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/destinationstest"
	"github.com/rcrouter/rcrouter/destinations/internal/chat/chattest"
	"github.com/rcrouter/rcrouter/internal/secret"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current output")

// hookToken is the test webhook's token, the last segment of hookPath.
const hookToken = "dIsCoRdWeBhOoKtOkEn-s3cr3t_0123456789abcdefghijklmnop"

const hookPath = "/api/webhooks/112233445566778899/" + hookToken

type reply = destinationstest.Reply

var (
	newFakeDiscord = destinationstest.NewServer
	purchase       = chattest.Purchase
)

func newDestination(t *testing.T, base string, cfg Config) *Destination {
	t.Helper()
	cfg.WebhookURL = secret.Secret(base + hookPath)
	d, err := New("discord-test", cfg, destinations.Options{Version: "test", MaxBody: 1 << 16})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// build is the destination under test for chattest's shared checks.
func build(t *testing.T, base string, timeout time.Duration) destinations.Destination {
	t.Helper()
	d, err := New("discord-test", Config{WebhookURL: secret.Secret(base + hookPath)}, destinations.Options{Timeout: timeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}
