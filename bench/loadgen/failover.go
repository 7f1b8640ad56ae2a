package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// failoverSpec measures one leader failover as a client of the survivors sees it: from the
// SIGKILL of the leader's processes (sent here, so the clock starts at the kill itself and
// not at a process start-up) until a Put through a surviving member is acknowledged. The
// client is connected, and has written once, before the kill, so neither dialling nor
// gRPC's lazy set-up is timed. Each Put carries a short deadline: a request lost with the
// dead leader is retried soon after the new one is elected, as the e2e failover test does.
type failoverSpec struct {
	endpoint string
	pids     []int
	attempt  time.Duration // deadline of one Put
	timeout  time.Duration
}

type failoverResult struct {
	served   time.Duration
	attempts int
}

func runFailover(spec failoverSpec) (failoverResult, error) {
	c, err := newClient(spec.endpoint, true)
	if err != nil {
		return failoverResult{}, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = c.Put(ctx, "bench/failover", "before")
	cancel()
	if err != nil {
		return failoverResult{}, fmt.Errorf("write before the kill: %w", err)
	}
	killed := time.Now()
	for _, pid := range spec.pids {
		// A pid that already exited is not an error: what matters is that none survives.
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	attempts := 0
	var lastErr error
	for time.Since(killed) < spec.timeout {
		attempts++
		ctx, cancel := context.WithTimeout(context.Background(), spec.attempt)
		_, err := c.Put(ctx, "bench/failover", strconv.Itoa(attempts))
		cancel()
		if err == nil {
			return failoverResult{served: time.Since(killed), attempts: attempts}, nil
		}
		lastErr = err
		// A fast failure ("no leader") is retried after a short pause, not in a hot loop
		// that would take CPU from the members electing.
		time.Sleep(2 * time.Millisecond)
	}
	return failoverResult{}, fmt.Errorf("no write acknowledged within %v of the kill (%d attempts): %v",
		spec.timeout, attempts, lastErr)
}

func cmdFailover(args []string) error {
	fs := flag.NewFlagSet("failover", flag.ExitOnError)
	tgt := fs.String("target", "127.0.0.1:2379", "name=host:port of a member that survives")
	pids := fs.String("kill", "", "comma-separated pids to SIGKILL (the leader node's processes)")
	attempt := fs.Duration("attempt", 100*time.Millisecond, "deadline of one Put")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	budget := fs.Duration("budget", 0, "the acceptance bound shown beside the figures (3 x election timeout)")
	out := fs.String("out", "", "append a JSON-line record to this file")
	fs.Parse(args)
	ts, err := parseTargets(*tgt)
	if err != nil {
		return err
	}
	var ps []int
	for _, s := range strings.Split(*pids, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := strconv.Atoi(s)
		if err != nil || p <= 1 {
			return fmt.Errorf("bad pid %q", s)
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return fmt.Errorf("-kill required")
	}
	r, err := runFailover(failoverSpec{endpoint: ts[0].endpoint, pids: ps, attempt: *attempt, timeout: *timeout})
	if err != nil {
		return fmt.Errorf("%s: %w", ts[0].name, err)
	}
	logf("%s: first write acknowledged %.1fms after the leader kill (%d attempts)", ts[0].name, ms(r.served), r.attempts)
	return appendRecord(*out, record{System: ts[0].name, Kind: "failover", Name: "leader SIGKILL -> first acknowledged write",
		Ms: ms(r.served), Attempts: r.attempts, BudgetMs: ms(*budget)})
}
