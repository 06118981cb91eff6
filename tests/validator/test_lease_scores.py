"""Lease receipts in the store move lease scores — and only the ones that verify count."""

from __future__ import annotations

import time

import pytest
from bittensor import sp_core

from byteleap.chain.port import Metagraph, NeuronInfo
from byteleap.cloud.receipts import (
    anonymous_lease_id,
    countersign_as_miner,
    new_receipt,
    sign_as_gateway,
)
from byteleap.scoring import ScoringParams
from byteleap.store import Store
from byteleap.store.receipts import ReceiptRecord, record_receipt
from byteleap.validator.scores import compute_scores


def key() -> sp_core.Keypair:
    return sp_core.Keypair.create_from_mnemonic(sp_core.Keypair.generate_mnemonic())


def neuron(uid: int, keypair: sp_core.Keypair, *, permit: bool = False) -> NeuronInfo:
    return NeuronInfo(
        uid=uid,
        hotkey=keypair.ss58_address,
        coldkey=keypair.ss58_address,
        stake=1000.0 if permit else 0.0,
        validator_permit=permit,
    )


def receipt(gateway: sp_core.Keypair, miner: sp_core.Keypair, *, start: int, seconds: int):  # type: ignore[no-untyped-def]
    unsigned = new_receipt(
        lease_id=anonymous_lease_id("lease-" + miner.ss58_address, b"gateway-secret-0123"),
        netuid=1,
        gateway_hotkey=gateway.ss58_address,
        miner_hotkey=miner.ss58_address,
        worker_id="w-0000000000000001",
        gpu_model="H100",
        gpu_count=1,
        period_start=start,
        period_end=start + seconds,
        unit_price_micro=800,
        currency="TAO",
    )
    return countersign_as_miner(sign_as_gateway(unsigned, gateway), miner)


@pytest.mark.adversarial
async def test_verified_receipts_set_lease_scores_and_forged_ones_do_not(store: Store) -> None:
    validator, outsider, busy, idle, cheat = key(), key(), key(), key(), key()
    metagraph = Metagraph(
        netuid=1,
        block=100,
        neurons=[
            neuron(0, validator, permit=True),
            neuron(1, outsider),
            neuron(2, busy),
            neuron(3, idle),
            neuron(4, cheat),
        ],
    )
    now = int(time.time())
    genuine = [
        receipt(validator, busy, start=now - 1200, seconds=600),
        receipt(validator, busy, start=now - 600, seconds=600),
        receipt(validator, idle, start=now - 600, seconds=300),
    ]
    # A "gateway" without a validator permit vouching for a friendly miner.
    forged = receipt(outsider, cheat, start=now - 600, seconds=600)
    async with store.session() as s:
        for r in [*genuine, forged]:
            await record_receipt(s, ReceiptRecord(**r.model_dump()), at=now)
    result = await compute_scores(
        store, metagraph, now=now, params=ScoringParams(), exclude={validator.ss58_address}
    )
    board = result.board
    assert board.lease_active is True
    assert board.miner(busy.ss58_address).lease == pytest.approx(1.0)
    assert board.miner(idle.ss58_address).lease == pytest.approx(0.25)
    assert board.miner(cheat.ss58_address).lease == 0.0
    # No challenges anywhere: the final score is the 70% lease share alone.
    assert board.miner(busy.ss58_address).final == pytest.approx(0.7)
    assert result.weights == {2: pytest.approx(0.8), 3: pytest.approx(0.2)}


async def test_a_receipt_stops_counting_when_its_gateway_loses_the_permit(store: Store) -> None:
    validator, miner = key(), key()
    now = int(time.time())
    async with store.session() as s:
        r = receipt(validator, miner, start=now - 600, seconds=600)
        await record_receipt(s, ReceiptRecord(**r.model_dump()), at=now)
    demoted = Metagraph(
        netuid=1, block=1, neurons=[neuron(0, validator, permit=False), neuron(1, miner)]
    )
    result = await compute_scores(store, demoted, now=now, params=ScoringParams())
    assert result.board.lease_active is False and result.weights == {}
