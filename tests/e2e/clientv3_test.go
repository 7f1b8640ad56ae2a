package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"rusd/tests/e2e/harness"
)

// Go clientv3 3.5 (what kube-apiserver links) against the server under test.

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t *testing.T, cli *clientv3.Client, k, v string, opts ...clientv3.OpOption) *clientv3.PutResponse {
	t.Helper()
	r, err := cli.Put(ctx10s(t), k, v, opts...)
	if err != nil {
		t.Fatalf("put %q: %v", k, err)
	}
	return r
}

func mustGet(t *testing.T, cli *clientv3.Client, k string, opts ...clientv3.OpOption) *clientv3.GetResponse {
	t.Helper()
	r, err := cli.Get(ctx10s(t), k, opts...)
	if err != nil {
		t.Fatalf("get %q: %v", k, err)
	}
	return r
}

func kvKeys(kvs []*mvccpb.KeyValue) []string {
	out := []string{}
	for _, kv := range kvs {
		out = append(out, string(kv.Key))
	}
	return out
}

// expectRPCError checks that err is the etcd error want (as clientv3 decodes it) and
// carries gRPC code c.
func expectRPCError(t *testing.T, what string, err error, want error, c codes.Code) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %v", what, want)
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v (%T), want %v", what, err, err, want)
	}
	if got := status.Code(err); got != c {
		// clientv3 converts known errors to rpctypes.EtcdError; its code survives.
		var ee rpctypes.EtcdError
		if errors.As(err, &ee) && ee.Code() == c {
			return
		}
		t.Errorf("%s: gRPC code %v, want %v", what, got, c)
	}
}

func TestClientv3RangeOptionsCountLimitPrefixFromKeyRevSort(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	cli := s.Client()
	// p/0..p/9 at revisions 2..11, values in reverse order; q at 12; p/3 again at 13.
	for i := 0; i < 10; i++ {
		mustPut(t, cli, fmt.Sprintf("p/%d", i), fmt.Sprintf("%c", 'j'-i))
	}
	mustPut(t, cli, "q", "z")
	mustPut(t, cli, "p/3", "again")

	r := mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if r.Count != 10 || len(r.Kvs) != 0 || r.Header.Revision != 13 {
		t.Errorf("WithCountOnly: count %d kvs %d rev %d, want 10 0 13", r.Count, len(r.Kvs),
			r.Header.Revision)
	}
	r = mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithLimit(3))
	if got := kvKeys(r.Kvs); !reflect.DeepEqual(got, []string{"p/0", "p/1", "p/2"}) ||
		!r.More || r.Count != 10 {
		t.Errorf("WithLimit(3): %v more %v count %d, want [p/0 p/1 p/2] true 10", got, r.More,
			r.Count)
	}
	r = mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithLimit(10))
	if len(r.Kvs) != 10 || r.More {
		t.Errorf("WithLimit(10) of 10: %d kvs more %v, want 10 false", len(r.Kvs), r.More)
	}
	r = mustGet(t, cli, "p/8", clientv3.WithFromKey())
	if got := kvKeys(r.Kvs); !reflect.DeepEqual(got, []string{"p/8", "p/9", "q"}) {
		t.Errorf("WithFromKey(p/8): %v", got)
	}
	r = mustGet(t, cli, "p/2", clientv3.WithRange("p/5"))
	if got := kvKeys(r.Kvs); !reflect.DeepEqual(got, []string{"p/2", "p/3", "p/4"}) {
		t.Errorf("WithRange(p/2, p/5): %v", got)
	}
	r = mustGet(t, cli, "p/3", clientv3.WithRev(12))
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "g" || r.Kvs[0].ModRevision != 5 ||
		r.Header.Revision != 13 {
		t.Errorf("WithRev(12) p/3 = %v (header rev %d), want value g mod 5 header 13", r.Kvs,
			r.Header.Revision)
	}
	r = mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithRev(4), clientv3.WithCountOnly())
	if r.Count != 3 {
		t.Errorf("count at revision 4 = %d, want 3", r.Count)
	}
	r = mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue,
		clientv3.SortAscend), clientv3.WithLimit(2))
	if got := kvKeys(r.Kvs); !reflect.DeepEqual(got, []string{"p/9", "p/3"}) || r.Count != 10 {
		t.Errorf("SortByValue ascend limit 2: %v count %d, want [p/9 p/3] 10", got, r.Count)
	}
	r = mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey,
		clientv3.SortDescend))
	if got := kvKeys(r.Kvs); len(got) != 10 || got[0] != "p/9" || got[9] != "p/0" {
		t.Errorf("SortByKey descend: %v", got)
	}
	r = mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision,
		clientv3.SortDescend), clientv3.WithLimit(1))
	if got := kvKeys(r.Kvs); !reflect.DeepEqual(got, []string{"p/3"}) {
		t.Errorf("SortByModRevision descend limit 1: %v, want [p/3]", got)
	}
	r = mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision,
		clientv3.SortDescend))
	if got := kvKeys(r.Kvs); len(got) != 10 || got[0] != "p/9" {
		t.Errorf("SortByCreateRevision descend: %v", got)
	}
	r = mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByVersion,
		clientv3.SortDescend), clientv3.WithLimit(1))
	if got := kvKeys(r.Kvs); !reflect.DeepEqual(got, []string{"p/3"}) {
		t.Errorf("SortByVersion descend limit 1: %v, want [p/3]", got)
	}
	r = mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
	if len(r.Kvs) != 1 || len(r.Kvs[0].Value) != 0 || r.Kvs[0].Version != 1 {
		t.Errorf("WithKeysOnly: %v", r.Kvs)
	}
	r = mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithMinModRev(11))
	if got := kvKeys(r.Kvs); !reflect.DeepEqual(got, []string{"p/3", "p/9"}) {
		t.Errorf("WithMinModRev(11): %v, want [p/3 p/9]", got)
	}
	r = mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithMaxCreateRev(3))
	if got := kvKeys(r.Kvs); !reflect.DeepEqual(got, []string{"p/0", "p/1"}) {
		t.Errorf("WithMaxCreateRev(3): %v, want [p/0 p/1]", got)
	}
	r = mustGet(t, cli, "p/", clientv3.WithPrefix(), clientv3.WithSerializable(),
		clientv3.WithCountOnly())
	if r.Count != 10 {
		t.Errorf("WithSerializable count %d, want 10", r.Count)
	}
	// An all-0xff prefix has no upper bound: WithPrefix ranges to the end of the keyspace.
	r = mustGet(t, cli, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if r.Count != 11 {
		t.Errorf("WithPrefix(\"\") count %d, want 11", r.Count)
	}
}

func TestClientv3PutPrevKvAndDeleteRange(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	cli := s.Client()
	p := mustPut(t, cli, "a", "1")
	if p.Header.Revision != 2 || p.PrevKv != nil {
		t.Errorf("first put: rev %d prev %v, want 2 nil", p.Header.Revision, p.PrevKv)
	}
	p = mustPut(t, cli, "a", "2", clientv3.WithPrevKV())
	if p.PrevKv == nil || string(p.PrevKv.Value) != "1" || p.PrevKv.ModRevision != 2 {
		t.Errorf("put WithPrevKV: prev %v, want a=1 mod 2", p.PrevKv)
	}
	mustPut(t, cli, "b", "3")
	mustPut(t, cli, "c", "4")
	d, err := cli.Delete(ctx10s(t), "a", clientv3.WithRange("c"), clientv3.WithPrevKV())
	if err != nil {
		t.Fatal(err)
	}
	if d.Deleted != 2 || len(d.PrevKvs) != 2 || string(d.PrevKvs[0].Value) != "2" ||
		d.Header.Revision != 6 {
		t.Errorf("delete [a,c) WithPrevKV: deleted %d prev %v rev %d, want 2 [a=2 b=3] 6",
			d.Deleted, d.PrevKvs, d.Header.Revision)
	}
	d, err = cli.Delete(ctx10s(t), "nothing")
	if err != nil || d.Deleted != 0 || d.Header.Revision != 6 {
		t.Errorf("delete nothing: %v %v, want deleted 0 at revision 6", d, err)
	}
}

func TestClientv3PutIgnoreValueUsesPreviousValue(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	cli := s.Client()
	mustPut(t, cli, "k", "keep")
	mustPut(t, cli, "k", "", clientv3.WithIgnoreValue())
	r := mustGet(t, cli, "k")
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "keep" || r.Kvs[0].Version != 2 {
		t.Errorf("after WithIgnoreValue: %v, want value keep version 2", r.Kvs)
	}
	_, err := cli.Put(ctx10s(t), "absent", "", clientv3.WithIgnoreValue())
	expectRPCError(t, "WithIgnoreValue on a missing key", err, rpctypes.ErrKeyNotFound,
		codes.InvalidArgument)
}

func TestClientv3TxnIfThenElseAndNestedTxn(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	cli := s.Client()
	mustPut(t, cli, "n/a", "1") // 2
	mustPut(t, cli, "n/b", "x") // 3

	tr, err := cli.Txn(ctx10s(t)).If(
		clientv3.Compare(clientv3.Value("n/a"), "=", "1"),
		clientv3.Compare(clientv3.ModRevision("n/b"), ">", 2),
		clientv3.Compare(clientv3.CreateRevision("n/a"), "=", 2),
		clientv3.Compare(clientv3.Version("n/none"), "=", 0),
	).Then(
		clientv3.OpPut("n/a", "2"),
		clientv3.OpGet("n/a"),
		clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value("n/b"), "=", "nope")},
			[]clientv3.Op{clientv3.OpPut("n/c", "then")},
			[]clientv3.Op{clientv3.OpPut("n/c", "else"), clientv3.OpDelete("n/b")},
		),
	).Else(clientv3.OpPut("n/a", "never")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Succeeded || len(tr.Responses) != 3 || tr.Header.Revision != 4 {
		t.Fatalf("txn: succeeded %v, %d responses, rev %d; want true 3 4", tr.Succeeded,
			len(tr.Responses), tr.Header.Revision)
	}
	// A read after a write in the same txn sees the write, at the txn's revision.
	if g := tr.Responses[1].GetResponseRange(); g == nil || len(g.Kvs) != 1 ||
		string(g.Kvs[0].Value) != "2" || g.Kvs[0].ModRevision != 4 {
		t.Errorf("get inside txn = %v, want n/a=2 mod 4", g)
	}
	nested := tr.Responses[2].GetResponseTxn()
	if nested == nil || nested.Succeeded || len(nested.Responses) != 2 ||
		nested.Responses[1].GetResponseDeleteRange().GetDeleted() != 1 {
		t.Errorf("nested txn = %v, want failed with [put, delete 1]", nested)
	}
	r := mustGet(t, cli, "n/", clientv3.WithPrefix())
	want := map[string]string{"n/a": "2", "n/c": "else"}
	got := map[string]string{}
	for _, kv := range r.Kvs {
		got[string(kv.Key)] = string(kv.Value)
		if kv.ModRevision != 4 {
			t.Errorf("%s mod revision %d, want 4 (one revision per txn)", kv.Key, kv.ModRevision)
		}
	}
	if !reflect.DeepEqual(got, want) || r.Header.Revision != 4 {
		t.Errorf("after txn: %v rev %d, want %v rev 4", got, r.Header.Revision, want)
	}

	// Else branch; a txn that writes nothing makes no revision.
	tr, err = cli.Txn(ctx10s(t)).If(clientv3.Compare(clientv3.Value("n/a"), "!=", "2")).
		Then(clientv3.OpPut("n/a", "never")).Else(clientv3.OpGet("n/", clientv3.WithPrefix(),
		clientv3.WithCountOnly())).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if tr.Succeeded || tr.Header.Revision != 4 ||
		tr.Responses[0].GetResponseRange().GetCount() != 2 {
		t.Errorf("else txn: %v, want failed, rev 4, count 2", tr)
	}
	// Compare over a range: every key in [n/, n0) must satisfy it.
	tr, err = cli.Txn(ctx10s(t)).If(clientv3.Compare(clientv3.ModRevision("n/").WithPrefix(),
		"=", 4)).Commit()
	if err != nil || !tr.Succeeded {
		t.Errorf("range compare mod=4: %v %v, want succeeded", tr, err)
	}
	tr, err = cli.Txn(ctx10s(t)).If(clientv3.Compare(clientv3.Value("n/").WithPrefix(),
		"=", "2")).Commit()
	if err != nil || tr.Succeeded {
		t.Errorf("range compare value=2 (n/c is else): %v %v, want failed", tr, err)
	}
	// Duplicate puts of one key in a txn are rejected.
	_, err = cli.Txn(ctx10s(t)).Then(clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")).Commit()
	expectRPCError(t, "txn with duplicate put", err, rpctypes.ErrDuplicateKey, codes.InvalidArgument)
}

func TestClientv3CompactAndRevisionErrors(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	cli := s.Client()
	for i := 0; i < 5; i++ {
		mustPut(t, cli, "c", fmt.Sprint(i)) // 2..6
	}
	cr, err := cli.Compact(ctx10s(t), 4)
	if err != nil {
		t.Fatalf("compact 4: %v", err)
	}
	if cr.Header == nil || cr.Header.Revision != 6 {
		t.Errorf("compact header %v, want revision 6", cr.Header)
	}
	_, err = cli.Get(ctx10s(t), "c", clientv3.WithRev(3))
	expectRPCError(t, "get rev 3 after compact 4", err, rpctypes.ErrCompacted, codes.OutOfRange)
	r := mustGet(t, cli, "c", clientv3.WithRev(4))
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "2" {
		t.Errorf("get rev 4 after compact 4: %v, want c=2", r.Kvs)
	}
	_, err = cli.Compact(ctx10s(t), 4)
	expectRPCError(t, "compact 4 twice", err, rpctypes.ErrCompacted, codes.OutOfRange)
	_, err = cli.Compact(ctx10s(t), 7)
	expectRPCError(t, "compact 7 at revision 6", err, rpctypes.ErrFutureRev, codes.OutOfRange)
	_, err = cli.Get(ctx10s(t), "c", clientv3.WithRev(7))
	expectRPCError(t, "get rev 7 at revision 6", err, rpctypes.ErrFutureRev, codes.OutOfRange)
	if _, err := cli.Compact(ctx10s(t), 6, clientv3.WithCompactPhysical()); err != nil {
		t.Errorf("physical compact 6: %v", err)
	}
	// A txn reading at a compacted revision fails the whole txn.
	_, err = cli.Txn(ctx10s(t)).Then(clientv3.OpGet("c", clientv3.WithRev(5))).Commit()
	expectRPCError(t, "txn get rev 5 after compact 6", err, rpctypes.ErrCompacted, codes.OutOfRange)
}

func TestClientv3EmptyKeyAndTooManyOpsAreRejected(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	cli := s.Client()
	_, err := cli.Put(ctx10s(t), "", "v")
	expectRPCError(t, "put empty key", err, rpctypes.ErrEmptyKey, codes.InvalidArgument)
	_, err = cli.Get(ctx10s(t), "")
	expectRPCError(t, "get empty key", err, rpctypes.ErrEmptyKey, codes.InvalidArgument)
	_, err = cli.Delete(ctx10s(t), "")
	expectRPCError(t, "delete empty key", err, rpctypes.ErrEmptyKey, codes.InvalidArgument)
	_, err = cli.Txn(ctx10s(t)).Then(clientv3.OpPut("", "v")).Commit()
	expectRPCError(t, "txn put empty key", err, rpctypes.ErrEmptyKey, codes.InvalidArgument)

	ops := func(n int) []clientv3.Op {
		var o []clientv3.Op
		for i := 0; i < n; i++ {
			o = append(o, clientv3.OpPut(fmt.Sprintf("op/%03d", i), "v"))
		}
		return o
	}
	if _, err := cli.Txn(ctx10s(t)).Then(ops(128)...).Commit(); err != nil {
		t.Errorf("txn with 128 ops (the default --max-txn-ops): %v", err)
	}
	_, err = cli.Txn(ctx10s(t)).Then(ops(129)...).Commit()
	expectRPCError(t, "txn with 129 ops", err, rpctypes.ErrTooManyOps, codes.InvalidArgument)
	r := mustGet(t, cli, "op/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if r.Count != 128 || r.Header.Revision != 2 {
		t.Errorf("after txns: count %d rev %d, want 128 2 (rejected ops wrote nothing)", r.Count,
			r.Header.Revision)
	}
}

func TestClientv3RequestLargerThanMaxRequestBytesIsRejected(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{ExtraArgs: []string{"--max-request-bytes=4096"}})
	cli := s.Client()
	mustPut(t, cli, "small", strings.Repeat("s", 1000))
	_, err := cli.Put(ctx10s(t), "big", strings.Repeat("b", 8192))
	expectRPCError(t, "8 KiB put with --max-request-bytes=4096", err, rpctypes.ErrRequestTooLarge,
		codes.InvalidArgument)
	r := mustGet(t, cli, "big", clientv3.WithCountOnly())
	if r.Count != 0 || r.Header.Revision != 2 {
		t.Errorf("big key count %d rev %d, want 0 2", r.Count, r.Header.Revision)
	}
}

func TestClientv3AnyByteKeysAndEmptyValuesRoundTrip(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	cli := s.Client()
	keys := []string{"\x00", "\x00\x00", "\x00\x01", "a\x00b", "a\nb", "\xc3\x28", "\xfe",
		"\xff", "\xff\x00", "\xff\xff", strings.Repeat("k", 3000)}
	for i, k := range keys {
		v := ""
		if i%2 == 0 {
			v = string([]byte{0, byte(i), 0xff, '\n'})
		}
		mustPut(t, cli, k, v)
		r := mustGet(t, cli, k)
		if len(r.Kvs) != 1 || string(r.Kvs[0].Key) != k || string(r.Kvs[0].Value) != v ||
			r.Kvs[0].Version != 1 {
			t.Errorf("key %q: got %v, want value %q version 1", k, r.Kvs, v)
		}
	}
	sorted := append([]string(nil), keys...)
	sort.Slice(sorted, func(i, j int) bool { return bytes.Compare([]byte(sorted[i]), []byte(sorted[j])) < 0 })
	r := mustGet(t, cli, "\x00", clientv3.WithFromKey())
	if got := kvKeys(r.Kvs); !reflect.DeepEqual(got, sorted) {
		t.Errorf("from \\x00: %q, want byte order %q", got, sorted)
	}
	r = mustGet(t, cli, "\xff", clientv3.WithPrefix())
	if got := kvKeys(r.Kvs); !reflect.DeepEqual(got, []string{"\xff", "\xff\x00", "\xff\xff"}) {
		t.Errorf("prefix \\xff: %q", got)
	}
	r = mustGet(t, cli, "\x00", clientv3.WithPrefix())
	if got := kvKeys(r.Kvs); !reflect.DeepEqual(got, []string{"\x00", "\x00\x00", "\x00\x01"}) {
		t.Errorf("prefix \\x00: %q", got)
	}
	r = mustGet(t, cli, "\x00\x00", clientv3.WithRange("\x00\x01"))
	if got := kvKeys(r.Kvs); !reflect.DeepEqual(got, []string{"\x00\x00"}) {
		t.Errorf("range [\\x00\\x00, \\x00\\x01): %q", got)
	}
	// A 1 MiB value (below the default 1.5 MiB request limit) round-trips.
	big := strings.Repeat("0123456789abcdef", 1<<16)
	mustPut(t, cli, "big", big)
	if r := mustGet(t, cli, "big"); len(r.Kvs) != 1 || string(r.Kvs[0].Value) != big {
		t.Errorf("1 MiB value did not round-trip")
	}
}

func TestClientv3ConcurrentCompareAndSwapLosesNoUpdate(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	const workers, incs = 8, 25
	mustPut(t, s.Client(), "counter", "0")
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		cli := s.Client() // one connection each (created here: Client may call t.Fatal)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for done := 0; done < incs; {
				g, err := cli.Get(ctx, "counter")
				if err != nil {
					errs <- err
					return
				}
				n, _ := strconv.Atoi(string(g.Kvs[0].Value))
				tr, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("counter"), "=",
					g.Kvs[0].ModRevision)).Then(clientv3.OpPut("counter", strconv.Itoa(n+1))).Commit()
				if err != nil {
					errs <- err
					return
				}
				if tr.Succeeded {
					done++
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("worker: %v", err)
	}
	r := mustGet(t, s.Client(), "counter")
	if got := string(r.Kvs[0].Value); got != strconv.Itoa(workers*incs) ||
		r.Kvs[0].Version != workers*incs+1 {
		t.Errorf("counter = %s version %d, want %d version %d", got, r.Kvs[0].Version,
			workers*incs, workers*incs+1)
	}
}

func TestClientv3RangeOfManyMegabytesIsComplete(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	cli := s.Client()
	const n, size = 24, 1 << 20 // 24 MiB in one response: more than any ring slot
	for i := 0; i < n; i++ {
		v := bytes.Repeat([]byte{byte('a' + i)}, size)
		copy(v, fmt.Sprintf("value %d", i))
		mustPut(t, cli, fmt.Sprintf("big/%02d", i), string(v))
	}
	r := mustGet(t, cli, "big/", clientv3.WithPrefix())
	if len(r.Kvs) != n || r.Count != n {
		t.Fatalf("range: %d kvs count %d, want %d", len(r.Kvs), r.Count, n)
	}
	for i, kv := range r.Kvs {
		want := bytes.Repeat([]byte{byte('a' + i)}, size)
		copy(want, fmt.Sprintf("value %d", i))
		if string(kv.Key) != fmt.Sprintf("big/%02d", i) || !bytes.Equal(kv.Value, want) {
			t.Errorf("kv %d: key %q, %d value bytes, content equal %v", i, kv.Key, len(kv.Value),
				bytes.Equal(kv.Value, want))
		}
	}
	// Several big ranges at once, each complete (chunks of different responses interleave).
	var wg sync.WaitGroup
	counts := make([]int, 3)
	for i := range counts {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if r, err := cli.Get(ctx, "big/", clientv3.WithPrefix()); err == nil {
				for _, kv := range r.Kvs {
					counts[i] += len(kv.Value)
				}
			}
		}(i)
	}
	wg.Wait()
	for i, c := range counts {
		if c != n*size {
			t.Errorf("concurrent range %d returned %d value bytes, want %d", i, c, n*size)
		}
	}
}
