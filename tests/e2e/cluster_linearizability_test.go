package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"rusd/tests/e2e/harness"
	"rusd/tests/e2e/lincheck"
)

// linWorkload runs clients doing random put / linearizable get / compare-and-set (a Txn)
// on a few keys, each client on its own node, recording a history for lincheck.
type linWorkload struct {
	start time.Time
	mu    sync.Mutex
	ops   []lincheck.Op
	n     [3]int // acknowledged puts, gets, swaps
}

func (w *linWorkload) now() int64 { return int64(time.Since(w.start)) }

func (w *linWorkload) record(o lincheck.Op) {
	w.mu.Lock()
	w.ops = append(w.ops, o)
	if !o.Unknown {
		w.n[o.Kind]++
	}
	w.mu.Unlock()
}

func (w *linWorkload) client(ctx context.Context, id int, cli *clientv3.Client, keys []string, wg *sync.WaitGroup) {
	defer wg.Done()
	rng := rand.New(rand.NewSource(int64(id) + time.Now().UnixNano()))
	last := map[string]string{}
	for seq := 0; ctx.Err() == nil; seq++ {
		key := keys[rng.Intn(len(keys))]
		o := lincheck.Op{Client: id, Key: key}
		opCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		o.Call = w.now()
		switch rng.Intn(3) {
		case 0:
			o.Kind, o.Value = lincheck.Put, fmt.Sprintf("c%d-%d", id, seq)
			_, err := cli.Put(opCtx, key, o.Value)
			o.Unknown = err != nil // the write may or may not have happened
		case 1:
			o.Kind = lincheck.Get
			resp, err := cli.Get(opCtx, key)
			if err != nil {
				cancel()
				continue // an unanswered read constrains nothing
			}
			if len(resp.Kvs) > 0 {
				o.Value = string(resp.Kvs[0].Value)
			}
			last[key] = o.Value
		default:
			o.Kind, o.Old, o.Value = lincheck.CAS, last[key], fmt.Sprintf("c%d-%d", id, seq)
			cmp := clientv3.Compare(clientv3.Value(key), "=", o.Old)
			if o.Old == "" {
				cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
			}
			resp, err := cli.Txn(opCtx).If(cmp).Then(clientv3.OpPut(key, o.Value)).Commit()
			if err != nil {
				o.Unknown = true
			} else {
				o.OK = resp.Succeeded
			}
		}
		cancel()
		o.Return = w.now()
		if o.Unknown {
			o.Return = 0
		}
		w.record(o)
	}
}

// Clients on every node run the workload while the leader's whole node is SIGKILLed and
// restarted, and the leader's raftd alone is killed; the history must be linearizable.
func TestClusterLinearizableUnderLeaderKills(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	c.WaitLeader(5 * time.Second)
	w := &linWorkload{start: time.Now()}
	keys := []string{"lin/a", "lin/b", "lin/c"}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go w.client(ctx, i, c.Client(c.Nodes[i%3]), keys, &wg)
	}
	time.Sleep(1500 * time.Millisecond)
	leader := c.WaitLeader(5 * time.Second)
	leader.Kill()
	time.Sleep(2500 * time.Millisecond)
	leader.Launch()
	time.Sleep(2 * time.Second)
	if rusd := c.Nodes[0].Kind == harness.Rusd; rusd {
		l := c.WaitLeader(10 * time.Second)
		l.KillComponent(harness.Raftd)
		time.Sleep(2500 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("%d operations: %d puts, %d gets, %d compare-and-sets acknowledged", len(w.ops), w.n[0], w.n[1], w.n[2])
	if w.n[0] == 0 || w.n[1] == 0 || w.n[2] == 0 {
		t.Fatal("the workload made no progress")
	}
	start := time.Now()
	r := lincheck.Check(w.ops)
	t.Logf("checked in %v", time.Since(start).Round(time.Millisecond))
	if !r.OK {
		t.Fatalf("history of %s is not linearizable:\n%s", r.BadKey, r.Details)
	}
	// The checker is not vacuous: the same history with one read made to see a value that
	// was written only after the read returned (a read from the future) is rejected.
	broken := append([]lincheck.Op(nil), w.ops...)
	for i := range broken {
		g := &broken[i]
		if g.Kind != lincheck.Get || g.Unknown {
			continue
		}
		for _, p := range broken {
			if p.Key == g.Key && p.Kind == lincheck.Put && p.Call > g.Return {
				g.Value = p.Value
				if lincheck.Check(broken).OK {
					t.Fatalf("a read of a value from the future was accepted: %v", g)
				}
				t.Logf("a read made to see a future write is rejected, as it must be")
				return
			}
		}
	}
	t.Fatal("found no read to break")
}

// The same workload on nodes in separate network namespaces while the leader, then a
// follower, is cut off from its peers (clients still reach every node) and healed.
func TestClusterNetnsLinearizableUnderPartitions(t *testing.T) {
	c := harness.StartNetnsCluster(t, 3, harness.ClusterOptions{})
	c.WaitLeader(5 * time.Second)
	w := &linWorkload{start: time.Now()}
	keys := []string{"linp/a", "linp/b", "linp/c"}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go w.client(ctx, i, c.Client(c.Nodes[i%3]), keys, &wg)
	}
	time.Sleep(time.Second)
	leader := c.WaitLeader(5 * time.Second)
	c.Partition(leader)
	time.Sleep(3 * time.Second)
	c.Heal()
	time.Sleep(1500 * time.Millisecond)
	l := c.WaitLeader(10 * time.Second)
	for _, n := range c.Nodes {
		if n != l {
			c.Partition(n)
			break
		}
	}
	time.Sleep(3 * time.Second)
	c.Heal()
	time.Sleep(1500 * time.Millisecond)
	cancel()
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("%d operations: %d puts, %d gets, %d compare-and-sets acknowledged", len(w.ops), w.n[0], w.n[1], w.n[2])
	if w.n[0] == 0 || w.n[1] == 0 || w.n[2] == 0 {
		t.Fatal("the workload made no progress")
	}
	if r := lincheck.Check(w.ops); !r.OK {
		t.Fatalf("history of %s is not linearizable:\n%s", r.BadKey, r.Details)
	}
}
