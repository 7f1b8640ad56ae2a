package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"

	"rusd/tests/e2e/harness"
)

// txnLoad is N clientv3 clients, each running non-idempotent transactions in a loop: txn
// seq of client w puts its own op key <prefix>/ops/w/seq and the client's counter key
// <prefix>/ctr/w. Applied twice, a txn shows: its op key at version 2 and a counter whose
// version exceeds the number of op keys. A client never repeats a txn itself (an outcome
// it does not know stays unknown), so a second application could only come from the server
// or from clientv3 retrying behind the test's back.
type txnLoad struct {
	*writeLoad
	clients int
}

func startTxnLoad(t *testing.T, s *harness.Server, clients int, prefix string) *txnLoad {
	t.Helper()
	return &txnLoad{clients: clients, writeLoad: startWriteLoad(t, s, clients, prefix,
		"%s/ops/%d/%07d", 10*time.Second,
		func(ctx context.Context, cli *clientv3.Client, w int, key, val string) (int64, error) {
			ctr := fmt.Sprintf("%s/ctr/%d", prefix, w)
			r, err := cli.Txn(ctx).Then(clientv3.OpPut(key, val), clientv3.OpPut(ctr, val)).Commit()
			if err != nil {
				return 0, err
			}
			return r.Header.Revision, nil
		})}
}

// verify: every acknowledged txn applied once, at its acknowledged revision; no txn (acked
// or not) applied twice; nothing applied that no client wrote.
func (l *txnLoad) verify(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, b := range l.bad {
		if i == 10 {
			t.Errorf("... %d such errors in all", len(l.bad))
			break
		}
		t.Errorf("error of a kind that is not 'outcome unknown': %s", b)
	}
	ops := mustGet(t, cli, l.prefix+"/ops/", clientv3.WithPrefix())
	present := map[string]bool{}
	perClient := map[string]int64{}
	for _, kv := range ops.Kvs {
		k := string(kv.Key)
		present[k] = true
		if kv.Version != 1 || kv.CreateRevision != kv.ModRevision {
			t.Errorf("%s: version %d create %d mod %d: applied more than once", k, kv.Version,
				kv.CreateRevision, kv.ModRevision)
		}
		if want, ok := l.values[k]; !ok || string(kv.Value) != want {
			t.Errorf("%s = %q, never written with that value (want %q)", k, kv.Value, want)
		}
		if rev, ok := l.acks[k]; ok && kv.ModRevision != rev {
			t.Errorf("%s: mod revision %d, but the txn was acknowledged at revision %d", k,
				kv.ModRevision, rev)
		}
		w := strings.Split(strings.TrimPrefix(k, l.prefix+"/ops/"), "/")[0]
		perClient[w]++
	}
	lost := 0
	for k, rev := range l.acks {
		if !present[k] {
			if lost++; lost <= 10 {
				t.Errorf("acknowledged txn %s (revision %d) was lost", k, rev)
			}
		}
	}
	if lost > 10 {
		t.Errorf("%d acknowledged txns lost in all", lost)
	}
	// Every application of a client's txn bumped its counter once: the counter's version
	// counts applications, the op keys count distinct txns.
	for w := 0; w < l.clients; w++ {
		ctr := mustGet(t, cli, fmt.Sprintf("%s/ctr/%d", l.prefix, w))
		var applications int64
		if len(ctr.Kvs) == 1 {
			applications = ctr.Kvs[0].Version
		}
		if n := perClient[fmt.Sprint(w)]; applications != n {
			t.Errorf("client %d: its txns were applied %d times, but %d distinct txns are present",
				w, applications, n)
		}
	}
	t.Logf("%d txns acknowledged, %d outcome unknown, %d applied", len(l.acks), l.unknown,
		len(ops.Kvs))
}

// issue 2: no acknowledged write lost and none applied twice across kill -9 of raftd, under
// non-idempotent transactions. raftd restarts while the frontend holds pending proposals
// (never re-sent) and frames wait in the proposals ring; each completes once or its client
// gets an outcome-unknown error that clientv3 does not retry.
func TestKilledRaftdAppliesEveryAcknowledgedTxnExactlyOnce(t *testing.T) {
	if harness.TargetKind() != harness.Rusd {
		t.Skip("component kills need rusd (the target is etcd)")
	}
	s := harness.Start(t, harness.Options{})
	load := startTxnLoad(t, s, 16, "once")
	defer load.stop()
	time.Sleep(500 * time.Millisecond)
	for round := 0; round < 5; round++ {
		before := load.nAcked.Load()
		killed := time.Now()
		old := s.KillComponent(harness.Raftd)
		if _, err := s.WaitComponentReplaced(harness.Raftd, old, 2*time.Second); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if took, err := waitServing(s, killed, 2*time.Second); err != nil {
			t.Fatalf("round %d: not serving %v after SIGKILL of raftd: %v", round, took, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for load.nAcked.Load() <= before+50 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if load.nAcked.Load() <= before+50 {
			t.Errorf("round %d: clients made %d txns in 5 s after raftd's restart", round,
				load.nAcked.Load()-before)
		}
	}
	load.stop()
	load.verify(t, s.Client())
	s.Stop(15 * time.Second)
}

// A txn whose frame sat in the proposals ring past its deadline (raftd frozen and then
// killed; the supervisor frozen too, so that it restarts raftd only after the deadline) is
// answered "etcdserver: request timed out" (Unavailable: outcome unknown, as etcd's
// ErrTimeout; clientv3 does not retry a mutation on it) and the restarted raftd never
// proposes it. Before, it was proposed seconds after its client had been told it timed out.
func TestTxnStuckInTheRingPastItsDeadlineIsNeverApplied(t *testing.T) {
	if harness.TargetKind() != harness.Rusd {
		t.Skip("freezing components needs rusd (the target is etcd)")
	}
	// The request timeout is 5 s + 2 x the election timeout.
	s := harness.Start(t, harness.Options{ExtraArgs: []string{"--heartbeat-interval=20",
		"--election-timeout=200"}})
	cli := s.Client()
	if _, err := cli.Put(context.Background(), "stuck/before", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	sup := s.Pid()
	raftd := s.ComponentPids()[harness.Raftd]
	if raftd == 0 {
		t.Fatalf("no raftd: %v", s.ComponentPids())
	}
	if err := syscall.Kill(sup, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP supervisor: %v", err)
	}
	resumed := false
	resumeSupervisor := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(sup, syscall.SIGCONT)
		}
	}
	defer resumeSupervisor()
	if err := syscall.Kill(raftd, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP raftd: %v", err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	_, err := cli.Txn(ctx).Then(clientv3.OpPut("stuck/txn", "v")).Commit()
	cancel()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("txn succeeded with raftd frozen")
	}
	if errCode(err) != codes.Unavailable || rpctypes.ErrorDesc(err) != "etcdserver: request timed out" {
		t.Errorf("txn with raftd frozen: %v (code %v), want Unavailable etcdserver: request timed out",
			err, errCode(err))
	}
	if took < 5300*time.Millisecond || took > 6500*time.Millisecond {
		t.Errorf("txn answered after %v, want the request timeout (5.4 s): not retried", took)
	}
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(raftd, syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL raftd: %v", err)
	}
	resumeSupervisor()
	if _, err := s.WaitComponentReplaced(harness.Raftd, raftd, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if took, err := waitServing(s, time.Now(), 3*time.Second); err != nil {
		t.Fatalf("not serving %v after raftd's restart: %v", took, err)
	}
	time.Sleep(300 * time.Millisecond) // anything proposed late would be applied by now
	if r := mustGet(t, cli, "stuck/txn"); len(r.Kvs) != 0 {
		t.Errorf("the txn answered 'request timed out' was applied later (mod revision %d)",
			r.Kvs[0].ModRevision)
	}
	if r := mustGet(t, cli, "stuck/before"); len(r.Kvs) != 1 {
		t.Errorf("stuck/before lost")
	}
	s.Stop(15 * time.Second)
}
