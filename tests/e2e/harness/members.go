package harness

import (
	"fmt"
	"path/filepath"
	"testing"
)

// NewJoiningServer prepares (does not start) a node that joins a running cluster as etcd
// documents after `etcdctl member add`: --initial-cluster as etcdctl printed it and
// --initial-cluster-state=existing, on the given free client and peer ports. It becomes
// part of c.Nodes, so Client() and Leader() include it once it runs.
func (c *Cluster) NewJoiningServer(t testing.TB, name, initialCluster string, clientPort, peerPort int) *Server {
	t.Helper()
	bin := TargetBin()
	if len(c.Nodes) > 0 {
		bin = c.Nodes[0].Bin
	}
	dir := t.TempDir()
	s := &Server{
		t:              t,
		Kind:           KindOf(bin),
		Bin:            bin,
		Dir:            dir,
		DataDir:        filepath.Join(dir, "data"),
		ClientURL:      fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		Endpoint:       fmt.Sprintf("127.0.0.1:%d", clientPort),
		PeerURL:        fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		name:           name,
		initialCluster: initialCluster,
		extra:          []string{"--initial-cluster-state=existing"},
	}
	if len(c.Nodes) > 0 {
		s.extra = append(append([]string{}, c.Nodes[0].extra...), s.extra...)
	}
	t.Cleanup(s.cleanup)
	c.Nodes = append(c.Nodes, s)
	return s
}
