package e2e

import (
	"context"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"rusd/tests/e2e/harness"
)

// What one raw linearizable Range (no client retries) gets from a member cut off from the
// others once it knows no leader, and how long it takes: etcd 3.4 lets the read wait for
// a read index until its request timeout (5 s + 2 election timeouts) and then answers
// "etcdserver: request timed out"; it never succeeds. (A write fails too: etcd 3.4 and rusd
// answer it "context deadline exceeded" after the same wait, see
// cluster_noleader_proposal_test.go.)
func TestClusterNetnsNoLeaderLinearizableRead(t *testing.T) {
	c := harness.StartNetnsCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(5 * time.Second)
	mustPut(t, c.Client(), "nl/before", "1")
	var cut *harness.Server
	for _, n := range c.Nodes {
		if n != leader {
			cut = n
			break
		}
	}
	c.Partition(cut)
	// Until it has no leader (an election timeout and more without heartbeats).
	if !cut.AwaitNoLeader(20 * time.Second) {
		t.Fatalf("the cut-off member still names a leader")
	}
	conn, err := grpc.Dial(cut.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kv := pb.NewKVClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err = kv.Range(ctx, &pb.RangeRequest{Key: []byte("nl/before")})
	took := time.Since(start)
	t.Logf("%s: linearizable Range without a leader: %v after %v", cut.Kind, err, took.Round(time.Millisecond))
	if err == nil {
		t.Fatal("a linearizable read succeeded without a leader")
	}
	// etcd 3.4: Unavailable "etcdserver: request timed out" after 5 s + 2 election
	// timeouts (7 s here), not an immediate "no leader".
	if s := status.Convert(err); s.Code() != codes.Unavailable || s.Message() != "etcdserver: request timed out" {
		t.Errorf("linearizable Range without a leader: %v, want Unavailable etcdserver: request timed out", err)
	}
	if took < 5*time.Second || took > 12*time.Second {
		t.Errorf("linearizable Range without a leader failed after %v, want about 7 s (etcd's request timeout)", took)
	}
	start = time.Now()
	_, err = kv.Put(ctx, &pb.PutRequest{Key: []byte("nl/put"), Value: []byte("x")})
	t.Logf("%s: Put without a leader: %v after %v", cut.Kind, err, time.Since(start).Round(time.Millisecond))
	if err == nil {
		t.Fatal("a write succeeded without a leader")
	}
}
