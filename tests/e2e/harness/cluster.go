package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Cluster is N nodes of one cluster on loopback, each with its own free client and peer
// port and temp dir, bootstrapped together with one --initial-cluster (names n1..nN).
// Nodes are Servers: each can be killed, stopped and restarted on its own.
type Cluster struct {
	t     testing.TB
	Nodes []*Server
	netns *netnsSetup // nil unless StartNetnsCluster
}

// ClusterOptions tune a cluster.
type ClusterOptions struct {
	Bin       string   // default TargetBin()
	ExtraArgs []string // appended to every node's flags (e.g. --election-timeout=500)
}

// StartCluster launches n nodes at once and waits until every node serves a linearizable
// read (which needs an elected leader).
func StartCluster(t testing.TB, n int, opts ClusterOptions) *Cluster {
	t.Helper()
	bin := opts.Bin
	if bin == "" {
		bin = TargetBin()
	}
	SkipKnownGap(t, KindOf(bin))
	ports := FreePorts(t, 2*n)
	c := &Cluster{t: t}
	var members []string
	for i := 0; i < n; i++ {
		dir := t.TempDir()
		s := &Server{
			t:         t,
			Kind:      KindOf(bin),
			Bin:       bin,
			Dir:       dir,
			DataDir:   filepath.Join(dir, "data"),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			Endpoint:  fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			name:      fmt.Sprintf("n%d", i+1),
			extra:     opts.ExtraArgs,
		}
		members = append(members, s.name+"="+s.PeerURL)
		c.Nodes = append(c.Nodes, s)
	}
	c.launchAll(members)
	return c
}

// launchAll starts every node with one --initial-cluster and waits until all serve.
func (c *Cluster) launchAll(members []string) {
	t := c.t
	t.Helper()
	n := len(c.Nodes)
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
			t.Fatalf("cluster node %s did not become ready: %v\n%s", c.Nodes[i].name, err,
				c.Nodes[i].LogTail(40))
		}
	}
}

// Name is the member name (--name) of the node.
func (s *Server) Name() string { return s.name }

// Endpoints lists every node's client endpoint (host:port).
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, s := range c.Nodes {
		out = append(out, s.Endpoint)
	}
	return out
}

// MemberStatus asks one node for Maintenance.Status: its member id and the leader it knows.
func (s *Server) MemberStatus(timeout time.Duration) (member, leader uint64, term uint64, err error) {
	cli, err := s.newClient(timeout)
	if err != nil {
		return 0, 0, 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := cli.Status(ctx, s.Endpoint)
	if err != nil {
		return 0, 0, 0, err
	}
	return st.Header.MemberId, st.Leader, st.RaftTerm, nil
}

// AwaitNoLeader polls the node's Maintenance.Status until it names no leader (an election
// timeout and more without a reachable majority); false if it still names one at `within`.
func (s *Server) AwaitNoLeader(within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		_, l, _, err := s.MemberStatus(time.Second)
		if err == nil && l == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Leader returns the node every running node agrees leads (nil if they do not agree or
// there is none).
func (c *Cluster) Leader() *Server { return c.LeaderAmong(c.Nodes...) }

// LeaderAmong is Leader asking only the given nodes (e.g. the majority side of a
// partition); the leader must be one of them.
func (c *Cluster) LeaderAmong(nodes ...*Server) *Server {
	ids := map[uint64]*Server{}
	var leader uint64
	for _, s := range nodes {
		if s.Pid() == 0 {
			continue
		}
		m, l, _, err := s.MemberStatus(time.Second)
		if err != nil || l == 0 || (leader != 0 && l != leader) {
			return nil
		}
		ids[m] = s
		leader = l
	}
	return ids[leader]
}

// WaitLeader waits until the running nodes agree on a leader and returns it.
// OneFollowerAndTheRest splits the nodes into one that is not `leader` (the first such
// node) and all the others, leader included: the usual cast of a test that stops or
// partitions one follower while the rest keep serving.
func (c *Cluster) OneFollowerAndTheRest(leader *Server) (follower *Server, rest []*Server) {
	for _, n := range c.Nodes {
		if n != leader && follower == nil {
			follower = n
		} else {
			rest = append(rest, n)
		}
	}
	return follower, rest
}

func (c *Cluster) WaitLeader(timeout time.Duration) *Server {
	c.t.Helper()
	return c.WaitLeaderAmong(timeout, c.Nodes...)
}

// WaitLeaderAmong waits until the given nodes agree on a leader among them.
func (c *Cluster) WaitLeaderAmong(timeout time.Duration, nodes ...*Server) *Server {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := c.LeaderAmong(nodes...); l != nil {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no agreed leader within %v", timeout)
	return nil
}

// Client returns a clientv3 client on the given nodes (all running nodes when none are
// given), closed at the end of the test.
func (c *Cluster) Client(nodes ...*Server) *clientv3.Client {
	c.t.Helper()
	if len(nodes) == 0 {
		for _, s := range c.Nodes {
			if s.Pid() != 0 {
				nodes = append(nodes, s)
			}
		}
	}
	var eps []string
	for _, s := range nodes {
		eps = append(eps, s.Endpoint)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: 5 * time.Second,
		DialOptions: ClientDialOptions(),
		Logger:      zap.NewNop(),
	})
	if err != nil {
		c.t.Fatalf("clientv3: %v", err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// SetExtraArgs replaces the flags appended to the node's etcd-style flags from its next
// start on (e.g. another --initial-cluster-token).
func (s *Server) SetExtraArgs(args ...string) { s.extra = args }

// Launch starts a stopped node without waiting until it serves (a node that cannot join).
func (s *Server) Launch() { s.launch() }
