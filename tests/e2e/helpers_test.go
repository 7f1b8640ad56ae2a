package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"rusd/tests/e2e/harness"
)

// ctlKV is one key-value as etcdctl -w json prints it (bytes base64-encoded).
type ctlKV struct {
	Key            []byte `json:"key"`
	CreateRevision int64  `json:"create_revision"`
	ModRevision    int64  `json:"mod_revision"`
	Version        int64  `json:"version"`
	Value          []byte `json:"value"`
	Lease          int64  `json:"lease"`
}

type ctlHeader struct {
	ClusterID uint64 `json:"cluster_id"`
	MemberID  uint64 `json:"member_id"`
	Revision  int64  `json:"revision"`
	RaftTerm  uint64 `json:"raft_term"`
}

// ctlRange is etcdctl get -w json.
type ctlRange struct {
	Header ctlHeader `json:"header"`
	Kvs    []ctlKV   `json:"kvs"`
	More   bool      `json:"more"`
	Count  int64     `json:"count"`
}

func decodeJSON[T any](t *testing.T, out string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &v); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	return v
}

// expectOut runs etcdctl and checks exit 0 and the exact stdout.
func expectOut(t *testing.T, s *harness.Server, want string, stdin string, args ...string) {
	t.Helper()
	got := s.MustEtcdctl(stdin, args...)
	if got != want {
		t.Errorf("etcdctl %s:\n got %q\nwant %q", strings.Join(args, " "), got, want)
	}
}

// expectErr runs etcdctl and checks a non-zero exit and that stderr has "Error: <msg>".
func expectErr(t *testing.T, s *harness.Server, msg string, stdin string, args ...string) {
	t.Helper()
	r := s.Etcdctl(stdin, args...)
	if r.Code == 0 {
		t.Errorf("etcdctl %s: exit 0 (stdout %q), want error %q", strings.Join(args, " "),
			r.Stdout, msg)
		return
	}
	if !strings.Contains(r.Stderr, "Error: "+msg) {
		t.Errorf("etcdctl %s: stderr %q, want it to contain %q", strings.Join(args, " "),
			r.Stderr, "Error: "+msg)
	}
}

func keysOf(kvs []ctlKV) []string {
	var ks []string
	for _, kv := range kvs {
		ks = append(ks, string(kv.Key))
	}
	return ks
}
