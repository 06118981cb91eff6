"""Which checks each role gets, run concurrently, each under its own deadline; the findings
come back in a fixed order whatever finishes first."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence

from byteleap.commands.doctor_checks import gpu, host, identity, store
from byteleap.commands.doctor_checks.model import Finding, blocking, bounded, fail, ok, skip
from byteleap.config import (
    ConfigError,
    GatewaySettings,
    MinerSettings,
    RoleSettings,
    ValidatorSettings,
    WorkerSettings,
)

#: Free space below which the home's filesystem is a warning (job images and artifacts
#: need room on a worker and a gateway; the others keep databases and logs).
MIN_FREE_GIB = {"worker": 20.0, "gateway": 5.0, "miner": 1.0, "validator": 2.0}
TORCH_TIMEOUT_S = 45.0  # importing torch takes seconds, a first CUDA context a few more
TRITON_TIMEOUT_S = 20.0
CONTAINER_TIMEOUT_S = 10.0
STORE_TIMEOUT_S = 8.0
CHAIN_TIMEOUT_S = 12.0  # two requests of at most 5 s each

Group = Callable[[], Awaitable[list[Finding]]]


def _one(check: str, work: Callable[[], Awaitable[Finding]], fix: str, **kw: float) -> Group:
    async def run() -> list[Finding]:
        return await bounded(check, work(), fix=fix, **kw)

    return run


def _common(role: str, settings: RoleSettings) -> list[Group]:
    return [
        _one("clock", host.check_clock, "check `timedatectl status`"),
        _one(
            "disk",
            lambda: host.check_disk(settings.home, MIN_FREE_GIB[role], f"home in [{role}]"),
            "check the filesystem of home (`df -h`)",
        ),
    ]


def _port(name: str, hostname: str, port: int | None, setting: str) -> Group:
    return _one(
        f"port {name}",
        lambda: host.check_port(name, hostname, port, setting),
        f"check {setting}",
    )


def _wallet_and_chain(
    role: identity.Role,
    settings: MinerSettings | ValidatorSettings | GatewaySettings,
    axon: tuple[str, int] | None = None,
) -> Group:
    async def run() -> list[Finding]:
        facts: list[identity.WalletFacts] = []

        async def wallet() -> Finding:
            facts.append(await identity.check_wallet(settings.wallet))
            return facts[0].finding

        found = await bounded("wallet", wallet(), fix=identity.keys_new_fix(settings.wallet))
        hotkey = facts[0].hotkey_ss58 if facts else None
        return found + await bounded(
            "chain",
            identity.check_chain(role, settings.chain, settings.wallet, hotkey, axon),
            timeout_s=CHAIN_TIMEOUT_S,
            fix=f"check [{role}.chain]",
        )

    return run


def _store(role: str, url: str) -> Group:
    async def run() -> list[Finding]:
        return await bounded(
            "store",
            store.check_store(url, role),
            timeout_s=STORE_TIMEOUT_S,
            fix=f"check store.url in [{role}] and that its database answers",
        )

    return run


def miner_groups(settings: MinerSettings) -> list[Group]:
    axon = (settings.external_ip or settings.host, settings.port)
    return [
        _port("miner", settings.host, settings.port, "port in [miner]"),
        _port("metrics", "127.0.0.1", settings.metrics_port, "metrics_port in [miner]"),
        _wallet_and_chain("miner", settings, axon),
        *_common("miner", settings),
    ]


def validator_groups(settings: ValidatorSettings) -> list[Group]:
    return [
        _port("metrics", "127.0.0.1", settings.metrics_port, "metrics_port in [validator]"),
        _wallet_and_chain("validator", settings),
        _store("validator", settings.store.url),
        *_common("validator", settings),
    ]


def gateway_groups(settings: GatewaySettings) -> list[Group]:
    return [
        _listening(settings),
        _port("rest", settings.host, settings.port, "port in [gateway]"),
        _port("grpc", settings.host, settings.grpc_port or None, "grpc_port in [gateway]"),
        _wallet_and_chain("gateway", settings),
        _store("gateway", settings.store.url),
        *_common("gateway", settings),
    ]


def _listening(settings: GatewaySettings) -> Group:
    async def check() -> Finding:
        from byteleap.gateway.listening import check_listening

        try:
            await blocking(lambda: check_listening(settings))
        except ConfigError as exc:
            return fail("tls", str(exc), "set tls_cert and tls_key in [gateway] (or fix them)")
        mode = "TLS" if settings.tls_cert is not None else "plain HTTP"
        return ok("tls", f"{mode} on {settings.host}")

    return _one("tls", check, "check tls_cert / tls_key in [gateway]")


def worker_groups(settings: WorkerSettings, environ: Mapping[str, str]) -> list[Group]:
    async def gpus() -> list[Finding]:
        facts_box: list[gpu.GpuFacts] = []

        async def nvml() -> Finding:
            facts_box.append(await blocking(lambda: gpu.probe_facts(settings, environ)))
            return gpu.nvml_verdict(settings, facts_box[0])

        found = await bounded("nvml", nvml(), fix=gpu.DRIVER_FIX)
        facts = facts_box[0] if facts_box else gpu.GpuFacts(nvml_error="no answer")
        if not gpu.wants_gpus(settings, facts):
            why = gpu.gpu_skip_reason(settings, facts)
            found += [skip("torch", why), skip("triton", why)]
            if settings.executor == "container":
                found.append(skip("cdi", f"{why}: containers get no GPUs"))
            return found
        checks: list[Awaitable[list[Finding]]] = [
            bounded(
                "torch", gpu.check_torch(facts), timeout_s=TORCH_TIMEOUT_S,
                fix=gpu.CUDA_TORCH_FIX,
            ),
            bounded(
                "triton", gpu.check_triton(facts), timeout_s=TRITON_TIMEOUT_S,
                fix=gpu.TRITON_FIX,
            ),
        ]  # fmt: skip
        if settings.executor == "container":
            checks.append(
                bounded(
                    "container",
                    gpu.check_container(environ),
                    timeout_s=CONTAINER_TIMEOUT_S,
                    fix="check `podman --version` (or BYTELEAP_CONTAINER_ENGINE)",
                )
            )
        for more in await asyncio.gather(*checks):
            found += more
        return found

    return [
        gpus,
        _port("metrics", "127.0.0.1", settings.metrics_port, "metrics_port in [worker]"),
        *_common("worker", settings),
    ]


async def run_role(role: str, settings: RoleSettings) -> list[Finding]:
    """Every check of ``role``, concurrently; the findings in the plan's order."""
    groups: Sequence[Group]
    if isinstance(settings, MinerSettings):
        groups = miner_groups(settings)
    elif isinstance(settings, ValidatorSettings):
        groups = validator_groups(settings)
    elif isinstance(settings, GatewaySettings):
        groups = gateway_groups(settings)
    elif isinstance(settings, WorkerSettings):
        groups = worker_groups(settings, os.environ)
    else:
        raise ValueError(f"no checks for role {role!r}")
    results = await asyncio.gather(*(group() for group in groups))
    return [finding.for_role(role) for found in results for finding in found]
