"""`byteleap validator run`: open the store and the chain, check the permit, run."""

from __future__ import annotations

import logging

from byteleap.chain import open_chain
from byteleap.config import ValidatorSettings
from byteleap.keys import load_wallet
from byteleap.metrics import serve_metrics
from byteleap.store import open_store, upgrade
from byteleap.validator.service import Validator

log = logging.getLogger(__name__)


async def run_validator(settings: ValidatorSettings) -> None:
    wallet = load_wallet(settings.wallet.name, settings.wallet.hotkey, path=settings.wallet.path)
    # Migrations are idempotent; running them here saves operators a step on upgrades.
    await upgrade(settings.store.url)
    store = await open_store(settings.store.url)
    chain = open_chain(settings.chain)
    if settings.metrics_port is not None:
        serve_metrics(settings.metrics_port)
    try:
        uid = await chain.register(wallet)
        log.info("validator registered", extra={"uid": uid})
        await Validator(settings, wallet, chain, store).run()
    finally:
        await chain.close()
        await store.close()
