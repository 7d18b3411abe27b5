package revenuecat

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/rcrouter/rcrouter/internal/event"
)

// maxDepth is how deeply arrays and objects may nest in a body. RevenueCat's
// deepest documented value (event → adjustments → item → currency) sits five
// levels down; 64 leaves room for Web Billing metadata while a hostile body
// is refused by one cheap byte scan before any decoder recurses into it.
const maxDepth = 64

// The scanner below only splits JSON that is already known to be valid
// (json.Valid has passed), so it can skip values by counting brackets instead
// of running a full state machine. The one exception is valueEnd on the whole
// body, which runs first to find the end of the first value and to bound the
// depth; on invalid input its answer is only a hint that json.Valid checks.

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// isDelim reports whether c ends a number or literal.
func isDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ':', '{', '}', '[', ']', '"':
		return true
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the index just past the string whose opening quote is
// b[i], or len(b) when the string is not closed.
func stringEnd(b []byte, i int) int {
	open := i
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		i += j
		// A quote is escaped when an odd number of backslashes precede it.
		// The opening quote stops the walk back.
		n := 0
		for k := i - 1; k > open && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return i + 1
		}
		i++
	}
}

// valueEnd returns the index just past the value that starts at b[i], and
// false when arrays and objects nest deeper than maxDepth. For a byte that
// cannot start a value it returns i.
func valueEnd(b []byte, i int) (int, bool) {
	switch b[i] {
	case '"':
		return stringEnd(b, i), true
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
				if depth > maxDepth {
					return i, false
				}
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
		}
		return len(b), true
	default:
		for i < len(b) && !isDelim(b[i]) {
			i++
		}
		return i, true
	}
}

// iter walks the members of a valid JSON object or the elements of a valid
// JSON array. Values are returned as sub-slices capped at their own length,
// so appending to one cannot overwrite the bytes that follow it.
type iter struct {
	b []byte
	i int
}

// member returns the next key (still quoted) and value of an object.
func (it *iter) member() (key, val []byte, ok bool) {
	b := it.b
	i := skipSpace(b, it.i)
	if b[i] == '{' || b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	if b[i] == '}' {
		it.i = i
		return nil, nil, false
	}
	j := stringEnd(b, i)
	key = b[i:j:j]
	i = skipSpace(b, skipSpace(b, j)+1) // past the colon
	j, _ = valueEnd(b, i)
	it.i = j
	return key, b[i:j:j], true
}

// element returns the next element of an array.
func (it *iter) element() (val []byte, ok bool) {
	b := it.b
	i := skipSpace(b, it.i)
	if b[i] == '[' || b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	if b[i] == ']' {
		it.i = i
		return nil, false
	}
	j, _ := valueEnd(b, i)
	it.i = j
	return b[i:j:j], true
}

// unquote decodes a valid JSON string token. Plain ASCII or UTF-8 without
// escapes (nearly every RevenueCat value) is copied directly; anything else
// goes through encoding/json so escapes and invalid UTF-8 are handled exactly
// as the standard decoder does.
func unquote(tok []byte) string {
	if s := tok[1 : len(tok)-1]; plain(s) {
		return string(s)
	}
	var out string
	if err := json.Unmarshal(tok, &out); err != nil {
		// Unreachable: tok is a string token of a body json.Valid accepted.
		return ""
	}
	return out
}

// keyName returns the decoded name of a quoted object key. A plain key is a
// sub-slice, so matching it against known names does not allocate.
func keyName(tok []byte) []byte {
	s := tok[1 : len(tok)-1]
	if plain(s) {
		return s
	}
	return []byte(unquote(tok))
}

// plain reports whether the inside of a string token decodes to itself: no
// escapes, and valid UTF-8 (encoding/json replaces invalid bytes with U+FFFD).
func plain(s []byte) bool {
	return bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s)
}

// losslessString reports whether a JSON string token decodes without
// replacement characters: its bytes are valid UTF-8 and every \u escape of a
// surrogate is one half of a pair.
func losslessString(tok []byte) bool {
	if len(tok) < 2 || tok[0] != '"' {
		return false
	}
	s := tok[1 : len(tok)-1]
	if !utf8.Valid(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++ // the escaped character; the token is valid JSON, so it exists
		if s[i] != 'u' {
			continue
		}
		r := hex4(s[i+1 : i+5])
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return false // a low half without its high half
		case r >= 0xD800 && r <= 0xDBFF:
			if i+6 >= len(s) || s[i+1] != '\\' || s[i+2] != 'u' {
				return false
			}
			if lo := hex4(s[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

// hex4 reads four hex digits (json.Valid has checked them).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// The value decoders below take one valid JSON value. They return false when
// the value has the wrong JSON type for the field (the caller then keeps it in
// Event.Extra); null always decodes to the zero value.

func isNull(v []byte) bool { return v[0] == 'n' }

func isNumber(v []byte) bool { return v[0] == '-' || v[0] >= '0' && v[0] <= '9' }

func decodeString(v []byte) (string, bool) {
	switch v[0] {
	case 'n':
		return "", true
	case '"':
		return unquote(v), true
	}
	return "", false
}

func decodeStringPtr(v []byte) (*string, bool) {
	if v[0] != '"' {
		return nil, isNull(v)
	}
	s := unquote(v)
	return &s, true
}

func decodeBool(v []byte) (bool, bool) {
	switch v[0] {
	case 't':
		return true, true
	case 'f', 'n':
		return false, true
	}
	return false, false
}

// decodeInt accepts integers that fit int64. Timestamps in float notation
// (1.6e12) or beyond int64 do not fit and are kept raw.
func decodeInt(v []byte) (int64, bool) {
	if !isNumber(v) {
		return 0, isNull(v)
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

func decodeIntPtr(v []byte) (*int64, bool) {
	if isNull(v) {
		return nil, true
	}
	n, ok := decodeInt(v)
	if !ok {
		return nil, false
	}
	return &n, true
}

// decodeFloatPtr refuses numbers beyond float64 (1e400): they would parse to
// ±Inf, which the normalized event could never be marshalled with.
func decodeFloatPtr(v []byte) (*float64, bool) {
	if !isNumber(v) {
		return nil, isNull(v)
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return nil, false
	}
	return &f, true
}

// decodeStrings keeps [] distinct from null: entitlement_ids [] means "no
// entitlements" and must not fall back to entitlement_id.
func decodeStrings(v []byte) ([]string, bool) {
	if v[0] != '[' {
		return nil, isNull(v)
	}
	out := []string{}
	it := iter{b: v}
	for {
		ev, more := it.element()
		if !more {
			return out, true
		}
		s, ok := decodeString(ev)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
}

// decodeAttributes reads subscriber_attributes: {"$email": {"value": "…",
// "updated_at_ms": 1}}. Members other than value and updated_at_ms are
// ignored (they stay in Event.Raw).
func decodeAttributes(v []byte) (map[string]event.Attribute, bool) {
	if v[0] != '{' {
		return nil, isNull(v)
	}
	out := make(map[string]event.Attribute)
	it := iter{b: v}
	for {
		k, av, more := it.member()
		if !more {
			return out, true
		}
		var a event.Attribute
		switch av[0] {
		case 'n':
		case '{':
			ai := iter{b: av}
			for {
				ak, fv, more := ai.member()
				if !more {
					break
				}
				ok := true
				switch string(keyName(ak)) {
				case "value":
					a.Value, ok = decodeString(fv)
				case "updated_at_ms":
					a.UpdatedAtMs, ok = decodeInt(fv)
				}
				if !ok {
					return nil, false
				}
			}
		default:
			return nil, false
		}
		out[unquote(k)] = a
	}
}

// decodeExperiments reads experiments: [{experiment_id, experiment_variant,
// enrolled_at_ms}]. The enrollment time is also accepted under
// experiment_enrolled_at_ms, the name RevenueCat's own sample uses.
func decodeExperiments(v []byte) ([]event.Experiment, bool) {
	if v[0] != '[' {
		return nil, isNull(v)
	}
	out := []event.Experiment{}
	it := iter{b: v}
	for {
		xv, more := it.element()
		if !more {
			return out, true
		}
		var x event.Experiment
		switch xv[0] {
		case 'n':
		case '{':
			var enrolled, altEnrolled *int64
			xi := iter{b: xv}
			for {
				xk, fv, more := xi.member()
				if !more {
					break
				}
				ok := true
				switch string(keyName(xk)) {
				case "experiment_id":
					x.ExperimentID, ok = decodeString(fv)
				case "experiment_variant":
					x.ExperimentVariant, ok = decodeString(fv)
				case "enrolled_at_ms":
					enrolled, ok = decodeIntPtr(fv)
				case "experiment_enrolled_at_ms":
					altEnrolled, ok = decodeIntPtr(fv)
				}
				if !ok {
					return nil, false
				}
			}
			if enrolled == nil {
				enrolled = altEnrolled
			}
			x.EnrolledAtMs = enrolled
		default:
			return nil, false
		}
		out = append(out, x)
	}
}

// decodeMetadata reads Web Billing metadata, an object of arbitrary JSON.
// Numbers beyond float64 make encoding/json fail; the field is then kept raw.
func decodeMetadata(v []byte) (map[string]any, bool) {
	if v[0] != '{' {
		return nil, isNull(v)
	}
	var m map[string]any
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, false
	}
	return m, true
}
