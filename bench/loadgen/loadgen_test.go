package main

import (
	"bytes"
	"math/rand"
	"strings"
	"testing"
	"time"
)

func TestKeysAreExactly32BytesAndSortNumerically(t *testing.T) {
	prev := ""
	for _, i := range []int{0, 1, 9, 10, 999, 1000, 999999, 1000000} {
		k := key(matrixPrefix, i)
		if len(k) != 32 {
			t.Fatalf("key(%d) = %q has %d bytes", i, k, len(k))
		}
		if k <= prev {
			t.Fatalf("key(%d) = %q does not sort after %q", i, k, prev)
		}
		prev = k
	}
}

func TestValuesAre256Bytes(t *testing.T) {
	if v := randomValue(rand.New(rand.NewSource(1))); len(v) != 256 {
		t.Fatalf("value has %d bytes", len(v))
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if p := percentile(d, 0.5); p != 51 {
		t.Errorf("p50 = %d", p)
	}
	if p := percentile(d, 0.99); p != 100 {
		t.Errorf("p99 = %d", p)
	}
	if p := percentile(d[:1], 0.99); p != 1 {
		t.Errorf("p99 of one sample = %d", p)
	}
}

func TestParseShapesRejectsMoreConnsThanClients(t *testing.T) {
	if s, err := parseShapes("1x1,64x8"); err != nil || len(s) != 2 || s[1] != (shape{64, 8}) {
		t.Fatalf("parseShapes: %v %v", s, err)
	}
	if _, err := parseShapes("4x8"); err == nil {
		t.Fatal("4x8 accepted")
	}
}

func TestReportRatiosAreCandidateOverBaseWithMedians(t *testing.T) {
	recs := []record{
		{System: "etcd", Kind: "cell", Name: "put", Clients: 1, Conns: 1, OpsPerSec: 1000, P50Ms: 1, P99Ms: 4},
		{System: "rusd", Kind: "cell", Name: "put", Clients: 1, Conns: 1, OpsPerSec: 3000, P50Ms: 0.5, P99Ms: 1},
		{System: "rusd", Kind: "cell", Name: "put", Clients: 1, Conns: 1, OpsPerSec: 2000, P50Ms: 0.5, P99Ms: 3},
		{System: "rusd", Kind: "cell", Name: "put", Clients: 1, Conns: 1, OpsPerSec: 100, P50Ms: 0.5, P99Ms: 2},
		{System: "etcd", Kind: "rss", Name: "after load", RssKiB: 1024 * 400, PssKiB: 1024 * 400, Procs: 1},
		{System: "rusd", Kind: "rss", Name: "after load", RssKiB: 1024 * 100, PssKiB: 1024 * 80, Procs: 4},
		{System: "etcd", Kind: "startup", Name: "restart", Ms: 2000},
	}
	var buf bytes.Buffer
	writeReport(&buf, recs, "etcd", "rusd")
	out := buf.String()
	for _, want := range []string{
		"2000   2.00x", // median ops/s of 3000, 2000, 100 over 1000
		"0.50x",        // median p99 2 over 4
		"0.25x",        // RSS 100 over 400
		"processes summed: etcd 1, rusd 4",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "2000            -          -") {
		t.Errorf("a figure one side lacks must print '-', not a ratio:\n%s", out)
	}
}

func TestReportFailoverShowsTailAgainstBudget(t *testing.T) {
	var recs []record
	for i := 1; i <= 20; i++ {
		recs = append(recs,
			record{System: "etcd", Kind: "failover", Name: "kill", Ms: float64(1000 + i), BudgetMs: 3000},
			record{System: "rusd", Kind: "failover", Name: "kill", Ms: float64(100 * i), BudgetMs: 3000})
	}
	recs[len(recs)-1].Ms = 3500 // rusd's slowest kill is over the bound
	var out bytes.Buffer
	writeReport(&out, recs, "etcd", "rusd")
	s := out.String()
	for _, want := range []string{"kill (ms; 20 / 20 kills)", "p50", "1011", "1100", "p99", "1020", "3500", "p99 within 3000 ms"} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if !strings.Contains(s, "yes") || !strings.Contains(s, "NO") {
		t.Errorf("report lacks the verdicts (etcd yes, rusd NO):\n%s", s)
	}
}

func TestReportShowsTheLoadgensCPUPerOpAndItsShare(t *testing.T) {
	recs := []record{
		{System: "etcd", Kind: "cell", Name: "put", Clients: 64, Conns: 8, Loadgen: "cxx", OpsPerSec: 1000,
			CPUUsPerOp: 90, LoadgenCPUUsPerOp: 10},
		{System: "rusd", Kind: "cell", Name: "put", Clients: 64, Conns: 8, Loadgen: "cxx", OpsPerSec: 3000,
			CPUUsPerOp: 30, LoadgenCPUUsPerOp: 5},
	}
	var buf bytes.Buffer
	writeReport(&buf, recs, "etcd", "rusd")
	out := buf.String()
	for _, want := range []string{
		"loadgen (cxx) CPU us/op",
		"put                  64/8 |      10.0       5.0   0.50x |      10%      14%", // 10/(10+90), 5/(5+30)
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestReportFlagsACellWithErrorsAsFailed(t *testing.T) {
	recs := []record{
		{System: "etcd", Kind: "cell", Name: "put", Clients: 1, Conns: 1, OpsPerSec: 1000, P50Ms: 1, P99Ms: 4},
		{System: "rusd", Kind: "cell", Name: "put", Clients: 1, Conns: 1, OpsPerSec: 900, P50Ms: 1, P99Ms: 4,
			Errors: 3, FirstError: "grpc-status 14: unavailable"},
	}
	var buf bytes.Buffer
	writeReport(&buf, recs, "etcd", "rusd")
	out := buf.String()
	for _, want := range []string{"FAILED (errors)", "rusd put 1/1: 3 errors, first: grpc-status 14: unavailable"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
