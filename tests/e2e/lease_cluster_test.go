package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"rusd/tests/e2e/harness"
)

// Leases on a 3-node cluster: only the leader runs the lease clocks, so a follower forwards
// keep-alives and TimeToLive to it; a leader failover neither expires a live lease nor
// keeps a dead one.

// followers returns the running nodes other than leader.
func followers(c *harness.Cluster, leader *harness.Server) []*harness.Server {
	var out []*harness.Server
	for _, s := range c.Nodes {
		if s != leader && s.Pid() != 0 {
			out = append(out, s)
		}
	}
	return out
}

func memberID(t *testing.T, s *harness.Server) uint64 {
	t.Helper()
	id, _, _, err := s.MemberStatus(5 * time.Second)
	if err != nil {
		t.Fatalf("status of %s: %v", s.Name(), err)
	}
	return id
}

// timeToLiveEverywhere asks every given node for the lease's TimeToLive (with keys) and
// fails unless they agree: same granted TTL and keys, remaining TTLs within a second.
func timeToLiveEverywhere(t *testing.T, c *harness.Cluster, id clientv3.LeaseID,
	nodes ...*harness.Server) *clientv3.LeaseTimeToLiveResponse {
	t.Helper()
	// The members are asked one after the other while keep-alives may be flowing: a renewal
	// between two answers moves the TTL by up to the whole TTL. A real disagreement lasts,
	// so a mismatch is asked again before it counts.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		first, mismatch := timeToLiveOnce(t, c, id, nodes...)
		if mismatch == "" {
			return first
		}
		if attempt == attempts {
			t.Errorf("%s (%d attempts)", mismatch, attempts)
			return first
		}
		t.Logf("%s; asking again", mismatch)
	}
}

// timeToLiveOnce asks each member once; mismatch describes the first member whose answer
// differs from the first member's ("" if none).
func timeToLiveOnce(t *testing.T, c *harness.Cluster, id clientv3.LeaseID,
	nodes ...*harness.Server) (first *clientv3.LeaseTimeToLiveResponse, mismatch string) {
	t.Helper()
	for _, s := range nodes {
		r, err := c.Client(s).TimeToLive(ctx10s(t), id, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatalf("timetolive on %s: %v", s.Name(), err)
		}
		if want := memberID(t, s); r.ResponseHeader.MemberId != want {
			t.Errorf("timetolive on %s: header member %x, want %x (the member asked, as etcd)",
				s.Name(), r.ResponseHeader.MemberId, want)
		}
		if first == nil {
			first = r
			continue
		}
		d := r.TTL - first.TTL
		if mismatch == "" && (r.GrantedTTL != first.GrantedTTL || d < -1 || d > 1 ||
			fmt.Sprint(sortedKeys(r.Keys)) != fmt.Sprint(sortedKeys(first.Keys))) {
			mismatch = fmt.Sprintf("timetolive on %s: ttl %d granted %d keys %q; on %s: ttl %d granted %d keys %q",
				s.Name(), r.TTL, r.GrantedTTL, r.Keys, nodes[0].Name(), first.TTL, first.GrantedTTL,
				first.Keys)
		}
	}
	return first, mismatch
}

// sortedKeys: etcd lists a lease's keys in map order.
func sortedKeys(keys [][]byte) []string {
	var out []string
	for _, k := range keys {
		out = append(out, string(k))
	}
	sort.Strings(out)
	return out
}

func TestLeaseClusterFollowerKeepAliveAndTimeToLive(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	f := followers(c, leader)[0]
	fid := memberID(t, f)

	// clientv3 through the follower only.
	cli := c.Client(f)
	g, err := cli.Grant(ctx10s(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, cli, "lf/a", "v", clientv3.WithLease(g.ID))
	mustPut(t, cli, "lf/b", "v", clientv3.WithLease(g.ID))
	time.Sleep(1100 * time.Millisecond) // let the clock run, so a renew is visible
	ka, err := cli.KeepAliveOnce(ctx10s(t), g.ID)
	if err != nil {
		t.Fatalf("keep-alive through follower %s: %v", f.Name(), err)
	}
	if ka.TTL != 10 || ka.ID != g.ID {
		t.Errorf("keep-alive: id %x ttl %d, want %x 10", ka.ID, ka.TTL, g.ID)
	}
	if ka.ResponseHeader.MemberId != fid {
		t.Errorf("keep-alive header member %x, want the follower's %x (etcd fills it locally)",
			ka.ResponseHeader.MemberId, fid)
	}
	ttl, err := cli.TimeToLive(ctx10s(t), g.ID, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatalf("timetolive through follower: %v", err)
	}
	if ttl.TTL < 9 || ttl.TTL > 10 || ttl.GrantedTTL != 10 || len(ttl.Keys) != 2 {
		t.Errorf("timetolive right after a renew: ttl %d granted %d keys %q", ttl.TTL,
			ttl.GrantedTTL, ttl.Keys)
	}
	// An unknown lease: TTL -1 (etcdctl "already expired"); its keep-alive answers TTL 0.
	if r, err := cli.TimeToLive(ctx10s(t), 0x1234); err != nil || r.TTL != -1 {
		t.Errorf("timetolive of an unknown lease: %v %v", r, err)
	}
	if _, err := cli.KeepAliveOnce(ctx10s(t), 0x1234); err != rpctypes.ErrLeaseNotFound {
		t.Errorf("keep-alive of an unknown lease: %v, want %v", err, rpctypes.ErrLeaseNotFound)
	}

	// A keep-alive stream through the follower holds a 2 s lease for 3 × its TTL.
	short, err := cli.Grant(ctx10s(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, cli, "lf/short", "v", clientv3.WithLease(short.ID))
	kctx, stop := context.WithCancel(context.Background())
	defer stop()
	ch, err := cli.KeepAlive(kctx, short.ID)
	if err != nil {
		t.Fatal(err)
	}
	answers := 0
	deadline := time.After(6 * time.Second)
loop:
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				t.Fatalf("keep-alive stream through follower closed after %d answers", answers)
			}
			if r.TTL == 2 {
				answers++
			}
		case <-deadline:
			break loop
		}
	}
	if answers < 4 {
		t.Errorf("%d keep-alive answers in 6 s (TTL 2 s), want at least 4", answers)
	}
	if v, ok, err := getValue(cli, "lf/short"); err != nil || !ok || v != "v" {
		t.Errorf("key of the kept-alive 2 s lease after 6 s: %q %v %v", v, ok, err)
	}

	// etcdctl 3.4 against the follower, byte for byte as against etcd.
	id := fmt.Sprintf("%016x", int64(g.ID))
	expectOut(t, f, "lease "+id+" keepalived with TTL(10)\n", "", "lease", "keep-alive", "--once", id)
	out := f.MustEtcdctl("", "lease", "timetolive", "--keys", id)
	re := regexp.MustCompile(`^lease ` + id + ` granted with TTL\(10s\), remaining\((9|10)s\), attached keys\(\[(lf/a lf/b|lf/b lf/a)\]\)\n$`)
	if !re.MatchString(out) {
		t.Errorf("etcdctl timetolive --keys on the follower: %q", out)
	}
	expectOut(t, f, "lease 0000000000001234 already expired\n", "", "lease", "timetolive", "1234")

	// The JSON gateway on the follower forwards too.
	post := func(path, body string) (int, string) {
		t.Helper()
		resp, err := http.Post(f.ClientURL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	dec := strconv.FormatInt(int64(g.ID), 10)
	if code, body := post("/v3/kv/lease/timetolive", `{"ID":`+dec+`}`); code != 200 ||
		!strings.Contains(body, `"grantedTTL":"10"`) {
		t.Errorf("gateway timetolive on the follower: %d %s", code, body)
	}
	if code, body := post("/v3/lease/keepalive", `{"ID":`+dec+`}`); code != 200 ||
		!strings.Contains(body, `"TTL":"10"`) {
		t.Errorf("gateway keepalive on the follower: %d %s", code, body)
	}

	// Every member, the leader included, tells the same time to live.
	timeToLiveEverywhere(t, c, g.ID, c.Nodes...)
}

// keepAliveGaps consumes a keep-alive channel until it closes and records the longest
// silence between two answers and how many came after `mark` was closed.
type keepAliveGaps struct {
	mu      sync.Mutex
	last    time.Time
	longest time.Duration
	after   int
	closed  bool
	done    chan struct{}
}

func watchKeepAlives(ch <-chan *clientv3.LeaseKeepAliveResponse, mark <-chan struct{}) *keepAliveGaps {
	g := &keepAliveGaps{last: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		for r := range ch {
			now := time.Now()
			g.mu.Lock()
			if d := now.Sub(g.last); d > g.longest {
				g.longest = d
			}
			g.last = now
			select {
			case <-mark:
				if r.TTL > 0 {
					g.after++
				}
			default:
			}
			g.mu.Unlock()
		}
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
	}()
	return g
}

func (g *keepAliveGaps) snapshot() (longest time.Duration, after int, closed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.longest, g.after, g.closed
}

func TestLeaseClusterSurvivesLeaderKill(t *testing.T) {
	const ttl = 5 // seconds
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	fs := followers(c, leader)
	// One client on a follower only (its stream stays; the follower forwards), one that
	// starts on the leader's endpoint (its stream breaks with the node and reconnects to
	// the other follower).
	viaFollower := c.Client(fs[0])
	viaLeader := c.Client(leader, fs[1])

	grant := func(cli *clientv3.Client, key string) clientv3.LeaseID {
		g, err := cli.Grant(ctx10s(t), ttl)
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, cli, key, "v", clientv3.WithLease(g.ID))
		return g.ID
	}
	kept1 := grant(viaFollower, "lk/kept-follower")
	kept2 := grant(viaLeader, "lk/kept-leader")
	mark := make(chan struct{})
	kctx, stop := context.WithCancel(context.Background())
	defer stop()
	var gaps []*keepAliveGaps
	for _, k := range []struct {
		cli *clientv3.Client
		id  clientv3.LeaseID
	}{{viaFollower, kept1}, {viaLeader, kept2}} {
		ch, err := k.cli.KeepAlive(kctx, k.id)
		if err != nil {
			t.Fatal(err)
		}
		gaps = append(gaps, watchKeepAlives(ch, mark))
	}
	time.Sleep(2 * time.Second) // keep-alives flowing before the kill
	dead := grant(viaFollower, "lk/not-kept")
	granted := time.Now()

	killed := time.Now()
	leader.Kill()
	close(mark)
	newLeader := c.WaitLeaderAmong(clusterFailoverBudget+5*time.Second, fs...)
	t.Logf("new leader %s %v after the kill", newLeader.Name(), time.Since(killed))

	// The lease nobody keeps alive must not expire before its TTL, and must expire at most
	// TTL + failover + the new leader's extension (the election timeout) + 1 s after its
	// grant.
	cli := c.Client(fs...)
	bound := granted.Add(ttl*time.Second + clusterFailoverBudget + clusterElectionTimeout + time.Second)
	for {
		_, ok, err := getValue(cli, "lk/not-kept")
		if err == nil && !ok {
			break
		}
		if time.Now().After(bound) {
			t.Fatalf("the lease nobody kept alive is still there %v after its grant (TTL %d s)",
				time.Since(granted), ttl)
		}
		time.Sleep(50 * time.Millisecond)
	}
	gone := time.Since(granted)
	if gone < ttl*time.Second {
		t.Errorf("the lease nobody kept alive expired %v after its grant, before its TTL %d s", gone, ttl)
	}
	t.Logf("lease not kept alive: gone %v after its grant (TTL %d s, leader killed %v after it)",
		gone, ttl, killed.Sub(granted))

	// The kept-alive leases live on for 2 × TTL after the kill, keys included.
	for time.Since(killed) < 2*ttl*time.Second {
		time.Sleep(200 * time.Millisecond)
	}
	for i, key := range []string{"lk/kept-follower", "lk/kept-leader"} {
		if v, ok, err := getValue(cli, key); err != nil || !ok || v != "v" {
			t.Errorf("key %s of a kept-alive lease after the leader's kill: %q %v %v", key, v, ok, err)
		}
		longest, after, closed := gaps[i].snapshot()
		t.Logf("%s: %d keep-alive answers after the kill, longest silence %v", key, after, longest)
		if closed || after < 2 {
			t.Errorf("%s: keep-alive channel closed %v, %d answers after the kill", key, closed, after)
		}
		// The new leader extends every TTL by the election timeout (etcd 3.4 was seen silent
		// for up to 4.95 s here).
		if longest >= ttl*time.Second+clusterElectionTimeout {
			t.Errorf("%s: no keep-alive answer for %v (TTL %d s)", key, longest, ttl)
		}
	}
	for _, id := range []clientv3.LeaseID{kept1, kept2} {
		r := timeToLiveEverywhere(t, c, id, fs...)
		if r.TTL <= 0 || r.GrantedTTL != ttl || len(r.Keys) != 1 {
			t.Errorf("lease %x after the failover: ttl %d granted %d keys %q", id, r.TTL, r.GrantedTTL, r.Keys)
		}
	}
	if r, err := cli.TimeToLive(ctx10s(t), dead); err != nil || r.TTL != -1 {
		t.Errorf("timetolive of the expired lease: %v %v", r, err)
	}

	// The killed node comes back and agrees.
	leader.Restart()
	for _, id := range []clientv3.LeaseID{kept1, kept2} {
		timeToLiveEverywhere(t, c, id, c.Nodes...)
	}
	stop()
}

// A member cut off from the others (both killed) has no leader to forward to: after etcd's
// request timeout (5 s + 2 × election timeout) TimeToLive and keep-alives fail with etcd's
// "etcdserver: no leader". Raw gRPC: clientv3 would retry Unavailable until its deadline.
func TestLeaseClusterNoLeaderError(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	f := followers(c, leader)
	g, err := c.Client(leader).Grant(ctx10s(t), 30)
	if err != nil {
		t.Fatal(err)
	}
	leader.Kill()
	f[1].Kill()
	conn, err := grpc.Dial(f[0].Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	lease := pb.NewLeaseClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = lease.LeaseTimeToLive(ctx, &pb.LeaseTimeToLiveRequest{ID: int64(g.ID)})
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "etcdserver: no leader" {
		t.Errorf("timetolive without a leader: %v, want Unavailable etcdserver: no leader", err)
	}
	t.Logf("timetolive without a leader failed after %v: %v", time.Since(start), err)
	stream, err := lease.LeaseKeepAlive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(g.ID)}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	_, err = stream.Recv()
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "etcdserver: no leader" {
		t.Errorf("keep-alive without a leader: %v, want Unavailable etcdserver: no leader", err)
	}
	t.Logf("keep-alive without a leader failed after %v: %v", time.Since(start), err)
}

// The leader cut off by a partition (it never answers, no connection is refused): a
// follower's forwarded keep-alives give up on it after an election timeout and reach the
// new leader, so a lease kept alive through the follower survives; a lease nobody keeps
// alive still expires. After healing, the old leader agrees. Root only (network
// namespaces).
func TestLeaseClusterNetnsPartitionedLeader(t *testing.T) {
	const ttl = 5 // seconds
	c := harness.StartNetnsCluster(t, 3, harness.ClusterOptions{})
	old := c.WaitLeader(5 * time.Second)
	fs := followers(c, old)
	cli := c.Client(fs[0])
	kept, err := cli.Grant(ctx10s(t), ttl)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, cli, "lp/kept", "v", clientv3.WithLease(kept.ID))
	kctx, stop := context.WithCancel(context.Background())
	defer stop()
	ch, err := cli.KeepAlive(kctx, kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	mark := make(chan struct{})
	gaps := watchKeepAlives(ch, mark)
	time.Sleep(2 * time.Second)
	dead, err := cli.Grant(ctx10s(t), ttl)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, cli, "lp/not-kept", "v", clientv3.WithLease(dead.ID))
	granted := time.Now()
	c.Partition(old)
	close(mark)
	newLeader := c.WaitLeaderAmong(clusterFailoverBudget+5*time.Second, fs...)
	t.Logf("new leader %s %v after the partition", newLeader.Name(), time.Since(granted))

	maj := c.Client(fs...)
	bound := granted.Add(ttl*time.Second + clusterFailoverBudget + clusterElectionTimeout + time.Second)
	for {
		_, ok, err := getValue(maj, "lp/not-kept")
		if err == nil && !ok {
			break
		}
		if time.Now().After(bound) {
			t.Fatalf("the lease nobody kept alive is still there %v after its grant", time.Since(granted))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("lease not kept alive: gone %v after its grant (TTL %d s)", time.Since(granted), ttl)
	for time.Since(granted) < 2*ttl*time.Second {
		time.Sleep(200 * time.Millisecond)
	}
	if v, ok, err := getValue(maj, "lp/kept"); err != nil || !ok || v != "v" {
		t.Errorf("key of the kept-alive lease after the partition: %q %v %v", v, ok, err)
	}
	longest, after, closed := gaps.snapshot()
	t.Logf("%d keep-alive answers after the partition, longest silence %v", after, longest)
	if closed || after < 2 {
		t.Errorf("keep-alive channel closed %v, %d answers after the partition", closed, after)
	}
	c.Heal()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := c.Client(old).TimeToLive(ctx10s(t), kept.ID)
		if err == nil && r.TTL > 0 && r.GrantedTTL == ttl {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the healed old leader's timetolive: %v %v", r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	timeToLiveEverywhere(t, c, kept.ID, c.Nodes...)
	stop()
}

// A measurement, skipped unless E2E_LEASE_RATE is set: keep-alives per second over 32 raw
// streams (one lease each, one request in flight per stream) through the leader and
// through a follower (forwarded), 3 s each.
func TestLeaseClusterKeepAliveRate(t *testing.T) {
	if os.Getenv("E2E_LEASE_RATE") == "" {
		t.Skip("a measurement: set E2E_LEASE_RATE=1")
	}
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	f := followers(c, leader)[0]
	const streams = 32
	var ids []int64
	for i := 0; i < streams; i++ {
		g, err := c.Client(leader).Grant(ctx10s(t), 60)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, int64(g.ID))
	}
	rate := func(s *harness.Server) float64 {
		conn, err := grpc.Dial(s.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		lease := pb.NewLeaseClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var total int64
		var mu sync.Mutex
		var wg sync.WaitGroup
		end := time.Now().Add(3 * time.Second)
		for _, id := range ids {
			wg.Add(1)
			go func(id int64) {
				defer wg.Done()
				st, err := lease.LeaseKeepAlive(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				n := int64(0)
				for time.Now().Before(end) {
					if err := st.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
						t.Error(err)
						return
					}
					if r, err := st.Recv(); err != nil || r.TTL != 60 {
						t.Errorf("keep-alive: %v %v", r, err)
						return
					}
					n++
				}
				_ = st.CloseSend()
				mu.Lock()
				total += n
				mu.Unlock()
			}(id)
		}
		wg.Wait()
		return float64(total) / 3
	}
	onLeader := rate(leader)
	onFollower := rate(f)
	t.Logf("%v: keep-alives/s over %d streams: leader %.0f, follower %.0f (%.2fx)",
		leader.Kind, streams, onLeader, onFollower, onFollower/onLeader)
}
