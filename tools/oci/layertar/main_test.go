package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// build runs layertar in a fresh directory on a copy of content whose
// mtime, permission bits and the process umask are what the caller says,
// and returns the sha256 of the output.
func build(t *testing.T, content []byte, mtime time.Time, perm os.FileMode, umask int, gz bool) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "input-binary")
	if err := os.WriteFile(src, content, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(src, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(umask)
	defer syscall.Umask(old)
	out := filepath.Join(dir, "out", "layer.tar")
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"-out", out, "-file", "/proglog=" + src + ":0755:0:0", "-dir", "/data:0755:65532:65532"}
	if gz {
		args = append(args, "-gzip")
	}
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), b
}

func TestReproducible(t *testing.T) {
	content := bytes.Repeat([]byte("\x7fELF not really "), 10000)
	for _, gz := range []bool{false, true} {
		a, _ := build(t, content, time.Unix(1_700_000_000, 123), 0o700, 0o022, gz)
		time.Sleep(1100 * time.Millisecond) // a later wall clock, too
		b, _ := build(t, content, time.Now(), 0o555, 0o077, gz)
		if a != b {
			t.Errorf("gzip=%v: two builds from the same content differ: %s vs %s", gz, a, b)
		}
		c, _ := build(t, append([]byte("x"), content...), time.Now(), 0o555, 0o022, gz)
		if c == a {
			t.Errorf("gzip=%v: different content gave the same digest", gz)
		}
	}
}

func TestContent(t *testing.T) {
	content := []byte("binary")
	_, b := build(t, content, time.Now(), 0o600, 0o022, true)
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header carries name %q, mtime %v", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v, uname %q, gname %q", h.Name, h.ModTime, h.Uname, h.Gname)
		}
		got = append(got, h.Name+" "+string(h.Typeflag)+" "+
			strings.Join([]string{strconv.FormatInt(h.Mode, 8), strconv.Itoa(h.Uid), strconv.Itoa(h.Gid)}, ":"))
		if h.Name == "proglog" {
			data, _ := io.ReadAll(tr)
			if string(data) != "binary" {
				t.Errorf("proglog content %q", data)
			}
		}
	}
	want := []string{"data/ 5 755:65532:65532", "proglog 0 755:0:0"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParents(t *testing.T) {
	entries, err := parseEntries([]string{"/usr/local/bin/x=src:0755:0:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range entries {
		paths = append(paths, e.path)
	}
	if strings.Join(paths, ",") != "usr,usr/local,usr/local/bin,usr/local/bin/x" {
		t.Errorf("paths %v", paths)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-out", "x", "-file", "/a"},
		{"-out", "x", "-file", "/a=src:999:0:0"},
		{"-out", "x", "-file", "/a=src:0755:-1:0"},
		{"-out", "x", "-file", "/=src:0755:0:0"},
		{"-out", "x", "-file", "/a=s:0755:0:0", "-file", "/a=t:0755:0:0"},
		{"-out", "x", "-file", "/a=s:0755:0:0", "-file", "/a/b=t:0755:0:0"},
		{"-out", "x", "-dir", "/d:0755:0"},
	} {
		if err := run(args); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
