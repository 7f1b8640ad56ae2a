// Package lincheck checks that a concurrent history of operations on a set of registers
// (keys) is linearizable: that every operation can be given a single instant between its
// call and its return such that, in that order, each register behaves sequentially.
//
// Operations: Put(v), Get() -> v ("" = absent), CAS(old, new) -> swapped. An operation
// whose outcome is unknown (the client saw a timeout or an error after sending it) is
// *indeterminate*: it may have taken effect at any instant after its call, or never;
// its return time is infinite and its output is not checked. A Get without an answer
// constrains nothing and is left out by the caller.
//
// Linearizability is compositional (Herlihy & Wing), so each key is checked alone, with
// the Wing & Gong search as refined by Lowe: repeatedly linearize one operation that may
// come next (called before every remaining completed operation returned), backtracking,
// with a cache of (set of linearized operations, register value) already explored.
package lincheck

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Kind of an operation.
type Kind int

const (
	Put Kind = iota
	Get
	CAS
)

// Op is one operation of a history. Times are in any monotonic unit (ns since start).
type Op struct {
	Client  int
	Key     string
	Kind    Kind
	Value   string // Put: the value written; Get: the value read; CAS: the new value
	Old     string // CAS: the expected value
	OK      bool   // CAS: swapped
	Call    int64
	Return  int64 // ignored when Unknown
	Unknown bool  // indeterminate: may or may not have taken effect (Put, CAS)
}

func (o Op) String() string {
	ret := fmt.Sprint(o.Return)
	if o.Unknown {
		ret = "?"
	}
	switch o.Kind {
	case Put:
		return fmt.Sprintf("c%d put(%s,%q) [%d,%s]", o.Client, o.Key, o.Value, o.Call, ret)
	case Get:
		return fmt.Sprintf("c%d get(%s)=%q [%d,%s]", o.Client, o.Key, o.Value, o.Call, ret)
	default:
		return fmt.Sprintf("c%d cas(%s,%q->%q)=%v [%d,%s]", o.Client, o.Key, o.Old, o.Value, o.OK, o.Call, ret)
	}
}

// Result of a check.
type Result struct {
	OK      bool
	BadKey  string // the first key whose history is not linearizable
	Details string // that key's operations, for the failure message
}

// Check checks the whole history (any order; keys are independent).
func Check(history []Op) Result {
	byKey := map[string][]Op{}
	for _, o := range history {
		byKey[o.Key] = append(byKey[o.Key], o)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !checkKey(byKey[k]) {
			ops := byKey[k]
			sort.Slice(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
			var b strings.Builder
			for _, o := range ops {
				b.WriteString(o.String())
				b.WriteByte('\n')
			}
			return Result{OK: false, BadKey: k, Details: b.String()}
		}
	}
	return Result{OK: true}
}

// step applies o to value v: whether o may take effect in that state, and the new value.
func step(o *Op, v string) (bool, string) {
	switch o.Kind {
	case Put:
		return true, o.Value
	case Get:
		return o.Value == v, v
	default: // CAS
		swapped := v == o.Old
		if o.Unknown {
			if swapped {
				return true, o.Value
			}
			return true, v
		}
		if swapped != o.OK {
			return false, v
		}
		if swapped {
			return true, o.Value
		}
		return true, v
	}
}

type bitset []uint64

func (b bitset) set(i int)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) clear(i int)    { b[i/64] &^= 1 << (i % 64) }
func (b bitset) has(i int) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitset) key(v string) string {
	var s strings.Builder
	for _, w := range b {
		fmt.Fprintf(&s, "%x,", w)
	}
	s.WriteString(v)
	return s.String()
}

func checkKey(ops []Op) bool {
	sort.Slice(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	n := len(ops)
	ret := make([]int64, n)
	completed := 0
	for i := range ops {
		if ops[i].Unknown {
			ret[i] = math.MaxInt64
		} else {
			ret[i] = ops[i].Return
			completed++
		}
	}
	done := make(bitset, (n+63)/64)
	seen := map[string]bool{}
	var search func(value string, linearizedCompleted int) bool
	search = func(value string, linearizedCompleted int) bool {
		if linearizedCompleted == completed {
			return true // every remaining op is indeterminate: they may never have happened
		}
		k := done.key(value)
		if seen[k] {
			return false
		}
		seen[k] = true
		// The next op must be called before every remaining op's return.
		minRet := int64(math.MaxInt64)
		for i := 0; i < n; i++ {
			if !done.has(i) && ret[i] < minRet {
				minRet = ret[i]
			}
		}
		for i := 0; i < n; i++ {
			if done.has(i) {
				continue
			}
			if ops[i].Call > minRet {
				break // sorted by call: no later op may come next either
			}
			ok, next := step(&ops[i], value)
			if !ok {
				continue
			}
			done.set(i)
			c := linearizedCompleted
			if !ops[i].Unknown {
				c++
			}
			if search(next, c) {
				return true
			}
			done.clear(i)
		}
		return false
	}
	return search("", 0)
}
