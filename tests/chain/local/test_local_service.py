"""`byteleap chain serve` as a real subprocess, driven through `LocalChain`."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

import bittensor as bt
import httpx
import pytest

from byteleap.chain.local import LocalChain
from byteleap.chain.port import ChainPort, ChainRejected, Metagraph

if TYPE_CHECKING:
    from conftest import ChainProcess

CERT = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d03010703420004") + b"\x01" * 65


def stored_weights(db: Path) -> list[tuple[int, int, float]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("SELECT src, dst, value FROM weights ORDER BY src, dst").fetchall()


async def wait_for_epoch_after(chain: LocalChain, block: int) -> Metagraph:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (await chain.info()).last_epoch_block > block:
            return await chain.metagraph()
        await asyncio.sleep(0.1)
    raise AssertionError(f"no epoch after block {block} within 20 s")


async def populate(chain: LocalChain, wallets: dict[str, bt.Wallet]) -> int:
    """Register all three, stake the validator, weight the miners; returns the weights block."""
    uids = [await chain.register(wallets[name]) for name in ("validator", "m1", "m2")]
    assert uids == [0, 1, 2]
    assert await chain.register(wallets["m1"]) == 1
    assert await chain.add_stake(wallets["validator"], 100.0) == 100.0
    await chain.serve_axon(wallets["m1"], "127.0.0.1", 8091, CERT)
    await chain.set_weights(wallets["validator"], [1, 2], [3.0, 1.0], version_key=7)
    return await chain.current_block()


async def test_register_stake_weights_epoch_and_restart(
    chain_process: ChainProcess, wallets: dict[str, bt.Wallet]
) -> None:
    chain = LocalChain(chain_process.url, netuid=1, timeout_s=5)
    assert isinstance(chain, ChainPort)
    try:
        weights_block = await populate(chain, wallets)
        graph = await wait_for_epoch_after(chain, weights_block)
        validator, m1, m2 = (graph.by_uid(u) for u in range(3))
        assert validator and m1 and m2
        assert validator.coldkey == wallets["validator"].coldkeypub.ss58_address
        assert validator.validator_permit and not m1.validator_permit
        assert (m1.incentive, m2.incentive) == (pytest.approx(0.75), pytest.approx(0.25))
        assert validator.dividends == pytest.approx(1.0) and m1.dividends == 0
        assert (m1.axon_ip, m1.axon_port, m1.certificate) == ("127.0.0.1", 8091, CERT.hex())
        assert await chain.tempo() == 5

        weights_before = stored_weights(chain_process.db)
        assert weights_before == [(0, 1, 0.75), (0, 2, 0.25)]
        before = await chain.metagraph()
        chain_process.restart()
        after = await chain.metagraph()
        assert after.block >= before.block
        assert [(n.uid, n.hotkey, n.stake) for n in after.neurons] == [
            (n.uid, n.hotkey, n.stake) for n in before.neurons
        ]
        assert stored_weights(chain_process.db) == weights_before
        # The restarted chain keeps running epochs on the same weights.
        graph = await wait_for_epoch_after(chain, after.block)
        assert graph.by_uid(1).incentive == pytest.approx(0.75)  # type: ignore[union-attr]
    finally:
        await chain.close()


async def test_refusals_map_to_chain_errors(
    chain_process: ChainProcess, wallets: dict[str, bt.Wallet]
) -> None:
    async with LocalChain(chain_process.url) as chain:
        await populate(chain, wallets)
        cases = [
            (chain.set_weights(wallets["validator"], [1], [1.0], 0), "rate_limited", 429),
            (chain.set_weights(wallets["m1"], [2], [1.0], 0), "no_validator_permit", 403),
            (chain.set_weights(wallets["validator"], [1, 2], [1.0], 0), "malformed", None),
        ]
        for call, reason, status in cases:
            with pytest.raises(ChainRejected) as err:
                await call
            assert err.value.reason == reason
            assert err.value.context.get("status") == status
        await asyncio.sleep(0.5)  # past the rate limit of 4 blocks
        with pytest.raises(ChainRejected) as err:
            await chain.set_weights(wallets["validator"], [1, 9], [1.0, 1.0], 0)
        assert (err.value.reason, err.value.context["status"]) == ("unknown_uid", 400)
        assert stored_weights(chain_process.db) == [(0, 1, 0.75), (0, 2, 0.25)]

    async with LocalChain(chain_process.url, netuid=9) as other_subnet:
        with pytest.raises(ChainRejected) as err:
            await other_subnet.metagraph()
        assert (err.value.reason, err.value.context["status"]) == ("unknown_subnet", 404)


async def test_malformed_signed_body_is_422_and_changes_nothing(
    chain_process: ChainProcess, wallets: dict[str, bt.Wallet]
) -> None:
    async with LocalChain(chain_process.url) as chain:
        await populate(chain, wallets)
        chain_id = await chain.chain_id()
    path = "/v1/subnets/1/weights"
    async with httpx.AsyncClient(base_url=chain_process.url) as http:
        for body in (b'{"uids": [1], "weights": [-1.0]}', b"not json", b'{"uids": "x"}'):
            headers = bt.http_auth.sign(
                wallets["validator"], method="POST", path=path, body=body, receiver_ss58=chain_id
            )
            response = await http.post(path, content=body, headers=headers)
            assert response.status_code == 422
            assert response.json()["error"]["reason"] == "malformed"
    assert stored_weights(chain_process.db) == [(0, 1, 0.75), (0, 2, 0.25)]
