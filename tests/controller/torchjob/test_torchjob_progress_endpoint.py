"""The progress endpoint over a real loopback socket, with a stub TokenReview client."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from api import contract
from api.accounting import Goodput, LostTime, Usage
from controller.runtime.cache import Cache
from controller.runtime.client import Client
from controller.runtime.controller import Controller
from controller.runtime.errors import ServerError
from controller.runtime.fakeapi import FakeApiServer
from controller.runtime.httpserver import Limits, Tls
from controller.runtime.manager import Manager
from controller.runtime.metrics import REGISTRY
from controller.runtime.reconcile import Request, Result
from controller.runtime.resource import CONFIG_MAPS
from controller.torchjob.progress import POD_UID_CLAIM, TOKEN_VOLUME
from controller.torchjob.progress_endpoint import PATH, Address, ProgressEndpoint
from controller.torchjob.reconciler import TorchJobReconciler
from tests.controller.runtime.http_clients import read_all, serving_pki, trickle
from tests.controller.torchjob.plans import T0, pod, running_job
from tests.controller.torchjob.progress_reports import review
from tests.controller.torchjob.reconcilers import (
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
from workloads.progress import accounting_of_answer

FAST = Limits(max_head=8192, idle_timeout=0.5, graceful_timeout=5.0)


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


def make_server(
    tracer_provider: TracerProvider | None = None,
    tls: Tls | None = None,
    enqueue: Callable[[Request], None] = lambda _request: None,
) -> tuple[ProgressEndpoint, StubClient]:
    """An endpoint over caches holding a running job and its worker 0 (short timeouts: slow clients);
    accepted reports' jobs go to `enqueue`."""
    job, _, _ = running_job()
    jobs, pods = Cache(), Cache()
    jobs.upsert(job.to_k8s())
    pods.upsert(pod(job, 0))
    stub = StubClient()
    address = Address("127.0.0.1", 0, tls)
    server = ProgressEndpoint(
        cast(Client, stub),
        jobs,
        pods,
        address,
        enqueue=enqueue,
        clock=lambda: T0,
        tracer_provider=tracer_provider,
        limits=FAST,
        body_timeout=0.3,
    )
    return server, stub


@asynccontextmanager
async def endpoint(
    tls: Tls | None = None,
) -> AsyncIterator[tuple[ProgressEndpoint, StubClient, list[Request], str]]:
    enqueued: list[Request] = []
    server, stub = make_server(tls=tls, enqueue=enqueued.append)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        scheme = "https" if tls else "http"
        yield server, stub, enqueued, f"{scheme}://127.0.0.1:{port}{PATH}"
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


async def test_an_accepted_report_is_answered_with_the_jobs_accounting_from_the_cache() -> None:
    async with endpoint() as (server, stub, _, url), httpx.AsyncClient() as http:
        before = await http.post(url, json={"step": 10}, headers={"Authorization": "Bearer good"})
        assert before.status_code == 202
        assert before.json() == {"status": 202, "message": "accepted for TorchJob team-a/llama"}
        assert accounting_of_answer(before.content) is None, "no usage or goodput in the status yet"
        job, _, _ = running_job()
        assert job.status is not None
        usage = Usage(pod_seconds=600.0, cost=3.25, currency="USD", updated_time=T0)
        lost = LostTime(queued_seconds=40.0, preempted_seconds=60.0)
        goodput = Goodput(held_seconds=600.0, productive_seconds=500.0, lost=lost, percent=500 / 6)
        status = job.status.model_copy(update={"usage": usage, "goodput": goodput})
        server.jobs.upsert(job.model_copy(update={"status": status}).to_k8s())  # as the informer would
        after = await http.post(url, json={"step": 20}, headers={"Authorization": "Bearer good"})
        assert after.status_code == 202
        expected: contract.ProgressAccounting = {
            "cost": 3.25,
            "currency": "USD",
            "goodputPercent": pytest.approx(500 / 6),  # pyright: ignore[reportAssignmentType]
            "lostSeconds": {"queued": 40.0, "restarting": 0.0, "preempted": 60.0, "recomputed": 0.0},
        }
        assert after.json()["accounting"] == expected
        assert accounting_of_answer(after.content) == expected, "the workload reads what the operator sends"
        assert stub.reviews == ["good"], "the answer costs no API call: the status is the cached one"
        refused = await http.post(url, json={"step": 30}, headers={"Authorization": "Bearer bad"})
        assert refused.status_code == 401
        assert "accounting" not in refused.json(), "a refused report learns nothing of any job"


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
            url,
            content=b"{" + b" " * contract.PROGRESS_MAX_BODY + b"}",
            headers={"Authorization": "Bearer good"},
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
            answer = await read_all(stream)
        assert answer.startswith(b"HTTP/1.1 411 "), answer
        assert answer.endswith(b'"a Content-Length header is required"}')


async def test_bodies_over_the_limit_or_too_slow_are_refused_before_any_token_review() -> None:
    before = reports("too_large")
    slow_before = reports("too_slow")
    async with endpoint() as (server, stub, enqueued, url):
        port = int(url.split(":")[2].split("/")[0])
        head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n"
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            chunk = b"x" * 3000
            chunked = f"{head}Transfer-Encoding: chunked\r\n\r\n".encode()
            await stream.send(chunked + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 2)
            too_large = await read_all(stream)
        assert too_large.startswith(b"HTTP/1.1 413"), too_large
        assert b"4096-byte limit" in too_large
        sent, answer = await trickle(
            port, b" " * 100, every=0.02, first=f"{head}Content-Length: 100\r\n\r\n".encode()
        )
        assert sent < 100, "the endpoint waited for the whole trickled body"
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"not received within" in answer
        assert stub.reviews == []
        assert enqueued == []
        assert server.latest("team-a/llama") is None
    assert reports("too_large") == before + 1
    assert reports("too_slow") == slow_before + 1


async def test_malformed_requests_never_reach_the_endpoint() -> None:
    before = {r: reports(r) for r in ("invalid", "unauthenticated", "too_large")}
    async with endpoint() as (_, stub, _, url):
        port = int(url.split(":")[2].split("/")[0])
        for garbage in (
            b"POST\r\n\r\n",
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".encode(),
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\nX: {'a' * 9000}\r\n\r\n".encode(),
        ):
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(garbage)
                answer = await read_all(stream)
            assert answer.split(b" ")[1] in (b"400", b"431"), answer
    assert stub.reviews == []
    assert {r: reports(r) for r in before} == before


async def test_a_flood_of_idle_and_slow_clients_stops_neither_reports_nor_reconciles() -> None:
    manager = Manager(Client(FakeApiServer()), metrics_bind_address="0", sync_period=None)
    seen: list[Request] = []

    async def reconcile(request: Request) -> Result:
        seen.append(request)
        return Result(requeue_after=0.01) if request.name == "tick" else Result()

    controller = manager.add(Controller(reconcile, for_=CONFIG_MAPS, name="flood"))
    server, _ = make_server(enqueue=controller.enqueue)
    manager.add_runnable(server.serve)

    def ticks() -> int:
        return sum(1 for r in seen if r.name == "tick")

    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.run)
        with anyio.fail_after(30):
            await server.listening.wait()
        port = server.port
        assert port is not None
        controller.queue.add(Request("default", "tick"))
        idle = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(200)]
        for n, stream in enumerate(idle):
            if n % 2:
                await stream.send(f"POST {PATH} HTTP/1.1\r\nHost: x\r\n".encode())  # a head never finished
        head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Pad: {'a' * 4000}\r\n\r\n".encode()
        for _ in range(20):
            tg.start_soon(trickle, port, head)
        during = ticks()
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"http://127.0.0.1:{port}{PATH}", json={"step": 7}, headers={"Authorization": "Bearer good"}
            )
        assert answer.status_code == 202, answer.text
        with anyio.fail_after(30):
            while Request("team-a", "llama") not in seen or ticks() < during + 20:  # noqa: ASYNC110
                await anyio.sleep(0.01)
        for stream in idle:  # every idle or unfinished connection is closed by the server, unanswered
            assert await read_all(stream) == b""
            await stream.aclose()
        manager.stop()
    latest = server.latest("team-a/llama")
    assert latest is not None
    assert latest.body.step == 7


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Tls]:
    return serving_pki(tmp_path_factory.mktemp("pki"))


async def test_reports_over_tls_with_the_mounted_certificate(pki: tuple[Path, Tls]) -> None:
    ca, tls = pki
    async with endpoint(tls) as (server, _, enqueued, url):
        verify = ssl.create_default_context(cafile=str(ca))
        async with httpx.AsyncClient(verify=verify) as http:
            answer = await http.post(url, json={"step": 3}, headers={"Authorization": "Bearer good"})
            assert answer.status_code == 202, answer.text
            assert (await http.post(url, json={"step": 3})).status_code == 401
        async with httpx.AsyncClient() as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.post(url.replace("https", "http"), json={"step": 4})
        assert enqueued == [Request("team-a", "llama")]
        latest = server.latest("team-a/llama")
        assert latest is not None
        assert latest.body.step == 3


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
        assert (await progress.report("Bearer t", json.dumps({"step": n}).encode()))["status"] == 202
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
    assert (await progress.report("Bearer t", json.dumps(body).encode()))["status"] == 202
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
    assert (await server.report("Bearer good", b'{"step": 3}'))["status"] == 202
    assert (await server.report(None, b'{"step": 3}'))["status"] == 401
    ok, refused = exporter.get_finished_spans()
    assert ok.name == refused.name == "progress report"
    assert ok.attributes is not None
    assert refused.attributes is not None
    assert ok.attributes["pyroclast.progress.result"] == "accepted"
    assert ok.attributes["k8s.pod.name"] == "llama-worker-0"
    assert ok.attributes["pyroclast.torchjob"] == "team-a/llama"
    assert refused.attributes["pyroclast.progress.result"] == "unauthenticated"
    assert refused.attributes["http.response.status_code"] == 401


def test_the_progress_endpoint_is_made_with_the_controller_whose_queue_it_feeds() -> None:
    fake = FakeApiServer()
    manager = Manager(Client(fake), metrics_bind_address="0", sync_period=None)
    reconciler = TorchJobReconciler(
        manager, progress_bind=Address("127.0.0.1", 0), progress_url="http://x.invalid"
    )
    assert reconciler.progress is None, "no queue to feed yet"
    reconciler.controller()
    assert reconciler.progress is not None
    with pytest.raises(RuntimeError, match="made once"):
        reconciler.controller()
