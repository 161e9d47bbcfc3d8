"""The TorchJob reconciler, built on the generic runtime in `controller` like any other user of it.

`labels`, `env`, `pod` and `service` are pure translation from a TorchJob to the objects it owns; they do no
I/O and are tested exhaustively without a cluster.
"""
