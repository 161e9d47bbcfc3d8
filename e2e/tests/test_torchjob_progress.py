"""Live progress on the local cluster: workers POST to the operator's endpoint with pod-bound tokens.

kwok runs no kubelet, so nothing mounts the projected token; the test mints the same token with the
TokenRequest API (bound to the worker pod, audience ``pyroclast.dev/progress``) and posts as the workload
would.
The endpoint listens on 127.0.0.1 only, over TLS with a certificate from a throwaway CA, as the
deploy manifests serve it.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from api import TorchJob, contract
from controller.runtime.httpserver import Tls
from controller.runtime.metrics import REGISTRY
from controller.runtime.objects import JsonObject
from controller.runtime.resource import PODS
from controller.torchjob.kinds import TORCHJOBS
from controller.torchjob.progress import (
    POD_NAME_CLAIM,
    POD_UID_CLAIM,
    TOKEN_VOLUME,
)
from controller.torchjob.progress_endpoint import Address
from controller.torchjob.report import checkpoint_path
from e2e.cluster import Cluster
from e2e.cluster.pki import CertificateAuthority
from e2e.cluster.pool import NodePool
from e2e.torchjobs import operator_reconciler, status_of, torchjob, wait_for, wait_phase
from workloads.progress import LivePoster

SERVICE_ACCOUNT = "trainer"
WORKERS_DIAL = "https://pyroclast-progress.invalid:8443"  # what pods are told; nothing dials it here
VOLUME: JsonObject = {"nfs": {"server": "nfs.example.invalid", "path": "/exports/ckpt"}}


def job_with_account(name: str, pool: NodePool, **spec: Any) -> JsonObject:
    body = torchjob(name, pool, **spec)
    body["spec"]["template"]["spec"]["serviceAccountName"] = SERVICE_ACCOUNT
    return body


def mint(
    cluster: Cluster,
    namespace: str,
    pod: JsonObject,
    audience: str = contract.PROGRESS_AUDIENCE,
    account: str = SERVICE_ACCOUNT,
) -> str:
    """A token bound to `pod`, as the kubelet would project it."""
    meta = pod["metadata"]
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [audience],
            "expirationSeconds": 600,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
        },
    }
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
    answer = cluster.api.create(path, request)
    assert answer is not None
    return str(answer["status"]["token"])


def reports(result: str) -> float:
    return REGISTRY.get_sample_value("pyroclast_progress_reports_total", {"result": result}) or 0.0


async def test_workers_report_live_progress_with_pod_bound_tokens(
    cluster: Cluster,
    crd: str,
    namespace: str,
    nodes: NodePool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nodes(4, cpu="4")
    pool = nodes
    cluster.api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": SERVICE_ACCOUNT}}
    )
    ca = CertificateAuthority(tmp_path / "pki", "progress-ca")
    serving = ca.issue("progress", "pyroclast-progress", ip_addresses=["127.0.0.1"], server=True)
    bind = Address("127.0.0.1", 0, Tls(str(serving.cert), str(serving.key)))
    async with operator_reconciler(cluster, progress_bind=bind, progress_url=WORKERS_DIAL) as reconciler:
        client = reconciler.client
        assert reconciler.progress is not None
        await client.create(TORCHJOBS, job_with_account("ja", pool, checkpoint={"volume": VOLUME}), namespace)
        await client.create(TORCHJOBS, job_with_account("jb", pool), namespace)
        await wait_phase(client, namespace, "ja", "Running")
        await wait_phase(client, namespace, "jb", "Running")
        await reconciler.progress.listening.wait()
        url = f"https://127.0.0.1:{reconciler.progress.port}{contract.PROGRESS_PATH}"

        # The pod carries the token volume and the two variables.
        worker = await client.get(PODS, "ja-worker-0", namespace)
        (volume,) = [v for v in worker["spec"]["volumes"] if v["name"] == TOKEN_VOLUME]
        source = volume["projected"]["sources"][0]["serviceAccountToken"]
        assert (source["audience"], source["expirationSeconds"]) == (contract.PROGRESS_AUDIENCE, 600)
        trainer = worker["spec"]["containers"][0]
        mount = next(m for m in trainer["volumeMounts"] if m["name"] == TOKEN_VOLUME)
        assert (mount["mountPath"], mount["readOnly"]) == (contract.PROGRESS_TOKEN_DIR, True)
        env = {e["name"]: e.get("value") for e in trainer["env"]}
        assert env[contract.PROGRESS_URL] == WORKERS_DIAL
        assert env[contract.PROGRESS_TOKEN_FILE] == contract.PROGRESS_TOKEN_FILE_PATH

        token_a = mint(cluster, namespace, worker)
        # What the 1.36 apiserver says of such a token: the pod's name and UID as extra claims.
        review: JsonObject = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token_a, "audiences": [contract.PROGRESS_AUDIENCE]},
        }
        answer = cluster.api.create("/apis/authentication.k8s.io/v1/tokenreviews", review)
        assert answer is not None
        user = answer["status"]["user"]
        assert user["username"] == f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"
        assert user["extra"][POD_NAME_CLAIM] == ["ja-worker-0"]
        assert user["extra"][POD_UID_CLAIM] == [worker["metadata"]["uid"]]
        accepted_before = reports("accepted")
        job_a = TorchJob.from_k8s(await client.get(TORCHJOBS, "ja", namespace))
        ckpt = checkpoint_path(job_a, 20)
        trust = ssl.create_default_context(cafile=str(ca.cert_path))
        async with httpx.AsyncClient(timeout=10) as cleartext:
            with pytest.raises(httpx.HTTPError):  # the endpoint speaks TLS only
                await cleartext.post(url.replace("https://", "http://"), json={"step": 1})
        async with httpx.AsyncClient(timeout=10, verify=trust) as http:

            async def post(body: Any, token: str | None, **kwargs: Any) -> httpx.Response:
                headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
                return await http.post(url, json=body, headers=headers, **kwargs)

            answer = await post(
                {"step": 40, "totalSteps": 200, "loss": 0.25, "checkpoint": {"step": 20, "path": ckpt}},
                token_a,
            )
            assert answer.status_code == 202, answer.text
            assert "ja" in answer.json()["message"]

            async def folded() -> JsonObject | None:
                status = await status_of(client, namespace, "ja")
                return status if (status.get("progress") or {}).get("step") == 40 else None

            status = await wait_for("status.progress of ja", folded, within=20)
            assert status["progress"]["totalSteps"] == 200
            assert status["progress"]["loss"] == 0.25
            assert status["lastCheckpoint"]["step"] == 20
            assert status["lastCheckpoint"]["path"] == ckpt
            assert reports("accepted") == accepted_before + 1

            # Refusals, each with a status and a message naming the problem.
            missing = await post({"step": 1}, None)
            assert missing.status_code == 401, missing.text
            assert "Bearer" in missing.json()["message"]
            garbage = await post({"step": 1}, "not-a-token")
            assert garbage.status_code == 401
            wrong_audience = await post(
                {"step": 1}, mint(cluster, namespace, worker, audience="other.example")
            )
            assert wrong_audience.status_code == 401, wrong_audience.text
            assert contract.PROGRESS_AUDIENCE in wrong_audience.json()["message"]
            bad = await post({"step": -3}, token_a)
            assert bad.status_code == 400, bad.text
            assert "step" in bad.json()["message"]
            moved = await post({"step": 41, "checkpoint": {"step": 30, "path": "/etc"}}, token_a)
            assert moved.status_code == 400, moved.text
            assert "checkpoint.path" in moved.json()["message"]
            oversized = await http.post(
                url,
                content=b"{" + b" " * contract.PROGRESS_MAX_BODY + b"}",
                headers={"Authorization": f"Bearer {token_a}", "Content-Type": "application/json"},
            )
            assert oversized.status_code == 413

            # A pod that is no TorchJob worker cannot report, though its token is valid.
            plain: JsonObject = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "bystander", "labels": {"pyroclast.dev/job-name": "ja"}},
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "nodeSelector": pool.node_selector,
                    "containers": [{"name": "c", "image": "example.invalid/x:1"}],
                },
            }
            bystander = await client.create(PODS, plain, namespace)
            stranger = await post({"step": 99}, mint(cluster, namespace, bystander))
            assert stranger.status_code == 403, stranger.text
            assert "bystander" in stranger.json()["message"]

            # Job B's worker reports for job B only.
            token_b = mint(cluster, namespace, await client.get(PODS, "jb-worker-1", namespace))
            naming = await post({"step": 7, "job": "ja"}, token_b)
            assert naming.status_code == 400, "the job comes from the token's pod, never from the body"
            assert "unknown field(s) job" in naming.json()["message"]
            assert (await post({"step": 7}, token_b)).status_code == 202

            async def folded_b() -> JsonObject | None:
                status = await status_of(client, namespace, "jb")
                return status if (status.get("progress") or {}).get("step") == 7 else None

            await wait_for("status.progress of jb", folded_b, within=20)
            assert (await status_of(client, namespace, "ja"))["progress"]["step"] == 40

            # The workload's poster sends what the endpoint accepts.
            token_file = tmp_path / "token"
            token_file.write_text(token_a)
            assert job_a.spec.checkpoint is not None
            monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_path))  # how a trainer trusts a private CA
            poster = LivePoster(
                f"https://127.0.0.1:{reconciler.progress.port}",
                token_file,
                checkpoint_dir=Path(job_a.spec.checkpoint.path),
            )
            # urllib blocks: off the event loop the operator runs on.
            assert await anyio.to_thread.run_sync(poster.post, 60, 200, 0.125, 20)

            async def folded_poster() -> JsonObject | None:
                status = await status_of(client, namespace, "ja")
                return status if (status.get("progress") or {}).get("step") == 60 else None

            await wait_for("status.progress from the poster", folded_poster, within=20)


async def test_a_job_naming_no_service_account_reports_as_default(
    cluster: Cluster, crd: str, namespace: str, nodes: NodePool
) -> None:
    """A projected token needs a named account; an apiserver without the ServiceAccount admission plugin
    would refuse the pod ("must not be specified when serviceAccountName is not set"), so the operator names
    the namespace's `default` (whichever way the plugin is set)."""
    nodes(2, cpu="4")

    async def default_account() -> JsonObject | None:
        return cluster.api.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")

    await wait_for("the namespace's default service account", default_account, within=30)
    bind = Address("127.0.0.1", 0)
    async with operator_reconciler(cluster, progress_bind=bind, progress_url=WORKERS_DIAL) as reconciler:
        client = reconciler.client
        assert reconciler.progress is not None
        body = torchjob("nosa", nodes)
        assert "serviceAccountName" not in body["spec"]["template"]["spec"]
        await client.create(TORCHJOBS, body, namespace)
        await wait_phase(client, namespace, "nosa", "Running")
        worker = await client.get(PODS, "nosa-worker-0", namespace)
        assert worker["spec"]["serviceAccountName"] == "default"
        assert worker["spec"]["automountServiceAccountToken"] is False  # still no API token for training code
        assert any(v["name"] == TOKEN_VOLUME for v in worker["spec"]["volumes"])

        await reconciler.progress.listening.wait()
        token = mint(cluster, namespace, worker, account="default")
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.post(
                f"http://127.0.0.1:{reconciler.progress.port}/v1/progress",
                json={"step": 5, "totalSteps": 50},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert answer.status_code == 202, answer.text

        async def folded() -> JsonObject | None:
            status = await status_of(client, namespace, "nosa")
            return status if (status.get("progress") or {}).get("step") == 5 else None

        await wait_for("status.progress of nosa", folded, within=20)
