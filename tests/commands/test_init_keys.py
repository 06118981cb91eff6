"""`byteleap init`'s keys: an encrypted coldkey by default (the SDK's NaCl format), its mnemonic
shown once on stderr, an unencrypted one only when asked, and a coldkey imported from its
mnemonic."""

from __future__ import annotations

from pathlib import Path

import bittensor as bt
from bittensor.keyfiles import Keypair
from typer.testing import CliRunner, Result

from byteleap.cli import app

PASSWORD = "correct horse battery staple"


def init(tmp_path: Path, *args: str, stdin: str | None = None) -> Result:
    argv = ["init", "miner", "--netuid=1", "--home", str(tmp_path / "home")]
    argv += ["--wallet-path", str(tmp_path / "wallets"), *args]
    return CliRunner().invoke(app, argv, input=stdin)


def wallet(tmp_path: Path) -> bt.Wallet:
    return bt.Wallet("miner", "default", path=str(tmp_path / "wallets"))


def mnemonic_in(stderr: str) -> str:
    lines = stderr.splitlines()
    at = next(i for i, line in enumerate(lines) if "shown this once" in line)
    return lines[at + 2].strip()


def test_the_coldkey_is_encrypted_and_its_mnemonic_shown_once(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    result = init(tmp_path, "--yes", f"--password-file={password_file}")
    assert result.exit_code == 0, result.output
    w = wallet(tmp_path)
    assert w.coldkey_file.is_encrypted()
    assert (tmp_path / "wallets" / "miner" / "coldkey").read_bytes().startswith(b"$NACL")
    assert not w.hotkey_file.is_encrypted()  # read unattended by the running miner
    assert w.get_coldkey(PASSWORD).ss58_address == w.coldkeypub.ss58_address

    mnemonic = mnemonic_in(result.stderr)
    assert len(mnemonic.split()) == 12
    assert result.stderr.count(mnemonic) == 1 and mnemonic not in result.stdout
    # It is the coldkey's own phrase, not just some words.
    assert Keypair.create_from_mnemonic(mnemonic, 1).ss58_address == w.coldkeypub.ss58_address


def test_without_a_password_or_no_password_nothing_is_written(tmp_path: Path) -> None:
    result = init(tmp_path, "--yes")
    assert result.exit_code == 2
    assert "--password-file" in result.stderr and "--no-password" in result.stderr
    assert not (tmp_path / "wallets").exists()
    assert not (tmp_path / "home" / "miner.toml").exists()


def test_no_password_must_be_explicit_and_warns(tmp_path: Path) -> None:
    result = init(tmp_path, "--yes", "--no-password")
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.stderr and "unencrypted" in result.stderr
    assert not wallet(tmp_path).coldkey_file.is_encrypted()
    assert wallet(tmp_path).coldkey_file.get_keypair().ss58_address  # plain, readable


def test_the_password_is_asked_twice(tmp_path: Path) -> None:
    # a mismatch is asked again; then the same twice
    answers = ["finney", "miner", "default", "", "one-pw", "other-pw", PASSWORD, PASSWORD]
    result = init(tmp_path, stdin="\n".join(answers) + "\n")
    assert result.exit_code == 0, result.output
    assert wallet(tmp_path).coldkey_file.is_encrypted()
    assert wallet(tmp_path).get_coldkey(PASSWORD).ss58_address


def test_import_a_coldkey_from_its_mnemonic_on_stdin(tmp_path: Path) -> None:
    mnemonic = Keypair.generate_mnemonic(12)
    expected = Keypair.create_from_mnemonic(mnemonic, 1).ss58_address
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD)
    result = init(
        tmp_path, "--yes", "--import-mnemonic", f"--password-file={password_file}", stdin=mnemonic
    )
    assert result.exit_code == 0, result.output
    w = wallet(tmp_path)
    assert w.coldkeypub.ss58_address == expected and w.coldkey_file.is_encrypted()
    assert mnemonic not in result.output  # the operator has it already
    assert w.hotkey_file.exists_on_device()


def test_a_bad_mnemonic_is_refused(tmp_path: Path) -> None:
    result = init(tmp_path, "--yes", "--import-mnemonic", "--no-password", stdin="not a phrase")
    assert result.exit_code != 0
    assert not (tmp_path / "wallets" / "miner" / "coldkey").exists()
    assert list((tmp_path / "home").iterdir()) == []  # no config, not even the staged one


def test_an_existing_wallet_is_used_as_it_is(tmp_path: Path) -> None:
    assert init(tmp_path, "--yes", "--no-password").exit_code == 0
    before = wallet(tmp_path).hotkey.ss58_address
    again = init(tmp_path, "--yes", "--force")  # no password needed: no new coldkey
    assert again.exit_code == 0, again.output
    assert "using the existing keys" in again.stdout and "shown this once" not in again.stderr
    assert wallet(tmp_path).hotkey.ss58_address == before
