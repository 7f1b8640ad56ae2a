package main

import (
	"context"
	"flag"
	"fmt"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
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
//
// With -pids, each record carries the server's CPU per op (all its processes, and split by
// process name) and the loadgen's own CPU per op, both over the measured window.
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
	pids := fs.String("pids", "", "name=pid,...: charge each workload the CPU of this server (and its children)")
	only := fs.String("workloads", "lease-keepalive,lease-grant-put-revoke", "which workloads to run")
	fs.Parse(args)
	// Fewer collections: the loadgen shares the cores with the servers it measures.
	debug.SetGCPercent(400)
	ts, err := parseTargets(*targets)
	if err != nil {
		return err
	}
	serverPid := map[string]int{}
	for _, part := range strings.Split(*pids, ",") {
		if part == "" {
			continue
		}
		name, v, _ := strings.Cut(part, "=")
		pid, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("bad -pids entry %q", part)
		}
		serverPid[name] = pid
	}
	want := map[string]bool{}
	for _, w := range strings.Split(*only, ",") {
		switch w = strings.TrimSpace(w); w {
		case "lease-keepalive", "lease-grant-put-revoke":
			want[w] = true
		case "":
		default:
			return fmt.Errorf("unknown lease workload %q", w)
		}
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
		// Which server goes first alternates round by round, as in the matrix.
		order := ts
		if r%2 == 1 {
			order = reversed(ts)
		}
		for _, t := range order {
			if !want["lease-keepalive"] {
				break
			}
			cpu := newCPUMeter(serverPid[t.name])
			rec, err := runKeepAlives(pools[t.name], *leases, *streams, *warmup, *duration, cpu)
			if err != nil {
				return fmt.Errorf("%s keep-alives: %w", t.name, err)
			}
			rec.System, rec.Conns = t.name, *conns
			if err := cpu.charge(&rec); err != nil {
				return fmt.Errorf("%s: cpu: %w", t.name, err)
			}
			logf("%s lease-keepalive %d streams: %.0f/s p50 %.2f ms p99 %.2f ms%s", t.name, *streams, rec.OpsPerSec, rec.P50Ms, rec.P99Ms, cpuText(rec))
			if err := appendRecord(*out, rec); err != nil {
				return err
			}
		}
		for _, t := range order {
			if !want["lease-grant-put-revoke"] {
				break
			}
			cpu := newCPUMeter(serverPid[t.name])
			rec := runLeaseCycles(pools[t.name], *clients, *warmup, *duration, cpu)
			rec.System, rec.Conns = t.name, *conns
			if err := cpu.charge(&rec); err != nil {
				return fmt.Errorf("%s: cpu: %w", t.name, err)
			}
			logf("%s lease-grant-put-revoke %d clients: %.0f/s p50 %.2f ms p99 %.2f ms%s", t.name, *clients, rec.OpsPerSec, rec.P50Ms, rec.P99Ms, cpuText(rec))
			if err := appendRecord(*out, rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// cpuMeter reads a server's CPU time (by process name) and the loadgen's own at the start
// and the end of a measured window. A zero pid measures nothing.
type cpuMeter struct {
	pid                int
	before, after      map[string]int64
	selfBefore, selfAt int64
	err                error
}

func newCPUMeter(pid int) *cpuMeter { return &cpuMeter{pid: pid} }

func (m *cpuMeter) start() {
	if m == nil || m.pid == 0 {
		return
	}
	m.selfBefore = selfCPUTicks()
	m.before, m.err = cpuTicksByProcess([]int{m.pid})
}

func (m *cpuMeter) end() {
	if m == nil || m.pid == 0 || m.err != nil {
		return
	}
	m.selfAt = selfCPUTicks()
	m.after, m.err = cpuTicksByProcess([]int{m.pid})
}

// charge fills rec's CPU figures (µs per successful op) from the two readings.
func (m *cpuMeter) charge(rec *record) error {
	if m == nil || m.pid == 0 || rec.Ops == 0 {
		return nil
	}
	if m.err != nil {
		return m.err
	}
	perOp := func(ticks int64) float64 { return float64(ticks) * 1e6 / userHz / float64(rec.Ops) }
	rec.CPUByProcess = map[string]float64{}
	var total int64
	for name, t := range m.after {
		d := t - m.before[name] // a process that started meanwhile counts from zero
		total += d
		rec.CPUByProcess[name] = perOp(d)
	}
	rec.CPUUsPerOp = perOp(total)
	rec.LoadgenCPUUsPerOp = perOp(m.selfAt - m.selfBefore)
	return nil
}

// cpuText is the log's CPU part: total and by process, then the loadgen's.
func cpuText(rec record) string {
	if rec.CPUUsPerOp == 0 {
		return ""
	}
	return fmt.Sprintf("; CPU us/op: server %.1f (%s), loadgen %.1f", rec.CPUUsPerOp,
		byProcessText(rec.CPUByProcess), rec.LoadgenCPUUsPerOp)
}

func byProcessText(m map[string]float64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.1f", n, m[n]))
	}
	return strings.Join(parts, ", ")
}

// measure runs worker(i, measuring) on n goroutines for warmup+duration; each worker
// returns after one op with its latency (or an error). Returns the cell record.
func measure(name string, n int, warmup, duration time.Duration, cpu *cpuMeter,
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
	cpu.start()
	measuring.Store(true)
	start := time.Now()
	time.Sleep(duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	cpu.end()
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

func runKeepAlives(pool connPool, leases, streams int, warmup, duration time.Duration, cpu *cpuMeter) (record, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Granted 64 at a time: one by one, 1,000 grants (an fsync each) take seconds.
	ids := make([]int64, leases)
	var grantErr error
	var grantMu sync.Mutex
	var grants sync.WaitGroup
	for w := 0; w < 64; w++ {
		grants.Add(1)
		go func(w int) {
			defer grants.Done()
			for i := w; i < leases; i += 64 {
				g, err := pool[i%len(pool)].Grant(ctx, 60)
				if err != nil {
					grantMu.Lock()
					grantErr = err
					grantMu.Unlock()
					return
				}
				ids[i] = int64(g.ID)
			}
		}(w)
	}
	grants.Wait()
	if grantErr != nil {
		return record{}, grantErr
	}
	defer func() {
		var revokes sync.WaitGroup
		for w := 0; w < 64; w++ {
			revokes.Add(1)
			go func(w int) {
				defer revokes.Done()
				for i := w; i < len(ids); i += 64 {
					if ids[i] == 0 {
						continue
					}
					rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
					pool[i%len(pool)].Revoke(rctx, clientv3.LeaseID(ids[i]))
					rcancel()
				}
			}(w)
		}
		revokes.Wait()
	}()
	ss := make([]pb.Lease_LeaseKeepAliveClient, streams)
	for i := range ss {
		s, err := pb.NewLeaseClient(pool[i%len(pool)].ActiveConnection()).LeaseKeepAlive(ctx)
		if err != nil {
			return record{}, err
		}
		ss[i] = s
	}
	logf("%d leases granted, %d keep-alive streams open", leases, streams)
	// Each stream's request and response messages are made once and reused (RecvMsg
	// unmarshals into the same struct): the loadgen shares the two cores with the server,
	// and what it allocates per keep-alive is GC work charged to neither system.
	reqs := make([]pb.LeaseKeepAliveRequest, streams)
	resps := make([]pb.LeaseKeepAliveResponse, streams)
	for i := range reqs {
		reqs[i].ID = ids[i%leases]
	}
	rec := measure("lease-keepalive", streams, warmup, duration, cpu, func(i int) (time.Duration, error) {
		st := time.Now()
		if err := ss[i].Send(&reqs[i]); err != nil {
			return 0, err
		}
		r := &resps[i]
		if err := ss[i].RecvMsg(r); err != nil {
			return 0, err
		}
		if r.TTL <= 0 {
			return 0, fmt.Errorf("lease %x not renewed (TTL %d)", r.ID, r.TTL)
		}
		if r.ID != reqs[i].ID {
			return 0, fmt.Errorf("keep-alive of lease %x answered for lease %x", reqs[i].ID, r.ID)
		}
		return time.Since(st), nil
	})
	return rec, nil
}

func runLeaseCycles(pool connPool, clients int, warmup, duration time.Duration, cpu *cpuMeter) record {
	var seq atomic.Int64
	return measure("lease-grant-put-revoke", clients, warmup, duration, cpu, func(i int) (time.Duration, error) {
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
