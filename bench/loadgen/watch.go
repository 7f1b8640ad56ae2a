package main

// loadgen watch: watch fan-out, the same load against each target in turn.
//
//	loadgen watch -targets etcd=127.0.0.1:23790,rusd=127.0.0.1:24790 \
//	  -pids etcd=PID,rusd=FRONTEND_PID [-watchers 10000] [-prefix-watchers 100] ...
//
// Per target: -watchers watchers on distinct keys wb/00000.. (spread over -streams gRPC
// watch streams on -conns connections) plus -prefix-watchers on the prefix wb/ (10 per
// stream), so every put is delivered -prefix-watchers + 1 times. Then two phases of
// -duration each: "steady" (-rate puts/s, open loop) and "max" (-putters closed-loop
// clients). Each put carries its send time; a receiver computes put-to-event latency for the
// exact-key watcher and for one prefix watcher. Memory: VmRSS of -pids (rusd: the frontend,
// which holds the watchers) before and after creating the watchers, scaled to 10,000.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type watchResult struct {
	Kind          string  `json:"kind"`
	System        string  `json:"system"`
	Phase         string  `json:"phase"`
	Watchers      int     `json:"watchers"`
	Puts          int64   `json:"puts"`
	Events        int64   `json:"events"`
	EventsPerSec  float64 `json:"events_per_s"`
	LatP50us      float64 `json:"lat_p50_us"`
	LatP99us      float64 `json:"lat_p99_us"`
	PutP50us      float64 `json:"put_p50_us"`
	PutP99us      float64 `json:"put_p99_us"`
	EventsPerResp float64 `json:"events_per_response"`
	CPUusPerEvent float64 `json:"server_cpu_us_per_event"`
	MemPer10kKiB  int64   `json:"mem_per_10k_watchers_kib"`
	CreateSeconds float64 `json:"create_s"`
	Loadgen       string  `json:"loadgen"`
	PutErrors     int64   `json:"put_errors"`
	// The loadgen's own CPU (getrusage, all threads) over the phase: per event, and in
	// cores (CPU seconds per second) — on two cores, the share it takes from the servers.
	LoadgenCPUusPerEvent float64 `json:"loadgen_cpu_us_per_event"`
	LoadgenCPUCores      float64 `json:"loadgen_cpu_cores"`
}

// selfCPUSeconds is this process's user + system CPU time.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func cmdWatch(args []string) error {
	fs := flag.NewFlagSet("watch", flag.ExitOnError)
	targets := fs.String("targets", "127.0.0.1:2379", "name=host:port[,...], measured one after the other")
	pids := fs.String("pids", "", "name=pid[,...]: the process whose VmRSS holds the watchers")
	cpuPids := fs.String("cpu-pids", "", "name=pid[,...]: the server (and its children) charged CPU per event")
	watchers := fs.Int("watchers", 10000, "watchers on distinct keys")
	prefixWatchers := fs.Int("prefix-watchers", 100, "watchers on the common prefix")
	fanoutPrefix := fs.Int("fanout-prefix-watchers", 1000,
		"prefix watchers in the fanout phase (closed loop, like max); <= -prefix-watchers: no fanout phase")
	streams := fs.Int("streams", 100, "watch streams for the distinct-key watchers")
	conns := fs.Int("conns", 10, "gRPC connections carrying the watch streams")
	duration := fs.Duration("duration", 5*time.Second, "measured time per phase")
	rate := fs.Int("rate", 500, "puts/s in the steady phase")
	putters := fs.Int("putters", 16, "closed-loop put clients in the max phase")
	out := fs.String("out", "", "append JSON-line records to this file")
	fs.Parse(args)

	ts, err := parseTargets(*targets)
	if err != nil {
		return err
	}
	pidOf := map[string]int{}
	for _, part := range strings.Split(*pids, ",") {
		if name, p, ok := strings.Cut(part, "="); ok {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("bad -pids %q", part)
			}
			pidOf[name] = n
		}
	}
	cpuOf := map[string]int{}
	for _, part := range strings.Split(*cpuPids, ",") {
		if name, p, ok := strings.Cut(part, "="); ok {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("bad -cpu-pids %q", part)
			}
			cpuOf[name] = n
		}
	}
	var all []watchResult
	for _, t := range ts {
		rs, err := runWatchBench(t, pidOf[t.name], cpuOf[t.name], *watchers, *prefixWatchers, *streams, *conns,
			*fanoutPrefix, *duration, *rate, *putters)
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		all = append(all, rs...)
		if *out != "" {
			f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			for _, r := range rs {
				b, _ := json.Marshal(r)
				f.Write(append(b, '\n'))
			}
			f.Close()
		}
	}
	printWatchTable(all, ts)
	return nil
}

func runWatchBench(t target, pid, cpuPid, nWatch, nPrefix, nStreams, nConns, fanoutPrefix int, dur time.Duration,
	rate, putters int) ([]watchResult, error) {
	fmt.Fprintf(os.Stderr, "watch bench: %s at %s\n", t.name, t.endpoint)
	wpool, err := openPool(t.endpoint, nConns)
	if err != nil {
		return nil, err
	}
	defer wpool.Close()
	ppool, err := openPool(t.endpoint, 4)
	if err != nil {
		return nil, err
	}
	defer ppool.Close()

	var memBefore int64
	if pid > 0 {
		m, err := memOf(pid, false)
		if err != nil {
			return nil, err
		}
		memBefore = m.rssKiB
	}

	var phase atomic.Int32 // 0 idle, 1 steady, 2 max
	var events, responses [4]atomic.Int64
	var latMu sync.Mutex
	lat := [4][]time.Duration{}
	counts := watchCounts{
		onEvents: func(n int) {
			p := phase.Load()
			events[p].Add(int64(n))
			responses[p].Add(1)
		},
		onSample: func(values [][]byte) {
			p := phase.Load()
			if p == 0 {
				return
			}
			now := time.Now().UnixNano()
			latMu.Lock()
			for _, v := range values {
				if sent, ok := parseSendTime(v); ok {
					lat[p] = append(lat[p], time.Duration(now-sent))
				}
			}
			latMu.Unlock()
		},
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key := func(i int) string { return fmt.Sprintf("wb/%05d", i) }
	ledger := newDeliveryLedger(nWatch)

	// Stream s < nStreams carries the key watchers i = s, s + nStreams, ...; the streams
	// after them carry the prefix watchers, 10 each. Every key watcher and the first prefix
	// watcher sample latency.
	var specs [][]watchSpec
	for s := 0; s < nStreams; s++ {
		var ws []watchSpec
		for i := s; i < nWatch; i += nStreams {
			ws = append(ws, watchSpec{key: key(i), sample: true, got: &ledger.keyGot[i]})
		}
		specs = append(specs, ws)
	}
	prefixSpecs := func(n int, sampleFirst bool) [][]watchSpec {
		var out [][]watchSpec
		for p := 0; p < n; p++ {
			if p%10 == 0 {
				out = append(out, nil)
			}
			out[len(out)-1] = append(out[len(out)-1], watchSpec{key: "wb/", rangeEnd: "wb0", sample: sampleFirst && p == 0,
				got: ledger.addPrefixWatcher()})
		}
		return out
	}
	specs = append(specs, prefixSpecs(nPrefix, true)...)

	errs := make(chan error, 1) // the first error a stream reports
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var readers sync.WaitGroup
	nextStream := 0
	// openStreams opens one stream per spec list, creates its watchers and starts its
	// receiver; it returns once every watcher is created.
	openStreams := func(specs [][]watchSpec) error {
		var wg sync.WaitGroup
		for _, ws := range specs {
			s := nextStream
			nextStream++
			wg.Add(1)
			go func(s int, ws []watchSpec) {
				defer wg.Done()
				st, err := openWatchStream(ctx, wpool[s%len(wpool)].ActiveConnection(), counts)
				if err == nil {
					err = st.create(ws, 30*time.Second)
				}
				if err != nil {
					report(fmt.Errorf("stream %d: %w", s, err))
					return
				}
				readers.Add(1)
				go func() {
					defer readers.Done()
					if err := st.run(ctx); err != nil {
						report(fmt.Errorf("stream %d: %w", s, err))
					}
				}()
			}(s, ws)
		}
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
			return nil
		}
	}

	created := time.Now()
	if err := openStreams(specs); err != nil {
		return nil, err
	}
	createSecs := time.Since(created).Seconds()
	time.Sleep(time.Second)
	var memPer10k int64
	if pid > 0 {
		m, err := memOf(pid, false)
		if err != nil {
			return nil, err
		}
		memPer10k = (m.rssKiB - memBefore) * 10000 / int64(nWatch+nPrefix)
	}
	fmt.Fprintf(os.Stderr, "  %d + %d watchers created in %.1f s\n", nWatch, nPrefix, createSecs)

	var putMu sync.Mutex
	var putLat []time.Duration
	// checkDelivery: since the last check, every watcher must have received one event per
	// acknowledged put it watches, and none beyond the tried ones (deliveryLedger). It waits
	// for the events in flight while they keep coming (the backlog grows with the phase).
	checkDelivery := func() error {
		w := ledger.awaitDelivery(3*time.Second, 120*time.Second)
		time.Sleep(200 * time.Millisecond) // duplicates, if any, would come now
		w = ledger.window()
		select {
		case err := <-errs:
			return err
		default:
		}
		if err := w.verify(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "  delivery check: %d events for %d puts, %d key + %d prefix watchers each in range\n",
			w.received(), sum(w.done), len(w.keyGot), len(w.prefixGot))
		ledger.commit(w)
		return nil
	}
	put := func(cli *clientv3.Client, rng *rand.Rand) bool {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		k := rng.Intn(nWatch)
		ledger.tried[k].Add(1)
		t0 := time.Now()
		_, err := cli.Put(c, key(k), strconv.FormatInt(t0.UnixNano(), 10))
		d := time.Since(t0)
		if err == nil {
			ledger.done[k].Add(1)
		}
		putMu.Lock()
		putLat = append(putLat, d)
		putMu.Unlock()
		return err == nil
	}
	var results []watchResult
	phases := []struct {
		id   int32
		name string
	}{{1, "steady"}, {2, "max"}}
	if fanoutPrefix > nPrefix {
		phases = append(phases, struct {
			id   int32
			name string
		}{3, "fanout"})
	}
	for _, ph := range phases {
		if ph.id == 3 {
			// The fan-out phase: more prefix watchers (on new streams), so that every put
			// is delivered 1 + fanoutPrefix times and delivery, not the put path, is what
			// the servers spend their CPU on.
			if err := checkDelivery(); err != nil {
				return nil, err
			}
			t0 := time.Now()
			if err := openStreams(prefixSpecs(fanoutPrefix-nPrefix, false)); err != nil {
				return nil, err
			}
			fmt.Fprintf(os.Stderr, "  %d more prefix watchers created in %.1f s\n", fanoutPrefix-nPrefix,
				time.Since(t0).Seconds())
			time.Sleep(500 * time.Millisecond)
		}
		var puts, putErrors atomic.Int64
		putMu.Lock()
		putLat = putLat[:0]
		putMu.Unlock()
		stop := make(chan struct{})
		var pw sync.WaitGroup
		n := putters
		if ph.id == 1 {
			n = 8
		}
		var cpu0 int64
		if cpuPid > 0 {
			cpu0, _ = cpuTicksOf(cpuPid)
		}
		lg0 := selfCPUSeconds()
		phase.Store(ph.id)
		start := time.Now()
		for g := 0; g < n; g++ {
			pw.Add(1)
			go func(g int) {
				defer pw.Done()
				rng := rand.New(rand.NewSource(int64(g) + 1))
				cli := ppool[g%len(ppool)]
				if ph.id >= 2 {
					for {
						select {
						case <-stop:
							return
						default:
						}
						if put(cli, rng) {
							puts.Add(1)
						} else {
							putErrors.Add(1)
						}
					}
				}
				// Open loop: put g of n issues one put every n/rate seconds.
				interval := time.Duration(int64(time.Second) * int64(n) / int64(rate))
				next := time.Now().Add(time.Duration(g) * interval / time.Duration(n))
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Until(next)):
					}
					next = next.Add(interval)
					if put(cli, rng) {
						puts.Add(1)
					} else {
						putErrors.Add(1)
					}
				}
			}(g)
		}
		time.Sleep(dur)
		close(stop)
		elapsed := time.Since(start)
		lgCPU := selfCPUSeconds() - lg0
		got := events[ph.id].Load()
		gotResponses := responses[ph.id].Load()
		var cpuPerEvent float64
		if cpuPid > 0 && got > 0 {
			cpu1, _ := cpuTicksOf(cpuPid)
			cpuPerEvent = float64(cpu1-cpu0) * 1e6 / userHz / float64(got)
		}
		pw.Wait()
		// Events still in flight when the phase ended are not counted as delivered in it.
		phase.Store(0)
		time.Sleep(500 * time.Millisecond)
		latMu.Lock()
		l := append([]time.Duration(nil), lat[ph.id]...)
		latMu.Unlock()
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		q := func(f float64) float64 {
			if len(l) == 0 {
				return 0
			}
			return float64(l[int(f*float64(len(l)-1))].Microseconds())
		}
		putMu.Lock()
		pl := append([]time.Duration(nil), putLat...)
		putMu.Unlock()
		sort.Slice(pl, func(i, j int) bool { return pl[i] < pl[j] })
		var putP50, putP99 float64
		if len(pl) > 0 {
			putP50 = float64(pl[len(pl)/2].Microseconds())
			putP99 = float64(pl[int(0.99*float64(len(pl)-1))].Microseconds())
		}
		watchersNow := nWatch + nPrefix
		if ph.id == 3 {
			watchersNow = nWatch + fanoutPrefix
		}
		r := watchResult{PutP50us: putP50, PutP99us: putP99, EventsPerResp: float64(got) / float64(max(gotResponses, 1)), CPUusPerEvent: cpuPerEvent, Kind: "watch", System: t.name, Phase: ph.name, Watchers: watchersNow,
			Puts: puts.Load(), Events: got, EventsPerSec: float64(got) / elapsed.Seconds(),
			LatP50us: q(0.5), LatP99us: q(0.99), MemPer10kKiB: memPer10k, CreateSeconds: createSecs,
			Loadgen: "go", PutErrors: putErrors.Load(), LoadgenCPUCores: lgCPU / elapsed.Seconds()}
		if got > 0 {
			r.LoadgenCPUusPerEvent = lgCPU * 1e6 / float64(got)
		}
		fmt.Fprintf(os.Stderr, "  %s: %d puts (p50 %.0f µs, %d errors), %.0f events/s, latency p50 %.0f µs p99 %.0f µs, loadgen %.2f cores\n",
			ph.name, r.Puts, r.PutP50us, r.PutErrors, r.EventsPerSec, r.LatP50us, r.LatP99us, r.LoadgenCPUCores)
		results = append(results, r)
	}
	if err := checkDelivery(); err != nil {
		return nil, err
	}
	cancel()
	readers.Wait()
	return results, nil
}

func printWatchTable(rs []watchResult, ts []target) {
	by := map[string]map[string]watchResult{}
	for _, r := range rs {
		if by[r.Phase] == nil {
			by[r.Phase] = map[string]watchResult{}
		}
		by[r.Phase][r.System] = r
	}
	base, cand := ts[0].name, ts[len(ts)-1].name
	fmt.Printf("%-34s %14s %14s %10s\n", "watch fan-out", base, cand, cand+"/"+base)
	ratio := func(a, b float64) string {
		if a == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", b/a)
	}
	for _, ph := range []string{"steady", "max", "fanout"} {
		b, c := by[ph][base], by[ph][cand]
		if b.Phase == "" && c.Phase == "" {
			continue
		}
		if ph == "fanout" {
			fmt.Printf("%-34s %14d %14d\n", "fanout: watchers", b.Watchers, c.Watchers)
		}
		fmt.Printf("%-34s %14.0f %14.0f %10s\n", ph+": events delivered/s", b.EventsPerSec, c.EventsPerSec,
			ratio(b.EventsPerSec, c.EventsPerSec))
		fmt.Printf("%-34s %14d %14d %10s\n", ph+": puts", b.Puts, c.Puts, ratio(float64(b.Puts), float64(c.Puts)))
		fmt.Printf("%-34s %14.0f %14.0f %10s\n", ph+": put-to-event p50 µs", b.LatP50us, c.LatP50us,
			ratio(b.LatP50us, c.LatP50us))
		fmt.Printf("%-34s %14.0f %14.0f %10s\n", ph+": put-to-event p99 µs", b.LatP99us, c.LatP99us,
			ratio(b.LatP99us, c.LatP99us))
		fmt.Printf("%-34s %14.0f %14.0f %10s\n", ph+": put RPC p50 µs", b.PutP50us, c.PutP50us,
			ratio(b.PutP50us, c.PutP50us))
		fmt.Printf("%-34s %14.0f %14.0f %10s\n", ph+": put RPC p99 µs", b.PutP99us, c.PutP99us,
			ratio(b.PutP99us, c.PutP99us))
		fmt.Printf("%-34s %14.2f %14.2f %10s\n", ph+": events per response", b.EventsPerResp, c.EventsPerResp,
			ratio(b.EventsPerResp, c.EventsPerResp))
		fmt.Printf("%-34s %14.2f %14.2f %10s\n", ph+": server CPU µs/event", b.CPUusPerEvent,
			c.CPUusPerEvent, ratio(b.CPUusPerEvent, c.CPUusPerEvent))
		fmt.Printf("%-34s %14.2f %14.2f %10s\n", ph+": loadgen CPU µs/event", b.LoadgenCPUusPerEvent,
			c.LoadgenCPUusPerEvent, ratio(b.LoadgenCPUusPerEvent, c.LoadgenCPUusPerEvent))
		fmt.Printf("%-34s %14.2f %14.2f %10s\n", ph+": loadgen CPU cores", b.LoadgenCPUCores,
			c.LoadgenCPUCores, ratio(b.LoadgenCPUCores, c.LoadgenCPUCores))
		if b.PutErrors+c.PutErrors > 0 {
			fmt.Printf("%-34s %14d %14d\n", ph+": put errors", b.PutErrors, c.PutErrors)
		}
	}
	b, c := by["max"][base], by["max"][cand]
	fmt.Printf("%-34s %14d %14d %10s\n", "memory per 10,000 watchers KiB", b.MemPer10kKiB, c.MemPer10kKiB,
		ratio(float64(b.MemPer10kKiB), float64(c.MemPer10kKiB)))
	fmt.Printf("%-34s %14.1f %14.1f %10s\n", "creating the watchers s", b.CreateSeconds, c.CreateSeconds,
		ratio(b.CreateSeconds, c.CreateSeconds))
}
