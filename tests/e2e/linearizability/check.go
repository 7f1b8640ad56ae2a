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
//
// Indeterminate ops pending since long ago would multiply the configurations, so three
// reductions, each exact: they are tried after the determinate candidates; a
// configuration is pruned when one explored before had the same determinate ops, the same
// state and a subset of its indeterminate ops (those can always go last); and indeterminate
// writes of values no op reads or compares with are interchangeable, so one of each kind
// is tried per configuration and the state "holds an unread value" is one memo state.

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"math/rand"
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

// subsetOf says whether every bit of b is set in o (same length).
func (b bitset) subsetOf(o bitset) bool {
	for i := range b {
		if b[i]&^o[i] != 0 {
			return false
		}
	}
	return true
}

// compact is a set of linearized ops in a form whose size does not grow with the history:
// with ops numbered in call order, every op before the highest linearized one (top) is
// linearized except the few still pending then (concurrent or indeterminate ones).
type compact struct {
	top     int
	missing []int32
}

// compact scans only words lo..hi: below lo every word is full, above hi every word is
// empty (the caller keeps both bounds up to date).
func (b bitset) compact(lo, hi int) compact {
	c := compact{top: -1}
	for w := hi; w >= lo && w >= 0; w-- {
		if b[w] != 0 {
			c.top = w*64 + 63 - bits.LeadingZeros64(b[w])
			break
		}
	}
	if c.top < 0 && lo > 0 {
		c.top = lo*64 - 1
	}
	for w := lo; w*64 <= c.top; w++ {
		if b[w] == ^uint64(0) {
			continue
		}
		for i := w * 64; i < w*64+64 && i <= c.top; i++ {
			if b[i/64]&(1<<(i%64)) == 0 {
				c.missing = append(c.missing, int32(i))
			}
		}
	}
	return c
}

func (c compact) equal(o compact) bool {
	if c.top != o.top || len(c.missing) != len(o.missing) {
		return false
	}
	for i := range c.missing {
		if c.missing[i] != o.missing[i] {
			return false
		}
	}
	return true
}

// cacheEntry is a configuration explored (and, since the search goes on, failed): the
// determinate ops linearized, the state, and which indeterminate ops were linearized.
type cacheEntry struct {
	known   compact
	state   State
	unknown bitset // over the indeterminate ops, numbered densely
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
	// Number the ops in call order: what keeps the memo's sets compact.
	ops = append([]*Op(nil), ops...)
	sort.SliceStable(ops, func(a, b int) bool { return ops[a].Call < ops[b].Call })
	// Indeterminate ops get a dense number of their own.
	unkIdx := make([]int, n)
	nUnknown := 0
	for i, o := range ops {
		unkIdx[i] = -1
		if o.Unknown {
			unkIdx[i] = nUnknown
			nUnknown++
		}
	}
	// Values no op of this key reads or compares against. Indeterminate writes of such
	// values are interchangeable: each only makes the register hold something nobody
	// looks for (and makes a failed compare possible). At one configuration the search
	// tries one of each kind (symmetry reduction), and in the memo such a state is one.
	observed := map[string]bool{}
	for _, o := range ops {
		if o.Kind == Get && o.Found {
			observed[o.Read] = true
		}
		if o.Kind == CAS && !o.ExpectAbsent {
			observed[o.Expect] = true
		}
	}
	class := make([]string, n) // "" unless an interchangeable indeterminate write
	for i, o := range ops {
		if !o.Unknown || observed[o.Value] {
			continue
		}
		switch {
		case o.Kind == Put:
			class[i] = "put"
		case o.ExpectAbsent:
			class[i] = "cas-absent"
		default:
			class[i] = "cas=" + o.Expect
		}
	}
	canonical := func(s State) State {
		if s.Found && !observed[s.Value] {
			return State{Found: true, Value: "\x00unobserved"}
		}
		return s
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
	// An op may be linearized when its call comes before the first pending return; where
	// exactly between two returns its call sits only decides when it is tried. Indeterminate
	// calls go last in their stretch: determinate ops are tried first, so the explored
	// configurations hold few indeterminate ops and the dominance below prunes the rest.
	list := make([]int, 0, 2*n)
	var held []int
	for _, t := range order {
		switch {
		case t.call && ops[(t.ev-1)/2].Unknown:
			held = append(held, t.ev)
		case t.call:
			list = append(list, t.ev)
		default:
			list = append(list, held...)
			held = held[:0]
			list = append(list, t.ev)
		}
	}
	list = append(list, held...)
	evs := make([]event, 1+2*n)
	evs[0] = event{op: -1, prev: -1}
	for i := range ops {
		evs[1+2*i] = event{op: i, call: true, match: 2 + 2*i}
		evs[2+2*i] = event{op: i}
	}
	prev := 0
	for _, ev := range list {
		evs[prev].next = ev
		evs[ev].prev = prev
		prev = ev
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

	// Zobrist hashing: the determinate set's hash is the XOR of its ops' random keys, kept
	// up to date as ops are linearized and undone, so a step costs the same however long
	// the history.
	rng := rand.New(rand.NewSource(1))
	zobrist := make([]uint64, n)
	for i := range zobrist {
		if !ops[i].Unknown {
			zobrist[i] = rng.Uint64()
		}
	}
	seed := maphash.MakeSeed()
	stateHash := func(s State) uint64 {
		if !s.Found {
			return 0
		}
		return maphash.String(seed, s.Value) | 1
	}
	known := make(bitset, (n+63)/64)
	unknown := make(bitset, (nUnknown+63)/64)
	var setHash uint64
	cache := map[uint64][]cacheEntry{}
	// remember records the configuration, or says it is dominated by one explored before:
	// the same determinate ops and state, and a subset of its indeterminate ops (whatever
	// this one can still do, that one could too: indeterminate ops can always go last).
	full, hi := 0, -1 // words below full are all ones; words above hi are zero
	remember := func(s State) bool {
		s = canonical(s)
		h := setHash ^ stateHash(s)*0x9e3779b97f4a7c15
		c := known.compact(full, hi)
		for _, e := range cache[h] {
			if e.state == s && e.known.equal(c) && e.unknown.subsetOf(unknown) {
				return false
			}
		}
		cache[h] = append(cache[h], cacheEntry{c, s, append(bitset(nil), unknown...)})
		return true
	}
	flip := func(op int) {
		if u := unkIdx[op]; u >= 0 {
			unknown[u/64] ^= 1 << (u % 64)
			return
		}
		w := op / 64
		known[w] ^= 1 << (op % 64)
		setHash ^= zobrist[op]
		if known[w]&(1<<(op%64)) != 0 { // set
			if w > hi {
				hi = w
			}
			for full < len(known) && known[full] == ^uint64(0) {
				full++
			}
		} else { // cleared
			if w < full {
				full = w
			}
			for hi >= 0 && known[hi] == 0 {
				hi--
			}
		}
	}

	var stack []frame
	// tried[d]: the interchangeable kinds already tried at the configuration of depth d.
	tried := []map[string]bool{nil}
	state := State{}
	remember(state)
	// Deepest point reached, for the explanation.
	best := struct {
		depth   int
		state   State
		blocked int // op whose return was reached unlinearized
		tail    []int
	}{depth: -1}

	steps := 0
	e := evs[0].next
	for e >= 0 {
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
			if k := class[ev.op]; k != "" {
				d := len(stack)
				if tried[d][k] {
					e = ev.next
					continue
				}
				if tried[d] == nil {
					tried[d] = map[string]bool{}
				}
				tried[d][k] = true
			}
			if next, ok := step(state, op); ok {
				flip(ev.op)
				if remember(next) {
					stack = append(stack, frame{ev: e, state: state})
					tried = append(tried, nil)
					state = next
					unlink(e)
					unlink(ev.match)
					e = evs[0].next
					continue
				}
				flip(ev.op)
			}
			e = ev.next
			continue
		}
		if ops[ev.op].Unknown {
			// Only indeterminate ops are left (their returns are last): they go at the end,
			// or never; nothing can contradict that.
			return keyResult{verdict: Linearizable, steps: steps}
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
			return keyResult{verdict: NotLinearizable, steps: steps, blocked: ops[best.blocked],
				explanation: explain(ops, best.depth, best.state, best.blocked, best.tail)}
		}
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		tried = tried[:len(tried)-1]
		state = top.state
		flip(evs[top.ev].op)
		relink(evs[top.ev].match)
		relink(top.ev)
		e = evs[top.ev].next
	}
	// Every op linearized.
	return keyResult{verdict: Linearizable, steps: steps}
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
