package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// memOf sums memory over a process and (optionally) its direct children. For rusd the
// supervisor's children are rusd-frontend, rusd-raftd and rusd-stored, so "the node's memory"
// is the sum over the four; etcd is one process with no children.
//
// VmRSS counts the pages of the shared-memory segment once in every process that touches
// them, so the VmRSS sum overstates rusd's footprint by up to 3x the segment's resident size;
// Pss (from smaps_rollup) splits shared pages between their users and does not. Both are
// reported.
type memUsage struct {
	rssKiB, pssKiB int64
	procs          int
}

func memOf(pid int, withChildren bool) (memUsage, error) {
	pids := []int{pid}
	if withChildren {
		kids, err := childrenOf(pid)
		if err != nil {
			return memUsage{}, err
		}
		pids = append(pids, kids...)
	}
	var m memUsage
	for _, p := range pids {
		rss, err := procField(fmt.Sprintf("/proc/%d/status", p), "VmRSS:")
		if err != nil {
			return memUsage{}, err
		}
		pss, _ := procField(fmt.Sprintf("/proc/%d/smaps_rollup", p), "Pss:")
		m.rssKiB += rss
		m.pssKiB += pss
		m.procs++
	}
	return m, nil
}

func childrenOf(parent int) ([]int, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue // the process went away while we looked
		}
		// pid (comm) state ppid ...; comm may contain spaces, so split after the last ')'.
		text := string(b)
		close := strings.LastIndexByte(text, ')')
		if close < 0 {
			continue
		}
		fields := strings.Fields(text[close+1:])
		if len(fields) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == parent {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			kids = append(kids, pid)
		}
	}
	return kids, nil
}

// procField reads a "Name:   1234 kB" line.
func procField(path, name string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name) {
			fields := strings.Fields(line[len(name):])
			if len(fields) == 0 {
				break
			}
			return strconv.ParseInt(fields[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s line", path, name)
}

// cpuTicksOf sums user+system CPU time (clock ticks, USER_HZ = 100 on Linux) of a process and
// its direct children, all threads included. Used to charge each matrix cell the CPU the server
// spent on it: on a shared 2-core machine, CPU per op is steadier than ops/s.
// cpuTicksOfAll sums cpuTicksOf over several servers (the members of a cluster).
func cpuTicksOfAll(pids []int) (int64, error) {
	var total int64
	for _, pid := range pids {
		t, err := cpuTicksOf(pid)
		if err != nil {
			return 0, err
		}
		total += t
	}
	return total, nil
}

func cpuTicksOf(pid int) (int64, error) {
	kids, err := childrenOf(pid)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, p := range append([]int{pid}, kids...) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			return 0, err
		}
		text := string(b)
		fields := strings.Fields(text[strings.LastIndexByte(text, ')')+1:])
		// After "pid (comm)": state=0 ppid=1 ... utime=11 stime=12.
		if len(fields) < 13 {
			return 0, fmt.Errorf("/proc/%d/stat: short", p)
		}
		ut, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		total += ut + st
	}
	return total, nil
}

const userHz = 100

// cpuTicksByProcess is cpuTicksOf split by process name (comm: "etcd", "rusd",
// "rusd-frontend", ...), summed over `pids` and their direct children. The lease benchmark
// prints where a keep-alive's CPU goes with it.
func cpuTicksByProcess(pids []int) (map[string]int64, error) {
	out := map[string]int64{}
	for _, pid := range pids {
		kids, err := childrenOf(pid)
		if err != nil {
			return nil, err
		}
		for _, p := range append([]int{pid}, kids...) {
			name, ticks, err := procCPU(fmt.Sprintf("/proc/%d/stat", p))
			if err != nil {
				return nil, err
			}
			out[name] += ticks
		}
	}
	return out, nil
}

// selfCPUTicks is this process's CPU time (all threads), in clock ticks.
func selfCPUTicks() int64 {
	_, ticks, err := procCPU("/proc/self/stat")
	if err != nil {
		return 0
	}
	return ticks
}

// selfCPU is this process's CPU time (user + system, all threads) from getrusage, finer
// than /proc's clock ticks; the matrix charges it per op as the loadgen's own cost, the same
// way as rusd-loadgen (bench/loadgen_cxx) does.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU reads comm and utime+stime (clock ticks) from a /proc/<pid>/stat file.
func procCPU(path string) (string, int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	text := string(b)
	open, close := strings.IndexByte(text, '('), strings.LastIndexByte(text, ')')
	if open < 0 || close < open {
		return "", 0, fmt.Errorf("%s: no comm", path)
	}
	fields := strings.Fields(text[close+1:])
	if len(fields) < 13 {
		return "", 0, fmt.Errorf("%s: short", path)
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return text[open+1 : close], ut + st, nil
}
