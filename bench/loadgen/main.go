// Command loadgen drives etcd-compatible servers through the official Go client
// (go.etcd.io/etcd/client/v3) and records what it measured as JSON lines.
//
//	loadgen matrix  -targets etcd=127.0.0.1:23790,rusd=127.0.0.1:24790 [-duration 3s] ...
//	loadgen load    -targets ... -keys 1000000
//	loadgen probe   -target rusd=127.0.0.1:24790 -start-ns $(date +%s%N) -want-key K
//	loadgen failover -target rusd=127.0.0.1:24790 -kill PID,PID -budget 3s
//	loadgen rss     -system rusd -pid PID -children
//	loadgen report  -results FILE -base etcd -cand rusd
//	loadgen lease   -targets ... [-leases 1000 -streams 1000 -clients 64 -conns 8]
//	loadgen watch   -targets etcd=...,rusd=... -pids etcd=PID,rusd=FRONTEND_PID (watch.go)
//
// Every subcommand that measures appends records to -out; `report` prints the table.
// See bench/README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "matrix":
		err = cmdMatrix(args)
	case "load":
		err = cmdLoad(args)
	case "probe":
		err = cmdProbe(args)
	case "failover":
		err = cmdFailover(args)
	case "rss":
		err = cmdRss(args)
	case "report":
		err = cmdReport(args)
	case "lease":
		err = cmdLease(args)
	case "watch":
		err = cmdWatch(args)
	case "lockhandover":
		err = cmdLockHandover(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadgen %s: %v\n", cmd, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadgen matrix|load|probe|failover|rss|report|lease|watch|lockhandover [flags]  (-h for flags)")
	os.Exit(2)
}

type target struct{ name, endpoint string }

// parseTargets reads "name=host:port,name=host:port" (a bare host:port is named "server").
func parseTargets(s string) ([]target, error) {
	var out []target
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, ep, ok := strings.Cut(part, "=")
		if !ok {
			name, ep = "server", part
		}
		out = append(out, target{name, ep})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no -targets given")
	}
	return out, nil
}

type shape struct{ clients, conns int }

func parseShapes(s string) ([]shape, error) {
	var out []shape
	for _, part := range strings.Split(s, ",") {
		var sh shape
		if _, err := fmt.Sscanf(strings.TrimSpace(part), "%dx%d", &sh.clients, &sh.conns); err != nil ||
			sh.clients < 1 || sh.conns < 1 || sh.conns > sh.clients {
			return nil, fmt.Errorf("bad shape %q: want CLIENTSxCONNS, e.g. 64x8", part)
		}
		out = append(out, sh)
	}
	return out, nil
}

func cmdMatrix(args []string) error {
	fs := flag.NewFlagSet("matrix", flag.ExitOnError)
	targets := fs.String("targets", "127.0.0.1:2379", "name=host:port[,name=host:port]; cells alternate between targets")
	list := fs.String("workloads", "all", "comma-separated subset of "+workloadNames())
	shapes := fs.String("shapes", "1x1,64x8", "CLIENTSxCONNS list")
	duration := fs.Duration("duration", 3*time.Second, "measured time per cell")
	ops := fs.Int64("ops", 0, "if > 0, measure this many successful ops per cell instead of -duration")
	warmup := fs.Duration("warmup", 300*time.Millisecond, "unmeasured time before each cell")
	keyspace := fs.Int("keyspace", 100000, "keys the matrix reads and overwrites (>= 1000)")
	prepare := fs.Bool("prepare", true, "write the keyspace first (needed once per server)")
	opTimeout := fs.Duration("op-timeout", 10*time.Second, "per-request deadline")
	pids := fs.String("pids", "", "name=pid[+pid...][,...]: charge each cell the CPU of these servers (and their children); several pids per name for a cluster")
	rounds := fs.Int("rounds", 1, "run the whole matrix this many times; the report takes medians")
	out := fs.String("out", "", "append JSON-line records to this file")
	fs.Parse(args)

	ts, err := parseTargets(*targets)
	if err != nil {
		return err
	}
	ws, err := selectWorkloads(*list)
	if err != nil {
		return err
	}
	shs, err := parseShapes(*shapes)
	if err != nil {
		return err
	}
	serverPid := map[string][]int{}
	if *pids != "" {
		for _, part := range strings.Split(*pids, ",") {
			name, v, _ := strings.Cut(part, "=")
			for _, one := range strings.Split(v, "+") {
				var pid int
				if _, err := fmt.Sscanf(one, "%d", &pid); err != nil {
					return fmt.Errorf("bad -pids entry %q", part)
				}
				serverPid[name] = append(serverPid[name], pid)
			}
		}
	}
	if *keyspace < rangeKeys {
		return fmt.Errorf("-keyspace must be >= %d", rangeKeys)
	}

	// One pool per (target, connection count), opened up front and reused by every cell.
	pools := map[string]connPool{}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	poolFor := func(t target, conns int) (connPool, error) {
		id := fmt.Sprintf("%s/%d", t.name, conns)
		if p, ok := pools[id]; ok {
			return p, nil
		}
		p, err := openPool(t.endpoint, conns)
		if err != nil {
			return nil, err
		}
		pools[id] = p
		return p, nil
	}

	if *prepare {
		for _, t := range ts {
			p, err := poolFor(t, 8)
			if err != nil {
				return err
			}
			logf("%s: writing the %d-key matrix keyspace", t.name, *keyspace)
			r, err := runLoad(p, loadSpec{prefix: matrixPrefix, keys: *keyspace, batch: 100, clients: 32, opTimeout: 30 * time.Second})
			if err != nil {
				return fmt.Errorf("%s: prepare: %w", t.name, err)
			}
			logf("%s: keyspace written in %.1fs", t.name, r.elapsed.Seconds())
		}
	}

	for round := 1; round <= *rounds; round++ {
		cell := 0
		if *rounds > 1 {
			logf("matrix round %d of %d", round, *rounds)
		}
		for _, w := range ws {
			for _, sh := range shs {
				// Alternate which target goes first, cell by cell and round by round, so that a
				// slow drift of background load, or whatever one server leaves running after its
				// turn, does not always land on the same system: over an even number of rounds
				// every cell runs once in each order.
				order := ts
				if (cell+round)%2 == 0 {
					order = reversed(ts)
				}
				cell++
				for _, t := range order {
					p, err := poolFor(t, sh.conns)
					if err != nil {
						return err
					}
					// CPU the server spent in the measured window (not the warm-up).
					servers, charged := serverPid[t.name]
					var before, after int64
					var cpuErr error
					spec := cellSpec{w: w, clients: sh.clients, conns: sh.conns, keyspace: *keyspace,
						duration: *duration, ops: *ops, warmup: *warmup, opTimeout: *opTimeout}
					if charged {
						spec.atStart = func() { before, cpuErr = cpuTicksOfAll(servers) }
						spec.atEnd = func() {
							if cpuErr == nil {
								after, cpuErr = cpuTicksOfAll(servers)
							}
						}
					}
					res := runCell(p, spec)
					if cpuErr != nil {
						return fmt.Errorf("%s: cpu: %w", t.name, cpuErr)
					}
					var cpuUsPerOp, loadgenUsPerOp float64
					if charged && res.ops > 0 {
						cpuUsPerOp = float64(after-before) * 1e6 / userHz / float64(res.ops)
					}
					if res.ops > 0 {
						loadgenUsPerOp = float64(res.loadgenCPU.Microseconds()) / float64(res.ops)
					}
					logf("%-6s %-17s %2d/%d  %9.0f ops/s  p50 %7.2fms  p99 %7.2fms  cpu %6.0fus/op  loadgen %5.1fus/op  errors %d %s",
						t.name, w.name, sh.clients, sh.conns, res.opsPerSec(), ms(res.p50), ms(res.p99), cpuUsPerOp, loadgenUsPerOp, res.errors, res.firstErr)
					if err := appendRecord(*out, record{System: t.name, Kind: "cell", Name: w.name, Loadgen: "go", LoadgenCPUUsPerOp: loadgenUsPerOp,
						Clients: sh.clients, Conns: sh.conns, Ops: res.ops, Errors: res.errors, FirstError: res.firstErr,
						Seconds: res.elapsed.Seconds(), OpsPerSec: res.opsPerSec(), P50Ms: ms(res.p50), P99Ms: ms(res.p99), CPUUsPerOp: cpuUsPerOp}); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func reversed(ts []target) []target {
	out := make([]target, len(ts))
	for i, t := range ts {
		out[len(ts)-1-i] = t
	}
	return out
}

func cmdLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	targets := fs.String("targets", "127.0.0.1:2379", "name=host:port[,...]; loaded one after the other")
	keys := fs.Int("keys", 1000000, "distinct 32 B keys to write, 256 B values")
	batch := fs.Int("batch", 100, "puts per txn (1 = plain Put); etcd's default --max-txn-ops is 128")
	clients := fs.Int("clients", 64, "concurrent writers")
	conns := fs.Int("conns", 8, "gRPC connections they share")
	opTimeout := fs.Duration("op-timeout", 60*time.Second, "per-txn deadline")
	out := fs.String("out", "", "append JSON-line records to this file")
	fs.Parse(args)
	ts, err := parseTargets(*targets)
	if err != nil {
		return err
	}
	for _, t := range ts {
		p, err := openPool(t.endpoint, *conns)
		if err != nil {
			return err
		}
		logf("%s: loading %d keys (txns of %d puts, %d clients over %d conns)", t.name, *keys, *batch, *clients, *conns)
		r, err := runLoad(p, loadSpec{prefix: loadPrefix, keys: *keys, batch: *batch, clients: *clients, opTimeout: *opTimeout, progress: true})
		p.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		rate := float64(r.keys) / r.elapsed.Seconds()
		logf("%s: loaded %d keys in %.1fs (%.0f keys/s)", t.name, r.keys, r.elapsed.Seconds(), rate)
		if err := appendRecord(*out, record{System: t.name, Kind: "load", Name: fmt.Sprintf("load %d keys", *keys),
			Keys: r.keys, Seconds: r.elapsed.Seconds(), OpsPerSec: rate}); err != nil {
			return err
		}
	}
	return nil
}

func cmdProbe(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	tgt := fs.String("target", "127.0.0.1:2379", "name=host:port")
	startNs := fs.Int64("start-ns", 0, "wall-clock ns when the server was spawned (date +%s%N); 0 = now")
	wantKey := fs.String("want-key", "", "succeed only once this key is served")
	wantLoaded := fs.Int("want-loaded", 0, "shorthand: want the last key written by `load -keys N`")
	serializable := fs.Bool("serializable", false, "probe with a serializable Range instead of a linearizable one")
	timeout := fs.Duration("timeout", 120*time.Second, "give up after this long")
	name := fs.String("name", "after restart", "label of the figure")
	out := fs.String("out", "", "append a JSON-line record to this file")
	fs.Parse(args)
	ts, err := parseTargets(*tgt)
	if err != nil {
		return err
	}
	k := *wantKey
	if *wantLoaded > 0 {
		k = key(loadPrefix, *wantLoaded-1)
	}
	r, err := runProbe(probeSpec{endpoint: ts[0].endpoint, startNs: *startNs, wantKey: k,
		linearizable: !*serializable, timeout: *timeout})
	if err != nil {
		return fmt.Errorf("%s: %w", ts[0].name, err)
	}
	logf("%s: first successful Range %.1fms after start (%d attempts)", ts[0].name, ms(r.sinceStart), r.attempts)
	return appendRecord(*out, record{System: ts[0].name, Kind: "startup", Name: *name, Ms: ms(r.sinceStart), Attempts: r.attempts})
}

func cmdRss(args []string) error {
	fs := flag.NewFlagSet("rss", flag.ExitOnError)
	system := fs.String("system", "server", "name of the system measured")
	pid := fs.Int("pid", 0, "process id")
	children := fs.Bool("children", false, "add the direct children of -pid (rusd's three components)")
	name := fs.String("name", "after load", "label of the figure")
	out := fs.String("out", "", "append a JSON-line record to this file")
	fs.Parse(args)
	if *pid <= 0 {
		return fmt.Errorf("-pid required")
	}
	m, err := memOf(*pid, *children)
	if err != nil {
		return err
	}
	logf("%s: RSS %.0f MiB, PSS %.0f MiB over %d process(es)", *system, kib(m.rssKiB), kib(m.pssKiB), m.procs)
	return appendRecord(*out, record{System: *system, Kind: "rss", Name: *name, RssKiB: m.rssKiB, PssKiB: m.pssKiB, Procs: m.procs})
}

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	results := fs.String("results", "", "JSON-lines file written by the other subcommands")
	base := fs.String("base", "etcd", "system in the denominator")
	cand := fs.String("cand", "rusd", "system in the numerator")
	fs.Parse(args)
	recs, err := readRecords(*results)
	if err != nil {
		return err
	}
	writeReport(os.Stdout, recs, *base, *cand)
	return nil
}
