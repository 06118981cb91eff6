"""Shared builders for the VM lease tests: real SSH keys (made by cryptography), a spec whose
disks live under the test's tmp dir, and ``missing``: a skip with its reason, or a failure
where CI sets ``BYTELEAP_REQUIRE_VM=1`` (there the tools must be installed)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, NoReturn

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from byteleap.worker.vm import VmSpec


def openssh_line(key: Any, comment: str | None = "alice@laptop") -> str:
    line = key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return f"{line} {comment}" if comment else line


def ed25519_key(comment: str | None = "alice@laptop") -> str:
    return openssh_line(ed25519.Ed25519PrivateKey.generate().public_key(), comment)


def rsa_key(bits: int) -> str:
    return openssh_line(rsa.generate_private_key(65537, bits).public_key())


def ecdsa_key() -> str:
    return openssh_line(ec.generate_private_key(ec.SECP384R1()).public_key())


def vm_spec(tmp: Path, **overrides: Any) -> VmSpec:
    fields: dict[str, Any] = {
        "name": "lease-7",
        "lease_id": "lease_7",
        "vcpus": 8,
        "memory_mib": 32768,
        "gpus": ["0000:41:00.0", "0000:c1:00.0"],
        "ssh_public_key": ed25519_key(),
        "base_image": str(tmp / "base.qcow2"),
        "overlay": str(tmp / "lease-7.qcow2"),
        "seed": str(tmp / "lease-7-seed.iso"),
    }
    return VmSpec.parse(fields | overrides)


def missing(reason: str) -> NoReturn:
    if os.environ.get("BYTELEAP_REQUIRE_VM") == "1":
        pytest.fail(f"BYTELEAP_REQUIRE_VM=1 but {reason}")
    pytest.skip(reason)


def need_tools(*tools: str) -> None:
    if absent := [t for t in tools if shutil.which(t) is None]:
        missing(f"{', '.join(absent)} not installed (see the VM block of .ci/run)")
