package e2e

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"rusd/tests/e2e/harness"
)

// A kept-alive lease never expires while each component is killed in turn: the keep-alive
// stream (re-sent reads, a new stored waiting for the leader state, clientv3 reconnecting
// to a new frontend) carries on. rusd only.
func TestLeaseKeepAliveAcrossComponentKills(t *testing.T) {
	keepAliveAcrossKills(t, 0)
}

// The same with a slow restart: each component hangs (SIGSTOP) for 3 s before it is killed,
// so keep-alives pile up unanswered (stored, raftd) or the client's stream goes quiet and
// then breaks (frontend) for part of the TTL. A restarted stored promotes every lease to its
// full TTL and serves the re-sent keep-alives; a new raftd's term promotes again; a frontend
// restart makes stored restart every lease's clock (lease_keeper.h). rusd only.
func TestLeaseKeepAliveAcrossSlowComponentRestarts(t *testing.T) {
	keepAliveAcrossKills(t, 3*time.Second)
}

// keepAliveAcrossKills keeps a lease alive with clientv3 while each component in turn is
// stopped for `stall` (none if 0), SIGKILLed and replaced by the supervisor. After each the
// client's keep-alive must be answered again (clientv3 gives up for good when no answer
// comes within the TTL, and etcd would lose the lease then too) and TimeToLive must show
// time left. The TTL (10 s: renewed every 3.3 s) leaves room for a loaded machine's latency:
// with 5 s a keep-alive round trip over 3.3 s lets the lease run out, on etcd as well.
func keepAliveAcrossKills(t *testing.T, stall time.Duration) {
	s := harness.Start(t, harness.Options{})
	if s.Kind != harness.Rusd {
		t.Skip("kills rusd's components")
	}
	cli := s.Client()
	g, err := cli.Grant(ctx10s(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, cli, "kept", "v", clientv3.WithLease(g.ID))
	kctx, stop := context.WithCancel(context.Background())
	defer stop()
	ch, err := cli.KeepAlive(kctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var last time.Time // when the last keep-alive answer arrived
	go func() {
		for range ch {
			mu.Lock()
			last = time.Now()
			mu.Unlock()
		}
	}()
	answeredAfter := func(since time.Time, within time.Duration) bool {
		for deadline := time.Now().Add(within); time.Now().Before(deadline); {
			mu.Lock()
			l := last
			mu.Unlock()
			if l.After(since) {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	for _, comp := range []string{harness.Stored, harness.Raftd, harness.Frontend} {
		// A fresh answer first: the lease was just renewed when the component goes.
		if !answeredAfter(time.Now(), 10*time.Second) {
			t.Fatalf("no keep-alive answer before killing %s", comp)
		}
		if stall > 0 {
			pid := s.ComponentPids()[comp]
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatalf("stop %s pid %d: %v", comp, pid, err)
			}
			time.Sleep(stall)
		}
		old := s.KillComponent(comp)
		if _, err := s.WaitComponentReplaced(comp, old, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		replaced := time.Now()
		if !answeredAfter(replaced, 10*time.Second) {
			t.Fatalf("keep-alive no longer answered after killing %s", comp)
		}
		gctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ttl, err := cli.TimeToLive(gctx, g.ID)
		cancel()
		if err != nil {
			t.Fatalf("after killing %s: %v", comp, err)
		}
		if ttl.TTL <= 0 {
			t.Fatalf("lease expired after killing %s (TTL %d)", comp, ttl.TTL)
		}
		mu.Lock()
		after := last.Sub(replaced).Round(time.Millisecond)
		mu.Unlock()
		t.Logf("after killing %s: keep-alive answered %v after the replacement, TTL %d",
			comp, after, ttl.TTL)
	}
	gr, err := cli.Get(ctx10s(t), "kept")
	if err != nil || len(gr.Kvs) != 1 {
		t.Fatalf("kept key: %v %v", gr, err)
	}
}
