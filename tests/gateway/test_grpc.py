"""The gRPC API over the in-memory service, served on 127.0.0.1 and called through a real
grpc.aio channel: auth, isolation, validation, jobs, log streaming, leases, the error mapping,
and the generated code matching the .proto."""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from byteleap.gateway import errors as cloud_errors
from byteleap.gateway import protogen
from byteleap.gateway._pb import gateway_pb2 as pb
from byteleap.gateway._pb import gateway_pb2_grpc as pb_grpc
from byteleap.gateway.errors import CloudError
from byteleap.gateway.grpc_api import JOB_STATES, LEASE_STATES, serve_grpc
from byteleap.gateway.memory import InMemoryCloudService
from byteleap.gateway.port import Tenant
from byteleap.protocol.api import JobState, JobView, LeaseState, LeaseView
from gateway.live import ALICE_KEY, BOB_KEY, tenants

ALICE = (("authorization", f"Bearer {ALICE_KEY}"),)
BOB = (("authorization", f"Bearer {BOB_KEY}"),)
ECHO = json.dumps({"command": ["echo", "hi"]})
TIMEOUT_S = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gateway:
    service: InMemoryCloudService
    stub: pb_grpc.GatewayStub
    channel: grpc.aio.Channel


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    async with _served(tenants(capacity=1)) as served:
        yield served


class _served:
    """Serve ``service`` over gRPC on a free port, with a channel to it; stop both on exit."""

    def __init__(self, service: InMemoryCloudService) -> None:
        self.service = service

    async def __aenter__(self) -> Gateway:
        port = _free_port()
        self.server = await serve_grpc(self.service, "127.0.0.1", port)
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        return Gateway(self.service, pb_grpc.GatewayStub(self.channel), self.channel)

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()
        await self.server.stop(None)


async def _submit(gw: Gateway, spec: str = ECHO) -> pb.Job:
    job: pb.Job = await gw.stub.SubmitJob(
        pb.SubmitJobRequest(spec_json=spec), metadata=ALICE, timeout=TIMEOUT_S
    )
    return job


async def _error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def _trailers(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    return dict(error.trailing_metadata() or ())


# -- jobs -----------------------------------------------------------------------------------


async def test_submit_get_list_cancel(gateway: Gateway) -> None:
    stub = gateway.stub
    job = await _submit(gateway, json.dumps({"command": ["python", "-c", "1"], "env": {"A": "1"}}))
    assert job.state == pb.JOB_STATE_QUEUED
    view = JobView.model_validate_json(job.json)
    assert (view.id, view.spec.env) == (job.id, {"A": "1"})
    assert not job.HasField("exit_code") and not job.HasField("worker_id")
    got = await stub.GetJob(pb.GetJobRequest(job_id=job.id), metadata=ALICE)
    assert got == job
    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=ALICE)
    assert [j.id for j in listed.jobs] == [job.id]
    cancelled = await stub.CancelJob(pb.CancelJobRequest(job_id=job.id), metadata=ALICE)
    assert cancelled.state == pb.JOB_STATE_CANCELLED
    assert cancelled.HasField("finished_at")
    again = await _error(stub.CancelJob(pb.CancelJobRequest(job_id=job.id), metadata=ALICE))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _trailers(again)["reason"] == "conflict"


@pytest.mark.parametrize("exit_code", [0, 3])
async def test_a_finished_job_shows_its_exit_code_and_worker(
    gateway: Gateway, exit_code: int
) -> None:
    job = await _submit(gateway)
    gateway.service.finish(job.id, exit_code, ["out"])
    done = await gateway.stub.GetJob(pb.GetJobRequest(job_id=job.id), metadata=ALICE)
    assert done.HasField("exit_code") and done.exit_code == exit_code
    assert done.worker_id == "worker-0"
    assert done.state == (pb.JOB_STATE_SUCCEEDED if exit_code == 0 else pb.JOB_STATE_FAILED)
    assert JobView.model_validate_json(done.json).stdout_tail == "out\n"


async def test_idempotency_key_in_the_spec_returns_the_same_job(gateway: Gateway) -> None:
    spec = json.dumps({"command": ["true"], "idempotency_key": "k-1"})
    first, second = await _submit(gateway, spec), await _submit(gateway, spec)
    assert first.id == second.id
    assert len(gateway.service.job_ids()) == 1


async def test_list_limit_over_the_maximum_is_invalid(gateway: Gateway) -> None:
    error = await _error(gateway.stub.ListJobs(pb.ListJobsRequest(limit=1001), metadata=ALICE))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _trailers(error)["field"] == "limit"


# -- log streaming ----------------------------------------------------------------------------


async def test_log_stream_follows_appended_lines_and_ends_with_the_job(gateway: Gateway) -> None:
    service = gateway.service
    job = await _submit(gateway)
    service.start(job.id)
    service.append_log(job.id, "before")
    request = pb.StreamJobLogsRequest(job_id=job.id, follow=True)
    call = gateway.stub.StreamJobLogs(request, metadata=ALICE, timeout=TIMEOUT_S)
    seen = []
    for i in range(3):
        event = await call.read()
        assert event.WhichOneof("event") == "entry"
        seen.append(event.entry.line)
        # the next line exists only after this one arrived: it really streams
        service.append_log(job.id, f"live {i}", "stderr")
    service.finish(job.id, 0)
    rest = []
    while (event := await call.read()) is not grpc.aio.EOF:
        rest.append(event)
    assert seen == ["before", "live 0", "live 1"]
    assert [(e.entry.line, e.entry.stream, e.entry.seq) for e in rest[:-1]] == [
        ("live 2", "stderr", 3)
    ]
    assert rest[-1].WhichOneof("event") == "end"
    assert rest[-1].end.state == pb.JOB_STATE_SUCCEEDED
    assert await call.code() == grpc.StatusCode.OK


async def test_log_stream_resumes_after_a_seq_and_ends_for_a_finished_job(
    gateway: Gateway,
) -> None:
    job = await _submit(gateway)
    gateway.service.finish(job.id, 1, ["a", "b", "c"])
    request = pb.StreamJobLogsRequest(job_id=job.id, after=1, follow=True)
    events = [e async for e in gateway.stub.StreamJobLogs(request, metadata=ALICE)]
    assert [e.entry.line for e in events[:-1]] == ["b", "c"]
    assert events[-1].end.exit_code == 1


async def test_log_stream_without_follow_stops_at_the_last_line(gateway: Gateway) -> None:
    job = await _submit(gateway)
    gateway.service.append_log(job.id, "only")
    request = pb.StreamJobLogsRequest(job_id=job.id)
    events = [e async for e in gateway.stub.StreamJobLogs(request, metadata=ALICE)]
    assert [e.entry.line for e in events[:-1]] == ["only"]
    assert events[-1].end.state == pb.JOB_STATE_QUEUED


async def test_a_client_leaving_a_followed_stream_leaves_the_server_serving(
    gateway: Gateway,
) -> None:
    job = await _submit(gateway)
    gateway.service.append_log(job.id, "only")
    request = pb.StreamJobLogsRequest(job_id=job.id, follow=True)
    call = gateway.stub.StreamJobLogs(request, metadata=ALICE)
    assert (await call.read()).entry.line == "only"
    call.cancel()
    got = await gateway.stub.GetJob(pb.GetJobRequest(job_id=job.id), metadata=ALICE)
    assert got.id == job.id


# -- leases -----------------------------------------------------------------------------------


async def test_lease_create_get_list_extend_release(gateway: Gateway) -> None:
    stub = gateway.stub
    spec = json.dumps({"duration_s": 600, "resources": {"gpu_count": 2}})
    lease = await stub.CreateLease(pb.CreateLeaseRequest(spec_json=spec), metadata=ALICE)
    assert (lease.state, lease.gpu_count, lease.gpu_model) == (pb.LEASE_STATE_ACTIVE, 2, "H100")
    assert LeaseView.model_validate_json(lease.json).spec.duration_s == 600
    assert not lease.HasField("ended_at")
    got = await stub.GetLease(pb.GetLeaseRequest(lease_id=lease.id), metadata=ALICE)
    assert got.id == lease.id
    listed = await stub.ListLeases(pb.ListLeasesRequest(), metadata=ALICE)
    assert [x.id for x in listed.leases] == [lease.id]
    extend = pb.ExtendLeaseRequest(lease_id=lease.id, seconds=60)
    extended = await stub.ExtendLease(extend, metadata=ALICE)
    assert extended.ends_at == pytest.approx(lease.ends_at + 60)
    released = await stub.ReleaseLease(pb.ReleaseLeaseRequest(lease_id=lease.id), metadata=ALICE)
    assert released.state == pb.LEASE_STATE_RELEASED and released.HasField("ended_at")
    again = await _error(
        stub.ReleaseLease(pb.ReleaseLeaseRequest(lease_id=lease.id), metadata=ALICE)
    )
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_cpu_lease_has_no_gpu_model_and_no_gpus(gateway: Gateway) -> None:
    spec = json.dumps({"duration_s": 60, "resources": {"cpu_cores": 3}})
    lease = await gateway.stub.CreateLease(pb.CreateLeaseRequest(spec_json=spec), metadata=ALICE)
    assert (lease.gpu_model, lease.gpu_count) == ("", 0)
    assert LeaseView.model_validate_json(lease.json).cpu_cores == 3


async def test_no_free_worker_is_unavailable(gateway: Gateway) -> None:
    gateway.service.capacity = 0
    request = pb.CreateLeaseRequest(spec_json=json.dumps({"duration_s": 60}))
    error = await _error(gateway.stub.CreateLease(request, metadata=ALICE))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert _trailers(error)["reason"] == "no_capacity"


@pytest.mark.parametrize("seconds", [0.0, -5.0, float("inf"), float("nan")])
async def test_extending_by_a_bad_amount_is_invalid_naming_seconds(
    gateway: Gateway, seconds: float
) -> None:
    spec = json.dumps({"duration_s": 60})
    lease = await gateway.stub.CreateLease(pb.CreateLeaseRequest(spec_json=spec), metadata=ALICE)
    request = pb.ExtendLeaseRequest(lease_id=lease.id, seconds=seconds)
    error = await _error(gateway.stub.ExtendLease(request, metadata=ALICE))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _trailers(error)["field"] == "seconds"


# -- auth, isolation, validation --------------------------------------------------------------


def _calls(stub: pb_grpc.GatewayStub) -> dict[str, Any]:
    return {
        "SubmitJob": lambda md: stub.SubmitJob(pb.SubmitJobRequest(spec_json=ECHO), metadata=md),
        "GetJob": lambda md: stub.GetJob(pb.GetJobRequest(job_id="x"), metadata=md),
        "ListJobs": lambda md: stub.ListJobs(pb.ListJobsRequest(), metadata=md),
        "StreamJobLogs": lambda md: _drain(
            stub.StreamJobLogs(pb.StreamJobLogsRequest(job_id="x"), metadata=md)
        ),
        "ListLeases": lambda md: stub.ListLeases(pb.ListLeasesRequest(), metadata=md),
    }


async def _drain(call: Any) -> list[Any]:
    return [event async for event in call]


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer wrong"),), (("authorization", f"Basic {ALICE_KEY}"),)],
    ids=["missing", "wrong", "not-bearer"],
)
@pytest.mark.parametrize("rpc", ["SubmitJob", "GetJob", "ListJobs", "StreamJobLogs", "ListLeases"])
async def test_missing_or_wrong_key_is_unauthenticated(
    gateway: Gateway, metadata: Sequence[tuple[str, str]], rpc: str
) -> None:
    error = await _error(_calls(gateway.stub)[rpc](metadata))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _trailers(error)["reason"] == "unauthorized"
    assert gateway.service.job_ids() == []


@pytest.mark.adversarial
@pytest.mark.parametrize(
    ("metadata", "answered"),
    [((), "refused at once"), (ALICE, "waits for its request")],
    ids=["no-key", "alice"],
)
async def test_a_call_without_a_key_is_refused_before_its_request_is_read(
    gateway: Gateway, metadata: Sequence[tuple[str, str]], answered: str
) -> None:
    """A client that opens a SubmitJob call and never sends its request: without a key it is
    refused at once, as a slow or huge unauthenticated body would be; with one, the gateway
    waits for the request as it must (and the client gives up at its deadline)."""
    raw = gateway.channel.stream_unary("/byteleap.gateway.v1.Gateway/SubmitJob")
    never_sent = asyncio.Event()

    async def no_request() -> AsyncIterator[bytes]:
        await never_sent.wait()
        yield b""

    error = await _error(raw(no_request(), metadata=metadata, timeout=2.0))
    if answered == "refused at once":
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert _trailers(error)["reason"] == "unauthorized"
    else:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert gateway.service.job_ids() == []


async def test_another_tenants_job_and_lease_are_not_found(gateway: Gateway) -> None:
    stub = gateway.stub
    job = await _submit(gateway)
    spec = json.dumps({"duration_s": 60})
    lease = await stub.CreateLease(pb.CreateLeaseRequest(spec_json=spec), metadata=ALICE)
    for call in [
        stub.GetJob(pb.GetJobRequest(job_id=job.id), metadata=BOB),
        stub.CancelJob(pb.CancelJobRequest(job_id=job.id), metadata=BOB),
        _drain(stub.StreamJobLogs(pb.StreamJobLogsRequest(job_id=job.id), metadata=BOB)),
        _drain(
            stub.StreamJobLogs(pb.StreamJobLogsRequest(job_id=job.id, follow=True), metadata=BOB)
        ),
        stub.GetLease(pb.GetLeaseRequest(lease_id=lease.id), metadata=BOB),
        stub.ReleaseLease(pb.ReleaseLeaseRequest(lease_id=lease.id), metadata=BOB),
    ]:
        error = await _error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert _trailers(error)["reason"] == "not_found"
    assert (await stub.ListJobs(pb.ListJobsRequest(), metadata=BOB)).jobs == []
    got = await stub.GetJob(pb.GetJobRequest(job_id=job.id), metadata=ALICE)
    assert got.state == pb.JOB_STATE_QUEUED


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"command": []}, "command"),
        ({}, "command"),
        ({"command": ["x"], "resources": {"ram_mib": 1}}, "resources.ram_mib"),
        ({"command": ["x"], "timeout_s": -1}, "timeout_s"),
        ({"command": ["x"], "inputs": {"../escape": {"content": ""}}}, "inputs"),
        ({"command": ["x"], "surprise": 1}, "surprise"),
        ({"command": "echo hi"}, "command"),
        ({"command": ["x"], "network": "none"}, "spec_json"),  # a rule across fields
        ([1, 2], "spec_json"),
        ("{not json", "spec_json"),
    ],
)
async def test_invalid_spec_is_invalid_argument_naming_the_field(
    gateway: Gateway, spec: Any, field: str
) -> None:
    text = spec if isinstance(spec, str) else json.dumps(spec)
    error = await _error(
        gateway.stub.SubmitJob(pb.SubmitJobRequest(spec_json=text), metadata=ALICE)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _trailers(error) == {"reason": "invalid_spec", "field": field}
    assert field in (error.details() or "")
    assert gateway.service.job_ids() == []


async def test_invalid_lease_spec_names_the_field(gateway: Gateway) -> None:
    request = pb.CreateLeaseRequest(spec_json=json.dumps({"duration_s": 1}))
    error = await _error(gateway.stub.CreateLease(request, metadata=ALICE))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _trailers(error)["field"] == "duration_s"


# -- the error mapping ------------------------------------------------------------------------


class _Raising(InMemoryCloudService):
    """A service whose job lookups raise ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def get_job(self, tenant: Tenant, job_id: str) -> Any:
        raise self.error


def _cloud_error_classes() -> list[type[CloudError]]:
    found, todo = [], [CloudError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


def test_the_walk_finds_every_error_in_the_tree() -> None:
    declared = {
        c for c in vars(cloud_errors).values() if isinstance(c, type) and issubclass(c, CloudError)
    }
    assert declared <= set(_cloud_error_classes())


@pytest.mark.parametrize("cls", _cloud_error_classes(), ids=lambda c: c.__name__)
async def test_every_cloud_error_maps_to_its_grpc_code(cls: type[CloudError]) -> None:
    error = (
        cls("boom", field="resources.gpu_count") if cls is cloud_errors.InvalidSpec else cls("boom")
    )
    service = _Raising(error)
    service.add_tenant("alice", ALICE_KEY)
    async with _served(service) as gw:
        failed = await _error(gw.stub.GetJob(pb.GetJobRequest(job_id="j"), metadata=ALICE))
    assert failed.code() == getattr(grpc.StatusCode, cls.grpc_code)
    assert failed.details() == "boom"
    expected = {"reason": cls.reason}
    if cls is cloud_errors.InvalidSpec:
        expected["field"] = "resources.gpu_count"
    assert _trailers(failed) == expected


async def test_an_unexpected_error_is_internal_and_hides_its_message() -> None:
    service = _Raising(RuntimeError("secret detail"))
    service.add_tenant("alice", ALICE_KEY)
    async with _served(service) as gw:
        failed = await _error(gw.stub.GetJob(pb.GetJobRequest(job_id="j"), metadata=ALICE))
    assert failed.code() == grpc.StatusCode.INTERNAL
    assert failed.details() == "internal error"


def test_every_state_has_its_own_proto_value() -> None:
    job_values = set(pb.JobState.values()) - {pb.JOB_STATE_UNSPECIFIED}
    lease_values = set(pb.LeaseState.values()) - {pb.LEASE_STATE_UNSPECIFIED}
    assert sorted(JOB_STATES.values()) == sorted(job_values)
    assert sorted(LEASE_STATES.values()) == sorted(lease_values)
    assert set(JOB_STATES) == set(JobState) and set(LEASE_STATES) == set(LeaseState)


# -- generated code ---------------------------------------------------------------------------


def test_the_generated_code_matches_the_proto(tmp_path: Path) -> None:
    written = protogen.generate(tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["__init__.py", "gateway_pb2.py", "gateway_pb2.pyi", "gateway_pb2_grpc.py"]
    for name in names:
        assert (tmp_path / name).read_text() == (protogen.PB_DIR / name).read_text(), name
    assert protogen.drift() == []
    assert "from byteleap.gateway" not in (tmp_path / "gateway_pb2_grpc.py").read_text()


def test_drift_names_an_edited_or_stale_file(tmp_path: Path) -> None:
    protogen.generate(tmp_path)
    (tmp_path / "gateway_pb2.py").write_text("# edited\n")
    (tmp_path / "old_pb2.py").write_text("")
    assert protogen.drift(tmp_path) == ["gateway_pb2.py", "old_pb2.py"]
    protogen.generate(tmp_path)
    assert protogen.drift(tmp_path) == []
    assert not (tmp_path / "old_pb2.py").exists()


def test_missing_generated_code_says_how_to_generate_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "byteleap.gateway._pb", None)
    monkeypatch.delitem(sys.modules, "byteleap.gateway.grpc_api")
    monkeypatch.delitem(sys.modules, "byteleap.gateway.grpc_common")
    with pytest.raises(ImportError, match=r"python -m byteleap\.gateway\.protogen"):
        importlib.import_module("byteleap.gateway.grpc_api")
