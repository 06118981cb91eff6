"""Artifact routes over the in-memory service: listing, download, isolation, traversal."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest

from byteleap.gateway.memory import InMemoryCloudService
from byteleap.gateway.rest import create_rest_app
from gateway.live import ALICE_KEY, BOB_KEY, tenants

ALICE = {"Authorization": f"Bearer {ALICE_KEY}"}
BOB = {"Authorization": f"Bearer {BOB_KEY}"}


@pytest.fixture
def service() -> InMemoryCloudService:
    return tenants()


@pytest.fixture
async def api(service: InMemoryCloudService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_rest_app(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw") as c:
        yield c


async def _finished_job(api: httpx.AsyncClient, service: InMemoryCloudService) -> str:
    response = await api.post("/v1/jobs", json={"command": ["true"]}, headers=ALICE)
    job_id = str(response.json()["id"])
    service.finish(job_id, 0)
    service.add_artifact(job_id, "model/weights.bin", b"\x00\x01" * 1000)
    service.add_artifact(job_id, "report.txt", b"done\n")
    service.reject_artifact(job_id, "huge.bin", 10**9, "over the job's artifact limit")
    return job_id


async def test_listing_names_stored_and_rejected_files(
    api: httpx.AsyncClient, service: InMemoryCloudService
) -> None:
    job_id = await _finished_job(api, service)
    listing = (await api.get(f"/v1/jobs/{job_id}/artifacts", headers=ALICE)).json()
    assert listing["job_id"] == job_id
    assert [(a["path"], a["size"]) for a in listing["artifacts"]] == [
        ("model/weights.bin", 2000),
        ("report.txt", 5),
    ]
    assert listing["artifacts"][1]["sha256"] == hashlib.sha256(b"done\n").hexdigest()
    assert listing["rejected"] == [
        {"path": "huge.bin", "size": 10**9, "reason": "over the job's artifact limit"}
    ]


async def test_download_streams_the_bytes_with_their_sha256(
    api: httpx.AsyncClient, service: InMemoryCloudService
) -> None:
    job_id = await _finished_job(api, service)
    response = await api.get(f"/v1/jobs/{job_id}/artifacts/model/weights.bin", headers=ALICE)
    assert response.status_code == 200
    assert response.content == b"\x00\x01" * 1000
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-sha256"] == hashlib.sha256(response.content).hexdigest()
    assert response.headers["content-length"] == "2000"


@pytest.mark.adversarial
async def test_another_tenants_artifacts_are_404(
    api: httpx.AsyncClient, service: InMemoryCloudService
) -> None:
    job_id = await _finished_job(api, service)
    for path in (f"/v1/jobs/{job_id}/artifacts", f"/v1/jobs/{job_id}/artifacts/report.txt"):
        response = await api.get(path, headers=BOB)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
    assert (await api.get(f"/v1/jobs/{job_id}/artifacts")).status_code == 401


@pytest.mark.adversarial
@pytest.mark.parametrize(
    "path", ["..%2Fsecret", "a/..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "a//b", ".%2Freport.txt"]
)
async def test_paths_that_leave_the_artifacts_dir_are_refused(
    api: httpx.AsyncClient, service: InMemoryCloudService, path: str
) -> None:
    job_id = await _finished_job(api, service)
    response = await api.get(f"/v1/jobs/{job_id}/artifacts/{path}", headers=ALICE)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "path"


async def test_a_missing_artifact_is_404(
    api: httpx.AsyncClient, service: InMemoryCloudService
) -> None:
    job_id = await _finished_job(api, service)
    response = await api.get(f"/v1/jobs/{job_id}/artifacts/huge.bin", headers=ALICE)
    assert response.status_code == 404
