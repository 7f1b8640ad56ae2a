package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/status"

	"rusd/tests/e2e/harness"
)

// Maintenance.HashKV is etcd's check that members hold the same history: the same writes
// must give the same hash (and compact_revision) on the server under test as on etcd 3.4,
// before and after a compaction, and the same errors for a compacted or future revision.

type hashKVOutcome struct {
	Step            string
	Hash            uint32
	CompactRevision int64
	HeaderRevision  int64
	Code            string // gRPC code of an error, "" when the call succeeded
	Error           string
}

// hashKVAt calls the raw Maintenance client, so the gRPC status arrives as the server sent it.
func hashKVAt(t *testing.T, c *clientv3.Client, step string, rev int64) hashKVOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := pb.NewMaintenanceClient(c.ActiveConnection()).HashKV(ctx,
		&pb.HashKVRequest{Revision: rev})
	o := hashKVOutcome{Step: fmt.Sprintf("%s: hashkv rev %d", step, rev)}
	if err != nil {
		st, _ := status.FromError(err)
		o.Code = st.Code().String()
		o.Error = st.Message()
		return o
	}
	o.Hash = r.Hash
	o.CompactRevision = r.CompactRevision
	o.HeaderRevision = r.Header.Revision
	return o
}

// runHashKVSequence applies a fixed sequence of writes (puts, an ignore-value put, deletes
// of one key and of a range, a txn of several puts and a delete, empty values, binary
// keys, compactions) and asks HashKV at revisions around each step.
func runHashKVSequence(t *testing.T, s *harness.Server) []hashKVOutcome {
	c := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []hashKVOutcome
	check := func(step string, revs ...int64) {
		for _, rev := range revs {
			out = append(out, hashKVAt(t, c, step, rev))
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check("fresh", 0, 1, 2)
	for i, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}, {"c", ""}, {"d/1", "x"},
		{"d/2", "y"}, {"\x00bin\xff", "\xfe\x00"}} {
		_, err := c.Put(ctx, kv[0], kv[1])
		must(err)
		check(fmt.Sprintf("put %d", i), 0)
	}
	_, err := c.Put(ctx, "a", "", clientv3.WithIgnoreValue())
	must(err)
	_, err = c.Delete(ctx, "b")
	must(err)
	_, err = c.Delete(ctx, "nothing") // no revision
	must(err)
	check("deletes", 0, 3, 9)
	_, err = c.Txn(ctx).If(clientv3.Compare(clientv3.Value("a"), "=", "3")).
		Then(clientv3.OpPut("e", "5"), clientv3.OpPut("f", "6"), clientv3.OpDelete("c"),
			clientv3.OpPut("a", "7")).Commit()
	must(err)
	_, err = c.Txn(ctx).If(clientv3.Compare(clientv3.Value("a"), "=", "nope")).
		Then(clientv3.OpPut("never", "x")).Else(clientv3.OpPut("g", "8")).Commit()
	must(err)
	check("txns", 0, 10, 11)
	_, err = c.Delete(ctx, "d/", clientv3.WithPrefix())
	must(err)
	check("delete range", 0, 12)
	_, err = c.Compact(ctx, 6, clientv3.WithCompactPhysical())
	must(err)
	check("compact 6", 0, 5, 6, 7, 9, 12, 13, 100, -1)
	for _, kv := range [][2]string{{"a", "8"}, {"h", "9"}} {
		_, err := c.Put(ctx, kv[0], kv[1])
		must(err)
	}
	check("puts after compact", 0, 13, 14)
	_, err = c.Compact(ctx, 13, clientv3.WithCompactPhysical())
	must(err)
	check("compact 13", 0, 13, 14, 15)
	// Every key gone: etcd then counts all records its compaction kept.
	_, err = c.Delete(ctx, "", clientv3.WithFromKey())
	must(err)
	check("all deleted", 0, 14)
	_, err = c.Compact(ctx, 15, clientv3.WithCompactPhysical())
	must(err)
	check("compact at current", 0, 15, 16)
	return out
}

func TestHashKVMatchesEtcd(t *testing.T) {
	t.Parallel()
	want, refName := referenceOutcomes(t, "hashkv", func(etcd string) []hashKVOutcome {
		return runHashKVSequence(t, harness.Start(t, harness.Options{Bin: etcd}))
	})
	target := harness.Start(t, harness.Options{})
	got := runHashKVSequence(t, target)
	if len(got) != len(want) {
		t.Fatalf("%d outcomes, %s has %d: regenerate the golden file", len(got), refName, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s\n %s: %+v\n %s: %+v", want[i].Step, target.Kind, got[i], refName, want[i])
		}
	}
	// Sanity: the reference saw both errors and a compaction.
	codes := map[string]bool{}
	for _, o := range want {
		codes[o.Error] = true
	}
	for _, e := range []string{"etcdserver: mvcc: required revision has been compacted",
		"etcdserver: mvcc: required revision is a future revision"} {
		if !codes[e] {
			t.Errorf("the reference run never answered %q", e)
		}
	}

	// etcdctl endpoint hashkv prints the same hash (as etcd's table and json show it).
	final := got[len(got)-1]
	text := target.MustEtcdctl("", "endpoint", "hashkv")
	if wantText := fmt.Sprintf("%s, %d\n", target.Endpoint, final.Hash); text != wantText {
		t.Errorf("etcdctl endpoint hashkv: %q, want %q", text, wantText)
	}
	var js []struct {
		Endpoint string
		HashKV   struct {
			Header struct {
				Revision int64 `json:"revision"`
			} `json:"header"`
			Hash            uint32 `json:"hash"`
			CompactRevision int64  `json:"compact_revision"`
		}
	}
	out := target.MustEtcdctl("", "endpoint", "hashkv", "-w", "json")
	if err := json.Unmarshal([]byte(out), &js); err != nil || len(js) != 1 {
		t.Fatalf("etcdctl endpoint hashkv -w json: %q (%v)", out, err)
	}
	if js[0].HashKV.Hash != final.Hash || js[0].HashKV.CompactRevision != final.CompactRevision ||
		js[0].HashKV.Header.Revision != final.HeaderRevision || final.CompactRevision != 15 {
		t.Errorf("etcdctl endpoint hashkv -w json: %+v, want %+v (compacted at 15)", js[0], final)
	}
	if r := target.Etcdctl("", "endpoint", "hashkv", "--rev=1000"); r.Code == 0 ||
		!strings.Contains(r.Stderr, "required revision is a future revision") {
		t.Errorf("etcdctl endpoint hashkv --rev=1000: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

// Maintenance.Hash: rusd's value differs from etcd's (etcd hashes its bbolt file) but
// follows the state: stable without writes, changed by a write.
func TestHashFollowsTheState(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	c := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := pb.NewMaintenanceClient(c.ActiveConnection())
	mustPut(t, c, "hash/a", "1")
	h1, err := m.Hash(ctx, &pb.HashRequest{})
	if err != nil {
		t.Fatal(err)
	}
	h2, err := m.Hash(ctx, &pb.HashRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if h1.Hash != h2.Hash || h1.Header.Revision != h2.Header.Revision {
		t.Errorf("two hashes of one state differ: %+v / %+v", h1, h2)
	}
	mustPut(t, c, "hash/a", "2")
	h3, err := m.Hash(ctx, &pb.HashRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if h3.Hash == h1.Hash || h3.Header.Revision != h1.Header.Revision+1 {
		t.Errorf("hash after a put: %+v, before: %+v", h3, h1)
	}
}

// The members of one cluster agree on HashKV and on rusd's Hash once they have applied the
// same writes (what `etcdctl endpoint hashkv --cluster` checks), compaction included.
func TestHashKVAndHashAgreeAcrossMembers(t *testing.T) {
	t.Parallel()
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	cli := c.Client(c.Nodes[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		mustPut(t, cli, fmt.Sprintf("k/%d", i%7), fmt.Sprintf("v%d", i))
	}
	if _, err := cli.Delete(ctx, "k/3"); err != nil {
		t.Fatal(err)
	}
	r, err := cli.Compact(ctx, 15, clientv3.WithCompactPhysical())
	if err != nil {
		t.Fatal(err)
	}
	last := mustPut(t, cli, "k/last", "x").Header.Revision
	type hashes struct {
		kv, state uint32
		compact   int64
	}
	var first *hashes
	for _, n := range c.Nodes {
		m := pb.NewMaintenanceClient(c.Client(n).ActiveConnection())
		var h hashes
		// A follower may not have applied the last write yet: HashKV at `last` is refused as a
		// future revision until it has; Hash is compared once it reports that revision.
		deadline := time.Now().Add(10 * time.Second)
		for {
			kv, err := m.HashKV(ctx, &pb.HashKVRequest{Revision: last})
			st, serr := m.Hash(ctx, &pb.HashRequest{})
			if err == nil && serr == nil && st.Header.Revision == last {
				h = hashes{kv.Hash, st.Hash, kv.CompactRevision}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: HashKV(%d): %v, Hash: %v", n.Name(), last, err, serr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if h.compact != 15 {
			t.Errorf("%s: compact_revision %d, want 15 (compaction answered %+v)", n.Name(), h.compact, r.Header)
		}
		if first == nil {
			first = &h
		} else if h != *first {
			t.Errorf("%s: hashes %+v, first member %+v", n.Name(), h, *first)
		}
	}
	out := c.Nodes[0].MustEtcdctl("", "endpoint", "hashkv", "--cluster")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 {
		t.Errorf("etcdctl endpoint hashkv --cluster: %q, want 3 members", out)
	} else {
		for _, l := range lines {
			if !strings.HasSuffix(l, fmt.Sprintf(", %d", first.kv)) {
				t.Errorf("etcdctl endpoint hashkv --cluster line %q, want hash %d", l, first.kv)
			}
		}
	}
}

// runRandomHashKV applies a seeded random sequence of puts, deletes (one key or a prefix),
// txns of several writes and physical compactions on a small key space, asking HashKV at
// the current revision and at one near it after every step.
func runRandomHashKV(t *testing.T, s *harness.Server, seed int64, steps int) []hashKVOutcome {
	rng := rand.New(rand.NewSource(seed))
	c := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	key := func() string { return fmt.Sprintf("k%d", rng.Intn(8)) }
	var out []hashKVOutcome
	rev := int64(1)
	for i := 0; i < steps; i++ {
		var err error
		var desc string
		switch p := rng.Intn(20); {
		case p < 9:
			k, v := key(), fmt.Sprintf("v%d", rng.Intn(4))
			desc = "put " + k
			var r *clientv3.PutResponse
			if r, err = c.Put(ctx, k, v); err == nil {
				rev = r.Header.Revision
			}
		case p < 13:
			k := key()
			opts := []clientv3.OpOption{}
			if rng.Intn(3) == 0 {
				k, opts = k[:1], append(opts, clientv3.WithPrefix())
			}
			desc = "del " + k
			var r *clientv3.DeleteResponse
			if r, err = c.Delete(ctx, k, opts...); err == nil {
				rev = r.Header.Revision
			}
		case p < 17:
			var ops []clientv3.Op
			used := map[string]bool{}
			for j := rng.Intn(4); j >= 0; j-- {
				k := key()
				if used[k] {
					continue
				}
				used[k] = true
				if rng.Intn(3) == 0 {
					ops = append(ops, clientv3.OpDelete(k))
				} else {
					ops = append(ops, clientv3.OpPut(k, fmt.Sprintf("t%d", i)))
				}
			}
			desc = fmt.Sprintf("txn of %d", len(ops))
			var r *clientv3.TxnResponse
			if r, err = c.Txn(ctx).Then(ops...).Commit(); err == nil {
				rev = r.Header.Revision
			}
		default:
			at := rev - int64(rng.Intn(5))
			desc = fmt.Sprintf("compact %d", at)
			_, err = c.Compact(ctx, at, clientv3.WithCompactPhysical())
			err = nil // compacting at or below an earlier compaction fails alike on both
		}
		if err != nil {
			t.Fatalf("step %d %s: %v", i, desc, err)
		}
		step := fmt.Sprintf("step %d %s", i, desc)
		out = append(out, hashKVAt(t, c, step, 0),
			hashKVAt(t, c, step, rev-int64(rng.Intn(8))+1))
	}
	return out
}

// A random history hashes alike on the target and on a live etcd 3.4 at every step.
func TestHashKVRandomHistoryMatchesEtcd(t *testing.T) {
	t.Parallel()
	etcd := harness.EtcdBin()
	if etcd == "" {
		t.Skip("needs etcd on PATH")
	}
	const seed, steps = 20261125, 200
	want := runRandomHashKV(t, harness.Start(t, harness.Options{Bin: etcd}), seed, steps)
	target := harness.Start(t, harness.Options{})
	got := runRandomHashKV(t, target, seed, steps)
	diffs, compacted := 0, 0
	for i := range want {
		if want[i].CompactRevision > 0 {
			compacted++
		}
		if got[i] != want[i] {
			t.Errorf("%s\n %s: %+v\n etcd: %+v", want[i].Step, target.Kind, got[i], want[i])
			if diffs++; diffs >= 10 {
				t.Fatal("stopping after 10 differences")
			}
		}
	}
	if compacted == 0 {
		t.Error("the sequence never compacted: the test checks too little")
	}
}
