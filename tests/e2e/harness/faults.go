package harness

// Faults a test inflicts on whole nodes beyond Kill and Restart: pausing a node (the
// classic way to make a leader fall behind without it noticing: a long GC pause, a stalled
// VM; when it resumes it may still believe it leads), and restarting several killed nodes
// at once (one alone cannot serve while a quorum is missing).

import (
	"fmt"
	"sync"
	"syscall"
	"time"
)

// Pause SIGSTOPs every process of the node (the server and, for rusd, its components: they
// share its process group).
func (s *Server) Pause() error { return s.signalGroup(syscall.SIGSTOP) }

// Resume SIGCONTs every process of the node.
func (s *Server) Resume() error { return s.signalGroup(syscall.SIGCONT) }

func (s *Server) signalGroup(sig syscall.Signal) error {
	pid := s.Pid()
	if pid == 0 {
		return fmt.Errorf("%s is not running", s.name)
	}
	return syscall.Kill(-pid, sig)
}

// RestartNodes starts the given stopped nodes together and waits until each serves a
// linearizable read (which may need all of them, when they are what a quorum lacks).
func (c *Cluster) RestartNodes(nodes ...*Server) {
	c.t.Helper()
	for _, s := range nodes {
		s.launch()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, s := range nodes {
		wg.Add(1)
		go func(i int, s *Server) {
			defer wg.Done()
			errs[i] = s.waitReady(30 * time.Second)
		}(i, s)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.t.Fatalf("restarted node %s did not become ready: %v\n%s", nodes[i].name, err,
				nodes[i].LogTail(40))
		}
	}
}
