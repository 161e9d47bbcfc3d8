"""The TorchJob reconciler, built on the generic runtime in `controller` like any other user of it.

`labels`, `env`, `pod` and `service` are pure translation from a TorchJob to the objects it owns; `observe`
reads pods and PodGroups, `conditions` keeps conditions, and `plan` decides the lifecycle: all without I/O and
tested exhaustively without a cluster. `reconciler` is the thin I/O layer (caches in, writes out, with
`expectations` against a lagging cache) and `metrics` the job metrics beside the runtime's.
"""
