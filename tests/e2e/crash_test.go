package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"rusd/tests/e2e/harness"
)

// writeLoad is N clientv3 clients, each on its own connection, writing unique keys in a
// loop (each key written once) and remembering which writes were acknowledged, with which
// revision. A client never repeats a write whose outcome it does not know.
type writeLoad struct {
	prefix  string
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	acks    map[string]int64  // key -> header revision the write returned
	values  map[string]string // key -> value written (acked or not)
	unknown int               // writes whose outcome is unknown (allowed errors)
	bad     []string          // errors of kinds a crash must not produce
	nAcked  atomic.Int64
}

// writeFunc is client w's write of val under key; it returns the response header's revision.
type writeFunc func(ctx context.Context, cli *clientv3.Client, w int, key, val string) (int64, error)

// startWriteLoad runs `clients` writers; writer w's seq-th key is fmt.Sprintf(keyFormat,
// prefix, w, seq), each write bounded by opTimeout.
func startWriteLoad(t *testing.T, s *harness.Server, clients int, prefix, keyFormat string,
	opTimeout time.Duration, write writeFunc) *writeLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &writeLoad{prefix: prefix, cancel: cancel, acks: map[string]int64{},
		values: map[string]string{}}
	for w := 0; w < clients; w++ {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{s.Endpoint},
			DialTimeout: 5 * time.Second,
			DialOptions: harness.ClientDialOptions(),
			Logger:      zap.NewNop(),
		})
		if err != nil {
			t.Fatalf("client %d: %v", w, err)
		}
		l.wg.Add(1)
		go func(w int, cli *clientv3.Client) {
			defer l.wg.Done()
			defer cli.Close()
			for seq := 0; ctx.Err() == nil; seq++ {
				key := fmt.Sprintf(keyFormat, prefix, w, seq)
				val := fmt.Sprintf("%d:%d", w, seq)
				l.mu.Lock()
				l.values[key] = val
				l.mu.Unlock()
				opCtx, opCancel := context.WithTimeout(ctx, opTimeout)
				rev, err := write(opCtx, cli, w, key, val)
				opCancel()
				l.mu.Lock()
				switch {
				case err == nil:
					l.acks[key] = rev
					l.nAcked.Add(1)
				case ctx.Err() != nil:
					l.unknown++ // stopped mid-write
				case outcomeUnknownError(err):
					l.unknown++
				default:
					l.bad = append(l.bad, fmt.Sprintf("write %s: %v (code %v)", key, err, errCode(err)))
				}
				l.mu.Unlock()
				if err != nil && ctx.Err() == nil {
					time.Sleep(20 * time.Millisecond) // do not spin while a component is down
				}
			}
		}(w, cli)
	}
	return l
}

func (l *writeLoad) acked() int64 { return l.nAcked.Load() }

func (l *writeLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// putLoad: a writeLoad of plain Puts of keys <prefix>/w<w>/<seq>.
type putLoad struct{ *writeLoad }

func startPutLoad(t *testing.T, s *harness.Server, clients int, prefix string) *putLoad {
	t.Helper()
	return &putLoad{startWriteLoad(t, s, clients, prefix, "%s/w%d/%07d", 3*time.Second,
		func(ctx context.Context, cli *clientv3.Client, _ int, key, val string) (int64, error) {
			r, err := cli.Put(ctx, key, val)
			if err != nil {
				return 0, err
			}
			return r.Header.Revision, nil
		})}
}

func errCode(err error) codes.Code {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code()
	}
	return status.Code(err)
}

// outcomeUnknownError: the errors a client may see while a component is down, after which
// the put may or may not have been applied.
func outcomeUnknownError(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch errCode(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// verify checks that nothing acknowledged was lost and nothing was applied twice.
func (l *putLoad) verify(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bad {
		t.Errorf("error of a kind that is not 'outcome unknown': %s", b)
		if len(l.bad) > 10 {
			t.Errorf("... %d such errors in all", len(l.bad))
			break
		}
	}
	r := mustGet(t, cli, l.prefix+"/", clientv3.WithPrefix())
	seenRev := map[int64]string{}
	present := map[string]bool{}
	for _, kv := range r.Kvs {
		k := string(kv.Key)
		present[k] = true
		if kv.Version != 1 || kv.CreateRevision != kv.ModRevision {
			t.Errorf("%s: version %d create %d mod %d: applied more than once", k, kv.Version,
				kv.CreateRevision, kv.ModRevision)
		}
		if other, dup := seenRev[kv.ModRevision]; dup {
			t.Errorf("%s and %s share mod revision %d", k, other, kv.ModRevision)
		}
		seenRev[kv.ModRevision] = k
		if want, ok := l.values[k]; !ok || string(kv.Value) != want {
			t.Errorf("%s = %q, never written with that value (want %q)", k, kv.Value, want)
		}
		if ackRev, ok := l.acks[k]; ok && kv.ModRevision != ackRev {
			t.Errorf("%s: mod revision %d, but the put was acknowledged with revision %d", k,
				kv.ModRevision, ackRev)
		}
	}
	lost := 0
	for k, rev := range l.acks {
		if !present[k] {
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged put %s (revision %d) is missing", k, rev)
			}
		}
	}
	if lost > 10 {
		t.Errorf("%d acknowledged puts missing in all", lost)
	}
	t.Logf("%d puts acknowledged, %d outcome unknown, %d keys present", len(l.acks), l.unknown,
		len(r.Kvs))
}

// waitServing measures how long after since the node answers a linearizable get and a
// put on a fresh connection.
func waitServing(s *harness.Server, since time.Time, budget time.Duration) (time.Duration, error) {
	var last error
	for time.Since(since) < budget+3*time.Second {
		if last = s.Probe(500 * time.Millisecond); last == nil {
			if last = s.ProbeWrite("probe/after-kill", 500*time.Millisecond); last == nil {
				return time.Since(since), nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(since), last
}

func TestKilledComponentIsRestartedAndLosesNoAcknowledgedPut(t *testing.T) {
	if harness.TargetKind() != harness.Rusd {
		t.Skip("component kills need rusd (the target is etcd)")
	}
	s := harness.Start(t, harness.Options{})
	if pids := s.ComponentPids(); len(pids) != 3 {
		t.Fatalf("rusd pid %d children %v, want rusd-frontend, rusd-raftd, rusd-stored", s.Pid(),
			pids)
	}
	load := startPutLoad(t, s, 8, "crash")
	defer load.stop()
	time.Sleep(time.Second)
	const budget = 2 * time.Second
	for _, comp := range harness.Components {
		before := load.acked()
		killed := time.Now()
		old := s.KillComponent(comp)
		if _, err := s.WaitComponentReplaced(comp, old, budget); err != nil {
			t.Fatalf("after SIGKILL of %s (pid %d): %v", comp, old, err)
		}
		took, err := waitServing(s, killed, budget)
		if err != nil {
			t.Fatalf("after SIGKILL of %s: node does not serve after %v: %v", comp, took, err)
		}
		if took > budget {
			t.Errorf("after SIGKILL of %s: serving again after %v, want <= %v", comp, took, budget)
		}
		// The load's own clients must recover too, not only fresh connections.
		deadline := time.Now().Add(5 * time.Second)
		for load.acked() <= before+50 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if load.acked() <= before+50 {
			t.Errorf("after SIGKILL of %s: clients made %d puts in 5 s", comp, load.acked()-before)
		}
		t.Logf("%s (pid %d) killed: serving again after %v", comp, old, took.Round(time.Millisecond))
	}
	load.stop()
	load.verify(t, s.Client())
	if s.Exited() {
		t.Fatalf("supervisor exited")
	}
	s.Stop(15 * time.Second)
}

func TestKilledRaftdAndStoredTogetherLoseNoAcknowledgedPut(t *testing.T) {
	if harness.TargetKind() != harness.Rusd {
		t.Skip("component kills need rusd (the target is etcd)")
	}
	s := harness.Start(t, harness.Options{})
	load := startPutLoad(t, s, 8, "crash2")
	defer load.stop()
	time.Sleep(500 * time.Millisecond)
	for round := 0; round < 2; round++ {
		killed := time.Now()
		oldRaftd := s.KillComponent(harness.Raftd)
		oldStored := s.KillComponent(harness.Stored)
		for name, old := range map[string]int{harness.Raftd: oldRaftd, harness.Stored: oldStored} {
			if _, err := s.WaitComponentReplaced(name, old, 2*time.Second); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		took, err := waitServing(s, killed, 2*time.Second)
		if err != nil || took > 2*time.Second {
			t.Errorf("round %d: after SIGKILL of raftd and stored: serving after %v (%v), want <= 2s",
				round, took, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	load.stop()
	load.verify(t, s.Client())
	s.Stop(15 * time.Second)
}
