package seglog

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/proglog/proglog/go/segment"
)

// Every log benchmark has a raw baseline. ".../raw" writes the same bytes
// (record framing included) with plain os.File.Write calls, one call per
// Append or AppendBatch, with the same fsync cadence: after every call
// under SyncAlways; under SyncNever only when a file reaches the size or
// record count at which the log rolls over to a new segment (the log
// fsyncs a segment when it seals it). ".../log" measures the log.
//
// Both report MB/s of record data (b.SetBytes). Because the machine is
// noisy, ".../log" also reports "x-raw" = raw time / log time (1.0 = as
// fast as raw, 0.8 = 80% of raw throughput) from a second, paired phase
// run after its timed loop with the timer stopped: raw and log operations
// in alternating chunks of 16, so both see the same background load, at
// least b.N of each and at least 100 ms of log time.
// See README.md for results.

var benchSizes = []int{100, 1 << 10, 64 << 10}

// pairedRatio runs raw and log operations in alternating chunks
// (alternating which goes first) and returns total raw time / total log
// time. It runs at least n of each and enough for pairedMin of log time,
// so that short operations are not judged on a few hundred samples.
func pairedRatio(n int, raw, log func()) float64 {
	const chunk = 16
	const pairedMin = 100 * time.Millisecond
	var tr, tl time.Duration
	for i := 0; i < n || tl < pairedMin; i += chunk {
		first, second, tf, ts := raw, log, &tr, &tl
		if (i/chunk)%2 == 1 {
			first, second, tf, ts = log, raw, &tl, &tr
		}
		t0 := time.Now()
		for j := 0; j < chunk; j++ {
			first()
		}
		t1 := time.Now()
		for j := 0; j < chunk; j++ {
			second()
		}
		*tf += t1.Sub(t0)
		*ts += time.Since(t1)
	}
	return tr.Seconds() / tl.Seconds()
}

func benchRecords(size, n int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = make([]byte, size)
		for j := range recs[i] {
			recs[i][j] = byte(i + j)
		}
	}
	return recs
}

// rawFile appends to a sequence of plain files, starting a new one (after
// an fsync of the old) where the log rolls over to a new segment: when the
// store bytes or the index entries of a default segment would overflow.
type rawFile struct {
	dir        string
	f          *os.File
	size       int
	records    int
	maxBytes   int
	maxRecords int
	files      int
}

func newRawFile(b *testing.B) *rawFile {
	return &rawFile{
		dir:        b.TempDir(),
		maxBytes:   DefaultMaxStoreBytes - segment.FileHeaderSize,
		maxRecords: (DefaultMaxIndexBytes - segment.FileHeaderSize) / segment.IndexEntryWidth,
	}
}

func (r *rawFile) write(b *testing.B, buf []byte, records int, sync bool) {
	if r.f == nil || r.size+len(buf) > r.maxBytes || r.records+records > r.maxRecords {
		if r.f != nil {
			if err := r.f.Sync(); err != nil {
				b.Fatal(err)
			}
			r.f.Close()
		}
		f, err := os.OpenFile(filepath.Join(r.dir, fmt.Sprintf("raw%d", r.files)), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		r.f, r.size, r.records = f, 0, 0
		r.files++
	}
	if _, err := r.f.Write(buf); err != nil {
		b.Fatal(err)
	}
	r.size += len(buf)
	r.records += records
	if sync {
		if err := r.f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncNever} {
		for _, size := range benchSizes {
			for _, batch := range []int{1, 100} {
				name := fmt.Sprintf("%v/%dB/batch%d", policy, size, batch)
				recs := benchRecords(size, batch)
				framed := make([]byte, 0, batch*(size+segment.RecordHeaderSize))
				for _, r := range recs {
					framed = append(framed, make([]byte, segment.RecordHeaderSize)...)
					framed = append(framed, r...)
				}
				b.Run(name+"/raw", func(b *testing.B) {
					rf := newRawFile(b)
					defer func() {
						if rf.f != nil {
							rf.f.Close()
						}
					}()
					b.SetBytes(int64(size * batch))
					syscall.Sync() // start without earlier runs' dirty pages
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						rf.write(b, framed, batch, policy == SyncAlways)
					}
					b.StopTimer() // exclude closing
				})
				b.Run(name+"/log", func(b *testing.B) {
					c := DefaultConfig()
					c.Sync = policy
					l, err := Open(b.TempDir(), c)
					if err != nil {
						b.Fatal(err)
					}
					defer l.Close()
					b.SetBytes(int64(size * batch))
					b.ReportAllocs()
					syscall.Sync()
					b.ResetTimer()
					appendOnce := func() {
						var err error
						if batch == 1 {
							_, err = l.Append(recs[0])
						} else {
							_, err = l.AppendBatch(recs)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					for i := 0; i < b.N; i++ {
						appendOnce()
					}
					b.StopTimer() // exclude the paired phase and Close
					rf := newRawFile(b)
					defer rf.f.Close()
					rf.write(b, framed, batch, false) // create the file outside the measurement
					b.ReportMetric(pairedRatio(b.N, func() { rf.write(b, framed, batch, policy == SyncAlways) }, appendOnce), "x-raw")
				})
			}
		}
	}
}

func BenchmarkRead(b *testing.B) {
	const n = 1000
	for _, size := range benchSizes {
		dir := b.TempDir()
		c := DefaultConfig()
		c.Sync = SyncNever
		l, err := Open(dir, c)
		if err != nil {
			b.Fatal(err)
		}
		rec := benchRecords(size, 1)[0]
		frame := int64(size + segment.RecordHeaderSize)
		for i := 0; i < n; i++ {
			if _, err := l.Append(rec); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("%dB/raw", size), func(b *testing.B) {
			// The same pread of header+data into a new slice, positions
			// known in advance.
			f, err := os.Open(segment.StorePath(dir, 0))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rawRead(b, f, frame, i%n)
			}
		})
		b.Run(fmt.Sprintf("%dB/log", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Read(uint64(i % n)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			f, err := os.Open(segment.StorePath(dir, 0))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			i, j := 0, 0
			b.ReportMetric(pairedRatio(b.N,
				func() { rawRead(b, f, frame, i%n); i++ },
				func() {
					if _, err := l.Read(uint64(j % n)); err != nil {
						b.Fatal(err)
					}
					j++
				}), "x-raw")
		})
		l.Close()
	}
}

// rawRead is the raw baseline of Read: one pread of a record's header and
// data, at a position known in advance, into a new slice.
func rawRead(b *testing.B, f *os.File, frame int64, i int) []byte {
	buf := make([]byte, frame)
	if _, err := f.ReadAt(buf, segment.FileHeaderSize+int64(i)*frame); err != nil {
		b.Fatal(err)
	}
	return buf[segment.RecordHeaderSize:]
}
