"""Reference elastic torchrun training for Pyroclast.

Run it under torchrun only: ``torchrun -m workloads.train`` with every launcher setting passed as ``PET_*``
env (torchrun reads ``PET_<FLAG>`` as the default of each flag). The rendezvous endpoint is served by
``python -m workloads.rendezvous`` in its own small pod, so losing any worker pod never loses the rendezvous.

The env it reads, its exit codes, its termination message and its live progress reports are the operator's
contract with every workload, defined once in :mod:`api.contract`.
"""
