package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"rusd/tests/e2e/harness"
)

// etcdctl's maintenance commands a script runs (`alarm list`, `alarm disarm`, `defrag`)
// succeed and print what they print against etcd 3.4: no alarm, and etcd's "Finished
// defragmenting" line for the endpoint (with --cluster, for the member's client URL).
func TestMaintenanceAlarmAndDefragAsEtcdctlShowsThem(t *testing.T) {
	s := harness.Start(t, harness.Options{})
	mustPut(t, s.Client(), "maint/k", "v")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"alarm", "list"}, ""},
		{[]string{"alarm", "list", "-w", "json"}, "{}\n"},
		{[]string{"alarm", "disarm"}, ""},
		{[]string{"defrag"}, fmt.Sprintf("Finished defragmenting etcd member[%s]\n", s.Endpoint)},
		{[]string{"defrag", "--cluster"}, fmt.Sprintf("Finished defragmenting etcd member[%s]\n", s.ClientURL)},
	} {
		r := s.Etcdctl("", c.args...)
		if r.Code != 0 || r.Stdout != c.want {
			t.Errorf("etcdctl %s: exit %d, stdout %q (want %q), stderr %q",
				strings.Join(c.args, " "), r.Code, r.Stdout, c.want, r.Stderr)
		}
	}
	// Raw: an alarm list has no alarm and, as etcd 3.4's, no header.
	conn, err := grpc.Dial(s.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := pb.NewMaintenanceClient(conn)
	resp, err := m.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_GET})
	if err != nil || len(resp.Alarms) != 0 || resp.Header != nil {
		t.Errorf("Alarm GET: %+v %v, want no alarm and no header", resp, err)
	}
	if _, err := m.Defragment(ctx, &pb.DefragmentRequest{}); err != nil {
		t.Errorf("Defragment: %v", err)
	}
	// The data is untouched.
	if got, ok, err := getValue(s.Client(), "maint/k"); err != nil || !ok || got != "v" {
		t.Errorf("get after defrag: %q %v %v", got, ok, err)
	}
}

// etcd lists members by id (RaftCluster.Members sorts them), not in --initial-cluster
// order: `etcdctl member list` (simple and -w json) on every member.
func TestMemberListIsSortedByIDAsEtcd(t *testing.T) {
	c := harness.StartCluster(t, 3, harness.ClusterOptions{})
	c.WaitLeader(10 * time.Second)
	for _, n := range c.Nodes {
		var list struct {
			Members []struct {
				ID   uint64 `json:"ID"`
				Name string `json:"name"`
			} `json:"members"`
		}
		if err := json.Unmarshal([]byte(n.MustEtcdctl("", "member", "list", "-w", "json")), &list); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(n.MustEtcdctl("", "member", "list")), "\n")
		if len(list.Members) != 3 || len(lines) != 3 {
			t.Fatalf("member list on %s: %+v / %q", n.Name(), list, lines)
		}
		for i, m := range list.Members {
			if i > 0 && list.Members[i-1].ID >= m.ID {
				t.Errorf("member list -w json on %s is not sorted by id: %+v", n.Name(), list.Members)
			}
			if !strings.HasPrefix(lines[i], fmt.Sprintf("%x, started, %s,", m.ID, m.Name)) {
				t.Errorf("member list line %d on %s: %q, want member %x (%s)", i, n.Name(), lines[i], m.ID, m.Name)
			}
		}
	}
}
