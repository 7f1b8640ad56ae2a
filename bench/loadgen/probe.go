package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// probeSpec measures start-up as a client sees it: from the moment the server process was
// spawned (startNs, wall clock, taken by whoever spawned it) to the first successful Range.
// With wantKey set, success also requires that key to be present, which proves the server is
// serving the data it had before the restart rather than an empty or half-recovered store.
type probeSpec struct {
	endpoint     string
	startNs      int64
	wantKey      string
	linearizable bool
	timeout      time.Duration
}

type probeResult struct {
	sinceStart time.Duration
	attempts   int
}

func runProbe(spec probeSpec) (probeResult, error) {
	start := time.Unix(0, spec.startNs)
	if spec.startNs == 0 {
		start = time.Now()
	}
	deadline := start.Add(spec.timeout)
	host := strings.TrimPrefix(strings.TrimPrefix(spec.endpoint, "http://"), "https://")

	// Wait for the port with plain TCP first: cheap, and it keeps gRPC's reconnect state
	// machine out of the picture until there is something to connect to.
	for {
		conn, err := net.DialTimeout("tcp", host, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			return probeResult{}, fmt.Errorf("port %s never opened within %v: %v", host, spec.timeout, err)
		}
		time.Sleep(time.Millisecond)
	}

	c, err := newClient(spec.endpoint, false)
	if err != nil {
		return probeResult{}, err
	}
	defer c.Close()
	attempts := 0
	k := spec.wantKey
	if k == "" {
		k = "bench/probe"
	}
	var lastErr error
	for time.Now().Before(deadline) {
		attempts++
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		var opts []clientv3.OpOption
		if !spec.linearizable {
			opts = append(opts, clientv3.WithSerializable())
		}
		resp, err := c.Get(ctx, k, opts...)
		cancel()
		if err == nil && (spec.wantKey == "" || len(resp.Kvs) == 1) {
			return probeResult{sinceStart: time.Since(start), attempts: attempts}, nil
		}
		if err == nil {
			err = fmt.Errorf("key %q not (yet) present", spec.wantKey)
		}
		lastErr = err
		time.Sleep(2 * time.Millisecond)
	}
	return probeResult{}, fmt.Errorf("no successful Range within %v (%d attempts): %v", spec.timeout, attempts, lastErr)
}
