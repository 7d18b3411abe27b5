// Package revenuecat decodes RevenueCat webhook bodies into the normalized
// event.Event. It is pure: no I/O, no clock, no state.
//
// The envelope is checked strictly (it decides between 200 and 400); the
// event inside is read leniently, because RevenueCat adds fields and event
// types without changing api_version, and a webhook refused for a field we do
// not understand would be retried and then lost.
package revenuecat

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode"

	"github.com/rcrouter/rcrouter/internal/event"
)

// ErrInvalid is matched (errors.Is) by every error Decode returns. Such a body
// can never be accepted: the server answers 400 with the error's text.
var ErrInvalid = errors.New("invalid webhook body")

// invalidError is a refusal whose text is meant for the sender.
type invalidError struct {
	msg   string
	cause error
}

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }
func (e *invalidError) Unwrap() error        { return e.cause }

func invalid(msg string) error { return &invalidError{msg: msg} }

// Decode checks and decodes one webhook body, {"api_version": …, "event": {…}},
// and normalizes the event. Every error matches ErrInvalid.
//
// Refused: an empty body, invalid JSON, JSON nested deeper than 64 levels,
// anything after the first JSON value, a value that is not an object, an
// event that is missing, null or not an object, and an event.id or
// event.type that is missing, null, empty or not a string. Any api_version
// is accepted.
//
// Inside the event nothing else is refused. Keys match exactly (RevenueCat
// sends snake case). Fields Event does not name are kept in Event.Extra, and
// so is a named field whose value has the wrong JSON type (its typed field is
// left zero). null is the zero value. When a key repeats, the last one wins,
// as in encoding/json.
//
// Decode does not keep body: Event.Raw is a copy of it, byte for byte, and
// the RawMessages in Event.Extra point into Event.Raw.
func Decode(body []byte) (*event.Event, error) {
	raw := bytes.Clone(body)
	start := skipSpace(raw, 0)
	if start == len(raw) {
		return nil, invalid("body is empty")
	}
	end, ok := valueEnd(raw, start)
	if !ok {
		return nil, invalid("body is nested deeper than " + strconv.Itoa(maxDepth) + " levels")
	}
	if end == start {
		// Not the start of any value: let encoding/json name the character.
		end = len(raw)
	}
	if !json.Valid(raw[start:end]) {
		return nil, syntaxError(raw[start:end])
	}
	if skipSpace(raw, end) != len(raw) {
		return nil, invalid("unexpected data after the JSON value")
	}
	if raw[start] != '{' {
		return nil, invalid("body is not a JSON object")
	}

	var ev []byte
	it := iter{b: raw[start:end]}
	for {
		k, v, more := it.member()
		if !more {
			break
		}
		if string(keyName(k)) == "event" {
			ev = v
		}
	}
	switch {
	case ev == nil:
		return nil, invalid("event is missing")
	case isNull(ev):
		return nil, invalid("event is null")
	case ev[0] != '{':
		return nil, invalid("event is not an object")
	}

	e := &event.Event{Raw: raw}
	if err := decodeEvent(ev, e); err != nil {
		return nil, err
	}
	addEnrollment(e)
	Normalize(e)
	return e, nil
}

// syntaxError words a json.Valid failure; encoding/json's message says where.
func syntaxError(b []byte) error {
	var discard json.RawMessage
	err := json.Unmarshal(b, &discard)
	if err == nil {
		// Unreachable: json.Valid and json.Unmarshal share one scanner.
		err = errors.New("invalid JSON")
	}
	return &invalidError{msg: "body is not valid JSON: " + err.Error(), cause: err}
}

// decodeEvent fills e from the members of the event object ev.
func decodeEvent(ev []byte, e *event.Event) error {
	var idSeen, typeSeen bool
	var idRaw []byte
	it := iter{b: ev}
	for {
		k, v, more := it.member()
		if !more {
			break
		}
		name := keyName(k)
		var ok bool
		switch string(name) {
		case "id":
			idSeen = true
			idRaw = v
			e.ID, ok = decodeString(v)
		case "type":
			typeSeen = true
			e.Type, ok = decodeString(v)
		case "app_id":
			e.AppID, ok = decodeString(v)
		case "event_timestamp_ms":
			e.EventTimestampMs, ok = decodeInt(v)
		case "app_user_id":
			e.AppUserID, ok = decodeString(v)
		case "original_app_user_id":
			e.OriginalAppUserID, ok = decodeString(v)
		case "aliases":
			e.Aliases, ok = decodeStrings(v)
		case "product_id":
			e.ProductID, ok = decodeString(v)
		case "new_product_id":
			e.NewProductID, ok = decodeString(v)
		case "entitlement_id":
			e.EntitlementID, ok = decodeStringPtr(v)
		case "entitlement_ids":
			e.EntitlementIDs, ok = decodeStrings(v)
		case "period_type":
			e.PeriodType, ok = decodeString(v)
		case "purchased_at_ms":
			e.PurchasedAtMs, ok = decodeIntPtr(v)
		case "expiration_at_ms":
			e.ExpirationAtMs, ok = decodeIntPtr(v)
		case "grace_period_expiration_at_ms":
			e.GracePeriodExpirationAtMs, ok = decodeIntPtr(v)
		case "auto_resume_at_ms":
			e.AutoResumeAtMs, ok = decodeIntPtr(v)
		case "store":
			e.Store, ok = decodeString(v)
		case "environment":
			e.Environment, ok = decodeString(v)
		case "purchase_environment":
			e.PurchaseEnvironment, ok = decodeString(v)
		case "cancel_reason":
			e.CancelReason, ok = decodeString(v)
		case "expiration_reason":
			e.ExpirationReason, ok = decodeString(v)
		case "presented_offering_id":
			e.PresentedOfferingID, ok = decodeString(v)
		case "price":
			e.Price, ok = decodeFloatPtr(v)
		case "currency":
			e.Currency, ok = decodeString(v)
		case "price_in_purchased_currency":
			e.PriceInPurchasedCurrency, ok = decodeFloatPtr(v)
		case "tax_percentage":
			e.TaxPercentage, ok = decodeFloatPtr(v)
		case "commission_percentage":
			e.CommissionPercentage, ok = decodeFloatPtr(v)
		case "takehome_percentage":
			e.TakehomePercentage, ok = decodeFloatPtr(v)
		case "transaction_id":
			e.TransactionID, ok = decodeString(v)
		case "original_transaction_id":
			e.OriginalTransactionID, ok = decodeString(v)
		case "is_family_share":
			e.IsFamilyShare, ok = decodeBool(v)
		case "is_trial_conversion":
			// Read into the derived flag; Normalize keeps it only on RENEWAL.
			e.IsTrialConversion, ok = decodeBool(v)
		case "country_code":
			e.CountryCode, ok = decodeString(v)
		case "offer_code":
			e.OfferCode, ok = decodeString(v)
		case "renewal_number":
			e.RenewalNumber, ok = decodeIntPtr(v)
		case "metadata":
			e.Metadata, ok = decodeMetadata(v)
		case "subscriber_attributes":
			e.SubscriberAttributes, ok = decodeAttributes(v)
		case "experiments":
			e.Experiments, ok = decodeExperiments(v)
		case "transferred_from":
			e.TransferredFrom, ok = decodeStrings(v)
		case "transferred_to":
			e.TransferredTo, ok = decodeStrings(v)
		}
		switch {
		case !ok:
			if e.Extra == nil {
				e.Extra = make(map[string]json.RawMessage)
			}
			e.Extra[string(name)] = v
		case e.Extra != nil:
			// A repeated key: the later, well-typed value replaces an
			// earlier one that was kept raw.
			delete(e.Extra, string(name))
		}
	}

	// A key that is present but null, or of another JSON type, is reported as
	// "must be a non-empty string" rather than "missing": it says what was sent.
	switch {
	case !idSeen:
		return invalid("event.id is missing")
	case e.ID == "" || e.Extra["id"] != nil:
		return invalid("event.id must be a non-empty string")
	case !losslessString(idRaw):
		// Decoding would turn each such byte or surrogate into U+FFFD, and
		// ids that differ only there would collapse into one duplicate.
		return invalid("event.id must be valid UTF-8 without unpaired surrogate escapes (\\ud800)")
	case strings.IndexFunc(e.ID, unicode.IsControl) >= 0:
		// Control characters cannot travel in the headers the id goes into
		// (Idempotency-Key, webhook-id) nor show safely in logs.
		return invalid("event.id must not contain control characters")
	case !typeSeen:
		return invalid("event.type is missing")
	case e.Type == "" || e.Extra["type"] != nil:
		return invalid("event.type must be a non-empty string")
	}
	return nil
}

// addEnrollment lists the experiment of an EXPERIMENT_ENROLLMENT event in
// Experiments, so routes and templates find experiments in one place. That
// type carries its one experiment at the top level (experiment_id,
// experiment_variant, and the time as enrolled_at_ms in RevenueCat's field
// table but experiment_enrolled_at_ms in its sample: both are read). The
// top-level fields also stay in Extra, unchanged.
func addEnrollment(e *event.Event) {
	if e.Type != event.TypeExperimentEnrollment || e.Experiments != nil {
		return
	}
	raw := e.Extra["experiment_id"]
	if raw == nil {
		return
	}
	id, ok := decodeString(raw)
	if !ok || id == "" {
		return
	}
	x := event.Experiment{ExperimentID: id}
	if v := e.Extra["experiment_variant"]; v != nil {
		x.ExperimentVariant, _ = decodeString(v)
	}
	for _, name := range [...]string{"enrolled_at_ms", "experiment_enrolled_at_ms"} {
		if v := e.Extra[name]; v != nil {
			if ms, ok := decodeIntPtr(v); ok && ms != nil {
				x.EnrolledAtMs = ms
				break
			}
		}
	}
	e.Experiments = []event.Experiment{x}
}
