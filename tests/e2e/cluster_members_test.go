package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"rusd/tests/e2e/harness"
)

// Membership changes end to end (issue 3 item 4), each compared with etcd's behaviour:
// errors by rpctypes value (code and text), etcdctl output by its fixed phrases.

func memberCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 15*time.Second)
}

func memberIDOf(t *testing.T, s *harness.Server) uint64 {
	t.Helper()
	id, _, _, err := s.MemberStatus(5 * time.Second)
	if err != nil {
		t.Fatalf("status of %s: %v", s.Name(), err)
	}
	return id
}

// waitMembers polls MemberList on `s` until it has n members.
func waitMembers(t *testing.T, c *harness.Cluster, s *harness.Server, n int) *clientv3.MemberListResponse {
	t.Helper()
	return waitMemberList(t, c, s, fmt.Sprintf("%d members", n), func(r *clientv3.MemberListResponse) bool {
		return len(r.Members) == n
	})
}

// waitMemberList polls s's member list until `ok` holds. A member list is served from the
// member's own applied state, so a member that has not applied the latest change yet shows
// the previous list for a moment (on etcd as on rusd).
func waitMemberList(t *testing.T, c *harness.Cluster, s *harness.Server, want string,
	ok func(*clientv3.MemberListResponse) bool) *clientv3.MemberListResponse {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := c.Client(s).MemberList(ctx)
		cancel()
		if err == nil && ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("member list on %s: want %s, got %v %v", s.Name(), want, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settle waits out etcd's --strict-reconfig-check: member changes are refused with
// "etcdserver: unhealthy cluster" until every voter has been connected for 5 s.
func settle() { time.Sleep(5500 * time.Millisecond) }

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	// clientv3 turns the errors it knows into rpctypes.EtcdError; others stay gRPC statuses.
	if err == nil || rpctypes.ErrorDesc(err) != rpctypes.ErrorDesc(want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func TestMembersErrorsForUnknownAndWrongMembersMatchEtcd(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	cli := c.Client(leader)
	ctx, cancel := memberCtx()
	defer cancel()
	// Right after the start the peers have not been connected for 5 s yet.
	_, err := cli.MemberAdd(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", harness.FreePorts(t, 1)[0])})
	wantErr(t, "add right after the start", err, rpctypes.ErrUnhealthy)
	settle()
	const unknown = 0x1234
	_, err = cli.MemberRemove(ctx, unknown)
	wantErr(t, "remove unknown", err, rpctypes.ErrMemberNotFound)
	_, err = cli.MemberUpdate(ctx, unknown, []string{"http://127.0.0.1:1"})
	wantErr(t, "update unknown", err, rpctypes.ErrMemberNotFound)
	_, err = cli.MemberPromote(ctx, unknown)
	wantErr(t, "promote unknown", err, rpctypes.ErrMemberNotFound)
	_, err = cli.MemberPromote(ctx, memberIDOf(t, c.Nodes[1]))
	wantErr(t, "promote a voter", err, rpctypes.ErrMemberNotLearner)
	_, err = cli.MemberAdd(ctx, []string{c.Nodes[2].PeerURL})
	wantErr(t, "add an existing peer URL", err, rpctypes.ErrPeerURLExist)
	_, err = cli.MemberUpdate(ctx, memberIDOf(t, c.Nodes[1]), []string{c.Nodes[2].PeerURL})
	wantErr(t, "update to another member's peer URL", err, rpctypes.ErrPeerURLExist)
	// A voter added but not started: a further add finds the cluster unhealthy (that voter
	// is not connected), removing the unstarted voter is allowed (it is down).
	ports := harness.FreePorts(t, 2)
	added, err := cli.MemberAdd(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", ports[0])})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.MemberAdd(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", ports[1])})
	wantErr(t, "add while a voter is not started", err, rpctypes.ErrUnhealthy)
	if _, err := cli.MemberRemove(ctx, added.Member.ID); err != nil {
		t.Fatal(err)
	}
	// etcdctl prints the same error text.
	r := leader.Etcdctl("", "member", "remove", "1234")
	if r.Code == 0 || !strings.Contains(r.Stderr, "etcdserver: member not found") {
		t.Fatalf("etcdctl member remove unknown: %+v", r)
	}
	waitMembers(t, c, c.Nodes[0], 3)
}

func TestMembersAddLearnerPromoteRefusedWhileBehindThenRemove(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	cli := c.Client(leader)
	ctx, cancel := memberCtx()
	defer cancel()
	settle()
	ports := harness.FreePorts(t, 2)
	url := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	t0 := time.Now()
	add, err := cli.MemberAddAsLearner(ctx, []string{url})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("member add --learner answered in %v", time.Since(t0))
	if add.Member == nil || add.Member.ID == 0 || !add.Member.IsLearner || len(add.Members) != 4 ||
		add.Header.ClusterId == 0 {
		t.Fatalf("member add response: %+v", add)
	}
	for _, n := range c.Nodes {
		r := waitMembers(t, c, n, 4)
		learners := 0
		for _, m := range r.Members {
			if m.IsLearner {
				learners++
				if m.ID != add.Member.ID || m.PeerURLs[0] != url || m.Name != "" {
					t.Fatalf("learner on %s: %+v", n.Name(), m)
				}
			}
		}
		if learners != 1 {
			t.Fatalf("%s lists %d learners", n.Name(), learners)
		}
	}
	// etcd allows one learner by default.
	_, err = cli.MemberAddAsLearner(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", ports[1])})
	wantErr(t, "second learner", err, rpctypes.ErrTooManyLearners)
	// The learner never started: it is behind, so it cannot be promoted.
	_, err = cli.MemberPromote(ctx, add.Member.ID)
	wantErr(t, "promote a learner that is behind", err, rpctypes.ErrGRPCLearnerNotReady)
	// Writes go on (a learner does not count for the quorum).
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	rm, err := cli.MemberRemove(ctx, add.Member.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rm.Members) != 3 {
		t.Fatalf("member remove response: %+v", rm)
	}
	for _, n := range c.Nodes {
		waitMembers(t, c, n, 3)
	}
	// etcdctl member add --learner prints what etcd prints. (Another URL: the same URL in
	// the same second would give the removed member's id, which etcd refuses as not found.)
	url = fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	out := leader.MustEtcdctl("", "member", "add", "newbie", "--learner", "--peer-urls="+url)
	for _, want := range []string{"added to cluster", "ETCD_NAME=\"newbie\"", "newbie=" + url,
		"ETCD_INITIAL_CLUSTER_STATE=\"existing\""} {
		if !strings.Contains(out, want) {
			t.Fatalf("etcdctl member add output lacks %q:\n%s", want, out)
		}
	}
}

func TestMembersUpdatePeerURLs(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	var follower *harness.Server
	for _, n := range c.Nodes {
		if n != leader {
			follower = n
		}
	}
	id := memberIDOf(t, follower)
	extra := fmt.Sprintf("http://127.0.0.1:%d", harness.FreePorts(t, 1)[0])
	ctx, cancel := memberCtx()
	defer cancel()
	resp, err := c.Client(leader).MemberUpdate(ctx, id, []string{follower.PeerURL, extra})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Members) != 3 {
		t.Fatalf("member update response: %+v", resp)
	}
	for _, n := range c.Nodes {
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := waitMembers(t, c, n, 3)
			ok := false
			for _, m := range r.Members {
				ok = ok || (m.ID == id && len(m.PeerURLs) == 2 && m.PeerURLs[1] == extra)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not list the updated peer URLs: %+v", n.Name(), r.Members)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The change is durable: the member restarted still lists it (and still works).
	follower.Stop(10 * time.Second)
	follower.Restart()
	r := waitMembers(t, c, follower, 3)
	for _, m := range r.Members {
		if m.ID == id && (len(m.PeerURLs) != 2 || m.PeerURLs[1] != extra) {
			t.Fatalf("after a restart %s lists %+v", follower.Name(), m)
		}
	}
	out := leader.MustEtcdctl("", "member", "update", fmt.Sprintf("%x", id), "--peer-urls="+follower.PeerURL)
	if !strings.Contains(out, fmt.Sprintf("Member %16x updated in cluster", id)) {
		t.Fatalf("etcdctl member update: %s", out)
	}
	if _, err := c.Client().Put(ctx, "after-update", "v"); err != nil {
		t.Fatal(err)
	}
}

func waitExited(t *testing.T, s *harness.Server, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !s.Exited() {
		if time.Now().After(deadline) {
			t.Fatalf("%s still runs after its removal\n%s", s.Name(), s.LogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMembersRemoveFollowerStopsIt(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	var follower *harness.Server
	var rest []*harness.Server
	for _, n := range c.Nodes {
		if n != leader && follower == nil {
			follower = n
		} else {
			rest = append(rest, n)
		}
	}
	id := memberIDOf(t, follower)
	settle()
	out := leader.MustEtcdctl("", "member", "remove", fmt.Sprintf("%x", id))
	if !strings.Contains(out, fmt.Sprintf("Member %16x removed from cluster", id)) {
		t.Fatalf("etcdctl member remove: %s", out)
	}
	waitExited(t, follower, 20*time.Second)
	if harness.TargetKind() != harness.Etcd && !strings.Contains(follower.LogTail(200), "removed from the cluster") {
		t.Fatalf("the removed member does not say why it stopped:\n%s", follower.LogTail(40))
	}
	for _, n := range rest {
		waitMembers(t, c, n, 2)
	}
	ctx, cancel := memberCtx()
	defer cancel()
	if _, err := c.Client(rest...).Put(ctx, "after-remove", "v"); err != nil {
		t.Fatal(err)
	}
	// Started again on its data, the removed member stops again rather than rejoin.
	follower.Stop(5 * time.Second) // reaps the exited process
	follower.Launch()
	waitExited(t, follower, 20*time.Second)
	if _, err := c.Client(rest...).Put(ctx, "after-restart-of-removed", "v"); err != nil {
		t.Fatal(err)
	}
}

func TestMembersRemoveLeader(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	var rest []*harness.Server
	for _, n := range c.Nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	id := memberIDOf(t, leader)
	ctx, cancel := memberCtx()
	defer cancel()
	settle()
	if _, err := c.Client(leader).MemberRemove(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitExited(t, leader, 20*time.Second)
	c.WaitLeaderAmong(15*time.Second, rest...)
	for _, n := range rest {
		waitMembers(t, c, n, 2)
	}
	if _, err := c.Client(rest...).Put(ctx, "after-leader-remove", "v"); err != nil {
		t.Fatal(err)
	}
}

func TestMembersMoveLeader(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	var target, other *harness.Server
	for _, n := range c.Nodes {
		if n == leader {
			continue
		}
		if target == nil {
			target = n
		} else {
			other = n
		}
	}
	tid := memberIDOf(t, target)
	ctx, cancel := memberCtx()
	defer cancel()
	// On a follower: etcd's "not leader"; to an unknown member: "bad leader transferee".
	_, err := c.Client(other).MoveLeader(ctx, tid)
	wantErr(t, "move-leader on a follower", err, rpctypes.ErrNotLeader)
	_, err = c.Client(leader).MoveLeader(ctx, 0x1234)
	wantErr(t, "move-leader to an unknown member", err, rpctypes.ErrBadLeaderTransferee)
	out := leader.MustEtcdctl("", "move-leader", fmt.Sprintf("%x", tid))
	if !strings.Contains(out, fmt.Sprintf("Leadership transferred from %x to %x", memberIDOf(t, leader), tid)) {
		t.Fatalf("etcdctl move-leader: %s", out)
	}
	if got := c.WaitLeader(10 * time.Second); got != target {
		t.Fatalf("leader is %s, want %s", got.Name(), target.Name())
	}
}

// etcdctl's `member add` output: the ETCD_INITIAL_CLUSTER line's value.
func initialClusterFrom(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "ETCD_INITIAL_CLUSTER=") {
			return strings.Trim(strings.TrimPrefix(line, "ETCD_INITIAL_CLUSTER="), "\"")
		}
	}
	t.Fatalf("no ETCD_INITIAL_CLUSTER in:\n%s", out)
	return ""
}

func TestMembersAddedMemberJoinsAndServesTheData(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	ctx, cancel := memberCtx()
	defer cancel()
	for i := 0; i < 20; i++ {
		if _, err := c.Client().Put(ctx, fmt.Sprintf("before/%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	settle()
	ports := harness.FreePorts(t, 2)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	out := leader.MustEtcdctl("", "member", "add", "n4", "--peer-urls="+peerURL)
	if !strings.Contains(out, "ETCD_INITIAL_CLUSTER_STATE=\"existing\"") {
		t.Fatalf("etcdctl member add: %s", out)
	}
	n4 := c.NewJoiningServer(t, "n4", initialClusterFrom(t, out), ports[0], ports[1])
	n4.Launch()
	if err := n4.Probe(20 * time.Second); err != nil {
		t.Fatalf("the new member does not serve: %v\n%s", err, n4.LogTail(40))
	}
	n4.WaitReady(20 * time.Second)
	waitSerializable(t, c.Client(n4), "before/19", "v", 10*time.Second)
	if _, err := c.Client(n4).Put(ctx, "after-join", "v"); err != nil {
		t.Fatal(err)
	}
	waitSerializable(t, c.Client(c.Nodes[0]), "after-join", "v", 10*time.Second)
	for _, n := range c.Nodes {
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := waitMembers(t, c, n, 4)
			named := 0
			for _, m := range r.Members {
				if m.IsLearner {
					t.Fatalf("a member added as voter is a learner: %+v", m)
				}
				if m.Name != "" && len(m.ClientURLs) == 1 {
					named++
				}
			}
			if named == 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s lists %+v", n.Name(), r.Members)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Same cluster id in every header.
	st, err := c.Client(n4).Status(ctx, n4.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	st0, err := c.Client(leader).Status(ctx, leader.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if st.Header.ClusterId != st0.Header.ClusterId {
		t.Fatalf("cluster id %x on the new member, %x on the leader", st.Header.ClusterId, st0.Header.ClusterId)
	}
	// Restarted, it stays a member of the same cluster.
	n4.Stop(10 * time.Second)
	n4.Restart()
	waitSerializable(t, c.Client(n4), "after-join", "v", 10*time.Second)
}

func TestMembersLearnerJoinsThenPromoteIsAcceptedWhenInSync(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	ctx, cancel := memberCtx()
	defer cancel()
	for i := 0; i < 50; i++ {
		if _, err := c.Client().Put(ctx, fmt.Sprintf("k%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	settle()
	ports := harness.FreePorts(t, 2)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	out := leader.MustEtcdctl("", "member", "add", "n4", "--learner", "--peer-urls="+peerURL)
	var id uint64
	if _, err := fmt.Sscanf(out, "Member %x added", &id); err != nil {
		t.Fatalf("etcdctl member add: %v: %s", err, out)
	}
	// Asked on a follower too: the leader judges (etcd forwards promotions to the leader).
	var follower *harness.Server
	for _, n := range c.Nodes {
		if n != leader {
			follower = n
		}
	}
	r := follower.Etcdctl("", "member", "promote", fmt.Sprintf("%x", id))
	if r.Code == 0 || !strings.Contains(r.Stderr, "etcdserver: can only promote a learner member which is in sync with leader") {
		t.Fatalf("promote before the learner started: %+v", r)
	}
	n4 := c.NewJoiningServer(t, "n4", initialClusterFrom(t, out), ports[0], ports[1])
	n4.Launch()
	// A learner serves serializable reads only (etcd refuses the rest on learners).
	waitSerializable(t, c.Client(n4), "k49", "v", 20*time.Second)
	if st, err := c.Client(n4).Status(ctx, n4.Endpoint); err != nil || !st.IsLearner {
		t.Fatalf("status of the learner: %+v %v", st, err)
	}
	waitMetric(t, n4, "etcd_server_is_learner 1")
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = follower.Etcdctl("", "member", "promote", fmt.Sprintf("%x", id))
		if r.Code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("promote never accepted: %+v\n%s", r, n4.LogTail(30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(r.Stdout, fmt.Sprintf("Member %16x promoted in cluster", id)) {
		t.Fatalf("etcdctl member promote: %s", r.Stdout)
	}
	for _, n := range c.Nodes {
		waitMemberList(t, c, n, "4 voters after the promotion", func(r *clientv3.MemberListResponse) bool {
			if len(r.Members) != 4 {
				return false
			}
			for _, m := range r.Members {
				if m.IsLearner {
					return false
				}
			}
			return true
		})
	}
	waitMetric(t, n4, "etcd_server_is_learner 0")
	// Now a voter, it takes writes too.
	if _, err := c.Client(n4).Put(ctx, "after-promote", "v"); err != nil {
		t.Fatal(err)
	}
	waitSerializable(t, c.Client(c.Nodes[0]), "after-promote", "v", 10*time.Second)
}

func TestMembersRemovedWhileDownStopsWhenStarted(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	leader := c.WaitLeader(10 * time.Second)
	var down *harness.Server
	var rest []*harness.Server
	for _, n := range c.Nodes {
		if n != leader && down == nil {
			down = n
		} else {
			rest = append(rest, n)
		}
	}
	id := memberIDOf(t, down)
	settle()
	down.Stop(10 * time.Second)
	ctx, cancel := memberCtx()
	defer cancel()
	// A member that is down is not part of the active quorum: removing it is allowed.
	if _, err := c.Client(leader).MemberRemove(ctx, id); err != nil {
		t.Fatal(err)
	}
	// It never saw its removal: the others refuse it as removed and it stops.
	down.Launch()
	waitExited(t, down, 30*time.Second)
	if harness.TargetKind() != harness.Etcd && !strings.Contains(down.LogTail(200), "removed from the cluster") {
		t.Fatalf("the removed member does not say why it stopped:\n%s", down.LogTail(40))
	}
	if _, err := c.Client(rest...).Put(ctx, "after", "v"); err != nil {
		t.Fatal(err)
	}
}

// A member added after the leader compacted its log away (small --snapshot-count) cannot
// get the log from index 1: it joins through a snapshot streamed over the peer port.
func TestMembersAddedAfterCompactionJoinsThroughASnapshot(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{ExtraArgs: []string{"--snapshot-count=100"}})
	leader := c.WaitLeader(10 * time.Second)
	ctx, cancel := memberCtx()
	defer cancel()
	const keys = 600
	for i := 0; i < keys; i++ {
		if _, err := c.Client().Put(ctx, fmt.Sprintf("before/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	settle()
	ports := harness.FreePorts(t, 2)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	out := leader.MustEtcdctl("", "member", "add", "n4", "--peer-urls="+peerURL)
	n4 := c.NewJoiningServer(t, "n4", initialClusterFrom(t, out), ports[0], ports[1])
	n4.Launch()
	if err := n4.Probe(30 * time.Second); err != nil {
		t.Fatalf("the new member does not serve: %v\n%s", err, n4.LogTail(40))
	}
	waitSerializable(t, c.Client(n4), fmt.Sprintf("before/%03d", keys-1), "v", 20*time.Second)
	waitSerializable(t, c.Client(n4), "before/000", "v", 5*time.Second)
	if c.Nodes[0].Kind == harness.Rusd && !strings.Contains(n4.LogTail(400), "snapshot") {
		t.Fatalf("the new member caught up without a snapshot (was the log compacted?):\n%s",
			n4.LogTail(40))
	}
	// A fresh deadline: the writes and the settling above may have used most of ctx's.
	putCtx, putCancel := memberCtx()
	defer putCancel()
	if _, err := c.Client(n4).Put(putCtx, "after-join", "v"); err != nil {
		t.Fatal(err)
	}
	waitSerializable(t, c.Client(c.Nodes[0]), "after-join", "v", 10*time.Second)
}

// waitMetric waits until the client port's /metrics has a line `line` (e.g. "name 1").
func waitMetric(t *testing.T, s *harness.Server, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, err := s.HTTPGet("/metrics")
		if err == nil && code == 200 {
			for _, l := range strings.Split(string(body), "\n") {
				if l == line {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q in /metrics (code %d, err %v)", s.Name(), line, code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A follower that was down while a member was added and the log was compacted past the
// conf change catches up through a snapshot, and the snapshot tells it about the new
// member: its member list shows the member with its URLs, and it reaches it (a write
// through the new member is readable on it).
func TestMembersFollowerCatchingUpBySnapshotLearnsAMemberAddedMeanwhile(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{ExtraArgs: []string{"--snapshot-count=100"}})
	leader := c.WaitLeader(10 * time.Second)
	lagging, live := c.OneFollowerAndTheRest(leader)
	ctx, cancel := memberCtx()
	defer cancel()
	mustPut(t, c.Client(live...), "before/add", "1")
	waitSerializable(t, c.Client(lagging), "before/add", "1", 10*time.Second)
	settle()
	// The follower must not see the conf change: paused first (its peers still count it
	// connected, so the add passes the strict reconfiguration check), then killed.
	if err := lagging.Pause(); err != nil {
		t.Fatal(err)
	}
	ports := harness.FreePorts(t, 2)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	out := leader.MustEtcdctl("", "member", "add", "n4", "--peer-urls="+peerURL)
	lagging.Kill()
	n4 := c.NewJoiningServer(t, "n4", initialClusterFrom(t, out), ports[0], ports[1])
	n4.Launch()
	if err := n4.Probe(30 * time.Second); err != nil {
		t.Fatalf("the new member does not serve: %v\n%s", err, n4.LogTail(40))
	}
	// Well past the snapshot count: the log compacts past the conf change.
	const keys = 600
	putMany(t, c.Client(live...), "snap", keys, 8, "-v")

	lagging.Restart()
	lc := c.Client(lagging)
	waitAllKeys(t, lc, "snap", keys, "-v", 60*time.Second)
	if lagging.Kind == harness.Rusd && !strings.Contains(lagging.LogTail(100000), "received snapshot at index") {
		t.Fatalf("the restarted follower caught up without a snapshot (was the log compacted?):\n%s",
			lagging.LogTail(60))
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := waitMembers(t, c, lagging, 4)
		var found bool
		for _, m := range r.Members {
			found = found || (m.Name == "n4" && len(m.PeerURLs) == 1 && m.PeerURLs[0] == peerURL &&
				len(m.ClientURLs) == 1 && m.ClientURLs[0] == n4.ClientURL)
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s lists %+v, want n4 with peer URL %s and client URL %s", lagging.Name(),
				r.Members, peerURL, n4.ClientURL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := c.Client(n4).Put(ctx, "through/n4", "4"); err != nil {
		t.Fatal(err)
	}
	waitSerializable(t, lc, "through/n4", "4", 10*time.Second)
	// Restarted again, it still knows the member (members.pb), not only in memory.
	lagging.Stop(10 * time.Second)
	lagging.Restart()
	r := waitMembers(t, c, lagging, 4)
	listed := false
	for _, m := range r.Members {
		listed = listed || (len(m.PeerURLs) == 1 && m.PeerURLs[0] == peerURL)
	}
	if !listed {
		t.Fatalf("after a restart %s lists %+v, without n4's peer URL %s", lagging.Name(), r.Members, peerURL)
	}
}
