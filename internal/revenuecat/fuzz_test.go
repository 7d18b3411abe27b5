package revenuecat

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// FuzzDecode checks Decode against encoding/json, used as an independent
// oracle: Decode accepts exactly the bodies that encoding/json reads as an
// object, nested at most 64 levels, whose event is an object with non-empty
// string id and type; it then agrees on id, type and every field kept raw.
// An accepted event must also decode again from its Raw to an equal event
// and marshal without error.
func FuzzDecode(f *testing.F) {
	for _, fx := range testutil.Fixtures(f) {
		f.Add(fx.Body)
	}
	for _, s := range []string{
		`{"event":{"id":"a","type":"T","price":"x","price":1,"x":[{"y":"\"}"}]}}`,
		`{"event":{"\u0069d":"\ud800","type":"T\\","metadata":{"n":1e999}}}`,
		`{"event":{"id":"a","type":"EXPERIMENT_ENROLLMENT","experiment_id":"x","enrolled_at_ms":1}}`,
		`{"event":{"id":"a","type":"T","entitlement_ids":null,"entitlement_id":"p"}} `,
		`{"event":{"id":"a","type":"T"}}{"event":null}`,
		nested(62), nested(63),
	} {
		f.Add([]byte(s))
	}
	known := inputFields()
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := Decode(body)
		want, why := oracle(body)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			if e != nil {
				t.Fatal("event returned with an error")
			}
			if want != nil {
				t.Fatalf("refused with %q, but encoding/json reads a valid webhook", err)
			}
			return
		}
		if want == nil {
			t.Fatalf("accepted, but %s", why)
		}
		if e.ID == "" || e.Type == "" {
			t.Fatalf("accepted with id %q, type %q", e.ID, e.Type)
		}
		if e.ID != want.id || e.Type != want.typ {
			t.Fatalf("id, type = %q, %q; encoding/json reads %q, %q", e.ID, e.Type, want.id, want.typ)
		}
		if !bytes.Equal(e.Raw, body) {
			t.Fatal("Raw is not the body")
		}
		for name, v := range want.fields {
			got, kept := e.Extra[name]
			if !kept {
				if !known[name] {
					t.Fatalf("unknown field %q is neither typed nor kept", name)
				}
				continue
			}
			if compact(t, got) != compact(t, v) {
				t.Fatalf("extra %q = %s; encoding/json reads %s", name, got, v)
			}
		}
		for name := range e.Extra {
			if _, ok := want.fields[name]; !ok {
				t.Fatalf("extra %q is not a field of the event", name)
			}
		}
		if e.Entitlements == nil || !slices.Contains(event.Lifecycles, e.Lifecycle) {
			t.Fatalf("entitlements %v, lifecycle %q", e.Entitlements, e.Lifecycle)
		}
		if _, err := json.Marshal(e); err != nil {
			t.Fatalf("normalized event does not marshal: %v", err)
		}
		again, err := Decode(e.Raw)
		if err != nil {
			t.Fatalf("Raw refused: %v", err)
		}
		if !reflect.DeepEqual(again, e) {
			t.Fatalf("Raw decodes differently:\n%+v\n%+v", again, e)
		}
	})
}

type webhook struct {
	id, typ string
	fields  map[string]json.RawMessage
}

// oracle reads body with encoding/json alone and returns the webhook, or nil
// and why it is not one.
func oracle(body []byte) (*webhook, string) {
	if !json.Valid(body) {
		return nil, "encoding/json finds it invalid"
	}
	// json.Number: a number beyond float64 is still valid JSON.
	var top any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		return nil, "encoding/json: " + err.Error()
	}
	if d := depth(top); d > maxDepth {
		return nil, "it nests " + strconv.Itoa(d) + " levels"
	}
	env, ok := top.(map[string]any)
	if !ok {
		return nil, "it is not an object"
	}
	ev, ok := env["event"].(map[string]any)
	if !ok {
		return nil, "event is not an object"
	}
	id, _ := ev["id"].(string)
	typ, _ := ev["type"].(string)
	if id == "" || typ == "" {
		return nil, "id or type is not a non-empty string"
	}
	// Maps, not a struct: encoding/json matches struct fields ignoring case.
	var rawEnv, fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &rawEnv); err != nil {
		return nil, "encoding/json: " + err.Error()
	}
	if err := json.Unmarshal(rawEnv["event"], &fields); err != nil {
		return nil, "encoding/json: " + err.Error()
	}
	if !lossless(fields["id"], id) {
		return nil, "event.id does not decode to what was sent (invalid UTF-8 or a lone surrogate)"
	}
	if strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return nil, "event.id holds a control character"
	}
	return &webhook{id: id, typ: typ, fields: fields}, ""
}

// lossless reports whether decoded came from raw without replacement: raw
// is valid UTF-8 and decoded has exactly as many U+FFFD as raw spelled out,
// literally or as \ufffd (encoding/json adds one per bad byte or surrogate).
func lossless(raw json.RawMessage, decoded string) bool {
	if !utf8.Valid(raw) {
		return false
	}
	sent := bytes.Count(raw, []byte("\uFFFD"))
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if i+4 < len(raw) && raw[i] == 'u' && strings.EqualFold(string(raw[i+1:i+5]), "fffd") {
			sent++
		}
	}
	return strings.Count(decoded, "\uFFFD") == sent
}

// depth counts nested arrays and objects the way maxDepth does.
func depth(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, c := range v {
			d = max(d, depth(c))
		}
		return d + 1
	case []any:
		for _, c := range v {
			d = max(d, depth(c))
		}
		return d + 1
	}
	return 0
}

// inputFields is every event field Decode reads into a typed field: the JSON
// names of event.Event, less the ones Normalize derives.
func inputFields() map[string]bool {
	derivedOnly := map[string]bool{
		"entitlements": true, "user_id": true, "is_trial_start": true, "is_refund": true,
		"is_sandbox": true, "is_test": true, "lifecycle": true, "extra": true, "-": true,
	}
	out := map[string]bool{}
	rt := reflect.TypeFor[event.Event]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if !derivedOnly[name] {
			out[name] = true
		}
	}
	return out
}

func compact(t *testing.T, v []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		t.Fatalf("%q is not JSON: %v", v, err)
	}
	return b.String()
}
