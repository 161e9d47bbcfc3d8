"""`pyroclast job` against the local cluster: every verb through the apiserver, the operator run in process
where a job must run, and the errors a person meets (unknown/closed queue, missing priority class, RBAC,
unreachable cluster, kwok's missing kubelet for logs)."""

from __future__ import annotations

import io
import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
import yaml

from controller.runtime.objects import JsonObject
from controller.runtime.resource import EVENTS
from controller.torchjob.kinds import PODGROUPS
from controller.torchjob.observe import observe_podgroup
from e2e import torchjobs as lifecycle
from e2e.cluster import Cluster
from e2e.cluster.pki import CertificateAuthority
from e2e.cluster.pool import NodePool
from e2e.torchjobs import torchjob
from pyroclast.jobs import JobClient
from pyroclast.jobspec import build_job

Run = Callable[..., tuple[int, str, str]]


def held(cluster: Cluster, namespace: str, name: str) -> JsonObject | None:
    got = cluster.kubectl("get", "torchjob", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(got.stdout) if got.returncode == 0 else None


LOG_LINES = 4


class _KubeletLogs(BaseHTTPRequestHandler):
    """The kubelet's containerLogs endpoint: LOG_LINES lines per container; with follow, one every 50 ms
    and then the container ends."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404)
            return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        assert isinstance(self.server, FakeKubelet)
        self.server.requests.append((parts[2], parts[3], query))
        lines = [f"{parts[2]} says {i}" for i in range(LOG_LINES)]
        if "tailLines" in query:
            lines = lines[-int(query["tailLines"]) :]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        for line in lines:
            self.wfile.write(f"{line}\n".encode())
            self.wfile.flush()
            if query.get("follow") == "true":
                time.sleep(0.05)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeKubelet(ThreadingHTTPServer):
    """A TLS listener on a free 127.0.0.1 port answering containerLogs, standing in for kwok's missing
    kubelet; :meth:`serve` points nodes' ``daemonEndpoints`` at it (kwok leaves that field alone when it runs
    without ``--node-port``), which is where the apiserver sends ``pods/log``."""

    requests: list[tuple[str, str, dict[str, str]]]

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def serve(self, cluster: Cluster, nodes: list[str]) -> None:
        """Make `nodes`' kubelet endpoint this listener."""
        patch = {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}}}}
        for node in nodes:
            cluster.api.request(
                "PATCH",
                f"/api/v1/nodes/{node}/status",
                body=patch,
                content_type="application/merge-patch+json",
            )


@pytest.fixture
def kubelet(tmp_path: Path) -> Iterator[FakeKubelet]:
    authority = CertificateAuthority(tmp_path, "kubelet-ca")
    pair = authority.issue("kubelet", "127.0.0.1", ip_addresses=("127.0.0.1",), server=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pair.cert, pair.key)
    server = FakeKubelet(("127.0.0.1", 0), _KubeletLogs)
    server.requests = []
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def fields(section: str) -> dict[str, str]:
    """`Key: value` lines of a describe section."""
    pairs = (ln.strip().split(":", 1) for ln in section.splitlines() if ":" in ln and not ln.endswith(":"))
    return {k: v.strip() for k, v in pairs}


def write_jobs(path: Path, *jobs: JsonObject) -> str:
    path.write_text(yaml.safe_dump_all(jobs))
    return str(path)


def test_submit_get_list_from_flags_and_yaml(
    cluster: Cluster, crd: str, cli: Run, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = cli(
        "job", "submit", "ft", "-n", namespace, "--image", "example.invalid/train:1", "--min-nodes", "2",
        "--max-nodes", "4", "--nproc", "2", "--cpu", "1", "--memory", "2Gi", "--gpus", "1", "--env", "A=1",
        "--preemptible", "--", "-m", "workloads.train", "--total-steps", "10",
    )  # fmt: skip
    assert (code, out.strip(), err) == (0, "torchjob/ft submitted to queue default", "")
    spec = (held(cluster, namespace, "ft") or {})["spec"]
    assert spec["command"] == ["-m", "workloads.train", "--total-steps", "10"]
    assert spec["nodes"] == {"count": 4, "min": 2, "max": 4}
    assert spec["nprocPerNode"] == 2
    assert spec["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"nvidia.com/gpu": 1}}
    assert spec["env"] == [{"name": "A", "value": "1"}]
    assert spec["scheduling"]["preemptible"] is True
    assert spec["scheduling"]["queue"] == "default"  # the CRD's default

    code, out, _ = cli("job", "get", "ft", "-n", namespace, "-o", "json")
    assert code == 0
    got = json.loads(out)
    assert got["metadata"]["uid"] == (held(cluster, namespace, "ft") or {})["metadata"]["uid"]
    assert "managedFields" not in got["metadata"]
    code, out, _ = cli("job", "get", "ft", "-n", namespace, "-o", "yaml")
    assert yaml.safe_load(out)["spec"]["nodes"]["max"] == 4
    code, out, _ = cli("job", "get", "ft", "-n", namespace)
    header, row = out.splitlines()
    assert header.split() == ["NAME", "PHASE", "NODES", "QUEUE", "RESTARTS", "PROGRESS", "AGE"]
    assert row.split()[:6] == ["ft", "Pending", "0/4", "default", "0/0", "-"]

    second = torchjob("from-yaml", None, count=1)
    third = torchjob("other-queue", None, count=1, scheduling={"queue": "default", "preemptible": False})
    code, out, err = cli(
        "job", "submit", "-n", namespace, "-f", write_jobs(tmp_path / "j.yaml", second, third)
    )
    assert code == 0, err
    assert out.splitlines() == [
        "torchjob/from-yaml submitted to queue default",
        "torchjob/other-queue submitted to queue default",
    ]
    code, out, _ = cli("job", "list", "-n", namespace)
    assert [ln.split()[0] for ln in out.splitlines()[1:]] == ["from-yaml", "ft", "other-queue"]
    code, out, _ = cli("job", "list", "-A", "-o", "json")
    mine = [j["metadata"]["name"] for j in json.loads(out) if j["metadata"]["namespace"] == namespace]
    assert mine == ["from-yaml", "ft", "other-queue"]
    code, out, _ = cli("job", "list", "-A")
    assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(ln.split()[:2] == [namespace, "ft"] for ln in out.splitlines())

    code, _, err = cli("job", "submit", "ft", "-n", namespace, "--image", "x", "--", "train.py")
    assert code == 4
    assert f"TorchJob ft already exists in namespace {namespace}" in err

    code, out, err = cli(
        "job", "submit", "dry", "-n", namespace, "--image", "x", "--dry-run", "-o", "json", "--", "t.py"
    )
    assert code == 0, err
    assert json.loads(out)["spec"]["failurePolicy"]["maxFailureRestarts"] == 3  # defaulted by the apiserver
    assert held(cluster, namespace, "dry") is None

    code, _, err = cli(
        "job", "submit", "-n", namespace, "-f", write_jobs(tmp_path / "bad.yaml", {**second, "kind": "Pod"})
    )
    assert code == 2
    assert "only kind: TorchJob" in err

    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(torchjob("from-stdin", None, count=1))))
    code, out, err = cli("job", "submit", "-n", namespace, "-f", "-")
    assert (code, out.strip()) == (0, "torchjob/from-stdin submitted to queue default"), err
    assert held(cluster, namespace, "from-stdin") is not None

    code, _, err = cli("job", "get", "nope", "-n", namespace)
    assert code == 3
    assert f"TorchJob nope not found in namespace {namespace}" in err
    code, _, err = cli("job", "list", "-n", f"no-such-{namespace}")
    assert code == 0  # listing an absent namespace is empty, as kubectl says
    assert "No TorchJobs" in err


def test_submit_refuses_unknown_queue_closed_queue_and_missing_priority_class(
    cluster: Cluster, crd: str, cli: Run, namespace: str, qname: str
) -> None:
    flags = ("-n", namespace, "--image", "x")
    code, _, err = cli("job", "submit", "a", *flags, "--queue", qname, "--", "t.py")
    assert code == 3
    assert f"queue {qname} does not exist" in err
    assert "pyroclast queue list" in err
    assert held(cluster, namespace, "a") is None

    assert cli("queue", "create", qname)[0] == 0
    assert cli("queue", "close", qname)[0] == 0
    code, _, err = cli("job", "submit", "a", *flags, "--queue", qname, "--", "t.py")
    assert code == 4
    assert f"queue {qname} is Closed and admits no new jobs" in err
    assert f"pyroclast queue open {qname}" in err
    assert held(cluster, namespace, "a") is None
    code, _, err = cli("job", "submit", "a", *flags, "--queue", qname, "--no-check", "--", "t.py")
    assert code == 0, err  # the checks are the CLI's; the apiserver itself accepts the job
    code, out, _ = cli("job", "list", "-A", "--queue", qname)
    assert [ln.split()[:2] for ln in out.splitlines()[1:]] == [[namespace, "a"]]

    pc = f"pc-{secrets.token_hex(3)}"
    code, _, err = cli("job", "submit", "b", *flags, "--priority-class", pc, "--", "t.py")
    assert code == 3
    assert f"priority class {pc} does not exist" in err
    assert "kubectl get priorityclasses" in err
    cluster.kubectl("create", "priorityclass", pc, "--value=1000")
    try:
        code, _, err = cli("job", "submit", "b", *flags, "--priority-class", pc, "--", "t.py")
        assert code == 0, err
        assert (held(cluster, namespace, "b") or {})["spec"]["scheduling"]["priorityClassName"] == pc
    finally:
        cluster.kubectl("delete", "priorityclass", pc, "--ignore-not-found")


def test_rbac_and_unreachable_cluster_say_what_to_do(
    cluster: Cluster, crd: str, cli: Run, namespace: str, tmp_path: Path
) -> None:
    nobody = cluster.add_user(f"nobody-{secrets.token_hex(3)}")
    code, _, err = cli("job", "list", "-n", namespace, kubeconfig=nobody)
    assert code == 1
    assert "not allowed by RBAC" in err
    assert 'cannot list resource "torchjobs"' in err
    assert "kubectl auth can-i" in err
    code, _, err = cli(
        "job", "submit", "x", "-n", namespace, "--image", "i", "--no-check", "--", "t.py", kubeconfig=nobody
    )
    assert code == 1
    assert 'cannot create resource "torchjobs"' in err

    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    unreachable = tmp_path / "unreachable.kubeconfig"
    unreachable.write_text(yaml.safe_dump(config))
    code, _, err = cli("job", "list", "-n", namespace, kubeconfig=unreachable)
    assert code == 1
    assert "cluster unreachable" in err
    assert "--kubeconfig" in err


async def test_lifecycle_wait_describe_suspend_resume_delete(
    cluster: Cluster, crd: str, cli: Run, namespace: str, nodes: NodePool, tmp_path: Path
) -> None:
    nodes(2, cpu="4")
    path = write_jobs(tmp_path / "job.yaml", torchjob("life", nodes, count=2))
    async with lifecycle.operator(cluster) as client:
        code, _, err = await anyio.to_thread.run_sync(cli, "job", "submit", "-n", namespace, "-f", path)
        assert code == 0, err
        code, out, err = await anyio.to_thread.run_sync(
            cli,
            "job",
            "wait",
            "life",
            "-n",
            namespace,
            "--for",
            "running",
            "--timeout",
            "60",
            "--poll",
            "0.2",
        )
        assert code == 0, err
        assert out.splitlines()[-1] == "torchjob/life Running"
        assert all("\r" not in ln for ln in out.splitlines())  # not a terminal: plain lines
        assert any("life: Running  nodes 2/2" in ln for ln in out.splitlines())

        async def described() -> list[str] | None:
            # vc-scheduler writes the PodGroup's phase at the end of its session, after binding the pods.
            code, out, err = await anyio.to_thread.run_sync(cli, "job", "describe", "life", "-n", namespace)
            assert code == 0, err
            sections = out.split("\n\n")
            pg = fields(next(s for s in sections if s.startswith("PodGroup:")))
            events = next((s for s in sections if s.startswith("Events:")), "")  # recorded in the background
            return sections if pg["Phase"] == "Running" and "AllWorkersRunning" in events else None

        sections = await lifecycle.wait_for(
            "describe showing the PodGroup Running and its Running Event", described, within=30
        )
        status = await lifecycle.status_of(client, namespace, "life")
        podgroup = fields(next(s for s in sections if s.startswith("PodGroup:")))
        assert podgroup["Name"] == status["podGroupName"]
        assert podgroup["Pods"] == "2 running, 0 succeeded, 0 failed"
        assert podgroup["Min member"] == "2"
        assert fields(sections[0])["Phase"] == "Running"
        workers = next(s for s in sections if s.startswith("Workers:"))
        assert "life-worker-0" in workers
        assert "life-worker-1" in workers
        events = next(s for s in sections if s.startswith("Events:"))
        assert "AllWorkersRunning" in events
        conditions = next(s for s in sections if s.startswith("Conditions:"))
        assert any(ln.split()[:2] == ["Running", "True"] for ln in conditions.splitlines())

        code, out, err = await anyio.to_thread.run_sync(
            cli, "job", "wait", "life", "-n", namespace, "--timeout", "1", "--poll", "0.2"
        )
        assert code == 6
        assert "is still Running after 1s" in err

        code, out, _ = await anyio.to_thread.run_sync(cli, "job", "suspend", "life", "-n", namespace)
        assert code == 0
        assert "suspended" in out
        await lifecycle.wait_phase(client, namespace, "life", "Suspended")
        code, out, _ = await anyio.to_thread.run_sync(cli, "job", "describe", "life", "-n", namespace)
        assert "PodGroup:\n  <none>" in out
        assert fields(out.split("\n\n")[0])["Suspended"] == "yes"

        code, out, _ = await anyio.to_thread.run_sync(cli, "job", "resume", "life", "-n", namespace)
        assert code == 0
        await lifecycle.wait_phase(client, namespace, "life", "Running")

        code, out, _ = await anyio.to_thread.run_sync(cli, "job", "delete", "life", "-n", namespace)
        assert (code, out.strip()) == (0, "torchjob/life deleted")
        assert held(cluster, namespace, "life") is None
        code, _, err = await anyio.to_thread.run_sync(cli, "job", "delete", "life", "-n", namespace)
        assert code == 3
        assert "not found" in err


async def test_wait_exit_code_reflects_the_outcome(
    cluster: Cluster, crd: str, cli: Run, namespace: str, nodes: NodePool, tmp_path: Path
) -> None:
    nodes(2, cpu="4")
    ok = torchjob("ok", nodes, count=1, annotations={"pyroclast.dev/test-succeed-after": "1s"})
    bad = torchjob(
        "bad",
        nodes,
        count=1,
        annotations={"pyroclast.dev/test-fail-after": "1s", "pyroclast.dev/test-exit-code": "2"},
        failurePolicy={"permanentExitCodes": [2]},
    )
    async with lifecycle.operator(cluster):
        code, _, err = await anyio.to_thread.run_sync(
            cli, "job", "submit", "-n", namespace, "-f", write_jobs(tmp_path / "j.yaml", ok, bad)
        )
        assert code == 0, err
        code, out, err = await anyio.to_thread.run_sync(
            cli, "job", "wait", "ok", "-n", namespace, "--timeout", "60", "--poll", "0.2"
        )
        assert (code, out.splitlines()[-1]) == (0, "torchjob/ok Succeeded"), err
        code, out, err = await anyio.to_thread.run_sync(
            cli, "job", "wait", "bad", "-n", namespace, "--timeout", "60", "--poll", "0.2"
        )
        assert (code, out.splitlines()[-1]) == (5, "torchjob/bad Failed")
        assert "TorchJob bad Failed:" in err
        assert "bad-worker-0 failed with exit code 2" in err
        code, _, err = await anyio.to_thread.run_sync(
            cli, "job", "wait", "nope", "-n", namespace, "--timeout", "5"
        )
        assert code == 3


async def test_describe_gives_the_schedulers_reason_while_queued(
    cluster: Cluster, crd: str, cli: Run, namespace: str, nodes: NodePool, qname: str
) -> None:
    nodes(2, cpu="4")
    code, _, err = await anyio.to_thread.run_sync(cli, "queue", "create", qname, "--capability", "cpu=1")
    assert code == 0, err
    async with lifecycle.operator(cluster) as client:
        body = torchjob("big", nodes, count=2, cpu="1", scheduling={"queue": qname})
        await client.create(lifecycle.TORCHJOBS, body, namespace)
        await lifecycle.wait_phase(client, namespace, "big", "Queued")

        status = await lifecycle.status_of(client, namespace, "big")
        pg_name = status["podGroupName"]
        selector = f"involvedObject.name={pg_name}"

        async def agreed() -> tuple[str, str] | None:
            """describe's Scheduler line next to what vc-scheduler wrote (PodGroup condition, or its Events
            while the enqueue gate holds the gang), read around it; equal once neither moved meanwhile."""
            code, out, _ = await anyio.to_thread.run_sync(cli, "job", "describe", "big", "-n", namespace)
            assert code == 0
            pg = await client.get(PODGROUPS, pg_name, namespace)
            events = (await client.list(EVENTS, namespace, field_selector=selector)).items
            gang = observe_podgroup(pg, events)
            line = next((ln for ln in out.splitlines() if ln.startswith("Scheduler:")), "")
            shown = line.split(":", 1)[1].strip() if line else ""
            return (shown, gang.message) if gang.reason and shown == gang.summary else None

        shown, message = await lifecycle.wait_for(
            "describe showing the scheduler's reason", agreed, within=45
        )
        assert shown.startswith("PodGroup is ")
        assert "unschedulable" in message.lower()
        code, out, _ = await anyio.to_thread.run_sync(cli, "queue", "list", "-o", "json")
        row = next(r for r in json.loads(out) if r["name"] == qname)
        assert (row["running"], row["pending"]) == (0, 1)


async def test_logs_go_through_the_pods_log_api(
    cluster: Cluster, crd: str, cli: Run, namespace: str, nodes: NodePool
) -> None:
    nodes(2, cpu="4")
    async with lifecycle.operator(cluster) as client:
        await client.create(lifecycle.TORCHJOBS, torchjob("talk", nodes, count=2), namespace)
        code, _, err = await anyio.to_thread.run_sync(cli, "job", "logs", "talk", "-n", namespace, "-w", "7")
        assert code == 3
        assert "has no worker 7" in err
        await lifecycle.wait_phase(client, namespace, "talk", "Running")
        # kwok nodes have no kubelet: the apiserver's proxy to the node fails, and each worker says so.
        code, out, err = await anyio.to_thread.run_sync(cli, "job", "logs", "talk", "-n", namespace)
        assert code == 1
        assert out == ""
        assert "[worker-0] no logs from pod talk-worker-0" in err
        assert "[worker-1] no logs from pod talk-worker-1" in err
        assert "containerLogs" in err  # the apiserver's own words: it tried the node's kubelet
        assert "2 worker(s) gave no logs" in err
        code, _, err = await anyio.to_thread.run_sync(
            cli, "job", "logs", "talk", "-n", namespace, "-w", "1", "-f"
        )
        assert code == 1
        assert "talk-worker-1" in err


async def test_logs_merge_every_worker_with_a_prefix(
    cluster: Cluster, crd: str, cli: Run, namespace: str, nodes: NodePool, kubelet: FakeKubelet
) -> None:
    kubelet.serve(cluster, nodes(2, cpu="4"))
    async with lifecycle.operator(cluster) as client:
        await client.create(lifecycle.TORCHJOBS, torchjob("chat", nodes, count=2), namespace)
        await lifecycle.wait_phase(client, namespace, "chat", "Running")

        code, out, err = await anyio.to_thread.run_sync(cli, "job", "logs", "chat", "-n", namespace)
        assert code == 0, err
        assert "no logs" not in err
        lines = out.splitlines()
        for i in (0, 1):
            mine = [ln for ln in lines if ln.startswith(f"[worker-{i}] ")]
            assert mine == [f"[worker-{i}] chat-worker-{i} says {n}" for n in range(LOG_LINES)]
        assert len(lines) == 2 * LOG_LINES
        assert {(pod, container) for pod, container, _ in kubelet.requests} == {
            ("chat-worker-0", "trainer"),
            ("chat-worker-1", "trainer"),
        }

        code, out, _ = await anyio.to_thread.run_sync(
            cli, "job", "logs", "chat", "-n", namespace, "-w", "1", "--tail", "2"
        )
        assert code == 0
        assert out.splitlines() == [f"chat-worker-1 says {n}" for n in (2, 3)]  # one worker: no prefix
        assert kubelet.requests[-1][2]["tailLines"] == "2"

        kubelet.requests.clear()
        code, out, _ = await anyio.to_thread.run_sync(cli, "job", "logs", "chat", "-n", namespace, "-f")
        assert code == 0
        assert sorted(out.splitlines()) == sorted(
            f"[worker-{i}] chat-worker-{i} says {n}" for i in (0, 1) for n in range(LOG_LINES)
        )
        assert all(q.get("follow") == "true" for _, _, q in kubelet.requests)
        assert len(kubelet.requests) == 2

        sdk_lines = await anyio.to_thread.run_sync(
            lambda: JobClient(cluster.kubeconfig, namespace=namespace).logs("chat", worker=0)
        )
        assert [(ln.worker, ln.pod, ln.text) for ln in sdk_lines] == [
            (0, "chat-worker-0", f"chat-worker-0 says {n}") for n in range(LOG_LINES)
        ]


def test_sync_sdk_round_trip(cluster: Cluster, crd: str, namespace: str) -> None:
    assert cluster.api is not None
    jobs = JobClient(cluster.kubeconfig, namespace=namespace)
    created = jobs.submit(build_job("sdk", image="example.invalid/t:1", command=["t.py"], nodes=2))
    assert created.metadata.uid == (held(cluster, namespace, "sdk") or {})["metadata"]["uid"]
    assert jobs.get("sdk").spec.nodes.count == 2
    assert [j.metadata.name for j in jobs.list()] == ["sdk"]
    assert jobs.suspend("sdk").spec.run_policy.suspend is True
    assert jobs.resume("sdk").spec.run_policy.suspend is False
    details = jobs.describe("sdk")
    assert details.job.metadata.name == "sdk"
    assert details.podgroup is None  # no operator here
    jobs.delete("sdk")
    assert held(cluster, namespace, "sdk") is None
