"""A service's answers pass through the gateway as the replica sends them.

A real replica process streams server-sent events; the gateway's REST app, its service desk
and its proxy are real. The replica sends its later events only once the client, through the
gateway, acknowledged the first: a gateway that held the answer back could not be
acknowledged. The bounds stay: size (a stream is cut at it), the wait for the first byte,
and the tenant's key never reaches the replica.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from byteleap.sdk import AsyncClient, Client
from gateway.serving.replica_harness import Gateway, serving_gateway, spec, start_replica, until

pytestmark = pytest.mark.slow

MAX_BYTES = 10_000


def expected_events(n: int, *, acked: bool) -> bytes:
    """What stream_server.py sends: event 0 at once, the others after the ack (or not)."""
    events = [{"i": i, "acked": acked and i > 0} for i in range(n)]
    return b"".join(f"id: {e['i']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


@pytest.fixture
async def gateway(tmp_path: Path, free_port: Callable[[], int]) -> AsyncIterator[Gateway]:
    with start_replica("stream_server.py", free_port()) as endpoint:
        async with serving_gateway(
            tmp_path, free_port(), [endpoint], request_timeout_s=2.0,
            max_response_bytes=MAX_BYTES,
        ) as gw:  # fmt: skip
            yield gw


async def test_events_reach_the_client_as_the_replica_sends_them(gateway: Gateway) -> None:
    service = await gateway.ready_service(spec("sse"))
    base = f"/v1/services/{service}/invoke"
    received = b""
    async with gateway.client() as http:
        async with http.stream("GET", f"{base}/events", params={"id": "s1", "n": 5}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["transfer-encoding"] == "chunked"
            chunks = r.aiter_raw()
            while b"\n\n" not in received:
                received += await anext(chunks)
            # Only now, the first event in hand, may the replica send the others.
            assert json.loads(received.split(b"data: ")[1])["i"] == 0
            ack = await http.post(f"{base}/ack", params={"id": "s1"})
            assert ack.status_code == 200 and ack.text == "acked"
            async for chunk in chunks:
                received += chunk
    assert received == expected_events(5, acked=True)  # byte for byte, every later one acked


async def test_the_sdk_streams_an_answer_as_the_replica_sends_it(gateway: Gateway) -> None:
    """`invoke_stream`, async and blocking: the first event reaches the caller before the
    replica sends the rest (it waits for the caller's ack, sent once that event is in hand)."""
    service = await gateway.ready_service(spec("sdk-sse"))
    async with AsyncClient(gateway.url, gateway.api_key) as client:
        received = b""
        chunks = client.invoke_stream(service, "GET", "/events", params={"id": "a1", "n": 4})
        async for chunk in chunks:
            received += chunk
            if b"\n\n" in received:
                break  # the generator stays open: the rest is read below
        assert json.loads(received.split(b"data: ")[1].split(b"\n")[0])["i"] == 0
        assert (await client.invoke(service, "POST", "/ack", params={"id": "a1"})).text == "acked"
        async for chunk in chunks:
            received += chunk
    assert received == expected_events(4, acked=True)

    def blocking() -> bytes:
        with Client(gateway.url, gateway.api_key) as sync_client:
            got = b""
            stream = sync_client.invoke_stream(
                service, "GET", "/events", params={"id": "b1", "n": 3}
            )
            for chunk in stream:
                got += chunk
                if b"\n\n" in got:
                    break
            sync_client.invoke(service, "POST", "/ack", params={"id": "b1"})
            return got + b"".join(stream)

    assert await asyncio.to_thread(blocking) == expected_events(3, acked=True)


async def test_a_stream_longer_than_the_timeout_is_not_cut(gateway: Gateway) -> None:
    """The timeout (2 s) bounds each wait for the next chunk, not the whole answer."""
    service = await gateway.ready_service(spec("long"))
    base = f"/v1/services/{service}/invoke"
    async with gateway.client() as http:
        await http.post(f"{base}/ack", params={"id": "s2"})  # acked before it starts
        r = await http.get(f"{base}/events", params={"id": "s2", "n": 7, "gap": 0.6})
    assert r.status_code == 200
    assert r.content == expected_events(7, acked=True)  # 3.6 s of events, all there


async def test_the_first_byte_is_still_bounded_in_time(gateway: Gateway) -> None:
    service = await gateway.ready_service(spec("late"))
    async with gateway.client() as http:
        r = await http.get(f"/v1/services/{service}/invoke/late", params={"s": 5})
    assert r.status_code == 504 and r.json()["error"] == "gateway_timeout"


async def test_an_answer_over_the_size_bound_is_refused_or_cut(gateway: Gateway) -> None:
    service = await gateway.ready_service(spec("big"))
    base = f"/v1/services/{service}/invoke"
    async with gateway.client() as http:
        declared = await http.get(f"{base}/declared", params={"n": MAX_BYTES + 1})
        assert declared.status_code == 502  # its length said so before the first byte
        fits = await http.get(f"{base}/bytes", params={"n": MAX_BYTES})
        assert fits.status_code == 200 and fits.content == b"x" * MAX_BYTES
        cut = b""
        async with http.stream("GET", f"{base}/bytes", params={"n": 5 * MAX_BYTES}) as r:
            async for chunk in r.aiter_raw():
                cut += chunk
    assert cut == b"x" * MAX_BYTES  # the stream ends at the bound


async def test_the_tenants_key_and_hop_by_hop_headers_never_reach_the_replica(
    gateway: Gateway,
) -> None:
    service = await gateway.ready_service(spec("headers"))
    async with gateway.client() as http:
        r = await http.get(
            f"/v1/services/{service}/invoke/headers",
            headers={"x-mine": "1", "connection": "keep-alive", "te": "trailers"},
        )
    seen = r.json()
    assert seen["x-mine"] == "1"
    assert "authorization" not in seen and "te" not in seen
    assert gateway.api_key not in json.dumps(seen)


async def test_a_finished_stream_no_longer_counts_as_in_flight(gateway: Gateway) -> None:
    service = await gateway.ready_service(spec("flight"))
    async with gateway.client() as http:
        await http.post(f"/v1/services/{service}/invoke/ack", params={"id": "s3"})
        async with http.stream(
            "GET", f"/v1/services/{service}/invoke/events", params={"id": "s3", "n": 2}
        ) as r:
            await anext(r.aiter_raw())
            assert sum(x.outstanding for x in gateway.desk.replicas.values()) == 1
        # the client went away mid-stream: the replica is released all the same
    await until_idle(gateway)


async def until_idle(gateway: Gateway) -> None:
    async def idle() -> bool:
        return sum(x.outstanding for x in gateway.desk.replicas.values()) == 0

    await until("no request is in flight", idle, timeout_s=15)


async def test_a_client_that_stops_reading_holds_the_replica_back(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    """Backpressure: the gateway reads the next chunk only once the client took the last, so
    what the replica wrote stalls at a few socket buffers' worth, far below the answer."""
    total = 256 << 20
    with start_replica("stream_server.py", free_port()) as endpoint:
        async with serving_gateway(
            tmp_path, free_port(), [endpoint], max_response_bytes=total
        ) as gateway:
            service = await gateway.ready_service(spec("pressure"))
            async with gateway.client() as http:
                written = await _stalled(http, endpoint, f"/v1/services/{service}/invoke")
    # Loopback socket buffers hold a few MiB each; a gateway that buffered would take it all.
    assert written < total // 4


async def _stalled(http: httpx.AsyncClient, endpoint: str, base: str) -> int:
    """Start the answer, stop reading after its first chunk; what the replica had written
    once that stopped growing (for 2 s in a row)."""
    async with http.stream("GET", f"{base}/bytes", params={"n": 256 << 20, "chunk": 65536}) as r:
        await anext(r.aiter_raw())
        last, steady = -1, 0
        while steady < 20:
            await asyncio.sleep(0.1)
            now = int((await http.get(f"http://{endpoint}/written")).text)
            steady = steady + 1 if now == last else 0
            last = now
        return last


async def test_services_invoke_sends_a_request_and_prints_the_answer(gateway: Gateway) -> None:
    """`byteleap services invoke`, curl-like: method, body, headers and a query reach the
    replica, and its answer (here a chunked one) is printed whole."""
    service = await gateway.ready_service(spec("cli"))

    async def cli(*args: str, stdin: bytes | None = None) -> bytes:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "byteleap.cli", "services", "invoke", service, *args,
            "--gateway", gateway.url, env={**os.environ, "BYTELEAP_API_KEY": gateway.api_key},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(stdin), 60)
        assert process.returncode == 0, err.decode()
        return out

    assert await cli("/bytes?n=3000&chunk=100") == b"x" * 3000
    echoed = json.loads(
        await cli("/v1/echo", "-X", "post", "-d", "@-", "-H", "X-Mine: 1", stdin=b"hi")
    )
    assert (echoed["method"], echoed["path"], echoed["body"]) == ("POST", "/v1/echo", "hi")
    assert echoed["headers"]["x-mine"] == "1"
