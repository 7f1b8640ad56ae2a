package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// writeReport prints the comparison of `cand` against `base` for every figure both have.
// Ratios are always cand/base: for throughput above 1 means cand is faster; for latency, RSS
// and start-up time below 1 means cand is better.
func writeReport(w io.Writer, recs []record, base, cand string) {
	type cellKey struct {
		name           string
		clients, conns int
	}
	cells := map[cellKey]map[string][]record{}
	var cellOrder []cellKey
	type otherKey struct{ kind, name string }
	others := map[otherKey]map[string][]record{}
	var otherOrder []otherKey
	for _, r := range recs {
		if r.System != base && r.System != cand {
			continue
		}
		if r.Kind == "cell" {
			k := cellKey{r.Name, r.Clients, r.Conns}
			if cells[k] == nil {
				cells[k] = map[string][]record{}
				cellOrder = append(cellOrder, k)
			}
			cells[k][r.System] = append(cells[k][r.System], r)
			continue
		}
		k := otherKey{r.Kind, r.Name}
		if others[k] == nil {
			others[k] = map[string][]record{}
			otherOrder = append(otherOrder, k)
		}
		others[k][r.System] = append(others[k][r.System], r)
	}

	ratio := fmt.Sprintf("%s/%s", cand, base)
	if len(cellOrder) > 0 {
		rounds := 0
		for _, k := range cellOrder {
			rounds = max(rounds, len(cells[k][base]), len(cells[k][cand]))
		}
		fmt.Fprintf(w, "Request matrix (closed loop, median of %d round(s); ops/s ratio > 1, p99 and CPU ratios < 1 favour %s)\n", rounds, cand)
		const row = "%-17s %7s | %9s %9s %7s | %8s %8s | %9s %9s %7s | %7s %7s %7s\n"
		fmt.Fprintf(w, "%-25s | %-27s | %-17s | %-27s | %s\n", "", "ops/s", "p50 ms", "p99 ms", "server CPU us/op")
		fmt.Fprintf(w, row, "workload", "cl/conn", short(base), short(cand), "ratio",
			short(base), short(cand), short(base), short(cand), "ratio", short(base), short(cand), "ratio")
		fmt.Fprintln(w, strings.Repeat("-", 129))
		var notes []string
		for _, k := range cellOrder {
			b, c := medianCell(cells[k][base]), medianCell(cells[k][cand])
			// A cell with errors is failed: its figures are printed, but flagged, and the
			// errors are listed below the table.
			rowFmt := row
			if b.Errors > 0 || c.Errors > 0 {
				rowFmt = strings.TrimSuffix(row, "\n") + "  FAILED (errors)\n"
			}
			fmt.Fprintf(w, rowFmt,
				k.name, fmt.Sprintf("%d/%d", k.clients, k.conns),
				num(b.OpsPerSec, "%.0f"), num(c.OpsPerSec, "%.0f"), rat(c.OpsPerSec, b.OpsPerSec),
				num(b.P50Ms, "%.2f"), num(c.P50Ms, "%.2f"),
				num(b.P99Ms, "%.2f"), num(c.P99Ms, "%.2f"), rat(c.P99Ms, b.P99Ms),
				num(b.CPUUsPerOp, "%.0f"), num(c.CPUUsPerOp, "%.0f"), rat(c.CPUUsPerOp, b.CPUUsPerOp))
			for _, r := range []record{b, c} {
				if r.Errors > 0 {
					notes = append(notes, fmt.Sprintf("  %s %s %d/%d: %d errors, first: %s",
						r.System, k.name, k.clients, k.conns, r.Errors, r.FirstError))
				}
			}
		}
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
		// What the load generator itself spent per op (matrix cells; the lease records below
		// carry it per process). On two shared cores the client's CPU is taken from the server's.
		printedHeader := false
		for _, k := range cellOrder {
			b, c := medianCell(cells[k][base]), medianCell(cells[k][cand])
			if b.LoadgenCPUUsPerOp == 0 && c.LoadgenCPUUsPerOp == 0 || len(b.CPUByProcess) > 0 || len(c.CPUByProcess) > 0 {
				continue
			}
			if !printedHeader {
				lg := b.Loadgen
				if lg == "" {
					lg = c.Loadgen
				}
				if lg == "" {
					lg = "go"
				}
				fmt.Fprintf(w, "%-25s | %-27s | client share of the CPU (loadgen / (loadgen + server))\n", "loadgen ("+lg+") CPU us/op", "")
				fmt.Fprintf(w, "%-17s %7s | %9s %9s %7s | %8s %8s\n", "workload", "cl/conn", short(base), short(cand), "ratio", short(base), short(cand))
				printedHeader = true
			}
			share := func(r record) string {
				if r.LoadgenCPUUsPerOp == 0 || r.CPUUsPerOp == 0 {
					return "-"
				}
				return fmt.Sprintf("%.0f%%", 100*r.LoadgenCPUUsPerOp/(r.LoadgenCPUUsPerOp+r.CPUUsPerOp))
			}
			fmt.Fprintf(w, "%-17s %7s | %9s %9s %7s | %8s %8s\n", k.name, fmt.Sprintf("%d/%d", k.clients, k.conns),
				num(b.LoadgenCPUUsPerOp, "%.1f"), num(c.LoadgenCPUUsPerOp, "%.1f"), rat(c.LoadgenCPUUsPerOp, b.LoadgenCPUUsPerOp),
				share(b), share(c))
		}
		// Where the server's CPU per op goes, and what the client spent on the same ops
		// (recorded by `loadgen lease -pids`).
		for _, k := range cellOrder {
			for _, sys := range []string{base, cand} {
				r := medianCell(cells[k][sys])
				if len(r.CPUByProcess) == 0 {
					continue
				}
				fmt.Fprintf(w, "  %s %s %d/%d CPU us/op: server %.1f (%s); loadgen %.1f\n", sys, k.name,
					k.clients, k.conns, r.CPUUsPerOp, byProcessText(r.CPUByProcess), r.LoadgenCPUUsPerOp)
			}
		}
		fmt.Fprintln(w)
	}
	if len(otherOrder) > 0 {
		fmt.Fprintf(w, "%-54s %12s %12s %10s\n", "data set, memory, start-up", base, cand, ratio)
		fmt.Fprintln(w, strings.Repeat("-", 91))
		for _, k := range otherOrder {
			b, c := medianOther(others[k][base]), medianOther(others[k][cand])
			switch k.kind {
			case "load":
				line(w, k.name+": seconds", b.Seconds, c.Seconds, "%.1f")
				line(w, k.name+": keys/s", b.OpsPerSec, c.OpsPerSec, "%.0f")
			case "rss":
				line(w, "RSS "+k.name+" (MiB, VmRSS sum)", kib(b.RssKiB), kib(c.RssKiB), "%.0f")
				line(w, "PSS "+k.name+" (MiB, Pss sum)", kib(b.PssKiB), kib(c.PssKiB), "%.0f")
				if c.Procs > 1 || b.Procs > 1 {
					fmt.Fprintf(w, "  (processes summed: %s %d, %s %d)\n", base, b.Procs, cand, c.Procs)
				}
			case "startup":
				label := "start-up " + k.name + " (ms to first Range)"
				if n := max(len(others[k][base]), len(others[k][cand])); n > 1 {
					label = fmt.Sprintf("start-up %s (ms, median of %d)", k.name, n)
				}
				line(w, label, b.Ms, c.Ms, "%.0f")
			case "failover":
				writeFailover(w, others[k][base], others[k][cand])
			}
		}
	}
}

// medianCell folds repeated runs of one cell (matrix -rounds N) into one record: each figure
// is the median over the rounds, taken independently; errors are summed.
func medianCell(rs []record) record {
	if len(rs) == 0 {
		return record{}
	}
	out := rs[len(rs)-1]
	pick := func(get func(record) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		return median(v)
	}
	out.OpsPerSec = pick(func(r record) float64 { return r.OpsPerSec })
	out.P50Ms = pick(func(r record) float64 { return r.P50Ms })
	out.P99Ms = pick(func(r record) float64 { return r.P99Ms })
	out.CPUUsPerOp = pick(func(r record) float64 { return r.CPUUsPerOp })
	out.LoadgenCPUUsPerOp = pick(func(r record) float64 { return r.LoadgenCPUUsPerOp })
	if len(out.CPUByProcess) > 0 {
		byProc := map[string]float64{}
		for name := range out.CPUByProcess {
			byProc[name] = pick(func(r record) float64 { return r.CPUByProcess[name] })
		}
		out.CPUByProcess = byProc
	}
	out.Errors = 0
	for _, r := range rs {
		out.Errors += r.Errors
		if out.FirstError == "" {
			out.FirstError = r.FirstError
		}
	}
	return out
}

// medianOther folds repeated start-up probes into their median; for every other kind the
// last record wins (a re-run replaces an earlier one).
func medianOther(rs []record) record {
	if len(rs) == 0 {
		return record{}
	}
	out := rs[len(rs)-1]
	if out.Kind == "startup" {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = r.Ms
		}
		out.Ms = median(v)
	}
	return out
}

// writeFailover prints one kind of failover figure as p50, p99 and max over the kills of
// each system (with fewer than 50 kills p99 is the slowest one), and whether
// each system's p99 is within the acceptance bound the records carry (3 x election timeout).
func writeFailover(w io.Writer, b, c []record) {
	// The matrix's percentile over durations (cell.go), so both tables use one definition.
	durations := func(rs []record) []time.Duration {
		v := make([]time.Duration, 0, len(rs))
		for _, r := range rs {
			v = append(v, time.Duration(r.Ms*float64(time.Millisecond)))
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v
	}
	pct := func(v []time.Duration, q float64) float64 {
		if len(v) == 0 {
			return 0
		}
		return ms(percentile(v, q))
	}
	bv, cv := durations(b), durations(c)
	name := "failover"
	budget := 0.0
	for _, r := range append(append([]record(nil), b...), c...) {
		name, budget = r.Name, max(budget, r.BudgetMs)
	}
	fmt.Fprintf(w, "%s (ms; %d / %d kills)\n", name, len(bv), len(cv))
	line(w, "  p50", pct(bv, 0.50), pct(cv, 0.50), "%.0f")
	line(w, "  p99", pct(bv, 0.99), pct(cv, 0.99), "%.0f")
	line(w, "  max", pct(bv, 1), pct(cv, 1), "%.0f")
	if budget > 0 {
		verdict := func(v []time.Duration) string {
			if len(v) == 0 {
				return "-"
			}
			if pct(v, 0.99) <= budget {
				return "yes"
			}
			return "NO"
		}
		fmt.Fprintf(w, "%-54s %12s %12s\n", fmt.Sprintf("  p99 within %.0f ms (3 x election timeout)", budget), verdict(bv), verdict(cv))
	}
}

func median(v []float64) float64 {
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func line(w io.Writer, label string, b, c float64, f string) {
	fmt.Fprintf(w, "%-54s %12s %12s %10s\n", label, num(b, f), num(c, f), rat(c, b))
}

func kib(v int64) float64 { return float64(v) / 1024 }

// num prints a figure, or "-" when it was not measured (failed or skipped).
func num(v float64, f string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(f, v)
}

func rat(c, b float64) string {
	if c == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", c/b)
}

func short(s string) string {
	if len(s) > 6 {
		return s[:6]
	}
	return s
}
