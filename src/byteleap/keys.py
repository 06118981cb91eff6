"""Wallets in the standard bittensor layout (``<path>/<name>/coldkey``, ``hotkeys/<hotkey>``).

Keys are created and read only through the ``bittensor`` SDK so the files are
interchangeable with ``btcli``. Devnet keys live under ``.devnet/wallets`` and
are unencrypted (they guard nothing of value); real keys keep the SDK default.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bittensor as bt

from byteleap.errors import ByteleapError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class WalletError(ByteleapError):
    """A wallet could not be created or read."""

    reason = "keys"


@dataclass(frozen=True)
class WalletInfo:
    name: str
    hotkey: str
    coldkey_ss58: str | None
    hotkey_ss58: str | None
    path: Path


def _check_name(kind: str, value: str) -> None:
    if not _NAME.match(value):
        raise WalletError(
            f"{kind} name {value!r} must be 1-64 letters, digits, '_', '.' or '-'",
            reason="bad_name",
        )


def create_wallet(
    name: str,
    hotkey: str = "default",
    *,
    path: Path,
    password: str | None = None,
    overwrite: bool = False,
    on_mnemonic: Callable[[str], None] | None = None,
) -> WalletInfo:
    """Create a coldkey (if missing) and a hotkey; refuses to overwrite unless asked.

    ``on_mnemonic`` receives a new coldkey's mnemonic (the SDK would print it to stdout,
    where logs and pipes keep it); without it the mnemonic is not shown at all.
    """
    _check_name("wallet", name)
    _check_name("hotkey", hotkey)
    wallet = bt.Wallet(name, hotkey, path=str(path))
    if not wallet.coldkeypub_file.exists_on_device():
        wallet.create_new_coldkey(
            use_password=password is not None,
            coldkey_password=password,
            suppress=True,
            overwrite=overwrite,
            on_mnemonic=on_mnemonic,
        )
    if wallet.hotkey_file.exists_on_device() and not overwrite:
        raise WalletError(f"hotkey {name}/{hotkey} already exists under {path}", reason="exists")
    wallet.create_new_hotkey(use_password=False, suppress=True, overwrite=overwrite)
    log.info("created wallet", extra={"wallet": name, "hotkey": hotkey, "path": str(path)})
    return describe(wallet, path)


def import_coldkey(name: str, mnemonic: str, *, path: Path, password: str | None = None) -> None:
    """Write the coldkey a mnemonic stands for (encrypted when a password is given); refuses
    when the wallet already has one, whichever it is."""
    _check_name("wallet", name)
    wallet = bt.Wallet(name, "default", path=str(path))
    if wallet.coldkeypub_file.exists_on_device():
        raise WalletError(f"wallet {name} already has a coldkey under {path}", reason="exists")
    try:
        wallet.regenerate_coldkey(
            mnemonic=" ".join(mnemonic.split()),
            use_password=password is not None,
            coldkey_password=password,
            suppress=True,
        )
    except ValueError as exc:  # the SDK's word for a phrase that is not BIP-39
        raise WalletError(f"not a valid mnemonic: {exc}", reason="bad_mnemonic") from None
    log.info("imported coldkey", extra={"wallet": name, "path": str(path)})


def coldkey_is_encrypted(name: str, *, path: Path) -> bool:
    """Whether the wallet's coldkey file is stored encrypted (the SDK's NaCl format)."""
    return bool(bt.Wallet(name, "default", path=str(path)).coldkey_file.is_encrypted())


def load_wallet(name: str, hotkey: str = "default", *, path: Path) -> bt.Wallet:
    """An existing wallet whose hotkey is readable; a clear error otherwise."""
    wallet = bt.Wallet(name, hotkey, path=str(path))
    if not wallet.hotkey_file.exists_on_device():
        raise WalletError(f"no hotkey {name}/{hotkey} under {path}", reason="missing")
    return wallet


def ensure_wallet(name: str, hotkey: str = "default", *, path: Path) -> bt.Wallet:
    """Load the wallet, creating it first if it does not exist (devnet)."""
    wallet = bt.Wallet(name, hotkey, path=str(path))
    if not wallet.hotkey_file.exists_on_device():
        create_wallet(name, hotkey, path=path)
    return wallet


def describe(wallet: bt.Wallet, path: Path) -> WalletInfo:
    def ss58(keyfile_name: str) -> str | None:
        try:
            return str(getattr(wallet, keyfile_name).ss58_address)
        except Exception:  # unreadable or missing key file: shown as absent
            return None

    return WalletInfo(
        name=wallet.name,
        hotkey=wallet.hotkey_str,
        coldkey_ss58=ss58("coldkeypub"),
        hotkey_ss58=ss58("hotkey"),
        path=path,
    )


def list_wallets(path: Path) -> list[WalletInfo]:
    """Every (wallet, hotkey) pair under ``path``, sorted; a wallet without hotkeys once."""
    found: list[WalletInfo] = []
    if not path.is_dir():
        return found
    for wallet_dir in sorted(p for p in path.iterdir() if p.is_dir()):
        hotkeys_dir = wallet_dir / "hotkeys"
        names = (
            sorted(p.name for p in hotkeys_dir.iterdir() if not p.name.endswith("pub.txt"))
            if hotkeys_dir.is_dir()
            else []
        )
        for hotkey in names or ["default"]:
            found.append(describe(bt.Wallet(wallet_dir.name, hotkey, path=str(path)), path))
    return found
