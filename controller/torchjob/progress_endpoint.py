"""The operator's live progress endpoint: ``POST /v1/progress`` from worker pods (see :mod:`.progress`).

Served by :class:`~controller.runtime.httpserver.HttpServer` (over TLS when given a certificate). Bodies of at
most :data:`~api.contract.PROGRESS_MAX_BODY` bytes, with a Content-Length or chunked, arriving within
:attr:`ProgressEndpoint.body_timeout` seconds. A token is verified with the TokenReview API and the answer
cached for :data:`TOKEN_CACHE_SECONDS`; the pod it names is looked up in the informer cache. An accepted
report is only kept in memory (the latest per job) and the job enqueued: the reconciler folds it into the
status with its usual batching, so reports cost no writes of their own.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import anyio
from anyio.abc import TaskStatus
from opentelemetry import trace
from prometheus_client import Counter
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from api import TorchJob, TorchJobStatus, contract
from controller.runtime import objects
from controller.runtime.cache import Cache
from controller.runtime.client import Client
from controller.runtime.errors import ApiError
from controller.runtime.httpserver import HttpServer, Limits, Tls
from controller.runtime.metrics import REGISTRY
from controller.runtime.objects import JsonObject
from controller.runtime.reconcile import Request
from controller.runtime.resource import Resource
from controller.torchjob.labels import ATTEMPT_LABEL, JOB_NAME_LABEL, REPLICA_INDEX_LABEL
from controller.torchjob.plan import attempt_of
from controller.torchjob.progress import (
    Identity,
    LiveReport,
    Rejected,
    accounting_of,
    check_checkpoint,
    identity_from_review,
    parse_body,
)

log = logging.getLogger(__name__)

PATH: Final = contract.PROGRESS_PATH
TOKENREVIEWS: Final = Resource("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", namespaced=False)
TOKEN_CACHE_SECONDS: Final = 60.0
"""How long a verified token is trusted without asking again (well inside its 10-minute life)."""
TOKEN_CACHE_SIZE: Final = 4096
BODY_TIMEOUT: Final = 5.0
"""Seconds a report's body may take to arrive once its head has (the head itself: :class:`Limits`)."""
LIMITS: Final = Limits(max_head=8192, idle_timeout=5.0)

REPORTS: Final = Counter(
    "pyroclast_progress_reports_total",
    "Live progress reports received, by result",
    ["result"],
    registry=REGISTRY,
)
_RESULTS: Final = {
    202: "accepted",
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    408: "too_slow",
    411: "invalid",
    413: "too_large",
    503: "unavailable",
}


@dataclass(frozen=True, slots=True)
class Address:
    """Where the endpoint listens (port 0 picks a free one), and its certificate when it serves TLS."""

    host: str
    port: int
    tls: Tls | None = None


def job_of_worker(identity: Identity, pod: JsonObject | None, job: JsonObject | None) -> TorchJob:
    """The TorchJob whose current worker `pod` (the token's pod, from the cache) is; :class:`Rejected` (403)
    for any other pod: gone, replaced, of an older gang attempt, or not a Pyroclast worker."""
    who = f"pod {identity.namespace}/{identity.pod_name}"
    if pod is None or objects.metadata(pod).get("uid") != identity.pod_uid:
        raise Rejected(403, f"{who} is not a running worker (gone or replaced)")
    labels = objects.labels(pod)
    job_name = labels.get(JOB_NAME_LABEL)
    if not job_name or REPLICA_INDEX_LABEL not in labels:
        raise Rejected(403, f"{who} is not a TorchJob worker")
    if job is None:
        raise Rejected(403, f"{who}: TorchJob {job_name} does not exist")
    owners: list[JsonObject] = objects.metadata(pod).get("ownerReferences") or []
    job_uid = objects.metadata(job).get("uid")
    if not any(o.get("controller") and o.get("uid") == job_uid for o in owners):
        raise Rejected(403, f"{who} is not owned by TorchJob {job_name}")
    try:
        parsed = TorchJob.from_k8s(job)
    except ValidationError:
        raise Rejected(403, f"{who}: TorchJob {job_name} does not parse") from None
    if parsed.metadata.deletion_timestamp is not None or objects.metadata(pod).get("deletionTimestamp"):
        raise Rejected(403, f"{who} is being deleted")
    status = parsed.status or TorchJobStatus()
    if status.phase is not None and status.phase.finished:
        raise Rejected(403, f"{who}: TorchJob {job_name} has finished")
    attempt = attempt_of(status)
    if labels.get(ATTEMPT_LABEL) != str(attempt):
        raise Rejected(403, f"{who} is not of the current attempt ({attempt}) of TorchJob {job_name}")
    return parsed


class ProgressEndpoint:
    """Receives reports; :meth:`latest` gives the reconciler each job's newest one."""

    def __init__(
        self,
        client: Client,
        jobs: Cache,
        pods: Cache,
        address: Address,
        *,
        enqueue: Callable[[Request], None],
        clock: Callable[[], datetime],
        audience: str = contract.PROGRESS_AUDIENCE,
        monotonic: Callable[[], float] = time.monotonic,
        tracer_provider: trace.TracerProvider | None = None,
        limits: Limits = LIMITS,
        body_timeout: float = BODY_TIMEOUT,
    ):
        self.client = client
        self.jobs = jobs
        self.pods = pods
        self.address = address
        self.audience = audience
        self._enqueue = enqueue
        self.port: int | None = None
        """The bound port once listening."""
        self.listening = anyio.Event()
        self.limits = limits
        self.body_timeout = body_timeout
        self._clock = clock
        self._monotonic = monotonic
        self._latest: dict[str, LiveReport] = {}
        self._tokens: dict[str, tuple[float, Identity]] = {}
        self._tracer = trace.get_tracer("pyroclast.progress", tracer_provider=tracer_provider)

    def latest(self, key: str) -> LiveReport | None:
        """The newest accepted report of the job `namespace/name`."""
        return self._latest.get(key)

    def forget(self, key: str) -> None:
        """Drop what is kept for a deleted job."""
        self._latest.pop(key, None)

    def app(self) -> Starlette:
        """The ASGI app: ``POST`` :data:`PATH`; every answer is JSON :class:`contract.ProgressAnswer`."""
        return Starlette(
            routes=[Route(PATH, self._post, methods=["POST"])],
            exception_handlers={404: _refusal, 405: _refusal},
        )

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled."""
        server = HttpServer(
            self.app(),
            self.address.host,
            self.address.port,
            name="progress endpoint",
            tls=self.address.tls,
            limits=self.limits,
        )
        async with anyio.create_task_group() as tg:
            port: int = await tg.start(server.serve)
            self.port = port
            self.listening.set()
            task_status.started(port)

    async def report(self, authorization: str | None, body: bytes) -> contract.ProgressAnswer:
        """Verify, check and keep one report; the answer for the workload: the HTTP status, a message and,
        when accepted, the job's accounting as its cached status holds it (no API call of its own)."""
        with self._tracer.start_as_current_span("progress report", kind=trace.SpanKind.SERVER) as span:
            accounting: contract.ProgressAccounting | None = None
            try:
                job = await self._accept(authorization, body, span)
                status, message = 202, f"accepted for TorchJob {job.metadata.namespace}/{job.metadata.name}"
                accounting = accounting_of(job.status or TorchJobStatus())
            except Rejected as err:
                status, message = err.status, err.message
            result = _RESULTS.get(status, "invalid")
            REPORTS.labels(result=result).inc()
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("pyroclast.progress.result", result)
            if status != 202:
                span.set_status(trace.StatusCode.ERROR, message)
                log.info("progress report refused (%d): %s", status, message)
            span.set_attribute("pyroclast.progress.accounting", accounting is not None)
            answer: contract.ProgressAnswer = {"status": status, "message": message}
            if accounting is not None:
                answer["accounting"] = accounting
            return answer

    async def _accept(self, authorization: str | None, data: bytes, span: trace.Span) -> TorchJob:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Rejected(401, "missing 'Authorization: Bearer <token>' (the projected progress token)")
        identity = await self._identity(token.strip())
        span.set_attribute("k8s.namespace.name", identity.namespace)
        span.set_attribute("k8s.pod.name", identity.pod_name)
        body = parse_body(data)
        pod = self.pods.get(f"{identity.namespace}/{identity.pod_name}", copy=False)
        job_name = objects.labels(pod).get(JOB_NAME_LABEL) if pod is not None else None
        raw = self.jobs.get(f"{identity.namespace}/{job_name}", copy=False) if job_name else None
        job = job_of_worker(identity, pod, raw)
        check_checkpoint(job, body)
        request = Request(identity.namespace, job.metadata.name or "")
        self._latest[request.key] = LiveReport(
            job_uid=job.metadata.uid or "", pod=identity.pod_name, body=body, received=self._clock()
        )
        span.set_attribute("pyroclast.torchjob", request.key)
        log.debug("progress of %s: step %d from %s", request, body.step, identity.pod_name)
        self._enqueue(request)
        return job

    async def _identity(self, token: str) -> Identity:
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = self._monotonic()
        cached = self._tokens.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        review: JsonObject = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [self.audience]},
        }
        try:
            answer = await self.client.create(TOKENREVIEWS, review)
        except ApiError as err:
            raise Rejected(503, f"could not verify the token now ({err}); retry later") from None
        identity = identity_from_review(answer, self.audience)
        if len(self._tokens) >= TOKEN_CACHE_SIZE:
            self._tokens = {k: v for k, v in self._tokens.items() if v[0] > now}
            while len(self._tokens) >= TOKEN_CACHE_SIZE:
                del self._tokens[next(iter(self._tokens))]
        self._tokens[digest] = (now + TOKEN_CACHE_SECONDS, identity)
        return identity

    async def _post(self, request: HttpRequest) -> JSONResponse:
        answer = await self._receive(request)
        return JSONResponse(answer, status_code=answer["status"])

    async def _receive(self, request: HttpRequest) -> contract.ProgressAnswer:
        declared = request.headers.get("content-length")
        if declared is None and "chunked" not in request.headers.get("transfer-encoding", "").lower():
            return _refused(411, "a Content-Length header is required")
        limit = contract.PROGRESS_MAX_BODY
        if declared is not None and int(declared) > limit:  # h11 checked it is a number
            return _refused(413, f"body of {declared} bytes is over the {limit}-byte limit")
        body = bytearray()
        with anyio.move_on_after(self.body_timeout) as deadline:
            try:
                async for chunk in request.stream():
                    body += chunk
                    if len(body) > limit:
                        return _refused(413, f"body is over the {limit}-byte limit")
            except ClientDisconnect:
                return _refused(400, "body shorter than announced (the client went away)")
        if deadline.cancelled_caught:
            return _refused(408, f"body not received within {self.body_timeout:g} s")
        return await self.report(request.headers.get("authorization"), bytes(body))


def _refused(status: int, message: str) -> contract.ProgressAnswer:
    """A request refused before its report is read (no span: nothing about a worker is known yet)."""
    REPORTS.labels(result=_RESULTS[status]).inc()
    log.info("progress request refused (%d): %s", status, message)
    return {"status": status, "message": message}


async def _refusal(_request: HttpRequest, exc: Exception) -> JSONResponse:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"method not allowed; POST {PATH}" if status == 405 else f"not found; POST {PATH}"
    return JSONResponse({"status": status, "message": message}, status_code=status)
