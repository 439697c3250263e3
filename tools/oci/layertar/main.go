// Command layertar writes a reproducible tar file for one container image
// layer: the same inputs give the same bytes, whatever the input files'
// mtimes, owners, permission bits or the umask.
//
//	layertar -out layer.tar.gz -gzip \
//	    -file /proglog=bazel-out/.../proglog:0755:0:0 \
//	    -dir /data:0755:65532:65532
//
// Every entry has mtime 0 (1970-01-01), the given numeric owner and mode and
// no user or group names; entries are sorted by path; parent directories
// that are not given are added as 0755 root:root. With -gzip the tar is
// compressed at the default level with an empty gzip header (no name, mtime
// 0). It is the layer builder of tools/oci/layer.bzl.
package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// entry is one file or directory of the layer.
type entry struct {
	path     string // clean, relative ("proglog", "data/x")
	src      string // source file; empty for a directory
	mode     int64
	uid, gid int
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "layertar:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("layertar", flag.ContinueOnError)
	out := fs.String("out", "", "output file")
	gz := fs.Bool("gzip", false, "gzip the tar")
	var files, dirs listFlag
	fs.Var(&files, "file", "DEST=SRC:MODE:UID:GID, a regular file at DEST in the layer (repeatable)")
	fs.Var(&dirs, "dir", "DEST:MODE:UID:GID, a directory (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return errors.New("usage: layertar -out FILE [-gzip] [-file DEST=SRC:MODE:UID:GID]... [-dir DEST:MODE:UID:GID]...")
	}
	entries, err := parseEntries(files, dirs)
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := write(f, entries, *gz); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// parseEntries turns the flags into a sorted entry list with parents added.
func parseEntries(files, dirs []string) ([]entry, error) {
	byPath := map[string]entry{}
	add := func(e entry) error {
		if old, ok := byPath[e.path]; ok && (old.src != "" || e.src != "") {
			return fmt.Errorf("%s given twice", e.path)
		}
		byPath[e.path] = e
		return nil
	}
	for _, f := range files {
		dest, rest, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("-file %q: want DEST=SRC:MODE:UID:GID", f)
		}
		e, err := parseAttrs(dest, rest, true)
		if err != nil {
			return nil, fmt.Errorf("-file %q: %w", f, err)
		}
		if err := add(e); err != nil {
			return nil, err
		}
	}
	for _, d := range dirs {
		dest, rest, _ := strings.Cut(d, ":")
		e, err := parseAttrs(dest, ":"+rest, false)
		if err != nil {
			return nil, fmt.Errorf("-dir %q: %w", d, err)
		}
		if err := add(e); err != nil {
			return nil, err
		}
	}
	// Parents of every entry, so extractors do not invent their own.
	for p := range byPath {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if _, ok := byPath[dir]; !ok {
				byPath[dir] = entry{path: dir, mode: 0o755}
			} else if byPath[dir].src != "" {
				return nil, fmt.Errorf("%s is a file and a parent directory", dir)
			}
		}
	}
	entries := make([]entry, 0, len(byPath))
	for _, e := range byPath {
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })
	return entries, nil
}

// parseAttrs parses "SRC:MODE:UID:GID" (file) or ":MODE:UID:GID" (directory).
func parseAttrs(dest, spec string, file bool) (entry, error) {
	parts := strings.Split(spec, ":")
	if len(parts) != 4 {
		return entry{}, errors.New("want SRC:MODE:UID:GID (file) or DEST:MODE:UID:GID (directory)")
	}
	clean := strings.TrimPrefix(path.Clean("/"+dest), "/")
	if clean == "" {
		return entry{}, fmt.Errorf("bad destination %q", dest)
	}
	e := entry{path: clean, src: parts[0]}
	if file && e.src == "" {
		return entry{}, errors.New("empty source")
	}
	mode, err := strconv.ParseInt(parts[1], 8, 64)
	if err != nil || mode < 0 || mode > 0o7777 {
		return entry{}, fmt.Errorf("bad octal mode %q", parts[1])
	}
	e.mode = mode
	if e.uid, err = strconv.Atoi(parts[2]); err != nil || e.uid < 0 {
		return entry{}, fmt.Errorf("bad uid %q", parts[2])
	}
	if e.gid, err = strconv.Atoi(parts[3]); err != nil || e.gid < 0 {
		return entry{}, fmt.Errorf("bad gid %q", parts[3])
	}
	return e, nil
}

// write writes the entries as a tar stream, gzipped if gz, to w.
func write(w io.Writer, entries []entry, gz bool) (err error) {
	if gz {
		zw, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		// The zero Header: no name, mtime 0, OS "unknown" — nothing from
		// the build machine.
		defer func() { err = errors.Join(err, zw.Close()) }()
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.path,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: time.Unix(0, 0),
			// Format unset: USTAR, or PAX only for what USTAR cannot hold
			// (long paths); no access/change times either way.
		}
		if e.src == "" {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		if err := writeFile(tw, hdr, e.src); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeFile(tw *tar.Writer, hdr *tar.Header, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	hdr.Typeflag = tar.TypeReg
	hdr.Size = st.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if n, err := io.Copy(tw, f); err != nil {
		return err
	} else if n != hdr.Size {
		return fmt.Errorf("%s changed size while being read", src)
	}
	return nil
}
