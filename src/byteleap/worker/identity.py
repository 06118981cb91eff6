"""A worker's own identity: an Ed25519 key, its worker id and the miner it belongs to.

Created at enrollment, kept in the worker's home folder; a restarted worker
reconnects as the same worker by signing the miner's nonce with this key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from byteleap.errors import ByteleapError

KEY_FILE = "worker_key.pem"
IDENTITY_FILE = "worker_identity.json"


class IdentityMissing(ByteleapError):
    reason = "identity_missing"


@dataclass(frozen=True)
class WorkerKey:
    private_key: Ed25519PrivateKey

    @property
    def public_hex(self) -> str:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return raw.hex()

    def sign(self, payload: bytes) -> bytes:
        return self.private_key.sign(payload)


def load_or_create_key(home: Path) -> WorkerKey:
    path = home / KEY_FILE
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise IdentityMissing(f"{path} does not hold an Ed25519 key")
        return WorkerKey(key)
    home.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return WorkerKey(key)


@dataclass(frozen=True)
class Enrollment:
    """What the worker remembers after it enrolled."""

    worker_id: str
    miner_public_key: str  # hex DER of the miner's TLS key, pinned

    def save(self, home: Path) -> None:
        (home / IDENTITY_FILE).write_text(
            json.dumps({"worker_id": self.worker_id, "miner_public_key": self.miner_public_key})
        )

    @classmethod
    def load(cls, home: Path) -> Enrollment | None:
        path = home / IDENTITY_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return cls(worker_id=data["worker_id"], miner_public_key=data["miner_public_key"])
