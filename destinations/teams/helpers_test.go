package teams

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

// hookSig is the signature of the test Workflows URL: the credential.
const hookSig = "wOrKfLoWsSiGnAtUrE-s3cr3t_0123456789"

// hookPath is a Workflows trigger URL without its host.
const hookPath = "/workflows/0f1e2d3c4b5a69788796a5b4c3d2e1f0/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=" + hookSig

type reply = destinationstest.Reply

var (
	newFake  = destinationstest.NewServer
	purchase = chattest.Purchase
)

// answer is a reply, in the tables' short form.
func answer(status int, header map[string]string, body string) reply {
	return reply{Status: status, Header: header, Body: body}
}

func newDestination(t *testing.T, base string, cfg Config) *Destination {
	t.Helper()
	cfg.WebhookURL = secret.Secret(base + hookPath)
	d, err := New("teams-test", cfg, destinations.Options{Version: "test", MaxBody: 1 << 16})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// build is the destination under test for chattest's shared checks.
func build(t *testing.T, base string, timeout time.Duration) destinations.Destination {
	t.Helper()
	d, err := New("teams-test", Config{WebhookURL: secret.Secret(base + hookPath)}, destinations.Options{Timeout: timeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}
