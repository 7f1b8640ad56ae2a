package main

import (
	"strings"
	"testing"
	"time"
)

func TestDeliveryWindowAcceptsEveryWatcherWithinItsPuts(t *testing.T) {
	w := deliveryWindow{
		done: []int64{2, 0, 1}, tried: []int64{3, 0, 1},
		keyGot:    []int64{2, 0, 1}, // key 0: a failed put that did not apply
		prefixGot: []int64{3, 4},    // 3 acknowledged, 4 tried
	}
	if err := w.verify(); err != nil {
		t.Fatal(err)
	}
	if m := w.missing(); m != 0 {
		t.Fatalf("missing = %d", m)
	}
}

func TestDeliveryWindowFindsALossTheTotalsHide(t *testing.T) {
	// Key 0's watcher lost an event and key 1's got it twice: the totals match (an
	// overall count would pass), the per-watcher check must not.
	w := deliveryWindow{
		done: []int64{1, 1}, tried: []int64{1, 1},
		keyGot: []int64{0, 2}, prefixGot: []int64{2},
	}
	err := w.verify()
	if err == nil || !strings.Contains(err.Error(), "key 0") || !strings.Contains(err.Error(), "2 watchers") {
		t.Fatalf("verify = %v", err)
	}
	if m := w.missing(); m != 1 {
		t.Fatalf("missing = %d", m)
	}
}

func TestDeliveryWindowChecksEachPrefixWatcher(t *testing.T) {
	w := deliveryWindow{done: []int64{1}, tried: []int64{1}, keyGot: []int64{1}, prefixGot: []int64{1, 0, 2}}
	err := w.verify()
	if err == nil || !strings.Contains(err.Error(), "prefix watcher 1") || !strings.Contains(err.Error(), "2 watchers") {
		t.Fatalf("verify = %v", err)
	}
}

func TestDeliveryLedgerChecksOnlyWhatChangedSinceTheLastCheck(t *testing.T) {
	l := newDeliveryLedger(2)
	p := l.addPrefixWatcher()
	l.tried[1].Add(1)
	l.done[1].Add(1)
	l.keyGot[1].Add(1)
	p.Add(1)
	w := l.window()
	if err := w.verify(); err != nil {
		t.Fatal(err)
	}
	l.commit(w)
	// A watcher added after a check owes only the puts made after it.
	q := l.addPrefixWatcher()
	l.tried[0].Add(1)
	l.done[0].Add(1)
	l.keyGot[0].Add(1)
	p.Add(1)
	if err := l.window().verify(); err == nil {
		t.Fatal("the new prefix watcher lacks the put and passed")
	}
	q.Add(1)
	if err := l.window().verify(); err != nil {
		t.Fatal(err)
	}
}

func TestAwaitDeliveryWaitsWhileEventsArriveAndGivesUpWhenTheyStop(t *testing.T) {
	l := newDeliveryLedger(1)
	l.tried[0].Add(10)
	l.done[0].Add(10)
	go func() {
		for i := 0; i < 10; i++ {
			time.Sleep(60 * time.Millisecond) // longer in all than `quiet`, never between two
			l.keyGot[0].Add(1)
		}
	}()
	if m := l.awaitDelivery(300*time.Millisecond, 10*time.Second).missing(); m != 0 {
		t.Fatalf("missing = %d after waiting", m)
	}

	l.done[0].Add(1) // never delivered
	start := time.Now()
	if m := l.awaitDelivery(200*time.Millisecond, 10*time.Second).missing(); m != 1 {
		t.Fatalf("missing = %d", m)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("gave up after %v, not after the quiet time", d)
	}
}
