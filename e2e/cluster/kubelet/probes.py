"""Readiness probes as the kubelet runs them: tcpSocket and httpGet against the pod's address, exec inside
the container's namespaces; period, timeout and success/failure thresholds as in the probe spec."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

JSON = dict[str, Any]


def _port(probe: JSON, container: JSON) -> int:
    port = probe["port"]
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    return int(port)


async def probe_once(spec: JSON, container: JSON, pod_ip: str, main_pid: int | None) -> bool:
    """One attempt of the probe; True on success."""
    timeout = float(spec.get("timeoutSeconds") or 1)
    try:
        if "tcpSocket" in spec:
            host = spec["tcpSocket"].get("host") or pod_ip
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, _port(spec["tcpSocket"], container)), timeout
            )
            writer.close()
            return True
        if "httpGet" in spec:
            get = spec["httpGet"]
            scheme = (get.get("scheme") or "HTTP").lower()
            url = f"{scheme}://{get.get('host') or pod_ip}:{_port(get, container)}{get.get('path') or '/'}"
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
            async with httpx.AsyncClient(verify=False, timeout=timeout) as client:
                resp = await client.get(url, headers=headers)
            return 200 <= resp.status_code < 400
        if "exec" in spec and main_pid is not None:
            argv = [
                "nsenter",
                "-t",
                str(main_pid),
                "-m",
                "-u",
                "-n",
                "-p",
                "-r",
                "-w",
                "--",
                *spec["exec"]["command"],
            ]
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            try:
                return await asyncio.wait_for(proc.wait(), timeout) == 0
            except TimeoutError:
                proc.kill()
                await proc.wait()
                return False
    except (OSError, TimeoutError, httpx.HTTPError):
        return False
    return False


async def run_readiness(
    spec: JSON,
    container: JSON,
    pod_ip: str,
    main_pid: Callable[[], int | None],
    report: Callable[[bool], None],
) -> None:
    """Probe forever; call `report` whenever readiness changes (it starts not ready)."""
    await asyncio.sleep(float(spec.get("initialDelaySeconds") or 0))
    period = float(spec.get("periodSeconds") or 10)
    success_needed = int(spec.get("successThreshold") or 1)
    failure_needed = int(spec.get("failureThreshold") or 3)
    ready = False
    successes = failures = 0
    while True:
        ok = await probe_once(spec, container, pod_ip, main_pid())
        successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
        if not ready and successes >= success_needed:
            ready = True
            report(True)
        elif ready and failures >= failure_needed:
            ready = False
            report(False)
        await asyncio.sleep(period)
