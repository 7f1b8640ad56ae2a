package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"rusd/tests/e2e/harness"
)

// etcd's documented operations flow for building a cluster one member at a time: start a
// node alone, `etcdctl member add n2 --peer-urls=...`, start n2 with the printed
// --initial-cluster and --initial-cluster-state=existing, then the same for n3. A node
// started alone therefore listens on its peer port from the start.

// growByOne adds `name` as a voter through `via` with etcdctl and starts it.
func growByOne(t *testing.T, c *harness.Cluster, via *harness.Server, name string) *harness.Server {
	t.Helper()
	ports := harness.FreePorts(t, 2)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	var out string
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Until every voter has been connected for 5 s, etcd (and rusd) answer
		// "unhealthy cluster": retry instead of guessing how long that takes.
		r := via.Etcdctl("", "member", "add", name, "--peer-urls="+peerURL)
		if r.Code == 0 {
			out = r.Stdout
			break
		}
		if !strings.Contains(r.Stderr, "unhealthy cluster") || time.Now().After(deadline) {
			t.Fatalf("etcdctl member add %s: %+v", name, r)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !strings.Contains(out, "ETCD_INITIAL_CLUSTER_STATE=\"existing\"") {
		t.Fatalf("etcdctl member add: %s", out)
	}
	s := c.NewJoiningServer(t, name, initialClusterFrom(t, out), ports[0], ports[1])
	s.Launch()
	if err := s.Probe(30 * time.Second); err != nil {
		t.Fatalf("%s does not serve: %v\n%s", name, err, s.LogTail(40))
	}
	return s
}

// mustGetEverywhere reads every key linearizably and serializably through each node.
func mustGetEverywhere(t *testing.T, c *harness.Cluster, keys []string) {
	t.Helper()
	for _, n := range c.Nodes {
		cli := c.Client(n)
		for _, k := range keys {
			waitSerializable(t, cli, k, "v-"+k, 10*time.Second)
			got, ok, err := getValue(cli, k)
			if err != nil || !ok || got != "v-"+k {
				t.Fatalf("linearizable get %s on %s: %q %v %v", k, n.Name(), got, ok, err)
			}
		}
	}
}

func testGrowOneToThree(t *testing.T, extra ...string) {
	c := harness.StartCluster(t, 1, harness.ClusterOptions{ExtraArgs: extra})
	n1 := c.Nodes[0]
	var keys []string
	put := func(via *harness.Server, k string) {
		t.Helper()
		mustPut(t, c.Client(via), k, "v-"+k)
		keys = append(keys, k)
	}
	for i := 0; i < 40; i++ {
		put(n1, fmt.Sprintf("alone/%02d", i))
	}
	n2 := growByOne(t, c, n1, "n2")
	put(n2, "with-n2")
	mustGetEverywhere(t, c, keys)
	n3 := growByOne(t, c, n2, "n3")
	put(n3, "with-n3")
	put(n1, "with-n3-via-n1")
	mustGetEverywhere(t, c, keys)

	// Every node lists three started voters: a name and a client URL each.
	for _, n := range c.Nodes {
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := waitMembers(t, c, n, 3)
			started := 0
			for _, m := range r.Members {
				if !m.IsLearner && m.Name != "" && len(m.ClientURLs) == 1 && len(m.PeerURLs) == 1 {
					started++
				}
			}
			if started == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s lists %+v", n.Name(), r.Members)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A real quorum of three: the cluster keeps serving writes with the first node down.
	n1.Stop(10 * time.Second)
	c.WaitLeaderAmong(20*time.Second, n2, n3)
	cli := c.Client(n2, n3)
	ctx, cancel := memberCtx()
	defer cancel()
	if _, err := cli.Put(ctx, "n1-down", "v"); err != nil {
		t.Fatalf("put with n1 down: %v", err)
	}
	if r, err := cli.Get(ctx, "n1-down"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("get with n1 down: %+v %v", r, err)
	}
}

func TestClusterGrowsFromOneNodeByMemberAdd(t *testing.T) {
	testGrowOneToThree(t)
}

// The same with a small --snapshot-count: the lone node has compacted its log by the time
// n2 joins (rusd then sends n2 a snapshot; etcd keeps 5000 entries and sends appends).
func TestClusterGrowsFromOneNodeAfterCompaction(t *testing.T) {
	testGrowOneToThree(t, "--snapshot-count=10")
}
