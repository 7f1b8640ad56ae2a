package main

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A workload is one kind of request the matrix measures. Every op picks its key uniformly at
// random from the prepared keyspace [0, keyspace) of matrixPrefix keys, so reads always hit
// existing keys and writes overwrite existing keys (the store grows by revisions, as a real
// cluster does between compactions).
type workload struct {
	name string
	desc string
	// op issues one request. r is the calling goroutine's own generator; value is a 256-byte
	// value owned by that goroutine.
	op func(ctx context.Context, c *clientv3.Client, r *rand.Rand, keyspace int, value string) error
}

const rangeKeys = 1000

var workloads = []workload{
	{"put", "Put of a random existing 32 B key, 256 B value",
		func(ctx context.Context, c *clientv3.Client, r *rand.Rand, n int, v string) error {
			_, err := c.Put(ctx, key(matrixPrefix, r.Intn(n)), v)
			return err
		}},
	{"get-serializable", "Range of one random key, serializable",
		func(ctx context.Context, c *clientv3.Client, r *rand.Rand, n int, _ string) error {
			resp, err := c.Get(ctx, key(matrixPrefix, r.Intn(n)), clientv3.WithSerializable())
			return expectCount(resp, err, 1)
		}},
	{"get-linearizable", "Range of one random key, linearizable (ReadIndex)",
		func(ctx context.Context, c *clientv3.Client, r *rand.Rand, n int, _ string) error {
			resp, err := c.Get(ctx, key(matrixPrefix, r.Intn(n)))
			return expectCount(resp, err, 1)
		}},
	{"txn", "Txn: if version(k) > 0 then put(k, v) else get(k) (compare-and-put)",
		func(ctx context.Context, c *clientv3.Client, r *rand.Rand, n int, v string) error {
			k := key(matrixPrefix, r.Intn(n))
			resp, err := c.Txn(ctx).
				If(clientv3.Compare(clientv3.Version(k), ">", 0)).
				Then(clientv3.OpPut(k, v)).
				Else(clientv3.OpGet(k)).
				Commit()
			if err != nil {
				return err
			}
			if !resp.Succeeded {
				return fmt.Errorf("txn compare failed on existing key %s", k)
			}
			return nil
		}},
	{"range-1000", "Range [k(i), k(i+1000)) = 1000 keys, linearizable",
		func(ctx context.Context, c *clientv3.Client, r *rand.Rand, n int, _ string) error {
			i := r.Intn(n - rangeKeys + 1)
			resp, err := c.Get(ctx, key(matrixPrefix, i), clientv3.WithRange(key(matrixPrefix, i+rangeKeys)))
			return expectCount(resp, err, rangeKeys)
		}},
}

// expectCount turns a short read into an error: a server that answers fast but wrong must not
// score.
func expectCount(resp *clientv3.GetResponse, err error, want int) error {
	if err != nil {
		return err
	}
	if len(resp.Kvs) != want {
		return fmt.Errorf("range returned %d kvs, want %d", len(resp.Kvs), want)
	}
	return nil
}

func workloadNames() string {
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.name
	}
	return strings.Join(names, ",")
}

// selectWorkloads resolves a comma-separated list ("all" = every workload, in matrix order).
func selectWorkloads(list string) ([]workload, error) {
	if list == "" || list == "all" {
		return workloads, nil
	}
	var out []workload
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, w := range workloads {
			if w.name == strings.TrimSpace(name) {
				out = append(out, w)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown workload %q (have %s)", name, workloadNames())
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return indexOf(out[a].name) < indexOf(out[b].name) })
	return out, nil
}

func indexOf(name string) int {
	for i, w := range workloads {
		if w.name == name {
			return i
		}
	}
	return len(workloads)
}
