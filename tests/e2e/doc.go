// Package e2e holds rusd's end-to-end tests: real processes (rusd or etcd, see package
// harness) driven by real clients (Debian's etcdctl 3.4, Go clientv3 3.5, net/http).
//
//	cd tests/e2e && RUSD_BIN=../../build/bin/rusd go test ./... -count=1
//	cd tests/e2e && RUSD_BIN=$(command -v etcd) go test ./... -count=1   # prove the tests on etcd
package e2e
