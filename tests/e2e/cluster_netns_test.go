package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"rusd/tests/e2e/harness"
)

// Three nodes in separate network namespaces; the leader is cut off from the other two.
// The majority elects a new leader and serves; the old leader, alone, refuses writes and
// linearizable reads (never a false success); after healing it catches up.
func TestClusterNetnsPartitionedLeaderMinority(t *testing.T) {
	c := harness.StartNetnsCluster(t, 3, harness.ClusterOptions{})
	old := c.WaitLeader(5 * time.Second)
	var majority []*harness.Server
	for _, n := range c.Nodes {
		if n != old {
			majority = append(majority, n)
		}
	}
	all := c.Client()
	mustPut(t, all, "part/before", "1")

	cutAt := time.Now()
	c.Partition(old)
	// The majority serves writes again within 3 × the election timeout.
	maj := c.Client(majority...)
	var served time.Duration
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := maj.Put(ctx, "part/majority", "2")
		cancel()
		if err == nil {
			served = time.Since(cutAt)
			break
		}
		if time.Since(cutAt) > clusterFailoverBudget+5*time.Second {
			t.Fatalf("the majority does not serve writes %v after the partition: %v", time.Since(cutAt), err)
		}
	}
	t.Logf("majority serves writes %v after the leader was cut off", served.Round(time.Millisecond))
	if served > clusterFailoverBudget+time.Second {
		t.Errorf("majority took %v to serve writes (election timeout %v)", served, clusterElectionTimeout)
	}
	newLeader := c.WaitLeaderAmong(5*time.Second, majority...)
	if newLeader == old {
		t.Fatal("the cut-off node still leads the majority")
	}

	// The minority: writes and linearizable reads fail with etcd's errors; a write never
	// succeeds and never becomes visible.
	min := c.Client(old)
	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_, err := min.Put(ctx, fmt.Sprintf("part/minority%d", i), "x")
		cancel()
		if err == nil {
			t.Fatal("a write succeeded on the cut-off node")
		}
		// "request timed out" for a write proposed before the node lost its leader;
		// "context deadline exceeded" (code Unknown, etcd 3.4's) for one that waited for
		// a leader that never came (cluster_noleader_proposal_test.go).
		if !(strings.Contains(err.Error(), "etcdserver: request timed out") ||
			strings.Contains(err.Error(), "context deadline exceeded")) {
			t.Fatalf("write on the cut-off node: %v", err)
		}
		t.Logf("write on the cut-off node: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := min.Get(ctx, "part/before")
	cancel()
	if err == nil {
		t.Fatal("a linearizable read succeeded on the cut-off node")
	}
	if got, ok, err := getValue(min, "part/before", clientv3.WithSerializable()); err != nil || !ok || got != "1" {
		t.Fatalf("serializable read on the cut-off node: %q %v %v", got, ok, err)
	}
	for i := 0; i < 20; i++ {
		mustPut(t, maj, fmt.Sprintf("part/during/%02d", i), "3")
	}

	// Heal: one leader, the old leader catches up and serves again; the minority's failed
	// writes never appear.
	c.Heal()
	c.WaitLeader(10 * time.Second)
	waitSerializable(t, min, "part/majority", "2", 15*time.Second)
	waitSerializable(t, min, "part/during/19", "3", 15*time.Second)
	mustPut(t, min, "part/healed", "4")
	for _, n := range c.Nodes {
		cli := c.Client(n)
		waitSerializable(t, cli, "part/healed", "4", 10*time.Second)
		for i := 0; i < 2; i++ {
			if _, ok, err := getValue(cli, fmt.Sprintf("part/minority%d", i)); err != nil || ok {
				t.Fatalf("%s: a refused write became visible (found=%v err=%v)", n.Name(), ok, err)
			}
		}
	}
}
