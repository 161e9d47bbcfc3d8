"""One trace from submit to the operator, exported over OTLP/HTTP to a real receiver (e2e/otlp).

The SDK's submit writes the caller's trace context on the TorchJob; the operator's reconciles of it join
that trace; request spans follow OpenTelemetry's HTTP client conventions; a Lease renewal, outside any
reconcile, starts no trace.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from api import TorchJob
from controller.runtime.client import Client
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.manager import Manager
from controller.runtime.tracing import TRACE_CONTEXT_ANNOTATION
from controller.torchjob.reconciler import TorchJobReconciler
from e2e.otlp import OtlpReceiver, ReceivedSpan, otlp_receiver
from pyroclast.jobs import submit_job
from tests.controller.torchjob.reconcilers import JOBS, PODS, QUEUES, open_queue

JOB = TorchJob.model_validate(
    {
        "metadata": {"name": "llama"},
        "spec": {"image": "img:1", "command": ["-m", "train"], "nodes": {"count": 2}},
    }
)


def exporting_to(receiver: OtlpReceiver, service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def eventually(pred: Callable[[], bool], within: float = 10.0) -> None:
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate
            await anyio.sleep(0.01)


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == name]


async def test_submit_and_reconciles_are_one_trace_with_http_client_spans() -> None:
    fake = FakeApiServer()
    fake.put_object(*QUEUES, open_queue("default"))
    with otlp_receiver() as receiver:
        user = exporting_to(receiver, "my-notebook")
        with user.get_tracer("notebook").start_as_current_span("train llama") as root:
            await submit_job(Client(fake, tracer_provider=user), JOB, "team-a")
        trace_id = format(root.get_span_context().trace_id, "032x")

        stored = fake.objects[JOBS][("team-a", "llama")]
        carrier = json.loads(stored["metadata"]["annotations"][TRACE_CONTEXT_ANNOTATION])
        assert carrier["traceparent"].split("-")[1] == trace_id

        operator = exporting_to(receiver, "pyroclast-operator")
        manager = Manager(
            Client(fake),
            metrics_bind_address="0",
            sync_period=None,
            tracer_provider=operator,
            leader_election=True,
            leader_election_id="pyroclast-operator",
            leader_election_namespace="pyroclast-system",
            lease_duration=3,
            renew_deadline=2,
            retry_period=0.2,
        )
        manager.add(TorchJobReconciler(manager).controller())
        lease_writes = lambda: [p for m, p, _ in fake.requests if m == "PUT" and "/leases/" in p]  # noqa: E731
        async with anyio.create_task_group() as tg:
            tg.start_soon(manager.run)
            await eventually(lambda: len(fake.objects.get(PODS, {})) == 2 and len(lease_writes()) >= 3)
            manager.stop()

        spans = receiver.received()
        # The request spans of the submit: HTTP client conventions plus the Kubernetes resource.
        (post,) = [s for s in named(spans, "POST") if s.service == "my-notebook"]
        assert post.kind == SpanKind.CLIENT.value + 1  # OTLP numbers kinds from 1 (INTERNAL)
        assert post.trace_id == trace_id
        assert post.attributes["http.request.method"] == "POST"
        assert post.attributes["server.address"] == "fake-apiserver"  # the host only
        assert post.attributes["server.port"] == 80
        assert post.attributes["url.full"].startswith(
            "http://fake-apiserver/apis/pyroclast.dev/v1alpha1/namespaces/team-a/torchjobs"
        )
        assert post.attributes["http.response.status_code"] == 201
        assert post.attributes["k8s.namespace.name"] == "team-a"
        assert post.attributes["pyroclast.k8s.resource"] == "torchjobs.pyroclast.dev"
        assert [s.attributes["url.full"] for s in named(spans, "GET") if s.service == "my-notebook"] == [
            "http://fake-apiserver/apis/scheduling.volcano.sh/v1beta1/queues/default"
        ]

        # The operator's reconciles join the submitter's trace; its pod creates are their children.
        reconciles = [
            s for s in spans if s.service == "pyroclast-operator" and s.name.startswith("reconcile")
        ]
        assert reconciles
        assert {s.trace_id for s in reconciles} == {trace_id}
        pod_posts = [s for s in named(spans, "POST") if s.attributes.get("pyroclast.k8s.resource") == "pods"]
        # The new job's first worker is dry-run first (a span of its own, marked by its query).
        dry_runs = [s for s in pod_posts if "dryRun=All" in str(s.attributes["url.full"])]
        assert len(dry_runs) == 1
        assert len(pod_posts) == 3
        assert {s.parent_span_id for s in pod_posts} <= {s.span_id for s in reconciles}

        # Lease renewals (and informer lists and watches) happen outside any reconcile: no trace of their own.
        assert len(lease_writes()) >= 3
        assert [s for s in spans if "leases" in str(s.attributes.get("pyroclast.k8s.resource"))] == []
        assert {s.trace_id for s in spans} == {trace_id}
