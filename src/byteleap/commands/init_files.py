"""What `byteleap init` writes, as text: a role's commented TOML config and its systemd units.

Pure: no prompts, no keys, no files. Every key written is a field of the role's settings class
in `byteleap.config` (the written file loads through `load_settings`, which the tests check),
and defaults not chosen here are left to those classes rather than copied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from byteleap.config import GatewaySettings

Role = Literal["miner", "worker", "validator", "gateway"]
ROLE_NAMES: tuple[Role, ...] = ("miner", "worker", "validator", "gateway")

#: Where each role listens unless told: a miner must be reachable by validators; a gateway
#: stays on loopback behind a TLS reverse proxy unless it is given a certificate.
DEFAULT_HOST: dict[str, str] = {"miner": "0.0.0.0", "gateway": "127.0.0.1"}
DEFAULT_PORT: dict[str, int] = {"miner": 8091, "gateway": 8080}
DEFAULT_PRICE_PER_GPU_S: dict[str, float] = dict(
    GatewaySettings.model_fields["price_per_gpu_s"].default
)
DEFAULT_PRICE_PER_CPU_S: float = GatewaySettings.model_fields["price_per_cpu_s"].default
DEFAULT_CURRENCY: str = GatewaySettings.model_fields["currency"].default


@dataclass(frozen=True)
class ChainChoice:
    adapter: Literal["bittensor", "local"]
    netuid: int
    network: str = "finney"  # bittensor: a network name or ws(s):// endpoint
    url: str | None = None  # local: the devnet chain's http(s) URL


@dataclass(frozen=True)
class WalletChoice:
    name: str
    hotkey: str
    path: Path


@dataclass(frozen=True)
class InitAnswers:
    """Everything a role's config needs; fields a role does not use stay at their defaults."""

    role: Role
    home: Path
    log_level: str = "INFO"
    chain: ChainChoice | None = None
    wallet: WalletChoice | None = None
    store_url: str | None = None
    host: str | None = None
    port: int | None = None
    external_ip: str | None = None
    miner_url: str | None = None
    token: str | None = None
    gpus: list[int] | None = None
    executor: str = "process"
    grpc_port: int = 50051
    tls_cert: Path | None = None
    tls_key: Path | None = None
    currency: str = DEFAULT_CURRENCY
    price_per_gpu_s: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICE_PER_GPU_S))
    price_per_cpu_s: float = DEFAULT_PRICE_PER_CPU_S

    @property
    def role_home(self) -> Path:
        # A worker keeps its own key and enrollment; one per GPU gets its own folder beside it.
        return self.home / "worker" if self.role == "worker" else self.home

    @property
    def effective_store_url(self) -> str:
        # The gateway reads and writes the validator's store: on one host, the same file.
        return self.store_url or f"sqlite+aiosqlite:///{self.home / 'validator.db'}"


def toml_value(value: object) -> str:
    """A TOML literal for a str, Path, bool, int, float or list of ints."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    # A JSON string is a TOML basic string (same escapes, \uXXXX included).
    return json.dumps(str(value))


def _line(key: str, value: object, comment: str = "") -> str:
    text = f"{key} = {toml_value(value)}"
    return f"{text}  # {comment}" if comment else text


def _wallet_table(role: str, wallet: WalletChoice) -> list[str]:
    return [
        "",
        "# The bittensor wallet (btcli layout). Only the hotkey is read at run time; keep the",
        "# coldkey encrypted, or better, on another machine.",
        f"[{role}.wallet]",
        _line("name", wallet.name),
        _line("hotkey", wallet.hotkey),
        _line("path", wallet.path),
    ]


def _chain_table(role: str, chain: ChainChoice) -> list[str]:
    lines = ["", f"[{role}.chain]"]
    if chain.adapter == "bittensor":
        lines += [
            _line("adapter", "bittensor", "the real chain, through the bittensor SDK"),
            _line("network", chain.network, "finney (main), test, archive, local or ws(s)://"),
        ]
    else:
        lines += [
            _line("adapter", "local", "the devnet chain of `byteleap chain serve`"),
            _line("url", chain.url or "http://127.0.0.1:9944"),
        ]
    lines.append(_line("netuid", chain.netuid, "the subnet this node serves"))
    return lines


def _store_table(role: str, answers: InitAnswers) -> list[str]:
    return [
        "",
        f"[{role}.store]",
        "# sqlite+aiosqlite:///FILE for one host; postgresql+asyncpg://USER@HOST/DB for",
        "# replicated gateways (run `byteleap db upgrade` against it first).",
        _line("url", answers.effective_store_url),
    ]


def render_config(answers: InitAnswers, *, written_by: str) -> str:
    """The commented TOML for ``answers.role``; one ``[role]`` table and its sub-tables."""
    role = answers.role
    head = [
        f"# byteleap {role} configuration, written by `{written_by}`.",
        "# Every key is a field of the role's settings (byteleap/config.py); anything not set",
        "# here keeps its default. BYTELEAP_* environment variables override this file",
        "# (nested keys with __, e.g. BYTELEAP_CHAIN__NETUID). Check it with",
        f"# `byteleap config show --role {role} --config THIS_FILE`.",
        "",
        f"[{role}]",
        _line("home", answers.role_home, "state: keys, databases, job logs"),
        _line("log_level", answers.log_level, "DEBUG, INFO, WARNING or ERROR"),
    ]
    body: list[str] = []
    if role == "miner":
        body += [
            _line("host", answers.host or DEFAULT_HOST["miner"], "address the HTTPS axon binds"),
            _line("port", answers.port or DEFAULT_PORT["miner"]),
        ]
        if answers.external_ip:
            body.append(_line("external_ip", answers.external_ip, "published as the axon"))
        else:
            body.append('# external_ip = "203.0.113.7"  # published as the axon (default: host)')
    elif role == "worker":
        body += [
            _line("miner_url", answers.miner_url or "", "the miner's worker endpoint (wss://)"),
            _line("executor", answers.executor, "process, container or kubernetes"),
        ]
        if answers.token:
            body.append(_line("token", answers.token, "one-time enrollment token"))
        else:
            body.append('# token = "..."  # one-time: `byteleap miner token new` on the miner')
        if answers.gpus is not None:
            body.append(_line("gpus", answers.gpus, "nvidia-smi indices this worker serves"))
        else:
            body.append("# gpus = [0]  # nvidia-smi indices this worker serves (default: all)")
    elif role == "gateway":
        body += [
            _line("host", answers.host or DEFAULT_HOST["gateway"], "REST (and the dashboard)"),
            _line("port", answers.port or DEFAULT_PORT["gateway"]),
        ]
        body.append(_line("grpc_port", answers.grpc_port, "gRPC (0 switches it off)"))
        if answers.tls_cert and answers.tls_key:
            body += [
                _line("tls_cert", answers.tls_cert, "PEM chain: REST and gRPC serve TLS"),
                _line("tls_key", answers.tls_key),
            ]
        else:
            body.append('# tls_cert = "/etc/byteleap/cert.pem"  # with tls_key: serve TLS')
        body += [
            "# Every balance, price and receipt is in this unit; all gateways of a network",
            "# must name the same one. Amounts count to 6 decimals.",
            _line("currency", answers.currency),
            _line("price_per_cpu_s", answers.price_per_cpu_s, f"{answers.currency} per core-s"),
        ]
    tables: list[str] = []
    if role in ("miner", "validator", "gateway"):
        assert answers.wallet is not None and answers.chain is not None
        tables += _wallet_table(role, answers.wallet) + _chain_table(role, answers.chain)
    if role in ("validator", "gateway"):
        tables += _store_table(role, answers)
    if role == "gateway":
        tables += [
            "",
            f"# {answers.currency} per second for one GPU of each model.",
            f"[{role}.price_per_gpu_s]",
        ]
        tables += [
            f"{json.dumps(model)} = {toml_value(float(price))}  # {answers.currency}/GPU-s"
            for model, price in sorted(answers.price_per_gpu_s.items())
        ]
    return "\n".join(head + body + tables) + "\n"


def uses_postgresql(answers: InitAnswers) -> bool:
    return answers.role in ("validator", "gateway") and answers.effective_store_url.startswith(
        "postgresql"
    )


# Services with no GPU: the whole set. ProtectHome=read-only still lets them read the wallet
# under ~/.bittensor; the home is the one place they write.
_STRICT = """NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={home}
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK"""

# A worker needs /dev/nvidia* (so no PrivateDevices, DevicePolicy or ProtectClock, which
# implies a device allow-list), nvidia-modprobe and rootless podman's setuid helpers (so no
# NoNewPrivileges or RestrictSUIDSGID), and its container runtime's cgroups, namespaces and
# storage under the home (so no ProtectControlGroups, RestrictNamespaces or ProtectHome).
_GPU_SAFE = """ProtectSystem=full
RestrictRealtime=yes
LockPersonality=yes"""


def systemd_quote(arg: str) -> str:
    """One ExecStart argument: ``%`` escaped (systemd specifiers), quoted when it has spaces."""
    arg = arg.replace("%", "%%")
    if any(c.isspace() for c in arg) or '"' in arg or "\\" in arg:
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def render_unit(
    answers: InitAnswers,
    *,
    executable: Path,
    config_path: Path,
    user: str,
    gpu: int | None = None,
) -> str:
    """A systemd service for the role (for a worker with ``gpu``: the one serving that GPU)."""
    role = answers.role
    args = [str(executable), role] if role == "worker" else [str(executable), role, "run"]
    args += ["--config", str(config_path)]
    what = f"byteleap {role}"
    home = answers.role_home
    if gpu is not None:
        home = answers.home / f"worker-gpu{gpu}"
        args += ["--gpu", str(gpu), "--home", str(home)]
        what += f" on GPU {gpu}"
    after = "network-online.target" + (" postgresql.service" if uses_postgresql(answers) else "")
    hardening = (_GPU_SAFE if role == "worker" else _STRICT).format(home=systemd_quote(str(home)))
    environment = "Environment=PYTHONUNBUFFERED=1"
    if role != "worker":
        # The SDK caches chain metadata under ~/.bittensor, read-only here: keep it in the home.
        cache = systemd_quote(f"BITTENSOR_RUNTIME_CACHE_DIR={home / 'bittensor-cache'}")
        environment += f"\nEnvironment={cache}"
    return f"""# {what}: written by `byteleap init {role}`. Install with
#   sudo cp THIS_FILE /etc/systemd/system/ && sudo systemctl daemon-reload
#   sudo systemctl enable --now {unit_name(role, gpu)}
[Unit]
Description={what}
Wants=network-online.target
After={after}

[Service]
Type=simple
User={user}
{environment}
ExecStart={" ".join(systemd_quote(a) for a in args)}
Restart=on-failure
RestartSec=5
LimitNOFILE=65536
{hardening}

[Install]
WantedBy=multi-user.target
"""


def unit_name(role: str, gpu: int | None = None) -> str:
    return f"byteleap-{role}.service" if gpu is None else f"byteleap-{role}-gpu{gpu}.service"
