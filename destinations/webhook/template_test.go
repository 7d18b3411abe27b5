package webhook

import (
	"encoding/json"
	"testing"
)

func TestTemplateFunctions(t *testing.T) {
	ev := testEvent()
	ev.Extra = map[string]json.RawMessage{"paywall_id": json.RawMessage(`"pw_1"`)}
	tests := []struct {
		name string
		tmpl string
		want string
	}{
		{"toJson string", `{{toJson .app_user_id}}`, `"u\"1\u003c/script\u003e"`},
		{"toJson list", `{{toJson .entitlements}}`, `["pro","gold"]`},
		{"toJson missing", `{{toJson .nothing}}`, `null`},
		{"numbers keep their text", `{{.event_timestamp_ms}} {{.price}}`, `1769904130000 9.99`},
		{"default on missing", `{{.nothing | default "x"}}`, `x`},
		{"default on empty string", `{{.country_code | default "ZZ"}}`, `ZZ`},
		{"default keeps a value", `{{.currency | default "EUR"}}`, `USD`},
		{"default keeps false? no: false is empty", `{{.is_refund | default "n/a"}}`, `n/a`},
		{"upper lower", `{{upper .lifecycle}} {{lower .store}}`, `RENEWED app_store`},
		{"upper of missing", `[{{upper .nothing}}]`, `[]`},
		{"join", `{{.entitlements | join ", "}}`, `pro, gold`},
		{"join missing", `[{{join "," .nothing}}]`, `[]`},
		{"extra fields", `{{.extra.paywall_id}}`, `pw_1`},
		{"raw envelope", `{{.raw.api_version}} {{.raw.event.store}}`, `1.0 APP_STORE`},
		{"missing key prints <no value>", `{{.nothing}}`, `<no value>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := parseTemplate(tt.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			data, err := templateData(ev)
			if err != nil {
				t.Fatal(err)
			}
			var b []byte
			buf := &byteWriter{&b}
			if err := tmpl.Execute(buf, data); err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("rendered %q, want %q", b, tt.want)
			}
		})
	}
}

type byteWriter struct{ b *[]byte }

func (w *byteWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

func TestSampleEventsRenderToJSON(t *testing.T) {
	// The samples themselves are sound: each normalizes and passes through.
	for _, e := range sampleEvents() {
		if !json.Valid(e.Raw) {
			t.Errorf("%s sample raw is not JSON", e.Type)
		}
		tmpl, err := parseTemplate(`{{toJson .}}`)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := render(tmpl, e); err != nil {
			t.Errorf("%s: %v", e.Type, err)
		}
	}
}
