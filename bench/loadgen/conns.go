package main

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// connPool is a set of independent clientv3 clients, each holding its own gRPC connection
// (one HTTP/2 connection to the single endpoint). "64 clients over 8 connections" means 64
// goroutines where goroutine i issues its requests on pool[i % 8], the same shape as etcd's
// own `benchmark --clients 64 --conns 8`.
type connPool []*clientv3.Client

// newClient dials one endpoint. block=true waits until the connection is up (benchmarks must
// not time their dial); block=false returns at once (the startup probe dials a server that is
// not listening yet). The reconnect backoff is cut to milliseconds so that the probe notices
// the server within a few ms of it opening its port instead of after gRPC's 1 s default.
func newClient(endpoint string, block bool) (*clientv3.Client, error) {
	opts := []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 5 * time.Millisecond, Multiplier: 1.2, MaxDelay: 20 * time.Millisecond},
		MinConnectTimeout: 500 * time.Millisecond,
	})}
	if block {
		opts = append(opts, grpc.WithBlock())
	}
	return clientv3.New(clientv3.Config{
		Endpoints:          []string{endpoint},
		DialTimeout:        10 * time.Second,
		DialOptions:        opts,
		Logger:             zap.NewNop(),
		MaxCallSendMsgSize: 8 << 20,
		MaxCallRecvMsgSize: 64 << 20,
	})
}

func openPool(endpoint string, conns int) (connPool, error) {
	pool := make(connPool, 0, conns)
	for i := 0; i < conns; i++ {
		c, err := newClient(endpoint, true)
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("dial %s: %w", endpoint, err)
		}
		pool = append(pool, c)
	}
	// One cheap request per connection so that the first measured op is not the one that
	// finishes HTTP/2 settings exchange or any lazy server-side setup.
	for _, c := range pool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Get(ctx, "bench/warmup", clientv3.WithSerializable())
		cancel()
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("first request to %s: %w", endpoint, err)
		}
	}
	return pool, nil
}

func (p connPool) Close() {
	for _, c := range p {
		c.Close()
	}
}
