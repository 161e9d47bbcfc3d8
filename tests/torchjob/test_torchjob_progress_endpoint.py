"""The progress endpoint over a real loopback socket, with a stub TokenReview client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from controller.cache import Cache
from controller.client import Client
from controller.errors import ServerError
from controller.manager import Manager
from controller.metrics import REGISTRY
from controller.request import Request
from controller.testing import FakeApiServer
from controller.torchjob.progress import MAX_BODY, POD_UID_CLAIM, TOKEN_VOLUME
from controller.torchjob.progress_endpoint import PATH, Address, ProgressEndpoint
from controller.torchjob.reconciler import TorchJobReconciler
from tests.torchjob.test_torchjob_plan import T0, pod, running_job
from tests.torchjob.test_torchjob_progress import review
from tests.torchjob.test_torchjob_reconciler import (
    EVENTS,
    JOBS,
    PODS,
    QUEUES,
    REQ,
    Clock,
    job_body,
    job_status,
    open_queue,
    set_pods,
    step,
    sync,
    writes,
)


class StubClient:
    """Answers TokenReviews: ``good`` is worker 0's token, ``down`` fails, anything else is unknown."""

    def __init__(self) -> None:
        self.reviews: list[str] = []

    async def create(self, resource: Any, body: dict[str, Any], namespace: str | None = None) -> Any:
        token = body["spec"]["token"]
        self.reviews.append(token)
        if token == "down":
            raise ServerError(503, "ServiceUnavailable", "apiserver is restarting")
        return review() if token == "good" else review(authenticated=False, error="invalid bearer token")


def reports(result: str) -> float:
    return REGISTRY.get_sample_value("pyroclast_progress_reports_total", {"result": result}) or 0.0


def make_server(tracer_provider: TracerProvider | None = None) -> tuple[ProgressEndpoint, StubClient]:
    """An endpoint over caches holding a running job and its worker 0."""
    job, _, _ = running_job()
    jobs, pods = Cache(), Cache()
    jobs.upsert(job.to_k8s())
    pods.upsert(pod(job, 0))
    stub = StubClient()
    address = Address("127.0.0.1", 0)
    server = ProgressEndpoint(
        cast(Client, stub), jobs, pods, address, clock=lambda: T0, tracer_provider=tracer_provider
    )
    return server, stub


@asynccontextmanager
async def endpoint() -> AsyncIterator[tuple[ProgressEndpoint, StubClient, list[Request], str]]:
    server, stub = make_server()
    enqueued: list[Request] = []
    server.enqueue = enqueued.append
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        yield server, stub, enqueued, f"http://127.0.0.1:{port}{PATH}"
        tg.cancel_scope.cancel()


async def test_an_accepted_report_is_kept_and_enqueues_its_job_and_tokens_are_reviewed_once() -> None:
    accepted = reports("accepted")
    async with endpoint() as (server, stub, enqueued, url), httpx.AsyncClient() as http:
        for step in (10, 20):
            answer = await http.post(url, json={"step": step}, headers={"Authorization": "Bearer good"})
            assert answer.status_code == 202, answer.text
            assert answer.json()["message"] == "accepted for TorchJob team-a/llama"
        latest = server.latest("team-a/llama")
        assert latest is not None
        assert (latest.body.step, latest.pod, latest.received) == (20, "llama-worker-0", T0)
        assert enqueued == [Request("team-a", "llama")] * 2
        assert stub.reviews == ["good"], "the second post used the cached review"
        server.forget("team-a/llama")
        assert server.latest("team-a/llama") is None
    assert reports("accepted") == accepted + 2


async def test_refusals_say_why_with_the_right_status() -> None:
    before = {r: reports(r) for r in ("unauthenticated", "unavailable", "too_large", "invalid")}
    async with endpoint() as (server, stub, enqueued, url), httpx.AsyncClient() as http:
        no_token = await http.post(url, json={"step": 1})
        assert no_token.status_code == 401
        assert "Authorization: Bearer" in no_token.json()["message"]
        unknown = await http.post(url, json={"step": 1}, headers={"Authorization": "Bearer forged"})
        assert unknown.status_code == 401
        assert "invalid bearer token" in unknown.json()["message"]
        down = await http.post(url, json={"step": 1}, headers={"Authorization": "Bearer down"})
        assert down.status_code == 503
        assert "retry later" in down.json()["message"]
        bad = await http.post(url, json={"step": "x"}, headers={"Authorization": "Bearer good"})
        assert bad.status_code == 400
        assert "step" in bad.json()["message"]
        big = await http.post(
            url, content=b"{" + b" " * MAX_BODY + b"}", headers={"Authorization": "Bearer good"}
        )
        assert big.status_code == 413
        assert "4096-byte limit" in big.json()["message"]
        assert (await http.get(url)).status_code == 405
        assert (await http.post(url.replace(PATH, "/other"), json={})).status_code == 404
        assert enqueued == []
        assert server.latest("team-a/llama") is None
        assert stub.reviews == ["forged", "down", "good"], "nothing bad is cached; no review for a 413"
    assert reports("unauthenticated") == before["unauthenticated"] + 2
    assert reports("unavailable") == before["unavailable"] + 1
    assert reports("invalid") == before["invalid"] + 1
    assert reports("too_large") == before["too_large"] + 1


async def test_a_request_without_content_length_is_411() -> None:
    async with endpoint() as (_, _, _, url):
        port = int(url.split(":")[2].split("/")[0])
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(f"POST {PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await stream.receive()
        assert head.startswith(b"HTTP/1.1 411 Length Required")


# --- through the reconciler: reports ride the status batch ------------------------------------------------


class ReviewFor:
    """A TokenReview answer naming one pod."""

    def __init__(self, pod_uid: str) -> None:
        self.pod_uid = pod_uid

    async def create(self, resource: Any, body: dict[str, Any], namespace: str | None = None) -> Any:
        answer = review()
        answer["status"]["user"]["extra"][POD_UID_CLAIM] = [self.pod_uid]
        return answer


def reconciler_with_progress(**spec: Any) -> tuple[FakeApiServer, TorchJobReconciler, Clock]:
    fake = FakeApiServer()
    fake.put_object(*JOBS, job_body(**spec))
    fake.put_object(*QUEUES, open_queue("default"))
    manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None)
    clock = Clock()
    reconciler = TorchJobReconciler(
        manager,
        clock=clock,
        monotonic=clock.monotonic,
        progress_bind=Address("127.0.0.1", 0),
        progress_url="http://operator.invalid:8082",
    )
    manager.add(reconciler.controller())
    return fake, reconciler, clock


async def running(fake: FakeApiServer, reconciler: TorchJobReconciler) -> ProgressEndpoint:
    await step(fake, reconciler)
    set_pods(fake, "Running")
    await step(fake, reconciler)
    assert job_status(fake)["phase"] == "Running"
    worker = fake.objects[PODS][("team-a", "llama-worker-0")]
    assert any(v["name"] == TOKEN_VOLUME for v in worker["spec"]["volumes"])
    assert reconciler.progress is not None
    reconciler.progress.client = cast(Client, ReviewFor(worker["metadata"]["uid"]))
    return reconciler.progress


async def test_reports_cost_no_writes_of_their_own_and_ride_the_next_status_batch() -> None:
    fake, reconciler, clock = reconciler_with_progress()
    progress = await running(fake, reconciler)
    before = len(fake.requests)
    for n in (10, 20, 30):
        assert (await progress.report("Bearer t", json.dumps({"step": n}).encode()))[0] == 202
        sync(fake, reconciler)
        result = await reconciler.reconcile(REQ)
        assert 0 < result.requeue_after <= 2.0
    assert writes(fake, before) == [], "progress alone waits for the batch window"
    clock.tick(2.5)
    await step(fake, reconciler)
    assert writes(fake, before) == [
        ("PATCH", "/apis/pyroclast.dev/v1alpha1/namespaces/team-a/torchjobs/llama/status")
    ]
    assert job_status(fake)["progress"]["step"] == 30
    for _ in range(3):
        await step(fake, reconciler)
    assert len(writes(fake, before)) == 1, "a folded report is not written again"


async def test_a_newer_checkpoint_is_written_at_once_with_one_event() -> None:
    fake, reconciler, _ = reconciler_with_progress(checkpoint={"volume": {"emptyDir": {}}, "path": "/ckpt"})
    progress = await running(fake, reconciler)
    before = len(fake.requests)
    body = {"step": 25, "checkpoint": {"step": 20, "path": "/ckpt/step-000000000020"}}
    assert (await progress.report("Bearer t", json.dumps(body).encode()))[0] == 202
    await step(fake, reconciler)
    await step(fake, reconciler)
    assert job_status(fake)["lastCheckpoint"]["path"] == "/ckpt/step-000000000020"
    assert len(writes(fake, before)) == 1
    reasons = [e["reason"] for e in fake.objects[EVENTS].values()]
    assert reasons.count("CheckpointCommitted") == 1


async def test_each_report_is_one_span_with_its_result() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server, _ = make_server(provider)
    assert (await server.report("Bearer good", b'{"step": 3}'))[0] == 202
    assert (await server.report(None, b'{"step": 3}'))[0] == 401
    ok, refused = exporter.get_finished_spans()
    assert ok.name == refused.name == "progress report"
    assert ok.attributes is not None
    assert refused.attributes is not None
    assert ok.attributes["pyroclast.progress.result"] == "accepted"
    assert ok.attributes["k8s.pod.name"] == "llama-worker-0"
    assert ok.attributes["pyroclast.torchjob"] == "team-a/llama"
    assert refused.attributes["pyroclast.progress.result"] == "unauthenticated"
    assert refused.attributes["http.response.status_code"] == 401
