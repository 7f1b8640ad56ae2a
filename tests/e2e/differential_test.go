package e2e

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"rusd/tests/e2e/harness"
)

// One fixed sequence of etcdctl commands against the server under test and against real
// etcd 3.4: the -w json outputs must be equal once cluster_id, member_id and raft_term are
// removed (revisions, versions, create/mod revisions, more and count all count).

type ctlStep struct {
	stdin string
	args  []string
}

func step(args ...string) ctlStep { return ctlStep{args: args} }

var differentialSteps = []ctlStep{
	step("put", "a", "1"),
	step("put", "b", "2"),
	step("put", "a", "3"),
	step("put", "c", ""),
	step("put", "d/1", "x"),
	step("put", "d/2", "y"),
	step("put", "d/3", "z"),
	step("put", "\x01bin\xff", "\xfe\x01"), // argv cannot hold NUL
	step("get", "a"),
	step("get", "a", "--rev=2"),
	step("get", "a", "--rev=1"),
	step("get", "missing"),
	step("get", "c"),
	step("get", "--prefix", "d/"),
	step("get", "--prefix", "d/", "--limit=2"),
	step("get", "--prefix", "d/", "--limit=2", "--keys-only"),
	step("get", "--from-key", "b", "--keys-only"),
	step("get", "--from-key", "", "--sort-by=MODIFY", "--order=DESCEND"),
	step("get", "--from-key", "", "--sort-by=VALUE", "--limit=3"),
	step("get", "--from-key", "", "--sort-by=CREATE", "--order=DESCEND"),
	step("get", "--from-key", "", "--sort-by=KEY", "--order=DESCEND"),
	step("get", "a", "z", "--consistency=s"),
	step("get", "--prefix", "d/", "--rev=6"),
	step("put", "a", "4", "--prev-kv"),
	step("del", "b"),
	step("del", "nothing"),
	step("del", "--prefix", "d/", "--prev-kv"),
	step("get", "--prefix", "d/"),
	{stdin: "value(\"a\") = \"4\"\nversion(\"a\") = \"3\"\ncreate(\"c\") = \"5\"\nmod(\"c\") > \"1\"\n\n" +
		"put e 5\nget a\ndel c\nput f \"\"\n\nput never x\n\n", args: []string{"txn"}},
	{stdin: "value(\"a\") < \"4\"\n\nput never x\n\nget e\nget --prefix d\nput g 7\n\n",
		args: []string{"txn"}},
	{stdin: "version(\"nope\") = \"0\"\n\n\n\n", args: []string{"txn"}},
	{stdin: "mod(\"a\") = \"1000\"\n\n\n\n", args: []string{"txn"}},
	step("put", "h", "8"),
	step("compact", "6"),
	step("get", "a", "--rev=5"),
	step("get", "a", "--rev=6"),
	step("get", "a", "--rev=1000"),
	step("compact", "3"),
	step("compact", "1000"),
	step("put", "", "x"),
	step("get", ""),
	step("del", ""),
	step("get", "--from-key", ""),
	step("put", "h", "9", "--prev-kv"),
	step("get", "--from-key", "", "--keys-only", "--limit=100"),
}

type ctlOutcome struct {
	Code   int
	Stdout any    // normalized JSON, or the raw text when stdout is not JSON
	Error  string // the "Error: ..." line etcdctl prints on stderr
}

func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range []string{"cluster_id", "member_id", "raft_term"} {
			delete(x, k)
		}
		for k, e := range x {
			x[k] = normalize(e)
		}
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	}
	return v
}

func runSteps(t *testing.T, s *harness.Server) []ctlOutcome {
	var out []ctlOutcome
	for _, st := range differentialSteps {
		args := append(append([]string{}, st.args...), "-w", "json")
		r := s.Etcdctl(st.stdin, args...)
		o := ctlOutcome{Code: r.Code, Stdout: r.Stdout}
		var v any
		if err := json.Unmarshal([]byte(r.Stdout), &v); err == nil {
			o.Stdout = normalize(v)
		}
		for _, line := range strings.Split(r.Stderr, "\n") {
			if strings.HasPrefix(line, "Error:") {
				o.Error = line
			}
		}
		out = append(out, o)
	}
	return out
}

func TestDifferentialEtcdctlJSONMatchesEtcd(t *testing.T) {
	t.Parallel()
	want, refName := referenceOutcomes(t, "etcdctl_differential", func(etcd string) []ctlOutcome {
		return runSteps(t, harness.Start(t, harness.Options{Bin: etcd}))
	})
	target := harness.Start(t, harness.Options{})
	got := roundTrip(t, runSteps(t, target))

	if testing.Verbose() {
		for i, o := range want {
			b, _ := json.Marshal(o)
			t.Logf("%s step %d %q: %s", refName, i, differentialSteps[i].args, b)
		}
	}
	if len(want) != len(differentialSteps) {
		t.Fatalf("%d reference outcomes for %d steps: regenerate the golden file", len(want),
			len(differentialSteps))
	}
	mismatches := 0
	for i, st := range differentialSteps {
		if reflect.DeepEqual(got[i], want[i]) {
			continue
		}
		mismatches++
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(want[i])
		t.Errorf("step %d: etcdctl %q (stdin %q)\n %s: %s\n %s: %s", i,
			strings.Join(st.args, " "), st.stdin, target.Kind, g, refName, w)
	}
	if mismatches > 0 {
		t.Logf("%d of %d steps differ", mismatches, len(differentialSteps))
	}
	// Sanity: the reference run did what the sequence intends.
	if want[0].Code != 0 || want[len(want)-1].Code != 0 {
		t.Errorf("reference etcd failed the sequence: %+v", want)
	}
}
