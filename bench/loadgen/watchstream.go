package main

// watchStream: one etcd Watch stream opened with raw grpc-go, for the watch benchmark's
// receiving side. clientv3 decodes every WatchResponse into Go objects (one KeyValue and
// its byte slices per event); at ~400k events/s that decoding alone took about a core of
// the two the benchmark shares with the servers, and it limited the put rate both servers
// were measured at. Here the codec keeps each response's bytes and the stream counts
// events by walking the protobuf wire format: every field of the response is stepped over
// and checked, the `events` fields (11) are counted, and only the watchers that sample
// latency have their responses decoded in full (etcdserverpb.WatchResponse.Unmarshal).
// The receiving cost per event is the same for both servers and small.
//
// Checks, so that a broken server cannot pass: every watcher is created with its own
// request and must be answered `created` within a timeout, with a watch id not already
// live on the stream (responses are matched to requests by order, as clientv3 does); an
// event response must name a live watcher; each watcher counts the events it received
// (deliveryLedger compares them with the puts); a sampling watcher's decoded events must
// carry its key (or one under its prefix) and strictly increasing mod revisions; a
// canceled or compacted response, a malformed response or a stream error is an error.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// keepCodec hands grpc-go the bytes it is given and keeps the bytes it receives, without
// the copy lock.go's rawCodec makes. Its name is "proto" so that the request's content-type
// is etcd's usual application/grpc+proto.
type keepCodec struct{}

func (keepCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(*[]byte); ok {
		return *b, nil
	}
	return nil, fmt.Errorf("keepCodec: cannot marshal %T", v)
}

func (keepCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("keepCodec: cannot unmarshal into %T", v)
	}
	*b = data // grpc-go 1.59 allocates each message afresh (no receive buffer pool set)
	return nil
}

func (keepCodec) Name() string { return "proto" }

var watchDesc = grpc.StreamDesc{StreamName: "Watch", ServerStreams: true, ClientStreams: true}

// watchSpec is one watcher to create.
type watchSpec struct {
	key, rangeEnd string
	sample        bool          // decode its events for put-to-event latency and check them
	got           *atomic.Int64 // events received (deliveryLedger); may be nil
}

// liveWatch is a created watcher of the stream.
type liveWatch struct {
	spec    watchSpec
	lastRev int64 // mod revision of its last decoded event (sampling watchers)
}

// watchCounts receives what a stream delivers: onEvents(n) for every event response (n
// events), onSample for every event of a sampling watcher (its value: the put's send time).
type watchCounts struct {
	onEvents func(n int)
	onSample func(values [][]byte)
}

type watchStream struct {
	cs     grpc.ClientStream
	cancel context.CancelFunc // ends the stream (a create timed out)
	live   map[int64]*liveWatch
	counts watchCounts
}

func openWatchStream(ctx context.Context, conn *grpc.ClientConn, counts watchCounts) (*watchStream, error) {
	sctx, cancel := context.WithCancel(ctx)
	cs, err := conn.NewStream(sctx, &watchDesc, "/etcdserverpb.Watch/Watch", grpc.ForceCodec(keepCodec{}))
	if err != nil {
		cancel()
		return nil, err
	}
	return &watchStream{cs: cs, cancel: cancel, live: map[int64]*liveWatch{}, counts: counts}, nil
}

// create creates the watchers one after the other (each answered before the next is sent,
// as clientv3 does), handling any event response that arrives meanwhile. A watcher not
// created within `timeout` fails it: a timer cancels the stream, which ends a receive
// that would otherwise wait for ever.
func (w *watchStream) create(specs []watchSpec, timeout time.Duration) error {
	for _, s := range specs {
		req := pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
			Key: []byte(s.key), RangeEnd: []byte(s.rangeEnd)}}}
		b, err := req.Marshal()
		if err != nil {
			return err
		}
		// Started before the send: a send blocked by flow control times out too.
		timer := time.AfterFunc(timeout, w.cancel)
		if err = w.cs.SendMsg(&b); err != nil {
			err = fmt.Errorf("watch %q: send create: %w", s.key, err)
		} else {
			err = w.awaitCreated(s)
		}
		if !timer.Stop() { // it fired: err is the canceled stream's
			return fmt.Errorf("watch %q not created within %v", s.key, timeout)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// awaitCreated receives until the `created` response of s.
func (w *watchStream) awaitCreated(s watchSpec) error {
	for {
		r, err := w.recv()
		if err != nil {
			return fmt.Errorf("watch %q: %w", s.key, err)
		}
		if !r.created {
			if err := w.handle(r); err != nil {
				return err
			}
			continue
		}
		if r.canceled {
			return fmt.Errorf("watch %q refused: %s", s.key, r.cancelReason)
		}
		if _, dup := w.live[r.watchID]; dup {
			return fmt.Errorf("watch %q: created with id %d, already live on the stream", s.key, r.watchID)
		}
		w.live[r.watchID] = &liveWatch{spec: s}
		return nil
	}
}

// run receives until the stream ends; nil when ctx ended it.
func (w *watchStream) run(ctx context.Context) error {
	for {
		r, err := w.recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if r.created {
			return fmt.Errorf("unexpected created response for watch id %d", r.watchID)
		}
		if err := w.handle(r); err != nil {
			return err
		}
	}
}

func (w *watchStream) handle(r scannedResponse) error {
	if r.canceled {
		return fmt.Errorf("watch id %d canceled: %q (compact revision %d)", r.watchID, r.cancelReason, r.compactRevision)
	}
	if r.events == 0 {
		return nil // a progress notification
	}
	lw := w.live[r.watchID]
	if lw == nil {
		return fmt.Errorf("%d events for watch id %d, not live on this stream", r.events, r.watchID)
	}
	if lw.spec.got != nil {
		lw.spec.got.Add(int64(r.events))
	}
	if w.counts.onEvents != nil {
		w.counts.onEvents(r.events)
	}
	if !lw.spec.sample {
		return nil
	}
	var full pb.WatchResponse
	if err := full.Unmarshal(r.raw); err != nil {
		return fmt.Errorf("watch id %d: %w", r.watchID, err)
	}
	if len(full.Events) != r.events || full.WatchId != r.watchID {
		return fmt.Errorf("watch id %d: the scan found %d events, the decoder %d (id %d)",
			r.watchID, r.events, len(full.Events), full.WatchId)
	}
	vals := make([][]byte, 0, len(full.Events))
	for _, e := range full.Events {
		if e.Kv == nil {
			return fmt.Errorf("watch id %d: an event without a key-value", r.watchID)
		}
		k := string(e.Kv.Key)
		if lw.spec.rangeEnd == "" && k != lw.spec.key ||
			lw.spec.rangeEnd != "" && (k < lw.spec.key || k >= lw.spec.rangeEnd) {
			return fmt.Errorf("watch id %d on %q (range end %q): an event for key %q",
				r.watchID, lw.spec.key, lw.spec.rangeEnd, k)
		}
		if e.Kv.ModRevision <= lw.lastRev {
			return fmt.Errorf("watch id %d on %q: mod revision %d after %d", r.watchID, lw.spec.key,
				e.Kv.ModRevision, lw.lastRev)
		}
		lw.lastRev = e.Kv.ModRevision
		vals = append(vals, e.Kv.Value)
	}
	if w.counts.onSample != nil {
		w.counts.onSample(vals)
	}
	return nil
}

func (w *watchStream) recv() (scannedResponse, error) {
	var b []byte
	if err := w.cs.RecvMsg(&b); err != nil {
		return scannedResponse{}, err
	}
	return scanWatchResponse(b)
}

// scannedResponse is what the benchmark needs of a WatchResponse (rpc.proto).
type scannedResponse struct {
	watchID         int64
	created         bool
	canceled        bool
	compactRevision int64
	cancelReason    string
	events          int
	raw             []byte
}

var errMalformed = errors.New("malformed WatchResponse")

// scanWatchResponse walks every field of a WatchResponse without decoding the events:
// header (1) is stepped over, watch_id (2), created (3), canceled (4), compact_revision (5)
// and cancel_reason (6) are read, `events` (11) are counted; fragment (7) is stepped over
// (no watcher here asks for fragments). Unknown fields are
// stepped over by wire type, as protobuf does.
func scanWatchResponse(b []byte) (scannedResponse, error) {
	r := scannedResponse{raw: b}
	for i := 0; i < len(b); {
		tag, n := uvarint(b[i:])
		if n <= 0 {
			return r, errMalformed
		}
		i += n
		field, wire := tag>>3, tag&7
		switch wire {
		case 0: // varint
			v, n := uvarint(b[i:])
			if n <= 0 {
				return r, errMalformed
			}
			i += n
			switch field {
			case 2:
				r.watchID = int64(v)
			case 3:
				r.created = v != 0
			case 4:
				r.canceled = v != 0
			case 5:
				r.compactRevision = int64(v)
			}
		case 2: // length-delimited
			l, n := uvarint(b[i:])
			if n <= 0 || l > uint64(len(b)-i-n) {
				return r, errMalformed
			}
			i += n
			switch field {
			case 6:
				r.cancelReason = string(b[i : i+int(l)])
			case 11:
				r.events++
			}
			i += int(l)
		case 1: // fixed64
			i += 8
		case 5: // fixed32
			i += 4
		default:
			return r, fmt.Errorf("%w: wire type %d", errMalformed, wire)
		}
		if i > len(b) {
			return r, errMalformed
		}
	}
	return r, nil
}

// uvarint decodes a protobuf varint; n <= 0 when b does not hold one.
func uvarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

// parseSendTime reads a put's value: its send time in Unix nanoseconds.
func parseSendTime(v []byte) (int64, bool) {
	t, err := strconv.ParseInt(string(v), 10, 64)
	return t, err == nil
}
