package harness

// A cluster whose nodes each run in their own network namespace, so that a test can cut
// one node off from its peers (Isolate) while the test itself still reaches it, and heal
// it again. Self-contained (its own namespaces, names and addresses) so that it does not
// depend on, or collide with, the other network helpers of this package.
//
// Topology, every name tagged per cluster and removed at cleanup:
//
//	root ns: veth ir<tag> 10.X.Y.1/24 ── hub ns (bridge br0) ── veth ── node ns i: 10.X.Y.(11+i)
//
// The bridge lives in its own namespace, so the host's FORWARD policy (DROP under Docker)
// never sees bridged frames. Isolate(i) adds iptables DROP rules inside node i's namespace
// for every other node's address; the test's traffic (from 10.X.Y.1) passes. Nodes listen
// on ports 2379 (client) and 2380 (peer) of their own address. Needs root, iproute2 and
// iptables: IsolationAvailable says why not.

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Isolation is the network of an isolatable cluster.
type Isolation struct {
	t      testing.TB
	tag    string
	subnet string // "10.X.Y"
	hub    string
	nodes  []string // namespace of node i
}

// IsolationAvailable says whether isolatable clusters can run here, and if not, why.
func IsolationAvailable() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "network namespaces need root"
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false, tool + " is not installed"
		}
	}
	return true, ""
}

func isoRun(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err,
			strings.TrimSpace(string(out)))
	}
	return nil
}

func newIsolation(t testing.TB, n int) *Isolation {
	t.Helper()
	r := rand.New(rand.NewSource(time.Now().UnixNano() ^ int64(os.Getpid())))
	tag := fmt.Sprintf("%04x", r.Intn(0x10000))
	is := &Isolation{t: t, tag: tag, hub: "rusd-i" + tag + "-hub",
		subnet: fmt.Sprintf("10.%d.%d", 200+r.Intn(50), r.Intn(250))}
	t.Cleanup(is.close)
	steps := [][]string{
		{"netns", "add", is.hub},
		{"-n", is.hub, "link", "set", "lo", "up"},
		{"-n", is.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", is.hub, "link", "set", "br0", "up"},
		{"link", "add", "ir" + tag, "type", "veth", "peer", "name", "ih" + tag, "netns", is.hub},
		{"-n", is.hub, "link", "set", "ih" + tag, "master", "br0", "up"},
		{"addr", "add", is.subnet + ".1/24", "dev", "ir" + tag},
		{"link", "set", "ir" + tag, "up"},
	}
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("rusd-i%s-%d", tag, i)
		is.nodes = append(is.nodes, ns)
		nv, hv := fmt.Sprintf("in%s-%d", tag, i), fmt.Sprintf("ih%s-%d", tag, i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"link", "add", nv, "netns", ns, "type", "veth", "peer", "name", hv, "netns", is.hub},
			[]string{"-n", is.hub, "link", "set", hv, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", fmt.Sprintf("%s/24", is.ip(i)), "dev", nv},
			[]string{"-n", ns, "link", "set", nv, "up"},
		)
	}
	for _, s := range steps {
		if err := isoRun("ip", s...); err != nil {
			t.Fatalf("network namespaces: %v", err)
		}
	}
	return is
}

func (is *Isolation) ip(i int) string { return fmt.Sprintf("%s.%d", is.subnet, 11+i) }

// close removes the namespaces (their veths go with them). Servers must be gone first:
// their cleanups run earlier (t.Cleanup is LIFO and they are started after the network).
func (is *Isolation) close() {
	for _, ns := range is.nodes {
		_ = isoRun("ip", "netns", "del", ns)
	}
	_ = isoRun("ip", "netns", "del", is.hub)
	_ = isoRun("ip", "link", "del", "ir"+is.tag)
}

// Isolate drops all traffic between node i and the other nodes, both ways.
func (is *Isolation) Isolate(i int) {
	is.t.Helper()
	for j := range is.nodes {
		if j == i {
			continue
		}
		for _, rule := range [][]string{
			{"-A", "INPUT", "-s", is.ip(j), "-j", "DROP"},
			{"-A", "OUTPUT", "-d", is.ip(j), "-j", "DROP"},
		} {
			args := append([]string{"netns", "exec", is.nodes[i], "iptables"}, rule...)
			if err := isoRun("ip", args...); err != nil {
				is.t.Fatalf("isolate node %d: %v", i, err)
			}
		}
	}
}

// Heal removes node i's isolation.
func (is *Isolation) Heal(i int) {
	is.t.Helper()
	if err := isoRun("ip", "netns", "exec", is.nodes[i], "iptables", "-F"); err != nil {
		is.t.Fatalf("heal node %d: %v", i, err)
	}
}

// StartIsolatableCluster starts n nodes (n1..nN), node i in namespace i, and waits until
// every node serves a linearizable read. Skips the test when namespaces are unavailable.
func StartIsolatableCluster(t testing.TB, n int, opts ClusterOptions) (*Cluster, *Isolation) {
	t.Helper()
	if ok, why := IsolationAvailable(); !ok {
		t.Skip(why)
	}
	bin := opts.Bin
	if bin == "" {
		bin = TargetBin()
	}
	SkipKnownGap(t, KindOf(bin))
	is := newIsolation(t, n)
	c := &Cluster{t: t}
	var members []string
	for i := 0; i < n; i++ {
		dir := t.TempDir()
		// The server is started through a script that enters the namespace: `ip netns
		// exec` execs the server in place, so the pid the harness knows is the server's.
		wrapper := filepath.Join(dir, "run-in-netns.sh")
		script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", is.nodes[i], bin)
		if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
			t.Fatalf("wrapper: %v", err)
		}
		s := &Server{
			t:         t,
			Kind:      KindOf(bin),
			Bin:       wrapper,
			Dir:       dir,
			DataDir:   filepath.Join(dir, "data"),
			ClientURL: "http://" + is.ip(i) + ":2379",
			Endpoint:  is.ip(i) + ":2379",
			PeerURL:   "http://" + is.ip(i) + ":2380",
			name:      fmt.Sprintf("n%d", i+1),
			extra:     opts.ExtraArgs,
		}
		members = append(members, s.name+"="+s.PeerURL)
		c.Nodes = append(c.Nodes, s)
	}
	initial := strings.Join(members, ",")
	for _, s := range c.Nodes {
		s.initialCluster = initial
		t.Cleanup(s.cleanup)
		s.launch()
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, s := range c.Nodes {
		wg.Add(1)
		go func(i int, s *Server) {
			defer wg.Done()
			errs[i] = s.waitReady(30 * time.Second)
		}(i, s)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %s (namespace %s) did not become ready: %v\n%s", c.Nodes[i].name,
				is.nodes[i], err, c.Nodes[i].LogTail(40))
		}
	}
	return c, is
}
