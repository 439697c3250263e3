// Tests of the proglog image (//k8s/image:image) as built by rules_oci: its
// config, its layer, that it is reproducible, that the binary inside it
// serves, and that :load and :push produce the same image elsewhere.
//
// The targets under test come from Bazel (env in BUILD.bazel); under plain
// `go test` the tests skip.
package image

import (
	"archive/tar"
	"bufio"
	"context"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/proglog/proglog/go/auth"
	"github.com/proglog/proglog/go/certs"
)

// wantVersion is image.bzl's VERSION (x_defs in BUILD.bazel).
var wantVersion = "unset"

// nonRoot is the image's user, and the uid:gid the binary is run as here
// when the test runs as root.
const nonRoot = 65532

// runfile returns the path of the runfile named by the environment variable
// env (set to an rlocationpath in BUILD.bazel), or skips outside Bazel.
func runfile(t *testing.T, env string) string {
	t.Helper()
	rel, root := os.Getenv(env), os.Getenv("TEST_SRCDIR")
	if rel == "" || root == "" {
		t.Skipf("%s is not set: run with bazel test //k8s/image:image_test", env)
	}
	return filepath.Join(root, rel)
}

// loadImage reads the single image of an OCI layout directory.
func loadImage(t *testing.T, dir string) (v1.Image, v1.Hash) {
	t.Helper()
	// The runfiles tree holds symlinks to the layout's files, which
	// go-containerregistry refuses to follow: read a copy.
	tmp := filepath.Join(t.TempDir(), "layout")
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(tmp, rel), 0o755)
		}
		b, err := os.ReadFile(path) // follows the symlink
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(tmp)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("%s: %d manifests, want 1", dir, len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img, m.Manifests[0].Digest
}

func TestConfig(t *testing.T) {
	img, _ := loadImage(t, runfile(t, "IMAGE"))
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	// A build time would make every build a new image: the epoch, or none.
	if c := cf.Created.Time; !c.IsZero() && !c.Equal(time.Unix(0, 0)) {
		t.Errorf("created %v, want the Unix epoch or unset (reproducible)", c)
	}
	for _, h := range cf.History {
		if c := h.Created.Time; !c.IsZero() && !c.Equal(time.Unix(0, 0)) {
			t.Errorf("history entry created %v, want the Unix epoch or unset", c)
		}
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/proglog"}) || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/proglog] and none", c.Entrypoint, c.Cmd)
	}
	if c.WorkingDir != "/data" {
		t.Errorf("workdir %q, want /data", c.WorkingDir)
	}
	var ports []string
	for p := range c.ExposedPorts {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	if want := []string{"8400/tcp", "8401/tcp", "8402/tcp", "8402/udp", "8403/tcp"}; !slices.Equal(ports, want) {
		t.Errorf("exposed ports %v, want %v", ports, want)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.version": wantVersion,
		"org.opencontainers.image.title":   "proglog",
		"org.opencontainers.image.source":  "https://github.com/proglog/proglog",
	} {
		if got := c.Labels[k]; got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
}

// extract returns the files of the image's filesystem (one layer) and
// writes /proglog to dst.
func extract(t *testing.T, img v1.Image, dst string) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1 (no base image)", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	headers := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		headers[h.Name] = h
		if h.Name == "proglog" {
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return headers
}

func TestLayer(t *testing.T) {
	img, _ := loadImage(t, runfile(t, "IMAGE"))
	headers := extract(t, img, filepath.Join(t.TempDir(), "proglog"))
	var names []string
	for n, h := range headers {
		names = append(names, n)
		if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: mtime %v, owner names %q/%q: not reproducible", n, h.ModTime, h.Uname, h.Gname)
		}
	}
	slices.Sort(names)
	if want := []string{"data/", "proglog"}; !slices.Equal(names, want) {
		t.Fatalf("layer holds %v, want %v", names, want)
	}
	if h := headers["proglog"]; h.Mode != 0o755 || h.Uid != 0 || h.Gid != 0 {
		t.Errorf("/proglog: mode %o owner %d:%d, want 755 0:0", h.Mode, h.Uid, h.Gid)
	}
	if h := headers["data/"]; h.Typeflag != tar.TypeDir || h.Uid != nonRoot || h.Gid != nonRoot {
		t.Errorf("/data: type %c owner %d:%d, want a directory owned by %d", h.Typeflag, h.Uid, h.Gid, nonRoot)
	}
}

func TestReproducible(t *testing.T) {
	a, da := loadImage(t, runfile(t, "IMAGE"))
	b, db := loadImage(t, runfile(t, "IMAGE_REPRO"))
	if da != db {
		ca, _ := a.RawConfigFile()
		cb, _ := b.RawConfigFile()
		la, _ := a.Layers()
		lb, _ := b.Layers()
		dla, _ := la[0].Digest()
		dlb, _ := lb[0].Digest()
		t.Fatalf("two builds from the same inputs differ: manifests %s vs %s\nlayers %s vs %s\nconfigs:\n%s\n%s",
			da, db, dla, dlb, ca, cb)
	}
	if want := strings.TrimSpace(readFile(t, runfile(t, "IMAGE_DIGEST"))); want != da.String() {
		t.Errorf(":image.digest says %s, the layout %s", want, da)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var servingLine = regexp.MustCompile(`serving on (\S+) \(metrics`)

// TestBinaryServes runs the image's /proglog the way the image does (in its
// working directory, as its user when the test can switch to it) with
// `serve --dev`, and asks its gRPC health service over mutual TLS, and in
// plaintext on --health-addr as kubelet's grpc probes of k8s/base do.
func TestBinaryServes(t *testing.T) {
	img, _ := loadImage(t, runfile(t, "IMAGE"))
	// Not under TEST_TMPDIR: its parents (the output base) may not be
	// searchable by the unprivileged user.
	root, err := os.MkdirTemp("/tmp", "proglog-image-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, workdir := filepath.Join(root, "proglog"), filepath.Join(root, "data")
	extract(t, img, bin)
	if err := os.Mkdir(workdir, 0o755); err != nil {
		t.Fatal(err)
	}
	var cred *syscall.Credential
	if os.Getuid() == 0 {
		if err := os.Chown(workdir, nonRoot, nonRoot); err != nil {
			t.Fatal(err)
		}
		cred = &syscall.Credential{Uid: nonRoot, Gid: nonRoot}
	}

	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || string(out) != "proglog "+wantVersion+"\n" {
		t.Fatalf("/proglog --version: %q, %v; want %q", out, err, "proglog "+wantVersion)
	}

	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	healthAddr := free.Addr().String()
	free.Close()
	cmd := exec.Command(bin, "serve", "--dev", "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--health-addr", healthAddr, "--log-level", "warn")
	cmd.Dir = workdir
	cmd.Env = []string{"HOME=/nonexistent"} // like the image: no environment to lean on
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var target string
	select {
	case target = <-addr:
	case err := <-exited:
		t.Fatalf("serve exited (%v) before serving; stderr:\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("no serving line in 30s; stderr:\n%s", stderr.String())
	}

	files := certs.DevFilesIn(filepath.Join(workdir, "proglog-data", "certs"))
	tlsCfg, err := auth.TLSConfig{CertFile: files.ClientCert("root"), KeyFile: files.ClientKey("root"), CAFile: files.CACert}.Client()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check: %v, %v; want SERVING", h, err)
	}
	plain, err := grpc.NewClient(healthAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	for _, svc := range []string{"", "liveness"} { // the readiness and liveness probes
		h, err := healthpb.NewHealthClient(plain).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("plaintext health check %q on --health-addr: %v, %v; want SERVING", svc, h, err)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15s of SIGTERM")
	}
}

// TestLoadTarball reads :load's tarball output group as `docker load` would.
func TestLoadTarball(t *testing.T) {
	want, _ := loadImage(t, runfile(t, "IMAGE"))
	tag, err := name.NewTag("proglog:" + wantVersion)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tarball.ImageFromPath(runfile(t, "LOAD_TARBALL"), &tag)
	if err != nil {
		t.Fatalf("the tarball has no image tagged %s: %v", tag, err)
	}
	sameImage(t, got, want)
}

// TestPush pushes with :push into an in-process registry and pulls back.
func TestPush(t *testing.T) {
	push := runfile(t, "PUSH")
	want, digest := loadImage(t, runfile(t, "IMAGE"))
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	repo := strings.TrimPrefix(srv.URL, "http://") + "/test/proglog"

	cmd := exec.Command(push, "--repository", repo, "--tag", "extra")
	// As under `bazel run`: the launcher runs in the runfiles of the main repository.
	cmd.Dir = filepath.Join(os.Getenv("TEST_SRCDIR"), "_main")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	for _, ref := range []string{repo + "@" + digest.String(), repo + ":" + wantVersion, repo + ":extra"} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Image(r)
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		sameImage(t, got, want)
		if d, _ := got.Digest(); d != digest {
			t.Errorf("%s has digest %s, want %s", ref, d, digest)
		}
	}
}

// sameImage compares config digests and layer diff IDs.
func sameImage(t *testing.T, got, want v1.Image) {
	t.Helper()
	gc, err := got.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	wc, _ := want.ConfigName()
	if gc != wc {
		t.Errorf("config %s, want %s", gc, wc)
	}
	gl, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	wl, _ := want.Layers()
	if len(gl) != len(wl) {
		t.Fatalf("%d layers, want %d", len(gl), len(wl))
	}
	for i := range gl {
		g, err := gl[i].DiffID()
		if err != nil {
			t.Fatal(err)
		}
		w, _ := wl[i].DiffID()
		if g != w {
			t.Errorf("layer %d: diff ID %s, want %s", i, g, w)
		}
	}
}
