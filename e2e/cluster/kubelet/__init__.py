"""Process nodes: a kubelet stand-in that runs the pods bound to its node as sandboxed local processes.

One `python -m e2e.cluster.kubelet <config.json>` per node, started by `Cluster.create_process_nodes`. It
follows the kubelet's observable behaviour: the Node with capacity (`nvidia.com/gpu` advertised, no GPU
visible to processes), Ready condition, a Lease in kube-node-lease, `daemonEndpoints` and InternalIP
127.0.0.1 for its HTTPS endpoint (container logs for `kubectl logs`, incl. `-f` and `--previous`); pods go
Pending -> Running -> terminated with real exit codes and termination messages, readiness probes set Ready,
deletion is graceful (SIGTERM, SIGKILL after the grace period, final delete with grace 0 and the UID).

Each pod gets its own network namespace on the rig's bridge (`e2e.cluster.network`), and each container
its own UTS (hostname), mount and PID namespaces (`sandbox.py`) with the pod's volumes, `/etc/hosts`,
`/etc/resolv.conf` (the rig's cluster DNS on the bridge) and `/dev/termination-log`.

Deliberate differences from a real node:

* No image is pulled: the container's command runs with the project's virtualenv (its bin directory first on
  PATH, the checkout on PYTHONPATH) on an overlay of the host's root filesystem. `command` is required.
* No kube-proxy: `KUBERNETES_SERVICE_HOST`/`PORT` point at the rig's apiserver forwarder on the bridge's host
  address, not at the Service IP; other Service IPs are not routed (headless Services resolve through DNS).
* No cgroups: resources are accounted by the scheduler only; processes are not limited.
* The node talks to the apiserver with the rig's admin certificate (the rig runs no Node authorizer).
* persistentVolumeClaim volumes are a directory per namespace/claim, whether or not the claim exists.
"""

from e2e.cluster.kubelet.config import KubeletConfig
from e2e.cluster.kubelet.node import PROCESS_NODE_ANNOTATION

__all__ = ["PROCESS_NODE_ANNOTATION", "KubeletConfig"]
