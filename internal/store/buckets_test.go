package store

import (
	"testing"
	"time"
)

func TestBucketerPercentiles(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		ms       []int64
		p50, p95 int64
	}{
		{"none", nil, 0, 0},
		{"one", []int64{40}, 40, 40},
		{"two", []int64{90, 10}, 10, 90},
		{"twenty", []int64{20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 10, 19},
		{"hundred and one", func() []int64 {
			var out []int64
			for i := int64(100); i >= 0; i-- {
				out = append(out, i)
			}
			return out
		}(), 50, 95},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBucketer(BucketFilter{Since: t0, Width: time.Minute, Count: 1})
			for _, d := range tt.ms {
				b.Add(t0.Add(time.Second), "delivered", d)
			}
			got := b.Buckets()[0]
			if got.P50Ms != tt.p50 || got.P95Ms != tt.p95 || got.Delivered != len(tt.ms) {
				t.Fatalf("p50 %d p95 %d delivered %d; want %d %d %d", got.P50Ms, got.P95Ms, got.Delivered, tt.p50, tt.p95, len(tt.ms))
			}
		})
	}
}
