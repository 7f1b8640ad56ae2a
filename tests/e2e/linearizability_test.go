package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"rusd/tests/e2e/harness"
	lin "rusd/tests/e2e/linearizability"
)

// The workload of the linearizability test: clients, keys, and how long an op may take
// before its outcome is declared unknown.
const (
	histClients   = 8
	histKeys      = 4
	histOpTimeout = 2 * time.Second // E2E_LIN_OP_TIMEOUT overrides (shorter: more unknowns)
)

// histWorkload is histClients clientv3 clients, each on one member (client i on node i mod
// 3: requests are forwarded by followers too), doing put, linearizable get and
// compare-and-set (a Txn comparing the value, or the mod revision last read, or absence)
// on histKeys keys, recording every op in a history. Every written value is unique, so a
// value names the write that wrote it (and a mod revision read with it names that value).
type histWorkload struct {
	rec       *lin.Recorder
	cancel    context.CancelFunc
	opTimeout time.Duration
	wg        sync.WaitGroup

	mu sync.Mutex
	// revOf: value -> mod revision, from every response that shows both; a value seen with
	// two mod revisions was applied twice, two values with one revision on one key mean a
	// revision was reused.
	revOf     map[string]int64
	valueAt   map[string]string // key + "@" + revision -> value
	revErrors []string
}

func startHistWorkload(t *testing.T, c *harness.Cluster, seed int64) *histWorkload {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &histWorkload{rec: lin.NewRecorder(), cancel: cancel, revOf: map[string]int64{},
		valueAt: map[string]string{}, opTimeout: histOpTimeout}
	if d, err := time.ParseDuration(os.Getenv("E2E_LIN_OP_TIMEOUT")); err == nil {
		w.opTimeout = d
	}
	for i := 0; i < histClients; i++ {
		node := c.Nodes[i%len(c.Nodes)]
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{node.Endpoint},
			DialTimeout: 5 * time.Second,
			DialOptions: harness.ClientDialOptions(),
			Logger:      zap.NewNop(),
		})
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		w.wg.Add(1)
		go func(id int, cli *clientv3.Client, via string) {
			defer w.wg.Done()
			defer cli.Close()
			w.client(ctx, id, cli, via, rand.New(rand.NewSource(seed+int64(id))))
		}(i, cli, node.Name())
	}
	return w
}

// histSeen is what a client last read of a key: the compare of its next CAS.
type histSeen struct {
	found bool
	value string
	rev   int64
}

func (w *histWorkload) noteRev(key, value string, rev int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r, ok := w.revOf[value]; ok && r != rev {
		w.revErrors = append(w.revErrors, fmt.Sprintf(
			"value %q of %s seen at mod revision %d and %d (applied twice?)", value, key, r, rev))
	}
	w.revOf[value] = rev
	at := fmt.Sprintf("%s@%d", key, rev)
	if v, ok := w.valueAt[at]; ok && v != value {
		w.revErrors = append(w.revErrors, fmt.Sprintf(
			"%s at mod revision %d holds %q and %q", key, rev, v, value))
	}
	w.valueAt[at] = value
}

func (w *histWorkload) client(ctx context.Context, id int, cli *clientv3.Client, via string, rng *rand.Rand) {
	last := map[string]histSeen{}
	for seq := 0; ctx.Err() == nil; seq++ {
		key := fmt.Sprintf("lin/k%d", rng.Intn(histKeys))
		value := fmt.Sprintf("c%d-%d", id, seq)
		op := lin.Op{Client: id, Key: key, Note: via}
		opCtx, cancel := context.WithTimeout(ctx, w.opTimeout)
		var err error
		switch r := rng.Intn(10); {
		case r < 3:
			op.Kind, op.Value = lin.Put, value
			op.Call = w.rec.Now()
			var resp *clientv3.PutResponse
			resp, err = cli.Put(opCtx, key, value)
			op.Return = w.rec.Now()
			if err == nil {
				w.noteRev(key, value, resp.Header.Revision)
			}
		case r < 7:
			op.Kind = lin.Get
			op.Call = w.rec.Now()
			var resp *clientv3.GetResponse
			resp, err = cli.Get(opCtx, key)
			op.Return = w.rec.Now()
			if err == nil {
				s := histSeen{}
				if len(resp.Kvs) > 0 {
					kv := resp.Kvs[0]
					s = histSeen{true, string(kv.Value), kv.ModRevision}
					w.noteRev(key, s.value, s.rev)
				}
				op.Found, op.Read = s.found, s.value
				last[key] = s
			}
		default:
			// Compare-and-set against what this client last read of the key: by value or by
			// mod revision (the same thing here: values are unique), or by absence.
			s := last[key]
			op.Kind, op.Value = lin.CAS, value
			var cmp clientv3.Cmp
			switch {
			case !s.found:
				op.ExpectAbsent = true
				cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
			case rng.Intn(2) == 0:
				op.Expect = s.value
				cmp = clientv3.Compare(clientv3.Value(key), "=", s.value)
			default:
				op.Expect = s.value
				cmp = clientv3.Compare(clientv3.ModRevision(key), "=", s.rev)
			}
			op.Call = w.rec.Now()
			var resp *clientv3.TxnResponse
			resp, err = cli.Txn(opCtx).If(cmp).Then(clientv3.OpPut(key, value)).Commit()
			op.Return = w.rec.Now()
			if err == nil {
				op.Swapped = resp.Succeeded
				if resp.Succeeded {
					w.noteRev(key, value, resp.Header.Revision)
					last[key] = histSeen{true, value, resp.Header.Revision}
				}
			}
		}
		cancel()
		if err != nil {
			// Timeout, Unavailable, no leader, a cut connection: the request may or may not
			// have been applied. (A get without an answer says nothing and is dropped.)
			op.Unknown, op.Return = true, 0
			op.Note = via + ": " + err.Error()
			if ctx.Err() != nil && op.Kind == lin.Get {
				return
			}
		}
		w.rec.Add(op)
		if err != nil && ctx.Err() == nil {
			time.Sleep(time.Duration(20+rng.Intn(80)) * time.Millisecond)
		}
	}
}

func (w *histWorkload) stop() []lin.Op {
	w.cancel()
	w.wg.Wait()
	return w.rec.Ops()
}

// histFaults is the fault schedule, run by the test goroutine while the clients work.
type histFaults struct {
	t          *testing.T
	c          *harness.Cluster
	partitions bool // nodes in network namespaces (StartNetnsCluster): partitions possible
	// rounds of the whole schedule (E2E_LIN_ROUNDS, default 1: CI's time budget)
	rounds int
	// harsh adds faults that take the quorum away (E2E_LIN_HARSH=1; not in CI's schedule)
	harsh bool
}

func (f *histFaults) leader() (*harness.Server, int) {
	l := f.c.WaitLeader(10 * time.Second)
	for i, n := range f.c.Nodes {
		if n == l {
			return l, i
		}
	}
	return l, -1
}

func (f *histFaults) run() []string {
	var log []string
	note := func(format string, args ...any) {
		s := fmt.Sprintf(time.Now().Format("15:04:05.000")+" "+format, args...)
		log = append(log, s)
		f.t.Log(s)
	}
	time.Sleep(1500 * time.Millisecond)
	for round := 0; round < f.rounds; round++ {
		f.round(note)
		if f.harsh {
			f.harshRound(note)
		}
	}
	return log
}

// harshRound takes the quorum away and gives it back: the leader and a follower SIGKILLed
// together and restarted together; a follower's frontend SIGKILLed; with a network, the
// leader cut off and the new leader of the majority SIGKILLed (no quorum anywhere), then
// the old leader healed (its stale log must give way) and the killed node restarted.
func (f *histFaults) harshRound(note func(string, ...any)) {
	l, li := f.leader()
	other := f.c.Nodes[(li+1)%len(f.c.Nodes)]
	note("SIGKILL of the leader %s and of %s: no quorum", l.Name(), other.Name())
	l.Kill()
	other.Kill()
	time.Sleep(time.Second)
	f.c.RestartNodes(l, other)
	note("%s and %s restarted and serving", l.Name(), other.Name())
	time.Sleep(1500 * time.Millisecond)

	if f.c.Nodes[0].Kind == harness.Rusd {
		_, li = f.leader()
		fl := f.c.Nodes[(li+2)%len(f.c.Nodes)]
		note("SIGKILL of %s on the follower %s", harness.Frontend, fl.Name())
		old := fl.KillComponent(harness.Frontend)
		if _, err := fl.WaitComponentReplaced(harness.Frontend, old, 10*time.Second); err != nil {
			f.t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
	}

	if f.c.Nodes[0].Kind == harness.Rusd {
		// Components frozen while the rest of their node runs: the leader's raftd (it must
		// not confirm a read or a write on resuming in an old term) and a follower's stored
		// (its node's reads wait for it to apply up to the read index).
		l, li = f.leader()
		fl := f.c.Nodes[(li+1)%len(f.c.Nodes)]
		for _, p := range []struct {
			node *harness.Server
			comp string
		}{{l, harness.Raftd}, {fl, harness.Stored}} {
			pid := p.node.ComponentPids()[p.comp]
			note("SIGSTOP of %s on %s", p.comp, p.node.Name())
			_ = syscall.Kill(pid, syscall.SIGSTOP)
			time.Sleep(2 * clusterElectionTimeout)
			_ = syscall.Kill(pid, syscall.SIGCONT)
			note("SIGCONT of %s on %s", p.comp, p.node.Name())
			time.Sleep(1500 * time.Millisecond)
		}
	}

	if f.partitions {
		l, li = f.leader()
		note("partition: leader %s cut off from its peers", l.Name())
		f.c.Partition(f.c.Nodes[li])
		// Wait for the majority to elect another leader, then kill it.
		var nl *harness.Server
		deadline := time.Now().Add(10 * time.Second)
		for nl == nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			for _, n := range f.c.Nodes {
				if n == l {
					continue
				}
				if m, ld, _, err := n.MemberStatus(500 * time.Millisecond); err == nil && ld != 0 && ld == m {
					nl = n
				}
			}
		}
		if nl == nil {
			f.t.Fatalf("the majority elected no leader within 10 s of the partition")
		}
		time.Sleep(500 * time.Millisecond)
		note("SIGKILL of the majority's new leader %s: no quorum anywhere", nl.Name())
		nl.Kill()
		time.Sleep(1500 * time.Millisecond)
		f.c.Heal()
		note("partition of %s healed", l.Name())
		time.Sleep(time.Second)
		nl.Restart()
		note("%s restarted and serving", nl.Name())
		time.Sleep(1500 * time.Millisecond)
	}
}

// round is one pass of every fault, about 11 s (16 s with a network).
func (f *histFaults) round(note func(string, ...any)) {
	l, _ := f.leader()
	note("SIGKILL of the leader's node %s", l.Name())
	l.Kill()
	time.Sleep(time.Second)
	l.Restart()
	note("%s restarted and serving", l.Name())
	time.Sleep(1500 * time.Millisecond)

	// A paused leader (SIGSTOP of the whole node for twice the election timeout) is
	// replaced; when it resumes it must not answer from its stale state.
	l, _ = f.leader()
	note("SIGSTOP of the leader's node %s", l.Name())
	if err := l.Pause(); err != nil {
		f.t.Fatal(err)
	}
	time.Sleep(2 * clusterElectionTimeout)
	if err := l.Resume(); err != nil {
		f.t.Fatal(err)
	}
	note("SIGCONT of %s", l.Name())
	time.Sleep(1500 * time.Millisecond)

	if f.c.Nodes[0].Kind == harness.Rusd {
		l, _ = f.leader()
		note("SIGKILL of %s on the leader %s", harness.Raftd, l.Name())
		old := l.KillComponent(harness.Raftd)
		if _, err := l.WaitComponentReplaced(harness.Raftd, old, 10*time.Second); err != nil {
			f.t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
	}

	if f.c.Nodes[0].Kind == harness.Rusd {
		// The store under the leader: raftd must replay what stored had not yet made
		// durable, exactly once.
		l, _ = f.leader()
		note("SIGKILL of %s on the leader %s", harness.Stored, l.Name())
		old := l.KillComponent(harness.Stored)
		if _, err := l.WaitComponentReplaced(harness.Stored, old, 10*time.Second); err != nil {
			f.t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
	}

	if f.partitions {
		l, i := f.leader()
		note("partition: leader %s (host %d) cut off from its peers", l.Name(), i)
		f.c.Partition(f.c.Nodes[i])
		time.Sleep(3 * time.Second)
		// The partition is real: the majority has moved on to another leader.
		cut, _, _, _ := l.MemberStatus(time.Second)
		for j, n := range f.c.Nodes {
			if j == i {
				continue
			}
			if _, ld, _, err := n.MemberStatus(time.Second); err != nil || ld == 0 || ld == cut {
				f.t.Errorf("%s 3 s after its leader %s was cut off: leader %x, err %v", n.Name(),
					l.Name(), ld, err)
			}
		}
		f.c.Heal()
		note("partition healed")
		time.Sleep(1500 * time.Millisecond)
		// And a follower, so requests through a minority node are exercised too.
		_, li := f.leader()
		j := (li + 1) % len(f.c.Nodes)
		note("partition: follower %s cut off from its peers", f.c.Nodes[j].Name())
		f.c.Partition(f.c.Nodes[j])
		time.Sleep(2 * time.Second)
		f.c.Heal()
		note("partition healed")
		time.Sleep(1500 * time.Millisecond)
	}
}

// A concurrent put/get/CAS workload on a 3-node cluster, through every member, while the
// leader's node is SIGKILLed and restarted, the leader's raftd is SIGKILLed (rusd), and
// (as root, nodes in network namespaces) the leader and then a follower are partitioned
// away and healed: the history must be linearizable.
func TestLinearizableUnderFaults(t *testing.T) {
	var c *harness.Cluster
	why := harness.NetnsAvailable()
	if os.Getenv("E2E_LIN_LOOPBACK") == "1" {
		why = "E2E_LIN_LOOPBACK=1"
	}
	partitions := why == ""
	if partitions {
		c = harness.StartNetnsCluster(t, 3, harness.ClusterOptions{})
	} else {
		t.Logf("nodes on loopback, no partition: %s", why)
		c = harness.StartCluster(t, 3, harness.ClusterOptions{})
	}
	c.WaitLeader(10 * time.Second)
	seed := time.Now().UnixNano()
	if v := os.Getenv("E2E_SEED"); v != "" {
		seed, _ = strconv.ParseInt(v, 10, 64)
	}
	rounds := 1
	if v := os.Getenv("E2E_LIN_ROUNDS"); v != "" {
		rounds, _ = strconv.Atoi(v)
	}
	t.Logf("workload seed %d", seed)

	w := startHistWorkload(t, c, seed)
	f := &histFaults{t: t, c: c, partitions: partitions, rounds: rounds,
		harsh: os.Getenv("E2E_LIN_HARSH") == "1"}
	faults := f.run()
	ops := w.stop()

	stats := map[string]int{}
	for _, o := range ops {
		stats[string(o.Kind)]++
		if o.Unknown {
			stats["unknown "+string(o.Kind)]++
		}
		if o.Kind == lin.CAS && o.Swapped {
			stats["cas swapped"]++
		}
	}
	t.Logf("history: %d ops %v", len(ops), stats)
	if stats["put"]+stats["cas"]-stats["unknown put"]-stats["unknown cas"] < 100 {
		t.Fatalf("too few completed writes to judge anything: %v", stats)
	}

	start := time.Now()
	res := lin.Check(ops, lin.Options{Timeout: time.Duration(rounds) * 30 * time.Second,
		MaxSteps: rounds * 20_000_000})
	t.Logf("checker: %v over %d keys, %d ops, %d steps, %v", res.Verdict, res.Keys, res.Ops,
		res.Steps, time.Since(start).Round(time.Millisecond))
	if res.Verdict != lin.Linearizable {
		path := saveHistory(t, ops)
		t.Fatalf("the history is %v (key %s); faults:\n  %s\n%s\nfull history: %s\n%s",
			res.Verdict, res.Key, strings.Join(faults, "\n  "), res.Explanation, path,
			historyWindow(ops, res))
	}
	w.mu.Lock()
	revErrors := w.revErrors
	w.mu.Unlock()
	if len(revErrors) > 0 {
		path := saveHistory(t, ops)
		t.Fatalf("mod revisions inconsistent (history %s):\n%s", path,
			strings.Join(revErrors, "\n"))
	}

	// The same real history with one read made stale must be rejected: the check above
	// was not vacuous.
	bad, key, what := injectStaleRead(ops)
	if bad == nil {
		t.Logf("no read in this history to make stale")
		return
	}
	var sub []lin.Op // only the corrupted key: the others were checked above
	for _, o := range bad {
		if o.Key == key {
			sub = append(sub, o)
		}
	}
	r := lin.Check(sub, lin.Options{Timeout: time.Duration(rounds) * 30 * time.Second,
		MaxSteps: rounds * 20_000_000})
	if r.Verdict != lin.NotLinearizable {
		t.Fatalf("the history with a stale read injected (%s) is judged %v: %s", what, r.Verdict,
			r.Explanation)
	}
	t.Logf("with a stale read injected (%s) the checker rejects it", what)
}

// injectStaleRead returns a copy of ops in which the earliest get that can be made stale
// returns the value of a write that a later write (completed before the get began)
// overwrote.
func injectStaleRead(ops []lin.Op) (bad []lin.Op, key, what string) {
	for g := range ops {
		get := ops[g]
		if get.Kind != lin.Get || get.Unknown {
			continue
		}
		completedWrite := func(o lin.Op) bool {
			return o.Key == get.Key && !o.Unknown &&
				(o.Kind == lin.Put || (o.Kind == lin.CAS && o.Swapped)) && o.Return < get.Call
		}
		for i, w1 := range ops {
			if !completedWrite(w1) || (get.Found && w1.Value == get.Read) {
				continue
			}
			for _, w2 := range ops {
				if completedWrite(w2) && w2.Call > w1.Return {
					out := append([]lin.Op(nil), ops...)
					out[g].Found, out[g].Read = true, w1.Value
					return out, get.Key, fmt.Sprintf("%v now reads %q, written by op %d and "+
						"overwritten by %v", get, w1.Value, i, w2)
				}
			}
		}
	}
	return nil, "", ""
}

// saveHistory writes the history where it outlives the test (its temp dirs do not).
func saveHistory(t *testing.T, ops []lin.Op) string {
	dir := os.Getenv("E2E_ARTIFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("rusd-linearizability-%s.jsonl",
		time.Now().UTC().Format("20060102T150405")))
	if err := lin.Save(path, ops); err != nil {
		t.Logf("saving the history: %v", err)
		return "(not saved)"
	}
	return path
}

// historyWindow renders the failing key's ops in the second before and after the op that
// cannot be linearized.
func historyWindow(ops []lin.Op, res lin.Result) string {
	if res.Blocked == nil {
		return ""
	}
	from, to := res.Blocked.Call-int64(time.Second), res.Blocked.Return+int64(time.Second)
	var lines []string
	for _, o := range ops {
		end := o.Return
		if o.Unknown {
			end = o.Call
		}
		if o.Key == res.Key && end >= from && o.Call <= to {
			lines = append(lines, "  "+o.String())
		}
	}
	if len(lines) > 300 {
		lines = append(lines[:300], fmt.Sprintf("  ... %d more", len(lines)-300))
	}
	return fmt.Sprintf("history of %s around it:\n%s", res.Key, strings.Join(lines, "\n"))
}
