package revenuecat

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/internal/event"
	"github.com/rcrouter/rcrouter/internal/testutil"
)

// nested returns an event whose unknown field x holds n nested arrays, so the
// body nests n+2 levels (envelope, event, then the arrays).
func nested(n int) string {
	return `{"event":{"id":"a","type":"T","x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}}`
}

func TestDecodeRejects(t *testing.T) {
	const ok = `{"event":{"id":"a","type":"T"}}`
	tests := []struct {
		name, body, want string
	}{
		{"empty", ``, "body is empty"},
		{"only whitespace", " \n\t\r ", "body is empty"},
		{"truncated literal", `nul`, "body is not valid JSON: invalid character ' ' in literal null (expecting 'l')"},
		{"truncated object", `{"event":`, "body is not valid JSON: unexpected end of JSON input"},
		{"unclosed event", `{"event":{"id":"a","type":"T"}`, "body is not valid JSON: unexpected end of JSON input"},
		{"single quotes", `{'event':1}`, `body is not valid JSON: invalid character '\'' looking for beginning of object key string`},
		{"closing brace first", `}`, "body is not valid JSON: invalid character '}' looking for beginning of value"},
		{"form encoded", `event=1`, "body is not valid JSON: invalid character 'e' looking for beginning of value"},
		{"byte order mark", "\ufeff" + ok, "body is not valid JSON: invalid character 'ï' looking for beginning of value"},
		{"trailing comma in event", `{"event":{"id":"a","type":"T",}}`, "body is not valid JSON: invalid character '}' looking for beginning of object key string"},
		{"newline inside string", "{\"event\":{\"id\":\"a\n\",\"type\":\"T\"}}", `body is not valid JSON: invalid character '\n' in string literal`},
		{"mismatched bracket", `{"event":{"id":"a","type":"T"]}`, "body is not valid JSON: invalid character ']' after object key:value pair"},
		{"second object", ok + ` {}`, "unexpected data after the JSON value"},
		{"second object no space", ok + ok, "unexpected data after the JSON value"},
		{"garbage after", ok + "\nx", "unexpected data after the JSON value"},
		{"extra closing brace", ok + `}`, "unexpected data after the JSON value"},
		{"two numbers", `1 2`, "unexpected data after the JSON value"},
		{"array", `[` + ok + `]`, "body is not a JSON object"},
		{"string", `"event"`, "body is not a JSON object"},
		{"number", `42`, "body is not a JSON object"},
		{"null", `null`, "body is not a JSON object"},
		{"no event", `{"api_version":"1.0"}`, "event is missing"},
		{"empty object", `{}`, "event is missing"},
		{"event differently cased", `{"Event":{"id":"a","type":"T"}}`, "event is missing"},
		{"event null", `{"api_version":"1.0","event":null}`, "event is null"},
		{"event array", `{"event":[]}`, "event is not an object"},
		{"event string", `{"event":"{\"id\":\"a\"}"}`, "event is not an object"},
		{"event number", `{"event":1}`, "event is not an object"},
		{"last event wins", `{"event":{"id":"a","type":"T"},"event":null}`, "event is null"},
		{"id missing", `{"event":{"type":"T"}}`, "event.id is missing"},
		{"id and type missing", `{"event":{}}`, "event.id is missing"},
		{"id differently cased", `{"event":{"ID":"a","type":"T"}}`, "event.id is missing"},
		{"id empty", `{"event":{"id":"","type":"T"}}`, "event.id must be a non-empty string"},
		{"id null", `{"event":{"id":null,"type":"T"}}`, "event.id must be a non-empty string"},
		{"id number", `{"event":{"id":123,"type":"T"}}`, "event.id must be a non-empty string"},
		{"id array", `{"event":{"id":["a"],"type":"T"}}`, "event.id must be a non-empty string"},
		{"id object", `{"event":{"id":{},"type":"T"}}`, "event.id must be a non-empty string"},
		{"id repeated badly", `{"event":{"id":"a","id":false,"type":"T"}}`, "event.id must be a non-empty string"},
		{"id with invalid UTF-8", "{\"event\":{\"id\":\"a\xff\",\"type\":\"T\"}}", `event.id must be valid UTF-8 without unpaired surrogate escapes (\ud800)`},
		{"id with a lone high surrogate", `{"event":{"id":"a\ud800","type":"T"}}`, `event.id must be valid UTF-8 without unpaired surrogate escapes (\ud800)`},
		{"id with a lone low surrogate", `{"event":{"id":"a\udfff","type":"T"}}`, `event.id must be valid UTF-8 without unpaired surrogate escapes (\ud800)`},
		{"id with a high surrogate before a non-surrogate", `{"event":{"id":"\ud800\u0041","type":"T"}}`, `event.id must be valid UTF-8 without unpaired surrogate escapes (\ud800)`},
		{"id with reversed surrogates", `{"event":{"id":"\udc00\ud800","type":"T"}}`, `event.id must be valid UTF-8 without unpaired surrogate escapes (\ud800)`},
		{"id with a newline escape", `{"event":{"id":"a\nb","type":"T"}}`, "event.id must not contain control characters"},
		{"id with a NUL", `{"event":{"id":"a\u0000","type":"T"}}`, "event.id must not contain control characters"},
		{"id with DEL", "{\"event\":{\"id\":\"a\x7f\",\"type\":\"T\"}}", "event.id must not contain control characters"},
		{"id with a C1 control", `{"event":{"id":"a\u0085","type":"T"}}`, "event.id must not contain control characters"},
		{"id repeated, the last one invalid", "{\"event\":{\"id\":\"a\",\"id\":\"a\xfe\",\"type\":\"T\"}}", `event.id must be valid UTF-8 without unpaired surrogate escapes (\ud800)`},
		{"type missing", `{"event":{"id":"a"}}`, "event.type is missing"},
		{"type empty", `{"event":{"id":"a","type":""}}`, "event.type must be a non-empty string"},
		{"type null", `{"event":{"id":"a","type":null}}`, "event.type must be a non-empty string"},
		{"type number", `{"event":{"id":"a","type":1}}`, "event.type must be a non-empty string"},
		{"nested 65 levels", nested(63), "body is nested deeper than 64 levels"},
		{"top-level nesting, unclosed", strings.Repeat("[", 65), "body is nested deeper than 64 levels"},
		{"nesting far beyond encoding/json's limit", strings.Repeat(`{"a":`, 20000), "body is nested deeper than 64 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode([]byte(tt.body))
			if err == nil {
				t.Fatalf("accepted, want error %q (event %+v)", tt.want, e)
			}
			if e != nil {
				t.Errorf("returned an event with error %v", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not match ErrInvalid", err)
			}
		})
	}
}

func TestDecodeSyntaxErrorUnwraps(t *testing.T) {
	_, err := Decode([]byte(`{"event":`))
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("error %v does not unwrap to *json.SyntaxError", err)
	}
}

// accepted is the part of an accepted event the table below checks.
type accepted struct {
	ID, Type, UserID, Environment string
	EventTimestampMs              int64
	Price                         *float64
	Entitlements                  []string
	Lifecycle                     event.Lifecycle
	Extra                         map[string]string // compact JSON
}

func acceptedOf(t *testing.T, e *event.Event) accepted {
	t.Helper()
	a := accepted{
		ID: e.ID, Type: e.Type, UserID: e.UserID, Environment: e.Environment,
		EventTimestampMs: e.EventTimestampMs, Price: e.Price,
		Entitlements: e.Entitlements, Lifecycle: e.Lifecycle,
	}
	for k, v := range e.Extra {
		var b bytes.Buffer
		if err := json.Compact(&b, v); err != nil {
			t.Fatalf("extra %q is not JSON: %v", k, err)
		}
		if a.Extra == nil {
			a.Extra = map[string]string{}
		}
		a.Extra[k] = b.String()
	}
	return a
}

func ptr[T any](v T) *T { return &v }

func TestDecodeAccepts(t *testing.T) {
	// base is what {"id":"a","type":"T"} normalizes to.
	base := func(change func(*accepted)) accepted {
		a := accepted{ID: "a", Type: "T", Entitlements: []string{}, Lifecycle: event.Other}
		if change != nil {
			change(&a)
		}
		return a
	}
	ev := func(fields string) string {
		if fields != "" {
			fields = "," + fields
		}
		return `{"api_version":"1.0","event":{"id":"a","type":"T"` + fields + `}}`
	}
	tests := []struct {
		name, body string
		want       accepted
	}{
		{"minimal", ev(``), base(nil)},
		{"api_version missing", `{"event":{"id":"a","type":"T"}}`, base(nil)},
		{"api_version 2.0", `{"api_version":"2.0","event":{"id":"a","type":"T"}}`, base(nil)},
		{"api_version a number", `{"api_version":2,"event":{"id":"a","type":"T"}}`, base(nil)},
		{"envelope fields unknown", `{"event":{"id":"a","type":"T"},"delivery":{"n":1}}`, base(nil)},
		{"surrounding whitespace", " \r\n\t" + ev(``) + "\n\n", base(nil)},
		{"unknown type", `{"event":{"id":"a","type":"PAYWALL_IMPRESSION","paywall_id":"pw1"}}`, base(func(a *accepted) {
			a.Type = "PAYWALL_IMPRESSION"
			a.Extra = map[string]string{"paywall_id": `"pw1"`}
		})},
		{"unknown store", ev(`"store":"UNKNOWN_STORE"`), base(nil)},
		{"unknown fields of every JSON type", ev(`"n":1.5e3,"s":"x","b":true,"z":null,"o":{"k":[1,{"j":2}]},"l":[]`), base(func(a *accepted) {
			a.Extra = map[string]string{"n": `1.5e3`, "s": `"x"`, "b": `true`, "z": `null`, "o": `{"k":[1,{"j":2}]}`, "l": `[]`}
		})},
		{"derived names sent by the sender stay extra", ev(`"user_id":"spoof","lifecycle":"refunded","entitlements":["x"]`), base(func(a *accepted) {
			a.Extra = map[string]string{"user_id": `"spoof"`, "lifecycle": `"refunded"`, "entitlements": `["x"]`}
		})},
		{"differently cased key is unknown", ev(`"Price":5`), base(func(a *accepted) {
			a.Extra = map[string]string{"Price": `5`}
		})},
		{"escaped key", `{"event":{"\u0069d":"a","type":"T","pri\u0063e":2}}`, base(func(a *accepted) { a.Price = ptr(2.0) })},
		{"key with invalid UTF-8 reads as encoding/json reads it", "{\"event\":{\"\x87\":null,\"type\":\"T\",\"id\":\"a\"}}", base(func(a *accepted) {
			a.Extra = map[string]string{"\ufffd": `null`}
		})},
		{"escaped id", `{"event":{"id":"caf\u00e9 \"1\"","type":"T"}}`, base(func(a *accepted) { a.ID = `café "1"` })},
		{"repeated key, last wins", ev(`"price":"x","price":3`), base(func(a *accepted) { a.Price = ptr(3.0) })},
		{"repeated key, last ill-typed", ev(`"price":3,"price":"x"`), base(func(a *accepted) {
			a.Extra = map[string]string{"price": `"x"`}
		})},
		{"price null", ev(`"price":null`), base(nil)},
		{"price 0", ev(`"price":0`), base(func(a *accepted) { a.Price = ptr(0.0) })},
		{"price negative is a refund", ev(`"price":-9.99`), base(func(a *accepted) { a.Price = ptr(-9.99) })},
		{"price string", ev(`"price":"abc"`), base(func(a *accepted) { a.Extra = map[string]string{"price": `"abc"`} })},
		{"price bool", ev(`"price":true`), base(func(a *accepted) { a.Extra = map[string]string{"price": `true`} })},
		{"price object", ev(`"price":{"usd":1}`), base(func(a *accepted) { a.Extra = map[string]string{"price": `{"usd":1}`} })},
		{"price huge but finite", ev(`"price":1e308`), base(func(a *accepted) { a.Price = ptr(1e308) })},
		{"price beyond float64", ev(`"price":1e400`), base(func(a *accepted) { a.Extra = map[string]string{"price": `1e400`} })},
		{"timestamp beyond int64", ev(`"event_timestamp_ms":99999999999999999999`), base(func(a *accepted) {
			a.Extra = map[string]string{"event_timestamp_ms": `99999999999999999999`}
		})},
		{"timestamp max int64", ev(`"event_timestamp_ms":9223372036854775807`), base(func(a *accepted) {
			a.EventTimestampMs = 9223372036854775807
		})},
		{"timestamp in float notation", ev(`"event_timestamp_ms":1.6e12`), base(func(a *accepted) {
			a.Extra = map[string]string{"event_timestamp_ms": `1.6e12`}
		})},
		{"timestamp as string", ev(`"event_timestamp_ms":"1658726378679"`), base(func(a *accepted) {
			a.Extra = map[string]string{"event_timestamp_ms": `"1658726378679"`}
		})},
		{"entitlement_id fallback, ids absent", ev(`"entitlement_id":"pro"`), base(func(a *accepted) { a.Entitlements = []string{"pro"} })},
		{"entitlement_id fallback, ids null", ev(`"entitlement_id":"pro","entitlement_ids":null`), base(func(a *accepted) { a.Entitlements = []string{"pro"} })},
		{"entitlement_ids empty, no fallback", ev(`"entitlement_id":"pro","entitlement_ids":[]`), base(nil)},
		{"entitlement_ids win", ev(`"entitlement_id":"old","entitlement_ids":["pro","Full Family"]`), base(func(a *accepted) {
			a.Entitlements = []string{"pro", "Full Family"}
		})},
		{"entitlement_ids ill-typed falls back", ev(`"entitlement_id":"pro","entitlement_ids":"pro,plus"`), base(func(a *accepted) {
			a.Entitlements = []string{"pro"}
			a.Extra = map[string]string{"entitlement_ids": `"pro,plus"`}
		})},
		{"entitlement_ids with a number", ev(`"entitlement_ids":["pro",1]`), base(func(a *accepted) {
			a.Extra = map[string]string{"entitlement_ids": `["pro",1]`}
		})},
		{"every field null", ev(`"app_id":null,"event_timestamp_ms":null,"app_user_id":null,"original_app_user_id":null,"aliases":null,"product_id":null,"new_product_id":null,"entitlement_id":null,"entitlement_ids":null,"period_type":null,"purchased_at_ms":null,"expiration_at_ms":null,"grace_period_expiration_at_ms":null,"auto_resume_at_ms":null,"store":null,"environment":null,"purchase_environment":null,"cancel_reason":null,"expiration_reason":null,"presented_offering_id":null,"price":null,"currency":null,"price_in_purchased_currency":null,"tax_percentage":null,"commission_percentage":null,"takehome_percentage":null,"transaction_id":null,"original_transaction_id":null,"is_family_share":null,"is_trial_conversion":null,"country_code":null,"offer_code":null,"renewal_number":null,"metadata":null,"subscriber_attributes":null,"experiments":null,"transferred_from":null,"transferred_to":null`), base(nil)},
		{"user id from transferred_to", ev(`"transferred_to":["new"],"original_app_user_id":"orig"`), base(func(a *accepted) { a.UserID = "new" })},
		{"user id from original_app_user_id", ev(`"transferred_to":[],"original_app_user_id":"orig"`), base(func(a *accepted) { a.UserID = "orig" })},
		{"environment from purchase_environment", ev(`"purchase_environment":"SANDBOX"`), base(func(a *accepted) { a.Environment = "SANDBOX" })},
		{"attributes ill-typed", ev(`"subscriber_attributes":{"$email":{"value":5}}`), base(func(a *accepted) {
			a.Extra = map[string]string{"subscriber_attributes": `{"$email":{"value":5}}`}
		})},
		{"metadata not an object", ev(`"metadata":["utm"]`), base(func(a *accepted) { a.Extra = map[string]string{"metadata": `["utm"]`} })},
		{"metadata with a number beyond float64", ev(`"metadata":{"n":1e999}`), base(func(a *accepted) { a.Extra = map[string]string{"metadata": `{"n":1e999}`} })},
		{"is_family_share a string", ev(`"is_family_share":"no"`), base(func(a *accepted) { a.Extra = map[string]string{"is_family_share": `"no"`} })},
		{"nested 64 levels", nested(62), base(func(a *accepted) {
			a.Extra = map[string]string{"x": strings.Repeat("[", 62) + strings.Repeat("]", 62)}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode([]byte(tt.body))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := acceptedOf(t, e); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("\n got: %+v\nwant: %+v", got, tt.want)
			}
			if !bytes.Equal(e.Raw, []byte(tt.body)) {
				t.Errorf("Raw = %q, want the body", e.Raw)
			}
			if _, err := json.Marshal(e); err != nil {
				t.Errorf("normalized event does not marshal: %v", err)
			}
		})
	}
}

// TestDecodeTypedFields checks fields the table above does not look at, on
// a body that sets each of them to a non-zero value.
func TestDecodeTypedFields(t *testing.T) {
	body := `{"event":{"id":"e1","type":"RENEWAL","app_id":"app1","event_timestamp_ms":1700000000000,
	"app_user_id":"u","original_app_user_id":"o","aliases":["o","u"],"product_id":"p:base","new_product_id":"p2",
	"entitlement_id":"pro","entitlement_ids":["pro"],"period_type":"NORMAL","purchased_at_ms":1,"expiration_at_ms":2,
	"grace_period_expiration_at_ms":3,"auto_resume_at_ms":4,"store":"PLAY_STORE","environment":"SANDBOX",
	"cancel_reason":"UNSUBSCRIBE","expiration_reason":"BILLING_ERROR","presented_offering_id":"off","price":1.5,
	"currency":"EUR","price_in_purchased_currency":1.25,"tax_percentage":0.2,"commission_percentage":0.15,
	"takehome_percentage":0.85,"transaction_id":"t","original_transaction_id":"ot","is_family_share":true,
	"is_trial_conversion":true,"country_code":"DE","offer_code":"promo","renewal_number":7,
	"metadata":{"utm_source":"news","n":2,"ok":true,"none":null},
	"subscriber_attributes":{"$email":{"value":"a@b.c","updated_at_ms":5,"extra":1},"empty":null},
	"experiments":[{"experiment_id":"x1","experiment_variant":"a","enrolled_at_ms":6},{"experiment_id":"x2","experiment_enrolled_at_ms":7},null],
	"transferred_from":["f"],"transferred_to":["t"],"purchase_environment":"PRODUCTION"}}`
	e, err := Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := &event.Event{
		ID: "e1", Type: "RENEWAL", AppID: "app1", EventTimestampMs: 1700000000000,
		AppUserID: "u", OriginalAppUserID: "o", Aliases: []string{"o", "u"}, ProductID: "p:base", NewProductID: "p2",
		EntitlementID: ptr("pro"), EntitlementIDs: []string{"pro"}, PeriodType: "NORMAL",
		PurchasedAtMs: ptr(int64(1)), ExpirationAtMs: ptr(int64(2)), GracePeriodExpirationAtMs: ptr(int64(3)), AutoResumeAtMs: ptr(int64(4)),
		Store: "PLAY_STORE", Environment: "SANDBOX", CancelReason: "UNSUBSCRIBE", ExpirationReason: "BILLING_ERROR",
		PresentedOfferingID: "off", Price: ptr(1.5), Currency: "EUR", PriceInPurchasedCurrency: ptr(1.25),
		TaxPercentage: ptr(0.2), CommissionPercentage: ptr(0.15), TakehomePercentage: ptr(0.85),
		TransactionID: "t", OriginalTransactionID: "ot", IsFamilyShare: true, CountryCode: "DE", OfferCode: "promo",
		RenewalNumber: ptr(int64(7)),
		Metadata:      map[string]any{"utm_source": "news", "n": 2.0, "ok": true, "none": nil},
		SubscriberAttributes: map[string]event.Attribute{
			"$email": {Value: "a@b.c", UpdatedAtMs: 5},
			"empty":  {},
		},
		Experiments: []event.Experiment{
			{ExperimentID: "x1", ExperimentVariant: "a", EnrolledAtMs: ptr(int64(6))},
			{ExperimentID: "x2", EnrolledAtMs: ptr(int64(7))},
			{},
		},
		TransferredFrom: []string{"f"}, TransferredTo: []string{"t"}, PurchaseEnvironment: "PRODUCTION",

		Entitlements: []string{"pro"}, UserID: "u", IsTrialConversion: true, IsSandbox: true,
		Lifecycle: event.TrialConverted,
		Raw:       []byte(body),
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("\n got: %+v\nwant: %+v", e, want)
	}
}

func TestDecodeExperimentEnrollment(t *testing.T) {
	const head = `{"event":{"id":"a","type":"EXPERIMENT_ENROLLMENT","experiment_id":"x","experiment_variant":"b"`
	tests := []struct {
		name, fields string
		want         []event.Experiment
	}{
		{"sample's name", `,"experiment_enrolled_at_ms":5`, []event.Experiment{{ExperimentID: "x", ExperimentVariant: "b", EnrolledAtMs: ptr(int64(5))}}},
		{"field table's name", `,"enrolled_at_ms":6`, []event.Experiment{{ExperimentID: "x", ExperimentVariant: "b", EnrolledAtMs: ptr(int64(6))}}},
		{"both names, field table's wins", `,"experiment_enrolled_at_ms":5,"enrolled_at_ms":6`, []event.Experiment{{ExperimentID: "x", ExperimentVariant: "b", EnrolledAtMs: ptr(int64(6))}}},
		{"no time", ``, []event.Experiment{{ExperimentID: "x", ExperimentVariant: "b"}}},
		{"experiments sent are kept as they are", `,"enrolled_at_ms":6,"experiments":[]`, []event.Experiment{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode([]byte(head + tt.fields + `}}`))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(e.Experiments, tt.want) {
				t.Errorf("experiments = %+v, want %+v", e.Experiments, tt.want)
			}
			if string(e.Extra["experiment_id"]) != `"x"` {
				t.Errorf("extra experiment_id = %s, want it kept", e.Extra["experiment_id"])
			}
		})
	}
	t.Run("other types are left alone", func(t *testing.T) {
		e, err := Decode([]byte(`{"event":{"id":"a","type":"RENEWAL","experiment_id":"x"}}`))
		if err != nil {
			t.Fatal(err)
		}
		if e.Experiments != nil {
			t.Errorf("experiments = %+v, want none", e.Experiments)
		}
	})
}

// TestDecodeOwnsItsBytes: the server may reuse its read buffer, and a
// consumer appending to an Extra value must not overwrite Raw.
func TestDecodeOwnsItsBytes(t *testing.T) {
	body := []byte(`{"event":{"id":"a","type":"T","x":[1],"y":2}}`)
	orig := bytes.Clone(body)
	e, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = ' '
	}
	_ = append(e.Extra["x"], "XXXX"...)
	if !bytes.Equal(e.Raw, orig) {
		t.Errorf("Raw changed to %q", e.Raw)
	}
	if string(e.Extra["x"]) != "[1]" || string(e.Extra["y"]) != "2" {
		t.Errorf("extra = %q", e.Extra)
	}
}

func TestTestEventBody(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)
	body := TestEventBody("evt-1", now)
	e, err := Decode(body)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"id", e.ID, "evt-1"},
		{"type", e.Type, event.TypeTest},
		{"event_timestamp_ms", e.EventTimestampMs, now.UnixMilli()},
		{"store", e.Store, "APP_STORE"},
		{"environment", e.Environment, "SANDBOX"},
		{"product_id", e.ProductID, "test_product"},
		{"is_test", e.IsTest, true},
		{"is_sandbox", e.IsSandbox, true},
		{"lifecycle", e.Lifecycle, event.Other},
		{"entitlements", e.Entitlements, []string{}},
		{"price", e.Price, (*float64)(nil)},
		{"user_id is the app user", e.UserID, e.AppUserID},
		{"extra", e.Extra, map[string]json.RawMessage(nil)},
		{"same id, same body", string(TestEventBody("evt-1", now)), string(body)},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	const prefix = "$RCAnonymousID:"
	hexPart, found := strings.CutPrefix(e.AppUserID, prefix)
	if !found || len(hexPart) != 32 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		t.Errorf("app_user_id = %q, want %s and 32 hex digits", e.AppUserID, prefix)
	}
	other, err := Decode(TestEventBody("evt-2", now))
	if err != nil {
		t.Fatal(err)
	}
	if other.AppUserID == e.AppUserID {
		t.Errorf("two ids share app_user_id %q", e.AppUserID)
	}
	if _, err := Decode(TestEventBody("", now)); err == nil || err.Error() != "event.id must be a non-empty string" {
		t.Errorf("empty id: error %v", err)
	}
}

// BenchmarkDecode decodes a real ~1.5 KB RevenueCat body (sample 1, an
// INITIAL_PURCHASE with attributes and experiments).
func BenchmarkDecode(b *testing.B) {
	var body []byte
	for _, f := range testutil.Fixtures(b) {
		if f.Dir == "revenuecat-docs" && f.Name == "sample-events_1.json" {
			body = f.Body
		}
	}
	if body == nil {
		b.Fatal("sample-events_1.json not found")
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodeKeepsDistinctIDsDistinct: ids that are valid, with escapes,
// surrogate pairs and non-ASCII, decode to exactly what was sent, so two
// that differ on the wire never collapse into one.
func TestDecodeKeepsDistinctIDsDistinct(t *testing.T) {
	tests := []struct{ name, raw, want string }{
		{"plain", `evt-1`, "evt-1"},
		{"surrogate pair", `a\ud83d\ude00`, "a😀"},
		{"literal emoji", `a😀b`, "a😀b"},
		{"escaped quote and backslash", `a\"b\\u0041`, `a"b\u0041`},
		{"replacement character sent on purpose", `a\ufffd`, "a\ufffd"},
		{"non-ASCII", `évènement`, "évènement"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode([]byte(`{"event":{"id":"` + tt.raw + `","type":"T"}}`))
			if err != nil {
				t.Fatal(err)
			}
			if e.ID != tt.want {
				t.Errorf("id = %q, want %q", e.ID, tt.want)
			}
			if other, dup := seen[e.ID]; dup {
				t.Errorf("id %q also decoded from %q", e.ID, other)
			}
			seen[e.ID] = tt.raw
		})
	}
}
