package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const value = "sk_live_very-secret-5e6f"

func TestSecretNeverPrints(t *testing.T) {
	s := Secret(value)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "key", s)
	j, _ := json.Marshal(struct{ K Secret }{s})
	y, _ := yaml.Marshal(struct{ K Secret }{s})
	txt, _ := s.MarshalText()
	tests := []struct{ name, got string }{
		{"%v", fmt.Sprintf("%v", s)},
		{"%s", fmt.Sprintf("%s", s)},
		{"%q", fmt.Sprintf("%q", s)},
		{"%#v", fmt.Sprintf("%#v", s)},
		{"%+v in a struct", fmt.Sprintf("%+v", struct{ K Secret }{s})},
		{"json", string(j)},
		{"yaml", string(y)},
		{"text", string(txt)},
		{"slog", logs.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// encoding/json escapes < and > as \u003c and \u003e.
			shown := strings.Contains(tt.got, Redacted) || strings.Contains(tt.got, `\u003csecret\u003e`)
			if strings.Contains(tt.got, value) || !shown {
				t.Errorf("%s printed %q", tt.name, tt.got)
			}
		})
	}
	if s.Value() != value {
		t.Errorf("Value() = %q", s.Value())
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		name, in, want string
		secrets        []Secret
	}{
		{"replaces every occurrence", "a " + value + " b " + value, "a <secret> b <secret>", []Secret{value}},
		{"several secrets", "x=abcd y=efgh", "x=<secret> y=<secret>", []Secret{"abcd", "efgh"}},
		{"short values are left alone", "a b c", "a b c", []Secret{"a", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Redact(tt.in, tt.secrets...); got != tt.want {
				t.Errorf("Redact = %q, want %q", got, tt.want)
			}
		})
	}
}
