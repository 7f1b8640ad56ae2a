package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"rusd/tests/e2e/harness"
)

// The frontend hangs for most of a lease's TTL right after a renewal, then is killed and
// restarted: its clients' keep-alive streams were cut for that long. As an etcd member
// restart gives every lease its full TTL again, stored restarts every lease's clock when the
// frontend's epoch changes (lease_keeper.h), so the lease still has time left after the
// restart although its last renewal is older than its TTL by then. rusd only.
func TestLeaseOutlivesAFrontendHangAndRestart(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	if s.Kind != harness.Rusd {
		t.Skip("kills rusd's components")
	}
	cli := s.Client()
	g, err := cli.Grant(ctx10s(t), 5)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, cli, "kept", "v", clientv3.WithLease(g.ID))
	// One renewal, then none: the lease runs 5 s from here unless something restarts it.
	if _, err := cli.KeepAliveOnce(ctx10s(t), g.ID); err != nil {
		t.Fatal(err)
	}
	renewed := time.Now()
	pid := s.ComponentPids()[harness.Frontend]
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3500 * time.Millisecond)
	old := s.KillComponent(harness.Frontend)
	if _, err := s.WaitComponentReplaced(harness.Frontend, old, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Past the TTL since the renewal: without the restart's extension the lease is gone.
	time.Sleep(time.Until(renewed.Add(6 * time.Second)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ttl, err := cli.TimeToLive(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ttl.TTL <= 0 {
		t.Fatalf("lease ran out across the frontend restart (TTL %d)", ttl.TTL)
	}
	t.Logf("TTL %d, %v after the last renewal", ttl.TTL, time.Since(renewed).Round(time.Millisecond))
}
