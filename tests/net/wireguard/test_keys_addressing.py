"""Keys and overlay addressing: pure, with properties checked by hypothesis."""

from __future__ import annotations

import base64
import ipaddress
import random
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.net.wireguard import (
    AddressPoolExhausted,
    WireGuardKeyPair,
    allocate_address,
    allocate_subnet,
    parse_pool,
)
from byteleap.net.wireguard.keys import check_public_key


def test_key_pairs_are_fresh_and_in_wireguard_format() -> None:
    a, b = WireGuardKeyPair.generate(), WireGuardKeyPair.generate()
    assert a.public_key != b.public_key
    assert len(base64.b64decode(a.public_key)) == 32
    assert check_public_key(a.public_key) == a.public_key
    assert a.private_key_base64() not in repr(a)


@pytest.mark.skipif(shutil.which("wg") is None, reason="wireguard-tools (wg) not installed")
def test_public_key_is_the_one_wg_derives() -> None:
    pair = WireGuardKeyPair.generate()
    derived = subprocess.run(
        ["wg", "pubkey"], input=pair.private_key_base64(), capture_output=True, text=True,
        check=True, timeout=10,
    ).stdout.strip()  # fmt: skip
    assert derived == pair.public_key


@pytest.mark.parametrize(
    "bad",
    ["", "not base64!", base64.b64encode(b"x" * 31).decode(), base64.b64encode(b"x" * 33).decode(),
     base64.b64encode(b"x" * 32).decode().rstrip("=")],
)  # fmt: skip
def test_malformed_public_keys_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_public_key(bad)


@pytest.mark.parametrize("pool", ["8.8.8.0/24", "10.0.0.0/25", "fd00::/64", "10.0.0.1/16"])
def test_pool_must_be_a_private_ipv4_range_of_whole_24s(pool: str) -> None:
    with pytest.raises(ValueError):
        parse_pool(pool)


POOL = parse_pool("10.200.0.0/20")  # 16 tenant subnets
SUBNETS = list(POOL.subnets(new_prefix=24))


@given(st.lists(st.sampled_from(["take", "free"]), max_size=60), st.randoms())
def test_tenant_subnets_stay_disjoint_and_inside_the_pool(
    ops: list[str], rnd: random.Random
) -> None:
    held: list[ipaddress.IPv4Network] = []
    for op in ops:
        if op == "take":
            if len(held) == len(SUBNETS):
                with pytest.raises(AddressPoolExhausted):
                    allocate_subnet(POOL, held)
                continue
            subnet = allocate_subnet(POOL, held)
            assert subnet.subnet_of(POOL) and subnet.prefixlen == 24
            assert all(not subnet.overlaps(other) for other in held)
            held.append(subnet)
        elif held:
            held.pop(rnd.randrange(len(held)))


@given(st.lists(st.sampled_from(["take", "free"]), max_size=300), st.randoms())
def test_no_member_address_is_handed_out_twice_while_held(
    ops: list[str], rnd: random.Random
) -> None:
    subnet = ipaddress.IPv4Network("10.200.7.0/24")
    held: set[ipaddress.IPv4Address] = set()
    for op in ops:
        if op == "take":
            if len(held) == 254:
                with pytest.raises(AddressPoolExhausted):
                    allocate_address(subnet, held)
                continue
            address = allocate_address(subnet, held)
            assert address not in held
            assert address in subnet
            assert address not in (subnet.network_address, subnet.broadcast_address)
            held.add(address)
        elif held:
            held.remove(rnd.choice(sorted(held)))


def test_a_full_subnet_is_exhausted() -> None:
    subnet = ipaddress.IPv4Network("10.200.7.0/24")
    with pytest.raises(AddressPoolExhausted):
        allocate_address(subnet, list(subnet.hosts()))
