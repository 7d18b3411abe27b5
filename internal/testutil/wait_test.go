package testutil

import (
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	tests := []struct {
		name    string
		holdsAt int // the call from which cond holds; 0: never
		want    bool
	}{
		{name: "holds at once", holdsAt: 1, want: true},
		{name: "holds on the third ask", holdsAt: 3, want: true},
		{name: "never holds", holdsAt: 0, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			got := Poll(200*time.Millisecond, func() bool {
				calls++
				return tc.holdsAt > 0 && calls >= tc.holdsAt
			})
			if got != tc.want {
				t.Fatalf("Poll = %v after %d calls, want %v", got, calls, tc.want)
			}
			if tc.want && calls != tc.holdsAt {
				t.Errorf("cond asked %d times, want %d (Poll stops once it holds)", calls, tc.holdsAt)
			}
		})
	}
}
