package main

import (
	"context"
	"math/rand"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// cellSpec is one cell of the matrix: a workload at a client/connection count, run for a fixed
// duration or until a fixed number of successful ops, after an unmeasured warm-up.
type cellSpec struct {
	w         workload
	clients   int
	conns     int
	keyspace  int
	duration  time.Duration // used when ops == 0
	ops       int64         // total successful ops across clients; 0 = run for duration
	warmup    time.Duration
	opTimeout time.Duration
	// Called when measurement starts (after the warm-up) and when the last measured op has
	// completed; the matrix reads the servers' CPU time there. May be nil.
	atStart, atEnd func()
}

type cellResult struct {
	ops      int64
	errors   int64
	firstErr string
	elapsed  time.Duration
	p50, p99 time.Duration
	// The loadgen's own CPU time (user + system, all threads) over the measured window.
	loadgenCPU time.Duration
}

func (r cellResult) opsPerSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

// runCell drives spec.clients goroutines in a closed loop (each waits for its reply before
// sending the next request), which is what both "1 client" and "64 clients" mean here.
func runCell(pool connPool, spec cellSpec) cellResult {
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		done      atomic.Int64
		errs      atomic.Int64
		firstErr  atomic.Value
		wg        sync.WaitGroup
	)
	lat := make([][]time.Duration, spec.clients)
	for g := 0; g < spec.clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(time.Now().UnixNano() + int64(g)*7919))
			value := randomValue(r)
			c := pool[g%len(pool)]
			mine := make([]time.Duration, 0, 1<<14)
			for !stop.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), spec.opTimeout)
				t0 := time.Now()
				err := spec.w.op(ctx, c, r, spec.keyspace, value)
				d := time.Since(t0)
				cancel()
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				mine = append(mine, d)
				if spec.ops > 0 && done.Add(1) >= spec.ops {
					stop.Store(true)
				}
			}
			lat[g] = mine
		}(g)
	}

	time.Sleep(spec.warmup)
	if spec.atStart != nil {
		spec.atStart()
	}
	cpu0 := selfCPU()
	start := time.Now()
	measuring.Store(true)
	if spec.ops == 0 {
		time.Sleep(spec.duration)
		stop.Store(true)
	}
	wg.Wait()
	if spec.atEnd != nil {
		spec.atEnd()
	}
	cpu1 := selfCPU()
	// With a duration, ops that were in flight at the deadline complete after it and are
	// counted; the elapsed time includes their tail, so ops/elapsed stays honest.
	elapsed := time.Since(start)

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	res := cellResult{ops: int64(len(all)), errors: errs.Load(), elapsed: elapsed, loadgenCPU: cpu1 - cpu0}
	if s, ok := firstErr.Load().(string); ok {
		res.firstErr = s
	}
	if len(all) > 0 {
		res.p50 = percentile(all, 0.50)
		res.p99 = percentile(all, 0.99)
	}
	return res
}

// percentile of an ascending slice, nearest-rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	idx := int(q*float64(len(sorted)) + 0.5)
	if idx >= len(sorted) {
		idx = len(sorted) - 1
	}
	if idx < 0 {
		idx = 0
	}
	return sorted[idx]
}
