package id

import (
	"bytes"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeClock returns the times it holds; tests move it explicitly.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func TestNewEncodesTimeAndRandom(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	tests := []struct {
		name   string
		random []byte
		want   string
	}{
		{"zero random", make([]byte, 10), "01KJVKTDCK0000000000000000"},
		{"all ones random", bytes.Repeat([]byte{0xff}, 10), "01KJVKTDCKZZZZZZZZZZZZZZZZ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewGenerator(func() time.Time { return at }, bytes.NewReader(tt.random))
			got := g.New()
			if got != tt.want {
				t.Fatalf("New() = %q, want %q", got, tt.want)
			}
			ts, err := Time(got)
			if err != nil {
				t.Fatalf("Time(%q): %v", got, err)
			}
			if !ts.Equal(at) {
				t.Fatalf("Time(%q) = %v, want %v", got, ts, at)
			}
		})
	}
}

func TestNewIsStrictlyIncreasing(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	g := NewGenerator(clock.now, nil)
	var ids []string
	for i := 0; i < 1000; i++ {
		switch i {
		case 300:
			clock.set(clock.now().Add(time.Millisecond))
		case 600:
			// The clock steps back: ids must still increase.
			clock.set(clock.now().Add(-time.Second))
		}
		ids = append(ids, g.New())
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			t.Fatalf("id %d %q <= id %d %q", i, ids[i], i-1, ids[i-1])
		}
	}
}

func TestNewOverflowBorrowsNextMillisecond(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := NewGenerator(func() time.Time { return at }, bytes.NewReader(append(bytes.Repeat([]byte{0xff}, 10), make([]byte, 10)...)))
	first := g.New()
	second := g.New()
	if second <= first {
		t.Fatalf("second %q <= first %q", second, first)
	}
	ts, err := Time(second)
	if err != nil {
		t.Fatal(err)
	}
	if want := at.Add(time.Millisecond); !ts.Equal(want) {
		t.Fatalf("Time(second) = %v, want %v", ts, want)
	}
}

func TestNewConcurrentUnique(t *testing.T) {
	g := NewGenerator(nil, nil)
	const workers, each = 8, 500
	out := make(chan []string, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := make([]string, each)
			for i := range ids {
				ids[i] = g.New()
			}
			out <- ids
		}()
	}
	wg.Wait()
	close(out)
	seen := map[string]bool{}
	for ids := range out {
		if !sort.StringsAreSorted(ids) {
			t.Fatal("ids of one goroutine are not sorted")
		}
		for _, s := range ids {
			if len(s) != Len {
				t.Fatalf("len(%q) = %d, want %d", s, len(s), Len)
			}
			if seen[s] {
				t.Fatalf("duplicate id %q", s)
			}
			seen[s] = true
		}
	}
}

func TestTimeRejects(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"short", "01KJ", `invalid id "01KJ": length 4, want 26`},
		{"bad character", "01KJVKTDCK000000000000000U", `invalid id "01KJVKTDCK000000000000000U": bad character 'U'`},
		{"overflow", "81KJVSRSNV0000000000000000", `invalid id "81KJVSRSNV0000000000000000": overflows 128 bits`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Time(tt.in)
			if !errors.Is(err, ErrInvalid) || err.Error() != tt.want {
				t.Fatalf("Time(%q) error = %v, want %s", tt.in, err, tt.want)
			}
		})
	}
}
