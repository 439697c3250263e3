// TestApplyAgainstAPIServer runs //k8s:apply and //k8s:diff against a real
// Kubernetes API server: kube-apiserver and etcd on 127.0.0.1, built from
// the versions pinned in tools/k8s-testenv (the first run builds them; later
// runs reuse the cache). There is no kubelet or
// controller manager, so objects are stored and validated but no pod runs.
package apiserver_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/proglog/proglog/k8s/internal/k8stest"
)

const namespace = "proglog-test"

// objects returns kind/name -> resourceVersion of what the manifests create.
func objects(t *testing.T, kubectl, kubeconfig string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, get := range [][]string{
		{"namespace/" + namespace},
		{"configmaps,services,statefulsets,poddisruptionbudgets", "-l", "app.kubernetes.io/part-of=proglog"},
	} {
		args := append([]string{"--kubeconfig", kubeconfig, "--namespace", namespace, "get", "-o", "json"}, get...)
		r := k8stest.Run(t, kubectl, args...)
		if r.Code != 0 {
			t.Fatalf("kubectl get: %s", r.Stderr)
		}
		type object struct {
			Kind     string
			Metadata struct{ Name, ResourceVersion string }
		}
		var list struct {
			object
			Items []object
		}
		if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil {
			t.Fatal(err)
		}
		if list.Kind != "List" {
			list.Items = []object{list.object}
		}
		for _, it := range list.Items {
			got[it.Kind+"/"+it.Metadata.Name] = it.Metadata.ResourceVersion
		}
	}
	return got
}

func jsonpath(t *testing.T, kubectl, kubeconfig, object, path string) string {
	t.Helper()
	r := k8stest.Run(t, kubectl, "--kubeconfig", kubeconfig, "--namespace", namespace, "get", object, "-o", "jsonpath="+path)
	if r.Code != 0 {
		t.Fatalf("kubectl get %s: %s", object, r.Stderr)
	}
	return r.Stdout
}

func TestApplyAgainstAPIServer(t *testing.T) {
	apply, diff := k8stest.Runfile(t, "APPLY"), k8stest.Runfile(t, "DIFF")
	digest := strings.TrimSpace(readFile(t, k8stest.Runfile(t, "IMAGE_DIGEST")))
	total := time.Now()
	bin := k8stest.Binaries(t)
	kubectl := filepath.Join(bin, "kubectl")
	clusterStart := time.Now()
	kubeconfig := k8stest.StartControlPlane(t, bin, t.TempDir()).Kubeconfig
	t.Logf("etcd and kube-apiserver ready in %s", time.Since(clusterStart).Round(100*time.Millisecond))

	common := []string{"--kubeconfig", kubeconfig, "--kubectl", kubectl, "--namespace", namespace}

	// 1. Everything is accepted.
	r := k8stest.Run(t, apply, append(common, "--create-namespace")...)
	if r.Code != 0 {
		t.Fatalf("first apply: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("first apply:\n%s", r.Stdout)
	first := objects(t, kubectl, kubeconfig)
	var kinds []string
	for k := range first {
		// Generated ConfigMaps' names end in a hash of their content.
		for _, cm := range []string{"ConfigMap/proglog-config-", "ConfigMap/proglog-node-"} {
			if strings.HasPrefix(k, cm) {
				k = strings.TrimSuffix(cm, "-")
			}
		}
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	want := []string{"ConfigMap/proglog-config", "ConfigMap/proglog-node", "Namespace/proglog-test", "PodDisruptionBudget/proglog", "Service/proglog", "Service/proglog-headless", "StatefulSet/proglog"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("objects after apply: %v, want %v", first, want)
	}
	wantImage := "ghcr.io/proglog/proglog@" + digest
	if got := jsonpath(t, kubectl, kubeconfig, "statefulset/proglog", "{.spec.template.spec.containers[0].image}"); got != wantImage {
		t.Errorf("StatefulSet image %q, want %q (by digest)", got, wantImage)
	}
	if got := jsonpath(t, kubectl, kubeconfig, "statefulset/proglog", "{.metadata.managedFields[*].manager}"); got != "proglog-apply" {
		t.Errorf("StatefulSet field managers %q, want proglog-apply (server-side apply)", got)
	}

	// Every setting the manifests give proglog names a flag of the image's `proglog serve`.
	checkSettings(t, k8stest.Runfile(t, "PROGLOG"), kubectl, kubeconfig)

	// 2. //k8s:diff sees nothing to change, and a second apply changes nothing.
	r = k8stest.Run(t, diff, common...)
	if r.Code != 0 {
		t.Errorf("diff after apply: exit %d, want 0 (no changes)\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	r = k8stest.Run(t, apply, append(common, "--create-namespace")...)
	if r.Code != 0 {
		t.Fatalf("second apply: exit %d\n%s", r.Code, r.Stderr)
	}
	if second := objects(t, kubectl, kubeconfig); !mapsEqual(first, second) {
		t.Errorf("second apply changed objects (resourceVersions):\nbefore %v\nafter  %v", first, second)
	}

	// 3. A change shows in //k8s:diff; --dry-run=server admits it and stores nothing.
	r = k8stest.Run(t, diff, append(common, "--overlay", "overlays/dev")...)
	if r.Code != 1 || !strings.Contains(r.Stdout, "replicas") {
		t.Errorf("diff of overlays/dev: exit %d, want 1 with the replicas change\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("//k8s:diff --overlay overlays/dev (exit %d):\n%s", r.Code, r.Stdout)
	r = k8stest.Run(t, apply, append(common, "--overlay", "overlays/dev", "--dry-run=server")...)
	if r.Code != 0 {
		t.Errorf("--dry-run=server of overlays/dev: exit %d\n%s", r.Code, r.Stderr)
	}
	if after := objects(t, kubectl, kubeconfig); !mapsEqual(first, after) {
		t.Errorf("--dry-run=server changed objects:\nbefore %v\nafter  %v", first, after)
	}

	// overlays/single-node (what //k8s/node:node_test deploys on its one node): the base's three
	// replicas with one pod per node only preferred, else two of them stay Pending; admitted.
	r = k8stest.Run(t, apply, append(common, "--overlay", "overlays/single-node", "--print")...)
	if r.Code != 0 {
		t.Fatalf("--print of overlays/single-node: exit %d\n%s", r.Code, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "replicas: 3") || strings.Contains(r.Stdout, "requiredDuringSchedulingIgnoredDuringExecution") ||
		!strings.Contains(r.Stdout, "preferredDuringSchedulingIgnoredDuringExecution") {
		t.Errorf("overlays/single-node: want 3 replicas and a preferred, not required, anti-affinity:\n%s", r.Stdout)
	}
	r = k8stest.Run(t, apply, append(common, "--overlay", "overlays/single-node", "--dry-run=server")...)
	if r.Code != 0 {
		t.Errorf("--dry-run=server of overlays/single-node: exit %d\n%s", r.Code, r.Stderr)
	}

	// 4. A broken manifest is rejected by the API server and changes nothing.
	r = k8stest.Run(t, apply, append(common, "--overlay", "testdata/broken")...)
	if r.Code == 0 || !strings.Contains(r.Stderr, "spec.replicas") || !strings.Contains(r.Stderr, "must be greater than or equal to 0") {
		t.Errorf("broken manifest: exit %d, want a rejection of spec.replicas\n%s", r.Code, r.Stderr)
	}
	t.Logf("broken manifest rejected (exit %d):\n%s", r.Code, r.Stderr)
	if got := jsonpath(t, kubectl, kubeconfig, "statefulset/proglog", "{.spec.replicas}"); got != "3" {
		t.Errorf("replicas after the rejected apply: %s, want 3", got)
	}
	t.Logf("total %s", time.Since(total).Round(100*time.Millisecond))
}

var (
	helpFlag   = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	argFlag    = regexp.MustCompile(`^--([a-z][a-z0-9-]*)(=|$)`)
	configKey  = regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`)
	envSetting = "PROGLOG_"
)

// checkSettings compares the PROGLOG_* variables, arguments and --config
// keys of the applied StatefulSet and ConfigMaps with the flags `serve
// --help` of the binary in the image lists: a renamed flag fails here
// instead of being silently ignored in the cluster.
func checkSettings(t *testing.T, proglog, kubectl, kubeconfig string) {
	t.Helper()
	r := k8stest.Run(t, proglog, "serve", "--help")
	if r.Code != 0 {
		t.Fatalf("proglog serve --help: exit %d\n%s", r.Code, r.Stderr)
	}
	flags := map[string]bool{}
	for _, m := range helpFlag.FindAllStringSubmatch(r.Stdout, -1) {
		flags[m[1]] = true
	}
	var used []string
	var sts struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Args []string
						Env  []struct{ Name string }
					}
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(jsonpath(t, kubectl, kubeconfig, "statefulset/proglog", "{}")), &sts); err != nil {
		t.Fatal(err)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	for _, a := range c.Args[1:] { // after "serve"
		if m := argFlag.FindStringSubmatch(a); m != nil {
			used = append(used, "argument "+a+"|"+m[1])
		} else {
			t.Errorf("argument %q is not a --flag", a)
		}
	}
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, envSetting) {
			used = append(used, "variable "+e.Name+"|"+envToFlag(e.Name))
		}
	}
	var cms struct {
		Items []struct {
			Metadata struct{ Name string }
			Data     map[string]string
		}
	}
	r = k8stest.Run(t, kubectl, "--kubeconfig", kubeconfig, "--namespace", namespace, "get", "configmaps",
		"-l", "app.kubernetes.io/part-of=proglog", "-o", "json")
	if err := json.Unmarshal([]byte(r.Stdout), &cms); err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		for k, v := range cm.Data {
			switch {
			case strings.HasPrefix(k, envSetting):
				used = append(used, "ConfigMap "+cm.Metadata.Name+" "+k+"|"+envToFlag(k))
			case strings.HasSuffix(k, ".yaml"):
				for _, m := range configKey.FindAllStringSubmatch(v, -1) {
					used = append(used, "ConfigMap "+cm.Metadata.Name+" "+k+" key "+m[1]+"|"+m[1])
				}
			}
		}
	}
	if len(used) < 15 {
		t.Errorf("only %d settings found: %v", len(used), used)
	}
	for _, u := range used {
		what, flag, _ := strings.Cut(u, "|")
		if !flags[flag] {
			t.Errorf("%s: proglog serve has no --%s", what, flag)
		}
	}
	t.Logf("%d settings in the manifests checked against proglog serve --help", len(used))
}

func envToFlag(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, envSetting)), "_", "-")
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
