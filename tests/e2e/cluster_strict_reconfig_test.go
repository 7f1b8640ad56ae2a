package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"rusd/tests/e2e/harness"
)

// etcd's --strict-reconfig-check (on by default): a member change is refused when it
// could lose quorum. mayAddMember: a voter is added only if the started members (those
// that joined and published their name) make a quorum of the new membership (one started
// member may add a second), and only after every voter has been connected for 5 s;
// mayRemoveMember: a voter is removed only if the started members left make a quorum of
// the rest. --strict-reconfig-check=false skips these checks.

// A lone member adds a voter that never starts (etcd allows growing 1 → 2 that way); from
// then on only one of two voters is started: a third voter is refused, and so is removing
// the started one.
func TestStrictReconfigCheckRefusesChangesWithoutEnoughStartedMembers(t *testing.T) {
	c := harness.StartCluster(t, 1, harness.ClusterOptions{})
	n1 := c.Nodes[0]
	cli := c.Client(n1)
	ctx, cancel := memberCtx()
	defer cancel()
	ports := harness.FreePorts(t, 2)
	if _, err := cli.MemberAdd(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", ports[0])}); err != nil {
		t.Fatalf("a lone member adding a second voter: %v", err)
	}
	_, err := cli.MemberAdd(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", ports[1])})
	wantErr(t, "add a third voter with one of two started", err, rpctypes.ErrGRPCMemberNotEnoughStarted)
	// On the wire (clientv3 replaces the code of an error it knows by its own table's):
	// etcd 3.4 does not map this error to a gRPC code, so it travels as Unknown.
	conn, err := grpc.Dial(n1.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw := pb.NewClusterClient(conn)
	_, err = raw.MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: []string{fmt.Sprintf("http://127.0.0.1:%d", ports[1])}})
	wantStatus(t, "raw add of a third voter", err, codes.Unknown,
		"etcdserver: re-configuration failed due to not enough started members")
	_, err = raw.MemberRemove(ctx, &pb.MemberRemoveRequest{ID: memberIDOf(t, n1)})
	wantStatus(t, "raw remove of the only started voter", err, codes.Unknown,
		"etcdserver: re-configuration failed due to not enough started members")
	// A learner does not count towards quorum: the started-members rule does not apply
	// (etcd then requires every voter connected: unhealthy, as the second never started).
	_, err = cli.MemberAddAsLearner(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", ports[1])})
	wantErr(t, "add a learner with a voter never started", err, rpctypes.ErrUnhealthy)
	_, err = raw.MemberAdd(ctx, &pb.MemberAddRequest{IsLearner: true, PeerURLs: []string{fmt.Sprintf("http://127.0.0.1:%d", ports[1])}})
	wantStatus(t, "raw add of a learner", err, codes.Unavailable, "etcdserver: unhealthy cluster")
	_, err = cli.MemberRemove(ctx, memberIDOf(t, n1))
	wantErr(t, "remove the only started voter", err, rpctypes.ErrGRPCMemberNotEnoughStarted)
	r := n1.Etcdctl("", "member", "add", "n3", fmt.Sprintf("--peer-urls=http://127.0.0.1:%d", ports[1]))
	if r.Code == 0 || !strings.HasSuffix(r.Stderr, "\nError: etcdserver: re-configuration failed due to not enough started members\n") {
		t.Errorf("etcdctl member add: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

// With --strict-reconfig-check=false (flag, ETCD_STRICT_RECONFIG_CHECK or the config file)
// a member is added right after the start, when the default refuses it as unhealthy.
func TestStrictReconfigCheckFalseAllowsAnAddRightAfterTheStart(t *testing.T) {
	strict := harness.StartCluster(t, 3, harness.ClusterOptions{})
	strict.WaitLeader(10 * time.Second)
	ctx, cancel := memberCtx()
	defer cancel()
	_, err := strict.Client().MemberAdd(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", harness.FreePorts(t, 1)[0])})
	wantErr(t, "add right after the start (strict)", err, rpctypes.ErrUnhealthy)

	c := harness.StartCluster(t, 3, harness.ClusterOptions{ExtraArgs: []string{"--strict-reconfig-check=false"}})
	leader := c.WaitLeader(10 * time.Second)
	cli := c.Client(leader)
	added, err := cli.MemberAddAsLearner(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", harness.FreePorts(t, 1)[0])})
	if err != nil {
		t.Fatalf("add right after the start without the strict check: %v", err)
	}
	if _, err := cli.MemberRemove(ctx, added.Member.ID); err != nil {
		t.Fatalf("remove the learner without the strict check: %v", err)
	}
	waitMembers(t, c, leader, 3)
}

// wantStatus checks a raw gRPC error's code and message.
func wantStatus(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if s := status.Convert(err); err == nil || s.Code() != code || s.Message() != msg {
		t.Errorf("%s: %v, want %v %q", what, err, code, msg)
	}
}
