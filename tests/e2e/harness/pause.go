package harness

// Pausing a whole node: the classic way to make a leader fall behind without it noticing
// (a long GC pause, a stalled VM). When it resumes it may still believe it leads.

import (
	"fmt"
	"syscall"
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
