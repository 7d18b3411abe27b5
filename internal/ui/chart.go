package ui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rcrouter/rcrouter/internal/store"
)

// Charts are SVG drawn on the server: no charting library, no script, and
// with 24 hourly buckets (or 360 per-minute ones) a few hundred elements at
// most. Geometry is computed here; the template only writes attributes.

// chart is the destination page's chart: one bar per bucket (delivered
// stacked under failed and dead) and the p95 latency as a line on its own
// scale.
type chart struct {
	W, H      int
	PlotH     int // bars and line live in [0, PlotH]; labels below
	Bars      []chartBar
	P95       string // polyline points, "" without any attempt
	MaxCount  int
	MaxMs     int64
	Labels    []chartLabel
	Total     int
	HasPoints bool
}

type chartBar struct {
	Start                   string // RFC 3339, for data-start
	Title                   string
	X, W                    string
	OkY, OkH, BadY, BadH    string
	Delivered, Failed, Dead int
	P50Ms, P95Ms            int64
}

type chartLabel struct {
	X    string
	Text string
}

const (
	chartW     = 720
	chartH     = 180
	chartPlotH = 156
)

func px(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// newChart lays out buckets of the given width.
func newChart(bs []store.Bucket, width time.Duration) chart {
	c := chart{W: chartW, H: chartH, PlotH: chartPlotH}
	for _, b := range bs {
		c.MaxCount = max(c.MaxCount, b.Delivered+b.Failed+b.Dead)
		c.MaxMs = max(c.MaxMs, b.P95Ms)
		c.Total += b.Delivered + b.Failed + b.Dead
	}
	if len(bs) == 0 {
		return c
	}
	step := float64(chartW) / float64(len(bs))
	bw := max(step*0.8, 0.5)
	var pts []string
	layout := "15:04"
	if width >= time.Hour {
		layout = "Jan 2 15:04"
	}
	every := max(len(bs)/6, 1)
	for i, b := range bs {
		x := float64(i) * step
		scale := func(n int) float64 {
			if c.MaxCount == 0 {
				return 0
			}
			return float64(n) / float64(c.MaxCount) * chartPlotH
		}
		okH, badH := scale(b.Delivered), scale(b.Failed+b.Dead)
		bar := chartBar{
			Start: b.Start.Format(time.RFC3339), X: px(x + (step-bw)/2), W: px(bw),
			OkY: px(chartPlotH - okH), OkH: px(okH), BadY: px(chartPlotH - okH - badH), BadH: px(badH),
			Delivered: b.Delivered, Failed: b.Failed, Dead: b.Dead, P50Ms: b.P50Ms, P95Ms: b.P95Ms,
			Title: fmt.Sprintf("%s UTC: %d delivered, %d failed, %d dead; p50 %d ms, p95 %d ms",
				b.Start.Format(layout), b.Delivered, b.Failed, b.Dead, b.P50Ms, b.P95Ms),
		}
		c.Bars = append(c.Bars, bar)
		// A point wherever there were attempts, even at 0 ms; gaps where
		// there were none.
		if b.Delivered+b.Failed+b.Dead > 0 {
			y := float64(chartPlotH)
			if c.MaxMs > 0 {
				y -= float64(b.P95Ms) / float64(c.MaxMs) * chartPlotH
			}
			pts = append(pts, px(x+step/2)+","+px(y))
		}
		if i%every == 0 {
			c.Labels = append(c.Labels, chartLabel{X: px(x), Text: b.Start.Format("15:04")})
		}
	}
	c.P95 = strings.Join(pts, " ")
	c.HasPoints = c.Total > 0
	return c
}

// spark is the overview's trend of one destination: attempts per bucket,
// the failed share on top, in a small fixed box. app.js redraws it from the
// stats API with the same arithmetic (sparkBars there).
type spark struct {
	Name string
	Bars []sparkBar
}

type sparkBar struct {
	X, OkY, OkH, BadY, BadH string
	Delivered, Failed       int // Failed counts failed and dead attempts
}

const (
	sparkW = 96
	sparkH = 24
)

func newSpark(name string, bs []store.Bucket) spark {
	s := spark{Name: name}
	most := 0
	for _, b := range bs {
		most = max(most, b.Delivered+b.Failed+b.Dead)
	}
	step := float64(sparkW) / float64(max(len(bs), 1))
	for i, b := range bs {
		bad := b.Failed + b.Dead
		h := func(n int) float64 {
			if most == 0 {
				return 0
			}
			return float64(n) / float64(most) * sparkH
		}
		okH, badH := h(b.Delivered), h(bad)
		s.Bars = append(s.Bars, sparkBar{
			X: px(float64(i) * step), OkY: px(sparkH - okH), OkH: px(okH), BadY: px(sparkH - okH - badH), BadH: px(badH),
			Delivered: b.Delivered, Failed: bad,
		})
	}
	return s
}
