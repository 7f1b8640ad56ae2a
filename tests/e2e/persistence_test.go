package e2e

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"

	"rusd/tests/e2e/harness"
)

type storedKV struct {
	Key, Value                           string
	CreateRevision, ModRevision, Version int64
}

func snapshotAll(t *testing.T, cli *clientv3.Client) ([]storedKV, int64) {
	t.Helper()
	r := mustGet(t, cli, "\x00", clientv3.WithFromKey())
	return toStored(r.Kvs), r.Header.Revision
}

func toStored(kvs []*mvccpb.KeyValue) []storedKV {
	out := []storedKV{}
	for _, kv := range kvs {
		out = append(out, storedKV{string(kv.Key), string(kv.Value), kv.CreateRevision,
			kv.ModRevision, kv.Version})
	}
	return out
}

func TestSigtermRestartKeepsEveryKeyRevisionAndCompaction(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	cli := s.Client()
	const n = 200
	for i := 0; i < n; i++ {
		mustPut(t, cli, fmt.Sprintf("persist/%04d", i), fmt.Sprintf("value-%d", i))
	}
	for i := 0; i < n; i += 10 { // overwrite some, delete others: versions and tombstones
		mustPut(t, cli, fmt.Sprintf("persist/%04d", i), "second")
		if _, err := cli.Delete(ctx10s(t), fmt.Sprintf("persist/%04d", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	_, revBeforeCompact := snapshotAll(t, cli)
	if _, err := cli.Compact(ctx10s(t), revBeforeCompact-5); err != nil {
		t.Fatal(err)
	}
	mustPut(t, cli, "after-compact", "x")
	oldView := toStored(mustGet(t, cli, "persist/", clientv3.WithPrefix(),
		clientv3.WithRev(revBeforeCompact-3)).Kvs)
	before, rev := snapshotAll(t, cli)
	if want := int64(1 + n + 2*(n/10) + 1); rev != want {
		t.Fatalf("revision before restart %d, want %d", rev, want)
	}
	cli.Close()

	s.Stop(15 * time.Second)
	s.Restart()
	cli = s.Client()

	after, rev2 := snapshotAll(t, cli)
	if rev2 != rev {
		t.Errorf("revision after restart %d, want %d", rev2, rev)
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("after restart %d kvs differ from the %d before (first before %v, after %v)",
			len(after), len(before), first(before), first(after))
	}
	if got := toStored(mustGet(t, cli, "persist/", clientv3.WithPrefix(),
		clientv3.WithRev(revBeforeCompact-3)).Kvs); !reflect.DeepEqual(got, oldView) {
		t.Errorf("history at revision %d changed across restart", revBeforeCompact-3)
	}
	_, err := cli.Get(ctx10s(t), "persist/0000", clientv3.WithRev(revBeforeCompact-6))
	expectRPCError(t, "get below the compaction after restart", err, rpctypes.ErrCompacted,
		codes.OutOfRange)
	if p := mustPut(t, cli, "next", "x"); p.Header.Revision != rev+1 {
		t.Errorf("first put after restart got revision %d, want %d", p.Header.Revision, rev+1)
	}
}

func first(kvs []storedKV) any {
	if len(kvs) == 0 {
		return nil
	}
	return kvs[0]
}

func TestSigkilledNodeKeepsEveryAcknowledgedPut(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	load := startPutLoad(t, s, 4, "node-kill")
	time.Sleep(700 * time.Millisecond)
	s.Kill() // the whole node, mid-load
	load.stop()
	s.Restart()
	if load.acked() == 0 {
		t.Fatalf("no put was acknowledged before the kill")
	}
	load.verify(t, s.Client())
}
