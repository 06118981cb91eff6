"""The SDK against a real gateway (uvicorn on loopback over the in-memory service): both
clients, every error class it promises, and its SSE parser."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import byteleap.sdk as sdk
from byteleap.gateway import errors as cloud_errors
from byteleap.gateway.rest import create_rest_app
from byteleap.gateway.sse import log_event
from byteleap.protocol.api import LogEntry
from byteleap.sdk import AsyncClient, Client, JobSpec, JobState
from byteleap.sdk.errors import ApiError, error_for_status
from byteleap.sdk.sse import EventParser
from gateway.live import ALICE_KEY, BOB_KEY, LiveGateway, tenants

ECHO = JobSpec(command=["echo", "hi"])


@pytest.fixture
def live() -> Iterator[LiveGateway]:
    with LiveGateway(tenants(), max_body_bytes=16 << 10) as gateway:
        yield gateway


@pytest.fixture
async def alice(live: LiveGateway) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(live.url, ALICE_KEY, timeout=10) as client:
        yield client


def test_public_api_is_pinned() -> None:
    assert sorted(sdk.__all__) == [
        "ApiError", "ArtifactListing", "ArtifactView", "AsyncClient", "BadResponse", "Balance",
        "Client", "Conflict", "GatewayUnreachable", "InputFile", "InvalidRequest", "JobEstimate",
        "JobSpec", "JobState", "JobView", "LeaseSpec", "LeaseState", "LeaseView", "LogEntry",
        "NotFound", "PayloadTooLarge", "PaymentRequired", "Prices", "QuotaExceeded",
        "RejectedArtifact", "Resources", "SdkError", "ServiceSpec", "ServiceState", "ServiceView",
        "Unauthorized", "Unavailable", "Usage", "WaitTimedOut", "format_amount", "format_rate",
    ]  # fmt: skip
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None


def test_every_gateway_error_status_has_its_own_class() -> None:
    for cls in vars(cloud_errors).values():
        if isinstance(cls, type) and issubclass(cls, cloud_errors.CloudError):
            if cls is cloud_errors.CloudError:
                continue
            error = error_for_status(cls.status, cls.reason, "d")
            assert type(error) is not ApiError, cls
            assert (error.status, error.reason) == (cls.status, cls.reason)
    assert type(error_for_status(418, "teapot", "d")) is ApiError


async def test_submit_get_list_cancel_logs_wait(alice: AsyncClient, live: LiveGateway) -> None:
    job = await alice.submit(ECHO)
    assert job.state is JobState.QUEUED
    from_dict = await alice.submit({"command": ["true"], "env": {"A": "1"}})
    assert from_dict.spec.env == {"A": "1"}
    assert (await alice.get(job.id)).id == job.id
    assert {j.id for j in await alice.list()} == {job.id, from_dict.id}
    assert (await alice.cancel(from_dict.id)).state is JobState.CANCELLED
    live.call(live.service.finish, job.id, 0, ["one", "two", "three"])
    assert [e.line for e in await alice.logs(job.id)] == ["one", "two", "three"]
    assert [e.seq for e in await alice.logs(job.id, after=2)] == [2]
    done = await alice.wait(job.id, timeout_s=5, poll_s=0.01)
    assert (done.state, done.exit_code, done.stdout_tail) == ("succeeded", 0, "one\ntwo\nthree\n")


async def test_logs_fetches_every_page(alice: AsyncClient, live: LiveGateway) -> None:
    job = await alice.submit(ECHO)
    live.call(live.service.finish, job.id, 0, [str(i) for i in range(2500)])
    entries = await alice.logs(job.id)
    assert [e.seq for e in entries] == list(range(2500))


async def test_logs_fetches_pages_cut_short_by_their_size(
    alice: AsyncClient, live: LiveGateway
) -> None:
    job = await alice.submit(ECHO)
    live.call(live.service.finish, job.id, 0, ["w" * 60_000 for _ in range(50)])  # 3 MB
    entries = await alice.logs(job.id)
    assert [e.seq for e in entries] == list(range(50))


async def test_idempotency_key_returns_the_same_job(alice: AsyncClient) -> None:
    first = await alice.submit(ECHO, idempotency_key="once")
    again = await alice.submit(ECHO, idempotency_key="once")
    assert first.id == again.id
    assert len(await alice.list()) == 1


async def test_stream_logs_yields_lines_as_they_come(alice: AsyncClient, live: LiveGateway) -> None:
    job = await alice.submit(ECHO)
    live.call(live.service.start, job.id)
    live.call(live.service.append_log, job.id, "first")
    seen: list[LogEntry] = []
    async for entry in alice.stream_logs(job.id):
        seen.append(entry)
        if len(seen) < 3:
            live.call(live.service.append_log, job.id, f"after {entry.seq}", "stderr")
        else:
            live.call(live.service.finish, job.id, 1)
    assert [(e.seq, e.line) for e in seen] == [(0, "first"), (1, "after 0"), (2, "after 1")]
    assert seen[1].stream == "stderr"
    assert (await alice.get(job.id)).state is JobState.FAILED


async def test_errors_are_typed(alice: AsyncClient, live: LiveGateway) -> None:
    job = await alice.submit(ECHO)
    async with AsyncClient(live.url, "wrong-key") as stranger:
        with pytest.raises(sdk.Unauthorized) as unauthorized:
            await stranger.list()
    assert unauthorized.value.status == 401
    async with AsyncClient(live.url, BOB_KEY) as bob:
        with pytest.raises(sdk.NotFound):
            await bob.get(job.id)
        with pytest.raises(sdk.NotFound):
            async for _ in bob.stream_logs(job.id):
                pass
    with pytest.raises(sdk.InvalidRequest) as invalid:
        await alice.submit({"command": ["x"], "resources": {"gpu_count": -1}})
    assert (invalid.value.field, invalid.value.reason) == ("resources.gpu_count", "invalid_spec")
    with pytest.raises(sdk.PayloadTooLarge):
        await alice.submit({"command": ["x"], "env": {"PAD": "x" * (20 << 10)}})
    live.call(live.service.finish, job.id, 0)
    with pytest.raises(sdk.Conflict):
        await alice.cancel(job.id)
    with pytest.raises(sdk.NotFound):
        await alice.get("no/such job?")  # quoted into one path segment, not a new route


async def test_wait_times_out(alice: AsyncClient) -> None:
    job = await alice.submit(ECHO)
    with pytest.raises(sdk.WaitTimedOut):
        await alice.wait(job.id, timeout_s=0.05, poll_s=0.01)


async def test_unreachable_gateway() -> None:
    with _silent_port() as port:
        async with AsyncClient(f"http://127.0.0.1:{port}", ALICE_KEY, timeout=2) as client:
            with pytest.raises(sdk.GatewayUnreachable):
                await client.list()


async def test_non_api_answer_is_a_bad_response() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>a proxy page</html>")

    transport = httpx.MockTransport(handler)
    async with AsyncClient("http://gw", ALICE_KEY, transport=transport) as client:
        with pytest.raises(sdk.BadResponse):
            await client.get("j")


async def test_in_process_transport() -> None:
    app = create_rest_app(tenants())
    async with AsyncClient("http://gw", ALICE_KEY, transport=httpx.ASGITransport(app)) as c:
        job = await c.submit(ECHO)
        assert (await c.get(job.id)).id == job.id


def test_sync_client_wraps_the_async_one(live: LiveGateway) -> None:
    with Client(live.url, ALICE_KEY, timeout=10) as client:
        job = client.submit({"command": ["echo"]}, idempotency_key="k")
        assert client.submit(ECHO, idempotency_key="k").id == job.id
        assert [j.id for j in client.list()] == [job.id]
        live.call(live.service.start, job.id)
        live.call(live.service.append_log, job.id, "hello")
        lines = client.stream_logs(job.id)
        assert next(lines).line == "hello"
        live.call(live.service.finish, job.id, 0, ["bye"])
        assert [e.line for e in lines] == ["bye"]
        assert [e.line for e in client.logs(job.id)] == ["hello", "bye"]
        assert client.wait(job.id, timeout_s=5, poll_s=0.01).exit_code == 0
        with pytest.raises(sdk.Conflict):
            client.cancel(job.id)


def test_sync_stream_abandoned_midway_closes_cleanly(live: LiveGateway) -> None:
    with Client(live.url, ALICE_KEY, timeout=10) as client:
        job = client.submit(ECHO)
        live.call(live.service.append_log, job.id, "a")
        lines = client.stream_logs(job.id)
        assert next(lines).line == "a"
        lines.close()  # the job is still queued: the stream would follow forever
        assert client.get(job.id).state is JobState.QUEUED


async def test_sync_client_works_inside_a_running_loop(live: LiveGateway) -> None:
    with Client(live.url, ALICE_KEY) as client:
        assert client.list() == []
    await asyncio.sleep(0)


# -- the SSE parser ------------------------------------------------------------------------


def test_parser_joins_data_lines_and_skips_comments() -> None:
    parser = EventParser()
    lines = [": keep-alive", "", "event: log", "id: 7", "data: a", "data:b", "", "x"]
    events = [e for e in map(parser.feed, lines) if e is not None]
    assert [(e.event, e.id, e.data) for e in events] == [("log", "7", "a\nb")]


@given(st.text(), st.sampled_from(["stdout", "stderr"]), st.integers(0, 2**40))
def test_what_the_gateway_frames_the_sdk_parses_back(line: str, stream: str, seq: int) -> None:
    entry = LogEntry(seq=seq, stream=stream, line=line, ts=1.5)  # type: ignore[arg-type]
    parser = EventParser()
    events = [e for e in map(parser.feed, log_event(entry).split("\n")) if e is not None]
    assert len(events) == 1
    assert events[0].id == str(seq)
    assert LogEntry.model_validate_json(events[0].data) == entry


@contextmanager
def _silent_port() -> Iterator[int]:
    """A loopback port with nothing listening: bound, so no one takes it, but never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


async def test_artifacts_are_listed_and_downloaded_with_their_sha256_checked(
    live: LiveGateway, alice: AsyncClient, tmp_path: Path
) -> None:
    job = await alice.submit({"command": ["train"]})
    live.call(live.service.finish, job.id, 0)
    live.call(live.service.add_artifact, job.id, "ckpt/model.pt", b"weights" * 1000)
    listing = await alice.artifacts(job.id)
    assert [(a.path, a.size) for a in listing.artifacts] == [("ckpt/model.pt", 7000)]
    (saved,) = await alice.download_artifacts(job.id, tmp_path)
    assert saved == tmp_path / "ckpt" / "model.pt" and saved.read_bytes() == b"weights" * 1000
    assert sorted(p.name for p in await asyncio.to_thread(tmp_path.rglob, "*")) == [
        "ckpt", "model.pt"
    ]  # fmt: skip
    with pytest.raises(sdk.BadResponse):  # never written outside the directory
        await alice.download_artifact(job.id, "../escape", tmp_path)
    async with AsyncClient(live.url, BOB_KEY, timeout=10) as bob:
        with pytest.raises(sdk.NotFound):
            await bob.artifacts(job.id)
