// Command apply deploys proglog to the current Kubernetes context: it takes
// the image //k8s/image:image just built, refers to it by digest, optionally
// pushes it, renders the kustomize manifests of k8s/ with that image and
// applies them with server-side apply. It is //k8s:apply (and, with --diff,
// //k8s:diff):
//
//	bazel run //k8s:apply -- --registry registry.example/proglog --push
//	bazel run //k8s:diff -- --namespace proglog
//	bazel run //k8s:apply -- --overlay overlays/dev --namespace dev --create-namespace
//	bazel run //k8s:apply -- --print          # the rendered manifests only
//
// It runs kubectl: --kubectl, else $KUBECTL, else kubectl on PATH.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Runfiles paths (rlocationpath) of the inputs, set by x_defs in BUILD.bazel.
var (
	imageLayout   = ""        // //k8s/image:image, an OCI image layout directory
	pushTool      = ""        // //k8s/image:push
	kustomization = ""        // //k8s:base/kustomization.yaml; its ../ holds base/, overlays/, testdata/
	defaultMode   = "apply"   // "diff" for //k8s:diff
	imageName     = "proglog" // the placeholder image name in the manifests
)

// DefaultRegistry is where the image is pulled from unless --registry says
// otherwise; //k8s/image:push pushes there by default too.
const DefaultRegistry = "ghcr.io/proglog/proglog"

type options struct {
	namespace, kubeContext, kubeconfig string
	overlay, registry, kubectl         string
	fieldManager, dryRun               string
	push, diff, print                  bool
	createNamespace, forceConflicts    bool
}

func main() {
	// Under `bazel run`, relative paths (--kubeconfig, --overlay) are the
	// caller's.
	if dir := os.Getenv("BUILD_WORKING_DIRECTORY"); dir != "" {
		if err := os.Chdir(dir); err != nil {
			fmt.Fprintln(os.Stderr, "apply:", err)
			os.Exit(2)
		}
	}
	code, err := run(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apply:", err)
	}
	os.Exit(code)
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.namespace, "namespace", "", "namespace to deploy into (default: the kube context's)")
	fs.StringVar(&o.namespace, "n", "", "short for --namespace")
	fs.StringVar(&o.kubeContext, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: kubectl's: $KUBECONFIG, ~/.kube/config)")
	fs.StringVar(&o.overlay, "overlay", "base", "kustomization to deploy: base, overlays/dev, ... (under k8s/) or a directory")
	fs.StringVar(&o.registry, "registry", DefaultRegistry, "image repository HOST/PATH the cluster pulls from (and --push pushes to)")
	fs.StringVar(&o.registry, "repository", DefaultRegistry, "same as --registry")
	fs.BoolVar(&o.push, "push", false, "push the image to --registry first")
	fs.BoolVar(&o.diff, "diff", defaultMode == "diff", "show what would change (kubectl diff --server-side) instead of applying; exit 1 if anything would")
	fs.StringVar(&o.dryRun, "dry-run", "none", "none, or server: the API server validates and admits but persists nothing")
	fs.BoolVar(&o.print, "print", false, "print the rendered manifests and exit")
	fs.BoolVar(&o.createNamespace, "create-namespace", false, "also apply a Namespace object for --namespace")
	fs.BoolVar(&o.forceConflicts, "force-conflicts", false, "take over fields another field manager owns")
	fs.StringVar(&o.fieldManager, "field-manager", "proglog-apply", "server-side apply field manager")
	fs.StringVar(&o.kubectl, "kubectl", "", "kubectl binary (default: $KUBECTL, then kubectl on PATH)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bazel run //k8s:apply -- [flags]   (//k8s:diff: the same with --diff)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.dryRun != "none" && o.dryRun != "server" {
		return nil, fmt.Errorf("--dry-run=%s: want none or server", o.dryRun)
	}
	if o.createNamespace && o.namespace == "" {
		return nil, errors.New("--create-namespace needs --namespace")
	}
	if strings.ContainsAny(o.registry, "@") || strings.Contains(o.registry[strings.LastIndex(o.registry, "/")+1:], ":") {
		return nil, fmt.Errorf("--registry %q: give HOST/PATH without tag or digest", o.registry)
	}
	return o, nil
}

// run returns the exit code: 0 done (diff: no changes), 1 diff found
// changes, 2 failure.
func run(args []string, stdout, stderr io.Writer) (int, error) {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0, nil
	}
	if err != nil {
		return 2, err
	}
	runfiles, err := runfilesDir()
	if err != nil {
		return 2, err
	}
	digest, err := manifestDigest(filepath.Join(runfiles, imageLayout))
	if err != nil {
		return 2, err
	}
	image := o.registry + "@" + digest
	kubectl, err := findKubectl(o.kubectl)
	if err != nil {
		return 2, err
	}

	if o.push && !o.print && !o.diff && o.dryRun == "none" {
		fmt.Fprintf(stderr, "apply: pushing %s\n", image)
		cmd := exec.Command(filepath.Join(runfiles, pushTool), "--repository", o.registry)
		// As under `bazel run` of the push target.
		cmd.Dir = filepath.Join(runfiles, "_main")
		cmd.Env = append(os.Environ(), "RUNFILES_DIR="+runfiles)
		cmd.Stdout, cmd.Stderr = stderr, stderr
		if err := cmd.Run(); err != nil {
			return 2, fmt.Errorf("push to %s: %w", o.registry, err)
		}
	}

	manifests, err := render(kubectl, filepath.Join(runfiles, filepath.Dir(filepath.Dir(kustomization))), o, image)
	if err != nil {
		return 2, err
	}
	if o.print {
		_, err := stdout.Write(manifests)
		return 0, err
	}

	global := []string{}
	if o.kubeconfig != "" {
		global = append(global, "--kubeconfig", o.kubeconfig)
	}
	if o.kubeContext != "" {
		global = append(global, "--context", o.kubeContext)
	}
	if o.namespace != "" {
		global = append(global, "--namespace", o.namespace)
	}
	sub := []string{"apply"}
	if o.diff {
		sub = []string{"diff"}
	}
	sub = append(sub, "--server-side", "--field-manager", o.fieldManager)
	if o.forceConflicts {
		sub = append(sub, "--force-conflicts")
	}
	if !o.diff && o.dryRun != "none" {
		sub = append(sub, "--dry-run="+o.dryRun)
	}
	sub = append(sub, "-f", "-")

	fmt.Fprintf(stderr, "apply: image %s; kubectl %s\n", image, strings.Join(append(global, sub...), " "))
	cmd := exec.Command(kubectl, append(global, sub...)...)
	cmd.Stdin = bytes.NewReader(manifests)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		if o.diff {
			fmt.Fprintln(stderr, "apply: no changes")
		}
		return 0, nil
	case o.diff && errors.As(err, &exit) && exit.ExitCode() == 1:
		return 1, nil // kubectl diff: differences found
	case errors.As(err, &exit):
		return 2, fmt.Errorf("kubectl %s failed (exit %d)", sub[0], exit.ExitCode())
	default:
		return 2, err
	}
}

// runfilesDir finds the runfiles tree: RUNFILES_DIR (bazel run, or a test
// running this binary), TEST_SRCDIR, or next to the executable.
func runfilesDir() (string, error) {
	for _, env := range []string{"RUNFILES_DIR", "TEST_SRCDIR"} {
		if d := os.Getenv(env); d != "" {
			if _, err := os.Stat(filepath.Join(d, imageLayout)); err == nil {
				return d, nil
			}
		}
	}
	exe, err := os.Executable()
	if err == nil {
		d := exe + ".runfiles"
		if _, err := os.Stat(filepath.Join(d, imageLayout)); err == nil {
			return d, nil
		}
	}
	return "", errors.New("cannot find the runfiles (with the image) of this program: run it with `bazel run //k8s:apply`")
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// manifestDigest returns the digest of the single image manifest of an OCI
// image layout.
func manifestDigest(layout string) (string, error) {
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		return "", fmt.Errorf("read the image index: %w", err)
	}
	var index struct {
		Manifests []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(b, &index); err != nil {
		return "", fmt.Errorf("%s/index.json: %w", layout, err)
	}
	if len(index.Manifests) != 1 {
		return "", fmt.Errorf("%s/index.json: %d manifests, want 1", layout, len(index.Manifests))
	}
	d := index.Manifests[0].Digest
	if !digestRE.MatchString(d) {
		return "", fmt.Errorf("%s/index.json: bad digest %q", layout, d)
	}
	return d, nil
}

func findKubectl(flagValue string) (string, error) {
	for _, c := range []string{flagValue, os.Getenv("KUBECTL")} {
		if c != "" {
			return exec.LookPath(c)
		}
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		return "", errors.New(`kubectl not found on PATH. Install it (Debian: apt-get install kubernetes-client;
  or tools/k8s-testenv/build.sh builds one from the Go module proxy) and pass --kubectl PATH or set KUBECTL.
  In tools/bazel's offline mode, //k8s:apply runs inside the toolchain tree: see k8s/README.md`)
	}
	return p, nil
}

// render writes a kustomization that puts the overlay into the namespace and
// pins the image by digest, and returns `kubectl kustomize` of it.
func render(kubectl, manifestsRoot string, o *options, image string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "proglog-apply-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	// A real copy: kustomize refuses files whose real path lies outside the
	// kustomization root, which runfiles symlinks do.
	if err := copyTree(manifestsRoot, filepath.Join(tmp, "k8s")); err != nil {
		return nil, err
	}
	overlay, err := resolveOverlay(tmp, o.overlay)
	if err != nil {
		return nil, err
	}
	renderDir := filepath.Join(tmp, "render")
	if err := os.Mkdir(renderDir, 0o755); err != nil {
		return nil, err
	}
	var resources []string
	if o.createNamespace {
		// With no field of its own (a bare name), server-side apply would hand the
		// object to "before-first-apply" on the second apply: not a no-op.
		ns := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n"+
			"    app.kubernetes.io/part-of: proglog\n    app.kubernetes.io/managed-by: proglog-apply\n", o.namespace)
		if err := os.WriteFile(filepath.Join(renderDir, "namespace.yaml"), []byte(ns), 0o644); err != nil {
			return nil, err
		}
		resources = append(resources, "namespace.yaml")
	}
	resources = append(resources, overlay)
	k, err := kustomizationYAML(resources, o.namespace, image)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(renderDir, "kustomization.yaml"), k, 0o644); err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", renderDir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %v\n%s", o.overlay, err, stderr.String())
	}
	return out, nil
}

// resolveOverlay returns the kustomize resource path of overlay: a directory
// under the copied k8s/ tree, or a directory of the caller's.
func resolveOverlay(tmp, overlay string) (string, error) {
	clean := filepath.Clean(overlay)
	if !filepath.IsAbs(clean) && !strings.HasPrefix(clean, "..") {
		if _, err := os.Stat(filepath.Join(tmp, "k8s", clean, "kustomization.yaml")); err == nil {
			return filepath.ToSlash(filepath.Join("..", "k8s", clean)), nil
		}
	}
	abs, err := filepath.Abs(overlay)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(abs, "kustomization.yaml")); err != nil {
		return "", fmt.Errorf("--overlay %s: no kustomization.yaml under k8s/%s or %s", overlay, clean, abs)
	}
	return abs, nil
}

// kustomizationYAML is the top-level kustomization (JSON is YAML).
func kustomizationYAML(resources []string, namespace, image string) ([]byte, error) {
	name, digest, ok := strings.Cut(image, "@")
	if !ok {
		return nil, fmt.Errorf("image %q has no digest", image)
	}
	k := map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1beta1",
		"kind":       "Kustomization",
		"resources":  resources,
		"images":     []map[string]string{{"name": imageName, "newName": name, "digest": digest}},
	}
	if namespace != "" {
		k["namespace"] = namespace
	}
	return json.MarshalIndent(k, "", "  ")
}

// copyTree copies the regular files under src (following symlinks) to dst.
func copyTree(src, dst string) error {
	src, err := filepath.EvalSymlinks(src)
	if err != nil {
		return err
	}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		st, err := os.Stat(path) // follows symlinks
		if err != nil {
			return err
		}
		if st.IsDir() {
			if d.Type()&fs.ModeSymlink != 0 {
				return copyTree(path, target)
			}
			return os.MkdirAll(target, 0o755)
		}
		if !strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".env") {
			return nil // BUILD files, Go sources
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}
