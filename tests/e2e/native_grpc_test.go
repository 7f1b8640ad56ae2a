package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"rusd/tests/e2e/harness"
)

// rusd's own gRPC server (--experimental-native-grpc, frontend/native_grpc/): KV through
// clientv3 and etcdctl as on the gRPC C++ server; every other method forwarded in process
// to gRPC C++ (streams included).

func startNative(t *testing.T) *harness.Server {
	if harness.TargetKind() != harness.Rusd {
		t.Skip("--experimental-native-grpc is rusd's")
	}
	return harness.Start(t, harness.Options{ExtraArgs: []string{"--experimental-native-grpc=true"}})
}

func TestNativeGrpcServesKV(t *testing.T) {
	s := startNative(t)
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second,
		DialOptions: harness.ClientDialOptions(), Logger: zap.NewNop(),
		MaxCallSendMsgSize: 8 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	p1 := mustPut(t, cli, "a", "1")
	mustPut(t, cli, "b", "2")
	p3 := mustPut(t, cli, "c", "3", clientv3.WithPrevKV())
	if p3.PrevKv != nil || p3.Header.Revision != p1.Header.Revision+2 {
		t.Fatalf("put c: prev %v rev %d (first %d)", p3.PrevKv, p3.Header.Revision, p1.Header.Revision)
	}
	g := mustGet(t, cli, "b")
	if len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "2" {
		t.Fatalf("get b: %v", g.Kvs)
	}
	g = mustGet(t, cli, "", clientv3.WithFromKey(), clientv3.WithLimit(2), clientv3.WithSerializable())
	if got := kvKeys(g.Kvs); strings.Join(got, ",") != "a,b" || !g.More || g.Count != 3 {
		t.Fatalf("range limit 2: keys %v more %v count %d", got, g.More, g.Count)
	}

	tr, err := cli.Txn(ctx10s(t)).If(clientv3.Compare(clientv3.Value("a"), "=", "1")).
		Then(clientv3.OpPut("a", "10"), clientv3.OpGet("c")).Else(clientv3.OpPut("x", "no")).Commit()
	if err != nil || !tr.Succeeded || string(tr.Responses[1].GetResponseRange().Kvs[0].Value) != "3" {
		t.Fatalf("txn: %v %+v", err, tr)
	}
	d, err := cli.Delete(ctx10s(t), "b")
	if err != nil || d.Deleted != 1 {
		t.Fatalf("delete b: %v %+v", err, d)
	}
	if _, err := cli.Compact(ctx10s(t), d.Header.Revision); err != nil {
		t.Fatalf("compact: %v", err)
	}
	_, err = cli.Get(ctx10s(t), "a", clientv3.WithRev(p1.Header.Revision))
	expectRPCError(t, "get compacted revision", err, rpctypes.ErrCompacted, codes.OutOfRange)

	// Validation errors complete inline on the server's reading thread.
	_, err = cli.Put(ctx10s(t), "", "v")
	expectRPCError(t, "put empty key", err, rpctypes.ErrEmptyKey, codes.InvalidArgument)
	_, err = cli.Put(ctx10s(t), "big", strings.Repeat("v", 1600*1024))
	expectRPCError(t, "put over max-request-bytes", err, rpctypes.ErrRequestTooLarge, codes.InvalidArgument)
	_, err = cli.Put(ctx10s(t), "huge", strings.Repeat("v", 3<<20))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("put over the receive limit: %v, want ResourceExhausted", err)
	}

	// A range response of ~3.2 MiB crosses the client's flow-control windows many times.
	value := strings.Repeat("0123456789abcdef", 800*1024/16)
	for _, k := range []string{"big/1", "big/2", "big/3", "big/4"} {
		mustPut(t, cli, k, value)
	}
	g = mustGet(t, cli, "big/", clientv3.WithPrefix())
	if len(g.Kvs) != 4 {
		t.Fatalf("big range: %d kvs", len(g.Kvs))
	}
	for _, kv := range g.Kvs {
		if string(kv.Value) != value {
			t.Fatalf("big range: %s has %d bytes", kv.Key, len(kv.Value))
		}
	}

	// Many concurrent calls on one connection.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if _, err := cli.Put(context.Background(), "conc", "v"); err != nil {
					errs <- err
					return
				}
				if _, err := cli.Get(context.Background(), "conc", clientv3.WithSerializable()); err != nil {
					errs <- err
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent calls: %v", err)
	}

	// Everything else is forwarded to gRPC C++ in process.
	if st, err := cli.Status(ctx10s(t), s.Endpoint); err != nil || st.Version == "" {
		t.Errorf("status: %v %+v", err, st)
	}

	// The KV calls are counted as on the gRPC C++ server.
	code, body, err := s.HTTPGet("/metrics")
	if err != nil || code != 200 {
		t.Fatalf("metrics: %d %v", code, err)
	}
	if !strings.Contains(string(body), `grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}`) {
		t.Errorf("no handled Put in /metrics")
	}
}

func TestNativeGrpcEtcdctlPutGet(t *testing.T) {
	s := startNative(t)
	if out := s.MustEtcdctl("", "put", "k", "hello"); strings.TrimSpace(out) != "OK" {
		t.Fatalf("etcdctl put: %q", out)
	}
	if out := s.MustEtcdctl("", "get", "k"); out != "k\nhello\n" {
		t.Fatalf("etcdctl get: %q", out)
	}
	if out := s.MustEtcdctl("", "del", "k"); strings.TrimSpace(out) != "1" {
		t.Fatalf("etcdctl del: %q", out)
	}
	// The server stops cleanly with native connections open.
	cli := s.Client()
	mustPut(t, cli, "before-stop", "v")
	s.Stop(10 * time.Second)
}

// Streams through the forwarding: a watch sees puts made on the same connection, a lease
// is kept alive over its stream, and a cancelled watch ends on the server (a new one works).
func TestNativeGrpcForwardsWatchAndKeepAlive(t *testing.T) {
	s := startNative(t)
	cli := s.Client()
	for round := 0; round < 3; round++ {
		ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
		wch := cli.Watch(ctx, "w/", clientv3.WithPrefix())
		var want []string
		for i := 0; i < 20; i++ {
			k := "w/" + strings.Repeat("k", i+1)
			mustPut(t, cli, k, "v")
			want = append(want, k)
		}
		var got []string
		deadline := time.After(10 * time.Second)
		for len(got) < len(want) {
			select {
			case wr, ok := <-wch:
				if !ok || wr.Err() != nil {
					t.Fatalf("watch round %d: closed %v err %v", round, !ok, wr.Err())
				}
				for _, ev := range wr.Events {
					got = append(got, string(ev.Kv.Key))
				}
			case <-deadline:
				t.Fatalf("watch round %d: got %d of %d events", round, len(got), len(want))
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("watch round %d: %v", round, got)
		}
		cancel()
		mustDelete := func(k string) {
			if _, err := cli.Delete(ctx10s(t), k, clientv3.WithPrefix()); err != nil {
				t.Fatal(err)
			}
		}
		mustDelete("w/")
	}

	g, err := cli.Grant(ctx10s(t), 5)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := cli.KeepAlive(context.Background(), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		select {
		case r := <-ka:
			if r == nil || r.ID != g.ID || r.TTL <= 0 {
				t.Fatalf("keep-alive %d: %+v", i, r)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("keep-alive %d: no answer", i)
		}
	}
	ttl, err := cli.TimeToLive(ctx10s(t), g.ID)
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("time-to-live: %v %+v", err, ttl)
	}
	if _, err := cli.Revoke(ctx10s(t), g.ID); err != nil {
		t.Fatal(err)
	}
}

// The way back: --experimental-native-grpc=false serves every client connection with gRPC
// C++ alone (KV, a watch, a keep-alive).
func TestGrpcCppAloneWithNativeGrpcOff(t *testing.T) {
	if harness.TargetKind() != harness.Rusd {
		t.Skip("--experimental-native-grpc is rusd's")
	}
	s := harness.Start(t, harness.Options{ExtraArgs: []string{"--experimental-native-grpc=false"}})
	cli := s.Client()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wch := cli.Watch(ctx, "off/", clientv3.WithPrefix())
	mustPut(t, cli, "off/a", "1")
	select {
	case wr := <-wch:
		if wr.Err() != nil || len(wr.Events) != 1 || string(wr.Events[0].Kv.Key) != "off/a" {
			t.Fatalf("watch: %v %+v", wr.Err(), wr.Events)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch: no event")
	}
	g, err := cli.Grant(ctx10s(t), 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.KeepAliveOnce(ctx10s(t), g.ID); err != nil {
		t.Fatal(err)
	}
	if out := s.MustEtcdctl("", "get", "off/a"); out != "off/a\n1\n" {
		t.Fatalf("etcdctl get: %q", out)
	}
}
