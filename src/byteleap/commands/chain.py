"""`byteleap chain …` commands: serve the devnet chain, show a metagraph, register, stake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from byteleap.chain import open_chain
from byteleap.chain.local.client import LocalChain
from byteleap.chain.port import ChainPort, ChainUnsupported, Metagraph
from byteleap.commands.common import ConfigOption
from byteleap.config import (
    ChainServiceSettings,
    ChainSettings,
    ConfigError,
    ValidatorSettings,
    WalletSettings,
    describe_validation_error,
    load_settings,
)

if TYPE_CHECKING:
    from bittensor import Wallet

app = typer.Typer(no_args_is_help=True, add_completion=False)

T = TypeVar("T")

UrlOption = Annotated[str | None, typer.Option("--url", help="Chain service URL (local adapter).")]
NetuidOption = Annotated[int | None, typer.Option("--netuid", help="Subnet id.")]
WalletOption = Annotated[str, typer.Option("--wallet", help="Wallet (coldkey) name.")]
HotkeyOption = Annotated[str, typer.Option("--hotkey", help="Hotkey name in the wallet.")]
WalletPathOption = Annotated[
    Path | None, typer.Option("--wallet-path", help="Wallets directory.", file_okay=False)
]


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port.")] = None,
    db: Annotated[Path | None, typer.Option(help="SQLite file of the chain.")] = None,
    block_time: Annotated[
        float | None, typer.Option("--block-time", help="Seconds per block.")
    ] = None,
) -> None:
    """Run the devnet chain service (state survives restarts in its SQLite file)."""
    import uvicorn

    from byteleap.chain.local.service import create_app

    overrides = {"host": host, "port": port, "db_path": db, "block_time_s": block_time}
    settings = load_settings(
        ChainServiceSettings, config, **{k: v for k, v in overrides.items() if v is not None}
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )


def chain_settings(
    config: Path | None, *, url: str | None = None, netuid: int | None = None, **more: Any
) -> ChainSettings:
    """The `[validator].chain` settings of the config file (or defaults), with overrides."""
    base = load_settings(ValidatorSettings, config).chain
    changes = {"url": url, "netuid": netuid, **more}
    data = base.model_dump() | {k: v for k, v in changes.items() if v is not None}
    try:
        return ChainSettings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc), reason="config_invalid") from None


def _run(port: ChainPort, action: Callable[[ChainPort], Awaitable[T]]) -> T:
    async def main() -> T:
        try:
            return await action(port)
        finally:
            await port.close()

    return asyncio.run(main())


def metagraph_table(graph: Metagraph) -> Table:
    table = Table(title=f"netuid {graph.netuid} at block {graph.block}")
    for column in ("uid", "hotkey", "coldkey", "stake", "vpermit", "incentive", "dividends"):
        table.add_column(column, justify="right" if column != "hotkey" else "left")
    table.add_column("axon")
    table.add_column("updated", justify="right")
    for n in graph.neurons:
        axon = f"{n.axon_ip}:{n.axon_port}" if n.axon_ip else "-"
        table.add_row(
            str(n.uid), n.hotkey, n.coldkey[:10] + "…", f"{n.stake:.4f}",
            "yes" if n.validator_permit else "-", f"{n.incentive:.4f}",
            f"{n.dividends:.4f}", axon, str(n.last_update),
        )  # fmt: skip
    return table


@app.command()
def metagraph(
    config: ConfigOption = None,
    adapter: Annotated[str | None, typer.Option(help="Chain adapter: local or bittensor.")] = None,
    url: UrlOption = None,
    network: Annotated[str | None, typer.Option(help="Bittensor network.")] = None,
    netuid: NetuidOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, not a table.")] = False,
) -> None:
    """Print the subnet's metagraph (either adapter) as a table or JSON."""
    settings = chain_settings(config, url=url, netuid=netuid, adapter=adapter, network=network)
    graph = _run(open_chain(settings), lambda chain: chain.metagraph())
    if as_json:
        typer.echo(graph.model_dump_json())
    else:
        Console(width=200).print(metagraph_table(graph))


def _wallet(name: str, hotkey: str, path: Path | None) -> Wallet:
    from bittensor import Wallet

    wallet_path = path if path is not None else WalletSettings().path
    return Wallet(name, hotkey, path=str(wallet_path))


def _local(settings: ChainSettings) -> LocalChain:
    if settings.adapter != "local":
        raise ChainUnsupported("this command needs the local devnet chain (adapter local)")
    return LocalChain(settings.url, netuid=settings.netuid, timeout_s=settings.timeout_s)


@app.command()
def register(
    wallet: WalletOption,
    hotkey: HotkeyOption,
    wallet_path: WalletPathOption = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    netuid: NetuidOption = None,
) -> None:
    """Register a hotkey on the subnet; prints its uid."""
    keys = _wallet(wallet, hotkey, wallet_path)
    chain = open_chain(chain_settings(config, url=url, netuid=netuid))
    uid = _run(chain, lambda c: c.register(keys))
    typer.echo(json.dumps({"hotkey": keys.hotkey.ss58_address, "uid": uid}))


@app.command()
def stake(
    wallet: WalletOption,
    hotkey: HotkeyOption,
    amount: Annotated[float, typer.Option("--amount", help="Stake to add (devnet faucet).")],
    wallet_path: WalletPathOption = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    netuid: NetuidOption = None,
) -> None:
    """Add stake to a registered hotkey on the local devnet chain; prints the total."""
    keys = _wallet(wallet, hotkey, wallet_path)
    chain = _local(chain_settings(config, url=url, netuid=netuid))

    async def add(port: ChainPort) -> float:
        return await chain.add_stake(keys, amount)

    total = _run(chain, add)
    typer.echo(json.dumps({"hotkey": keys.hotkey.ss58_address, "stake": total}))
