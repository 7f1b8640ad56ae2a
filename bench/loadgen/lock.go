package main

// lockhandover: how long the v3lock service takes to hand a lock from its holder to a
// waiter. Two clients on separate connections take turns: one holds the lock, the other
// waits in Lock; the holder calls Unlock and the hand-over time is from just before that
// Unlock to the waiter's Lock returning. Run against etcd and rusd in one process for a
// side-by-side (bench/run-lock-vs-etcd.sh).

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec sends and receives pre-encoded protobuf bytes: v3lock's Go stubs live in etcd's
// server module, which loadgen does not depend on.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func invokeRaw(ctx context.Context, cli *clientv3.Client, method string, req []byte) ([]byte, error) {
	var resp []byte
	err := cli.ActiveConnection().Invoke(ctx, method, &req, &resp, grpc.ForceCodec(rawCodec{}))
	return resp, err
}

func bytesField(num protowire.Number, v []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// lockKey returns LockResponse.key (field 2).
func lockKey(resp []byte) ([]byte, error) {
	for len(resp) > 0 {
		num, typ, n := protowire.ConsumeTag(resp)
		if n < 0 {
			return nil, fmt.Errorf("malformed LockResponse")
		}
		resp = resp[n:]
		m := protowire.ConsumeFieldValue(num, typ, resp)
		if m < 0 {
			return nil, fmt.Errorf("malformed LockResponse")
		}
		if num == 2 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(resp)
			return append([]byte(nil), v...), nil
		}
		resp = resp[m:]
	}
	return nil, fmt.Errorf("LockResponse without a key")
}

func lockReq(name string, lease clientv3.LeaseID) []byte {
	b := bytesField(1, []byte(name))
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(lease))
}

// handovers measures n hand-overs on one target; returns them sorted.
func handovers(endpoint string, n int, settle time.Duration) ([]time.Duration, error) {
	var clis [2]*clientv3.Client
	var leases [2]clientv3.LeaseID
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*time.Second+30*time.Second)
	defer cancel()
	for i := range clis {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		clis[i] = c
		g, err := c.Grant(ctx, 60)
		if err != nil {
			return nil, err
		}
		leases[i] = g.ID
	}
	name := fmt.Sprintf("handover-%d", time.Now().UnixNano())
	resp, err := invokeRaw(ctx, clis[0], "/v3lockpb.Lock/Lock", lockReq(name, leases[0]))
	if err != nil {
		return nil, err
	}
	held, err := lockKey(resp)
	if err != nil {
		return nil, err
	}
	holder := 0
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		waiter := 1 - holder
		type result struct {
			key []byte
			at  time.Time
			err error
		}
		got := make(chan result, 1)
		go func() {
			r, err := invokeRaw(ctx, clis[waiter], "/v3lockpb.Lock/Lock", lockReq(name, leases[waiter]))
			at := time.Now()
			if err != nil {
				got <- result{err: err}
				return
			}
			k, err := lockKey(r)
			got <- result{key: k, at: at, err: err}
		}()
		time.Sleep(settle) // the waiter's key is in and it waits
		start := time.Now()
		if _, err := invokeRaw(ctx, clis[holder], "/v3lockpb.Lock/Unlock", bytesField(1, held)); err != nil {
			return nil, err
		}
		r := <-got
		if r.err != nil {
			return nil, r.err
		}
		out = append(out, r.at.Sub(start))
		held, holder = r.key, waiter
	}
	_, _ = invokeRaw(ctx, clis[holder], "/v3lockpb.Lock/Unlock", bytesField(1, held))
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out, nil
}

func cmdLockHandover(args []string) error {
	fs := flag.NewFlagSet("lockhandover", flag.ExitOnError)
	targets := fs.String("targets", "", "name=host:port,... (measured in this order)")
	n := fs.Int("n", 50, "hand-overs per target")
	settle := fs.Duration("settle", 200*time.Millisecond, "wait before each Unlock so the waiter is queued")
	_ = fs.Parse(args)
	ts, err := parseTargets(*targets)
	if err != nil {
		return err
	}
	fmt.Printf("%-8s %8s %10s %10s %10s %10s\n", "target", "n", "min", "median", "p90", "max")
	for _, t := range ts {
		d, err := handovers(t.endpoint, *n, *settle)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		ms := func(x time.Duration) string { return fmt.Sprintf("%.2fms", float64(x)/1e6) }
		fmt.Printf("%-8s %8d %10s %10s %10s %10s\n", t.name, len(d), ms(d[0]), ms(d[len(d)/2]),
			ms(d[len(d)*9/10]), ms(d[len(d)-1]))
	}
	return nil
}
