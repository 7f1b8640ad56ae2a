// Package linearizability checks that a concurrent history of operations on a set of
// registers (put, get, compare-and-set per key) is linearizable: that there is one total
// order of the operations, consistent with real time (an operation that returned before
// another was invoked comes first), in which every operation sees the register as a
// sequential register would.
//
// A History is recorded by concurrent clients: each operation with the time it was invoked,
// the time its response arrived and the response. An operation whose outcome the client
// does not know (a timeout, Unavailable, a connection cut after the request was sent) is
// indeterminate: it may have taken effect at any moment after its invocation, or never.
// The checker handles that exactly: an indeterminate operation has no return time (it may
// be ordered after everything) and any response is allowed for it.
//
// Check splits the history by key (a register's linearizability is P-compositional: a
// history is linearizable iff each key's sub-history is) and searches each key's
// sub-history with the Wing-Gong algorithm as refined by Lowe (memoizing (set of
// linearized operations, register state) pairs already explored). The search is bounded in
// steps and time: a pathological history gives an Inconclusive verdict that says so, never
// a hang.
package linearizability

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Kind is the operation on a register.
type Kind string

const (
	// Put writes Value unconditionally.
	Put Kind = "put"
	// Get reads the register: Found and Read are its response.
	Get Kind = "get"
	// CAS writes Value if the register holds Expect (or is absent, with ExpectAbsent);
	// Swapped is its response.
	CAS Kind = "cas"
)

// Op is one operation of a history: invocation, response and when each happened.
type Op struct {
	Client int    `json:"client"`
	Key    string `json:"key"`
	Kind   Kind   `json:"kind"`
	// Value is what Put and CAS write.
	Value string `json:"value,omitempty"`
	// Expect is what a CAS compares against; ExpectAbsent: CAS succeeds iff the key does
	// not exist (etcd's create_revision == 0 or mod_revision == 0).
	Expect       string `json:"expect,omitempty"`
	ExpectAbsent bool   `json:"expect_absent,omitempty"`
	// Call and Return are nanoseconds since the history's start. Return is meaningless
	// when Unknown.
	Call   int64 `json:"call"`
	Return int64 `json:"return"`
	// Unknown marks an indeterminate operation: no response, it may or may not have taken
	// effect. An indeterminate Get says nothing and is ignored.
	Unknown bool `json:"unknown,omitempty"`
	// Get's response: whether the key exists and its value.
	Found bool   `json:"found,omitempty"`
	Read  string `json:"read,omitempty"`
	// CAS's response: whether the compare held and the write happened.
	Swapped bool `json:"swapped,omitempty"`
	// Note is free text for a reader (the endpoint used, the error of an indeterminate op).
	Note string `json:"note,omitempty"`
}

// writes says whether the operation can change the register.
func (o *Op) writes() bool { return o.Kind == Put || o.Kind == CAS }

func fmtTime(ns int64) string { return fmt.Sprintf("%.6fs", float64(ns)/1e9) }

// String renders the operation on one line, e.g.
// `c3 cas(k1, "c1-4" -> "c3-9") = true  [1.200000s, 1.204000s]`.
func (o Op) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "c%d ", o.Client)
	switch o.Kind {
	case Put:
		fmt.Fprintf(&b, "put(%s, %q)", o.Key, o.Value)
	case Get:
		fmt.Fprintf(&b, "get(%s)", o.Key)
	case CAS:
		exp := fmt.Sprintf("%q", o.Expect)
		if o.ExpectAbsent {
			exp = "<absent>"
		}
		fmt.Fprintf(&b, "cas(%s, %s -> %q)", o.Key, exp, o.Value)
	default:
		fmt.Fprintf(&b, "%s(%s)", o.Kind, o.Key)
	}
	switch {
	case o.Unknown:
		b.WriteString(" = ?")
	case o.Kind == Get && o.Found:
		fmt.Fprintf(&b, " = %q", o.Read)
	case o.Kind == Get:
		b.WriteString(" = <absent>")
	case o.Kind == CAS:
		fmt.Fprintf(&b, " = %v", o.Swapped)
	default:
		b.WriteString(" = ok")
	}
	if o.Unknown {
		fmt.Fprintf(&b, "  [%s, ?)", fmtTime(o.Call))
	} else {
		fmt.Fprintf(&b, "  [%s, %s]", fmtTime(o.Call), fmtTime(o.Return))
	}
	if o.Note != "" {
		fmt.Fprintf(&b, "  (%s)", o.Note)
	}
	return b.String()
}

// Recorder collects a history from concurrent clients. The zero value is not usable: use
// NewRecorder, which fixes the history's time origin.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewRecorder starts a history now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the current time in the history's clock (monotonic nanoseconds since its start).
// Take it just before sending a request (Call) and just after its response (Return).
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Add appends a finished (or indeterminate) operation.
func (r *Recorder) Add(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Ops returns a copy of the history so far, ordered by invocation.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	out := append([]Op(nil), r.ops...)
	r.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
}

// Save writes ops to path, one JSON object per line (what Load reads back).
func Save(path string, ops []Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range ops {
		if err := enc.Encode(&ops[i]); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Load reads a history written by Save.
func Load(path string) ([]Op, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ops []Op
	dec := json.NewDecoder(f)
	for dec.More() {
		var op Op
		if err := dec.Decode(&op); err != nil {
			return nil, fmt.Errorf("%s: op %d: %w", path, len(ops)+1, err)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// Validate reports a malformed history (what the checker would otherwise misjudge).
func Validate(ops []Op) error {
	for i := range ops {
		o := &ops[i]
		switch o.Kind {
		case Put, Get, CAS:
		default:
			return fmt.Errorf("op %d: unknown kind %q", i, o.Kind)
		}
		if !o.Unknown && o.Return < o.Call {
			return fmt.Errorf("op %d (%v): returns before it is invoked", i, *o)
		}
	}
	return nil
}
