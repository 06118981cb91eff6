"""Attacks on signed chain writes: each is refused with 401 and a reason, and changes nothing."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import bittensor as bt
import httpx
import pytest

from byteleap.chain.local import LocalChain
from byteleap.chain.port import ChainAuthError, Metagraph

if TYPE_CHECKING:
    from conftest import ChainProcess

pytestmark = pytest.mark.adversarial

STAKE = "/v1/subnets/1/stake"


def comparable(graph: Metagraph) -> list[tuple[object, ...]]:
    return [(n.uid, n.hotkey, n.coldkey, n.stake, n.axon_ip, n.last_update) for n in graph.neurons]


async def setup_chain(url: str, wallets: dict[str, bt.Wallet]) -> str:
    async with LocalChain(url) as chain:
        for name in ("validator", "m1"):
            await chain.register(wallets[name])
        await chain.add_stake(wallets["validator"], 10.0)
        return await chain.chain_id()


async def test_attacks_are_refused_and_change_nothing(
    chain_process: ChainProcess, wallets: dict[str, bt.Wallet]
) -> None:
    chain_id = await setup_chain(chain_process.url, wallets)
    validator, intruder = wallets["validator"], wallets["m2"]
    body = b'{"amount": 1000.0}'

    def signed(wallet: bt.Wallet, **kw: object) -> dict[str, str]:
        args: dict[str, object] = {"body": body, "receiver_ss58": chain_id} | kw
        return bt.http_auth.sign(wallet, method="POST", path=STAKE, **args)  # type: ignore[arg-type]

    forged = signed(intruder) | {"X-Bittensor-Hotkey": validator.hotkey.ss58_address}
    tampered = signed(validator, body=b'{"amount": 1.0}')
    attacks = {
        "unsigned": ({"Content-Type": "application/json"}, "unsigned"),
        "wrong hotkey": (forged, "bad_signature"),
        "tampered body": (tampered, "bad_signature"),
        "stale nonce": (signed(validator, nonce_ns=time.time_ns() - 120 * 10**9), "stale"),
        "future nonce": (signed(validator, nonce_ns=time.time_ns() + 60 * 10**9), "stale"),
        "other chain": (signed(validator, receiver_ss58="byteleap-local:0000"), "wrong_receiver"),
        "unbound": (signed(validator, receiver_ss58=None), "wrong_receiver"),
        "garbage signature": (
            signed(validator) | {"X-Bittensor-Signature": "0xzz"},
            "malformed_auth",
        ),
    }
    async with LocalChain(chain_process.url) as chain, httpx.AsyncClient() as http:
        before = comparable(await chain.metagraph())
        for name, (headers, reason) in attacks.items():
            response = await http.post(chain_process.url + STAKE, content=body, headers=headers)
            assert response.status_code == 401, name
            error = response.json()["error"]
            assert error["reason"] == reason, name
            assert error["message"], name
        assert comparable(await chain.metagraph()) == before


async def test_replay_is_refused_even_after_a_restart(
    chain_process: ChainProcess, wallets: dict[str, bt.Wallet]
) -> None:
    chain_id = await setup_chain(chain_process.url, wallets)
    body = b'{"amount": 5.0}'
    headers = bt.http_auth.sign(
        wallets["validator"], method="POST", path=STAKE, body=body, receiver_ss58=chain_id
    )
    async with httpx.AsyncClient(base_url=chain_process.url) as http:
        first = await http.post(STAKE, content=body, headers=headers)
        assert first.status_code == 200 and first.json()["stake"] == 15.0
        replay = await http.post(STAKE, content=body, headers=headers)
        assert replay.status_code == 401 and replay.json()["error"]["reason"] == "replayed"
    chain_process.restart()
    async with httpx.AsyncClient(base_url=chain_process.url) as http:
        replay = await http.post(STAKE, content=body, headers=headers)
        assert replay.status_code == 401 and replay.json()["error"]["reason"] == "replayed"
    async with LocalChain(chain_process.url) as chain:
        graph = await chain.metagraph()
        assert graph.by_uid(0).stake == 15.0  # type: ignore[union-attr]


async def test_client_maps_401_to_chain_auth_error(
    chain_process: ChainProcess, wallets: dict[str, bt.Wallet]
) -> None:
    await setup_chain(chain_process.url, wallets)
    async with LocalChain(chain_process.url) as chain:
        chain._chain_id = "byteleap-local:not-this-chain"  # a client pointed at the wrong chain
        with pytest.raises(ChainAuthError) as err:
            await chain.add_stake(wallets["validator"], 1.0)
        assert err.value.context["detail"] == "wrong_receiver"
        chain._chain_id = None
        assert (await chain.metagraph()).by_uid(0).stake == 10.0  # type: ignore[union-attr]
