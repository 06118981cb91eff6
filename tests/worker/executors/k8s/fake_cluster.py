"""A stand-in API server for the Kubernetes executor's I/O shell, for machines without a
cluster (the live tests in ``test_live.py`` use a real one when ``KUBECONFIG`` is set).

It serves the few endpoints the executor calls, over real HTTP to the official client, and
plays kubelet for Jobs: a created Job's container command runs as a local process, its
output is the pod's log, its exit is the pod's terminated state, and deleting the Job kills
it. Every API call is recorded so tests can check what the executor asked for.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse


@dataclass
class FakePod:
    name: str
    labels: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    output: bytearray = field(default_factory=bytearray)
    exit_code: int | None = None
    deleted: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def json(self) -> dict[str, Any]:
        if self.exit_code is not None:
            state: dict[str, Any] = {"terminated": {"exitCode": self.exit_code, "reason": "Error"}}
            phase = "Succeeded" if self.exit_code == 0 else "Failed"
        elif self.process is not None:
            state, phase = {"running": {"startedAt": "2025-01-01T00:00:00Z"}}, "Running"
        else:
            state, phase = {"waiting": {"reason": "ContainerCreating"}}, "Pending"
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.name, "labels": self.labels},
            "status": {
                "phase": phase,
                "containerStatuses": [
                    {
                        "name": "main",
                        "state": state,
                        "image": "local/python",
                        "imageID": "",
                        "ready": phase == "Running",
                        "restartCount": 0,
                    }
                ],
            },
        }


class FakeCluster:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []  # (method, path, body or query)
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[str, FakePod] = {}
        self._tasks: set[asyncio.Future[None]] = set()
        self.app = FastAPI()
        self.app.add_api_route(
            "/{path:path}", self.handle, methods=["GET", "POST", "DELETE", "PATCH"]
        )

    async def handle(self, request: Request, path: str) -> Response:
        parts = path.strip("/").split("/")
        body = await request.json() if request.method in {"POST", "PATCH"} else None
        self.calls.append((request.method, "/" + path, body or dict(request.query_params)))
        kind = parts[-1] if request.method == "POST" else parts[-2]
        if request.method == "POST":
            self.objects[(kind, body["metadata"]["name"])] = body
            if kind == "jobs":
                await self._start_pod(body)
            return Response(json.dumps(body), 201, media_type="application/json")
        if request.method == "DELETE":
            name = parts[-1]
            if self.objects.pop((kind, name), None) is None:
                return Response(json.dumps({"kind": "Status", "code": 404}), 404)
            if kind == "jobs":
                await self._delete_pods(name)
            return Response(json.dumps({"kind": "Status", "status": "Success"}), 200)
        if parts[-1] == "pods" and request.query_params.get("watch") in {"true", "1", "True"}:
            window = float(request.query_params.get("timeoutSeconds", "5"))
            return StreamingResponse(self._watch(request.query_params["labelSelector"], window))
        if parts[-1] == "log":
            return StreamingResponse(self._log(self.pods[parts[-2]]))
        return Response(json.dumps({"kind": "Status", "code": 404}), 404)

    async def _start_pod(self, job: dict[str, Any]) -> None:
        template = job["spec"]["template"]
        pod = FakePod(name=f"{job['metadata']['name']}-x1", labels=template["metadata"]["labels"])
        self.pods[pod.name] = pod
        pod.process = await asyncio.create_subprocess_exec(
            *template["spec"]["containers"][0]["command"],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._tasks.add(asyncio.ensure_future(self._run(pod)))

    async def _run(self, pod: FakePod) -> None:
        assert pod.process is not None and pod.process.stdout is not None
        pod.changed.set()
        while chunk := await pod.process.stdout.read(4096):
            pod.output += chunk
            pod.changed.set()
        pod.exit_code = await pod.process.wait()
        pod.changed.set()

    async def _delete_pods(self, job: str) -> None:
        for pod in [p for p in self.pods.values() if p.name.startswith(job)]:
            if pod.process is not None and pod.exit_code is None:
                pod.process.kill()
                await pod.process.wait()
            pod.deleted = True
            pod.changed.set()

    def _matching(self, selector: str) -> list[FakePod]:
        key, _, value = selector.partition("=")
        return [p for p in self.pods.values() if p.labels.get(key) == value]

    async def _watch(self, selector: str, window_s: float) -> AsyncIterator[bytes]:
        sent: dict[str, str] = {}
        for _ in range(int(window_s / 0.02)):  # the window asked for; the client reopens
            for pod in self._matching(selector):
                kind = "DELETED" if pod.deleted else ("MODIFIED" if pod.name in sent else "ADDED")
                line = json.dumps({"type": kind, "object": pod.json()})
                if sent.get(pod.name) != line:
                    sent[pod.name] = line
                    yield (line + "\n").encode()
            await asyncio.sleep(0.02)

    async def _log(self, pod: FakePod) -> AsyncIterator[bytes]:
        offset = 0
        while True:
            if len(pod.output) > offset:
                yield bytes(pod.output[offset:])
                offset = len(pod.output)
            if pod.exit_code is not None or pod.deleted:
                return
            pod.changed.clear()
            try:
                await asyncio.wait_for(pod.changed.wait(), 0.2)
            except TimeoutError:
                pass


@contextmanager
def serve(cluster: FakeCluster) -> Iterator[str]:
    """Run ``cluster`` on a random loopback port in a thread; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(cluster.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
