package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rcrouter/rcrouter/internal/testutil"
)

// dumpDoc sets every secret of the schema, each to a distinct value, most
// of them through the environment as a real file would.
const dumpDoc = `inbound:
  authorization: ["${AUTH_1}", "${AUTH_2}"]
  signing_secret: "${RC_SIGNING}"
admin:
  token: "${ADMIN}"
storage:
  driver: postgres
  dsn: "postgres://rcrouter:${PG_PASSWORD}@db/rcrouter"
defaults:
  retry: {max_interval: 90m}
destinations:
  seg:
    segment: {write_key: "${SEGMENT_KEY}"}
  slack-hook:
    slack: {webhook_url: "https://hooks.slack.com/services/T0/B0/${SLACK_PATH}"}
  slack-bot:
    slack: {token: "${SLACK_TOKEN}", channel: "#wins"}
    rate_limit: 2
  wh:
    webhook:
      url: https://example.com/in
      headers: {X-Api-Key: "${WH_KEY}"}
      signing_secret: "${WH_SIGNING}"
  archive:
    file: {path: events.jsonl}
routes:
  - name: all
    match: {type: "PAYWALL_*"}
    exclude: {store: PROMOTIONAL}
    when: price != nil
    to: [seg, slack-hook, slack-bot, wh, archive]
`

var dumpSecrets = map[string]string{
	"AUTH_1": "auth-value-one", "AUTH_2": "auth-value-two", "RC_SIGNING": "rc-signing-value",
	"ADMIN": "admin-token-value", "PG_PASSWORD": "pg-password-value", "SEGMENT_KEY": "segment-key-value",
	"SLACK_PATH": "slack-path-value", "SLACK_TOKEN": "xoxb-slack-token-value", "WH_KEY": "wh-key-value",
	"WH_SIGNING": "wh-signing-value",
}

func TestDumpHidesSecrets(t *testing.T) {
	cfg, err := Parse([]byte(dumpDoc), "conf/rcrouter.yaml", env(dumpSecrets), testTypes())
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Dump()
	if err != nil {
		t.Fatal(err)
	}
	for name, value := range dumpSecrets {
		if strings.Contains(string(out), value) {
			t.Errorf("dump contains the value of %s", name)
		}
	}
	// authorization ×2, signing_secret, token, dsn, write_key, webhook_url,
	// token, header, signing_secret.
	if n := strings.Count(string(out), "<secret>"); n != 10 {
		t.Errorf("dump has %d <secret> values, want 10", n)
	}
	testutil.Golden(t, filepath.Join("testdata", "dump.golden"), []byte(strings.ReplaceAll(string(out), cfg.Dir, "<dir>")), *update)
}
