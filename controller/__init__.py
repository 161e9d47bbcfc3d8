"""Pyroclast's controllers: :mod:`controller.runtime` (the generic, kind-agnostic runtime) and the TorchJob
application built on it (:mod:`controller.torchjob`). The runtime imports nothing of the application."""
