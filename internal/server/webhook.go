package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rcrouter/rcrouter/internal/revenuecat"
	"github.com/rcrouter/rcrouter/internal/secret"
)

// SignatureHeader carries RevenueCat's optional HMAC signature.
const SignatureHeader = "X-RevenueCat-Webhook-Signature"

// signatureTolerance is how far the signed timestamp may be from now.
const signatureTolerance = 5 * time.Minute

// retryAfterSeconds is what a 503 asks RevenueCat to wait. RevenueCat keeps
// its own schedule (5, 10, 20… minutes), so this is advice for other callers.
const retryAfterSeconds = "30"

// webhook is POST {webhook_path}. It never answers 200 for anything that is
// not committed (DESIGN §1, §6).
func (s *Server) webhook(c *gin.Context) {
	st := s.settings.Load()
	if !authorized(c.GetHeader("Authorization"), st) {
		s.reject(c, http.StatusUnauthorized, "unauthorized", "missing or wrong Authorization header")
		return
	}
	body, err := readBody(c.Request, st.MaxBodyBytes)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.reject(c, http.StatusRequestEntityTooLarge, "too_large", "body larger than "+strconv.FormatInt(st.MaxBodyBytes, 10)+" bytes")
			return
		}
		s.reject(c, http.StatusBadRequest, "bad_request", "reading body: "+err.Error())
		return
	}
	if st.SigningSecret != "" {
		if err := verifySignature(c.GetHeader(SignatureHeader), body, st.SigningSecret, s.opts.Clock.Now()); err != nil {
			s.reject(c, http.StatusUnauthorized, "unauthorized", err.Error())
			return
		}
	}
	e, err := revenuecat.Decode(body)
	if err != nil {
		s.reject(c, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	res, err := s.opts.Backend.Accept(c.Request.Context(), e)
	if err != nil {
		s.opts.Logger.Error("webhook not stored", "event_id", e.ID, "err", err)
		c.Header("Retry-After", retryAfterSeconds)
		s.reject(c, http.StatusServiceUnavailable, "unavailable", "event not stored, retry later")
		return
	}
	if !res.Created {
		s.received.WithLabelValues("duplicate").Inc()
		c.JSON(http.StatusOK, gin.H{"status": "duplicate", "event_id": e.ID})
		return
	}
	s.received.WithLabelValues("accepted").Inc()
	dests := res.Destinations
	if dests == nil {
		dests = []string{}
	}
	c.JSON(http.StatusOK, gin.H{"status": "accepted", "event_id": e.ID, "destinations": dests})
}

func (s *Server) reject(c *gin.Context, code int, outcome, msg string) {
	s.received.WithLabelValues(outcome).Inc()
	c.AbortWithStatusJSON(code, gin.H{"error": msg})
}

// authorized compares the Authorization header with every configured value
// in constant time. Nothing is added or stripped: "Bearer x" configured means
// "Bearer x" sent. Every value is compared, so timing does not tell which one
// was close.
func authorized(got string, st *Settings) bool {
	if len(st.Authorization) == 0 {
		return st.AllowUnauthenticated
	}
	ok := 0
	for _, want := range st.Authorization {
		if want == "" {
			continue
		}
		ok |= subtle.ConstantTimeCompare([]byte(got), []byte(want.Value()))
	}
	return ok == 1
}

// readBody reads at most limit bytes; one byte more is a *http.MaxBytesError.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		// ReadFrom wants MinRead bytes free before each read, the one that
		// finds EOF included: without them a body of exactly ContentLength
		// would be copied once more into a buffer twice its size.
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	_, err := io.Copy(&buf, http.MaxBytesReader(nil, r.Body, limit))
	return buf.Bytes(), err
}

// verifySignature checks "t=<unix>,v1=<hex>[,v1=<hex>…]": valid when any v1
// equals HMAC-SHA256(secret, "<t>.<body>") and t is within 5 minutes of now.
func verifySignature(header string, body []byte, key secret.Secret, now time.Time) error {
	if header == "" {
		return errors.New("missing " + SignatureHeader + " header")
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("signature has no valid t= timestamp")
	}
	if d := now.Sub(time.Unix(unix, 0)); d > signatureTolerance || d < -signatureTolerance {
		return errors.New("signature timestamp outside the 5 minute tolerance")
	}
	mac := hmac.New(sha256.New, []byte(key.Value()))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return errors.New("signature does not match")
}
