package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"rusd/tests/e2e/harness"
)

// putMany writes keys prefix/0000..prefix/(n-1) (value: the key plus `pad`) from `workers`
// concurrent goroutines and fails the test on the first error.
func putMany(t *testing.T, cli *clientv3.Client, prefix string, n, workers int, pad string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				k := fmt.Sprintf("%s/%04d", prefix, i)
				if _, err := cli.Put(ctx10s(t), k, k+pad); err != nil {
					errs <- fmt.Errorf("put %s: %w", k, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// waitAllKeys waits until a serializable range over prefix on `cli` holds n keys with the
// values putMany wrote.
func waitAllKeys(t *testing.T, cli *clientv3.Client, prefix string, n int, pad string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := cli.Get(ctx10s(t), prefix+"/", clientv3.WithPrefix(), clientv3.WithSerializable())
		if err == nil && len(resp.Kvs) == n {
			for _, kv := range resp.Kvs {
				if string(kv.Value) != string(kv.Key)+pad {
					t.Fatalf("key %s has value %q", kv.Key, kv.Value)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			got := -1
			if err == nil {
				got = len(resp.Kvs)
			}
			t.Fatalf("serializable range %s/: %d keys (err %v), want %d", prefix, got, err, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dirBytes sums the sizes of the regular files under dir (0 if it does not exist).
func dirBytes(dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
		return nil
	})
	return total
}

// A member that was down while the others compacted their logs past its last entry
// catches up through a snapshot streamed over the peer port, and has every key.
func TestSnapshotCatchUpAfterLogCompaction(t *testing.T) {
	const snapshotCount = 100
	c := harness.StartCluster(t, 3, harness.ClusterOptions{
		ExtraArgs: []string{fmt.Sprintf("--snapshot-count=%d", snapshotCount)},
	})
	leader := c.WaitLeader(10 * time.Second)
	lagging, live := c.OneFollowerAndTheRest(leader)
	cli := c.Client(live...)
	mustPut(t, cli, "before/stop", "1")
	lagging.Stop(10 * time.Second)

	// Well past the snapshot count: the live members compact their logs several times.
	const keys = 2000
	putMany(t, cli, "snap", keys, 16, "-value")

	lagging.Restart()
	lc := c.Client(lagging)
	waitAllKeys(t, lc, "snap", keys, "-value", 60*time.Second)
	waitSerializable(t, lc, "before/stop", "1", 10*time.Second)
	// It keeps up after the install: new writes reach it through the log again.
	mustPut(t, cli, "after/install", "2")
	waitSerializable(t, lc, "after/install", "2", 10*time.Second)
	if got, ok, err := getValue(lc, "snap/1999"); err != nil || !ok || got != "snap/1999-value" {
		t.Fatalf("linearizable get on the caught-up member: %q %v %v", got, ok, err)
	}
	if harness.KindOf(harness.TargetBin()) == harness.Rusd {
		log := lagging.LogTail(100000)
		if !strings.Contains(log, "received snapshot at index") ||
			!strings.Contains(log, "installed snapshot at index") {
			t.Fatalf("the lagging member did not catch up through a snapshot:\n%s", lagging.LogTail(80))
		}
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "received snapshot at index") || strings.Contains(line, "installed snapshot") {
				t.Log(line)
			}
		}
	}
}

// Under a steady write load the WAL and the snapshots stay bounded: WAL segments wholly
// below a snapshot are deleted, only the newest two snapshots are kept, and received
// snapshots do not pile up on the member that caught up.
func TestSnapshotDiskStaysBoundedUnderSteadyWrites(t *testing.T) {
	if harness.KindOf(harness.TargetBin()) != harness.Rusd {
		t.Skip("checks rusd's on-disk layout (member/wal, member/snap)")
	}
	c := harness.StartCluster(t, 3, harness.ClusterOptions{
		ExtraArgs: []string{"--snapshot-count=500"},
	})
	leader := c.WaitLeader(10 * time.Second)
	// One follower is down for the whole load and catches up from a large snapshot after.
	var down *harness.Server
	var live []*harness.Server
	for _, n := range c.Nodes {
		if n != leader && down == nil {
			down = n
		} else {
			live = append(live, n)
		}
	}
	down.Stop(10 * time.Second)
	cli := c.Client(live...)
	// 3 x 64 MiB WAL segments' worth of entries (about 200 MiB of values).
	pad := strings.Repeat("x", 20<<10)
	var walPeak int64
	for round := 0; round < 5; round++ {
		putMany(t, cli, fmt.Sprintf("r%d", round), 2000, 16, pad)
		for _, n := range c.Nodes {
			if w := dirBytes(filepath.Join(n.DataDir, "member", "wal")); w > walPeak {
				walPeak = w
			}
		}
	}
	start := time.Now()
	down.Restart()
	for round := 0; round < 5; round++ {
		waitAllKeys(t, c.Client(down), fmt.Sprintf("r%d", round), 2000, pad, 120*time.Second)
	}
	t.Logf("%s caught up with 10000 keys (store %d MiB) in %v after its restart", down.Name(),
		dirBytes(filepath.Join(leader.DataDir, "member", "store"))>>20, time.Since(start))
	for _, line := range strings.Split(down.LogTail(1000000), "\n") {
		if strings.Contains(line, "received snapshot at index") && strings.Contains(line, "files") {
			t.Log(line)
		}
	}
	for _, line := range strings.Split(leader.LogTail(1000000), "\n") {
		if strings.Contains(line, "streamed to") {
			t.Log(line)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for _, n := range c.Nodes {
		walDir := filepath.Join(n.DataDir, "member", "wal")
		segs, _ := filepath.Glob(filepath.Join(walDir, "*.wal"))
		snaps, _ := filepath.Glob(filepath.Join(n.DataDir, "member", "snap", "db-*"))
		t.Logf("%s: %d WAL segments (%d MiB), %d snapshots, store %d MiB", n.Name(), len(segs),
			dirBytes(walDir)>>20, len(snaps), dirBytes(filepath.Join(n.DataDir, "member", "store"))>>20)
		if len(segs) > 3 {
			t.Errorf("%s keeps %d WAL segments after ~200 MiB of writes with snapshots every 500 entries", n.Name(), len(segs))
		}
		if len(snaps) > 2 {
			t.Errorf("%s keeps %d snapshots, want at most 2", n.Name(), len(snaps))
		}
		// Snapshots received from the leader: the installed one became the store, older
		// ones are removed once stored is past them; no partial stream is left behind.
		recv, _ := filepath.Glob(filepath.Join(n.DataDir, "member", "snap", "recv-*"))
		if len(recv) > 1 {
			t.Errorf("%s keeps received snapshots %v, want at most one", n.Name(), recv)
		}
		for _, r := range recv {
			if strings.HasSuffix(r, ".partial") || strings.HasSuffix(r, ".tmp") {
				t.Errorf("%s keeps a partial received snapshot %s", n.Name(), r)
			}
		}
	}
	t.Logf("peak WAL size on any member: %d MiB", walPeak>>20)
}

// The install spans raftd and stored on the lagging member. A one-shot fault point
// (common/fault_point.h) kills raftd or stored exactly between two steps of it; the
// supervisor restarts the component, which recovers (stored: old store put back or new one
// kept; raftd: WAL restarted at the persisted point, install ordered again) and the member
// still ends with every key.
func TestSnapshotInstallSurvivesACrashBetweenSteps(t *testing.T) {
	if harness.KindOf(harness.TargetBin()) != harness.Rusd {
		t.Skip("uses rusd's fault points")
	}
	c := harness.StartCluster(t, 3, harness.ClusterOptions{ExtraArgs: []string{"--snapshot-count=100"}})
	leader := c.WaitLeader(10 * time.Second)
	lagging, live := c.OneFollowerAndTheRest(leader)
	cli := c.Client(live...)
	points := []string{"raftd-restore-point-written", "raftd-restore-wal-restarted",
		"stored-install-old-moved-aside", "stored-install-new-in-place"}
	for round, point := range points {
		lagging.Stop(10 * time.Second)
		prefix := fmt.Sprintf("crash%d", round)
		putMany(t, cli, prefix, 500, 16, "-v")
		snap := filepath.Join(lagging.DataDir, "member", "snap")
		if err := os.MkdirAll(snap, 0o700); err != nil {
			t.Fatal(err)
		}
		fault := filepath.Join(snap, "fault-"+point)
		if err := os.WriteFile(fault, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		lagging.Restart()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(fault); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the fault point was never reached:\n%s", point, lagging.LogTail(60))
			}
			time.Sleep(10 * time.Millisecond)
		}
		waitAllKeys(t, c.Client(lagging), prefix, 500, "-v", 60*time.Second)
		mustPut(t, cli, "after-"+prefix, "x")
		waitSerializable(t, c.Client(lagging), "after-"+prefix, "x", 10*time.Second)
		t.Logf("%s: crashed there, recovered, caught up", point)
	}
	for round := range points {
		waitAllKeys(t, c.Client(lagging), fmt.Sprintf("crash%d", round), 500, "-v", 10*time.Second)
	}
	log := lagging.LogTail(1000000)
	for _, mark := range []string{"does not reach the snapshot point", "is not confirmed installed",
		"install was interrupted before", "install was interrupted after"} {
		if !strings.Contains(log, mark) {
			t.Errorf("no recovery step %q in the lagging member's log", mark)
		}
	}
}

// A member that lags by less than the snapshot count catches up by appends: the log is
// compacted at the older of the two newest snapshots, so the entries after it stay for
// such followers (as etcd keeps SnapshotCatchUpEntries), and no snapshot is streamed.
func TestSnapshotNotNeededForASmallLag(t *testing.T) {
	if harness.KindOf(harness.TargetBin()) != harness.Rusd {
		t.Skip("reads rusd's log lines")
	}
	c := harness.StartCluster(t, 3, harness.ClusterOptions{ExtraArgs: []string{"--snapshot-count=100"}})
	leader := c.WaitLeader(10 * time.Second)
	lagging, live := c.OneFollowerAndTheRest(leader)
	cli := c.Client(live...)
	putMany(t, cli, "warm", 250, 8, "-v") // two snapshots before the stop: the log is compacted
	lagging.Stop(10 * time.Second)
	putMany(t, cli, "small", 90, 8, "-v") // less than --snapshot-count behind
	lagging.Restart()
	waitAllKeys(t, c.Client(lagging), "small", 90, "-v", 30*time.Second)
	waitAllKeys(t, c.Client(lagging), "warm", 250, "-v", 10*time.Second)
	if strings.Contains(lagging.LogTail(1000000), "received snapshot at index") {
		t.Fatalf("a member lagging by less than --snapshot-count got a snapshot:\n%s", lagging.LogTail(60))
	}
	if !strings.Contains(leader.LogTail(1000000), "log compacted at snapshot") {
		t.Fatalf("the leader never compacted its log:\n%s", leader.LogTail(60))
	}
}

// After compaction every member restarts from its persisted snapshot point: a SIGKILLed
// raftd on the leader and a whole member stopped and restarted come back with the log
// starting at the point (and the configuration from it), the cluster keeps serving, and a
// member that then falls behind is still sent a snapshot by the restarted leader.
func TestSnapshotPointSurvivesRestarts(t *testing.T) {
	if harness.KindOf(harness.TargetBin()) != harness.Rusd {
		t.Skip("kills rusd components")
	}
	c := harness.StartCluster(t, 3, harness.ClusterOptions{ExtraArgs: []string{"--snapshot-count=100"}})
	leader := c.WaitLeader(10 * time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes {
				t.Logf("---- %s ----\n%s", n.Name(), n.LogTail(150))
			}
		}
	})
	putMany(t, c.Client(), "a", 500, 16, "-v")
	old := leader.KillComponent("rusd-raftd")
	if _, err := leader.WaitComponentReplaced("rusd-raftd", old, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(leader.LogTail(1000000), "snapshot point: index") {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted raftd did not start from its snapshot point:\n%s", leader.LogTail(60))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The old leader's peers elect a new one once they miss its heartbeats: until then a
	// write waits for a leader and may fail, as with etcd.
	deadline = time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := c.Client().Put(ctx, "probe", "1")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write accepted after the raftd restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	newLeader := c.WaitLeader(10 * time.Second)
	putMany(t, c.Client(), "b", 300, 16, "-v")
	// A whole follower stops and restarts from its own point; then it lags behind the
	// (possibly restarted) leader's log start and gets a snapshot from it.
	var follower *harness.Server
	for _, n := range c.Nodes {
		if n != newLeader {
			follower = n
			break
		}
	}
	follower.Stop(10 * time.Second)
	var live []*harness.Server
	for _, n := range c.Nodes {
		if n != follower {
			live = append(live, n)
		}
	}
	putMany(t, c.Client(live...), "c", 1000, 16, "-v")
	follower.Restart()
	for _, n := range c.Nodes {
		cli := c.Client(n)
		waitAllKeys(t, cli, "a", 500, "-v", 60*time.Second)
		waitAllKeys(t, cli, "b", 300, "-v", 60*time.Second)
		waitAllKeys(t, cli, "c", 1000, "-v", 60*time.Second)
	}
	if !strings.Contains(follower.LogTail(1000000), "snapshot point: index") {
		t.Errorf("the restarted member did not start from its snapshot point")
	}
}

// Streaming a large snapshot (incompressible values) runs beside the peer message stream:
// while it is sent, received and installed, heartbeats keep flowing, so the leader and the
// term stay the same.
func TestSnapshotStreamDoesNotDisturbTheLeader(t *testing.T) {
	if harness.KindOf(harness.TargetBin()) != harness.Rusd {
		t.Skip("reads rusd's log lines")
	}
	c := harness.StartCluster(t, 3, harness.ClusterOptions{ExtraArgs: []string{"--snapshot-count=200"}})
	leader := c.WaitLeader(10 * time.Second)
	lagging, live := c.OneFollowerAndTheRest(leader)
	_, _, termBefore, err := leader.MemberStatus(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	lagging.Stop(10 * time.Second)
	// Incompressible but printable: random letters, a different run for each value.
	r := rand.New(rand.NewSource(1))
	rnd := make([]byte, 1<<20)
	for i := range rnd {
		rnd[i] = byte('a' + r.Intn(26))
	}
	pad := string(rnd[:24<<10])
	putMany(t, c.Client(live...), "big", 1500, 16, pad)
	start := time.Now()
	lagging.Restart()
	waitAllKeys(t, c.Client(lagging), "big", 1500, pad, 120*time.Second)
	took := time.Since(start)
	leaderNow, _, termAfter, err := leader.MemberStatus(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l := c.WaitLeader(10 * time.Second); l != leader || termAfter != termBefore {
		t.Fatalf("leadership moved while the snapshot streamed: leader %s (was %s), term %d -> %d",
			l.Name(), leader.Name(), termBefore, termAfter)
	}
	_ = leaderNow
	for _, line := range strings.Split(leader.LogTail(1000000)+"\n"+lagging.LogTail(1000000), "\n") {
		if strings.Contains(line, "streamed to") || strings.Contains(line, "files,") {
			t.Log(line)
		}
	}
	t.Logf("caught up with 1500 x 24 KiB values in %v; term %d throughout", took, termAfter)
}
