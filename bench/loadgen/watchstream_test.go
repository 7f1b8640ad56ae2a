package main

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestScanCountsEventsAndReadsEveryControlField(t *testing.T) {
	r := pb.WatchResponse{
		Header:  &pb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 300, RaftTerm: 4},
		WatchId: 77,
		Events: []*mvccpb.Event{
			{Kv: &mvccpb.KeyValue{Key: []byte("wb/1"), Value: []byte("123"), ModRevision: 299}},
			{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("wb/2")}, PrevKv: &mvccpb.KeyValue{Key: []byte("wb/2")}},
			{Kv: &mvccpb.KeyValue{Key: []byte("wb/3")}},
		},
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := scanWatchResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.events != 3 || s.watchID != 77 || s.created || s.canceled {
		t.Fatalf("scan = %+v", s)
	}

	c := pb.WatchResponse{WatchId: -1, Created: true, Canceled: true, CompactRevision: 9, CancelReason: "gone"}
	b, _ = c.Marshal()
	s, err = scanWatchResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.events != 0 || s.watchID != -1 || !s.created || !s.canceled || s.compactRevision != 9 || s.cancelReason != "gone" {
		t.Fatalf("scan = %+v", s)
	}
}

func TestScanRejectsTruncatedResponses(t *testing.T) {
	r := pb.WatchResponse{WatchId: 5, Events: []*mvccpb.Event{{Kv: &mvccpb.KeyValue{Key: []byte("k"), Value: []byte("v")}}}}
	b, _ := r.Marshal()
	for n := 1; n < len(b); n++ {
		if s, err := scanWatchResponse(b[:n]); err == nil && s.events == 1 {
			t.Fatalf("a response cut to %d of %d bytes scanned as whole: %+v", n, len(b), s)
		}
	}
}

func marshalScanned(t *testing.T, r *pb.WatchResponse) scannedResponse {
	t.Helper()
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := scanWatchResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHandleCountsPerWatcherAndChecksSampledEvents(t *testing.T) {
	var keyGot, prefixGot atomic.Int64
	w := &watchStream{live: map[int64]*liveWatch{
		1: {spec: watchSpec{key: "wb/1", sample: true, got: &keyGot}},
		2: {spec: watchSpec{key: "wb/", rangeEnd: "wb0", sample: true, got: &prefixGot}},
	}}
	ev := func(key string, rev int64) *mvccpb.Event {
		return &mvccpb.Event{Kv: &mvccpb.KeyValue{Key: []byte(key), Value: []byte("1"), ModRevision: rev}}
	}
	ok := []*pb.WatchResponse{
		{WatchId: 1, Events: []*mvccpb.Event{ev("wb/1", 5), ev("wb/1", 7)}},
		{WatchId: 2, Events: []*mvccpb.Event{ev("wb/1", 5), ev("wb/2", 6)}},
	}
	for _, r := range ok {
		if err := w.handle(marshalScanned(t, r)); err != nil {
			t.Fatal(err)
		}
	}
	if keyGot.Load() != 2 || prefixGot.Load() != 2 {
		t.Fatalf("counted %d and %d events", keyGot.Load(), prefixGot.Load())
	}
	bad := map[string]*pb.WatchResponse{
		"another key":         {WatchId: 1, Events: []*mvccpb.Event{ev("wb/2", 8)}},
		"outside the prefix":  {WatchId: 2, Events: []*mvccpb.Event{ev("wc/1", 8)}},
		"the same revision":   {WatchId: 1, Events: []*mvccpb.Event{ev("wb/1", 7)}},
		"an older revision":   {WatchId: 2, Events: []*mvccpb.Event{ev("wb/3", 4)}},
		"a watcher not alive": {WatchId: 3, Events: []*mvccpb.Event{ev("wb/1", 9)}},
	}
	for name, r := range bad {
		if err := w.handle(marshalScanned(t, r)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCreateFailsWhenTheServerNeverAnswers(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		<-ss.Context().Done() // reads nothing, answers nothing
		return nil
	}))
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.Dial(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st, err := openWatchStream(context.Background(), conn, watchCounts{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = st.create([]watchSpec{{key: "wb/1"}}, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not created within") {
		t.Fatalf("create = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("create returned after %v", d)
	}
}
