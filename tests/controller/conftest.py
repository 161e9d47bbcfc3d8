"""Tests of the `controller` package: `runtime/` (the generic runtime, on the fake API server in
`controller.runtime.fakeapi`) and `torchjob/` (the TorchJob application). Builders shared by several test
modules live beside them in plain modules (`torchjob/plans.py`, `torchjob/reconcilers.py`, ...), never in
another test module."""
