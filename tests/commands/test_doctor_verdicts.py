"""The doctor's verdicts, as pure functions of what a probe saw, and the deadline every check
runs under."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from byteleap.chain import NeuronInfo
from byteleap.commands.doctor import line
from byteleap.commands.doctor_checks import gpu, host, identity
from byteleap.commands.doctor_checks.model import Finding, blocking, bounded
from byteleap.config import ChainSettings, WalletSettings, WorkerSettings
from byteleap.worker import hardware_probe
from fake_nvml import pynvml as fake_nvml

WALLET = WalletSettings(name="m", hotkey="hk", path=Path("/keys"))
CHAIN = ChainSettings(url="http://127.0.0.1:9944", netuid=7)


def test_clock_verdicts() -> None:
    assert host.clock_verdict(0, "yes\n", "").status == "ok"
    unsynced = host.clock_verdict(0, "no\n", "")
    assert (unsynced.status, unsynced.fix) == (
        "warn",
        "sudo timedatectl set-ntp true (or run chrony / systemd-timesyncd)",
    )
    assert host.clock_verdict(None, "", "") == Finding(
        "skip", "clock", "timedatectl is not installed: cannot tell whether NTP syncs"
    )
    assert host.clock_verdict(1, "", "Failed to connect to bus\n").detail == (
        "timedatectl cannot tell (Failed to connect to bus)"
    )


def test_disk_warns_below_the_threshold() -> None:
    low = host.disk_verdict(Path("/srv/w"), 3 << 30, 20.0, "home in [worker]")
    assert line(low.for_role("worker")) == (
        "warn  worker    disk: 3.0 GiB free under /srv/w (below 20 GiB) -- fix: free space on "
        "that filesystem, or move home in [worker] to a larger one"
    )
    assert host.disk_verdict(Path("/srv/w"), 30 << 30, 20.0, "x").status == "ok"


def test_port_verdicts_name_the_setting() -> None:
    denied = host.port_verdict("rest", "0.0.0.0", 80, OSError(errno.EACCES, "x"), "port in [g]")
    assert (denied.status, denied.fix) == ("fail", "set port in [g] to a port above 1023")
    foreign = host.port_verdict("rest", "10.9.9.9", 8080, OSError(errno.EADDRNOTAVAIL, "x"), "p")
    assert foreign.detail == "10.9.9.9 is not an address of this host"


def test_a_bound_port_fails_to_bind_and_a_closed_one_is_free() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        error = host.try_bind("127.0.0.1", port)
        assert error is not None and error.errno == errno.EADDRINUSE
    assert host.try_bind("127.0.0.1", port) is None


def test_registration_verdicts_per_role() -> None:
    absent = identity.registration_verdicts("miner", CHAIN, WALLET, None, ("1.2.3.4", 8091))
    assert [(f.status, f.detail) for f in absent] == [
        ("warn", "hotkey not registered on netuid 7 (`miner run` registers it at start)")
    ]
    assert absent[0].fix == (
        "byteleap chain register --wallet m --hotkey hk --wallet-path /keys "
        "--url http://127.0.0.1:9944 --netuid 7"
    )
    # The gateway never registers itself: without it, miners refuse its calls.
    assert identity.registration_verdicts("gateway", CHAIN, WALLET, None, None)[0].status == (
        "fail"
    )
    neuron = NeuronInfo(uid=3, hotkey="h", coldkey="c", stake=0.0, axon_ip="1.2.3.4",
                        axon_port=9000, certificate="ab")  # fmt: skip
    moved = identity.registration_verdicts("miner", CHAIN, WALLET, neuron, ("1.2.3.4", 8091))
    assert [(f.check, f.status, f.detail) for f in moved] == [
        ("registered", "ok", "uid 3 on netuid 7"),
        ("axon", "warn", "published as 1.2.3.4:9000, the config says 1.2.3.4:8091"),
    ]
    unpermitted = identity.registration_verdicts("validator", CHAIN, WALLET, neuron, None)
    assert [(f.check, f.status) for f in unpermitted] == [("registered", "ok"), ("permit", "warn")]


def test_torch_verdicts() -> None:
    def reply(stdout: str, stderr: str = "") -> gpu.ChildReply:
        return gpu.ChildReply(0, stdout, stderr)

    assert gpu.torch_verdict(reply('{"torch": "2.5.0+cpu", "cuda": null}')).detail == (
        "torch 2.5.0+cpu is a CPU build"
    )
    assert gpu.torch_verdict(reply('{"missing": "No module named torch"}')).status == "fail"
    assert gpu.torch_verdict(reply('{"torch": "2.5", "cuda": "12.4"}')).detail == (
        "torch 2.5 (CUDA 12.4) sees no GPU"
    )
    good = '{"torch": "2.5", "cuda": "12.4", "sum": 262144.0, "device": "NVIDIA H100"}'
    assert gpu.torch_verdict(reply(good)) == Finding(
        "ok", "torch", "torch 2.5 (CUDA 12.4): matmul on NVIDIA H100 ok"
    )
    wrong = '{"torch": "2.5", "cuda": "12.4", "sum": 262143.0, "device": "NVIDIA H100"}'
    assert gpu.torch_verdict(reply(wrong)).status == "fail"
    assert gpu.triton_verdict(gpu.ChildReply(1, "", "ModuleNotFoundError: triton\n")).detail == (
        "cannot import triton: ModuleNotFoundError: triton"
    )


def test_nvml_through_the_workers_own_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight fake H100s (tests/fake_nvml): the worker's GPU choice decides the verdict."""
    monkeypatch.setattr(hardware_probe, "pynvml", fake_nvml)
    monkeypatch.setenv("BYTELEAP_FAKE_NVML_GPUS", "8")
    two = WorkerSettings(gpus=[2, 5])
    facts = gpu.probe_facts(two, {})
    assert [g.index for g in facts.chosen] == [2, 5] and gpu.wants_gpus(two, facts)
    assert gpu.nvml_verdict(two, facts) == Finding(
        "ok",
        "nvml",
        "driver 550.54.15 (CUDA 12.4): 8 GPU(s) (NVIDIA H100 80GB HBM3); this worker serves 2, 5",
    )
    missing = WorkerSettings(gpus=[9])
    verdict = gpu.nvml_verdict(missing, gpu.probe_facts(missing, {}))
    assert (verdict.status, verdict.detail) == (
        "fail",
        "gpus (--gpu): there is no GPU 9: this host has 8 GPUs (indices 0 to 7)",
    )
    cpu = WorkerSettings(gpus=[])
    assert gpu.nvml_verdict(cpu, gpu.probe_facts(cpu, {})).status == "skip"
    assert gpu.gpu_env(facts)["CUDA_VISIBLE_DEVICES"] == f"{fake_nvml.uuid(2)},{fake_nvml.uuid(5)}"


def test_no_driver_is_a_skip_for_a_cpu_worker_and_a_failure_for_a_gpu_one() -> None:
    facts = gpu.GpuFacts(nvml_error="NVML Shared Library Not Found")
    assert gpu.nvml_verdict(WorkerSettings(), facts) == Finding(
        "skip", "nvml", "no NVIDIA driver here (NVML: NVML Shared Library Not Found): a CPU worker"
    )
    named = gpu.nvml_verdict(WorkerSettings(gpus=[0]), facts)
    assert (named.status, named.fix) == ("fail", gpu.DRIVER_FIX)


async def test_a_check_past_its_deadline_fails_and_says_so() -> None:
    never = asyncio.Event()

    async def hangs() -> Finding:
        await never.wait()
        raise AssertionError("unreachable")

    assert await bounded("chain", hangs(), timeout_s=0.05, fix="check it") == [
        Finding("fail", "chain", "no answer in 0.05 s", "check it")
    ]


async def test_a_check_that_raises_fails_instead_of_hiding_the_others() -> None:
    def broken() -> Finding:
        raise RuntimeError("boom")

    assert await bounded("disk", blocking(broken), fix="df -h") == [
        Finding("fail", "disk", "check failed: RuntimeError: boom", "df -h")
    ]
