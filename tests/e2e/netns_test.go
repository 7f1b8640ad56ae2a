package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"rusd/tests/e2e/harness"
)

// The network the cluster tests run on: hosts reach each other on the peer network and the
// test reaches them on the client network; Isolate cuts exactly the peer links of one host.
func TestNetnsIsolateCutsOnlyPeerTraffic(t *testing.T) {
	nw := harness.NewNetwork(t, 3)
	echo := startNetnsHelper(t, nw.Hosts[0], "E2E_NETNS_ECHO=0.0.0.0:7000")
	defer func() { _ = echo.Process.Kill(); _ = echo.Wait() }()

	peerAddr := nw.Hosts[0].PeerIP + ":7000"
	clientAddr := nw.Hosts[0].ClientIP + ":7000"
	waitUntilOK(t, 5*time.Second, func() error { return dialEcho(clientAddr) })
	if err := dialFromHost(nw.Hosts[1], peerAddr); err != nil {
		t.Fatalf("host 1 -> host 0 on the peer network before isolation: %v", err)
	}

	nw.Isolate(0)
	if err := dialFromHost(nw.Hosts[1], peerAddr); err == nil {
		t.Fatalf("host 1 reached isolated host 0 on the peer network")
	}
	if err := dialEcho(clientAddr); err != nil {
		t.Fatalf("the test could not reach isolated host 0 on the client network: %v", err)
	}
	if err := dialFromHost(nw.Hosts[2], nw.Hosts[1].PeerIP+":7001"); err == nil ||
		!strings.Contains(err.Error(), "refused") {
		// Hosts 1 and 2 still see each other: the dial reaches host 1 and is refused
		// (nothing listens on 7001), rather than timing out.
		t.Fatalf("host 2 -> host 1 while host 0 is isolated: want connection refused, got %v", err)
	}

	nw.Heal(0)
	waitUntilOK(t, 5*time.Second, func() error { return dialFromHost(nw.Hosts[1], peerAddr) })
}

// TestNetnsHelper is not a test: it is the program the test above runs inside a namespace.
// With E2E_NETNS_ECHO=addr it serves "ok\n" on every connection to addr until killed; with
// E2E_NETNS_DIAL=addr it dials addr once (1 s timeout), reads the greeting and exits.
func TestNetnsHelper(t *testing.T) {
	if addr := os.Getenv("E2E_NETNS_ECHO"); addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for {
			c, err := l.Accept()
			if err != nil {
				os.Exit(2)
			}
			_, _ = io.WriteString(c, "ok\n")
			c.Close()
		}
	}
	if addr := os.Getenv("E2E_NETNS_DIAL"); addr != "" {
		if err := dialEcho(addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	t.Skip("helper program for TestNetnsIsolateCutsOnlyPeerTraffic")
}

func startNetnsHelper(t *testing.T, h *harness.Host, env string) *exec.Cmd {
	t.Helper()
	cmd := h.Command(os.Args[0], "-test.run=^TestNetnsHelper$")
	cmd.Env = append(os.Environ(), env)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper in %s: %v", h.Name, err)
	}
	return cmd
}

func dialFromHost(h *harness.Host, addr string) error {
	cmd := h.Command(os.Args[0], "-test.run=^TestNetnsHelper$")
	cmd.Env = append(os.Environ(), "E2E_NETNS_DIAL="+addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func dialEcho(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "ok\n" {
		return fmt.Errorf("unexpected greeting %q", buf)
	}
	return nil
}

func waitUntilOK(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
