package main

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
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
