package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// cmdLease measures leases on each target, alternating targets per workload:
//
//	lease-keepalive          -streams LeaseKeepAlive streams (spread over -conns connections),
//	                         each renewing its own lease (-leases leases in all) in a closed
//	                         loop: send, wait for the answer, send again. ops = keep-alives.
//	lease-grant-put-revoke   -clients goroutines over -conns connections, each looping
//	                         Grant(TTL 60) -> Put(key, lease) -> Revoke. ops = cycles.
func cmdLease(args []string) error {
	fs := flag.NewFlagSet("lease", flag.ExitOnError)
	targets := fs.String("targets", "", "name=host:port,...")
	leases := fs.Int("leases", 1000, "leases kept alive")
	streams := fs.Int("streams", 1000, "keep-alive streams")
	clients := fs.Int("clients", 64, "grant+put+revoke clients")
	conns := fs.Int("conns", 8, "connections per target")
	duration := fs.Duration("duration", 3*time.Second, "measured time per workload")
	warmup := fs.Duration("warmup", 300*time.Millisecond, "unmeasured time before each")
	rounds := fs.Int("rounds", 1, "rounds")
	out := fs.String("out", "", "results file (JSON lines)")
	fs.Parse(args)
	ts, err := parseTargets(*targets)
	if err != nil {
		return err
	}
	if *streams < 1 || *leases < 1 {
		return fmt.Errorf("-streams and -leases must be >= 1")
	}
	pools := map[string]connPool{}
	for _, t := range ts {
		p, err := openPool(t.endpoint, *conns)
		if err != nil {
			return err
		}
		defer p.Close()
		pools[t.name] = p
	}
	for r := 0; r < *rounds; r++ {
		for _, t := range ts {
			rec, err := runKeepAlives(pools[t.name], *leases, *streams, *warmup, *duration)
			if err != nil {
				return fmt.Errorf("%s keep-alives: %w", t.name, err)
			}
			rec.System, rec.Conns = t.name, *conns
			logf("%s lease-keepalive %d streams: %.0f/s p50 %.2f ms p99 %.2f ms", t.name, *streams, rec.OpsPerSec, rec.P50Ms, rec.P99Ms)
			if err := appendRecord(*out, rec); err != nil {
				return err
			}
		}
		for _, t := range ts {
			rec := runLeaseCycles(pools[t.name], *clients, *warmup, *duration)
			rec.System, rec.Conns = t.name, *conns
			logf("%s lease-grant-put-revoke %d clients: %.0f/s p50 %.2f ms p99 %.2f ms", t.name, *clients, rec.OpsPerSec, rec.P50Ms, rec.P99Ms)
			if err := appendRecord(*out, rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// measure runs worker(i, measuring) on n goroutines for warmup+duration; each worker
// returns after one op with its latency (or an error). Returns the cell record.
func measure(name string, n int, warmup, duration time.Duration,
	op func(i int) (time.Duration, error)) record {
	var measuring, stop atomic.Bool
	var errs atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for !stop.Load() {
				d, err := op(i)
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat[i] = append(lat[i], d)
			}
		}(i)
	}
	time.Sleep(warmup)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	rec := record{Kind: "cell", Name: name, Clients: n, Ops: int64(len(all)), Errors: errs.Load(),
		Seconds: elapsed.Seconds(), OpsPerSec: float64(len(all)) / elapsed.Seconds()}
	if len(all) > 0 {
		rec.P50Ms = ms(all[len(all)/2])
		rec.P99Ms = ms(all[len(all)*99/100])
	}
	if e, ok := firstErr.Load().(string); ok {
		rec.FirstError = e
	}
	return rec
}

func runKeepAlives(pool connPool, leases, streams int, warmup, duration time.Duration) (record, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ids := make([]int64, leases)
	for i := range ids {
		g, err := pool[i%len(pool)].Grant(ctx, 60)
		if err != nil {
			return record{}, err
		}
		ids[i] = int64(g.ID)
	}
	defer func() {
		for i, id := range ids {
			rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
			pool[i%len(pool)].Revoke(rctx, clientv3.LeaseID(id))
			rcancel()
		}
	}()
	ss := make([]pb.Lease_LeaseKeepAliveClient, streams)
	for i := range ss {
		s, err := pb.NewLeaseClient(pool[i%len(pool)].ActiveConnection()).LeaseKeepAlive(ctx)
		if err != nil {
			return record{}, err
		}
		ss[i] = s
	}
	rec := measure("lease-keepalive", streams, warmup, duration, func(i int) (time.Duration, error) {
		st := time.Now()
		if err := ss[i].Send(&pb.LeaseKeepAliveRequest{ID: ids[i%leases]}); err != nil {
			return 0, err
		}
		r, err := ss[i].Recv()
		if err != nil {
			return 0, err
		}
		if r.TTL <= 0 {
			return 0, fmt.Errorf("lease %x not renewed (TTL %d)", r.ID, r.TTL)
		}
		return time.Since(st), nil
	})
	return rec, nil
}

func runLeaseCycles(pool connPool, clients int, warmup, duration time.Duration) record {
	var seq atomic.Int64
	return measure("lease-grant-put-revoke", clients, warmup, duration, func(i int) (time.Duration, error) {
		c := pool[i%len(pool)]
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st := time.Now()
		g, err := c.Grant(ctx, 60)
		if err != nil {
			return 0, err
		}
		if _, err := c.Put(ctx, fmt.Sprintf("bench/lease/%d", seq.Add(1)%10000), "v", clientv3.WithLease(g.ID)); err != nil {
			return 0, err
		}
		if _, err := c.Revoke(ctx, g.ID); err != nil {
			return 0, err
		}
		return time.Since(st), nil
	})
}
