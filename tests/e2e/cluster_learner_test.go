package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"rusd/tests/e2e/harness"
)

// etcd refuses every RPC on a learner but Maintenance.Status and serializable Range, with
// Unavailable "etcdserver: rpc not supported for learner" (v3rpc interceptor.go).
func TestLearnerRefusesWhatEtcdRefuses(t *testing.T) {
	c := harness.StartCluster(t, 1, harness.ClusterOptions{})
	n1 := c.Nodes[0]
	mustPut(t, c.Client(n1), "k", "v")
	ports := harness.FreePorts(t, 2)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	out := n1.MustEtcdctl("", "member", "add", "n2", "--learner", "--peer-urls="+peerURL)
	n2 := c.NewJoiningServer(t, "n2", initialClusterFrom(t, out), ports[0], ports[1])
	n2.Launch()
	// A client on the learner alone (clientv3 would otherwise move to another endpoint).
	cli := c.Client(n2)
	waitSerializable(t, cli, "k", "v", 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	isLearnerErr := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s on a learner succeeded", what)
		}
		if rpctypes.ErrorDesc(err) != rpctypes.ErrorDesc(rpctypes.ErrGPRCNotSupportedForLearner) {
			t.Fatalf("%s on a learner: %v, want %v", what, err, rpctypes.ErrGPRCNotSupportedForLearner)
		}
		if s, ok := status.FromError(err); ok && s.Code() != codes.Unavailable {
			t.Fatalf("%s on a learner: code %v, want Unavailable", what, s.Code())
		}
	}
	// One attempt each: clientv3 retries Unavailable on reads until its context ends.
	once := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, 3*time.Second)
	}
	c1, k1 := once()
	_, err := cli.Put(c1, "k", "w")
	k1()
	isLearnerErr("Put", err)
	c2, k2 := once()
	_, err = cli.Get(c2, "k")
	k2()
	if err == nil || !strings.Contains(err.Error(), "rpc not supported for learner") {
		t.Fatalf("linearizable Get on a learner: %v", err)
	}
	c3, k3 := once()
	_, err = cli.Grant(c3, 10)
	k3()
	isLearnerErr("LeaseGrant", err)
	c4, k4 := once()
	_, err = cli.MemberList(c4)
	k4()
	if err == nil || !strings.Contains(err.Error(), "rpc not supported for learner") {
		t.Fatalf("MemberList on a learner: %v", err)
	}
	// What a learner serves.
	r, err := cli.Get(ctx, "k", clientv3.WithSerializable())
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("serializable Get on a learner: %+v %v", r, err)
	}
	st, err := cli.Status(ctx, n2.Endpoint)
	if err != nil || !st.IsLearner {
		t.Fatalf("Status on a learner: %+v %v", st, err)
	}
	// etcdctl shows the same error text.
	res := n2.Etcdctl("", "put", "k", "x")
	if res.Code == 0 || !strings.Contains(res.Stderr, "rpc not supported for learner") {
		t.Fatalf("etcdctl put on a learner: %+v", res)
	}
	// The JSON gateway too (etcd's calls its own gRPC server, interceptor included).
	for _, path := range []string{"/v3/kv/put", "/v3/lease/grant"} {
		resp, err := http.Post(n2.ClientURL+path, "application/json",
			strings.NewReader(`{"key":"aw==","value":"eA==","TTL":10}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || !strings.Contains(string(body), "rpc not supported for learner") {
			t.Fatalf("POST %s on a learner: %d %s", path, resp.StatusCode, body)
		}
	}
	// The value never changed.
	if got, ok, err := getValue(c.Client(n1), "k"); err != nil || !ok || got != "v" {
		t.Fatalf("k on the voter: %q %v %v", got, ok, err)
	}
}
