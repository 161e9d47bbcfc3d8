"""Pyroclast: the command line and the Python SDK for TorchJobs and Volcano queues."""
