package harness

// Network is a set of hosts, each its own Linux network namespace, for tests of what
// crosses a real network: several nodes, each with its own addresses, and a way to cut one
// off from its peers and heal it again.
//
// Every host has two interfaces, on two bridges in the test's (root) namespace:
//
//	peer network   10.<p>.1.<i+1>/24  Raft traffic between the hosts; Isolate cuts it
//	client network 10.<p>.2.<i+1>/24  the test's clients; 10.<p>.2.254 is the root side
//
// Keeping clients on their own network is what lets a test cut a node off from its peers
// (a partitioned minority) and still ask that node for a read or a write, and see it refuse.
// <p> is picked per Network so tests running in parallel do not collide.
//
// Needs root (CAP_NET_ADMIN) and iproute2; NewNetwork skips the test otherwise. Where
// bridged frames are filtered by iptables (br_netfilter, as Docker sets it up), it adds
// FORWARD rules accepting traffic within its own bridges, and removes them again. Everything
// created is removed by t.Cleanup, and names carry a per-run tag so that leftovers from a
// killed test run never clash with a new one.

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// Host is one namespace of a Network.
type Host struct {
	Name     string // namespace name, for `ip netns exec`
	PeerIP   string // on the peer network
	ClientIP string // on the client network, reachable from the test process
	peerLink string // root-side end of the host's peer veth; down = isolated
}

// Network is the set of hosts and the two bridges joining them.
type Network struct {
	t       testing.TB
	tag     string
	Hosts   []*Host
	peerBr  string
	cliBr   string
	mu      sync.Mutex
	cleaned bool
	// iptables FORWARD rules added for the bridges, removed by Close.
	forwardRules [][]string
}

// netnsCount picks the second octet of each Network's 10.x.0.0/16: parallel tests in one
// process get different ones, and NewNetwork skips octets another process already uses.
var (
	netnsMu    sync.Mutex
	netnsCount = rand.Intn(150)
)

// CanUseNetns says whether this process can create namespaces (root and `ip` present),
// and if not, why.
func CanUseNetns() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "network namespaces need root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return false, "iproute2's ip is not installed"
	}
	return true, ""
}

// NewNetwork creates n hosts joined by a peer and a client bridge, or skips the test when
// namespaces are unavailable.
func NewNetwork(t testing.TB, n int) *Network {
	t.Helper()
	if ok, why := CanUseNetns(); !ok {
		t.Skip(why)
	}
	octet := freeOctet(t)

	tag := fmt.Sprintf("%04x", rand.Intn(1<<16))
	nw := &Network{t: t, tag: tag, peerBr: "rp" + tag, cliBr: "rc" + tag}
	t.Cleanup(nw.Close)

	nw.mustIP("link", "add", nw.peerBr, "type", "bridge")
	nw.mustIP("link", "add", nw.cliBr, "type", "bridge")
	nw.mustIP("addr", "add", fmt.Sprintf("10.%d.2.254/24", octet), "dev", nw.cliBr)
	nw.mustIP("link", "set", nw.peerBr, "up")
	nw.mustIP("link", "set", nw.cliBr, "up")
	nw.allowBridgedTraffic()
	for i := 0; i < n; i++ {
		h := &Host{
			Name:     fmt.Sprintf("rusd-%s-%d", tag, i),
			PeerIP:   fmt.Sprintf("10.%d.1.%d", octet, i+1),
			ClientIP: fmt.Sprintf("10.%d.2.%d", octet, i+1),
			peerLink: fmt.Sprintf("rp%s-%d", tag, i),
		}
		nw.Hosts = append(nw.Hosts, h)
		cliLink := fmt.Sprintf("rc%s-%d", tag, i)
		nw.mustIP("netns", "add", h.Name)
		nw.mustIP("-n", h.Name, "link", "set", "lo", "up")
		// Each veth is created with its namespace end already named eth0/eth1 inside it.
		nw.mustIP("link", "add", h.peerLink, "type", "veth", "peer", "name", "eth0",
			"netns", h.Name)
		nw.mustIP("link", "add", cliLink, "type", "veth", "peer", "name", "eth1",
			"netns", h.Name)
		nw.mustIP("link", "set", h.peerLink, "master", nw.peerBr, "up")
		nw.mustIP("link", "set", cliLink, "master", nw.cliBr, "up")
		nw.mustIP("-n", h.Name, "addr", "add", h.PeerIP+"/24", "dev", "eth0")
		nw.mustIP("-n", h.Name, "addr", "add", h.ClientIP+"/24", "dev", "eth1")
		nw.mustIP("-n", h.Name, "link", "set", "eth0", "up")
		nw.mustIP("-n", h.Name, "link", "set", "eth1", "up")
	}
	return nw
}

// Command returns a command that runs `name args...` inside host h's namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// Isolate cuts host i off from every other host on the peer network (its client
// interface stays up, so the test can still talk to it).
func (nw *Network) Isolate(i int) {
	nw.t.Helper()
	nw.mustIP("link", "set", nw.Hosts[i].peerLink, "down")
}

// Heal reconnects host i to the peer network.
func (nw *Network) Heal(i int) {
	nw.t.Helper()
	nw.mustIP("link", "set", nw.Hosts[i].peerLink, "up")
}

// Close removes the namespaces and bridges (their veths go with them). Idempotent; also
// run by t.Cleanup. Processes still running inside a namespace keep it alive until they
// exit, so stop servers first (their own cleanups run before this one: t.Cleanup is LIFO
// and servers are started after the network).
func (nw *Network) Close() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if nw.cleaned {
		return
	}
	nw.cleaned = true
	for _, h := range nw.Hosts {
		_ = runIP("netns", "delete", h.Name)
	}
	_ = runIP("link", "delete", nw.peerBr)
	_ = runIP("link", "delete", nw.cliBr)
	for _, rule := range nw.forwardRules {
		_ = exec.Command("iptables", append([]string{"-D", "FORWARD"}, rule...)...).Run()
	}
}

// allowBridgedTraffic lets frames between the hosts cross the bridges where the machine
// filters bridged traffic: with br_netfilter loaded (Docker loads it and sets the FORWARD
// policy to DROP), every frame a bridge forwards goes through iptables' FORWARD chain.
func (nw *Network) allowBridgedTraffic() {
	nw.t.Helper()
	if _, err := exec.LookPath("iptables"); err != nil {
		return // no iptables: nothing filters bridged frames through it either
	}
	for _, br := range []string{nw.peerBr, nw.cliBr} {
		rule := []string{"-i", br, "-o", br, "-j", "ACCEPT"}
		out, err := exec.Command("iptables", append([]string{"-I", "FORWARD"}, rule...)...).
			CombinedOutput()
		if err != nil {
			nw.t.Fatalf("iptables -I FORWARD %s: %v: %s", strings.Join(rule, " "), err,
				strings.TrimSpace(string(out)))
		}
		nw.forwardRules = append(nw.forwardRules, rule)
	}
}

// freeOctet returns x such that no interface of this namespace has an address in 10.x/16.
func freeOctet(t testing.TB) int {
	t.Helper()
	netnsMu.Lock()
	defer netnsMu.Unlock()
	for tries := 0; tries < 150; tries++ {
		octet := 100 + netnsCount%150
		netnsCount++
		out, err := exec.Command("ip", "-o", "addr", "show", "to",
			fmt.Sprintf("10.%d.0.0/16", octet)).Output()
		if err != nil {
			t.Fatalf("ip addr show: %v", err)
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			return octet
		}
	}
	t.Fatalf("no free 10.x.0.0/16 for a test network")
	return 0
}

func (nw *Network) mustIP(args ...string) {
	nw.t.Helper()
	if err := runIP(args...); err != nil {
		nw.t.Fatalf("%v", err)
	}
}

func runIP(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err,
			strings.TrimSpace(string(out)))
	}
	return nil
}
