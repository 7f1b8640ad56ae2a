package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
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

// roundTrip passes v through JSON so that live outcomes and ones read from a golden file
// compare equal with reflect.DeepEqual (numbers become float64, and so on).
func roundTrip[T any](t *testing.T, v []T) []T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// referenceOutcomes returns etcd 3.4's outcomes of a fixed sequence and where they came
// from. With etcd installed they come from a live run (which must still match the golden
// file testdata/<name>.golden.json: a different etcd would make the comparison meaningless);
// without etcd, from the golden file. E2E_UPDATE_GOLDEN=1 rewrites the file from live etcd.
func referenceOutcomes[T any](t *testing.T, name string, live func(etcdBin string) []T) ([]T, string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.json")
	etcd := harness.EtcdBin()
	if os.Getenv("E2E_UPDATE_GOLDEN") == "1" {
		if etcd == "" {
			t.Fatal("E2E_UPDATE_GOLDEN=1 needs etcd on PATH")
		}
		out := roundTrip(t, live(etcd))
		b, _ := json.MarshalIndent(out, "", " ")
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return out, "etcd"
	}
	var golden []T
	b, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(b, &golden); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if etcd == "" {
		if golden == nil {
			t.Skipf("etcd is not installed and %s is missing: nothing to compare against", path)
		}
		return golden, "etcd (recorded)"
	}
	out := roundTrip(t, live(etcd))
	if golden != nil && !reflect.DeepEqual(out, golden) {
		t.Errorf("the installed etcd answers differently from %s (recorded from etcd 3.4.23); "+
			"if that is expected, rerun with E2E_UPDATE_GOLDEN=1", path)
	}
	return out, "etcd"
}
