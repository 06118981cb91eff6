"""The role's wallet (its hotkey readable) and the chain: reachable, the hotkey registered on
the netuid, a validator permit where the role needs one, and a miner's axon published."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from byteleap.commands.doctor_checks.model import Finding, blocking, fail, ok, skip, warn
from byteleap.config import ChainSettings, WalletSettings

Role = Literal["miner", "validator", "gateway"]


@dataclass(frozen=True)
class WalletFacts:
    hotkey_ss58: str | None
    finding: Finding


def keys_new_fix(wallet: WalletSettings) -> str:
    return f"byteleap keys new {wallet.name} --hotkey {wallet.hotkey} --path {wallet.path}"


def read_wallet(wallet: WalletSettings) -> WalletFacts:
    """The hotkey the role signs with, read as the role reads it (blocking: key files)."""
    from bittensor import Wallet

    keys = Wallet(wallet.name, wallet.hotkey, path=str(wallet.path))
    where = f"{wallet.name}/{wallet.hotkey} under {wallet.path}"
    hotkey = keys.hotkey_file
    if not hotkey.exists_on_device():
        return WalletFacts(None, fail("wallet", f"no hotkey {where}", keys_new_fix(wallet)))
    if not hotkey.is_readable():
        return WalletFacts(
            None,
            fail(
                "wallet",
                f"hotkey {where} is not readable by this user",
                f"chmod 600 and chown it to this user: {hotkey.path}",
            ),
        )
    if hotkey.is_encrypted():
        # Reading it would prompt for the password; the role asks at its start.
        return WalletFacts(
            None,
            warn(
                "wallet",
                f"hotkey {where} is encrypted: the role asks for its password at start",
                f"byteleap keys new {wallet.name} --hotkey NAME makes an unencrypted hotkey",
            ),
        )
    try:
        ss58 = str(keys.hotkey.ss58_address)
    except Exception as exc:  # a corrupt key file: whatever the SDK raises, say it
        return WalletFacts(
            None,
            fail("wallet", f"hotkey {where} cannot be read: {exc}", keys_new_fix(wallet)),
        )
    return WalletFacts(ss58, ok("wallet", f"hotkey {where}: {ss58}"))


async def check_wallet(wallet: WalletSettings) -> WalletFacts:
    return await blocking(lambda: read_wallet(wallet))


def _endpoint(chain: ChainSettings) -> str:
    return chain.url if chain.adapter == "local" else f"bittensor {chain.network}"


def register_fix(role: Role, chain: ChainSettings, wallet: WalletSettings) -> str:
    if chain.adapter == "local":
        return (
            f"byteleap chain register --wallet {wallet.name} --hotkey {wallet.hotkey} "
            f"--wallet-path {wallet.path} --url {chain.url} --netuid {chain.netuid}"
        )
    return (
        f"btcli subnet register --netuid {chain.netuid} --wallet.name {wallet.name} "
        f"--wallet.hotkey {wallet.hotkey}"
    )


async def check_chain(
    role: Role,
    chain: ChainSettings,
    wallet: WalletSettings,
    hotkey: str | None,
    axon: tuple[str, int] | None = None,
    timeout_s: float = 5.0,
) -> list[Finding]:
    """Reachable, registered, (validator, gateway) permitted, (miner) axon published."""
    from byteleap.chain import ChainError, ChainUnavailable, open_chain

    port = open_chain(chain.model_copy(update={"timeout_s": min(chain.timeout_s, timeout_s)}))
    try:
        try:
            block = await port.current_block()
            graph = await port.metagraph()
        except ChainError as exc:
            fix = (
                f"start the chain (`byteleap chain serve`) or fix url in [{role}.chain]"
                if chain.adapter == "local"
                else f"check network in [{role}.chain] and this host's connectivity"
            )
            detail = str(exc) if isinstance(exc, ChainUnavailable) else f"{_endpoint(chain)}: {exc}"
            return [fail("chain", detail, fix)]
        found = [ok("chain", f"{_endpoint(chain)} at block {block}, netuid {chain.netuid}")]
        if hotkey is None:
            found.append(skip("registered", "no readable hotkey (see wallet)"))
            return found
        return found + registration_verdicts(role, chain, wallet, graph.by_hotkey(hotkey), axon)
    finally:
        await port.close()


def registration_verdicts(
    role: Role,
    chain: ChainSettings,
    wallet: WalletSettings,
    neuron: object | None,
    axon: tuple[str, int] | None,
) -> list[Finding]:
    """Pure: what the metagraph's entry for the hotkey (None: absent) means for ``role``."""
    from byteleap.chain import NeuronInfo

    netuid = chain.netuid
    if neuron is None:
        detail = f"hotkey not registered on netuid {netuid}"
        fix = register_fix(role, chain, wallet)
        if role == "gateway":  # it never registers itself; miners refuse it until then
            return [fail("registered", detail, fix)]
        return [warn("registered", f"{detail} (`{role} run` registers it at start)", fix)]
    assert isinstance(neuron, NeuronInfo)
    found = [ok("registered", f"uid {neuron.uid} on netuid {netuid}")]
    if role in ("validator", "gateway"):
        found.append(_permit(role, neuron, chain, wallet))
    if role == "miner" and axon is not None:
        found.append(_axon(neuron, axon))
    return found


def _permit(role: Role, neuron: object, chain: ChainSettings, wallet: WalletSettings) -> Finding:
    from byteleap.chain import NeuronInfo

    assert isinstance(neuron, NeuronInfo)
    if neuron.validator_permit:
        return ok("permit", f"validator permit (stake {neuron.stake:g})")
    fix = (
        f"stake on it: byteleap chain stake --wallet {wallet.name} --hotkey {wallet.hotkey} "
        f"--wallet-path {wallet.path} --amount 1000 --url {chain.url} (devnet); the permit "
        "comes at the next epoch"
        if chain.adapter == "local"
        else f"btcli stake add --netuid {chain.netuid} --wallet.name {wallet.name} "
        f"--wallet.hotkey {wallet.hotkey}; the permit comes at the next epoch"
    )
    why = "miners refuse its calls" if role == "gateway" else "miners refuse its challenges"
    return warn("permit", f"no validator permit (stake {neuron.stake:g}): {why}", fix)


def _axon(neuron: object, axon: tuple[str, int]) -> Finding:
    from byteleap.chain import NeuronInfo

    assert isinstance(neuron, NeuronInfo)
    ip, port = axon
    if neuron.axon_ip is None or not neuron.certificate:
        return warn(
            "axon",
            "no axon published yet: validators cannot reach this miner",
            "start it: byteleap miner run --config FILE (it publishes its axon and TLS key)",
        )
    published = f"{neuron.axon_ip}:{neuron.axon_port}"
    if (neuron.axon_ip, neuron.axon_port) != (ip, port):
        return warn(
            "axon",
            f"published as {published}, the config says {ip}:{port}",
            "restart `byteleap miner run` to publish the configured address (external_ip, port)",
        )
    return ok("axon", f"published at {published} with its TLS key")
