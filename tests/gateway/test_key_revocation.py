"""A revoked key's open streams end within seconds: a followed SSE log stream ends with an
``error`` event (the SDK raises `Unauthorized`), a gRPC log stream with UNAUTHENTICATED
(reason ``key_revoked``); a stream's key is re-checked only as often as it is told, and a
re-check that fails for another reason does not end it. (Exec sessions: test_lease_exec_e2e.)"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

import byteleap.sdk as sdk
from byteleap.gateway._pb import gateway_pb2 as pb
from byteleap.gateway._pb import gateway_pb2_grpc as pb_grpc
from byteleap.gateway.errors import KeyRevoked
from byteleap.gateway.grpc_api import serve_grpc
from byteleap.gateway.key_watch import until_revoked
from byteleap.gateway.memory import InMemoryCloudService
from byteleap.gateway.port import Tenant
from byteleap.protocol.api import JobSpec
from gateway.live import ALICE_KEY, LiveGateway, tenants

pytestmark = pytest.mark.adversarial

CAROL_KEY = "carol-key-0123456789"
WITHIN_S = 5.0  # the default re-check is every 1.5 s


def _with_carol() -> InMemoryCloudService:
    service = tenants()
    service.add_tenant("carol", CAROL_KEY)
    return service


async def _running_job(service: InMemoryCloudService, key: str) -> str:
    tenant = await service.authenticate(key)
    job = await service.submit_job(tenant, JobSpec(command=["sleep", "1000"]))
    service.start(job.id)
    service.append_log(job.id, "first")
    return job.id


async def _running_job_at(live: LiveGateway, client: sdk.AsyncClient) -> str:
    job = await client.submit(JobSpec(command=["sleep", "1000"]))
    live.call(live.service.start, job.id)
    live.call(live.service.append_log, job.id, "first")
    return job.id


async def test_a_followed_sse_stream_ends_once_its_key_is_revoked() -> None:
    with LiveGateway(_with_carol()) as live:
        carol = sdk.AsyncClient(live.url, CAROL_KEY, timeout=10)
        alice = sdk.AsyncClient(live.url, ALICE_KEY, timeout=10)
        async with carol, alice:
            job_id = await _running_job_at(live, carol)
            other_id = await _running_job_at(live, alice)
            lines = carol.stream_logs(job_id)
            others = alice.stream_logs(other_id)
            assert (await anext(lines)).line == "first"
            assert (await anext(others)).line == "first"
            live.call(live.service.revoke_key, CAROL_KEY)
            revoked_at = time.monotonic()
            with pytest.raises(sdk.Unauthorized) as ended:
                await asyncio.wait_for(anext(lines), WITHIN_S)
            assert time.monotonic() - revoked_at < WITHIN_S
            assert ended.value.reason == "key_revoked"
            with pytest.raises(sdk.Unauthorized):
                await carol.get(job_id)  # and nothing new is let in
            # another tenant's stream goes on
            live.call(live.service.append_log, other_id, "still here")
            assert (await asyncio.wait_for(anext(others), WITHIN_S)).line == "still here"
            await others.aclose()


async def test_the_sse_stream_says_why_it_ended() -> None:
    with LiveGateway(_with_carol()) as live:
        async with sdk.AsyncClient(live.url, CAROL_KEY, timeout=10) as carol:
            job_id = await _running_job_at(live, carol)
        headers = {"Authorization": f"Bearer {CAROL_KEY}", "Accept": "text/event-stream"}
        async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
            url = f"/v1/jobs/{job_id}/logs?follow=true"
            async with http.stream("GET", url, headers=headers) as response:
                assert response.status_code == 200
                lines = response.aiter_lines()
                assert (await anext(lines)).startswith("id: 0")
                live.call(live.service.revoke_key, CAROL_KEY)
                rest = [line async for line in lines]
    events = [line for line in rest if line.startswith("event:")]
    assert events[-1:] == ["event: error"], rest
    assert '"status": 401' in rest[-2] and '"error": "key_revoked"' in rest[-2], rest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_grpc_log_stream_ends_once_its_key_is_revoked() -> None:
    service = _with_carol()
    job_id = await _running_job(service, CAROL_KEY)
    port = _free_port()
    server = await serve_grpc(service, "127.0.0.1", port)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GatewayStub(channel)
            request = pb.StreamJobLogsRequest(job_id=job_id, follow=True)
            metadata = (("authorization", f"Bearer {CAROL_KEY}"),)
            call = stub.StreamJobLogs(request, metadata=metadata, timeout=30)
            assert (await call.read()).entry.line == "first"
            service.revoke_key(CAROL_KEY)
            revoked_at = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await asyncio.wait_for(call.read(), WITHIN_S)
            assert time.monotonic() - revoked_at < WITHIN_S
            assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert dict(ended.value.trailing_metadata() or ())["reason"] == "key_revoked"
    finally:
        await server.stop(None)


class _Flaky(InMemoryCloudService):
    """Every re-check after the first fails with something that is not an answer."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    async def authenticate(self, api_key: str) -> Tenant:
        self.checks += 1
        if self.checks > 1:
            raise ConnectionError("the store is down")
        return await super().authenticate(api_key)


async def _forever() -> AsyncIterator[int]:
    n = 0
    while True:
        yield n
        n += 1
        await asyncio.sleep(0.05)


async def test_a_failed_recheck_is_not_a_revocation() -> None:
    service = _Flaky()
    service.add_tenant("carol", CAROL_KEY)
    await service.authenticate(CAROL_KEY)
    items = until_revoked(_forever(), service, CAROL_KEY, every_s=0.1)
    seen = [item async for item in _take(items, 12)]
    assert seen == list(range(12)) and service.checks >= 3


async def test_a_revoked_key_ends_even_a_silent_stream() -> None:
    service = _with_carol()

    async def silent() -> AsyncIterator[int]:
        await asyncio.sleep(1000)
        yield 0

    items = until_revoked(silent(), service, CAROL_KEY, every_s=0.1)
    waiting = asyncio.ensure_future(anext(items))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    service.revoke_key(CAROL_KEY)
    with pytest.raises(KeyRevoked):
        await asyncio.wait_for(waiting, 1.0)


async def _take(items: AsyncIterator[int], n: int) -> AsyncIterator[int]:
    async for item in items:
        yield item
        n -= 1
        if n == 0:
            return
