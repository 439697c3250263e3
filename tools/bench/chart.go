package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

var (
	colProglog   = color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	colJetStream = color.RGBA{0xff, 0x7f, 0x0e, 0xff}
	colGrid      = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	colAxis      = color.RGBA{0x44, 0x44, 0x44, 0xff}
	colText      = color.RGBA{0x22, 0x22, 0x22, 0xff}
	colGroup     = color.RGBA{0xf3, 0xf3, 0xf3, 0xff}
)

// chartPair is one workload with both systems' values.
type chartPair struct {
	label      string
	w          workload
	p, j       *rowResult
	groupStart bool
}

// renderChart draws two panels of grouped bars, one pair per workload:
// produce records/s and end-to-end p99 latency, both on log scales.
func renderChart(res *results) ([]byte, error) {
	var pairs []chartPair
	var last workload
	for _, r := range res.rows {
		if r.system != sysProglog {
			continue
		}
		j := res.pair(r)
		cp := chartPair{label: fmt.Sprintf("R%d %s p%d b%d %s", r.w.nodes, sizeShort(r.w.size), r.w.producers, r.w.batch, r.w.durability), w: r.w, p: r, j: j}
		cp.groupStart = len(pairs) == 0 || last.nodes != r.w.nodes || last.durability != r.w.durability || last.size != r.w.size
		last = r.w
		pairs = append(pairs, cp)
	}
	if len(pairs) == 0 {
		return nil, fmt.Errorf("nothing to chart: no proglog rows")
	}
	const (
		left, right = 70, 20
		slot        = 30
		bar         = 11
		panelH      = 300
		top         = 60
		gap         = 40
	)
	maxLabel := 0
	for _, p := range pairs {
		maxLabel = max(maxLabel, len(p.label))
	}
	labelH := 7*maxLabel + 24
	width := max(left+right+slot*len(pairs), 640)
	height := top + panelH + gap + panelH + labelH
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)

	drawText(img, left, 20, "proglog vs NATS JetStream: produce throughput and end-to-end p99 latency (log scales)", colText)
	legend := func(x int, c color.Color, s string) int {
		fill(img, image.Rect(x, 30, x+12, 42), c)
		drawText(img, x+16, 40, s, colText)
		return x + 16 + 7*len(s) + 20
	}
	x := legend(left, colProglog, "proglog")
	legend(x, colJetStream, "JetStream")

	val := func(r *rowResult, f func(*rowResult) float64) float64 {
		if r == nil || r.failed != nil {
			return 0
		}
		return f(r)
	}
	rate := func(r *rowResult) float64 { return r.recordsPerSec() }
	p99ms := func(r *rowResult) float64 {
		if r.p99() < 0 {
			return 0
		}
		return float64(r.p99()) / float64(time.Millisecond)
	}
	panel := func(y0 int, title string, f func(*rowResult) float64, unit func(float64) string) {
		var vals []float64
		for _, p := range pairs {
			vals = append(vals, val(p.p, f), val(p.j, f))
		}
		lo, hi := logBounds(vals)
		y1 := y0 + panelH
		scale := func(v float64) int {
			if v <= 0 {
				return y1
			}
			fr := (math.Log10(v) - lo) / (hi - lo)
			return y1 - int(fr*float64(panelH))
		}
		// Shade alternate groups.
		shade := false
		for i, p := range pairs {
			if p.groupStart {
				shade = !shade
			}
			if shade {
				fill(img, image.Rect(left+i*slot, y0, left+(i+1)*slot, y1), colGroup)
			}
		}
		for e := lo; e <= hi+1e-9; e++ {
			y := scale(math.Pow(10, e))
			hline(img, left, width-right, y, colGrid)
			s := unit(math.Pow(10, e))
			drawText(img, left-8-7*len(s), y+4, s, colText)
		}
		for i, p := range pairs {
			xb := left + i*slot + (slot-2*bar)/2
			if v := val(p.p, f); v > 0 {
				fill(img, image.Rect(xb, scale(v), xb+bar, y1), colProglog)
			}
			if v := val(p.j, f); v > 0 {
				fill(img, image.Rect(xb+bar, scale(v), xb+2*bar, y1), colJetStream)
			}
		}
		hline(img, left, width-right, y1, colAxis)
		vline(img, left, y0, y1, colAxis)
		drawText(img, left+4, y0-6, title, colText)
	}
	panel(top+10, "produce records/s (higher is better)", rate, siUnit)
	panel(top+10+panelH+gap, "end-to-end p99 latency (lower is better)", p99ms, msUnit)
	yl := top + 10 + 2*panelH + gap + 6
	for i, p := range pairs {
		drawTextVertical(img, left+i*slot+slot/2-6, yl, p.label, colText)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sizeShort(n int) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%dKiB", n/1024)
	}
	return fmt.Sprintf("%dB", n)
}

// logBounds returns whole decades around the positive values.
func logBounds(vals []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if v > 0 {
			lo = min(lo, math.Log10(v))
			hi = max(hi, math.Log10(v))
		}
	}
	if math.IsInf(lo, 1) {
		return 0, 1
	}
	lo, hi = math.Floor(lo), math.Ceil(hi)
	if hi <= lo {
		hi = lo + 1
	}
	return lo, hi
}

func siUnit(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

func msUnit(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%gus", v*1000)
	}
	if v >= 1000 {
		return fmt.Sprintf("%gs", v/1000)
	}
	return fmt.Sprintf("%gms", v)
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	fill(img, image.Rect(x0, y, x1, y+1), c)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	fill(img, image.Rect(x, y0, x+1, y1), c)
}

// drawText writes s with its baseline at y.
func drawText(img draw.Image, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// drawTextVertical writes s rotated a quarter turn clockwise (reading top
// to bottom), its top-left corner at (x, y).
func drawTextVertical(img *image.RGBA, x, y int, s string, c color.Color) {
	w, h := 7*len(s), 13
	tmp := image.NewRGBA(image.Rect(0, 0, w, h))
	drawText(tmp, 0, 10, s, c)
	for ty := 0; ty < h; ty++ {
		for tx := 0; tx < w; tx++ {
			if _, _, _, a := tmp.At(tx, ty).RGBA(); a > 0 {
				// Clockwise: (tx, ty) -> (h-1-ty, tx).
				img.Set(x+h-1-ty, y+tx, tmp.At(tx, ty))
			}
		}
	}
}
