from pathlib import Path

import bittensor as bt
import pytest

from byteleap.keys import WalletError, create_wallet, ensure_wallet, list_wallets, load_wallet


def test_wallet_uses_the_standard_bittensor_layout(wallet_path: Path) -> None:
    info = create_wallet("miner1", "hot1", path=wallet_path)
    assert (wallet_path / "miner1" / "coldkey").is_file()
    assert (wallet_path / "miner1" / "coldkeypub.txt").is_file()
    assert (wallet_path / "miner1" / "hotkeys" / "hot1").is_file()
    # The SDK reads back the same keys: files are interchangeable with btcli.
    wallet = bt.Wallet("miner1", "hot1", path=str(wallet_path))
    assert wallet.hotkey.ss58_address == info.hotkey_ss58
    assert wallet.coldkeypub.ss58_address == info.coldkey_ss58


def test_existing_hotkey_is_never_overwritten(wallet_path: Path) -> None:
    first = create_wallet("w", "h", path=wallet_path)
    with pytest.raises(WalletError) as info:
        create_wallet("w", "h", path=wallet_path)
    assert info.value.reason == "exists"
    assert load_wallet("w", "h", path=wallet_path).hotkey.ss58_address == first.hotkey_ss58


@pytest.mark.parametrize("name", ["", "a/b", "../escape", "x" * 65, "sp ace"])
def test_bad_names_are_refused_and_nothing_is_written(wallet_path: Path, name: str) -> None:
    with pytest.raises(WalletError) as info:
        create_wallet(name, path=wallet_path)
    assert info.value.reason == "bad_name"
    assert list(wallet_path.iterdir()) == []


def test_missing_wallet_is_a_clear_error(wallet_path: Path) -> None:
    with pytest.raises(WalletError, match="no hotkey nobody/default"):
        load_wallet("nobody", path=wallet_path)


def test_ensure_and_list(wallet_path: Path) -> None:
    a = ensure_wallet("a", path=wallet_path)
    assert ensure_wallet("a", path=wallet_path).hotkey.ss58_address == a.hotkey.ss58_address
    ensure_wallet("b", "h2", path=wallet_path)
    assert [(w.name, w.hotkey) for w in list_wallets(wallet_path)] == [
        ("a", "default"),
        ("b", "h2"),
    ]
    assert list_wallets(wallet_path / "absent") == []
