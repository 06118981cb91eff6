"""The id and hex types every message uses, defined once.

- `HexId`: a random 128-bit id as 32 lowercase hex characters (leases on the wire, receipts,
  probes, exec sessions, peer-set nonces);
- `Bytes32Hex`: 32 bytes as 64 hex characters (public keys, challenge nonces);
- `Bytes64Hex`: 64 bytes as 128 hex characters (ed25519 signatures).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

HEX_ID_PATTERN = r"^[0-9a-f]{32}$"

HexId = Annotated[str, Field(pattern=HEX_ID_PATTERN)]
Bytes32Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Bytes64Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{128}$")]
