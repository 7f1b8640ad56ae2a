package harness

// A cluster whose nodes run on the hosts of a Network (one network namespace each), so a
// test can cut one node off from its peers (Network.Isolate) while still talking to it.

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Ports every node of a network cluster uses: each host has its own addresses.
const (
	netnsClientPort = 2379
	netnsPeerPort   = 2380
)

// StartClusterOnNetwork launches one node per host of nw (node i on nw.Hosts[i], named
// n<i+1>): Raft traffic on the peer network, clients on the client network (reachable from
// the test), and waits until every node serves a linearizable read. Create nw before the
// cluster, so that the servers' cleanups (LIFO) run before the network's.
func StartClusterOnNetwork(t testing.TB, nw *Network, opts ClusterOptions) *Cluster {
	t.Helper()
	bin := opts.Bin
	if bin == "" {
		bin = TargetBin()
	}
	SkipKnownGap(t, KindOf(bin))
	c := &Cluster{t: t}
	var members []string
	for i, h := range nw.Hosts {
		dir := t.TempDir()
		s := &Server{
			t:         t,
			Kind:      KindOf(bin),
			Bin:       bin,
			Dir:       dir,
			DataDir:   filepath.Join(dir, "data"),
			ClientURL: fmt.Sprintf("http://%s:%d", h.ClientIP, netnsClientPort),
			Endpoint:  fmt.Sprintf("%s:%d", h.ClientIP, netnsClientPort),
			PeerURL:   fmt.Sprintf("http://%s:%d", h.PeerIP, netnsPeerPort),
			name:      fmt.Sprintf("n%d", i+1),
			extra:     opts.ExtraArgs,
			wrap:      []string{"ip", "netns", "exec", h.Name},
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
	errs := make([]error, len(c.Nodes))
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
			t.Fatalf("cluster node %s (host %s) did not become ready: %v\n%s", c.Nodes[i].name,
				nw.Hosts[i].Name, err, c.Nodes[i].LogTail(40))
		}
	}
	return c
}
