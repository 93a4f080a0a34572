// Command etcd is the stock etcd server, built from the etcd module this
// repository already depends on (go install of etcd itself fails on its
// replace directives). Upstream's scheduler benchmark harness
// (k8s.io/kubernetes/test/integration/scheduler_perf), which test/perf
// runs, starts an etcd binary from PATH; make bench builds this one into
// bin/ and puts bin/ first on PATH.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
