// Package secret provides a string type that never prints its value.
package secret

import (
	"encoding/json"
	"log/slog"
	"strings"
)

// Redacted is how every secret prints.
const Redacted = "<secret>"

// Secret is a configuration value that must never reach logs, API answers,
// the UI, the dispatch log or a config dump. Use Value to read it.
type Secret string

// Value returns the secret itself, for the one place that needs it.
func (s Secret) Value() string { return string(s) }

// String implements fmt.Stringer (and so %v, %s, %q).
func (s Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return Redacted }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(Redacted) }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return Redacted, nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// Redact replaces every occurrence of each non-empty secret in text with
// Redacted. It is the last line of defence for free text (error messages that
// quote a URL, response bodies that echo a header).
func Redact(text string, secrets ...Secret) string {
	for _, s := range secrets {
		if len(s) >= 4 { // shorter values would redact ordinary words
			text = strings.ReplaceAll(text, string(s), Redacted)
		}
	}
	return text
}
