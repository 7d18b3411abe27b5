package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rcrouter/rcrouter/destinations"
	"github.com/rcrouter/rcrouter/destinations/destinationstest"
	"github.com/rcrouter/rcrouter/internal/secret"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// verify is a receiver's check, written from the Standard Webhooks spec and
// independent of sign: the signed content is "{id}.{timestamp}.{body}", the
// key is the base64 after "whsec_" (else the secret's bytes), and the
// signature header holds one or more space-separated "v1,<base64>" entries,
// any of which may match.
func verify(signingSecret string, h http.Header, body []byte) error {
	key := []byte(signingSecret)
	if rest, ok := strings.CutPrefix(signingSecret, "whsec_"); ok {
		var err error
		if key, err = base64.StdEncoding.DecodeString(rest); err != nil {
			return err
		}
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing headers")
	}
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		return errors.New("bad timestamp")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, entry := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && subtle.ConstantTimeCompare(got, want) == 1 {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// The Standard Webhooks specification's published test vector.
func TestSignKnownAnswer(t *testing.T) {
	key, err := signingKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	sign(h, key, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	want := http.Header{
		"Webhook-Id":        {"msg_p5jXN8AQM9LWM0D4loKWxJek"},
		"Webhook-Timestamp": {"1614265330"},
		"Webhook-Signature": {"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
	}
	for k, v := range want {
		if h.Get(k) != v[0] {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v[0])
		}
	}
}

func TestVerifier(t *testing.T) {
	const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	good := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	header := func(sig string) http.Header {
		return http.Header{"Webhook-Id": {"msg_p5jXN8AQM9LWM0D4loKWxJek"}, "Webhook-Timestamp": {"1614265330"}, "Webhook-Signature": {sig}}
	}
	tests := []struct {
		name   string
		secret string
		h      http.Header
		body   []byte
		ok     bool
	}{
		{"published vector", whsec, header(good), body, true},
		{"one of several entries", whsec, header("v1,AAAA v1a,xyz " + good), body, true},
		{"tampered body", whsec, header(good), []byte(`{"test": 2432232315}`), false},
		{"other key", "whsec_" + b64("another key"), header(good), body, false},
		{"no signature", whsec, header(""), body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := verify(tt.secret, tt.h, tt.body); (err == nil) != tt.ok {
				t.Errorf("verify = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestSendSignsAndResignsEachRetry(t *testing.T) {
	tests := []struct {
		name   string
		secret string
	}{
		{"whsec base64 key", "whsec_" + b64("a 32-byte key for the test sink!")},
		{"raw secret bytes", "plain-shared-secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := destinationstest.NewServer(t, destinationstest.Reply{Status: 500}, destinationstest.Reply{Status: 502}, destinationstest.Reply{Status: 200})
			opts := fastOptions()
			opts.Now = (&clock{t: t0, step: 7 * time.Second}).Now
			d := mustNew(t, Config{URL: s.URL, SigningSecret: secret.Secret(tt.secret)}, opts)

			res := d.Send(context.Background(), delivery())

			if res.Outcome != destinations.Delivered || len(res.Exchanges) != 3 {
				t.Fatalf("result %s with %d exchanges", res.Outcome, len(res.Exchanges))
			}
			got := s.Requests()
			var last int64
			for i, r := range got {
				if err := verify(tt.secret, r.Header, r.Body); err != nil {
					t.Errorf("request %d: %v", i, err)
				}
				if id := r.Header.Get("webhook-id"); id != "evt-1:hook" {
					t.Errorf("request %d webhook-id = %q", i, id)
				}
				ts, _ := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
				if i == 0 && ts != t0.Unix() {
					t.Errorf("first timestamp = %d, want %d", ts, t0.Unix())
				}
				if i > 0 && ts <= last {
					t.Errorf("request %d timestamp %d not after %d: not re-signed", i, ts, last)
				}
				last = ts
				// The dispatch record shows what was sent.
				x := res.Exchanges[i].Request.Headers
				if x["Webhook-Signature"] != r.Header.Get("webhook-signature") || x["Webhook-Timestamp"] != r.Header.Get("webhook-timestamp") {
					t.Errorf("request %d recorded %q/%q, sent %q/%q", i, x["Webhook-Signature"], x["Webhook-Timestamp"],
						r.Header.Get("webhook-signature"), r.Header.Get("webhook-timestamp"))
				}
			}
		})
	}
}
