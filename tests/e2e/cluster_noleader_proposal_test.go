package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"rusd/tests/e2e/harness"
)

// etcd 3.4 does not refuse a proposal while its member knows no leader: its raft node
// does not take proposals then, so the request waits until a leader appears (and is then
// proposed and succeeds) or until the request timeout (5 s + 2 x election timeout) passes.
// These tests keep one member of three (the other two SIGKILLed, as in
// TestClusterMinorityFailsRequestsAsEtcdAndRecovers) and send raw gRPC requests (clientv3
// would retry some of them) for every kind of proposal.

// leaderlessMember starts 3 nodes, writes a key, kills two of them and waits until the
// survivor names no leader.
func leaderlessMember(t *testing.T) (*harness.Cluster, *harness.Server, *grpc.ClientConn) {
	t.Helper()
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	c.WaitLeader(5 * time.Second)
	survivor := c.Nodes[0]
	mustPut(t, c.Client(survivor), "nlp/before", "1")
	c.Nodes[1].Kill()
	c.Nodes[2].Kill()
	if !survivor.AwaitNoLeader(20 * time.Second) {
		t.Fatalf("the survivor still names a leader")
	}
	conn, err := grpc.Dial(survivor.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return c, survivor, conn
}

type proposalCall struct {
	name string
	call func(ctx context.Context) error
}

// proposalCalls: one of each write etcd proposes through raft.
func proposalCalls(conn *grpc.ClientConn, prefix string) []proposalCall {
	kv := pb.NewKVClient(conn)
	lease := pb.NewLeaseClient(conn)
	return []proposalCall{
		{"Put", func(ctx context.Context) error {
			_, err := kv.Put(ctx, &pb.PutRequest{Key: []byte(prefix + "put"), Value: []byte("x")})
			return err
		}},
		{"DeleteRange", func(ctx context.Context) error {
			_, err := kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("nlp/before")})
			return err
		}},
		{"Txn", func(ctx context.Context) error {
			_, err := kv.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{
				RequestPut: &pb.PutRequest{Key: []byte(prefix + "txn"), Value: []byte("y")}}}}})
			return err
		}},
		{"Compact", func(ctx context.Context) error {
			_, err := kv.Compact(ctx, &pb.CompactionRequest{Revision: 1})
			return err
		}},
		{"LeaseGrant", func(ctx context.Context) error {
			_, err := lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 60})
			return err
		}},
		{"LeaseRevoke", func(ctx context.Context) error {
			// An unknown lease: etcd proposes the revocation and answers "lease not found"
			// once it is applied, so only the wait is compared here.
			_, err := lease.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: 0x7e57})
			return err
		}},
	}
}

type callResult struct {
	err  error
	took time.Duration
}

func runConcurrently(calls []proposalCall, ctx context.Context) []callResult {
	out := make([]callResult, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Add(1)
		go func(i int, c proposalCall) {
			defer wg.Done()
			start := time.Now()
			err := c.call(ctx)
			out[i] = callResult{err, time.Since(start)}
		}(i, c)
	}
	wg.Wait()
	return out
}

// Without a leader for the whole request timeout: each proposal waits about 7 s and fails
// with what etcd 3.4 answers then (its raft node's Propose returns the context's error,
// which its gRPC layer passes on unmapped: Unknown "context deadline exceeded"), never at
// once with "no leader".
func TestClusterProposalWithoutALeaderTimesOutAsEtcd(t *testing.T) {
	c, survivor, conn := leaderlessMember(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	calls := proposalCalls(conn, "nlp/timeout/")
	for i, r := range runConcurrently(calls, ctx) {
		t.Logf("%s: %s without a leader: %v after %v", survivor.Kind, calls[i].name, r.err,
			r.took.Round(time.Millisecond))
		if r.err == nil {
			t.Errorf("%s succeeded without a leader", calls[i].name)
			continue
		}
		if s := status.Convert(r.err); s.Code() != codes.Unknown || s.Message() != "context deadline exceeded" {
			t.Errorf("%s without a leader: %v, want Unknown context deadline exceeded", calls[i].name, r.err)
		}
		if r.took < 6*time.Second || r.took > 12*time.Second {
			t.Errorf("%s without a leader failed after %v, want about 7 s (etcd's request timeout)",
				calls[i].name, r.took)
		}
	}
	// The timed-out writes were never proposed: a leader back, none of them is there.
	c.Nodes[1].Restart()
	survivorCli := survivor.Client()
	for _, k := range []string{"nlp/timeout/put", "nlp/timeout/txn"} {
		if _, ok, err := getValue(survivorCli, k); err == nil && ok {
			t.Errorf("%s, whose write timed out waiting for a leader, exists", k)
		}
	}
}

// A leader appearing within the request timeout: the proposals that waited for it are
// proposed and succeed.
func TestClusterProposalWithoutALeaderWaitsForOne(t *testing.T) {
	c, survivor, conn := leaderlessMember(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	calls := proposalCalls(conn, "nlp/wait/")
	var results []callResult
	done := make(chan struct{})
	go func() {
		results = runConcurrently(calls, ctx)
		close(done)
	}()
	// Let them wait a while, then bring a quorum back (the restart waits until node 2
	// serves, which needs the survivor as the second voter).
	time.Sleep(time.Second)
	c.Nodes[1].Restart()
	<-done
	for i, r := range results {
		t.Logf("%s: %s that waited for a leader: %v after %v", survivor.Kind, calls[i].name, r.err,
			r.took.Round(time.Millisecond))
		if calls[i].name == "LeaseRevoke" {
			if s := status.Convert(r.err); s.Code() != codes.NotFound || s.Message() != "etcdserver: requested lease not found" {
				t.Errorf("LeaseRevoke of an unknown lease after the wait: %v, want NotFound requested lease not found", r.err)
			}
			continue
		}
		if r.err != nil {
			t.Errorf("%s made without a leader failed though a leader appeared within the request timeout: %v",
				calls[i].name, r.err)
		}
	}
	cli := survivor.Client()
	for _, k := range []string{"nlp/wait/put", "nlp/wait/txn"} {
		if _, ok, err := getValue(cli, k); err != nil || !ok {
			t.Errorf("%s after its write succeeded: present %v, %v", k, ok, err)
		}
	}
}
