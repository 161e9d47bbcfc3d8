"""One trace from `pyroclast job submit` to the operator's reconciles, exported to a real OTLP receiver.

`pyroclast job submit` runs as its own process with only the standard OTEL_* variables; the operator runs
with an OTLP exporter to the same receiver (e2e/otlp). The TorchJob carries the command's trace context, and
every reconcile of it, and every request those make, is in that trace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import anyio
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from controller.runtime.manager import Manager
from controller.runtime.tracing import TRACE_CONTEXT_ANNOTATION
from controller.torchjob.kinds import TORCHJOBS
from controller.torchjob.reconciler import TorchJobReconciler
from e2e.cluster import Cluster
from e2e.cluster.pool import NodePool
from e2e.otlp import otlp_receiver
from e2e.torchjobs import status_of, wait_for

CLIENT_KIND = 3  # OTLP's SPAN_KIND_CLIENT


def _submit(cluster: Cluster, namespace: str, endpoint: str) -> subprocess.CompletedProcess[str]:
    """`pyroclast job submit` as a user runs it, with only the standard OTEL_* variables set."""
    argv = [
        sys.executable, "-m", "pyroclast.cli", "job", "submit", "traced", "-n", namespace,
        "--kubeconfig", str(cluster.kubeconfig), "--image", "example.invalid/train:1", "--nodes", "2",
        "--cpu", "1", "--", "-m", "train",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_RESOURCE_ATTRIBUTES": "team=research"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


async def test_a_submitted_job_is_one_trace_from_the_cli_to_the_reconciles(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    with otlp_receiver() as receiver:
        done = await anyio.to_thread.run_sync(lambda: _submit(cluster, namespace, receiver.endpoint))
        assert done.returncode == 0, done.stderr
        cli = [s for s in receiver.received() if s.service == "pyroclast-cli"]
        (root,) = [s for s in cli if s.name == "pyroclast job submit"]
        assert root.parent_span_id == ""  # the command starts the trace
        assert {s.trace_id for s in cli} == {root.trace_id}
        (post,) = [s for s in cli if s.name == "POST"]
        assert post.kind == CLIENT_KIND
        assert post.attributes["http.request.method"] == "POST"
        assert post.attributes["http.response.status_code"] == 201
        assert post.attributes["server.address"] == "127.0.0.1"
        assert isinstance(post.attributes["server.port"], int)
        assert post.attributes["url.full"].startswith(f"https://127.0.0.1:{post.attributes['server.port']}/")
        assert post.attributes["k8s.namespace.name"] == namespace

        provider = TracerProvider(resource=Resource.create({"service.name": "pyroclast-operator"}))
        exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        manager = await Manager.connect(
            cluster.kubeconfig, metrics_bind_address="0", sync_period=None, tracer_provider=provider
        )
        reconciler = TorchJobReconciler(manager)
        manager.add(reconciler.controller())
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.run)
            stored = await reconciler.client.get(TORCHJOBS, "traced", namespace)
            carrier = json.loads(stored["metadata"]["annotations"][TRACE_CONTEXT_ANNOTATION])
            assert carrier["traceparent"].split("-")[1] == root.trace_id

            async def phase() -> str | None:
                return (await status_of(reconciler.client, namespace, "traced")).get("phase")

            await wait_for("a phase written by the operator", phase, within=60)
            manager.stop()

        # Jobs of earlier tests may still be reconciled while their namespaces terminate: follow this one's.
        operator = [
            s
            for s in receiver.received()
            if s.service == "pyroclast-operator" and s.attributes.get("k8s.namespace.name") == namespace
        ]
        reconciles = [s for s in operator if s.name.startswith("reconcile ")]
        assert reconciles
        assert {s.trace_id for s in reconciles} == {root.trace_id}
        creates = [s for s in operator if s.name == "POST"]
        assert {s.attributes["pyroclast.k8s.resource"] for s in creates} >= {
            "pods",
            "podgroups.scheduling.volcano.sh",
        }
        assert {s.trace_id for s in operator} == {root.trace_id}  # nothing in it started a trace of its own
