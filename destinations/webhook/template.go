package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"text/template"

	"github.com/rcrouter/rcrouter/internal/event"
)

// funcs is the curated FuncMap of body templates: enough to shape JSON, nothing
// that reaches the environment, the file system or the network.
var funcs = template.FuncMap{
	"toJson":  toJSON,
	"default": defaultValue,
	"upper":   func(v any) string { return strings.ToUpper(text(v)) },
	"lower":   func(v any) string { return strings.ToLower(text(v)) },
	"join":    join,
}

// parseTemplate parses a body template with the curated functions.
func parseTemplate(src string) (*template.Template, error) {
	return template.New("body").Funcs(funcs).Option("missingkey=zero").Parse(src)
}

// render executes t over e and checks that the output is JSON.
func render(t *template.Template, e *event.Event) ([]byte, error) {
	data, err := templateData(e)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	if !json.Valid(out) {
		var v any
		err := json.Unmarshal(out, &v) // for the reason and position
		return nil, fmt.Errorf("output is not valid JSON: %w", err)
	}
	return out, nil
}

// templateData is the normalized event as a map from its JSON (so templates
// use the JSON names), plus "raw": RevenueCat's envelope decoded the same way.
// Numbers stay json.Number so 1769904130000 does not print as 1.76990413e+12.
func templateData(e *event.Event) (map[string]any, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encoding the event: %w", err)
	}
	var data map[string]any
	if err := decodeJSON(b, &data); err != nil {
		return nil, fmt.Errorf("decoding the event: %w", err)
	}
	data["raw"] = nil
	if len(e.Raw) > 0 {
		var raw any
		if err := decodeJSON(e.Raw, &raw); err == nil {
			data["raw"] = raw
		}
	}
	return data, nil
}

func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// toJSON is the JSON of v; the way to put a string into a template safely
// (quotes, backslashes and </script> are escaped).
func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// defaultValue returns v, or def when v is empty (nil, "", 0, false, an
// empty list or map), so `{{.currency | default "USD"}}` reads naturally.
func defaultValue(def, v any) any {
	if empty(v) {
		return def
	}
	return v
}

func empty(v any) bool {
	if v == nil {
		return true
	}
	if n, ok := v.(json.Number); ok {
		f, err := n.Float64()
		return err == nil && f == 0
	}
	return reflect.ValueOf(v).IsZero() || isEmptyCollection(v)
}

func isEmptyCollection(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.Array, reflect.String:
		return rv.Len() == 0
	}
	return false
}

// join joins the elements of a list with sep: `{{.entitlements | join ","}}`.
func join(sep string, list any) (string, error) {
	if list == nil {
		return "", nil
	}
	rv := reflect.ValueOf(list)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return "", fmt.Errorf("join: %T is not a list", list)
	}
	parts := make([]string, rv.Len())
	for i := range parts {
		parts[i] = text(rv.Index(i).Interface())
	}
	return strings.Join(parts, sep), nil
}

// text prints a template value; nil is "".
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return fmt.Sprint(v)
}

// checkTemplate parses src and renders it against sample events (a priced
// RENEWAL and a TRANSFER without product or price), so a template that
// breaks on a common shape is refused when the config loads, not at 3 a.m.
func checkTemplate(src string) error {
	t, err := parseTemplate(src)
	if err != nil {
		return err
	}
	for _, e := range sampleEvents() {
		if _, err := render(t, e); err != nil {
			return fmt.Errorf("rendering a sample %s event: %w", e.Type, err)
		}
	}
	return nil
}

// sampleEvents are built in code (fixtures are not read at run time).
func sampleEvents() []*event.Event {
	price, taxes, renewal := 39.99, 0.3, int64(2)
	purchased, expires := int64(1769904000000), int64(1801440000000)
	entitlement := "premium"
	renewalEvent := &event.Event{
		ID:                       "b0e4d3c2-1a9f-4e8d-8c7b-6a5f4e3d2c1b",
		Type:                     event.TypeRenewal,
		AppID:                    "app2d9f31c0e7",
		EventTimestampMs:         1769904130000,
		AppUserID:                "7821",
		OriginalAppUserID:        "$RCAnonymousID:aa01bb02cc03dd04ee05ff0611223344",
		Aliases:                  []string{"$RCAnonymousID:aa01bb02cc03dd04ee05ff0611223344", "7821"},
		ProductID:                "com.example.notes.yearly",
		EntitlementID:            &entitlement,
		EntitlementIDs:           []string{"premium"},
		PeriodType:               "NORMAL",
		PurchasedAtMs:            &purchased,
		ExpirationAtMs:           &expires,
		Store:                    "APP_STORE",
		Environment:              "PRODUCTION",
		Price:                    &price,
		Currency:                 "USD",
		PriceInPurchasedCurrency: &price,
		CommissionPercentage:     &taxes,
		TransactionID:            "430001882716655",
		OriginalTransactionID:    "430001880112902",
		CountryCode:              "US",
		RenewalNumber:            &renewal,
		Entitlements:             []string{"premium"},
		UserID:                   "7821",
		IsTrialConversion:        true,
		Lifecycle:                event.TrialConverted,
	}
	transfer := &event.Event{
		ID:               "C3E1F0A2-7B64-4D19-A8E5-2F90B6D41C77",
		Type:             event.TypeTransfer,
		AppID:            "app2d9f31c0e7",
		EventTimestampMs: 1771588800000,
		Store:            "APP_STORE",
		Environment:      "PRODUCTION",
		TransferredFrom:  []string{"$RCAnonymousID:0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"},
		TransferredTo:    []string{"9034"},
		Entitlements:     []string{},
		UserID:           "9034",
		Lifecycle:        event.Transferred,
	}
	for _, e := range []*event.Event{renewalEvent, transfer} {
		// The envelope as RevenueCat would post it; the normalized fields
		// are close enough to the wire names for a sample.
		e.Raw, _ = json.Marshal(map[string]any{"api_version": "1.0", "event": e})
	}
	return []*event.Event{renewalEvent, transfer}
}
