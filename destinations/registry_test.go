package destinations

import (
	"context"
	"testing"
	"time"
)

func TestCheckURL(t *testing.T) {
	tests := []struct {
		name  string
		raw   string
		quote bool
		want  string
	}{
		{"https", "https://api.segment.io", true, ""},
		{"http with port and path", "http://127.0.0.1:8080/x", true, ""},
		{"credentials are allowed here", "https://u:p@example.com", true, ""},
		{"no scheme", "api.segment.io", true, `must be an absolute http(s) URL, got "api.segment.io"`},
		{"not quoted", "api.segment.io", false, "must be an absolute http(s) URL"},
		{"wrong scheme hides credentials", "ftp://user:hunter2@example.com/x", true, `must be an absolute http(s) URL, got "ftp://<secret>@example.com/x"`},
		{"no host hides credentials", "//user:hunter2@/x", true, `must be an absolute http(s) URL, got "//<secret>@/x"`},
		{"scheme-less credentials hidden", "user:hunter2@example.com", true, `must be an absolute http(s) URL, got "<secret>@example.com"`},
		{"unparsable hides credentials", "https://user:hun ter%zz@example.com", true, `must be an absolute http(s) URL, got "https://<secret>@example.com"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CheckURL(tt.raw, tt.quote); got != tt.want {
				t.Errorf("CheckURL(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestProblemsErr(t *testing.T) {
	var ps Problems
	if ps.Err() != nil {
		t.Fatalf("no problems, err = %v", ps.Err())
	}
	ps.Add("url", "required")
	ps.Add("", "set %s or %s", "a", "b")
	if got, want := ps.Err().Error(), "url: required\nset a or b"; got != want {
		t.Errorf("Err = %q, want %q", got, want)
	}
}

func TestOptionsWithDefaults(t *testing.T) {
	o := Options{}.WithDefaults()
	if o.Timeout != DefaultTimeout || o.MaxBody != DefaultMaxBody || o.Version != "dev" || o.Logger == nil || o.Now == nil {
		t.Fatalf("defaults = %+v", o)
	}
	if o.Logger.Enabled(context.Background(), 12) {
		t.Errorf("the default logger writes; it should discard")
	}
	set := Options{Timeout: time.Second, MaxBody: 10, Version: "1.2"}.WithDefaults()
	if set.Timeout != time.Second || set.MaxBody != 10 || set.Version != "1.2" {
		t.Errorf("set values overwritten: %+v", set)
	}
}

type plain struct{}

func (plain) Send(context.Context, Delivery) Result { return Result{} }

type batching struct{ plain }

func (batching) Capabilities() Capabilities { return Capabilities{Batch: 100, MaxWait: time.Minute} }

func TestTypesAndCapabilities(t *testing.T) {
	ts := Types{{Name: "a"}, {Name: "b", RateLimit: 1}}
	if got := ts.Names(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("Names = %v", got)
	}
	if b, ok := ts.Lookup("b"); !ok || b.RateLimit != 1 {
		t.Errorf("Lookup(b) = %+v, %v", b, ok)
	}
	if _, ok := ts.Lookup("c"); ok {
		t.Errorf("Lookup(c) found a type")
	}
	if c := CapabilitiesOf(plain{}); c != (Capabilities{}) {
		t.Errorf("plain capabilities = %+v", c)
	}
	if c := CapabilitiesOf(batching{}); c.Batch != 100 || c.MaxWait != time.Minute {
		t.Errorf("batching capabilities = %+v", c)
	}
}
