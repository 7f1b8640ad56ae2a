package main

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// loadSpec writes keys [0, keys) of one prefix, each exactly once, 256 B values. Keys go out as
// txns of `batch` puts (etcd's default --max-txn-ops is 128) from `clients` concurrent
// goroutines, so the server sees few, large, concurrently batched proposals: this is the
// fastest honest way to fill a store through the public API.
type loadSpec struct {
	prefix    string
	keys      int
	batch     int
	clients   int
	opTimeout time.Duration
	progress  bool
}

type loadResult struct {
	keys    int
	elapsed time.Duration
}

func runLoad(pool connPool, spec loadSpec) (loadResult, error) {
	batches := (spec.keys + spec.batch - 1) / spec.batch
	var (
		next     atomic.Int64
		written  atomic.Int64
		failed   atomic.Bool
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	start := time.Now()
	stopProgress := make(chan struct{})
	if spec.progress {
		go func() {
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					w := written.Load()
					logf("load: %d/%d keys, %.0f keys/s", w, spec.keys, float64(w)/time.Since(start).Seconds())
				}
			}
		}()
	}
	for g := 0; g < spec.clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(time.Now().UnixNano() + int64(g)*104729))
			c := pool[g%len(pool)]
			ops := make([]clientv3.Op, 0, spec.batch)
			for !failed.Load() {
				b := int(next.Add(1) - 1)
				if b >= batches {
					return
				}
				ops = ops[:0]
				for i := b * spec.batch; i < (b+1)*spec.batch && i < spec.keys; i++ {
					ops = append(ops, clientv3.OpPut(key(spec.prefix, i), randomValue(r)))
				}
				err := withRetry(func() error {
					ctx, cancel := context.WithTimeout(context.Background(), spec.opTimeout)
					defer cancel()
					if len(ops) == 1 {
						_, err := c.Do(ctx, ops[0])
						return err
					}
					_, err := c.Txn(ctx).Then(ops...).Commit()
					return err
				})
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("batch %d: %w", b, err) })
					failed.Store(true)
					return
				}
				written.Add(int64(len(ops)))
			}
		}(g)
	}
	wg.Wait()
	close(stopProgress)
	if firstErr != nil {
		return loadResult{}, firstErr
	}
	return loadResult{keys: int(written.Load()), elapsed: time.Since(start)}, nil
}

// withRetry retries a write a few times: a put of the same key and value is idempotent for
// the purpose of filling a store, and a single transient timeout must not void a long load.
func withRetry(f func() error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}
