// Command coredns is CoreDNS built with only the plugins the rig's cluster DNS uses: the `kubernetes` plugin
// answers for cluster.local from the apiserver, `health` and `ready` serve the rig's probes on loopback, `errors`
// and `log` write to the component log. No forwarding plugin is compiled in, so no query can ever leave the
// machine: a name outside the cluster's zone is refused. `bind` keeps each listener on its own address.
package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
