"""The SSH public keys a customer may hand us (a lease's exec access, a VM's login): one plain
``<type> <base64> [comment]`` line of a type a guest's OpenSSH accepts, parsed to be sure."""

from __future__ import annotations

import re

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

#: Key types a guest's OpenSSH accepts by default and ``cryptography`` can parse.
SSH_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-rsa",
    }
)
MIN_RSA_BITS = 2048
MAX_SSH_KEY_CHARS = 4096

_KEY_BLOB = re.compile(r"[A-Za-z0-9+/]+={0,2}")
#: A comment is for humans: letters, digits and a few separators, never quotes or shell-ish.
_KEY_COMMENT = re.compile(r"[A-Za-z0-9@._+-]{1,100}")


def check_ssh_public_key(line: str) -> str:
    """``line`` as ``<type> <base64> [comment]`` after checking it strictly (ValueError)."""
    if len(line) > MAX_SSH_KEY_CHARS:
        raise ValueError("the SSH key is too long")
    if any(c in line for c in "\r\n\x00\t\"'\\`$;"):
        raise ValueError("the SSH key must be one plain line (no quotes, tabs or newlines)")
    parts = line.strip().split(" ")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError("the SSH key must be '<type> <base64> [comment]', without options")
    kind, blob = parts[0], parts[1]
    if kind not in SSH_KEY_TYPES:
        raise ValueError(f"SSH key type {kind!r} is not one of {', '.join(sorted(SSH_KEY_TYPES))}")
    if not _KEY_BLOB.fullmatch(blob):
        raise ValueError("the SSH key's body is not base64")
    if len(parts) == 3 and not _KEY_COMMENT.fullmatch(parts[2]):
        raise ValueError("the SSH key's comment may hold only letters, digits and @._+-")
    try:
        key = load_ssh_public_key(f"{kind} {blob}".encode())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the SSH key does not parse: {exc}") from exc
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ValueError(f"an RSA key needs at least {MIN_RSA_BITS} bits, not {key.key_size}")
    return " ".join(parts)
