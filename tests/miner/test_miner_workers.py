"""Miner + three CPU workers as real processes on loopback, driven as a validator would."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
from collections.abc import Callable
from typing import Any

import bittensor as bt
import httpx
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from byteleap.chain.port import NeuronInfo
from byteleap.net.auth import sign_request
from byteleap.net.errors import PinMismatch
from byteleap.net.messages import ChallengeBatch, StartChallenge, WorkerState, WorkerView
from byteleap.net.miner_client import MinerCallError, MinerClient
from byteleap.net.tls import fetch_pinned_certificate, pinned_context_for
from byteleap.proof import Profile, draw_reveal, issue_challenge, verify
from network_fixtures import miner_neuron, wait_for_workers

pytestmark = pytest.mark.slow
N = 96


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def signature_check(worker: WorkerView) -> Any:
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(worker.public_key))

    def check(payload: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, payload)
            return True
        except Exception:
            return False

    return check


async def batch_round(
    client: MinerClient, listed: list[WorkerView], ttl_s: float = 20
) -> list[tuple[str, Any]]:
    """One batch for ``listed``: each worker's verdict (or the miner's error reason), in the
    order the results arrived."""
    specs = {
        w.worker_id: issue_challenge(N, Profile.CPU_F64, now=time.time(), ttl_s=ttl_s)
        for w in listed
    }
    batch = ChallengeBatch(
        batch_id=secrets.token_hex(16),
        items=[StartChallenge(worker_id=w, spec=spec) for w, spec in specs.items()],
    )
    by_id = {w.worker_id: w for w in listed}
    arrived: list[tuple[str, Any]] = []
    reply = await client.start_batch(batch)
    while True:
        for answer in reply.results:
            if answer.commitment is None:
                arrived.append((answer.worker_id, answer.error))
                continue
            spec, received = specs[answer.worker_id], time.time()
            request = draw_reveal(spec, answer.commitment)
            reveal = await client.reveal(request, spec.n)
            check = signature_check(by_id[answer.worker_id])
            verdict = verify(
                spec, answer.commitment, request, reveal, now=received, verify_signature=check
            )
            arrived.append((answer.worker_id, verdict))
        if reply.done:
            return arrived
        reply = await client.batch_results(batch, seen=len(arrived), wait_s=5.0)


async def challenge_round(client: MinerClient, worker: WorkerView, ttl_s: float = 20) -> Any:
    ((_, verdict),) = await batch_round(client, [worker], ttl_s)
    if isinstance(verdict, str):
        raise MinerCallError(verdict, reason=verdict)
    return verdict


async def test_full_challenge_round_through_the_miner(
    network: Any, workers: dict[str, str]
) -> None:
    neuron = await miner_neuron(network)
    async with MinerClient(network.validator, neuron) as client:
        listed = {w.worker_id: w for w in (await client.workers()).workers}
        worker = listed[workers["w1"]]
        assert worker.profile == "cpu-f64" and worker.hardware.cpu.cores_logical >= 1
        verdict = await challenge_round(client, worker)
        assert verdict.ok, verdict
        assert (await client.ping()) > 0


async def test_a_hung_worker_never_delays_the_others(network: Any, workers: dict[str, str]) -> None:
    neuron = await miner_neuron(network)
    async with MinerClient(network.validator, neuron) as client:
        listed = {w.worker_id: w for w in (await client.workers()).workers}
        names = {workers[n]: n for n in ("w1", "w2", "w3")}
        started = time.monotonic()
        arrived = await batch_round(client, [listed[w] for w in names], ttl_s=8)
        took = time.monotonic() - started
        # In one batch, the honest workers' results come first, the hung one's when its
        # deadline ends, so a hung worker costs its neighbours no credit.
        assert [names[w] for w, _ in arrived[:2]] in (["w1", "w2"], ["w2", "w1"])
        assert all(v.ok for _, v in arrived[:2])
        assert arrived[2] == (workers["w3"], "timeout")
        assert took >= 6
        # The hung worker is idle again and can be challenged (and time out) again.
        await wait_for_workers(client, 3)


async def test_kill_9_marks_offline_and_fails_in_flight_with_worker_lost(
    network: Any, workers: dict[str, str]
) -> None:
    neuron = await miner_neuron(network)
    async with MinerClient(network.validator, neuron) as client:
        listed = {w.worker_id: w for w in (await client.workers()).workers}
        in_flight = asyncio.create_task(challenge_round(client, listed[workers["w3"]], ttl_s=30))
        await wait_for_workers(client, 1, WorkerState.CHALLENGED)
        network.stop("w3", signal.SIGKILL)
        with pytest.raises(MinerCallError) as info:
            await in_flight
        assert info.value.reason == "worker_lost"
        states = {w.worker_id: w.state for w in (await client.workers()).workers}
        assert states[workers["w3"]] is WorkerState.OFFLINE
        # Back with the same identity, no token needed.
        network.start_worker("w3", token=None, behaviour="honest")
        deadline = time.monotonic() + 60
        while True:
            states = {w.worker_id: w.state for w in (await client.workers()).workers}
            if states[workers["w3"]] is WorkerState.IDLE:
                break
            assert time.monotonic() < deadline, network.log("w3")
            await asyncio.sleep(0.2)
        verdict = await challenge_round(client, (await wait_for_workers(client, 3))[0])
        assert verdict.ok


async def test_a_miner_restart_keeps_worker_identities(
    network: Any, workers: dict[str, str]
) -> None:
    network.stop("miner")
    network.start_miner()
    neuron = await miner_neuron(network)
    deadline = time.monotonic() + 60
    while True:
        try:
            async with MinerClient(network.validator, neuron) as client:
                ready = await wait_for_workers(client, 3)
                break
        except MinerCallError:
            assert time.monotonic() < deadline, network.log("miner")
            await asyncio.sleep(0.3)
    assert {w.worker_id for w in ready} == set(workers.values())


# ---- bad input -----------------------------------------------------------------------


async def raw_call(
    network: Any,
    neuron: NeuronInfo,
    wallet: bt.Wallet | None,
    *,
    method: str = "GET",
    path: str = "/v1/workers",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    assert neuron.axon_ip and neuron.axon_port and neuron.certificate
    context = pinned_context_for(
        neuron.axon_ip, neuron.axon_port, bytes.fromhex(neuron.certificate)
    )
    signed = (
        sign_request(wallet, method=method, path=path, body=body, receiver=neuron.hotkey)
        if wallet is not None
        else {}
    )
    async with httpx.AsyncClient(verify=context) as http:
        return await http.request(
            method,
            f"https://{neuron.axon_ip}:{neuron.axon_port}{path}",
            content=body,
            headers={**signed, **(headers or {})},
        )


@pytest.mark.adversarial
async def test_unsigned_and_unpermitted_requests(network: Any, workers: dict[str, str]) -> None:
    neuron = await miner_neuron(network)
    unsigned = await raw_call(network, neuron, None)
    assert unsigned.status_code == 401 and unsigned.json()["error"] == "malformed_auth"
    outsider = await raw_call(network, neuron, network.outsider)
    assert outsider.status_code == 403 and outsider.json()["error"] == "not_permitted"


@pytest.mark.adversarial
async def test_replayed_and_forged_requests(network: Any, workers: dict[str, str]) -> None:
    neuron = await miner_neuron(network)
    headers = sign_request(
        network.validator, method="GET", path="/v1/workers", body=b"", receiver=neuron.hotkey
    )
    first = await raw_call(network, neuron, None, headers=headers)
    assert first.status_code == 200
    again = await raw_call(network, neuron, None, headers=headers)
    assert again.status_code == 401 and again.json()["error"] == "replayed"
    forged = sign_request(
        network.outsider, method="GET", path="/v1/workers", body=b"", receiver=neuron.hotkey
    )
    forged["X-Bittensor-Hotkey"] = network.validator.hotkey.ss58_address
    response = await raw_call(network, neuron, None, headers=forged)
    assert response.status_code == 401 and response.json()["error"] == "bad_signature"


@pytest.mark.adversarial
async def test_malformed_and_oversized_bodies(network: Any, workers: dict[str, str]) -> None:
    neuron = await miner_neuron(network)
    bad = await raw_call(
        network, neuron, network.validator, method="POST", path="/v1/challenge-batches", body=b"{]"
    )
    assert bad.status_code == 422 and bad.json()["error"] == "malformed"
    unknown = json.dumps({"type": "challenge_batch", "batch_id": "0" * 32, "items": []}).encode()
    response = await raw_call(
        network,
        neuron,
        network.validator,
        method="POST",
        path="/v1/challenge-batches",
        body=unknown,
    )
    assert response.status_code == 422
    huge = b"x" * (2 * 1024 * 1024)
    response = await raw_call(
        network, neuron, network.validator, method="POST", path="/v1/challenge-batches", body=huge
    )
    assert response.status_code == 413
    # The miner and its workers are still healthy.
    async with MinerClient(network.validator, neuron) as client:
        await wait_for_workers(client, 3)


@pytest.mark.adversarial
async def test_plain_http_and_a_wrong_pin_are_refused(
    network: Any, workers: dict[str, str]
) -> None:
    neuron = await miner_neuron(network)
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(f"http://127.0.0.1:{network.miner_port}/v1/ping")
    with pytest.raises((websockets.WebSocketException, OSError)):
        async with websockets.connect(
            f"ws://127.0.0.1:{network.miner_port}/v1/worker", open_timeout=5
        ):
            pass
    impostor_pin = bytes.fromhex(neuron.certificate or "")[:-1] + b"\x00"
    with pytest.raises(PinMismatch):
        fetch_pinned_certificate("127.0.0.1", network.miner_port, impostor_pin)


@pytest.mark.adversarial
def test_a_token_works_once(network: Any, workers: dict[str, str]) -> None:
    token = network.new_token()
    network.start_worker("w4", token)
    wait_until(lambda: (network.root / "w4" / "worker_identity.json").exists(), what="w4 enrolled")
    network.start_worker("w5", token)
    process = network.processes["w5"]
    process.wait(60)
    assert process.returncode != 0
    assert "already used" in network.log("w5") or "token" in network.log("w5")
    network.stop("w4")


def test_revoke_cuts_a_worker_off(network: Any, workers: dict[str, str]) -> None:
    token = network.new_token()
    network.start_worker("w6", token)
    identity = network.root / "w6" / "worker_identity.json"
    wait_until(identity.exists, what="w6 enrolled")
    worker_id = json.loads(identity.read_text())["worker_id"]
    result = network.miner_cli("worker", "revoke", worker_id)
    assert result.returncode == 0, result.stderr
    process = network.processes["w6"]
    process.wait(30)
    assert process.returncode != 0
    rows = json.loads(network.miner_cli("workers", "--json").stdout)
    revoked = {r["worker_id"]: r["revoked_at"] for r in rows}
    assert revoked[worker_id] is not None
    unknown = network.miner_cli("worker", "revoke", "w-ffffffffffffffff")
    assert unknown.returncode != 0 and "no worker" in unknown.stderr


def test_workers_table(network: Any, workers: dict[str, str]) -> None:
    result = network.miner_cli("workers")
    assert result.returncode == 0
    for worker_id in workers.values():
        assert worker_id in result.stdout


async def test_a_frozen_worker_goes_offline_after_missed_heartbeats_and_comes_back(
    network: Any, workers: dict[str, str]
) -> None:
    neuron = await miner_neuron(network)
    process = network.processes["w2"]
    async with MinerClient(network.validator, neuron) as client:
        await wait_for_workers(client, 3)
        os.kill(process.pid, signal.SIGSTOP)  # alive, socket open, silent
        try:
            deadline = time.monotonic() + 30
            while True:
                states = {w.worker_id: w.state for w in (await client.workers()).workers}
                if states[workers["w2"]] is WorkerState.OFFLINE:
                    break
                assert time.monotonic() < deadline, "a silent worker stayed online"
                await asyncio.sleep(0.2)
        finally:
            os.kill(process.pid, signal.SIGCONT)
        # Woken up, it finds its connection closed, reconnects and says hello again.
        await wait_for_workers(client, 3)


async def test_metrics_show_workers_and_requests(network: Any, workers: dict[str, str]) -> None:
    neuron = await miner_neuron(network)
    async with MinerClient(network.validator, neuron) as client:
        await wait_for_workers(client, 3)
    assert neuron.axon_ip and neuron.axon_port and neuron.certificate
    context = pinned_context_for(
        neuron.axon_ip, neuron.axon_port, bytes.fromhex(neuron.certificate)
    )
    async with httpx.AsyncClient(verify=context) as http:
        public = await http.get(f"https://127.0.0.1:{network.miner_port}/metrics/")
        assert public.status_code == 404  # nothing unauthenticated on the public port
        text = (await http.get(f"http://127.0.0.1:{network.miner_metrics_port}/metrics")).text
    assert 'byteleap_miner_workers{state="idle"} 3.0' in text
    assert 'byteleap_miner_requests_total{route="/v1/workers",status="200"}' in text
