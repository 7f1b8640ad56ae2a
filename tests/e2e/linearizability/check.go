package linearizability

// The search (Wing & Gong 1993, with Lowe's 2017 memoization, as in Porcupine and Knossos'
// "wgl"): the history of one key becomes a list of call and return events in time order.
// Walking the list, a call may be linearized now if the register model accepts it in the
// current state; it is then removed (with its return) from the list and pushed on a stack.
// Reaching a return event means its call was not linearized before its response arrived:
// the last choice is undone (popped) and the next candidate tried. Every (set of
// linearized ops, state) pair reached is remembered, so a configuration is explored once.
// Indeterminate operations have their return at +infinity, so they may be linearized
// anywhere after their call or at the very end (which is "never": nothing observes it).

import (
	"fmt"
	"hash/maphash"
	"math"
	"sort"
	"strings"
	"time"
)

// Verdict is the outcome of a check.
type Verdict int

const (
	Linearizable Verdict = iota
	NotLinearizable
	// Inconclusive: the search exceeded its step or time bound.
	Inconclusive
)

func (v Verdict) String() string {
	switch v {
	case Linearizable:
		return "linearizable"
	case NotLinearizable:
		return "NOT linearizable"
	default:
		return "inconclusive"
	}
}

// Options bound the search.
type Options struct {
	// MaxSteps bounds the search steps per key (default 5,000,000).
	MaxSteps int
	// Timeout bounds the whole check (default 30 s).
	Timeout time.Duration
}

// Result says whether the history is linearizable and, if not, why.
type Result struct {
	Verdict Verdict
	// Key is the first key whose sub-history failed (or exhausted the bounds).
	Key string
	// Explanation, for a failure: the longest linearizable prefix the search found, the
	// register's state after it and the operation that cannot follow it.
	Explanation string
	// Blocked is the op that cannot be linearized (NotLinearizable only).
	Blocked *Op
	Keys    int // keys checked
	Ops     int // operations considered (indeterminate gets are dropped)
	Steps   int // search steps over all keys
}

// State is the register's value: absent, or present with Value.
type State struct {
	Found bool
	Value string
}

func (s State) String() string {
	if !s.Found {
		return "<absent>"
	}
	return fmt.Sprintf("%q", s.Value)
}

// step applies op to the register in state s: the state after it, and whether op's
// recorded response is what a sequential register would have answered.
func step(s State, op *Op) (State, bool) {
	switch op.Kind {
	case Put:
		return State{Found: true, Value: op.Value}, true
	case Get:
		return s, op.Found == s.Found && (!s.Found || op.Read == s.Value)
	case CAS:
		holds := (op.ExpectAbsent && !s.Found) ||
			(!op.ExpectAbsent && s.Found && s.Value == op.Expect)
		if !op.Unknown && op.Swapped != holds {
			return s, false
		}
		if holds {
			return State{Found: true, Value: op.Value}, true
		}
		return s, true
	}
	return s, false
}

// Check decides whether ops (every key starting absent) is linearizable.
func Check(ops []Op, opts Options) Result {
	if opts.MaxSteps <= 0 {
		opts.MaxSteps = 5_000_000
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	deadline := time.Now().Add(opts.Timeout)
	if err := Validate(ops); err != nil {
		return Result{Verdict: NotLinearizable, Explanation: "malformed history: " + err.Error()}
	}
	byKey := map[string][]*Op{}
	for i := range ops {
		o := &ops[i]
		if o.Kind == Get && o.Unknown {
			continue // an unanswered read constrains nothing
		}
		byKey[o.Key] = append(byKey[o.Key], o)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	res := Result{Verdict: Linearizable, Keys: len(keys)}
	for _, k := range keys {
		res.Ops += len(byKey[k])
	}
	for _, k := range keys {
		kr := checkKey(byKey[k], opts.MaxSteps, deadline)
		res.Steps += kr.steps
		if kr.verdict != Linearizable {
			res.Verdict, res.Key, res.Explanation = kr.verdict, k, kr.explanation
			res.Blocked = kr.blocked
			return res
		}
	}
	return res
}

type keyResult struct {
	verdict     Verdict
	steps       int
	explanation string
	blocked     *Op
}

// checkKey first tries the key's history without the indeterminate writes no one read
// (if the rest is linearizable, so is the whole: those writes go last, where nothing
// observes them) because each indeterminate op doubles the configurations to explore; only
// if that fails does it search the full history.
func checkKey(ops []*Op, maxSteps int, deadline time.Time) keyResult {
	observed := map[string]bool{}
	for _, o := range ops {
		if o.Kind == Get && !o.Unknown && o.Found {
			observed[o.Read] = true
		}
		if o.Kind == CAS && !o.ExpectAbsent {
			observed[o.Expect] = true
		}
	}
	var pruned []*Op
	for _, o := range ops {
		if o.Unknown && o.writes() && !observed[o.Value] {
			continue
		}
		pruned = append(pruned, o)
	}
	steps := 0
	if len(pruned) < len(ops) {
		r := search(pruned, maxSteps, deadline)
		if r.verdict == Linearizable {
			return r
		}
		steps = r.steps
	}
	r := search(ops, maxSteps-steps, deadline)
	r.steps += steps
	return r
}

// event is a node of the doubly linked list of calls and returns.
type event struct {
	op         int // index into the key's ops
	call       bool
	match      int // for a call: the index of its return event
	prev, next int // -1: none
}

type bitset []uint64

func (b bitset) set(i int)     { b[i/64] |= 1 << (i % 64) }
func (b bitset) clear(i int)   { b[i/64] &^= 1 << (i % 64) }
func (b bitset) clone() bitset { return append(bitset(nil), b...) }
func (b bitset) equal(o bitset) bool {
	for i := range b {
		if b[i] != o[i] {
			return false
		}
	}
	return true
}

type cacheEntry struct {
	linearized bitset
	state      State
}

type frame struct {
	ev    int   // the call event linearized
	state State // the state before it
}

func search(ops []*Op, maxSteps int, deadline time.Time) keyResult {
	n := len(ops)
	if n == 0 {
		return keyResult{verdict: Linearizable}
	}
	// Events: index 0 is the head sentinel; call of op i is 1+2i, its return 2+2i.
	type timed struct {
		at   int64
		call bool
		ev   int
	}
	order := make([]timed, 0, 2*n)
	for i, o := range ops {
		ret := o.Return
		if o.Unknown {
			ret = math.MaxInt64
		}
		order = append(order, timed{o.Call, true, 1 + 2*i}, timed{ret, false, 2 + 2*i})
	}
	// Calls before returns at the same instant: such ops count as concurrent (the lenient
	// reading; the clock cannot say which came first).
	sort.SliceStable(order, func(a, b int) bool {
		if order[a].at != order[b].at {
			return order[a].at < order[b].at
		}
		return order[a].call && !order[b].call
	})
	evs := make([]event, 1+2*n)
	evs[0] = event{op: -1, prev: -1}
	for i := range ops {
		evs[1+2*i] = event{op: i, call: true, match: 2 + 2*i}
		evs[2+2*i] = event{op: i}
	}
	prev := 0
	for _, t := range order {
		evs[prev].next = t.ev
		evs[t.ev].prev = prev
		prev = t.ev
	}
	evs[prev].next = -1

	unlink := func(e int) {
		p, nx := evs[e].prev, evs[e].next
		evs[p].next = nx
		if nx >= 0 {
			evs[nx].prev = p
		}
	}
	relink := func(e int) {
		p, nx := evs[e].prev, evs[e].next
		evs[p].next = e
		if nx >= 0 {
			evs[nx].prev = e
		}
	}

	seed := maphash.MakeSeed()
	hashOf := func(b bitset, s State) uint64 {
		var h maphash.Hash
		h.SetSeed(seed)
		for _, w := range b {
			var buf [8]byte
			for i := 0; i < 8; i++ {
				buf[i] = byte(w >> (8 * i))
			}
			h.Write(buf[:])
		}
		if s.Found {
			h.WriteByte(1)
			h.WriteString(s.Value)
		}
		return h.Sum64()
	}
	cache := map[uint64][]cacheEntry{}
	remember := func(b bitset, s State) bool { // false if already seen
		h := hashOf(b, s)
		for _, c := range cache[h] {
			if c.state == s && c.linearized.equal(b) {
				return false
			}
		}
		cache[h] = append(cache[h], cacheEntry{b.clone(), s})
		return true
	}

	linearized := make(bitset, (n+63)/64)
	var stack []frame
	state := State{}
	// Deepest point reached, for the explanation.
	best := struct {
		depth   int
		state   State
		blocked int // op whose return was reached unlinearized
		tail    []int
	}{depth: -1}

	steps := 0
	e := evs[0].next
	for evs[0].next >= 0 {
		steps++
		if steps > maxSteps || (steps%4096 == 0 && time.Now().After(deadline)) {
			why := fmt.Sprintf("the search gave up after %d steps", steps)
			if steps <= maxSteps {
				why = fmt.Sprintf("the search ran out of time after %d steps", steps)
			}
			return keyResult{verdict: Inconclusive, steps: steps, explanation: fmt.Sprintf(
				"%s (%d ops on this key, %d linearized at the deepest point): too many "+
					"concurrent or indeterminate operations; record a shorter or less "+
					"concurrent history", why, n, best.depth)}
		}
		ev := &evs[e]
		if ev.call {
			op := ops[ev.op]
			if next, ok := step(state, op); ok {
				linearized.set(ev.op)
				if remember(linearized, next) {
					stack = append(stack, frame{ev: e, state: state})
					state = next
					unlink(e)
					unlink(ev.match)
					e = evs[0].next
					continue
				}
				linearized.clear(ev.op)
			}
			e = ev.next
			continue
		}
		// A return whose call is still pending: the choices so far cannot be extended.
		if len(stack) > best.depth {
			best.depth, best.state, best.blocked = len(stack), state, ev.op
			best.tail = best.tail[:0]
			from := len(stack) - 12
			if from < 0 {
				from = 0
			}
			for _, f := range stack[from:] {
				best.tail = append(best.tail, evs[f.ev].op)
			}
		}
		if len(stack) == 0 {
			break
		}
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		state = top.state
		linearized.clear(evs[top.ev].op)
		relink(evs[top.ev].match)
		relink(top.ev)
		e = evs[top.ev].next
	}
	if evs[0].next < 0 {
		return keyResult{verdict: Linearizable, steps: steps}
	}
	return keyResult{verdict: NotLinearizable, steps: steps, blocked: ops[best.blocked],
		explanation: explain(ops, best.depth, best.state, best.blocked, best.tail)}
}

func explain(ops []*Op, depth int, state State, blocked int, tail []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "the longest linearizable prefix has %d of %d ops; its last ops:\n", depth,
		len(ops))
	for _, i := range tail {
		fmt.Fprintf(&b, "    %v\n", *ops[i])
	}
	fmt.Fprintf(&b, "  leaving the register %v; then this op cannot be linearized "+
		"(no order of the ops pending at its return explains it):\n    %v\n", state,
		*ops[blocked])
	// The ops concurrent with it, which the search tried before and after it.
	blk := ops[blocked]
	blkEnd := blk.Return
	if blk.Unknown {
		blkEnd = math.MaxInt64
	}
	var conc []string
	for _, o := range ops {
		if o == blk {
			continue
		}
		end := o.Return
		if o.Unknown {
			end = math.MaxInt64
		}
		if o.Call <= blkEnd && end >= blk.Call {
			conc = append(conc, "    "+o.String())
		}
	}
	if len(conc) > 0 {
		if len(conc) > 20 {
			conc = append(conc[:20], fmt.Sprintf("    ... and %d more", len(conc)-20))
		}
		fmt.Fprintf(&b, "  ops concurrent with it:\n%s\n", strings.Join(conc, "\n"))
	}
	return b.String()
}
