package store

import (
	"slices"
	"time"
)

// Bucket is one interval of a destination's dispatch log (DESIGN §6
// GET /api/v1/destinations/{name}/stats): the attempts it holds by
// outcome, and their latency.
type Bucket struct {
	Start     time.Time `json:"start"`
	Delivered int       `json:"delivered"`
	Failed    int       `json:"failed"` // attempts that failed and will be retried
	Dead      int       `json:"dead"`
	P50Ms     int64     `json:"p50_ms"` // of the delivered, failed and dead attempts; 0 without any
	P95Ms     int64     `json:"p95_ms"`
}

// BucketFilter selects the dispatch records of one destination in
// [Since, Since + Count*Width), cut into Count buckets of Width.
type BucketFilter struct {
	Destination string
	Since       time.Time
	Width       time.Duration
	Count       int
}

// Bucketer fills the buckets of a BucketFilter from dispatch records given
// in any order, so every store computes them alike (percentiles by the
// nearest-rank method). Records outside the window are ignored.
type Bucketer struct {
	f         BucketFilter
	buckets   []Bucket
	durations [][]int64
}

// NewBucketer returns empty buckets for f: each one present, zeros until
// Add, so a chart has a continuous axis.
func NewBucketer(f BucketFilter) *Bucketer {
	b := &Bucketer{f: f, buckets: make([]Bucket, f.Count), durations: make([][]int64, f.Count)}
	for i := range b.buckets {
		b.buckets[i].Start = f.Since.Add(time.Duration(i) * f.Width).UTC()
	}
	return b
}

// Add counts one dispatch record.
func (b *Bucketer) Add(at time.Time, status string, durationMs int64) {
	if at.Before(b.f.Since) || b.f.Width <= 0 {
		return
	}
	i := int(at.Sub(b.f.Since) / b.f.Width)
	if i >= len(b.buckets) {
		return
	}
	switch State(status) {
	case Delivered:
		b.buckets[i].Delivered++
	case Retrying:
		b.buckets[i].Failed++
	case Dead:
		b.buckets[i].Dead++
	default: // skipped: no request was judged, no latency to count
		return
	}
	b.durations[i] = append(b.durations[i], durationMs)
}

// Buckets returns the filled buckets.
func (b *Bucketer) Buckets() []Bucket {
	for i, ds := range b.durations {
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		b.buckets[i].P50Ms = rank(ds, 50)
		b.buckets[i].P95Ms = rank(ds, 95)
	}
	return b.buckets
}

// rank is the nearest-rank percentile p of sorted ds.
func rank(ds []int64, p int) int64 {
	n := (p*len(ds) + 99) / 100 // ceil(p/100 * len)
	return ds[max(n, 1)-1]
}
