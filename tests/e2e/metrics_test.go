package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"rusd/tests/e2e/harness"
)

// Prometheus scraping a node: a real Prometheus server (Debian's `prometheus` package, which
// CI installs) scrapes --listen-metrics-urls, and the test asks Prometheus' HTTP API what it
// saw, as an operator's dashboard would.

// promServer is one Prometheus started for a test.
type promServer struct {
	url string // http://127.0.0.1:port
	cmd *exec.Cmd
	log *bytes.Buffer
}

func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (Debian package `prometheus`; CI installs it): " +
			"skipping the Prometheus scrape test")
	}
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: rusd
    static_configs:
      - targets: ['%s']
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	port := harness.FreePorts(t, 1)[0]
	p := &promServer{url: fmt.Sprintf("http://127.0.0.1:%d", port), log: &bytes.Buffer{}}
	p.cmd = exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--log.level=warn")
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready on %s: %v\n%s", p.url, err, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// query returns the value of each series of an instant query, keyed by its labels other
// than job and instance, rendered "k=v,k=v" in map order (so only queries whose series
// carry at most one such label should look values up by key).
func (p *promServer) query(t *testing.T, q string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v %s", q, err, body)
	}
	out := map[string]float64{}
	for _, s := range r.Data.Result {
		var labels []string
		for k, v := range s.Metric {
			if k == "__name__" || k == "job" || k == "instance" {
				continue
			}
			labels = append(labels, k+"="+v)
		}
		str, _ := s.Value[1].(string)
		v, _ := strconv.ParseFloat(str, 64)
		out[strings.Join(labels, ",")] = v
	}
	return out
}

// waitFor polls an instant query until cond holds for its result.
func (p *promServer) waitFor(t *testing.T, q string, timeout time.Duration,
	cond func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := p.query(t, q)
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %s = %v, not what the test waits for after %v\nprometheus log:\n%s",
				q, got, timeout, p.log.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// etcd's own /metrics has these promtool lints too (gauges named *_total): they are part of
// the names dashboards use, so rusd keeps them.
var etcdInheritedLints = map[string]bool{
	"etcd_debugging_mvcc_keys_total":           true,
	"etcd_debugging_mvcc_watch_stream_total":   true,
	"etcd_debugging_mvcc_watcher_total":        true,
	"etcd_debugging_mvcc_slow_watcher_total":   true,
	"etcd_debugging_mvcc_pending_events_total": true,
	"etcd_server_proposals_applied_total":      true,
	"etcd_server_proposals_committed_total":    true,
}

// checkWithPromtool runs `promtool check metrics` on one scrape: the text must parse, and
// the only lints allowed are etcd's own.
func checkWithPromtool(t *testing.T, metricsURL string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: skipping the lint of /metrics")
		return
	}
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatalf("GET %s: %v", metricsURL, err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// prometheus-cpp's Exposer says text/plain without the version parameter; Prometheus
	// then assumes the text format 0.0.4, which is what both endpoints serve.
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("GET %s: Content-Type %q, want text/plain", metricsURL, ct)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		name := strings.Fields(line)[0]
		if !etcdInheritedLints[name] {
			t.Errorf("promtool check metrics on %s: %s (exit %v)", metricsURL, line, err)
		}
	}
}

func TestPrometheusScrapesEtcdMetrics(t *testing.T) {
	t.Parallel()
	metricsPort := harness.FreePorts(t, 1)[0]
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", metricsPort)
	s := harness.Start(t, harness.Options{
		ExtraArgs: []string{"--listen-metrics-urls=http://" + metricsAddr},
	})
	if s.Kind == harness.Rusd { // etcd 3.4 has many more lints of its own
		checkWithPromtool(t, "http://"+metricsAddr+"/metrics")
		checkWithPromtool(t, s.ClientURL+"/metrics")
	}

	prom := startPrometheus(t, metricsAddr)
	prom.waitFor(t, `up{job="rusd"}`, 20*time.Second, func(r map[string]float64) bool {
		return r[""] == 1
	})
	prom.waitFor(t, "etcd_server_has_leader", 20*time.Second, func(r map[string]float64) bool {
		return len(r) == 1 && r[""] == 1
	})
	before := prom.waitFor(t, "etcd_mvcc_put_total", 20*time.Second,
		func(r map[string]float64) bool { return len(r) == 1 })[""]

	c := s.Client()
	const puts = 25
	for i := 0; i < puts; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Put(ctx, fmt.Sprintf("/metrics-test/%d", i), "v")
		cancel()
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	prom.waitFor(t, "etcd_mvcc_put_total", 20*time.Second, func(r map[string]float64) bool {
		return r[""] >= before+puts
	})
	prom.waitFor(t, `grpc_server_handled_total{grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="OK"}`,
		20*time.Second, func(r map[string]float64) bool {
			for _, v := range r {
				return v >= puts
			}
			return false
		})
	// Families an etcd dashboard graphs exist with data.
	for _, q := range []string{
		"etcd_disk_wal_fsync_duration_seconds_bucket",
		"etcd_disk_backend_commit_duration_seconds_bucket",
		"etcd_mvcc_db_total_size_in_bytes",
		"etcd_network_client_grpc_received_bytes_total",
		"process_resident_memory_bytes",
	} {
		prom.waitFor(t, q, 10*time.Second, func(r map[string]float64) bool { return len(r) > 0 })
	}

	if s.Kind != harness.Rusd {
		return
	}
	// etcd exports the gRPC latency histogram only with --metrics=extensive; rusd always
	// (the etcd mixin's etcdGRPCRequestsSlow alert reads it).
	prom.waitFor(t, `sum(grpc_server_handling_seconds_count{grpc_method="Put",grpc_type="unary"})`,
		10*time.Second, func(r map[string]float64) bool { return r[""] >= puts })
	prom.waitFor(t, `sum(grpc_server_handling_seconds_bucket{grpc_method="Put",le="+Inf"})`,
		10*time.Second, func(r map[string]float64) bool { return r[""] >= puts })
	// A SIGKILLed component is restarted by the supervisor and the restart shows.
	old := s.KillComponent(harness.Raftd)
	if _, err := s.WaitComponentReplaced(harness.Raftd, old, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	prom.waitFor(t, `rusd_component_restarts_total{component="raftd"}`, 20*time.Second,
		func(r map[string]float64) bool { return r["component=raftd"] >= 1 })
	prom.waitFor(t, `rusd_component_restarts_total{component="stored"}`, 5*time.Second,
		func(r map[string]float64) bool { return r["component=stored"] == 0 })
	// Counters never go backwards across the restart; the node has a leader again.
	prom.waitFor(t, "etcd_mvcc_put_total", 10*time.Second, func(r map[string]float64) bool {
		return r[""] >= before+puts
	})
	prom.waitFor(t, "etcd_server_has_leader", 20*time.Second, func(r map[string]float64) bool {
		return r[""] == 1
	})
	prom.waitFor(t, `resets(etcd_mvcc_put_total[1m])`, 5*time.Second, func(r map[string]float64) bool {
		return len(r) == 1 && r[""] == 0
	})
}

// The probes on the metrics URL: /livez answers while a component restarts, /readyz only
// when the node can serve, /health as etcd (exclude and serializable accepted).
func TestMetricsURLProbes(t *testing.T) {
	t.Parallel()
	if harness.TargetKind() != harness.Rusd {
		t.Skip("etcd 3.4 serves no /livez or /readyz (3.5 does)")
	}
	metricsPort := harness.FreePorts(t, 1)[0]
	base := fmt.Sprintf("http://127.0.0.1:%d", metricsPort)
	s := harness.Start(t, harness.Options{
		ExtraArgs: []string{"--listen-metrics-urls=" + base},
	})
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitCode := func(path string, want int) {
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, body := get(path)
			if code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s = %d %q, want %d", path, code, body, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, p := range []string{"/livez", "/readyz", "/health", "/health?serializable=true",
		"/health?exclude=NOSPACE", "/health?exclude=NOSPACE&serializable=true"} {
		waitCode(p, http.StatusOK)
	}
	if code, body := get("/health"); !strings.Contains(body, `"health":"true"`) {
		t.Errorf("GET /health = %d %q", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "etcd_server_has_leader") {
		t.Errorf("GET /metrics = %d, %d bytes", code, len(body))
	}
	if s.Kind != harness.Rusd {
		return
	}
	// Freeze raftd: its heartbeat stops, so /readyz must fail (well before the supervisor
	// kills it as hung after 5 s) while /livez keeps answering.
	raftd := s.ComponentPids()[harness.Raftd]
	if err := syscall.Kill(raftd, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP raftd: %v", err)
	}
	stopped := true
	defer func() {
		if stopped {
			_ = syscall.Kill(raftd, syscall.SIGCONT)
		}
	}()
	waitCode("/readyz", http.StatusServiceUnavailable)
	if code, body := get("/livez"); code != http.StatusOK {
		t.Errorf("GET /livez while raftd is frozen = %d %q, want 200", code, body)
	}
	_ = syscall.Kill(raftd, syscall.SIGCONT)
	stopped = false
	// Killed outright, it is restarted and the node becomes ready again.
	old := s.KillComponent(harness.Raftd)
	if _, err := s.WaitComponentReplaced(harness.Raftd, old, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitCode("/readyz", http.StatusOK)
	waitCode("/livez", http.StatusOK)
}
