package main

// deliveryLedger: what the watch benchmark's delivery check compares. Every put counts as
// tried, and once acknowledged as done, on its key; every watcher counts the events it
// received. A check looks at what changed since the previous one (a "window"): each
// exact-key watcher must have received between the acknowledged and the tried puts on its
// key, each prefix watcher between the acknowledged and the tried puts on all keys (a put
// that failed may or may not have applied). The counters are atomics updated by the putters
// and by each stream's receiver, one add per put or per response: the check costs the
// benchmark nothing measurable.

import (
	"fmt"
	"sync/atomic"
	"time"
)

type deliveryLedger struct {
	tried, done []atomic.Int64 // per key index
	keyGot      []atomic.Int64 // per key index: events received by that key's watcher
	prefixGot   []*atomic.Int64
	// At the last check.
	lastTried, lastDone, lastKeyGot, lastPrefixGot []int64
}

func newDeliveryLedger(keys int) *deliveryLedger {
	return &deliveryLedger{
		tried: make([]atomic.Int64, keys), done: make([]atomic.Int64, keys), keyGot: make([]atomic.Int64, keys),
		lastTried: make([]int64, keys), lastDone: make([]int64, keys), lastKeyGot: make([]int64, keys),
	}
}

// addPrefixWatcher returns the counter of a new prefix watcher. Call only while no check
// runs and no put is in flight (between phases): the watcher is expected to receive the
// puts made after the last check.
func (l *deliveryLedger) addPrefixWatcher() *atomic.Int64 {
	c := new(atomic.Int64)
	l.prefixGot = append(l.prefixGot, c)
	l.lastPrefixGot = append(l.lastPrefixGot, 0)
	return c
}

// window is what changed since the last check.
func (l *deliveryLedger) window() deliveryWindow {
	delta := func(cur []atomic.Int64, last []int64) []int64 {
		out := make([]int64, len(cur))
		for i := range cur {
			out[i] = cur[i].Load() - last[i]
		}
		return out
	}
	w := deliveryWindow{done: delta(l.done, l.lastDone), keyGot: delta(l.keyGot, l.lastKeyGot)}
	// Received events after acknowledged puts: a put acknowledged after its events were
	// read looks like a duplicate, never like a loss. Tried last: it covers every put done.
	w.prefixGot = make([]int64, len(l.prefixGot))
	for i, c := range l.prefixGot {
		w.prefixGot[i] = c.Load() - l.lastPrefixGot[i]
	}
	w.tried = delta(l.tried, l.lastTried)
	return w
}

// commit makes w the base of the next check.
func (l *deliveryLedger) commit(w deliveryWindow) {
	for i := range w.done {
		l.lastDone[i] += w.done[i]
		l.lastTried[i] += w.tried[i]
		l.lastKeyGot[i] += w.keyGot[i]
	}
	for i := range w.prefixGot {
		l.lastPrefixGot[i] += w.prefixGot[i]
	}
}

type deliveryWindow struct {
	done, tried, keyGot, prefixGot []int64
}

func sum(v []int64) int64 {
	var s int64
	for _, x := range v {
		s += x
	}
	return s
}

// missing is how many events the watchers still lack to reach the acknowledged puts.
func (w deliveryWindow) missing() int64 {
	var m int64
	for i := range w.done {
		m += max(w.done[i]-w.keyGot[i], 0)
	}
	done := sum(w.done)
	for _, g := range w.prefixGot {
		m += max(done-g, 0)
	}
	return m
}

// received is every event of the window.
func (w deliveryWindow) received() int64 { return sum(w.keyGot) + sum(w.prefixGot) }

// verify fails unless every watcher received between the acknowledged and the tried puts
// it watches; the error names the first watcher out of range and how many are.
func (w deliveryWindow) verify() error {
	bad, first := 0, ""
	fail := func(what string, got, done, tried int64) {
		if got >= done && got <= tried {
			return
		}
		if bad == 0 {
			first = fmt.Sprintf("%s received %d events for %d acknowledged puts (%d tried)", what, got, done, tried)
		}
		bad++
	}
	for i := range w.done {
		fail(fmt.Sprintf("the watcher of key %d", i), w.keyGot[i], w.done[i], w.tried[i])
	}
	done, tried := sum(w.done), sum(w.tried)
	for i, g := range w.prefixGot {
		fail(fmt.Sprintf("prefix watcher %d", i), g, done, tried)
	}
	if bad > 0 {
		return fmt.Errorf("delivery check: %s; %d watchers out of range", first, bad)
	}
	return nil
}

// awaitDelivery polls the ledger until no acknowledged put lacks an event, as long as
// events keep arriving: it gives up after `quiet` without a new event or after `limit` in
// all, and returns the last window.
func (l *deliveryLedger) awaitDelivery(quiet, limit time.Duration) deliveryWindow {
	start := time.Now()
	w := l.window()
	last, lastRise := w.received(), start
	for w.missing() > 0 {
		now := time.Now()
		if now.Sub(lastRise) > quiet || now.Sub(start) > limit {
			break
		}
		time.Sleep(50 * time.Millisecond)
		w = l.window()
		if r := w.received(); r > last {
			last, lastRise = r, time.Now()
		}
	}
	return w
}
