"""Wire bodies of the local chain service, shared by the service and its client.

Write bodies are signed as raw bytes (btauth/1), so they are parsed only after the
signature checks out; the acting hotkey is the signer, never a body field.
"""

from __future__ import annotations

import ipaddress
import math

from bittensor import sp_core
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Large enough for any DER SubjectPublicKeyInfo we pin (RSA-4096 is ~550 bytes).
MAX_CERTIFICATE_HEX = 8192


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterRequest(_Body):
    coldkey: str

    @field_validator("coldkey")
    @classmethod
    def _ss58(cls, value: str) -> str:
        try:
            sp_core.ss58_decode(value)
        except ValueError:
            raise ValueError("coldkey is not a valid ss58 address") from None
        return value


class RegisterResponse(_Body):
    uid: int


class StakeRequest(_Body):
    amount: float = Field(gt=0)

    @field_validator("amount")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("amount must be finite")
        return value


class StakeResponse(_Body):
    stake: float


class AxonRequest(_Body):
    ip: str
    port: int = Field(ge=1, le=65535)
    certificate: str | None = Field(default=None, max_length=MAX_CERTIFICATE_HEX)

    @field_validator("ip")
    @classmethod
    def _address(cls, value: str) -> str:
        return str(ipaddress.ip_address(value))

    @field_validator("certificate")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None:
            bytes.fromhex(value)
        return value


class WeightsRequest(_Body):
    uids: list[int] = Field(min_length=1)
    weights: list[float] = Field(min_length=1)
    version_key: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> WeightsRequest:
        if len(self.uids) != len(self.weights):
            raise ValueError(f"{len(self.uids)} uids but {len(self.weights)} weights")
        if len(set(self.uids)) != len(self.uids):
            raise ValueError("uids contain duplicates")
        if any(uid < 0 for uid in self.uids):
            raise ValueError("uids must be non-negative")
        if any(not math.isfinite(w) or w < 0 for w in self.weights):
            raise ValueError("weights must be finite and non-negative")
        if sum(self.weights) <= 0:
            raise ValueError("weights sum to zero")
        return self


class ChainInfo(_Body):
    chain_id: str
    netuid: int
    block: int
    block_time_s: float
    tempo: int
    last_epoch_block: int
    max_uids: int
    immunity_period: int
    max_validators: int
    weights_rate_limit: int
    kappa: float


class ErrorBody(_Body):
    reason: str
    message: str


class ErrorResponse(_Body):
    error: ErrorBody
