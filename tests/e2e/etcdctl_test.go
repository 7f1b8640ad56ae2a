package e2e

import (
	"reflect"
	"testing"

	"rusd/tests/e2e/harness"
)

// Debian's etcdctl 3.4 (API v3) against the server under test. Every test starts its own
// node so revisions are deterministic: the first write of a fresh node is revision 2.

// putFixture writes the keys the read tests look at and returns nothing; afterwards:
//
//	k/a=31 (create 2, mod 5, version 2)  k/b=10 (3,3,1)  k/c=20 (4,4,1)
//	other=x (6,6,1)                       k/e="" (7,7,1)  revision 7
func putFixture(t *testing.T, s *harness.Server) {
	t.Helper()
	for _, kv := range [][2]string{
		{"k/a", "30"}, {"k/b", "10"}, {"k/c", "20"}, {"k/a", "31"}, {"other", "x"}, {"k/e", ""},
	} {
		expectOut(t, s, "OK\n", "", "put", kv[0], kv[1])
	}
}

func TestEtcdctlGetReturnsKeysValuesAndEmptyValues(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	putFixture(t, s)

	expectOut(t, s, "k/a\n31\n", "", "get", "k/a")
	expectOut(t, s, "", "", "get", "missing")
	expectOut(t, s, "k/e\n\n", "", "get", "k/e")
	expectOut(t, s, "k/a\n31\n", "", "get", "k/a", "--consistency=s")
	// [k/a, k/c): range end is exclusive.
	expectOut(t, s, "k/a\n31\nk/b\n10\n", "", "get", "k/a", "k/c")
	expectOut(t, s, "k/a\n31\nk/b\n10\nk/c\n20\nk/e\n\n", "", "get", "--prefix", "k/")
	expectOut(t, s, "k/c\n20\nk/e\n\nother\nx\n", "", "get", "--from-key", "k/c")
	expectOut(t, s, "k/a\n\nk/b\n\nk/c\n\nk/e\n\n", "", "get", "--prefix", "k/", "--keys-only")
	expectOut(t, s, "31\n10\n20\n\n", "", "get", "--prefix", "k/", "--print-value-only")
	expectOut(t, s, `\x6b\x2f\x61`+"\n"+`\x33\x31`+"\n", "", "get", "k/a", "--hex")

	got := decodeJSON[ctlRange](t, s.MustEtcdctl("", "get", "k/a", "-w", "json"))
	want := []ctlKV{{Key: []byte("k/a"), CreateRevision: 2, ModRevision: 5, Version: 2,
		Value: []byte("31")}}
	if !reflect.DeepEqual(got.Kvs, want) || got.Count != 1 || got.More ||
		got.Header.Revision != 7 {
		t.Errorf("get k/a -w json = %+v, want kvs %+v count 1 more false revision 7", got, want)
	}
	if got.Header.ClusterID == 0 || got.Header.MemberID == 0 || got.Header.RaftTerm == 0 {
		t.Errorf("header %+v: cluster_id, member_id and raft_term must be set", got.Header)
	}
	miss := decodeJSON[ctlRange](t, s.MustEtcdctl("", "get", "missing", "-w", "json"))
	if len(miss.Kvs) != 0 || miss.Count != 0 || miss.Header.Revision != 7 {
		t.Errorf("get missing -w json = %+v, want no kvs, count 0, revision 7", miss)
	}
}

func TestEtcdctlGetLimitReportsCountAndMore(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	putFixture(t, s)

	expectOut(t, s, "k/a\n31\nk/b\n10\n", "", "get", "--prefix", "k/", "--limit=2")
	r := decodeJSON[ctlRange](t, s.MustEtcdctl("", "get", "--prefix", "k/", "--limit=2", "-w", "json"))
	if !reflect.DeepEqual(keysOf(r.Kvs), []string{"k/a", "k/b"}) || r.Count != 4 || !r.More {
		t.Errorf("--limit=2 -w json: keys %v count %d more %v, want [k/a k/b] 4 true",
			keysOf(r.Kvs), r.Count, r.More)
	}
	r = decodeJSON[ctlRange](t, s.MustEtcdctl("", "get", "--prefix", "k/", "--limit=4", "-w", "json"))
	if len(r.Kvs) != 4 || r.Count != 4 || r.More {
		t.Errorf("--limit=4 -w json: %d kvs count %d more %v, want 4 4 false", len(r.Kvs),
			r.Count, r.More)
	}
	r = decodeJSON[ctlRange](t, s.MustEtcdctl("", "get", "--prefix", "k/", "--limit=1", "--keys-only",
		"-w", "json"))
	if len(r.Kvs) != 1 || len(r.Kvs[0].Value) != 0 || r.Count != 4 || !r.More {
		t.Errorf("--limit=1 --keys-only -w json = %+v, want one key without value, count 4, more", r)
	}
}

func TestEtcdctlGetRevReadsHistory(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	putFixture(t, s)

	expectOut(t, s, "k/a\n30\n", "", "get", "k/a", "--rev=4")
	expectOut(t, s, "k/a\n30\n", "", "get", "k/a", "--rev=2")
	expectOut(t, s, "", "", "get", "k/b", "--rev=2")
	expectOut(t, s, "", "", "get", "k/a", "--rev=1")
	r := decodeJSON[ctlRange](t, s.MustEtcdctl("", "get", "--prefix", "k/", "--rev=3", "-w", "json"))
	want := []ctlKV{
		{Key: []byte("k/a"), CreateRevision: 2, ModRevision: 2, Version: 1, Value: []byte("30")},
		{Key: []byte("k/b"), CreateRevision: 3, ModRevision: 3, Version: 1, Value: []byte("10")},
	}
	// The header revision is the store's current revision, not the one asked for.
	if !reflect.DeepEqual(r.Kvs, want) || r.Count != 2 || r.Header.Revision != 7 {
		t.Errorf("get --prefix k/ --rev=3 = %+v, want kvs %+v count 2 revision 7", r, want)
	}
	expectErr(t, s, "etcdserver: mvcc: required revision is a future revision", "",
		"get", "k/a", "--rev=8")
}

func TestEtcdctlGetSortByEachTargetAndOrder(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	putFixture(t, s)

	cases := []struct {
		sortBy, order string
		want          []string
	}{
		{"KEY", "ASCEND", []string{"k/a", "k/b", "k/c", "k/e"}},
		{"KEY", "DESCEND", []string{"k/e", "k/c", "k/b", "k/a"}},
		{"VALUE", "", []string{"k/e", "k/b", "k/c", "k/a"}},
		{"VALUE", "DESCEND", []string{"k/a", "k/c", "k/b", "k/e"}},
		{"CREATE", "ASCEND", []string{"k/a", "k/b", "k/c", "k/e"}},
		{"CREATE", "DESCEND", []string{"k/e", "k/c", "k/b", "k/a"}},
		{"MODIFY", "", []string{"k/b", "k/c", "k/a", "k/e"}},
		{"MODIFY", "DESCEND", []string{"k/e", "k/a", "k/c", "k/b"}},
	}
	for _, c := range cases {
		args := []string{"get", "--prefix", "k/", "--keys-only", "-w", "json", "--sort-by=" + c.sortBy}
		if c.order != "" {
			args = append(args, "--order="+c.order)
		}
		r := decodeJSON[ctlRange](t, s.MustEtcdctl("", args...))
		if got := keysOf(r.Kvs); !reflect.DeepEqual(got, c.want) {
			t.Errorf("--sort-by=%s --order=%s: %v, want %v", c.sortBy, c.order, got, c.want)
		}
	}
	// VERSION has ties (k/b, k/c, k/e all version 1); only the unique maximum is pinned.
	r := decodeJSON[ctlRange](t, s.MustEtcdctl("", "get", "--prefix", "k/", "--keys-only", "-w", "json",
		"--sort-by=VERSION", "--order=DESCEND"))
	if len(r.Kvs) != 4 || string(r.Kvs[0].Key) != "k/a" {
		t.Errorf("--sort-by=VERSION --order=DESCEND: %v, want k/a first of 4", keysOf(r.Kvs))
	}
	// Sorting happens before the limit: the two newest keys.
	r = decodeJSON[ctlRange](t, s.MustEtcdctl("", "get", "--prefix", "k/", "--keys-only", "-w", "json",
		"--sort-by=MODIFY", "--order=DESCEND", "--limit=2"))
	if got := keysOf(r.Kvs); !reflect.DeepEqual(got, []string{"k/e", "k/a"}) || r.Count != 4 || !r.More {
		t.Errorf("--sort-by=MODIFY --order=DESCEND --limit=2: %v count %d more %v, want [k/e k/a] 4 true",
			got, r.Count, r.More)
	}
	expectOut(t, s, "k/e\n\nk/c\n20\n", "", "get", "--prefix", "k/", "--sort-by=KEY", "--order=DESCEND",
		"--limit=2")
}

func TestEtcdctlDelCountsAndReturnsPrevKvs(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	putFixture(t, s)

	expectOut(t, s, "1\n", "", "del", "k/b") // revision 8
	expectOut(t, s, "0\n", "", "del", "nothing")
	expectOut(t, s, "", "", "get", "k/b")
	expectOut(t, s, "3\nk/a\n31\nk/c\n20\nk/e\n\n", "", "del", "--prefix", "k/", "--prev-kv") // 9
	r := decodeJSON[ctlRange](t, s.MustEtcdctl("", "get", "--prefix", "k/", "-w", "json"))
	if len(r.Kvs) != 0 || r.Count != 0 || r.Header.Revision != 9 {
		t.Errorf("after del --prefix: %+v, want empty at revision 9", r)
	}
	// A delete that deletes nothing does not make a revision.
	type delResp struct {
		Header  ctlHeader `json:"header"`
		Deleted int64     `json:"deleted"`
	}
	d := decodeJSON[delResp](t, s.MustEtcdctl("", "del", "nothing", "-w", "json"))
	if d.Deleted != 0 || d.Header.Revision != 9 {
		t.Errorf("del nothing -w json = %+v, want deleted 0 revision 9", d)
	}
	// History survives deletion.
	expectOut(t, s, "k/b\n10\n", "", "get", "k/b", "--rev=7")
	// Re-creating a deleted key starts a new generation: version 1, new create revision.
	expectOut(t, s, "OK\n", "", "put", "k/a", "new") // 10
	r = decodeJSON[ctlRange](t, s.MustEtcdctl("", "get", "k/a", "-w", "json"))
	if len(r.Kvs) != 1 || r.Kvs[0].CreateRevision != 10 || r.Kvs[0].Version != 1 {
		t.Errorf("re-created k/a = %+v, want create_revision 10 version 1", r.Kvs)
	}
	type putResp struct {
		Header ctlHeader `json:"header"`
		PrevKv *ctlKV    `json:"prev_kv"`
	}
	p := decodeJSON[putResp](t, s.MustEtcdctl("", "put", "other", "y", "--prev-kv", "-w", "json"))
	if p.PrevKv == nil || string(p.PrevKv.Value) != "x" || p.PrevKv.ModRevision != 6 ||
		p.Header.Revision != 11 {
		t.Errorf("put --prev-kv -w json = %+v, want prev value x mod 6, revision 11", p)
	}
}

func TestEtcdctlTxnInteractiveComparesValueVersionCreateMod(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	expectOut(t, s, "OK\n", "", "put", "t1", "v1") // 2

	// Compares, blank line, success ops, blank line, failure ops, blank line.
	expectOut(t, s, "SUCCESS\n\nOK\n\nOK\n",
		"value(\"t1\") = \"v1\"\nversion(\"t1\") = \"1\"\n\nput t1 v2\nput t2 x\n\nget t1\n\n",
		"txn") // 3: one revision for the whole txn
	expectOut(t, s, "t1\nv2\n", "", "get", "t1")
	expectOut(t, s, "x\n", "", "get", "t2", "--print-value-only")

	type txnResp struct {
		Header    ctlHeader `json:"header"`
		Succeeded bool      `json:"succeeded"`
		Responses []struct {
			Response struct {
				ResponseRange *struct {
					Kvs   []ctlKV `json:"kvs"`
					Count int64   `json:"count"`
				} `json:"ResponseRange"`
				ResponseDeleteRange *struct {
					Deleted int64 `json:"deleted"`
				} `json:"ResponseDeleteRange"`
			} `json:"Response"`
		} `json:"responses"`
	}
	r := decodeJSON[txnResp](t, s.MustEtcdctl(
		"value(\"t1\") = \"nope\"\n\nput t1 v3\n\nget t1\ndel t2\n\n", "txn", "-w", "json"))
	if r.Succeeded || len(r.Responses) != 2 || r.Responses[0].Response.ResponseRange == nil ||
		r.Responses[1].Response.ResponseDeleteRange == nil || r.Header.Revision != 4 {
		t.Fatalf("failed txn -w json = %+v, want failure branch [range, delete] at revision 4", r)
	}
	if kvs := r.Responses[0].Response.ResponseRange.Kvs; len(kvs) != 1 ||
		string(kvs[0].Value) != "v2" || kvs[0].ModRevision != 3 || kvs[0].Version != 2 {
		t.Errorf("txn range = %+v, want t1=v2 mod 3 version 2", kvs)
	}
	if d := r.Responses[1].Response.ResponseDeleteRange.Deleted; d != 1 {
		t.Errorf("txn delete deleted %d, want 1", d)
	}

	// create and mod revisions; a missing key compares as version 0.
	expectOut(t, s, "SUCCESS\n\nt1\nv2\n",
		"create(\"t1\") = \"2\"\nmod(\"t1\") > \"2\"\nversion(\"gone\") = \"0\"\n\nget t1\n\n\n", "txn")
	expectOut(t, s, "FAILURE\n\nt1\nv2\n",
		"mod(\"t1\") < \"3\"\n\nput t1 never\n\nget t1\n\n", "txn")
	expectOut(t, s, "FAILURE\n", "value(\"t1\") != \"v2\"\n\nput t1 never\n\n\n", "txn")
	expectOut(t, s, "SUCCESS\n\nOK\n", "value(\"t1\") > \"v1\"\n\nput t1 v4\n\n\n", "txn") // 5
	expectOut(t, s, "SUCCESS\n", "\n\n\n", "txn")                                          // empty txn: no compares succeed
	r = decodeJSON[txnResp](t, s.MustEtcdctl("\n\n\n", "txn", "-w", "json"))
	if !r.Succeeded || r.Header.Revision != 5 {
		t.Errorf("empty txn -w json = %+v, want succeeded at revision 5", r)
	}
	expectErr(t, s, "malformed comparison", "bad\n", "txn")
}

func TestEtcdctlCompactThenOldRevisionIsCompacted(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5"} { // revisions 2..6
		expectOut(t, s, "OK\n", "", "put", "c", v)
	}
	expectOut(t, s, "compacted revision 4\n", "", "compact", "4")
	expectErr(t, s, "etcdserver: mvcc: required revision has been compacted", "",
		"get", "c", "--rev=3")
	expectOut(t, s, "c\nv3\n", "", "get", "c", "--rev=4")
	expectOut(t, s, "c\nv5\n", "", "get", "c")
	expectErr(t, s, "etcdserver: mvcc: required revision is a future revision", "",
		"get", "c", "--rev=100")
	expectErr(t, s, "etcdserver: mvcc: required revision has been compacted", "", "compact", "4")
	expectErr(t, s, "etcdserver: mvcc: required revision has been compacted", "", "compact", "2")
	expectErr(t, s, "etcdserver: mvcc: required revision is a future revision", "",
		"compact", "100")
	expectOut(t, s, "compacted revision 6\n", "", "compact", "6", "--physical")
	expectOut(t, s, "c\nv5\n", "", "get", "c", "--rev=6")
	// Compaction keeps the newest version of every key and the create revision.
	r := decodeJSON[ctlRange](t, s.MustEtcdctl("", "get", "c", "-w", "json"))
	if len(r.Kvs) != 1 || r.Kvs[0].CreateRevision != 2 || r.Kvs[0].Version != 5 {
		t.Errorf("after compaction get c = %+v, want create 2 version 5", r.Kvs)
	}
}

func TestEtcdctlEmptyKeyIsRejected(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	expectErr(t, s, "etcdserver: key is not provided", "", "put", "", "x")
	expectErr(t, s, "etcdserver: key is not provided", "", "get", "")
	expectErr(t, s, "etcdserver: key is not provided", "", "del", "")
	// Nothing was written.
	r := decodeJSON[ctlRange](t, s.MustEtcdctl("", "get", "", "--from-key", "-w", "json"))
	if r.Header.Revision != 1 || r.Count != 0 {
		t.Errorf("after rejected writes: %+v, want revision 1 and no keys", r)
	}
}
