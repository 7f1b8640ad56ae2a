package lincheck

import (
	"fmt"
	"math/rand"
	"testing"
)

func TestSequentialHistoryIsLinearizable(t *testing.T) {
	h := []Op{
		{Key: "k", Kind: Get, Value: "", Call: 0, Return: 1},
		{Key: "k", Kind: Put, Value: "a", Call: 2, Return: 3},
		{Key: "k", Kind: Get, Value: "a", Call: 4, Return: 5},
		{Key: "k", Kind: CAS, Old: "a", Value: "b", OK: true, Call: 6, Return: 7},
		{Key: "k", Kind: CAS, Old: "a", Value: "c", OK: false, Call: 8, Return: 9},
		{Key: "k", Kind: Get, Value: "b", Call: 10, Return: 11},
	}
	if r := Check(h); !r.OK {
		t.Fatalf("rejected:\n%s", r.Details)
	}
}

func TestStaleReadIsNotLinearizable(t *testing.T) {
	// put(a) completed before the get started, yet the get saw the old (absent) value.
	h := []Op{
		{Client: 1, Key: "k", Kind: Put, Value: "a", Call: 0, Return: 10},
		{Client: 2, Key: "k", Kind: Get, Value: "", Call: 20, Return: 30},
	}
	r := Check(h)
	if r.OK || r.BadKey != "k" {
		t.Fatalf("a stale read was accepted: %+v", r)
	}
	t.Logf("rejected as expected:\n%s", r.Details)
}

func TestConcurrentOpsMayOrderEitherWay(t *testing.T) {
	h := []Op{
		{Client: 1, Key: "k", Kind: Put, Value: "a", Call: 0, Return: 100},
		{Client: 2, Key: "k", Kind: Get, Value: "a", Call: 10, Return: 20},
		{Client: 3, Key: "k", Kind: Get, Value: "", Call: 5, Return: 8},
	}
	if r := Check(h); !r.OK {
		t.Fatalf("rejected:\n%s", r.Details)
	}
	// But two reads that disagree about the order of two completed writes are not.
	bad := []Op{
		{Client: 1, Key: "k", Kind: Put, Value: "a", Call: 0, Return: 10},
		{Client: 2, Key: "k", Kind: Put, Value: "b", Call: 0, Return: 10},
		{Client: 3, Key: "k", Kind: Get, Value: "a", Call: 20, Return: 30},
		{Client: 4, Key: "k", Kind: Get, Value: "b", Call: 40, Return: 50},
		{Client: 3, Key: "k", Kind: Get, Value: "a", Call: 60, Return: 70},
	}
	if r := Check(bad); r.OK {
		t.Fatal("a value flip-flop was accepted")
	}
}

func TestIndeterminateWritesMayOrMayNotHaveHappened(t *testing.T) {
	// An unknown put may be seen (took effect) ...
	seen := []Op{
		{Client: 1, Key: "k", Kind: Put, Value: "a", Call: 0, Unknown: true},
		{Client: 2, Key: "k", Kind: Get, Value: "a", Call: 50, Return: 60},
	}
	if r := Check(seen); !r.OK {
		t.Fatalf("rejected:\n%s", r.Details)
	}
	// ... or never seen (never happened) ...
	never := []Op{
		{Client: 1, Key: "k", Kind: Put, Value: "a", Call: 0, Unknown: true},
		{Client: 2, Key: "k", Kind: Get, Value: "", Call: 50, Return: 60},
	}
	if r := Check(never); !r.OK {
		t.Fatalf("rejected:\n%s", r.Details)
	}
	// ... and even take effect late (after later reads missed it), but never before its call.
	late := []Op{
		{Client: 1, Key: "k", Kind: Put, Value: "a", Call: 0, Unknown: true},
		{Client: 2, Key: "k", Kind: Get, Value: "", Call: 50, Return: 60},
		{Client: 2, Key: "k", Kind: Get, Value: "a", Call: 70, Return: 80},
	}
	if r := Check(late); !r.OK {
		t.Fatalf("rejected:\n%s", r.Details)
	}
	early := []Op{
		{Client: 2, Key: "k", Kind: Get, Value: "a", Call: 0, Return: 10},
		{Client: 1, Key: "k", Kind: Put, Value: "a", Call: 20, Unknown: true},
	}
	if r := Check(early); r.OK {
		t.Fatal("a read of a value before its write was called was accepted")
	}
	// An unknown CAS applies only if its expected value held.
	cas := []Op{
		{Client: 1, Key: "k", Kind: Put, Value: "x", Call: 0, Return: 5},
		{Client: 2, Key: "k", Kind: CAS, Old: "y", Value: "z", Call: 10, Unknown: true},
		{Client: 3, Key: "k", Kind: Get, Value: "z", Call: 20, Return: 30},
	}
	if r := Check(cas); r.OK {
		t.Fatal("an unknown CAS with a wrong expected value took effect")
	}
}

func TestLostAcknowledgedWriteIsNotLinearizable(t *testing.T) {
	h := []Op{
		{Client: 1, Key: "k", Kind: Put, Value: "a", Call: 0, Return: 10},
		{Client: 1, Key: "k", Kind: CAS, Old: "a", Value: "b", OK: true, Call: 20, Return: 30},
		{Client: 2, Key: "k", Kind: Get, Value: "a", Call: 40, Return: 50}, // b was lost
	}
	if r := Check(h); r.OK {
		t.Fatal("a lost acknowledged CAS was accepted")
	}
}

// A random sequential register history, with its operations' intervals stretched so that
// they overlap, stays linearizable; the checker must also be fast enough on a few hundred
// concurrent operations.
func TestRandomOverlappingHistoriesPass(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for trial := 0; trial < 20; trial++ {
		var h []Op
		value := ""
		for i := 0; i < 300; i++ {
			at := int64(i * 10)
			o := Op{Client: rng.Intn(8), Key: "k", Call: at - int64(rng.Intn(40)), Return: at + int64(rng.Intn(40))}
			switch rng.Intn(3) {
			case 0:
				o.Kind, o.Value = Put, fmt.Sprintf("v%d", i)
				value = o.Value
			case 1:
				o.Kind, o.Value = Get, value
			default:
				o.Kind, o.Old, o.Value = CAS, value, fmt.Sprintf("w%d", i)
				if rng.Intn(2) == 0 {
					o.Old = "nope"
				}
				o.OK = o.Old == value
				if o.OK {
					value = o.Value
				}
			}
			if o.Kind != Get && rng.Intn(20) == 0 {
				o.Unknown = true
			}
			h = append(h, o)
		}
		if r := Check(h); !r.OK {
			t.Fatalf("trial %d rejected a linearizable history:\n%s", trial, r.Details)
		}
	}
}
