package harness

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A cluster whose nodes live in separate network namespaces, so that a test can cut the
// network between them (Partition) the way a real network fails, without touching the
// host's firewall or other tests' traffic.
//
// Topology (all names carry a random tag; everything is removed at cleanup):
//
//	root ns: veth rv<tag> 10.X.Y.1/24 ──┐
//	hub ns  rusd-<tag>-hub:  bridge br0 ├── veth ── node ns rusd-<tag>-<i>: 10.X.Y.(10+i)/24
//	                                    └── veth ── ...
//
// The bridge lives in its own namespace so the host's FORWARD policy (often DROP under
// Docker) never sees the bridged traffic; the test process reaches every node through
// the root-side veth. Partitions are iptables DROP rules inside the node namespaces.
// Needs root and iproute2 + iptables; the test is skipped otherwise.

type netnsSetup struct {
	tag    string
	subnet string // "10.X.Y"
	hub    string
	nodes  []string
}

func netnsIP(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// NetnsAvailable says why network-namespace clusters cannot run here ("" if they can).
func NetnsAvailable() string {
	if os.Geteuid() != 0 {
		return "needs root (ip netns)"
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not installed"
		}
	}
	return ""
}

func newNetns(t testing.TB, n int) *netnsSetup {
	t.Helper()
	r := rand.New(rand.NewSource(time.Now().UnixNano() ^ int64(os.Getpid())))
	tag := fmt.Sprintf("%04x", r.Intn(0x10000))
	ns := &netnsSetup{
		tag:    tag,
		subnet: fmt.Sprintf("10.%d.%d", 100+r.Intn(100), r.Intn(250)),
		hub:    "rusd-" + tag + "-hub",
	}
	t.Cleanup(ns.teardown)
	steps := [][]string{
		{"netns", "add", ns.hub},
		{"-n", ns.hub, "link", "set", "lo", "up"},
		{"-n", ns.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", ns.hub, "link", "set", "br0", "up"},
		{"link", "add", "rv" + tag, "type", "veth", "peer", "name", "hv" + tag, "netns", ns.hub},
		{"-n", ns.hub, "link", "set", "hv" + tag, "master", "br0", "up"},
		{"addr", "add", ns.subnet + ".1/24", "dev", "rv" + tag},
		{"link", "set", "rv" + tag, "up"},
	}
	for i := 1; i <= n; i++ {
		node := fmt.Sprintf("rusd-%s-%d", tag, i)
		ns.nodes = append(ns.nodes, node)
		nv, hv := fmt.Sprintf("n%s-%d", tag, i), fmt.Sprintf("h%s-%d", tag, i)
		steps = append(steps,
			[]string{"netns", "add", node},
			[]string{"-n", node, "link", "set", "lo", "up"},
			[]string{"link", "add", nv, "netns", node, "type", "veth", "peer", "name", hv, "netns", ns.hub},
			[]string{"-n", ns.hub, "link", "set", hv, "master", "br0", "up"},
			[]string{"-n", node, "addr", "add", fmt.Sprintf("%s.%d/24", ns.subnet, 10+i), "dev", nv},
			[]string{"-n", node, "link", "set", nv, "up"},
		)
	}
	for _, s := range steps {
		if err := netnsIP(s...); err != nil {
			t.Fatalf("network namespaces: %v", err)
		}
	}
	return ns
}

func (ns *netnsSetup) teardown() {
	for _, node := range ns.nodes {
		_ = netnsIP("netns", "del", node)
	}
	_ = netnsIP("netns", "del", ns.hub)
	_ = netnsIP("link", "del", "rv"+ns.tag) // gone with its peer already, normally
}

// StartNetnsCluster starts n nodes, each in its own network namespace (see above), on
// ports 2379/2380 of its own address, and waits until all serve. Skips the test when
// namespaces are not available.
func StartNetnsCluster(t testing.TB, n int, opts ClusterOptions) *Cluster {
	t.Helper()
	if why := NetnsAvailable(); why != "" {
		t.Skipf("network namespaces: %s", why)
	}
	bin := opts.Bin
	if bin == "" {
		bin = TargetBin()
	}
	SkipKnownGap(t, KindOf(bin))
	ns := newNetns(t, n)
	c := &Cluster{t: t, netns: ns}
	var members []string
	for i := 0; i < n; i++ {
		dir := t.TempDir()
		ip := fmt.Sprintf("%s.%d", ns.subnet, 11+i)
		s := &Server{
			t:         t,
			Kind:      KindOf(bin),
			Bin:       bin,
			Dir:       dir,
			DataDir:   filepath.Join(dir, "data"),
			ClientURL: "http://" + ip + ":2379",
			Endpoint:  ip + ":2379",
			PeerURL:   "http://" + ip + ":2380",
			name:      fmt.Sprintf("n%d", i+1),
			extra:     opts.ExtraArgs,
			netns:     ns.nodes[i],
		}
		members = append(members, s.name+"="+s.PeerURL)
		c.Nodes = append(c.Nodes, s)
	}
	c.launchAll(members)
	return c
}

func (c *Cluster) indexOf(s *Server) int {
	for i, n := range c.Nodes {
		if n == s {
			return i
		}
	}
	c.t.Fatalf("%s is not a node of this cluster", s.name)
	return -1
}

func (c *Cluster) iptables(node int, args ...string) {
	c.t.Helper()
	full := append([]string{"netns", "exec", c.netns.nodes[node], "iptables"}, args...)
	if err := netnsIP(full...); err != nil {
		c.t.Fatalf("partition: %v", err)
	}
}

// Partition cuts every link between `side` and the other nodes (both directions, all
// ports); clients in the root namespace still reach every node. Only for netns clusters.
func (c *Cluster) Partition(side ...*Server) {
	c.t.Helper()
	if c.netns == nil {
		c.t.Fatal("Partition needs a cluster from StartNetnsCluster")
	}
	in := map[int]bool{}
	for _, s := range side {
		in[c.indexOf(s)] = true
	}
	for i := range c.Nodes {
		for j := range c.Nodes {
			if i == j || in[i] == in[j] {
				continue
			}
			peer := fmt.Sprintf("%s.%d", c.netns.subnet, 11+j)
			c.iptables(i, "-A", "INPUT", "-s", peer, "-j", "DROP")
			c.iptables(i, "-A", "OUTPUT", "-d", peer, "-j", "DROP")
		}
	}
}

// Heal removes every partition.
func (c *Cluster) Heal() {
	c.t.Helper()
	for i := range c.Nodes {
		c.iptables(i, "-F")
	}
}
