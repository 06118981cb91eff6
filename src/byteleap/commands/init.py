"""`byteleap init miner|worker|validator|gateway`: a production config, keys and systemd units.

Asks for what it was not told (typer prompts); `--yes` asks nothing and fails on a missing
answer that has no safe default (the netuid, a new coldkey's password or `--no-password`, a
worker's miner URL), so scripts can run it. Nothing is written until every answer is known.
"""

from __future__ import annotations

import enum
import getpass
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from byteleap.commands.init_files import (
    DEFAULT_CURRENCY,
    DEFAULT_PRICE_PER_CPU_S,
    DEFAULT_PRICE_PER_GPU_S,
    ChainChoice,
    InitAnswers,
    WalletChoice,
    render_config,
    render_unit,
    unit_name,
)
from byteleap.config import ChainSettings, ConfigError, parse_gpu_indices

DEFAULT_HOME = Path.home() / ".byteleap"
DEFAULT_WALLETS = Path.home() / ".bittensor" / "wallets"


class RoleName(enum.StrEnum):
    miner = "miner"
    worker = "worker"
    validator = "validator"
    gateway = "gateway"


class ChainName(enum.StrEnum):
    bittensor = "bittensor"
    local = "local"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"init: {message}", err=True)
    return typer.Exit(2)


def _ask(value: str | None, text: str, default: str | None, interactive: bool) -> str | None:
    """The flag's value, else (interactive) the answer to a prompt, else the default."""
    if value is not None:
        return value
    if interactive:
        return str(
            typer.prompt(text, default=default) if default is not None else typer.prompt(text)
        )
    return default


def _netuid(value: int | None, interactive: bool) -> int:
    if value is None and interactive:
        value = typer.prompt("Subnet netuid", type=int)
    if value is None:
        raise _fail("--netuid is required (the subnet this node serves; there is no default)")
    if not 0 <= value <= 65535:
        raise _fail(f"--netuid {value} is out of range (0 to 65535)")
    return value


def _chain(
    chain: ChainName,
    network: str | None,
    chain_url: str | None,
    netuid: int | None,
    interactive: bool,
) -> ChainChoice:
    if chain is ChainName.local:
        url = chain_url or "http://127.0.0.1:9944"
        choice = ChainChoice(adapter="local", netuid=_netuid(netuid, interactive), url=url)
    else:
        uid = _netuid(netuid, interactive)
        net = _ask(network, "Bittensor network (finney, test or ws(s)://…)", "finney", interactive)
        assert net is not None
        choice = ChainChoice(adapter="bittensor", netuid=uid, network=net)
    try:  # the settings' own checks, before anything is written
        ChainSettings(
            adapter=choice.adapter, network=choice.network, url=choice.url or ChainSettings().url
        )
    except ValueError as exc:
        raise _fail(f"chain: {exc}") from None
    return choice


def _password(password_file: Path | None, no_password: bool, interactive: bool) -> str | None:
    """The new coldkey's password; None only when `--no-password` asked for a plain file."""
    if no_password:
        typer.echo(
            "init: WARNING: the coldkey is stored unencrypted (--no-password): anyone who can "
            "read the file owns its funds.",
            err=True,
        )
        return None
    if password_file is not None:
        password = password_file.read_text().rstrip("\r\n")
    elif interactive:
        password = typer.prompt("Coldkey password", hide_input=True, confirmation_prompt=True)
    else:
        raise _fail("a new coldkey needs --password-file FILE (or an explicit --no-password)")
    if not password:
        raise _fail("the coldkey password is empty")
    return password


def _show_mnemonic(mnemonic: str) -> None:
    # stderr, never the log: the only copy the operator will ever be shown.
    typer.echo(
        "\n!! Write down this coldkey mnemonic and keep it offline. It is the only way to\n"
        "!! recover the coldkey, and it is shown this once:\n\n"
        f"    {mnemonic}\n",
        err=True,
    )


def _setup_wallet(
    wallet: WalletChoice,
    *,
    import_mnemonic: bool,
    password_file: Path | None,
    no_password: bool,
    interactive: bool,
) -> None:
    """Create (or import) the coldkey when the wallet has none, then a hotkey when missing;
    an existing wallet is used as it is."""
    from byteleap.keys import coldkey_is_encrypted, create_wallet, import_coldkey

    has_coldkey = (wallet.path / wallet.name / "coldkeypub.txt").exists()
    has_hotkey = (wallet.path / wallet.name / "hotkeys" / wallet.hotkey).exists()
    if import_mnemonic and has_coldkey:
        raise _fail(f"wallet {wallet.name} already has a coldkey under {wallet.path}")
    if not has_coldkey:
        mnemonic: str | None = None
        if import_mnemonic:
            mnemonic = (
                typer.prompt("Coldkey mnemonic", hide_input=True)
                if interactive
                else sys.stdin.read()
            )
        password = _password(password_file, no_password, interactive)
        if mnemonic is not None:
            import_coldkey(wallet.name, mnemonic, path=wallet.path, password=password)
        if not has_hotkey:
            info = create_wallet(
                wallet.name,
                wallet.hotkey,
                path=wallet.path,
                password=password,
                on_mnemonic=_show_mnemonic,
            )
            typer.echo(
                f"wallet {info.name}/{info.hotkey}: coldkey {info.coldkey_ss58}, "
                f"hotkey {info.hotkey_ss58}"
            )
    elif not has_hotkey:
        create_wallet(wallet.name, wallet.hotkey, path=wallet.path)
    else:
        typer.echo(f"wallet {wallet.name}/{wallet.hotkey}: using the existing keys")
    if not coldkey_is_encrypted(wallet.name, path=wallet.path) and not no_password:
        typer.echo(f"init: WARNING: the coldkey of {wallet.name} is not encrypted", err=True)


def _all_gpus() -> list[int]:
    from byteleap.worker.hardware_probe import probe_gpus

    indices = [g.index for g in probe_gpus()]
    if not indices:
        raise _fail("--all-gpus: NVML shows no GPU on this host")
    return indices


def _prices(values: list[str] | None) -> dict[str, float]:
    if not values:
        return dict(DEFAULT_PRICE_PER_GPU_S)
    prices: dict[str, float] = {}
    for value in values:
        model, sep, price = value.partition("=")
        try:
            prices[model.strip()] = float(price)
        except ValueError:
            sep = ""
        if not sep or not model.strip() or prices[model.strip()] < 0:
            raise _fail(f"--price-gpu {value!r}: write MODEL=PRICE, e.g. H100=0.0008")
    return prices


def _executable(value: Path | None) -> Path:
    if value is not None:
        return value.absolute()
    # The byteleap beside this interpreter (the venv it is installed in), else the PATH's.
    beside = Path(sys.executable).parent / "byteleap"
    found = beside if beside.exists() else shutil.which("byteleap")
    if found is None:
        raise _fail("cannot find the byteleap executable for ExecStart: give --exec PATH")
    return Path(found).absolute()


def init(
    role: Annotated[RoleName, typer.Argument(help="The role to set up on this host.")],
    home: Annotated[Path, typer.Option(help="State folder.", file_okay=False)] = DEFAULT_HOME,
    config: Annotated[
        Path | None, typer.Option("--config", help="Where to write (default HOME/ROLE.toml).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", "--non-interactive", help="Ask nothing.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    netuid: Annotated[int | None, typer.Option(help="The subnet (required).")] = None,
    chain: Annotated[
        ChainName, typer.Option(help="bittensor, or local (devnet).")
    ] = ChainName.bittensor,
    network: Annotated[str | None, typer.Option(help="finney, test, … (default finney).")] = None,
    chain_url: Annotated[str | None, typer.Option(help="--chain local: its http URL.")] = None,
    wallet_name: Annotated[str | None, typer.Option(help="Wallet (coldkey) name.")] = None,
    hotkey: Annotated[str | None, typer.Option(help="Hotkey name.")] = None,
    wallet_path: Annotated[Path, typer.Option(help="Wallets folder.")] = DEFAULT_WALLETS,
    import_mnemonic: Annotated[
        bool, typer.Option("--import-mnemonic", help="Import the coldkey (mnemonic on stdin).")
    ] = False,
    password_file: Annotated[
        Path | None, typer.Option(help="Coldkey password in a file.", dir_okay=False, exists=True)
    ] = None,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Store the coldkey unencrypted.")
    ] = False,
    host: Annotated[str | None, typer.Option(help="miner/gateway: bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="miner/gateway: port.")] = None,
    external_ip: Annotated[str | None, typer.Option(help="miner: published address.")] = None,
    store_url: Annotated[str | None, typer.Option(help="validator/gateway: store URL.")] = None,
    grpc_port: Annotated[int, typer.Option(min=1, max=65535, help="gateway: gRPC port.")] = 50051,
    tls_cert: Annotated[Path | None, typer.Option(help="gateway: PEM certificate.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="gateway: PEM key.")] = None,
    currency: Annotated[str, typer.Option(help="gateway: unit of prices.")] = DEFAULT_CURRENCY,
    price_gpu: Annotated[
        list[str] | None,
        typer.Option("--price-gpu", help="gateway: MODEL=PRICE per GPU-second (repeat)."),
    ] = None,
    price_cpu: Annotated[
        float, typer.Option(min=0, help="gateway: price per CPU core-second.")
    ] = DEFAULT_PRICE_PER_CPU_S,
    miner_url: Annotated[str | None, typer.Option(help="worker: the miner's wss:// URL.")] = None,
    token: Annotated[str | None, typer.Option(help="worker: one-time enrollment token.")] = None,
    gpu: Annotated[
        list[str] | None, typer.Option("--gpu", help="worker: GPU index (repeat).")
    ] = None,
    all_gpus: Annotated[
        bool, typer.Option("--all-gpus", help="worker: one unit per GPU NVML shows.")
    ] = False,
    executor: Annotated[
        str, typer.Option(help="worker: process, container, kubernetes.")
    ] = "process",
    systemd: Annotated[
        Path | None, typer.Option("--systemd", help="Write systemd units into this folder.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="User= of the units (default: you).")] = None,
    exec_path: Annotated[
        Path | None, typer.Option("--exec", help="byteleap executable for ExecStart.")
    ] = None,
) -> None:
    """Write a commented config for ROLE under HOME, create or import its wallet and, with
    --systemd, its systemd units."""
    from byteleap.config import ROLES, load_settings

    interactive = not yes
    name = role.value
    home = home.expanduser().absolute()
    config_path = (config or home / f"{name}.toml").absolute()
    if config_path.exists() and not force:
        raise _fail(f"{config_path} exists (--force to overwrite)")
    if all_gpus and (gpu or token or systemd is None):
        raise _fail(
            "--all-gpus writes one unit per GPU: give --systemd DIR, and no --gpu "
            "or --token (each GPU's worker enrolls with its own token)"
        )
    answers_kw: dict[str, object] = {}
    wallet: WalletChoice | None = None
    if role is RoleName.worker:
        url = _ask(
            miner_url, "The miner's worker URL (wss://HOST:8091/v1/worker)", None, interactive
        )
        if not url:
            raise _fail("--miner-url is required for a worker")
        try:
            gpus = parse_gpu_indices(gpu) if gpu else None
        except ValueError as exc:
            raise _fail(f"--gpu: {exc}") from None
        answers_kw |= {"miner_url": url, "token": token, "gpus": gpus, "executor": executor}
    else:
        chain_choice = _chain(chain, network, chain_url, netuid, interactive)
        wallet = WalletChoice(
            name=_ask(wallet_name, "Wallet name", name, interactive) or name,
            hotkey=_ask(hotkey, "Hotkey name", "default", interactive) or "default",
            path=wallet_path.expanduser().absolute(),
        )
        answers_kw |= {
            "chain": chain_choice,
            "wallet": wallet,
            "store_url": store_url,
            "host": host,
            "port": port,
            "external_ip": _ask(
                external_ip,
                "Public IP validators reach (empty: host)",
                "",
                interactive and role is RoleName.miner,
            )
            or None,
            "grpc_port": grpc_port,
            "tls_cert": tls_cert.absolute() if tls_cert else None,
            "tls_key": tls_key.absolute() if tls_key else None,
            "currency": currency,
            "price_per_gpu_s": _prices(price_gpu),
            "price_per_cpu_s": price_cpu,
        }
    answers = InitAnswers(role=name, home=home, log_level=log_level.upper(), **answers_kw)  # type: ignore[arg-type]
    text = render_config(answers, written_by=f"byteleap init {name}")
    # The file must load as the role will load it: refuse to write one that would not.
    config_path.parent.mkdir(parents=True, exist_ok=True)
    staged = config_path.with_name(config_path.name + ".new")
    staged.write_text(text)
    staged.chmod(0o600)  # a worker's token, a store URL's password
    try:
        load_settings(ROLES[name], staged)
    except ConfigError as exc:
        staged.unlink()
        raise _fail(f"the answers make an invalid config: {exc}") from None
    indices = _all_gpus() if all_gpus else None
    units: dict[str, str] = {}
    if systemd is not None:
        binary = _executable(exec_path)
        unit_user = user or getpass.getuser()
        for index in indices or [None]:  # type: ignore[list-item]
            units[unit_name(name, index)] = render_unit(
                answers, executable=binary, config_path=config_path, user=unit_user, gpu=index
            )
    try:
        if wallet is not None:
            _setup_wallet(
                wallet,
                import_mnemonic=import_mnemonic,
                password_file=password_file,
                no_password=no_password,
                interactive=interactive,
            )
        answers.role_home.mkdir(parents=True, exist_ok=True, mode=0o700)
        staged.replace(config_path)
    finally:
        staged.unlink(missing_ok=True)
    typer.echo(f"wrote {config_path}")
    if systemd is not None:
        systemd.mkdir(parents=True, exist_ok=True)
        for unit, body in units.items():
            (systemd / unit).write_text(body)
            typer.echo(f"wrote {systemd / unit}")
