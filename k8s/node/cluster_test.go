package node_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proglog/proglog/k8s/internal/k8stest"
)

// The throw-away node's network. The node's IP is the bridge's own address, so
// nothing of the cluster uses the machine's interfaces, and the Service range
// is routed into the bridge: no packet of the cluster leaves the machine.
const (
	nodeName    = "proglog-node"
	bridge      = "k8snode0"
	nodeIP      = "10.244.0.1"
	podCIDR     = "10.244.0.0/24"
	serviceCIDR = "10.96.0.0/24" // as k8stest.StartControlPlane sets it
	pauseImage  = "proglog.test/pause:node-test"
	// guardComment marks the FORWARD rule that drops pod traffic leaving
	// through anything but the bridge.
	guardComment = "proglog-node-test"
)

// The sysctls the node's components change (the CNI bridge plugin, kubelet,
// kube-proxy) or this harness sets; teardown writes back what they were.
var sysctls = []string{
	"net/ipv4/ip_forward",
	"net/ipv4/conf/all/route_localnet",
	"net/bridge/bridge-nf-call-iptables",
	"net/bridge/bridge-nf-call-ip6tables",
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
	"net/netfilter/nf_conntrack_max",
	"net/netfilter/nf_conntrack_tcp_timeout_established",
	"net/netfilter/nf_conntrack_tcp_timeout_close_wait",
}

// cluster is a running single-node Kubernetes cluster.
type cluster struct {
	t                   *testing.T
	bin, dir            string
	kubectl, kubeconfig string
	ctrSocket           string
	// The node's mount namespace (see startNamespace): its holder process
	// and its identity (readlink of /proc/PID/ns/mnt).
	nsPid int
	nsID  string
	// cliPods counts the pods cli started (their names).
	cliPods int
}

// startCluster starts containerd, etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, kubelet, kube-proxy and CoreDNS on this machine, imports the
// images (OCI layouts) with ctr, and waits for the node to be Ready. The
// test's cleanup tears it all down and fails the test if anything is left:
// processes, mounts, iptables chains, the bridge, cgroups, changed sysctls.
func startCluster(t *testing.T, bin string, images map[string]string) *cluster {
	// Short: containerd's and the shims' socket paths must fit sun_path.
	dir, err := os.MkdirTemp("/tmp", "k8snode-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bin: bin, dir: dir, kubectl: filepath.Join(bin, "kubectl"),
		ctrSocket: filepath.Join(dir, "containerd.sock")}
	t.Logf("node state in %s", dir)

	// Registered first, so they run last: after every component stopped.
	before := readSysctls(t)
	beforeChains := kubeChains(t)
	t.Cleanup(func() { c.teardown(before, beforeChains) })

	c.setupNetwork()
	c.startNamespace()
	c.startContainerd()
	for ref, layout := range images {
		c.importImage(ref, layout)
	}

	cp := k8stest.StartControlPlane(t, bin, dir, "--kubelet-preferred-address-types=InternalIP")
	c.kubeconfig = cp.Kubeconfig
	kcm := filepath.Join(dir, "kcm")
	os.Mkdir(kcm, 0o700)
	k8stest.Start(t, kcm, filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig="+c.kubeconfig, "--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file="+filepath.Join(dir, "sa.key"),
		"--root-ca-file="+filepath.Join(dir, "certs", "apiserver.crt"),
		"--use-service-account-credentials=false", "--concurrent-statefulset-syncs=1")
	k8stest.Start(t, dir, filepath.Join(bin, "kube-scheduler"),
		"--kubeconfig="+c.kubeconfig, "--leader-elect=false", "--secure-port=0")

	// Containers kubelet left (it should leave none once the pods are
	// deleted) are removed while containerd still runs.
	t.Cleanup(c.removeContainers)
	c.startKubelet()
	t.Cleanup(func() {
		// After kube-proxy has stopped (cleanups run last-registered first).
		if r := k8stest.Run(t, filepath.Join(bin, "kube-proxy"), "--cleanup"); r.Code != 0 {
			t.Errorf("kube-proxy --cleanup: exit %d\n%s", r.Code, r.Stderr)
		}
	})
	c.startKubeProxy()
	c.startCoreDNS()
	// Runs first: delete the pods while kubelet still runs, so it stops
	// their containers, tears down their network and unmounts their volumes.
	t.Cleanup(c.deletePods)

	start := time.Now()
	k8stest.Eventually(t, 2*time.Minute, "node "+nodeName+" Ready", func() error {
		r := c.run("get", "node", nodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if r.Code != 0 || r.Stdout != "True" {
			return fmt.Errorf("Ready=%q %s", r.Stdout, r.Stderr)
		}
		return nil
	})
	k8stest.Eventually(t, time.Minute, "service account default/default", func() error {
		if r := c.run("-n", "default", "get", "serviceaccount", "default"); r.Code != 0 {
			return errors.New(r.Stderr)
		}
		return nil
	})
	t.Logf("node Ready in %s after the control plane", time.Since(start).Round(100*time.Millisecond))
	return c
}

// run runs kubectl against the cluster.
func (c *cluster) run(args ...string) k8stest.Result {
	c.t.Helper()
	return k8stest.Run(c.t, c.kubectl, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
}

// must runs kubectl and fails the test unless it succeeds; it returns stdout.
func (c *cluster) must(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.Code != 0 {
		c.t.Fatalf("kubectl %s: exit %d\n%s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r.Stdout
}

// host runs a command of the machine (ip, iptables, ctr) and fails the test
// unless it succeeds.
func (c *cluster) host(name string, args ...string) string {
	c.t.Helper()
	r := k8stest.Run(c.t, name, args...)
	if r.Code != 0 {
		c.t.Fatalf("%s %s: exit %d\n%s%s", name, strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// setupNetwork creates the bridge (the CNI bridge plugin adopts it) with the
// node's IP, routes the Service range into it, drops pod traffic that would
// leave through another interface, and lets bridged traffic through iptables
// (kube-proxy's Service NAT between pods of one bridge needs it).
func (c *cluster) setupNetwork() {
	c.host("ip", "link", "add", bridge, "type", "bridge")
	c.host("ip", "addr", "add", nodeIP+"/24", "dev", bridge)
	c.host("ip", "link", "set", bridge, "up")
	c.host("ip", "route", "add", serviceCIDR, "dev", bridge, "src", nodeIP)
	c.host("iptables", guardRule("-I")...)
	writeSysctl(c.t, "net/bridge/bridge-nf-call-iptables", "1")
}

func guardRule(op string) []string {
	return []string{op, "FORWARD", "-s", podCIDR, "!", "-o", bridge,
		"-m", "comment", "--comment", guardComment, "-j", "DROP"}
}

// startNamespace starts the node's mount namespace: a copy of this one whose
// root is a mount point. Tests run chrooted in tools/bazel's tree, whose root
// is a plain directory, and runc cannot set up a container there (it makes
// "/" a slave mount and pivots from it: "mount dst=/, flags=MS_REC|MS_SLAVE:
// invalid argument"). So a holder process bind-mounts "/" onto DIR/root and
// chroots into it; containerd and kubelet enter its namespace and root
// (nsenter), and their mounts (pod volumes, container root filesystems,
// network namespaces) live and die with that namespace.
func (c *cluster) startNamespace() {
	root := filepath.Join(c.dir, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		c.t.Fatal(err)
	}
	p := k8stest.StartAs(c.t, c.dir, "namespace", []string{"unshare", "--mount", "--propagation", "unchanged", "--",
		"/bin/sh", "-c", `mount --rbind / "$0" && exec chroot "$0" sleep infinity`, root})
	c.nsPid = p.Pid()
	k8stest.Eventually(c.t, 10*time.Second, "the node's mount namespace", func() error {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.nsPid))
		if err != nil || strings.TrimSpace(string(comm)) != "sleep" {
			return fmt.Errorf("holder: %q %v\n%s", comm, err, k8stest.Tail(filepath.Join(c.dir, "namespace.log"), 2000))
		}
		return nil
	})
	id, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", c.nsPid))
	if err != nil {
		c.t.Fatal(err)
	}
	c.nsID = id
}

// startInNode starts a server process in the node's mount namespace and root.
func (c *cluster) startInNode(label string, argv ...string) *k8stest.Process {
	return k8stest.StartAs(c.t, c.dir, label, append([]string{"nsenter", "-t", fmt.Sprint(c.nsPid), "-m", "-r", "-w", "--"}, argv...))
}

func (c *cluster) startContainerd() {
	root := filepath.Join(c.dir, "containerd")
	cni := filepath.Join(c.dir, "cni")
	for _, d := range []string{root, filepath.Join(cni, "net.d")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			c.t.Fatal(err)
		}
	}
	k8stest.WriteFile(c.t, filepath.Join(cni, "net.d", "10-bridge.conflist"), fmt.Appendf(nil, `{
  "cniVersion": "1.0.0",
  "name": "proglog-node",
  "plugins": [{
    "type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
    "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q, "gateway": %q}]],
             "routes": [{"dst": "0.0.0.0/0"}]}
  }]
}
`, bridge, filepath.Join(cni, "ipam"), podCIDR, nodeIP))
	// containerd 2 (Debian's): see k8s/node/README.md for why each setting.
	config := filepath.Join(c.dir, "containerd.toml")
	k8stest.WriteFile(c.t, config, fmt.Appendf(nil, `version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs", "io.containerd.snapshotter.v1.blockfile"]
[grpc]
  address = %q
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %q
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_cdi = false
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
    SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = %q
`, filepath.Join(root, "root"), filepath.Join(root, "state"), c.ctrSocket, pauseImage, filepath.Join(cni, "net.d")))
	p := c.startInNode("containerd", "containerd", "--config", config)
	k8stest.Eventually(c.t, time.Minute, "containerd", func() error {
		select {
		case <-p.Done:
			return errors.New("containerd exited")
		default:
		}
		if r := k8stest.Run(c.t, "ctr", "--address", c.ctrSocket, "version"); r.Code != 0 {
			return errors.New(r.Stderr)
		}
		return nil
	})
}

// importImage imports an OCI image layout (a directory) into containerd's
// k8s.io namespace as ref. The layouts Bazel writes name no image in their
// index.json, so the name comes from --index-name (without it ctr imports
// nothing and still succeeds).
func (c *cluster) importImage(ref, layout string) {
	var buf bytes.Buffer
	if err := tarDir(&buf, layout); err != nil {
		c.t.Fatalf("packing %s: %v", layout, err)
	}
	cmd := exec.Command("ctr", "--address", c.ctrSocket, "-n", "k8s.io", "images", "import",
		"--local", "--index-name", ref, "-")
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("ctr images import %s: %v\n%s", ref, err, out)
	}
	if out := c.host("ctr", "--address", c.ctrSocket, "-n", "k8s.io", "images", "ls", "-q"); !slices.Contains(strings.Fields(out), ref) {
		c.t.Fatalf("ctr imported %s but does not list it:\n%s", ref, out)
	}
	c.t.Logf("imported %s", ref)
}

// tarDir writes the files under dir (following symlinks: Bazel's runfiles)
// as a tar stream with paths relative to dir.
func tarDir(w io.Writer, dir string) error {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if info.IsDir() {
			if d.Type()&fs.ModeSymlink != 0 {
				return fmt.Errorf("%s: a symlinked directory", path)
			}
			return tw.WriteHeader(&tar.Header{Name: rel + "/", Mode: 0o755, Typeflag: tar.TypeDir})
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func (c *cluster) startKubelet() {
	dir := filepath.Join(c.dir, "kubelet")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	config := filepath.Join(c.dir, "kubelet.yaml")
	// See k8s/node/README.md for why each setting.
	k8stest.WriteFile(c.t, config, fmt.Appendf(nil, `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%s
failCgroupV1: false
cgroupDriver: cgroupfs
address: %s
port: %d
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
clusterDNS: [%s]
clusterDomain: cluster.local
resolvConf: ""
podLogsDir: %s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "0%%", imagefs.available: "0%%", nodefs.inodesFree: "0%%"}
failSwapOn: false
rotateCertificates: false
serializeImagePulls: false
volumePluginDir: %s
`, c.ctrSocket, nodeIP, k8stest.FreePort(c.t), nodeIP, filepath.Join(c.dir, "pod-logs"), filepath.Join(c.dir, "volume-plugins")))
	c.startInNode("kubelet", filepath.Join(c.bin, "kubelet"),
		"--config="+config, "--kubeconfig="+c.kubeconfig, "--root-dir="+dir,
		"--cert-dir="+filepath.Join(dir, "pki"), "--node-ip="+nodeIP, "--hostname-override="+nodeName)
}

func (c *cluster) startKubeProxy() {
	config := filepath.Join(c.dir, "kube-proxy.yaml")
	k8stest.WriteFile(c.t, config, fmt.Appendf(nil, `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %s}
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
oomScoreAdj: 0
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
healthzBindAddress: ""
metricsBindAddress: ""
`, c.kubeconfig, nodeName, podCIDR))
	k8stest.Start(c.t, c.dir, filepath.Join(c.bin, "kube-proxy"), "--config="+config)
}

// startCoreDNS serves the cluster's names on the node's IP, from the API.
func (c *cluster) startCoreDNS() {
	corefile := filepath.Join(c.dir, "Corefile")
	k8stest.WriteFile(c.t, corefile, fmt.Appendf(nil, `.:53 {
    bind %s
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 1
    }
}
`, nodeIP, c.kubeconfig))
	k8stest.Start(c.t, c.dir, filepath.Join(c.bin, "coredns"), "-conf", corefile)
}

// deletePods deletes every namespace the test made and every pod, and waits
// until kubelet has stopped them all.
func (c *cluster) deletePods() {
	t := c.t
	for _, ns := range strings.Fields(c.run("get", "namespaces", "-l", "proglog-node-test=true", "-o", "jsonpath={.items[*].metadata.name}").Stdout) {
		c.run("delete", "namespace", ns, "--wait=false")
	}
	c.run("delete", "pods", "--all", "--all-namespaces", "--wait=false", "--grace-period=5")
	err := k8stest.Poll(2*time.Minute, func() error {
		r := c.run("get", "pods", "--all-namespaces", "-o", "name")
		if r.Code != 0 {
			return errors.New(r.Stderr)
		}
		if s := strings.TrimSpace(r.Stdout); s != "" {
			return fmt.Errorf("pods left: %s", s)
		}
		return nil
	})
	if err != nil {
		t.Errorf("teardown: %v", err)
	}
}

// removeContainers removes the containers kubelet has stopped but not yet
// garbage-collected (it deletes a pod's object before its sandbox), and
// fails the test for any still running: kubelet should have stopped them.
func (c *cluster) removeContainers() {
	t := c.t
	ctr := func(args ...string) k8stest.Result {
		return k8stest.Run(t, "ctr", append([]string{"--address", c.ctrSocket, "-n", "k8s.io"}, args...)...)
	}
	for line := range strings.Lines(ctr("tasks", "ls").Stdout) {
		if f := strings.Fields(line); len(f) == 3 && f[2] == "RUNNING" {
			t.Errorf("teardown: task %s (pid %s) still running after its pod was deleted", f[0], f[1])
			ctr("tasks", "kill", "-s", "SIGKILL", f[0])
		}
	}
	left := strings.Fields(ctr("containers", "ls", "-q").Stdout)
	for _, id := range left {
		k8stest.Poll(10*time.Second, func() error {
			if r := ctr("tasks", "delete", id); r.Code != 0 && !strings.Contains(r.Stderr, "not found") {
				return errors.New(r.Stderr)
			}
			return nil
		})
		if r := ctr("containers", "delete", id); r.Code != 0 {
			t.Errorf("teardown: ctr containers delete %s: %s", id, r.Stderr)
		}
	}
	t.Logf("teardown: removed %d stopped containers", len(left))
}

// teardown removes what the components leave on the machine and fails the
// test for anything it cannot remove or that differs from before.
func (c *cluster) teardown(sysctlsBefore map[string]string, chainsBefore []string) {
	t := c.t
	// Mounts under the state directory (pod volumes, containerd's
	// snapshots and network namespaces), deepest first.
	mounts := mountsUnder(t, c.dir)
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
			t.Errorf("teardown: unmount %s: %v", mounts[i], err)
		}
	}
	// kube-proxy --cleanup removed its chains; kubelet's canaries and
	// anything else named KUBE-* go here.
	for _, chain := range kubeChains(t) {
		if !slices.Contains(chainsBefore, chain) {
			deleteChain(t, chain)
		}
	}
	k8stest.Run(t, "iptables", guardRule("-D")...)
	k8stest.Run(t, "ip", "link", "del", bridge)
	removeCgroups(t, "kubepods")
	for name, v := range sysctlsBefore {
		writeSysctl(t, name, v)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		t.Errorf("teardown: %v", err)
	}

	// What is left.
	if m := mountsUnder(t, c.dir); len(m) > 0 {
		t.Errorf("teardown: mounts left: %v", m)
	}
	if p := processesMentioning(c.dir); len(p) > 0 {
		t.Errorf("teardown: processes left: %v", p)
	}
	if p := processesIn(c.nsID); len(p) > 0 {
		t.Errorf("teardown: processes left in the node's mount namespace (so are its mounts): %v", p)
	}
	var newChains []string
	for _, ch := range kubeChains(t) {
		if !slices.Contains(chainsBefore, ch) {
			newChains = append(newChains, ch)
		}
	}
	if len(newChains) > 0 {
		t.Errorf("teardown: iptables chains left: %v", newChains)
	}
	if r := k8stest.Run(t, "iptables", guardRule("-C")...); r.Code == 0 {
		t.Errorf("teardown: the FORWARD guard rule is left")
	}
	if r := k8stest.Run(t, "ip", "link", "show", bridge); r.Code == 0 {
		t.Errorf("teardown: bridge %s left", bridge)
	}
	if cg := cgroupsNamed("kubepods"); len(cg) > 0 {
		t.Errorf("teardown: cgroups left: %v", cg)
	}
	after := readSysctls(t)
	for name, v := range sysctlsBefore {
		if after[name] != v {
			t.Errorf("teardown: sysctl %s is %q, was %q", name, after[name], v)
		}
	}
	if !t.Failed() {
		t.Logf("teardown: no processes, mounts, iptables chains, bridge or cgroups left; %d sysctls as before", len(sysctlsBefore))
	}
}

func readSysctls(t *testing.T) map[string]string {
	m := map[string]string{}
	for _, name := range sysctls {
		b, err := os.ReadFile(filepath.Join("/proc/sys", name))
		if err == nil {
			m[name] = strings.TrimSpace(string(b))
		}
	}
	return m
}

func writeSysctl(t *testing.T, name, value string) {
	if err := os.WriteFile(filepath.Join("/proc/sys", name), []byte(value), 0o644); err != nil {
		t.Errorf("sysctl %s=%s: %v", name, value, err)
	}
}

// mountsUnder lists the mount points under dir, in mount order.
func mountsUnder(t *testing.T, dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	return out
}

// kubeChains lists TABLE/CHAIN of the iptables chains named KUBE-* or CNI-*.
func kubeChains(t *testing.T) []string {
	var out []string
	for _, table := range []string{"filter", "nat", "mangle"} {
		for _, cmd := range []string{"iptables", "ip6tables"} {
			r := k8stest.Run(t, cmd, "-t", table, "-S")
			for line := range strings.Lines(r.Stdout) {
				f := strings.Fields(line)
				if len(f) >= 2 && f[0] == "-N" && (strings.HasPrefix(f[1], "KUBE-") || strings.HasPrefix(f[1], "CNI-")) {
					out = append(out, cmd+"/"+table+"/"+f[1])
				}
			}
		}
	}
	return out
}

// deleteChain removes the rules that jump to a chain, then the chain.
func deleteChain(t *testing.T, spec string) {
	cmd, rest, _ := strings.Cut(spec, "/")
	table, chain, _ := strings.Cut(rest, "/")
	r := k8stest.Run(t, cmd, "-t", table, "-S")
	for line := range strings.Lines(r.Stdout) {
		f := strings.Fields(line)
		if len(f) > 2 && f[0] == "-A" && slices.Contains(f, "-j") && f[slices.Index(f, "-j")+1] == chain {
			k8stest.Run(t, cmd, append([]string{"-t", table, "-D"}, f[1:]...)...)
		}
	}
	k8stest.Run(t, cmd, "-t", table, "-F", chain)
	k8stest.Run(t, cmd, "-t", table, "-X", chain)
}

// cgroupsNamed lists the cgroup directories named name under each
// hierarchy's root (kubelet's "kubepods" with the cgroupfs driver).
func cgroupsNamed(name string) []string {
	m, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", name))
	return m
}

// removeCgroups removes the cgroup trees named name, leaves first (a cgroup
// with processes cannot be removed: that shows as left over).
func removeCgroups(t *testing.T, name string) {
	for _, root := range cgroupsNamed(name) {
		var dirs []string
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Logf("teardown: rmdir %s: %v", dirs[i], err)
			}
		}
	}
}

// processesMentioning lists the processes whose command line contains s.
func processesMentioning(s string) []string {
	var out []string
	self := fmt.Sprint(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name() == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		out = append(out, e.Name()+": "+strings.ReplaceAll(string(bytes.TrimRight(b, "\x00")), "\x00", " "))
	}
	return out
}

// processesIn lists the processes in the mount namespace ns (as
// /proc/PID/ns/mnt reads).
func processesIn(ns string) []string {
	if ns == "" {
		return nil
	}
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if id, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "mnt")); err == nil && id == ns {
			comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
			out = append(out, e.Name()+": "+strings.TrimSpace(string(comm)))
		}
	}
	return out
}

// podStatus is what the test reads of a pod.
type podStatus struct {
	Metadata struct {
		Name string
		UID  string
	}
	Spec struct {
		Volumes []struct {
			Name                  string
			PersistentVolumeClaim *struct{ ClaimName string }
		}
	}
	Status struct {
		Phase      string
		PodIP      string
		Conditions []struct{ Type, Status string }
	}
}

func (p podStatus) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// pods lists the pods of namespace ns with label selector sel.
func (c *cluster) pods(ns, sel string) ([]podStatus, error) {
	r := c.run("-n", ns, "get", "pods", "-l", sel, "-o", "json")
	if r.Code != 0 {
		return nil, errors.New(r.Stderr)
	}
	var list struct{ Items []podStatus }
	if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// describe returns the pods, events and last logs of a namespace, for
// failure messages.
func (c *cluster) describe(ns string) string {
	var b strings.Builder
	b.WriteString(c.run("-n", ns, "get", "pods,pvc,endpointslices", "-o", "wide").Stdout)
	b.WriteString(c.run("-n", ns, "get", "events", "--sort-by=.lastTimestamp").Stdout)
	pods, _ := c.pods(ns, podSelector)
	for _, p := range pods {
		if !p.ready() {
			logs := c.run("-n", ns, "logs", p.Metadata.Name, "--tail=30").Stdout
			fmt.Fprintf(&b, "--- last log lines of %s (not Ready):\n%s", p.Metadata.Name, logs)
		}
	}
	return b.String()
}
