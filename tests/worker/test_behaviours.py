"""What the cheating workers of `devnet --cheaters` really do: multiplexing workers take turns
on one lock, a refuse-reveal worker refuses exactly the rows it did not compute, and a GPU
spoof works on a GPU-sized challenge without ever holding one."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from byteleap.net.messages import (
    AskReveal,
    ChallengeAborted,
    Committed,
    Revealed,
    RunChallenge,
    parse_worker_message,
)
from byteleap.proof import Profile, RevealRequest, issue_challenge, verify
from byteleap.proof.cheats import exact_rows, refuses, refusing_solution
from byteleap.proof.sizing import working_set_bytes
from byteleap.protocol.gpu_models import hardware_claim_problem
from byteleap.worker.behaviours import (
    HOST_BUDGET_BYTES,
    WASH_CORES,
    Behaviour,
    Overdue,
    device_turn,
    slow_card_solve,
    with_claimed_gpu,
)
from byteleap.worker.node import WorkerNode
from hardware_samples import gpu_rig

pytestmark = pytest.mark.adversarial

HOLD_S = 0.3
# One process: once told to go, wait for the lock file, hold it HOLD_S, say when it held it.
HOLDER = f"""
import sys, time
from pathlib import Path
from byteleap.worker.behaviours import device_turn
print("ready", flush=True)
sys.stdin.readline()
with device_turn(Path(sys.argv[1])):
    start = time.time()
    time.sleep({HOLD_S})
    print(start, time.time(), flush=True)
"""


def _hold_in_processes(locks: list[Path]) -> list[tuple[float, float]]:
    """Start a holder per lock, let them all go at once, return when each held its lock."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(lock)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for lock in locks
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    spans = []
    for process in processes:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        start, end = out.split()
        spans.append((float(start), float(end)))
    return sorted(spans)


def test_workers_sharing_a_device_lock_take_turns_across_processes(tmp_path: Path) -> None:
    shared = _hold_in_processes([tmp_path / "device.lock"] * 3)
    for (_, end), (start, _) in itertools.pairwise(shared):
        assert start >= end  # no two held the device at once
    # The control: with a lock each, the same processes overlap (so the check above can fail).
    apart = _hold_in_processes([tmp_path / f"own{i}.lock" for i in range(3)])
    assert any(start < end for (_, end), (start, _) in itertools.pairwise(apart))


def test_a_multiplexing_worker_solves_only_while_it_holds_the_device(tmp_path: Path) -> None:
    lock = tmp_path / "device.lock"
    spec = issue_challenge(32, Profile.CPU_F64, now=time.time(), ttl_s=60.0)
    solved: list[Any] = []
    with device_turn(lock):  # another worker of the same miner is on the device
        solver = threading.Thread(
            target=lambda: solved.append(Behaviour.MULTIPLEX.solve(spec, "numpy", lock))
        )
        solver.start()
        solver.join(timeout=0.5)
        assert solver.is_alive() and not solved
    solver.join(timeout=30)
    assert len(solved) == 1
    rows = exact_rows(spec)
    assert all(solved[0].solution.product.row_bytes(i) == rows[i].tobytes() for i in range(32))


def test_refuse_reveal_refuses_exactly_the_rows_it_did_not_compute() -> None:
    spec = issue_challenge(32, Profile.CPU_F64, now=0.0, ttl_s=60.0, products=2)
    solution, computed = refusing_solution(spec, random.Random(7))
    exact = exact_rows(spec)
    wrong = {
        i for i in range(spec.row_count) if solution.product.row_bytes(i) != exact[i].tobytes()
    }
    assert 0 < len(wrong) < spec.row_count
    for i in range(spec.row_count):
        request = RevealRequest(challenge_id=spec.challenge_id, rows=(i,), cols=(0,))
        assert refuses(request, computed) == (i in wrong)
    good = sorted(set(range(spec.row_count)) - wrong)[:8]
    mixed = (*good[:7], min(wrong))
    assert not refuses(
        RevealRequest(challenge_id=spec.challenge_id, rows=tuple(good), cols=(0,)), computed
    )
    assert refuses(RevealRequest(challenge_id=spec.challenge_id, rows=mixed, cols=(0,)), computed)


class Socket:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, text: str) -> None:
        self.sent.append(parse_worker_message(text))


async def test_a_refuse_reveal_worker_answers_computed_rows_and_aborts_the_rest(
    tmp_path: Path,
) -> None:
    node = WorkerNode(
        miner_url="wss://127.0.0.1:1/v1/worker", home=tmp_path, behaviour=Behaviour.REFUSE_REVEAL
    )
    socket = Socket()
    outcomes = {"revealed": 0, "refused": 0}
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(node.key.public_hex))

    def check(payload: bytes, signature: bytes) -> bool:
        try:
            public.verify(signature, payload)
        except InvalidSignature:
            return False
        return True

    for _ in range(2):
        for wanted in ("revealed", "refused"):
            spec = issue_challenge(16, Profile.CPU_F64, now=time.time(), ttl_s=60.0)
            await node._answer(cast(Any, socket), RunChallenge(spec=spec))
            committed = socket.sent[-1]
            assert isinstance(committed, Committed)
            computed = node.answerable[spec.challenge_id]
            rows = (
                sorted(computed)[:4] if wanted == "revealed" else [min(set(range(16)) - computed)]
            )
            request = RevealRequest(challenge_id=spec.challenge_id, rows=tuple(rows), cols=(0, 1))
            await node._answer(cast(Any, socket), AskReveal(request=request))
            answer = socket.sent[-1]
            if wanted == "revealed":
                assert isinstance(answer, Revealed)
                verdict = verify(
                    spec, committed.commitment, request, answer.reveal,
                    now=time.time(), verify_signature=check,
                )  # fmt: skip
                assert verdict.ok, verdict
            else:
                assert isinstance(answer, ChallengeAborted)
                assert answer.challenge_id == spec.challenge_id
            outcomes[wanted] += 1
    assert outcomes == {"revealed": 2, "refused": 2}
    assert node.answerable == {} and node.solutions == {}


def test_a_gpu_spoof_works_until_the_deadline_without_allocating_a_gpu_sized_product() -> None:
    spec = issue_challenge(32768, Profile.CUDA_F16, now=time.time(), ttl_s=1.0)
    assert working_set_bytes(spec.profile, spec.n, spec.products) > 16 * HOST_BUDGET_BYTES
    tracemalloc.start()
    try:
        with pytest.raises(Overdue, match=r"^[1-9]\d* of \d+ blocks done by the deadline"):
            slow_card_solve(spec, late_s=0.5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.time() >= spec.deadline + 0.5  # it gave up late, not before
    assert peak < 64 << 20  # a few blocks of rows; one n×n float64 operand alone is 8 GiB


def test_a_gpu_spoof_gives_up_at_once_when_issued_past_its_deadline() -> None:
    spec = issue_challenge(32768, Profile.CUDA_F16, now=time.time() - 10, ttl_s=1.0)
    started = time.perf_counter()
    with pytest.raises(Overdue, match=r"^0 of"):
        slow_card_solve(spec)
    assert time.perf_counter() - started < 1.0


def test_a_gpu_spoof_solves_what_its_host_can_hold() -> None:
    spec = issue_challenge(64, Profile.CPU_F64, now=time.time(), ttl_s=60.0)
    solution = slow_card_solve(spec)
    rows = exact_rows(spec)
    assert all(solution.product.row_bytes(i) == rows[i].tobytes() for i in range(64))


async def test_spoofs_report_hardware_they_do_not_have(tmp_path: Path) -> None:
    reported = {}
    for behaviour in (Behaviour.MODEL_SPOOF, Behaviour.WASH_LEASE, Behaviour.HONEST):
        node = WorkerNode(
            miner_url="wss://127.0.0.1:1/v1/worker", home=tmp_path / behaviour, behaviour=behaviour
        )
        hardware = await node._probe()
        again = await node._probe()
        assert [g.uuid for g in again.gpus] == [g.uuid for g in hardware.gpus]
        reported[behaviour] = hardware
    honest = reported[Behaviour.HONEST]
    spoof, wash = reported[Behaviour.MODEL_SPOOF], reported[Behaviour.WASH_LEASE]
    assert [(g.model, g.vram_mib) for g in spoof.gpus] == [
        *((g.model, g.vram_mib) for g in honest.gpus),
        ("NVIDIA H100 80GB HBM3", 81559),
    ]
    assert spoof.cpu == honest.cpu
    assert wash.cpu.cores_logical == WASH_CORES != honest.cpu.cores_logical
    assert wash.gpus == honest.gpus
    # A claim no server makes: the miner refuses it, the validator and the gateway ignore it.
    assert hardware_claim_problem(wash) is not None
    assert hardware_claim_problem(honest) is None


def test_a_spoofs_claimed_gpu_is_kept_by_its_key() -> None:
    # Two workers with one key (one box under two hotkeys) report one uuid; others differ.
    box = gpu_rig(1)
    a = with_claimed_gpu(box, "NVIDIA H200", 143771, "11" * 32)
    b = with_claimed_gpu(box, "NVIDIA H200", 143771, "11" * 32)
    c = with_claimed_gpu(box, "NVIDIA H200", 143771, "22" * 32)
    assert a.gpus[-1].uuid == b.gpus[-1].uuid != c.gpus[-1].uuid
    assert [g.index for g in a.gpus] == [0, 1] and a.gpus[0] == box.gpus[0]


def test_a_paced_challenge_takes_its_card_time_and_multiplexed_ones_take_turns(
    tmp_path: Path,
) -> None:
    # Every devnet worker stands for one card: at least PACE a challenge, whatever the host.
    pace = 0.3
    spec = issue_challenge(64, Profile.CPU_F64, now=time.time(), ttl_s=60)
    started = time.monotonic()
    Behaviour.HONEST.solve(spec, "numpy", tmp_path / "lock", pace)
    assert time.monotonic() - started >= pace
    # Two multiplexing workers on one lock: the second finishes a whole pace after the first.
    finished: list[float] = []

    def one() -> None:
        Behaviour.MULTIPLEX.solve(spec, "numpy", tmp_path / "lock", pace)
        finished.append(time.monotonic())

    threads = [threading.Thread(target=one) for _ in range(2)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(finished) - started >= 2 * pace
