package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testDigest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestManifestDigest(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + testDigest + `","size":405}]}`)
	if d, err := manifestDigest(dir); err != nil || d != testDigest {
		t.Fatalf("got %q, %v", d, err)
	}
	for _, bad := range []string{
		`{"manifests":[]}`,
		`{"manifests":[{"digest":"` + testDigest + `"},{"digest":"` + testDigest + `"}]}`,
		`{"manifests":[{"digest":"sha256:xyz"}]}`,
		`not json`,
	} {
		write(bad)
		if _, err := manifestDigest(dir); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestKustomizationYAML(t *testing.T) {
	b, err := kustomizationYAML([]string{"namespace.yaml", "../k8s/base"}, "prod", "registry.example:5000/team/proglog@"+testDigest)
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string
		Namespace string
		Images    []map[string]string
	}
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	if strings.Join(k.Resources, ",") != "namespace.yaml,../k8s/base" || k.Namespace != "prod" {
		t.Errorf("resources %v namespace %q", k.Resources, k.Namespace)
	}
	want := map[string]string{"name": "proglog", "newName": "registry.example:5000/team/proglog", "digest": testDigest}
	if len(k.Images) != 1 || k.Images[0]["name"] != want["name"] || k.Images[0]["newName"] != want["newName"] || k.Images[0]["digest"] != want["digest"] {
		t.Errorf("images %v, want [%v]", k.Images, want)
	}
	b, _ = kustomizationYAML([]string{"../k8s/base"}, "", "r/p@"+testDigest)
	if strings.Contains(string(b), "namespace") {
		t.Errorf("namespace set without --namespace:\n%s", b)
	}
}

func TestResolveOverlay(t *testing.T) {
	tmp := t.TempDir()
	for _, d := range []string{"k8s/base", "k8s/overlays/dev", "mine"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, d, "kustomization.yaml"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := resolveOverlay(tmp, "overlays/dev/"); err != nil || got != "../k8s/overlays/dev" {
		t.Errorf("overlays/dev: %q, %v", got, err)
	}
	if got, err := resolveOverlay(tmp, filepath.Join(tmp, "mine")); err != nil || got != filepath.Join(tmp, "mine") {
		t.Errorf("own directory: %q, %v", got, err)
	}
	if _, err := resolveOverlay(tmp, "overlays/none"); err == nil {
		t.Error("missing overlay: no error")
	}
}

func TestFlags(t *testing.T) {
	o, err := parseFlags([]string{"--namespace", "x", "--create-namespace", "--registry", "localhost:5000/proglog", "--push"}, io.Discard)
	if err != nil || o.namespace != "x" || !o.createNamespace || o.registry != "localhost:5000/proglog" || !o.push || o.diff {
		t.Fatalf("%+v, %v", o, err)
	}
	for _, bad := range [][]string{
		{"--create-namespace"},
		{"--dry-run=client"},
		{"--registry", "r.example/p:latest"},
		{"--registry", "r.example/p@" + testDigest},
		{"extra"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestCopyTreeSkipsNonManifests(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "out")
	for name, content := range map[string]string{"base/a.yaml": "a", "base/p.env": "X=1", "BUILD.bazel": "", "image/blob": "b"} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	if err := os.Symlink(filepath.Join(src, "base"), filepath.Join(src, "linked")); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"base/a.yaml", "base/p.env", "linked/a.yaml"} {
		if fi, err := os.Lstat(filepath.Join(dst, want)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: %v (want a regular file)", want, err)
		}
	}
	for _, skip := range []string{"BUILD.bazel", "image/blob"} {
		if _, err := os.Stat(filepath.Join(dst, skip)); err == nil {
			t.Errorf("%s copied", skip)
		}
	}
}
