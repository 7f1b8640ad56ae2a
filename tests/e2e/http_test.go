package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"rusd/tests/e2e/harness"
)

// HTTP endpoints on the client URL, with net/http (what curl and load balancers see).

func TestHTTPHealthAndVersion(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})

	code, body, err := s.HTTPGet("/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	var health map[string]any
	if err := json.Unmarshal(body, &health); err != nil || code != http.StatusOK ||
		health["health"] != "true" {
		t.Errorf("GET /health = %d %q (%v), want 200 {\"health\":\"true\",...}", code, body, err)
	}

	code, body, err = s.HTTPGet("/version")
	if err != nil {
		t.Fatalf("GET /version: %v", err)
	}
	var ver struct {
		Server  string `json:"etcdserver"`
		Cluster string `json:"etcdcluster"`
	}
	if err := json.Unmarshal(body, &ver); err != nil || code != http.StatusOK ||
		ver.Server == "" || ver.Cluster == "" {
		t.Errorf("GET /version = %d %q (%v), want 200 with etcdserver and etcdcluster", code,
			body, err)
	}
	wantPrefix := "3.5."
	if s.Kind == harness.Etcd {
		wantPrefix = "3.4."
	}
	if !strings.HasPrefix(ver.Server, wantPrefix) || !strings.HasPrefix(ver.Cluster, wantPrefix) {
		t.Errorf("/version = %+v, want %s* for both", ver, wantPrefix)
	}
}

func TestHTTPGatewayPutAndRangeSpeakEtcdJSON(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	c := &http.Client{Timeout: 5 * time.Second}
	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		resp, err := c.Post(s.ClientURL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("POST %s %s: %d %q is not a JSON object (%v)", path, body, resp.StatusCode,
				raw, err)
		}
		return resp.StatusCode, m
	}
	b64 := base64.StdEncoding.EncodeToString
	code, m := post("/v3/kv/put", `{"key":"`+b64([]byte("foo"))+`","value":"`+b64([]byte("bar"))+`"}`)
	hdr, _ := m["header"].(map[string]any)
	if code != 200 || hdr == nil || hdr["revision"] != "2" {
		t.Errorf("gateway put = %d %v, want 200 with header.revision \"2\" (int64 as string)", code, m)
	}
	code, m = post("/v3/kv/range", `{"key":"`+b64([]byte("foo"))+`"}`)
	kvs, _ := m["kvs"].([]any)
	if code != 200 || len(kvs) != 1 || m["count"] != "1" {
		t.Fatalf("gateway range = %d %v, want one kv and count \"1\"", code, m)
	}
	kv := kvs[0].(map[string]any)
	if kv["value"] != b64([]byte("bar")) || kv["mod_revision"] != "2" || kv["version"] != "1" {
		t.Errorf("gateway kv = %v, want value YmFy mod_revision \"2\" version \"1\"", kv)
	}
	code, m = post("/v3/kv/range", `{"key":""}`)
	if code != 400 || m["error"] != "etcdserver: key is not provided" || m["code"] != float64(3) {
		t.Errorf("gateway empty key = %d %v, want 400 with error text and code 3", code, m)
	}
}
