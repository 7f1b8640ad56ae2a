package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// record is one measured figure, stored as one JSON line in the results file. The run script
// appends every measurement of every system to the same file and `loadgen report` turns it
// into the comparison table, so no figure is ever copied by hand.
type record struct {
	System string `json:"system"`
	// Kind: "cell" (matrix cell), "load" (bulk load), "rss" (memory), "startup" (probe),
	// "failover" (leader kill to first acknowledged write; one record per kill).
	Kind string `json:"kind"`
	Name string `json:"name"` // workload name, or a label such as "after load 1000000 keys"
	// Loadgen: which client measured a matrix cell: "go" (this program, clientv3) or "cxx"
	// (rusd-loadgen, bench/loadgen_cxx).
	Loadgen string `json:"loadgen,omitempty"`

	Clients    int     `json:"clients,omitempty"`
	Conns      int     `json:"conns,omitempty"`
	Ops        int64   `json:"ops,omitempty"`
	Errors     int64   `json:"errors,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds,omitempty"`
	OpsPerSec  float64 `json:"ops_per_s,omitempty"`
	P50Ms      float64 `json:"p50_ms,omitempty"`
	P99Ms      float64 `json:"p99_ms,omitempty"`
	CPUUsPerOp float64 `json:"cpu_us_per_op,omitempty"` // server CPU (user+sys) per successful op
	// lease: the server's CPU per op split by process name, and the loadgen's own CPU per op
	// (the client side of the same ops; it shares the machine's cores with the server).
	CPUByProcess      map[string]float64 `json:"cpu_us_per_op_by_process,omitempty"`
	LoadgenCPUUsPerOp float64            `json:"loadgen_cpu_us_per_op,omitempty"`

	Keys     int     `json:"keys,omitempty"`
	RssKiB   int64   `json:"rss_kib,omitempty"`
	PssKiB   int64   `json:"pss_kib,omitempty"`
	Procs    int     `json:"procs,omitempty"`
	Ms       float64 `json:"ms,omitempty"`
	Attempts int     `json:"attempts,omitempty"`
	BudgetMs float64 `json:"budget_ms,omitempty"` // failover: the acceptance bound
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func appendRecord(path string, r record) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return err
}

func readRecords(path string) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s loadgen: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
