"""`byteleap keys new|list`: bittensor wallets (coldkey + hotkey, sr25519)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from byteleap.keys import create_wallet, list_wallets

app = typer.Typer(no_args_is_help=True, add_completion=False)

WalletPath = Annotated[
    Path,
    typer.Option("--path", help="Wallets folder (bittensor layout).", file_okay=False),
]
DEFAULT_PATH = Path.home() / ".bittensor" / "wallets"


@app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="Wallet (coldkey) name.")],
    hotkey: Annotated[str, typer.Option(help="Hotkey name.")] = "default",
    path: WalletPath = DEFAULT_PATH,
    password: Annotated[
        str | None,
        typer.Option(envvar="BYTELEAP_COLDKEY_PASSWORD", help="Encrypt the coldkey."),
    ] = None,
) -> None:
    """Create a wallet: a coldkey (if it does not exist yet) and a hotkey."""
    info = create_wallet(name, hotkey, path=path, password=password)
    typer.echo(f"{info.name}/{info.hotkey}  hotkey {info.hotkey_ss58}  coldkey {info.coldkey_ss58}")


@app.command("list")
def list_(
    path: WalletPath = DEFAULT_PATH,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the wallets and hotkeys under a folder."""
    wallets = list_wallets(path)
    if as_json:
        rows = [
            {
                "name": w.name,
                "hotkey": w.hotkey,
                "hotkey_ss58": w.hotkey_ss58,
                "coldkey_ss58": w.coldkey_ss58,
            }
            for w in wallets
        ]
        typer.echo(json.dumps(rows))
        return
    table = Table(title=f"wallets in {path}")
    for column in ("wallet", "hotkey", "hotkey ss58", "coldkey ss58"):
        table.add_column(column)
    for w in wallets:
        table.add_row(w.name, w.hotkey, w.hotkey_ss58 or "-", w.coldkey_ss58 or "-")
    Console().print(table)
