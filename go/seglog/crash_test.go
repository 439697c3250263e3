package seglog

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proglog/proglog/go/segment"
)

// crashImage builds a log with several segments and returns a copy of its
// files as a crash would leave them (clean=false: copied while open, index
// dirty and preallocated, nothing fsynced beyond what SyncNever does) or
// after a clean Close. It also returns the last segment's base, the store
// position of every record of that segment, and NextOffset.
func crashImage(t *testing.T, clean bool) (dir string, lastBase uint64, pos []int64, next uint64) {
	t.Helper()
	src := t.TempDir()
	l := openLog(t, src, testConfig())
	bases := fillSegments(t, l, 3)
	appendN(t, l, 3)
	lastBase, next = bases[len(bases)-1], l.NextOffset()
	p := int64(segment.FileHeaderSize)
	for off := lastBase; off < next; off++ {
		pos = append(pos, p)
		p += segment.RecordHeaderSize + int64(len(payload(off)))
	}
	if clean {
		l.Close()
		return copyDir(t, src), lastBase, pos, next
	}
	dir = copyDir(t, src) // the page cache as a killed process leaves it
	crash(t, l)
	return dir, lastBase, pos, next
}

// (a) A torn last record, cut at every byte: after a crash recovery yields
// exactly the records before it, keeps the cut bytes in a side file, and
// appending works again. After a clean shutdown the record was fsynced, so
// a short store is corruption: Open fails and cuts nothing.
func TestCrashTornLastRecordAtEveryByte(t *testing.T) {
	for _, clean := range []bool{false, true} {
		t.Run(fmt.Sprintf("clean=%v", clean), func(t *testing.T) {
			img, lastBase, pos, next := crashImage(t, clean)
			storePath := segment.StorePath(img, lastBase)
			store, err := os.ReadFile(storePath)
			if err != nil {
				t.Fatal(err)
			}
			lastPos := pos[len(pos)-1]
			if int64(len(store)) != lastPos+segment.RecordHeaderSize+int64(len(payload(next-1))) {
				t.Fatalf("image store is %d bytes", len(store))
			}
			for cut := lastPos; cut < int64(len(store)); cut++ {
				dir := copyDir(t, img)
				if err := os.Truncate(segment.StorePath(dir, lastBase), cut); err != nil {
					t.Fatal(err)
				}
				l, err := Open(dir, testConfig())
				if clean {
					if ce := asCorruption(t, err); ce.Path != segment.StorePath(dir, lastBase) || ce.Position != lastPos {
						t.Fatalf("cut at %d: corruption at %s:%d, want %d", cut, ce.Path, ce.Position, lastPos)
					}
					continue
				}
				if err != nil {
					t.Fatalf("cut at %d: Open: %v", cut, err)
				}
				checkLog(t, l, 0, next-1)
				r := l.Recovery()
				if len(r) != 1 || r[0].BaseOffset != lastBase || r[0].TruncatedBytes != cut-lastPos {
					t.Fatalf("cut at %d: Recovery = %+v, want %d torn bytes cut in segment %d", cut, r, cut-lastPos, lastBase)
				}
				if cut > lastPos {
					if torn, err := os.ReadFile(r[0].TornPath); err != nil || string(torn) != string(store[lastPos:cut]) {
						t.Fatalf("cut at %d: torn file %q holds %x (%v), want %x", cut, r[0].TornPath, torn, err, store[lastPos:cut])
					}
				}
				appendN(t, l, 2)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				l, err = Open(dir, testConfig())
				if err != nil {
					t.Fatal(err)
				}
				checkLog(t, l, 0, next+1) // the reopen ignored the side file
				if err := l.Remove(); err != nil {
					t.Fatalf("Remove: %v", err)
				}
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Fatalf("Remove left %s: %v", dir, err)
				}
			}
		})
	}
}

// (b) One flipped bit. Decision (documented in doc.go): a bad record with
// valid records after it is corruption (*CorruptionError, never skipped);
// after a crash, a bad last record with nothing after it in the last
// segment is a torn write and is cut off; after a clean shutdown it was
// fsynced, so it is corruption. A clean shutdown lets Open skip the full checksum
// scan, so corruption in the middle is then reported by Read.
func TestCrashBitFlip(t *testing.T) {
	type outcome int
	const (
		openCorrupt outcome = iota // Open fails with *CorruptionError at the position
		readCorrupt                // Open succeeds, Read of the record reports it
		truncated                  // Open cuts the record off as torn
	)
	regions := []struct {
		name string
		at   func(recPos int64) int64
		bit  byte
	}{
		{"length (low bit)", func(p int64) int64 { return p + 3 }, 1},
		{"length (high bit)", func(p int64) int64 { return p }, 0x80},
		{"crc", func(p int64) int64 { return p + 6 }, 4},
		{"data", func(p int64) int64 { return p + segment.RecordHeaderSize + 2 }, 0x10},
	}
	tests := []struct {
		record string // which record: "active-mid", "active-last", "sealed-mid", "sealed-last"
		clean  bool
		want   map[string]outcome // by region name; default below
		def    outcome
	}{
		{"active-mid", false, nil, openCorrupt},
		{"active-mid", true, nil, readCorrupt},
		{"active-last", false, nil, truncated},
		{"active-last", true, nil, openCorrupt},
		{"sealed-mid", false, nil, readCorrupt},
		{"sealed-mid", true, nil, readCorrupt},
		// A changed length in a sealed segment's last record breaks the
		// index/store consistency check, so the segment is scanned, and a
		// sealed segment has no torn tail: corruption.
		{"sealed-last", false, map[string]outcome{"length (low bit)": openCorrupt, "length (high bit)": openCorrupt}, readCorrupt},
		{"sealed-last", true, map[string]outcome{"length (low bit)": openCorrupt, "length (high bit)": openCorrupt}, readCorrupt},
	}
	for _, tt := range tests {
		for _, rg := range regions {
			t.Run(fmt.Sprintf("%s/clean=%v/%s", tt.record, tt.clean, rg.name), func(t *testing.T) {
				img, lastBase, pos, next := crashImage(t, tt.clean)
				bases := segmentBases(t, img)
				var base, off uint64
				var recPos int64
				switch tt.record {
				case "active-mid":
					base, off, recPos = lastBase, lastBase+1, pos[1]
				case "active-last":
					base, off, recPos = lastBase, next-1, pos[len(pos)-1]
				case "sealed-mid", "sealed-last":
					base = bases[len(bases)-2]
					off = base + 1
					if tt.record == "sealed-last" {
						off = lastBase - 1
					}
					recPos = segment.FileHeaderSize
					for o := base; o < off; o++ {
						recPos += segment.RecordHeaderSize + int64(len(payload(o)))
					}
				}
				path := segment.StorePath(img, base)
				b, _ := os.ReadFile(path)
				b[rg.at(recPos)] ^= rg.bit
				os.WriteFile(path, b, 0o644)

				want := tt.def
				if w, ok := tt.want[rg.name]; ok {
					want = w
				}
				l, err := Open(img, testConfig())
				switch want {
				case openCorrupt:
					ce := asCorruption(t, err)
					if ce.Path != path || ce.Position != recPos {
						t.Fatalf("corruption at %s:%d, want %s:%d", ce.Path, ce.Position, path, recPos)
					}
					return
				case readCorrupt:
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					defer l.Close()
					_, err := l.Read(off)
					if ce := asCorruption(t, err); ce.Path != path || ce.Position != recPos {
						t.Fatalf("Read(%d): corruption at %s:%d, want %s:%d", off, ce.Path, ce.Position, path, recPos)
					}
					if l.NextOffset() != next {
						t.Fatalf("NextOffset = %d, want %d", l.NextOffset(), next)
					}
				case truncated:
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					defer l.Close()
					checkLog(t, l, 0, next-1)
					if r := l.Recovery(); len(r) != 1 || r[0].TruncatedBytes == 0 {
						t.Fatalf("Recovery = %+v, want a torn tail cut", r)
					}
					appendN(t, l, 1)
					checkLog(t, l, 0, next)
				}
			})
		}
	}
	t.Run("store file header", func(t *testing.T) {
		for _, clean := range []bool{false, true} {
			img, lastBase, _, _ := crashImage(t, clean)
			path := segment.StorePath(img, lastBase)
			b, _ := os.ReadFile(path)
			b[5] ^= 1
			os.WriteFile(path, b, 0o644)
			_, err := Open(img, testConfig())
			if ce := asCorruption(t, err); ce.Path != path || ce.Position != 0 {
				t.Fatalf("corruption at %s:%d", ce.Path, ce.Position)
			}
		}
	})
	t.Run("index file header: rebuilt, not an error", func(t *testing.T) {
		img, lastBase, _, next := crashImage(t, true)
		path := segment.IndexPath(img, lastBase)
		b, _ := os.ReadFile(path)
		b[5] ^= 1
		os.WriteFile(path, b, 0o644)
		l := openLog(t, img, testConfig())
		checkLog(t, l, 0, next)
		if r := l.Recovery(); len(r) != 1 || !r[0].IndexRebuilt {
			t.Fatalf("Recovery = %+v", r)
		}
	})
}

// (c) The index left at its full preallocated size (no Close): reopen gives
// the right NextOffset.
func TestCrashIndexPreallocated(t *testing.T) {
	entries := (testConfig().Segment.MaxIndexBytes - segment.FileHeaderSize) / segment.IndexEntryWidth
	tests := []struct {
		name    string
		c       func() Config
		records int
	}{
		{"new empty log", testConfig, 0},
		{"a few records", testConfig, 5},
		{"several segments", testConfig, 120},
		{"index exactly full", func() Config {
			c := testConfig()
			c.Segment.MaxStoreBytes = 1 << 20
			return c
		}, int(entries)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := tt.c()
			l := openLog(t, dir, c)
			appendN(t, l, tt.records)
			bases := segmentBases(t, dir)
			last := bases[len(bases)-1]
			crash(t, l)
			if got := fileSize(t, segment.IndexPath(dir, last)); got != int64(c.Segment.MaxIndexBytes) {
				t.Fatalf("index is %d bytes, want the preallocated %d", got, c.Segment.MaxIndexBytes)
			}
			l = openLog(t, dir, c)
			checkLog(t, l, 0, uint64(tt.records))
			if r := l.Recovery(); len(r) != 1 || !r[0].IndexRebuilt || r[0].TruncatedBytes != 0 {
				t.Fatalf("Recovery = %+v", r)
			}
			appendN(t, l, 3)
			checkLog(t, l, 0, uint64(tt.records)+3)
		})
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// crashChildEnv names the directory the child process appends to.
const crashChildEnv = "PROGLOG_CRASH_CHILD_DIR"

// TestCrashChild is the child process of TestCrashKill: it appends with the
// default sync policy and prints "ack <first> <count>" after each
// acknowledged append, until it is killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("child process of TestCrashKill")
	}
	c := testConfig()
	c.Sync = SyncAlways
	c.Segment.MaxStoreBytes = 8 << 10
	l, err := Open(dir, c)
	if err != nil {
		fmt.Fprintln(os.Stdout, "error", err)
		os.Exit(3)
	}
	deadline := time.Now().Add(20 * time.Second) // if the parent never kills us
	for i := 0; time.Now().Before(deadline); i++ {
		next := l.NextOffset()
		n := 1
		var first uint64
		if i%4 == 3 {
			n = 1 + i%7
			batch := make([][]byte, n)
			for j := range batch {
				batch[j] = payload(next + uint64(j))
			}
			first, err = l.AppendBatch(batch)
		} else {
			first, err = l.Append(payload(next))
		}
		if err != nil {
			fmt.Fprintln(os.Stdout, "error", err)
			os.Exit(3)
		}
		fmt.Fprintf(os.Stdout, "ack %d %d\n", first, n) // unbuffered: one write(2)
	}
	os.Exit(4)
}

// (d) A child process appending with SyncAlways is SIGKILLed at a random
// moment; every acknowledged record survives with its content. The same
// log is reused across rounds, so recovery runs on recovered logs too.
func TestCrashKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var acked uint64 // every offset below this was acknowledged
	start := time.Now()
	for round := 0; round < 20; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		killAfter := time.Duration(rng.IntN(15000)) * time.Microsecond
		var timer <-chan time.Time
		killed := false
		for line := range lines {
			if strings.HasPrefix(line, "error") {
				t.Fatalf("round %d: child: %s", round, line)
			}
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "ack" {
				continue // test framework output
			}
			first, _ := strconv.ParseUint(f[1], 10, 64)
			n, _ := strconv.ParseUint(f[2], 10, 64)
			if first != acked {
				t.Fatalf("ack of %d, expected %d", first, acked)
			}
			acked = max(acked, first+n)
			if timer == nil {
				timer = time.After(killAfter)
			}
			select {
			case <-timer:
				if !killed {
					cmd.Process.Signal(syscall.SIGKILL)
					killed = true
				}
			default:
			}
		}
		if !killed {
			cmd.Process.Signal(syscall.SIGKILL)
		}
		cmd.Wait()
		if acked == 0 {
			t.Fatalf("round %d: child acknowledged nothing", round)
		}
		l, err := Open(dir, testConfig())
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
		}
		next := l.NextOffset()
		if next < acked {
			t.Fatalf("round %d: NextOffset %d after SIGKILL, but %d records were acknowledged", round, next, acked)
		}
		checkLog(t, l, 0, next) // acknowledged and unacknowledged-but-written records alike
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		acked = next
	}
	t.Logf("20 kill rounds, %d records, %v", acked, time.Since(start))
}
